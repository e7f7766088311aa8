"""One-time codes (expyre.mfa), the new ssh settings, and the openssh transport's ControlMaster
options: what can be checked without a server (the logins themselves are in
tests/integration/test_mfa.py, against a real sshd that asks for a TOTP code)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from expyre import mfa
from expyre.system import System
from expyre.transports import openssh, sshconfig


@pytest.fixture(autouse=True)
def no_provider():
    mfa.set_code_provider(None)
    yield
    mfa.set_code_provider(None)


@pytest.fixture
def no_terminal(monkeypatch):
    monkeypatch.setattr(mfa, "has_terminal", lambda: False)


def test_a_registered_provider_answers_first(no_terminal):
    asked = []
    mfa.set_code_provider(lambda host, prompt: asked.append((host, prompt)) or " 123456\n")
    answerer = mfa.Answerer("u@h:22", command=["false"])
    assert answerer.can_answer()
    assert answerer("", "", [("Verification code: ", False)]) == ["123456"]
    assert asked == [("u@h:22", "Verification code: ")] and answerer.error is None


def test_the_command_prints_the_code(no_terminal):
    answerer = mfa.Answerer("u@h:22", command=[sys.executable, "-c", "print('654321'); print('ignored')"])
    assert answerer("", "", [("Verification code: ", False)]) == ["654321"]


def test_a_string_command_is_split_without_a_shell(tmp_path, no_terminal):
    script = tmp_path / "code with space"
    script.write_text("#!/bin/sh\necho 111222\n")
    script.chmod(0o700)
    assert mfa.command_argv(f"'{script}' --totp") == [str(script), "--totp"]
    assert mfa.code_from_command(f"'{script}'", "h") == "111222"


def test_a_failing_command_is_kept_for_the_connecting_thread(no_terminal):
    answerer = mfa.Answerer("u@h:22", command=[sys.executable, "-c", "import sys; sys.exit('no token')"], system="c")
    assert answerer("", "", [("Verification code: ", False), ("Again: ", False)]) == ["", ""]
    assert isinstance(answerer.error, mfa.MFACodeUnavailableError)
    message = str(answerer.error)
    assert "exited with status 1" in message and "no token" in message and "u@h:22" in message


def test_no_terminal_and_no_hook_says_what_to_do(no_terminal):
    answerer = mfa.Answerer("u@h:22", system="cluster")
    assert not answerer.can_answer()
    message = mfa.no_way_message("u@h:22", "Verification code:", "cluster")
    assert "no terminal" in message and "'cluster'" in message and "mfa_command" in message
    assert "set_code_provider" in message
    assert "set_code_provider" not in mfa.no_way_message("u@h", "", "cluster", openssh=True)


def test_ssh_settings_for_mfa_and_control_persist_are_checked():
    assert sshconfig.check_ssh_options({"mfa_command": "oathtool --totp -b KEY", "control_persist": 60}) == []
    assert sshconfig.check_ssh_options({"mfa_command": ["pass", "otp", "x"], "control_persist": 0}) == []
    problems = {key: problem for key, _, problem in
                sshconfig.check_ssh_options({"mfa_command": ["ok", ""], "control_persist": -5})}
    assert "non-empty command" in problems["mfa_command"]
    assert "positive number of seconds" in problems["control_persist"]
    assert "must be int" in sshconfig.check_ssh_options({"control_persist": "10m"})[0][2]
    assert sshconfig.resolve("h", {"mfa_command": "x"}, ssh_config=None).mfa_command == "x"


def _system(tmp_path, **options):
    return System(name="c", scheduler="direct", host="user@cluster", transport="openssh", options=options)


@pytest.fixture
def stage_dir(monkeypatch):
    """A stage directory with a short path (pytest's tmp_path may be too long for a socket)."""
    import shutil
    import tempfile

    from expyre import config
    short = Path(tempfile.mkdtemp(prefix="xpr"))
    monkeypatch.setattr(config, "local_stage_dir", short, raising=False)
    yield short
    shutil.rmtree(short)


def test_openssh_shares_one_login_through_a_private_control_socket(stage_dir, no_terminal):
    shell = openssh.open_openssh_shell(_system(stage_dir))
    argv = shell.remsh_cmd
    assert "ControlMaster=auto" in argv and f"ControlPersist={openssh.DEFAULT_CONTROL_PERSIST}" in argv
    path = Path(next(a for a in argv if a.startswith("ControlPath=")).split("=", 1)[1])
    assert path == Path(shell.control_path) and path.parent == stage_dir / "ssh-control"
    assert (path.parent.stat().st_mode & 0o777) == 0o700
    assert "BatchMode=yes" in argv  # no terminal, no mfa_command: a login that asks fails at once
    # the same destination and options: the same socket, in this process and the next
    assert openssh.open_openssh_shell(_system(stage_dir)).control_path == shell.control_path
    assert openssh.open_openssh_shell(_system(stage_dir, port=2222)).control_path != shell.control_path


def test_openssh_control_persist_zero_leaves_sharing_to_the_ssh_config(stage_dir, no_terminal):
    shell = openssh.open_openssh_shell(_system(stage_dir, control_persist=0))
    assert not any(a.startswith("Control") for a in shell.remsh_cmd) and shell.control_path is None
    assert shell.logout() is False


def test_openssh_control_path_stays_short_under_a_long_directory(tmp_path, monkeypatch, no_terminal):
    from expyre import config
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    monkeypatch.setattr(config, "local_stage_dir", deep, raising=False)
    path = openssh.open_openssh_shell(_system(deep)).control_path
    assert len(path) <= openssh.MAX_CONTROL_PATH
    assert (Path(path).parent.stat().st_mode & 0o777) == 0o700 and Path(path).parent.stat().st_uid == os.getuid()


def test_openssh_mfa_command_answers_through_ssh_askpass(stage_dir, no_terminal):
    shell = openssh.open_openssh_shell(_system(stage_dir, mfa_command=[sys.executable, "-c", "print(424242)"]))
    assert "BatchMode=yes" not in shell.remsh_cmd
    assert shell.env["SSH_ASKPASS_REQUIRE"] == "force"
    askpass = Path(shell.env["SSH_ASKPASS"])
    assert (askpass.stat().st_mode & 0o777) == 0o700
    # ssh runs it with the prompt as argument and sends what it prints
    out = subprocess.run([str(askpass), "Verification code: "], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "424242"


def test_openssh_on_a_terminal_lets_ssh_ask(stage_dir, monkeypatch):
    monkeypatch.setattr(mfa, "has_terminal", lambda: True)
    shell = openssh.open_openssh_shell(_system(stage_dir))
    assert "BatchMode=yes" not in shell.remsh_cmd and not shell.env
