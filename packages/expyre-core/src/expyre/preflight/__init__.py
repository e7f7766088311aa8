"""Preflight: does the job side have what the pickled call needs, before anything is queued?

A job that sits in a queue for hours and then dies because the job side cannot unpickle its
call (a module missing, numpy 1.x there and 2.x here, another Python minor version for code
pickled by value) is the most expensive failure of remote execution. Before the first
submission to a system in a process, core runs ONE command on the job side, the same way the
job script runs (``<script_exec> -l``, the system's ``commands``, then ``python_cmd``), that
reports the Python version and, for each top-level module the pickles name, whether it imports
and its version. What it reports is kept per system in this process and in the jobs database
for :data:`CACHE_TTL_S`, so a loop of 1,000 jobs pays for one round trip.

Which modules a call needs is read from the pickles themselves (:func:`scan_pickle`: the
``GLOBAL``/``STACK_GLOBAL`` opcodes), so nothing is guessed; ``stage.write_task`` records them,
with the local versions, in the job's staged task file.

:func:`assess` turns a local record and a job-side report into errors (the submission stops
with :class:`expyre.errors.ExPyRePreflightError`) and warnings (one per system and module per
process). ``xpr check`` (:mod:`expyre.check`) runs the same probe.
"""
from __future__ import annotations

import json
import threading
import warnings
from typing import Dict, Iterable, Optional, Sequence, Set, Tuple

from ..errors import ExPyRePreflightError
from . import probe as _probe
from .judge import NUMPY_126_CORE_ALIASES, Finding, assess, error_message, missing_module_fix
from .probe import PROBE_SOURCE, PROBE_TIMEOUT_S, Report, default_python_cmd, parse_probe, probe_command, run_probe
from .scan import ALWAYS_THERE, Scan, local_record, local_version, scan_pickle, top_level

__all__ = ["CACHE_TTL_S", "PROBE_TIMEOUT_S", "ALWAYS_THERE", "PROBE_SOURCE", "NUMPY_126_CORE_ALIASES",
           "Scan", "scan_pickle", "top_level", "local_version", "local_record", "Report", "default_python_cmd",
           "probe_command", "parse_probe", "run_probe", "probe_count", "Finding", "missing_module_fix", "assess",
           "error_message", "PreflightWarning", "probe_key", "cached_report", "fresh_report", "check_call",
           "enabled", "forget"]

#: Seconds a job-side report kept in the jobs database is trusted.
CACHE_TTL_S = 24 * 3600


def __getattr__(name: str):
    # the number of probes made by this process lives with the probe (expyre.preflight.probe)
    if name == "probe_count":
        return _probe.probe_count
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_lock = threading.Lock()
#: (system, probe key) -> Report, for this process
_reports: Dict[Tuple[str, str], Report] = {}
#: (system, module) pairs already warned about in this process
_warned: Set[Tuple[str, str]] = set()
#: keys of ``_reports`` whose report this process probed itself (never probed again for an error)
_probed_here: Set[Tuple[str, str]] = set()


class PreflightWarning(UserWarning):
    """The job side differs from here in a way that usually still works (another version)."""


def probe_key(system, python_cmd: str, job_setup: Sequence[str] = ()) -> str:
    """What a cached report depends on besides the system's name: how the job's Python is reached."""
    return json.dumps([system.host, system.script_exec, list(system.commands), python_cmd, list(job_setup)])


def _db():
    from .. import config
    return config.db


def cached_report(system, python_cmd: str, needed: Iterable[str], job_setup: Sequence[str] = ()) -> Optional[Report]:
    """A report that covers ``needed`` modules, from this process or from the jobs database."""
    key = (system.name, probe_key(system, python_cmd, job_setup))
    needed = set(needed)
    report = _reports.get(key)
    if report is None:
        text = _db().preflight_get(system.name, key[1], max_age=CACHE_TTL_S)
        if text is not None:
            try:
                report = Report.from_json(text)
            except (ValueError, TypeError):
                report = None
        if report is not None:
            _reports[key] = report
    if report is not None and report.python is not None and needed <= set(report.modules):
        return report
    return None


def fresh_report(system, python_cmd: str, needed: Iterable[str], job_setup: Sequence[str] = ()) -> Report:
    """Probe the job side for ``needed`` (and whatever an earlier report covered), and keep it."""
    key = (system.name, probe_key(system, python_cmd, job_setup))
    modules = set(needed) | {"cloudpickle"}
    earlier = _reports.get(key)
    if earlier is not None:
        modules |= set(earlier.modules)
    report = run_probe(system, python_cmd, modules, job_setup)
    _reports[key] = report
    _probed_here.add(key)
    if report.python is not None:
        _db().preflight_put(system.name, key[1], report.to_json(), report.checked_at)
    return report


def check_call(system, record: dict, python_cmd: Optional[str] = None, job_setup: Sequence[str] = (),
               provided: Iterable[str] = ()) -> None:
    """Stop a submission whose call the job side of ``system`` cannot load.

    ``job_setup`` are the job's own shell lines before its Python (``pre_run_commands``, then the
    ``env_vars`` exports), run by the probe too; ``provided`` are top-level modules the job brings
    along in its directory (``input_files``), which are not asked about. Uses a cached report
    when one covers the call's modules (no round trip); otherwise one round trip. A cached
    report that finds an error is confirmed by a fresh one (the user may have fixed the job
    side since).

    Raises
    ------
    ExPyRePreflightError
        naming module, local and remote versions, the system and the fix
    """
    python_cmd = python_cmd or default_python_cmd(system)
    job_setup = list(job_setup)
    provided = set(provided)
    record = dict(record, versions={k: v for k, v in (record.get("versions") or {}).items() if k not in provided})
    needed = list(record["versions"])
    with _lock:
        report = cached_report(system, python_cmd, needed, job_setup)
        errors, notes = assess(record, report) if report is not None else ([None], [])
        if errors and (report is None or (system.name, probe_key(system, python_cmd, job_setup)) not in _probed_here):
            report = fresh_report(system, python_cmd, needed, job_setup)
            errors, notes = assess(record, report)
        for note in notes:
            if (system.name, note.module) in _warned:  # once per system and module per process
                continue
            _warned.add((system.name, note.module))
            versions = f" (here {note.local}, on {system.name} {note.remote})" if note.local or note.remote else ""
            warnings.warn(f"preflight, system '{system.name}': {note.module}: {note.problem}{versions}"
                          + (f". {note.fix}" if note.fix else ""), PreflightWarning, stacklevel=4)
    if errors:
        raise ExPyRePreflightError(error_message(system.name, errors, report), system=system.name,
                                   findings=errors)


def enabled(system, requested: Optional[bool]) -> bool:
    """Whether to run preflight: an explicit ``preflight=`` wins, else the system's config."""
    if requested is not None:
        return bool(requested)
    return bool(getattr(system, "preflight", True))


def forget() -> None:
    """Forget this process's reports and warnings (tests; after changing a job side by hand)."""
    with _lock:
        _reports.clear()
        _warned.clear()
        _probed_here.clear()
