"""Job arrays on PBS: the submit command, task ids, the most tasks per array; on Slurm's Torque
front end also its tasks' states and single-task control, through Slurm's own commands.

PBS Professional: ``qsub -r y -J 0-K[%N]`` (arrays must be rerunnable), ids ``1234[].server`` and
``1234[i].server``, ``PBS_ARRAY_INDEX``, server ``max_array_size`` (default 10000). Torque: ``qsub -t
0-K[%N]``, the same ids, ``PBS_ARRAYID``, server ``max_job_array_size``. Slurm's front end: ``qsub
-t`` becomes ``sbatch --array`` and prints ``1234``; a task sees only ``SLURM_ARRAY_TASK_ID``, its
``qstat`` lists each task as a job of its own without its index, and its ``qdel`` of ``1234[1]``
cancels the whole array; so tasks get Slurm's ids (``1234_1``), ``squeue`` and ``scancel``.
"""
from __future__ import annotations

import re
from typing import Dict, List, Optional, Sequence, Tuple

from expyre import quote, quote_all
from expyre.batch import OutputError, Sections

from .dialect import PBSPRO, Dialect

#: The task index: PBS Pro's, Torque's, then the front end's (the first set and not empty counts).
INDEX_VARS = ("PBS_ARRAY_INDEX", "PBS_ARRAYID", "SLURM_ARRAY_TASK_ID")
#: A task id of the front end (Slurm's ``<array id>_<index>``).
SLURM_TASK = re.compile(r"^\d+_\d+$")
#: This user's jobs with one line per task (``|6398_1|R|``); waiting tasks may share a line (``6398_[2-5%1]``).
SQUEUE = "squeue --noheader --array --states=all -u \"${USER:-$(id -un)}\" --format='|%i|%t|%j|'"
_SQUEUE_LINE = re.compile(r"^\|(?P<array>\d+)(?:_(?P<tasks>\d+|\[[0-9,%-]+\]))?\|(?P<state>[A-Z]+)\|(?P<name>[^|]*)\|$")
#: Slurm's short states as expyre's (anything else: ``unknown``).
_SLURM_STATES = {**dict.fromkeys("PD RQ RF".split(), "queued"), **dict.fromkeys("S ST RH SE RD".split(), "held"),
                 **dict.fromkeys("R CG CF SI SO RS".split(), "running"), "CD": "done", "TO": "timeout",
                 "DL": "timeout", **dict.fromkeys("F NF OOM BF CA PR".split(), "failed")}


def submit_command(dialect: Dialect, script: str, count: int, max_parallel: Optional[int]) -> str:
    """``qsub`` of ``script`` as an array of ``count`` tasks indexed from 0, at most
    ``max_parallel`` running at once (``%M``)."""
    limit = f"%{int(max_parallel)}" if max_parallel and count > 1 else ""
    if dialect.name == PBSPRO:
        return f"qsub -r y -J {quote(f'0-{count - 1}{limit}' if count > 1 else '0-1:2')} {quote(script)}"
    return f"qsub -t {quote(f'0-{count - 1}{limit}')} {quote(script)}"


def task_ids(array_id: str, count: int) -> List[str]:
    """Each task's id: ``1234[i].server`` for an array id ``1234[].server``; Slurm's ``6398_i``
    for the front end's bare ``6398``. :class:`OutputError` for any other id."""
    if "[]" in array_id:
        return [array_id.replace("[]", f"[{i}]", 1) for i in range(count)]
    if re.fullmatch(r"\d+", array_id):
        return [f"{array_id}_{i}" for i in range(count)]
    raise OutputError(f"qsub printed {array_id!r}, not the id of an array (1234[].server)")


def split_task_ids(job_ids: Sequence[str]) -> Tuple[List[str], List[str]]:
    """``(PBS ids, front-end task ids)``."""
    return [i for i in job_ids if not SLURM_TASK.match(i)], [i for i in job_ids if SLURM_TASK.match(i)]


def _indices(tasks: str) -> List[int]:
    """``4`` or ``[2-5,7%1]`` as the indices it names."""
    found: List[int] = []
    for part in tasks.strip("[]").split("%")[0].split(","):
        first, _, last = part.partition("-")
        found += range(int(first), int(last or first) + 1)
    return found


def parse_squeue(text: str) -> Dict[str, tuple]:
    """``{task id or job id: (expyre state, job name)}`` from :data:`SQUEUE`'s output;
    :class:`OutputError` for a line that is not of its form (cut or garbled)."""
    listed = {}
    for line in filter(None, (line.strip() for line in text.splitlines())):
        match = _SQUEUE_LINE.match(line)
        if match is None:
            raise OutputError(f"squeue printed a line that cannot be read: {line[:200]!r}")
        state = (_SLURM_STATES.get(match["state"], "unknown"), match["name"])
        for index in _indices(match["tasks"]) if match["tasks"] else [None]:
            listed[match["array"] if index is None else f"{match['array']}_{index}"] = state
    return listed


def task_states(text: str, job_ids: Sequence[str]) -> Dict[str, str]:
    """States of the front end's tasks ``job_ids``; one squeue no longer lists is over (``other``:
    expyre's markers tell the outcome), as squeue listed all of this user's jobs."""
    listed = parse_squeue(text)
    return {job_id: listed.get(job_id, ("other", ""))[0] for job_id in job_ids}


def find_arrays(text: str, name: str) -> List[str]:
    """The front end's array ids whose jobs are named ``name``."""
    return list(dict.fromkeys(i.split("_")[0] for i, (_, n) in parse_squeue(text).items() if n == name))


def control_commands(action: str, job_ids: Sequence[str]) -> List[str]:
    """Slurm's cancel, hold and release of the front end's tasks."""
    program = {"cancel": "scancel", "hold": "scontrol hold", "release": "scontrol release"}[action]
    return [f"{program} {quote_all(dict.fromkeys(job_ids))}"]


def max_size_commands(dialect: Dialect) -> Dict[str, str]:
    """The command whose output says the most tasks one array may have."""
    return {"limit": "scontrol show config" if dialect.slurm else "qstat -B -f"}


def parse_max_size(dialect: Dialect, sections: Sections) -> Optional[int]:
    """PBS Pro's ``max_array_size`` (10000 when not shown), Torque's ``max_job_array_size`` (None:
    no limit), the front end's ``MaxArraySize`` (indices below it, from 0: as many tasks)."""
    key = "MaxArraySize" if dialect.slurm else "max_array_size" if dialect.name == PBSPRO else "max_job_array_size"
    match = re.search(rf"^\s*{key}\s*=\s*(\d+)\s*$", sections["limit"][1], re.MULTILINE)
    if match is None:
        return 10000 if dialect.name == PBSPRO else None
    if int(match.group(1)) < 1:
        raise OutputError(f"{key} is {match.group(1)}: this server takes no job arrays (set arrays = false "
                          "in the system's pbs table)")
    return int(match.group(1))
