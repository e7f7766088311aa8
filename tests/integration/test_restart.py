"""A script killed while its job runs is run again and re-attaches to the same job."""
import os
import subprocess
import sys
import textwrap

import pytest
from conftest import direct_system

pytestmark = pytest.mark.integration

SCRIPT = textwrap.dedent("""
    import os, signal, sys, time
    from expyre.func import ExPyRe

    def slow_square(x):
        time.sleep(3)
        return x * x

    xpr = ExPyRe("restartable", function=slow_square, args=[12])
    xpr.start(resources={"max_time": "1h", "num_nodes": 1, "partitions": "regular"}, system_name="remote")
    print("JOB", xpr.id, xpr.recreated, flush=True)
    if os.environ.get("DIE_AFTER_START"):
        os.kill(os.getpid(), signal.SIGKILL)
    result, stdout, stderr = xpr.get_results(check_interval=0.5, quiet=True)
    print("RESULT", result, flush=True)
""")


def run_script(path, **env):
    return subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, **env))


@pytest.mark.parametrize("rundir", [None, "cluster_rundir"])
def test_killed_script_reattaches_in_second_process(expyre_config, isolated_home, tmp_path, rundir):
    config = expyre_config({"remote": direct_system(**({"rundir": rundir} if rundir else {}))})
    script = tmp_path / "workflow.py"
    script.write_text(SCRIPT)

    first = run_script(script, DIE_AFTER_START="1")
    assert first.returncode == -9, first.stderr
    job_line = [line for line in first.stdout.splitlines() if line.startswith("JOB")][0]
    _, job_id, recreated = job_line.split()
    assert recreated == "False"
    row = config.db.get(job_id)
    assert row["status"] in ("submitted", "started")
    stage_dirs_before = sorted(p.name for p in config.local_stage_dir.glob("run_*"))

    second = run_script(script)
    assert second.returncode == 0, second.stderr
    assert f"JOB {job_id} True" in second.stdout
    assert "RESULT 144" in second.stdout
    assert sorted(p.name for p in config.local_stage_dir.glob("run_*")) == stage_dirs_before
    assert [r["id"] for r in config.db.jobs()] == [job_id]
    assert config.db.get(job_id)["status"] == "succeeded"


def test_interrupted_submission_is_recovered_not_duplicated(expyre_config, tmp_path):
    """A process that died between submitting and recording the remote id (status 'submitting')."""
    config = expyre_config({"remote": direct_system(rundir="cluster_rundir")})
    from expyre.func import ExPyRe

    def value():
        return "once"

    xpr = ExPyRe("interrupted", function=value)
    xpr.start(resources={"max_time": "1h", "num_nodes": 1, "partitions": "regular"}, system_name="remote")
    # what the DB holds if the process had died right after the scheduler accepted the job
    config.db.update(xpr.id, status="submitting", remote_id=None)
    again = ExPyRe("interrupted", function=value)
    assert again.id == xpr.id and again.status == "submitting"
    again.start(resources={"max_time": "1h", "num_nodes": 1, "partitions": "regular"}, system_name="remote")
    assert again.remote_id == xpr.remote_id
    assert config.db.get(xpr.id)["status"] == "submitted"
    assert again.get_results(check_interval=0.2, quiet=True)[0] == "once"
