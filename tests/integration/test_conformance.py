"""The conformance kit (expyre.testing.SchedulerConformance) against the real schedulers here:
Slurm, Grid Engine and Slurm's PBS/Torque front end through the private sshd, the example
site plugin (tests/site_plugin) on the same Slurm, and the built-in ``direct`` scheduler, on this
machine and through the sshd.

The ``timeout`` state is checked where the scheduler can enforce a wall time of seconds (Grid
Engine) and once on Slurm (whose smallest wall time is one minute); the PBS front end and the
site plugin drive the same Slurm, so they leave it out to keep the suite's time down.
"""
import pytest
from servicelib import require_service

from expyre.schedulers import direct
from expyre.testing import SchedulerConformance

pytestmark = pytest.mark.integration

RUNDIR = "run_expyre_conformance"


@pytest.fixture(scope="module", autouse=True)
def no_directories_left_behind(sshd):
    """The kit removes what its jobs left on the host, and the directory of its test's expyre
    root under the rundir: after the module, no new entry is left in the rundir of the sshd's
    account (the PBS front end's account is another)."""
    def entries():
        return set(sshd.run_as_user(f"ls -A ~/{RUNDIR} 2>/dev/null").stdout.split())
    before = entries()
    yield
    assert entries() - before == set()


@pytest.fixture(autouse=True)
def fresh_ssh_connections(ssh_client_setup, monkeypatch):
    from expyre.transports import ssh as ssh_transport
    monkeypatch.setenv("EXPYRE_RETRY", "4 0.5")
    ssh_transport.close_all()
    yield
    ssh_transport.close_all()


class TestSlurm(SchedulerConformance):
    resources = {"max_time": "10m", "num_cores": 1, "partitions": "standard"}
    timeout_resources = {"max_time": "1m", "num_cores": 1, "partitions": "standard"}
    blocker_resources = {"max_time": "10m", "num_nodes": 1, "partitions": "standard"}

    @pytest.fixture
    def conformance_system(self, ssh_client_setup):
        cpus = int(require_service("slurm")["SLURM_CPUS"])
        return {"host": ssh_client_setup, "scheduler": "slurm", "rundir": RUNDIR,
                "header": ["#SBATCH --nodes={num_nodes}", "#SBATCH --ntasks-per-node={num_cores_per_node}"],
                "partitions": {"standard": {"num_cores": cpus, "max_time": "24h", "max_mem": "1GB"}}}


class TestGridEngine(SchedulerConformance):
    resources = {"max_time": "10m", "num_cores": 1, "partitions": "regular"}
    timeout_resources = {"max_time": "5s", "num_cores": 1, "partitions": "regular"}
    blocker_resources = {"max_time": "10m", "num_nodes": 1, "partitions": "regular"}

    @pytest.fixture
    def conformance_system(self, ssh_client_setup):
        slots = int(require_service("sge")["SGE_SLOTS"])
        return {"host": ssh_client_setup, "scheduler": "sge", "rundir": RUNDIR,
                "header": ["#$ -pe smp {num_cores_per_node}"],
                "partitions": {"regular": {"num_cores": slots, "max_time": "168h", "max_mem": "50GB"}}}


class TestPBSFrontEnd(SchedulerConformance):
    """Slurm's Torque front end: it shows a held job as ``Q`` and prints no exit status (finished
    jobs are ``other``), so hold is checked by the plugin's own tests and finished states loosely."""

    resources = {"max_time": "10m", "num_cores": 1, "partitions": "regular"}
    exact_finished_states = False

    @pytest.fixture
    def conformance_system(self, ssh_client_setup, sshd, isolated_home):
        pbs = require_service("pbs")
        config = isolated_home / ".ssh" / "config"
        config.write_text(config.read_text() + f"\nHost pbs-cluster\n    HostName {sshd.host}\n    Port {sshd.port}\n"
                          f"    User {pbs['PBS_USER']}\n    IdentityFile {sshd.client_key}\n    IdentitiesOnly yes\n"
                          f"    UserKnownHostsFile {isolated_home / '.ssh' / 'known_hosts'}\n")
        return {"host": "pbs-cluster", "scheduler": "pbs", "rundir": RUNDIR,
                "header": ["#PBS -l nodes={num_nodes}:ppn={num_cores_per_node}"],
                "partitions": {"regular": {"num_cores": 2, "max_time": "24h", "max_mem": "1GB",
                                           "partition": pbs["PBS_QUEUE"]}}}


class TestSitePlugin(SchedulerConformance):
    resources = {"max_time": "10m", "num_cores": 1, "partitions": "batch"}
    blocker_resources = {"max_time": "10m", "num_nodes": 1, "partitions": "batch"}

    @pytest.fixture
    def conformance_system(self, ssh_client_setup):
        slurm = require_service("slurm")
        return {"host": ssh_client_setup, "scheduler": "site-slurm", "rundir": RUNDIR,
                "header": ["#SBATCH --account=proj42", "#SBATCH --ntasks={num_cores}"],
                "partitions": {"batch": {"num_cores": int(slurm["SLURM_CPUS"]), "max_time": "24h",
                                         "partition": "standard"}}}


class TestDirect(SchedulerConformance):
    """The built-in ``direct`` scheduler on this machine (the default system's): no queue, so
    the queued, hold and release checks do not apply; its watchdog enforces wall times of seconds."""

    resources = {"max_time": "10m", "num_cores": 1, "partitions": "regular"}
    timeout_resources = {"max_time": "5s", "num_cores": 1, "partitions": "regular"}
    submit_marker = direct.PID_FILE

    @pytest.fixture
    def conformance_system(self):
        return {"scheduler": "direct", "partitions": {"regular": {"num_cores": 2, "max_time": "24h"}}}


class TestDirectOverSSH(TestDirect):
    """The ``direct`` scheduler on a host without a batch system, through the sshd."""

    @pytest.fixture
    def conformance_system(self, ssh_client_setup):
        return {"host": ssh_client_setup, "scheduler": "direct", "rundir": RUNDIR,
                "partitions": {"regular": {"num_cores": 2, "max_time": "24h"}}}
