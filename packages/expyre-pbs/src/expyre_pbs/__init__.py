"""expyre's PBS plugin (``"scheduler": "pbs"``) for PBS Pro / OpenPBS and Torque-style servers, on
:mod:`expyre.batch`: ``qsub`` in the job's directory; one ``qstat -f`` per poll (``-x -F json`` on
PBS Pro); ``qdel``, ``qhold -h u``, ``qrls``; jobs by name with ``qselect`` or ``qstat -f``.
Job arrays: PBS Pro ``qsub -J``, Torque ``qsub -t``, and Slurm's Torque front end (see
:mod:`expyre_pbs.arrays`).
"""
from __future__ import annotations

from functools import cached_property
from typing import Dict, List, Optional, Sequence

from expyre import JobSpec, RemoteJob, Shell, quote_all
from expyre.batch import BatchError, BatchScheduler, Sections, ask_host

from . import arrays, check, commands, dialect, header, names, parse
from .commands import PBSCommandError
from .dialect import Dialect

__version__ = "0.1.0"
__all__ = ["NAME", "PBS", "PBSCommandError", "Dialect", "__version__"]

NAME = "pbs"
#: qstat exit statuses that are answers: 0, 153 (some job unknown), 35 (PBS Pro: some job finished).
_QSTAT_ANSWERS = (0, 35, 153)


class PBS(BatchScheduler):
    """PBS's commands and what they print, in the :attr:`dialect` of the system it is bound to."""

    name = NAME
    render_header_lines = staticmethod(header.render_header)
    environment_lines = header.JOB_ENVIRONMENT
    submit_program = "qsub"
    settings = {"dialect": dialect.for_name}
    transient = ("cannot connect to server", "connection refused", "connection timed out", "end of file",
                 "try again", "temporarily unavailable", "communication failure", "unable to contact",
                 "socket timed out", "pbs_iff", "server is busy")
    # PBS Pro max_queued: "would exceed queue workq's per-user limit of jobs in 'Q' state"; Torque
    # max_user_queuable: "Maximum number of jobs already in queue for user"; Slurm's Torque front
    # end passes on sbatch's reason (AssocMaxSubmitJobLimit, QOSMaxSubmitJobPerUserLimit, ...)
    submit_limit = ("per-user limit", "maximum number of jobs already in queue", "maxsubmitjob", "grpsubmitjobs")
    # Slurm's Torque front end says nothing about jobs that are already over or unknown
    already_over = (r"(?i)Unknown Job Id|Job has finished|already completing or completed|already finished|"
                    r"Invalid job id specified|Request invalid for state of job|job is in exiting state")
    complaint = r"^(?!Use of uninitialized value)\s*\S"
    already_over_silently = True
    name_safe, name_prefix, name_max = names.SAFE_CHARACTERS, names.NAME_PREFIX, names.MAX_NAME_LENGTH
    array_index_var, array_first_index = arrays.INDEX_VARS, 0

    @cached_property
    def dialect(self) -> Dialect:
        """The system's dialect (configured, or asked of the host the first time it is needed)."""
        return host_dialect(self.shell, self.options.get("dialect"))

    def parse_submit(self, stdout: str) -> str:
        return parse.parse_qsub_output(stdout)

    def array_submit_command(self, job: JobSpec, script: str, count: int, max_parallel: Optional[int]) -> str:
        return arrays.submit_command(self.dialect, script, count, max_parallel)

    def array_task_ids(self, array_id: str, count: int) -> List[str]:
        return arrays.task_ids(array_id, count)

    def max_array_size_commands(self) -> Dict[str, str]:
        return arrays.max_size_commands(self.dialect)

    def parse_max_array_size(self, sections: Sections) -> Optional[int]:
        return arrays.parse_max_size(self.dialect, sections)

    def answered(self, section: str, returncode: int, text: str) -> bool:
        return returncode in (_QSTAT_ANSWERS if section == "qstat" else (0,))

    def status_commands(self, jobs: Sequence[RemoteJob]) -> Dict[str, str]:
        return commands.status_commands(self.dialect, [job.remote_id for job in jobs])

    def parse_status(self, sections: Sections, jobs: Sequence[RemoteJob], stderr: str) -> Dict[str, str]:
        """A listed job gets its record's state. An unlisted one is finished (``other``: expyre's
        markers tell the outcome) only when qstat said so on stderr, or on a Torque-style server
        when the answer is certain (no error line and no record cut or garbled: the front end
        leaves unknown jobs out without a word); else ``unknown``."""
        _, slurm_tasks = arrays.split_task_ids([job.remote_id for job in jobs])
        states = arrays.task_states(sections["squeue"][1], slurm_tasks) if slurm_tasks else {}
        text = sections.get("qstat", (0, ""))[1]
        listed = parse.parse_qstat_json(text) if self.dialect.json else parse.parse_qstat_full(text)
        errors = parse.parse_error_lines(stderr)
        certain = self.dialect.name == dialect.TORQUE and not errors.other and not listed.garbled
        for job in (job for job in jobs if job.remote_id not in states):
            record = listed.lookup(job.remote_id)
            if record is not None:
                states[job.remote_id] = parse.map_state(record, self.dialect.name)
            elif not listed.is_garbled(job.remote_id) and (
                    errors.says_unknown(job.remote_id) or errors.says_finished(job.remote_id) or certain):
                states[job.remote_id] = "other"
        return states

    def query_status(self, jobs: Sequence[RemoteJob], shell: Shell) -> Dict[str, str]:
        try:
            return super().query_status(jobs, shell)
        except BatchError:
            if not self.dialect.json:
                raise
            self.dialect = self.dialect.without_json()  # JSON this server prints cannot be read: text
            return super().query_status(jobs, shell)

    def control_commands(self, action: str, jobs: Sequence[RemoteJob]) -> List[str]:
        pbs_ids, slurm_tasks = arrays.split_task_ids([job.remote_id for job in jobs])
        program = {"cancel": "qdel", "hold": "qhold -h u", "release": "qrls"}[action]
        return [f"{program} {quote_all(dict.fromkeys(pbs_ids))}"] * bool(pbs_ids) + \
            arrays.control_commands(action, slurm_tasks) * bool(slurm_tasks)

    def find_commands(self, job: JobSpec, name: str) -> Dict[str, str]:
        return commands.find_commands(self.dialect, name, job.array_size is not None or job.array_index is not None)

    def parse_find(self, sections: Sections, name: str) -> List[str]:
        if "squeue" in sections:
            return arrays.find_arrays(sections["squeue"][1], name)
        text = sections["select"][1]
        if self.dialect.name == dialect.PBSPRO:
            return parse.parse_job_id_lines(text)
        return [job_id for job_id, record in parse.parse_qstat_full(text).records.items() if record.name == name]

    def check_commands(self, partitions):
        return dict(check.COMMANDS)

    def parse_check(self, sections: Sections, partitions):
        return check.parse_check(sections, partitions)


def host_dialect(shell: Shell, configured: Optional[str] = None) -> Dialect:
    """The configured dialect, or the host's, from ``qstat --version``; :class:`PBSCommandError`
    if qstat cannot be run."""
    return dialect.for_name(configured) if configured else \
        ask_host(shell, dialect.VERSION_COMMAND, dialect.parse_version, "the PBS dialect", PBS.control_timeout)


SCHEDULER = PBS()
(expyre_schedulers, check_options, render_header, job_environment, submit, status, find_submitted,
 cancel, hold, release) = SCHEDULER.hooks()
check_system = SCHEDULER.check_system
array_support, submit_array = SCHEDULER.array_hooks()
submit_many = SCHEDULER.submit_many
