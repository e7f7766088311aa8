"""Politeness across processes: five scripts gathering 20 Slurm jobs each at once make the status
queries that one script would make.

The jobs run on the real Slurm, reached over SSH as the account of tests/services/15-sshd-mfa.sh
(xpr-mfa: key plus one-time code, each script logs in once with ``ssh.mfa_command``). Once all
100 jobs have finished, a ``squeue`` wrapper in a directory of this test's own is put first on
the account's PATH (through ``~/.expyre-test-path-prefix``, which the account's shells read),
and five processes gather their jobs at the same moment. One process gathering finished jobs
makes exactly one status query; the five together must make no more.
"""
# ruff: noqa: F811
import os
import secrets
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from mfa_fixtures import mfa_host, mfa_sshd  # noqa: F401  (fixtures)
from servicelib import require_service

from expyre.func import ExPyRe
from expyre.transports import ssh as ssh_transport

pytestmark = [pytest.mark.integration, pytest.mark.slow]

N_PROCESSES = 5
JOBS_EACH = 20
RUNDIR = "run_expyre_polite"
PREFIX_FILE = ".expyre-test-path-prefix"

GATHER = """
    import sys, time
    from pathlib import Path
    from expyre import politeness
    from expyre.func import ExPyRe

    group, go = int(sys.argv[1]), Path(sys.argv[2])
    xprs = [ExPyRe(f"polite{group}", function=pow, args=[i, group]) for i in range(int(sys.argv[3]))]
    assert all(xpr.status == "submitted" for xpr in xprs), [xpr.status for xpr in xprs]
    print("ready", flush=True)
    while not go.exists():
        time.sleep(0.01)
    values = [xpr.get_results(check_interval=1, quiet=True)[0] for xpr in xprs]
    assert values == [i ** group for i in range(len(xprs))], values
    print("queries", politeness.queries_made, flush=True)
"""


@pytest.fixture
def counted_squeue(mfa_sshd):
    """A squeue wrapper that logs each call, first on xpr-mfa's PATH for this test only."""
    wrap_dir = f"xpr-test-squeue-{secrets.token_hex(4)}"
    mfa_sshd.run_as_user(f"mkdir -p {wrap_dir}")

    def install():
        script = f'#!/bin/sh\necho "$*" >> "$HOME/{wrap_dir}/calls.log"\nexec /usr/bin/squeue "$@"\n'
        result = mfa_sshd.run_as_user(f"cat > {wrap_dir}/squeue <<'EOF'\n{script}EOF\n"
                                      f"chmod 755 {wrap_dir}/squeue; echo \"$HOME/{wrap_dir}\" > {PREFIX_FILE}")
        assert result.returncode == 0, result.stderr
        assert mfa_sshd.run_as_user("command -v squeue").stdout.strip().endswith(f"{wrap_dir}/squeue")

    def calls():
        result = mfa_sshd.run_as_user(f"cat {wrap_dir}/calls.log 2>/dev/null || true")
        return [line for line in result.stdout.splitlines() if line.strip()]

    yield install, calls
    subprocess.run(["scancel", "-u", mfa_sshd.user], capture_output=True, timeout=60)
    mfa_sshd.run_as_user(f"rm -rf {wrap_dir} {PREFIX_FILE}")
    assert "xpr-test-squeue" not in mfa_sshd.run_as_user("command -v squeue").stdout


def _wait_until_finished(user: str, timeout: float = 600) -> None:
    """Until Slurm shows no pending or running job of ``user`` (root's squeue: not counted)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(["squeue", "-h", "-u", user, "-t", "PD,R,CG,CF"], capture_output=True, text=True,
                             timeout=60).stdout
        if not out.strip():
            return
        time.sleep(1)
    raise TimeoutError(f"jobs of {user} still in Slurm after {timeout} s")


def test_five_processes_make_the_status_queries_of_one(expyre_config, mfa_host, mfa_sshd, counted_squeue):
    slurm = require_service("slurm")
    install_wrapper, squeue_calls = counted_squeue
    expyre_config({"polite": {
        "host": mfa_host, "scheduler": "slurm", "rundir": RUNDIR,
        "partitions": {"standard": {"num_cores": int(slurm["SLURM_CPUS"]), "max_time": "1h", "max_mem": "1GB"}},
        "ssh": {"mfa_command": mfa_sshd.code_command},
        # one query per 10 s, by all processes together: wide enough for five to start
        "limits": {"status_queries_per_minute": 6}}})
    started = time.monotonic()
    for group in range(N_PROCESSES):
        for i in range(JOBS_EACH):
            ExPyRe(f"polite{group}", function=pow, args=[i, group]).start(
                resources={"max_time": "10m", "num_cores": 1, "partitions": "standard"}, system_name="polite",
                partial_node=True)
    ssh_transport.close_all()
    submitted = time.monotonic()
    _wait_until_finished(mfa_sshd.user)
    finished = time.monotonic()
    install_wrapper()

    go = Path(os.environ["HOME"]) / "go"
    procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(GATHER), str(group), str(go), str(JOBS_EACH)],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=dict(os.environ, EXPYRE_SYS="polite"))
             for group in range(N_PROCESSES)]
    try:
        for proc in procs:
            assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        go.touch()
        outputs = [proc.communicate(timeout=300) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for proc, (_, err) in zip(procs, outputs):
        assert proc.returncode == 0, err
    made = [int(out.split()[-1]) for out, _ in outputs]
    status_queries = [call for call in squeue_calls() if "--jobs=" in call]
    print(f"\n{N_PROCESSES} processes x {JOBS_EACH} jobs: submitted in {submitted - started:.1f} s, ran in "
          f"{finished - submitted:.1f} s more, gathered in {time.monotonic() - finished:.1f} s; status queries "
          f"per process {made}, squeue status calls on the host {len(status_queries)}")
    # one process gathering these finished jobs makes one query; five together make no more
    assert len(status_queries) == 1 and sum(made) == 1
    # and that one query asked about every process's jobs
    assert len(status_queries[0].split("--jobs=")[1].split()[0].split(",")) == N_PROCESSES * JOBS_EACH
