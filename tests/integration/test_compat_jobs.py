"""ExPyRe 0.1.6 behaviour that real jobs show: env_vars expanded by the job's shell,
``get_results(timeout=0)`` as "look once", a polite poll floor, ``force_rerun`` starting clean
and ``pre_submit_cmds``. Jobs run for real through the direct scheduler, on this machine and over
the real sshd."""
# ruff: noqa: F811
import os
import sys
import time

import cloudpickle
import pytest
from conftest import direct_system
from sshd_fixtures import ssh_client_setup, sshd  # noqa: F401  (fixtures)

from expyre import ExPyReJobDiedError, ExPyReTimeoutError
from expyre.func import ExPyRe
from expyre.system import System
from expyre.transports import ssh as ssh_transport

pytestmark = pytest.mark.integration
cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the job side cannot import this test module

RESOURCES = {"max_time": "1h", "num_nodes": 1, "partitions": "regular"}


@pytest.fixture
def local(expyre_config):
    return expyre_config({"remote": direct_system()})


@pytest.fixture
def over_ssh(expyre_config, ssh_client_setup, sshd):
    ssh_transport.close_all()
    yield expyre_config({"remote": direct_system(host=ssh_client_setup, pre_submit_cmds=[
        "touch", "pre submit ran", "&&", "echo", "$HOME", ">", "pre_submit_home"])})
    ssh_transport.close_all()


@pytest.fixture
def status_queries(monkeypatch):
    """Counts System.status calls (each is one real status query of the scheduler)."""
    calls = []
    real = System.status

    def counted(self, jobs):
        calls.append(time.monotonic())
        return real(self, jobs)

    monkeypatch.setattr(System, "status", counted)
    return calls


def read_env(*names):
    return tuple(os.environ.get(n) for n in names)


def sleep_unless(flag_file, seconds=60):
    """Sleep while ``flag_file`` exists (the first run), return at once otherwise."""
    if os.path.exists(flag_file):
        time.sleep(seconds)
    return "done"


def count_runs(counter_file):
    with open(counter_file, "a") as fout:
        fout.write("x")
    with open(counter_file) as fin:
        return len(fin.read())


def test_env_vars_are_expanded_by_the_job_shell(local, isolated_home):
    xpr = ExPyRe("env", function=read_env, args=["CORES", "PATHLIKE", "LITERAL"],
                 env_vars=["CORES=${EXPYRE_NUM_CORES_PER_NODE}", "PATHLIKE=/opt/x:$HOME", "LITERAL=$(echo hi)"],
                 pre_run_commands=["export HOME=/set/by/pre_run"])
    xpr.start(resources=RESOURCES, system_name="remote")
    values, _, _ = xpr.get_results(check_interval=0.2, quiet=True)
    assert values == ("2", "/opt/x:/set/by/pre_run", "hi")


def test_timeout_zero_looks_once(local, tmp_path, status_queries):
    flag = tmp_path / "slow"
    flag.touch()
    xpr = ExPyRe("slow", function=sleep_unless, args=[str(flag)])
    xpr.start(resources=RESOURCES, system_name="remote")
    started = time.monotonic()
    with pytest.raises(ExPyReTimeoutError):
        xpr.get_results(timeout=0, check_interval=0, quiet=True)
    assert time.monotonic() - started < 5
    assert len(status_queries) == 1
    xpr.cancel()


def test_killed_job_is_died_under_timeout_zero_and_force_rerun_starts_clean(local, tmp_path):
    """wfl's resubmit-killed-jobs loop: get_results(timeout=0) raises ExPyReJobDiedError for a killed
    job, and start(force_rerun=True) runs it again from a clean directory."""
    flag = tmp_path / "slow"
    flag.touch()
    xpr = ExPyRe("killed", function=sleep_unless, args=[str(flag)])
    xpr.start(resources=RESOURCES, system_name="remote")
    with pytest.raises(ExPyReTimeoutError):
        xpr.get_results(timeout=0, check_interval=0, quiet=True)
    xpr.cancel()
    deadline = time.monotonic() + 30
    while True:
        try:
            xpr.get_results(timeout=0, check_interval=0, quiet=True)
        except ExPyReJobDiedError:
            break
        except ExPyReTimeoutError:
            assert time.monotonic() < deadline, "the cancelled job was never reported as died"
            time.sleep(0.3)
    flag.unlink()
    xpr.start(resources=RESOURCES, system_name="remote", force_rerun=True)
    assert xpr.get_results(check_interval=0.2, quiet=True)[0] == "done"
    assert local.db.get(xpr.id)["status"] == "succeeded"


def test_force_rerun_after_success_runs_again(local, tmp_path):
    counter = tmp_path / "counter"
    xpr = ExPyRe("twice", function=count_runs, args=[str(counter)])
    xpr.start(resources=RESOURCES, system_name="remote")
    assert xpr.get_results(check_interval=0.2, quiet=True)[0] == 1
    xpr.start(resources=RESOURCES, system_name="remote", force_rerun=True)
    assert xpr.get_results(check_interval=0.2, quiet=True)[0] == 2
    assert counter.read_text() == "xx"


def test_check_interval_zero_cannot_flood_a_remote_host(over_ssh, tmp_path, status_queries, sshd):
    xpr = ExPyRe("polite", function=time.sleep, args=[30])
    xpr.start(resources=RESOURCES, system_name="remote")
    with pytest.raises(ExPyReTimeoutError):
        xpr.get_results(timeout=3, check_interval=0, quiet=True)
    assert 2 <= len(status_queries) <= 4
    gaps = [b - a for a, b in zip(status_queries, status_queries[1:])]
    assert min(gaps) >= 0.99
    xpr.cancel()


def test_pre_submit_cmds_run_on_the_host_before_submission(over_ssh, sshd):
    xpr = ExPyRe("presubmit", function=sum, args=[[1, 2]])
    xpr.start(resources=RESOURCES, system_name="remote")
    assert sshd.run_as_user("test -f 'pre submit ran'").returncode == 0
    assert sshd.run_as_user("cat pre_submit_home").stdout.strip() == str(sshd.home)
    assert xpr.get_results(check_interval=0.2, quiet=True)[0] == 3
    sshd.run_as_user("rm -f 'pre submit ran' pre_submit_home")
