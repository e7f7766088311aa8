"""Fixtures for tests against the real local OpenSSH server of tests/services/10-sshd.sh.

Import the fixtures a test module uses *and* the ones they depend on, for example::

    from sshd_fixtures import sshd, ssh_client_setup  # noqa: F401  (pytest fixtures)

    def test_something(ssh_client_setup, sshd):
        host = ssh_client_setup            # "cluster", defined in the test's ~/.ssh/config
        ...
        assert sshd.run_as_user("ls ~/run_expyre").returncode == 0

(ruff then reports the test arguments as F811 redefinitions: put ``# ruff: noqa: F811`` at the
top of such a test module.)

- ``sshd`` (session): an :class:`SshdService` with the service's values, ``stop()``/``start()``,
  ``known_hosts_lines()`` and ``run_as_user()``. Skips (fails under CI) when the service is missing.
- ``ssh_client_setup`` (function): writes ``~/.ssh/config`` (``Host cluster``) and
  ``~/.ssh/known_hosts`` in the test's own HOME (conftest's ``isolated_home``) and returns
  ``"cluster"``; after the test it removes ``~xpr-cluster/run_expyre``. ``ssh_user_config`` is the
  same fixture under another name.
- ``remote_run_expyre_cleanup`` (function): only the clean-up of ``~xpr-cluster/run_expyre``.

Note for the OpenSSH client binary: ``ssh`` finds ``~/.ssh`` through the passwd entry, not
``$HOME``, so run it as ``ssh -F "$HOME/.ssh/config" cluster ...`` (see :func:`ssh_command`);
the config written here names its known_hosts file by absolute path for that reason. paramiko
and other Python clients use ``$HOME`` and need nothing special.
"""
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional

import pytest
import servicelib

HOST_ALIAS = "cluster"
REMOTE_RUN_DIR = "run_expyre"


def _port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass
class SshdService:
    """The local sshd started by tests/services/10-sshd.sh (values from .test-services/sshd.env)."""

    host: str
    port: int
    user: str
    home: Path
    client_key: Path
    host_keys: List[Path]
    config: Path
    pid_file: Path
    bin: Path
    log: Path
    remote_python: Path
    env: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_env(cls, values: dict) -> "SshdService":
        return cls(host=values["SSHD_HOST"], port=int(values["SSHD_PORT"]), user=values["SSHD_USER"],
                   home=Path(values["SSHD_HOME"]), client_key=Path(values["SSHD_CLIENT_KEY"]),
                   host_keys=[Path(p) for p in values["SSHD_HOST_KEYS"].split()],
                   config=Path(values["SSHD_CONFIG"]), pid_file=Path(values["SSHD_PID_FILE"]),
                   bin=Path(values["SSHD_BIN"]), log=Path(values["SSHD_LOG"]),
                   remote_python=Path(values["SSHD_REMOTE_PYTHON"]), env=dict(values))

    # -- the daemon ---------------------------------------------------------------------------------
    def pid(self) -> Optional[int]:
        """The daemon's pid if it is running (with our config), else None."""
        try:
            pid = int(self.pid_file.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError):
            return None
        return pid if str(self.config) in cmdline else None

    def is_running(self) -> bool:
        return self.pid() is not None

    def accepts_connections(self) -> bool:
        return _port_open(self.host, self.port)

    def _wait_until(self, condition: Callable[[], bool], what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f"sshd on {self.host}:{self.port}: {what} within {timeout} s; "
                                   f"log tail:\n{self.log_tail()}")
            time.sleep(0.05)

    def _wait_port(self, open_: bool, timeout: float) -> None:
        state = "accept" if open_ else "refuse"
        self._wait_until(lambda: self.accepts_connections() == open_, f"the port did not {state} connections",
                         timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Kill the listening daemon (sessions already open live on) and wait until the port refuses."""
        pid = self.pid()
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while self.pid() == pid and time.monotonic() < deadline:
                time.sleep(0.05)
        self._wait_port(False, timeout)

    def start(self, timeout: float = 10.0) -> None:
        """Start the daemon again with the same config (if it is not running) and wait for the port
        and for its pid file: sshd listens before it writes that file, so an open port alone does
        not mean :meth:`is_running` says so yet."""
        if not self.is_running():
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
            subprocess.run([str(self.bin), "-f", str(self.config), "-E", str(self.log)],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           check=True, timeout=timeout)
        self._wait_port(True, timeout)
        self._wait_until(self.is_running, f"it listens but wrote no pid file {self.pid_file}", timeout)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError as exc:
            return f"(no log: {exc})"

    # -- keys and the remote side ---------------------------------------------------------------------
    def known_hosts_lines(self) -> List[str]:
        """``[127.0.0.1]:PORT keytype base64`` for each host key, as in an OpenSSH known_hosts file."""
        lines = []
        for pub in self.host_keys:
            key_type, key_data = pub.read_text().split()[:2]
            lines.append(f"[{self.host}]:{self.port} {key_type} {key_data}")
        return lines

    def run_as_user(self, command: str, timeout: float = 60.0, check: bool = False) -> subprocess.CompletedProcess:
        """Run a shell command on this machine as the cluster account (login shell, in its home),
        without going through sshd: for assertions about the remote side."""
        return subprocess.run(["runuser", "-l", self.user, "-c", command], stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout, check=check)

    def remove_remote_dir(self, name: str = REMOTE_RUN_DIR) -> None:
        """Remove ``~USER/NAME`` (as the account), e.g. the jobs' ``run_expyre`` directory."""
        if "/" in name or name in ("", ".", ".."):
            raise ValueError(f"not a plain directory name: {name!r}")
        self.run_as_user(f'rm -rf -- "$HOME/{name}"', check=True)


def write_ssh_client_files(home: Path, service: SshdService, alias: str = HOST_ALIAS) -> str:
    """Write ``HOME/.ssh/config`` (a ``Host ALIAS`` entry for the service) and ``HOME/.ssh/known_hosts``."""
    ssh_dir = Path(home) / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    ssh_dir.chmod(0o700)
    known_hosts = ssh_dir / "known_hosts"
    known_hosts.write_text("\n".join(service.known_hosts_lines()) + "\n")
    known_hosts.chmod(0o600)
    config = ssh_dir / "config"
    config.write_text(
        f"Host {alias}\n"
        f"    HostName {service.host}\n"
        f"    Port {service.port}\n"
        f"    User {service.user}\n"
        f"    IdentityFile {service.client_key}\n"
        f"    IdentitiesOnly yes\n"
        f"    UserKnownHostsFile {known_hosts}\n")
    config.chmod(0o600)
    return alias


def ssh_command(*args: str, home: Optional[Path] = None) -> List[str]:
    """``ssh -F HOME/.ssh/config -o BatchMode=yes ARGS...``: the OpenSSH client with the test's HOME."""
    home = Path(home if home is not None else os.environ["HOME"])
    return ["ssh", "-F", str(home / ".ssh" / "config"), "-o", "BatchMode=yes", "-o", "ConnectTimeout=20", *args]


@pytest.fixture(scope="session")
def sshd():
    """The local sshd service; skips (fails under CI) when tests/services/10-sshd.sh did not run.
    If a test left the daemon stopped, it is started again at the end of the session."""
    service = SshdService.from_env(servicelib.require_service("sshd"))
    if not service.accepts_connections():
        service.start()
    yield service
    if not service.is_running():
        service.start()


@pytest.fixture
def remote_run_expyre_cleanup(sshd):
    """Removes ``~xpr-cluster/run_expyre`` after the test."""
    yield sshd.home / REMOTE_RUN_DIR
    sshd.remove_remote_dir(REMOTE_RUN_DIR)


def _client_setup(sshd: SshdService, home: Path):
    if not sshd.is_running():  # a previous test may have stopped it and failed before start()
        sshd.start()
    yield write_ssh_client_files(home, sshd)
    sshd.remove_remote_dir(REMOTE_RUN_DIR)


@pytest.fixture
def ssh_client_setup(sshd, isolated_home):
    """``~/.ssh/config`` and ``~/.ssh/known_hosts`` for the service in the test's HOME; returns the
    host alias ``"cluster"``. Removes ``~xpr-cluster/run_expyre`` after the test."""
    yield from _client_setup(sshd, isolated_home)


@pytest.fixture
def ssh_user_config(sshd, isolated_home):
    """The same as :func:`ssh_client_setup`, under another name."""
    yield from _client_setup(sshd, isolated_home)
