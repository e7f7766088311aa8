"""PBS job names and the file names of ``#PBS -o/-e`` directives.

PBS Professional / OpenPBS take a job name of at most 236 letters, digits, ``-``, ``_`` and ``+``
starting with a letter; Torque also wants a letter first. The name is ``N_<id>``, made safe by
:func:`expyre.batch.job_name` (unsafe characters such as base64's ``=`` become ``_`` and a digest
of the whole id is appended, so different ids keep different names).
"""
from __future__ import annotations

from typing import Optional

from expyre import batch
from expyre.header import quoted_directive_value

MAX_NAME_LENGTH = 236
NAME_PREFIX = "N_"
SAFE_CHARACTERS = "A-Za-z0-9_+-"
_PATH_SAFE = r"[A-Za-z0-9_.,=+@%^~!/-]+"


def job_name(expyre_id: str, max_length: int = MAX_NAME_LENGTH) -> str:
    """The PBS job name of an expyre job (a letter first, only characters both dialects take)."""
    return batch.job_name(expyre_id, SAFE_CHARACTERS, NAME_PREFIX, max_length)


def directive_path(path: str) -> Optional[str]:
    """A file name as a ``#PBS -o``/``-e`` value: as it is if safe, else double-quoted; None if it
    cannot be written (the directive is then left out and PBS uses its default file names)."""
    # ":" (PBS reads host:path) and quotes cannot be in a directive path
    return None if not path or ":" in path or "'" in path else quoted_directive_value(path, _PATH_SAFE)
