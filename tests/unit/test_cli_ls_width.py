"""``xpr ls`` on a terminal: rows that fit its width (80 columns here) and still show what a user
checks (the id's start and unique suffix, the status, the remote id, an array's task counts);
piped, the full rows as before. The jobs are written to the database as ``start`` and
``start_many`` write them (no scheduler is involved)."""
import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
import time

import pytest
from click.testing import CliRunner

from expyre import arrays, listing
from expyre.cli import cli

HASH = "kq3ZPuW0x9dL2mC5bN8vR1tY4sA7eF6gH0jK2lM4nP8="
NOW = time.time()
LONG_NAME = "relax_structure_Si_diamond_0042"


def _job_id(name, unique):
    return f"{name}_{HASH}_{unique}"


@pytest.fixture
def cluster_db(expyre_config, tmp_path):
    """Single jobs with long names and arrays on Slurm (13 tasks), Grid Engine and PBS."""
    config = expyre_config({"cluster": {"host": None, "scheduler": "direct",
                                        "partitions": {"p": {"num_cores": 1, "max_time": "1h"}}}})

    def add(name, unique, status, system, remote_id, remote_status, age, leader=None, index=0):
        job_id = _job_id(name, unique)
        stage = tmp_path / f"run_{job_id}"
        stage.mkdir()
        if leader:
            arrays.write_task_marker(stage, arrays.TaskMarker(f"run/{leader}", arrays.array_name(leader), index))
        config.db.add(job_id, name, stage, status=status, system=system, remote_id=remote_id,
                      remote_status=remote_status)
        config.db.update(job_id, status_time=int(NOW - age))

    add(LONG_NAME, "x7Kp2QaZ", "succeeded", "cluster", "8544", "done", 30 * 3600)
    add("relax_structure_Si_diamond_0043", "Bq9rT1mW", "died", "cluster", "8545", "timeout", 26 * 3600)
    add("md_run", "a1b2c3d4", "started", "cluster", "8601", "running", 600)
    for i in range(13):
        status, remote = ("succeeded", "done") if i < 10 else ("started", "running") if i < 12 else ("failed", "done")
        add("relax", f"r{i:07d}", status, "cluster", f"8602_{i}", remote, 300 - i, _job_id("relax", "r0000000"), i)
    for i in range(4):
        add("phonons", f"g{i + 1:07d}", "submitted", "sge_cluster", f"77.{i + 1}", "held" if i == 0 else "queued",
            120, _job_id("phonons", "g0000001"), i)
    for i in range(8):
        add("elastic_constants", f"p{i:07d}", "started" if i < 5 else "submitted", "pbs_cluster",
            f"1234[{i}].server", "running" if i < 5 else "queued", 60, _job_id("elastic_constants", "p0000000"), i)
    add("single_point", "zz99yy88", "processed", "local", "31337", "done", 40 * 24 * 3600)
    return config


def _ls(*args):
    result = CliRunner().invoke(cli, ["ls", *args])
    assert result.exit_code == 0, result.output
    return result.output.splitlines()


def _row_of(lines, text):
    rows = [line for line in lines if text in line]
    assert len(rows) == 1, (text, lines)
    return rows[0]


def _check_fits(lines, width):
    assert all(len(line) <= width for line in lines), "\n" + "\n".join(f"{len(line)}: {line}" for line in lines)


def test_rows_of_jobs_on_several_systems_fit_80_columns(cluster_db):
    lines = _ls("-w", "80")
    _check_fits(lines, 80)
    assert len(lines) == 1 + 3 + 3 + 1  # header, 3 single jobs, 3 arrays, 1 single job
    # a single job: start of its id, its unique suffix, status, remote id and system
    died = _row_of(lines, "_Bq9rT1mW")
    assert died.split()[1].startswith("relax_str") and "died (timeout)" in died and "8545@cluster" in died
    # the arrays: named, with their task ranges and how many tasks are where
    slurm = _row_of(lines, "_r0000000_array")
    assert "8602_[0-12]@cluster" in slurm and "r2 d10 f1" in slurm
    sge = _row_of(lines, "_g0000001_array")
    assert "77.[1-4]@sge_cluster" in sge and "q4" in sge
    pbs = _row_of(lines, "_p0000000_array")
    assert "1234[0-7].server@pbs_cluster" in pbs and "q3 r5" in pbs
    assert lines[0].split() == ["#", "id", "status", "since", "remote_id@system"]


def test_rows_of_one_system_fit_80_columns_with_the_tasks_statuses_spelled_out(cluster_db):
    lines = _ls("-w", "80", "-S", "cluster")
    _check_fits(lines, 80)
    assert lines[0].split()[-1] == "remote_id"  # one system: not repeated on every row
    slurm = _row_of(lines, "_r0000000_array")
    assert slurm.split()[1].startswith("rel") and "10 succeeded, 2 started, 1 failed" in slurm
    assert slurm.split()[-1] == "8602_[0-12]"
    md = _row_of(lines, "_a1b2c3d4")
    # "since" is the time of day, or the date when ten minutes ago was yesterday (a run near midnight)
    shown = listing.since(int(NOW - 600), time.time())
    assert md.split()[1].startswith("md_run") and md.split()[2] == "started" and f" {shown} " in md


def test_a_wide_terminal_shows_whole_ids_and_names_the_one_system_in_the_header(cluster_db):
    lines = _ls("-w", "200", "-S", "cluster")
    assert lines[0].split()[-1] == "remote_id@cluster"
    assert _job_id(LONG_NAME, "x7Kp2QaZ") in _row_of(lines, "_x7Kp2QaZ")
    assert "array of 13: 10 succeeded, 2 started, 1 failed" in _row_of(lines, "_r0000000_array")
    assert _row_of(lines, "_a1b2c3d4").split()[2:3] == ["started"]  # running says nothing more


def test_w_0_and_l_keep_the_full_rows(cluster_db):
    full = _ls("-w", "0")
    assert full[0].split()[:4] == ["#", "id", "status", "(since)"] and len(full) == 8
    row = _row_of(full, "_x7Kp2QaZ")
    assert "succeeded (" + time.strftime("%Y-%m-%d %X", time.localtime(int(NOW - 30 * 3600))) + ")" in row
    assert max(len(line) for line in full) > 80
    assert len(_ls("-l", "-w", "80")) == 1 + 4 + 13 + 4 + 8  # -l: every task on its row, whatever -w says


def _xpr_ls(dbfile, stdout, env):
    command = [sys.executable, "-c", "from expyre.cli import cli; cli()", "--dbfile", str(dbfile), "ls"]
    return subprocess.run(command, stdout=stdout, stderr=subprocess.PIPE, env=env, timeout=60, check=True)


def test_on_a_terminal_rows_fit_its_width_and_piped_they_are_whole(cluster_db):
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 80, 0, 0))
    try:
        _xpr_ls(cluster_db.db.db_filename, terminal, env)
        os.close(terminal)
        terminal = None
        screen = b""
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # Linux: EIO once the terminal side is closed and all is read
                break
            if not chunk:
                break
            screen += chunk
    finally:
        if terminal is not None:
            os.close(terminal)
        os.close(controller)
    lines = screen.decode().replace("\r\n", "\n").splitlines()
    _check_fits(lines, 80)
    assert len(lines) == 8 and "8602_[0-12]@cluster" in _row_of(lines, "_r0000000_array")
    piped = _xpr_ls(cluster_db.db.db_filename, subprocess.PIPE, env).stdout.decode().splitlines()
    assert len(piped) == 8 and _job_id(LONG_NAME, "x7Kp2QaZ")[:38] in _row_of(piped, "_x7Kp2QaZ")
    assert max(len(line) for line in piped) > 80


@pytest.mark.parametrize("status, remote, shown", [
    ("started", "running", "started"), ("submitted", "queued", "submitted"), ("submitted", "held", "submitted (held)"),
    ("died", "timeout", "died (timeout)"), ("died", "failed", "died"), ("succeeded", "done", "succeeded"),
    ("processed", "timeout", "processed"), ("created", None, "created"), ("started", "done", "started (done)")])
def test_the_schedulers_status_is_shown_only_when_it_adds_to_the_jobs(status, remote, shown):
    assert listing.job_state(status, remote) == shown


def test_since_is_a_time_today_a_date_in_the_last_half_year_else_a_date_with_its_year():
    now = time.mktime((2026, 12, 3, 18, 30, 0, 0, 0, -1))
    assert listing.since(time.mktime((2026, 12, 3, 0, 5, 0, 0, 0, -1)), now) == "00:05"
    assert listing.since(time.mktime((2026, 12, 2, 23, 55, 0, 0, 0, -1)), now) == "Dec 02"
    assert listing.since(time.mktime((2026, 2, 1, 12, 0, 0, 0, 0, -1)), now) == "2026-02-01"
    assert listing.since(None, now) == "-"


@pytest.mark.parametrize("width", [18, 24, 40, 69, 100])
def test_a_shortened_id_keeps_its_start_and_unique_suffix(width):
    job_id = _job_id(LONG_NAME, "x7Kp2QaZ")
    shown = listing.fit_id(job_id, width)
    assert len(shown) <= max(width, 6 + 3 + 9)
    assert shown == job_id if width >= len(job_id) else (shown.startswith("relax_") and shown.endswith("_x7Kp2QaZ"))
    array = listing.fit_id(arrays.array_name(job_id), 30)
    assert len(array) == 30 and array.endswith("_x7Kp2QaZ_array")
