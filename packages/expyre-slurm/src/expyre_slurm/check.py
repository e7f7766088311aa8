"""``xpr check`` for Slurm: ``sinfo`` and ``squeue`` answer, and each configured partition
exists with its cores per node and time limit (``sinfo --format='%R|%c|%l'``)."""
from __future__ import annotations

import re
from typing import Dict, List, Mapping, Optional, Tuple

from expyre.batch import Sections, command_check, compare_partitions
from expyre.hooktypes import CheckResult

#: partition name, CPUs per node, time limit: one line per partition and node group
SINFO_FORMAT = "%R|%c|%l"

COMMANDS = {
    "sinfo": "sinfo --version 2>&1",
    "squeue": ('_xpr_o=$(squeue --noheader --user="${USER:-$(id -un)}" --format=%i 2>&1); _xpr_r=$?; '
               'printf "%s\\n" "$_xpr_o" | head -n 3; (exit $_xpr_r)'),
    "partitions": f"sinfo --noheader --format='{SINFO_FORMAT}' 2>&1",
}


def slurm_time_s(text: str) -> Optional[float]:
    """Seconds of a Slurm time limit (``[days-]hours:minutes:seconds``, ``minutes:seconds``,
    ``minutes``); None for ``infinite``/``UNLIMITED`` or anything unreadable."""
    m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text.strip())
    if m is None:
        return None
    days = int(m.group(1) or 0)
    parts = [int(p) for p in m.group(2, 3, 4) if p is not None]
    if m.group(1) is not None:  # days-hours[:minutes[:seconds]]
        parts += [0] * (3 - len(parts))
        h, mi, s = parts
    elif len(parts) == 3:
        h, mi, s = parts
    elif len(parts) == 2:
        h, mi, s = 0, parts[0], parts[1]
    else:
        h, mi, s = 0, parts[0], 0
    return float(days * 86400 + h * 3600 + mi * 60 + s)


def parse_partitions(text: str) -> Dict[str, Tuple[Optional[int], Optional[float]]]:
    """``{partition: (most CPUs per node, time limit s)}`` from sinfo's :data:`SINFO_FORMAT` lines."""
    found: Dict[str, Tuple[Optional[int], Optional[float]]] = {}
    for line in text.splitlines():
        fields = line.strip().split("|")
        if len(fields) != 3:
            continue
        name, cpus, limit = fields
        cores = int(cpus.rstrip("+")) if cpus.rstrip("+").isdigit() else None
        known = [c for c in (cores, found.get(name, (None, None))[0]) if c is not None]
        found[name] = (max(known) if known else None, slurm_time_s(limit))
    return found


def parse_check(sections: Sections, partitions: Mapping[str, dict]) -> List[CheckResult]:
    results = [command_check("sinfo answers", sections, "sinfo",
                             "put Slurm's commands on PATH for the account (its login profile, or the "
                             "system's pre_submit_cmds such as ['module', 'load', 'slurm'])", show=True),
               command_check("squeue answers", sections, "squeue",
                             "check that slurmctld is up and reachable from the host (`scontrol ping`)")]
    rc, text = sections.get("partitions", (-1, ""))
    if rc != 0:
        results.append(CheckResult("partitions", False, f"sinfo exited with status {rc}: {text.strip()[:200]}",
                                   "check that slurmctld answers (`sinfo`)"))
        return results
    return results + compare_partitions(partitions, parse_partitions(text), "partition",
                                        f"sinfo --format='{SINFO_FORMAT}'")
