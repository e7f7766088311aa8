"""The ``ssh`` transport: one authenticated paramiko connection per host, for the whole process.

Commands go to one long-lived ``bash -l`` on one channel of that connection: each command is
written to the shell's standard input and followed by an end marker carrying its exit status,
so a command costs a round trip, not a new SSH session. Transfers travel the same channel as tar
streams (:mod:`expyre.transports.tarstream`). Host keys are checked against
``~/.ssh/known_hosts`` and ``/etc/ssh/ssh_known_hosts``; an unknown host is refused unless the
system (or ``~/.ssh/config``) says ``accept-new``, and a changed key is always refused.

When the connection drops, a command is run again after reconnecting (tries and wait from
``EXPYRE_RETRY``, ``"<tries> <seconds>"``, default ``"3 5"``, the wait doubling each time) if
it is idempotent; a command that is not (a submission) raises
:class:`expyre.ConnectionLostError` so that core can ask the scheduler what happened.
"""
from __future__ import annotations

import logging
import secrets
import socket
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Set, Tuple

import paramiko

from .. import mfa, shellfunctions
from ..hookspecs import hookimpl
from ..hooktypes import CommandResult, ConnectionLostError, Shell, command_result, quote
from ..retry import retry_settings
from . import sshconfig, tarstream
from .sshconfig import ConnectSpec

if TYPE_CHECKING:  # pragma: no cover
    from ..system import System

NAME = "ssh"
log = logging.getLogger(__name__)

#: Number of SSH connections this process opened (benchmarks report it).
connections_opened = 0
#: Number of logins that answered a keyboard-interactive question (one-time code) in this process.
mfa_logins = 0


class HostKeyError(RuntimeError):
    """The host's key is unknown or has changed; nothing was sent to it."""


# --------------------------------------------------------------------------- host keys

def _user_known_hosts(spec: ConnectSpec) -> List[Path]:
    """The user's known_hosts files: ``UserKnownHostsFile`` from ~/.ssh/config, or ~/.ssh/known_hosts."""
    return [Path(p) for p in spec.known_hosts_files] or [Path.home() / ".ssh" / "known_hosts"]


class _AcceptNewPolicy(paramiko.MissingHostKeyPolicy):
    """OpenSSH's StrictHostKeyChecking=accept-new: record an unknown host's key, loudly."""

    def __init__(self, path: Path):
        self.path = path

    def missing_host_key(self, client, hostname, key):
        path = self.path
        path.parent.mkdir(mode=0o700, exist_ok=True)
        with open(path, "a") as fout:
            fout.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")
        client.get_host_keys().add(hostname, key.get_name(), key)
        log.warning("expyre ssh: permanently added %s (%s) to %s", hostname, key.get_name(), path)


class _RefuseUnknownPolicy(paramiko.MissingHostKeyPolicy):
    def __init__(self, login_command: str = ""):
        self.login_command = login_command

    def missing_host_key(self, client, hostname, key):
        login = self.login_command or f"ssh {hostname}"
        raise HostKeyError(
            f"host key of {hostname} is not known ({key.get_name()} {key.fingerprint}): expyre does not "
            f"connect to unknown hosts. Check the fingerprint and accept it by logging in once with "
            f"'{login}' (which records it in ~/.ssh/known_hosts), or set "
            f"\"ssh\": {{\"strict_host_key_checking\": \"accept-new\"}} for this system in the expyre config")


def _new_client(spec: ConnectSpec) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    user_files = _user_known_hosts(spec)
    for path in [Path("/etc/ssh/ssh_known_hosts")] + user_files:
        if path.is_file():
            client.load_system_host_keys(str(path))
    client.set_missing_host_key_policy(_AcceptNewPolicy(user_files[0]) if spec.accept_new_host_keys
                                       else _RefuseUnknownPolicy(spec.login_command))
    return client


# --------------------------------------------------------------------------- one-time codes

class _MFATransport(paramiko.Transport):
    """A paramiko transport whose second factor (keyboard-interactive after the key, as sshd
    asks with ``AuthenticationMethods publickey,keyboard-interactive``) is answered by
    :mod:`expyre.mfa` instead of paramiko's ``input()``, which would wait for ever without a
    terminal."""

    answerer: Optional[mfa.Answerer] = None

    def auth_interactive_dumb(self, username, handler=None, submethods=""):
        answerer = self.answerer
        if answerer is None:
            return super().auth_interactive_dumb(username, handler, submethods)
        if not answerer.can_answer():
            raise mfa.MFACodeUnavailableError(mfa.no_way_message(answerer.destination, "", answerer.system))
        try:
            return self.auth_interactive(username, answerer, submethods)
        except paramiko.AuthenticationException:
            if answerer.error is not None:
                raise answerer.error from None
            raise


# --------------------------------------------------------------------------- connections

class Connection:
    """One authenticated SSH connection (through jump hosts or a proxy command if configured)."""

    def __init__(self, spec: ConnectSpec):
        self.spec = spec
        self.client: Optional[paramiko.SSHClient] = None
        self._jumps: list = []
        self._lock = threading.Lock()

    @property
    def is_active(self) -> bool:
        transport = self.client.get_transport() if self.client else None
        return bool(transport and transport.is_active())

    def transport(self) -> paramiko.Transport:
        """The live transport, connecting (again) if needed."""
        with self._lock:
            if not self.is_active:
                self.close()
                self._connect()
            return self.client.get_transport()

    def _connect(self) -> None:
        global connections_opened, mfa_logins
        spec = self.spec
        sock = self._sock()
        client = _new_client(spec)
        answerer = mfa.Answerer(spec.destination, spec.mfa_command, spec.system)

        def transport_factory(*args, **kwargs):
            transport = _MFATransport(*args, **kwargs)
            transport.answerer = answerer
            return transport

        try:
            client.connect(spec.hostname, port=spec.port, username=spec.user, key_filename=spec.key_files or None,
                           look_for_keys=not spec.identities_only, allow_agent=True, timeout=spec.connect_timeout,
                           banner_timeout=spec.connect_timeout, auth_timeout=spec.connect_timeout, sock=sock,
                           transport_factory=transport_factory)
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise HostKeyError(
                f"host key of {spec.destination} has CHANGED: expected {exc.expected_key.get_name()} "
                f"{exc.expected_key.fingerprint} from known_hosts, got {exc.key.get_name()} {exc.key.fingerprint}. "
                "This may be an attack, or the host was reinstalled; expyre refuses to connect. If you know "
                "the new key is right, remove the old one with 'ssh-keygen -R <host>' and log in once "
                "with ssh") from None
        except BaseException:
            client.close()
            raise
        transport = client.get_transport()
        if answerer.asked:
            mfa_logins += 1
        _no_delay(transport.sock)
        if spec.server_alive_interval > 0:
            transport.set_keepalive(int(spec.server_alive_interval))
        self.client = client
        connections_opened += 1
        log.debug("expyre ssh: connected to %s", spec.destination)

    def _sock(self):
        spec = self.spec
        if spec.proxy_command:
            return paramiko.ProxyCommand(spec.proxy_command)
        if not spec.proxy_jump:
            return None
        previous = None
        for hop in sshconfig.jump_hosts(spec.proxy_jump):
            hop_spec = sshconfig.resolve(hop)
            hop_spec.accept_new_host_keys = spec.accept_new_host_keys
            if previous is not None:
                hop_spec.proxy_jump, hop_spec.proxy_command = None, None
            jump = Connection(hop_spec)
            if previous is not None:
                jump._sock = lambda prev=previous, s=hop_spec: _tunnel(prev, s)
            jump.transport()
            self._jumps.append(jump)
            previous = jump
        return _tunnel(previous, spec)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
        for jump in reversed(self._jumps):
            jump.close()
        self._jumps = []


def _no_delay(sock) -> None:
    """Send small writes at once: a command and its input would otherwise wait out delayed ACKs."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (AttributeError, OSError):  # a proxy command's pipe or a jump channel: not a TCP socket
        pass


def _tunnel(through: Connection, spec: ConnectSpec):
    return through.transport().open_channel("direct-tcpip", (spec.hostname, spec.port), ("127.0.0.1", 0),
                                            timeout=spec.connect_timeout)


_connections: Dict[tuple, Connection] = {}
_connections_lock = threading.Lock()


def connection_for(spec: ConnectSpec) -> Connection:
    """The process-wide connection for ``spec`` (created on first use, not yet connected)."""
    with _connections_lock:
        conn = _connections.get(spec.key)
        if conn is None:
            conn = _connections[spec.key] = Connection(spec)
        return conn


def close_all() -> None:
    """Close every connection this process opened (tests, long-running services)."""
    with _connections_lock:
        for conn in _connections.values():
            conn.close()
        _connections.clear()


# --------------------------------------------------------------------------- the shell

class _NotTransient(Exception):
    """A failure that trying again cannot mend (name resolution, authentication)."""


class _ChannelLost(Exception):
    """The channel or connection broke; ``sent`` says whether the command had been sent."""

    def __init__(self, sent: bool, cause: BaseException):
        super().__init__(str(cause))
        self.sent = sent
        self.cause = cause


class _LocalWriteFailed(Exception):
    """Writing a command's answer to the caller's ``stdout_file`` failed (a local error, such as
    a full disk: not a lost connection, so never retried)."""

    def __init__(self, error: OSError):
        super().__init__(str(error))
        self.error = error


def _write_out(stdout_file, data) -> None:
    try:
        stdout_file.write(data)
    except OSError as exc:
        raise _LocalWriteFailed(exc) from exc


class SSHShell:
    """Commands on the host through one long-lived ``bash -l`` on one channel.

    Each command runs in a subshell, started in the home directory, with its standard error
    kept in a temporary file on the host and printed after an end marker, so the whole answer
    comes back on one stream.
    """

    def __init__(self, spec: ConnectSpec):
        self.spec = spec
        self.host = spec.alias
        self.connection = connection_for(spec)
        self._channel: Optional[paramiko.Channel] = None
        self._token = ""
        #: the definitions of :mod:`expyre.shellfunctions` that the session has run
        self._defined: Set[str] = set()
        self._lock = threading.Lock()

    # -- public

    def run(self, command: str, *, input: Optional[bytes] = None, timeout: Optional[float] = None,
            check: bool = True, idempotent: bool = True) -> CommandResult:
        returncode, stdout, stderr = self.run_bytes(command, input=input, timeout=timeout, idempotent=idempotent)
        return command_result(self.host, command, returncode, stdout, stderr, check)

    def run_bytes(self, command: str, *, input: Optional[bytes] = None, input_file=None, input_size: int = 0,
                  timeout: Optional[float] = None, idempotent: bool = True,
                  stdout_file=None) -> Tuple[int, bytes, bytes]:
        """Run ``command``; its standard input is ``input`` or ``input_size`` bytes of ``input_file``.

        With ``stdout_file`` (a binary file), the command's standard output is written there as
        it arrives, and the returned stdout is empty: large answers never sit in memory.
        """
        if input is not None:
            input_size = len(input)
        tries, wait = retry_settings()
        last: Optional[BaseException] = None
        for attempt in range(tries):
            if input_file is not None:
                input_file.seek(0)
            if stdout_file is not None:
                stdout_file.seek(0)
                stdout_file.truncate()
            try:
                with self._lock:
                    return self._run_once(command, input, input_file, input_size, timeout, stdout_file)
            except (HostKeyError, mfa.MFACodeUnavailableError):
                raise
            except _LocalWriteFailed as failed:
                self._drop_channel()  # the rest of the answer is still on its way
                raise failed.error from None
            except _NotTransient as exc:
                raise ConnectionLostError(self.host, str(exc)) from None
            except paramiko.AuthenticationException as exc:
                raise ConnectionLostError(self.host, f"cannot log in to {self.spec.destination}: {exc} "
                                                     "(not tried again: check the user and key)") from exc
            except _ChannelLost as lost:
                self._drop_channel()
                last = lost.cause
                if lost.sent and not idempotent:
                    raise ConnectionLostError(
                        self.host, f"connection to {self.spec.destination} was lost while running a command "
                                   f"that must not be repeated; its outcome is unknown: {lost.cause}") from lost.cause
            except (OSError, EOFError, paramiko.SSHException) as exc:
                self._drop_channel()
                last = exc
            if attempt < tries - 1:
                delay = wait * 2 ** attempt
                log.warning("expyre ssh: %s unreachable (%s); trying again in %.0f s",
                            self.spec.destination, last, delay)
                time.sleep(delay)
        # a command that must not be repeated was never sent (else the loop would have stopped)
        raise ConnectionLostError(self.host, f"cannot reach {self.spec.destination} after {tries} tries: {last}",
                                  sent=False if not idempotent else None)

    def close(self) -> None:
        with self._lock:
            self._drop_channel()

    # -- internals

    def _open_channel(self) -> None:
        transport = self.connection.transport()
        channel = transport.open_session(timeout=self.spec.connect_timeout)
        channel.exec_command("exec bash -l")
        self._token = "__expyre_" + secrets.token_hex(16)
        self._channel = channel
        self._defined = set()
        channel.sendall(_session_start(self._token).encode())
        self._read_answer(self.spec.connect_timeout)  # discards whatever the login scripts printed

    def _drop_channel(self) -> None:
        if self._channel is not None:
            try:
                self._channel.close()
            except Exception:
                pass
            self._channel = None

    def _run_once(self, command, input, input_file, input_size, timeout, stdout_file=None) -> Tuple[int, bytes, bytes]:
        sent = False
        try:
            if self._channel is None or self._channel.closed or not self.connection.is_active:
                self._drop_channel()
                self._open_channel()
            definitions, command = shellfunctions.split(command, self._defined)
            wrapped = definitions + _wrapped(command, input is not None or input_file is not None, input_size)
            channel = self._channel
            if input is not None:
                channel.sendall(wrapped.encode() + input)
                sent = True
            else:
                channel.sendall(wrapped.encode())
                sent = True
            if input_file is not None:
                for block in iter(lambda: input_file.read(1 << 20), b""):
                    channel.sendall(block)
            return self._read_answer(timeout, stdout_file)
        except (HostKeyError, paramiko.AuthenticationException, _LocalWriteFailed, mfa.MFACodeUnavailableError):
            raise
        except socket.gaierror as exc:
            # a name that does not resolve will not resolve on the next try either
            via = (f" (HostName of '{self.spec.alias}' in ~/.ssh/config)"
                   if self.spec.alias != self.spec.hostname else "")
            raise _NotTransient(f"cannot resolve the host name '{self.spec.hostname}'{via}: {exc}. Not tried "
                                "again: check the name, or define it as a Host in ~/.ssh/config") from None
        except paramiko.SSHException as exc:
            if "authentication" in str(exc).lower():  # "No authentication methods available"
                raise _NotTransient(f"cannot log in to {self.spec.destination}: {exc}") from None
            raise _ChannelLost(sent, exc) from exc
        except (OSError, EOFError, socket.timeout) as exc:
            if isinstance(exc, socket.timeout) or isinstance(exc, TimeoutError):
                self._drop_channel()
                raise TimeoutError(f"command on {self.spec.destination} did not finish within {timeout} s") from None
            raise _ChannelLost(sent, exc) from exc

    #: With a ``stdout_file``, output beyond this much is written out (all but a marker's length).
    _SPILL_AT = 4 << 20

    def _read_answer(self, timeout: Optional[float], stdout_file=None) -> Tuple[int, bytes, bytes]:
        channel = self._channel
        channel.settimeout(timeout)
        marker = ("\n" + self._token + " ").encode()
        buffer = bytearray()
        search_from = 0
        while True:
            index = buffer.find(marker, search_from)
            if index >= 0:
                end = buffer.find(b"\n", index + len(marker))
                if end >= 0:
                    status, err_size, *ended = buffer[index + len(marker):end].split()
                    status, err_size = int(status), int(err_size)
                    while len(buffer) < end + 1 + err_size:
                        self._receive(channel, buffer)
                    stdout = bytes(buffer[:index])
                    stderr = bytes(buffer[end + 1:end + 1 + err_size])
                    if ended:  # the session's shell has exited after answering: open a new one next time
                        self._drop_channel()
                    if stdout_file is not None:
                        _write_out(stdout_file, stdout)
                        stdout = b""
                    return status, stdout, stderr
            elif stdout_file is not None and len(buffer) > self._SPILL_AT:
                # the marker cannot start before the last len(marker) bytes: write out the rest
                spill = len(buffer) - len(marker)
                _write_out(stdout_file, buffer[:spill])
                del buffer[:spill]
            search_from = max(0, len(buffer) - len(marker))
            self._receive(channel, buffer)

    @staticmethod
    def _receive(channel: paramiko.Channel, buffer: bytearray) -> None:
        data = channel.recv(1 << 20)
        if not data:
            stderr = channel.recv_stderr(65536) if channel.recv_stderr_ready() else b""
            raise EOFError(f"the remote shell ended{': ' + stderr.decode(errors='replace') if stderr else ''}")
        buffer.extend(data)
        while channel.recv_stderr_ready():  # the shell's own complaints, not a command's
            log.debug("expyre ssh shell stderr: %r", channel.recv_stderr(65536))


def _session_start(token: str) -> str:
    """What a new session's shell runs first: the file for the commands' error output, the
    functions that run each command and send its answer, and an answer of its own (which
    marks the end of what the login scripts printed).

    ``__xpr_run COMMAND`` runs COMMAND in a subshell from the home directory, its standard
    input ``/dev/null``, its error output kept in the session's file. ``__xpr_in SIZE COMMAND``
    does the same with the next SIZE bytes of the channel as standard input (``head -c`` never
    reads ahead), in the subshell of the pipeline from ``head``, which drains what the command
    left unread when it exits. If the command replaces its shell with a program (``exec``) that
    leaves part of its input unread, ``head`` is killed and the rest is still on its way to the
    session, which would run it as commands: the answer then says so (``end``) and the session's
    shell exits.
    ``__xpr_answer STATUS [end]`` sends the marker (``token``, the status, the size of the error
    output) and the error output. With an empty error output (the usual case) nothing but the
    subshell (and ``head`` for input) is started: each process more costs about a millisecond
    on a small login node."""
    drain = '__xpr_rc=$?; IFS= read -r -d "" -n 1 __xpr_left && cat > /dev/null; exit $__xpr_rc'
    return (
        "__xpr_err=$(mktemp) || exit 1; trap 'rm -f \"$__xpr_err\"' EXIT\n"
        "__xpr_answer() { __xpr_n=0; if [ -s \"$__xpr_err\" ]; then __xpr_n=$(wc -c < \"$__xpr_err\"); fi\n"
        f"  printf '\\n%s %d %d%s\\n' {token} \"$1\" \"$__xpr_n\" \"${{2:+ $2}}\"\n"
        "  if [ \"$__xpr_n\" != 0 ]; then cat \"$__xpr_err\"; fi; }\n"
        "__xpr_run() { ( __xpr_c=$1; set --; cd && eval \"$__xpr_c\" ) < /dev/null 2>\"$__xpr_err\"; "
        "__xpr_answer $?; }\n"
        f"__xpr_in() {{ head -c \"$1\" | {{ __xpr_c=$2; set --; trap {quote(drain)} EXIT\n"
        "  cd && eval \"$__xpr_c\"; } 2>\"$__xpr_err\"; __xpr_st=(\"${PIPESTATUS[@]}\")\n"
        "  if [ \"${__xpr_st[0]}\" = 0 ]; then __xpr_answer \"${__xpr_st[1]}\"; else\n"
        "    echo 'expyre: the command left part of its input unread; the session ends' >> \"$__xpr_err\"\n"
        "    __xpr_answer \"${__xpr_st[1]}\" end; exit 1; fi; }\n"
        "__xpr_answer 0\n")


def _wrapped(command: str, has_input: bool, input_size: int) -> str:
    """The line the session's shell runs for ``command`` (see :func:`_session_start`): its
    standard input is the next ``input_size`` bytes of the channel, or ``/dev/null``."""
    if has_input:
        return f"__xpr_in {int(input_size)} {quote(command)}\n"
    return f"__xpr_run {quote(command)}\n"


# --------------------------------------------------------------------------- hooks

@hookimpl
def expyre_transports() -> List[str]:
    return [NAME]


@hookimpl
def check_options(name: str, options: dict) -> List[Tuple[str, object, str]]:
    """The system's ``ssh`` table: known settings of the right types (see :mod:`.sshconfig`)."""
    return sshconfig.check_ssh_options(options)


@hookimpl
def open_shell(transport: str, system: System) -> Shell:
    if system.host is None:
        raise ValueError(f"system '{system.name}' uses the ssh transport but has no host")
    spec = sshconfig.resolve(system.host, system.options)
    spec.system = system.name
    return SSHShell(spec)


@hookimpl
def transfer(transport: str, shell: Shell, direction: str, pairs: Sequence[Tuple[Path, str]]) -> bool:
    return tarstream.transfer(shell, direction, pairs)


@hookimpl
def transfer_then_run(transport: str, shell: Shell, pairs: Sequence[Tuple[Path, str]], command: str,
                      timeout: Optional[float] = None) -> CommandResult:
    return tarstream.put_then_run(shell, pairs, command, timeout)
