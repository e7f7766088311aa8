"""The local OpenSSH server of tests/services/10-sshd.sh, checked through the real OpenSSH client.

These tests check the service the SSH transport tests rely on: key login as the cluster account,
its own Python with cloudpickle and numpy first on PATH, strict host key checking with the
known_hosts written by ``ssh_client_setup``, SFTP, and ``sshd.stop()``/``sshd.start()``.
"""
# The fixtures are imported by name for pytest, and test arguments of the same names "redefine" them:
# ruff: noqa: F811
import os
import stat
import subprocess
from pathlib import Path

import pytest
from sshd_fixtures import remote_run_expyre_cleanup, ssh_client_setup, ssh_command, sshd  # noqa: F401

pytestmark = pytest.mark.integration


def run_ssh(*args, timeout=60):
    return subprocess.run(ssh_command(*args), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout)


def test_client_files_have_the_modes_openssh_requires(ssh_client_setup, isolated_home, sshd):
    ssh_dir = isolated_home / ".ssh"
    assert ssh_client_setup == "cluster"
    assert stat.S_IMODE(ssh_dir.stat().st_mode) == 0o700
    for name in ("config", "known_hosts"):
        assert stat.S_IMODE((ssh_dir / name).stat().st_mode) == 0o600
    assert (ssh_dir / "known_hosts").read_text().splitlines() == sshd.known_hosts_lines()
    assert all(line.startswith(f"[127.0.0.1]:{sshd.port} ") for line in sshd.known_hosts_lines())


def test_key_login_as_the_cluster_account(ssh_client_setup, sshd):
    result = run_ssh("-o", "StrictHostKeyChecking=yes", ssh_client_setup, "whoami; pwd")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [sshd.user, str(sshd.home)]


@pytest.mark.parametrize("shell", ["bash -c", "bash -lc"], ids=["non-login", "login"])
def test_remote_python_is_the_accounts_venv_with_cloudpickle_and_numpy(ssh_client_setup, sshd, shell):
    code = "import sys, cloudpickle, numpy; print(sys.prefix); print(numpy.__version__)"
    result = run_ssh(ssh_client_setup, f"{shell} 'python3 -c \"{code}\"'")
    assert result.returncode == 0, result.stderr
    prefix, version = result.stdout.split()
    assert Path(prefix) == sshd.remote_python.parent.parent
    assert version[0].isdigit()


def test_plain_remote_command_finds_the_venv_first_on_path(ssh_client_setup, sshd):
    # sshd runs a remote command with `bash -c`: ~/.bashrc must put the venv first before its
    # "not interactive: return" line
    result = run_ssh(ssh_client_setup, "command -v python3; command -v python")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(sshd.remote_python.parent / "python3"), str(sshd.remote_python)]


def test_unknown_host_is_refused_with_strict_host_key_checking(ssh_client_setup, isolated_home):
    (isolated_home / ".ssh" / "known_hosts").write_text("")
    result = run_ssh("-o", "StrictHostKeyChecking=yes", ssh_client_setup, "true")
    assert result.returncode == 255
    assert "Host key verification failed" in result.stderr


def test_wrong_host_key_is_refused(ssh_client_setup, isolated_home, sshd, tmp_path):
    other = tmp_path / "other_host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    key_type, key_data = Path(f"{other}.pub").read_text().split()[:2]
    (isolated_home / ".ssh" / "known_hosts").write_text(f"[{sshd.host}]:{sshd.port} {key_type} {key_data}\n")
    result = run_ssh("-o", "StrictHostKeyChecking=yes", ssh_client_setup, "echo should-not-run")
    assert result.returncode == 255
    assert "should-not-run" not in result.stdout
    assert "Host key verification failed" in result.stderr


def test_password_login_is_not_offered(ssh_client_setup):
    result = run_ssh("-o", "PreferredAuthentications=password,keyboard-interactive", ssh_client_setup, "true")
    assert result.returncode == 255
    assert "Permission denied" in result.stderr


def test_stop_refuses_connections_and_start_brings_them_back(ssh_client_setup, sshd):
    assert run_ssh(ssh_client_setup, "true").returncode == 0
    sshd.stop()
    try:
        assert not sshd.is_running()
        assert not sshd.accepts_connections()
        result = run_ssh(ssh_client_setup, "true")
        assert result.returncode == 255
        assert "Connection refused" in result.stderr
    finally:
        sshd.start()
    assert sshd.is_running()
    result = run_ssh(ssh_client_setup, "echo back")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "back"


def test_sftp_and_run_as_user_see_the_same_remote_files(ssh_client_setup, sshd, tmp_path):
    local = tmp_path / "payload.txt"
    local.write_text("hello cluster\n")
    batch = tmp_path / "batch"
    batch.write_text(f"-mkdir run_expyre\nput {local} run_expyre/payload.txt\n")
    home = Path(os.environ["HOME"])
    result = subprocess.run(["sftp", "-F", str(home / ".ssh" / "config"), "-o", "BatchMode=yes", "-b", str(batch),
                             ssh_client_setup], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    seen = sshd.run_as_user("cat ~/run_expyre/payload.txt; stat -c %U ~/run_expyre/payload.txt")
    assert seen.returncode == 0, seen.stderr
    assert seen.stdout.splitlines() == ["hello cluster", sshd.user]


def test_remote_run_expyre_is_removed_by_the_cleanup(sshd, remote_run_expyre_cleanup):
    assert remote_run_expyre_cleanup == sshd.home / "run_expyre"
    sshd.run_as_user("mkdir -p ~/run_expyre/job && touch ~/run_expyre/job/file", check=True)
    assert sshd.run_as_user("test -f ~/run_expyre/job/file").returncode == 0
    sshd.remove_remote_dir("run_expyre")
    assert sshd.run_as_user("test -e ~/run_expyre").returncode == 1


def test_paramiko_uses_the_config_and_known_hosts_in_home(ssh_client_setup, sshd):
    paramiko = pytest.importorskip("paramiko")
    ssh_config = paramiko.SSHConfig.from_path(os.path.expanduser("~/.ssh/config")).lookup(ssh_client_setup)
    client = paramiko.SSHClient()
    client.load_host_keys(os.path.expanduser("~/.ssh/known_hosts"))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(ssh_config["hostname"], port=int(ssh_config["port"]), username=ssh_config["user"],
                       key_filename=ssh_config["identityfile"], look_for_keys=False, allow_agent=False, timeout=20)
        _, stdout, _ = client.exec_command("python3 -c 'import cloudpickle, numpy, sys; print(sys.prefix)'")
        assert stdout.channel.recv_exit_status() == 0
        assert Path(stdout.read().decode().strip()) == sshd.remote_python.parent.parent
    finally:
        client.close()
