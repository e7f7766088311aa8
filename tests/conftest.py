"""Shared fixtures: every test runs with its own HOME, working directory and expyre root,
so nothing a test does touches the developer's ~/.expyre or another test's jobs."""
import os
import sys
from pathlib import Path

import pytest
from sshd_fixtures import remote_run_expyre_cleanup, ssh_client_setup, sshd  # noqa: F401  (fixtures)
from wfl_remote import order_session, start_on_slurm_before, stop_background_runs, wfl_env, wfl_on_direct  # noqa: F401

TESTS_DIR = Path(__file__).resolve().parent

#: expyre.testing is opt-in (no pytest11 entry point): load its fixtures for our own tests.
pytest_plugins = ["expyre.testing"]


#: Held by every pytest process that runs integration tests, so that two checkouts on one machine
#: never use the services' shared accounts (and their ~/run_expyre) at the same time.
SERVICES_LOCK = Path("/tmp/expyre-test-services.lock")


def pytest_collection_modifyitems(config, items):
    order_session(items)
    if any(item.get_closest_marker("integration") for item in items):
        import fcntl
        lock = open(SERVICES_LOCK, "a")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            sys.stderr.write(f"waiting for {SERVICES_LOCK}: another test run is using the services\n")
            fcntl.flock(lock, fcntl.LOCK_EX)
        config._expyre_services_lock = lock  # held until the session ends


def pytest_runtest_setup(item):
    start_on_slurm_before(item)


def pytest_sessionfinish(session):
    stop_background_runs()


def pytest_unconfigure(config):
    lock = getattr(config, "_expyre_services_lock", None)
    if lock is not None:
        lock.close()


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    """A fresh HOME and working directory, and no EXPYRE_* variables from the caller."""
    home = tmp_path / "home"
    work = home / "work"
    work.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    for var in list(os.environ):
        if var.startswith("EXPYRE_"):
            monkeypatch.delenv(var)
    monkeypatch.chdir(work)
    yield home


@pytest.fixture
def python_exe():
    """The Python that runs the tests (and, in local systems, the jobs)."""
    return sys.executable


def _close_systems():
    from expyre import config
    for system in (config.__dict__.get("systems") or {}).values():
        system.close()


@pytest.fixture
def expyre_config(isolated_home):
    """Write ``~/.expyre/config.json`` with the given systems and (re)load the config.

    Returns a function ``write(systems, **top_level) -> expyre.config`` module.
    """
    import json

    from expyre import config

    def write(systems, **top_level):
        root = isolated_home / ".expyre"
        root.mkdir(exist_ok=True)
        (root / "config.json").write_text(json.dumps({"systems": systems, **top_level}, indent=1))
        _close_systems()
        config.init()
        return config

    yield write
    _close_systems()


def direct_system(**overrides):
    """Config of a system on this machine with the direct scheduler, like the seed's (2 partitions)."""
    system = {"host": None, "scheduler": "direct",
              "header": ["# cores per node {num_cores_per_node}"],
              "partitions": {"regular": {"num_cores": 2, "max_time": "168h", "max_mem": "4GB"},
                             "large-mem": {"num_cores": 4, "max_time": "168h", "max_mem": "16GB"}}}
    system.update(overrides)
    return system
