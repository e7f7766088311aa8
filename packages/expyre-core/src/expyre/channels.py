"""Concurrent channels to one host, limited across all expyre processes of the user.

Sites publish limits such as "at most N simultaneous SSH sessions per user" (sshd's
``MaxSessions`` and ``MaxStartups``, login-node policies), and several expyre processes often
work on one host at once (wfl runs many). A system whose config sets
``"limits": {"max_channels": N}`` makes each of its remote commands and transfers take one of
N *slots* of its host for as long as it runs; when all N are taken it waits, with short sleeps,
until one comes free. Without the key nothing here runs: the system keeps its transport's own
shell and a transfer takes no slot.

A slot is a file ``~/.expyre/channels/<host>-<hash>/<i>`` locked with ``fcntl.flock`` (non-blocking).
A lock belongs to an open file, so the kernel drops it when its process ends, however it ends:
there are no stale slots to clean up. Slots are counted per host as the config writes it
(``host``), so systems on one host share them, whatever their scheduler; give them the same
``max_channels``.

A thread that holds a slot of a host and runs another command there (a transfer whose transport
runs commands) uses its slot again instead of waiting for itself. Other threads of the process
take slots of their own.

Waiting longer than ``limits.max_channel_wait`` seconds (default :data:`DEFAULT_WAIT`) raises
:class:`ChannelWaitError`, which names the system, the host, the key and its value and the
processes holding the slots.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import random
import re
import threading
import time
from pathlib import Path
from typing import ContextManager, Dict, List, Optional, Tuple

from .hooktypes import CommandResult, Shell
from .writes import private_dir

#: The ``limits`` key: most remote commands and transfers in flight to the host at once.
KEY = "max_channels"
#: The ``limits`` key: longest wait in seconds for a free slot before giving up.
WAIT_KEY = "max_channel_wait"
#: Longest wait for a free slot, in seconds, unless the system's ``limits.max_channel_wait`` says.
DEFAULT_WAIT = 600.0
#: First and longest sleep between two looks at the slots (the sleeps double, with jitter).
FIRST_STEP = 0.01
MAX_STEP = 0.2

#: Number of slots this process has taken (tests and benchmarks report it).
slots_taken = 0
_count_lock = threading.Lock()
_NO_SLOT = contextlib.nullcontext()
_held = threading.local()
_host_dirs: Dict[Tuple[str, str], Path] = {}


class ChannelWaitError(RuntimeError):
    """No slot of a host came free within ``limits.max_channel_wait`` seconds."""


def max_channels(system) -> Optional[int]:
    """The system's ``limits.max_channels``, or None (no limit)."""
    limits = getattr(system, "limits", None)
    return limits.get(KEY) if limits else None


def channels_dir() -> Path:
    """The directory of every host's slot files: ``~/.expyre/channels``, private to the user."""
    return Path.home() / ".expyre" / "channels"


def host_dir(host: str) -> Path:
    """The private directory of ``host``'s slot files (its name readable, and unique by a hash),
    created and checked once per process."""
    key = (os.environ.get("HOME", ""), host)
    path = _host_dirs.get(key)
    if path is None:
        readable = re.sub(r"[^A-Za-z0-9._@-]", "_", host)[:60]
        digest = hashlib.sha256(host.encode()).hexdigest()[:10]
        path = private_dir(channels_dir() / f"{readable}-{digest}", "its channel slot files")
        _host_dirs[key] = path
    return path


def slot(system) -> ContextManager[None]:
    """A context that holds one of the slots of ``system``'s host while it runs, waiting for one
    if all are taken; nothing when the system sets no ``limits.max_channels`` or has no host.

    Raises
    ------
    ChannelWaitError
        no slot came free within ``limits.max_channel_wait`` seconds
    """
    limit = max_channels(system)
    if not limit or system.host is None:
        return _NO_SLOT
    return _holding(system, limit)


def held_here(host: str) -> bool:
    """Whether this thread holds a slot of ``host`` now (tests)."""
    return host in _held.__dict__.get("fds", {})


@contextlib.contextmanager
def _holding(system, limit: int):
    held: Dict[str, int] = _held.__dict__.setdefault("fds", {})
    host = system.host
    if host in held:  # this thread holds a slot of the host already: nested use
        yield
        return
    fd = _acquire(system, host, limit)
    held[host] = fd
    try:
        yield
    finally:
        del held[host]
        os.close(fd)  # closing the file drops its lock


def _try_lock(path: Path) -> Optional[int]:
    """An open descriptor of ``path`` holding its lock, or None if another holds it."""
    import fcntl  # POSIX only: imported where a limit is set, never otherwise

    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except FileNotFoundError:  # the directory was removed since it was made: make it again
        private_dir(path.parent, "its channel slot files")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def _acquire(system, host: str, limit: int) -> int:
    global slots_taken
    directory = host_dir(host)
    wait = float(system.limits.get(WAIT_KEY, DEFAULT_WAIT))
    deadline = time.monotonic() + wait
    first = os.getpid() % limit  # processes start their search at different slots
    step = FIRST_STEP
    while True:
        for i in range(limit):
            fd = _try_lock(directory / str((first + i) % limit))
            if fd is not None:
                # who holds it, for the error message; a fixed width overwrites the last holder's
                # pid without truncating the file (truncating costs ten times the rest)
                os.pwrite(fd, f"{os.getpid():>12}\n".encode(), 0)
                with _count_lock:
                    slots_taken += 1
                return fd
        left = deadline - time.monotonic()
        if left <= 0:
            raise ChannelWaitError(wait_message(system, limit, wait, holders(directory, limit)))
        time.sleep(min(left, step * random.uniform(0.5, 1.0)))
        step = min(step * 2, MAX_STEP)


def holders(directory: Path, limit: int) -> List[str]:
    """The process ids written in the slot files of ``directory`` that are locked now."""
    pids = []
    for i in range(limit):
        path = directory / str(i)
        fd = _try_lock(path)
        if fd is not None:
            os.close(fd)
            continue
        try:
            pids.append(path.read_text().strip() or "?")
        except OSError:
            pids.append("?")
    return pids


def wait_message(system, limit: int, wait: float, pids: List[str]) -> str:
    """The message of :class:`ChannelWaitError`: the system, the host, the key, its value and
    where it was set, who holds the slots, and what to do."""
    sources = getattr(system, "sources", None) or {}
    origin = sources.get(f"limits.{KEY}") or sources.get("limits")
    where = f" (set in {origin})" if origin else ""
    held = f" by processes {', '.join(pids)} of this user" if pids else ""
    return (f"system '{system.name}': no channel to host '{system.host}' came free within {wait:g} s: "
            f"limits.{KEY} = {limit}{where} allows {limit} remote command(s) or transfer(s) at once, "
            f"and all were held{held}. Let those processes finish, or raise limits.{KEY} if the site "
            f"allows more, or limits.{WAIT_KEY} (seconds) to wait longer")


class LimitedShell:
    """A transport's shell whose every command holds a slot of its host (:func:`slot`) while it
    runs. Everything else (``close``, ``logout``, ``control_path``, ...) is the shell's own.

    Parameters
    ----------
    shell: Shell
        the shell the transport's ``open_shell`` handed out
    system: System
        the system it belongs to (its host and ``limits``)
    """

    def __init__(self, shell: Shell, system):
        self.inner = shell
        self.host = shell.host
        self._system = system

    def run(self, command: str, **kwargs) -> CommandResult:
        with slot(self._system):
            return self.inner.run(command, **kwargs)

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, name: str):
        value = getattr(self.inner, name)
        if name == "run_bytes":  # the tar-stream transfers' way of running a command
            def run_bytes(*args, **kwargs):
                with slot(self._system):
                    return value(*args, **kwargs)
            return run_bytes
        return value


def limited(shell: Shell, system) -> Shell:
    """``shell`` itself when ``system`` sets no ``limits.max_channels`` (or has no host), else a
    :class:`LimitedShell` around it."""
    if not max_channels(system) or system.host is None:
        return shell
    return LimitedShell(shell, system)


def unwrapped(shell: Shell) -> Shell:
    """The transport's own shell inside a :class:`LimitedShell` (a transport's ``transfer`` hook
    gets the shell its ``open_shell`` made), or ``shell`` itself."""
    return shell.inner if isinstance(shell, LimitedShell) else shell
