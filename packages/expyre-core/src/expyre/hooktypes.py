"""Types that cross the plugin contract: what core hands to plugins and what it expects back.

Plugin authors import these from ``expyre`` (``from expyre import JobSpec, RemoteJob, Shell``).
They carry no behaviour of their own beyond small conveniences, so a plugin can be written and
tested from this page and ``expyre/hookspecs.py`` alone.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Optional, Protocol, Sequence, runtime_checkable

from . import jobfiles

#: States a scheduler plugin's ``status`` hook may report for a job.
#:
#: * ``queued``: waiting to run
#: * ``held``: waiting or paused, and will not go on until released (held, suspended)
#: * ``running``: running (or starting, or finishing)
#: * ``done``: finished with exit code 0 as far as the scheduler knows
#: * ``failed``: finished with an error, was cancelled, or lost its node
#: * ``timeout``: killed because it ran past its wall time
#: * ``other``: finished in some other way, or stuck in a state it will not leave by itself
#:   (an error state); core treats it as finished and reads the job's own markers
#: * ``unknown``: the scheduler could not be asked; core treats it as "still ongoing"
REMOTE_STATES = ("queued", "held", "running", "done", "failed", "timeout", "other", "unknown")

#: Remote states after which the job will not run any more.
FINISHED_REMOTE_STATES = ("done", "failed", "timeout", "other")


@dataclass
class JobSpec:
    """Everything a scheduler plugin needs to render a header for, and submit, one job.

    Parameters
    ----------
    id: str
        expyre job id, ``<name>_<hash>_<unique>``; unique among the jobs of a jobs database
    name: str
        the job's name as given to ``ExPyRe(name, ...)``
    remote_dir: str
        the job's run directory on the system's host, absolute or relative to the remote home
    partition: str
        name of the partition (queue) to submit to, as the scheduler knows it
    node_dict: dict
        values the header templates may use: ``num_nodes``, ``num_cores``, ``num_cores_per_node``,
        ``partition``, ``id``, ``max_time`` (``H:MM:SS``), ``max_time_HMS`` (same),
        ``max_time_s`` (seconds, or None) and ``mem_per_node_kB`` (memory to request per node:
        what the job asked for, else its share of the partition's ``max_mem``; or None)
    max_time: int or None
        wall time in seconds, None for no limit
    header_lines: list(str)
        the system's, the partition's and the job's extra header lines, in that order, not yet
        formatted; format them with :func:`expyre.header.format_header_lines`
    no_default_header: bool
        the system asked for no default header lines (job name, queue, time, output files)
    stdout_file, stderr_file: str
        file names, relative to ``remote_dir``, for the job script's own stdout and stderr
    array_size: int or None
        set for an array job (the ``submit_array`` hook): how many tasks it has
    array_index: int or None
        set when ``find_submitted`` looks for one task of an array (``id`` and ``remote_dir``
        are then the array's): the task's position in the array, counted from 0
    """

    id: str
    name: str
    remote_dir: str
    partition: Optional[str]
    node_dict: dict
    max_time: Optional[int]
    header_lines: list = field(default_factory=list)
    no_default_header: bool = False
    stdout_file: str = ""
    stderr_file: str = ""
    array_size: Optional[int] = None
    array_index: Optional[int] = None

    def __post_init__(self):
        if not self.stdout_file:
            self.stdout_file = jobfiles.job_stdout(self.id)
        if not self.stderr_file:
            self.stderr_file = jobfiles.job_stderr(self.id)


@dataclass(frozen=True)
class RemoteJob:
    """A submitted job as status, cancel and recovery hooks see it.

    Parameters
    ----------
    remote_id: str
        the id the scheduler's ``submit`` hook returned
    remote_dir: str
        the job's run directory on the host
    id: str
        expyre job id
    """

    remote_id: str
    remote_dir: str
    id: str


@dataclass
class CommandResult:
    """Outcome of one command run through a :class:`Shell`."""

    command: str
    returncode: int
    stdout: str
    stderr: str


@dataclass
class CheckResult:
    """One line of ``xpr check``: what was checked, whether it is fine, and what to do if not.

    A scheduler plugin's ``check_system`` hook returns a list of these.
    """

    name: str
    ok: bool
    detail: str = ""
    fix: str = ""


class RemoteCommandError(RuntimeError):
    """A command run on a system's host exited with an error.

    The message names the host, the command and quotes the command's own error output, so the
    user sees what the scheduler or the shell said.
    """

    def __init__(self, host: Optional[str], result: CommandResult, what: str = ""):
        self.host = host
        self.result = result
        where = host if host else "this machine"
        doing = f"{what}: " if what else ""
        message = (f"{doing}command on {where} exited with status {result.returncode}: {result.command}")
        detail = (result.stderr.strip() or result.stdout.strip())
        if detail:
            message += "\n" + detail
        super().__init__(message)


def command_result(host: Optional[str], command: str, returncode: int, stdout: bytes, stderr: bytes,
                   check: bool) -> CommandResult:
    """The :class:`CommandResult` of a finished command; raises :class:`RemoteCommandError` if
    ``check`` and it failed. For transport authors, whose ``Shell.run`` ends with this."""
    result = CommandResult(command, returncode, stdout.decode(errors="replace"), stderr.decode(errors="replace"))
    if check and returncode != 0:
        raise RemoteCommandError(host, result)
    return result


def run_unchecked(shell: Shell, command: str, timeout: Optional[float]) -> CommandResult:
    """Run ``command`` without raising on its exit status; a timeout becomes exit status -1.

    For scheduler plugins that read a failing command's own message. The transport's own errors
    (:class:`ConnectionLostError`) are not caught.
    """
    try:
        return shell.run(command, check=False, timeout=timeout)
    except TimeoutError as exc:
        return CommandResult(command, -1, "", f"timed out after {timeout} s ({exc})")


class ConnectionLostError(RuntimeError):
    """The transport could not reach the host, or lost it, and the operation's outcome is unknown.

    ``sent`` is False when the transport knows the command never reached the host (so nothing
    of it ran), None when it cannot tell.
    """

    def __init__(self, host: Optional[str], message: str, sent: Optional[bool] = None):
        self.host = host
        self.sent = sent
        super().__init__(message)


@runtime_checkable
class Shell(Protocol):
    """A command runner on a system's host, handed out by a transport plugin's ``open_shell``.

    Commands are strings for a POSIX shell (``bash``), started in the login directory (the home
    directory) of the account on the host. Whoever builds a command quotes every path and name in
    it (:func:`quote`); the shell runs it as given.
    """

    host: Optional[str]

    def run(self, command: str, *, input: Optional[bytes] = None, timeout: Optional[float] = None,
            check: bool = True, idempotent: bool = True) -> CommandResult:
        """Run ``command``, feeding it ``input``.

        Raises :class:`RemoteCommandError` if ``check`` and the command fails, and
        :class:`ConnectionLostError` if the host cannot be reached. A transport that loses its
        connection reconnects and runs the command again only if ``idempotent``; otherwise (for
        example a submission) the outcome is unknown and it raises :class:`ConnectionLostError`.
        """
        ...

    def close(self) -> None:
        """Release the connection; the shell must not be used afterwards."""
        ...


def quote(word: object) -> str:
    """Quote ``word`` for a POSIX shell (``shlex.quote`` of its ``str``)."""
    return shlex.quote(str(word))


def quote_all(words: Sequence[object]) -> str:
    """Quote each of ``words`` and join them with spaces."""
    return " ".join(quote(w) for w in words)
