"""expyre's Slurm scheduler plugin: ``"scheduler": "slurm"`` in a system's config.

Registered through the ``expyre`` entry-point group (``slurm = "expyre_slurm"``). Built on the
batch toolkit (:mod:`expyre.batch`), which runs, retries and batches the commands and makes
submission exactly-once; this module only says what to run and how to read it:

* ``sbatch`` in the job's directory; the id from ``Submitted batch job N [on cluster X]`` or the
  ``--parsable`` forms; a refusal at the per-user job limit (``AssocMaxSubmitJobLimit``,
  ``QOSMaxSubmitJobPerUserLimit``, ...) is :class:`expyre.batch.SubmitLimitError`;
* one ``squeue`` for all jobs; a job it no longer lists is looked up with ``scontrol show job``
  and ``sacct`` (either may be unavailable) and is over only when a query that worked says so
  or does not know it either;
* ``scancel``, ``scontrol hold``/``release``; jobs already over are not an error;
* jobs by name: ``squeue --name``;
* job arrays: ``sbatch --array=0-N%M``, task ids ``<array id>_<task>`` (``SLURM_ARRAY_TASK_ID``),
  ``squeue --array`` lists every task on its own line, at most ``MaxArraySize`` tasks per
  array (``scontrol show config``).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

from expyre import JobSpec, RemoteJob, Shell, quote
from expyre.batch import BatchScheduler, OutputError, Sections

from . import check, header, parse
from .commands import UNSET_JOB_ENVIRONMENT, SlurmCommandError, by_cluster, cluster_option, squeue_commands
from .parse import INVALID_JOB_ID, map_state, split_remote_id

__version__ = "0.1.0"
__all__ = ["NAME", "Slurm", "SlurmCommandError", "__version__"]

NAME = "slurm"


class Slurm(BatchScheduler):
    """Slurm's commands and what they print, for :class:`expyre.batch.BatchScheduler`."""

    name = NAME
    render_header_lines = staticmethod(header.render_header)
    environment_lines = header.JOB_ENVIRONMENT
    submit_program = "sbatch"
    transient = parse.TRANSIENT_PATTERNS
    submit_limit = parse.SUBMIT_LIMIT_PATTERNS
    already_over = (f"{INVALID_JOB_ID}|already completing or completed|Job has already finished|"
                    "already finished")
    name_safe = parse.NAME_SAFE
    array_index_var = "SLURM_ARRAY_TASK_ID"
    array_first_index = 0

    def submit_command(self, job: JobSpec, script: str) -> str:
        return f"{UNSET_JOB_ENVIRONMENT}\nexec sbatch {quote(script)}"

    def parse_submit(self, stdout: str) -> str:
        return parse.parse_sbatch_output(stdout)

    def array_submit_command(self, job: JobSpec, script: str, count: int, max_parallel: Optional[int]) -> str:
        indices = f"0-{count - 1}" + (f"%{int(max_parallel)}" if max_parallel else "")
        return f"{UNSET_JOB_ENVIRONMENT}\nexec sbatch --array={quote(indices)} {quote(script)}"

    def array_task_ids(self, array_id: str, count: int) -> List[str]:
        job_id, cluster = split_remote_id(array_id)
        return [parse.join_remote_id(f"{job_id}_{task}", cluster) for task in range(count)]

    def max_array_size_commands(self) -> Dict[str, str]:
        return {"config": "scontrol show config"}

    def parse_max_array_size(self, sections: Sections) -> Optional[int]:
        size = parse.parse_max_array_size(sections["config"][1])
        if size == 0:
            raise OutputError("MaxArraySize is 0: this Slurm has job arrays switched off "
                              "(set arrays = false in the system's slurm table)")
        return size

    def answered(self, section: str, returncode: int, text: str) -> bool:
        # squeue exits 1 when asked about a single job it does not know: an answer, not a failure
        return (returncode == 0 or section.startswith(("sacct@", "scontrol@"))
                or (returncode == 1 and INVALID_JOB_ID in text))

    def status_commands(self, jobs: Sequence[RemoteJob]) -> Dict[str, str]:
        return squeue_commands((job.remote_id for job in jobs), parse.SQUEUE_FORMAT)

    def parse_status(self, sections: Sections, jobs: Sequence[RemoteJob], stderr: str) -> Dict[str, str]:
        listed = parse.SqueueResult()
        for _rc, text in sections.values():
            listed.jobs.update(parse.parse_squeue(text).jobs)
        return {job.remote_id: map_state(*entry) for job in jobs for entry in [listed.lookup(job.remote_id)]
                if entry is not None}

    def resolve_unlisted(self, shell: Shell, jobs: Sequence[RemoteJob]) -> Dict[str, str]:
        """From scontrol (the controller keeps finished jobs for MinJobAge) and sacct (when
        accounting is on). A job neither knows is over (``other``); a lookup that fails leaves it
        ``unknown``."""
        commands = {f"sacct@{cluster or '-'}": (f"sacct {cluster_option(cluster)}--noheader --parsable2 --allocations "
                                                f"--jobs={quote(','.join(ids))} --format={parse.SACCT_FORMAT} 2>&1")
                    for cluster, ids in by_cluster(job.remote_id for job in jobs).items()}
        for job in jobs:
            job_id, cluster = split_remote_id(job.remote_id)
            commands[f"scontrol@{job.remote_id}"] = (f"scontrol {cluster_option(cluster)}--oneliner show job "
                                                     f"{quote(job_id)} 2>&1")
        sections, _ = self.query(shell, commands, "Slurm status query (scontrol, sacct)")
        states = {}
        for job in jobs:
            job_id, cluster = split_remote_id(job.remote_id)
            state, gone = "unknown", False
            rc, text = sections[f"scontrol@{job.remote_id}"]
            fields = parse.parse_scontrol_job(text) if rc == 0 else None
            if fields is not None and parse.scontrol_job_id(fields) == job_id:
                state = map_state(fields["JobState"], fields.get("Reason", ""))
            gone = INVALID_JOB_ID in text or parse.task_not_found(text)
            rc, text = sections[f"sacct@{cluster or '-'}"]
            accounted = parse.parse_sacct(text)
            if state == "unknown" and job_id in accounted:
                state = map_state(accounted[job_id])
            elif rc == 0 and "error" not in text.lower():
                gone = True  # accounting works and has no such job
            states[job.remote_id] = "other" if state == "unknown" and gone else state
        return states

    def control_commands(self, action: str, jobs: Sequence[RemoteJob]) -> List[str]:
        groups = by_cluster(job.remote_id for job in jobs)
        if action == "cancel":
            return [f"scancel {cluster_option(c)}{' '.join(quote(i) for i in ids)}" for c, ids in groups.items()]
        return [f"scontrol {cluster_option(c)}{action} {quote(','.join(ids))}" for c, ids in groups.items()]

    def find_commands(self, job: JobSpec, name: str) -> Dict[str, str]:
        name_filter = f"--name={quote(name)} " if "," not in name else ""
        return {"squeue": f'squeue --noheader --states=all --user="${{USER:-$(id -un)}}" {name_filter}'
                          f"--format={quote(parse.SQUEUE_NAME_FORMAT)}"}

    def parse_find(self, sections: Sections, name: str) -> List[str]:
        # an array's tasks are listed as 123_4 or 123_[5-9]: the array's id is 123
        return [parse.join_remote_id(job_id.split("_")[0], cluster)
                for job_id, cluster, _state, listed in parse.parse_squeue_names(sections["squeue"][1])
                if listed == name]

    def check_commands(self, partitions):
        return dict(check.COMMANDS)

    def parse_check(self, sections: Sections, partitions):
        return check.parse_check(sections, partitions)


SCHEDULER = Slurm()
(expyre_schedulers, check_options, render_header, job_environment, submit, status, find_submitted,
 cancel, hold, release) = SCHEDULER.hooks()
array_support, submit_array = SCHEDULER.array_hooks()
submit_many = SCHEDULER.submit_many

check_system = SCHEDULER.check_system
