"""System: one entry of the config's ``systems``, bound to its scheduler and transport plugins.

A System knows where its jobs run (host, run directory) and does the system-level steps of a
job's life through the plugins: create the job's remote directory and copy the stage directory
there, submit, ask for the status of many jobs at once, copy results back in one batch, cancel
and remove remote directories. It opens its transport's shell once and reuses it.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from . import plugins
from .hooktypes import CommandResult, JobSpec, RemoteJob, Shell, quote


class NonRepeatingShell:
    """A view of a shell whose commands are never run again after a lost connection."""

    def __init__(self, shell: Shell):
        self._shell = shell
        self.host = shell.host

    def run(self, command: str, **kwargs) -> CommandResult:
        kwargs["idempotent"] = False
        return self._shell.run(command, **kwargs)

    def close(self) -> None:
        self._shell.close()


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
        remote shell command for the ``openssh`` transport
    no_default_header: bool, default False
        leave out the scheduler's default header lines
    script_exec: str, default "/bin/bash"
        interpreter of the job script (its ``#!`` line is ``#!<script_exec> -l``)
    options: dict, optional
        transport settings (ssh port, user, key file, ...) passed through to the transport
    sources: dict, optional
        config key -> file its value came from, for ``xpr systems`` and error messages
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
    options: dict = field(default_factory=dict)
    sources: Dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        if self.transport is None:
            if self.remsh_cmd is not None and self.host is not None:
                self.transport = "openssh"
            else:
                self.transport = "ssh" if self.host is not None else "local"
        if self.rundir is None and self.host is not None:
            self.rundir = DEFAULT_REMOTE_RUNDIR
        if self.rundir is not None:
            self.rundir = self.rundir.rstrip("/") or "/"
        self._shell: Optional[Shell] = None
        self._shell_lock = threading.Lock()

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

    # ------------------------------------------------------------------ plugins

    @property
    def shell(self) -> Shell:
        """The transport's command runner on the host, opened on first use and then reused."""
        with self._shell_lock:
            if self._shell is None:
                self._shell = plugins.open_shell(self.transport, self)
            return self._shell

    def close(self) -> None:
        """Close the shell, if one is open."""
        with self._shell_lock:
            if self._shell is not None:
                self._shell.close()
                self._shell = None

    def stage_out(self, stage_dir: Path, remote_dir: str) -> None:
        """Create the job's remote directory and copy the stage directory there, in one transfer.

        The directory must not exist yet; if anything fails, the transport leaves nothing behind.
        """
        if self.runs_in_stage_dir:
            return
        plugins.transfer(self.transport, self.shell, "put", [(Path(stage_dir), remote_dir)])

    def stage_out_many(self, pairs: Sequence[Tuple[Path, str]]) -> None:
        """:meth:`stage_out` for many jobs: ``(stage_dir, remote_dir)`` pairs, in one transfer."""
        if self.runs_in_stage_dir or not pairs:
            return
        plugins.transfer(self.transport, self.shell, "put", [(Path(s), r) for s, r in pairs])

    def submit(self, job: JobSpec, script: str) -> str:
        """Submit the job script ``script`` (in ``job.remote_dir``); returns the remote id.

        The scheduler plugin gets a shell that never repeats a command after a lost connection:
        a submission whose outcome is unknown is resolved by :meth:`find_submitted`.
        """
        return plugins.submit(self.scheduler, job, script, NonRepeatingShell(self.shell))

    def find_submitted(self, job: JobSpec) -> List[str]:
        """Remote ids of jobs the scheduler already has for ``job``."""
        return plugins.find_submitted(self.scheduler, job, self.shell)

    def status(self, jobs: Sequence[RemoteJob]) -> Dict[str, str]:
        """``{remote_id: state}`` for all ``jobs``, in one scheduler query."""
        return plugins.status(self.scheduler, jobs, self.shell)

    def cancel(self, jobs: Sequence[RemoteJob]) -> None:
        """Cancel ``jobs``."""
        plugins.cancel(self.scheduler, jobs, self.shell)

    def hold(self, jobs: Sequence[RemoteJob]) -> None:
        """Hold queued ``jobs``."""
        plugins.hold(self.scheduler, jobs, self.shell)

    def release(self, jobs: Sequence[RemoteJob]) -> None:
        """Release held ``jobs``."""
        plugins.release(self.scheduler, jobs, self.shell)

    def fetch(self, pairs: Sequence[Tuple[Path, str]]) -> None:
        """Copy the remote job directories back into their stage directories, in one batch."""
        if self.runs_in_stage_dir:
            return
        plugins.transfer(self.transport, self.shell, "get", list(pairs))

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
