"""Reading a job's outcome from the marker files in its stage directory."""
from __future__ import annotations

import importlib
import linecache
import pickle
import re
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, List, Optional, Tuple

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
    stage_dir: Optional[Path] = None


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
        return Outcome("exception", exception=exc, traceback=text, message=rest, stage_dir=stage_dir)
    return Outcome(kind, message=rest if first.startswith("kind: ") else error_text, stage_dir=stage_dir)


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


def describe_outputs(stage_dir: Optional[Path], job_id: str, last_lines: int = 5, say_if_none: bool = True) -> str:
    """What the job printed, for an error message: each output file that exists and is not
    empty, with its path and its last lines; a sentence saying there is none otherwise.

    The function's own stdout/stderr come first, then the job script's (where the scheduler
    and the shell report kills, time limits and missing commands).
    """
    if stage_dir is None:
        return ""
    parts = []
    for label, name in (("function stdout", jobfiles.STDOUT), ("function stderr", jobfiles.STDERR),
                        ("job stdout", jobfiles.job_stdout(job_id)), ("job stderr", jobfiles.job_stderr(job_id))):
        text = _read_text(stage_dir / name)
        if not text or not text.strip():
            continue
        lines = text.rstrip("\n").splitlines()
        shown = lines[-last_lines:]
        cut = f"last {len(shown)} of {len(lines)} lines" if len(lines) > len(shown) else "all of it"
        parts.append(f"{label}, {stage_dir / name} ({cut}):\n" + "\n".join("    " + line for line in shown))
    if not parts:
        if not say_if_none:
            return ""
        return f"the job printed nothing (no output files with content in {stage_dir})"
    return "\n".join(parts)


#: A traceback frame of a function that cloudpickle pickled by value: it drops the file name.
_DYNAMIC_FRAME = re.compile(r'^(?P<indent>\s*)File "<dynamic-code>", line (?P<line>\d+), in (?P<name>\S+)$')


def _code_objects(code: types.CodeType) -> Iterator[types.CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_objects(const)


def _by_value_modules() -> List[types.ModuleType]:
    """The modules whose functions cloudpickle pickles by value: ``__main__`` and registered ones."""
    modules = [sys.modules.get("__main__")]
    try:
        from cloudpickle import cloudpickle as _cp
        modules += [sys.modules.get(name) for name in getattr(_cp, "_PICKLE_BY_VALUE_MODULES", ())]
    except ImportError:  # pragma: no cover - cloudpickle is a dependency
        pass
    return [m for m in modules if m is not None]


def _local_file_of(name: str, line: int) -> Optional[str]:
    """The file of the one function named ``name`` whose lines include ``line``, among the
    functions of the modules pickled by value (where the job's function comes from)."""
    found = set()
    for module in _by_value_modules():
        for value in list(vars(module).values()):
            candidates = [value] + (list(vars(value).values()) if isinstance(value, type) else [])
            for obj in candidates:
                code = getattr(obj, "__code__", None)
                if not isinstance(code, types.CodeType):
                    continue
                for inner in _code_objects(code):
                    if inner.co_name != name:
                        continue
                    lines = [n for _, _, n in inner.co_lines() if n is not None] if hasattr(inner, "co_lines") else []
                    if line in lines or (not lines and inner.co_firstlineno <= line):
                        found.add(inner.co_filename)
    return found.pop() if len(found) == 1 else None


def locate_dynamic_frames(text: str) -> str:
    """Put the real file (and its source line) into frames cloudpickle wrote as ``<dynamic-code>``.

    cloudpickle keeps a by-value function's line numbers but not its file name; the function
    was defined in this process (usually the script that created the job), so the file is
    found here. Frames that cannot be matched to exactly one local function stay as they are.
    """
    out = []
    for line in text.splitlines():
        match = _DYNAMIC_FRAME.match(line)
        filename = _local_file_of(match["name"], int(match["line"])) if match else None
        if filename is None:
            out.append(line)
            continue
        out.append(f'{match["indent"]}File "{filename}", line {match["line"]}, in {match["name"]}')
        source = linecache.getline(filename, int(match["line"])).strip()
        if source:
            out.append(f"{match['indent']}    {source}")
    return "\n".join(out)


_MISSING_MODULE = re.compile(r"No module named '([^']+)'")


def missing_module_hint(text: str) -> str:
    """Advice when the remote side lacked a module: ship it, or pickle it by value; '' otherwise."""
    match = _MISSING_MODULE.search(text)
    if match is None:
        return ""
    module = match.group(1)
    top = module.split(".")[0]
    return (f"The remote Python has no module '{module}'. If it is a module of your own (a local "
            f"{top}.py or package), either send it with the job, ExPyRe(..., input_files=['{top}.py']) "
            f"(the job's directory is on the remote sys.path), or pickle it with the job by value: "
            f"import cloudpickle, {top}; cloudpickle.register_pickle_by_value({top}) before creating the "
            f"job. If it is an installed package, install it in the remote environment.")


def raise_remote_exception(outcome: Outcome, job_id: str) -> None:
    """Re-raise the function's exception here, with the remote traceback attached once.

    The remote traceback (with the real file of each frame of a function pickled by value) is
    the exception's ``__cause__``, so Python prints it above the local one. On Python 3.11+ a
    short note under the exception says where the job's output is.
    """
    exc = outcome.exception
    traceback_text = locate_dynamic_frames(outcome.traceback.rstrip())
    hint = missing_module_hint(f"{type(exc).__name__}: {exc}") if isinstance(exc, ImportError) else ""
    outputs = describe_outputs(outcome.stage_dir, job_id, say_if_none=False)
    cause_text = f"remote traceback of expyre job {job_id}:\n{traceback_text}"
    if hint:
        cause_text += "\n" + hint
    if sys.version_info >= (3, 11):
        note = f"raised by the function of expyre job {job_id} (its remote traceback is printed above)"
        if hint:
            note += "\n" + hint
        if outputs:
            note += "\n" + outputs
        exc.add_note(note)
    elif outputs:
        cause_text += "\n" + outputs
    raise exc from ExPyReRemoteTraceback(cause_text)


def raise_load_error(outcome: Outcome, job_id: str) -> None:
    """Raise the error for a job whose remote Python could not load the pickled call."""
    message = outcome.message.strip()
    hint = missing_module_hint(message.splitlines()[0] if message else "")
    raise ExPyReRemoteEnvironmentError(f"job {job_id}: {message}" + (f"\n{hint}" if hint else ""))
