"""A newcomer's first hour (issue 12), through what the user really runs: the ``xpr`` program as
a subprocess, scripts run by Python with a real pseudo-terminal 80 columns wide, real jobs on this
machine (the ``direct`` scheduler). Each test names the issue's item it shows."""
import fcntl
import json
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import termios
import textwrap
import time

import pytest
from conftest import direct_system
from sshd_fixtures import ssh_client_setup, sshd  # noqa: F401  (pytest fixtures)

from expyre.func import ExPyRe

pytestmark = pytest.mark.integration

XPR = os.path.join(os.path.dirname(sys.executable), "xpr")
RES = {"max_time": "1h", "num_nodes": 1, "partitions": "regular"}
FAST = {"check_interval": 0.2, "quiet": True}


def xpr(*args, stdin=subprocess.DEVNULL, input=None, env=None):
    kwargs = {"input": input} if input is not None else {"stdin": stdin}
    return subprocess.run([XPR, *args], capture_output=True, text=True, timeout=120,
                          env=env if env is not None else dict(os.environ), **kwargs)


@pytest.fixture
def cfg(expyre_config):
    return expyre_config({"remote": direct_system(rundir="cluster_rundir")})


def finished(name="done", value=1, system="remote"):
    job = ExPyRe(name, function=int, args=[str(value)], try_restart_from_prev=False)
    job.start(resources=RES, system_name=system)
    job.get_results(**FAST)
    return job


# ---------------------------------------------------------------- items 1 and 2: versions, foreign expyre


def test_version_lists_core_and_each_plugin():
    proc = xpr("--version")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert re.fullmatch(r"expyre-core \d+\.\d+\.\d+\S*", lines[0])
    assert any(re.match(r"expyre-slurm \S+: scheduler slurm$", line) for line in lines)
    assert any(re.match(r"expyre-sge \S+: scheduler sge$", line) for line in lines)


def test_plugins_warns_about_the_foreign_expyre_distribution(tmp_path):
    """The unrelated PyPI project 'expyre' installed next to ours: its metadata is enough to see it."""
    info = tmp_path / "site" / "expyre-0.2.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: expyre\nVersion: 0.2.1\n"
                                   "Summary: a wrapper over atd\n")
    (info / "RECORD").write_text("")
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "site"))
    proc = xpr("plugins", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "WARNING: the distribution 'expyre' 0.2.1 is installed" in proc.stderr
    assert "pip uninstall expyre" in proc.stderr
    assert "WARNING" not in xpr("plugins").stderr  # and nothing without it


# ---------------------------------------------------------------- item 8: one confirmation


def test_rm_asks_once_for_the_whole_selection(cfg):
    jobs = [finished(value=i) for i in range(3)]
    for job in jobs:
        job.mark_processed()
    proc = xpr("rm", "-c", "-s", "processed", input="y\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("[y/N]") == 1
    assert "3 jobs (3 on remote)?" in proc.stdout
    assert all(f"removed {job.id}" in proc.stderr for job in jobs)
    assert all(not job.stage_dir.exists() for job in jobs)


def test_rm_with_stdin_closed_refuses_with_a_sentence(cfg):
    job = finished()
    proc = xpr("rm", "-i", job.id)
    assert proc.returncode == 1
    assert "Error: no answer to the confirmation question (standard input is closed); pass -y" in proc.stderr
    assert cfg.db.get(job.id) is not None


# ---------------------------------------------------------------- item 9: ls


def test_ls_shortens_ids_in_the_middle_and_has_json(cfg):
    jobs = [finished("same", 7) for _ in range(3)]  # same name and arguments: only the suffix differs
    proc = xpr("ls")
    assert proc.returncode == 0, proc.stderr
    shown = [line.split()[1] for line in proc.stdout.splitlines()[1:]]
    assert len(set(shown)) == 3
    for job, text in zip(jobs, shown):
        assert "..." in text and text.endswith(job.id[-9:]) and text.startswith("same_")
    rows = json.loads(xpr("ls", "--json").stdout)
    assert [row["id"] for row in rows] == [job.id for job in jobs]
    assert rows[0]["status"] == "succeeded" and rows[0]["system"] == "remote"


# ---------------------------------------------------------------- item 10: rm -c with the system gone


def test_rm_clean_of_a_job_whose_system_was_removed_says_so(expyre_config, isolated_home):
    config = expyre_config({"remote": direct_system(rundir="cluster_rundir")})
    job = finished()
    remote_dir = config.db.get(job.id)["remote_dir"]
    assert (isolated_home / remote_dir).is_dir()
    expyre_config({"other": direct_system()})
    proc = xpr("rm", "-y", "-c", "-i", job.id)
    assert proc.returncode == 0, proc.stderr
    assert f"its remote directory {remote_dir} on system 'remote' was NOT deleted" in proc.stderr
    assert "system 'remote' is no longer in the config" in proc.stderr
    assert (isolated_home / remote_dir).is_dir()  # what the message says is true


# ---------------------------------------------------------------- item 7: cancel


def test_cancelled_job_is_died_and_leaves_ongoing(cfg):
    job = ExPyRe("tocancel", function=time.sleep, args=[60])
    job.start(resources=RES, system_name="remote")
    assert job.id[-9:] in xpr("ls", "-s", "ongoing").stdout
    proc = xpr("cancel", "-y", "-i", job.id)
    assert proc.returncode == 0 and f"cancelled {job.id}" in proc.stderr
    row = cfg.db.get(job.id)
    assert (row["status"], row["remote_status"]) == ("died", "failed")
    assert "No matching jobs" in xpr("ls", "-s", "ongoing").stdout
    assert "No matching jobs" in xpr("sync").stderr
    again = ExPyRe.from_jobsdb(row)[0]
    from expyre import ExPyReJobDiedError
    with pytest.raises(ExPyReJobDiedError):
        again.get_results(timeout=30, **FAST)


def test_job_cancelled_from_python_becomes_died_at_the_next_sync(cfg):
    job = ExPyRe("pycancel", function=time.sleep, args=[60])
    job.start(resources=RES, system_name="remote")
    job.cancel()
    deadline = time.time() + 20
    while time.time() < deadline and cfg.db.get(job.id)["status"] != "died":
        xpr("sync")
        time.sleep(0.2)
    assert cfg.db.get(job.id)["status"] == "died"
    assert "No matching jobs" in xpr("ls", "-s", "ongoing").stdout


# ---------------------------------------------------------------- item 21: help and sync -v


def test_reset_status_help_does_not_break_words():
    proc = subprocess.run([XPR, "reset_status", "--help"], capture_output=True, text=True,
                          env=dict(os.environ, COLUMNS="80"))
    assert proc.stdout.startswith("Usage: xpr reset_status [OPTIONS] NEW_STATUS\n")
    assert all(len(line) <= 80 for line in proc.stdout.splitlines())
    assert "succeeded, failed, died" in " ".join(proc.stdout.split())


def test_sync_verbose_says_first_seen_not_none(cfg):
    job = ExPyRe("seen", function=time.sleep, args=[2])
    job.start(resources=RES, system_name="remote")
    proc = xpr("sync", "-v")
    assert proc.returncode == 0, proc.stderr
    assert "None" not in proc.stderr
    assert re.search(rf"remote status of {re.escape(job.id)}: (queued|running|done) \(first seen\)", proc.stderr)
    job.get_results(**FAST)


# ---------------------------------------------------------------- items 5 and 6: waiting and Ctrl-C

WAIT_SCRIPT = textwrap.dedent("""
    import sys, time
    from expyre.func import ExPyRe
    xpr = ExPyRe(sys.argv[1], function=time.sleep, args=[float(sys.argv[2])], try_restart_from_prev=False)
    xpr.start(resources={"max_time": "1h", "num_nodes": 1, "partitions": "regular"}, system_name="remote")
    print(xpr.id, flush=True)
    xpr.get_results(check_interval=0.2)
    print("DONE", flush=True)
""")


def run_on_terminal(script, args, columns=80, interrupt_after=None):
    """Run ``script`` with stderr on a real pseudo-terminal ``columns`` wide; return (stdout, terminal)."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    # a user's terminal delivers Ctrl-C; a test run started in the background may have SIGINT ignored
    proc = subprocess.Popen([sys.executable, str(script), *args], stdout=subprocess.PIPE, stderr=follower, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    os.close(follower)
    chunks, sent = [], False
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
        if interrupt_after and not sent and b"".join(chunks).count(b"waited") >= interrupt_after:
            proc.send_signal(signal.SIGINT)
            sent = True
    stdout = proc.communicate(timeout=60)[0]
    os.close(leader)
    return stdout.decode(), b"".join(chunks).decode(errors="replace")


@pytest.fixture
def wait_script(expyre_config, tmp_path):
    expyre_config({"remote": direct_system()})
    path = tmp_path / "wait.py"
    path.write_text(WAIT_SCRIPT)
    return path


def test_waiting_line_fits_80_columns_and_updates_in_place(wait_script):
    name = "a_job_with_a_name_long_enough_to_wrap"
    stdout, terminal = run_on_terminal(wait_script, [name, "2"])
    assert "DONE" in stdout
    updates = [u for u in terminal.split("\r\x1b[K") if u.strip()]
    assert len(updates) >= 3
    for update in updates:
        line = update.rstrip("\r\n")
        assert len(line) <= 79, line  # never reaches the last column, so it never wraps
        assert line.startswith("expyre: job a_job_with_a_name") and "waited" in line
    job_id = stdout.split()[0]
    assert job_id[-9:] in updates[-1]  # the unique end of the id is kept
    assert terminal.count("\n") <= 1  # one line, rewritten, closed when the wait ends


def test_ctrl_c_says_the_job_keeps_running_and_how_to_cancel(wait_script, cfg_db=None):
    stdout, terminal = run_on_terminal(wait_script, ["interrupted", "60"], interrupt_after=2)
    job_id = stdout.split()[0]
    last = [line for line in terminal.splitlines() if line.strip()][-1]
    assert last == (f"KeyboardInterrupt: stopped waiting; expyre job {job_id} keeps running on system "
                    f"'remote'. Rerun the script to re-attach to it, or cancel it with: xpr cancel -i {job_id}")
    assert "During handling" not in terminal  # one exception, not a chain
    proc = xpr("cancel", "-y", "-i", job_id)  # what the message says works
    assert proc.returncode == 0 and f"cancelled {job_id}" in proc.stderr


# ---------------------------------------------------------------- items 14-16: remote errors

FAILING_SCRIPT = textwrap.dedent("""
    from expyre.func import ExPyRe

    def failing_step(x):
        print("about to fail")
        raise ValueError(f"bad input {x}")

    job = ExPyRe("failing", function=failing_step, args=[42], try_restart_from_prev=False)
    job.start(resources={"max_time": "1h", "num_nodes": 1, "partitions": "regular"}, system_name="remote")
    job.get_results(check_interval=0.2, quiet=True)
""")


def test_remote_exception_printed_once_with_real_file(expyre_config, tmp_path):
    expyre_config({"remote": direct_system()})
    script = tmp_path / "failing.py"
    script.write_text(FAILING_SCRIPT)
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    err = proc.stderr
    assert err.count("remote traceback of expyre job") == 1
    assert err.count('raise ValueError(f"bad input {x}")') == 1
    assert "<dynamic-code>" not in err
    assert f'File "{script}", line 6, in failing_step' in err
    assert err.rstrip().splitlines()[-4].startswith("ValueError: bad input 42") or "ValueError: bad input 42" in err
    # the function's output: its path and its last lines
    assert re.search(r"function stdout, \S+_expyre_stdout \(all of it\):\n    about to fail", err)


HELPER_SCRIPT = textwrap.dedent("""
    import helpers
    from expyre.func import ExPyRe

    job = ExPyRe("helper", function=helpers.double, args=[21], try_restart_from_prev=False)
    job.start(resources={"max_time": "1h", "num_nodes": 1, "partitions": "regular"}, system_name="remote")
    print(job.get_results(check_interval=0.2, quiet=True)[0])
""")


def test_missing_local_module_names_input_files_and_register_pickle_by_value(expyre_config, tmp_path):
    expyre_config({"remote": direct_system()})
    (tmp_path / "helpers.py").write_text("def double(x):\n    return 2 * x\n")
    (tmp_path / "main.py").write_text(HELPER_SCRIPT)
    proc = subprocess.run([sys.executable, "main.py"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 1
    # preflight stops it before anything is queued, with the remedies spelled out for this module
    assert "ExPyRePreflightError" in proc.stderr and "No module named 'helpers'" in proc.stderr
    assert "nothing was queued" in proc.stderr
    assert "input_files=['helpers.py']" in proc.stderr
    assert "cloudpickle.register_pickle_by_value(helpers)" in proc.stderr
    # and the first remedy works
    fixed = HELPER_SCRIPT.replace('function=helpers.double,', 'function=helpers.double, input_files=["helpers.py"],')
    (tmp_path / "main.py").write_text(fixed)
    proc = subprocess.run([sys.executable, "main.py"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "42"


def test_died_job_prints_only_outputs_that_exist(expyre_config):
    from expyre import ExPyReJobDiedError
    expyre_config({"remote": direct_system()})
    job = ExPyRe("too_long", function=time.sleep, args=[120])
    job.start(resources={"max_time": "2s", "num_nodes": 1, "partitions": "regular"}, system_name="remote")
    with pytest.raises(ExPyReJobDiedError) as info:
        job.get_results(timeout=60, **FAST)
    message = str(info.value)
    assert "None" not in message
    assert "stdout: None" not in message and "stderr: None" not in message
    assert "remote status 'timeout'" in message


# ---------------------------------------------------------------- items 12, 13, 19


def test_unresolvable_host_fails_at_once(expyre_config, monkeypatch):
    monkeypatch.setenv("EXPYRE_RETRY", "3 5")  # retrying would take 5 + 10 s
    expyre_config({"bad": {"host": "no-such-host.invalid", "scheduler": "direct",
                           "partitions": {"regular": {"num_cores": 1}}}})
    from expyre import ConnectionLostError
    job = ExPyRe("unresolvable", function=abs, args=[-1])
    start = time.monotonic()
    with pytest.raises(ConnectionLostError, match="cannot resolve the host name 'no-such-host.invalid'"):
        job.start(resources=RES, system_name="bad")
    assert time.monotonic() - start < 5


def test_refused_login_fails_at_once(expyre_config, ssh_client_setup, isolated_home, tmp_path, monkeypatch):  # noqa: F811
    """A key the real sshd does not accept: not tried again (EXPYRE_RETRY would wait 5 + 10 s)."""
    monkeypatch.setenv("EXPYRE_RETRY", "3 5")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "stranger")], check=True)
    ssh_config = isolated_home / ".ssh" / "config"
    ssh_config.write_text(re.sub(r"IdentityFile .*", f"IdentityFile {tmp_path / 'stranger'}", ssh_config.read_text()))
    from expyre import ConnectionLostError
    from expyre.transports import ssh as ssh_transport
    ssh_transport.close_all()
    expyre_config({"cluster": {"host": ssh_client_setup, "scheduler": "direct",
                               "partitions": {"regular": {"num_cores": 1}}}})
    job = ExPyRe("refused", function=abs, args=[-1])
    start = time.monotonic()
    with pytest.raises(ConnectionLostError, match="cannot log in to"):
        job.start(resources=RES, system_name="cluster")
    assert time.monotonic() - start < 5
    ssh_transport.close_all()


def test_local_stays_and_typos_get_did_you_mean(cfg):
    job = ExPyRe("on_local", function=abs, args=[-5])
    job.start(resources={"max_time": "1h", "num_cores": 1}, system_name="local", partial_node=True)
    assert job.get_results(**FAST)[0] == 5
    out = xpr("systems").stdout
    assert "local: scheduler direct" in out and "built in" in out
    with pytest.raises(ValueError, match=r"did you mean 'remote'\?"):
        ExPyRe("typo", function=abs, args=[-1]).start(resources=RES, system_name="remot")
