"""Tests of expyre.jobsdb.JobsDB, the SQLite jobs database."""
import re
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from expyre import jobsdb as jobsdb_module
from expyre.jobsdb import JobsDB

ORIGINAL_SCHEMA = ("CREATE TABLE jobs (id TEXT, name TEXT, from_dir TEXT, status TEXT, system TEXT, "
                   "remote_id TEXT, remote_status TEXT, creation_time DATE, status_time DATE)")
ALL_COLUMNS = ["id", "name", "from_dir", "status", "system", "remote_id", "remote_status",
               "creation_time", "status_time", "remote_dir"]
# quotes, spaces, LIKE wildcards, SQL comment/terminator, non-ASCII
WEIRD_ID = "it's a \"job\" 100%_done -- ; DROP TABLE jobs; ü日本"


@pytest.fixture
def db(tmp_path):
    jdb = JobsDB(tmp_path / "jobs.db")
    yield jdb
    jdb.close()


def ids(rows):
    return [row["id"] for row in rows]


def table_columns(path):
    with sqlite3.connect(str(path)) as conn:
        return [row[1] for row in conn.execute("PRAGMA table_info(jobs)")]


def index_names(path):
    with sqlite3.connect(str(path)) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}


# ---------------------------------------------------------------------------- class attributes


def test_status_lists():
    assert JobsDB.possible_status == ["created", "submitting", "submitted", "started", "succeeded", "failed",
                                      "died", "processed", "cleaned"]
    assert JobsDB.status_group == {
        "ongoing": ["created", "submitting", "submitted", "started"],
        "can_produce_results": ["created", "submitting", "submitted", "started", "succeeded", "died"],
    }
    for status in JobsDB.possible_status:
        assert f"``{status}``" in JobsDB.__doc__


def test_new_database_schema(tmp_path):
    path = tmp_path / "new.db"
    jdb = JobsDB(str(path))
    assert jdb.db_filename == path and isinstance(jdb.db_filename, Path)
    assert table_columns(path) == ALL_COLUMNS
    assert {"jobs_id_unique", "jobs_status", "jobs_name", "jobs_system"} <= index_names(path)
    with sqlite3.connect(str(path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    jdb.close()
    # reopening an up-to-date database changes nothing
    JobsDB(path).close()
    assert table_columns(path) == ALL_COLUMNS


def test_not_a_database(tmp_path):
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not an sqlite file, not at all" * 100)
    with pytest.raises(RuntimeError, match="garbage.db"):
        JobsDB(path)


# ---------------------------------------------------------------------------- add / get / update / remove


def test_add_get(db):
    before = int(time.time())
    db.add("job_1", "job", Path("/stage/job_1"), system="sys", remote_dir="/remote/job_1")
    job = db.get("job_1")
    assert list(job) == ALL_COLUMNS
    assert job["id"] == "job_1" and job["name"] == "job"
    assert job["from_dir"] == "/stage/job_1"  # Path stored as str
    assert job["status"] == "created" and job["system"] == "sys"
    assert job["remote_id"] is None and job["remote_status"] is None
    assert job["remote_dir"] == "/remote/job_1"
    assert before <= job["creation_time"] <= int(time.time()) + 1
    assert job["status_time"] is None
    assert db.get("job_2") is None
    assert db.get("job_") is None and db.get("job.1") is None  # exact, not a pattern

    readable = db.get("job_1", readable=True)
    assert readable["creation_time"] == time.strftime("%Y-%m-%d %X", time.localtime(job["creation_time"]))


def test_add_duplicate(db):
    db.add("job_1", "job", "/stage")
    with pytest.raises(ValueError, match="job_1"):
        db.add("job_1", "other", "/elsewhere")
    assert db.get("job_1")["name"] == "job"
    assert len(list(db.jobs())) == 1


def test_add_bad_status(db):
    with pytest.raises(ValueError, match="bogus"):
        db.add("job_1", "job", "/stage", status="bogus")
    assert db.get("job_1") is None
    db.add("job_2", "job", "/stage", status="submitting", remote_id="123")
    assert db.get("job_2")["status"] == "submitting"


def test_update(db):
    db.add("job_1", "job", "/stage")
    db.add("job_2", "job", "/stage")
    db.update("job_1", remote_id="42", remote_dir="/remote/job_1")
    job = db.get("job_1")
    assert job["remote_id"] == "42" and job["remote_dir"] == "/remote/job_1"
    assert job["status"] == "created" and job["status_time"] is None

    before = int(time.time())
    db.update("job_1", status="submitted", remote_status="PD")
    job = db.get("job_1")
    assert job["status"] == "submitted" and job["remote_status"] == "PD"
    assert before <= job["status_time"] <= int(time.time()) + 1
    # explicit status_time wins
    db.update("job_1", status="started", status_time=1000)
    assert db.get("job_1")["status_time"] == 1000
    # other job untouched
    assert db.get("job_2")["status"] == "created"


def test_update_errors(db):
    db.add("job_1", "job", "/stage")
    with pytest.raises(ValueError, match="no_such_column"):
        db.update("job_1", no_such_column="x")
    with pytest.raises(ValueError, match="'id'"):
        db.update("job_1", id="job_2")
    with pytest.raises(ValueError, match="not_a_status"):
        db.update("job_1", status="not_a_status")
    with pytest.raises(ValueError, match="job_9"):
        db.update("job_9", status="started")
    with pytest.raises(ValueError, match="job_9"):
        db.update("job_9")
    db.update("job_1")  # nothing to change, job exists: fine
    # a rejected update changes nothing
    with pytest.raises(ValueError):
        db.update("job_1", status="started", bogus=1)
    assert db.get("job_1")["status"] == "created"
    # a column name is never taken as SQL
    with pytest.raises(ValueError):
        db.update("job_1", **{"status = 'failed' --": 1})
    assert db.get("job_1")["status"] == "created"


def test_remove(db):
    db.add("job_1", "job", "/stage")
    db.add("job_2", "job", "/stage")
    db.remove("job_1")
    assert db.get("job_1") is None
    assert ids(db.jobs()) == ["job_2"]
    with pytest.raises(ValueError, match="job_1"):
        db.remove("job_1")
    # re-adding a removed id is allowed
    db.add("job_1", "job", "/stage")
    assert ids(db.jobs()) == ["job_2", "job_1"]


# ---------------------------------------------------------------------------- jobs() filters

FILTER_IDS = [
    "calc_abc123_0", "calc_abc123_1", "calc_abc123_10", "calc_abc1234_0", "calc_abc12_0",
    "calc_xyz_0", "other_abc123_0", "Calc_abc123_0", "calc.abc123_0", "calc_abc123_0\n",
    "a%_b", "aXYb", "a%Xb", "ab", "", "calc_abc123_0\nx", "calc_abc123_\n\n", "calc_abc123\n",
]


@pytest.fixture
def filled(db):
    for n, job_id in enumerate(FILTER_IDS):
        db.add(job_id, job_id.split("_")[0], "/stage", system=["sysA", "sysB", None][n % 3])
    return db


def reference(values, patterns):
    """What the original ExPyRe selected: any pattern matching the whole value with re.search."""
    if isinstance(patterns, str):
        patterns = [patterns]
    return [v for v in values if v is not None and any(re.search("^" + p + "$", v) for p in patterns)]


@pytest.mark.parametrize("pattern", [
    # literals
    "calc_abc123_0", re.escape("calc_abc123_0"), re.escape("calc.abc123_0"), "calc.abc123_0",
    re.escape("a%_b"), "a%_b", "nothing", re.escape("calc_abc123_0\n"), "",
    # literal prefixes followed by .* (the restart lookup)
    re.escape("calc_abc123") + "_.*", "calc_abc123.*", re.escape("a%_") + ".*", "a%.*", "a.*", "calc.*",
    # general regexps
    "calc_abc123_[0-9]+", "calc_abc123_\\d", "calc_abc123_1?0", ".*_0", ".*", "(?i:calc_abc123_0)",
    "calc_abc123_0|other.*", "calc_(abc|xyz)_0", "a[%X]_?b", "calc_abc123_.*0", "[^_]*", "a.b",
    # lists
    ["calc_abc123_0", "calc_xyz_0"], [re.escape("calc_abc123") + "_.*", "other.*"],
    ["calc_abc123_.*", "a%_b", "calc_[xyz]+_0"], [],
])
def test_id_filter_matches_reference(filled, pattern):
    assert sorted(ids(filled.jobs(id=pattern))) == sorted(reference(FILTER_IDS, pattern))


def test_results_in_insertion_order(filled):
    assert ids(filled.jobs()) == FILTER_IDS
    # '$' also matches before a final newline, as in the original's re.search
    assert ids(filled.jobs(id=["calc_abc12_0", "calc_abc123_0"])) == ["calc_abc123_0", "calc_abc12_0",
                                                                      "calc_abc123_0\n"]


def test_whole_value_match(filled):
    assert ids(filled.jobs(id="calc_abc123")) == ["calc_abc123\n"]  # '$' matches before a final newline
    assert ids(filled.jobs(id="abc123_0")) == []
    assert ids(filled.jobs(id=re.escape("calc_abc12") + "_.*")) == ["calc_abc12_0"]


def test_name_and_system_filters(filled):
    assert sorted(ids(filled.jobs(name="other"))) == ["other_abc123_0"]
    assert len(list(filled.jobs(name="calc"))) == 10
    systems = {j["id"]: j["system"] for j in filled.jobs()}
    assert ids(filled.jobs(system="sysA")) == [i for i in FILTER_IDS if systems[i] == "sysA"]
    assert ids(filled.jobs(system="sys.*")) == [i for i in FILTER_IDS if systems[i] is not None]
    # jobs without a system never match a system filter, not even ".*"
    assert ids(filled.jobs(system=".*")) == [i for i in FILTER_IDS if systems[i] is not None]
    # filters combine with AND
    combined = ids(filled.jobs(id="calc_abc123_.*", system=["sysA", "sysB"], name="calc"))
    assert combined == [i for i in FILTER_IDS
                        if re.search("^calc_abc123_.*$", i) and systems[i] and i.split("_")[0] == "calc"]


def test_invalid_regexp(filled):
    with pytest.raises(re.error):
        filled.jobs(id="calc_(")


def test_status_filters(db):
    for status in JobsDB.possible_status:
        db.add(f"job_{status}", "job", "/stage", status=status)
    got = {j["status"] for j in db.jobs(status="ongoing")}
    assert got == set(JobsDB.status_group["ongoing"])
    got = {j["status"] for j in db.jobs(status="can_produce_results")}
    assert got == set(JobsDB.status_group["can_produce_results"])
    assert ids(db.jobs(status="failed")) == ["job_failed"]
    got = {j["status"] for j in db.jobs(status=["ongoing", "failed", "created"])}
    assert got == {"created", "submitting", "submitted", "started", "failed"}
    assert list(db.jobs(status=[])) == []
    assert ids(db.jobs(status="ongoing", id="job_s.*")) == ["job_submitting", "job_submitted", "job_started"]
    assert ids(db.jobs(status="failed", id=re.escape("job_started"))) == []


def test_unknown_status_filter_raises_at_call(db):
    db.add("job_1", "job", "/stage")
    with pytest.raises(ValueError, match="runing"):
        db.jobs(status="runing")
    with pytest.raises(ValueError, match="bogus"):
        db.jobs(status=["ongoing", "bogus"])


def test_readable_times(db):
    db.add("job_1", "job", "/stage")
    db.update("job_1", status="started")
    raw = next(db.jobs(readable=False))
    assert isinstance(raw["creation_time"], int) and isinstance(raw["status_time"], int)
    readable = next(db.jobs())
    for column in ("creation_time", "status_time"):
        assert readable[column] == time.strftime("%Y-%m-%d %X", time.localtime(raw[column]))
    db.add("job_2", "job", "/stage")
    assert db.get("job_2", readable=True)["status_time"] is None


def test_str(db):
    assert "0 jobs" in str(db)
    db.add("job_1", "job", "/stage", system="sysA")
    db.add("job_2", "job", "/stage")
    text = str(db)
    assert str(db.db_filename) in text
    assert "job_1" in text and "job_2" in text and "sysA" in text and "remote_dir" in text
    assert "JobsDB(" in repr(db)


# ---------------------------------------------------------------------------- odd ids


def test_weird_id_everywhere(db):
    decoys = ["it's a \"job\" 100X_done -- ; DROP TABLE jobs; ü日本",
              "it's a \"job\" 100%Xdone -- ; DROP TABLE jobs; ü日本",
              "it's a \"job\" 100%_done -- ; DROP TABLE jobs; ü日本!",
              "it's a \"job\" 100%_done -- ; DROP TABLE jobs; ü日",
              "it's a \"job\" 100%_done -- ; DROP TABLE jobs; ü日本\u65e5"]
    for decoy in decoys:
        db.add(decoy, "decoy", "/stage")
    db.add(WEIRD_ID, "it's", "/stage/ü 'dir'", system="sys 'x'", remote_dir="/r/it's")
    assert db.get(WEIRD_ID)["from_dir"] == "/stage/ü 'dir'"
    assert ids(db.jobs(id=re.escape(WEIRD_ID))) == [WEIRD_ID]
    assert ids(db.jobs(name=re.escape("it's"))) == [WEIRD_ID]
    assert ids(db.jobs(system=re.escape("sys 'x'"))) == [WEIRD_ID]

    # literal prefix containing % and _: only ids that really start with it
    prefix = "it's a \"job\" 100%_"
    assert set(ids(db.jobs(id=re.escape(prefix) + ".*"))) == {i for i in [WEIRD_ID] + decoys
                                                                if i.startswith(prefix)}
    shorter = WEIRD_ID[:-1]
    expected = [i for i in decoys + [WEIRD_ID] if i.startswith(shorter)]
    assert ids(db.jobs(id=re.escape(shorter) + ".*")) == expected

    db.update(WEIRD_ID, status="succeeded", remote_status="it's done; 100%")
    assert db.get(WEIRD_ID)["remote_status"] == "it's done; 100%"
    with pytest.raises(ValueError):
        db.add(WEIRD_ID, "again", "/stage")
    db.remove(WEIRD_ID)
    assert db.get(WEIRD_ID) is None
    assert sorted(ids(db.jobs())) == sorted(decoys)


def test_prefix_successor_edges(db):
    top = "\U0010ffff"
    values = ["x" + top, "x" + top + "1", "x" + top + top + "2", "y", "x\ud7ff1", "x\ue000", "x\ud7ff"]
    for v in values:
        db.add(v, "n", "/stage")
    for prefix in ["x" + top, "x" + top + top, "x\ud7ff", "x", top]:
        expected = [v for v in values if v.startswith(prefix)]
        assert ids(db.jobs(id=re.escape(prefix) + ".*")) == expected, repr(prefix)


def test_successor_helper():
    succ = jobsdb_module._successor
    assert succ("abc") == "abd"
    assert succ("a\U0010ffff") == "b"
    assert succ("\U0010ffff") is None
    assert succ("") is None
    assert succ("\ud7ff") == "\ue000"


def test_split_literal_helper():
    split = jobsdb_module._split_literal
    assert split(re.escape("a.b c%_'ü")) == ("a.b c%_'ü", "")
    assert split(re.escape("name_hash") + "_.*") == ("name_hash_", ".*")
    assert split("ab*") == ("ab", "*")
    assert split("a\\d") == ("a", "\\d")
    assert split("a\\1") == ("a", "\\1")


# ---------------------------------------------------------------------------- old databases


def make_original_db(path, rows):
    conn = sqlite3.connect(str(path))
    conn.execute(ORIGINAL_SCHEMA)
    conn.executemany("INSERT INTO jobs (id, name, from_dir, status, system, remote_id, remote_status, "
                     "creation_time, status_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    conn.commit()
    conn.close()


def test_migrate_original_database(tmp_path):
    path = tmp_path / "jobs.db"
    make_original_db(path, [
        ("calc_h1_0", "calc", "/stage/calc_h1_0", "succeeded", "sysA", "1001", "CD", 1600000000, 1600000100),
        ("calc_h1_1", "calc", "/stage/calc_h1_1", "submitted", "sysA", "1002", None, 1600000000, None),
    ])
    jdb = JobsDB(path)
    assert table_columns(path) == ALL_COLUMNS
    assert {"jobs_id_unique", "jobs_status", "jobs_name", "jobs_system"} <= index_names(path)
    jobs = list(jdb.jobs(readable=False))
    assert ids(jobs) == ["calc_h1_0", "calc_h1_1"]
    assert jobs[0] == {"id": "calc_h1_0", "name": "calc", "from_dir": "/stage/calc_h1_0",
                       "status": "succeeded", "system": "sysA", "remote_id": "1001", "remote_status": "CD",
                       "creation_time": 1600000000, "status_time": 1600000100, "remote_dir": None}
    assert next(jdb.jobs())["creation_time"] == time.strftime("%Y-%m-%d %X", time.localtime(1600000000))
    assert ids(jdb.jobs(status="ongoing")) == ["calc_h1_1"]
    jdb.update("calc_h1_1", status="started", remote_dir="/remote/calc_h1_1")
    jdb.add("calc_h1_2", "calc", "/stage/calc_h1_2")
    with pytest.raises(ValueError):
        jdb.add("calc_h1_0", "calc", "/stage")
    jdb.close()

    # opening again is a no-op; the original ExPyRe's way of inserting (named columns) still works
    jdb = JobsDB(path)
    with sqlite3.connect(str(path)) as conn:
        conn.execute("INSERT into jobs(id, name, from_dir, status, system, remote_id, remote_status, "
                     "creation_time, status_time) values ('calc_h1_3', 'calc', '/s', 'created', NULL, NULL, "
                     "NULL, 1600000000, NULL)")
    assert ids(jdb.jobs(id=re.escape("calc_h1") + "_.*")) == [f"calc_h1_{i}" for i in range(4)]
    assert jdb.get("calc_h1_1")["remote_dir"] == "/remote/calc_h1_1"
    jdb.close()


def test_migrate_original_database_with_repeated_id(tmp_path):
    path = tmp_path / "jobs.db"
    make_original_db(path, [("dup", "n", "/s", "created", None, None, None, 1, None),
                            ("dup", "n", "/s", "failed", None, None, None, 2, None)])
    with pytest.warns(RuntimeWarning, match="repeated"):
        jdb = JobsDB(path)
    assert "remote_dir" in table_columns(path)
    assert len(list(jdb.jobs(id="dup"))) == 2
    assert jdb.get("dup")["creation_time"] == 1
    with pytest.raises(ValueError, match="dup"):
        jdb.add("dup", "n", "/s")
    jdb.add("new", "n", "/s")
    assert ids(jdb.jobs()) == ["dup", "dup", "new"]
    jdb.close()


def test_table_missing_original_columns(tmp_path):
    path = tmp_path / "jobs.db"
    with sqlite3.connect(str(path)) as conn:
        conn.execute("CREATE TABLE jobs (id TEXT, name TEXT)")
    with pytest.raises(RuntimeError, match="not a jobs database"):
        JobsDB(path)


# ---------------------------------------------------------------------------- query plans


def plan(jdb, sql, params):
    rows = jdb._connection().execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()
    return " | ".join(row[-1] for row in rows)


@pytest.fixture
def indexed(db):
    for i in range(50):
        db.add(f"calc_h{i % 5}_{i}", "calc", "/stage", system="sysA")
    return db


def test_get_uses_index(indexed):
    text = plan(indexed, jobsdb_module._GET_SQL, ["calc_h1_1"])
    assert "USING INDEX jobs_id_unique" in text and "SCAN" not in text, text


@pytest.mark.parametrize("kwargs", [
    dict(id=re.escape("calc_h1_1")),
    dict(id=[re.escape("calc_h1_1"), re.escape("calc_h2_2")]),
    dict(id=re.escape("calc_h1_1"), status="ongoing", name="calc", system="sysA"),
    dict(id=re.escape("calc_h1") + "_.*"),
    dict(id=re.escape("calc_h1") + "_.*", status="ongoing", name="calc"),
])
def test_id_lookup_uses_index(indexed, kwargs):
    sql, params = indexed._query(**kwargs)
    text = plan(indexed, sql, params)
    assert "USING INDEX jobs_id_unique" in text and "SCAN" not in text, text


def test_status_lookup_uses_index(indexed):
    sql, params = indexed._query(status="ongoing")
    text = plan(indexed, sql, params)
    assert "USING INDEX jobs_status" in text and "SCAN" not in text, text


def test_general_regexp_filters_in_sql(indexed):
    sql, params = indexed._query(id="calc_h[12]_1[0-9]")
    assert "REGEXP" in sql
    expected = ["calc_h1_11", "calc_h2_12", "calc_h1_16", "calc_h2_17"]
    assert ids(indexed.jobs(id="calc_h[12]_1[0-9]")) == expected


# ---------------------------------------------------------------------------- locking and recovery


def test_unlock_keeps_rows(tmp_path):
    path = tmp_path / "jobs.db"
    jdb = JobsDB(path)
    for i in range(20):
        jdb.add(f"job_{i}", "job", "/stage", remote_dir=f"/r/{i}")
    jdb.update("job_3", status="failed")
    before = list(jdb.jobs(readable=False))
    jdb.unlock()
    assert (tmp_path / "jobs.db.old").exists()
    assert list(jdb.jobs(readable=False)) == before
    assert list(JobsDB(path).jobs(readable=False)) == before
    jdb.add("job_new", "job", "/stage")
    assert jdb.get("job_new") is not None
    assert not list(tmp_path.glob("*.unlock"))
    jdb.close()


@pytest.mark.parametrize("journal_mode", [None, "DELETE"])
def test_unlock_keeps_journal_mode(tmp_path, journal_mode):
    path = tmp_path / "jobs.db"
    JobsDB(path).close()  # a WAL database
    jdb = JobsDB(path, journal_mode=journal_mode)
    jdb.add("job_1", "job", "/stage")
    jdb.unlock()
    assert ids(jdb.jobs()) == ["job_1"]
    mode = jdb._connection().execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == ("wal" if journal_mode is None else "delete")
    jdb.close()


def test_stuck_lock_then_unlock(tmp_path):
    path = tmp_path / "jobs.db"
    jdb = JobsDB(path, busy_timeout=0.1, lock_retries=1, retry_wait=0.05)
    jdb.add("job_1", "job", "/stage")
    # another "process" takes the write lock and never lets go
    holder = sqlite3.connect(str(path), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    with pytest.raises(RuntimeError, match="locked"):
        jdb.add("job_2", "job", "/stage")
    assert jdb.get("job_1") is not None  # reads still work in WAL mode
    jdb.unlock()
    jdb.add("job_2", "job", "/stage")
    assert ids(jdb.jobs()) == ["job_1", "job_2"]
    holder.execute("ROLLBACK")
    holder.close()
    jdb.close()


def test_threads_share_one_object(db):
    errors = []

    def work(tag):
        try:
            for i in range(100):
                db.add(f"{tag}_{i}", tag, "/stage")
                db.update(f"{tag}_{i}", status="submitted")
                assert db.get(f"{tag}_{i}")["status"] == "submitted"
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(f"t{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(list(db.jobs(status="submitted"))) == 400


WORKER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from expyre.jobsdb import JobsDB

    db_path, tag, go, journal_mode = sys.argv[1:5]
    while not Path(go).exists():
        time.sleep(0.002)
    db = JobsDB(db_path, journal_mode=journal_mode)
    for i in range(300):
        db.add(f"{tag}_{i}", tag, "/stage")
        db.update(f"{tag}_{i}", status="submitted", remote_id=str(i))
        assert db.get(f"{tag}_{i}")["status"] == "submitted"
    db.close()
    print(time.time())
""")


@pytest.mark.parametrize("journal_mode", ["WAL", "DELETE"])
def test_two_processes_lose_nothing(tmp_path, python_exe, journal_mode):
    path = tmp_path / "shared.db"
    go = tmp_path / "go"
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    procs = [subprocess.Popen([python_exe, str(script), str(path), tag, str(go), journal_mode],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for tag in ("p1", "p2")]
    go.touch()  # both start at once, racing on creating the database too
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    jdb = JobsDB(path, journal_mode=None)
    jobs = list(jdb.jobs(readable=False))
    assert len(jobs) == 600
    assert {j["status"] for j in jobs} == {"submitted"}
    for tag in ("p1", "p2"):
        mine = list(jdb.jobs(id=re.escape(tag) + "_.*"))
        assert sorted(int(j["remote_id"]) for j in mine) == list(range(300))
    jdb.close()


def test_fork_child_gets_own_connection(tmp_path):
    if sys.platform == "win32" or not hasattr(__import__("os"), "fork"):
        pytest.skip("needs fork")
    import multiprocessing

    jdb = JobsDB(tmp_path / "jobs.db")
    jdb.add("parent", "p", "/stage")
    ctx = multiprocessing.get_context("fork")
    proc = ctx.Process(target=_child_adds, args=(jdb,))
    proc.start()
    proc.join(60)
    assert proc.exitcode == 0
    assert ids(jdb.jobs()) == ["parent", "child"]
    jdb.close()


def _child_adds(jdb):
    jdb.add("child", "c", "/stage")
