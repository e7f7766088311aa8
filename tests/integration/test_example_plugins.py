"""The worked plugin examples of the guide (docs/examples/*) are real packages: installed on
their own, found through their entry points, and selected by name in a config, they run real jobs."""
import importlib
import importlib.metadata
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
PACKAGES = {"expyre-example-scheduler": EXAMPLES / "expyre-example-scheduler",
            "expyre-example-transport": EXAMPLES / "expyre-example-transport"}


def _installed(distribution):
    try:
        importlib.metadata.distribution(distribution)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


def install_example_plugins():
    """Install the example packages into this venv if tests/run_all.sh has not already
    (a plain, non-editable install of each directory: built as its own package)."""
    missing = [str(path) for name, path in PACKAGES.items() if not _installed(name)]
    if missing:
        proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                               *missing], capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.fail(f"could not install the example plugins:\n{proc.stdout}\n{proc.stderr}")
        importlib.invalidate_caches()
    from expyre import plugins
    plugins.load_plugins(force=True)


@pytest.fixture(scope="module", autouse=True)
def example_packages():
    install_example_plugins()
    yield


# A lambda is pickled by value; a function defined in this test module would be pickled by
# reference and the job's Python could not import the test module.
_sleep_then_return = lambda seconds, value: (__import__("time").sleep(seconds), value)[1]  # noqa: E731


def test_flockq_scheduler_queues_and_runs_jobs(expyre_config):
    from expyre import plugins
    from expyre.func import ExPyRe

    config = expyre_config({"flock": {"host": None, "scheduler": "flockq",
                                      "partitions": {"one": {"num_cores": 1, "max_time": "1h"}}}})
    assert "flockq" in plugins.scheduler_names()
    first = ExPyRe("flock_first", function=_sleep_then_return, args=[3, "first"])
    second = ExPyRe("flock_second", function=_sleep_then_return, args=[0, "second"])
    first.start(resources={"max_time": "10m", "num_cores": 1}, system_name="flock")
    time.sleep(0.5)
    second.start(resources={"max_time": "10m", "num_cores": 1}, system_name="flock")
    # one slot per queue: while the first job holds the lock, the second waits
    system = config.systems["flock"]
    states = system.status([_remote(first), _remote(second)])
    assert states[second.remote_id] == "queued", states
    assert first.get_results(check_interval=0.2, quiet=True)[0] == "first"
    assert second.get_results(check_interval=0.2, quiet=True)[0] == "second"
    assert "# flockq job" in (first.stage_dir / "_expyre_job.sh").read_text()
    assert config.db.get(second.id)["system"] == "flock"


def test_flockq_cancel(expyre_config):
    from expyre.func import ExPyRe

    config = expyre_config({"flock": {"host": None, "scheduler": "flockq",
                                      "partitions": {"one": {"num_cores": 1, "max_time": "1h"}}}})
    xpr = ExPyRe("flock_cancel", function=_sleep_then_return, args=[60, "never"])
    xpr.start(resources={"max_time": "10m", "num_cores": 1}, system_name="flock")
    xpr.cancel()
    deadline = time.time() + 20
    while time.time() < deadline:
        state = config.systems["flock"].status([_remote(xpr)])[xpr.remote_id]
        if state == "failed":
            break
        time.sleep(0.2)
    assert state == "failed"


def test_sharedfs_transport_with_flockq(expyre_config, tmp_path):
    from expyre import plugins
    from expyre.func import ExPyRe

    mounted_home = tmp_path / "mounted-home"
    mounted_home.mkdir()
    expyre_config({"mounted": {"host": str(mounted_home), "transport": "sharedfs", "scheduler": "flockq",
                               "partitions": {"regular": {"num_cores": 2, "max_time": "1h"}}}})
    assert "sharedfs" in plugins.transport_names()
    xpr = ExPyRe("sharedfs_job", function=os.getcwd)
    xpr.start(resources={"max_time": "10m", "num_nodes": 1}, system_name="mounted",
              python_cmd=sys.executable)
    cwd = xpr.get_results(check_interval=0.2, quiet=True)[0]
    # the job ran in its run directory below the mounted home (default rundir run_expyre)
    assert Path(cwd).is_relative_to(mounted_home / "run_expyre")
    assert xpr.remote_dir.startswith("run_expyre/")
    assert (mounted_home / xpr.remote_dir / "_flockq_exit").read_text().strip() == "0"


def _remote(xpr):
    from expyre import RemoteJob
    return RemoteJob(remote_id=xpr.remote_id, remote_dir=xpr.remote_dir, id=xpr.id)
