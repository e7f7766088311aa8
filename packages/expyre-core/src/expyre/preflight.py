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

import functools
import json
import pickletools
import platform
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from typing import Dict, FrozenSet, Iterable, List, Optional, Sequence, Set, Tuple

from .errors import ExPyRePreflightError
from .hooktypes import quote

#: Seconds a job-side report kept in the jobs database is trusted.
CACHE_TTL_S = 24 * 3600

#: Seconds the probe may take (a slow shared file system may take a while to import numpy).
PROBE_TIMEOUT_S = 300.0

#: Top-level modules never checked: always there (``builtins``, pickle's own helpers) or pickled
#: by value (``__main__``).
ALWAYS_THERE = frozenset({"builtins", "__builtin__", "__main__", "copyreg", "copy_reg", "_codecs"})

_MARKER = "EXPYRE-PREFLIGHT-REPORT "
_COMMAND_FAILED = "EXPYRE-PREFLIGHT-COMMAND-FAILED "

#: Runs on the job side with the job's Python: the standard library only, any Python 3.
PROBE_SOURCE = r'''
import importlib, json, sys
out = {"python": "%d.%d.%d" % tuple(sys.version_info[:3]), "executable": sys.executable, "modules": {}}
for name in sys.argv[1:]:
    try:
        module = importlib.import_module(name)
    except BaseException as exc:
        out["modules"][name] = {"ok": False, "error": "%s: %s" % (type(exc).__name__, exc)}
        continue
    version = getattr(module, "__version__", None)
    if not isinstance(version, str):
        try:
            from importlib import metadata
            version = metadata.version(name)
        except BaseException:
            version = None
    out["modules"][name] = {"ok": True, "version": version}
sys.stdout.write("\nEXPYRE-PREFLIGHT-REPORT " + json.dumps(out) + "\n")
'''


# =========================================================================== the local side

@dataclass
class Scan:
    """What one pickle refers to: full module names of its globals, and whether cloudpickle
    pickled code by value (then the job side's Python must have the same major.minor)."""

    modules: Set[str] = field(default_factory=set)
    by_value: bool = False


def scan_pickle(data: bytes) -> Scan:
    """The modules the globals of a pickle come from, without loading it.

    ``GLOBAL`` carries ``"module name"``; ``STACK_GLOBAL`` takes module and name from the two
    values below it on the stack, which are string pushes or memo gets of strings put there
    earlier (a pickler memoizes repeated module names): both are tracked. A map of 1,000 calls
    pickles one function 1,000 times: small pickles seen before are not scanned again.
    """
    data = bytes(data)
    modules, by_value = _scan_small(data) if len(data) <= _CACHED_SCAN_MAX else _scan(data)
    return Scan(set(modules), by_value)


#: Largest pickle whose scan is remembered (a cache of large arguments would hold their memory).
_CACHED_SCAN_MAX = 1 << 16


def _scan(data: bytes) -> Tuple[FrozenSet[str], bool]:
    scan = Scan()
    memo: Dict[int, object] = {}
    recent: List[object] = []  # the values pushed most recently (enough for STACK_GLOBAL)
    for opcode, arg, _pos in pickletools.genops(data):
        name = opcode.name
        if name in ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE",
                    "SHORT_BINSTRING", "BINSTRING", "STRING"):
            recent.append(arg)
        elif name in ("BINGET", "LONG_BINGET", "GET"):
            recent.append(memo.get(int(arg)))
        elif name in ("BINPUT", "LONG_BINPUT", "PUT"):
            memo[int(arg)] = recent[-1] if recent else None
        elif name == "MEMOIZE":
            memo[len(memo)] = recent[-1] if recent else None
        elif name == "STACK_GLOBAL":
            module = recent[-2] if len(recent) >= 2 else None
            if isinstance(module, str):
                scan.modules.add(module)
            recent.append(None)
        elif name in ("GLOBAL", "INST"):
            module = str(arg).partition(" ")[0]
            scan.modules.add(module)
            recent.append(None)
        else:
            recent.append(None)
        del recent[:-4]
    by_value = any(m == "cloudpickle" or m.startswith("cloudpickle.") for m in scan.modules)
    return frozenset(scan.modules), by_value


_scan_small = functools.lru_cache(maxsize=256)(_scan)


def top_level(modules: Iterable[str]) -> List[str]:
    """Top-level package names of ``modules``, without those that never need checking."""
    return sorted({m.partition(".")[0] for m in modules} - ALWAYS_THERE)


@functools.lru_cache(maxsize=1)
def _packages_distributions() -> Dict[str, List[str]]:
    try:
        from importlib import metadata
        return dict(metadata.packages_distributions())  # Python >= 3.10
    except Exception:
        return {}


def local_version(top: str) -> Optional[str]:
    """The version of the installed top-level module ``top`` here: its ``__version__``, else
    its distribution's version (``importlib.metadata``); None if neither is known."""
    module = sys.modules.get(top)
    version = getattr(module, "__version__", None)
    if isinstance(version, str):
        return version
    from importlib import metadata
    for dist in _packages_distributions().get(top, [top]):
        try:
            return metadata.version(dist)
        except Exception:
            continue
    return None


def local_record(scans: Sequence[Scan]) -> dict:
    """What ``stage.write_task`` records about the call: Python version, the full module names
    the pickles refer to, whether code was pickled by value, and the local versions of their
    top-level modules."""
    modules = set().union(*(s.modules for s in scans)) if scans else set()
    tops = top_level(modules)
    return {"python": platform.python_version(), "modules": sorted(modules),
            "by_value": any(s.by_value for s in scans),
            "versions": {top: local_version(top) for top in tops}}


# =========================================================================== the job side

@dataclass
class Report:
    """What the job side reported: its Python, each module (``{"ok", "version"|"error"}``),
    the ``commands`` lines that failed (1-based line, exit status), and its raw output when no
    report came back at all."""

    python: Optional[str]
    modules: Dict[str, dict]
    failed_commands: List[Tuple[str, int]] = field(default_factory=list)
    executable: Optional[str] = None
    output: str = ""
    checked_at: float = field(default_factory=time.time)

    def to_json(self) -> str:
        return json.dumps({"python": self.python, "modules": self.modules, "executable": self.executable,
                           "failed_commands": self.failed_commands, "checked_at": self.checked_at})

    @classmethod
    def from_json(cls, text: str) -> Report:
        data = json.loads(text)
        return cls(python=data.get("python"), modules=data.get("modules") or {},
                   failed_commands=[tuple(x) for x in data.get("failed_commands") or []],
                   executable=data.get("executable"), checked_at=float(data.get("checked_at") or 0))


def default_python_cmd(system) -> str:
    """``python_cmd`` as :meth:`expyre.system.System.job_script` defaults it."""
    return quote(sys.executable) if system.host is None else "python3"


def probe_command(system, python_cmd: str, modules: Iterable[str], job_setup: Sequence[str] = ()) -> str:
    """The one command that asks the job side about ``modules``, run as the job script runs:
    the job script's interpreter as a login shell (as its ``#!... -l``), the system's
    ``commands``, then ``job_setup`` (a job's ``pre_run_commands`` and ``env_vars`` exports) in an
    empty private directory that is removed afterwards, then ``python_cmd`` running
    :data:`PROBE_SOURCE`. The failure of each line is reported (``commands:N``,
    ``pre_run_commands:N``)."""
    lines = ['cd "$HOME" 2>/dev/null']

    def add(label: str, command: str) -> None:
        lines.append(command)
        lines.append(f'_xpr_rc=$?; [ "$_xpr_rc" -eq 0 ] || echo "{_COMMAND_FAILED}{label} $_xpr_rc"')

    for i, command in enumerate(system.commands, 1):
        add(f"commands:{i}", command)
    if job_setup:
        lines.append('_xpr_pd=$(umask 077 && mktemp -d) && cd "$_xpr_pd"')
        for i, command in enumerate(job_setup, 1):
            add(f"pre_run_commands:{i}", command)
    lines.append(f"{python_cmd} -c {quote(PROBE_SOURCE)} {' '.join(quote(m) for m in sorted(set(modules)))}")
    if job_setup:
        lines.append('cd / && rm -rf "$_xpr_pd"')
    body = "\n".join(lines)
    return f"{quote(system.script_exec)} -l -c {quote(body)} < /dev/null 2>&1"


def parse_probe(output: str) -> Report:
    """The :class:`Report` in the probe's output (``python`` None when the Python never answered)."""
    failed = []
    report = None
    for line in output.splitlines():
        if line.startswith(_COMMAND_FAILED):
            parts = line[len(_COMMAND_FAILED):].split()
            if len(parts) == 2 and parts[1].isdigit():
                failed.append((parts[0], int(parts[1])))
        elif line.startswith(_MARKER):
            try:
                report = json.loads(line[len(_MARKER):])
            except ValueError:
                report = None
    if report is None:
        return Report(python=None, modules={}, failed_commands=failed, output=output.strip())
    return Report(python=report.get("python"), modules=report.get("modules") or {}, failed_commands=failed,
                  executable=report.get("executable"))


def run_probe(system, python_cmd: str, modules: Iterable[str], job_setup: Sequence[str] = ()) -> Report:
    """Run the probe on ``system`` (one round trip through its shell)."""
    result = system.shell.run(probe_command(system, python_cmd, modules, job_setup), check=False,
                              timeout=PROBE_TIMEOUT_S)
    report = parse_probe(result.stdout + ("\n" + result.stderr if result.stderr else ""))
    global probe_count
    probe_count += 1
    return report


#: Round trips made by this process (tests and benchmarks count them).
probe_count = 0


# =========================================================================== judging

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


# =========================================================================== caching and the check

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
    from . import config
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
