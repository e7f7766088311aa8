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

wfl polls every 10 s, so these take minutes, mostly waiting; they run in the background
(tests/wfl_remote.py). The run on ``direct`` starts with the session's first test, the run on
Slurm before the first test that uses no service (tests/conftest.py orders those after the ones
that do: they stop the sshd, or fill the one Slurm node). Both tests here run last and only
collect the outcomes.

wfl's Quantum Espresso test runs Debian's pw.x (tests/services/50-wfl.sh installs it) on
``direct``; on Slurm it is skipped with its reason (``QE_NEEDS_SHARED_FILES``). wfl's sdist has no
``tests/conftest.py``; the pytest plugin ``wfl_harness/expyre_wfl_harness.py`` provides the
option and fixtures its tests use.
"""
import pytest
import wfl_remote
from servicelib import require_service
from wfl_remote import FULL_SLURM, QE_NEEDS_SHARED_FILES, SLURM_RUNDIR, SLURM_SUBSET, assert_all_passed

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: A hung run fails instead of holding CI (the runs take about 7, 7 and 18 minutes here), counted
#: from the run's start.
TIMEOUT_DIRECT = 20 * 60
TIMEOUT_SLURM = 20 * 60
TIMEOUT_SLURM_FULL = 40 * 60

ALL_TESTS = {"test_generic_calc", "test_generic_calc_qe", "test_minim", "test_md_deterministic", "test_vasp_fail",
             "test_fail_immediately", "test_ignore_failed_jobs", "test_resubmit_killed_jobs",
             "test_list_with_nested_configset_info"}


def test_wfl_remote_tests_on_direct(wfl_on_direct):
    if isinstance(wfl_on_direct, BaseException):
        raise wfl_on_direct  # the environment's set-up failed when the session started the run
    if wfl_on_direct is None:
        require_service("wfl")  # skips, or fails under CI, with the services' usual message
    assert_all_passed(wfl_on_direct.finish(TIMEOUT_DIRECT), ALL_TESTS)


def test_wfl_remote_tests_on_slurm_over_ssh(sshd, tmp_path):
    run = wfl_remote.slurm_run
    if run is None:  # not started in the background (no test without services ran before this one)
        run = wfl_remote.slurm_run = wfl_remote.start_on_slurm(tmp_path)
    if isinstance(run, BaseException):
        raise run
    if run is None:
        for name in ("wfl", "slurm", "sshd"):
            require_service(name)  # skips, or fails under CI, with the services' usual message
    try:
        result = run.finish(TIMEOUT_SLURM_FULL if FULL_SLURM else TIMEOUT_SLURM)
    finally:
        # Nothing of a failed run stays in the queue (wfl names the jobs pytest_<system>...).
        sshd.run_as_user("squeue --noheader --user=\"$USER\" --format='%i %j' "
                         "| awk '$2 ~ /^pytest_wfl_slurm/ {print $1}' | xargs --no-run-if-empty scancel; "
                         f"rm -rf -- \"$HOME/{SLURM_RUNDIR}\"")
    assert_all_passed(result, ALL_TESTS if FULL_SLURM else {name.split("::")[1] for name in SLURM_SUBSET},
                      may_skip={"test_generic_calc_qe": QE_NEEDS_SHARED_FILES})
