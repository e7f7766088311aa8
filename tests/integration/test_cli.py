"""Every ``xpr`` command, against real jobs on this machine; one real ``xpr`` subprocess each
for the commands a user types most."""
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import direct_system

from expyre.cli import cli
from expyre.func import ExPyRe

pytestmark = pytest.mark.integration

RES = {"max_time": "1h", "num_nodes": 1, "partitions": "regular"}
XPR = shutil.which("xpr", path=os.path.dirname(sys.executable))


@pytest.fixture
def cfg(expyre_config):
    return expyre_config({"remote": direct_system(rundir="cluster_rundir")})


def xpr(*args, input=None):
    result = CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)
    return result


def finished_job(name="done", value=1):
    job = ExPyRe(name, function=int, args=[str(value)])
    job.start(resources=RES, system_name="remote")
    job.get_results(check_interval=0.2, quiet=True)
    return job


def test_ls_short_and_long(cfg):
    job = finished_job()
    out = xpr("ls").output
    header, row = out.splitlines()
    assert header.split()[:2] == ["#", "id"]
    assert "succeeded" in row and f"{job.remote_id}@remote" in row
    long_out = xpr("ls", "-l", "-n", "done").output
    assert job.id in long_out and str(job.stage_dir) in long_out
    assert "No matching jobs" in xpr("ls", "-s", "failed").output


def test_ls_in_real_subprocess(cfg, isolated_home):
    job = finished_job("sub")
    proc = subprocess.run([XPR, "ls", "-i", job.id], capture_output=True, text=True, env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr
    assert "succeeded" in proc.stdout


def test_rm_requires_a_selection(cfg):
    result = CliRunner().invoke(cli, ["rm"])
    assert result.exit_code == 2
    assert "at least one of -i, -n, -s, -S is required" in result.output


def test_rm_asks_and_keeps_on_no(cfg):
    job = finished_job()
    result = xpr("rm", "-i", job.id, input="n\n")
    assert "kept" in result.output
    assert cfg.db.get(job.id) is not None


def test_rm_clean_processed_in_real_subprocess(cfg, isolated_home):
    job = finished_job()
    job.mark_processed()
    remote_dir = isolated_home / cfg.db.get(job.id)["remote_dir"]
    assert remote_dir.is_dir() and job.stage_dir.is_dir()
    proc = subprocess.run([XPR, "rm", "-y", "-c", "-s", "processed"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert not remote_dir.exists() and not job.stage_dir.exists()
    assert cfg.db.get(job.id) is None


def test_rm_without_clean_keeps_directories(cfg):
    job = finished_job()
    xpr("rm", "-y", "-i", job.id)
    assert cfg.db.get(job.id) is None and job.stage_dir.is_dir()


def test_rm_clean_cancels_running_job(cfg):
    job = ExPyRe("running", function=time.sleep, args=[60])
    job.start(resources=RES, system_name="remote")
    pid = int(job.remote_id)
    xpr("rm", "-y", "-c", "-n", "running")
    deadline = time.time() + 15
    while time.time() < deadline and Path(f"/proc/{pid}").exists():
        time.sleep(0.1)
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]


def test_cancel_then_sync(cfg):
    job = ExPyRe("tocancel", function=time.sleep, args=[60])
    job.start(resources=RES, system_name="remote")
    xpr("cancel", "-y", "-n", "tocancel")
    # a cancelled job will not run any more: died locally, out of the ongoing group that sync polls
    row = cfg.db.get(job.id)
    assert (row["status"], row["remote_status"]) == ("died", "failed")
    assert job.id not in xpr("sync").output
    # copying back all files of the died job while the process still stops keeps it failed
    deadline = time.time() + 20
    out = ""
    while time.time() < deadline and f"{job.id}: failed" not in out:
        out = xpr("sync", "-s", "died", "-a").output
        assert cfg.db.get(job.id)["remote_status"] == "failed"
        time.sleep(0.3)
    assert f"{job.id}: failed" in out


def test_sync_copies_back_finished_jobs(cfg):
    job = ExPyRe("synced", function=int, args=["3"])
    job.start(resources=RES, system_name="remote")
    deadline = time.time() + 20
    while time.time() < deadline and not (job.stage_dir / "_expyre_job_succeeded").exists():
        xpr("sync", "-v")
        time.sleep(0.2)
    assert (job.stage_dir / "_expyre_job_succeeded").exists()
    assert cfg.db.get(job.id)["status"] == "succeeded"


def test_reset_status(cfg):
    job = finished_job()
    xpr("reset_status", "-i", job.id, "started")
    assert cfg.db.get(job.id)["status"] == "started"
    assert CliRunner().invoke(cli, ["reset_status", "bogus"]).exit_code == 2


def test_fail_job(cfg):
    job = finished_job()
    xpr("fail_job", "-y", "-i", job.id)
    again = ExPyRe.from_jobsdb(cfg.db.get(job.id))[0]
    assert again.status == "failed"
    with pytest.raises(RuntimeError, match="xpr fail_job"):
        again.get_results(quiet=True)


def test_create_job(cfg, isolated_home):
    job = finished_job()
    copy = cfg.local_stage_dir / ("run_" + job.id.replace("done", "copied", 1))
    shutil.copytree(job.stage_dir, copy)
    xpr("create_job", "-d", str(copy), "-S", "remote")
    row = cfg.db.get(copy.name[4:])
    assert row["name"] == "copied" and row["system"] == "remote" and row["from_dir"] == str(copy)


def test_db_unlock_keeps_rows(cfg):
    job = finished_job()
    assert "unlocked" in xpr("db_unlock").output
    assert cfg.db.get(job.id)["status"] == "succeeded"


def test_dbfile_option(cfg, tmp_path):
    finished_job()
    other = tmp_path / "other.db"
    assert "No matching jobs" in xpr("--dbfile", str(other), "ls").output


def test_systems_lists_partitions_and_files(cfg, isolated_home):
    out = xpr("systems").output
    assert str(isolated_home / ".expyre" / "config.json") in out or "~/.expyre/config.json" in out
    assert "remote: scheduler direct" in out
    assert "large-mem" in out and "regular" in out


def test_plugins_lists_builtins_and_site_plugin():
    proc = subprocess.run([XPR, "plugins", "--json"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    by_name = {p["name"]: p for p in data["plugins"]}
    assert by_name["expyre.schedulers.direct"]["schedulers"] == ["direct"]
    assert by_name["expyre.transports.local"]["transports"] == ["local"]
    assert by_name["expyre.schedulers.direct"]["distribution"] == "expyre-core"
    assert by_name["site-slurm"]["distribution"] == "expyre-site-example"
    assert by_name["site-slurm"]["schedulers"] == ["site-slurm"]


def test_config_error_is_one_clear_message(isolated_home):
    root = isolated_home / ".expyre"
    root.mkdir()
    (root / "config.json").write_text(json.dumps({"systems": {"bad": {"scheduler": "nosuch", "partitions": {}}}}))
    proc = subprocess.run([XPR, "ls"], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "system 'bad'" in proc.stderr and "nosuch" in proc.stderr
