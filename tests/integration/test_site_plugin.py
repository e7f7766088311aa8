"""A site's private scheduler, installed as its own package (tests/site_plugin) and found only
through its entry point, runs a real job when a config selects it by name."""
import pytest

from expyre import plugins
from expyre.func import ExPyRe

pytestmark = pytest.mark.integration


def test_site_scheduler_runs_a_real_job(expyre_config):
    config = expyre_config({"site": {"host": None, "scheduler": "site-batch",
                                     "partitions": {"batch": {"num_cores": 1, "max_time": "1h"}}}})
    assert "site-batch" in plugins.scheduler_names()
    xpr = ExPyRe("site_job", function=lambda: __import__("os").environ.get("SITE_BATCH_SCHEDULER"))
    xpr.start(resources={"max_time": "10m", "num_nodes": 1}, system_name="site")
    assert xpr.get_results(check_interval=0.2, quiet=True)[0] == "1"
    assert xpr.remote_id.startswith("site-")
    script = (xpr.stage_dir / "_expyre_job.sh").read_text()
    assert "# site-batch: accounting project batch" in script
    assert config.db.get(xpr.id)["system"] == "site"
