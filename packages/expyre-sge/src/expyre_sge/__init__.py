"""expyre's Grid Engine plugin: ``"scheduler": "sge"`` in a system's config.

For Son of Grid Engine, Sun Grid Engine 6.x and their relatives (``qsub``, ``qstat -xml``,
``qacct``, ``qdel``, ``qhold``, ``qrls``). Registered only through the ``expyre`` entry-point
group (``sge = "expyre_sge"``), so ``pip install expyre-core expyre-sge`` is all a site needs.
The hooks are translators: they build command lines (:mod:`expyre_sge.commands`), run them
through the shell core hands them, and parse what comes back (:mod:`expyre_sge.parse`).

* ``render_header``: the system's, partition's and job's ``#$`` lines formatted with the node
  dict, then ``-N N_<id>``, ``-q``, ``-l h_rt``, ``-o``, ``-e``, ``-S /bin/bash``, ``-r n``,
  ``-cwd`` (:mod:`expyre_sge.header`, names from :mod:`expyre_sge.names`).
* ``job_environment``: ``EXPYRE_NUM_*`` from ``NSLOTS``/``NHOSTS``, and the job's exit status
  kept in its directory.
* ``submit``: ``qsub`` in the job's directory; the id from ``Your job N ("name") has been
  submitted`` (or the ``job-array`` and ``-terse`` forms).
* ``status``: one command per poll: ``qstat -xml`` for all of the user's jobs, and for jobs it
  no longer lists the job's directory (the exit status the job wrote, cancel mark, last change)
  and, without an exit status there, ``qacct -j``.
  A query that fails or prints what cannot be read raises, so core keeps the jobs ongoing.
* ``cancel`` (``qdel``), ``hold`` (``qhold``), ``release`` (``qrls``), ``find_submitted`` (qsub's
  record in the job's directory, and the job name in ``qstat``).

Every command first sets up Grid Engine's environment as the account's login shell has it
(:data:`expyre_sge.commands.SGE_ENVIRONMENT`).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

from expyre import ConnectionLostError, JobSpec, RemoteCommandError, RemoteJob, Shell, hookimpl

from . import commands, header, names, parse
from .commands import CONTROL_TIMEOUT, STATUS_TIMEOUT, SUBMIT_TIMEOUT, SGECommandError

__version__ = "0.1.0"
__all__ = ["NAME", "SGECommandError", "__version__"]

NAME = "sge"


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
    """qsub ``script`` in ``job.remote_dir``; returns Grid Engine's job number.

    Not retried: a qsub whose answer is lost raises :class:`expyre.ConnectionLostError`, and
    core then asks :func:`find_submitted`.
    """
    result = commands.run(shell, commands.submit_command(job, script), SUBMIT_TIMEOUT)
    if result.returncode == -1:
        raise ConnectionLostError(shell.host, f"qsub for job {job.id} did not answer within "
                                              f"{SUBMIT_TIMEOUT:.0f} s; whether Grid Engine took the job is unknown")
    if result.returncode != 0:
        raise SGECommandError(shell.host, result, f"qsub refused job {job.id} (in {job.remote_dir})")
    try:
        return parse.parse_qsub_output(result.stdout).job_number
    except parse.OutputError as exc:
        raise SGECommandError(shell.host, result, f"job {job.id}: {exc}") from None


@hookimpl
def find_submitted(scheduler: str, job: JobSpec, shell: Shell) -> Optional[List[str]]:
    """Grid Engine jobs for ``job``: the id in qsub's record in the job's directory (written by
    qsub itself, so it survives a connection lost before the answer came back), and jobs of
    this user that qstat lists under the job's name. Raises if qstat fails (an empty answer
    would make core submit a second copy).

    Accounting is not searched by name: a job run again with ``force_rerun`` keeps its name,
    and qacct would offer the earlier, finished run."""
    name = names.job_name(job.id)
    what = f"looking for Grid Engine jobs named {name}"
    result = commands.run(shell, commands.find_command(job), STATUS_TIMEOUT)
    sections = parse.split_sections(result.stdout)
    if "qstat" not in sections or sections["qstat"][0] != 0:
        raise SGECommandError(shell.host, result, f"{what}: qstat failed or its output was cut short")
    found: List[str] = []
    record_rc, record_text = sections.get("record", (1, ""))
    if record_rc == 0:
        try:
            found.append(parse.parse_qsub_output(record_text).job_number)
        except parse.OutputError:
            pass
    try:
        entries = parse.parse_qstat_xml(sections["qstat"][1])
    except parse.OutputError as exc:
        raise SGECommandError(shell.host, result, f"{what}: {exc}") from None
    found += [entry.job_number for entry in entries if entry.name == name]
    return list(dict.fromkeys(found))


# --------------------------------------------------------------------------- status

@hookimpl
def status(scheduler: str, jobs: Sequence[RemoteJob], shell: Shell) -> Optional[Dict[str, str]]:
    """States of ``jobs`` from one command (see the module's description)."""
    if not jobs:
        return {}
    command, looked_up = commands.status_command(jobs)
    result = commands.run(shell, command, STATUS_TIMEOUT)
    sections = parse.split_sections(result.stdout)
    if result.returncode != 0 or "qstat" not in sections:
        raise SGECommandError(shell.host, result, "Grid Engine status query: the command failed or its output "
                                                  "was cut short")
    qstat_rc, qstat_text = sections["qstat"]
    if qstat_rc != 0:
        raise SGECommandError(shell.host, result, f"Grid Engine status query: qstat exited with status {qstat_rc}")
    try:
        entries = parse.parse_qstat_xml(qstat_text)
    except parse.OutputError as exc:
        raise SGECommandError(shell.host, result, f"Grid Engine status query: {exc}") from None
    states: Dict[str, str] = {}
    in_error: List[RemoteJob] = []
    for index, job in enumerate(jobs):
        try:
            number, task = parse.split_remote_id(job.remote_id)
        except parse.OutputError:
            states[job.remote_id] = "unknown"  # not an id this plugin gave out
            continue
        listed = parse.listed_state(entries, number, task)
        if listed is not None:
            state = listed
            if state == "other":
                in_error.append(job)
        else:
            qacct = sections.get(f"qacct:{number}") if number in looked_up else None
            files = sections.get(f"files:{index}")
            evidence = parse.parse_evidence(files[1]) if files is not None else None
            state = parse.unlisted_state(qacct, evidence, number, task)
        states[job.remote_id] = state
    if in_error:
        _report_error_state(shell, in_error, entries)
    return states


def _report_error_state(shell: Shell, jobs: Sequence[RemoteJob], entries: Sequence[parse.QstatEntry]) -> None:
    """Put Grid Engine's reasons for the error state into each job's stderr file (core shows it
    when it reports the job as died). Best effort: a failure here changes no state."""
    reports = []
    for job in jobs:
        number, _task = parse.split_remote_id(job.remote_id)
        codes = sorted({entry.state for entry in entries if entry.job_number == number})
        heading = (f"expyre-sge: Grid Engine job {number} is in error state ({', '.join(codes)}) and will not run "
                   f"unless it is cleared (qmod -cj {number}) or deleted (qdel {number}); Grid Engine says:")
        reports.append((number, f"{job.remote_dir.rstrip('/')}/{names.stderr_file(job.id)}", heading))
    try:
        commands.run(shell, commands.error_report_command(reports), STATUS_TIMEOUT)
    except (RemoteCommandError, ConnectionLostError, OSError):
        pass


# --------------------------------------------------------------------------- cancel, hold, release

#: What qdel, qhold and qrls say about a job that is already over: not a failure to act on it.
_ALREADY_OVER = ("does not exist", "not found")


def _control(shell: Shell, program: str, jobs: Sequence[RemoteJob], marker: Optional[str] = None) -> bool:
    if not jobs:
        return True
    result = commands.run(shell, commands.control_command(program, jobs, marker), CONTROL_TIMEOUT)
    if result.returncode == 0:
        return True
    lines = [line for line in (result.stderr + "\n" + result.stdout).splitlines()
             if line.strip() and ("error" in line.lower() or "denied" in line.lower())]
    if lines and result.returncode != -1 and all(any(text in line for text in _ALREADY_OVER) for line in lines):
        return True
    raise SGECommandError(shell.host, result, f"{program} of Grid Engine jobs "
                                              f"{', '.join(job.remote_id for job in jobs)}")


@hookimpl
def cancel(scheduler: str, jobs: Sequence[RemoteJob], shell: Shell) -> Optional[bool]:
    """``qdel`` ``jobs`` (jobs already over are not an error); each job's directory is marked
    first, so that a job deleted before it ran is known to be over at once."""
    return _control(shell, "qdel", jobs, marker=commands.CANCELLED_FILE)


@hookimpl
def hold(scheduler: str, jobs: Sequence[RemoteJob], shell: Shell) -> Optional[bool]:
    """``qhold`` ``jobs``: queued jobs stay queued, reported ``held``, until released."""
    return _control(shell, "qhold", jobs)


@hookimpl
def release(scheduler: str, jobs: Sequence[RemoteJob], shell: Shell) -> Optional[bool]:
    """``qrls`` ``jobs``."""
    return _control(shell, "qrls", jobs)
