"""Jobs on the real Son of Grid Engine of tests/services/30-sge.sh, through the Grid Engine plugin.

Jobs are submitted by the ordinary account ``xpr-cluster`` over the real sshd of
tests/services/10-sshd.sh with the ``ssh`` transport (Grid Engine refuses root, uid 0 < 1000),
exactly as a user reaches a cluster: ``"host": "cluster"`` from the test's ``~/.ssh/config``.
The account finds Grid Engine only through its login profile (the service script diverts
Debian's ``/usr/bin`` wrappers away). qsub, qstat, qacct, qdel, qhold and qrls do the work;
Grid Engine kills the job that runs past its ``h_rt``.
"""
# ruff: noqa: F811
import re
import time

import numpy as np
import pytest
from servicelib import require_service
from shells import CountingShell
from sshd_fixtures import ssh_client_setup, sshd  # noqa: F401  (pytest fixtures)

import expyre_sge
from expyre import ExPyReJobDiedError, RemoteCommandError, RemoteJob
from expyre.func import ExPyRe
from expyre.resources import Resources
from expyre_sge import commands, names

pytestmark = pytest.mark.integration

FAST = {"check_interval": 0.5, "quiet": True}
SEED_RESOURCES = {"max_time": "1h", "num_nodes": 1, "partitions": "regular"}
ONE_SLOT = {"max_time": "10m", "num_cores": 1, "partitions": "regular"}


#: Run directory of the jobs of all tests but the seed example (which keeps the default
#: ``run_expyre``, as the seed's config does not set one), so that these tests do not share a
#: directory with other test modules that use the same account at the same time.
RUNDIR = "run_expyre_sge"


def seed_system(host, slots, rundir=RUNDIR):
    """The seed's example system (``"scheduler": "sge"``, its ``#$ -pe smp`` header, partitions
    ``regular`` and ``large-mem``) on the test cluster, whose ``regular`` queue has ``slots`` slots."""
    system = {"host": host, "scheduler": "sge", "header": ["#$ -pe smp {num_cores_per_node}"],
              "partitions": {"regular": {"num_cores": slots, "max_time": "168h", "max_mem": "50GB"},
                             "large-mem": {"num_cores": 32, "max_time": "168h", "max_mem": "200GB"}}}
    if rundir:
        system["rundir"] = rundir
    return system


class Site:
    """The config, the Grid Engine service's values, and commands run on the cluster as the account."""

    def __init__(self, write, sge, sshd_service):
        self._write = write
        self.sge = sge
        self.sshd = sshd_service
        self.slots = int(sge["SGE_SLOTS"])
        self.config = write({"remote": seed_system("cluster", self.slots)})

    @property
    def system(self):
        return self.config.systems["remote"]

    def run(self, command, check=True):
        """A command in a login shell of the account, not through expyre."""
        return self.sshd.run_as_user(command, check=check).stdout

    def state(self, xpr):
        """The plugin's state for the job right now (one status query)."""
        return self.system.status([RemoteJob(xpr.remote_id, xpr.remote_dir, xpr.id)])[xpr.remote_id]

    def accounting(self, number, timeout=30.0):
        """``qacct -j NUMBER``, once Grid Engine has written the job's record (the job may have
        been seen finished, from the exit status it wrote, a moment before that)."""
        return wait_for(lambda: self.run(f"qacct -j {number} 2>/dev/null", check=False), timeout)

    def qstat_names(self):
        """Job number -> name of the account's jobs in Grid Engine's queue."""
        text = self.run("qstat -xml")
        return dict(re.findall(r"<JB_job_number>(\d+)</JB_job_number>\s*<JAT_prio>[^<]*</JAT_prio>\s*"
                               r"<JB_name>([^<]*)</JB_name>", text))

    def rewrite(self, **overrides):
        """Write the config again with the system changed (the jobs database is kept)."""
        system = seed_system("cluster", self.slots)
        system.update(overrides)
        self.config = self._write({"remote": system})
        return self.config


@pytest.fixture
def site(expyre_config, ssh_client_setup, sshd, monkeypatch):
    sge = require_service("sge")
    monkeypatch.setenv("EXPYRE_RETRY", "4 0.5")
    from expyre.transports import ssh as ssh_transport
    ssh_transport.close_all()
    assert ssh_client_setup == "cluster"
    site = Site(expyre_config, sge, sshd)
    yield site
    # nothing of a failed test stays in Grid Engine's queue
    numbers = [row["remote_id"] for row in site.config.db.jobs() if row.get("remote_id")]
    if numbers:
        sshd.run_as_user(f"qdel {' '.join(numbers)} >/dev/null 2>&1; true")
    sshd.remove_remote_dir(RUNDIR)
    ssh_transport.close_all()


def wait_for(predicate, timeout=60.0, interval=0.2):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


def environment_numbers():
    """A function that reports the job's environment (defined here, so cloudpickle sends it by value)."""
    names = ("EXPYRE_NUM_NODES", "EXPYRE_NUM_CORES", "EXPYRE_NUM_CORES_PER_NODE", "NSLOTS", "NHOSTS", "JOB_ID",
             "SGE_ROOT", "SGE_CELL")

    def report():
        import os
        return {k: os.environ.get(k) for k in names}

    return report


# --------------------------------------------------------------------------- the seed example

def test_seed_example_end_to_end(site):
    from expyre.transports import ssh as ssh_transport
    site.config = site._write({"remote": seed_system("cluster", site.slots, rundir=None)})
    opened = ssh_transport.connections_opened
    array_to_sum = np.ones((100, 50))
    xpr = ExPyRe("test_task", function=np.sum, args=[array_to_sum], kwargs={"axis": 1})
    res = {"max_time": "1h", "num_nodes": 1, "partitions": "regular"}
    xpr.start(resources=res, system_name="remote")
    array_sum, stdout, stderr = xpr.get_results(**FAST)
    assert np.max(np.abs(array_sum - [50.0] * 100)) == 0.0
    xpr.mark_processed()

    row = site.config.db.get(xpr.id)
    assert row["status"] == "processed" and row["remote_status"] == "done"
    assert re.fullmatch(r"\d+", row["remote_id"])
    # the script the job ran: the seed's header (with this cluster's slots), the job name aside
    script = site.run(f"cat ~/{row['remote_dir']}/_expyre_job.sh").splitlines()
    assert script[:10] == ["#!/bin/bash -l", f"#$ -pe smp {site.slots}", f"#$ -N N_{xpr.id}", "#$ -q regular",
                           "#$ -l h_rt=1:00:00", f"#$ -o job.{xpr.id}.stdout", f"#$ -e job.{xpr.id}.stderr",
                           "#$ -S /bin/bash", "#$ -r n", "#$ -cwd"]
    # Grid Engine ran it under that name, in that queue, with that parallel environment
    record = site.accounting(row["remote_id"])
    assert re.search(rf"^jobname\s+N_{re.escape(xpr.id)}\s*$", record, re.MULTILINE)
    assert re.search(r"^qname\s+regular\s*$", record, re.MULTILINE)
    assert re.search(r"^granted_pe\s+smp\s*$", record, re.MULTILINE)
    assert re.search(rf"^slots\s+{site.slots}\s*$", record, re.MULTILINE)
    assert (xpr.stage_dir / f"job.{xpr.id}.stdout").is_file()
    assert ssh_transport.connections_opened - opened == 1


def test_job_environment_from_nslots_and_nhosts(site):
    """EXPYRE_NUM_* inside the job come from Grid Engine's NSLOTS/NHOSTS: without a parallel
    environment line the job gets one slot, whatever the partition's node size says."""
    with_pe = ExPyRe("env_pe", function=environment_numbers())
    with_pe.start(resources=SEED_RESOURCES, system_name="remote")
    env = with_pe.get_results(**FAST)[0]
    assert env["NSLOTS"] == str(site.slots) and env["NHOSTS"] == "1" and re.fullmatch(r"\d+", env["JOB_ID"])
    assert (env["EXPYRE_NUM_NODES"], env["EXPYRE_NUM_CORES"], env["EXPYRE_NUM_CORES_PER_NODE"]) == \
        ("1", str(site.slots), str(site.slots))
    assert env["SGE_ROOT"] == site.sge["SGE_ROOT"] and env["SGE_CELL"] == site.sge["SGE_CELL"]

    site.rewrite(header=[])
    no_pe = ExPyRe("env_no_pe", function=environment_numbers())
    no_pe.start(resources=SEED_RESOURCES, system_name="remote")
    env = no_pe.get_results(**FAST)[0]
    assert env["NSLOTS"] == "1"
    assert (env["EXPYRE_NUM_NODES"], env["EXPYRE_NUM_CORES"], env["EXPYRE_NUM_CORES_PER_NODE"]) == ("1", "1", "1")


def test_remote_exception_is_reraised(site):
    def fails():
        raise ValueError("from the Grid Engine job")

    xpr = ExPyRe("raises", function=fails)
    xpr.start(resources=ONE_SLOT, system_name="remote", partial_node=True)
    with pytest.raises(ValueError, match="from the Grid Engine job"):
        xpr.get_results(**FAST)
    assert site.config.db.get(xpr.id)["remote_status"] == "failed"  # the job script's exit status


def test_job_name_grid_engine_would_refuse(site):
    """A name with characters Grid Engine refuses in ``-N`` and in ``-o`` paths still runs."""
    xpr = ExPyRe("2 x:y@z*", function=int, args=["7"])
    xpr.start(resources=ONE_SLOT, system_name="remote", partial_node=True)
    assert xpr.get_results(**FAST)[0] == 7
    record = site.accounting(xpr.remote_id)
    assert re.search(rf"^jobname\s+{re.escape(names.job_name(xpr.id))}\s*$", record, re.MULTILINE)
    listing = site.run(f"ls ~/{commands.quote(xpr.remote_dir)}").split("\n")
    assert names.stdout_file(xpr.id) in listing


# --------------------------------------------------------------------------- many jobs, one query

def test_several_jobs_gathered_with_one_status_query_per_poll(site, monkeypatch):
    from expyre import plugins
    polls = []
    real_status = plugins.status

    def counting_status(scheduler, jobs, shell):
        counting = CountingShell(shell, r"\$\(qstat -xml|^[ \t]*qstat -xml")
        states = real_status(scheduler, jobs, counting)
        polls.append((len(jobs), counting.commands, counting.matches))
        return states

    monkeypatch.setattr(plugins, "status", counting_status)
    jobs = [ExPyRe(f"many{i}", function=time.sleep, args=[0.2 + 0.3 * i]) for i in range(5)]
    for xpr in jobs:
        xpr.start(resources=ONE_SLOT, system_name="remote", partial_node=True)
    assert len({xpr.remote_id for xpr in jobs}) == 5
    jobs[-1].get_results(**FAST)
    assert polls and max(n for n, _, _ in polls) == 5   # every poll asked about all ongoing jobs at once
    assert all(cmds == 1 and qstats == 1 for _, cmds, qstats in polls)  # in one command, one qstat
    n_polls = len(polls)
    for xpr in jobs[:-1]:
        assert xpr.get_results(**FAST)[0] is None
    assert len(polls) == n_polls                        # the others were gathered by the same polls
    assert {site.config.db.get(x.id)["remote_status"] for x in jobs} == {"done"}


# --------------------------------------------------------------------------- held, cancelled

def test_held_job_stays_held_until_released(site):
    # fill the queue's slots, so that the next job has to wait in the queue
    blockers = [ExPyRe(f"blocker{i}", function=time.sleep, args=[120]) for i in range(site.slots)]
    for blocker in blockers:
        blocker.start(resources=ONE_SLOT, system_name="remote", partial_node=True)
    wait_for(lambda: all(site.state(b) == "running" for b in blockers))
    xpr = ExPyRe("held", function=int, args=["5"])
    xpr.start(resources=ONE_SLOT, system_name="remote", partial_node=True)
    assert site.state(xpr) == "queued"
    xpr.hold()
    assert site.state(xpr) == "held"
    assert "hqw" in site.run("qstat")
    for blocker in blockers:
        blocker.cancel()
    for blocker in blockers:
        with pytest.raises(ExPyReJobDiedError):
            blocker.get_results(**FAST)
    # the slots are free, and the held job still does not start
    time.sleep(3)
    assert site.state(xpr) == "held"
    xpr.release()
    assert xpr.get_results(**FAST)[0] == 5


def test_job_submitted_held_by_its_header(site):
    xpr = ExPyRe("submitted_held", function=int, args=["6"])
    xpr.start(resources=ONE_SLOT, system_name="remote", partial_node=True, header_extra=["#$ -h"])
    time.sleep(2)
    assert site.state(xpr) == "held"
    xpr.release()
    assert xpr.get_results(**FAST)[0] == 6


def test_cancelled_running_job_ends_as_died(site):
    xpr = ExPyRe("cancel_me", function=time.sleep, args=[120])
    xpr.start(resources=ONE_SLOT, system_name="remote", partial_node=True)
    wait_for(lambda: site.state(xpr) == "running")
    started = time.monotonic()
    xpr.cancel()
    with pytest.raises(ExPyReJobDiedError, match="'failed'"):
        xpr.get_results(timeout=60, **FAST)
    assert time.monotonic() - started < 30
    row = site.config.db.get(xpr.id)
    assert row["status"] == "died" and row["remote_status"] == "failed"
    assert xpr.remote_id not in site.qstat_names()


def test_cancelled_queued_job_ends_as_died(site):
    """A job deleted before it ran leaves no accounting record: the cancel mark says it is over."""
    xpr = ExPyRe("cancel_queued", function=int, args=["1"])
    xpr.start(resources=ONE_SLOT, system_name="remote", partial_node=True, header_extra=["#$ -h"])
    xpr.cancel()
    started = time.monotonic()
    with pytest.raises(ExPyReJobDiedError):
        xpr.get_results(timeout=60, **FAST)
    assert time.monotonic() - started < 15
    assert site.config.db.get(xpr.id)["remote_status"] == "failed"


def test_job_in_error_state_is_reported_not_waited_on(site):
    """An output file Grid Engine cannot open puts the job into error state (Eqw): the job is
    reported as died at once, with Grid Engine's reason, instead of being waited on."""
    xpr = ExPyRe("error_state", function=int, args=["1"])
    xpr.start(resources=ONE_SLOT, system_name="remote", partial_node=True,
              header_extra=["#$ -o /nonexistent-expyre-dir/out"])
    started = time.monotonic()
    with pytest.raises(ExPyReJobDiedError) as info:
        xpr.get_results(timeout=120, **FAST)
    assert time.monotonic() - started < 30
    message = str(info.value)
    assert "'other'" in message and "error state (Eqw)" in message
    assert "can't open output file" in message and "/nonexistent-expyre-dir/out" in message
    assert site.config.db.get(xpr.id)["remote_status"] == "other"
    assert xpr.remote_id in site.qstat_names()       # reported, and left to the user (qmod -cj / qdel)
    site.run(f"qdel {xpr.remote_id}")


def test_job_past_its_wall_time_dies(site):
    xpr = ExPyRe("too_long", function=time.sleep, args=[120])
    xpr.start(resources={"max_time": "3s", "num_cores": 1, "partitions": "regular"}, system_name="remote",
              partial_node=True)
    script = (xpr.stage_dir / "_expyre_job.sh").read_text()
    assert "#$ -l h_rt=0:00:03" in script
    started = time.monotonic()
    with pytest.raises(ExPyReJobDiedError, match="'timeout'"):
        xpr.get_results(timeout=120, **FAST)
    assert time.monotonic() - started < 60
    assert site.config.db.get(xpr.id)["status"] == "died"


# --------------------------------------------------------------------------- submission

def test_refused_submission_leaves_nothing_and_can_be_fixed(site):
    site.rewrite(partitions={"regular": {"num_cores": site.slots, "max_time": "168h", "partition": "nosuch"}})
    xpr = ExPyRe("refused", function=int, args=["8"])
    with pytest.raises(RemoteCommandError, match='unknown queue "nosuch"') as info:
        xpr.start(resources=ONE_SLOT, system_name="remote", partial_node=True)
    assert "qsub refused job" in str(info.value)
    assert xpr.status == "created" and site.config.db.get(xpr.id)["status"] == "created"
    leftovers = site.run("ls ~/run_expyre/*/ 2>/dev/null || true").split()
    assert not [d for d in leftovers if xpr.id in d]
    # fix the config and start the same job again
    site.rewrite()
    xpr.start(resources=ONE_SLOT, system_name="remote", partial_node=True)
    assert xpr.get_results(**FAST)[0] == 8


def test_interrupted_submission_is_found_not_submitted_again(site):
    def value():
        time.sleep(1)
        return "once"

    xpr = ExPyRe("interrupted", function=value)
    xpr.start(resources=ONE_SLOT, system_name="remote", partial_node=True)
    # what the DB holds if the process had died right after qsub accepted the job
    site.config.db.update(xpr.id, status="submitting", remote_id=None)
    again = ExPyRe("interrupted", function=value)
    assert again.id == xpr.id and again.status == "submitting"
    again.start(resources=ONE_SLOT, system_name="remote", partial_node=True)
    assert again.remote_id == xpr.remote_id
    assert again.get_results(**FAST)[0] == "once"
    job = site.system.job_spec(again.id, again.name, again.stage_dir, Resources(**ONE_SLOT),
                               exact_fit=True, partial_node=True)
    assert expyre_sge.find_submitted("sge", job, site.system.shell) == [xpr.remote_id]


def test_status_of_a_job_grid_engine_never_had(site):
    """A successful query that knows nothing of a job, whose directory is gone: over."""
    states = site.system.status([RemoteJob("999999", "run_expyre/nowhere", "nobody")])
    assert states == {"999999": "other"}


# --------------------------------------------------------------------------- Grid Engine's environment

def test_grid_engine_comes_from_the_login_profile(site):
    """The account's login shell supplies SGE_ROOT/SGE_CELL and PATH; without its profile there
    is no Grid Engine (Debian's /usr/bin wrappers are diverted, as on a real site)."""
    shell = site.system.shell
    result = shell.run(commands.with_environment('echo "$SGE_ROOT $SGE_CELL"; command -v qsub'))
    root_cell, qsub = result.stdout.split("\n")[:2]
    assert root_cell == f"{site.sge['SGE_ROOT']} {site.sge['SGE_CELL']}"
    assert qsub.startswith(site.sge["SGE_ROOT"] + "/bin/")
    bare = shell.run("env -i HOME=\"$HOME\" PATH=/usr/bin:/bin bash -c 'command -v qsub || echo none'")
    assert bare.stdout.strip() == "none"


def test_sge_root_alone_is_enough(site):
    """A login that exports only SGE_ROOT/SGE_CELL (no PATH, no SGE_ARCH): the plugin finds
    $SGE_ROOT/bin/<arch> itself."""
    shell = site.system.shell
    only_root = (f"env -i HOME=\"$HOME\" USER=\"$USER\" PATH=/usr/bin:/bin SGE_ROOT={site.sge['SGE_ROOT']} "
                 f"SGE_CELL={site.sge['SGE_CELL']} bash -c ")
    result = shell.run(only_root + commands.quote(commands.with_environment("command -v qstat; qstat -xml >/dev/null")))
    assert result.stdout.strip() == f"{site.sge['SGE_ROOT']}/bin/{site.sge['SGE_ARCH']}/qstat"


class NoProfileShell:
    """The real shell, with the Grid Engine environment of the login profile taken away."""

    def __init__(self, shell):
        self.shell = shell
        self.host = shell.host

    def run(self, command, **kwargs):
        return self.shell.run("unset SGE_ROOT SGE_CELL SGE_ARCH; PATH=/usr/bin:/bin\n" + command, **kwargs)

    def close(self):
        pass


def test_missing_environment_is_a_clear_error_not_a_finished_job(site):
    xpr = ExPyRe("no_env", function=int, args=["2"])
    xpr.start(resources=ONE_SLOT, system_name="remote", partial_node=True)
    shell = NoProfileShell(site.system.shell)
    job = RemoteJob(xpr.remote_id, xpr.remote_dir, xpr.id)
    with pytest.raises(RemoteCommandError, match=r"SGE_ROOT is not set.*settings\.sh"):
        expyre_sge.status("sge", [job], shell)
    with pytest.raises(RemoteCommandError, match="not available"):
        expyre_sge.cancel("sge", [job], shell)
    assert xpr.get_results(**FAST)[0] == 2
