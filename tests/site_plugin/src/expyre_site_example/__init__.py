"""``site-slurm``: the Slurm of an example site, as the site's own expyre plugin.

The site runs Slurm with two house rules that the stock ``expyre-slurm`` plugin does not know:

* every job charges a project: the system's ``header`` must hold ``#SBATCH --account=<project>``,
  and a job without one is refused before anything is copied to the cluster;
* job names carry the site's prefix ``xs_`` (the site's accounting reports group jobs by it).

Everything else, running the commands, retrying ``slurmctld`` outages, submitting exactly once,
tolerating jobs that already ended, comes from :mod:`expyre.batch`. This module only says which
commands to run and how to read what they print.
"""
from __future__ import annotations

import re
from typing import Dict, List, Sequence

from expyre.plugin import BatchScheduler, JobSpec, OutputError, RemoteJob, Sections, Shell, format_header_lines, quote

__version__ = "0.2.0"

#: squeue's and sacct's state names, as expyre's remote states
STATES = {"PENDING": "queued", "RUNNING": "running", "COMPLETING": "running", "CONFIGURING": "running",
          "SUSPENDED": "held", "COMPLETED": "done", "FAILED": "failed", "CANCELLED": "failed",
          "NODE_FAIL": "failed", "OUT_OF_MEMORY": "failed", "PREEMPTED": "failed", "BOOT_FAIL": "failed",
          "TIMEOUT": "timeout", "DEADLINE": "timeout"}


def state(slurm_state: str, reason: str = "") -> str:
    """expyre's state for a Slurm state (``CANCELLED by 1001`` counts as ``CANCELLED``)."""
    word = slurm_state.split(" ")[0].rstrip("+")
    if word == "PENDING" and reason.startswith("JobHeld"):
        return "held"
    return STATES.get(word, "unknown")


class SiteSlurm(BatchScheduler):
    """The site's Slurm: commands and parsers; :class:`expyre.batch.BatchScheduler` runs them."""

    name = "site-slurm"
    submit_program = "sbatch"
    name_prefix = "xs_"
    name_safe = "A-Za-z0-9_.=+-"
    transient = ("socket timed out", "unable to contact slurm controller", "try again",
                 "temporarily unavailable", "connection refused")
    already_over = r"Invalid job id specified|already completing or completed|Job has already finished"

    def header(self, job: JobSpec) -> List[str]:
        configured = format_header_lines(job.header_lines, job.node_dict)
        if not any(re.match(r"#SBATCH\s+(--account|-A)[= ]\S", line) for line in configured):
            raise ValueError(f"site-slurm: job {job.id} charges no project; add '#SBATCH --account=<project>' "
                             "to the system's header in config.json")
        lines = [f"#SBATCH --job-name={self.job_name(job.id)}", f"#SBATCH --partition={job.partition}",
                 f"#SBATCH --output={job.stdout_file}", f"#SBATCH --error={job.stderr_file}"]
        if job.node_dict.get("max_time"):
            lines.append(f"#SBATCH --time={job.node_dict['max_time']}")
        return lines + configured

    def environment(self, job: JobSpec) -> List[str]:
        return ['[ -n "${SLURM_NTASKS:-}" ] && export EXPYRE_NUM_CORES=$SLURM_NTASKS']

    def submit_command(self, job: JobSpec, script: str) -> str:
        return f"sbatch --parsable {quote(script)}"

    def parse_submit(self, stdout: str) -> str:
        ids = re.findall(r"^(\d+)(?:;\S+)?$", stdout, re.MULTILINE)
        if len(ids) != 1:
            raise OutputError(f"sbatch printed no single job id: {stdout.strip() or '(nothing)'}")
        return ids[0]

    def status_commands(self, jobs: Sequence[RemoteJob]) -> Dict[str, str]:
        ids = quote(",".join(job.remote_id for job in jobs))
        return {"squeue": f"squeue --noheader --states=all --jobs={ids} --format='%i|%T|%r|end'",
                "sacct": f"sacct --noheader --parsable2 --allocations --jobs={ids} --format=JobIDRaw,State"}

    def answered(self, section: str, returncode: int, text: str) -> bool:
        # squeue asked about one job it no longer knows exits 1; sacct may be switched off
        return returncode == 0 or section == "sacct" or "Invalid job id specified" in text

    def parse_status(self, sections: Sections, jobs: Sequence[RemoteJob], stderr: str) -> Dict[str, str]:
        states = {}
        for line in sections["sacct"][1].splitlines():
            fields = line.split("|")
            if len(fields) == 2 and fields[0].isdigit():
                states[fields[0]] = state(fields[1])
        for line in sections["squeue"][1].splitlines():
            fields = line.split("|")
            if len(fields) != 4 or fields[3] != "end" or not fields[0].isdigit():
                raise OutputError(f"squeue printed a line it should not have: {line!r}")
            states[fields[0]] = state(fields[1], fields[2])
        return states  # a job neither lists stays unknown: never taken for finished

    def control_commands(self, action: str, jobs: Sequence[RemoteJob]) -> List[str]:
        ids = [job.remote_id for job in jobs]
        if action == "cancel":
            return ["scancel " + " ".join(quote(i) for i in ids)]
        return [f"scontrol {action} {quote(','.join(ids))}"]

    def find_commands(self, job: JobSpec, name: str) -> Dict[str, str]:
        return {"squeue": f'squeue --noheader --states=all --user="$(id -un)" --name={quote(name)} --format=%i'}

    def parse_find(self, sections: Sections, name: str) -> List[str]:
        return [line.strip() for line in sections["squeue"][1].splitlines() if line.strip().isdigit()]


SCHEDULER = SiteSlurm()
(expyre_schedulers, check_options, render_header, job_environment, submit, status, find_submitted,
 cancel, hold, release) = SCHEDULER.hooks()


def jobs_of(shell: Shell, name: str) -> List[str]:
    """Job ids the site's Slurm has under the job name ``name`` (for the site's own scripts)."""
    return [line for line in shell.run(f"squeue -h -u \"$(id -un)\" --name={quote(name)} -o %i").stdout.split()]
