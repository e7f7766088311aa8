"""``xpr`` and array jobs: one ``ls`` row per array, ``-l`` a row per task, ``-i ARRAY`` selects
all the array's tasks. The rows and task markers are written here as ``start_many`` writes them
(no scheduler is involved)."""
import pytest
from click.testing import CliRunner

from expyre import arrays
from expyre.cli import cli

HASH = "HHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHH="


@pytest.fixture
def db_with_an_array(expyre_config, tmp_path):
    config = expyre_config({"cluster": {"host": None, "scheduler": "direct",
                                        "partitions": {"p": {"num_cores": 1, "max_time": "1h"}}}})
    leader = f"f_{HASH}_unique01"
    for n in range(4):
        job_id = f"f_{HASH}_unique0{n + 1}"
        stage = tmp_path / f"run_{job_id}"
        stage.mkdir()
        arrays.write_task_marker(stage, arrays.TaskMarker(f"run/{leader}", arrays.array_name(leader), n))
        config.db.add(job_id, "f", stage, status="succeeded" if n < 3 else "started", system="cluster",
                      remote_id=f"77_{n}", remote_status="done" if n < 3 else "running")
    single = tmp_path / f"run_g_{HASH}_unique09"
    single.mkdir()
    config.db.add(f"g_{HASH}_unique09", "g", single, status="submitted", system="cluster", remote_id="80")
    return config


def test_ls_shows_an_array_as_one_row_and_l_expands_it(db_with_an_array):
    out = CliRunner().invoke(cli, ["ls"]).output.splitlines()
    assert len(out) == 3, out
    assert "f_HHHHHH..._unique01_array" in out[1] and "array of 4: 3 succeeded, 1 started" in out[1]
    assert "77_[0-3]@cluster" in out[1] and "3 done, 1 running" in out[1]
    assert "g_HHHHHH..._unique09" in out[2] and "submitted" in out[2]
    long = CliRunner().invoke(cli, ["ls", "-l"]).output.splitlines()
    assert len(long) == 6 and sum(f"f_{HASH}_unique01_array" in line for line in long) == 4


def test_id_of_an_array_selects_its_tasks_and_a_task_id_one_task(db_with_an_array):
    whole = CliRunner().invoke(cli, ["ls", "-l", "-i", f"f_{HASH}_unique01_array"]).output.splitlines()
    assert len(whole) == 5
    one = CliRunner().invoke(cli, ["ls", "-i", f"f_{HASH}_unique02"]).output.splitlines()
    assert len(one) == 2 and "array of 1: 1 succeeded" in one[1]
    removed = CliRunner().invoke(cli, ["rm", "-y", "-i", f"f_{HASH}_unique01_array"])
    assert removed.exit_code == 0, removed.output
    assert [row["id"] for row in db_with_an_array.db.jobs()] == [f"g_{HASH}_unique09"]


@pytest.mark.parametrize("first, last, shown", [("8602_0", "8602_12", "8602_[0-12]"), ("77.1", "77.4", "77.[1-4]"),
                                                ("1234[0].srv", "1234[7].srv", "1234[0-7].srv"),
                                                ("9_10", "9_13", "9_[10-13]"), ("a1", "b2", "a1..b2")])
def test_array_task_ids_shown_as_one_range(first, last, shown):
    from expyre.listing import id_range
    assert id_range(first, last) == shown
