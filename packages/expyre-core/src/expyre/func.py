"""ExPyRe: one Python function call run as a job on a system, and its result brought back.

Creating an ``ExPyRe`` pickles the function and its arguments once, hashes the call, and either
re-attaches to an earlier job with the same name and hash (a restarted script) or writes a new
stage directory and a jobs-database row. ``start`` renders the job script, copies the stage
directory to the system and submits it; ``get_results`` waits, polling all of the system's
ongoing jobs at once, and returns ``(result, stdout, stderr)`` or raises what the job raised.

Job states (see :class:`expyre.jobsdb.JobsDB`): created, submitting, submitted, started,
succeeded, failed, died, processed, cleaned.
"""
from __future__ import annotations

import functools
import json
import os
import re
import sys
import time
import warnings
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple, Union

from . import arrays, config, gather, jobfiles, jobnames, jobscript, jobstate, preflight, results, stage
from .errors import (
    ExPyReJobDiedError,
    ExPyRePreflightError,
    ExPyReRemoteEnvironmentError,
    ExPyReRemoteTraceback,
    ExPyReTimeoutError,
    NotAFunctionError,
)
from .hooktypes import FINISHED_REMOTE_STATES, ConnectionLostError, JobSpec, RemoteJob
from .progress import Progress, interrupted_error
from .resources import Resources
from .units import time_to_sec

__all__ = ["ExPyRe", "ExPyReJobDiedError", "ExPyReTimeoutError", "ExPyReRemoteEnvironmentError",
           "ExPyRePreflightError", "ExPyReRemoteTraceback"]

#: Preference among earlier jobs with the same name and hash when re-attaching.
_RESTART_PREFERENCE = ("succeeded", "started", "submitted", "submitting", "created", "died")
#: Local statuses in which get_results asks the system about the job.
_POLLED = ("submitted", "started", "died")


def _timing(message: str) -> None:
    if "EXPYRE_TIMING_VERBOSE" in os.environ:
        sys.stderr.write(f"expyre timing {time.time():.6f} {message}\n")


def _recorded(method):
    """Decorator of the methods that read a job's stage directory or its row: a new job of an
    Executor batch is published and recorded first (see :meth:`ExPyRe._record_if_new`)."""
    @functools.wraps(method)
    def recorded_first(self, *args, **kwargs):
        self._record_if_new()
        return method(self, *args, **kwargs)
    return recorded_first


class ExPyRe:
    """A function call to be run as a job on a system.

    Pickles the function and inputs, stores them and any input files in a new local stage
    directory and adds the job to the jobs database, unless an earlier identical call (same
    name, function, arguments and input files) can still produce results, in which case this
    object re-attaches to it.

    Parameters
    ----------
    name: str
        name of the job (part of its id and directory names)
    input_files: list(str | Path), optional
        files, directories or globs the function needs. Relative paths (without '..') are
        staged at the same relative path in the job directory; absolute ones at its top
    env_vars: list(str), optional
        environment variables for the job, exported after ``pre_run_commands``:
        ``"VAR=value"`` is written into the job script as ``export VAR=value``, so the job's
        shell expands ``$OTHER``, ``${EXPYRE_NUM_CORES_PER_NODE}`` or ``$(...)`` in it (as
        ExPyRe did); ``"VAR"`` takes the value from the current environment, passed literally
    pre_run_commands: list(str), optional
        shell commands run before the function, after the system's ``commands``
    post_run_commands: list(str), optional
        shell commands run after the function
    output_files: list(str), optional
        files (relative paths or globs) the job writes that are copied back into the current
        directory when ``get_results`` succeeds
    try_restart_from_prev: bool, default True
        re-attach to an earlier job with the same name and hash if it can still produce results
    hash_ignore: list(int | str), optional
        positions of ``args`` (int) and names of ``kwargs`` (str) left out of the hash
    function: callable
        the function to call (lambdas and locally defined functions work: cloudpickle)
    args: list, optional
        positional arguments
    kwargs: dict, optional
        keyword arguments
    preflight: bool, optional
        before the first submission to a system in this process, check that the job side can
        load the call (:mod:`expyre.preflight`); False turns the check off for this job (as
        ``start(preflight=False)`` does); default: the system's ``preflight`` config key (true)
    """

    def __init__(self, name: str, *, input_files: Sequence[Union[str, Path]] = (), env_vars: Sequence[str] = (),
                 pre_run_commands: Sequence[str] = (), post_run_commands: Sequence[str] = (),
                 output_files: Sequence[str] = (), try_restart_from_prev: bool = True,
                 hash_ignore: Sequence[Union[int, str]] = (), function=None, args: Sequence = (),
                 kwargs: Optional[dict] = None, preflight: Optional[bool] = None,
                 _from_db_info: Optional[dict] = None, _batch=None):
        self.name = name
        self.recreated = False
        self.preflight = preflight
        if _from_db_info is not None:
            self._set_from_row(_from_db_info)
            return
        jobnames.check_job_name(name)
        if function is None or not callable(function):
            raise NotAFunctionError(f"ExPyRe({name!r}): function must be a callable, not {function!r}")
        _timing(f"ExPyRe {name} create start")
        kwargs = dict(kwargs or {})
        input_specs = stage.check_input_file_specs(input_files)
        output_specs = stage.check_output_file_specs(output_files)
        env_lines = jobscript.env_var_lines(env_vars, os.environ)
        input_pairs = stage.expand_input_files(input_specs, Path.cwd())

        task = stage.pickle_task(function, list(args), kwargs)
        _timing(f"ExPyRe {name} pickled")
        arghash = stage.task_hash(function, task, hash_ignore, input_pairs)
        _timing(f"ExPyRe {name} hashed")

        if try_restart_from_prev and self._reattach(name, arghash, _batch):
            _timing(f"ExPyRe {name} re-attached to {self.id}")
            return

        self.stage_dir = stage.new_stage_dir(Path(config.local_stage_dir), name, arghash)
        self.status = "created"
        self.remote_id: Optional[str] = None
        self.system_name: Optional[str] = None
        self.remote_dir: Optional[str] = None
        try:
            # what the files say, kept for this process's start (an ExPyRe read back from the
            # jobs database reads them)
            self._preflight_record = stage.write_task(task, self.stage_dir)
            self._provided_modules = None if input_pairs else set()
            stage.stage_input_files(input_pairs, self.stage_dir)
            with stage.writing("the job's settings", self.stage_dir):
                self._write_settings(env_lines, list(pre_run_commands), list(post_run_commands), output_specs)
                stage.write_runner(self.stage_dir, jobscript.RUNNER_SOURCE)
            if _batch is None:
                self.stage_dir = stage.publish_stage_dir(self.stage_dir)
                jobstate.record_new(self.id, name=name, from_dir=str(self.stage_dir))
            else:  # published and recorded with the batch's other new jobs, by BatchLookup.record
                _batch.add_new(self, len(arghash))
        except BaseException:
            _remove_tree(self.stage_dir)
            raise
        _timing(f"ExPyRe {name} created {self.id}")

    # ------------------------------------------------------------------ identity and restart

    #: The Executor batch (:class:`expyre.many.BatchLookup`) that is yet to publish and record
    #: this new job; None once it has, and for every job not created by an Executor.
    _unrecorded_in = None

    def _record_if_new(self) -> None:
        """Publish and record this job now if it is new in an Executor batch that has not yet."""
        if self._unrecorded_in is not None:
            self._unrecorded_in.record()

    @property
    def id(self) -> str:
        """The job id, ``<name>_<hash>_<unique>`` (the stage directory's name without ``run_``)."""
        return self.stage_dir.name[len("run_"):]

    def _set_from_row(self, row: dict) -> None:
        self.stage_dir = Path(row["stage_dir"] if "stage_dir" in row else row["from_dir"])
        self.status = row["status"]
        self.remote_id = row.get("remote_id")
        self.system_name = row.get("system_name", row.get("system"))
        self.remote_dir = row.get("remote_dir")

    def _reattach(self, name: str, arghash: str, batch=None) -> bool:
        # an Executor's batch (expyre.many.BatchLookup) knows its earlier jobs from one lookup
        rows = batch.earlier_jobs(name, arghash) if batch is not None else []
        if batch is None:
            prefix = re.escape(f"{name}_{arghash}") + "_.*"
            rows = list(config.db.jobs(status="can_produce_results", id=prefix))
        if not rows:
            return False
        rows.sort(key=lambda r: _RESTART_PREFERENCE.index(r["status"]))
        row = rows[0]
        self._set_from_row(row)
        if self.status == "succeeded" and results.finished_kind(self.stage_dir) != "succeeded":
            raise RuntimeError(f"job {self.id} is recorded as succeeded but its result file is missing "
                               f"from {self.stage_dir}; reset it with 'xpr reset_status' or remove it with 'xpr rm'")
        self.recreated = True
        if batch is not None:
            self._unrecorded_in = batch.unrecorded(self.id)
            batch.remember(self, len(arghash))
        return True

    @classmethod
    def from_jobsdb(cls, db_jobs: Union[dict, Sequence[dict]]) -> List[ExPyRe]:
        """ExPyRe objects for jobs-database rows (as returned by ``JobsDB.jobs()``).

        Parameters
        ----------
        db_jobs: dict or list(dict)
            one or more rows

        Returns
        -------
        list(ExPyRe)
        """
        if isinstance(db_jobs, dict):
            db_jobs = [db_jobs]
        return [cls(row["name"], _from_db_info=row) for row in db_jobs]

    def _write_settings(self, env_lines, pre_run_commands, post_run_commands, output_files) -> None:
        settings = {"name": self.name, "env_lines": env_lines, "pre_run_commands": pre_run_commands,
                    "post_run_commands": post_run_commands, "output_files": output_files}
        (self.stage_dir / jobfiles.SETTINGS).write_text(json.dumps(settings, indent=1))
        self._settings_written = settings
        if output_files:
            (self.stage_dir / jobfiles.OUTPUT_FILES_LIST).write_text("\n".join(output_files) + "\n")

    def _settings(self) -> dict:
        written = getattr(self, "_settings_written", None)
        return written if written is not None else json.loads((self.stage_dir / jobfiles.SETTINGS).read_text())

    def _staged_preflight_record(self) -> Optional[dict]:
        """The preflight record of the staged call (see :func:`expyre.stage.read_preflight_record`)."""
        if hasattr(self, "_preflight_record"):
            return self._preflight_record
        return stage.read_preflight_record(self.stage_dir)

    # ------------------------------------------------------------------ starting

    @_recorded
    def start(self, resources: Union[dict, Resources], system_name: Optional[str] = None,
              header_extra: Sequence[str] = (), exact_fit: bool = True, partial_node: bool = False,
              python_cmd: Optional[str] = None, force_rerun: bool = False,
              preflight: Optional[bool] = None) -> None:
        """Start the job on a system: render the job script, copy the files there and submit.

        Does nothing for a re-attached job that was already started (unless ``force_rerun``);
        a re-attached job whose submission was interrupted is looked up in the scheduler first
        and submitted only if the scheduler does not have it.

        Parameters
        ----------
        resources: dict or Resources
            resources for the job, a Resources or a dict of its constructor's arguments
        system_name: str, optional
            name of the system in the config; default ``$EXPYRE_SYS``, or the only configured
            system if there is just one
        header_extra: list(str), optional
            extra header lines for this job, after the system's and the partition's
        exact_fit: bool, default True
            use only partitions whose node size divides the requested number of cores
        partial_node: bool, default False
            allow jobs that take less than an entire node
        python_cmd: str, optional
            Python interpreter that runs the function on the system; default ``python3``, or
            for a system without a host this process's own interpreter
        force_rerun: bool, default False
            run again even if the job was already started
        preflight: bool, optional
            check first that the job side can load the call (one round trip per system and
            process, cached; see :mod:`expyre.preflight`); default: as given to ``ExPyRe(...)``,
            else the system's ``preflight`` config key (true)

        Raises
        ------
        ExPyRePreflightError
            the job side cannot load the call (nothing was queued)
        """
        if self.status == "submitting" and not force_rerun:
            self._recover_submission()
            if self.status != "created":
                return
        elif self.status != "created" and not force_rerun:
            if not self.recreated:
                raise RuntimeError(f"job {self.id} has status {self.status}; use force_rerun=True to run it again")
            return
        _timing(f"ExPyRe {self.id} start")
        system = _system(system_name)
        if force_rerun:
            self._forget_previous_run()
        if isinstance(resources, dict):
            resources = Resources(**resources)
        job = system.job_spec(self.id, self.name, self.stage_dir, resources, header_extra=list(header_extra),
                              exact_fit=exact_fit, partial_node=partial_node)
        self._preflight(system, python_cmd, preflight)
        script = self._render_script(system, job, python_cmd)
        jobscript.write_job_script(self.stage_dir / jobfiles.SCRIPT, script)

        arrays.clear_task_marker(self.stage_dir)  # submitted on its own, whatever it was before
        jobstate.begin_submission(self.id, self.status, system=system.name, remote_dir=job.remote_dir)
        self.status, self.system_name, self.remote_dir = "submitting", system.name, job.remote_dir
        _timing(f"ExPyRe {self.id} staging out and submitting")
        shell = system.submit_shell([(self.stage_dir, job.remote_dir)])
        try:
            remote_id = system.submit(job, jobfiles.SCRIPT, shell=shell)
        except ConnectionLostError as exc:
            if exc.sent is False and not shell.copied:  # nothing reached the host
                self._set_created()
            # otherwise the outcome of the submission is unknown: stay "submitting" so that the
            # next start() asks the scheduler instead of submitting a second copy
            raise
        except BaseException:
            self._undo_submission(system, job.remote_dir if shell.copied else None)
            raise
        jobstate.submitted(self.id, self.status, remote_id)
        self.remote_id, self.status = remote_id, "submitted"
        system.poll_schedule.restart()
        _timing(f"ExPyRe {self.id} submitted as {remote_id}")

    def _preflight(self, system, python_cmd: Optional[str], requested: Optional[bool]) -> None:
        """Stop here if the job side of ``system`` cannot load this call (:mod:`expyre.preflight`)."""
        if requested is None:
            requested = getattr(self, "preflight", None)
        if not preflight.enabled(system, requested):
            return
        record = self._staged_preflight_record()
        if record is None:
            return
        _timing(f"ExPyRe {self.id} preflight")
        preflight.check_call(system, record, python_cmd, *self._job_side_setup())

    def _job_side_setup(self) -> Tuple[List[str], set]:
        """For preflight: the job's own shell lines before its Python (``pre_run_commands``,
        ``env_vars`` exports), and the top-level modules its directory brings (``input_files``)."""
        settings = self._settings()
        setup = list(settings.get("pre_run_commands", [])) + list(settings.get("env_lines", []))
        provided = getattr(self, "_provided_modules", None)
        if provided is None:
            provided = {p.stem if p.suffix == ".py" else p.name for p in self.stage_dir.iterdir()
                        if not jobfiles.is_reserved(p.name) and (p.suffix == ".py" or p.is_dir())}
        return setup, set(provided)

    def _render_script(self, system, job: JobSpec, python_cmd: Optional[str]) -> str:
        settings = self._settings()
        return system.job_script(job, env_lines=settings["env_lines"], pre_run_commands=settings["pre_run_commands"],
                                 post_run_commands=settings["post_run_commands"], python_cmd=python_cmd)

    def _undo_submission(self, system, remote_dir: Optional[str]) -> None:
        """Back to ``created`` after a failed submission, removing ``remote_dir`` (None: nothing
        was copied to the host)."""
        try:
            if remote_dir is not None:
                system.remove_remote_dirs([remote_dir])
        except Exception as exc:
            warnings.warn(f"job {self.id}: could not remove {remote_dir} on system '{system.name}' "
                          f"after the failed submission: {exc}", RuntimeWarning, stacklevel=3)
        self._set_created()

    def _set_created(self) -> None:
        arrays.clear_task_marker(self.stage_dir)
        jobstate.not_submitted(self.id, self.status)
        self.status, self.remote_dir = "created", None

    def _recover_submission(self) -> None:
        """Finish a submission that an earlier process began but did not record."""
        system = _system(self.system_name)
        own_dir = self.remote_dir or system.job_remote_dir(self.stage_dir)
        probe = JobSpec(id=self.id, name=self.name, remote_dir=own_dir, partition=None, node_dict={}, max_time=None)
        task = arrays.read_task_marker(self.stage_dir)
        if task is not None:  # one task of an array job: look for the array, then for this task
            probe = JobSpec(id=task.array_id, name=self.name, remote_dir=task.leader_dir, partition=None,
                            node_dict={}, max_time=None, array_index=task.index)
        found = system.find_submitted(probe)
        if found:
            jobstate.submitted(self.id, self.status, found[0])
            self.remote_id, self.status = found[0], "submitted"
            if len(found) > 1:
                warnings.warn(f"job {self.id}: the scheduler has {len(found)} jobs for it ({', '.join(found)}); "
                              f"following {found[0]}", RuntimeWarning, stacklevel=3)
        else:
            self._undo_submission(system, own_dir)

    def _forget_previous_run(self) -> None:
        if self.system_name is not None and self.remote_dir is not None:
            old_system = config.systems.get(self.system_name)
            if old_system is not None and not old_system.runs_in_stage_dir:
                old_system.remove_remote_dirs([self.remote_dir])
        for path in jobfiles.run_files(self.stage_dir, self.id):
            if path.is_dir() and not path.is_symlink():
                _remove_tree(path)  # e.g. the batch toolkit's submission lock
            else:
                path.unlink(missing_ok=True)
        jobstate.rerun(self.id, self.status)
        self.status, self.remote_id = "created", None

    # ------------------------------------------------------------------ results

    @_recorded
    def sync_remote_results_status(self, sync_all: bool = True, force_sync: bool = False,
                                   verbose: bool = False) -> None:
        """Ask the system for this job's state (with ``sync_all``, for all its ongoing jobs) and
        copy back the files of jobs that finished.

        Parameters
        ----------
        sync_all: bool, default True
            poll every ongoing job on the same system in the same query and copy
        force_sync: bool, default False
            copy this job's files back even if it does not look finished
        verbose: bool, default False
            report remote status changes on stderr
        """
        if sync_all:
            rows = list(config.db.jobs(system=re.escape(self.system_name), status=list(jobstate.POLLED)))
            if not any(row["id"] == self.id for row in rows):
                rows.append(config.db.get(self.id))
        else:
            rows = [config.db.get(self.id)]
        if force_sync:
            gather.sync([r for r in rows if r["id"] == self.id], force_fetch=True, verbose=verbose)
            rows = [r for r in rows if r["id"] != self.id]
        gather.sync(rows, verbose=verbose)

    @_recorded
    def get_results(self, timeout: Union[int, str, None] = 3600, check_interval: float = 30,
                    sync: bool = True, sync_all: bool = True, force_sync: bool = False,
                    quiet: bool = False, verbose: bool = False) -> Tuple[Any, Optional[str], Optional[str]]:
        """Wait for the job, copy its results back and return them.

        Polls quickly at first and then every ``check_interval`` seconds. Each poll asks the
        scheduler about all ongoing jobs of the system at once (``sync_all``) and copies back the
        files of those that finished in one batch. All calls in a process share one poll schedule
        per system: a job whose result is already here costs no query, and a system with a host
        is never asked more than once a second, whatever ``check_interval`` says.

        Parameters
        ----------
        timeout: int or str, default 3600
            longest wait (seconds, or a time such as ``"2h"``); 0 looks once (one poll) and raises
            :class:`ExPyReTimeoutError` if the job has not finished; None or < 0 waits forever
        check_interval: float, default 30
            longest time between polls, in seconds (at least 1 s for a system with a host)
        sync: bool, default True
            poll the system; with False only files already copied back are looked at
        sync_all: bool, default True
            poll all of the system's ongoing jobs, not just this one
        force_sync: bool, default False
            copy this job's files back even if the scheduler does not report it finished
        quiet: bool, default False
            show no progress
        verbose: bool, default False
            report remote status changes

        Returns
        -------
        (result, stdout, stderr)
            the function's return value and what it printed

        Raises
        ------
        Exception
            the exception the function raised, with the remote traceback attached
        ExPyReJobDiedError
            the job ended without a result (killed, out of time, cancelled, vanished)
        ExPyReRemoteEnvironmentError
            the remote Python could not load the function or its arguments
        ExPyReTimeoutError
            the job did not finish within ``timeout``
        """
        if self.status in ("processed", "cleaned"):
            raise RuntimeError(f"job {self.id} has status {self.status}; its results are no longer available")
        if self.status in ("created", "submitting"):
            raise RuntimeError(f"job {self.id} has status {self.status}: call start() first")
        deadline = _deadline(timeout)
        system = config.systems.get(self.system_name) if sync else None
        schedule = system.poll_schedule if system is not None else None
        progress = Progress(self.id, quiet=quiet)
        last_chance = False
        try:
            while True:
                outcome = results.read_outcome(self.stage_dir)
                if outcome is None and schedule is not None and self.status in _POLLED \
                        and schedule.claim(check_interval):
                    self.sync_remote_results_status(sync_all=sync_all, force_sync=force_sync, verbose=verbose)
                    outcome = results.read_outcome(self.stage_dir)
                if outcome is not None:
                    progress.finish()
                    return self._finish(outcome)
                row = config.db.get(self.id)
                remote_status = row["remote_status"] if row else None
                if row and row["status"] != self.status:
                    self.status = row["status"]
                if remote_status in FINISHED_REMOTE_STATES:
                    if last_chance or system is None:
                        progress.finish()
                        self._died(remote_status)
                    # the scheduler says it is over but no marker came back (yet): copy once more
                    gather.sync([row], force_fetch=True, verbose=verbose)
                    last_chance = True
                    continue
                if deadline is not None and time.monotonic() >= deadline:
                    progress.finish()
                    raise ExPyReTimeoutError(f"job {self.id} did not finish within {_show_timeout(timeout)} "
                                             f"(remote status {remote_status}); it keeps running: "
                                             "call get_results() again to wait longer")
                progress.update(remote_status or self.status)
                wait = schedule.seconds_until_due() if schedule is not None else max(check_interval, 0.1)
                if deadline is not None:
                    wait = min(wait, max(0.0, deadline - time.monotonic()))
                time.sleep(max(wait, 0.01))
        except KeyboardInterrupt:
            progress.finish()
            raise interrupted_error(self.id, self.system_name) from None
        finally:
            progress.finish()

    def _finish(self, outcome: results.Outcome):
        stdout, stderr, job_stdout, job_stderr = results.read_outputs(self.stage_dir, self.id)
        if outcome.kind == "succeeded":
            self._set_outcome("succeeded")
            output_files = self._settings().get("output_files", [])
            if output_files:
                stage.copy_output_files(output_files, self.stage_dir, Path.cwd())
            return outcome.value, stdout, stderr
        self._set_outcome("failed")
        if outcome.kind == "exception":
            results.raise_remote_exception(outcome, self.id)
        if outcome.kind == "load":
            results.raise_load_error(outcome, self.id)
        row = config.db.get(self.id)
        raise ExPyReJobDiedError(f"job {self.id} failed outside the function (remote status "
                                 f"{row['remote_status'] if row else None}): {outcome.message.strip()}\n"
                                 + results.describe_outputs(self.stage_dir, self.id))

    def _died(self, remote_status: str) -> None:
        self._set_outcome("died")
        raise ExPyReJobDiedError(
            f"job {self.id} ended with remote status '{remote_status}' and left no result or exception "
            f"(killed, out of time, cancelled or lost)\n" + results.describe_outputs(self.stage_dir, self.id))

    def _set_outcome(self, kind: str) -> None:
        """Record the job's outcome, unless another process marked it processed or cleaned
        meanwhile: that stays (:func:`expyre.jobstate.record_outcome`)."""
        if jobstate.record_outcome(self.id, kind):
            self.status = kind

    # ------------------------------------------------------------------ after the job

    @_recorded
    def mark_processed(self) -> None:
        """Mark the job as processed: its results were used and need not be kept."""
        jobstate.processed(self.id, self.status)
        self.status = "processed"

    @_recorded
    def cancel(self, verbose: bool = False) -> None:
        """Cancel the job if it is queued or running (``get_results`` then raises ExPyReJobDiedError)."""
        self._scheduler_action("cancel", verbose)

    @_recorded
    def hold(self, verbose: bool = False) -> None:
        """Hold the job in the queue (its remote status becomes ``held``) until :meth:`release`."""
        self._scheduler_action("hold", verbose)

    @_recorded
    def release(self, verbose: bool = False) -> None:
        """Release a held job."""
        self._scheduler_action("release", verbose)

    def _scheduler_action(self, action: str, verbose: bool) -> None:
        if self.remote_id is None or self.system_name is None:
            return
        if self.status not in ("submitting", "submitted", "started"):
            return
        system = _system(self.system_name)
        remote_dir = self.remote_dir or system.job_remote_dir(self.stage_dir)
        getattr(system, action)([RemoteJob(self.remote_id, remote_dir, self.id)])
        if verbose:
            sys.stderr.write(f"{action}: {self.id} ({self.remote_id} on {self.system_name})\n")

    @_recorded
    def clean(self, wipe: bool = False, dry_run: bool = False, remote_only: bool = False,
              verbose: bool = False) -> None:
        """Clean the job's local and remote directories.

        Parameters
        ----------
        wipe: bool, default False
            delete the directories; otherwise only the (possibly large) pickled inputs and result
            are overwritten with ``CLEANED``
        dry_run: bool, default False
            only say what would be done
        remote_only: bool, default False
            with ``wipe``, delete only the remote directory
        verbose: bool, default False
            say what is done
        """
        system = config.systems.get(self.system_name) if self.system_name else None
        remote_dir = None
        if system is not None and not system.runs_in_stage_dir:
            remote_dir = self.remote_dir or system.job_remote_dir(self.stage_dir)
        say = (lambda msg: sys.stderr.write(msg + "\n")) if (verbose or dry_run) else (lambda msg: None)
        prefix = "dry run: would " if dry_run else ""
        large_files = list(jobfiles.LARGE)
        if wipe:
            if remote_dir is not None:
                say(f"{prefix}delete {remote_dir} on system {system.name}")
                if not dry_run:
                    system.remove_remote_dirs([remote_dir])
            if not remote_only:
                say(f"{prefix}delete {self.stage_dir}")
                if not dry_run:
                    _remove_tree(self.stage_dir)
        else:
            if remote_dir is not None:
                say(f"{prefix}overwrite {', '.join(large_files)} in {remote_dir} on system {system.name}")
                if not dry_run:
                    system.overwrite_remote_files(remote_dir, large_files, "CLEANED")
            say(f"{prefix}overwrite {', '.join(large_files)} in {self.stage_dir}")
            if not dry_run and self.stage_dir.is_dir():
                for name in large_files:
                    if (self.stage_dir / name).exists():
                        (self.stage_dir / name).write_text("CLEANED\n")
                (self.stage_dir / jobfiles.CLEANED).write_text("CLEANED\n")
        if not dry_run and config.db.get(self.id) is not None:
            jobstate.cleaned(self.id, self.status)
            self.status = "cleaned"

    def __str__(self) -> str:
        return (f"{self.id} system={self.system_name} remote_id={self.remote_id} status={self.status} "
                f"stage_dir={self.stage_dir}")


def _system(system_name: Optional[str]):
    """The configured system ``system_name`` (default: $EXPYRE_SYS, or the only system)."""
    systems = config.systems
    if system_name is None:
        system_name = os.environ.get("EXPYRE_SYS")
    if system_name is None:
        sole = config.sole_system()
        if sole is not None:
            return sole
        raise ValueError(f"no system given (system_name or EXPYRE_SYS); configured systems: {', '.join(systems)}")
    try:
        return systems[system_name]
    except KeyError:
        raise ValueError(config.unknown_system_message(system_name)) from None


def _deadline(timeout: Union[int, float, str, None]) -> Optional[float]:
    """The monotonic time at which ``get_results`` gives up; None to wait forever.

    As in ExPyRe: None or a negative number waits forever, 0 looks once.
    """
    if timeout is None:
        return None
    seconds = timeout if isinstance(timeout, (int, float)) else time_to_sec(timeout)
    if seconds is None or seconds < 0:
        return None
    return time.monotonic() + seconds


def _show_timeout(timeout: Union[int, float, str]) -> str:
    return f"{timeout} s" if isinstance(timeout, (int, float)) else str(timeout)


def _remove_tree(path: Path) -> None:
    import shutil

    def make_writable_and_retry(function, failed_path, _exc_info):
        os.chmod(os.path.dirname(failed_path), 0o700)
        function(failed_path)

    if path.exists():
        shutil.rmtree(path, onerror=make_writable_and_retry)
