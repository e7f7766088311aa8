"""Preflight, the job side: the one command that asks the job's Python about the modules a call
needs, run the way the job script runs, and the :class:`Report` parsed from its output.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from ..hooktypes import quote

#: Seconds the probe may take (a slow shared file system may take a while to import numpy).
PROBE_TIMEOUT_S = 300.0

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
