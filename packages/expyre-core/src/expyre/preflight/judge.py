"""Preflight, comparing the two sides: a call's local record against a job side's report gives
errors (the job could not load its call) and warnings (versions that differ), and the message of
:class:`expyre.errors.ExPyRePreflightError`.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Iterable, List, Optional, Sequence, Tuple

from .probe import Report


@dataclass
class Finding:
    """One thing preflight found: ``module`` (or ``python``), versions on both sides, and what
    it means."""

    module: str
    local: Optional[str]
    remote: Optional[str]
    problem: str
    fix: str = ""


def _major_minor(version: Optional[str]) -> Optional[Tuple[int, int]]:
    try:
        parts = str(version).split(".")
        return int(parts[0]), int(parts[1])
    except (ValueError, IndexError, TypeError):
        return None


def _major(version: Optional[str]) -> Optional[int]:
    try:
        return int(str(version).split(".")[0])
    except ValueError:
        return None


def missing_module_fix(top: str) -> str:
    """What to do about a module the job side lacks, with this module's own names: install it
    there, send it with the job (``input_files``), or have cloudpickle pickle it by value."""
    import os
    from pathlib import Path
    module = sys.modules.get(top)
    where = getattr(module, "__file__", None)
    send = "add it to `input_files`"
    if where:
        path = Path(where)
        path = path.parent if path.name == "__init__.py" else path
        try:
            shown = os.path.relpath(path) if not os.path.relpath(path).startswith("..") else str(path)
        except ValueError:
            shown = str(path)
        send = f"send it with the job: ExPyRe(..., input_files=[{shown!r}])"
    return (f"install {top} in the job environment (after the system's `commands`, for `python_cmd`), or {send}, "
            f"or have cloudpickle put its code into the pickle: import cloudpickle, {top}; "
            f"cloudpickle.register_pickle_by_value({top})")


#: The ``numpy._core`` modules that numpy 1.26 provides as aliases (for numpy 2's pickles);
#: older numpy 1.x has no ``numpy._core`` at all.
NUMPY_126_CORE_ALIASES = frozenset({"multiarray", "umath", "_multiarray_umath", "_internal", "_dtype",
                                    "_dtype_ctypes"})


def _numpy_problem(local: Optional[str], remote: Optional[str], modules: Iterable[str]) -> Optional[str]:
    """Why a numpy-2 pickle naming ``modules`` cannot load under numpy ``remote`` 1.x (None if it can).

    Known from numpy itself: numpy 2 names its internals ``numpy._core.*``; numpy 1.26 aliases
    only a few of them, older 1.x none. Bit generators (``numpy.random._pickle``) pickled by
    one major version are refused by the other.
    """
    if _major(remote) != 1:
        return None
    core = sorted({m for m in modules if m == "numpy._core" or m.startswith("numpy._core.")})
    aliases = NUMPY_126_CORE_ALIASES if _major_minor(remote) >= (1, 26) else frozenset()
    missing = [m for m in core if m.partition("numpy._core.")[2].partition(".")[0] not in aliases]
    if missing:
        return (f"the pickles name {', '.join(missing)} (numpy 2's internals), which numpy {remote} on the "
                "job side does not have")
    if _major(local) not in (None, 1) and any(m.startswith("numpy.random._pickle") for m in modules):
        return "a numpy 2 random generator cannot be loaded by numpy 1.x"
    return None


def assess(record: dict, report: Report) -> Tuple[List[Finding], List[Finding]]:
    """``(errors, warnings)`` for a call recorded by :func:`local_record` on a job side that
    reported ``report``.

    Errors (the job could not load its call): the job's Python did not start; a module the
    pickles name does not import; the pickles need numpy 2 internals the job side's numpy 1.x lacks
    (:func:`_numpy_problem`); code pickled by value (cloudpickle) for another Python major.minor; a
    job-side Python older than 3.8 (no pickle protocol 5). Warnings: any other difference of
    versions, and ``commands`` lines that failed.
    """
    errors: List[Finding] = []
    notes: List[Finding] = []
    local_python = record.get("python")
    if report.python is None:
        errors.append(Finding("python", local_python, None,
                              "the job side's Python did not answer: " + (report.output[-800:] or "no output"),
                              "check `python_cmd` and the system's `commands` (run `xpr check`)"))
        return errors, notes
    for label, rc in report.failed_commands:
        which, _, line = label.partition(":")
        where = "the system's `commands`" if which == "commands" else "the job's `pre_run_commands` and `env_vars`"
        notes.append(Finding(label, None, None, f"line {line} of {where} exited with status {rc}",
                             "fix that line (`xpr check` runs the system's `commands`)"))
    if _major_minor(report.python) is not None and _major_minor(report.python) < (3, 8):
        errors.append(Finding("python", local_python, report.python, "the job side's Python is older than 3.8 and "
                              "cannot read pickle protocol 5", "use a Python >= 3.8 as `python_cmd`"))
    elif _major_minor(report.python) != _major_minor(local_python):
        finding = Finding("python", local_python, report.python, "Python major.minor differs")
        if record.get("by_value"):
            finding.problem += (" and cloudpickle pickled code by value (a lambda, a function of __main__ or "
                                "a registered module), whose bytecode only the same major.minor can load")
            finding.fix = (f"run the job with a Python {'.'.join(map(str, _major_minor(local_python) or ()))} "
                           "(`python_cmd`), or define the function in a module installed on both sides")
            errors.append(finding)
        else:
            notes.append(finding)
    full_modules = record.get("modules") or []
    for top, local in sorted((record.get("versions") or {}).items()):
        remote = report.modules.get(top)
        if remote is None:
            continue
        if not remote.get("ok"):
            errors.append(Finding(top, local, None, f"does not import on the job side ({remote.get('error')})",
                                  missing_module_fix(top)))
            continue
        rversion = remote.get("version")
        numpy_problem = _numpy_problem(local, rversion, full_modules) if top == "numpy" else None
        if numpy_problem:
            errors.append(Finding(top, local, rversion, numpy_problem,
                                  f"install numpy {_major(local)}.x in the job environment (or numpy "
                                  f"{_major(rversion)}.x here)"))
        elif local and rversion and local != rversion:
            notes.append(Finding(top, local, rversion, "versions differ"))
    return errors, notes


def error_message(system_name: str, errors: Sequence[Finding], report: Report) -> str:
    """The one message of :class:`ExPyRePreflightError`."""
    where = f"system '{system_name}'" + (f" ({report.executable})" if report.executable else "")
    lines = [f"preflight: the job side of {where} could not run this call; nothing was queued:"]
    for f in errors:
        lines.append(f"  - {f.module}: {f.problem}; here {f.local or 'unknown'}, on {system_name} "
                     f"{f.remote or 'not available'}. Fix: {f.fix}")
    lines.append("(ExPyRe(..., preflight=False), start(preflight=False) or `\"preflight\": false` in the "
                 "system's config turn this check off.)")
    return "\n".join(lines)
