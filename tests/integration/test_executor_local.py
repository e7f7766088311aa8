"""``expyre.Executor`` and ``expyre.start_many`` with real jobs on this machine (the built-in
``direct`` scheduler, with a run directory so that every job's files are really copied out and
back).

What a user checks: the values in order, the exception of its own type, futures that work with
``concurrent.futures.wait`` and ``as_completed``, cancelled jobs that stop, and a script killed
at any point of a map that, run again, gets every result with each call run exactly once.
"""
import concurrent.futures
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import TESTS_DIR, direct_system
from shells import CountingShell

from expyre import Executor, ExPyReJobDiedError, ExPyReRemoteTraceback, start_many
from expyre.func import ExPyRe

pytestmark = pytest.mark.integration

RESOURCES = {"max_time": "10m", "num_cores": 1, "partitions": "regular"}


@pytest.fixture
def staged(expyre_config, isolated_home):
    """A direct-scheduler system with a run directory (files are copied out and back)."""
    return expyre_config({"remote": direct_system(rundir=str(isolated_home / "cluster_rundir"))})


@pytest.fixture
def counted(monkeypatch):
    """Counts the plugin calls: status queries (and how many jobs each asked about), transfers,
    jobs submitted (``submit``), and for each ``submit_many`` the number of jobs, of commands its
    shell ran and of job launches (``setsid``) in them (``submit_many``)."""
    from expyre import plugins
    calls = {"status": [], "put": [], "get": [], "submit": 0, "submit_many": []}
    real_status, real_transfer, real_submit = plugins.status, plugins.transfer, plugins.submit
    real_submit_many = plugins.submit_many

    def status(scheduler, jobs, shell):
        calls["status"].append(len(jobs))
        return real_status(scheduler, jobs, shell)

    def transfer(transport, shell, direction, pairs):
        calls[direction].append(len(list(pairs)))
        return real_transfer(transport, shell, direction, pairs)

    def submit(scheduler, job, script, shell, **kwargs):
        calls["submit"] += 1
        return real_submit(scheduler, job, script, shell, **kwargs)

    def submit_many(scheduler, jobs, script, shell, **kwargs):
        counting = CountingShell(shell, r"\bsetsid bash ")
        results = real_submit_many(scheduler, jobs, script, counting, **kwargs)
        calls["submit"] += sum(isinstance(r, str) for r in results)
        calls["submit_many"].append((len(jobs), counting.commands, counting.matches))
        return results

    monkeypatch.setattr(plugins, "status", status)
    monkeypatch.setattr(plugins, "transfer", transfer)
    monkeypatch.setattr(plugins, "submit", submit)
    monkeypatch.setattr(plugins, "submit_many", submit_many)
    return calls


def executor(**options):
    return Executor("remote", resources=RESOURCES, partial_node=True, check_interval=0.5, quiet=True, **options)


# --------------------------------------------------------------------------- map and submit

def test_map_returns_results_in_order_with_one_transfer_and_one_query_per_poll(staged, counted):
    def cube(x):
        return x ** 3

    with executor() as ex:
        values = list(ex.map(cube, range(50)))
    assert values == [x ** 3 for x in range(50)]
    assert counted["put"] == [50]                  # all 50 stage directories in one transfer
    assert counted["submit"] == 50
    assert counted["submit_many"] == [(50, 1, 50)]  # all 50 jobs started by one command
    assert counted["status"] and max(counted["status"]) <= 50
    assert len(counted["status"]) < 25             # one query per poll for all jobs, not one per job
    assert sum(counted["get"]) == 50                 # each job copied back once, when it finished,
    assert len(counted["get"]) <= len(counted["status"])  # in one copy-back per poll at most
    assert Counter(row["status"] for row in staged.db.jobs()) == {"succeeded": 50}


def test_map_with_chunks_packs_calls_into_jobs(staged):
    def label(x, y):
        return f"{x}-{y}"

    with executor() as ex:
        values = list(ex.map(label, range(23), "abcdefghijklmnopqrstuvw", chunksize=5))
    assert values == [f"{x}-{y}" for x, y in zip(range(23), "abcdefghijklmnopqrstuvw")]
    assert len(list(staged.db.jobs())) == 5        # 23 calls in jobs of 5, 5, 5, 5 and 3


def test_raising_call_surfaces_its_own_exception(staged):
    class ParameterError(ValueError):
        pass

    def check(x):
        if x == 3:
            raise ParameterError(f"bad parameter {x}")
        return x

    with executor() as ex:
        futures = [ex.submit(check, x) for x in range(5)]
        assert [f.result() for f in futures if f.id != futures[3].id] == [0, 1, 2, 4]
        exc = futures[3].exception()
        assert type(exc) is ParameterError and str(exc) == "bad parameter 3"
        assert isinstance(exc.__cause__, ExPyReRemoteTraceback)
        assert "in check" in str(exc.__cause__) and futures[3].id in str(exc.__cause__)
        with pytest.raises(ParameterError, match="bad parameter 3"):
            futures[3].result()
        # map raises it at its place, after the results before it
        results = ex.map(check, range(6))
        assert [next(results) for _ in range(3)] == [0, 1, 2]
        with pytest.raises(ParameterError):
            next(results)
    assert staged.db.get(futures[3].id)["status"] == "failed"


def test_future_exposes_its_job(staged):
    def chatty(x):
        print(f"out {x}")
        print(f"err {x}", file=sys.stderr)
        return x

    with executor() as ex:
        future = ex.submit(chatty, 5)
        assert future.result() == 5
    assert future.status == "succeeded" and future.xpr.status == "succeeded"
    assert future.stdout == "out 5\n" and future.stderr == "err 5\n"
    assert future.remote_id.isdigit()                          # the direct scheduler's pid
    assert staged.db.get(future.id)["remote_id"] == future.remote_id


def test_as_completed_and_wait(staged):
    def nap(seconds):
        time.sleep(seconds)
        return seconds

    with executor() as ex:
        with ex.batch():
            slow = ex.submit(nap, 6)
            fast = [ex.submit(nap, 0.1 * i) for i in range(1, 4)]
        first = next(concurrent.futures.as_completed([slow, *fast], timeout=60))
        assert first in fast
        done, not_done = concurrent.futures.wait([slow, *fast], return_when=concurrent.futures.FIRST_COMPLETED)
        assert done and slow in not_done
        done, not_done = concurrent.futures.wait([slow, *fast], timeout=60)
        assert not not_done and sorted(f.result() for f in done) == [0.1, 0.2, 0.30000000000000004, 6]


def test_same_call_twice_is_one_job(staged):
    with executor() as ex:
        a, b = ex.submit(pow, 2, 10), ex.submit(pow, 2, 10)
        assert a.id == b.id and a.result() == b.result() == 1024
    assert len(list(staged.db.jobs())) == 1


def test_a_batch_records_its_new_jobs_together_when_it_ends(staged, monkeypatch):
    """Inside a batch the new calls are staged under temporary names, with no rows; when the block
    ends they get their names and their rows in one jobs-database call, and run."""
    adds = []
    real_add_many = staged.db.add_many
    monkeypatch.setattr(staged.db, "add_many", lambda jobs: (adds.append(len(jobs)), real_add_many(jobs)))
    with executor() as ex:
        with ex.batch():
            futures = [ex.submit(pow, 3, k) for k in range(4)]
            assert list(staged.db.jobs()) == [] and adds == []
            assert len(list(staged.local_stage_dir.glob("_tmp_run_*"))) == 4
            assert not list(staged.local_stage_dir.glob("run_*"))
        assert adds == [4]
        assert sorted(row["id"] for row in staged.db.jobs()) == sorted(f.id for f in futures)
        assert sorted(p.name for p in staged.local_stage_dir.glob("run_*")) == sorted(f"run_{f.id}" for f in futures)
        assert [f.result() for f in futures] == [1, 3, 9, 27]


def test_submit_after_shutdown_is_refused(staged):
    ex = executor()
    ex.shutdown()
    with pytest.raises(RuntimeError, match="after shutdown"):
        ex.submit(pow, 2, 3)


# --------------------------------------------------------------------------- cancel

def _process_alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    return True


def test_cancel_stops_the_job_and_is_seen_by_wait_and_as_completed(staged):
    def nap(seconds):
        time.sleep(seconds)
        return seconds

    with executor() as ex:
        long = ex.submit(nap, 300)
        short = ex.submit(nap, 0.2)
        deadline = time.monotonic() + 30
        while long.remote_id is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert long.remote_id is not None and _process_alive(long.remote_id)
        assert long.cancel() and long.cancelled() and long.done()
        assert long.cancel()                                   # cancelling again is fine
        done, not_done = concurrent.futures.wait([long, short], timeout=60)
        assert not not_done
        assert set(concurrent.futures.as_completed([long, short], timeout=5)) == {long, short}
        with pytest.raises(concurrent.futures.CancelledError):
            long.result()
        assert short.result() == 0.2 and not short.cancel()    # a finished call cannot be cancelled
    # the job's process group was killed (TERM, then KILL after the direct scheduler's grace time)
    deadline = time.monotonic() + 30
    while _process_alive(long.remote_id) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _process_alive(long.remote_id)


def test_cancel_before_start_never_starts_and_shutdown_cancels_the_rest(staged, counted):
    def nap(seconds):
        time.sleep(seconds)
        return seconds

    ex = executor()
    with ex.batch():
        never = ex.submit(nap, 1)
        assert never.cancel()
        rest = [ex.submit(nap, 300 + i) for i in range(3)]
    assert staged.db.get(never.id)["status"] == "created" and never.remote_id is None
    assert counted["submit"] == 3
    ex.shutdown(wait=True, cancel_futures=True)
    assert all(f.cancelled() for f in rest)
    deadline = time.monotonic() + 30
    while any(_process_alive(f.remote_id) for f in rest) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_process_alive(f.remote_id) for f in rest)


def test_killed_job_dies(staged):
    def nap(seconds):
        time.sleep(seconds)

    with executor() as ex:
        future = ex.submit(nap, 300)
        deadline = time.monotonic() + 30
        while future.remote_id is None and time.monotonic() < deadline:
            time.sleep(0.05)
        os.killpg(int(future.remote_id), 9)
        assert isinstance(future.exception(timeout=60), ExPyReJobDiedError)
    assert staged.db.get(future.id)["status"] == "died"


# --------------------------------------------------------------------------- start_many

def test_start_many_starts_expyre_jobs_together(staged, counted):
    xprs = [ExPyRe("many", function=divmod, args=[x, 3]) for x in range(12)]
    start_many(xprs, RESOURCES, "remote", partial_node=True)
    assert counted["put"] == [12] and counted["submit"] == 12
    assert counted["submit_many"] == [(12, 1, 12)]  # one command started the 12 jobs
    assert all(staged.db.get(x.id)["status"] in ("submitted", "started", "succeeded") for x in xprs)
    assert [x.get_results(check_interval=0.2, quiet=True)[0] for x in xprs] == [divmod(x, 3) for x in range(12)]
    # started again (already started: left alone), and re-created objects re-attach
    start_many(xprs, RESOURCES, "remote", partial_node=True)
    again = [ExPyRe("many", function=divmod, args=[x, 3]) for x in range(12)]
    start_many(again, RESOURCES, "remote", partial_node=True)
    assert counted["submit"] == 12 and [a.id for a in again] == [x.id for x in xprs]


def test_start_many_refused_submission_leaves_the_rest_created(staged, monkeypatch):
    """Fault injection: the direct scheduler refuses nothing, so a fake ``submit_many`` lets the
    real one start the first two jobs and reports the third as refused (the real refusal, at
    Slurm's per-user job limit: test_many_one_command.py)."""
    xprs = [ExPyRe("refused", function=abs, args=[-x]) for x in range(4)]
    from expyre import plugins
    real_submit_many = plugins.submit_many
    calls = []

    def fake_submit_many_refusing_the_third(scheduler, jobs, script, shell, **kwargs):
        calls.append([job.id for job in jobs])
        if len(jobs) < 3:
            return real_submit_many(scheduler, jobs, script, shell, **kwargs)
        return real_submit_many(scheduler, jobs[:2], script, shell, **kwargs) + [RuntimeError("refused by the "
                                                                                             "scheduler")]

    monkeypatch.setattr(plugins, "submit_many", fake_submit_many_refusing_the_third)
    with pytest.raises(RuntimeError, match="refused by the scheduler"):
        start_many(xprs, RESOURCES, "remote", partial_node=True)
    assert [staged.db.get(x.id)["status"] for x in xprs[2:]] == ["created", "created"]
    assert all(staged.db.get(x.id)["status"] in ("submitted", "started", "succeeded") for x in xprs[:2])
    assert not any((Path(staged.systems["remote"].remote_rundir) / x.stage_dir.name).exists() for x in xprs[2:])
    start_many(xprs, RESOURCES, "remote", partial_node=True)   # the same call again starts the missing ones
    assert calls[1] == [x.id for x in xprs[2:]]
    assert [x.get_results(check_interval=0.2, quiet=True)[0] for x in xprs] == [0, 1, 2, 3]


def test_start_many_answer_lost_mid_batch_is_looked_up_not_started_again(staged, counted, monkeypatch):
    """Fault injection: the command started three of four jobs, but the answer for the third was
    lost (a fake ``submit_many`` drops it, as a connection lost right then would). The third stays
    ``submitting``, the fourth (never tried) ``created``; the next start finds the third by its
    pid file and starts only the fourth."""
    from expyre import ConnectionLostError, plugins
    counting_submit_many = plugins.submit_many
    started = {}

    def fake_submit_many_losing_the_third_answer(scheduler, jobs, script, shell, **kwargs):
        results = counting_submit_many(scheduler, jobs[:3], script, shell, **kwargs)
        started.update(zip([job.id for job in jobs], results))
        return results[:2] + [ConnectionLostError(None, "fake: the answer for the third job was lost")]

    monkeypatch.setattr(plugins, "submit_many", fake_submit_many_losing_the_third_answer)
    xprs = [ExPyRe("lost_answer", function=pow, args=[x, 2]) for x in range(4)]
    with pytest.raises(ConnectionLostError, match="fake: the answer"):
        start_many(xprs, RESOURCES, "remote", partial_node=True)
    assert [staged.db.get(x.id)["status"] for x in xprs[2:]] == ["submitting", "created"]
    monkeypatch.setattr(plugins, "submit_many", counting_submit_many)
    start_many(xprs, RESOURCES, "remote", partial_node=True)
    assert counted["submit"] == 3 + 1                 # the rerun started only the fourth job
    assert xprs[2].remote_id == started[xprs[2].id]   # the third: the process the lost answer had started
    assert [x.get_results(check_interval=0.2, quiet=True)[0] for x in xprs] == [0, 1, 4, 9]


def test_executor_keeps_calls_over_a_job_limit_in_a_local_backlog(staged, monkeypatch):
    """Fault injection: the direct scheduler has no job limit, so a fake one refuses a submission
    while two of the jobs it let through have not finished (the real limit: test_backlog_slurm.py)."""
    from expyre import CommandResult, SubmitLimitError, plugins, results
    real_submit, real_submit_many = plugins.submit, plugins.submit_many
    let_through, refused = [], []

    def room() -> int:
        return 2 - sum(results.finished_kind(Path(d)) is None for d in let_through)

    def fake_limit(job):
        refused.append(job.id)
        return SubmitLimitError(None, CommandResult("fake-submit", 1, "", "Only 2 jobs are allowed per user"),
                                "fake-submit refused the job")

    def submit_with_fake_limit(scheduler, job, script, shell, **kwargs):
        if room() <= 0:
            raise fake_limit(job)
        let_through.append(job.remote_dir)
        return real_submit(scheduler, job, script, shell, **kwargs)

    def submit_many_with_fake_limit(scheduler, jobs, script, shell, **kwargs):
        allowed = list(jobs[:max(room(), 0)])
        let_through.extend(job.remote_dir for job in allowed)
        taken = real_submit_many(scheduler, allowed, script, shell, **kwargs) if allowed else []
        return taken + ([fake_limit(jobs[len(allowed)])] if len(allowed) < len(jobs) else [])

    monkeypatch.setattr(plugins, "submit", submit_with_fake_limit)
    monkeypatch.setattr(plugins, "submit_many", submit_many_with_fake_limit)

    def slow_square(x):
        time.sleep(0.3)
        return x * x

    with Executor("remote", resources=RESOURCES, partial_node=True, check_interval=0.2, quiet=True) as ex:
        assert list(ex.map(slow_square, range(6))) == [x * x for x in range(6)]
    assert len(let_through) == 6 and len(set(let_through)) == 6 and refused   # each call submitted once
    assert Counter(row["status"] for row in staged.db.jobs()) == {"succeeded": 6}


# --------------------------------------------------------------------------- restart

WORKFLOW = TESTS_DIR / "executor_workflow.py"


def run_workflow(tmp_path, die_at="", **env):
    env = dict(os.environ, RUN_LOG=str(tmp_path / "run.log"), DIE_AT=die_at, **env)
    return subprocess.run([sys.executable, str(WORKFLOW)], capture_output=True, text=True, timeout=300,
                          env=env, cwd=Path.cwd())


@pytest.mark.parametrize("die_at", ["submit:11", "submitted:17", "mapped"])
def test_map_killed_and_run_again_runs_every_call_once(staged, tmp_path, die_at):
    n = 30
    first = run_workflow(tmp_path, die_at, N_CALLS=str(n), PAUSE="1")
    assert first.returncode == -9, first.stderr
    statuses = Counter(row["status"] for row in staged.db.jobs())
    second = run_workflow(tmp_path, N_CALLS=str(n), PAUSE="1")
    assert second.returncode == 0, second.stderr
    assert second.stdout.split("RESULTS\n")[1].split() == [str(x * x) for x in range(n)]
    # each call ran exactly once, in one job, with one stage directory and one run directory
    ran = Counter((tmp_path / "run.log").read_text().split())
    assert ran == Counter(str(x) for x in range(n)), (statuses, ran)
    assert Counter(row["status"] for row in staged.db.jobs()) == {"succeeded": n}
    assert len(list(staged.local_stage_dir.glob("run_*"))) == n
    assert len(list(Path(staged.systems["remote"].remote_rundir).iterdir())) == n
    if die_at == "mapped":
        # every call was created before the kill: re-attaching was the one batch lookup
        assert "LOOKUPS 0" in second.stdout


# --------------------------------------------------------------------------- progress

PROGRESS_SCRIPT = """
import sys, time
from expyre import Executor
def nap(x):
    time.sleep(1.5)
    return x
with Executor("remote", resources={"max_time": "10m", "num_cores": 1, "partitions": "regular"}, partial_node=True,
              check_interval=0.2, quiet=sys.argv[1] == "quiet") as ex:
    print(list(ex.map(nap, range(int(sys.argv[2]), int(sys.argv[2]) + 6))), flush=True)
"""


def run_with_stderr_on_a_terminal(script, mode, offset, columns):
    import fcntl
    import pty
    import struct
    import termios
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    proc = subprocess.Popen([sys.executable, str(script), mode, offset], stdout=subprocess.PIPE, stderr=follower,
                            env=env)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:  # the terminal closes when the script ends
            break
        if not data:
            break
        chunks.append(data)
    stdout = proc.communicate(timeout=120)[0]
    os.close(leader)
    return stdout.decode(), b"".join(chunks).decode(errors="replace")


def test_progress_line_of_totals(staged, tmp_path):
    script = tmp_path / "many.py"
    script.write_text(PROGRESS_SCRIPT)
    stdout, terminal = run_with_stderr_on_a_terminal(script, "show", "0", columns=50)
    assert stdout.strip() == "[0, 1, 2, 3, 4, 5]"
    updates = [u.replace("\r\n", "\n").rstrip("\n") for u in terminal.split("\r\x1b[K") if u.strip()]
    assert len(updates) >= 2 and all(len(u) <= 49 for u in updates)   # fits the 50 columns
    assert terminal.replace("\r\n", "\n").count("\n") == 1               # one line, updated in place
    assert updates[-1].startswith("expyre 6: q0 r0 d6 f0")               # short form at this width
    plain = subprocess.run([sys.executable, str(script), "show", "10"], capture_output=True, text=True, timeout=120)
    lines = plain.stderr.splitlines()
    assert lines[-1].startswith("expyre: 6 jobs: 0 queued, 0 running, 6 done, 0 failed,") and 2 <= len(lines) <= 3
    quiet = subprocess.run([sys.executable, str(script), "quiet", "20"], capture_output=True, text=True, timeout=120)
    assert quiet.stderr == "" and quiet.stdout.strip() == "[20, 21, 22, 23, 24, 25]"
