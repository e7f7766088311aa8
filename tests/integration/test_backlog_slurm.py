"""The local backlog under a real per-user job limit: the account ``xpr-limited`` of
tests/services/20-slurm.sh may have at most ``MaxSubmitJobs`` (4) jobs queued or running on the
real Slurm (accounting through slurmdbd, limits enforced), and the tests reach it through the real
sshd, as a user on a laptop would. Slurm itself refuses the fifth job (an array of N tasks counts
N), so what is checked is what the user sees: every result, in order, no failure, and that expyre
got there in several submissions; and a single ``ExPyRe.start`` refused with one clear error.
"""
import dataclasses
import shlex
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from servicelib import require_service
from sshd_fixtures import sshd, write_ssh_client_files  # noqa: F401  (pytest fixtures)
from test_slurm import slurm_system

from expyre import Executor, SubmitLimitError
from expyre.arrays import array_name
from expyre.func import ExPyRe
from expyre_slurm.parse import job_name

pytestmark = pytest.mark.integration

ONE_CORE = {"max_time": "10m", "num_cores": 1, "partitions": "standard"}
ALIAS = "limited"


class LimitedAccount:
    """The account with the limit: commands run as it on the Slurm host (for setting up and
    checking the remote side), and the jobs database of the test."""

    def __init__(self, slurm, config):
        self.user = slurm["SLURM_LIMITED_USER"]
        self.limit = int(slurm["SLURM_LIMITED_MAX_SUBMIT"])
        self.config = config

    def run(self, command):
        return subprocess.run(["runuser", "-l", self.user, "-c", command], stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=60, check=True).stdout

    def fill_queue(self, count):
        """``count`` held jobs of the account's own (outside expyre): they take slots of the limit."""
        return self.run(f"cd /tmp && sbatch --parsable --hold --job-name=xpr-backlog-filler --array=0-{count - 1} "
                        "--output=/dev/null --wrap=true").strip()


@pytest.fixture
def limited(request, sshd, expyre_config, isolated_home, monkeypatch):  # noqa: F811
    """The account with the limit, with the system ``remote`` (extra system settings: the
    fixture's parameter, e.g. ``{"slurm": {"arrays": False}}``)."""
    slurm = require_service("slurm")
    if "SLURM_LIMITED_USER" not in slurm:
        pytest.fail("tests/services/20-slurm.sh printed no SLURM_LIMITED_* values (no account with a job limit)")
    monkeypatch.setenv("EXPYRE_RETRY", "4 0.5")
    service = dataclasses.replace(sshd, user=slurm["SLURM_LIMITED_USER"],
                                  client_key=Path(slurm["SLURM_LIMITED_CLIENT_KEY"]))
    write_ssh_client_files(isolated_home, service, ALIAS)
    from expyre.transports import ssh as ssh_transport
    ssh_transport.close_all()
    system = slurm_system(ALIAS, int(slurm["SLURM_CPUS"]))
    system.update(getattr(request, "param", {}))
    config = expyre_config({"remote": system})
    account = LimitedAccount(slurm, config)
    account.run("scancel --user=\"$USER\"")
    yield account
    ssh_transport.close_all()
    account.run("scancel --user=\"$USER\"")
    rundir = config.systems["remote"].remote_rundir
    account.run(f"rm -rf {shlex.quote(rundir)}")


@pytest.fixture
def submissions(monkeypatch):
    """Every submission expyre made (its number of jobs) and whether Slurm took it."""
    from expyre import plugins
    made = []
    real_submit, real_array = plugins.submit, plugins.submit_array

    def counted(size, submit, *args, **kwargs):
        try:
            ids = submit(*args, **kwargs)
        except SubmitLimitError:
            made.append((size, "refused"))
            raise
        made.append((size, "taken"))
        return ids

    monkeypatch.setattr(plugins, "submit", lambda *a, **k: counted(1, real_submit, *a, **k))
    monkeypatch.setattr(plugins, "submit_array", lambda s, job, *a, **k: counted(job.array_size, real_array, s, job,
                                                                                 *a, **k))
    return made


@pytest.fixture
def shipped(monkeypatch):
    """Per call of ``start_many`` (the map's first, then each retry of the backlog), the number of
    jobs whose files each of its attempts copied to the host: the files of jobs the limit refuses
    are removed there again, and a later attempt copies them anew."""
    from expyre import many
    calls = []
    real_start_many, real_attempt = many.start_many, many._stage_and_submit

    def start_many(*args, **kwargs):
        calls.append([])
        return real_start_many(*args, **kwargs)

    def attempt(system, members, *args, **kwargs):
        calls[-1].append(len(members))
        return real_attempt(system, members, *args, **kwargs)

    monkeypatch.setattr(many, "start_many", start_many)
    monkeypatch.setattr(many, "_stage_and_submit", attempt)
    return calls


def make_square():
    # made inside a function, so that cloudpickle sends it by value (the job side has no tests)
    def square(x):
        return x * x
    return square


def test_map_beyond_the_limit_returns_every_result_in_order(limited, submissions, shipped):
    n, square = 20, make_square()
    with Executor("remote", resources=ONE_CORE, partial_node=True, check_interval=0.5, quiet=True) as ex:
        assert list(ex.map(square, range(n))) == [x * x for x in range(n)]
    rows = list(limited.config.db.jobs())
    assert len(rows) == n and Counter(row["status"] for row in rows) == {"succeeded": n}
    taken = [size for size, outcome in submissions if outcome == "taken"]
    refused = [size for size, outcome in submissions if outcome == "refused"]
    assert sum(taken) == n and max(taken) <= limited.limit     # every job once, never more than fit
    assert len(taken) > 1 and refused[0] == n                  # the map went in several submissions
    # what Slurm has seen of the account under these jobs' names: each job once
    names = {job_name(row["id"]) for row in rows} | {job_name(array_name(row["id"])) for row in rows}
    lines = limited.run("squeue --array --noheader --states=all --user=\"$USER\" --format=%i@%j").split()
    listed = Counter(i for i, _, name in (line.partition("@") for line in lines) if name in names)
    assert listed == Counter(row["remote_id"] for row in rows)
    # the backlog is retried a few jobs at a time, as slots free up, never all of it at once:
    # no attempt after the first refusal copies more than twice the limit's worth of jobs
    assert shipped[0][0] == n and len(shipped) > 1
    assert max(size for call in shipped[1:] for size in call) <= 2 * limited.limit, shipped


def test_a_full_queue_refuses_a_single_start_clearly_and_the_executor_waits(limited, submissions):
    square = make_square()
    filler = limited.fill_queue(limited.limit)
    xpr = ExPyRe("refused", function=square, args=[3])
    with pytest.raises(SubmitLimitError) as raised:
        xpr.start(resources=ONE_CORE, system_name="remote", partial_node=True)
    message = str(raised.value)
    assert "per-user job limit" in message and "AssocMaxSubmitJobLimit" in message   # Slurm's own words
    assert "Nothing was queued" in message and "Executor" in message
    assert limited.config.db.get(xpr.id)["status"] == "created"
    rundir = limited.config.systems["remote"].remote_rundir
    assert limited.run(f"ls -A {shlex.quote(rundir)} 2>/dev/null || true").split() == []  # nothing left there

    # the executor keeps the calls until the account's other jobs are gone
    with pytest.warns(RuntimeWarning, match="2 calls wait locally"):
        with Executor("remote", resources=ONE_CORE, partial_node=True, check_interval=0.5, quiet=True) as ex:
            with ex.batch():
                futures = [ex.submit(square, x) for x in (4, 5)]
            assert all(f.status == "created" and not f.done() for f in futures)   # waiting here
            limited.run(f"scancel {shlex.quote(filler)}")
            assert [f.result(timeout=120) for f in futures] == [16, 25]
    assert ("refused" in dict(submissions).values()) and sum(s for s, o in submissions if o == "taken") == 2
