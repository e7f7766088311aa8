"""Real jobs on this machine through the built-in ``direct`` scheduler and ``local`` transport.

Every job here is a real background process started by the direct scheduler; the tests check
what a user would: the value returned, the exception raised, the files left behind, the rows in
the jobs database.
"""
import os
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import direct_system

from expyre import (
    ExPyReJobDiedError,
    ExPyRePreflightError,
    ExPyReRemoteEnvironmentError,
    ExPyReRemoteTraceback,
    ExPyReTimeoutError,
)
from expyre.func import ExPyRe

pytestmark = pytest.mark.integration

SEED_RESOURCES = {"max_time": "1h", "num_nodes": 1, "partitions": "regular"}
FAST = {"check_interval": 0.2, "quiet": True}


@pytest.fixture
def remote(expyre_config):
    """The seed's system 'remote', on this machine: direct scheduler, jobs run in their stage dirs."""
    return expyre_config({"remote": direct_system()})


@pytest.fixture
def staged(expyre_config):
    """A system with a run directory, so that staging out and back really copies files."""
    return expyre_config({"remote": direct_system(rundir="cluster_rundir")})


def run_seed_example():
    array_to_sum = np.ones((100, 50))
    xpr = ExPyRe("test_task", function=np.sum, args=[array_to_sum], kwargs={"axis": 1})
    res = {"max_time": "1h", "num_nodes": 1, "partitions": "regular"}
    xpr.start(resources=res, system_name="remote")
    array_sum, stdout, stderr = xpr.get_results()
    assert np.max(np.abs(array_sum - [50.0] * 100)) == 0.0
    xpr.mark_processed()
    return xpr


def test_seed_example_runs_in_stage_dir(remote):
    xpr = run_seed_example()
    row = remote.db.get(xpr.id)
    assert row["status"] == "processed"
    assert row["system"] == "remote"
    assert row["remote_dir"] == str(xpr.stage_dir)
    assert (xpr.stage_dir / "_expyre_job_succeeded").is_file()
    assert xpr.stage_dir.parent == remote.local_stage_dir


def test_seed_example_with_rundir_really_copies(staged, isolated_home):
    xpr = run_seed_example()
    row = staged.db.get(xpr.id)
    remote_dir = isolated_home / row["remote_dir"]
    assert row["remote_dir"].startswith("cluster_rundir/")
    assert remote_dir.parent.parent == isolated_home / "cluster_rundir"
    # the job ran in the remote directory, and its results came back to the stage directory
    assert (remote_dir / "_expyre_job_succeeded").is_file()
    assert (remote_dir / "_expyre_task_in.pckl").is_file()
    assert (xpr.stage_dir / "_expyre_job_succeeded").read_bytes() == (remote_dir / "_expyre_job_succeeded").read_bytes()
    assert remote_dir.resolve() != xpr.stage_dir.resolve()


def test_job_environment_and_stdout(staged, monkeypatch):
    monkeypatch.setenv("FROM_CALLER", "value with spaces; $HOME 'quoted'")

    def report():
        print("hello from the job")
        import sys
        sys.stderr.write("a warning\n")
        os.system("echo from a subprocess")
        return {k: os.environ.get(k) for k in ("EXPYRE_NUM_NODES", "EXPYRE_NUM_CORES",
                                               "EXPYRE_NUM_CORES_PER_NODE", "LITERAL", "FROM_CALLER")}

    # "NAME=value" is expanded by the job's shell (ExPyRe's semantics): quote it as on a command line
    xpr = ExPyRe("env", function=report, env_vars=["LITERAL='a b $c'", "FROM_CALLER"])
    xpr.start(resources={"max_time": "10m", "num_cores": 1, "partitions": "regular"}, system_name="remote",
              partial_node=True)
    env, stdout, stderr = xpr.get_results(**FAST)
    assert env == {"EXPYRE_NUM_NODES": "1", "EXPYRE_NUM_CORES": "1", "EXPYRE_NUM_CORES_PER_NODE": "1",
                   "LITERAL": "a b $c", "FROM_CALLER": "value with spaces; $HOME 'quoted'"}
    assert stdout == "hello from the job\nfrom a subprocess\n"
    assert stderr == "a warning\n"


def test_whole_node_sets_num_cores(remote):
    xpr = ExPyRe("cores", function=lambda: (os.environ["EXPYRE_NUM_NODES"], os.environ["EXPYRE_NUM_CORES"]))
    xpr.start(resources={"max_time": "10m", "num_nodes": 2, "partitions": "large-mem"}, system_name="remote")
    assert xpr.get_results(**FAST)[0] == ("2", "8")


def test_remote_exception_is_reraised_with_traceback(remote):
    def failing_step(x):
        raise ValueError(f"bad input {x}")

    xpr = ExPyRe("fails", function=failing_step, args=[42])
    xpr.start(resources=SEED_RESOURCES, system_name="remote")
    with pytest.raises(ValueError, match="bad input 42") as info:
        xpr.get_results(**FAST)
    cause = info.value.__cause__
    assert isinstance(cause, ExPyReRemoteTraceback)
    assert "failing_step" in cause.text and "ValueError: bad input 42" in cause.text
    assert remote.db.get(xpr.id)["status"] == "failed"


def test_custom_exception_class_defined_in_test(remote):
    class StepError(Exception):
        pass

    def failing():
        raise StepError("custom")

    xpr = ExPyRe("custom_exc", function=failing)
    xpr.start(resources=SEED_RESOURCES, system_name="remote")
    with pytest.raises(Exception, match="custom") as info:
        xpr.get_results(**FAST)
    assert type(info.value).__name__ == "StepError"


def _wait_for(predicate, timeout=20):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_killed_job_raises_died(remote):
    xpr = ExPyRe("killed", function=time.sleep, args=[60])
    xpr.start(resources=SEED_RESOURCES, system_name="remote")
    assert _wait_for(lambda: (xpr.stage_dir / "_expyre_job_started").exists())
    os.killpg(int(xpr.remote_id), signal.SIGKILL)
    with pytest.raises(ExPyReJobDiedError, match="left no result"):
        xpr.get_results(timeout=30, **FAST)
    assert remote.db.get(xpr.id)["status"] == "died"


def test_max_time_exceeded_is_killed_and_died(remote):
    xpr = ExPyRe("too_long", function=time.sleep, args=[120])
    start = time.monotonic()
    xpr.start(resources={"max_time": "2s", "num_nodes": 1, "partitions": "regular"}, system_name="remote")
    with pytest.raises(ExPyReJobDiedError):
        xpr.get_results(timeout=60, **FAST)
    assert time.monotonic() - start < 60
    row = remote.db.get(xpr.id)
    assert row["remote_status"] == "timeout"
    assert row["status"] == "died"
    # the watchdog killed the whole process group: the job's python is gone
    assert not _process_alive(int(xpr.remote_id))


def _process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]


def test_timeout_then_cancel_ends_as_died(remote):
    xpr = ExPyRe("slow", function=time.sleep, args=[60])
    xpr.start(resources=SEED_RESOURCES, system_name="remote")
    with pytest.raises(ExPyReTimeoutError):
        xpr.get_results(timeout=1, **FAST)
    assert remote.db.get(xpr.id)["status"] in ("submitted", "started")
    xpr.cancel()
    with pytest.raises(ExPyReJobDiedError):
        xpr.get_results(timeout=30, **FAST)


def test_input_and_output_files(staged, isolated_home):
    work = Path.cwd()
    (work / "data" / "sub").mkdir(parents=True)
    (work / "data" / "in.txt").write_text("relative\n")
    (work / "data" / "sub" / "deep.txt").write_text("deep\n")
    (work / "a1.dat").write_text("1")
    (work / "a2.dat").write_text("2")
    outside = isolated_home / "elsewhere"
    outside.mkdir()
    (outside / "abs.txt").write_text("absolute\n")
    script = work / "tool.sh"
    script.write_text("#!/bin/sh\necho tool\n")
    script.chmod(0o755)

    def use_files():
        import subprocess
        from pathlib import Path
        found = {p: Path(p).read_text() for p in ("data/in.txt", "data/sub/deep.txt", "a1.dat", "a2.dat", "abs.txt")}
        found["tool"] = subprocess.run(["./tool.sh"], capture_output=True, text=True).stdout
        Path("out").mkdir()
        Path("out/result.txt").write_text("written by the job\n")
        Path("other.log").write_text("log\n")
        return found

    xpr = ExPyRe("files", function=use_files, input_files=["data", "a*.dat", str(outside / "abs.txt"), "tool.sh"],
                 output_files=["out/result.txt", "*.log"])
    xpr.start(resources=SEED_RESOURCES, system_name="remote")
    found, _, _ = xpr.get_results(**FAST)
    assert found == {"data/in.txt": "relative\n", "data/sub/deep.txt": "deep\n", "a1.dat": "1", "a2.dat": "2",
                     "abs.txt": "absolute\n", "tool": "tool\n"}
    assert (work / "out" / "result.txt").read_text() == "written by the job\n"
    assert (work / "other.log").read_text() == "log\n"


def test_input_file_with_dotdot_is_refused(remote):
    with pytest.raises(ValueError, match=r"'\.\./x' contains '\.\.'"):
        ExPyRe("bad", function=print, input_files=["../x"])
    with pytest.raises(FileNotFoundError, match="matches no file"):
        ExPyRe("missing", function=print, input_files=["nothing*.txt"])
    assert list(remote.db.jobs()) == []


def test_pre_and_post_run_commands(staged):
    def read_marker():
        return open("pre.txt").read()

    xpr = ExPyRe("prepost", function=read_marker, pre_run_commands=["echo before > pre.txt"],
                 post_run_commands=["echo after > post.txt"])
    xpr.start(resources=SEED_RESOURCES, system_name="remote")
    assert xpr.get_results(**FAST)[0] == "before\n"
    assert (xpr.stage_dir / "post.txt").read_text() == "after\n"


def test_lambda_and_closure(remote):
    offset = 10
    xpr = ExPyRe("closure", function=lambda x: x + offset, args=[5])
    xpr.start(resources=SEED_RESOURCES, system_name="remote")
    assert xpr.get_results(**FAST)[0] == 15


def test_two_lambdas_do_not_share_a_job(remote):
    first = ExPyRe("lam", function=lambda: 1)
    second = ExPyRe("lam", function=lambda: 2)
    assert first.id != second.id


def test_restart_in_process_reattaches_and_hash_ignore(remote):
    def add(a, b, verbose=False):
        return a + b

    first = ExPyRe("add", function=add, args=[1, 2], kwargs={"verbose": False}, hash_ignore=["verbose"])
    first.start(resources=SEED_RESOURCES, system_name="remote")
    assert first.get_results(**FAST)[0] == 3
    again = ExPyRe("add", function=add, args=[1, 2], kwargs={"verbose": True}, hash_ignore=["verbose"])
    assert again.id == first.id and again.recreated and again.status == "succeeded"
    again.start(resources=SEED_RESOURCES, system_name="remote")  # no second submission
    assert again.get_results(**FAST)[0] == 3
    different = ExPyRe("add", function=add, args=[1, 3])
    assert different.id != first.id
    no_restart = ExPyRe("add", function=add, args=[1, 2], kwargs={"verbose": False}, hash_ignore=["verbose"],
                        try_restart_from_prev=False)
    assert no_restart.id != first.id
    assert len(list(remote.db.jobs(name="add"))) == 3


def test_force_rerun_runs_again(staged, isolated_home):
    counter = isolated_home / "count.txt"

    def count():
        with open(counter, "a") as f:
            f.write("x")
        return len(open(counter).read())

    xpr = ExPyRe("rerun", function=count)
    xpr.start(resources=SEED_RESOURCES, system_name="remote")
    assert xpr.get_results(**FAST)[0] == 1
    xpr.start(resources=SEED_RESOURCES, system_name="remote", force_rerun=True)
    assert xpr.get_results(**FAST)[0] == 2


def test_header_extra_and_env_header_extra(remote, monkeypatch):
    monkeypatch.setenv("EXPYRE_HEADER_EXTRA", '["# from env {num_cores}"]')
    xpr = ExPyRe("header", function=int, args=["7"])
    xpr.start(resources=SEED_RESOURCES, system_name="remote", header_extra=["# job extra {partition} {id}"])
    assert xpr.get_results(**FAST)[0] == 7
    script = (xpr.stage_dir / "_expyre_job.sh").read_text().splitlines()
    assert script[:4] == ["#!/bin/bash -l", "# cores per node 2", f"# job extra regular {xpr.id}", "# from env 2"]


def test_unknown_header_key_is_a_clear_error(remote):
    xpr = ExPyRe("badheader", function=int, args=["7"])
    with pytest.raises(ValueError, match=r"header line '# \{nodes\}' uses unknown key \{nodes\}"):
        xpr.start(resources=SEED_RESOURCES, system_name="remote", header_extra=["# {nodes}"])
    assert remote.db.get(xpr.id)["status"] == "created"


def test_python_cmd(remote, tmp_path, python_exe):
    wrapper = tmp_path / "my python"
    wrapper.write_text(f'#!/bin/sh\nexport WRAPPED=yes\nexec "{python_exe}" "$@"\n')
    wrapper.chmod(0o755)
    xpr = ExPyRe("pycmd", function=lambda: os.environ.get("WRAPPED"))
    xpr.start(resources=SEED_RESOURCES, system_name="remote", python_cmd=f"'{wrapper}'")
    assert xpr.get_results(**FAST)[0] == "yes"


def test_remote_python_missing_module_is_reported(remote, tmp_path, monkeypatch):
    module_dir = tmp_path / "only_here"
    module_dir.mkdir()
    (module_dir / "localonly_mod.py").write_text("class Thing:\n    value = 3\n")
    monkeypatch.syspath_prepend(str(module_dir))
    import localonly_mod

    xpr = ExPyRe("envmismatch", function=getattr, args=[localonly_mod.Thing(), "value"])
    # preflight finds it before anything is queued ...
    with pytest.raises(ExPyRePreflightError, match=r"localonly_mod.*No module named 'localonly_mod'"):
        xpr.start(resources=SEED_RESOURCES, system_name="remote")
    assert xpr.status == "created"
    # ... and without preflight, the job side says so itself
    xpr.start(resources=SEED_RESOURCES, system_name="remote", preflight=False)
    with pytest.raises(ExPyReRemoteEnvironmentError, match="No module named 'localonly_mod'") as info:
        xpr.get_results(**FAST)
    assert "cannot load the job's function and arguments" in str(info.value)


def test_clean_without_and_with_wipe(staged, isolated_home):
    xpr = ExPyRe("clean", function=np.ones, args=[1000])
    xpr.start(resources=SEED_RESOURCES, system_name="remote")
    xpr.get_results(**FAST)
    remote_dir = isolated_home / staged.db.get(xpr.id)["remote_dir"]
    xpr.clean()
    assert (xpr.stage_dir / "_expyre_task_in.pckl").read_text() == "CLEANED\n"
    assert (xpr.stage_dir / "_expyre_job_succeeded").read_text() == "CLEANED\n"
    assert (remote_dir / "_expyre_task_in.pckl").read_text() == "CLEANED\n"
    assert staged.db.get(xpr.id)["status"] == "cleaned"
    with pytest.raises(RuntimeError, match="no longer available"):
        xpr.get_results()
    xpr.clean(wipe=True, dry_run=True)
    assert remote_dir.exists() and xpr.stage_dir.exists()
    xpr.clean(wipe=True, remote_only=True)
    assert not remote_dir.exists() and xpr.stage_dir.exists()
    xpr.clean(wipe=True)
    assert not xpr.stage_dir.exists()


def test_failed_submission_leaves_no_remote_dir_and_can_start_again(staged, isolated_home, monkeypatch):
    from expyre.schedulers import direct
    xpr = ExPyRe("subfail", function=int, args=["5"])

    # fault injection: a launch command that fails as a refused submission would
    monkeypatch.setattr(direct, "launch_command", lambda job, script: "echo 'submission refused' >&2; exit 1")
    with pytest.raises(Exception, match="submission refused"):
        xpr.start(resources=SEED_RESOURCES, system_name="remote")
    assert not list((isolated_home / "cluster_rundir").rglob("run_*"))
    assert staged.db.get(xpr.id)["status"] == "created"
    monkeypatch.undo()
    xpr.start(resources=SEED_RESOURCES, system_name="remote")
    assert xpr.get_results(**FAST)[0] == 5


def _ignored_signals(pid):
    mask = int(next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                    if line.startswith("SigIgn:")).split()[1], 16)
    return {sig for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM) if mask >> (sig - 1) & 1}


def test_shell_hung_up_while_it_records_the_launch_still_answers(remote, tmp_path, monkeypatch):
    """Fault injection: a fake ``mv``, first on PATH, hangs up, interrupts and terminates the shell
    that started the job while that shell renames the job's pid file into place. The shell goes on
    and prints the pid, so the start is recorded once; the job itself still takes HUP and TERM."""
    from expyre.schedulers import direct
    fake_bin = tmp_path / "fake_bin"
    fake_bin.mkdir()
    (fake_bin / "mv").write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = {direct.PID_FILE}.tmp ]; then kill -HUP $PPID; kill -INT $PPID; kill -TERM $PPID; sleep 0.2; fi\n'
        f'exec {shutil.which("mv")} "$@"\n')
    (fake_bin / "mv").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_bin}{os.pathsep}{os.environ['PATH']}")

    xpr = ExPyRe("hung_up", function=time.sleep, args=[60])
    xpr.start(resources=SEED_RESOURCES, system_name="remote")   # the old shell died here: no pid printed
    assert (xpr.stage_dir / direct.PID_FILE).read_text().strip() == xpr.remote_id
    assert _wait_for(lambda: (xpr.stage_dir / "_expyre_job_started").exists())
    assert _ignored_signals(int(xpr.remote_id)) == {signal.SIGINT}  # as any background command's
    xpr.cancel()
    with pytest.raises(ExPyReJobDiedError):
        xpr.get_results(timeout=30, **FAST)
    assert remote.db.get(xpr.id)["status"] == "died"


def test_several_jobs_are_polled_with_one_status_query(staged, monkeypatch):
    from expyre import plugins
    calls = []
    real_status = plugins.status

    def counting_status(scheduler, jobs, shell):
        calls.append(len(jobs))
        return real_status(scheduler, jobs, shell)

    monkeypatch.setattr(plugins, "status", counting_status)
    jobs = [ExPyRe(f"many{i}", function=time.sleep, args=[0.5 + 0.1 * i]) for i in range(4)]
    for xpr in jobs:
        xpr.start(resources=SEED_RESOURCES, system_name="remote")
    jobs[-1].get_results(**FAST)
    assert calls and max(calls) == 4  # every poll asked about all four jobs at once
    n_calls = len(calls)
    for xpr in jobs[:-1]:
        xpr.get_results(**FAST)
    assert len(calls) == n_calls  # the others were gathered by the same polls


def test_unknown_system_is_a_clear_error(remote):
    xpr = ExPyRe("nosys", function=int, args=["1"])
    with pytest.raises(ValueError, match="system 'cluster' is not configured; configured systems: remote"):
        xpr.start(resources=SEED_RESOURCES, system_name="cluster")
