"""Where and how to connect to a system's host: ``~/.ssh/config`` as OpenSSH reads it, plus the
system's own ``ssh`` settings in the expyre config.

The expyre config may give, per system, ``"ssh": {...}`` with the keys of :data:`SSH_OPTIONS`;
they override what ``~/.ssh/config`` says for the host.
"""
from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Tuple

import paramiko

#: Settings a system may give in its ``"ssh"`` table: name -> (accepted types, description).
SSH_OPTIONS = {
    "port": ((int,), "TCP port of the host's SSH server"),
    "user": ((str,), "account on the host"),
    "key_file": ((str, list), "private key file(s) to log in with"),
    "proxy_jump": ((str,), "jump host(s), as OpenSSH's ProxyJump: [user@]host[:port][,...]"),
    "proxy_command": ((str,), "command whose stdin/stdout reach the host, as OpenSSH's ProxyCommand"),
    "connect_timeout": ((int, float), "seconds to wait for the connection"),
    "server_alive_interval": ((int, float), "seconds between keepalive messages"),
    "strict_host_key_checking": ((str,), "'yes' (default: unknown hosts refused) or 'accept-new'"),
    "mfa_command": ((str, list), "command on this machine that prints a one-time code, for hosts that ask "
                                 "for one after the key (see expyre.mfa)"),
    "control_persist": ((int,), "openssh transport: seconds its ControlMaster connection stays open after "
                                "the last command (0: closed with the last command)"),
}

HOST_KEY_CHECKING_VALUES = ("yes", "accept-new")
DEFAULT_CONNECT_TIMEOUT = 30.0
DEFAULT_SERVER_ALIVE_INTERVAL = 30.0


def check_ssh_options(options: dict) -> List[Tuple[str, object, str]]:
    """Problems in a system's ``ssh`` settings, as ``(key, value, problem)`` tuples."""
    problems = []
    for key, value in options.items():
        if key not in SSH_OPTIONS:
            problems.append((key, value, f"unknown ssh setting; known: {', '.join(SSH_OPTIONS)}"))
            continue
        types, _ = SSH_OPTIONS[key]
        if not isinstance(value, types) or isinstance(value, bool):
            problems.append((key, value, f"must be {' or '.join(t.__name__ for t in types)}"))
        elif key == "strict_host_key_checking" and value not in HOST_KEY_CHECKING_VALUES:
            problems.append((key, value, f"must be one of {', '.join(HOST_KEY_CHECKING_VALUES)}"))
        elif key == "mfa_command" and (not value or (isinstance(value, list)
                                                     and not all(isinstance(w, str) and w for w in value))):
            problems.append((key, value, "must be a non-empty command: a string, or a list of non-empty strings"))
        elif key == "control_persist" and value < 0:
            problems.append((key, value, "must be 0 or a positive number of seconds"))
    return problems


@dataclass
class ConnectSpec:
    """Everything needed to open one SSH connection."""

    alias: str
    hostname: str
    port: int = 22
    user: Optional[str] = None
    key_files: List[str] = field(default_factory=list)
    identities_only: bool = False
    proxy_jump: Optional[str] = None
    proxy_command: Optional[str] = None
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    server_alive_interval: float = DEFAULT_SERVER_ALIVE_INTERVAL
    accept_new_host_keys: bool = False
    known_hosts_files: List[str] = field(default_factory=list)
    #: the OpenSSH command that logs in to this host as expyre does (for advice in messages)
    login_command: str = ""
    #: command that prints a one-time code (``ssh.mfa_command``), see :mod:`expyre.mfa`
    mfa_command: Optional[object] = None
    #: name of the expyre system this connection serves (for messages)
    system: str = ""

    @property
    def destination(self) -> str:
        """``user@host:port`` for messages."""
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port != 22 else ""
        return f"{user}{self.hostname}{port}"

    @property
    def key(self) -> tuple:
        """Identity of the connection: systems with the same key share one connection."""
        return (self.user, self.hostname, self.port, self.proxy_jump, self.proxy_command)


def split_destination(destination: str) -> Tuple[Optional[str], str, Optional[int]]:
    """``[user@]host[:port]`` -> (user, host, port)."""
    user, _, hostport = destination.rpartition("@")
    host, port = hostport, None
    if hostport.startswith("["):
        host, _, rest = hostport[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") else None
    elif hostport.count(":") == 1:
        host, port_text = hostport.split(":")
        port = int(port_text)
    return (user or None), host, port


def load_ssh_config() -> paramiko.SSHConfig:
    """``~/.ssh/config`` (empty when there is none)."""
    path = Path.home() / ".ssh" / "config"
    if path.is_file():
        return paramiko.SSHConfig.from_path(str(path))
    return paramiko.SSHConfig()


def resolve(host: str, options: Optional[dict] = None, ssh_config: Optional[paramiko.SSHConfig] = None) -> ConnectSpec:
    """The connection for ``host`` (``[user@]alias[:port]``) from ``~/.ssh/config`` and ``options``.

    Precedence, as OpenSSH: the destination's own user and port, then the system's ``ssh``
    settings, then ``~/.ssh/config``, then defaults.
    """
    options = dict(options or {})
    ssh_config = ssh_config if ssh_config is not None else load_ssh_config()
    user, alias, port = split_destination(host)
    found = ssh_config.lookup(alias)
    key_files = options.get("key_file", found.get("identityfile", []))
    if isinstance(key_files, str):
        key_files = [key_files]
    final_port = int(port or options.get("port") or found.get("port", 22))
    final_user = user or options.get("user") or found.get("user")
    return ConnectSpec(
        alias=alias,
        hostname=found.get("hostname", alias),
        port=final_port,
        user=final_user,
        login_command=_login_command(alias, final_user, final_port, found),
        key_files=[os.path.expanduser(k) for k in key_files],
        identities_only=found.get("identitiesonly", "no").lower() == "yes",
        proxy_jump=options.get("proxy_jump", _none_if_none(found.get("proxyjump"))),
        proxy_command=options.get("proxy_command", _none_if_none(found.get("proxycommand"))),
        connect_timeout=float(options.get("connect_timeout", found.get("connecttimeout", DEFAULT_CONNECT_TIMEOUT))),
        server_alive_interval=float(options.get("server_alive_interval",
                                                found.get("serveraliveinterval", DEFAULT_SERVER_ALIVE_INTERVAL))),
        accept_new_host_keys=(options.get("strict_host_key_checking",
                                          found.get("stricthostkeychecking", "yes")).lower() == "accept-new"),
        known_hosts_files=[os.path.expanduser(p) for p in found.get("userknownhostsfile", "").split()],
        mfa_command=options.get("mfa_command"),
    )


def _login_command(alias: str, user: Optional[str], port: int, found: dict) -> str:
    """``ssh [-p PORT] [user@]alias``: ~/.ssh/config supplies what it defines for ``alias``, the
    command adds what came from elsewhere (the destination or the expyre config)."""
    words = ["ssh"]
    if port != int(found.get("port", 22)):
        words += ["-p", str(port)]
    target = f"{user}@{alias}" if user and user != found.get("user") else alias
    return " ".join(words + [shlex.quote(target)])


def _none_if_none(value: Optional[str]) -> Optional[str]:
    return None if value is None or value.lower() == "none" else value


def jump_hosts(proxy_jump: str) -> List[str]:
    """The hops of a ProxyJump value, first hop first."""
    return [hop.strip() for hop in proxy_jump.split(",") if hop.strip()]


def proxy_command_argv(command: str) -> List[str]:
    """A ProxyCommand as an argument vector for ``paramiko.ProxyCommand``."""
    return shlex.split(command)
