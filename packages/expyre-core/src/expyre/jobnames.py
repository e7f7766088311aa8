"""The rule for job names, checked once, when a job is created, the same for every scheduler.

A job's name is part of its id (``<name>_<hash>_<unique>``), of its stage and remote directory
names, and, made safe by each scheduler plugin, of the scheduler's job name and output paths.
A name is refused when a character in it would mean something to a scheduler in a path or a
directive (``%`` is a Slurm file-name pattern, ``$`` a Grid Engine pseudo variable, ``"`` ends a
quoted ``#SBATCH`` value), when it cannot be part of a directory name (``/``, ``\\``, control
characters), or when the directory name would be too long for a file system. Refusing such names
here gives one clear error at ``ExPyRe(...)`` instead of a failure at ``start()`` on some
schedulers only.
"""
from __future__ import annotations

#: Characters a job name may not contain, with the reason given in the error.
FORBIDDEN = {
    "/": "it separates directories",
    "\\": "it is a path separator on some systems and an escape in scheduler directives",
    '"': "it ends a quoted value in scheduler directives (#SBATCH)",
    "%": "Slurm expands %-patterns (%j, %x) in file names",
    "$": "Grid Engine expands $-pseudo variables ($JOB_ID) in file names",
}

#: Longest name, in UTF-8 bytes: the directory ``run_<name>_<44-character hash>_<8 characters>``
#: must stay within the usual 255-byte limit of a file name.
MAX_BYTES = 190


class JobNameError(ValueError, AssertionError):
    """A name that cannot be a job name. Also an ``AssertionError``, which ExPyRe raised for a
    name with ``/``, so that its callers' ``except`` clauses still match."""


def check_job_name(name: object) -> None:
    """Raise :class:`JobNameError`, saying which character or limit is the problem, if ``name`` cannot be a job name.

    Parameters
    ----------
    name: str
        the ``name`` given to ``ExPyRe(...)``

    Raises
    ------
    JobNameError
        (a ValueError) for a name that is not a non-empty string, has a forbidden or control character, or is
        longer than :data:`MAX_BYTES` bytes
    """
    if not isinstance(name, str) or not name:
        raise JobNameError(f"job name must be a non-empty string, not {name!r}")
    for char in name:
        if char in FORBIDDEN:
            raise JobNameError(f"job name {name!r} contains {char!r}, which job names may not contain: "
                             f"{FORBIDDEN[char]}")
        if ord(char) < 0x20 or ord(char) == 0x7f:
            raise JobNameError(f"job name {name!r} contains the control character {char!r}, "
                             "which cannot be part of a directory name")
    size = len(name.encode("utf-8", errors="surrogatepass"))
    if size > MAX_BYTES:
        raise JobNameError(f"job name {name[:40]!r}... is {size} bytes long; job names may have at most "
                         f"{MAX_BYTES} (they are part of directory names)")
