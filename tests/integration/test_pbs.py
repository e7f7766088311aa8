"""Jobs through the PBS plugin against real PBS commands: Slurm's PBS/Torque front end.

No PBS Professional, OpenPBS or Torque server is packaged for Debian 12. tests/services/40-pbs.sh
unpacks Debian's ``slurm-wlm-torque`` (Slurm's own ``qsub``, ``qstat``, ``qdel``, ``qhold``,
``qrls``, driving the real Slurm of tests/services/20-slurm.sh) into its own prefix, and the
ordinary account ``xpr-pbs``, with that prefix first on its PATH, plays the PBS site; the tests
reach it as the host ``pbs-cluster`` through the real sshd of tests/services/10-sshd.sh with the
``ssh`` transport, as a user would.

What this covers: the plugin's real command lines (``qsub`` in the job directory, one
``qstat -f -1`` for all jobs per poll, ``qdel``), the Torque dialect as detected from the front
end (it rejects ``qstat --version`` with its usage), its ``qstat -f`` records (Q, R, C), its
silence about jobs it no longer knows (exit status 153, nothing printed), the ``#PBS`` header as
the front end's ``sbatch`` reads it (``-N``, ``-q``, ``-l walltime``, ``-l nodes=N:ppn=P``,
``-r n``), cancelling, and a restart across two processes (including a submission whose answer
was lost, found again by job name).

What the front end does not do, so these tests cannot cover it: it ignores ``#PBS -o/-e`` (its
qsub passes its own ``-o``/``-e``, so the job's output goes to ``_expyre_job.sh.o<id>`` and
``.e<id>``, not ``job.<id>.stdout``; the tests check that the plugin works anyway); it prints no
``exit_status`` (a finished job is ``other``, and expyre's own marker files tell the outcome);
it shows a held job as Q; it has no ``qstat -x``, no ``-F json`` and no ``qselect`` (PBS
Professional / OpenPBS, covered by tests/unit/test_pbs_parse.py on documented output); it sets
no ``PBS_NODEFILE``/``PBS_NUM_PPN`` (tests/unit/test_pbs_header.py runs the ``EXPYRE_NUM_*`` lines).
"""
# ruff: noqa: F811
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from servicelib import require_service
from sshd_fixtures import ssh_client_setup, sshd  # noqa: F401  (pytest fixtures)

import expyre_pbs
from expyre import ConnectionLostError, ExPyReJobDiedError
from expyre.func import ExPyRe
from expyre.transports import ssh as ssh_transport

pytestmark = pytest.mark.integration

HOST = "pbs-cluster"
FAST = {"check_interval": 0.5, "quiet": True, "timeout": 180}
SEED_RESOURCES = {"max_time": "1h", "num_nodes": 1, "partitions": "regular"}
ONE_CORE = {"max_time": "10m", "num_cores": 1, "partitions": "regular"}


class PBSSite:
    """The account playing the PBS site: commands run as it in a login shell (for assertions)."""

    def __init__(self, values):
        self.user = values["PBS_USER"]
        self.home = values["PBS_HOME"]
        self.queue = values["PBS_QUEUE"]
        self.bin = values["PBS_BIN"]

    def run(self, command, check=True):
        return subprocess.run(["runuser", "-l", self.user, "-c", command], stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=120, check=check)

    def qstat(self, remote_id):
        """The job's attributes from the front end's ``qstat -f``."""
        out = self.run(f"qstat -f -1 {remote_id}", check=False).stdout
        fields = {}
        for line in out.splitlines():
            key, sep, value = line.strip().partition(" = ")
            if sep:
                fields[key] = value
        return fields

    def clean(self):
        self.run("squeue -h -u \"$USER\" -o %i | xargs -r qdel >/dev/null 2>&1; rm -rf ~/run_expyre", check=False)


@pytest.fixture(scope="module")
def site():
    values = require_service("pbs")
    return PBSSite(values)


@pytest.fixture
def pbs_host(ssh_client_setup, sshd, site, isolated_home, monkeypatch):
    """``Host pbs-cluster`` (the account xpr-pbs on the private sshd) in the test's ~/.ssh/config."""
    config = isolated_home / ".ssh" / "config"
    known_hosts = isolated_home / ".ssh" / "known_hosts"
    config.write_text(config.read_text() + f"\nHost {HOST}\n    HostName {sshd.host}\n    Port {sshd.port}\n"
                      f"    User {site.user}\n    IdentityFile {sshd.client_key}\n    IdentitiesOnly yes\n"
                      f"    UserKnownHostsFile {known_hosts}\n")
    monkeypatch.setenv("EXPYRE_RETRY", "4 0.5")
    ssh_transport.close_all()
    yield HOST
    ssh_transport.close_all()
    site.clean()


def pbs_system(site, **overrides):
    system = {"host": HOST, "scheduler": "pbs",
              "header": ["#PBS -l nodes={num_nodes}:ppn={num_cores_per_node}"],
              "partitions": {"regular": {"num_cores": 2, "max_time": "24h", "max_mem": "1GB",
                                         "partition": site.queue}}}
    system.update(overrides)
    return system


@pytest.fixture
def remote(expyre_config, pbs_host, site):
    return expyre_config({"remote": pbs_system(site)})


def run_seed_example(system_name="remote"):
    array_to_sum = np.ones((100, 50))
    xpr = ExPyRe("test_task", function=np.sum, args=[array_to_sum], kwargs={"axis": 1})
    res = {"max_time": "1h", "num_nodes": 1, "partitions": "regular"}
    xpr.start(resources=res, system_name=system_name)
    array_sum, stdout, stderr = xpr.get_results(**FAST)
    assert np.max(np.abs(array_sum - [50.0] * 100)) == 0.0
    xpr.mark_processed()
    return xpr


def test_seed_example_end_to_end(remote, site):
    opened = ssh_transport.connections_opened
    xpr = run_seed_example()
    row = remote.db.get(xpr.id)
    assert row["remote_id"].isdigit()  # the front end's qsub prints the bare Slurm job id
    remote_dir = f"{site.home}/{row['remote_dir']}"
    listing = site.run(f"ls -A {remote_dir}").stdout.split()
    assert "_expyre_job_succeeded" in listing
    # the header as the front end's sbatch read it: name, queue, wall time, node request
    fields = site.qstat(row["remote_id"])
    assert fields["Job_Name"] == expyre_pbs.names.job_name(xpr.id)
    assert fields["queue"] == site.queue and fields["Resource_List.walltime"] == "01:00:00"
    assert fields["Resource_List.ncpus"] == "2" and fields["job_state"] == "C"
    assert fields["Job_Owner"].startswith(f"{site.user}@")
    # the front end ignores #PBS -o/-e: its own output file names, not job.<id>.stdout
    assert f"_expyre_job.sh.o{row['remote_id']}" in listing and f"job.{xpr.id}.stdout" not in listing
    script = site.run(f"cat {remote_dir}/_expyre_job.sh").stdout.splitlines()
    assert script[1:10] == [f"#PBS -N {expyre_pbs.names.job_name(xpr.id)}", f"#PBS -q {site.queue}",
                           "#PBS -l walltime=1:00:00", f"#PBS -o job.{xpr.id}.stdout",
                           f"#PBS -e job.{xpr.id}.stderr", "#PBS -S /bin/bash", "#PBS -r n",
                           "#PBS -l mem=1024mb",  # the partition's max_mem: no memory line configured
                           "#PBS -l nodes=1:ppn=2"]
    assert row["remote_status"] == "other"  # finished; the front end tells no exit status
    assert ssh_transport.connections_opened - opened == 1


def test_many_jobs_one_status_query_per_poll(remote, monkeypatch):
    from expyre import batch, plugins

    polls = []
    real_status = plugins.status
    monkeypatch.setattr(plugins, "status", lambda s, jobs, sh: polls.append(len(jobs)) or real_status(s, jobs, sh))
    queries = []
    real_run = batch.run_unchecked

    def counting_run(shell, command, timeout):
        if command.startswith("qstat "):
            queries.append(command.split("\n")[0])
        return real_run(shell, command, timeout)
    monkeypatch.setattr(batch, "run_unchecked", counting_run)  # the toolkit runs the dialect question and status
    jobs = [ExPyRe(f"many{i}", function=pow, args=[i, 2]) for i in range(6)]
    for xpr in jobs:
        xpr.start(resources=ONE_CORE, system_name="remote", partial_node=True)
    assert [xpr.get_results(**FAST)[0] for xpr in jobs] == [0, 1, 4, 9, 16, 25]
    status_queries = [q for q in queries if q.startswith("qstat -f")]
    assert len(status_queries) == len(polls)  # one qstat per poll ...
    assert max(polls) == 6                   # ... for all the system's ongoing jobs at once
    assert len(status_queries[0].split()) == 3 + 6
    assert queries.count("qstat --version 2>&1") == 1  # the dialect is asked once per shell


def test_cancel_gives_died(remote, site):
    def slow():
        import time
        time.sleep(120)
        return "too late"

    xpr = ExPyRe("to_cancel", function=slow)
    xpr.start(resources=ONE_CORE, system_name="remote", partial_node=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if site.qstat(xpr.remote_id).get("job_state") == "R":
            break
        time.sleep(0.5)
    else:
        pytest.fail("the job did not start")
    xpr.cancel()
    t0 = time.monotonic()
    with pytest.raises(ExPyReJobDiedError, match="remote status 'other'"):
        xpr.get_results(**FAST)
    assert time.monotonic() - t0 < 60
    assert site.qstat(xpr.remote_id)["job_state"] == "C"
    assert remote.db.get(xpr.id)["status"] == "died"


RESTART_SCRIPT = textwrap.dedent("""
    import os, signal, time
    from expyre.func import ExPyRe

    def slow_square(x):
        time.sleep(3)
        return x * x

    xpr = ExPyRe("restartable", function=slow_square, args=[12])
    xpr.start(resources={"max_time": "10m", "num_cores": 1, "partitions": "regular"}, system_name="remote",
              partial_node=True)
    print("JOB", xpr.id, xpr.remote_id, xpr.recreated, flush=True)
    if os.environ.get("DIE_AFTER_START"):
        os.kill(os.getpid(), signal.SIGKILL)
    print("RESULT", xpr.get_results(check_interval=0.5, quiet=True, timeout=180)[0], flush=True)
""")


def test_restart_across_two_processes(remote, site, tmp_path):
    script = tmp_path / "workflow.py"
    script.write_text(RESTART_SCRIPT)

    def run(**env):
        return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=240,
                              env=dict(os.environ, **env))
    first = run(DIE_AFTER_START="1")
    assert first.returncode == -signal.SIGKILL, first.stderr
    _, job_id, remote_id, recreated = first.stdout.split()
    assert recreated == "False"
    second = run()
    assert second.returncode == 0, second.stderr
    assert f"JOB {job_id} {remote_id} True" in second.stdout and "RESULT 144" in second.stdout
    assert [r["id"] for r in remote.db.jobs()] == [job_id]
    assert remote.db.get(job_id)["status"] == "succeeded"


def test_lost_submission_is_found_by_name_not_repeated(remote, site, sshd, monkeypatch):
    """A submission whose answer was lost: the next start() finds the job (record or name)."""
    real_submit = expyre_pbs.PBS.submit_command

    def submit_then_drop(self, job, script):
        # fault injection: qsub goes through, then every session of the account dies
        return f"{real_submit(self, job, script)} && pkill -KILL -u {site.user} -x sshd"

    monkeypatch.setattr(expyre_pbs.PBS, "submit_command", submit_then_drop)
    xpr = ExPyRe("lost_submit", function=abs, args=[-7])
    with pytest.raises(ConnectionLostError):
        xpr.start(resources=ONE_CORE, system_name="remote", partial_node=True)
    assert remote.db.get(xpr.id)["status"] == "submitting"
    monkeypatch.setattr(expyre_pbs.PBS, "submit_command", real_submit)
    again = ExPyRe("lost_submit", function=abs, args=[-7])
    again.start(resources=ONE_CORE, system_name="remote", partial_node=True)
    assert again.id == xpr.id and again.remote_id.isdigit()
    assert again.get_results(**FAST)[0] == 7
    named = site.run(f"qstat -f -1 | grep -c 'Job_Name = {expyre_pbs.names.job_name(xpr.id)}$'",
                     check=False).stdout.strip()
    assert named == "1"  # one job only
