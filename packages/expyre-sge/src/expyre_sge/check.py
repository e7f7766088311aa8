"""``xpr check`` for Grid Engine: ``qstat`` and ``qconf`` answer, and each configured queue
exists with its slots and ``h_rt`` limit (``qconf -sq QUEUE``)."""
from __future__ import annotations

import re
from typing import Dict, List, Mapping, Optional, Tuple

from expyre import quote
from expyre.batch import Sections, command_check, compare_partitions
from expyre.hooktypes import CheckResult


def commands(partitions: Mapping[str, dict]) -> Dict[str, str]:
    queues = sorted({spec.get("partition", key) for key, spec in partitions.items()})
    cmds = {"qstat": ('_xpr_o=$(qstat -u "${USER:-$(id -un)}" 2>&1); _xpr_r=$?; '
                      'printf "%s\\n" "$_xpr_o" | head -n 5; (exit $_xpr_r)'),
            "qconf": "qconf -sql 2>&1"}
    for queue in queues:
        cmds[f"queue:{queue}"] = f"qconf -sq {quote(queue)} 2>&1"
    return cmds


def sge_time_s(text: str) -> Optional[float]:
    """Seconds of a Grid Engine time (``INFINITY``, ``hh:mm:ss``, seconds); None when unlimited."""
    text = text.strip()
    if text.upper() == "INFINITY" or not text:
        return None
    parts = text.split(":")
    if all(p.isdigit() for p in parts) and len(parts) <= 3:
        seconds = 0
        for p in parts:
            seconds = seconds * 60 + int(p)
        return float(seconds)
    return None


def parse_queue(text: str) -> Tuple[Optional[int], Optional[float]]:
    """``(most slots on one host, h_rt s)`` from ``qconf -sq``."""
    values = {}
    for line in text.splitlines():
        key, _, value = line.strip().partition(" ")
        if key and not line.startswith((" ", "\t")):
            values[key] = value.strip()
    slots = [int(n) for n in re.findall(r"\d+", values.get("slots", ""))]
    return (max(slots) if slots else None), sge_time_s(values.get("h_rt", "INFINITY"))


def parse_check(sections: Sections, partitions: Mapping[str, dict]) -> List[CheckResult]:
    results = [command_check("qstat answers", sections, "qstat",
                             "set up Grid Engine in the account's login profile "
                             "(. $SGE_ROOT/$SGE_CELL/common/settings.sh)"),
               command_check("qconf answers", sections, "qconf", "check that sge_qmaster is up (`qconf -sql`)")]
    listed = set(sections.get("qconf", (1, ""))[1].split()) if sections.get("qconf", (1, ""))[0] == 0 else set()
    reported = {}
    for name, (rc, text) in sections.items():
        if name.startswith("queue:") and rc == 0 and name[6:] in listed:
            reported[name[6:]] = parse_queue(text)
    for queue in listed - set(reported):
        reported[queue] = (None, None)
    return results + compare_partitions(partitions, reported, "queue", "qconf -sq QUEUE")
