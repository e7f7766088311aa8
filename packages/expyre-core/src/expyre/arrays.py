"""Job arrays: many jobs submitted to a batch scheduler as one array job.

Every call keeps its own job directory, job script and files, exactly as a job started on its
own; only the submission differs. The array's job script (:func:`array_script`, kept in the
first task's directory) does nothing but pick its task's job directory from the scheduler's task
index (``SLURM_ARRAY_TASK_ID``, ``SGE_TASK_ID``, ``PBS_ARRAY_INDEX``, ``PBS_ARRAYID``) and run
that job's own script there, with its stdout and stderr going to the job's own files. Each task
gets a remote id of its own (``<array id>_<index>`` on Slurm), so status, results, cancel and
restart work per task, through the same paths as for single jobs.

On a system whose jobs run in a run directory on the host, only the first task's directory is
copied there, holding the others' files in one bundle (:func:`write_bundle`); each task makes its
own directory and unpacks its files when it starts. So submitting an array creates a handful of
files on the host's file system, not several per task.

Each task's directory holds :data:`expyre.jobfiles.ARRAY_TASK` (:func:`write_task_marker`), which
names the array (its first task's directory and its job name) and the task's index: a script
restarted after a crash in the middle of submitting finds the array, and each task's remote id,
from it.

Which schedulers can do arrays, and how they are submitted, is up to the scheduler plugin (the
``array_support`` and ``submit_array`` hooks; the toolkit :class:`expyre.batch.BatchScheduler`
implements both from a few declarations).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

from . import jobfiles
from .hooktypes import JobSpec, quote
from .jobscript import cd_line, host_path

__all__ = ["ArraySupport", "TaskMarker", "array_script", "array_spec", "split", "write_bundle", "write_task_marker",
           "read_task_marker", "clear_task_marker", "array_name"]

#: Fewest jobs submitted as an array (fewer are submitted one by one).
MIN_ARRAY_JOBS = 2


@dataclass(frozen=True)
class ArraySupport:
    """What a scheduler plugin tells core about its arrays (the ``array_support`` hook's answer).

    Parameters
    ----------
    index_var: str or tuple(str)
        environment variable holding the task's index inside a task; or several, of which the
        first that is set and not empty counts (one plugin for several variants of a scheduler:
        PBS Pro sets ``PBS_ARRAY_INDEX``, Torque ``PBS_ARRAYID``, Slurm's Torque front end only
        ``SLURM_ARRAY_TASK_ID``)
    first_index: int
        index of the first task (0 for Slurm, 1 for Grid Engine and Torque)
    max_size: int or None
        most tasks in one array (None: no limit known); larger batches are split
    """

    index_var: Union[str, Tuple[str, ...]]
    first_index: int = 0
    max_size: Optional[int] = None

    @classmethod
    def from_answer(cls, answer: Any, scheduler: str) -> Optional[ArraySupport]:
        """An :class:`ArraySupport` from what the hook returned (a dict or None)."""
        if answer is None or isinstance(answer, cls):
            return answer
        names = answer.get("index_var", "") if isinstance(answer, Mapping) else ""
        names = (names,) if isinstance(names, str) else tuple(names) if isinstance(names, (list, tuple)) else ("",)
        if not names or not all(isinstance(n, str) and n.isidentifier() for n in names):
            raise ValueError(f"scheduler '{scheduler}': the array_support hook must return None or a dict with "
                             f"an 'index_var' (a variable name, or a list of them), not {answer!r}")
        max_size = answer.get("max_size")
        if max_size is not None and (not isinstance(max_size, int) or max_size < 1):
            raise ValueError(f"scheduler '{scheduler}': array_support max_size must be a positive integer or None, "
                             f"not {max_size!r}")
        return cls(names[0] if len(names) == 1 else names, int(answer.get("first_index", 0)), max_size)

    @property
    def index_expansion(self) -> str:
        """Shell expansion of the task index: ``${VAR:-}``, or for several variables the first
        that is set and not empty (``${A:-${B:-}}``)."""
        names = (self.index_var,) if isinstance(self.index_var, str) else self.index_var
        return "".join(f"${{{name}:-" for name in names) + "}" * len(names)


def split(items: Sequence[Any], max_size: Optional[int]) -> List[Sequence[Any]]:
    """``items`` in consecutive groups of at most ``max_size`` (one group when None)."""
    if not items:
        return []
    size = max_size or len(items)
    return [items[i:i + size] for i in range(0, len(items), size)]


def array_name(leader_id: str) -> str:
    """The expyre id under which an array is named: its first task's id with ``_array``."""
    return f"{leader_id}_array"


def array_spec(leader: JobSpec, count: int) -> JobSpec:
    """The :class:`JobSpec` of an array: its first task's, named by :func:`array_name`, with the
    array script's own output files and ``array_size`` set."""
    return JobSpec(id=array_name(leader.id), name=leader.name, remote_dir=leader.remote_dir,
                   partition=leader.partition, node_dict=dict(leader.node_dict, id=array_name(leader.id)),
                   max_time=leader.max_time, header_lines=list(leader.header_lines),
                   no_default_header=leader.no_default_header,
                   stdout_file=jobfiles.ARRAY_STDOUT, stderr_file=jobfiles.ARRAY_STDERR, array_size=count)


def array_script(*, script_exec: str, header: Sequence[str], support: ArraySupport,
                 tasks: Sequence[JobSpec], bundle: Optional[Sequence[Optional[Tuple[int, int]]]] = None) -> str:
    """The array's job script: the scheduler's header, then a ``case`` on the task index that
    goes to the task's job directory and runs the job's own script there with ``script_exec``,
    as its ``#!`` line would (its output to the job's own stdout/stderr files). An index with no
    task is an error that names the index.

    ``bundle`` gives, per task, the ``(offset, size)`` of its files in the first task's
    :data:`expyre.jobfiles.ARRAY_BUNDLE` (see :func:`write_bundle`), or None for a task whose
    directory was copied to the host whole: such a task makes its directory and unpacks its
    files when it starts.
    """
    var, index = support.index_var, support.index_expansion
    var = var if isinstance(var, str) else "/".join(var)
    bundle_path = f"{host_path(tasks[0].remote_dir)}/{jobfiles.ARRAY_BUNDLE}" if tasks else ""
    lines = [f"#!{script_exec} -l", *header, "", f'case "{index}" in']
    for n, task in enumerate(tasks):
        span = bundle[n] if bundle is not None else None
        if span is None:
            lines.append(f"    {support.first_index + n}) {cd_line(task.remote_dir)}")
        else:
            lines.append(f"    {support.first_index + n}) ( umask 077 && mkdir -p {host_path(task.remote_dir)} ) && "
                         f"{cd_line(task.remote_dir)}")
            lines.append(f"        tail -c +{span[0] + 1} {bundle_path} | head -c {span[1]} | tar -xf - || exit 1")
        lines.append(f"        exec {script_exec} -l ./{jobfiles.SCRIPT} > {quote(task.stdout_file)} "
                     f"2> {quote(task.stderr_file)} ;;")
    lines += ["esac",
              f'echo "expyre: array task index {var}=\'{index}\' names no job of this array" >&2',
              "exit 1"]
    return "\n".join(lines) + "\n"


def write_bundle(leader_stage_dir: Path,
                 tasks: Sequence[Tuple[Path, Mapping[str, Tuple[bytes, int]]]]) -> List[Tuple[int, int]]:
    """Pack the tasks' stage directories one after the other into the first task's
    :data:`expyre.jobfiles.ARRAY_BUNDLE`; the ``(offset, size)`` of each task's files in it.

    ``tasks`` holds, per task, its stage directory and the files it gets from memory (name ->
    contents and mode: its job script, which is written nowhere else, and its task marker), which take
    the place of any file of the same name in the directory.

    So an array's files reach the host as one file, however many tasks it has: creating
    thousands of small files on a cluster's file system is slow, and each task unpacks its own
    when it starts. The bundle is one tar archive; each task's span is a run of whole entries,
    which ``tar -x`` reads as an archive of its own (it ends at the end of its input). The
    bundle's time stamp is the epoch, so copying results back never takes it.
    """
    from .transports.tarstream import end_archive, write_directory
    path = Path(leader_stage_dir) / jobfiles.ARRAY_BUNDLE
    spans = []
    with open(path, "wb") as out:
        for task_dir, files in tasks:
            start = out.tell()
            write_directory(out, Path(task_dir), files=files)
            spans.append((start, out.tell() - start))
        end_archive(out)
    os.utime(path, (0, 0))
    return spans


@dataclass(frozen=True)
class TaskMarker:
    """What a task's :data:`expyre.jobfiles.ARRAY_TASK` file says."""

    leader_dir: str
    array_id: str
    index: int


def write_task_marker(stage_dir: Path, marker: TaskMarker) -> bytes:
    """Write the task marker into a job's local stage directory (copied to the host with it, or
    in its array's bundle); what was written."""
    text = json.dumps({"leader_dir": marker.leader_dir, "array_id": marker.array_id, "index": marker.index}).encode()
    (Path(stage_dir) / jobfiles.ARRAY_TASK).write_bytes(text)
    return text


def read_task_marker(stage_dir: Path) -> Optional[TaskMarker]:
    """The job's task marker, or None when the job is not a task of an array."""
    path = Path(stage_dir) / jobfiles.ARRAY_TASK
    try:
        data = json.loads(path.read_text())
        return TaskMarker(str(data["leader_dir"]), str(data["array_id"]), int(data["index"]))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a readable array task marker ({exc})") from None


def clear_task_marker(stage_dir: Path) -> None:
    """Remove a job's task marker (it is to be submitted on its own, or not at all)."""
    (Path(stage_dir) / jobfiles.ARRAY_TASK).unlink(missing_ok=True)


def groups(jobs: Sequence[Tuple[Any, JobSpec]],
           support: Optional[ArraySupport]) -> Iterator[Sequence[Tuple[Any, JobSpec]]]:
    """The groups ``jobs`` are submitted in: arrays of at most ``support.max_size`` when the
    scheduler has arrays and there are at least :data:`MIN_ARRAY_JOBS`; else one job each."""
    if support is None or len(jobs) < MIN_ARRAY_JOBS:
        yield from ([job] for job in jobs)
        return
    yield from split(jobs, support.max_size)
