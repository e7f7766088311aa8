"""The expyre plugin contract: every hook a scheduler or transport plugin can implement.

A plugin is a module (or object) with functions decorated with :data:`hookimpl` whose names
and arguments match the specifications below (a plugin may accept fewer arguments than a spec
lists). Plugins are found through the entry-point group ``expyre``::

    [project.entry-points.expyre]
    mysched = "mysite_expyre"

Core routes every call by name: a scheduler hook is called only on the plugin that lists the
system's scheduler (``"scheduler": "mysched"``) in :func:`expyre_schedulers`, a transport hook
only on the plugin that lists the transport in :func:`expyre_transports`. A plugin therefore
never checks names; it still receives the name (``scheduler``/``transport``), which a plugin that
provides several names may use. A name no plugin lists becomes
:class:`expyre.plugins.PluginNotFoundError`, a name two distributions list
:class:`expyre.plugins.PluginConflictError`.

Batch-scheduler plugins need not implement these hooks one by one: :mod:`expyre.batch` turns a
class of command builders and parsers into all scheduler hooks (see ``docs/scheduler_plugin.rst``).

Scheduler plugins are translators: they build commands, run them through the ``shell`` they
are handed and parse what comes back. They do no other I/O. Every path or name they put into
a command must be quoted (:func:`expyre.quote`).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Optional, Tuple

import pluggy

from .hooktypes import CheckResult, CommandResult, JobSpec, RemoteJob, Shell

if TYPE_CHECKING:  # pragma: no cover - the System type is for readers and type checkers only
    from .system import System

PROJECT_NAME = "expyre"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


# --------------------------------------------------------------------------- discovery

@hookspec
def expyre_schedulers() -> List[str]:
    """Names of the schedulers this plugin provides.

    Returns
    -------
    list(str)
        scheduler names, as a system's config selects them with ``"scheduler": NAME``
    """


@hookspec
def expyre_transports() -> List[str]:
    """Names of the transports this plugin provides.

    Returns
    -------
    list(str)
        transport names, as a system's config selects them with ``"transport": NAME``
    """


@hookspec(firstresult=True)
def check_options(name: str, options: dict) -> List[Tuple[str, object, str]]:
    """Check a system's settings table for this plugin's scheduler or transport.

    Called when the config is read, for a system whose table named after its scheduler (such as
    ``"pbs": {"dialect": "torque"}``) or named ``ssh`` (the ``ssh`` transport's settings) is not
    empty. Core reports every problem with the file, the system, the key and the value, and the
    table reaches the plugin as ``system.scheduler_options`` (or ``system.options``).

    Parameters
    ----------
    name: str
        the scheduler or transport name the table is for
    options: dict
        the table, as the config gives it

    Returns
    -------
    list(tuple(str, object, str))
        ``(key, value, problem)`` for each problem; empty if the table is fine
    """


# --------------------------------------------------------------------------- schedulers

@hookspec(firstresult=True)
def render_header(scheduler: str, job: JobSpec) -> List[str]:
    """Render the batch header of a job script.

    Called by ``ExPyRe.start`` once per job, before anything is copied to the host.

    Parameters
    ----------
    scheduler: str
        scheduler name from the system's config
    job: expyre.JobSpec
        the job; ``job.header_lines`` holds the system's, partition's and job's extra lines

    Returns
    -------
    list(str)
        header lines (without the ``#!`` line): the scheduler's default lines (unless
        ``job.no_default_header``) and ``job.header_lines`` formatted with ``job.node_dict``
        (use :func:`expyre.header.format_header_lines`, which names a bad template line in its
        error), in the order the scheduler's users know (Slurm and PBS: defaults first; Grid
        Engine: as the seed lists it, configured lines first)
    """


@hookspec(firstresult=True)
def job_environment(scheduler: str, job: JobSpec) -> List[str]:
    """Shell lines, run inside the job, that set ``EXPYRE_NUM_NODES``, ``EXPYRE_NUM_CORES``
    and ``EXPYRE_NUM_CORES_PER_NODE`` from the scheduler's own environment when it has them.

    Called by ``ExPyRe.start`` when it writes the job script. Core first exports the values it
    computed from the partition; these lines run after that and may override them (for example
    ``[ -n "$SLURM_NTASKS" ] && export EXPYRE_NUM_CORES=$SLURM_NTASKS``).

    Parameters
    ----------
    scheduler: str
        scheduler name from the system's config
    job: expyre.JobSpec
        the job

    Returns
    -------
    list(str)
        shell lines
    """


@hookspec(firstresult=True)
def submit(scheduler: str, job: JobSpec, script: str, shell: Shell,
           system: Optional[System] = None) -> str:
    """Submit a job script that is already in place on the host.

    Called once per job by ``ExPyRe.start``, after the job's files were copied to
    ``job.remote_dir``. Must not retry on its own after a failure whose outcome is unknown
    (core resolves that with :func:`find_submitted`).

    Parameters
    ----------
    scheduler: str
        scheduler name from the system's config
    job: expyre.JobSpec
        the job
    script: str
        file name of the job script, relative to ``job.remote_dir``
    shell: expyre.Shell
        command runner on the system's host
    system: expyre.system.System or None
        the system the call is for (None when a plugin's hook is called without one, as in unit
        tests): a plugin reads its options table from ``system.scheduler_options`` and keeps
        per-system state (such as what it learnt about the host) in ``system.plugin_state``

    Returns
    -------
    str
        the scheduler's id for the job.
        Raise :class:`expyre.RemoteCommandError` (``shell.run`` does) if submission is refused.
    """


@hookspec(firstresult=True)
def status(scheduler: str, jobs: List[RemoteJob], shell: Shell,
           system: Optional[System] = None) -> Dict[str, str]:
    """Report the state of many jobs with as few scheduler queries as possible (one, ideally).

    Called by ``ExPyRe.get_results`` and ``xpr sync`` once per system per poll.

    Parameters
    ----------
    scheduler: str
        scheduler name from the system's config
    jobs: list(expyre.RemoteJob)
        the jobs to report on
    shell: expyre.Shell
        command runner on the system's host
    system: expyre.system.System or None
        the system the call is for (None when a plugin's hook is called without one, as in unit
        tests): a plugin reads its options table from ``system.scheduler_options`` and keeps
        per-system state (such as what it learnt about the host) in ``system.plugin_state``

    Returns
    -------
    dict(str, str)
        ``{remote_id: state}`` with a state from :data:`expyre.REMOTE_STATES` for every job
        asked about. A query that fails must raise
        (or report ``unknown``), never report a job as finished.
    """


@hookspec(firstresult=True)
def cancel(scheduler: str, jobs: List[RemoteJob], shell: Shell,
           system: Optional[System] = None) -> bool:
    """Cancel jobs (queued or running).

    Called by ``ExPyRe.cancel``, ``xpr cancel`` and ``xpr rm -c``.

    Parameters
    ----------
    scheduler: str
    jobs: list(expyre.RemoteJob)
    shell: expyre.Shell
    system: expyre.system.System or None
        the system the call is for (None when a plugin's hook is called without one, as in unit
        tests): a plugin reads its options table from ``system.scheduler_options`` and keeps
        per-system state (such as what it learnt about the host) in ``system.plugin_state``

    Returns
    -------
    bool
        True once the cancel requests were made
    """


@hookspec(firstresult=True)
def hold(scheduler: str, jobs: List[RemoteJob], shell: Shell,
         system: Optional[System] = None) -> bool:
    """Hold queued jobs: they stay in the queue and do not start until released.

    Called by ``ExPyRe.hold`` and ``xpr hold``.

    Parameters
    ----------
    scheduler: str
    jobs: list(expyre.RemoteJob)
    shell: expyre.Shell
    system: expyre.system.System or None
        the system the call is for (None when a plugin's hook is called without one, as in unit
        tests): a plugin reads its options table from ``system.scheduler_options`` and keeps
        per-system state (such as what it learnt about the host) in ``system.plugin_state``

    Returns
    -------
    bool
        True once the requests were made
    """


@hookspec(firstresult=True)
def release(scheduler: str, jobs: List[RemoteJob], shell: Shell,
            system: Optional[System] = None) -> bool:
    """Release held jobs, so that they can start.

    Called by ``ExPyRe.release`` and ``xpr release``.

    Parameters
    ----------
    scheduler: str
    jobs: list(expyre.RemoteJob)
    shell: expyre.Shell
    system: expyre.system.System or None
        the system the call is for (None when a plugin's hook is called without one, as in unit
        tests): a plugin reads its options table from ``system.scheduler_options`` and keeps
        per-system state (such as what it learnt about the host) in ``system.plugin_state``

    Returns
    -------
    bool
        True once the requests were made
    """


@hookspec(firstresult=True)
def find_submitted(scheduler: str, job: JobSpec, shell: Shell,
                   system: Optional[System] = None) -> List[str]:
    """Find the scheduler's ids of jobs already submitted for ``job``.

    Called when a job's database row says ``submitting``: the process that submitted it
    stopped before it could record the scheduler's answer. Core then records what this hook
    finds instead of submitting a second copy.

    Parameters
    ----------
    scheduler: str
    job: expyre.JobSpec
        the job (``id``, ``remote_dir`` and ``name`` are set; ``node_dict`` may be empty)
    shell: expyre.Shell
    system: expyre.system.System or None
        the system the call is for (None when a plugin's hook is called without one, as in unit
        tests): a plugin reads its options table from ``system.scheduler_options`` and keeps
        per-system state (such as what it learnt about the host) in ``system.plugin_state``

    Returns
    -------
    list(str)
        remote ids found (empty if the job was never submitted)
    """


@hookspec(firstresult=True)
def submit_many(scheduler: str, jobs: List[JobSpec], script: str, shell: Shell,
                system: Optional[System] = None) -> Optional[List[object]]:
    """Submit several jobs, each on its own (no array), in one remote command (optional hook).

    Called by core for the jobs of one batch that do not go as an array (a scheduler without
    arrays, such as ``direct``, or a system whose table says ``arrays = false``), after every
    job's files were copied to its ``job.remote_dir``. A plugin without this hook gets one
    :func:`submit` per job. Each job must be submitted exactly-once as :func:`submit` does it (a
    restarted script finds it with :func:`find_submitted`), in the order given, and the command
    should stop at the first job that is not taken, so that no later job is queued behind a
    refusal. Like :func:`submit`, it must not retry on its own after a failure whose outcome
    is unknown; it raises :class:`expyre.ConnectionLostError` when the outcome of the whole
    command is unknown (the connection was lost).

    Parameters
    ----------
    scheduler: str
        scheduler name from the system's config
    jobs: list(expyre.JobSpec)
        the jobs, in order
    script: str
        file name of each job's script, relative to its ``job.remote_dir``
    shell: expyre.Shell
        command runner on the system's host
    system: expyre.system.System or None
        the system the call is for

    Returns
    -------
    list or None
        one entry per job tried, in order: the scheduler's id (str) for a job it took; an
        exception for one it did not take (:class:`expyre.SubmitLimitError` at the per-user job
        limit, any other error for a refusal) or whose outcome is unknown
        (:class:`expyre.ConnectionLostError`, looked up later by name). The list may be shorter
        than ``jobs``: the jobs after its end were not tried (nothing of them reached the
        scheduler). None: the plugin cannot for these jobs (core then calls :func:`submit`).
    """


@hookspec(firstresult=True)
def array_support(scheduler: str, shell: Shell, system: Optional[System] = None) -> Optional[dict]:
    """Say whether, and how, this scheduler runs job arrays (optional hook).

    Called by core (once per system, the answer is kept) before it starts a batch of two or
    more jobs: when the answer is not None, the batch is submitted as array jobs with
    :func:`submit_array`. A plugin without this hook, or answering None, gets one :func:`submit`
    per job.

    Parameters
    ----------
    scheduler: str
        scheduler name from the system's config
    shell: expyre.Shell
        command runner on the system's host (to ask the scheduler for its maximum array size)
    system: expyre.system.System or None
        the system the call is for: a plugin reads its options table (for example a
        ``max_array_size`` that overrides the scheduler's own) from ``system.scheduler_options``

    Returns
    -------
    dict or None
        ``{"index_var": NAME, "first_index": 0 or 1, "max_size": N or None}``: the environment
        variable that holds a task's index inside the task (or a list of several: the first
        one set and not empty counts), the first task's index, and the
        most tasks one array may have (a larger batch is split into several arrays); None when
        this scheduler (or this system) has no arrays
    """


@hookspec(firstresult=True)
def submit_array(scheduler: str, job: JobSpec, script: str, shell: Shell, max_parallel: Optional[int] = None,
                 system: Optional[System] = None) -> List[str]:
    """Submit an array job whose script is already in place on the host.

    Called by core for each array of a batch (see :func:`array_support`), after every task's
    job directory was copied to the host. Core wrote the array's script (in ``job.remote_dir``,
    the first task's directory): it picks the task's own job directory from the task index.
    Like :func:`submit`, it must not retry on its own after a failure whose outcome is unknown.

    Parameters
    ----------
    scheduler: str
        scheduler name from the system's config
    job: expyre.JobSpec
        the array: ``id`` is the array's name, ``remote_dir`` its first task's directory,
        ``array_size`` the number of tasks; resources as for each task
    script: str
        file name of the array's script, relative to ``job.remote_dir``
    shell: expyre.Shell
        command runner on the system's host
    max_parallel: int or None
        most tasks of this array to run at once (None: no limit)
    system: expyre.system.System or None
        the system the call is for

    Returns
    -------
    list(str)
        one remote id per task, in task order: ids that :func:`status`, :func:`cancel`,
        :func:`hold` and :func:`release` accept for that task alone
    """


# --------------------------------------------------------------------------- transports

@hookspec(firstresult=True)
def check_system(scheduler: str, partitions: Dict[str, dict], shell: Shell,
                 system: Optional[System] = None) -> List[CheckResult]:
    """Check that the scheduler's commands are there and answer on the host, and that each
    configured partition (queue) exists with at least its configured cores per node and
    time limit. Called by ``xpr check`` (:mod:`expyre.check`), never before a submission.

    Parameters
    ----------
    scheduler: str
        the system's scheduler name
    partitions: dict
        the system's partitions, as :class:`expyre.system.System` holds them: key -> dict with
        ``num_cores``, ``max_time`` (seconds or None), ``partition`` (the scheduler's name)
    shell: Shell
        the system's shell on its host; run as few commands as possible (one round trip)
    system: System, optional
        the system

    Returns
    -------
    list(CheckResult)
        one per thing checked, each with a fix when it is not fine; a plugin without this hook
        gets one line saying it offers no checks
    """


@hookspec(firstresult=True)
def open_shell(transport: str, system: System) -> Shell:
    """Open a command runner on a system's host.

    Called at most once per system per process (core keeps the shell and reuses it for every
    command, status query and transfer).

    Parameters
    ----------
    transport: str
        transport name from the system's config
    system: expyre.system.System
        the system (``host``, ``name`` and the transport's own settings)

    Returns
    -------
    expyre.Shell
    """


@hookspec(firstresult=True)
def transfer(transport: str, shell: Shell, direction: str,
             pairs: List[Tuple[Path, str]]) -> bool:
    """Copy job directories between this machine and the host, many in one batch.

    Called by ``ExPyRe.start`` (``put``, one job) and by the gathering of results (``get``,
    every job that finished since the last poll, in one call).

    Parameters
    ----------
    transport: str
        transport name from the system's config
    shell: expyre.Shell
        the shell this transport's ``open_shell`` handed out for the system
    direction: str
        ``"put"``: create each remote directory (and its parents) and copy the contents of its
        local directory into it; a remote directory that already exists is an error and nothing
        is copied into it, and a directory whose copy fails is removed again; ``"get"``: copy
        into each local directory the files of its remote directory that were created or
        changed since the job was staged (a transport may copy more), deleting nothing
    pairs: list(tuple(pathlib.Path, str))
        ``(local_dir, remote_dir)`` for each job; ``remote_dir`` is absolute or relative to
        the remote home

    Returns
    -------
    bool
        True when done. File modes and the layout
        below each directory are preserved.
    """


@hookspec(firstresult=True)
def transfer_then_run(transport: str, shell: Shell, pairs: List[Tuple[Path, str]], command: str,
                      timeout: Optional[float] = None) -> Optional[CommandResult]:
    """Optional: ``transfer(..., "put", pairs)`` and then, in the same round trip to the host,
    run ``command`` (only if the copy succeeded), so that starting a job costs one round trip.

    Core calls it for the first command a scheduler's ``submit`` or ``submit_array`` runs (the
    submission, usually), with the job directories that submission needs. A transport without
    it (or that answers None) gets ``transfer`` and then the command, in two round trips. The
    command must not be repeated after a lost connection (its outcome is then unknown).

    Parameters
    ----------
    transport: str
        transport name from the system's config
    shell: expyre.Shell
        the shell this transport's ``open_shell`` handed out for the system
    pairs: list(tuple(pathlib.Path, str))
        as for ``transfer`` with ``"put"``
    command: str
        the shell command to run after the copy, as ``shell.run`` would
    timeout: float, optional
        seconds the whole round trip may take

    Returns
    -------
    expyre.CommandResult or None
        the command's result (its exit status is not checked here)

    Raises
    ------
    expyre.RemoteCommandError
        the copy failed: the command did not run, and the copy left nothing behind
    expyre.ConnectionLostError
        the connection was lost after the command was sent
    """
