"""Job names and output file names that Grid Engine accepts.

Grid Engine refuses a job name (``qsub -N``) that starts with a digit, is longer than 512
characters, or contains whitespace, ``/``, ``\\``, ``:``, ``@``, ``*``, ``?`` or a non-ASCII
character (seen with Son of Grid Engine 8.1.9: "denied: "1abc" is not a valid object name
(cannot start with a digit)", "Colon (':') not allowed in objectname", and for a space or an
accented letter only "Error reading answer list from qmaster"). In ``-o``/``-e`` paths a ``:``
separates a host name, a ``,`` separates several paths and ``$`` starts a pseudo variable
(``$JOB_ID``), and a space ends the directive's argument.

expyre ids are ``<name>_<hash>_<unique>``, where the hash is URL-safe base64 (letters, digits,
``-``, ``_``, ``=``) and the name is whatever the user chose. So a job's name is ``N_<id>``
(the prefix makes the first character a letter, as the seed's header shows), kept exactly when
every character of the id is in :data:`SAFE_CHARACTERS`; otherwise each other character
becomes ``_`` and a digest of the whole id is appended, so that two ids that differ only in
such characters still get different names.
"""
from __future__ import annotations

import hashlib
import re

#: Characters kept as they are in job names and output file names.
SAFE_CHARACTERS = "A-Za-z0-9_.=+-"
_UNSAFE = re.compile(f"[^{SAFE_CHARACTERS}]")
#: Prefix of every job name: a letter first, as Grid Engine requires.
NAME_PREFIX = "N_"
#: Longest job name this plugin writes (Grid Engine allows 512 characters).
MAX_NAME_LENGTH = 200
#: Length of the digest appended to a name that had to be changed.
DIGEST_LENGTH = 10


def digest(text: str) -> str:
    """A short, stable digest of ``text`` (hexadecimal).

    Parameters
    ----------
    text: str
        any text

    Returns
    -------
    str
        the first :data:`DIGEST_LENGTH` hex digits of its SHA-256
    """
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:DIGEST_LENGTH]


def is_safe(text: str) -> bool:
    """True if ``text`` is non-empty and uses only :data:`SAFE_CHARACTERS`."""
    return bool(text) and _UNSAFE.search(text) is None


def job_name(job_id: str) -> str:
    """The Grid Engine job name (``#$ -N``) of the expyre job ``job_id``.

    Parameters
    ----------
    job_id: str
        expyre job id

    Returns
    -------
    str
        ``N_<job_id>`` when that is acceptable to Grid Engine and not longer than
        :data:`MAX_NAME_LENGTH`; otherwise ``N_`` + the id with each unsafe character replaced by
        ``_``, shortened if needed, + ``_`` + a digest of the original id
    """
    name = NAME_PREFIX + job_id
    if is_safe(job_id) and len(name) <= MAX_NAME_LENGTH:
        return name
    cleaned = NAME_PREFIX + _UNSAFE.sub("_", job_id)
    return cleaned[:MAX_NAME_LENGTH - DIGEST_LENGTH - 1] + "_" + digest(job_id)


def output_file(file_name: str) -> str:
    """A file name for ``#$ -o``/``#$ -e`` that Grid Engine takes literally.

    Parameters
    ----------
    file_name: str
        the wanted name, relative to the job's directory (e.g. ``job.<id>.stdout``)

    Returns
    -------
    str
        ``file_name`` itself when it uses only :data:`SAFE_CHARACTERS`; otherwise the name with
        each unsafe character replaced by ``_`` and a digest of the original name inserted
        before its last suffix (``job.my_job_..._<digest>.stdout``)
    """
    if is_safe(file_name) and file_name not in (".", ".."):
        return file_name
    stem, dot, suffix = file_name.rpartition(".")
    if not dot or not stem or _UNSAFE.search(suffix):
        stem, suffix = file_name, ""
    cleaned = _UNSAFE.sub("_", stem)
    return f"{cleaned}_{digest(file_name)}" + (f".{suffix}" if suffix else "")


def stdout_file(job_id: str) -> str:
    """The ``#$ -o`` file of a job whose JobSpec keeps core's default name ``job.<id>.stdout``."""
    return output_file(f"job.{job_id}.stdout")


def stderr_file(job_id: str) -> str:
    """The ``#$ -e`` file of a job whose JobSpec keeps core's default name ``job.<id>.stderr``."""
    return output_file(f"job.{job_id}.stderr")
