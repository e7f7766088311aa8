"""A site's private scheduler, installed as its own package (tests/site_plugin) and found only
through its entry point, runs a real job on this machine's Slurm when a config selects it by name,
and keeps the site's house rules (a project on every job, the site's job names)."""
import pytest
from servicelib import require_service

from expyre import plugins
from expyre.func import ExPyRe

pytestmark = pytest.mark.integration


def site_system(host, header):
    cpus = int(require_service("slurm")["SLURM_CPUS"])
    return {"host": host, "scheduler": "site-slurm", "rundir": "run_expyre_site", "header": header,
            "partitions": {"batch": {"num_cores": cpus, "max_time": "1h", "partition": "standard"}}}


def test_site_scheduler_runs_a_real_job(expyre_config, ssh_client_setup, sshd):
    config = expyre_config({"site": site_system(ssh_client_setup, ["#SBATCH --account=proj42"])})
    assert "site-slurm" in plugins.scheduler_names()
    xpr = ExPyRe("site_job", function=int, args=["17"])
    xpr.start(resources={"max_time": "10m", "num_cores": 1, "partitions": "batch"}, system_name="site",
              partial_node=True)
    assert xpr.get_results(timeout=180, check_interval=0.5, quiet=True)[0] == 17
    script = (xpr.stage_dir / "_expyre_job.sh").read_text()
    assert "#SBATCH --account=proj42" in script and f"#SBATCH --job-name=xs_{xpr.id}" in script
    fields = dict(w.partition("=")[::2] for w in sshd.run_as_user(
        f"scontrol --oneliner show job {xpr.remote_id}", check=True).stdout.split())
    assert fields["JobName"] == f"xs_{xpr.id}" and fields["Account"] == "proj42"
    assert config.db.get(xpr.id)["system"] == "site"
    sshd.remove_remote_dir("run_expyre_site")


def test_job_without_a_project_is_refused_before_anything_is_copied(expyre_config, ssh_client_setup):
    expyre_config({"site": site_system(ssh_client_setup, [])})
    xpr = ExPyRe("site_no_project", function=int, args=["1"])
    with pytest.raises(ValueError, match=r"charges no project; add '#SBATCH --account=<project>'"):
        xpr.start(resources={"max_time": "10m", "num_cores": 1, "partitions": "batch"}, system_name="site",
                  partial_node=True)
    assert xpr.status == "created"
