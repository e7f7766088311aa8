"""``expyre.Executor``: many function calls as jobs on one system, behind ``concurrent.futures``.

Each call is an :class:`~expyre.func.ExPyRe` job: hashed, re-attached to an earlier identical job
when a script is run again, staged and started. Calls submitted together (all of a ``map``, or all
submitted inside :meth:`Executor.batch`) are started together by :func:`expyre.many.start_many`:
one transfer of all their stage directories. One background thread per executor waits for all of
them: each poll is one status query for the system and one copy-back of every job that finished
(:func:`expyre.gather.sync`), never a query per job. The futures are ordinary
``concurrent.futures.Future`` objects, so ``wait`` and ``as_completed`` work on them.

Calls the scheduler's per-user job limit has no room for (the backlog :func:`~expyre.many.start_many`
returns) wait here, still ``created``, and are started again after a poll that saw jobs end, or
after a back-off that doubles while the queue stays full, a window of about as many calls as
slots freed up at a time: the map goes on, it never fails for it.
"""
from __future__ import annotations

import concurrent.futures
import re
import threading
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

from . import config, gather, many, results
from .func import ExPyRe, _system
from .hooktypes import FINISHED_REMOTE_STATES
from .manyprogress import ManyProgress
from .resources import Resources

__all__ = ["Executor", "ExPyReFuture"]


def _make_chunk_runner():
    # Made inside a function so that cloudpickle sends it by value: the job side needs no expyre.
    def run_chunk(function, calls):
        return [function(*args) for args in calls]
    return run_chunk


_run_chunk = _make_chunk_runner()


class ExPyReFuture(concurrent.futures.Future):
    """The future of one call run as an ExPyRe job.

    ``result()`` is the function's return value; ``exception()`` what it raised, of its own type,
    with the remote traceback as its ``__cause__`` (and, on Python 3.11+, as a note), exactly as
    :meth:`ExPyRe.get_results` raises it. A job that ended without a result gives
    :class:`~expyre.ExPyReJobDiedError`. :meth:`cancel` also cancels the job on the system.
    """

    def __init__(self, executor: Executor, xpr: ExPyRe):
        super().__init__()
        self._executor = executor
        self.xpr = xpr

    @property
    def id(self) -> str:
        """The expyre job id."""
        return self.xpr.id

    @property
    def status(self) -> str:
        """The job's status in the jobs database (``created``, ``submitted``, ``succeeded``, ...)."""
        return self.xpr.status

    @property
    def remote_id(self) -> Optional[str]:
        """The scheduler's id of the job, once submitted."""
        return self.xpr.remote_id

    @property
    def stdout(self) -> Optional[str]:
        """What the function printed on stdout (None until the job's files are back)."""
        return results.read_outputs(self.xpr.stage_dir, self.xpr.id)[0]

    @property
    def stderr(self) -> Optional[str]:
        """What the function printed on stderr (None until the job's files are back)."""
        return results.read_outputs(self.xpr.stage_dir, self.xpr.id)[1]

    def running(self) -> bool:
        """True while the job runs on the system."""
        return not self.done() and self.xpr.status == "started"

    def cancel(self) -> bool:
        """Cancel the call: not started yet, it never will be; queued or running, the scheduler
        cancels the job. Returns False if the call has already finished."""
        if self.cancelled():
            return True
        if not self._cancel_here():
            return self.cancelled()
        self._executor._cancelled([self])
        return True

    def _cancel_here(self) -> bool:
        """Mark the future cancelled (and tell ``wait``/``as_completed``); False if it was done."""
        with self._condition:
            if self.done() or not super().cancel():
                return False
            self.set_running_or_notify_cancel()
        return True


class _Job:
    """One job and the futures waiting for it (the same call submitted twice shares its job)."""

    def __init__(self, xpr: ExPyRe):
        self.xpr = xpr
        self.futures: List[ExPyReFuture] = []
        self.remote_status: Optional[str] = None
        self.last_chance = False
        self.finished = False
        self.pending = False


class Executor(concurrent.futures.Executor):
    """Runs function calls as jobs on one system and hands back ``concurrent.futures`` futures.

    Parameters
    ----------
    system_name: str, optional
        system to run on; default ``$EXPYRE_SYS``, or the only configured system
    resources: dict or Resources
        resources of each job, as for :meth:`ExPyRe.start`
    name: str, optional
        job name for every call; default the function's name
    input_files, env_vars, pre_run_commands, post_run_commands, output_files, try_restart_from_prev, hash_ignore
        as for :class:`~expyre.func.ExPyRe`, for every call (``hash_ignore`` only for calls that
        are not packed into chunks)
    header_extra, exact_fit, partial_node, python_cmd, preflight
        as for :meth:`ExPyRe.start`, for every call
    max_parallel: int, optional
        on a scheduler with job arrays (calls started together go as array jobs), the most
        tasks of each array that run at once (Slurm ``%N``, Grid Engine ``-tc``)
    check_interval: float, default 30
        longest time between polls of the system, in seconds (polls start quickly and slow down)
    quiet: bool, default False
        show no progress line while ``map`` results or ``shutdown(wait=True)`` are waited for

    Examples
    --------
    >>> with Executor("remote", resources={"max_time": "1h", "num_cores": 1}, partial_node=True) as ex:
    ...     squares = list(ex.map(pow, range(100), itertools.repeat(2)))
    """

    def __init__(self, system_name: Optional[str] = None, resources: Union[dict, Resources, None] = None, *,
                 name: Optional[str] = None, input_files: Sequence[Union[str, Path]] = (),
                 env_vars: Sequence[str] = (), pre_run_commands: Sequence[str] = (),
                 post_run_commands: Sequence[str] = (), output_files: Sequence[str] = (),
                 try_restart_from_prev: bool = True, hash_ignore: Sequence[Union[int, str]] = (),
                 header_extra: Sequence[str] = (), exact_fit: bool = True, partial_node: bool = False,
                 python_cmd: Optional[str] = None, max_parallel: Optional[int] = None,
                 check_interval: float = 30.0, quiet: bool = False, preflight: Optional[bool] = None):
        if resources is None:
            raise TypeError("Executor: resources are required, for example "
                            "resources={'max_time': '1h', 'num_cores': 1} with partial_node=True")
        self._system = _system(system_name)
        self.system_name = self._system.name
        self._resources = Resources(**resources) if isinstance(resources, dict) else resources
        # a request that fits no partition is an error here, not in every future
        self._resources.find_nodes(self._system.partitions, exact_fit=exact_fit, partial_node=partial_node)
        self._name = name
        self._xpr_options = dict(input_files=list(input_files), env_vars=list(env_vars),
                                 pre_run_commands=list(pre_run_commands), post_run_commands=list(post_run_commands),
                                 output_files=list(output_files), try_restart_from_prev=try_restart_from_prev,
                                 hash_ignore=list(hash_ignore))
        if max_parallel is not None and (isinstance(max_parallel, bool) or not isinstance(max_parallel, int)
                                         or max_parallel < 1):
            raise ValueError(f"Executor: max_parallel must be a positive whole number or None, not {max_parallel!r}")
        self._start_options = dict(header_extra=list(header_extra), exact_fit=exact_fit, partial_node=partial_node,
                                   python_cmd=python_cmd, preflight=preflight, max_parallel=max_parallel)
        self.check_interval = float(check_interval)
        self.quiet = quiet
        self._batch = many.BatchLookup()
        self._lock = threading.RLock()
        self._start_lock = threading.Lock()
        self._wake = threading.Event()
        self._jobs: Dict[str, _Job] = {}
        self._pending: List[_Job] = []
        # the local backlog: calls the per-user job limit had no room for, and when to try again
        self._backlog: List[_Job] = []
        self._backlog_not_before = 0.0
        self._backlog_deadline = 0.0
        self._backlog_wait = 0.0
        self._ended_since_try = 0
        self._warned_backlog = False
        self._held = 0
        self._shutdown = False
        self._thread: Optional[threading.Thread] = None
        self._waiting = 0
        self._progress: Optional[ManyProgress] = None

    # ------------------------------------------------------------------ submitting

    def submit(self, fn: Callable, /, *args: Any, **kwargs: Any) -> ExPyReFuture:
        """Run ``fn(*args, **kwargs)`` as a job; returns its future at once.

        The call is pickled and hashed here (an error in doing so is raised here); it is started
        by the executor's thread together with whatever else was submitted meanwhile, or at the
        end of the enclosing :meth:`batch`.
        """
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
        xpr = ExPyRe(self._job_name(fn), function=fn, args=list(args), kwargs=kwargs, _batch=self._batch,
                     **self._xpr_options)
        future = self._track(xpr)
        if not self._held:  # inside a batch the thread has nothing to do until the batch ends
            self._wake.set()
        return future

    def map(self, fn: Callable, *iterables: Iterable, timeout: Optional[float] = None,
            chunksize: int = 1) -> Iterator:
        """Like :func:`map`, each call a job: returns an iterator of the results, in order.

        All calls are created and started (in one batch) before this returns. ``chunksize > 1``
        packs that many calls into each job. Iterating raises a call's exception at its place,
        and ``TimeoutError`` if a result is not there ``timeout`` seconds after this call.
        Leaving the iteration early does not cancel the jobs (cancel the futures for that).
        """
        if chunksize < 1:
            raise ValueError("chunksize must be >= 1")
        end_time = None if timeout is None else time.monotonic() + timeout
        calls = list(zip(*iterables))
        with self.batch():
            if chunksize == 1:
                futures = [self.submit(fn, *args) for args in calls]
            else:
                chunks = [calls[i:i + chunksize] for i in range(0, len(calls), chunksize)]
                name = self._job_name(fn)
                futures = [self._submit_named(name, _run_chunk, fn, chunk) for chunk in chunks]
        return self._results(futures, end_time, chunked=chunksize > 1)

    @contextmanager
    def batch(self):
        """Start everything submitted inside the block together, when the block ends (the
        executor's thread neither starts nor polls while the block runs).

        The calls are started in the calling thread before the block is left (one transfer); an
        error in starting them goes to their futures.
        """
        with self._lock:
            self._held += 1
        try:
            yield self
        finally:
            with self._lock:
                self._held -= 1
            self._batch.record()  # the block's new jobs get their rows in one transaction
            self._start_pending()
            self._wake.set()

    def _submit_named(self, name: str, fn: Callable, *args: Any) -> ExPyReFuture:
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
        # the positions of hash_ignore are the user's function's, not those of the chunk runner
        options = dict(self._xpr_options, hash_ignore=[])
        xpr = ExPyRe(name, function=fn, args=list(args), _batch=self._batch, **options)
        return self._track(xpr)

    def _job_name(self, fn: Callable) -> str:
        if self._name is not None:
            return self._name
        return re.sub(r"[^A-Za-z0-9_.-]", "_", getattr(fn, "__name__", "call")) or "call"

    def _track(self, xpr: ExPyRe) -> ExPyReFuture:
        future = ExPyReFuture(self, xpr)
        with self._lock:
            job = self._jobs.get(xpr.id)
            if job is None or job.finished:
                job = self._jobs[xpr.id] = _Job(xpr)
                if xpr.status in ("created", "submitting"):
                    job.pending = True
                    self._pending.append(job)
            job.futures.append(future)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"expyre-executor-{self.system_name}",
                                                daemon=True)
                self._thread.start()
        return future

    def _results(self, futures: List[ExPyReFuture], end_time: Optional[float], chunked: bool) -> Iterator:
        self._begin_wait()
        try:
            for future in futures:
                value = future.result() if end_time is None else future.result(end_time - time.monotonic())
                if chunked:
                    yield from value
                else:
                    yield value
        finally:
            self._end_wait()

    # ------------------------------------------------------------------ shutting down and cancelling

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """No more calls; with ``cancel_futures`` cancel every unfinished one (and its job), with
        ``wait`` wait for all the others. Without ``wait`` the jobs go on, and a rerun of the
        script re-attaches to them."""
        with self._lock:
            self._shutdown = True
            unfinished = [f for job in self._jobs.values() for f in job.futures if not f.done()]
        self._batch.record()
        waiting = wait and bool(unfinished)
        if waiting:
            self._begin_wait()
        try:
            if cancel_futures:
                self._cancelled([f for f in unfinished if f._cancel_here()])
            self._wake.set()
            if wait and self._thread is not None:
                self._thread.join()
        finally:
            if waiting:
                self._end_wait()

    def _cancelled(self, futures: Sequence[ExPyReFuture]) -> None:
        """Cancel the jobs whose futures are all cancelled: not started ones are not started,
        submitted ones are cancelled on the system with one scheduler call."""
        remote: List[_Job] = []
        with self._lock:
            for job in {id(f): self._jobs.get(f.xpr.id) for f in futures}.values():
                if job is None or job.finished or not all(f.cancelled() for f in job.futures):
                    continue
                job.finished = True
                if job.pending:
                    job.pending = False
                    (self._pending if job in self._pending else self._backlog).remove(job)
                elif job.xpr.remote_id is not None and job.xpr.status in ("submitted", "started"):
                    remote.append(job)
        for system, jobs in _by_system(remote):
            system.cancel([gather.remote_job(_row(job)) for job in jobs])

    # ------------------------------------------------------------------ the background thread

    def _run(self) -> None:
        # never more often than the system's poll schedule allows (1 s for a remote scheduler)
        floor = self._system.poll_schedule.min_interval
        first = max(min(0.25, self.check_interval), floor)
        interval = first
        while True:
            with self._lock:
                unfinished = [job for job in self._jobs.values() if not job.finished]
                if self._shutdown and not unfinished:
                    break
            try:
                with self._lock:
                    held = self._held > 0
                if not held:  # a batch being submitted is started, and polled, as a whole
                    self._start_pending()
                    self._poll()
                    self._retry_backlog()
                self._show_progress()
            except Exception as exc:  # the thread must go on: the futures depend on it
                warnings.warn(f"expyre Executor on system '{self.system_name}': poll failed, trying again "
                              f"in {interval:g} s: {type(exc).__name__}: {exc}", RuntimeWarning, stacklevel=1)
            with self._lock:
                idle = not any(not job.finished for job in self._jobs.values())
            woken = self._wake.wait(None if idle and not self._shutdown else interval)
            self._wake.clear()
            interval = first if woken else max(min(interval * 2, self.check_interval), floor)

    def _start_pending(self) -> None:
        with self._start_lock:
            with self._lock:
                if self._held or not self._pending:
                    return
                if self._backlog:
                    # the queue is full: new calls wait behind the backlog, in order
                    for job in self._pending:
                        job.pending = True
                    self._backlog.extend(self._pending)
                    self._pending = []
                    return
                jobs, self._pending = self._pending, []
                for job in jobs:
                    job.pending = False
            self._start(jobs)

    def _start(self, jobs: List[_Job]) -> bool:
        """Start ``jobs`` together (the caller holds ``_start_lock``); what the per-user job limit
        refuses goes back to the front of the backlog. True if every job was taken."""
        try:
            left = many.start_many([job.xpr for job in jobs], self._resources, self.system_name,
                                   **self._start_options)
            error = None
        except Exception as exc:
            left, error = [], exc
        waiting = {xpr.id for xpr in left}
        backlog = [job for job in jobs if job.xpr.id in waiting and job.xpr.status == "created"]
        for job in jobs:
            if job.xpr.status in ("created", "submitting") and job not in backlog:
                self._resolve_error(job, error if error is not None else
                                    RuntimeError(f"job {job.xpr.id} was not started"))
        self._keep_in_backlog(backlog, submitted_some=len(backlog) < len(jobs))
        late = [job for job in jobs  # cancelled while being started
                if all(f.cancelled() for f in job.futures) and job.xpr.status == "submitted"]
        for system, cancelled in _by_system(late):
            system.cancel([gather.remote_job(_row(job)) for job in cancelled])
        return not backlog

    def _keep_in_backlog(self, jobs: List[_Job], submitted_some: bool) -> None:
        """Keep ``jobs`` (refused at the per-user job limit) to be started again: not before the
        next poll, and then once a poll has seen jobs end, or when the back-off runs out. The
        back-off doubles after each try that started nothing (up to 16 poll intervals)."""
        floor = max(self._system.poll_schedule.min_interval, 0.25)
        now = time.monotonic()
        with self._lock:
            jobs = [job for job in jobs if not job.finished]  # (cancelled while being started)
            for job in jobs:
                job.pending = True
            self._backlog[:0] = jobs  # refused calls go first again: the backlog keeps the calls' order
            if not self._backlog:
                self._backlog_wait = 0.0
                return
            first = max(self.check_interval, floor)
            self._backlog_wait = first if submitted_some or not self._backlog_wait else \
                min(self._backlog_wait * 2, 16 * first)
            self._backlog_not_before = now + floor
            self._backlog_deadline = now + self._backlog_wait
            self._ended_since_try = 0
            in_flight = any(not job.finished and not job.pending for job in self._jobs.values())
            warn = not submitted_some and not in_flight and not self._warned_backlog
            self._warned_backlog = self._warned_backlog or warn
            count = len(self._backlog)
        if warn:
            warnings.warn(f"expyre Executor on system '{self.system_name}': {count} calls wait locally: the "
                          "scheduler's per-user job limit is taken up by jobs outside this executor; they are "
                          "submitted as soon as it has room", RuntimeWarning, stacklevel=2)

    def _retry_backlog(self) -> None:
        """Start the backlog again when :meth:`_keep_in_backlog` says it is time, a window of it at
        a time: as many calls as the polls saw jobs of this executor end since the last try (the
        slots they freed). When none of them ended (the back-off ran out: the slots are held by
        other jobs of the user), the window starts at one call and, while a window is taken
        whole, the next one, twice as large, goes at once. So each retry copies to the host about
        as many job directories as can be queued, not the whole backlog (which the limit would
        refuse, and whose directories would be removed again)."""
        with self._lock:
            now = time.monotonic()
            if not self._backlog or now < self._backlog_not_before or \
                    not (self._ended_since_try or now >= self._backlog_deadline):
                return
            window, probing = max(1, self._ended_since_try), not self._ended_since_try
        while True:
            with self._start_lock:
                with self._lock:
                    if self._held or not self._backlog:
                        return
                    jobs, self._backlog = self._backlog[:window], self._backlog[window:]
                    for job in jobs:
                        job.pending = False
                if not self._start(jobs) or not probing:
                    return
            window *= 2

    def _poll(self) -> None:
        with self._lock:
            jobs = [job for job in self._jobs.values() if not job.finished and not job.pending]
        last_chance = [job for job in jobs if job.last_chance]
        # the scheduler said finished but no outcome came back: copy once more
        for system, copied in _by_system(last_chance):
            system.fetch([(job.xpr.stage_dir, gather.remote_dir_of(_row(job))) for job in copied])
        polled = [job for job in jobs if job.xpr.status in gather.POLLED_STATUSES and not job.last_chance]
        states = gather.sync([_row(job) for job in polled]) if polled else {}
        for job in jobs:
            state = states.get(job.xpr.id)
            if state is not None and state != "unknown":
                if state in FINISHED_REMOTE_STATES and job.remote_status not in FINISHED_REMOTE_STATES:
                    self._ended_since_try += 1  # a slot may have freed up for the backlog
                job.remote_status = state
                if state == "running" and job.xpr.status == "submitted":
                    job.xpr.status = "started"
            if results.finished_kind(job.xpr.stage_dir) is not None:
                self._resolve(job)
            elif job.last_chance or job.xpr.status == "died":
                self._resolve_died(job)
            elif state in FINISHED_REMOTE_STATES:
                job.last_chance = True

    def _resolve(self, job: _Job) -> None:
        try:
            outcome = results.read_outcome(job.xpr.stage_dir)
            value = job.xpr._finish(outcome)[0]
        except BaseException as exc:  # noqa: B902 - whatever the call raised goes to its futures
            self._resolve_error(job, exc)
            return
        job.finished = True
        for future in job.futures:
            _set(future, result=value)

    def _resolve_died(self, job: _Job) -> None:
        try:
            job.xpr._died(job.remote_status or "unknown")
        except BaseException as exc:  # noqa: B902
            self._resolve_error(job, exc)

    def _resolve_error(self, job: _Job, exc: BaseException) -> None:
        job.finished = True
        for future in job.futures:
            _set(future, exception=exc)

    # ------------------------------------------------------------------ progress

    def counts(self) -> Dict[str, int]:
        """Totals of this executor's calls: ``queued`` (not running yet), ``running``, ``done``
        (a result) and ``failed`` (an exception, died or cancelled)."""
        counts = {"queued": 0, "running": 0, "done": 0, "failed": 0}
        with self._lock:
            futures = [f for job in self._jobs.values() for f in job.futures]
        for future in futures:
            if future.cancelled():
                counts["failed"] += 1
            elif future.done():
                counts["failed" if future.exception() is not None else "done"] += 1
            elif future.xpr.status == "started":
                counts["running"] += 1
            else:
                counts["queued"] += 1
        return counts

    def _begin_wait(self) -> None:
        with self._lock:
            self._waiting += 1

    def _end_wait(self) -> None:
        """The last waiter is done: show the final totals and end the line."""
        with self._lock:
            self._waiting -= 1
            if self._waiting == 0 and self._progress is not None:
                self._progress.finish(self.counts())
                self._progress = None

    def _show_progress(self) -> None:
        """Show the totals while someone waits (``map`` results, ``shutdown(wait=True)``)."""
        if self.quiet:
            return
        with self._lock:
            if self._waiting == 0:
                return
            if self._progress is None:
                self._progress = ManyProgress()
            self._progress.update(self.counts())

    # ------------------------------------------------------------------ context manager

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, exc_type, exc_val, exc_tb) -> bool:
        self.shutdown(wait=True)
        return False


def _by_system(jobs: Sequence[_Job]) -> List[Tuple[Any, List[_Job]]]:
    """``jobs`` grouped by the configured system they run on (a re-attached job may run on
    another system than the executor's)."""
    names: Dict[str, List[_Job]] = {}
    for job in jobs:
        names.setdefault(job.xpr.system_name, []).append(job)
    return [(config.systems[name], grouped) for name, grouped in names.items()]


def _row(job: _Job) -> dict:
    """A jobs-database row for the job, from what the executor knows (no database read)."""
    xpr = job.xpr
    return {"id": xpr.id, "name": xpr.name, "from_dir": str(xpr.stage_dir), "status": xpr.status,
            "system": xpr.system_name, "remote_id": xpr.remote_id, "remote_status": job.remote_status,
            "remote_dir": xpr.remote_dir}


def _set(future: ExPyReFuture, result: Any = None, exception: Optional[BaseException] = None) -> None:
    """Settle a future unless it was cancelled meanwhile."""
    try:
        if exception is not None:
            future.set_exception(exception)
        else:
            future.set_result(result)
    except concurrent.futures.InvalidStateError:
        pass
