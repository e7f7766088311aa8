"""System: one entry of the config's ``systems``, bound to its scheduler and transport plugins.

A System knows where its jobs run (host, run directory) and does the system-level steps of a
job's life through the plugins: create the job's remote directory and copy the stage directory
there, submit, ask for the status of many jobs at once, copy results back in one batch, cancel
and remove remote directories. It opens its transport's shell once and reuses it.
"""
from __future__ import annotations

import os
import re
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

from . import channels, jobscript, plugins
from .arrays import ArraySupport, array_script
from .header import env_header_extra
from .hooktypes import CommandResult, JobSpec, RemoteCommandError, RemoteJob, Shell, quote
from .polling import PollSchedule
from .resources import Resources
from .units import time_to_HMS


class SubmitShell:
    """The shell a scheduler's ``submit`` hook gets: it never runs a command again after a lost
    connection (the outcome of a submission must not be guessed), and it runs the system's
    ``pre_submit_cmds`` before each command, in the same shell, as ExPyRe did.

    With ``stage`` (``(system, pairs)``), the job directories the submission needs are copied
    to the host with its first command, in one round trip when the transport can
    (``transfer_then_run``), else just before it; :meth:`finish_staging` copies them if the
    plugin ran no command at all. The copies go through the system (:meth:`System.transfer_then_run`,
    ``System._transfer``), like every other transfer.
    """

    def __init__(self, shell: Shell, pre_submit_cmds: Sequence[str] = (),
                 stage: Optional[Tuple[System, Sequence[Tuple[Path, str]]]] = None):
        self._shell = shell
        self.host = shell.host
        self._prefix = pre_submit_line(pre_submit_cmds)
        self._stage = stage
        #: False until the job directories to copy are on the host (True if there were none)
        self.copied = stage is None

    def run(self, command: str, **kwargs) -> CommandResult:
        kwargs["idempotent"] = False
        if self._prefix:
            command = f"{self._prefix} && {{\n{command}\n}}"
        if self._stage is not None:
            (system, pairs), self._stage = self._stage, None
            result = system.transfer_then_run(pairs, command, kwargs.get("timeout"))
            if result is not None:
                self.copied = True
                if kwargs.get("check", True) and result.returncode != 0:
                    raise RemoteCommandError(self.host, result)
                return result
            system._transfer("put", pairs)
            self.copied = True
        return self._shell.run(command, **kwargs)

    def finish_staging(self) -> None:
        """Copy the job directories now if no command took them along."""
        if self._stage is not None:
            (system, pairs), self._stage = self._stage, None
            system._transfer("put", pairs)
            self.copied = True

    def close(self) -> None:
        self._shell.close()


def pre_submit_line(words: Sequence[str]) -> str:
    """The shell line of a system's ``pre_submit_cmds``, written as ExPyRe wrote it: the list is a
    sequence of words (``["module", "load", "slurm", "&&", "cd", "."]``), each taken as one word
    (blanks, quotes and parentheses in it are escaped), while ``$``-expansions are left to the shell."""
    return " ".join(re.sub(r"""(['" ()])""", r"\\\1", word) for word in words)


def expand_home(rundir: str) -> str:
    """``rundir`` with a leading ``~`` (the home directory on the host) expanded, as ExPyRe did:
    ``~/x`` becomes ``x`` (relative paths are taken from the home directory) and ``~`` becomes
    ``.``. Never a literal ``~`` directory, which invites a later ``rm -rf ~``.

    Raises
    ------
    ValueError
        for ``~user/...``, whose home on the host cannot be known here
    """
    if rundir == "~":
        return "."
    if rundir.startswith("~/"):
        return rundir[2:].lstrip("/") or "."
    if rundir.startswith("~"):
        raise ValueError(f"rundir {rundir!r}: '~user' is not expanded; give the directory as an absolute "
                         "path, or relative to the home directory")
    return rundir


#: Default remote run directory (relative to the remote home) for systems with a host.
DEFAULT_REMOTE_RUNDIR = "run_expyre"


@dataclass
class System:
    """A place where jobs run: a host (or this machine), a scheduler and a transport.

    Parameters
    ----------
    name: str
        the system's key in the config's ``systems``
    scheduler: str
        scheduler plugin name (``direct``, ``slurm``, ``sge``, ``pbs``, or a site's own)
    partitions: dict
        partition (queue) name -> dict with ``num_cores`` (int), ``max_time`` (seconds or None),
        ``max_mem`` (kB or None), ``header`` (list of extra header lines) and ``partition``
        (the name the scheduler knows, by default the key)
    host: str, optional
        ``[user@]host`` to reach with the transport; None for this machine
    transport: str, optional
        transport plugin name; default ``ssh`` when ``host`` is set, else ``local``
        (``openssh`` when the config sets ``remsh_cmd``)
    header: list(str), optional
        extra header lines for every job on this system, formatted with the node dict
    commands: list(str), optional
        shell commands run at the start of every job script (``module load ...``)
    rundir: str, optional
        directory on the host for the jobs' run directories, absolute or relative to the
        remote home; default ``run_expyre`` with a host, and none (jobs run in their local stage
        directory) without one
    rundir_extra: str, optional
        per-project subdirectory of ``rundir`` (hostname and local stage directory)
    remsh_cmd: str, optional
        remote shell command for the ``openssh`` transport; default ``$EXPYRE_RSH`` (ExPyRe's
        variable) for a system with a host, when it is set
    no_default_header: bool, default False
        leave out the scheduler's default header lines
    script_exec: str, default "/bin/bash"
        interpreter of the job script (its ``#!`` line is ``#!<script_exec> -l``)
    pre_submit_cmds: list(str), optional
        words of a command run on the host before each submission, in the same shell (ExPyRe's
        key: for example ``["module", "load", "slurm"]``), see :func:`pre_submit_line`
    preflight: bool, default True
        check, before the first submission in a process, that the job side can load the call
        (:mod:`expyre.preflight`); the config key ``preflight`` (per system, or top level)
    options: dict, optional
        transport settings (ssh port, user, key file, ...) passed through to the transport
    sources: dict, optional
        config key -> file its value came from, for ``xpr systems`` and error messages
    scheduler_options: dict, optional
        the scheduler plugin's own settings (the system's table named after the scheduler, e.g.
        ``"pbs": {"dialect": "torque"}``), validated by the plugin's ``check_options`` hook
    limits: dict, optional
        what the site allows on its host: ``status_queries_per_minute`` (see
        :mod:`expyre.politeness`), ``max_channels`` and ``max_channel_wait`` (see
        :mod:`expyre.channels`)
    """

    name: str
    scheduler: str
    partitions: Dict[str, dict] = field(default_factory=dict)
    host: Optional[str] = None
    transport: Optional[str] = None
    header: List[str] = field(default_factory=list)
    commands: List[str] = field(default_factory=list)
    rundir: Optional[str] = None
    rundir_extra: Optional[str] = None
    remsh_cmd: Optional[str] = None
    no_default_header: bool = False
    script_exec: str = "/bin/bash"
    pre_submit_cmds: List[str] = field(default_factory=list)
    preflight: bool = True
    options: dict = field(default_factory=dict)
    sources: Dict[str, str] = field(default_factory=dict)
    scheduler_options: dict = field(default_factory=dict)
    limits: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.remsh_cmd is None and self.host is not None and os.environ.get("EXPYRE_RSH"):
            self.remsh_cmd = os.environ["EXPYRE_RSH"]  # ExPyRe's default remote shell command
        if self.transport is None:
            if self.remsh_cmd is not None and self.host is not None:
                self.transport = "openssh"
            else:
                self.transport = "ssh" if self.host is not None else "local"
        if self.rundir is None and self.host is not None:
            self.rundir = DEFAULT_REMOTE_RUNDIR
        if self.rundir is not None:
            self.rundir = expand_home(self.rundir).rstrip("/") or "/"
        self._shell: Optional[Shell] = None
        self._shell_lock = threading.Lock()
        #: when this system's jobs may next be polled, shared by every caller in the process
        self.poll_schedule = PollSchedule(remote=self.host is not None)
        #: what plugins learn about this system (e.g. the PBS dialect), by plugin; lives and dies with it
        self.plugin_state: Dict[str, object] = {}

    # ------------------------------------------------------------------ where jobs live

    @property
    def runs_in_stage_dir(self) -> bool:
        """True when jobs run directly in their local stage directory (no host, no rundir)."""
        return self.host is None and self.rundir is None

    @property
    def remote_rundir(self) -> Optional[str]:
        """Directory on the host that holds this project's job directories."""
        if self.rundir is None:
            return None
        if self.rundir_extra:
            return f"{self.rundir}/{self.rundir_extra}"
        return self.rundir

    def job_remote_dir(self, stage_dir: Path) -> str:
        """Where the job staged in ``stage_dir`` runs on the host."""
        if self.runs_in_stage_dir:
            return str(stage_dir)
        return f"{self.remote_rundir}/{Path(stage_dir).name}"

    # ------------------------------------------------------------------ a job's spec and script

    def job_spec(self, job_id: str, name: str, stage_dir: Path, resources: Resources, *,
                 header_extra: Sequence[str] = (), exact_fit: bool = True, partial_node: bool = False) -> JobSpec:
        """What the scheduler plugin needs to render a header for, and submit, one job.

        Chooses the partition for ``resources`` and collects the header lines: the system's, the
        partition's, ``header_extra`` and ``EXPYRE_HEADER_EXTRA``, in that order.

        Parameters
        ----------
        job_id, name: str
            the expyre job id and the job's name
        stage_dir: Path
            the job's local stage directory (its name is the job directory's name on the host)
        resources: Resources
            what the job asks for
        header_extra: list(str), optional
            the job's own extra header lines
        exact_fit, partial_node: bool
            see :meth:`expyre.resources.Resources.find_nodes`

        Raises
        ------
        expyre.resources.NoMatchingPartitionError
            no partition of this system fits ``resources``
        """
        partition_key, node_dict = resources.find_nodes(self.partitions, exact_fit=exact_fit,
                                                        partial_node=partial_node)
        partition = self.partitions[partition_key]
        actual_partition = partition.get("partition", partition_key)
        max_time = resources.max_time
        hms = time_to_HMS(max_time) if max_time is not None else None
        node_dict = dict(node_dict, partition=actual_partition, queue=actual_partition, id=job_id,
                         max_time=hms, max_time_HMS=hms, max_time_s=max_time,
                         mem_per_node_kB=resources.mem_per_node_kB(partition, node_dict))
        header_lines = (list(self.header) + list(partition.get("header", [])) + list(header_extra)
                        + env_header_extra())
        return JobSpec(id=job_id, name=name, remote_dir=self.job_remote_dir(stage_dir), partition=actual_partition,
                       node_dict=node_dict, max_time=max_time, header_lines=header_lines,
                       no_default_header=self.no_default_header)

    def job_script(self, job: JobSpec, *, env_lines: Sequence[str], pre_run_commands: Sequence[str],
                   post_run_commands: Sequence[str], python_cmd: Optional[str] = None) -> str:
        """The whole job script of ``job`` on this system: the scheduler's header and job
        environment, the system's ``commands``, the job's own commands and the runner.

        ``python_cmd`` defaults to ``python3`` on a host, and to this process's interpreter
        for a system on this machine.
        """
        if python_cmd is None:
            python_cmd = quote(sys.executable) if self.host is None else "python3"
        return jobscript.job_script(
            script_exec=self.script_exec, header=plugins.render_header(self.scheduler, job),
            remote_dir=job.remote_dir, node_dict=job.node_dict,
            scheduler_env=plugins.job_environment(self.scheduler, job), system_commands=self.commands,
            env_lines=env_lines, pre_run_commands=pre_run_commands, python_cmd=python_cmd,
            post_run_commands=post_run_commands)

    # ------------------------------------------------------------------ plugins

    @property
    def shell(self) -> Shell:
        """The transport's command runner on the host, opened on first use and then reused.

        With ``limits.max_channels``, each of its commands holds one of the host's slots while it
        runs (:mod:`expyre.channels`); every remote command of the system passes here.
        """
        with self._shell_lock:
            if self._shell is None:
                self._shell = channels.limited(plugins.open_shell(self.transport, self), self)
            return self._shell

    def close(self) -> None:
        """Close the shell, if one is open."""
        with self._shell_lock:
            if self._shell is not None:
                self._shell.close()
                self._shell = None

    def submit(self, job: JobSpec, script: str, stage: Sequence[Tuple[Path, str]] = (),
               shell: Optional[SubmitShell] = None) -> str:
        """Submit the job script ``script`` (in ``job.remote_dir``); returns the remote id.

        ``stage``: ``(stage_dir, remote_dir)`` pairs to copy to the host first (each remote
        directory must not exist yet; a failed copy leaves nothing behind), in the same round
        trip as the submission when the transport can.

        The scheduler plugin gets a :class:`SubmitShell`: it never repeats a command after a lost
        connection (a submission whose outcome is unknown is resolved by :meth:`find_submitted`)
        and runs ``pre_submit_cmds`` first; pass ``shell`` (from :meth:`submit_shell`) to learn
        afterwards whether the copy took place (``shell.copied``).
        """
        shell = shell or self.submit_shell(stage)
        remote_id = plugins.submit(self.scheduler, job, script, shell, system=self)
        shell.finish_staging()
        return remote_id

    def submit_many(self, jobs: Sequence[JobSpec], script: str, stage: Sequence[Tuple[Path, str]] = (),
                    shell: Optional[SubmitShell] = None) -> List[Union[str, BaseException]]:
        """Submit ``jobs``, each on its own (no array), with the script ``script`` in each job's
        directory: in one remote command when the scheduler plugin has the ``submit_many`` hook,
        else one :meth:`submit` per job, stopping at the first that fails.

        Returns one entry per job tried, in order: the remote id of a job the scheduler took,
        the exception of one it did not take (or :class:`expyre.ConnectionLostError` when that
        is unknown); the jobs after the list's end were not tried. Raises
        :class:`expyre.ConnectionLostError` when the outcome of the whole command is unknown.
        ``stage`` and ``shell`` as for :meth:`submit`; each job is submitted exactly-once as by :meth:`submit`.
        """
        shell = shell or self.submit_shell(stage)
        results = plugins.submit_many(self.scheduler, jobs, script, shell, system=self)
        if results is None:
            results = []
            for job in jobs:
                try:
                    results.append(plugins.submit(self.scheduler, job, script, shell, system=self))
                except Exception as exc:
                    results.append(exc)
                    break
        if len(results) > len(jobs):
            raise RuntimeError(f"scheduler '{self.scheduler}' returned {len(results)} results for {len(jobs)} jobs")
        if any(isinstance(r, str) for r in results):
            shell.finish_staging()
        return results

    def submit_shell(self, stage: Sequence[Tuple[Path, str]] = ()) -> SubmitShell:
        """The shell a submission runs in; it copies ``stage`` (``(stage_dir, remote_dir)`` pairs)
        to the host with its first command (see :class:`SubmitShell`)."""
        pairs = [(Path(s), r) for s, r in stage] if stage and not self.runs_in_stage_dir else []
        return SubmitShell(self.shell, self.pre_submit_cmds, (self, pairs) if pairs else None)

    def array_support(self) -> Optional[ArraySupport]:
        """How this system's scheduler runs job arrays (asked once, then kept), or None."""
        if not hasattr(self, "_arrays"):
            self._arrays = ArraySupport.from_answer(plugins.array_support(self.scheduler, self.shell, system=self),
                                                    self.scheduler)
        return self._arrays

    def array_script(self, support: ArraySupport, array: JobSpec, tasks: Sequence[JobSpec],
                     bundle: Optional[Sequence[Optional[Tuple[int, int]]]] = None) -> str:
        """The script of an array job (:func:`expyre.arrays.array_script`) on this system."""
        return array_script(script_exec=self.script_exec, header=plugins.render_header(self.scheduler, array),
                            support=support, tasks=tasks, bundle=bundle)

    def submit_array(self, job: JobSpec, script: str, max_parallel: Optional[int] = None,
                     stage: Sequence[Tuple[Path, str]] = (), shell: Optional[SubmitShell] = None) -> List[str]:
        """Submit the array job ``job`` (its script ``script`` in ``job.remote_dir``); returns one
        remote id per task. Exactly-once as :meth:`submit`; ``stage`` and ``shell`` as for :meth:`submit`."""
        shell = shell or self.submit_shell(stage)
        ids = plugins.submit_array(self.scheduler, job, script, shell, max_parallel=max_parallel, system=self)
        shell.finish_staging()
        if len(ids) != job.array_size:
            raise RuntimeError(f"scheduler '{self.scheduler}' returned {len(ids)} task ids for an array of "
                               f"{job.array_size} tasks")
        return ids

    def find_submitted(self, job: JobSpec) -> List[str]:
        """Remote ids of jobs the scheduler already has for ``job``."""
        return plugins.find_submitted(self.scheduler, job, self.shell, system=self)

    def status(self, jobs: Sequence[RemoteJob]) -> Dict[str, str]:
        """``{remote_id: state}`` for all ``jobs``, in one scheduler query."""
        token = plugins.current_system.set(self)  # status is called with three arguments (tests wrap it)
        try:
            return plugins.status(self.scheduler, jobs, self.shell)
        finally:
            plugins.current_system.reset(token)

    def cancel(self, jobs: Sequence[RemoteJob]) -> None:
        """Cancel ``jobs``."""
        plugins.cancel(self.scheduler, jobs, self.shell, system=self)

    def hold(self, jobs: Sequence[RemoteJob]) -> None:
        """Hold queued ``jobs``."""
        plugins.hold(self.scheduler, jobs, self.shell, system=self)

    def release(self, jobs: Sequence[RemoteJob]) -> None:
        """Release held ``jobs``."""
        plugins.release(self.scheduler, jobs, self.shell, system=self)

    def fetch(self, pairs: Sequence[Tuple[Path, str]]) -> None:
        """Copy the remote job directories back into their stage directories, in one batch."""
        if self.runs_in_stage_dir:
            return
        self._transfer("get", list(pairs))

    def _transfer(self, direction: str, pairs: List[Tuple[Path, str]]) -> None:
        """Every transfer of the system: the transport's ``transfer`` hook, given the transport's
        own shell, holding one slot of the host for the whole transfer (with ``limits.max_channels``;
        the commands the transfer runs use that slot)."""
        shell = self.shell
        with channels.slot(self):
            plugins.transfer(self.transport, channels.unwrapped(shell), direction, pairs)

    def transfer_then_run(self, pairs: Sequence[Tuple[Path, str]], command: str,
                          timeout: Optional[float] = None) -> Optional[CommandResult]:
        """Copy ``pairs`` to the host and run ``command`` (not to be repeated) in one round trip,
        through the transport's ``transfer_then_run`` hook, holding one slot of the host as
        :meth:`_transfer` does; None when the transport cannot (the caller then transfers and runs
        the command itself; also for a shell with ``separate_copies = True``, such as the
        conformance kit's, whose faults go into the command itself)."""
        shell = self.shell
        if getattr(shell, "separate_copies", False):
            return None
        with channels.slot(self):
            return plugins.transfer_then_run(self.transport, channels.unwrapped(shell), pairs, command, timeout)

    def overwrite_remote_files(self, remote_dir: str, names: Sequence[str], text: str) -> None:
        """Replace the content of the files ``names`` (those that exist) in a job directory on the
        host with ``text``, in one command (``clean`` uses it for the large pickles)."""
        if self.runs_in_stage_dir or not names:
            return
        files = " ".join(quote(f"{remote_dir}/{name}") for name in names)
        self.shell.run(f'for f in {files}; do if [ -f "$f" ]; then echo {quote(text)} > "$f"; fi; done')

    def remove_remote_dirs(self, remote_dirs: Sequence[str]) -> None:
        """Delete job directories on the host (never a stage directory on this machine)."""
        if self.runs_in_stage_dir or not remote_dirs:
            return
        words = " ".join(quote(d) for d in remote_dirs)
        self.shell.run(f"chmod -R u+rwX {words} 2>/dev/null; rm -rf {words}")

    def __str__(self) -> str:
        where = self.host or "this machine"
        return (f"System {self.name}: {self.scheduler} on {where} via {self.transport}, "
                f"rundir {self.remote_rundir or '(stage directory)'}, "
                f"partitions {', '.join(self.partitions) or 'none'}")
