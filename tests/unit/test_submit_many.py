"""Several jobs submitted in one remote command (the ``submit_many`` hook): the command of
:func:`expyre.batch.one_by_one_command` run by a real bash, Slurm's real answers to it
(captured by tests/fixtures/slurm/capture_submit_many.py) read by ``BatchScheduler.submit_jobs``,
the built-in ``direct`` scheduler starting real processes, and the one-by-one fallback for a
plugin without the hook.
"""
import subprocess
from pathlib import Path

import pytest
from shells import ReplayShell

from expyre import CommandResult, ConnectionLostError, JobSpec, SubmitLimitError, batch, hookimpl, plugins
from expyre.schedulers import direct
from expyre.system import System
from expyre_slurm import Slurm

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "slurm"


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch):
    monkeypatch.setenv("EXPYRE_RETRY", "3 0")


def captured(name: str) -> str:
    """A fixture's text without its ``# `` header line."""
    header, _, text = (FIXTURES / name).read_text().partition("\n")
    assert header.startswith("# ")
    return text


def specs(root, count, prefix="fx-many"):
    return [JobSpec(id=f"{prefix}-{i}", name=prefix, remote_dir=str(Path(root) / f"{prefix}-{i}"), partition=None,
                    node_dict={}, max_time=None) for i in range(count)]


def bash(command, cwd):
    done = subprocess.run(["bash", "-c", command], cwd=cwd, capture_output=True, text=True, timeout=60)
    return CommandResult(command, done.returncode, done.stdout, done.stderr)


# --------------------------------------------------------------------------- the command

def test_one_by_one_stops_at_the_first_failure_and_keeps_each_error_output_apart(tmp_path):
    command = batch.one_by_one_command(["echo one; echo warned >&2", "printf 'no newline'; echo refused >&2; exit 3",
                                        "touch ran-the-third"])
    result = bash(command, tmp_path)
    ran, complete = batch.split_one_by_one(result.stdout, 3)
    # the error output of a command that worked is not read (no extra process); a failed one's is
    assert ran == [(0, "one\n", ""), (3, "no newline", "refused\n")] and complete
    assert not (tmp_path / "ran-the-third").exists() and result.stderr == ""
    # cut short after the first answer, or before the failed one's error output: incomplete
    assert batch.split_one_by_one(result.stdout[:result.stdout.index("@xpr-end@ s1")], 3) == (ran[:1], False)
    assert batch.split_one_by_one(result.stdout[:result.stdout.index("@xpr-end@ e1")], 3) == (ran[:1], False)
    assert batch.split_one_by_one("", 3) == ([], False)


def test_a_hang_up_mid_batch_leaves_the_running_submission_findable_and_stops_the_rest(tmp_path):
    """The batch's session is hung up (its output closed) while the first job's submit command
    runs: that submission goes on and is reported as still running until it ends (the lock names
    the shell running it, not the batch's own), and the second job is never tried."""
    import os
    import signal
    import time

    from test_batch import BashShell, Toy

    toy = Toy()
    jobs = specs(tmp_path, 2, "h")
    for job in jobs:
        Path(job.remote_dir).mkdir()
    command = batch.one_by_one_command([batch.submit_wrapper(job.remote_dir, toy.submit_command(job, "s.sh"))
                                        for job in jobs])
    driver = subprocess.Popen(["bash", "-c", f"( eval {batch.quote(command)} )"], cwd=tmp_path,
                              env=dict(os.environ, TOY_SLOW="2"), start_new_session=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lock = Path(jobs[0].remote_dir) / batch.SUBMIT_LOCK
    while not (lock.exists() and lock.read_text().strip()):
        time.sleep(0.05)
    os.killpg(driver.pid, signal.SIGHUP)
    driver.stdout.close()
    driver.stderr.close()
    driver.wait(timeout=30)   # the session's shell is gone (and reaped: not a zombie that kill -0 still sees)
    probe = BashShell(tmp_path).run(batch.sections_command({"record": batch.record_probe(jobs[0].remote_dir)}))
    assert batch.split_sections(probe.stdout)["record"][0] == batch.STILL_SUBMITTING
    assert toy.find_jobs(jobs[0], BashShell(tmp_path)) == ["42"]   # waited for it, then found it
    time.sleep(2.5)   # a second submission, had it been tried, would have ended by now
    assert not (Path(jobs[1].remote_dir) / batch.SUBMIT_LOCK).exists()
    assert (tmp_path / "queue").read_text().count("42") == 1


# --------------------------------------------------------------------------- Slurm's real answers

def replay(stdout):
    return ReplayShell(lambda command: CommandResult(command, 0, stdout, ""))


def test_slurm_answer_with_a_refused_job_gives_ids_then_its_error():
    shell = replay(captured("submit_many_bad_partition.txt"))
    results = Slurm().submit_jobs(specs("expyre-fixture-many", 4), "s.sh", shell)
    assert results[:2] == ["12612", "12613"] and len(results) == 3     # the fourth was not tried
    assert isinstance(results[2], batch.BatchError) and not isinstance(results[2], SubmitLimitError)
    assert "fx-many-2" in str(results[2]) and "Invalid partition name specified" in str(results[2])
    assert len(shell.commands) == 1 and shell.commands[0].count("exec sbatch ") == 4   # one command for all


def test_slurm_answer_at_the_per_user_limit_is_a_submit_limit_error():
    shell = replay(captured("submit_many_limit.txt"))
    results = Slurm().submit_jobs(specs("expyre-fixture-many", 3), "s.sh", shell)
    assert results[0] == "12615" and len(results) == 2
    assert isinstance(results[1], SubmitLimitError) and "AssocMaxSubmitJobLimit" in str(results[1])


def test_an_answer_cut_short_leaves_the_rest_unknown():
    text = captured("submit_many_bad_partition.txt")
    shell = replay(text[:text.index("@xpr-end@ s1")])
    results = Slurm().submit_jobs(specs("expyre-fixture-many", 4), "s.sh", shell)
    assert results[0] == "12612" and len(results) == 4
    assert all(isinstance(r, ConnectionLostError) for r in results[1:])   # looked up by name on restart
    with pytest.raises(ConnectionLostError):
        Slurm().submit_jobs(specs("expyre-fixture-many", 4), "s.sh", replay(""))


def test_a_transient_failure_goes_on_alone_and_the_rest_in_one_more_command():
    """Hand-written answers (fault injection): the second job's sbatch cannot reach the
    controller; it is looked up by name (not found) and submitted again on its own (clearing its
    earlier record), and the third job goes in a command of its own."""
    def answer(command):
        if "squeue" in command:   # the look-up by name: nothing under that name
            return CommandResult(command, 0, "\n@xpr-end@ record 1\n\n@xpr-end@ squeue 0\n", "")
        if "@xpr-end@ s0" not in command:   # the second job alone, its earlier record cleared
            assert command.count("exec sbatch ") == 1 and "rm -rf" in command
            return CommandResult(command, 0, "Submitted batch job 101\n", "")
        if command.count("exec sbatch ") == 1:   # the third job
            return CommandResult(command, 0, "Submitted batch job 102\n\n@xpr-end@ s0 0\n", "")
        return CommandResult(command, 0, "Submitted batch job 100\n\n@xpr-end@ s0 0\n"
                                         "\n@xpr-end@ s1 1\nsbatch: error: Socket timed out on send/recv operation"
                                         "\n\n@xpr-end@ e1 0\n", "")
    shell = ReplayShell(answer)
    assert Slurm().submit_jobs(specs("d", 3), "s.sh", shell) == ["100", "101", "102"]
    assert [c.count("exec sbatch ") for c in shell.commands if "squeue" not in c] == [3, 1, 1]


# --------------------------------------------------------------------------- direct, for real

def test_direct_starts_each_job_with_one_command_and_stops_at_one_that_cannot_start(tmp_path):
    jobs = specs(tmp_path, 3, "d")
    for job in jobs:
        if job.id != "d-1":   # the second job's directory is missing: it cannot start
            Path(job.remote_dir).mkdir()
            (Path(job.remote_dir) / "s.sh").write_text("echo ran > ran.txt\n")

    class Shell:
        host, commands = None, []

        def run(self, command, **kwargs):
            self.commands.append(command)
            return bash(command, tmp_path)

    shell = Shell()
    results = direct.submit_many(scheduler="direct", jobs=jobs, script="s.sh", shell=shell)
    assert len(shell.commands) == 1 and len(results) == 2
    assert results[0].isdigit() and isinstance(results[1], RuntimeError) and "d-1" in str(results[1])
    assert (Path(jobs[0].remote_dir) / direct.PID_FILE).read_text().strip() == results[0]
    assert not (Path(jobs[2].remote_dir) / direct.PID_FILE).exists()   # the third was not tried


# --------------------------------------------------------------------------- a plugin without the hook

class OneByOne:
    """A scheduler plugin with ``submit`` only: it takes jobs until one is named ``*-refused``."""

    def __init__(self):
        self.submitted = []

    @hookimpl
    def expyre_schedulers(self):
        return ["one-by-one"]

    @hookimpl
    def submit(self, scheduler, job, script, shell):
        if job.id.endswith("-refused"):
            raise RuntimeError(f"refused {job.id}")
        self.submitted.append(job.id)
        return str(len(self.submitted))


def test_a_plugin_without_submit_many_gets_one_submit_per_job_until_one_fails():
    plugin = OneByOne()
    plugins.register(plugin)
    try:
        assert plugins.submit_many("one-by-one", [], "s.sh", shell=None) is None
        system = System(name="s", scheduler="one-by-one")
        jobs = specs("/nowhere", 2) + specs("/nowhere", 1, "x-refused") + specs("/nowhere", 1, "later")
        jobs[2] = JobSpec(id="x-refused", name="x", remote_dir="/nowhere/x", partition=None, node_dict={},
                          max_time=None)
        results = system.submit_many(jobs, "s.sh")
        assert results[:2] == ["1", "2"] and len(results) == 3 and "refused x-refused" in str(results[2])
        assert plugin.submitted == ["fx-many-0", "fx-many-1"]
    finally:
        plugins.unregister(plugin)
