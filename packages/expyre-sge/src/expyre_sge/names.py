"""Job names and output file names Grid Engine accepts: no digit first, no blanks, ``/``, ``\\``,
``:``, ``@``, ``*``, ``?`` or non-ASCII; in ``-o``/``-e`` paths no ``:``, ``,`` or ``$``. A job's name is
``N_<id>`` (:func:`expyre.batch.job_name`)."""
from __future__ import annotations

import re

from expyre import batch, jobfiles

#: Characters kept as they are in job names and output file names.
SAFE_CHARACTERS, NAME_PREFIX, MAX_NAME_LENGTH = "A-Za-z0-9_.=+-", "N_", 200
_UNSAFE = re.compile(f"[^{SAFE_CHARACTERS}]")


def is_safe(text: str) -> bool:
    """True if ``text`` is non-empty and uses only :data:`SAFE_CHARACTERS`."""
    return bool(text) and _UNSAFE.search(text) is None


def job_name(job_id: str) -> str:
    """The Grid Engine job name (``#$ -N``) of the expyre job ``job_id``."""
    return batch.job_name(job_id, SAFE_CHARACTERS, NAME_PREFIX, MAX_NAME_LENGTH)


def output_file(file_name: str) -> str:
    """A ``#$ -o``/``-e`` name Grid Engine takes literally (made safe, a digest before its suffix)."""
    if is_safe(file_name) and file_name not in (".", ".."):
        return file_name
    stem, dot, suffix = file_name.rpartition(".")
    if not dot or not stem or _UNSAFE.search(suffix):
        stem, suffix = file_name, ""
    return f"{_UNSAFE.sub('_', stem)}_{batch.digest(file_name)}" + (f".{suffix}" if suffix else "")


def stdout_file(job_id: str) -> str:
    """The ``#$ -o`` file of a job with core's default name (:func:`expyre.jobfiles.job_stdout`)."""
    return output_file(jobfiles.job_stdout(job_id))


def stderr_file(job_id: str) -> str:
    """The ``#$ -e`` file of a job with core's default name (:func:`expyre.jobfiles.job_stderr`)."""
    return output_file(jobfiles.job_stderr(job_id))
