"""The ``openssh`` transport: the system's own ``ssh`` program for every command and transfer.

For sites where logging in needs what only OpenSSH does (Kerberos tickets, one-time passwords,
ControlMaster connection sharing). Selected with ``"transport": "openssh"``, and chosen by
default for a system whose config sets ``remsh_cmd`` (the remote shell command of existing
configs, e.g. ``"ssh -K"``); ``EXPYRE_RSH`` gives the command when neither does. Each command
is one ``ssh`` process, so set up ControlMaster in ``~/.ssh/config`` to avoid a new login each
time.
"""
from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional, Sequence, Tuple

from ..hookspecs import hookimpl
from ..hooktypes import CommandResult, ConnectionLostError, Shell, command_result, quote
from . import tarstream

if TYPE_CHECKING:  # pragma: no cover
    from ..system import System

NAME = "openssh"
#: Exit status of the ssh program itself when it could not connect or log in.
SSH_FAILED = 255


class OpenSSHShell:
    """Runs each command as ``<remsh_cmd> <host> bash -lc '<command>'``."""

    def __init__(self, host: str, remsh_cmd: List[str]):
        self.host = host
        self.remsh_cmd = remsh_cmd

    def argv(self, command: str) -> List[str]:
        return [*self.remsh_cmd, self.host, "bash -lc " + quote(f"cd && {command}")]

    def run(self, command: str, *, input: Optional[bytes] = None, timeout: Optional[float] = None,
            check: bool = True, idempotent: bool = True) -> CommandResult:
        returncode, stdout, stderr = self.run_bytes(command, input=input, timeout=timeout, idempotent=idempotent)
        return command_result(self.host, command, returncode, stdout, stderr, check)

    def run_bytes(self, command: str, *, input: Optional[bytes] = None, input_file=None, input_size: int = 0,
                  timeout: Optional[float] = None, idempotent: bool = True, stdout_file=None):
        """Run ``command``; its standard input is ``input`` or ``input_size`` bytes of ``input_file``.
        With ``stdout_file``, standard output goes straight to that file (and stdout is empty)."""
        if input_file is not None:
            input_file.seek(0)
            input = input_file.read(input_size)
        if stdout_file is not None:
            stdout_file.seek(0)
            stdout_file.truncate()
        proc = subprocess.run(self.argv(command), input=input if input is not None else b"",
                              stdout=stdout_file if stdout_file is not None else subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=timeout)
        if stdout_file is not None:
            stdout_file.seek(0, 2)
            proc.stdout = b""
        if proc.returncode == SSH_FAILED and b"\n" not in proc.stdout:
            message = proc.stderr.decode(errors="replace").strip()
            if not idempotent:
                message = f"outcome unknown, the command was not repeated: {message}"
            raise ConnectionLostError(self.host, f"{' '.join(self.remsh_cmd)} {self.host} failed: {message}")
        return proc.returncode, proc.stdout, proc.stderr

    def close(self) -> None:
        pass


def remsh_argv(system) -> List[str]:
    """The remote shell command for ``system``, with its ``ssh`` settings as OpenSSH options."""
    argv = shlex.split(system.remsh_cmd or os.environ.get("EXPYRE_RSH", "ssh"))
    options = system.options or {}
    flags = {"port": "-p", "user": "-l", "key_file": "-i", "proxy_jump": "-J"}
    for key, flag in flags.items():
        values = options.get(key)
        for value in ([values] if not isinstance(values, list) else values) if values is not None else []:
            argv += [flag, os.path.expanduser(str(value))]
    if "connect_timeout" in options:
        argv += ["-o", f"ConnectTimeout={int(options['connect_timeout'])}"]
    if "strict_host_key_checking" in options:
        argv += ["-o", f"StrictHostKeyChecking={options['strict_host_key_checking']}"]
    if "server_alive_interval" in options:
        argv += ["-o", f"ServerAliveInterval={int(options['server_alive_interval'])}"]
    return argv + ["-o", "BatchMode=yes"]


@hookimpl
def expyre_transports() -> List[str]:
    return [NAME]


@hookimpl
def open_shell(transport: str, system: System) -> Shell:
    if system.host is None:
        raise ValueError(f"system '{system.name}' uses the openssh transport but has no host")
    return OpenSSHShell(system.host, remsh_argv(system))


@hookimpl
def transfer(transport: str, shell: Shell, direction: str, pairs: Sequence[Tuple[Path, str]]) -> bool:
    if direction == "put":
        tarstream.put(shell, pairs)
    else:
        tarstream.get(shell, pairs)
    return True
