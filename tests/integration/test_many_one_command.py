"""Calls started together without job arrays go in one remote command: the built-in ``direct``
scheduler over the real sshd, and the real Slurm with ``"slurm": {"arrays": false}``, reached
through the sshd as a user on a laptop would.

What is counted is what reaches the host: every command the scheduler plugin runs for the
batch goes through a :class:`shells.CountingShell` (it only counts; the real shell runs the
command), and the jobs Slurm has are listed with ``squeue``, so a job submitted twice, or one
missing, would show there.
"""
import shlex
from collections import Counter

import pytest
from conftest import direct_system
from shells import CountingShell
from sshd_fixtures import ssh_client_setup, sshd  # noqa: F401  (pytest fixtures)
from test_backlog_slurm import limited  # noqa: F401  (pytest fixture)
from test_executor_slurm import ONE_CORE, cluster  # noqa: F401  (pytest fixture)

from expyre import start_many
from expyre.func import ExPyRe
from expyre_slurm.parse import job_name

pytestmark = pytest.mark.integration

DIRECT = {"max_time": "10m", "num_cores": 1, "partitions": "regular"}


@pytest.fixture
def submissions(monkeypatch):
    """For every ``submit_many`` of a batch: ``(jobs, commands run, submissions in them, results)``;
    a submission is a line that starts a job (``setsid bash`` for direct, ``exec sbatch`` for Slurm)."""
    from expyre import plugins
    made = []
    real = plugins.submit_many

    def counted(scheduler, jobs, script, shell, **kwargs):
        counting = CountingShell(shell, r"\bsetsid bash |^exec sbatch ")
        results = real(scheduler, jobs, script, counting, **kwargs)
        made.append((len(jobs), counting.commands, counting.matches, results))
        return results

    monkeypatch.setattr(plugins, "submit_many", counted)
    return made


@pytest.fixture
def direct_over_ssh(expyre_config, ssh_client_setup, sshd):  # noqa: F811
    from expyre.transports import ssh as ssh_transport
    ssh_transport.close_all()
    yield expyre_config({"remote": direct_system(host=ssh_client_setup, pre_submit_cmds=[
        "echo", "ran", ">>", "run_expyre/pre_submit_log"])}), sshd
    ssh_transport.close_all()


def test_direct_over_ssh_starts_a_batch_with_one_command(direct_over_ssh, submissions):
    config, sshd = direct_over_ssh  # noqa: F811
    xprs = [ExPyRe("one_command", function=divmod, args=[x, 4]) for x in range(8)]
    assert start_many(xprs, DIRECT, "remote", partial_node=True) == []
    # one round trip copied the 8 directories and started the 8 jobs; pre_submit_cmds ran once
    assert [(n, commands, starts) for n, commands, starts, _ in submissions] == [(8, 1, 8)]
    assert sshd.run_as_user("cat run_expyre/pre_submit_log", check=True).stdout.split() == ["ran"]
    pids = [x.remote_id for x in xprs]
    assert len(set(pids)) == 8 and all(pid.isdigit() for pid in pids)
    assert [config.db.get(x.id)["remote_id"] for x in xprs] == pids
    assert [x.get_results(check_interval=0.2, quiet=True)[0] for x in xprs] == [divmod(x, 4) for x in range(8)]


@pytest.mark.parametrize("cluster", [{"slurm": {"arrays": False}}], indirect=True)
def test_slurm_without_arrays_submits_a_batch_with_one_command(cluster, submissions):  # noqa: F811
    xprs = [ExPyRe("no_arrays", function=divmod, args=[x, 3]) for x in range(5)]
    assert start_many(xprs, ONE_CORE, "remote", partial_node=True) == []
    assert [(n, commands, sbatches) for n, commands, sbatches, _ in submissions] == [(5, 1, 5)]
    rows = [cluster.config.db.get(x.id) for x in xprs]
    assert all(row["status"] in ("submitted", "started", "succeeded") for row in rows)
    # each job is its own Slurm job (no array), listed once under its own name
    names = {job_name(x.id): x.remote_id for x in xprs}
    lines = cluster.run("squeue --noheader --states=all --user=\"$USER\" --format=%i@%j").split()
    listed = Counter(i for i, _, name in (line.partition("@") for line in lines) if name in names)
    assert listed == Counter(names.values()) and all("_" not in i for i in listed)
    assert [x.get_results(check_interval=0.3, quiet=True)[0] for x in xprs] == [divmod(x, 3) for x in range(5)]


@pytest.mark.parametrize("limited", [{"slurm": {"arrays": False}}], indirect=True)
def test_the_job_limit_mid_batch_leaves_the_rest_created_and_a_rerun_submits_exactly_them(limited,  # noqa: F811
                                                                                         submissions):
    """Slurm's real per-user limit (``MaxSubmitJobs`` 4 for ``xpr-limited``) refuses the fourth
    job of the one command, with one held job of the account's own queued first."""
    filler = limited.fill_queue(1)
    xprs = [ExPyRe("limit_mid_batch", function=divmod, args=[x, 2]) for x in range(5)]
    backlog = start_many(xprs, ONE_CORE, "remote", partial_node=True)
    assert [x.id for x in backlog] == [x.id for x in xprs[3:]]
    assert len(submissions) == 1 and submissions[0][:2] == (5, 1)   # one command; it stopped at the refusal
    statuses = [limited.config.db.get(x.id)["status"] for x in xprs]
    assert all(s in ("submitted", "started", "succeeded") for s in statuses[:3]) and statuses[3:] == ["created"] * 2
    rundir = limited.config.systems["remote"].remote_rundir
    on_host = limited.run(f"ls -A {shlex.quote(rundir)}").split()
    assert sorted(on_host) == sorted(x.stage_dir.name for x in xprs[:3])   # nothing left of the refused ones

    # room again: the filler cancelled and the three taken jobs finished
    limited.run(f"scancel {shlex.quote(filler)}")
    assert [x.get_results(check_interval=0.3, quiet=True)[0] for x in xprs[:3]] == [divmod(x, 2) for x in range(3)]
    assert start_many(xprs, ONE_CORE, "remote", partial_node=True) == []
    assert [n for n, *_ in submissions] == [5, 2]   # the rerun submitted exactly the two missing ones
    assert [x.get_results(check_interval=0.3, quiet=True)[0] for x in xprs] == [divmod(x, 2) for x in range(5)]
    names = {job_name(x.id): x.remote_id for x in xprs}
    lines = limited.run("squeue --noheader --states=all --user=\"$USER\" --format=%i@%j").split()
    listed = Counter(i for i, _, name in (line.partition("@") for line in lines) if name in names)
    assert listed == Counter(names.values())   # every job once in Slurm
