"""The markers a job script leaves, run with the real bash: how the runner ended decides them.

The "runner" here is a shell command standing in for Python (``python_cmd``), so that each way of
ending can be produced for real: a clean exit without a result, an error status, and death by
the signals a scheduler sends when it cancels a job or it runs out of time or memory.
"""
import shlex
import subprocess

import pytest

from expyre import jobfiles, jobscript


def run_job_script(tmp_path, runner_command: str) -> int:
    script = jobscript.job_script(
        script_exec="/bin/bash", header=[], remote_dir=str(tmp_path),
        node_dict={"num_nodes": 1, "num_cores": 1, "num_cores_per_node": 1},
        scheduler_env=[], system_commands=[], env_lines=[], pre_run_commands=[],
        python_cmd=f"sh -c {shlex.quote(runner_command)}", post_run_commands=[])
    return subprocess.run(["bash", "-c", script], timeout=30).returncode


def markers(tmp_path) -> set:
    return {name for name in (jobfiles.SUCCEEDED, jobfiles.ERROR) if (tmp_path / name).exists()}


@pytest.mark.parametrize("signal_name, status", [("TERM", 143), ("KILL", 137)])
def test_runner_killed_by_the_scheduler_leaves_no_marker(tmp_path, signal_name, status):
    # the job then reads as died (with the scheduler's state), not as failed by its own code
    assert run_job_script(tmp_path, f"kill -{signal_name} $$") == status
    assert (tmp_path / jobfiles.STARTED).exists()
    assert markers(tmp_path) == set()


def test_runner_error_status_is_a_failure_with_its_status(tmp_path):
    assert run_job_script(tmp_path, "exit 3") == 3
    assert markers(tmp_path) == {jobfiles.ERROR}
    assert (tmp_path / jobfiles.ERROR).read_text() == "kind: exit\nthe Python runner exited with status 3\n"


def test_runner_killed_by_another_signal_is_a_failure(tmp_path):
    # a crash (here SIGSEGV) is the job's own failure, and the status says which signal
    assert run_job_script(tmp_path, "kill -SEGV $$") == 139
    assert (tmp_path / jobfiles.ERROR).read_text() == "kind: exit\nthe Python runner exited with status 139\n"


def test_runner_exiting_cleanly_without_a_result_is_a_failure(tmp_path):
    assert run_job_script(tmp_path, "true") == 0
    assert "wrote no result" in (tmp_path / jobfiles.ERROR).read_text()
