"""What get_results shows while it waits: an updating line on a terminal (a real pseudo-terminal
here), plain lines when stderr is a pipe, nothing with quiet=True."""
import os
import pty
import subprocess
import sys
import textwrap

import pytest
from conftest import direct_system

pytestmark = pytest.mark.integration

SCRIPT = textwrap.dedent("""
    import sys, time
    from expyre.func import ExPyRe
    xpr = ExPyRe("waiting", function=time.sleep, args=[1.5], try_restart_from_prev=False)
    xpr.start(resources={"max_time": "1h", "num_nodes": 1, "partitions": "regular"}, system_name="remote")
    xpr.get_results(check_interval=0.2, quiet=sys.argv[1] == "quiet")
    print("DONE", flush=True)
""")


@pytest.fixture
def script(expyre_config, tmp_path):
    expyre_config({"remote": direct_system()})
    path = tmp_path / "wait.py"
    path.write_text(SCRIPT)
    return path


def run_with_pty_stderr(script, mode):
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, str(script), mode], stdout=subprocess.PIPE, stderr=follower)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:  # the terminal closes when the script ends
            break
        if not data:
            break
        chunks.append(data)
    stdout = proc.communicate(timeout=60)[0]
    os.close(leader)
    return stdout.decode(), b"".join(chunks).decode(errors="replace")


def test_terminal_gets_one_updating_line(script):
    stdout, terminal = run_with_pty_stderr(script, "loud")
    assert "DONE" in stdout
    updates = terminal.split("\r\x1b[K")
    assert len(updates) >= 3  # the same line rewritten several times
    assert "expyre: job waiting_" in updates[-1] and "waited" in updates[-1]
    assert terminal.count("\n") <= 2  # one line, closed when the wait ends


def test_pipe_gets_plain_lines(script):
    proc = subprocess.run([sys.executable, str(script), "loud"], capture_output=True, text=True, timeout=60)
    assert "DONE" in proc.stdout
    assert "\r" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("expyre: job waiting_")]
    assert 1 <= len(lines) <= 3  # only when the state changes


def test_quiet_shows_nothing(script):
    stdout, terminal = run_with_pty_stderr(script, "quiet")
    assert "DONE" in stdout
    assert "expyre:" not in terminal
