"""The per-host limit on concurrent channels (``limits.max_channels``, expyre.channels) across
processes, against the real OpenSSH server of tests/services/10-sshd.sh (account xpr-cluster).

Four processes log in, wait for a common start, and each runs one command on the host that
writes its start time, sleeps and writes its end time into a log in the account's home. The
peak number of commands running at once on the host, read from that log, is at most the limit
with ``max_channels = 2`` (through both transports), and above it without the key. A whole job
(transfer out, submission, status, transfer back) goes through with ``max_channels = 1``.
"""
# ruff: noqa: F811
import os
import secrets
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sshd_fixtures import ssh_client_setup, sshd  # noqa: F401  (pytest fixtures)

from expyre import channels, plugins
from expyre.func import ExPyRe
from expyre.transports import ssh as ssh_transport

pytestmark = pytest.mark.integration

N_PROCESSES = 4
#: Seconds each process's command sleeps on the host.
SLEEP = 1.5

WORKER = """
    import sys, time
    from pathlib import Path
    from expyre import channels, config

    tag, go, log, sleep = sys.argv[1], Path(sys.argv[2]), sys.argv[3], sys.argv[4]
    shell = config.systems["chan"].shell
    shell.run("true")  # logged in before the common start
    print("ready", flush=True)
    while not go.exists():
        time.sleep(0.01)
    shell.run(f'echo "start $(date +%s.%N) {tag}" >> {log}; sleep {sleep}; echo "end $(date +%s.%N) {tag}" >> {log}')
    print("slots", channels.slots_taken, flush=True)
"""


def peak_concurrency(lines):
    """Most commands running at once, from ``start TIME TAG`` / ``end TIME TAG`` lines (an end
    and a start at the same instant do not overlap)."""
    events = sorted((float(time_), 0 if kind == "end" else 1) for kind, time_, _ in (line.split() for line in lines))
    running = peak = 0
    for _, starts in events:
        running += 1 if starts else -1
        peak = max(peak, running)
    return peak


def cluster_system(host, **overrides):
    system = {"host": host, "scheduler": "direct", "rundir": "run_expyre_channels",
              "partitions": {"regular": {"num_cores": 1, "max_time": "1h"}}}
    system.update(overrides)
    return system


@pytest.fixture
def host_log(sshd):
    """A fresh log file name in the account's home, removed afterwards."""
    name = f"xpr-test-channels-{secrets.token_hex(4)}.log"
    yield name
    sshd.run_as_user(f"rm -f {name}; rm -rf run_expyre_channels")


def run_workers(home: Path, log: str):
    """Start the workers, let them go at once, and return the slots each took."""
    go = home / f"go-{secrets.token_hex(4)}"
    procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(WORKER), f"p{i}", str(go), log, str(SLEEP)],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(N_PROCESSES)]
    try:
        for proc in procs:
            assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        go.touch()
        slots = []
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            slots.append(int(out.split()[-1]))
        return slots
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.mark.parametrize("transport, limit", [("ssh", 2), ("openssh", 2), ("ssh", None)],
                         ids=["ssh-limit-2", "openssh-limit-2", "ssh-no-limit"])
def test_processes_keep_to_the_hosts_channel_limit(expyre_config, ssh_client_setup, sshd, isolated_home,
                                                   host_log, transport, limit):
    overrides = {"limits": {"max_channels": limit}} if limit else {}
    if transport == "openssh":
        overrides["remsh_cmd"] = f"ssh -F {isolated_home}/.ssh/config"
    config = expyre_config({"chan": cluster_system(ssh_client_setup, **overrides)})
    assert config.systems["chan"].transport == transport
    try:
        slots = run_workers(isolated_home, host_log)
    finally:
        if transport == "openssh":  # the workers' shared ControlMaster would outlive the test
            config.systems["chan"].shell.logout()
    lines = sshd.run_as_user(f"cat {host_log}").stdout.splitlines()
    assert len(lines) == 2 * N_PROCESSES, lines
    peak = peak_concurrency(lines)
    if limit:
        assert peak <= limit, lines
        assert slots == [2] * N_PROCESSES  # the login command and the sleeping one
    else:
        assert peak > 2, lines  # what the limit prevents
        assert slots == [0] * N_PROCESSES


def test_a_whole_job_goes_through_one_channel(expyre_config, ssh_client_setup, sshd, host_log, monkeypatch):
    """Transfers hold a slot while the transport runs their commands: with one channel allowed,
    nothing waits for itself."""
    monkeypatch.setenv("EXPYRE_RETRY", "4 0.5")
    ssh_transport.close_all()
    config = expyre_config({"chan": cluster_system(ssh_client_setup,
                                                   limits={"max_channels": 1, "max_channel_wait": 30})})
    hooks = []  # (transport hook, the shell it got, whether a slot was held): a spy, the real hooks run

    def spy(name):
        real = getattr(plugins, name)

        def call(transport, shell, *args, **kwargs):
            hooks.append((name, type(shell).__name__, channels.held_here(ssh_client_setup)))
            return real(transport, shell, *args, **kwargs)
        monkeypatch.setattr(plugins, name, call)

    spy("transfer")
    spy("transfer_then_run")
    taken = channels.slots_taken
    try:
        xpr = ExPyRe("one_channel", function=sum, args=[[1, 2, 3]])
        xpr.start(resources={"max_time": "5m", "num_cores": 1}, system_name="chan", preflight=False)
        assert xpr.get_results(check_interval=0.2, quiet=True)[0] == 6
    finally:
        ssh_transport.close_all()
    row = config.db.get(xpr.id)
    assert sshd.run_as_user(f"test -f ~/{row['remote_dir']}/_expyre_job_succeeded").returncode == 0
    # the copy out with the submission in one round trip, then the copy back: each with the
    # transport's own shell, inside a slot
    assert hooks == [("transfer_then_run", "SSHShell", True), ("transfer", "SSHShell", True)]
    assert channels.slots_taken - taken >= 3  # and at least one status query in a slot of its own
    assert os.listdir(channels.host_dir(ssh_client_setup)) == ["0"]
