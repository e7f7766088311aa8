"""Reading a job's outcome from the marker files in its stage directory."""
from __future__ import annotations

import importlib
import pickle
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Tuple

from . import jobfiles
from .errors import ExPyReRemoteEnvironmentError, ExPyReRemoteTraceback


class ExPyReUnpickleError(RuntimeError):
    """A job's result could not be unpickled on this (the submitting) side: a module it needs
    is missing here, or is an incompatible version."""


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
            if fin.read(len(b"CLEANED\n") + 1) == b"CLEANED\n":
                raise RuntimeError(f"the result in {succeeded} was cleaned")
            fin.seek(0)
            return Outcome("succeeded", value=_load_result(fin, succeeded))
    error_text = _read_text(stage_dir / jobfiles.ERROR)
    if error_text is None:
        return None
    first, _, rest = error_text.partition("\n")
    kind = first[len("kind: "):] if first.startswith("kind: ") else "exit"
    if kind == "exception":
        exc, text = _load_exception(stage_dir, rest)
        return Outcome("exception", exception=exc, traceback=text, message=rest)
    return Outcome(kind, message=rest if first.startswith("kind: ") else error_text)


def _load_result(fin, path: Path) -> Any:
    """Unpickle the job's result from the open file (read as it goes, not copied first); a
    failure names this end, the module and the local version of its package."""
    try:
        return pickle.load(fin)
    except Exception as exc:
        raise ExPyReUnpickleError(
            f"the job's result in {path} was pickled on the job side and cannot be unpickled here "
            f"(local Python {sys.version.split()[0]}, {sys.executable}): {type(exc).__name__}: {exc}"
            f"{_module_versions_note(exc)}. The local environment must provide the modules the result "
            "needs, in versions compatible with the job side's") from exc


def _module_versions_note(exc: BaseException) -> str:
    """``; module numpy._core: package numpy 1.26.4 here`` for an import failure, else empty."""
    module = getattr(exc, "name", None) if isinstance(exc, ImportError) else None
    if not module:
        return ""
    top = module.partition(".")[0]
    try:
        version = getattr(importlib.import_module(top), "__version__", "unknown version")
    except Exception:
        version = "not installed"
    return f"; module {module}: package {top} {version} here"


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
