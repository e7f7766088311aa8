"""Code and configs written for ExPyRe 0.1.6 keep working (issue: drop-in for ExPyRe's users).

Each test names the ExPyRe behaviour it keeps. Jobs run for real in tests/integration/test_compat_jobs.py.
"""
import importlib.metadata
import json
import sqlite3
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from expyre import jobscript
from expyre.jobsdb import JobsDB
from expyre.system import pre_submit_line

# ----------------------------------------------------------------- 1. env_vars


def test_env_var_with_value_is_exported_for_the_job_shell_to_expand():
    lines = jobscript.env_var_lines(["WFL_NUM_PYTHON_SUBPROCESSES=${EXPYRE_NUM_CORES_PER_NODE}",
                                     "PYTHONPATH=/opt/x:$PYTHONPATH", "WHO=$(id -un)"], {})
    assert lines == ["export WFL_NUM_PYTHON_SUBPROCESSES=${EXPYRE_NUM_CORES_PER_NODE}",
                     "export PYTHONPATH=/opt/x:$PYTHONPATH", "export WHO=$(id -un)"]


def test_bare_env_var_takes_the_local_value_literally():
    assert jobscript.env_var_lines(["TOKEN"], {"TOKEN": "a b;$(rm -rf ~)"}) == ["export TOKEN='a b;$(rm -rf ~)'"]


@pytest.mark.parametrize("entry, problem", [("1X=2", "not a valid variable name"), ("A=b\nrm -rf ~", "line break"),
                                            ("UNSET_HERE", "not set in the current environment")])
def test_bad_env_var_entries_are_refused(entry, problem):
    with pytest.raises(ValueError, match=problem):
        jobscript.env_var_lines([entry], {})


def test_env_vars_are_exported_after_pre_run_commands():
    script = jobscript.job_script(script_exec="/bin/bash", header=[], remote_dir="/d",
                                  node_dict={"num_nodes": 1, "num_cores": 2, "num_cores_per_node": 2},
                                  scheduler_env=[], system_commands=["module load x"],
                                  env_lines=["export A=$B"], pre_run_commands=["export B=1"], python_cmd="python3",
                                  post_run_commands=[])
    lines = script.splitlines()
    assert lines.index("module load x") < lines.index("export B=1") < lines.index("export A=$B")


# ----------------------------------------------------------------- 4. config keys


def test_every_system_key_of_expyre_0_1_6_is_accepted(tmp_path, monkeypatch):
    from expyre import config
    root = tmp_path / "root"
    root.mkdir()
    system = {"host": None, "scheduler": "direct", "header": ["#X {num_nodes}"], "no_default_header": True,
              "script_exec": "/bin/bash", "pre_submit_cmds": ["module", "load", "slurm"],
              "commands": ["echo hi"], "rundir": "somewhere", "remsh_cmd": "ssh",
              "partitions": {"regular": {"num_cores": 2, "max_time": None, "max_mem": "1GB",
                                         "header": ["#Y"], "partition": "real_name"}}}
    (root / "config.json").write_text(json.dumps({"systems": {"old": system}, "local_stage_dir": str(tmp_path),
                                                  "remote_rundir_submit_hostname": "laptop"}))
    config.init(root, verbose=True)
    assert config.systems["old"].pre_submit_cmds == ["module", "load", "slurm"]


def test_pre_submit_cmds_are_words_as_expyre_wrote_them():
    assert pre_submit_line(["module", "load", "a b", "&&", "echo", "$HOME", "(x)"]) == \
        r"module load a\ b && echo $HOME \(x\)"


# ----------------------------------------------------------------- 5. module surface


def test_config_is_an_attribute_of_the_package():
    code = "import expyre; print(type(expyre.config.systems).__name__, 'local' in expyre.systems)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["dict", "True"]


def test_subprocess_module_runs_words_like_expyre(tmp_path):
    from expyre.subprocess import FailedSubprocessWarning, subprocess_copy, subprocess_run
    stdout, stderr = subprocess_run(None, ["printf", "[%s]", "a b", "$HOME"])
    assert stdout == f"[a b][{Path.home()}]"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(RuntimeError, match="Failed to run command"):
            subprocess_run(None, ["exit", "3"], retry=(2, 0))
    assert [w.category for w in caught] == [FailedSubprocessWarning, FailedSubprocessWarning]
    argv, _ = subprocess_copy(["a", "b"], "dest", to_host="me@cluster", dry_run=True)
    assert argv[-1].endswith("rsync -e ssh -a a b me@cluster:dest")


def test_failed_subprocess_warning_is_the_status_query_warnings_base():
    from expyre.gather import StatusQueryWarning
    from expyre.subprocess import FailedSubprocessWarning
    assert issubclass(StatusQueryWarning, FailedSubprocessWarning)


def test_update_dict_leaves_merges_like_expyre():
    from expyre.config import update_dict_leaves
    d = {"systems": {"a": {"host": "x", "header": ["1"]}, "b": {"host": "y"}}}
    update_dict_leaves(d, {"systems": {"a": {"host": "z"}, "b": "_DELETE_", "c": {"host": None}}})
    assert d == {"systems": {"a": {"host": "z", "header": ["1"]}, "c": {"host": None}}}
    with pytest.raises(AssertionError):
        update_dict_leaves({"a": 1}, {"a": {"b": 2}})


# ----------------------------------------------------------------- 6. exception types


def test_jobsdb_errors_match_expyre_except_clauses(tmp_path):
    db = JobsDB(tmp_path / "jobs.db")
    db.add("j1", name="j", from_dir=str(tmp_path))
    with pytest.raises(sqlite3.OperationalError):
        db.update("j1", no_such_field=1)
    with pytest.raises(ValueError):
        db.update("j1", no_such_field=1)
    with pytest.raises(AssertionError):
        db.update("j1", status="no_such_status")
    with pytest.raises(AssertionError):
        db.add("j2", name="j", from_dir=str(tmp_path), status="no_such_status")
    with pytest.raises(AssertionError):
        list(db.jobs(status="no_such_status"))


# ----------------------------------------------------------------- 8. the pytest plugin


def test_expyre_testing_is_not_auto_loaded():
    assert not [ep for ep in importlib.metadata.entry_points(group="pytest11") if ep.value.startswith("expyre")]


def test_bad_job_name_and_missing_function_match_expyre_except_clauses(expyre_local_system):
    from expyre.func import ExPyRe
    expyre_local_system("local_test")
    with pytest.raises(AssertionError):
        ExPyRe("a/b", function=abs, args=[1])
    with pytest.raises(ValueError):
        ExPyRe("a/b", function=abs, args=[1])
    with pytest.raises(AssertionError):
        ExPyRe("no_function")
    with pytest.raises(TypeError):
        ExPyRe("no_function")


def test_expyre_rsh_is_the_default_remote_shell(monkeypatch):
    from expyre.system import System
    monkeypatch.setenv("EXPYRE_RSH", "ssh -K")
    remote = System(name="r", scheduler="direct", host="me@cluster")
    assert (remote.remsh_cmd, remote.transport) == ("ssh -K", "openssh")
    assert System(name="l", scheduler="direct").transport == "local"
    monkeypatch.delenv("EXPYRE_RSH")
    assert System(name="r", scheduler="direct", host="me@cluster").transport == "ssh"


def test_force_rerun_removes_a_plugins_lock_directory_too(expyre_local_system):
    """A scheduler plugin's lock is a directory in the job directory (wfl's resubmit of a killed
    Slurm job failed on it with IsADirectoryError)."""
    from expyre import jobfiles
    from expyre.func import ExPyRe
    expyre_local_system("local_test")
    xpr = ExPyRe("rerun", function=abs, args=[-1])
    lock = xpr.stage_dir / jobfiles.plugin_file("batch", "submit.lock")
    lock.mkdir()
    (lock / "owner").write_text("1234\n")
    (xpr.stage_dir / jobfiles.SUCCEEDED).write_text("old")
    xpr.system_name = None
    xpr._forget_previous_run()
    assert not lock.exists() and not (xpr.stage_dir / jobfiles.SUCCEEDED).exists()
    assert (xpr.stage_dir / jobfiles.TASK).exists()
