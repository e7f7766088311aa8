"""expyre's Grid Engine plugin (``"scheduler": "sge"``) on :mod:`expyre.batch`: ``qsub``; per poll one
``qstat -xml`` (and the directory and ``qacct`` of jobs it no longer lists); ``qdel``, ``qhold``, ``qrls``.
Job arrays: ``qsub -t 1-N -tc M``, task ids ``<job number>.<task>`` (``SGE_TASK_ID``), at most
``max_aj_tasks`` tasks per array (``qconf -sconf``; 0 there means no limit)."""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

from expyre import ConnectionLostError, JobSpec, RemoteCommandError, RemoteJob, Shell, quote
from expyre.batch import BatchScheduler, Sections

from . import check, commands, header, names, parse
from .commands import SGECommandError

NAME = "sge"
__version__ = "0.1.0"
__all__ = ["NAME", "GridEngine", "SGECommandError", "__version__"]


class GridEngine(BatchScheduler):
    """Grid Engine's commands and what they print, for :class:`expyre.batch.BatchScheduler`."""

    name, submit_program, preamble = NAME, "qsub", commands.SGE_ENVIRONMENT
    name_safe, name_prefix, name_max = names.SAFE_CHARACTERS, names.NAME_PREFIX, names.MAX_NAME_LENGTH
    transient = ("unable to contact qmaster", "unable to send message to qmaster", "connection refused",
                 "failed receiving gdi request", "try again later")
    # max_u_jobs (and max_jobs): "job rejected: Only 4 jobs are allowed per user (current job count: 4)"
    submit_limit = ("jobs are allowed per user", "jobs are allowed per cluster")
    complaint, already_over = r"(?i)error|denied", r"does not exist|not found"
    render_header_lines, environment_lines = staticmethod(header.render_header), header.JOB_ENVIRONMENT

    array_index_var, array_first_index = "SGE_TASK_ID", 1

    def parse_submit(self, stdout: str) -> str:
        return parse.parse_qsub_output(stdout).job_number

    def array_submit_command(self, job: JobSpec, script: str, count: int, max_parallel: Optional[int]) -> str:
        limit = f" -tc {int(max_parallel)}" if max_parallel else ""
        return f"qsub -t {quote(f'1-{count}')}{limit} {quote(script)}"

    def array_task_ids(self, array_id: str, count: int) -> List[str]:
        return [f"{array_id}.{task}" for task in range(1, count + 1)]

    def max_array_size_commands(self) -> Dict[str, str]:
        return {"config": "qconf -sconf"}

    def parse_max_array_size(self, sections: Sections) -> Optional[int]:
        return parse.parse_max_aj_tasks(sections["config"][1])

    def status_commands(self, jobs: Sequence[RemoteJob]) -> Dict[str, str]:
        return commands.status_commands(jobs)[0]

    def parse_status(self, sections: Sections, jobs: Sequence[RemoteJob], stderr: str) -> Dict[str, str]:
        entries = parse.parse_qstat_xml(sections["qstat"][1])
        states: Dict[str, str] = {}
        for index, job in enumerate(jobs):
            if not parse.REMOTE_ID.match(job.remote_id.strip()):
                continue  # not an id this plugin gave out: unknown
            number, task = parse.split_remote_id(job.remote_id)
            state = parse.listed_state(entries, number, task)
            if state is None:
                files = sections.get(f"files:{index}")
                evidence = parse.parse_evidence(files[1]) if files is not None else None
                state = parse.unlisted_state(sections.get(f"qacct:{number}"), evidence, number, task)
            states[job.remote_id] = state
        return states

    def after_status(self, shell: Shell, sections: Sections, jobs: Sequence[RemoteJob],
                     states: Dict[str, str]) -> None:
        """Jobs in the error state get Grid Engine's reasons in their stderr file (best effort)."""
        errors: Dict[str, set] = {}
        for entry in (e for e in parse.parse_qstat_xml(sections["qstat"][1]) if "E" in e.state):
            errors.setdefault(entry.job_number, set()).add(entry.state)
        stuck = [(job, n) for job in jobs for n in [job.remote_id.split(".")[0]] if n in errors]
        reports = [(n, f"{job.remote_dir.rstrip('/')}/{names.stderr_file(job.id)}",
                    f"expyre-sge: Grid Engine job {n} is in error state ({', '.join(sorted(errors[n]))}) and will "
                    f"not run unless it is cleared "
                    f"(qmod -cj {n}) or deleted (qdel {n}); Grid Engine says:") for job, n in stuck]
        try:
            reports and commands.run(shell, commands.error_report_command(reports), self.status_timeout)
        except (RemoteCommandError, ConnectionLostError, OSError):
            pass

    def control_commands(self, action: str, jobs: Sequence[RemoteJob]) -> List[str]:
        program = {"cancel": "qdel", "hold": "qhold", "release": "qrls"}[action]
        return commands.control_commands(program, jobs, commands.CANCELLED_FILE if action == "cancel" else "")

    def find_commands(self, job: JobSpec, name: str) -> Dict[str, str]:
        return {"qstat": 'qstat -xml -u "${USER:-$(id -un)}"'}

    def parse_find(self, sections: Sections, name: str) -> List[str]:
        return [entry.job_number for entry in parse.parse_qstat_xml(sections["qstat"][1]) if entry.name == name]

    def check_commands(self, partitions):
        return check.commands(partitions)

    def parse_check(self, sections: Sections, partitions):
        return check.parse_check(sections, partitions)


SCHEDULER = GridEngine()
(expyre_schedulers, check_options, render_header, job_environment, submit, status, find_submitted,
 cancel, hold, release) = SCHEDULER.hooks()
check_system = SCHEDULER.check_system
array_support, submit_array = SCHEDULER.array_hooks()
submit_many = SCHEDULER.submit_many
