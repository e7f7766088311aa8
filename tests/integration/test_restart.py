"""A script killed while its job runs is run again and re-attaches to the same job."""

import pytest
from conftest import direct_system
from workflows import check_restart

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("rundir", [None, "cluster_rundir"])
def test_killed_script_reattaches_in_second_process(expyre_config, tmp_path, rundir):
    config = expyre_config({"remote": direct_system(**({"rundir": rundir} if rundir else {}))})
    stage_dirs = lambda: sorted(p.name for p in config.local_stage_dir.glob("run_*"))  # noqa: E731
    check_restart(tmp_path / "workflow.py", config.db)
    assert len(stage_dirs()) == 1  # the second process made no new stage directory


def test_interrupted_submission_is_recovered_not_duplicated(expyre_config, tmp_path):
    """A process that died between submitting and recording the remote id (status 'submitting')."""
    config = expyre_config({"remote": direct_system(rundir="cluster_rundir")})
    from expyre.func import ExPyRe

    def value():
        return "once"

    xpr = ExPyRe("interrupted", function=value)
    xpr.start(resources={"max_time": "1h", "num_nodes": 1, "partitions": "regular"}, system_name="remote")
    # what the DB holds if the process had died right after the scheduler accepted the job
    config.db.update(xpr.id, status="submitting", remote_id=None)
    again = ExPyRe("interrupted", function=value)
    assert again.id == xpr.id and again.status == "submitting"
    again.start(resources={"max_time": "1h", "num_nodes": 1, "partitions": "regular"}, system_name="remote")
    assert again.remote_id == xpr.remote_id
    assert config.db.get(xpr.id)["status"] == "submitted"
    assert again.get_results(check_interval=0.2, quiet=True)[0] == "once"
