"""Polling load under many jobs: 200 jobs on the real Slurm, gathered one after the other with
``get_results`` as a user's loop does, while a wrapper earlier on the submitting account's PATH
counts every ``squeue`` that reaches the host.

ExPyRe 0.1.6 made 24 squeue calls for this work (the first version of expyre 372); the goal is at
most twice the original's count, with no slower gathering.
"""
# ruff: noqa: F811
import os
import time

import pytest
from servicelib import require_service
from sshd_fixtures import ssh_client_setup, sshd  # noqa: F401  (fixtures)

from expyre.func import ExPyRe
from expyre.transports import ssh as ssh_transport

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: Jobs in the run (``EXPYRE_TEST_POLL_JOBS`` makes it smaller for a quick look).
N_JOBS = int(os.environ.get("EXPYRE_TEST_POLL_JOBS", "200"))
#: squeue calls ExPyRe 0.1.6 made for 200 jobs gathered this way.
ORIGINAL_SQUEUE_CALLS = 24
RUNDIR = "run_expyre_polling"
LOG = "squeue_calls.log"
WRAPPER = f"""#!/bin/sh
echo "$(date +%s.%N) $*" >> "$HOME/{LOG}"
exec /usr/bin/squeue "$@"
"""


@pytest.fixture
def counted_squeue(sshd):
    """A squeue wrapper first on the account's PATH (its venv's bin) that logs every call."""
    wrapper = "venv/bin/squeue"
    sshd.run_as_user(f"cat > {wrapper} <<'EOF'\n{WRAPPER}EOF\nchmod 755 {wrapper}; rm -f {LOG}", check=True)
    assert sshd.run_as_user("command -v squeue").stdout.strip().endswith(wrapper)

    def calls():
        result = sshd.run_as_user(f"cat {LOG} 2>/dev/null || true")
        return [line for line in result.stdout.splitlines() if line.strip()]

    yield calls
    sshd.run_as_user(f"rm -f {wrapper} {LOG}; rm -rf {RUNDIR}")


def test_gathering_200_jobs_makes_few_squeue_calls(expyre_config, ssh_client_setup, sshd, counted_squeue):
    slurm = require_service("slurm")
    ssh_transport.close_all()
    cpus = int(slurm["SLURM_CPUS"])
    expyre_config({"remote": {"host": ssh_client_setup, "scheduler": "slurm", "rundir": RUNDIR,
                              "partitions": {"standard": {"num_cores": cpus, "max_time": "1h", "max_mem": "1GB"}}}})
    started = time.monotonic()
    xprs = [ExPyRe("load", function=pow, args=[i, 2]) for i in range(N_JOBS)]
    for xpr in xprs:
        xpr.start(resources={"max_time": "10m", "num_cores": 1, "partitions": "standard"}, system_name="remote",
                  partial_node=True)
    submitted = time.monotonic()
    values = [xpr.get_results(quiet=True)[0] for xpr in xprs]
    gathered = time.monotonic()
    assert values == [i * i for i in range(N_JOBS)]

    calls = counted_squeue()
    status_queries = [c for c in calls if "--jobs=" in c]
    print(f"\n{N_JOBS} jobs: submitted in {submitted - started:.1f} s, gathered in {gathered - submitted:.1f} s, "
          f"{len(calls)} squeue calls ({len(status_queries)} status queries)")
    assert len(calls) <= 2 * ORIGINAL_SQUEUE_CALLS * max(1, N_JOBS / 200)
    ssh_transport.close_all()
