"""``xpr check`` for PBS: ``qstat`` and ``pbsnodes`` answer, and each configured queue exists
(``qstat -Q -f``: its ``resources_max.walltime`` when the server states one) with no more cores
per node than ``pbsnodes -a`` reports (``np`` in Torque, ``resources_available.ncpus`` in PBS Pro)."""
from __future__ import annotations

import re
from typing import Dict, List, Mapping, Optional, Tuple

from expyre.batch import Sections, command_check, compare_partitions
from expyre.hooktypes import CheckResult
from expyre.units import time_to_sec

COMMANDS = {
    "qstat": "qstat -Q -f 2>&1",
    "pbsnodes": "pbsnodes -a 2>&1",
}


def parse_queues(text: str) -> Dict[str, Optional[float]]:
    """``{queue: resources_max.walltime s or None}`` from ``qstat -Q -f``."""
    queues: Dict[str, Optional[float]] = {}
    current = None
    for line in text.splitlines():
        m = re.match(r"Queue:\s*(\S+)", line.strip())
        if m:
            current = m.group(1)
            queues[current] = None
            continue
        key, sep, value = line.strip().partition("=")
        if current and sep and key.strip() == "resources_max.walltime":
            try:
                queues[current] = float(time_to_sec(value.strip()))
            except (ValueError, TypeError):
                pass
    return queues


def parse_node_cores(text: str) -> Optional[int]:
    """Most cores of one node in ``pbsnodes -a`` (``np`` or ``resources_available.ncpus``)."""
    cores = [int(m) for m in re.findall(r"^\s*(?:np|resources_available\.ncpus)\s*=\s*(\d+)", text, re.M)]
    return max(cores) if cores else None


def parse_check(sections: Sections, partitions: Mapping[str, dict]) -> List[CheckResult]:
    results = [command_check("qstat answers", sections, "qstat",
                             "put PBS's commands on PATH for the account (its login profile)"),
               command_check("pbsnodes answers", sections, "pbsnodes",
                             "put pbsnodes on PATH; cores per node cannot be checked without it")]
    rc, text = sections.get("qstat", (-1, ""))
    if rc != 0:
        return results
    cores = parse_node_cores(sections.get("pbsnodes", (1, ""))[1]) if sections.get("pbsnodes", (1, ""))[0] == 0 \
        else None
    reported: Dict[str, Tuple[Optional[int], Optional[float]]] = {
        queue: (cores, walltime) for queue, walltime in parse_queues(text).items()}
    return results + compare_partitions(partitions, reported, "queue", "qstat -Q -f; pbsnodes -a")
