"""One login per session on a host that asks for a key AND a one-time code (MFA).

Against the real sshd of tests/services/15-sshd-mfa.sh: account xpr-mfa, public key then a TOTP
code through PAM (libpam-google-authenticator), codes from oathtool. The sshd logs one line
"Accepted keyboard-interactive/pam for xpr-mfa" per completed login; the tests count them:

- 20 jobs through the ``ssh`` (paramiko) transport, code from a registered provider: one login;
- 20 jobs through the ``openssh`` transport, code from ``ssh.mfa_command`` via SSH_ASKPASS: one
  login, which a second process then reuses (ControlMaster), until ``xpr logout`` closes it;
- a code typed on a terminal (a real pseudo-terminal): asked once for several commands;
- no terminal and no way to get a code: one clear error at once, and no login.
"""
# ruff: noqa: F811
import fcntl
import os
import pty
import select
import subprocess
import sys
import termios
import textwrap
import time
from pathlib import Path

import pytest
from mfa_fixtures import ALIAS, mfa_host, mfa_sshd  # noqa: F401  (fixtures)

from expyre import mfa
from expyre.func import ExPyRe
from expyre.transports import ssh as ssh_transport

pytestmark = [pytest.mark.integration]

RUNDIR = "run_expyre_mfa"
N_JOBS = 20
RESOURCES = {"max_time": "10m", "num_cores": 1, "partitions": "regular"}


def mfa_system(transport="ssh", **ssh_options):
    system = {"host": ALIAS, "scheduler": "direct", "rundir": RUNDIR, "transport": transport,
              "partitions": {"regular": {"num_cores": 1, "max_time": "1h", "max_mem": "1GB"}}}
    if transport == "openssh":
        # the OpenSSH client finds ~/.ssh through the passwd entry, not $HOME
        system["remsh_cmd"] = f"ssh -F {Path(os.environ['HOME']) / '.ssh' / 'config'}"
    if ssh_options:
        system["ssh"] = ssh_options
    return system


def run_jobs(n=N_JOBS, system_name="mfa"):
    xprs = [ExPyRe("mfa", function=pow, args=[i, 2]) for i in range(n)]
    for xpr in xprs:
        xpr.start(resources=RESOURCES, system_name=system_name)
    values = [xpr.get_results(check_interval=0.5, quiet=True)[0] for xpr in xprs]
    assert values == [i * i for i in range(n)]
    for xpr in xprs:
        xpr.mark_processed()


def test_paramiko_20_jobs_one_login_with_a_code_provider(expyre_config, mfa_host, mfa_sshd):
    asked = []

    def provider(host, prompt):
        asked.append((host, prompt))
        return mfa_sshd.code()

    mfa.set_code_provider(provider)
    expyre_config({"mfa": mfa_system()})
    before = mfa_sshd.logins()
    run_jobs()
    assert mfa_sshd.logins() - before == 1
    assert len(asked) == 1 and asked[0][0].startswith("xpr-mfa@127.0.0.1:")
    assert ssh_transport.connections_opened >= 1


@pytest.fixture
def logged_out(expyre_config):
    """Closes the openssh transport's ControlMaster after the test (its ssh process would persist)."""
    names = []
    yield names
    from expyre import config
    for name in names:
        logout = getattr(config.systems[name].shell, "logout", None)
        if logout is not None:
            logout()


def run_in_new_process(code: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Python code in a new process with the test's HOME and config, no terminal."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout, env=dict(os.environ))


def test_openssh_20_jobs_one_login_shared_by_the_next_process_until_logout(
        expyre_config, mfa_host, mfa_sshd, logged_out):
    config = expyre_config({"mfa": mfa_system("openssh", mfa_command=mfa_sshd.code_command, control_persist=120)})
    logged_out.append("mfa")
    before = mfa_sshd.logins()
    run_jobs()
    assert mfa_sshd.logins() - before == 1
    socket_path = Path(config.systems["mfa"].shell.control_path)
    assert socket_path.is_socket()

    # a later process within ControlPersist: no new login
    other = run_in_new_process("""
        from expyre import config
        print(config.systems["mfa"].shell.run("echo $USER").stdout.strip())
    """)
    assert other.returncode == 0, other.stderr
    assert other.stdout.strip() == "xpr-mfa"
    assert mfa_sshd.logins() - before == 1

    logout = subprocess.run([str(Path(sys.executable).parent / "xpr"), "logout", "mfa"], stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=60)
    assert logout.returncode == 0, logout.stderr
    assert "logged out" in logout.stdout
    assert not socket_path.exists()
    # the next command logs in again
    config.systems["mfa"].shell.run("true")
    assert mfa_sshd.logins() - before == 2


NO_CODE_SCRIPT = """
    from expyre.func import ExPyRe
    xpr = ExPyRe("nocode", function=pow, args=[2, 2])
    try:
        xpr.start(resources={resources!r}, system_name="mfa")
    except Exception as exc:
        print(type(exc).__name__, exc)
    else:
        print("started")
"""


@pytest.mark.parametrize("transport", ["ssh", "openssh"])
def test_no_terminal_and_no_code_source_fails_at_once(expyre_config, mfa_host, mfa_sshd, logged_out, transport):
    expyre_config({"mfa": mfa_system(transport, control_persist=30) if transport == "openssh" else mfa_system()})
    logged_out.append("mfa")
    before = mfa_sshd.logins()
    # stdin is not a terminal; the timeout only guards against a hang, the error comes at once
    result = run_in_new_process(NO_CODE_SCRIPT.format(resources=RESOURCES), timeout=60)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("MFACodeUnavailableError"), out + result.stderr
    assert "asks for a one-time code" in out and "no terminal" in out and "mfa_command" in out
    assert "'mfa'" in out
    assert mfa_sshd.logins() == before


TERMINAL_SCRIPT = """
    from expyre import config
    shell = config.systems["mfa"].shell
    for _ in range(3):
        shell.run("true")
    print("RAN", shell.run("echo $USER").stdout.strip())
"""


def _controlling_terminal():
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _read_until(fd: int, wanted: bytes, seen: bytearray, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while wanted not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                data = os.read(fd, 4096)
            except OSError:  # the child closed its side
                break
            if not data:
                break
            seen.extend(data)
    return wanted in seen


@pytest.mark.parametrize("transport", ["ssh", "openssh"])
def test_on_a_terminal_the_code_is_asked_once(expyre_config, mfa_host, mfa_sshd, logged_out, transport):
    expyre_config({"mfa": mfa_system(transport, control_persist=30) if transport == "openssh" else mfa_system()})
    logged_out.append("mfa")
    before = mfa_sshd.logins()
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(TERMINAL_SCRIPT)], stdin=slave, stdout=slave,
                            stderr=slave, preexec_fn=_controlling_terminal, env=dict(os.environ))
    os.close(slave)
    seen = bytearray()
    try:
        assert _read_until(master, b"code", seen), seen.decode(errors="replace")
        os.write(master, (mfa_sshd.code() + "\n").encode())
        assert _read_until(master, b"RAN xpr-mfa", seen), seen.decode(errors="replace")
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    assert seen.lower().count(b"verification code") == 1, seen.decode(errors="replace")
    assert mfa_sshd.logins() - before == 1
