"""Exactly one Slurm job per expyre job when the driving script is killed while a slow sbatch
is still on its way (issue 13, item 5), on the real Slurm through the private sshd.

A wrapper ``sbatch`` that sleeps first is put earlier on the cluster account's PATH (in its
``~/venv/bin``) for the duration of the test. The driving script is killed with SIGKILL at
several points of the submission; a second run of the same script must neither submit again
nor lose the job: the scheduler has exactly one job of that name every time.
"""
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from servicelib import require_service

from expyre import batch
from expyre.testing import write_expyre_config

pytestmark = pytest.mark.integration

SLOW = 6
RUNDIR = "run_expyre_exactly_once"
DRIVER = textwrap.dedent("""
    import sys
    from expyre.func import ExPyRe
    xpr = ExPyRe(sys.argv[1], function=int, args=["21"])
    xpr.start(resources={"max_time": "10m", "num_cores": 1, "partitions": "standard"}, system_name="remote",
              partial_node=True)
    print("RESULT", xpr.get_results(timeout=240, check_interval=0.5, quiet=True)[0], xpr.remote_id, xpr.id, flush=True)
""")


@pytest.fixture
def slow_sbatch(sshd):
    """A wrapper sbatch, sleeping SLOW seconds first, first on the account's PATH; removed after."""
    real = sshd.run_as_user("command -v sbatch", check=True).stdout.strip()
    wrapper = f'#!/bin/sh\nsleep {SLOW}\nexec {real} "$@"\n'
    sshd.run_as_user(f"cat > ~/venv/bin/sbatch.tmp <<'EOF'\n{wrapper}EOF\n"
                     "chmod +x ~/venv/bin/sbatch.tmp && mv ~/venv/bin/sbatch.tmp ~/venv/bin/sbatch", check=True)
    try:
        assert sshd.run_as_user("command -v sbatch", check=True).stdout.strip().endswith("venv/bin/sbatch")
        yield SLOW
    finally:
        sshd.run_as_user("rm -f ~/venv/bin/sbatch", check=True)
        sshd.run_as_user("squeue -h -u \"$USER\" -o '%i %j' | awk '$2 ~ /^slow_/ {print $1}' | xargs -r scancel; "
                         f"rm -rf ~/{RUNDIR}")


def _lock_state(sshd, name):
    """``none``, ``locked`` (submit command running) or ``ended`` (its record written)."""
    out = sshd.run_as_user(f"for d in $(find ~/{RUNDIR} -maxdepth 3 -type d -name 'run_{name}_*' 2>/dev/null); do "
                           f"if [ -e \"$d/{batch.SUBMIT_LOCK}\" ]; then read -r w _ < \"$d/{batch.SUBMIT_LOCK}\"; "
                           "if [ \"$w\" = done ]; then echo ended; else echo locked; fi; exit; fi; done; "
                           "echo none").stdout
    return out.strip().splitlines()[-1] if out.strip() else "none"


@pytest.mark.parametrize("kill_at", ["lock-taken", "sbatch-half-way", "sbatch-ended"])
def test_kill_during_a_slow_submission_gives_exactly_one_job(kill_at, sshd, ssh_client_setup, slow_sbatch,
                                                              tmp_path, isolated_home):
    slurm = require_service("slurm")
    root = tmp_path / "root"
    write_expyre_config(root, {"remote": {
        "host": ssh_client_setup, "scheduler": "slurm", "rundir": RUNDIR,
        "partitions": {"standard": {"num_cores": int(slurm["SLURM_CPUS"]), "max_time": "1h"}}}})
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    name = f"slow_{kill_at.replace('-', '_')}"
    env = dict(os.environ, EXPYRE_ROOT=str(root), EXPYRE_RETRY="3 0.5")
    first = subprocess.Popen([sys.executable, str(script), name], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    wanted = "ended" if kill_at == "sbatch-ended" else "locked"
    while _lock_state(sshd, name) != wanted:
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()
        time.sleep(0.2)
    if kill_at == "sbatch-half-way":
        time.sleep(SLOW / 2)
    first.send_signal(signal.SIGKILL)
    first.wait()
    second = subprocess.run([sys.executable, str(script), name], env=env, capture_output=True, text=True,
                            timeout=300)
    assert second.returncode == 0, second.stderr
    result_line = [line for line in second.stdout.splitlines() if line.startswith("RESULT")][0]
    _, value, remote_id, job_id = result_line.split()
    assert value == "21"
    # the Slurm job name is the expyre id (expyre.batch.job_name keeps it: every character is safe)
    listing = sshd.run_as_user("squeue -h --states=all -u \"$USER\" -o '%i %j'", check=True).stdout
    jobs = [line.split()[0] for line in listing.splitlines() if line.split()[1:] == [job_id]]
    assert jobs == [remote_id], f"jobs in Slurm for {name}: {jobs}"
