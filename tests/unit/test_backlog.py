"""The local backlog under a per-user job limit: the toolkit's :class:`expyre.batch.SubmitLimitError`
(Slurm's, Grid Engine's and PBS's words for the limit; never retried) and how
:func:`expyre.start_many` splits refused arrays and keeps what does not fit, against a fake
scheduler that refuses above a limit (fault injection: the real limit is tested on the real
Slurm in tests/integration/test_backlog_slurm.py)."""
from pathlib import Path

import pytest
from conftest import direct_system
from shells import ReplayShell

from expyre import CommandResult, JobSpec, SubmitLimitError, start_many
from expyre.arrays import ArraySupport
from expyre.batch import BatchError
from expyre.func import ExPyRe
from expyre_pbs import SCHEDULER as PBS
from expyre_sge import SCHEDULER as SGE
from expyre_slurm import SCHEDULER as SLURM

#: What this Slurm (22.05, tests/services/20-slurm.sh, MaxSubmitJobs=4) printed for a fifth job.
SLURM_LIMIT = ("sbatch: error: AssocMaxSubmitJobLimit\n"
               "sbatch: error: Batch job submission failed: Job violates accounting/QOS policy "
               "(job submit limit, user's size and/or time limits)\n")
#: The same general message for a job over a time limit is not the job limit.
SLURM_TIME_LIMIT = ("sbatch: error: AssocMaxWallDurationPerJobLimit\n"
                    "sbatch: error: Batch job submission failed: Job violates accounting/QOS policy "
                    "(job submit limit, user's size and/or time limits)\n")


def job_spec(tmp_path):
    return JobSpec(id="f_abc_1", name="f", remote_dir=str(tmp_path / "job"), partition=None, node_dict={},
                   max_time=None)


@pytest.mark.parametrize("scheduler, said, limit", [
    (SLURM, SLURM_LIMIT, True),
    (SLURM, "sbatch: error: QOSMaxSubmitJobPerUserLimit\nsbatch: error: Batch job submission failed: ...", True),
    (SLURM, SLURM_TIME_LIMIT, False),
    (SLURM, "sbatch: error: Batch job submission failed: Invalid partition name specified", False),
    (SGE, "Unable to run job: job rejected: Only 4 jobs are allowed per user (current job count: 4)\n"
          "Exiting.", True),
    (PBS, "qsub: would exceed queue workq's per-user limit of jobs in 'Q' state", True),
    (PBS, "qsub: submit error (Maximum number of jobs already in queue for user MSG=total number of "
          "current user's jobs exceeds the queue limit: user u@h, queue batch)", True),
    (PBS, "qsub: Unknown queue", False),
])
def test_the_limit_is_told_from_other_refusals_and_not_retried(tmp_path, monkeypatch, scheduler, said, limit):
    monkeypatch.setenv("EXPYRE_RETRY", "3 0")
    shell = ReplayShell(lambda command: CommandResult(command, 1, "", said))
    with pytest.raises(BatchError) as raised:
        scheduler.submit_job(job_spec(tmp_path), "job.sh", shell)
    assert isinstance(raised.value, SubmitLimitError) == limit
    if limit:
        assert len(shell.commands) == 1                        # not tried again: the queue is full
        message = str(raised.value)
        assert "per-user job limit" in message and said.strip() in message  # the scheduler's words
        assert "Nothing was queued" in message and "Executor" in message


class FakeLimitedScheduler:
    """Fault injection: a stand-in for a system whose scheduler has job arrays and refuses a
    submission that would take the user over ``limit`` queued or running jobs (an array of N
    tasks counts N), as Slurm's MaxSubmitJobs does. Everything else (job specs, scripts, copying
    the job directories into a local run directory and removing them) is the real direct-scheduler
    system's."""

    def __init__(self, system, limit):
        self._system, self.limit = system, limit
        self.active = []       # remote ids counted against the limit
        self.tries = []        # size of each submission, in order
        self.refused = []

    def __getattr__(self, name):
        return getattr(self._system, name)

    def array_support(self):
        return ArraySupport("XPR_FAKE_TASK", 0, None)

    def array_script(self, support, array, tasks, bundle=None):
        return "#!/bin/bash\n"

    def _take(self, count):
        self.tries.append(count)
        if len(self.active) + count > self.limit:
            self.refused.append(count)
            raise SubmitLimitError(None, CommandResult("fake-submit", 1, "", "fake-submit: AssocMaxSubmitJobLimit"),
                                   "fake-submit refused the job")
        ids = [f"{len(self.tries)}_{n}" for n in range(count)]
        self.active += ids
        return ids

    @staticmethod
    def _run(shell):
        # the submit command: the job directories the shell carries go to the host with it
        if shell is not None:
            shell.run("true")

    def submit(self, job, script, stage=(), shell=None):
        self._run(shell)
        return self._take(1)[0]

    def submit_array(self, job, script, max_parallel=None, stage=(), shell=None):
        self._run(shell)
        return self._take(job.array_size)

    def finish(self, count):
        del self.active[:count]


@pytest.fixture
def limited(expyre_config, isolated_home, monkeypatch):
    config = expyre_config({"remote": direct_system(rundir=str(isolated_home / "cluster_rundir"))})
    fake = FakeLimitedScheduler(config.systems["remote"], limit=4)
    from expyre import many
    monkeypatch.setattr(many, "_system", lambda name: fake)
    return config, fake


def test_start_many_splits_refused_arrays_and_returns_the_backlog(limited):
    config, fake = limited
    xprs = [ExPyRe("limited", function=abs, args=[-x]) for x in range(10)]
    backlog = start_many(xprs, {"max_time": "1m", "num_cores": 1}, "remote", partial_node=True, preflight=False)
    # 10 refused; halves: 5 refused; 2 and 2 fit, the next 2 is refused; then one job: refused
    assert fake.tries == [10, 5, 2, 2, 2, 1] and fake.refused == [10, 5, 2, 1]
    assert [x.id for x in backlog] == [x.id for x in xprs[4:]]
    statuses = [config.db.get(x.id)["status"] for x in xprs]
    assert statuses == ["submitted"] * 4 + ["created"] * 6
    assert [x.remote_id for x in xprs[:4]] == ["3_0", "3_1", "4_0", "4_1"]   # two arrays of two
    rundir = Path(config.systems["remote"].remote_rundir)
    on_host = {p.name for p in rundir.iterdir()}
    assert on_host and on_host <= {x.stage_dir.name for x in xprs[:4]}   # nothing of the backlog

    # three of the user's jobs end: the backlog is started again, and what fits goes
    fake.finish(3)
    fake.tries.clear()
    backlog = start_many(backlog, {"max_time": "1m", "num_cores": 1}, "remote", partial_node=True, preflight=False)
    assert fake.tries == [6, 3, 3, 1] and [x.id for x in backlog] == [x.id for x in xprs[7:]]
    assert [config.db.get(x.id)["status"] for x in xprs].count("submitted") == 7
    fake.finish(4)
    assert start_many(backlog, {"max_time": "1m", "num_cores": 1}, "remote", partial_node=True,
                      preflight=False) == []
    assert [config.db.get(x.id)["status"] for x in xprs] == ["submitted"] * 10


def test_a_single_job_refused_is_the_whole_backlog(limited):
    config, fake = limited
    fake.limit = 0
    xprs = [ExPyRe("none_fit", function=abs, args=[-x]) for x in range(3)]
    backlog = start_many(xprs, {"max_time": "1m", "num_cores": 1}, "remote", partial_node=True, preflight=False)
    assert fake.tries == [3, 1] and [x.id for x in backlog] == [x.id for x in xprs]
    assert all(config.db.get(x.id)["status"] == "created" for x in xprs)
    assert not any(Path(config.systems["remote"].remote_rundir).iterdir())
