"""``expyre.Executor`` against the real Slurm of tests/services/20-slurm.sh, through the real sshd
as the ordinary account ``xpr-cluster`` (what a user on a laptop does).

The jobs are real Slurm jobs; duplicates would show up in Slurm itself: every job Slurm has seen
in the last ``MinJobAge`` (600 s here) is listed by ``squeue --states=all`` under its name, which
is the expyre job id.
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
from conftest import TESTS_DIR
from servicelib import require_service
from shells import CountingShell
from sshd_fixtures import ssh_client_setup, sshd  # noqa: F401  (pytest fixtures)
from test_slurm import Cluster, _clean_up, _variant, slurm_system

from expyre import Executor, ExPyReRemoteTraceback

pytestmark = pytest.mark.integration

ONE_CORE = {"max_time": "10m", "num_cores": 1, "partitions": "standard"}


@pytest.fixture
def cluster(request, expyre_config, isolated_home, monkeypatch):
    """The system ``remote``: the Slurm cluster through the sshd, as ``xpr-cluster``."""
    slurm = require_service("slurm")
    monkeypatch.setenv("EXPYRE_RETRY", "4 0.5")
    host, home, service = _variant(request, "ssh", monkeypatch, isolated_home)
    config = expyre_config({"remote": slurm_system(host, int(slurm["SLURM_CPUS"]))})
    cluster = Cluster("ssh", config, slurm, home, service)
    yield cluster
    _clean_up([cluster])


def executor(**options):
    return Executor("remote", resources=ONE_CORE, partial_node=True, check_interval=0.5, quiet=True, **options)


def slurm_jobs_named(cluster, ids):
    """How many jobs Slurm has (queued, running or recently finished) under each of ``ids``."""
    names = cluster.run("squeue --noheader --states=all --user=\"$USER\" --format=%j").split()
    wanted = set(ids)
    return Counter(name for name in names if name in wanted)


def test_map_in_order_with_one_squeue_per_poll(cluster, monkeypatch):
    from expyre import plugins
    polls, puts = [], []
    real_status, real_transfer = plugins.status, plugins.transfer

    def status(scheduler, jobs, shell):
        counting = CountingShell(shell, r"^[ \t]*squeue ")
        states = real_status(scheduler, jobs, counting)
        polls.append((len(jobs), counting.matches))
        return states

    def transfer(transport, shell, direction, pairs):
        if direction == "put":
            puts.append(len(pairs))
        return real_transfer(transport, shell, direction, pairs)

    monkeypatch.setattr(plugins, "status", status)
    monkeypatch.setattr(plugins, "transfer", transfer)

    def affine(x, a, b):
        return a * x + b

    start = time.monotonic()
    with executor() as ex:
        singles = ex.map(affine, range(40), [3] * 40, [1] * 40)
        chunked = ex.map(affine, range(200), [2] * 200, [-1] * 200, chunksize=10)
        assert list(singles) == [3 * x + 1 for x in range(40)]
        assert list(chunked) == [2 * x - 1 for x in range(200)]
    assert puts == [40, 20]                               # one transfer per map
    assert all(calls == 1 for _, calls in polls)          # every poll: one squeue for all jobs
    assert max(n for n, _ in polls) > 40                  # (jobs of both maps in one query)
    assert len(polls) <= (time.monotonic() - start) / 0.25 + 5  # at most one poll per poll interval
    ids = [row["id"] for row in cluster.config.db.jobs()]
    assert len(ids) == 60
    assert slurm_jobs_named(cluster, ids) == Counter(ids)  # Slurm has each job once


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


WORKFLOW = TESTS_DIR / "executor_workflow.py"


@pytest.mark.parametrize("die_at", ["submit:5", "submitted:8", "mapped"])
def test_map_killed_and_run_again_submits_each_job_once(cluster, tmp_path, die_at):
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
    ids = [row["id"] for row in cluster.config.db.jobs()]
    assert len(ids) == n and Counter(row["status"] for row in cluster.config.db.jobs()) == {"succeeded": n}
    assert slurm_jobs_named(cluster, ids) == Counter(ids)  # and Slurm was given each job once
    rundir = cluster.config.systems["remote"].remote_rundir
    assert int(cluster.run(f"ls -d {shlex.quote(rundir)}/*/ | wc -l").strip()) == n  # one directory per job
    if die_at == "mapped":
        assert "LOOKUPS 0" in second.stdout
