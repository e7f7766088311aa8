"""Polling many jobs at once: one status query per system, then one batched copy back.

Used by ``ExPyRe.get_results`` (all ongoing jobs of the job's system, with ``sync_all``) and by
``xpr sync``. Status is asked before files are copied, so a job seen finished has all of its
files copied in the same poll.

Several processes may poll the same jobs: every database change is a compare-and-set on the
status the row had when it was read, so a poll never undoes another process's change (a job
``processed`` or ``cleaned`` stays so), and a job whose outcome is already here is not copied
again. A copy-back that fails because the host cannot be reached is treated like a failed
status query: the job stays "ongoing" (its finished remote state is not recorded), one warning
says so, and the next poll tries again, so the caller's own timeout decides when to give up.
"""
from __future__ import annotations

import sys
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Dict, Iterable, List, Set, Tuple

from . import config, jobstate, politeness, results
from .errors import FailedSubprocessWarning
from .hooktypes import FINISHED_REMOTE_STATES, ConnectionLostError, RemoteCommandError, RemoteJob

#: Local statuses of jobs whose remote state is worth asking for (:data:`expyre.jobstate.POLLED`).
POLLED_STATUSES = jobstate.POLLED


class StatusQueryWarning(FailedSubprocessWarning):
    """A scheduler status query failed; the jobs it was about are treated as still ongoing."""


class CopyBackWarning(FailedSubprocessWarning):
    """Copying finished jobs' files back failed (host unreachable); the next poll tries again."""


#: Systems whose last copy-back failed: warned about once, until a copy-back succeeds again.
_failing_copy_back: Set[str] = set()


def describe_failure(exc: BaseException) -> str:
    """A short account of a failed remote operation: for a command, its first line and the
    command's own error output, not the whole (possibly long) script."""
    if isinstance(exc, RemoteCommandError):
        result = exc.result
        lines = result.command.strip().splitlines() or [""]
        command = lines[0] + (" ..." if len(lines) > 1 else "")
        detail = (result.stderr or "").strip() or (result.stdout or "").strip() or "no error output"
        where = exc.host or "this machine"
        return f"'{command}' on {where} exited with status {result.returncode}: {detail}"
    return str(exc)


def remote_dir_of(row: dict) -> str:
    """The job's remote directory: recorded at submission, or derived for rows written by older versions."""
    if row.get("remote_dir"):
        return row["remote_dir"]
    system = config.systems[row["system"]]
    return system.job_remote_dir(Path(row["from_dir"]))


def remote_job(row: dict) -> RemoteJob:
    """The :class:`RemoteJob` for a jobs-database row."""
    return RemoteJob(remote_id=row["remote_id"], remote_dir=remote_dir_of(row), id=row["id"])


def sync(rows: Iterable[dict], *, force_fetch: bool = False, verbose: bool = False) -> Dict[str, str]:
    """Update remote status and copy back finished jobs, for ``rows`` of the jobs database.

    Parameters
    ----------
    rows: iterable(dict)
        jobs-database rows; those without a system or remote id are skipped
    force_fetch: bool, default False
        copy back every job's files, finished or not, and query jobs in any local status
    verbose: bool, default False
        report each remote status change on stderr

    Returns
    -------
    dict(str, str)
        job id -> remote state for every job that was asked about
    """
    by_system: Dict[str, List[dict]] = defaultdict(list)
    for row in rows:
        if row.get("system") and row.get("remote_id") and (force_fetch or row["status"] in POLLED_STATUSES):
            by_system[row["system"]].append(row)
    states: Dict[str, str] = {}
    for system_name, system_rows in by_system.items():
        states.update(_sync_system(system_name, system_rows, force_fetch, verbose))
    return states


def _sync_system(system_name: str, rows: List[dict], force_fetch: bool, verbose: bool) -> Dict[str, str]:
    system = config.systems.get(system_name)
    if system is None:
        warnings.warn(f"jobs {', '.join(r['id'] for r in rows)} are on system '{system_name}', which is "
                      "not in the config; they cannot be polled", StatusQueryWarning, stacklevel=3)
        return {}
    jobs = [remote_job(row) for row in rows]
    try:
        by_remote_id = politeness.status(system, jobs)
    except (RemoteCommandError, ConnectionLostError, TimeoutError, OSError) as exc:
        warnings.warn(f"status query on system '{system_name}' failed; its jobs are treated as still "
                      f"ongoing: {describe_failure(exc)}", StatusQueryWarning, stacklevel=3)
        by_remote_id = {}
    states = {row["id"]: by_remote_id.get(row["remote_id"], "unknown") for row in rows}
    finished = [(row, job) for row, job in zip(rows, jobs)
                if force_fetch or states[row["id"]] in FINISHED_REMOTE_STATES]
    # a job whose outcome is already here (copied back by an earlier poll, or by another
    # process) is not copied again: its files may be being read right now
    to_fetch = [(row, job) for row, job in finished if results.finished_kind(Path(row["from_dir"])) is None]
    if to_fetch and not _fetch(system, to_fetch):
        not_fetched = {row["id"] for row, _ in to_fetch}
        states = {job_id: "unknown" if job_id in not_fetched and state in FINISHED_REMOTE_STATES else state
                  for job_id, state in states.items()}
        finished = [(row, job) for row, job in finished if row["id"] not in not_fetched]
    rows = _record_states(rows, states, verbose)
    by_id = {row["id"]: row for row in rows}
    _record_outcomes([(by_id[row["id"]], states[row["id"]]) for row, _ in finished])
    return states


def _fetch(system, to_fetch) -> bool:
    """Copy back the jobs' directories; False (after one warning per outage) if the host is unreachable."""
    try:
        system.fetch([(Path(row["from_dir"]), job.remote_dir) for row, job in to_fetch])
    except (ConnectionLostError, TimeoutError) as exc:
        if system.name not in _failing_copy_back:
            _failing_copy_back.add(system.name)
            warnings.warn(f"copying back the results of {len(to_fetch)} job(s) from system '{system.name}' "
                          f"failed; they are treated as still ongoing and the next poll tries again: "
                          f"{describe_failure(exc)}", CopyBackWarning, stacklevel=4)
        return False
    _failing_copy_back.discard(system.name)
    return True


def _record_states(rows: List[dict], states: Dict[str, str], verbose: bool) -> List[dict]:
    """Record each job's remote state (:func:`expyre.jobstate.record_polls`); the rows as they now are."""
    updated = []
    for row, changes in zip(rows, jobstate.record_polls([(row, states[row["id"]]) for row in rows])):
        state = states[row["id"]]
        if verbose and "remote_status" in changes:
            before = row.get("remote_status")
            change = f"{before} -> {state}" if before else f"{state} (first seen)"
            sys.stderr.write(f"remote status of {row['id']}: {change}\n")
        updated.append(dict(row, **changes))
    return updated


def _record_outcomes(finished: List[Tuple[dict, str]]) -> None:
    """Record the local status of jobs whose files were just copied back, ``(row, remote state)``
    each, unless another process changed a job's status meanwhile (compare-and-set).

    A job the scheduler reports finished that left no marker (cancelled, killed, out of time)
    becomes ``died``, so that it leaves the ``ongoing`` group; ``get_results`` still looks at
    it once more and raises ExPyReJobDiedError with what it printed.
    """
    outcomes = []
    for row, state in finished:
        if row["status"] not in POLLED_STATUSES:
            continue
        kind = results.finished_kind(Path(row["from_dir"]))
        if kind is None and state in FINISHED_REMOTE_STATES:
            kind = "died"
        if kind is not None:
            outcomes.append((row["id"], kind, row["status"]))
    jobstate.record_outcomes(outcomes)
