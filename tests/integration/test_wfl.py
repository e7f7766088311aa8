"""The real-client test: wfl's own remote tests, unchanged, with expyre in place of ExPyRe.

wfl (libAtoms' workflow package) is expyre's main user: ``wfl.autoparallelize`` with a
``RemoteInfo`` turns every chunk of work into an ``ExPyRe`` job. tests/services/50-wfl.sh
installs wfl 0.3.5 from PyPI without its ``expyre-wfl`` dependency, with this checkout's
expyre-core and expyre-slurm instead, into an environment that the tests and the cluster account
both use, and unpacks wfl's sdist. In that environment, ``pytest --runremote`` runs wfl's
``tests/test_remote_run.py`` and ``tests/test_list_with_nested_configset_info.py``, selecting the
system with ``EXPYRE_PYTEST_SYSTEMS`` from ``~/.expyre/config.json`` as wfl's CI does
(tests/wfl_remote.py):

- ``direct``: every remote test, on this machine with the ``direct`` scheduler;
- ``slurm``: jobs submitted over SSH to the account xpr-cluster of the local Slurm
  (tests/services/10-sshd.sh, 20-slurm.sh): by default ``test_generic_calc``,
  ``test_fail_immediately`` and ``test_resubmit_killed_jobs``; every remote test with
  ``EXPYRE_WFL_FULL=1`` in the environment of the test command.

wfl polls every 10 s, so these take minutes, mostly waiting. The run on ``direct`` therefore
starts in the background with the first integration test (the session fixture
``wfl_on_direct`` in tests/wfl_remote.py), and both tests here run last: the one on
``direct`` only collects its outcome. The run on Slurm cannot overlap other tests, some of which
stop the sshd it goes through.

wfl's Quantum Espresso test runs Debian's pw.x (tests/services/50-wfl.sh installs it) on
``direct``; on Slurm it is skipped with its reason (``QE_NEEDS_SHARED_FILES``). wfl's sdist has no
``tests/conftest.py``; the pytest plugin ``wfl_harness/expyre_wfl_harness.py`` provides the
option and fixtures its tests use.
"""
import os

import pytest
from servicelib import require_service
from wfl_remote import WFL_TEST_MODULES, WflRun, assert_all_passed, job_commands, write_expyre_config

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: Read at import: the test's own fixtures remove EXPYRE_* variables from the environment.
FULL_SLURM = os.environ.get("EXPYRE_WFL_FULL", "") == "1"

SLURM_SUBSET = ("tests/test_remote_run.py::test_generic_calc", "tests/test_remote_run.py::test_fail_immediately",
                "tests/test_remote_run.py::test_resubmit_killed_jobs")
#: The jobs' run directory in the cluster account's home, removed after the test.
SLURM_RUNDIR = "run_expyre_wfl"
#: A hung run fails instead of holding CI (the runs take about 7, 7 and 18 minutes here), counted
#: from the run's start.
TIMEOUT_DIRECT = 20 * 60
TIMEOUT_SLURM = 20 * 60
TIMEOUT_SLURM_FULL = 40 * 60

#: wfl's Quantum Espresso test gives pw.x a pseudopotential directory in its local tmp_path, so the
#: job must see the submitting side's files: true on wfl's CI (same user, same machine), not for
#: jobs that run as the cluster account, which cannot read the test's private temporary directory.
QE_NEEDS_SHARED_FILES = ("wfl's Quantum Espresso test names a pseudopotential directory in the test's own "
                         "temporary directory, which the cluster account running the Slurm jobs cannot read")

ALL_TESTS = {"test_generic_calc", "test_generic_calc_qe", "test_minim", "test_md_deterministic", "test_vasp_fail",
             "test_fail_immediately", "test_ignore_failed_jobs", "test_resubmit_killed_jobs",
             "test_list_with_nested_configset_info"}


def test_wfl_remote_tests_on_direct(wfl_on_direct):
    if isinstance(wfl_on_direct, BaseException):
        raise wfl_on_direct  # the environment's set-up failed when the session started the run
    if wfl_on_direct is None:
        require_service("wfl")  # skips, or fails under CI, with the services' usual message
    assert_all_passed(wfl_on_direct.finish(TIMEOUT_DIRECT), ALL_TESTS)


def test_wfl_remote_tests_on_slurm_over_ssh(wfl_env, isolated_home, ssh_client_setup, sshd):
    slurm = require_service("slurm")
    # wfl's CI config for its GitHub runner's Slurm, reached over SSH as the cluster account.
    system = {"host": ssh_client_setup, "scheduler": "slurm", "rundir": SLURM_RUNDIR,
              "commands": job_commands(wfl_env),
              "header": ["#SBATCH --nodes={num_nodes}", "#SBATCH --ntasks={num_cores}",
                         "#SBATCH --ntasks-per-node={num_cores_per_node}"],
              "partitions": {slurm["SLURM_PARTITION"]: {"num_cores": int(slurm["SLURM_CPUS"]), "max_time": None,
                                                        "max_mem": "10GB"}}}
    write_expyre_config(isolated_home, {"wfl_slurm": system})
    selection = WFL_TEST_MODULES if FULL_SLURM else SLURM_SUBSET
    run = WflRun(wfl_env, isolated_home, "wfl_slurm", selection, skip_qe=QE_NEEDS_SHARED_FILES)
    try:
        result = run.finish(TIMEOUT_SLURM_FULL if FULL_SLURM else TIMEOUT_SLURM)
    finally:
        # Nothing of a failed run stays in the queue (wfl names the jobs pytest_<system>...).
        sshd.run_as_user("squeue --noheader --user=\"$USER\" --format='%i %j' "
                         "| awk '$2 ~ /^pytest_wfl_slurm/ {print $1}' | xargs --no-run-if-empty scancel; "
                         f"rm -rf -- \"$HOME/{SLURM_RUNDIR}\"")
    assert_all_passed(result, ALL_TESTS if FULL_SLURM else {name.split("::")[1] for name in SLURM_SUBSET},
                      may_skip={"test_generic_calc_qe": QE_NEEDS_SHARED_FILES})
