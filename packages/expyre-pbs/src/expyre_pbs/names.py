"""PBS job names and the file names of ``#PBS -o/-e`` directives.

PBS Professional / OpenPBS accept a job name (``qsub -N``) of at most 236 characters made of
letters, digits, ``-``, ``_`` and ``+``, starting with a letter (OpenPBS
``src/lib/Libcmds/ck_job_name.c``); Torque accepts any printable non-blank character but also
wants a letter first. expyre's job ids (``<name>_<hash>_<unique>``) carry base64 padding ``=``
and whatever the user put into the name, so the name PBS sees is an encoding of the id that both
dialects accept:

* ``N_`` first (a letter, as in the original ExPyRe's ``N_{id}``);
* letters, digits, ``-`` and ``_`` stay as they are;
* any other character becomes ``+`` followed by the two upper-case hex digits of each of its
  UTF-8 bytes (``=`` -> ``+3D``, ``+`` -> ``+2B``, ``é`` -> ``+C3+A9``).

Different ids give different names: ``+`` is always followed by two hex digits, so the encoding
can be read back (:func:`decode_job_name`). An encoded name longer than :data:`MAX_NAME_LENGTH`
is cut and ends in ``+H`` and 24 hex digits of the SHA-256 of the whole id; ``+H`` never occurs
in an uncut name, so a cut name cannot equal an uncut one, and two cut names are equal only if
their ids' hashes are.
"""
from __future__ import annotations

import hashlib
import re
from typing import Optional

#: Longest job name PBS Professional / OpenPBS accept (``PBS_MAXJOBNAME``); Torque allows more.
MAX_NAME_LENGTH = 236
#: What every job name starts with.
NAME_PREFIX = "N_"

_KEPT = re.compile(r"[A-Za-z0-9_-]")
_HASH_MARK = "+H"
_HASH_DIGITS = 24
_ESCAPE = re.compile(r"\+([0-9A-F]{2})")


def _encode(text: str) -> str:
    out = []
    for char in text:
        if _KEPT.fullmatch(char):
            out.append(char)
        else:
            out.extend(f"+{byte:02X}" for byte in char.encode("utf-8", "surrogatepass"))
    return "".join(out)


def job_name(expyre_id: str, max_length: int = MAX_NAME_LENGTH) -> str:
    """The PBS job name of an expyre job: ``N_`` and the id, encoded as the module describes.

    Parameters
    ----------
    expyre_id: str
        the expyre job id
    max_length: int, default MAX_NAME_LENGTH
        longest name the server accepts

    Returns
    -------
    str
        a name made of ``A-Za-z0-9_+-`` that starts with a letter; the same id always gives the
        same name and different ids give different names
    """
    name = NAME_PREFIX + _encode(expyre_id)
    if len(name) <= max_length:
        return name
    digest = hashlib.sha256(expyre_id.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_DIGITS].upper()
    keep = max_length - len(_HASH_MARK) - _HASH_DIGITS
    if keep < len(NAME_PREFIX) + 1:
        raise ValueError(f"a PBS job name limit of {max_length} characters is too short")
    return name[:keep] + _HASH_MARK + digest


def decode_job_name(name: str) -> Optional[str]:
    """The expyre id a name from :func:`job_name` stands for; None for a cut or foreign name."""
    if not name.startswith(NAME_PREFIX) or _HASH_MARK in name:
        return None
    body = name[len(NAME_PREFIX):]
    data = bytearray()
    pos = 0
    while pos < len(body):
        match = _ESCAPE.match(body, pos)
        if match:
            data.append(int(match.group(1), 16))
            pos = match.end()
        elif _KEPT.fullmatch(body[pos]):
            data.extend(body[pos].encode())
            pos += 1
        else:
            return None
    try:
        return data.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return None


#: Characters a ``#PBS -o/-e`` path may hold as they are.
_PATH_SAFE = re.compile(r"[A-Za-z0-9_.,=+@%^~!/-]+")
#: Characters no directive path can hold: ``:`` (PBS reads ``host:path``), quotes, backslash,
#: line breaks.
_PATH_IMPOSSIBLE = re.compile(r"[:\"'\\\n\r\0]")


def directive_path(path: str) -> Optional[str]:
    """A file name as the value of a ``#PBS -o``/``-e`` directive, or None if it cannot be one.

    qsub splits a directive line into words like a command line and reads ``host:path`` at the
    first ``:``: a name of safe characters is written as it is, a name with blanks or other
    shell-special characters in double quotes, and a name with ``:``, a quote, a backslash or a
    line break cannot be written (the directive is then left out and PBS uses its default
    output file names).
    """
    if not path or _PATH_IMPOSSIBLE.search(path):
        return None
    if _PATH_SAFE.fullmatch(path):
        return path
    return f'"{path}"'
