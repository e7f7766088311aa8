"""The per-host record of status queries in the jobs database (expyre.politeness) and the
``limits`` config keys. The five-process run against the real Slurm is in
tests/integration/test_politeness.py."""
import json
import os
import socket
import sqlite3
import subprocess
import threading

import pytest

from expyre import politeness
from expyre.config import ConfigError
from expyre.jobsdb import JobsDB
from expyre.polling import MIN_INTERVAL_REMOTE
from expyre.system import System

ORIGINAL_SCHEMA = ("CREATE TABLE jobs (id TEXT, name TEXT, from_dir TEXT, status TEXT, system TEXT, "
                   "remote_id TEXT, remote_status TEXT, creation_time DATE, status_time DATE)")


def test_an_existing_database_gets_the_table(tmp_path):
    path = tmp_path / "jobs.db"
    conn = sqlite3.connect(str(path))
    conn.execute(ORIGINAL_SCHEMA)
    conn.execute("INSERT INTO jobs (id, status) VALUES ('a', 'submitted')")
    conn.commit()
    conn.close()
    db = JobsDB(path)
    assert db.last_status_query("slurm cluster") is None
    db.record_status_query("slurm cluster", "me", ["1", "2"], {"1": "running"}, now=100.0)
    assert db.last_status_query("slurm cluster") == {"query_time": 100.0, "remote_ids": ["1", "2"],
                                                     "answer": {"1": "running"}, "claim_time": None,
                                                     "claimed_by": None}
    assert db.get("a")["status"] == "submitted"


def test_one_claim_per_interval(tmp_path):
    db = JobsDB(tmp_path / "jobs.db")
    host = "slurm cluster"
    assert db.claim_status_query(host, "p1", 10.0, 120.0, now=1000.0)
    # another process while the first is querying: refused
    assert not db.claim_status_query(host, "p2", 10.0, 120.0, now=1001.0)
    db.record_status_query(host, "p1", ["7"], {"7": "queued"}, now=1002.0)
    # the answer is fresh for 10 s
    assert not db.claim_status_query(host, "p2", 10.0, 120.0, now=1011.0)
    assert db.claim_status_query(host, "p2", 10.0, 120.0, now=1012.5)
    # a claimer that died: its claim lapses after claim_timeout
    assert not db.claim_status_query(host, "p3", 10.0, 120.0, now=1100.0)
    assert db.claim_status_query(host, "p3", 10.0, 120.0, now=1133.0)
    # a failed query gives the claim back, but only its own
    db.release_status_query(host, "p2")
    assert db.last_status_query(host)["claimed_by"] == "p3"
    db.release_status_query(host, "p3")
    assert db.last_status_query(host)["claimed_by"] is None
    assert db.last_status_query(host)["answer"] == {"7": "queued"}


def test_a_claim_of_a_process_that_died_here_is_taken_over_at_once(tmp_path):
    """A script killed while its poll thread queried (Ctrl-C, kill -9) left its claim: a rerun
    on the same machine takes it over instead of waiting CLAIM_TIMEOUT for it to lapse."""
    finished = subprocess.Popen(["true"])
    finished.wait()  # its pid no longer runs
    dead = f"{socket.gethostname()}:{finished.pid}:1"
    alive = f"{socket.gethostname()}:{os.getpid()}:1"
    elsewhere = "another-machine:1:1"
    assert politeness._died(dead)
    assert not politeness._died(alive) and not politeness._died(elsewhere) and not politeness._died(None)
    db = JobsDB(tmp_path / "jobs.db")
    host = "slurm cluster"
    assert db.claim_status_query(host, dead, 10.0, 120.0, now=1000.0)
    assert not db.claim_status_query(host, "p2", 10.0, 120.0, now=1001.0)
    assert db.claim_status_query(host, "p2", 10.0, 120.0, now=1001.0, dead=[dead])
    # p2's claim stands
    assert not db.claim_status_query(host, "p3", 10.0, 120.0, now=1002.0, dead=[dead])


def test_of_many_threads_with_their_own_connections_one_wins(tmp_path):
    path = tmp_path / "jobs.db"
    JobsDB(path)
    wins = []
    start = threading.Barrier(6)

    def contend(n):
        db = JobsDB(path)
        start.wait()
        wins.append(db.claim_status_query("sge localhost", f"t{n}", 60.0, 120.0))

    threads = [threading.Thread(target=contend, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(wins) == [False] * 5 + [True]


def test_a_fresh_answer_covers_only_the_jobs_it_asked_about():
    record = {"query_time": 100.0, "remote_ids": ["1", "2", "3"], "answer": {"1": "running", "2": "done"}}
    assert politeness._covered(record, 10.0, ["1", "2"], now=105.0) == {"1": "running", "2": "done"}
    # asked about but not listed: left out (unknown), as a query that did not list it
    assert politeness._covered(record, 10.0, ["3"], now=105.0) == {}
    assert politeness._covered(record, 10.0, ["1", "9"], now=105.0) == {"1": "running"}
    assert politeness._covered(record, 10.0, ["1"], now=110.0) is None
    assert politeness._covered(None, 10.0, ["1"], now=110.0) is None


def test_min_interval_follows_the_site_limit():
    system = System(name="c", scheduler="slurm", host="cluster")
    assert politeness.min_interval(system) == MIN_INTERVAL_REMOTE
    system.limits = {"status_queries_per_minute": 6}
    assert politeness.min_interval(system) == 10.0
    system.limits = {"status_queries_per_minute": 600}  # never below expyre's own minimum
    assert politeness.min_interval(system) == MIN_INTERVAL_REMOTE
    assert politeness.host_key(system) == "slurm cluster"


def test_limits_are_validated_with_file_system_key_and_value(expyre_config, isolated_home):
    system = {"host": "cluster", "scheduler": "slurm", "partitions": {"p": {"num_cores": 1}}}
    config = expyre_config({"c": dict(system, limits={"status_queries_per_minute": 4})})
    assert config.systems["c"].limits == {"status_queries_per_minute": 4}
    with pytest.raises(ConfigError) as info:
        expyre_config({"c": dict(system, limits={"status_queries_per_minute": 0, "queries": 3})})
    message = str(info.value)
    path = "~/.expyre/config.json"  # shown relative to the home directory
    assert (f"{path}: system 'c': limits.status_queries_per_minute: must be a positive number "
            "(status queries of the host per minute, by all processes together), got 0") in message
    assert f"{path}: system 'c': limits.queries: unknown key (value 3)" in message
    with pytest.raises(ConfigError, match=r"system 'c': limits: must be a table of limits"):
        expyre_config({"c": dict(system, limits=json.dumps({"x": 1}))})
