"""Politeness towards a host across processes: one status query per host per interval, shared.

Several scripts often poll one cluster at once (wfl runs many). Each process already makes at
most one status query per system per interval (:mod:`expyre.polling`); this module makes that
hold for all processes that share a jobs database. The database keeps, per host (scheduler and
host name), the last status query: when, which remote ids, and the answer. Before querying, a
process

1. reuses the last answer for the jobs it covers if it is younger than the host's minimum
   interval (:func:`min_interval`);
2. otherwise takes the right to query (one process wins, in one database transaction), asks the
   scheduler about its own jobs *and every other ongoing job of that host in the database*, and
   records the answer for the others;
3. if another process is querying right now, waits up to :data:`WAIT_FOR_OTHER` seconds for its
   answer, then treats what the answer does not cover as not yet known (the next poll asks).
   A claim whose process has died is taken over at once when that process ran on this machine,
   and after :data:`CLAIM_TIMEOUT` seconds otherwise.

So five scripts gathering twenty jobs each make the queries one script would. A site that
publishes its own limit sets ``"limits": {"status_queries_per_minute": N}`` for the system.
"""
from __future__ import annotations

import os
import re
import socket
import threading
import time
from typing import Dict, Optional, Sequence

from .hooktypes import RemoteJob
from .polling import MIN_INTERVAL_REMOTE

#: Longest wait for another process's query of the same host to be answered.
WAIT_FOR_OTHER = 5.0
#: A claim older than this is taken to belong to a process that died while querying.
CLAIM_TIMEOUT = 120.0
#: How often the database is looked at while waiting for another process's answer.
WAIT_STEP = 0.05
#: Local statuses of jobs whose remote state is worth asking for (as in :mod:`expyre.gather`).
ONGOING = ("submitted", "started")

#: Number of status queries this process made (benchmarks and tests report it).
queries_made = 0
_count_lock = threading.Lock()


def host_key(system) -> str:
    """The key of ``system``'s host in the database: systems with the same scheduler on the same
    host share their status queries."""
    return f"{system.scheduler} {system.host}"


def min_interval(system) -> float:
    """Shortest time between two status queries of ``system``'s host, by all processes:
    :data:`expyre.polling.MIN_INTERVAL_REMOTE`, or longer if the system's ``limits`` say so."""
    per_minute = (getattr(system, "limits", None) or {}).get("status_queries_per_minute")
    return max(MIN_INTERVAL_REMOTE, 60.0 / per_minute) if per_minute else MIN_INTERVAL_REMOTE


def _who() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


def _died(claimer: Optional[str]) -> bool:
    """True if ``claimer`` (a :func:`_who`) is a process of this machine that no longer runs:
    a script killed while it queried (Ctrl-C ends its poll thread with it) holds no claim."""
    machine, _, rest = (claimer or "").partition(":")
    pid = rest.partition(":")[0]
    if machine != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # it runs, as another user
        return False
    return False


def _covered(record: Optional[dict], interval: float, remote_ids: Sequence[str], now: float) -> Optional[dict]:
    """The states of ``remote_ids`` from ``record`` if it is fresh, else None."""
    if record is None or record["query_time"] is None or now - record["query_time"] >= interval:
        return None
    asked = set(record["remote_ids"])
    return {rid: record["answer"][rid] for rid in remote_ids if rid in asked and rid in record["answer"]}


def status(system, jobs: Sequence[RemoteJob], db=None, systems: Optional[dict] = None) -> Dict[str, str]:
    """``{remote_id: state}`` for ``jobs`` of ``system``, asking its host only when due.

    A system on this machine (no host) is asked directly. Jobs that neither a fresh recorded
    answer nor a query of this call covers are left out (the caller treats them as not yet known).

    Parameters
    ----------
    system: System
        the jobs' system
    jobs: list(RemoteJob)
        the jobs to ask about
    db: JobsDB, optional
        the shared jobs database (default ``expyre.config.db``)
    systems: dict, optional
        the configured systems (default ``expyre.config.systems``), to find the other ongoing
        jobs of the same host
    """
    global queries_made
    if system.host is None:
        return system.status(jobs)
    from . import config
    from .gather import remote_job
    db = config.db if db is None else db
    systems = config.systems if systems is None else systems
    key, interval, who = host_key(system), min_interval(system), _who()
    wanted = [job.remote_id for job in jobs]
    deadline = time.time() + min(WAIT_FOR_OTHER, interval)
    while True:
        now = time.time()
        record = db.last_status_query(key)
        fresh = _covered(record, interval, wanted, now)
        if fresh is not None and len(fresh) == len(set(wanted)):
            return fresh
        claimer = record["claimed_by"] if record is not None else None
        dead = [claimer] if claimer and _died(claimer) else []
        if db.claim_status_query(key, who, interval, CLAIM_TIMEOUT, now=now, dead=dead):
            break
        record = db.last_status_query(key)
        someone_querying = (record is not None and record["claim_time"] is not None
                            and now - record["claim_time"] < CLAIM_TIMEOUT)
        if not someone_querying or time.time() >= deadline:
            # a fresh answer that does not cover every job: the rest waits for the next poll
            return _covered(record, interval, wanted, time.time()) or {}
        time.sleep(WAIT_STEP)
    # this process queries: its own jobs and every other ongoing job of the host in the database
    same_host = [name for name, other in systems.items() if other.host and host_key(other) == key]
    asked = {job.remote_id: job for job in jobs}
    for name in same_host:
        for row in db.jobs(status=list(ONGOING), system=re.escape(name)):
            if row.get("remote_id") and row["remote_id"] not in asked:
                asked[row["remote_id"]] = remote_job(row)
    try:
        answer = system.status(list(asked.values()))
    except BaseException:
        db.release_status_query(key, who)
        raise
    with _count_lock:
        queries_made += 1
    db.record_status_query(key, who, list(asked), answer)
    return {rid: answer[rid] for rid in wanted if rid in answer}
