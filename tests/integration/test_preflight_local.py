"""Preflight and ``xpr check`` against real job sides on this machine: the built-in ``local``
system (direct scheduler, local transport) running the job's Python through a login shell,
with the Python, ``commands`` and modules changed to make it wrong on purpose."""
import json

import pytest
from click.testing import CliRunner

from expyre import ExPyRe, ExPyRePreflightError, ExPyReRemoteEnvironmentError, preflight
from expyre.cli import cli

pytestmark = pytest.mark.integration

RES = dict(resources={"max_time": "5m", "num_cores": 1}, partial_node=True)


@pytest.fixture(autouse=True)
def fresh_preflight():
    preflight.forget()
    yield
    preflight.forget()


@pytest.fixture
def only_here(tmp_path, monkeypatch):
    """A small package importable in this process only (not by the job's Python)."""
    pkg = tmp_path / "onlyhere" / "xpr_only_here_pkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("__version__ = '0.3'\n\ndef triple(x):\n    return 3 * x\n")
    monkeypatch.syspath_prepend(str(pkg.parent))
    import importlib
    return importlib.import_module("xpr_only_here_pkg")


def local_system(expyre_config, python_exe, **extra):
    return expyre_config({"here": {"scheduler": "direct", "partitions": {"p": {"num_cores": 1}}, **extra}})


def test_a_module_missing_on_the_job_side_stops_the_submission(expyre_config, python_exe, only_here):
    config = local_system(expyre_config, python_exe)
    xpr = ExPyRe("pf_missing", function=only_here.triple, args=[2])
    with pytest.raises(ExPyRePreflightError) as info:
        xpr.start(system_name="here", **RES)
    message = str(info.value)
    assert "xpr_only_here_pkg" in message and "0.3" in message and "'here'" in message
    assert "input_files" in message and "register_pickle_by_value" in message
    assert config.db.get(xpr.id)["status"] == "created"
    assert not list(xpr.stage_dir.glob("_expyre_job_started*"))

    # preflight=False lets it through, and the job then fails exactly as preflight said
    xpr.start(system_name="here", preflight=False, **RES)
    with pytest.raises(ExPyReRemoteEnvironmentError, match="xpr_only_here_pkg"):
        xpr.get_results(timeout=60, check_interval=0.2, quiet=True)


def test_input_files_and_pre_run_commands_count_as_the_job_side(expyre_config, python_exe, only_here):
    """A module sent with the job (input_files) is not asked about, and the probe runs the job's
    own pre_run_commands: neither call is refused, and both run."""
    import shlex
    from pathlib import Path
    local_system(expyre_config, python_exe)
    pkg_dir = Path(only_here.__file__).parent
    sent = ExPyRe("pf_sent", function=only_here.triple, args=[2], input_files=[str(pkg_dir)])
    sent.start(system_name="here", **RES)
    assert sent.get_results(timeout=60, check_interval=0.2, quiet=True)[0] == 6
    setup = ExPyRe("pf_setup", function=only_here.triple, args=[3],
                   pre_run_commands=[f"export PYTHONPATH={shlex.quote(str(pkg_dir.parent))}"])
    setup.start(system_name="here", **RES)
    assert setup.get_results(timeout=60, check_interval=0.2, quiet=True)[0] == 9


def test_one_round_trip_per_system_and_the_jobs_db_keeps_it(expyre_config, python_exe):
    numpy = pytest.importorskip("numpy")
    local_system(expyre_config, python_exe)
    before = preflight.probe_count
    jobs = [ExPyRe(f"pf_count{i}", function=numpy.sum, args=[numpy.ones(i + 1)]) for i in range(3)]
    for xpr in jobs:
        xpr.start(system_name="here", **RES)
    assert preflight.probe_count == before + 1
    assert [x.get_results(timeout=60, check_interval=0.2, quiet=True)[0] for x in jobs] == [1.0, 2.0, 3.0]

    # a new process (no process cache) finds the report in the jobs database: no round trip
    preflight.forget()
    xpr = ExPyRe("pf_count_later", function=numpy.sum, args=[numpy.ones(5)])
    xpr.start(system_name="here", **RES)
    assert preflight.probe_count == before + 1


def test_numpy_1_job_side_is_refused_for_a_numpy_2_pickle_it_cannot_load(expyre_config, python_exe, tmp_path):
    numpy = pytest.importorskip("numpy")
    if int(numpy.__version__.split(".")[0]) < 2:
        pytest.skip("needs numpy 2 here")
    numpy1 = "/home/xpr-cluster/venv-numpy1/bin/python"
    import os
    if not os.access(numpy1, os.X_OK):
        pytest.skip("the service account's numpy 1.x venv is not there (tests/services/lib/account.sh)")
    local_system(expyre_config, python_exe)
    # plain arrays load under numpy 1 (expyre pickles them so): preflight lets them through
    ok = ExPyRe("pf_np1_ok", function=numpy.sum, args=[numpy.ones(3)])
    ok.start(system_name="here", python_cmd=numpy1, **RES)
    assert ok.get_results(timeout=60, check_interval=0.2, quiet=True)[0] == 3.0
    # a numpy 2 random generator does not
    bad = ExPyRe("pf_np1_bad", function=repr, args=[numpy.random.default_rng(1)])
    with pytest.raises(ExPyRePreflightError, match=r"numpy.*1\.2"):
        bad.start(system_name="here", python_cmd=numpy1, **RES)


def test_xpr_check_right_and_wrong(expyre_config, python_exe):
    runner = CliRunner()
    local_system(expyre_config, python_exe)
    result = runner.invoke(cli, ["check", "here", "--modules", "json"])
    assert result.exit_code == 0, result.output
    assert "✗" not in result.output and "✓ cloudpickle" in result.output

    expyre_config({"here": {"scheduler": "direct", "partitions": {"p": {"num_cores": 1}},
                            "commands": ["true", "false"]}})
    result = runner.invoke(cli, ["check", "here", "--python-cmd", "/usr/bin/python3", "--modules",
                                 "xpr_no_such_module", "--json"])
    assert result.exit_code == 1
    lines = {r["name"]: r for r in json.loads(result.output)["here"]}
    assert not lines["commands line 2"]["ok"] and "fix" in lines["commands line 2"]
    assert not lines["xpr_no_such_module"]["ok"] and "pip install" in lines["xpr_no_such_module"]["fix"]
    import subprocess
    system_has_cloudpickle = subprocess.run(["/usr/bin/python3", "-c", "import cloudpickle"]).returncode == 0
    assert lines["cloudpickle"]["ok"] is system_has_cloudpickle
