"""``expyre.Executor`` against the real Slurm of tests/services/20-slurm.sh, through the real sshd
as the ordinary account ``xpr-cluster`` (what a user on a laptop does).

The jobs are real Slurm jobs: calls started together go as Slurm job arrays, one task per call.
Duplicates would show up in Slurm itself: every job and array task Slurm has seen in the last
``MinJobAge`` (600 s here) is listed by ``squeue --array --states=all``, a single job under the
expyre job id and an array under its first task's id with ``_array``.
"""
import concurrent.futures
import os
import shlex
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import TESTS_DIR
from servicelib import require_service
from shells import CountingShell
from sshd_fixtures import ssh_client_setup, sshd  # noqa: F401  (pytest fixtures)
from test_slurm import Cluster, _clean_up, _variant, slurm_system

from expyre import Executor, ExPyReJobDiedError, ExPyReRemoteTraceback, arrays
from expyre.arrays import array_name
from expyre.cli import cli
from expyre_slurm.parse import job_name

pytestmark = pytest.mark.integration

ONE_CORE = {"max_time": "10m", "num_cores": 1, "partitions": "standard"}


@pytest.fixture
def cluster(request, expyre_config, isolated_home, monkeypatch):
    """The system ``remote``: the Slurm cluster through the sshd, as ``xpr-cluster``."""
    slurm = require_service("slurm")
    monkeypatch.setenv("EXPYRE_RETRY", "4 0.5")
    host, home, service = _variant(request, "ssh", monkeypatch, isolated_home)
    system = slurm_system(host, int(slurm["SLURM_CPUS"]))
    system.update(getattr(request, "param", {}))  # e.g. {"slurm": {"max_array_size": 5}}
    config = expyre_config({"remote": system})
    cluster = Cluster("ssh", config, slurm, home, service)
    yield cluster
    _clean_up([cluster])


def executor(**options):
    return Executor("remote", resources=ONE_CORE, partial_node=True, check_interval=0.5, quiet=True, **options)


def slurm_tasks(cluster, rows):
    """The Slurm ids (jobs and array tasks, each on its own) of every job or array Slurm has
    (queued, running or recently finished) under the name of one of the jobs ``rows`` or of an
    array named after one of them, with how often each is listed."""
    names = {job_name(row["id"]) for row in rows} | {job_name(array_name(row["id"])) for row in rows}
    lines = cluster.run("squeue --array --noheader --states=all --user=\"$USER\" --format=%i@%j").split()
    return Counter(i for i, _, name in (line.partition("@") for line in lines) if name in names)


def arrays_of(rows):
    """The Slurm array ids of ``rows`` (remote ids ``<array>_<task>``), with their task counts."""
    return Counter(row["remote_id"].split("_")[0] for row in rows)


def test_map_in_order_with_one_squeue_per_poll(cluster, monkeypatch):
    from expyre import plugins
    polls, puts = [], []
    real_status, real_transfer, real_transfer_then_run = plugins.status, plugins.transfer, plugins.transfer_then_run

    def status(scheduler, jobs, shell):
        counting = CountingShell(shell, r"^[ \t]*squeue ")
        states = real_status(scheduler, jobs, counting)
        polls.append((len(jobs), counting.matches))
        return states

    def transfer(transport, shell, direction, pairs):
        if direction == "put":
            puts.append(len(pairs))
        return real_transfer(transport, shell, direction, pairs)

    def transfer_then_run(transport, shell, pairs, command, timeout=None):
        puts.append(len(pairs))
        return real_transfer_then_run(transport, shell, pairs, command, timeout)

    monkeypatch.setattr(plugins, "status", status)
    monkeypatch.setattr(plugins, "transfer", transfer)
    monkeypatch.setattr(plugins, "transfer_then_run", transfer_then_run)

    def affine(x, a, b):
        return a * x + b

    start = time.monotonic()
    with executor() as ex:
        singles = ex.map(affine, range(40), [3] * 40, [1] * 40)
        chunked = ex.map(affine, range(200), [2] * 200, [-1] * 200, chunksize=10)
        assert list(singles) == [3 * x + 1 for x in range(40)]
        assert list(chunked) == [2 * x - 1 for x in range(200)]
    # one copy per map, with its submission: the array's first directory, holding the others' files
    assert puts == [1, 1]
    assert all(calls == 1 for _, calls in polls)          # every poll: one squeue for all jobs
    assert max(n for n, _ in polls) > 40                  # (jobs of both maps in one query)
    assert len(polls) <= (time.monotonic() - start) / 0.25 + 5  # at most one poll per poll interval
    rows = list(cluster.config.db.jobs())
    assert len(rows) == 60
    assert sorted(arrays_of(rows).values()) == [20, 40]    # one array per map, one task per job
    listed = CliRunner().invoke(cli, ["ls"]).output.splitlines()
    assert len(listed) == 3 and "array of 40: 40 succeeded" in listed[1] and "array of 20: 20" in listed[2]
    assert len(CliRunner().invoke(cli, ["ls", "-l"]).output.splitlines()) == 61  # -l: a row per task
    assert slurm_tasks(cluster, rows) == Counter(row["remote_id"] for row in rows)  # each task once


def test_exception_as_completed_and_cancel(cluster):
    class ModelError(RuntimeError):
        pass

    def model(x):
        if x < 0:
            raise ModelError(f"negative input {x}")
        time.sleep(x)
        return x

    with executor() as ex:
        with ex.batch():
            long = ex.submit(model, 600)
            failing = ex.submit(model, -1)
            quick = [ex.submit(model, 0), ex.submit(model, 1)]
        finished = []
        for future in concurrent.futures.as_completed([failing, *quick], timeout=180):
            finished.append(future)
        assert set(finished) == {failing, *quick}
        exc = failing.exception()
        assert type(exc) is ModelError and "negative input -1" in str(exc)
        assert isinstance(exc.__cause__, ExPyReRemoteTraceback)
        assert sorted(f.result() for f in quick) == [0, 1]
        assert long.remote_id is not None and not long.done()
        assert long.cancel() and long.cancelled()
        done, not_done = concurrent.futures.wait([long], timeout=5)
        assert long in done
    deadline = time.monotonic() + 60
    while cluster.scontrol(long.remote_id)["JobState"] not in ("CANCELLED",) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert cluster.scontrol(long.remote_id)["JobState"] == "CANCELLED"
    assert cluster.scontrol(failing.remote_id)["JobState"] == "FAILED"


def test_array_max_parallel_and_cancel_of_every_task(cluster):
    def nap(seconds):
        time.sleep(seconds)
        return seconds

    with executor(max_parallel=1) as ex:
        with ex.batch():
            futures = [ex.submit(nap, 600 + n) for n in range(3)]
        deadline = time.monotonic() + 60
        while any(f.remote_id is None for f in futures) and time.monotonic() < deadline:
            time.sleep(0.2)
        tasks = [f.remote_id for f in futures]
        assert len({t.split("_")[0] for t in tasks}) == 1 and [t.split("_")[1] for t in tasks] == ["0", "1", "2"]
        # two cores, but at most one task at a time: Slurm holds the others back for the array's limit
        reason = ""
        while "JobArrayTaskLimit" not in reason and time.monotonic() < deadline:
            time.sleep(0.5)
            reason = cluster.run(f"squeue --array --noheader --jobs={tasks[2]} --format=%r")
        assert "JobArrayTaskLimit" in reason
        assert futures[0].cancel()                       # one task
        array = arrays.read_task_marker(futures[1].xpr.stage_dir).array_id
        listed = CliRunner().invoke(cli, ["ls", "-i", array])
        assert listed.exit_code == 0 and "array of 3: " in listed.output, listed.output
        assert len(listed.output.strip().splitlines()) == 2  # a header and the array's row
        cancelled = CliRunner().invoke(cli, ["cancel", "-y", "-i", array])  # the rest of the array
        assert cancelled.exit_code == 0, cancelled.output
        assert {f.id for f in futures[1:]} <= {line.split()[1] for line in cancelled.output.splitlines()}
        assert all(isinstance(f.exception(timeout=120), ExPyReJobDiedError) for f in futures[1:])

    def slurm_says(task):  # a waiting task cancelled on its own leaves no record: "Job N_T not found"
        text = cluster.run(f"scontrol --oneliner show job {task} 2>&1 || true")
        return "not found" if f"Job {task} not found" in text else text.split("JobState=")[1].split()[0]

    deadline = time.monotonic() + 60
    while any(slurm_says(t) not in ("CANCELLED", "not found") for t in tasks) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert {slurm_says(t) for t in tasks} <= {"CANCELLED", "not found"}
    assert not cluster.run(f"squeue --array --noheader --states=PENDING,RUNNING --jobs={','.join(tasks)} "
                           "--format=%i 2>&1 || true").split()           # none of them waits or runs


WORKFLOW = TESTS_DIR / "executor_workflow.py"


@pytest.mark.parametrize("cluster", [{"slurm": {"max_array_size": 5}}], indirect=True)
@pytest.mark.parametrize("die_at", ["submit:2", "submitted:2", "mapped"])
def test_map_killed_and_run_again_submits_each_job_once(cluster, tmp_path, die_at):
    """12 calls in arrays of at most 5 (5, 5, 2): killed before or right after the second array's
    submission, or after map returned, then run again."""
    n = 12
    run_log = f"executor_runs_{uuid.uuid4().hex}.log"   # in the cluster account's home
    env = dict(os.environ, RUN_LOG=f"~/{run_log}", N_CALLS=str(n), PAUSE="2", PARTITION="standard")
    try:
        first = subprocess.run([sys.executable, str(WORKFLOW)], capture_output=True, text=True, timeout=300,
                               env=dict(env, DIE_AT=die_at), cwd=Path.cwd())
        assert first.returncode == -9, first.stderr
        second = subprocess.run([sys.executable, str(WORKFLOW)], capture_output=True, text=True, timeout=600,
                                env=env, cwd=Path.cwd())
        assert second.returncode == 0, second.stderr
        assert second.stdout.split("RESULTS\n")[1].split() == [str(x * x) for x in range(n)]
        ran = Counter(cluster.run(f"cat ~/{run_log}").split())
    finally:
        cluster.run(f"rm -f ~/{run_log}")
    assert ran == Counter(str(x) for x in range(n))        # every call ran exactly once
    rows = list(cluster.config.db.jobs())
    assert len(rows) == n and Counter(row["status"] for row in rows) == {"succeeded": n}
    assert sorted(arrays_of(rows).values()) == [2, 5, 5]  # split at the configured maximum
    assert slurm_tasks(cluster, rows) == Counter(row["remote_id"] for row in rows)  # each task given once
    rundir = cluster.config.systems["remote"].remote_rundir
    assert int(cluster.run(f"ls -d {shlex.quote(rundir)}/*/ | wc -l").strip()) == n  # one directory per job
    if die_at == "mapped":
        assert "LOOKUPS 0" in second.stdout
    # the interrupted arrays (the second and the third, both "submitting") are each looked up once
    assert f"FINDS {0 if die_at == 'mapped' else 2}" in second.stdout
