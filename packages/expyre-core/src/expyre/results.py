"""Reading a job's outcome from the marker files in its stage directory."""
from __future__ import annotations

import pickle
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Tuple

from . import jobfiles
from .errors import ExPyReRemoteEnvironmentError, ExPyReRemoteTraceback


@dataclass
class Outcome:
    """What a finished job left behind.

    ``kind`` is ``succeeded`` (``value`` holds the result), ``exception`` (``exception`` and
    ``traceback`` hold what the function raised), or ``load``, ``result`` or ``exit`` (the job
    failed outside the function; ``message`` says how).
    """

    kind: str
    value: Any = None
    exception: Optional[BaseException] = None
    traceback: str = ""
    message: str = ""


def _read_text(path: Path) -> Optional[str]:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return None


def finished_kind(stage_dir: Path) -> Optional[str]:
    """``succeeded`` or ``failed`` from the markers alone (nothing is unpickled), None if unfinished."""
    if (stage_dir / jobfiles.SUCCEEDED).exists():
        return "succeeded"
    if (stage_dir / jobfiles.ERROR).exists():
        return "failed"
    return None


def read_outcome(stage_dir: Path) -> Optional[Outcome]:
    """The job's outcome, or None if it has not finished (no marker yet)."""
    succeeded = stage_dir / jobfiles.SUCCEEDED
    if succeeded.exists():
        with open(succeeded, "rb") as fin:
            data = fin.read()
        if data == b"CLEANED\n":
            raise RuntimeError(f"the result in {succeeded} was cleaned")
        return Outcome("succeeded", value=pickle.loads(data))
    error_text = _read_text(stage_dir / jobfiles.ERROR)
    if error_text is None:
        return None
    first, _, rest = error_text.partition("\n")
    kind = first[len("kind: "):] if first.startswith("kind: ") else "exit"
    if kind == "exception":
        exc, text = _load_exception(stage_dir, rest)
        return Outcome("exception", exception=exc, traceback=text, message=rest)
    return Outcome(kind, message=rest if first.startswith("kind: ") else error_text)


def _load_exception(stage_dir: Path, fallback_text: str) -> Tuple[BaseException, str]:
    path = stage_dir / jobfiles.EXCEPTION
    try:
        with open(path, "rb") as fin:
            exc, text = pickle.load(fin)
        return exc, text
    except Exception as load_error:
        summary = fallback_text.strip().splitlines()[-1] if fallback_text.strip() else "unknown error"
        return RuntimeError(f"remote exception could not be unpickled here ({load_error}): {summary}"), fallback_text


def read_outputs(stage_dir: Path, job_id: str) -> Tuple[Optional[str], ...]:
    """``(stdout, stderr, job_stdout, job_stderr)``: the function's and the job script's output."""
    return (_read_text(stage_dir / jobfiles.STDOUT), _read_text(stage_dir / jobfiles.STDERR),
            _read_text(stage_dir / jobfiles.job_stdout(job_id)), _read_text(stage_dir / jobfiles.job_stderr(job_id)))


def raise_remote_exception(outcome: Outcome, job_id: str) -> None:
    """Re-raise the function's exception here, with the remote traceback attached.

    The remote traceback is the exception's ``__cause__`` (so it is printed above the local
    one) and, on Python 3.11+, also a note on the exception.
    """
    exc = outcome.exception
    header = f"remote traceback of expyre job {job_id}:\n"
    if sys.version_info >= (3, 11):
        exc.add_note(header + outcome.traceback.rstrip())
    raise exc from ExPyReRemoteTraceback(header + outcome.traceback.rstrip())


def raise_load_error(outcome: Outcome, job_id: str) -> None:
    """Raise the error for a job whose remote Python could not load the pickled call."""
    raise ExPyReRemoteEnvironmentError(f"job {job_id}: {outcome.message.strip()}")
