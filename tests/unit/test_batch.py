"""The batch-scheduler toolkit (expyre.batch): job names, sections, the exactly-once submit
wrapper run by a real bash, and the toolkit's own rules on a toy scheduler driven by ReplayShell."""
import os
import signal
import subprocess
import time

import pytest
from shells import ReplayShell

from expyre import CommandResult, ConnectionLostError, JobSpec, RemoteJob, batch


class BashShell:
    """Runs commands in a real local bash (in ``cwd``), as a transport's shell would on a host."""

    host = None

    def __init__(self, cwd):
        self.cwd = cwd
        self.commands = []

    def run(self, command, *, input=None, timeout=None, check=True, idempotent=True):
        self.commands.append(command)
        done = subprocess.run(["bash", "-c", command], cwd=self.cwd, capture_output=True, text=True, timeout=60)
        return CommandResult(command, done.returncode, done.stdout, done.stderr)

    def close(self):
        pass


class Toy(batch.BatchScheduler):
    """A scheduler whose 'submit' prints an id and whose queue is a file of ``id state`` lines."""

    name = "toy"
    transient = ("try again",)
    already_over = r"no such job"
    submit_poll = 0.1

    def header(self, job):
        return [f"# toy {self.job_name(job.id)}"]

    def submit_command(self, job, script):
        return (f"sleep ${{TOY_SLOW:-0}}; if [ -n \"${{TOY_REFUSE:-}}\" ]; then echo \"$TOY_REFUSE\" >&2; exit 3; fi\n"
                f"echo submitted 42; echo '42 {self.job_name(job.id)}' >> ../queue")

    def parse_submit(self, stdout):
        return batch.one_id([w for w in stdout.split() if w.isdigit()], "toy-submit", stdout)

    def status_commands(self, jobs):
        return {"queue": "cat queue"}

    def parse_status(self, sections, jobs, stderr):
        states = dict(line.split()[:2] for line in sections["queue"][1].splitlines() if line.strip())
        return {job.remote_id: "queued" for job in jobs if job.remote_id in states}

    def control_commands(self, action, jobs):
        return [f"echo 'no such job {job.remote_id}' >&2; false" for job in jobs]

    def find_commands(self, job, name):
        return {"listing": "cat queue 2>/dev/null || true"}

    def parse_find(self, sections, name):
        return [line.split()[0] for line in sections["listing"][1].splitlines() if line.split()[1:] == [name]]


def spec(tmp_path, job_id="j=1_x"):
    (tmp_path / "job").mkdir(exist_ok=True)
    return JobSpec(id=job_id, name="j", remote_dir=str(tmp_path / "job"), partition=None, node_dict={}, max_time=None)


def test_one_encoding_of_job_names():
    assert batch.job_name("plain_abc-1") == "plain_abc-1"
    changed = batch.job_name("a b=c", safe="A-Za-z0-9_")
    assert changed == f"a_b_c_{batch.digest('a b=c')}" and changed != batch.job_name("a_b_c", safe="A-Za-z0-9_")
    assert batch.job_name("1x", prefix="N_") == "N_1x"
    long = batch.job_name("y" * 300, max_length=50)
    assert len(long) == 50 and long != batch.job_name("y" * 301, max_length=50)


def test_sections_survive_output_without_a_final_newline(tmp_path):
    command = batch.sections_command({"a": "printf 'no newline'", "b": "echo two; (exit 3)", "c": "echo three"})
    out = BashShell(tmp_path).run(command).stdout
    # a section's failing exit does not end the script: later sections still answer; a section's
    # text is the command's output as it printed it
    assert batch.split_sections(out) == {"a": (0, "no newline"), "b": (3, "two\n"), "c": (0, "three\n")}
    assert batch.split_sections(out[:-5]) == {"a": (0, "no newline"), "b": (3, "two\n")}


def test_submit_is_recorded_and_found(tmp_path):
    shell, job = BashShell(tmp_path), spec(tmp_path)
    toy = Toy()
    assert toy.submit_job(job, "s.sh", shell) == "42"
    # the record is in the lock, the one file the submission created
    assert (tmp_path / "job" / batch.SUBMIT_LOCK).read_text() == "done 0\nsubmitted 42\n"
    assert sorted(p.name for p in (tmp_path / "job").iterdir() if p.name.startswith("_expyre_batch")) == \
        [batch.SUBMIT_LOCK]
    # found again from the record and by name: one job
    assert toy.find_jobs(job, shell) == ["42"]
    # from the record alone, when the listing has forgotten it
    (tmp_path / "queue").unlink()
    assert toy.find_jobs(job, shell) == ["42"]


def test_a_refused_submission_keeps_its_exit_status_and_message(tmp_path, monkeypatch):
    """The scheduler refuses the job: the error quotes its message, the record keeps its exit
    status (so that a restart does not take it for a job), and nothing was queued."""
    monkeypatch.setenv("TOY_REFUSE", "error: no such partition 'nosuch'")
    shell, job, toy = BashShell(tmp_path), spec(tmp_path), Toy()
    with pytest.raises(batch.BatchError, match="(?s)refused job j=1_x.*status 3.*no such partition 'nosuch'"):
        toy.submit_job(job, "s.sh", shell)
    assert (tmp_path / "job" / batch.SUBMIT_LOCK).read_text() == "done 3\n"
    probe = shell.run(batch.sections_command({"record": batch.record_probe(job.remote_dir)}))
    assert batch.split_sections(probe.stdout)["record"] == (3, "")
    assert toy.find_jobs(job, shell) == []


def test_records_of_earlier_versions_are_read_and_cleared_by_a_retry(tmp_path):
    """Earlier versions recorded a submission in files of their own (output, exit status): a job
    they left ``submitting`` is still found from them, and a retry clears them first."""
    shell, job, toy = BashShell(tmp_path), spec(tmp_path), Toy()
    old = tmp_path / "job"
    old.mkdir(parents=True, exist_ok=True)
    (old / batch.SUBMIT_LOCK).write_text(f"{os.getpid()} {os.uname().nodename}\n")
    (old / batch.SUBMIT_OUT).write_text("submitted 41\n")
    (old / batch.SUBMIT_RC).write_text("0\n")
    assert toy.find_jobs(job, shell) == ["41"]
    result = shell.run(batch.submit_wrapper(job.remote_dir, toy.submit_command(job, "s.sh"), again=True))
    assert result.stdout == "submitted 42\n"
    assert sorted(p.name for p in old.iterdir() if p.name.startswith("_expyre_batch")) == [batch.SUBMIT_LOCK]


def test_a_submission_still_running_is_waited_for_not_repeated(tmp_path):
    """The driving process dies while the submit command runs: the command goes on, and
    find_submitted waits until it has ended, then finds its job."""
    job, toy = spec(tmp_path), Toy()
    wrapper = batch.submit_wrapper(job.remote_dir, toy.submit_command(job, "s.sh"))
    driver = subprocess.Popen(["bash", "-c", wrapper], cwd=tmp_path, env=dict(os.environ, TOY_SLOW="2"),
                              start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lock = tmp_path / "job" / batch.SUBMIT_LOCK
    while not (lock.exists() and lock.read_text().strip()):
        time.sleep(0.05)
    assert lock.read_text().split() == [str(driver.pid), os.uname().nodename]
    # the connection goes: the session is hung up and its output is closed
    os.killpg(driver.pid, signal.SIGHUP)
    driver.stdout.close()
    driver.stderr.close()
    probe = BashShell(tmp_path).run(batch.sections_command({"record": batch.record_probe(job.remote_dir)}))
    assert batch.split_sections(probe.stdout)["record"][0] == batch.STILL_SUBMITTING
    started = time.monotonic()
    assert toy.find_jobs(job, BashShell(tmp_path)) == ["42"]
    assert time.monotonic() - started > 0.5  # it waited for the slow submit command
    assert (tmp_path / "queue").read_text().count("42") == 1
    # and a second submission through the same directory is refused by the lock, not repeated
    with pytest.raises(ConnectionLostError, match="unknown"):
        toy.submit_job(job, "s.sh", BashShell(tmp_path))
    assert (tmp_path / "queue").read_text().count("42") == 1


@pytest.mark.parametrize("lock_form", ["file", "directory of earlier versions"])
def test_a_submission_that_never_ends_stays_unknown(tmp_path, lock_form):
    job, toy = spec(tmp_path), Toy()
    toy.submit_timeout = 0.5
    lock = tmp_path / "job" / batch.SUBMIT_LOCK
    if lock_form == "file":
        pid_file = lock
    else:
        lock.mkdir()
        pid_file = lock / "pid"
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        pid_file.write_text(f"{sleeper.pid} {os.uname().nodename}\n")
        with pytest.raises(ConnectionLostError, match="still running"):
            toy.find_jobs(job, BashShell(tmp_path))
    finally:
        sleeper.kill()
        sleeper.wait()
    # its process is gone without a record: the listing decides (nothing there)
    assert toy.find_jobs(job, BashShell(tmp_path)) == []
    # a lock just taken, its pid not written yet: still submitting; an old lock without a pid: dead
    if lock_form == "file":
        pid_file.write_text("")
    else:
        pid_file.unlink()
    with pytest.raises(ConnectionLostError, match="still running"):
        toy.find_jobs(job, BashShell(tmp_path))
    os.utime(lock, (time.time() - 600, time.time() - 600))
    assert toy.find_jobs(job, BashShell(tmp_path)) == []
    # and a new submission is refused by either form of the lock, not repeated
    with pytest.raises(ConnectionLostError, match="unknown"):
        toy.submit_job(job, "s.sh", BashShell(tmp_path))


def test_status_failures_never_finish_jobs(monkeypatch):
    monkeypatch.setenv("EXPYRE_RETRY", "3 0")
    toy, jobs = Toy(), [RemoteJob("42", "d", "a"), RemoteJob("43", "d", "b")]
    listed = ReplayShell(lambda c: CommandResult(c, 0, f"42 x\n{batch.SECTION_MARKER} queue 0\n", ""))
    assert toy.query_status(jobs, listed) == {"42": "queued", "43": "unknown"}
    cut = ReplayShell(lambda c: CommandResult(c, 0, "42 x\n", ""))
    with pytest.raises(batch.BatchError, match="cut short"):
        toy.query_status(jobs, cut)
    busy = ReplayShell(lambda c: CommandResult(c, 1, "", "error: try again later"))
    with pytest.raises(batch.BatchError, match="after 3 tries"):
        toy.query_status(jobs, busy)
    assert len(busy.commands) == 3


def test_control_of_finished_jobs_is_not_an_error(monkeypatch):
    monkeypatch.setenv("EXPYRE_RETRY", "3 0")
    shell = ReplayShell(lambda c: CommandResult(c, 1, "", "no such job 42\nno such job 43\n"))
    assert Toy().control("cancel", [RemoteJob("42", "d", "a"), RemoteJob("43", "d", "b")], shell) is True
    denied = ReplayShell(lambda c: CommandResult(c, 1, "", "permission denied"))
    with pytest.raises(batch.BatchError, match="permission denied"):
        Toy().control("hold", [RemoteJob("42", "d", "a")], denied)


def test_settings_are_checked_and_state_is_kept_per_system():
    from types import SimpleNamespace

    toy = Toy()
    assert toy.check({"colour": "blue"}) == [("colour", "blue", "unknown toy setting; known: none")]
    one, other = (SimpleNamespace(plugin_state={}, scheduler_options={}) for _ in range(2))
    assert toy.bound("shell-1", one) is toy.bound("shell-2", one) is one.plugin_state["toy"]
    assert toy.bound("shell-1", other) is not one.plugin_state["toy"] and one.plugin_state["toy"].shell == "shell-2"
