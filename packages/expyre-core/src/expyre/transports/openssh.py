"""The ``openssh`` transport: the system's own ``ssh`` program for every command and transfer.

For sites where logging in needs what only OpenSSH does (Kerberos tickets, one-time passwords,
agent or hardware-key setups). Selected with ``"transport": "openssh"``, and chosen by default
for a system whose config sets ``remsh_cmd`` (the remote shell command of existing configs, e.g.
``"ssh -K"``); ``EXPYRE_RSH`` gives the command when neither does.

Each command is one ``ssh`` process, but all of them share one login: expyre starts OpenSSH's
connection sharing itself (``ControlMaster=auto``, a private ``ControlPath`` socket in the
``ssh-control`` directory next to the jobs database, ``ControlPersist`` from the system's
``ssh.control_persist``, default :data:`DEFAULT_CONTROL_PERSIST` seconds), without any change to
``~/.ssh/config``. The first command logs in (asking for a one-time code if the host wants one);
every later command, of this process and of others within the persist time, reuses that login.
``xpr logout SYSTEM`` closes it (``ssh -O exit``). ``control_persist: 0`` turns this off and
leaves connection sharing to ``~/.ssh/config``.

A one-time code is read from the terminal by ``ssh`` itself when there is one; otherwise from
``ssh.mfa_command`` through ``SSH_ASKPASS``; with neither, ``BatchMode=yes`` makes a login that
needs a code fail at once instead of waiting.
"""
from __future__ import annotations

import hashlib
import os
import shlex
import stat
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Tuple

from .. import mfa
from ..hookspecs import hookimpl
from ..hooktypes import CommandResult, ConnectionLostError, Shell, command_result, quote
from . import tarstream

if TYPE_CHECKING:  # pragma: no cover
    from ..system import System

NAME = "openssh"
#: Exit status of the ssh program itself when it could not connect or log in.
SSH_FAILED = 255
#: Seconds the ControlMaster connection stays open after its last command, unless the system's
#: ``ssh.control_persist`` says otherwise.
DEFAULT_CONTROL_PERSIST = 600
#: Longest ControlPath used: a unix socket path has at most 104-108 bytes, and ssh first creates
#: the socket under a name 17 characters longer.
MAX_CONTROL_PATH = 90


class OpenSSHShell:
    """Runs each command as ``<remsh_cmd> <host> bash -lc '<command>'``.

    Parameters
    ----------
    host: str
        the destination given to ``ssh``
    remsh_cmd: list(str)
        the ``ssh`` command and its options (:func:`remsh_argv`)
    env: dict, optional
        extra environment variables for ``ssh`` (``SSH_ASKPASS`` for ``mfa_command``)
    control_path: str, optional
        the ControlMaster socket these commands share, if any
    system_name: str, optional
        the system's name, for messages
    """

    def __init__(self, host: str, remsh_cmd: List[str], env: Optional[Dict[str, str]] = None,
                 control_path: Optional[str] = None, system_name: str = ""):
        self.host = host
        self.system_name = system_name
        self.remsh_cmd = remsh_cmd
        self.env = dict(env or {})
        self.control_path = control_path

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
                              stderr=subprocess.PIPE, timeout=timeout, env=self._environment())
        if stdout_file is not None:
            stdout_file.seek(0, 2)
            proc.stdout = b""
        if proc.returncode == SSH_FAILED and b"\n" not in proc.stdout:
            message = proc.stderr.decode(errors="replace").strip()
            if "keyboard-interactive" in message and "BatchMode=yes" in self.remsh_cmd:
                raise mfa.MFACodeUnavailableError(
                    mfa.no_way_message(self.host, message, self.system_name, openssh=True))
            if not idempotent:
                message = f"outcome unknown, the command was not repeated: {message}"
            raise ConnectionLostError(self.host, f"{' '.join(self.remsh_cmd)} {self.host} failed: {message}")
        return proc.returncode, proc.stdout, proc.stderr

    def close(self) -> None:
        pass

    def _environment(self) -> Optional[Dict[str, str]]:
        return dict(os.environ, **self.env) if self.env else None

    def control_argv(self, operation: str) -> List[str]:
        """``ssh -O OPERATION`` for this shell's ControlMaster (``check``, ``exit``)."""
        return [*self.remsh_cmd, "-O", operation, self.host]

    def logout(self) -> bool:
        """Close the shared ControlMaster connection (``ssh -O exit``); True if one was open."""
        if self.control_path is None or not os.path.exists(self.control_path):
            return False
        proc = subprocess.run(self.control_argv("exit"), stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=30, env=self._environment())
        return proc.returncode == 0


def control_dir() -> Path:
    """The private directory of ControlMaster sockets: ``ssh-control`` next to the jobs database."""
    from .. import config  # the stage directory is known only once the config is read
    return Path(config.local_stage_dir) / "ssh-control"


def _private_dir(path: Path) -> Path:
    """``path`` created if needed, owned by this user and closed to others (0700), or an error."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise RuntimeError(f"{path} is not a directory of this user: expyre will not put its ssh "
                           "connection sockets there")
    if stat.S_IMODE(info.st_mode) != 0o700:
        path.chmod(0o700)
    return path


def control_path(system, argv: Sequence[str]) -> str:
    """The ControlMaster socket of ``system``: a hash of everything that decides the connection
    (ssh command, options, destination), in :func:`control_dir`, or in a private directory under
    the temporary directory when that path would be too long for a unix socket."""
    digest = hashlib.sha256("\0".join([*argv, system.host]).encode()).hexdigest()[:20]
    path = _private_dir(control_dir()) / digest
    if len(str(path)) > MAX_CONTROL_PATH:
        path = _private_dir(Path(tempfile.gettempdir()) / f"expyre-{os.getuid()}") / digest
    return str(path)


def askpass_script(command, name: str) -> Path:
    """An ``SSH_ASKPASS`` program that runs ``command`` (``ssh.mfa_command``), next to the
    sockets: ssh runs it with the prompt as its argument and sends what it prints."""
    argv = mfa.command_argv(command)
    path = _private_dir(control_dir()) / f"askpass-{name}"
    text = "#!/bin/sh\nexec " + " ".join(shlex.quote(word) for word in argv) + "\n"
    if not path.is_file() or path.read_text() != text:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".askpass")
        with os.fdopen(fd, "w") as fout:
            fout.write(text)
        os.chmod(tmp, 0o700)
        os.replace(tmp, path)
    return path


def remsh_argv(system) -> List[str]:
    """The remote shell command for ``system``, with its ``ssh`` settings as OpenSSH options
    (without the ControlMaster and log-in options that :func:`open_openssh_shell` adds)."""
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
    return argv


def open_openssh_shell(system) -> OpenSSHShell:
    """The shell of ``system``: its ssh command with ControlMaster sharing and the way to log in
    (terminal, ``SSH_ASKPASS`` running ``ssh.mfa_command``, or ``BatchMode=yes``)."""
    argv = remsh_argv(system)
    options = system.options or {}
    persist = options.get("control_persist", DEFAULT_CONTROL_PERSIST)
    path = None
    if persist:
        path = control_path(system, argv)
        argv += ["-o", "ControlMaster=auto", "-o", f"ControlPath={path}", "-o", f"ControlPersist={int(persist)}"]
    env: Dict[str, str] = {}
    command = options.get("mfa_command")
    if command:
        name = hashlib.sha256(system.name.encode()).hexdigest()[:12]
        env = {"SSH_ASKPASS": str(askpass_script(command, name)), "SSH_ASKPASS_REQUIRE": "force"}
    elif not mfa.has_terminal():
        argv += ["-o", "BatchMode=yes"]
    return OpenSSHShell(system.host, argv, env=env, control_path=path, system_name=system.name)


@hookimpl
def expyre_transports() -> List[str]:
    return [NAME]


@hookimpl
def open_shell(transport: str, system: System) -> Shell:
    if system.host is None:
        raise ValueError(f"system '{system.name}' uses the openssh transport but has no host")
    return open_openssh_shell(system)


@hookimpl
def transfer(transport: str, shell: Shell, direction: str, pairs: Sequence[Tuple[Path, str]]) -> bool:
    return tarstream.transfer(shell, direction, pairs)


@hookimpl
def transfer_then_run(transport: str, shell: Shell, pairs: Sequence[Tuple[Path, str]], command: str,
                      timeout: Optional[float] = None) -> CommandResult:
    return tarstream.put_then_run(shell, pairs, command, timeout)
