"""A user's workflow script, run as its own Python process, for the restart tests: it creates and
starts a job, and is killed right after the start when DIE_AFTER_START is set; run again, it must
re-attach to the same job and print its result."""
import os
import subprocess
import sys
import textwrap

RESTART_SCRIPT = textwrap.dedent("""
    import os, signal, sys, time
    from expyre.func import ExPyRe

    def slow_square(x):
        time.sleep(3)
        return x * x

    resources = {"max_time": "1h", "num_nodes": 1, "partitions": os.environ.get("PARTITION", "regular")}
    xpr = ExPyRe("restartable", function=slow_square, args=[12])
    xpr.start(resources=resources, system_name="remote")
    print("JOB", xpr.id, xpr.recreated, flush=True)
    if os.environ.get("DIE_AFTER_START"):
        os.kill(os.getpid(), signal.SIGKILL)
    result, stdout, stderr = xpr.get_results(check_interval=0.5, quiet=True)
    print("RESULT", result, flush=True)
""")


def run_script(path, timeout=180, **env):
    """Run a workflow script in a new Python process, with extra environment variables."""
    return subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, **env))


def check_restart(script_path, db, **env):
    """Kill the workflow after it started its job, run it again, and check it re-attached.

    Returns the job id.
    """
    script_path.write_text(RESTART_SCRIPT)
    first = run_script(script_path, DIE_AFTER_START="1", **env)
    assert first.returncode == -9, first.stderr
    _, job_id, recreated = [line for line in first.stdout.splitlines() if line.startswith("JOB")][0].split()
    assert recreated == "False"
    assert db.get(job_id)["status"] in ("submitted", "started")
    second = run_script(script_path, **env)
    assert second.returncode == 0, second.stderr
    assert f"JOB {job_id} True" in second.stdout and "RESULT 144" in second.stdout
    assert [row["id"] for row in db.jobs()] == [job_id]
    assert db.get(job_id)["status"] == "succeeded"
    return job_id
