"""The jobs database's batches: jobs created together are found again with one lookup."""
import sqlite3

import pytest

from expyre.jobsdb import JobsDB


def tables(path):
    with sqlite3.connect(str(path)) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'index')")}


def test_batch_jobs_in_order_and_filtered_by_status(tmp_path):
    db = JobsDB(tmp_path / "jobs.db")
    for i in range(5):
        db.add(f"f_h{i}_x", "f", f"/stage/{i}", batch="f_h0" if i != 3 else None)
    db.add("other_h_x", "other", "/stage/o", batch="other_h")
    db.update("f_h1_x", status="processed")
    assert [r["id"] for r in db.batch_jobs("f_h0")] == ["f_h0_x", "f_h1_x", "f_h2_x", "f_h4_x"]
    assert [r["id"] for r in db.batch_jobs("f_h0", status="can_produce_results")] == ["f_h0_x", "f_h2_x", "f_h4_x"]
    assert db.batch_jobs("no such batch") == []
    # the rows are those of jobs() (same columns), and removing a job removes it from its batch
    assert db.batch_jobs("other_h")[0] == db.get("other_h_x")
    db.remove("f_h2_x")
    assert [r["id"] for r in db.batch_jobs("f_h0")] == ["f_h0_x", "f_h1_x", "f_h4_x"]
    with sqlite3.connect(str(tmp_path / "jobs.db")) as conn:
        assert conn.execute("SELECT count(*) FROM batches WHERE job_id = 'f_h2_x'").fetchone()[0] == 0
    db.close()


def test_batch_lookup_uses_the_index(tmp_path):
    db = JobsDB(tmp_path / "jobs.db")
    db.add("a_1", "a", "/s", batch="b")
    with sqlite3.connect(str(tmp_path / "jobs.db")) as conn:
        plan = " ".join(str(row) for row in conn.execute("EXPLAIN QUERY PLAN SELECT * FROM batches JOIN jobs ON "
                                                          "jobs.id = batches.job_id WHERE batches.batch = 'b'"))
    assert "batches_batch" in plan and "jobs_id_unique" in plan
    db.close()


def test_database_of_an_earlier_version_gains_the_batches_table(tmp_path):
    """A database written before batches existed (jobs table with remote_dir and indexes) is
    upgraded in place on opening, and its jobs are untouched."""
    path = tmp_path / "jobs.db"
    with sqlite3.connect(str(path)) as conn:
        conn.execute("CREATE TABLE jobs (id TEXT, name TEXT, from_dir TEXT, status TEXT, system TEXT, remote_id TEXT, "
                     "remote_status TEXT, creation_time DATE, status_time DATE, remote_dir TEXT)")
        for sql in ("CREATE UNIQUE INDEX jobs_id_unique ON jobs (id)", "CREATE INDEX jobs_status ON jobs (status)",
                    "CREATE INDEX jobs_name ON jobs (name)", "CREATE INDEX jobs_system ON jobs (system)"):
            conn.execute(sql)
        conn.execute("INSERT INTO jobs VALUES ('old_1', 'old', '/s', 'succeeded', 'sys', '7', 'done', 1, 2, '/r')")
    assert "batches" not in tables(path)
    db = JobsDB(path)
    assert {"batches", "batches_batch"} <= tables(path)
    assert db.get("old_1")["status"] == "succeeded"
    db.add("new_1", "new", "/s", batch="new")
    assert [r["id"] for r in db.batch_jobs("new")] == ["new_1"]
    db.close()


def test_add_many_adds_all_in_one_transaction_or_none(tmp_path):
    db = JobsDB(tmp_path / "jobs.db")
    db.add_many([dict(id=f"m_h_{i}", name="m", from_dir=f"/s/{i}", batch="m_h") for i in range(3)])
    assert [r["id"] for r in db.batch_jobs("m_h")] == ["m_h_0", "m_h_1", "m_h_2"]
    assert {r["status"] for r in db.jobs()} == {"created"}
    # one id that exists already: nothing of the call is added, and the error names that id
    with pytest.raises(ValueError, match="cannot add job 'm_h_1', a job with this id already exists"):
        db.add_many([dict(id="n_1", name="n", from_dir="/s/n1"), dict(id="m_h_1", name="m", from_dir="/s/x")])
    # the same id twice in one call
    with pytest.raises(ValueError, match="cannot add job 'n_2', a job with this id already exists"):
        db.add_many([dict(id="n_2", name="n", from_dir="/s/n2"), dict(id="n_2", name="n", from_dir="/s/n2")])
    assert db.get("n_1") is None and db.get("n_2") is None and len(list(db.jobs())) == 3
    db.close()
