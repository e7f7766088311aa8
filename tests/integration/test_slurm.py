"""Jobs on the real one-node Slurm cluster of tests/services/20-slurm.sh, through the Slurm plugin.

Each test runs twice: ``ssh`` submits as the ordinary account ``xpr-cluster`` through the real
sshd of tests/services/10-sshd.sh (what a user does), ``local`` submits from this process's own
account with the ``local`` transport (root on the test machine, which Slurm accepts). The jobs
are real Slurm jobs: sbatch, squeue, scontrol and scancel do the work, and Slurm kills the job
that runs past its wall time. The wall-time test, which has to wait out Slurm's minute, runs
both variants' jobs at the same time in one test.
"""
import os
import shlex
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from servicelib import require_service
from shells import CountingShell
from sshd_fixtures import ssh_client_setup, sshd  # noqa: F401  (pytest fixtures)

import expyre_slurm
from expyre import ExPyReJobDiedError, ExPyReTimeoutError, RemoteCommandError
from expyre.func import ExPyRe

pytestmark = pytest.mark.integration

FAST = {"check_interval": 0.5, "quiet": True}
SEED_RESOURCES = {"max_time": "1h", "num_nodes": 1, "partitions": "standard"}
ONE_CORE = {"max_time": "10m", "num_cores": 1, "partitions": "standard"}


class Cluster:
    """Where the jobs go: the system's name in the config, and commands on the Slurm host run as
    the account that submits (for assertions about the remote side)."""

    def __init__(self, variant, config, slurm, home, sshd_service=None, system_name="remote"):
        self.variant = variant
        self.system_name = system_name
        self.config = config
        self.slurm = slurm
        self.home = Path(home)
        self.sshd = sshd_service
        self.cpus = int(slurm["SLURM_CPUS"])

    def run(self, command):
        if self.sshd is not None:
            return self.sshd.run_as_user(command, check=True).stdout
        return subprocess.run(["bash", "-c", command], cwd=self.home, capture_output=True, text=True,
                              check=True).stdout

    def remote_path(self, remote_dir):
        return self.home / remote_dir

    def scontrol(self, remote_id):
        fields = {}
        for word in self.run(f"scontrol --oneliner show job {remote_id}").split():
            key, _, value = word.partition("=")
            fields.setdefault(key, value)
        return fields


#: The jobs' run directory under the submitting account's home: not the ``run_expyre`` that other
#: tests (and their clean-up) use, so that tests run at the same time do not delete each other's jobs.
RUNDIR = "run_expyre_slurm"


def slurm_system(host, cpus):
    return {"host": host, "scheduler": "slurm", "rundir": RUNDIR,
            "header": ["#SBATCH --nodes={num_nodes}", "#SBATCH --ntasks-per-node={num_cores_per_node}"],
            "partitions": {"standard": {"num_cores": cpus, "max_time": "24h", "max_mem": "1GB"},
                           "short": {"num_cores": cpus, "max_time": "30m", "max_mem": "1GB"}}}


def _variant(request, variant, monkeypatch, isolated_home):
    """``(host, home, sshd service or None)`` for a variant; skips like its services do."""
    if variant == "ssh":
        host = request.getfixturevalue("ssh_client_setup")
        service = request.getfixturevalue("sshd")
        from expyre.transports import ssh as ssh_transport
        ssh_transport.close_all()
        request.addfinalizer(ssh_transport.close_all)
        return host, service.home, service
    return None, isolated_home, None


def _clean_up(clusters):
    """Nothing of a failed test stays in the queue, and its run directories go."""
    for cluster in clusters:
        for row in cluster.config.db.jobs():
            if row.get("remote_id") and row["status"] in ("submitted", "started"):
                subprocess.run(["scancel", row["remote_id"].split(";")[0]], capture_output=True)
    for cluster in clusters:
        rundir = cluster.config.systems[cluster.system_name].remote_rundir
        cluster.run(f"rm -rf {shlex.quote(str(cluster.remote_path(rundir)))}; "
                    f"rmdir {shlex.quote(str(cluster.home / RUNDIR))} 2>/dev/null || true")


@pytest.fixture(params=["local", "ssh"])
def cluster(request, expyre_config, isolated_home, monkeypatch):
    """A config with the system ``remote`` on the Slurm cluster, reached by the variant's transport."""
    slurm = require_service("slurm")
    monkeypatch.setenv("EXPYRE_RETRY", "4 0.5")
    host, home, service = _variant(request, request.param, monkeypatch, isolated_home)
    config = expyre_config({"remote": slurm_system(host, int(slurm["SLURM_CPUS"]))})
    cluster = Cluster(request.param, config, slurm, home, service)
    yield cluster
    _clean_up([cluster])


@pytest.fixture
def both_clusters(request, expyre_config, isolated_home, monkeypatch):
    """One config with both variants as systems ``remote_local`` and ``remote_ssh``, for a test
    that runs a slow job on each at the same time."""
    slurm = require_service("slurm")
    monkeypatch.setenv("EXPYRE_RETRY", "4 0.5")
    variants = {v: _variant(request, v, monkeypatch, isolated_home) for v in ("local", "ssh")}
    config = expyre_config({f"remote_{v}": slurm_system(host, int(slurm["SLURM_CPUS"]))
                            for v, (host, _, _) in variants.items()})
    clusters = {v: Cluster(v, config, slurm, home, service, f"remote_{v}")
                for v, (_, home, service) in variants.items()}
    yield clusters
    _clean_up(clusters.values())


def wait_for(predicate, timeout=60, interval=0.2):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


def remote_state(cluster, xpr):
    """The plugin's state for the job right now (one status query)."""
    system = cluster.config.systems[cluster.system_name]
    from expyre import RemoteJob
    return system.status([RemoteJob(xpr.remote_id, xpr.remote_dir, xpr.id)])[xpr.remote_id]


# --------------------------------------------------------------------------- the seed example

def test_seed_example_end_to_end(cluster):
    array_to_sum = np.ones((100, 50))
    xpr = ExPyRe("test_task", function=np.sum, args=[array_to_sum], kwargs={"axis": 1})
    res = {"max_time": "1h", "num_nodes": 1, "partitions": "standard"}
    xpr.start(resources=res, system_name="remote")
    array_sum, stdout, stderr = xpr.get_results(**FAST)
    assert np.max(np.abs(array_sum - [50.0] * 100)) == 0.0
    xpr.mark_processed()

    row = cluster.config.db.get(xpr.id)
    assert row["status"] == "processed" and row["remote_id"].isdigit()
    # the header the seed documents, as Slurm took it
    script = (xpr.stage_dir / "_expyre_job.sh").read_text().splitlines()
    assert script[:9] == ["#!/bin/bash -l",
                          f"#SBATCH --job-name={xpr.id}",
                          "#SBATCH --partition=standard",
                          "#SBATCH --time=1:00:00",
                          f"#SBATCH --output=job.{xpr.id}.stdout",
                          f"#SBATCH --error=job.{xpr.id}.stderr",
                          "#SBATCH --mem=1048576K",  # the partition's max_mem, as no line sets --mem
                          "#SBATCH --nodes=1",
                          f"#SBATCH --ntasks-per-node={cluster.cpus}"]
    job = cluster.scontrol(row["remote_id"])
    remote_dir = cluster.remote_path(row["remote_dir"])
    assert job["JobName"] == xpr.id
    assert job["Partition"] == "standard" and job["TimeLimit"] == "01:00:00"
    assert job["JobState"] == "COMPLETED"
    assert job["StdOut"] == str(remote_dir / f"job.{xpr.id}.stdout")
    assert job["NumCPUs"] == str(cluster.cpus)
    if cluster.variant == "ssh":
        assert job["UserId"].startswith(cluster.sshd.user + "(")
    # Slurm wrote the job's own output files in the job's directory, and they came back
    assert (xpr.stage_dir / f"job.{xpr.id}.stdout").is_file()


def test_job_environment_from_slurm(cluster):
    def report():
        return {k: os.environ.get(k) for k in ("EXPYRE_NUM_NODES", "EXPYRE_NUM_CORES", "EXPYRE_NUM_CORES_PER_NODE",
                                               "SLURM_JOB_ID")}

    xpr = ExPyRe("env", function=report)
    xpr.start(resources=ONE_CORE, system_name="remote", partial_node=True)
    env = xpr.get_results(**FAST)[0]
    assert env == {"EXPYRE_NUM_NODES": "1", "EXPYRE_NUM_CORES": "1", "EXPYRE_NUM_CORES_PER_NODE": "1",
                   "SLURM_JOB_ID": xpr.remote_id}
    # the whole node: Slurm's numbers for it
    whole = ExPyRe("env_whole", function=report)
    whole.start(resources=SEED_RESOURCES, system_name="remote")
    env = whole.get_results(**FAST)[0]
    assert (env["EXPYRE_NUM_CORES"], env["EXPYRE_NUM_CORES_PER_NODE"]) == (str(cluster.cpus), str(cluster.cpus))


def test_remote_exception_is_reraised(cluster):
    def fails(x):
        raise ValueError(f"bad value {x}")

    xpr = ExPyRe("fails", function=fails, args=[7])
    xpr.start(resources=ONE_CORE, system_name="remote", partial_node=True)
    with pytest.raises(ValueError, match="bad value 7"):
        xpr.get_results(**FAST)
    assert cluster.scontrol(xpr.remote_id)["JobState"] == "FAILED"


# --------------------------------------------------------------------------- many jobs

def test_several_jobs_gathered_with_one_squeue_per_poll(cluster, monkeypatch):
    from expyre import plugins
    polls = []
    real_status = plugins.status

    def counting_status(scheduler, jobs, shell):
        counting = CountingShell(shell, r"^[ \t]*squeue ")
        states = real_status(scheduler, jobs, counting)
        polls.append((len(jobs), counting.matches))
        return states

    monkeypatch.setattr(plugins, "status", counting_status)
    jobs = [ExPyRe(f"many{i}", function=time.sleep, args=[0.2 + 0.3 * i]) for i in range(5)]
    for xpr in jobs:
        xpr.start(resources=ONE_CORE, system_name="remote", partial_node=True)
    assert len({xpr.remote_id for xpr in jobs}) == 5
    jobs[-1].get_results(**FAST)
    assert polls and max(n for n, _ in polls) == 5   # every poll asked about all ongoing jobs at once
    assert all(calls == 1 for _, calls in polls)     # with one squeue
    n_polls = len(polls)
    for xpr in jobs[:-1]:
        assert xpr.get_results(**FAST)[0] is None
    assert len(polls) == n_polls                     # the others were gathered by the same polls


# --------------------------------------------------------------------------- held, released, cancelled

def test_held_job_reports_held_and_cancelled_job_dies(cluster):
    # a job that takes the whole node, so that the next one has to queue
    blocker = ExPyRe("blocker", function=time.sleep, args=[120])
    blocker.start(resources=SEED_RESOURCES, system_name="remote")
    wait_for(lambda: remote_state(cluster, blocker) == "running")
    waiting = ExPyRe("waiting", function=sum, args=[[1, 2, 3]])
    waiting.start(resources=SEED_RESOURCES, system_name="remote")
    assert remote_state(cluster, waiting) == "queued"

    waiting.hold()
    assert remote_state(cluster, waiting) == "held"
    with pytest.raises(ExPyReTimeoutError):
        waiting.get_results(timeout=1, **FAST)
    assert cluster.config.db.get(waiting.id)["remote_status"] == "held"
    waiting.release()
    assert remote_state(cluster, waiting) == "queued"

    # `xpr cancel` of the running job: it ends as died, not as a hang, and the queued one runs
    xpr_cli = Path(sys.executable).parent / "xpr"
    result = subprocess.run([str(xpr_cli), "cancel", "-i", blocker.id, "--yes"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    start = time.monotonic()
    with pytest.raises(ExPyReJobDiedError):
        blocker.get_results(timeout=60, **FAST)
    assert time.monotonic() - start < 30
    assert cluster.config.db.get(blocker.id)["status"] == "died"
    assert cluster.scontrol(blocker.remote_id)["JobState"] == "CANCELLED"
    assert waiting.get_results(timeout=60, **FAST)[0] == 6


def test_job_submitted_held_stays_held(cluster):
    xpr = ExPyRe("submitted_held", function=int, args=["4"])
    xpr.start(resources=ONE_CORE, system_name="remote", partial_node=True, header_extra=["#SBATCH --hold"])
    assert remote_state(cluster, xpr) == "held"
    with pytest.raises(ExPyReTimeoutError):
        xpr.get_results(timeout=2, **FAST)
    assert cluster.config.db.get(xpr.id)["status"] == "submitted"
    xpr.release()
    assert xpr.get_results(timeout=60, **FAST)[0] == 4


# --------------------------------------------------------------------------- wall time

def test_job_past_its_wall_time_is_killed_by_slurm(both_clusters):
    # Slurm's wall times are whole minutes, and slurmctld looks for jobs past theirs every 30 s:
    # this takes 60 to 90 s, so both variants' jobs run at the same time
    start = time.monotonic()
    jobs = {}
    for variant in both_clusters:
        xpr = ExPyRe(f"too_long_{variant}", function=time.sleep, args=[600])
        xpr.start(resources={"max_time": "1m", "num_cores": 1, "partitions": "standard"},
                  system_name=f"remote_{variant}", partial_node=True)
        jobs[variant] = xpr
    for variant, xpr in jobs.items():
        with pytest.raises(ExPyReJobDiedError, match="remote status 'timeout'"):
            xpr.get_results(timeout=300, **FAST)
        assert time.monotonic() - start < 240
        cluster = both_clusters[variant]
        row = cluster.config.db.get(xpr.id)
        assert row["remote_status"] == "timeout" and row["status"] == "died"
        # Slurm's own record says the job ran its whole minute; a clock here may count a second
        # less, since Slurm keeps the job's start in whole seconds
        job = cluster.scontrol(xpr.remote_id)
        assert job["JobState"] == "TIMEOUT" and job["TimeLimit"] == "00:01:00"
        assert job["RunTime"] >= "00:01:00"


# --------------------------------------------------------------------------- refused submission

def test_refused_submission_raises_sbatchs_message_and_can_be_fixed(cluster):
    xpr = ExPyRe("refused", function=int, args=["9"])
    with pytest.raises(RemoteCommandError, match="unrecognized option '--no-such-option'") as info:
        xpr.start(resources=ONE_CORE, system_name="remote", partial_node=True,
                  header_extra=["#SBATCH --no-such-option"])
    assert f"sbatch refused job {xpr.id}" in str(info.value)
    assert cluster.config.db.get(xpr.id)["status"] == "created"
    # no job directory left behind (other tests' directories may be there too)
    assert cluster.run(f"find ~/{RUNDIR} -mindepth 1 -maxdepth 2 -name 'run_refused_*' | wc -l").strip() == "0"
    # fixed: started again without the bad line
    xpr.start(resources=ONE_CORE, system_name="remote", partial_node=True)
    assert xpr.get_results(**FAST)[0] == 9


def test_refused_partition(cluster):
    config = cluster.config
    config.systems["remote"].partitions["standard"]["partition"] = "no-such-partition"
    xpr = ExPyRe("bad_partition", function=int, args=["1"])
    with pytest.raises(RemoteCommandError, match="Invalid partition name specified"):
        xpr.start(resources=ONE_CORE, system_name="remote", partial_node=True)
    assert config.db.get(xpr.id)["status"] == "created"


# --------------------------------------------------------------------------- restarts

RESTART_SCRIPT = textwrap.dedent("""
    import os, signal, sys, time
    from expyre.func import ExPyRe

    def slow_square(x):
        time.sleep(4)
        return x * x

    xpr = ExPyRe("restartable", function=slow_square, args=[12])
    xpr.start(resources={"max_time": "10m", "num_nodes": 1, "partitions": "standard"}, system_name="remote")
    print("JOB", xpr.id, xpr.recreated, xpr.remote_id, flush=True)
    if os.environ.get("DIE_AFTER_START"):
        os.kill(os.getpid(), signal.SIGKILL)
    result, stdout, stderr = xpr.get_results(check_interval=0.5, quiet=True)
    print("RESULT", result, flush=True)
""")


def test_killed_script_reattaches_in_second_process(cluster, tmp_path):
    script = tmp_path / "workflow.py"
    script.write_text(RESTART_SCRIPT)

    def run(**env):
        return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=180,
                              env=dict(os.environ, **env))

    first = run(DIE_AFTER_START="1")
    assert first.returncode == -9, first.stderr
    _, job_id, recreated, remote_id = [line for line in first.stdout.splitlines() if line.startswith("JOB")][0].split()
    assert recreated == "False"
    assert cluster.config.db.get(job_id)["status"] in ("submitted", "started")
    assert cluster.scontrol(remote_id)["JobState"] in ("PENDING", "RUNNING", "CONFIGURING")  # still going

    second = run()
    assert second.returncode == 0, second.stderr
    assert f"JOB {job_id} True {remote_id}" in second.stdout
    assert "RESULT 144" in second.stdout
    assert [r["id"] for r in cluster.config.db.jobs()] == [job_id]
    assert cluster.config.db.get(job_id)["status"] == "succeeded"


def test_interrupted_submission_is_found_not_submitted_again(cluster):
    def value():
        time.sleep(1)
        return "once"

    xpr = ExPyRe("interrupted", function=value)
    xpr.start(resources=ONE_CORE, system_name="remote", partial_node=True)
    # what the DB holds if the process had died right after sbatch accepted the job
    cluster.config.db.update(xpr.id, status="submitting", remote_id=None)
    again = ExPyRe("interrupted", function=value)
    assert again.id == xpr.id and again.status == "submitting"
    again.start(resources=ONE_CORE, system_name="remote", partial_node=True)
    assert again.remote_id == xpr.remote_id
    assert again.get_results(**FAST)[0] == "once"
    names = cluster.run(f"squeue --noheader --states=all --name={xpr.id} --format=%i").split()
    assert names == [xpr.remote_id]


def test_find_submitted_and_status_through_the_hooks(cluster):
    """The plugin's own hooks against the real Slurm: an unknown id, and a finished job's state
    resolved by scontrol once squeue no longer lists it (simulated by asking for it alone)."""
    from expyre import RemoteJob
    system = cluster.config.systems["remote"]
    states = system.status([RemoteJob("999999", "nowhere", "nobody")])
    assert states == {"999999": "other"}  # a successful query that does not know it: over
    xpr = ExPyRe("hooks", function=int, args=["3"])
    xpr.start(resources=ONE_CORE, system_name="remote", partial_node=True)
    xpr.get_results(**FAST)
    job = RemoteJob(xpr.remote_id, xpr.remote_dir, xpr.id)
    assert system.status([job, RemoteJob("999999", "nowhere", "nobody")]) == {xpr.remote_id: "done", "999999": "other"}
    assert expyre_slurm.SCHEDULER.resolve_unlisted(system.shell, [job]) == {xpr.remote_id: "done"}
