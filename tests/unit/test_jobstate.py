"""The job life cycle (expyre.jobstate): one table of allowed status changes, enforced, and the
only module that writes a job's status."""
import re
from pathlib import Path

import pytest
from conftest import direct_system

import expyre
from expyre import jobstate
from expyre.jobsdb import JobsDB


@pytest.fixture
def db(expyre_config):
    return expyre_config({"local": direct_system()}).db


def status(db, job_id):
    return db.get(job_id)["status"]


def test_table_covers_every_status_and_names_only_real_ones():
    reached = {target for rule in jobstate.TRANSITIONS.values() for target in rule.targets}
    left = {source for rule in jobstate.TRANSITIONS.values() for source in rule.sources}
    assert reached == left == set(JobsDB.possible_status)


def test_a_submission_goes_created_submitting_submitted(db):
    jobstate.record_new("j", name="j", from_dir="/x")
    jobstate.begin_submission("j", "created", system="local", remote_dir="run_expyre/j")
    assert (status(db, "j"), db.get("j")["remote_dir"]) == ("submitting", "run_expyre/j")
    jobstate.submitted("j", "submitting", "42")
    assert (status(db, "j"), db.get("j")["remote_id"]) == ("submitted", "42")


@pytest.mark.parametrize("move", [
    lambda: jobstate.begin_submission("j", "succeeded", system="local", remote_dir="d"),
    lambda: jobstate.submitted("j", "created", "42"),
    lambda: jobstate.not_submitted("j", "started"),
    lambda: jobstate.cancelled("j", "succeeded"),
    lambda: jobstate.record_outcome("j", "processed"),
    lambda: jobstate.record_outcome("j", "died", seen=["started", "processed"]),
])
def test_an_illegal_move_raises_and_writes_nothing(db, move):
    jobstate.record_new("j", name="j", from_dir="/x")
    with pytest.raises(jobstate.IllegalTransitionError, match="job j: '"):
        move()
    assert status(db, "j") == "created"


def test_a_poll_never_undoes_another_process_change(db):
    jobstate.record_new("j", name="j", from_dir="/x")
    db.update("j", status="submitted", remote_id="1")
    seen = db.get("j")
    jobstate.processed("j", "submitted")  # another process, meanwhile
    assert jobstate.record_poll(seen, "running") == {}
    assert jobstate.record_outcome("j", "succeeded", seen=seen["status"]) is False
    assert (status(db, "j"), db.get("j")["remote_status"]) == ("processed", None)


def test_a_poll_records_running_as_started(db):
    jobstate.record_new("j", name="j", from_dir="/x")
    db.update("j", status="submitted", remote_id="1")
    assert jobstate.record_poll(db.get("j"), "running") == {"remote_status": "running", "status": "started"}
    assert (status(db, "j"), db.get("j")["remote_status"]) == ("started", "running")
    assert jobstate.record_poll(db.get("j"), "unknown") == {}


def test_a_cancelled_job_stays_died_while_the_scheduler_still_shows_it(db):
    jobstate.record_new("j", name="j", from_dir="/x")
    db.update("j", status="submitted", remote_id="1")
    jobstate.cancelled("j", "submitted")
    assert (status(db, "j"), db.get("j")["remote_status"]) == ("died", "failed")
    assert jobstate.record_poll(db.get("j"), "running") == {}
    assert jobstate.record_poll(db.get("j"), "done") == {"remote_status": "done"}


def test_the_users_word_moves_from_any_status(db):
    jobstate.record_new("j", name="j", from_dir="/x")
    for move, expected in [(lambda s: jobstate.reset("j", s, "started"), "started"),
                           (lambda s: jobstate.fail("j", s), "failed"),
                           (lambda s: jobstate.rerun("j", s), "created"),
                           (lambda s: jobstate.processed("j", s), "processed"),
                           (lambda s: jobstate.cleaned("j", s), "cleaned")]:
        move(status(db, "j"))
        assert status(db, "j") == expected


_STATUS_WRITE = re.compile(r"\.(update|add)\([^)]*\bstatus\s*=", re.S)


def test_no_other_module_writes_a_status():
    core = Path(expyre.__file__).parent
    writers = sorted(str(path.relative_to(core)) for path in core.rglob("*.py")
                     if _STATUS_WRITE.search(path.read_text()) and path.name not in ("jobstate.py", "jobsdb.py"))
    assert writers == []
