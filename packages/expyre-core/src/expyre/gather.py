"""Polling many jobs at once: one status query per system, then one batched copy back.

Used by ``ExPyRe.get_results`` (all ongoing jobs of the job's system, with ``sync_all``) and by
``xpr sync``. Status is asked before files are copied, so a job seen finished has all of its
files copied in the same poll.
"""
from __future__ import annotations

import warnings
from collections import defaultdict
from pathlib import Path
from typing import Dict, Iterable, List

from . import config, results
from .errors import FailedSubprocessWarning
from .hooktypes import FINISHED_REMOTE_STATES, ConnectionLostError, RemoteCommandError, RemoteJob

#: Local statuses of jobs whose remote state is worth asking for.
POLLED_STATUSES = ("submitted", "started")


class StatusQueryWarning(FailedSubprocessWarning):
    """A scheduler status query failed; the jobs it was about are treated as still ongoing."""


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
        by_remote_id = system.status(jobs)
    except (RemoteCommandError, ConnectionLostError, TimeoutError, OSError) as exc:
        warnings.warn(f"status query on system '{system_name}' failed; its jobs are treated as still "
                      f"ongoing: {exc}", StatusQueryWarning, stacklevel=3)
        by_remote_id = {}
    states = {row["id"]: by_remote_id.get(row["remote_id"], "unknown") for row in rows}
    _record_states(rows, states, verbose)
    finished = [(row, job) for row, job in zip(rows, jobs)
                if force_fetch or states[row["id"]] in FINISHED_REMOTE_STATES]
    if finished:
        system.fetch([(Path(row["from_dir"]), job.remote_dir) for row, job in finished])
        for row, _ in finished:
            _record_outcome(row)
    return states


def _record_states(rows: List[dict], states: Dict[str, str], verbose: bool) -> None:
    for row in rows:
        state = states[row["id"]]
        if state == "unknown":
            continue
        changes = {}
        if state != row.get("remote_status"):
            changes["remote_status"] = state
            if verbose:
                import sys
                sys.stderr.write(f"remote status of {row['id']}: {row.get('remote_status')} -> {state}\n")
        if state == "running" and row["status"] == "submitted":
            changes["status"] = "started"
        if changes:
            config.db.update(row["id"], **changes)


def _record_outcome(row: dict) -> None:
    kind = results.finished_kind(Path(row["from_dir"]))
    if kind is not None and row["status"] in POLLED_STATUSES:
        config.db.update(row["id"], status=kind)
