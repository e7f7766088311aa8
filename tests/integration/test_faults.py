"""Reliability and security under faults, against the real OpenSSH server of
tests/services/10-sshd.sh (jobs run as the account ``xpr-cluster`` with the ``direct`` scheduler):

- a job directory on the host is private: another account (``xpr-pbs``) cannot read it;
- two processes copying back one large result at the same time never read a partial file;
- a poll that read a job's row before another process marked it processed does not undo that;
- copy-back survives an sshd outage within the caller's timeout;
- a job side with numpy 1.x (``~/venv-numpy1``) loads arguments pickled here with numpy 2.
"""
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
import warnings

import numpy as np
import pytest

from expyre import gather, plugins
from expyre.func import ExPyRe
from expyre.transports import ssh as ssh_transport

pytestmark = pytest.mark.integration

RESOURCES = {"max_time": "1h", "num_nodes": 1, "partitions": "regular"}
FAST = {"check_interval": 0.5, "quiet": True}
OTHER_ACCOUNT = "xpr-pbs"


def cluster_system(host, **overrides):
    system = {"host": host, "scheduler": "direct",
              "partitions": {"regular": {"num_cores": 2, "max_time": "168h", "max_mem": "4GB"}}}
    system.update(overrides)
    return system


@pytest.fixture(autouse=True)
def fresh_connections(monkeypatch):
    monkeypatch.setenv("EXPYRE_RETRY", "3 0.5")
    ssh_transport.close_all()
    yield
    ssh_transport.close_all()


@pytest.fixture
def remote(expyre_config, ssh_client_setup):
    return expyre_config({"remote": cluster_system(ssh_client_setup)})


def run_as(user, command):
    return subprocess.run(["runuser", "-u", user, "--", "bash", "-c", command], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=60)


def wait_remote_finished(sshd, remote_dir, timeout=120):
    """Wait (as the account, not through expyre) until the job's outcome marker is on the host."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sshd.run_as_user(f"test -e ~/{remote_dir}/_expyre_job_succeeded").returncode == 0:
            return
        time.sleep(0.3)
    raise TimeoutError(f"job in {remote_dir} did not finish")


def big_result_function():
    """A function returning an ``mb`` MB array, defined here so that cloudpickle sends it by value."""
    def big_result(mb):
        import numpy
        return numpy.arange(mb * 1024 * 1024 // 8, dtype=numpy.float64)
    return big_result


# --------------------------------------------------------------------------- 1: private job directories

def test_job_directory_is_private_from_other_accounts(expyre_config, ssh_client_setup, sshd):
    """Job directories, the parents expyre creates for them and their files are the owner's alone
    (the home directory is 0755, so a 0755 job directory would be readable by everyone)."""
    if subprocess.run(["id", OTHER_ACCOUNT], capture_output=True).returncode != 0:
        pytest.skip(f"no account {OTHER_ACCOUNT} (tests/services/40-pbs.sh) to read from")
    shared = f"/tmp/xpr-faults-shared-{os.getpid()}"
    sshd.run_as_user(f"rm -rf {shared}; mkdir -m 755 {shared}", check=True)
    try:
        config = expyre_config({"remote": cluster_system(ssh_client_setup, rundir=f"{shared}/a/b")})
        xpr = ExPyRe("private", function=os.getenv, args=["SECRET_TOKEN"], env_vars=["SECRET_TOKEN=hunter2"])
        xpr.start(resources=RESOURCES, system_name="remote")
        assert xpr.get_results(**FAST)[0] == "hunter2"
        remote_dir = config.db.get(xpr.id)["remote_dir"]

        modes = sshd.run_as_user(f"stat -c '%a %n' {shared} {shared}/a {shared}/a/b {remote_dir} "
                                 f"{remote_dir}/_expyre_job.sh {remote_dir}/_expyre_task_in.pckl",
                                 check=True).stdout.split("\n")
        mode_of = dict(reversed(line.split(" ", 1)) for line in modes if line)
        assert mode_of[shared] == "755"  # an existing directory is left as it was
        for created in (f"{shared}/a", f"{shared}/a/b", remote_dir):
            assert mode_of[created] == "700", (created, mode_of)
        for staged in ("_expyre_job.sh", "_expyre_task_in.pckl"):
            assert int(mode_of[f"{remote_dir}/{staged}"], 8) & 0o077 == 0, mode_of

        # another account on the host can neither list the directory nor read the script
        peek = run_as(OTHER_ACCOUNT, f"ls {remote_dir}; cat {remote_dir}/_expyre_job.sh")
        assert "hunter2" not in peek.stdout
        assert "Permission denied" in peek.stderr
        # and the local stage directory stays private too
        assert xpr.stage_dir.stat().st_mode & 0o777 == 0o700
    finally:
        sshd.run_as_user(f"rm -rf {shared}")


def test_default_run_directory_is_private(remote, sshd):
    xpr = ExPyRe("private_default", function=abs, args=[-3])
    xpr.start(resources=RESOURCES, system_name="remote")
    assert xpr.get_results(**FAST)[0] == 3
    remote_dir = remote.db.get(xpr.id)["remote_dir"]
    modes = sshd.run_as_user(f"stat -c %a ~/run_expyre ~/{remote_dir}", check=True).stdout.split()
    assert modes == ["700", "700"]


# --------------------------------------------------------------------------- 3: atomic copy-back

COPY_BACK_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    from expyre import config, gather, results
    from expyre.func import ExPyRe

    job_id, rounds = sys.argv[1], int(sys.argv[2])
    xpr, = ExPyRe.from_jobsdb(config.db.get(job_id))
    value, _, _ = xpr.get_results(timeout=300, check_interval=0.2, quiet=True)
    assert value.size == value[-1] + 1 and value[123] == 123.0, "wrong result"
    for _ in range(rounds):
        # what 'xpr sync' or another script's get_results does: poll and copy back everything
        gather.sync([config.db.get(job_id)], force_fetch=True)
        outcome = results.read_outcome(xpr.stage_dir)
        assert outcome.value.size == value.size and outcome.value[-1] == value[-1], "partial result"
    print("OK")
""")


def test_concurrent_copy_back_never_reads_a_partial_result(remote, sshd, tmp_path):
    """Three processes copy back and read one 120 MB result at the same time, several times."""
    xpr = ExPyRe("big_result", function=big_result_function(), args=[120])
    xpr.start(resources=RESOURCES, system_name="remote")
    wait_remote_finished(sshd, remote.db.get(xpr.id)["remote_dir"])
    script = tmp_path / "copy_back.py"
    script.write_text(COPY_BACK_SCRIPT)
    procs = [subprocess.Popen([sys.executable, str(script), xpr.id, "4"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outputs = [proc.communicate(timeout=600) for proc in procs]
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0 and out.strip().endswith("OK"), err[-3000:]
    assert remote.db.get(xpr.id)["status"] == "succeeded"
    # nothing of the copy-back is left next to the stage directory
    assert [p.name for p in xpr.stage_dir.parent.iterdir() if "copy-back" in p.name] == []


# --------------------------------------------------------------------------- 4: no lost updates

MARK_PROCESSED_SCRIPT = textwrap.dedent("""
    import sys
    from expyre import config
    from expyre.func import ExPyRe
    xpr, = ExPyRe.from_jobsdb(config.db.get(sys.argv[1]))
    xpr.mark_processed()
""")


def test_poll_does_not_undo_mark_processed_of_another_process(remote, sshd, tmp_path):
    """A poll reads the job's row; another process marks the job processed (it had read the
    result); the poll then sees the job finished and copies it back: it stays processed."""
    xpr = ExPyRe("race", function=abs, args=[-5])
    xpr.start(resources=RESOURCES, system_name="remote")
    wait_remote_finished(sshd, remote.db.get(xpr.id)["remote_dir"])
    rows = list(remote.db.jobs(status=list(gather.POLLED_STATUSES)))
    assert [r["id"] for r in rows] == [xpr.id]

    script = tmp_path / "mark.py"
    script.write_text(MARK_PROCESSED_SCRIPT)
    subprocess.run([sys.executable, str(script), xpr.id], check=True, timeout=120)
    assert remote.db.get(xpr.id)["status"] == "processed"

    gather.sync(rows)  # the poll that started before mark_processed
    assert remote.db.get(xpr.id)["status"] == "processed"


def test_polls_racing_mark_processed_in_two_processes(remote, sshd, tmp_path):
    """A second process polls all jobs in a loop while this one gets results and marks them
    processed: every job ends processed."""
    jobs = [ExPyRe(f"racing{i}", function=pow, args=[i, 2]) for i in range(6)]
    for xpr in jobs:
        xpr.start(resources=RESOURCES, system_name="remote")
    poller = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import time
        from expyre import config, gather
        end = time.monotonic() + 25
        while time.monotonic() < end:
            gather.sync(list(config.db.jobs()), force_fetch=True)
    """)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for i, xpr in enumerate(jobs):
            assert xpr.get_results(timeout=120, **FAST)[0] == i * i
            xpr.mark_processed()
    finally:
        _, err = poller.communicate(timeout=120)
    assert poller.returncode == 0, err[-3000:]
    assert [remote.db.get(x.id)["status"] for x in jobs] == ["processed"] * len(jobs)


# --------------------------------------------------------------------------- 6: copy-back retried

def test_copy_back_survives_sshd_outage(remote, sshd, monkeypatch):
    """sshd is stopped and the connection cut while a 100 MB result is being copied back;
    get_results waits it out (one warning) and returns the result once sshd is back.

    The connection is cut from this end (its socket shut down) at the start of the copy-back,
    because the listening daemon's sessions outlive it: a fault injection, named as such."""
    xpr = ExPyRe("outage", function=big_result_function(), args=[100])
    xpr.start(resources=RESOURCES, system_name="remote")
    wait_remote_finished(sshd, remote.db.get(xpr.id)["remote_dir"])

    real_transfer = plugins.transfer
    restarted = threading.Event()
    cut = []

    def transfer_with_outage(transport, shell, direction, pairs):
        if direction == "get" and not cut:
            cut.append(time.monotonic())

            def outage():
                time.sleep(0.2)
                sshd.stop()
                connection = ssh_transport.connection_for(shell.spec)
                connection.client.get_transport().sock.shutdown(socket.SHUT_RDWR)
                time.sleep(6)
                sshd.start()
                restarted.set()

            threading.Thread(target=outage, daemon=True).start()
        return real_transfer(transport, shell, direction, pairs)

    monkeypatch.setattr(plugins, "transfer", transfer_with_outage)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value, _, _ = xpr.get_results(timeout=300, **FAST)
    assert restarted.wait(30)
    assert value.size == 100 * 1024 * 1024 // 8 and value[-1] == value.size - 1
    copy_back_warnings = [w for w in caught if issubclass(w.category, gather.CopyBackWarning)]
    assert len(copy_back_warnings) == 1, [str(w.message) for w in caught]
    assert remote.db.get(xpr.id)["status"] == "succeeded"


def test_copy_back_outage_longer_than_timeout_raises_timeout(remote, sshd, monkeypatch):
    """With the host gone for longer than the caller's timeout, get_results raises the timeout
    (not a connection error after the transport's first few tries)."""
    from expyre import ExPyReTimeoutError
    xpr = ExPyRe("outage_timeout", function=abs, args=[-2])
    xpr.start(resources=RESOURCES, system_name="remote")
    wait_remote_finished(sshd, remote.db.get(xpr.id)["remote_dir"])
    sshd.stop()
    try:
        ssh_transport.close_all()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pytest.raises(ExPyReTimeoutError):
                xpr.get_results(timeout=8, **FAST)
    finally:
        sshd.start()
    assert xpr.get_results(timeout=60, **FAST)[0] == 2


# --------------------------------------------------------------------------- 9: numpy 1.x job side

def numpy1_python(sshd):
    python = sshd.env.get("SSHD_REMOTE_PYTHON_NUMPY1") or str(sshd.home / "venv-numpy1" / "bin" / "python")
    if sshd.run_as_user(f"{python} -c 'import numpy, sys; sys.exit(numpy.__version__ >= \"2\")'").returncode:
        if os.environ.get("CI"):
            pytest.fail(f"no numpy 1.x job-side Python {python}: run tests/services/10-sshd.sh")
        pytest.skip(f"no numpy 1.x job-side Python {python}: run tests/services/10-sshd.sh")
    return python


def test_numpy1_job_side_loads_arguments_pickled_with_numpy2(remote, sshd):
    python = numpy1_python(sshd)

    def scaled_sum(array, factor, extras):
        import numpy
        return numpy.__version__, float(array.sum() * factor + sum(e.sum() for e in extras))

    assert np.__version__ >= "2"
    array = np.ones((100, 50))
    extras = [np.asfortranarray(np.ones((3, 4))), np.arange(6)[::2], np.array([1.5], dtype=">f4")]
    xpr = ExPyRe("numpy1", function=scaled_sum, args=[array, np.float64(2.0), extras])
    xpr.start(resources=RESOURCES, system_name="remote", python_cmd=python)
    (remote_numpy, value), _, _ = xpr.get_results(**FAST)
    assert remote_numpy.startswith("1.")
    assert value == 100 * 50 * 2 + 12 + 6 + 1.5


def test_unpickling_failure_on_the_job_side_names_module_and_versions(remote, sshd):
    from expyre import ExPyRePreflightError, ExPyReRemoteEnvironmentError
    python = numpy1_python(sshd)
    needs_numpy2 = np._core.numeric._frombuffer  # pickled by reference to numpy 2's numpy._core.numeric
    assert needs_numpy2.__module__ == "numpy._core.numeric"
    xpr = ExPyRe("numpy1_fails", function=needs_numpy2, args=[b"\0" * 8, np.dtype("f8"), (1,), "C"])
    # preflight sees it coming and queues nothing ...
    with pytest.raises(ExPyRePreflightError, match=r"numpy\._core\.numeric.*1\.26"):
        xpr.start(resources=RESOURCES, system_name="remote", python_cmd=python)
    assert remote.db.get(xpr.id)["status"] == "created"
    # ... and without it, the job side's own message says the same
    xpr.start(resources=RESOURCES, system_name="remote", python_cmd=python, preflight=False)
    with pytest.raises(ExPyReRemoteEnvironmentError) as info:
        xpr.get_results(**FAST)
    message = str(info.value)
    assert "job side cannot load the job's function and arguments (unpickling" in message
    assert "module numpy._core.numeric" in message
    assert f"numpy {np.__version__} where the job was created, 1.26" in message
