"""Preflight and ``xpr check`` against the real services: Slurm over SSH (the account's second
venv has numpy 1.x), Grid Engine, and Slurm's PBS/Torque front end."""
import json
import subprocess

import pytest
from click.testing import CliRunner
from servicelib import require_service
from sshd_fixtures import ssh_client_setup, sshd  # noqa: F401  (pytest fixtures)

from expyre import ExPyRe, ExPyRePreflightError, preflight
from expyre.cli import cli
from expyre.transports import ssh as ssh_transport

pytestmark = pytest.mark.integration

#: not the run directory other test modules use (and clean up)
RUNDIR = "run_expyre_preflight"
RES = dict(resources={"max_time": "5m", "num_cores": 1}, partial_node=True)
NUMPY1 = ["source ~/venv-numpy1/bin/activate"]


@pytest.fixture(autouse=True)
def fresh(sshd):
    preflight.forget()
    ssh_transport.close_all()
    yield
    ssh_transport.close_all()
    preflight.forget()
    sshd.remove_remote_dir(RUNDIR)


def slurm_system(**extra):
    slurm = require_service("slurm")
    cpus = int(slurm["SLURM_CPUS"])
    return {"host": "cluster", "scheduler": "slurm", "rundir": RUNDIR,
            "partitions": {slurm["SLURM_PARTITION"]: {"num_cores": cpus, "max_time": "24h"},
                           slurm["SLURM_PARTITION_SHORT"]: {"num_cores": cpus, "max_time": "30m"}}, **extra}


def squeue_names(sshd):
    return sshd.run_as_user("squeue --noheader --format=%j").stdout.split()


def cancel_all(config):
    for row in config.db.jobs():
        if row.get("remote_id"):
            subprocess.run(["scancel", row["remote_id"]], capture_output=True)


def test_slurm_numpy1_job_side_missing_module_and_one_round_trip(expyre_config, ssh_client_setup, sshd, tmp_path,
                                                                  monkeypatch):
    numpy = pytest.importorskip("numpy")
    if int(numpy.__version__.split(".")[0]) < 2:
        pytest.skip("needs numpy 2 here")
    config = expyre_config({"np1": slurm_system(commands=NUMPY1)})
    start_count = preflight.probe_count
    try:
        # a numpy 2 random generator cannot be loaded by numpy 1.x: stopped before queueing
        bad = ExPyRe("pf_np1_rng", function=repr, args=[numpy.random.default_rng(1)])
        with pytest.raises(ExPyRePreflightError) as info:
            bad.start(system_name="np1", **RES)
        assert "numpy" in str(info.value) and "1.26" in str(info.value) and "'np1'" in str(info.value)
        assert config.db.get(bad.id)["status"] == "created"
        assert not any(name.startswith("pf_np1_rng") for name in squeue_names(sshd))

        # a module that exists only here
        pkg = tmp_path / "only" / "xpr_pf_only_here"
        pkg.mkdir(parents=True)
        (pkg / "__init__.py").write_text("__version__ = '0.7'\ndef triple(x):\n    return 3 * x\n")
        monkeypatch.syspath_prepend(str(pkg.parent))
        import xpr_pf_only_here
        missing = ExPyRe("pf_missing", function=xpr_pf_only_here.triple, args=[1])
        with pytest.raises(ExPyRePreflightError, match=r"xpr_pf_only_here.*0\.7.*input_files"):
            missing.start(system_name="np1", **RES)
        assert config.db.get(missing.id)["status"] == "created"
        assert preflight.probe_count == start_count + 2  # one per call with modules not yet asked about
        # preflight=False lets it through (the job would then fail to unpickle)
        missing.start(system_name="np1", preflight=False, **RES)
        assert config.db.get(missing.id)["status"] == "submitted"

        # plain arrays load under numpy 1: two jobs, and only the first paid a round trip
        before = preflight.probe_count
        jobs = [ExPyRe(f"pf_np1_ok{i}", function=numpy.sum, args=[numpy.ones(i + 2)]) for i in range(2)]
        for xpr in jobs:
            xpr.start(system_name="np1", **RES)
        assert preflight.probe_count == before  # the report of the failed calls above covers numpy
        preflight.forget()  # a new process: the jobs database still has the report
        third = ExPyRe("pf_np1_ok_third", function=numpy.sum, args=[numpy.ones(7)])
        third.start(system_name="np1", **RES)
        assert preflight.probe_count == before
        assert jobs[0].get_results(timeout=120, check_interval=0.5, quiet=True)[0] == 2.0
    finally:
        cancel_all(config)


def _check(*args):
    result = CliRunner().invoke(cli, ["check", *args, "--json"])
    return result.exit_code, {name: {r["name"]: r for r in rows} for name, rows in json.loads(result.output).items()}


def test_xpr_check_slurm_right_and_wrong(expyre_config, ssh_client_setup, sshd, isolated_home):
    slurm = require_service("slurm")
    wrong = slurm_system(commands=["true", "false"])
    wrong["partitions"] = {"nosuch": {"num_cores": 1, "max_time": None},
                           slurm["SLURM_PARTITION_SHORT"]: {"num_cores": 64, "max_time": 3600}}
    expyre_config({"right": slurm_system(), "wrong": wrong})
    code, results = _check("right", "--modules", "numpy")
    assert code == 0, results
    assert all(r["ok"] for r in results["right"].values())
    code, results = _check("wrong", "--python-cmd", "/usr/bin/python3")
    assert code == 1
    lines = results["wrong"]
    assert not lines["partition 'nosuch'"]["ok"] and slurm["SLURM_PARTITION"] in lines["partition 'nosuch'"]["detail"]
    short = lines[f"partition '{slurm['SLURM_PARTITION_SHORT']}'"]
    assert not short["ok"] and "num_cores 64" in short["detail"] and "max_time" in short["detail"]
    assert not lines["commands line 2"]["ok"]
    has_cloudpickle = sshd.run_as_user("/usr/bin/python3 -c 'import cloudpickle'").returncode == 0
    assert lines["cloudpickle"]["ok"] is has_cloudpickle
    assert all(r["fix"] for r in lines.values() if not r["ok"])

    # an unknown host key: the login line fails, says why and what to do, and nothing else runs
    (isolated_home / ".ssh" / "known_hosts").write_text("")
    ssh_transport.close_all()
    from expyre import config
    for system in config.systems.values():
        system.close()
    code, results = _check("right")
    assert code == 1
    [(name, login)] = results["right"].items()
    assert name == "login to cluster" and not login["ok"] and "host key" in login["detail"]
    assert "known_hosts" in login["fix"]


def test_xpr_check_sge_right_and_wrong(expyre_config, ssh_client_setup, sshd):
    sge = require_service("sge")
    slots = int(sge["SGE_SLOTS"])
    queue = sge["SGE_QUEUE"]
    expyre_config({"right": {"host": "cluster", "scheduler": "sge", "rundir": RUNDIR,
                             "partitions": {queue: {"num_cores": slots, "max_time": "24h"}}},
                   "wrong": {"host": "cluster", "scheduler": "sge", "rundir": RUNDIR,
                             "partitions": {queue: {"num_cores": slots * 8}, "nosuch": {"num_cores": 1}}}})
    code, results = _check("right")
    assert code == 0 and all(r["ok"] for r in results["right"].values()), results
    code, results = _check("wrong")
    assert code == 1
    assert "num_cores" in results["wrong"][f"queue '{queue}'"]["detail"]
    assert not results["wrong"]["queue 'nosuch'"]["ok"]


@pytest.fixture
def pbs_host(ssh_client_setup, sshd, isolated_home):
    pbs = require_service("pbs")
    config = isolated_home / ".ssh" / "config"
    config.write_text(config.read_text() + f"\nHost pbs-cluster\n    HostName {sshd.host}\n    Port {sshd.port}\n"
                      f"    User {pbs['PBS_USER']}\n    IdentityFile {sshd.client_key}\n    IdentitiesOnly yes\n"
                      f"    UserKnownHostsFile {isolated_home / '.ssh' / 'known_hosts'}\n")
    yield pbs
    subprocess.run(["runuser", "-l", pbs["PBS_USER"], "-c", f'rm -rf -- "$HOME/{RUNDIR}"'], capture_output=True)


def test_xpr_check_pbs_right_and_wrong(expyre_config, pbs_host):
    queue = pbs_host["PBS_QUEUE"]
    expyre_config({"right": {"host": "pbs-cluster", "scheduler": "pbs", "rundir": RUNDIR,
                             "partitions": {"regular": {"num_cores": 2, "partition": queue}}},
                   "wrong": {"host": "pbs-cluster", "scheduler": "pbs", "rundir": RUNDIR,
                             "partitions": {"regular": {"num_cores": 64, "partition": queue},
                                            "gone": {"num_cores": 1, "partition": "nosuch"}}}})
    code, results = _check("right")
    assert code == 0 and all(r["ok"] for r in results["right"].values()), results
    code, results = _check("wrong")
    assert code == 1
    assert "num_cores 64" in results["wrong"][f"queue 'regular' ({queue})"]["detail"]
    assert not results["wrong"]["queue 'gone' (nosuch)"]["ok"]
