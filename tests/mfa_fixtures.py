"""Fixtures for tests against the MFA sshd of tests/services/15-sshd-mfa.sh (key plus TOTP code).

- ``mfa_sshd``: an :class:`MfaSshd` (the service's values, its login count, a current code);
  skips (fails under CI) when the service is missing; removes the account's ``run_expyre_*``
  directories afterwards.
- ``mfa_host``: writes ``~/.ssh/config`` (``Host mfa-cluster``) and known_hosts in the test's HOME,
  with no code source (no provider registered), and returns ``"mfa-cluster"``.

Import both: ``from mfa_fixtures import mfa_host, mfa_sshd  # noqa: F401``.
"""
import subprocess
from pathlib import Path

import pytest
from servicelib import require_service

from expyre import mfa
from expyre.transports import ssh as ssh_transport

ALIAS = "mfa-cluster"
#: One line per completed login in the sshd's log (LogLevel VERBOSE).
ACCEPTED = "Accepted keyboard-interactive/pam for xpr-mfa"


class MfaSshd:
    """The service's values, and the login count from its log."""

    def __init__(self, values: dict):
        self.values = values
        self.log = Path(values["MFA_SSHD_LOG"])
        self.code_command = values["MFA_CODE_COMMAND"]
        self.user = values["MFA_SSHD_USER"]

    def logins(self) -> int:
        """Completed logins (key and code) since the log began."""
        return self.log.read_text(errors="replace").count(ACCEPTED)

    def code(self) -> str:
        """The current one-time code (oathtool)."""
        return subprocess.run([self.code_command], capture_output=True, text=True, check=True).stdout.strip()

    def run_as_user(self, command: str) -> subprocess.CompletedProcess:
        """A shell command as the account on this machine (login shell, not through sshd)."""
        return subprocess.run(["runuser", "-l", self.user, "-c", command], stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=60)


@pytest.fixture
def mfa_sshd():
    service = MfaSshd(require_service("sshd-mfa"))
    yield service
    service.run_as_user("rm -rf run_expyre_mfa run_expyre_polite")


@pytest.fixture
def mfa_host(isolated_home, mfa_sshd):
    values = mfa_sshd.values
    ssh_dir = isolated_home / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    known_hosts = ssh_dir / "known_hosts"
    known_hosts.write_text(Path(values["MFA_SSHD_KNOWN_HOSTS"]).read_text())
    (ssh_dir / "config").write_text(
        f"Host {ALIAS}\n    HostName {values['MFA_SSHD_HOST']}\n    Port {values['MFA_SSHD_PORT']}\n"
        f"    User {values['MFA_SSHD_USER']}\n    IdentityFile {values['MFA_SSHD_CLIENT_KEY']}\n"
        f"    IdentitiesOnly yes\n    UserKnownHostsFile {known_hosts}\n")
    ssh_transport.close_all()
    mfa.set_code_provider(None)
    yield ALIAS
    ssh_transport.close_all()
    mfa.set_code_provider(None)
