"""A job's life cycle in the jobs database: every status change goes through this module.

The statuses (:attr:`expyre.jobsdb.JobsDB.possible_status`) and how a job moves between them::

    created --submit--> submitting --submitted--> submitted --running--> started
       ^                    |                         |                     |
       +---not_submitted----+                         +------outcome--------+--> succeeded / failed / died
    (any) --rerun--> created       (any) --processed--> processed        (any) --cleaned--> cleaned
    submitting/submitted/started --cancelled--> died    (any) --fail_job--> failed    (any) --reset--> (any)

Each move is an *event* of :data:`TRANSITIONS`: the statuses it may start from and those it may
end in. Asking for a move the table does not allow is a bug in expyre, and raises
:class:`IllegalTransitionError` before anything is written.

Two kinds of event:

* moves made by the process that owns the job at that moment (it is submitting it, or the user
  asked for it: ``rerun``, ``processed``, ``xpr fail_job``...). They are checked against the
  status the caller knows and written as they are, as ExPyRe always did;
* moves from what a poll saw (``running``, ``outcome``). Several processes may poll one job, so
  they are compare-and-set on the status the caller saw: a change another process made meanwhile
  stays (a ``processed`` job never becomes ``succeeded`` again), and the move returns False.

``remote_status`` (the scheduler's state as last seen) is written here too, with the status it
goes with.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from . import config
from .hooktypes import FINISHED_REMOTE_STATES
from .jobsdb import JobsDB

__all__ = ["TRANSITIONS", "IllegalTransitionError", "POLLED", "OUTCOME_FROM", "CANCELLABLE", "OUTCOMES",
           "record_new", "begin_submission", "submitted", "not_submitted", "rerun", "record_poll",
           "record_outcome", "cancelled", "processed", "cleaned", "fail", "reset"]

ALL: Tuple[str, ...] = tuple(JobsDB.possible_status)
#: Statuses in which the scheduler is asked about a job.
POLLED: Tuple[str, ...] = ("submitted", "started")
#: What a job ends as, and the statuses its outcome may be recorded over (never processed or cleaned).
OUTCOMES: Tuple[str, ...] = ("succeeded", "failed", "died")
OUTCOME_FROM: Tuple[str, ...] = ("submitted", "started", "succeeded", "failed", "died")
#: Statuses of jobs that a cancel stops (other jobs are left as they are).
CANCELLABLE: Tuple[str, ...] = ("submitting", "submitted", "started")


@dataclass(frozen=True)
class Transition:
    """An event's allowed moves: from any of ``sources`` to any of ``targets``; ``polled``: the
    move records what a poll saw, so it is compare-and-set on the status the caller saw."""

    sources: Tuple[str, ...]
    targets: Tuple[str, ...]
    polled: bool = False


#: Every status change there is, by event: the one statement of the job life cycle.
TRANSITIONS: Mapping[str, Transition] = {
    # start(): recorded before the scheduler is asked, so that a crash never leads to a second job
    "submit": Transition(("created",), ("submitting",)),
    # the scheduler took it (or find_submitted found it after an interrupted submission)
    "submitted": Transition(("submitting",), ("submitted",)),
    # copying or submitting failed for sure: nothing is left on the system
    "not_submitted": Transition(("submitting",), ("created",)),
    # start(force_rerun=True): forget the earlier run, whatever became of it
    "rerun": Transition(ALL, ("created",)),
    # a poll saw the job running
    "running": Transition(("submitted",), ("started",), polled=True),
    # its files came back (or the scheduler says it is over and there are none: died)
    "outcome": Transition(OUTCOME_FROM, OUTCOMES, polled=True),
    # xpr cancel: the job will not run any more and leaves the ongoing group
    "cancelled": Transition(CANCELLABLE, ("died",)),
    # mark_processed(), clean(), xpr fail_job: the user's word, whatever the status
    "processed": Transition(ALL, ("processed",)),
    "cleaned": Transition(ALL, ("cleaned",)),
    "fail_job": Transition(ALL, ("failed",)),
    # xpr reset_status: the user sets any status
    "reset": Transition(ALL, ALL),
}


class IllegalTransitionError(RuntimeError):
    """A status change the life cycle (:data:`TRANSITIONS`) does not allow: a bug in expyre."""


def _check(event: str, job_id: str, seen: Union[str, Sequence[str]], target: str) -> Optional[List[str]]:
    """Check ``event``'s move from ``seen`` to ``target``; the statuses to compare-and-set on
    (for a polled event), else None."""
    rule = TRANSITIONS[event]
    sources = [seen] if isinstance(seen, str) else list(seen)
    if target not in rule.targets or not sources or not set(sources) <= set(rule.sources):
        raise IllegalTransitionError(
            f"job {job_id}: '{event}' cannot change status {'/'.join(map(str, sources))} to {target} "
            f"(it moves {', '.join(rule.sources)} to {', '.join(rule.targets)})")
    return sources if rule.polled else None


def _move(event: str, job_id: str, seen: Union[str, Sequence[str]], target: str, **fields: Any) -> bool:
    """Check ``event``'s move from ``seen`` to ``target`` and write it with ``fields``; for a
    polled event compare-and-set on ``seen``. True if the row changed."""
    return config.db.update(job_id, if_status=_check(event, job_id, seen, target), status=target, **fields)


def _move_many(event: str, moves: Sequence[Tuple[str, str, Mapping[str, Any]]], target: str) -> None:
    """:func:`_move` of many jobs, ``(job_id, seen, fields)`` each, in one transaction (an event
    that is not polled: no compare-and-set)."""
    for job_id, seen, _fields in moves:
        if _check(event, job_id, seen, target) is not None:
            raise IllegalTransitionError(f"'{event}' is a polled event: move its jobs one by one")
    config.db.update_many([(job_id, dict(fields, status=target)) for job_id, _seen, fields in moves])


def record_new(job_id: str, *, name: str, from_dir: str, **fields: Any) -> None:
    """Add a job's row in status ``created`` (``fields``: ``batch``, ``system``, ``remote_id`` ...)."""
    record_new_many([dict(fields, id=job_id, name=name, from_dir=from_dir)])


def record_new_many(jobs: Sequence[Mapping[str, Any]]) -> None:
    """:func:`record_new` of many jobs (the arguments of each by name), in one transaction."""
    config.db.add_many([dict(job, status="created") for job in jobs])


def begin_submission(job_id: str, seen: str, *, system: str, remote_dir: str) -> None:
    """``created`` -> ``submitting`` on ``system``, before anything is copied or submitted."""
    begin_submissions([(job_id, seen, remote_dir)], system=system)


def begin_submissions(jobs: Sequence[Tuple[str, str, str]], *, system: str) -> None:
    """:func:`begin_submission` of many jobs, ``(job_id, seen, remote_dir)`` each, in one transaction."""
    _move_many("submit", [(job_id, seen, {"system": system, "remote_dir": remote_dir, "remote_id": None,
                                          "remote_status": None}) for job_id, seen, remote_dir in jobs], "submitting")


def submitted(job_id: str, seen: str, remote_id: str) -> None:
    """``submitting`` -> ``submitted`` with the scheduler's id."""
    submitted_many([(job_id, seen, remote_id)])


def submitted_many(jobs: Sequence[Tuple[str, str, str]]) -> None:
    """:func:`submitted` of many jobs, ``(job_id, seen, remote_id)`` each, in one transaction."""
    _move_many("submitted", [(job_id, seen, {"remote_id": remote_id}) for job_id, seen, remote_id in jobs],
               "submitted")


def not_submitted(job_id: str, seen: str) -> None:
    """``submitting`` -> ``created``: the submission failed for sure and its remote directory is gone."""
    _move("not_submitted", job_id, seen, "created", remote_dir=None)


def rerun(job_id: str, seen: str) -> None:
    """Any status -> ``created``, forgetting the earlier run's remote id and state (``force_rerun``)."""
    _move("rerun", job_id, seen, "created", remote_id=None, remote_status=None)


def record_poll(row: Mapping[str, Any], state: str) -> Dict[str, Any]:
    """Record the remote state a poll saw for the job of ``row`` (a jobs-database row), and
    ``submitted`` -> ``started`` when it is running; compare-and-set on the row's status.

    A job that died (was cancelled) keeps its remote state until the scheduler says it is over:
    the scheduler may show it running while it stops, but it will not run on.

    Returns
    -------
    dict
        the changes made (``remote_status``, ``status``); empty if none were needed, or another
        process changed the job's status meanwhile
    """
    return record_polls([(row, state)])[0]


def record_polls(polls: Sequence[Tuple[Mapping[str, Any], str]]) -> List[Dict[str, Any]]:
    """:func:`record_poll` of many jobs, ``(row, state)`` each, in one transaction."""
    planned = []
    for row, state in polls:
        changes: Dict[str, Any] = {}
        if not (row["status"] == "died" and state not in FINISHED_REMOTE_STATES):
            if state != "unknown" and state != row.get("remote_status"):
                changes["remote_status"] = state
            if state == "running" and row["status"] == "submitted":
                changes["status"] = "started"
        planned.append(changes)
    writes = []
    for (row, state), changes in zip(polls, planned):
        if not changes:
            continue
        if "status" in changes:
            seen = _check("running", row["id"], row["status"], "started")
            writes.append((row["id"], {"status": "started", "remote_status": state}, seen))
        else:
            writes.append((row["id"], {"remote_status": state}, row["status"]))
    done = iter(config.db.update_many(writes))
    return [changes if changes and next(done) else {} for changes in planned]


def record_outcome(job_id: str, kind: str, seen: Union[str, Sequence[str]] = OUTCOME_FROM) -> bool:
    """The job's outcome (``succeeded``, ``failed`` or ``died``), unless another process moved
    it out of ``seen`` meanwhile (compare-and-set); True if recorded."""
    return record_outcomes([(job_id, kind, seen)])[0]


def record_outcomes(outcomes: Sequence[Tuple[str, str, Union[str, Sequence[str]]]]) -> List[bool]:
    """:func:`record_outcome` of many jobs, ``(job_id, kind, seen)`` each, in one transaction."""
    return config.db.update_many([(job_id, {"status": kind}, _check("outcome", job_id, seen, kind))
                                  for job_id, kind, seen in outcomes])


def cancelled(job_id: str, seen: str) -> None:
    """A cancelled job -> ``died`` (remote state ``failed``): it will not run any more."""
    _move("cancelled", job_id, seen, "died", remote_status="failed")


def processed(job_id: str, seen: str) -> None:
    """-> ``processed``: the results were used (``mark_processed``)."""
    _move("processed", job_id, seen, "processed")


def cleaned(job_id: str, seen: str) -> None:
    """-> ``cleaned``: the job's files were cleaned (``clean``)."""
    _move("cleaned", job_id, seen, "cleaned")


def fail(job_id: str, seen: str) -> None:
    """-> ``failed`` by the user's word (``xpr fail_job``)."""
    _move("fail_job", job_id, seen, "failed")


def reset(job_id: str, seen: str, status: str) -> None:
    """-> ``status``, whatever it was (``xpr reset_status``)."""
    _move("reset", job_id, seen, status)

