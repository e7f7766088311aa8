"""expyre's Slurm scheduler plugin: ``"scheduler": "slurm"`` in a system's config.

Registered only through the ``expyre`` entry-point group (``slurm = "expyre_slurm"``), so that
``pip install expyre-core expyre-slurm`` is all a site needs. The hooks are translators: they
build ``sbatch``/``squeue``/``scontrol``/``sacct``/``scancel`` command lines, run them through the
shell core hands them, and parse what comes back (:mod:`expyre_slurm.parse`).

* ``render_header``: ``#SBATCH`` lines for job name (the expyre id), partition, wall time and
  output files, then the configured lines formatted with the node dict.
* ``submit``: ``sbatch`` in the job's directory; the id is read from ``Submitted batch job N``
  (``... on cluster X``), or the ``--parsable`` forms ``N`` and ``N;X``, among any other lines.
* ``status``: one ``squeue`` for all jobs. A job squeue no longer lists is looked up with
  ``scontrol show job`` and ``sacct`` (either may be unavailable: accounting is often off), and
  is taken as finished only when a query that worked says so or does not know it either. A query
  that fails, times out or is cut short raises, so core treats its jobs as still ongoing.
* ``cancel`` (``scancel``), ``find_submitted`` (by job name, and from the record sbatch's output
  leaves in the job's directory), ``hold`` and ``release`` (``scontrol hold/release``).

Transient failures (Slurm's "Socket timed out", "Unable to contact slurm controller", "try
again", ...) are retried as ``EXPYRE_RETRY`` (``"<tries> <seconds>"``, default ``"3 5"``) says;
a submission is retried only after checking that the failed try left no job behind.
"""
from __future__ import annotations

import time
from typing import Dict, List, Optional, Sequence

from expyre import JobSpec, RemoteJob, Shell, hookimpl, quote

from . import commands, header, parse
from .commands import (
    CONTROL_TIMEOUT,
    STATUS_TIMEOUT,
    SUBMIT_RECORD,
    SUBMIT_TIMEOUT,
    SlurmCommandError,
    by_cluster,
    cluster_option,
    run_once,
    run_retrying,
    section,
)
from .parse import INVALID_JOB_ID, map_state, split_remote_id

__version__ = "0.1.0"
__all__ = ["NAME", "SlurmCommandError", "hold", "release", "__version__"]

NAME = "slurm"


@hookimpl
def expyre_schedulers() -> List[str]:
    return [NAME]


@hookimpl
def render_header(scheduler: str, job: JobSpec) -> Optional[List[str]]:
    return header.render_header(job)


@hookimpl
def job_environment(scheduler: str, job: JobSpec) -> Optional[List[str]]:
    return list(header.JOB_ENVIRONMENT)


# --------------------------------------------------------------------------- submit

@hookimpl
def submit(scheduler: str, job: JobSpec, script: str, shell: Shell) -> Optional[str]:
    """Run sbatch on ``script`` in ``job.remote_dir`` and return Slurm's job id.

    A try that fails transiently is retried only once :func:`find_submitted` shows that it did
    not create a job after all (a "Socket timed out" may come after slurmctld took the job).
    When that cannot be found out, the outcome is unknown and
    :class:`expyre.ConnectionLostError` is raised: core keeps the job as ``submitting`` and asks
    again (``find_submitted``) before it submits anything.
    """
    from expyre import ConnectionLostError

    def already_submitted(failure: str) -> Optional[str]:
        try:
            found = find_submitted(NAME, job, shell)
        except SlurmCommandError as exc:
            raise ConnectionLostError(shell.host, f"{failure}; whether Slurm took job {job.id} is unknown, and "
                                                  f"it could not be asked: {exc}") from exc
        return found[0] if found else None

    command = commands.submit_command(job.remote_dir, script)
    what = f"sbatch refused job {job.id} (in {job.remote_dir})"
    tries, wait = commands.retry_settings()
    for attempt in range(1, tries + 1):
        result = run_once(shell, command, SUBMIT_TIMEOUT)
        if result.returncode == -1:
            raise ConnectionLostError(shell.host, f"sbatch for job {job.id} did not answer within "
                                                  f"{SUBMIT_TIMEOUT:.0f} s; whether it took the job is unknown")
        if result.returncode == 0:
            try:
                return parse.parse_sbatch_output(result.stdout)
            except parse.SubmitParseError as exc:
                # sbatch said yes but its answer cannot be read: is the job there?
                found = already_submitted(f"sbatch's output could not be read ({exc})")
                if found is not None:
                    return found
                raise SlurmCommandError(shell.host, result, f"job {job.id}: {exc}") from None
        if attempt < tries and parse.is_transient(result.stderr + "\n" + result.stdout):
            time.sleep(wait)
            wait *= 2
            found = already_submitted(f"sbatch failed: {parse.first_error_line(result.stderr, result.stdout)}")
            if found is not None:
                return found
            continue
        raise SlurmCommandError(shell.host, result, what + (f" (after {attempt} tries)" if attempt > 1 else ""))
    raise AssertionError("unreachable")  # pragma: no cover


@hookimpl
def find_submitted(scheduler: str, job: JobSpec, shell: Shell) -> Optional[List[str]]:
    """Jobs Slurm has for ``job``: the id sbatch recorded in the job's directory, and jobs of
    this user whose name is the job's name. Raises if squeue fails (an empty answer would make
    core submit a second copy)."""
    name = parse.job_name(job.id)
    name_filter = f"--name={quote(name)} " if "," not in name else ""
    record = f"{job.remote_dir}/{SUBMIT_RECORD}"
    command = commands.script([
        section(f"cat {quote(record)} 2>/dev/null", "record"),
        section(f'squeue --noheader --states=all --user="${{USER:-$(id -un)}}" {name_filter}'
                f"--format={quote(parse.SQUEUE_NAME_FORMAT)}", "squeue", decides=True),
    ])
    result = run_retrying(shell, command, what=f"looking for Slurm jobs named {name}", timeout=STATUS_TIMEOUT)
    sections = parse.split_sections(result.stdout)
    if "squeue" not in sections:
        raise SlurmCommandError(shell.host, result, f"looking for Slurm jobs named {name}: output cut short")
    rc, text = sections["squeue"]
    if rc != 0:
        raise SlurmCommandError(shell.host, result, f"looking for Slurm jobs named {name}: squeue failed")
    found = []
    record_rc, record_text = sections.get("record", (1, ""))
    if record_rc == 0:
        try:
            found.append(parse.parse_sbatch_output(record_text))
        except parse.SubmitParseError:
            pass
    for job_id, cluster, _state, listed_name in parse.parse_squeue_names(text):
        if listed_name == name:
            found.append(parse.join_remote_id(job_id, cluster))
    return list(dict.fromkeys(found))


# --------------------------------------------------------------------------- status

def _query_error(shell: Shell, result, message: str) -> SlurmCommandError:
    return SlurmCommandError(shell.host, result, f"Slurm status query: {message}")


def _squeue(shell: Shell, jobs: Sequence[RemoteJob]) -> parse.SqueueResult:
    """One squeue for all ``jobs`` (retried if it fails transiently); raises if it fails."""
    command, names = commands.squeue_command(by_cluster(job.remote_id for job in jobs), parse.SQUEUE_FORMAT)

    def answered(result) -> bool:
        # squeue exits 1 when asked about a single job it does not know: an answer, not a failure
        return result.returncode == 1 and INVALID_JOB_ID in result.stderr

    result = run_retrying(shell, command, what="Slurm status query (squeue)", timeout=STATUS_TIMEOUT,
                          accept=answered)
    sections = parse.split_sections(result.stdout)
    listed = parse.SqueueResult()
    for name in names:
        if name not in sections:
            raise _query_error(shell, result, "squeue's output was cut short")
        rc, text = sections[name]
        if rc != 0 and not (rc == 1 and INVALID_JOB_ID in result.stderr):
            raise _query_error(shell, result, f"squeue exited with status {rc}")
        try:
            listed.jobs.update(parse.parse_squeue(text).jobs)
        except parse.OutputError as exc:
            raise _query_error(shell, result, str(exc)) from None
    return listed


def _resolve_unlisted(shell: Shell, jobs: Sequence[RemoteJob]) -> Dict[str, str]:
    """States of jobs squeue no longer lists, from scontrol (the controller keeps finished jobs
    for MinJobAge) and sacct (when accounting is on). A job neither knows is over: ``other``.
    A lookup that fails leaves the job ``unknown``."""
    groups = by_cluster(job.remote_id for job in jobs)
    parts = []
    for cluster, ids in groups.items():
        parts.append(section(f"sacct {cluster_option(cluster)}--noheader --parsable2 --allocations "
                             f"--jobs={quote(','.join(ids))} --format={parse.SACCT_FORMAT} 2>&1",
                             f"sacct@{cluster or '-'}"))
    for job in jobs:
        job_id, cluster = split_remote_id(job.remote_id)
        parts.append(section(f"scontrol {cluster_option(cluster)}--oneliner show job {quote(job_id)} 2>&1",
                             f"scontrol@{job.remote_id}"))
    result = run_once(shell, commands.script(parts), STATUS_TIMEOUT)
    sections = parse.split_sections(result.stdout)
    states = {}
    for job in jobs:
        job_id, cluster = split_remote_id(job.remote_id)
        state = "unknown"
        gone = False
        scontrol = sections.get(f"scontrol@{job.remote_id}")
        if scontrol is not None:
            rc, text = scontrol
            fields = parse.parse_scontrol_job(text) if rc == 0 else None
            if fields is not None and fields.get("JobId") == job_id:
                state = map_state(fields["JobState"], fields.get("Reason", ""))
            elif INVALID_JOB_ID in text:
                gone = True
        sacct = sections.get(f"sacct@{cluster or '-'}")
        if state == "unknown" and sacct is not None:
            rc, text = sacct
            accounted = parse.parse_sacct(text)
            if job_id in accounted:
                state = map_state(accounted[job_id])
            elif rc == 0 and "error" not in text.lower():
                gone = True  # accounting works and has no such job
        if state == "unknown" and gone:
            state = "other"
        states[job.remote_id] = state
    return states


@hookimpl
def status(scheduler: str, jobs: Sequence[RemoteJob], shell: Shell) -> Optional[Dict[str, str]]:
    """States of ``jobs``: one squeue for all, then scontrol/sacct only for jobs it no longer lists."""
    if not jobs:
        return {}
    listed = _squeue(shell, jobs)
    states: Dict[str, str] = {}
    unlisted = []
    for job in jobs:
        entry = listed.lookup(job.remote_id)
        if entry is None:
            unlisted.append(job)
        else:
            states[job.remote_id] = map_state(*entry)
    if unlisted:
        states.update(_resolve_unlisted(shell, unlisted))
    return states


# --------------------------------------------------------------------------- cancel, hold, release

#: What scancel/scontrol say about a job that is already over: not a failure to act on it.
_ALREADY_OVER = (INVALID_JOB_ID, "already completing or completed", "Job has already finished",
                 "already finished")


def _control(shell: Shell, verb: str, jobs: Sequence[RemoteJob], build) -> bool:
    groups = by_cluster(job.remote_id for job in jobs)
    if not groups:
        return True
    command = "\n".join(["_xpr_rc=0", *(f"{build(cluster, ids)} || _xpr_rc=$?" for cluster, ids in groups.items()),
                         "exit $_xpr_rc"])

    def only_finished_jobs(result) -> bool:
        lines = [line for line in (result.stderr + "\n" + result.stdout).splitlines() if line.strip()]
        return bool(lines) and all(any(text in line for text in _ALREADY_OVER) for line in lines)

    run_retrying(shell, command, what=f"{verb} of Slurm jobs {', '.join(job.remote_id for job in jobs)}",
                 timeout=CONTROL_TIMEOUT, accept=only_finished_jobs)
    return True


@hookimpl
def cancel(scheduler: str, jobs: Sequence[RemoteJob], shell: Shell) -> Optional[bool]:
    """``scancel`` all ``jobs`` (one command per cluster); jobs already over are not an error."""
    return _control(shell, "scancel", jobs, lambda cluster, ids: (
        f"scancel {cluster_option(cluster)}{' '.join(quote(i) for i in ids)}"))


@hookimpl
def hold(scheduler: str, jobs: Sequence[RemoteJob], shell: Shell) -> Optional[bool]:
    """Hold queued ``jobs`` (``scontrol hold``): they stay queued, reported ``held``, until released."""
    return _control(shell, "scontrol hold", jobs, lambda cluster, ids: (
        f"scontrol {cluster_option(cluster)}hold {quote(','.join(ids))}"))


@hookimpl
def release(scheduler: str, jobs: Sequence[RemoteJob], shell: Shell) -> Optional[bool]:
    """Release held ``jobs`` (``scontrol release``)."""
    return _control(shell, "scontrol release", jobs, lambda cluster, ids: (
        f"scontrol {cluster_option(cluster)}release {quote(','.join(ids))}"))
