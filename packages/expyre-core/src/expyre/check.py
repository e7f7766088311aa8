"""``xpr check``: a checklist for a configured system, before anything is queued on it.

Each line is a :class:`~expyre.hooktypes.CheckResult` (✓ or ✗, with the fix): the login (and
the host key), the run directory (writable, private), the scheduler's own checks (its
``check_system`` hook: commands present and answering, partitions as configured), the system's
``commands``, and the job's Python with cloudpickle and the modules asked for, found by the same
probe preflight runs (:mod:`expyre.preflight`).
"""
from __future__ import annotations

import json
from typing import Dict, List, Optional, Sequence

from . import plugins, preflight
from .hooktypes import CheckResult, quote


def check_system(system, modules: Sequence[str] = (), python_cmd: Optional[str] = None) -> List[CheckResult]:
    """Every check of ``system``; stops after a failed login (nothing else can run)."""
    where = system.host or "this machine"
    try:
        shell = system.shell
        shell.run("true", timeout=60)
    except Exception as exc:  # the transport says what failed: host key, key file, unreachable host
        return [CheckResult(f"login to {where}", False, _one_line(exc),
                            "check host, user and key (ssh -v HOST); for an unknown host key, compare its "
                            "fingerprint with the site's and add it (ssh HOST once, or ssh-keyscan HOST >> "
                            "~/.ssh/known_hosts)")]
    results = [CheckResult(f"login to {where}", True, f"via {system.transport}" if system.host else "")]
    results.append(_rundir_check(system, shell))
    try:
        scheduler_results = plugins.check_system(system.scheduler, system.partitions, shell, system=system)
    except Exception as exc:
        scheduler_results = [CheckResult(f"scheduler {system.scheduler}", False, _one_line(exc),
                                         "see the message; `xpr check` runs the scheduler's own commands")]
    if scheduler_results is None:
        results.append(CheckResult(f"scheduler {system.scheduler}", True, "(its plugin offers no checks)"))
    else:
        results.extend(scheduler_results)
    results.extend(environment_checks(system, modules, python_cmd))
    return results


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:400]}"


def _rundir_check(system, shell) -> CheckResult:
    if system.runs_in_stage_dir:
        # each job runs in its own stage directory, which expyre creates private (0700) whatever
        # the mode of the directory that holds them
        import os
        from . import config
        path = config.local_stage_dir
        ok = os.access(path, os.W_OK | os.X_OK)
        return CheckResult("run directory", ok, f"jobs run in private (0700) stage directories under {path}"
                           + ("" if ok else ", which is not writable"),
                           "" if ok else f"make {path} writable, or set local_stage_dir in the config")
    rundir = system.remote_rundir
    target = rundir if rundir.startswith("/") else f'"$HOME"/{quote(rundir)}'
    # created as expyre creates it (private), so that only a directory that was already there
    # with other permissions is reported
    result = shell.run(f"(umask 077 && mkdir -p {target}) && test -w {target} && stat -c %a {target}",
                       check=False, timeout=60)
    if result.returncode != 0:
        return CheckResult("run directory", False, f"{rundir}: {(result.stderr or result.stdout).strip()[:200]}",
                           "choose a writable rundir in the config, or create it")
    mode = int(result.stdout.strip().splitlines()[-1], 8)
    if mode & 0o077:
        return CheckResult("run directory", False, f"{rundir} has mode {mode:o}: others can read the jobs",
                           f"chmod 700 {rundir} on {system.host or 'this machine'}")
    return CheckResult("run directory", True, f"{rundir} writable, mode {mode:o}")


def environment_checks(system, modules: Sequence[str] = (), python_cmd: Optional[str] = None) -> List[CheckResult]:
    """The system's ``commands`` and the job's Python, cloudpickle and ``modules``: one round
    trip of the preflight probe."""
    python_cmd = python_cmd or preflight.default_python_cmd(system)
    report = preflight.run_probe(system, python_cmd, ["cloudpickle", *modules])
    results = []
    failed = {int(label.partition(":")[2]): rc for label, rc in report.failed_commands
              if label.startswith("commands:") and label.partition(":")[2].isdigit()}
    for i, command in enumerate(system.commands, 1):
        if i in failed:
            results.append(CheckResult(f"commands line {i}", False, f"{command!r} exited with status {failed[i]}",
                                       "fix or remove that line of the system's `commands`"))
    if system.commands and not failed:
        results.append(CheckResult("commands", True, f"{len(system.commands)} line(s) ran without error"))
    if report.python is None:
        results.append(CheckResult(f"Python ({python_cmd})", False, report.output[-300:] or "no answer",
                                   "set python_cmd (start(python_cmd=...)) or the system's `commands` so that "
                                   "the job finds a Python 3"))
        return results
    results.append(CheckResult(f"Python ({python_cmd})", True, f"{report.python} at {report.executable}"))
    for name in ["cloudpickle", *modules]:
        info = report.modules.get(name, {})
        if info.get("ok"):
            results.append(CheckResult(name, True, info.get("version") or "(no version)"))
        else:
            results.append(CheckResult(name, False, f"does not import: {info.get('error', 'not checked')}",
                                       f"install {name} in the job's environment (e.g. "
                                       f"{python_cmd} -m pip install {name}, after the system's `commands`)"))
    return results


def render(results_by_system: Dict[str, List[CheckResult]]) -> str:
    """The checklist as a terminal shows it."""
    lines = []
    for name, results in results_by_system.items():
        lines.append(f"system {name}")
        for r in results:
            lines.append(f"  {'✓' if r.ok else '✗'} {r.name}" + (f": {r.detail}" if r.detail else ""))
            if not r.ok and r.fix:
                lines.append(f"      fix: {r.fix}")
    failed = sum(not r.ok for results in results_by_system.values() for r in results)
    lines.append(f"{failed} problem(s) found" if failed else "all checks passed")
    return "\n".join(lines)


def as_json(results_by_system: Dict[str, List[CheckResult]]) -> str:
    return json.dumps({name: [{"name": r.name, "ok": r.ok, "detail": r.detail, "fix": r.fix} for r in results]
                       for name, results in results_by_system.items()}, indent=1)
