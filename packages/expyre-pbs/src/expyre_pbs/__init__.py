"""expyre's PBS scheduler plugin: ``"scheduler": "pbs"`` in a system's config.

One plugin for both living PBS dialects, PBS Professional / OpenPBS and Torque-style servers
(:mod:`expyre_pbs.dialect`). Registered only through the ``expyre`` entry-point group
(``pbs = "expyre_pbs"``). The hooks are translators: they build ``qsub``/``qstat``/``qselect``/
``qdel``/``qhold``/``qrls`` command lines, run them through the shell core hands them and parse
what comes back (:mod:`expyre_pbs.parse`).

* ``render_header``: ``#PBS -N N_<id>`` (the id encoded so that PBS accepts it, see
  :mod:`expyre_pbs.names`), ``-q``, ``-l walltime``, ``-o``/``-e`` (the files expyre reads
  back), ``-S /bin/bash``, ``-r n``, then the configured lines formatted with the node dict.
* ``job_environment``: ``EXPYRE_NUM_*`` from ``PBS_NUM_NODES``/``PBS_NUM_PPN``/``PBS_NP``
  (Torque), ``NCPUS`` (PBS Pro) or ``$PBS_NODEFILE``.
* ``submit``: ``qsub`` in the job's directory; the id is the whole id line qsub printed
  (``1234.server``), whatever banner lines a site adds.
* ``status``: one ``qstat -f`` for all jobs per poll (``-x -F json`` on PBS Pro / OpenPBS, which
  also shows finished jobs). A job the server no longer knows is finished only when the query
  answered for certain; a query that fails, is cut short or garbled never makes a job finished.
* ``cancel`` (``qdel``), ``hold`` (``qhold``), ``release`` (``qrls``), ``find_submitted`` (from
  the record qsub's output leaves in the job's directory, and by job name).

The dialect is asked once per shell (``qstat --version``) and kept: see
:func:`expyre_pbs.dialect.resolve`.
"""
from __future__ import annotations

import time
from typing import Dict, List, Optional, Sequence

from expyre import CommandResult, ConnectionLostError, JobSpec, RemoteJob, Shell, hookimpl

from . import commands, dialect, header, names, parse
from .commands import CONTROL_TIMEOUT, STATUS_TIMEOUT, SUBMIT_TIMEOUT, PBSCommandError
from .dialect import Dialect

__version__ = "0.1.0"
__all__ = ["NAME", "PBSCommandError", "Dialect", "__version__"]

NAME = "pbs"

#: qstat exit statuses that are answers: 0, 153 (``PBSE_UNKJOBID``: some job is not known),
#: 35 (PBS Pro: some job has finished and history was not asked for).
_QSTAT_ANSWERS = (0, 35, 153)

#: What a PBS command prints when it cannot reach its server: worth another try.
_TRANSIENT = ("cannot connect to server", "connection refused", "connection timed out", "end of file",
              "try again", "temporarily unavailable", "communication failure", "unable to contact",
              "socket timed out", "pbs_iff", "server is busy")


def _is_transient(text: str) -> bool:
    text = text.lower()
    return any(pattern in text for pattern in _TRANSIENT)


@hookimpl
def expyre_schedulers() -> List[str]:
    return [NAME]


@hookimpl
def render_header(scheduler: str, job: JobSpec) -> Optional[List[str]]:
    return header.render_header(job)


@hookimpl
def job_environment(scheduler: str, job: JobSpec) -> Optional[List[str]]:
    return list(header.JOB_ENVIRONMENT)


def host_dialect(shell: Shell, configured: Optional[str] = None) -> Dialect:
    """The dialect of the host behind ``shell`` (asked once per shell, then kept).

    Raises
    ------
    PBSCommandError
        ``qstat`` cannot be run, or the question timed out
    """
    def ask(command: str):
        result = commands.run(shell, command, CONTROL_TIMEOUT)
        if result.returncode == -1:
            raise PBSCommandError(shell.host, result, "asking qstat for its PBS version")
        return result.returncode, result.stdout + result.stderr

    try:
        return dialect.resolve(shell, ask, configured)
    except dialect.DialectError as exc:
        result = CommandResult(dialect.VERSION_COMMAND, 127, "", str(exc))
        raise PBSCommandError(shell.host, result, "finding the PBS dialect") from None


# --------------------------------------------------------------------------- submit

@hookimpl
def submit(scheduler: str, job: JobSpec, script: str, shell: Shell) -> Optional[str]:
    """Run qsub on ``script`` in ``job.remote_dir`` and return the PBS job id.

    A qsub that could not reach its server is tried again (``EXPYRE_RETRY``) after checking that
    the failed try left no job behind. A qsub that succeeded but printed no readable id is
    resolved by looking the job up by name, so that a job PBS took is never left unrecorded.
    """
    from expyre.retry import retry_settings

    command = commands.submit_command(job.remote_dir, script)
    tries, wait = retry_settings()
    for attempt in range(1, tries + 1):
        result = commands.run(shell, command, SUBMIT_TIMEOUT)
        if result.returncode == -1:
            raise ConnectionLostError(shell.host, f"qsub for job {job.id} did not answer within "
                                                  f"{SUBMIT_TIMEOUT:.0f} s; whether it took the job is unknown")
        if result.returncode == 0:
            try:
                return parse.parse_qsub_output(result.stdout)
            except parse.SubmitParseError as exc:
                found = find_submitted(NAME, job, shell)
                if found:
                    return found[0]
                raise PBSCommandError(shell.host, result, f"job {job.id}: {exc}") from None
        if attempt < tries and _is_transient(result.stderr + "\n" + result.stdout):
            time.sleep(wait)
            wait *= 2
            found = find_submitted(NAME, job, shell)
            if found:
                return found[0]
            continue
        raise PBSCommandError(shell.host, result, f"qsub refused job {job.id} (in {job.remote_dir})"
                              + (f" (after {attempt} tries)" if attempt > 1 else ""))
    raise AssertionError("unreachable")  # pragma: no cover


@hookimpl
def find_submitted(scheduler: str, job: JobSpec, shell: Shell) -> Optional[List[str]]:
    """Jobs PBS has for ``job``: the id qsub recorded in the job's directory, and this user's
    jobs named :func:`expyre_pbs.names.job_name` of the job's id. Raises if the lookup by name
    fails (an empty answer would make core submit a second copy)."""
    pbs = host_dialect(shell)
    name = names.job_name(job.id)
    result = commands.run(shell, commands.find_command(pbs, job.remote_dir, name), STATUS_TIMEOUT)
    what = f"looking for PBS jobs named {name}"
    sections = parse.split_sections(result.stdout)
    if result.returncode == -1 or "select" not in sections:
        raise PBSCommandError(shell.host, result, f"{what}: no complete answer")
    found = []
    record_rc, record_text = sections.get("record", (1, ""))
    if record_rc == 0:
        try:
            found.append(parse.parse_qsub_output(record_text))
        except parse.SubmitParseError:
            pass
    rc, text = sections["select"]
    if pbs.name == dialect.PBSPRO:
        if rc != 0:
            raise PBSCommandError(shell.host, result, f"{what}: qselect exited with status {rc}")
        found.extend(parse.parse_job_id_lines(text))
    else:
        if rc not in (0, 153):
            raise PBSCommandError(shell.host, result, f"{what}: qstat exited with status {rc}")
        listed = parse.parse_qstat_full(text)
        found.extend(job_id for job_id, record in listed.records.items() if record.name == name)
    return list(dict.fromkeys(found))


# --------------------------------------------------------------------------- status

def _query(shell: Shell, pbs: Dialect, jobs: Sequence[RemoteJob]):
    """Run one qstat for ``jobs``; returns (parsed records, error lines)."""
    result = commands.run(shell, commands.status_command(pbs, [job.remote_id for job in jobs]), STATUS_TIMEOUT)
    sections = parse.split_sections(result.stdout)
    if result.returncode == -1 or "qstat" not in sections:
        raise PBSCommandError(shell.host, result, "PBS status query: no complete answer (timed out or cut short)")
    rc, text = sections["qstat"]
    errors = parse.parse_error_lines(result.stderr)
    if rc not in _QSTAT_ANSWERS:
        raise PBSCommandError(shell.host, result, f"PBS status query: qstat exited with status {rc}")
    if pbs.json:
        listed = parse.parse_qstat_json(text)  # raises OutputError
    else:
        listed = parse.parse_qstat_full(text)
    return listed, errors


@hookimpl
def status(scheduler: str, jobs: Sequence[RemoteJob], shell: Shell) -> Optional[Dict[str, str]]:
    """States of ``jobs`` from one ``qstat -f`` for all of them.

    A job qstat lists gets the state of its record (:func:`expyre_pbs.parse.map_state`). A job it
    does not list is finished (``other``: its outcome is read from expyre's own marker files)
    only when qstat said so on stderr (``Unknown Job Id``, ``Job has finished``), or, on a
    Torque-style server, when the answer is certain: complete (its end marker arrived), an exit
    status that is an answer (0 or 153), no record cut or garbled and no error line that cannot
    be read (Slurm's Torque front end leaves unknown jobs out without a word; PBS Professional and
    Torque name each one). Any other job is ``unknown``. PBS Pro JSON that cannot be read is
    asked again as text (JSON is then left off for this shell).
    """
    if not jobs:
        return {}
    pbs = host_dialect(shell)
    try:
        listed, errors = _query(shell, pbs, jobs)
    except parse.OutputError:
        pbs = pbs.without_json()
        dialect.remember(shell, pbs)
        listed, errors = _query(shell, pbs, jobs)
    certain = pbs.name == dialect.TORQUE and not errors.other and not listed.garbled
    states: Dict[str, str] = {}
    for job in jobs:
        record = listed.lookup(job.remote_id)
        if record is not None:
            states[job.remote_id] = parse.map_state(record, pbs.name)
        elif listed.is_garbled(job.remote_id):
            states[job.remote_id] = "unknown"
        elif errors.says_unknown(job.remote_id) or errors.says_finished(job.remote_id) or certain:
            states[job.remote_id] = "other"
        else:
            states[job.remote_id] = "unknown"
    return states


# --------------------------------------------------------------------------- cancel, hold, release

def _control(shell: Shell, program: str, jobs: Sequence[RemoteJob], options: Sequence[str] = (),
             over_is_ok: bool = False) -> bool:
    if not jobs:
        return True
    ids = [job.remote_id for job in jobs]
    result = commands.run(shell, commands.control_command(program, ids, options), CONTROL_TIMEOUT)
    if result.returncode == 0:
        return True
    if result.returncode > 0 and over_is_ok:
        lines = [line for line in (result.stderr + "\n" + result.stdout).splitlines()
                 if line.strip() and not line.startswith("Use of uninitialized value")]
        # Slurm's Torque front end says nothing about jobs that are already over or unknown
        if all(parse.ALREADY_OVER.search(line) for line in lines):
            return True
    raise PBSCommandError(shell.host, result, f"{program} of PBS jobs {', '.join(ids)}")


@hookimpl
def cancel(scheduler: str, jobs: Sequence[RemoteJob], shell: Shell) -> Optional[bool]:
    """``qdel`` all ``jobs`` at once; jobs that are already over (or gone) are not an error."""
    return _control(shell, "qdel", jobs, over_is_ok=True)


@hookimpl
def hold(scheduler: str, jobs: Sequence[RemoteJob], shell: Shell) -> Optional[bool]:
    """``qhold -h u`` (a user hold) on all ``jobs`` at once."""
    return _control(shell, "qhold", jobs, options=("-h", "u"))


@hookimpl
def release(scheduler: str, jobs: Sequence[RemoteJob], shell: Shell) -> Optional[bool]:
    """``qrls`` all ``jobs`` at once."""
    return _control(shell, "qrls", jobs)
