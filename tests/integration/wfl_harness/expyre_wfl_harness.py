"""pytest plugin: the harness that wfl's remote tests expect, for running them from wfl's sdist.

wfl's sdist ships its test modules but not ``tests/conftest.py``, which defines the ``--runremote``
option and the two fixtures the remote tests use. This plugin provides the same (written for
expyre's test, following what that file does in wfl 0.3.5), so that wfl's test modules run
unchanged::

    pytest -p expyre_wfl_harness --runremote --basetemp "$HOME/pytest" tests/test_remote_run.py

- ``--runslow``, ``--runremote``, ``--runperf`` and their markers: a test marked ``remote`` runs
  only with ``--runremote``.
- ``WFL_NUM_PYTHON_SUBPROCESSES`` is 2 unless the caller set it.
- ``expyre_systems``: copies ``~/.expyre/config.json`` into ``TMP_PATH/.expyre``, calls
  ``expyre.config.init(that_dir, verbose=True)`` and returns ``expyre.config.systems`` without the
  systems whose name does not match the regular expression ``EXPYRE_PYTEST_SYSTEMS`` (all when it is
  unset). The test's ``tmp_path`` must be under ``$HOME`` (``--basetemp``).
- ``remoteinfo_env``: merges the JSON of ``WFL_PYTEST_EXPYRE_INFO`` into a RemoteInfo dict and
  appends ``PYTHONPATH=<wfl source>:$PYTHONPATH`` to its ``env_vars`` (expanded by the job's shell).

One addition: wfl's Quantum Espresso test is skipped, with its reason in the report, when there is
no ``pw.x`` or no ``[espresso]`` section in ASE's config (``ASE_CONFIG_PATH`` or
``~/.config/ase/config.ini``), or when ``WFL_HARNESS_SKIP_QE`` gives a reason, instead of failing
in the remote job.
"""
import configparser
import json
import os
import re
import shutil
import sys
from pathlib import Path

import pytest

#: The root of wfl's unpacked sdist (its tests are in ``tests/``): added to the jobs' PYTHONPATH.
WFL_SOURCE = Path(os.environ.get("WFL_SOURCE_ROOT", Path.cwd()))

_MARKERS = {"slow": "slow tests", "remote": "tests of remote execution with ExPyRe",
            "perf": "tests checking performance"}


def pytest_addoption(parser):
    for name, what in _MARKERS.items():
        parser.addoption(f"--run{name}", action="store_true", default=False, help=f"run {what}")


def pytest_configure(config):
    for name, what in _MARKERS.items():
        config.addinivalue_line("markers", f"{name}: mark {what}")


def _espresso_missing_reason():
    if os.environ.get("WFL_HARNESS_SKIP_QE"):
        return os.environ["WFL_HARNESS_SKIP_QE"]
    if shutil.which("pw.x") is None:
        return "Quantum Espresso's pw.x is not installed (tests/services/50-wfl.sh installs it)"
    ase_config = Path(os.environ.get("ASE_CONFIG_PATH", Path.home() / ".config" / "ase" / "config.ini"))
    parser = configparser.ConfigParser()
    parser.read(ase_config)
    if not parser.has_section("espresso"):
        return f"no [espresso] section in ASE's config {ase_config}"
    return None


def pytest_collection_modifyitems(config, items):
    for name in _MARKERS:
        if config.getoption(f"--run{name}"):
            continue
        skip = pytest.mark.skip(reason=f"need --run{name} option to run")
        for item in items:
            if name in item.keywords:
                item.add_marker(skip)
    espresso_items = [item for item in items if item.name == "test_generic_calc_qe"]
    if espresso_items:
        reason = _espresso_missing_reason()
        if reason:
            for item in espresso_items:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(autouse=True)
def wfl_python_subprocesses(monkeypatch):
    if "WFL_NUM_PYTHON_SUBPROCESSES" not in os.environ:
        monkeypatch.setenv("WFL_NUM_PYTHON_SUBPROCESSES", "2")


@pytest.fixture()
def expyre_systems(tmp_path):
    if not str(tmp_path).startswith(str(Path.home())):
        pytest.xfail(reason='expyre tests require tmp_path under $HOME: pass "--basetemp $HOME/pytest"')
    expyre = pytest.importorskip("expyre")
    root = tmp_path / ".expyre"
    root.mkdir()
    shutil.copy(Path.home() / ".expyre" / "config.json", root / "config.json")
    expyre.config.init(root, verbose=True)
    pattern = os.environ.get("EXPYRE_PYTEST_SYSTEMS")
    if pattern is not None:
        for name in list(expyre.config.systems):
            if not re.search(pattern, name):
                sys.stderr.write(f"Not using {name}, does not match regexp in EXPYRE_PYTEST_SYSTEMS\n")
                del expyre.config.systems[name]
    return expyre.config.systems


@pytest.fixture()
def remoteinfo_env():
    def add_env(remote_info):
        extra = json.loads(os.environ.get("WFL_PYTEST_EXPYRE_INFO", "{}"))
        remote_info["resources"].update(extra.pop("resources", {}))
        remote_info.update(extra)
        remote_info.setdefault("env_vars", []).append(f"PYTHONPATH={WFL_SOURCE}:$PYTHONPATH")
    return add_env
