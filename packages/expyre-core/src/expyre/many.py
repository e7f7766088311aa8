"""Many jobs at once: starting a list of ``ExPyRe`` jobs together, and finding a batch again.

:func:`start_many` starts many jobs on one system with one transfer of all their stage
directories, recording each job as ``submitting`` before the scheduler is asked and as
``submitted`` right after, so that a crash at any point leaves every job either not submitted
(``created``), known (``submitted``), or recoverable by name (``submitting``): never submitted
twice. What the scheduler's per-user job limit refuses is returned as a local backlog (still
``created``, nothing on the system) for the caller to start later. :class:`BatchLookup` lets
the jobs an :class:`expyre.Executor` creates be found again by a restarted script with one
lookup in the jobs database instead of one per call.
"""
from __future__ import annotations

import dataclasses
import re
import threading
import warnings
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

from . import arrays, config, jobfiles, jobscript, jobstate, stage
from . import preflight as _preflight
from .batch import SubmitLimitError
from .func import ExPyRe, _system
from .hooktypes import ConnectionLostError, JobSpec
from .jobsdb import JobsDB
from .resources import Resources

__all__ = ["start_many", "BatchLookup"]


class BatchLookup:
    """The earlier jobs of one batch, read from the jobs database once.

    A batch is named after its first call (``<name>_<hash>``), so that rerunning the same script
    gives the same batch name. The first :meth:`earlier_jobs` reads the whole batch with one
    indexed lookup; each call after that is answered from memory. A call the batch does not know
    (a new one, or one an earlier batch or a plain ``ExPyRe`` created) is answered from one more
    indexed lookup, of every job with the call's job name, made the first time such a call comes.
    So a batch costs at most two lookups per job name, never one per call. A job this process
    created or re-attached to (:meth:`remember`) is answered from its ``ExPyRe`` object, as it is
    now, not as it was read.

    The batch also publishes and records the jobs it creates (:meth:`add_new`, :meth:`record`):
    a thousand new jobs make one jobs-database transaction instead of a thousand.
    """

    def __init__(self) -> None:
        self.name: Optional[str] = None
        self._jobs: Dict[str, Dict[str, Union[dict, ExPyRe]]] = {}  # call -> job id -> row or live job
        self._names_read: set = set()
        self._unrecorded: Dict[str, Tuple[ExPyRe, Path]] = {}  # job id -> job, its directory's temporary name
        self._lock = threading.Lock()

    def add_new(self, xpr: ExPyRe, hash_length: int) -> None:
        """Take a new job whose stage directory is complete under its temporary name: it gets its
        final name now (``xpr.id`` is final), and the directory and the job's row are made real by
        the next :meth:`record`. A process killed before that leaves no job, only a temporary
        directory (removed later by :func:`expyre.stage.remove_abandoned_stage_dirs`), so a rerun
        creates the job again; nothing of it was submitted."""
        building = xpr.stage_dir
        xpr.stage_dir, xpr._unrecorded_in = stage.published_path(building), self
        with self._lock:
            self._unrecorded[xpr.id] = (xpr, building)
        self.remember(xpr, hash_length)

    def unrecorded(self, job_id: str) -> Optional[BatchLookup]:
        """This batch, if the job is one it is yet to record (:meth:`add_new`); else None."""
        return self if job_id in self._unrecorded else None

    def record(self) -> None:
        """Publish the stage directories of the jobs taken by :meth:`add_new` since the last call,
        and add their rows (status ``created``) in one transaction. Called before any of them is
        started (:func:`start_many`, :meth:`ExPyRe.start`), and by the Executor when a batch
        ends."""
        with self._lock:
            unrecorded, self._unrecorded = self._unrecorded, {}
            if not unrecorded:  # no transaction for nothing (the Executor calls this before each start)
                return
            published = []
            try:
                for xpr, building in unrecorded.values():
                    stage.publish_stage_dir(building)
                    published.append(xpr)
            finally:
                jobstate.record_new_many([dict(id=xpr.id, name=xpr.name, from_dir=str(xpr.stage_dir),
                                               batch=self.name) for xpr in published])
                for xpr in published:
                    xpr._unrecorded_in = None

    def earlier_jobs(self, name: str, arghash: str) -> List[dict]:
        """Rows of the earlier jobs (in a state that can still produce results) of this call."""
        prefix = f"{name}_{arghash}"
        if self.name is None:
            self.name = prefix
            self._keep(config.db.batch_jobs(prefix, status="can_produce_results"), len(arghash))
        if prefix not in self._jobs and name not in self._names_read:
            self._names_read.add(name)
            self._keep(config.db.jobs(status="can_produce_results", id=re.escape(f"{name}_") + ".*"), len(arghash))
        rows = [entry if isinstance(entry, dict) else _row_of(entry) for entry in self._jobs.get(prefix, {}).values()]
        return [row for row in rows if row["status"] in JobsDB.status_group["can_produce_results"]]

    def remember(self, xpr: ExPyRe, hash_length: int) -> None:
        """A job this process created or re-attached to, answered from now on as it is (by the
        first ``ExPyRe`` object of the job, the one an Executor keeps up to date)."""
        entries = self._jobs.setdefault(_call_of(xpr.id, xpr.name, hash_length), {})
        if not isinstance(entries.get(xpr.id), ExPyRe):
            entries[xpr.id] = xpr

    def _keep(self, rows, hash_length: int) -> None:
        for row in rows:
            self._jobs.setdefault(_call_of(row["id"], row["name"], hash_length), {}).setdefault(row["id"], row)


def _call_of(job_id: str, name: str, hash_length: int) -> str:
    """The call part ``<name>_<hash>`` of a job id ``<name>_<hash>_<unique>``."""
    return job_id[:len(name) + 1 + hash_length]


def _row_of(xpr: ExPyRe) -> dict:
    """A jobs-database row for a live job, from what it knows (no database read)."""
    return {"id": xpr.id, "name": xpr.name, "from_dir": str(xpr.stage_dir), "status": xpr.status,
            "remote_id": xpr.remote_id, "system": xpr.system_name, "remote_dir": xpr.remote_dir}


def start_many(xprs: Sequence[ExPyRe], resources: Union[dict, Resources], system_name: Optional[str] = None,
               header_extra: Sequence[str] = (), exact_fit: bool = True, partial_node: bool = False,
               python_cmd: Optional[str] = None, force_rerun: bool = False,
               preflight: Optional[bool] = None, max_parallel: Optional[int] = None) -> List[ExPyRe]:
    """Start many jobs on one system together, with the arguments of :meth:`ExPyRe.start`.

    The stage directories of all jobs are copied to the system in one transfer; then the jobs are
    submitted (recorded as ``submitting`` first, ``submitted`` with their remote ids right after).
    On a scheduler with job arrays (see :mod:`expyre.arrays`), two or more jobs go as array
    jobs, one task per job, split into several arrays above the scheduler's maximum array size;
    otherwise each job is submitted on its own, all of them in one remote command when the
    scheduler plugin can (the ``submit_many`` hook: ``direct`` and the batch schedulers can).
    Jobs that were already started (re-attached to an earlier run, or started before) are left
    alone unless ``force_rerun``; a job whose submission an earlier process left unfinished is
    looked up in the scheduler first, as :meth:`ExPyRe.start` does.

    Parameters
    ----------
    xprs: list(ExPyRe)
        the jobs to start (the same job given twice is started once)
    resources: dict or Resources
        resources of each job
    system_name: str, optional
        system to start them on; default as for :meth:`ExPyRe.start`
    header_extra, exact_fit, partial_node, python_cmd, force_rerun, preflight
        as for :meth:`ExPyRe.start`; preflight checks the distinct calls once, before anything
        is transferred
    max_parallel: int, optional
        when the jobs go as array jobs, the most tasks of each array that run at once

    Returns
    -------
    list(ExPyRe)
        the local backlog: the jobs the scheduler's per-user job limit left no room for (Slurm
        ``MaxSubmitJobs``, Grid Engine ``max_u_jobs``, PBS ``max_queued``). An array refused at
        the limit is tried again in arrays half its size, down to single jobs; what still does
        not fit is back in status ``created`` with nothing left on the system. Start them again
        (``start_many`` with the same list, or these) when some of your jobs have ended;
        :class:`expyre.Executor` does that by itself. Empty when every job was started.

    Raises
    ------
    Exception
        the first error of the transfer or of a submission (other than the per-user job
        limit). Jobs submitted before it stay submitted; the others are back in status
        ``created`` with nothing left on the system (except one whose submission's outcome is
        unknown after a lost connection: it stays ``submitting`` and the next start looks for
        it), so calling ``start_many`` again with the same list starts exactly the ones that
        are missing.
    """
    unique: Dict[str, ExPyRe] = {}
    for xpr in xprs:
        unique.setdefault(xpr.id, xpr)
    for xpr in unique.values():
        xpr._record_if_new()
    if isinstance(resources, dict):
        resources = Resources(**resources)
    system = _system(system_name)

    to_start: List[ExPyRe] = []
    for xpr in unique.values():
        if xpr.status == "submitting" and not force_rerun:
            xpr._recover_submission()
        if xpr.status == "created" or force_rerun:
            to_start.append(xpr)
    if not to_start:
        return []
    if force_rerun:
        for xpr in to_start:
            if xpr.status != "created":
                xpr._forget_previous_run()

    checked = set()
    for xpr in to_start:
        requested = preflight if preflight is not None else getattr(xpr, "preflight", None)
        if not _preflight.enabled(system, requested):
            continue
        record = xpr._staged_preflight_record()
        setup, provided = xpr._job_side_setup() if record is not None else ([], set())
        key = repr((record, setup, sorted(provided)))
        if record is not None and key not in checked:
            checked.add(key)
            _preflight.check_call(system, record, python_cmd, setup, provided)

    jobs: List[JobSpec] = []
    scripts: Dict[str, str] = {}  # written by the group that sends each job (see _Group)
    for xpr in to_start:
        job = system.job_spec(xpr.id, xpr.name, xpr.stage_dir, resources, header_extra=list(header_extra),
                              exact_fit=exact_fit, partial_node=partial_node)
        scripts[xpr.id] = xpr._render_script(system, job, python_cmd)
        jobs.append(job)
    support = system.array_support() if len(to_start) >= arrays.MIN_ARRAY_JOBS else None

    # Refused at the per-user job limit: what was refused is tried again in arrays half the size
    # of the refused one (an array of N tasks counts N jobs), down to single jobs, one array per
    # attempt, so that each attempt copies to the host only the jobs it tries; a single job
    # refused ends it, and the rest waits in the caller's backlog.
    remaining = list(zip(to_start, jobs))
    backlog: List[ExPyRe] = []
    at_most: Optional[int] = None  # jobs per attempt, once the limit refused one
    while remaining:
        count = len(remaining) if at_most is None else at_most
        attempt, rest = remaining[:count], remaining[count:]
        refused = _stage_and_submit(system, attempt, scripts, support, max_parallel)
        if refused is None:
            remaining = rest
            continue
        size, back = refused
        remaining = back + rest
        if size <= 1 or support is None:
            backlog = [xpr for xpr, _job in remaining]
            break
        at_most = size // 2
        support = dataclasses.replace(support, max_size=at_most)
    system.poll_schedule.restart()
    return backlog


def _stage_and_submit(system, members: List[Tuple[ExPyRe, JobSpec]], scripts: Mapping[str, str],
                      support: Optional[arrays.ArraySupport],
                      max_parallel: Optional[int]) -> Optional[Tuple[int, List[Tuple[ExPyRe, JobSpec]]]]:
    """Submit the jobs in groups (arrays where ``support`` allows), their directories going to
    the host with the first submission; ``scripts`` holds each job's script, by job id.

    Returns None when every job was submitted; when a group was refused at the per-user job
    limit (:class:`expyre.batch.SubmitLimitError`), the size of that group and the jobs it and
    the later groups hold, all back in ``created`` with nothing left on the system. Any other
    error is raised, as :func:`start_many` describes.
    """
    batches = arrays.groups(members, support) if support is not None else [members]
    groups = [_Group(list(group), scripts, support, system) for group in batches]
    jobstate.begin_submissions([(xpr.id, xpr.status, job.remote_dir) for xpr, job in members], system=system.name)
    for xpr, job in members:
        xpr.status, xpr.system_name, xpr.remote_dir = "submitting", system.name, job.remote_dir
    # the job directories go to the host with the first submission, in one round trip
    copies = [pair for group in groups for pair in group.copies]
    try:
        return _submit_groups(system, groups, copies, max_parallel)
    finally:
        for group in groups:
            group.drop_bundle()


def _submit_groups(system, groups: Sequence[_Group], copies: Sequence[Tuple[Path, str]],
                   max_parallel: Optional[int]) -> Optional[Tuple[int, List[Tuple[ExPyRe, JobSpec]]]]:
    """Submit each group in turn, the first with ``copies``, recording each job's remote id;
    stop at a group refused at the per-user job limit (see :func:`_stage_and_submit`)."""
    first = system.submit_shell(copies)
    for n, group in enumerate(groups):
        later = [member for g in groups[n + 1:] for member in g.members]
        shell = first if n == 0 else system.submit_shell()
        try:
            outcomes = group.submit(max_parallel, shell)
        except ConnectionLostError as exc:
            if exc.sent is False and not first.copied:  # nothing reached the host
                _undo(system, [x for x, _ in group.members + later], [], remove=False)
            else:  # this group's outcome is unknown: it stays "submitting" for the next start to look up
                _undo(system, [x for x, _ in later], [j for _, j in later])
            raise
        except SubmitLimitError:
            # refused: nothing of this group was queued
            members = group.members + later
            _undo(system, [x for x, _ in members], [j for _, j in members], remove=first.copied)
            return len(group.members), members
        except BaseException:
            if group.array is None and len(group.members) > 1:  # some may be taken: looked up by the next start
                _undo(system, [x for x, _ in later], [j for _, j in later], remove=first.copied)
                raise
            members = group.members + later
            _undo(system, [x for x, _ in members], [j for _, j in members], remove=first.copied)
            raise
        refused = _record(system, group, outcomes, later, first.copied)
        if refused is not None:
            return refused
    return None


def _record(system, group: _Group, outcomes: Sequence[Union[str, BaseException]],
            later: List[Tuple[ExPyRe, JobSpec]], copied: bool) -> Optional[Tuple[int, List[Tuple[ExPyRe, JobSpec]]]]:
    """Record what became of each job of ``group`` (``outcomes``: a remote id, or an exception, per
    job tried, see :meth:`expyre.system.System.submit_many`): taken jobs are ``submitted``, jobs
    whose outcome is unknown stay ``submitting`` (the next start looks them up), and jobs not
    taken or not tried go back to ``created``, with the jobs of the ``later`` groups.

    Returns None when every job was taken; the size and jobs of the refusal when the per-user job
    limit refused one (they and the jobs after them are the backlog); else raises the first error.
    """
    taken = [(xpr, remote_id) for (xpr, _job), remote_id in zip(group.members, outcomes)
             if not isinstance(remote_id, BaseException)]
    jobstate.submitted_many([(xpr.id, xpr.status, remote_id) for xpr, remote_id in taken])
    for xpr, remote_id in taken:
        xpr.remote_id, xpr.status = remote_id, "submitted"
    if len(taken) == len(group.members):
        return None
    failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    unknown = {id(xpr) for (xpr, _job), outcome in zip(group.members, outcomes)
               if isinstance(outcome, ConnectionLostError)}
    back = [(xpr, job) for xpr, job in group.members if xpr.status == "submitting" and id(xpr) not in unknown]
    _undo(system, [x for x, _ in back + later], [j for _, j in back + later], remove=copied)
    lost = [failure for failure in failures if isinstance(failure, ConnectionLostError)]
    if lost:
        raise lost[0]
    if failures and isinstance(failures[0], SubmitLimitError):
        return len(back), back + later
    if failures:
        raise failures[0]
    raise RuntimeError(f"scheduler '{system.scheduler}' tried {len(outcomes)} of {len(group.members)} jobs "
                       "and said nothing of the others; they are back in status 'created'")


class _Group:
    """Jobs submitted together: one job on its own, the tasks of one array job, or several jobs
    each on its own in one remote command (a scheduler or system without arrays).

    Made before the jobs are copied to the host: each task's marker
    (:func:`expyre.arrays.write_task_marker`) goes into its own stage directory, and an array's
    script (and, for a system with a run directory, the bundle of the other tasks' files) into its
    first task's. Each job's script is written into the stage directory that is copied (or run
    from) as it is; a task that goes in the bundle has its script there only, from memory, which
    saves a thousand-task array a thousand file creations.
    """

    def __init__(self, members: List[Tuple[ExPyRe, JobSpec]], scripts: Mapping[str, str],
                 support: Optional[arrays.ArraySupport], system):
        self.members, self.system = members, system
        self.array: Optional[JobSpec] = None
        #: what of the group is copied to the host: every job's directory, or only an array's first
        self.copies = [(xpr.stage_dir, job.remote_dir) for xpr, job in members]
        if len(members) == 1 or support is None:
            for xpr, _job in members:
                jobscript.write_job_script(xpr.stage_dir / jobfiles.SCRIPT, scripts[xpr.id])
                arrays.clear_task_marker(xpr.stage_dir)
            return
        leader_xpr, leader = members[0]
        self.array = arrays.array_spec(leader, len(members))
        markers = [arrays.write_task_marker(xpr.stage_dir, arrays.TaskMarker(leader.remote_dir, self.array.id, index))
                   for index, (xpr, _job) in enumerate(members)]
        bundle = None
        if system.runs_in_stage_dir:  # each task runs in its own stage directory
            for xpr, _job in members:
                jobscript.write_job_script(xpr.stage_dir / jobfiles.SCRIPT, scripts[xpr.id])
        else:  # only the first task's directory is copied; the other tasks' files go in its bundle
            jobscript.write_job_script(leader_xpr.stage_dir / jobfiles.SCRIPT, scripts[leader_xpr.id])
            bundle = [None, *arrays.write_bundle(leader_xpr.stage_dir, [
                (xpr.stage_dir, {jobfiles.SCRIPT: (scripts[xpr.id].encode(), 0o700),
                                 jobfiles.ARRAY_TASK: (marker, 0o600)})
                for (xpr, _job), marker in zip(members[1:], markers[1:])])]
            self.copies = [(leader_xpr.stage_dir, leader.remote_dir)]
        jobscript.write_job_script(leader_xpr.stage_dir / jobfiles.ARRAY_SCRIPT,
                                   system.array_script(support, self.array, [job for _, job in members], bundle))

    def drop_bundle(self) -> None:
        """Remove the local copy of the array's bundle (it is needed only on the host)."""
        if self.array is not None:
            (self.members[0][0].stage_dir / jobfiles.ARRAY_BUNDLE).unlink(missing_ok=True)

    def submit(self, max_parallel: Optional[int], shell) -> List[Union[str, BaseException]]:
        """Submit the group through ``shell`` (a :class:`expyre.system.SubmitShell`, which may
        carry the copy of job directories): an array, a job on its own, or several jobs each on
        its own in one remote command (:meth:`expyre.system.System.submit_many`). The remote id
        of each member, in order; for several jobs, an exception for each one not taken (or
        whose outcome is unknown), and nothing for those after it that were not tried."""
        if self.array is not None:
            return list(self.system.submit_array(self.array, jobfiles.ARRAY_SCRIPT, max_parallel, shell=shell))
        if len(self.members) == 1:
            return [self.system.submit(self.members[0][1], jobfiles.SCRIPT, shell=shell)]
        return self.system.submit_many([job for _xpr, job in self.members], jobfiles.SCRIPT, shell=shell)


def _undo(system, xprs: Sequence[ExPyRe], jobs: Sequence[JobSpec], remove: bool = True) -> None:
    """Put jobs that were not submitted back to ``created``, removing their remote directories
    (unless ``remove`` is False: they were never copied)."""
    if not xprs:
        return
    try:
        if remove:
            system.remove_remote_dirs([job.remote_dir for job in jobs])
    except Exception as exc:
        warnings.warn(f"could not remove the directories of {len(jobs)} jobs on system '{system.name}' "
                      f"after the failed submission: {exc}", RuntimeWarning, stacklevel=3)
    for xpr in xprs:
        xpr._set_created()
