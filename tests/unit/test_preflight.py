"""Preflight's pieces that need no job side: reading the pickles, judging a report, keeping it."""
import io
import pickle
import pickletools
import sqlite3

import cloudpickle
import pytest

from expyre import preflight, stage
from expyre.jobsdb import JobsDB
from expyre.preflight import Report, assess, scan_pickle


class Thing:
    pass


def test_stack_global_modules_are_found_through_memo_gets():
    # protocol 4 memoizes the module name of the first global; the second global of the same
    # module reaches STACK_GLOBAL through a memo get, not a string push
    data = pickletools.optimize(pickle.dumps([io.BytesIO, io.StringIO, sqlite3.Row], protocol=4))
    ops = [op.name for op, _, _ in pickletools.genops(data)]
    assert "STACK_GLOBAL" in ops
    assert scan_pickle(data).modules == {"_io", "sqlite3"}
    plain = pickle.dumps([io.BytesIO, io.StringIO], protocol=4)
    assert any(op.name in ("BINGET", "LONG_BINGET") for op, _, _ in pickletools.genops(plain))
    assert scan_pickle(plain).modules == {"_io"}


def test_protocol_0_and_2_globals():
    assert scan_pickle(pickle.dumps(sqlite3.Row, protocol=0)).modules == {"sqlite3"}
    assert scan_pickle(pickle.dumps(Thing(), protocol=2)).modules >= {__name__}


def test_by_value_code_is_recognised_and_builtins_never_need_a_check():
    scan = scan_pickle(cloudpickle.dumps(lambda x: x + 1, protocol=5))
    assert scan.by_value
    assert not scan_pickle(cloudpickle.dumps(len, protocol=5)).by_value
    assert preflight.top_level({"builtins", "__main__", "numpy._core.multiarray", "copyreg"}) == ["numpy"]


def test_the_staged_task_records_modules_and_versions(tmp_path):
    numpy = pytest.importorskip("numpy")
    task = stage.pickle_task(numpy.sum, [numpy.float64(2.0)], {})
    stage.write_task(task, tmp_path)
    record = stage.read_preflight_record(tmp_path)
    assert "numpy._core.multiarray" in record["modules"]
    assert record["versions"]["numpy"] == numpy.__version__
    assert record["by_value"] is False


def _report(python="3.11.2", **modules):
    return Report(python=python, modules={name: ({"ok": True, "version": v} if v else
                                                 {"ok": False, "error": "ModuleNotFoundError: nope"})
                                          for name, v in modules.items()})


def _record(modules=(), versions=None, by_value=False, python="3.11.7"):
    return {"python": python, "modules": list(modules), "by_value": by_value, "versions": versions or {}}


def test_a_missing_module_is_an_error_naming_versions_and_the_fixes():
    errors, _ = assess(_record(["helpers"], {"helpers": "1.0"}), _report(helpers=None))
    assert [e.module for e in errors] == ["helpers"]
    message = preflight.error_message("cluster", errors, _report())
    assert "helpers" in message and "1.0" in message and "cluster" in message
    assert "input_files" in message and "register_pickle_by_value" in message


def test_numpy_2_internals_against_numpy_1():
    record = _record(["numpy", "numpy._core.numeric"], {"numpy": "2.2.0"})
    errors, _ = assess(record, _report(numpy="1.26.4"))
    assert errors and "numpy._core.numeric" in errors[0].problem
    # numpy 1.26 provides numpy._core.multiarray (scalars pickled by numpy 2 load there) ...
    assert assess(_record(["numpy._core.multiarray"], {"numpy": "2.2.0"}), _report(numpy="1.26.4"))[0] == []
    # ... older numpy 1.x does not
    assert assess(_record(["numpy._core.multiarray"], {"numpy": "2.2.0"}), _report(numpy="1.24.2"))[0]
    # numpy 2 on both sides: only a version note
    errors, notes = assess(record, _report(numpy="2.1.0"))
    assert errors == [] and [n.module for n in notes] == ["numpy"]


def test_python_minor_matters_only_for_code_by_value():
    assert assess(_record(by_value=True), _report(python="3.10.4"))[0]
    errors, notes = assess(_record(by_value=False), _report(python="3.10.4"))
    assert errors == [] and notes[0].module == "python"
    assert assess(_record(by_value=True), _report(python="3.11.2"))[0] == []


def test_a_python_that_does_not_answer():
    report = preflight.parse_probe("bash: python9: command not found\n")
    errors, _ = assess(_record(), report)
    assert errors[0].module == "python" and "command not found" in errors[0].problem


def test_probe_output_is_parsed_with_failed_command_lines():
    out = ("profile noise\nEXPYRE-PREFLIGHT-COMMAND-FAILED commands:2 127\n\nEXPYRE-PREFLIGHT-REPORT "
           '{"python": "3.11.2", "executable": "/x/python", "modules": {"numpy": {"ok": true, "version": "1.26.4"}}}\n')
    report = preflight.parse_probe(out)
    assert report.python == "3.11.2" and report.failed_commands == [("commands:2", 127)]
    assert report.modules["numpy"]["version"] == "1.26.4"


def test_reports_are_kept_in_the_jobs_db_with_a_time_to_live(tmp_path):
    db = JobsDB(tmp_path / "jobs.db")
    report = _report(numpy="2.0.0")
    db.preflight_put("cluster", "key", report.to_json(), report.checked_at)
    assert Report.from_json(db.preflight_get("cluster", "key", max_age=60)).modules == report.modules
    db.preflight_put("cluster", "key", report.to_json(), report.checked_at - 120)
    assert db.preflight_get("cluster", "key", max_age=60) is None
    assert db.preflight_get("other", "key", max_age=1e9) is None


def test_an_old_jobs_db_gets_the_preflight_table(tmp_path):
    path = tmp_path / "jobs.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE jobs (id TEXT, name TEXT, from_dir TEXT, status TEXT, system TEXT, "
                 "remote_id TEXT, remote_status TEXT, creation_time DATE, status_time DATE)")
    conn.execute("INSERT INTO jobs (id, name, status) VALUES ('a_1', 'a', 'created')")
    conn.commit()
    conn.close()
    db = JobsDB(path)
    assert db.get("a_1")["status"] == "created"
    db.preflight_put("s", "k", "{}", 1e12)
    assert db.preflight_get("s", "k", max_age=1) == "{}"


def test_config_key_preflight(expyre_config):
    config = expyre_config({"a": {"scheduler": "direct", "partitions": {"p": {"num_cores": 1}}},
                            "b": {"scheduler": "direct", "preflight": True, "partitions": {"p": {"num_cores": 1}}}},
                           preflight=False)
    assert config.systems["a"].preflight is False and config.systems["b"].preflight is True
    assert config.systems["local"].preflight is False
    assert preflight.enabled(config.systems["a"], True) is True


def test_config_key_preflight_must_be_a_bool(expyre_config):
    from expyre.config import ConfigError
    with pytest.raises(ConfigError, match="preflight: must be true or false"):
        expyre_config({"a": {"scheduler": "direct", "preflight": "no", "partitions": {"p": {"num_cores": 1}}}})


# --------------------------------------------------------------------------- xpr check parsers

def test_slurm_partitions_and_time_limits():
    from expyre_slurm import check
    parsed = check.parse_partitions("standard|2|infinite\ndebug|4|30:00\nlong|8|2-00:00:00\n")
    assert parsed == {"standard": (2, None), "debug": (4, 1800.0), "long": (8, 172800.0)}
    partitions = {"standard": {"num_cores": 4, "max_time": None}, "debug": {"num_cores": 4, "max_time": 3600},
                  "gone": {"num_cores": 1, "max_time": None}}
    results = check.parse_check({"sinfo": (0, "slurm 22.05.8"), "squeue": (0, ""),
                                 "partitions": (0, "standard|2|infinite\ndebug|4|30:00")}, partitions)
    by_name = {r.name: r for r in results}
    assert not by_name["partition 'standard'"].ok and "num_cores 4" in by_name["partition 'standard'"].detail
    assert not by_name["partition 'debug'"].ok and "max_time" in by_name["partition 'debug'"].detail
    assert not by_name["partition 'gone'"].ok and "has no partition 'gone'" in by_name["partition 'gone'"].detail


def test_sge_queue_slots_and_h_rt():
    from expyre_sge import check
    text = ("qname                 regular\nhostlist              localhost\n"
            "slots                 1,[localhost=2]\nh_rt                  01:00:00\n")
    assert check.parse_queue(text) == (2, 3600.0)
    results = check.parse_check({"qstat": (0, ""), "qconf": (0, "regular\n"), "queue:regular": (0, text)},
                                {"regular": {"num_cores": 2, "max_time": 1800}})
    assert all(r.ok for r in results), results


def test_pbs_queues_and_node_cores():
    from expyre_pbs import check
    assert check.parse_queues("Queue: workq\n    resources_max.walltime = 24:00:00\nQueue: debug\n") == \
        {"workq": 86400.0, "debug": None}
    assert check.parse_node_cores("node1\n     state = free\n     np = 16\nnode2\n     np = 8\n") == 16
    results = check.parse_check({"qstat": (0, "Queue: workq\n"), "pbsnodes": (0, "n1\n  np = 2\n")},
                                {"workq": {"num_cores": 4, "max_time": None}})
    assert not results[-1].ok and "num_cores 4" in results[-1].detail


def test_check_system_hook_through_the_plugin_manager():
    """The hook as xpr check calls it: the built-in direct scheduler offers no checks; Slurm's
    runs its commands through a real local shell and reports a partition that cannot exist."""
    from expyre import plugins
    from expyre.transports.local import LocalShell
    shell = LocalShell()
    assert plugins.check_system("direct", {}, shell) is None
    results = plugins.check_system("slurm", {"no-such": {"num_cores": 1, "max_time": None}}, shell)
    names = [r.name for r in results]
    assert names[:2] == ["sinfo answers", "squeue answers"]
    assert not all(r.ok for r in results) and all(r.fix for r in results if not r.ok)


def test_distribution_versions_are_looked_up_once_per_process(monkeypatch):
    # a function from the user's own module (no distribution, no __version__): a thousand calls
    # of a map must not search the installed distributions a thousand times
    from importlib import metadata

    from expyre.preflight import scan
    scan._distribution_version.cache_clear()
    looked_up = []
    real_version = metadata.version
    monkeypatch.setattr(metadata, "version", lambda dist: (looked_up.append(dist), real_version(dist))[1])
    assert [scan.local_version("my_own_module_xyz") for _ in range(3)] == [None] * 3
    assert scan.local_version("cloudpickle") == real_version("cloudpickle")
    scan.local_version("cloudpickle")
    assert looked_up.count("my_own_module_xyz") == 1
    scan._distribution_version.cache_clear()
