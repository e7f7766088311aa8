"""The real-client test: wfl's own remote tests, unchanged, with expyre in place of ExPyRe.

wfl (libAtoms' workflow package) is expyre's main user: ``wfl.autoparallelize`` with a
``RemoteInfo`` turns every chunk of work into an ``ExPyRe`` job. tests/services/50-wfl.sh
installs wfl 0.3.5 from PyPI without its ``expyre-wfl`` dependency, with this checkout's
expyre-core and expyre-slurm instead, into an environment that this process and the cluster
account both use, and unpacks wfl's sdist. This test runs that script (so the environment holds
this checkout) and then, in that environment, ``pytest --runremote`` on wfl's
``tests/test_remote_run.py`` and ``tests/test_list_with_nested_configset_info.py``, selecting the
system with ``EXPYRE_PYTEST_SYSTEMS`` from ``~/.expyre/config.json`` as wfl's CI does:

- ``direct``: every remote test, on this machine with the ``direct`` scheduler;
- ``slurm``: jobs submitted over SSH to the account xpr-cluster of the local Slurm
  (tests/services/10-sshd.sh, 20-slurm.sh): by default ``test_generic_calc``,
  ``test_fail_immediately`` and ``test_resubmit_killed_jobs``; every remote test with
  ``EXPYRE_WFL_FULL=1`` in the environment of the test command.

wfl polls every 10 s, so these take minutes. wfl's Quantum Espresso test runs Debian's pw.x
(tests/services/50-wfl.sh installs it) on ``direct``; on Slurm it is skipped with its reason
(``QE_NEEDS_SHARED_FILES``). wfl's sdist has no ``tests/conftest.py``; the pytest plugin
``wfl_harness/expyre_wfl_harness.py`` provides the option and fixtures its tests use.
"""
import json
import os
import signal
import subprocess
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
from servicelib import REPO, require_service

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: Read at import: the test's own fixtures remove EXPYRE_* variables from the environment.
FULL_SLURM = os.environ.get("EXPYRE_WFL_FULL", "") == "1"

SETUP_SCRIPT = REPO / "tests" / "services" / "50-wfl.sh"
HARNESS_DIR = Path(__file__).resolve().parent / "wfl_harness"
WFL_TEST_MODULES = ("tests/test_remote_run.py", "tests/test_list_with_nested_configset_info.py")
SLURM_SUBSET = ("tests/test_remote_run.py::test_generic_calc", "tests/test_remote_run.py::test_fail_immediately",
                "tests/test_remote_run.py::test_resubmit_killed_jobs")
#: The jobs' run directory in the cluster account's home, removed after the test.
SLURM_RUNDIR = "run_expyre_wfl"
#: A hung run fails instead of holding CI (the runs take about 7, 7 and 18 minutes here).
TIMEOUT_DIRECT = 20 * 60
TIMEOUT_SLURM = 20 * 60
TIMEOUT_SLURM_FULL = 40 * 60


@pytest.fixture(scope="module")
def wfl_env():
    """The values tests/services/50-wfl.sh prints, after it brought the environment up to date."""
    result = subprocess.run(["bash", str(SETUP_SCRIPT)], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                            timeout=30 * 60)
    assert result.returncode == 0, f"{SETUP_SCRIPT.name} failed:\n{result.stderr[-5000:]}"
    values = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    if not values:
        require_service("wfl")  # skips, or fails under CI, with the services' usual message
    return values


def _write_expyre_config(home: Path, systems: dict) -> None:
    root = home / ".expyre"
    root.mkdir(exist_ok=True)
    (root / "config.json").write_text(json.dumps({"systems": systems}, indent=1))


def _job_commands(wfl_env) -> list:
    """The system's ``commands``: the wfl environment first on PATH, ASE's config for Quantum Espresso."""
    return [f"source {wfl_env['WFL_VENV']}/bin/activate", f"export ASE_CONFIG_PATH={wfl_env['WFL_ASE_CONFIG']}"]


#: wfl's Quantum Espresso test gives pw.x a pseudopotential directory in its local tmp_path, so the
#: job must see the submitting side's files: true on wfl's CI (same user, same machine), not for
#: jobs that run as the cluster account, which cannot read the test's private temporary directory.
QE_NEEDS_SHARED_FILES = ("wfl's Quantum Espresso test names a pseudopotential directory in the test's own "
                         "temporary directory, which the cluster account running the Slurm jobs cannot read")


def run_wfl_tests(wfl_env, home: Path, system_name: str, selection, timeout: float, skip_qe: str = "") -> dict:
    """Run wfl's tests ``selection`` against ``system_name``; returns the per-test outcomes and the
    wall time, and fails with the end of wfl's output when pytest itself did not finish.
    A non-empty ``skip_qe`` skips wfl's Quantum Espresso test with that reason."""
    tests_root = Path(wfl_env["WFL_TESTS_ROOT"])
    log = home / f"wfl-{system_name}.log"
    junit = home / f"wfl-{system_name}.xml"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTEST_ADDOPTS")}
    env.update(HOME=str(home), EXPYRE_PYTEST_SYSTEMS=f"^{system_name}$", WFL_SOURCE_ROOT=str(tests_root),
               PYTHONPATH=str(HARNESS_DIR), PATH=f"{wfl_env['WFL_VENV']}/bin:{env.get('PATH', '/usr/bin:/bin')}",
               ASE_CONFIG_PATH=wfl_env["WFL_ASE_CONFIG"], PYTHONUNBUFFERED="1", WFL_HARNESS_SKIP_QE=skip_qe)
    command = [wfl_env["WFL_PYTHON"], "-m", "pytest", "-p", "expyre_wfl_harness", "-p", "no:cacheprovider",
               "--runremote", "--basetemp", str(home / "pytest"), "-rxXs", "-v", "--durations=0",
               f"--junitxml={junit}", *selection]
    start = time.monotonic()
    with open(log, "w") as out:
        process = subprocess.Popen(command, cwd=tests_root, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    wall = time.monotonic() - start
    output = log.read_text(errors="replace")
    print(output)
    print(f"wfl remote tests on {system_name}: {wall:.0f} s wall time")
    assert junit.exists(), (f"wfl's pytest on {system_name} did not finish (exit {process.returncode}, "
                            f"{wall:.0f} s):\n{output[-8000:]}")
    return {"outcomes": _outcomes(junit), "wall": wall, "output": output}


def _outcomes(junit: Path) -> dict:
    """``{test name: (outcome, message)}`` from pytest's JUnit XML."""
    outcomes = {}
    for case in ElementTree.parse(junit).iter("testcase"):
        outcome, message = "passed", ""
        for kind in ("failure", "error", "skipped"):
            element = case.find(kind)
            if element is not None:
                outcome, message = kind, element.get("message", "")
                break
        outcomes[case.get("name")] = (outcome, message)
    return outcomes


def assert_all_passed(result: dict, expected: set, may_skip: dict = None) -> None:
    """Every expected wfl test ran and passed; a skip counts as not passed, except for a test in
    ``may_skip`` ({name: reason}) skipped with that reason."""
    outcomes = result["outcomes"]
    may_skip = may_skip or {}
    assert set(outcomes) == expected, f"wfl's tests ran {sorted(outcomes)}, expected {sorted(expected)}"
    bad = {name: outcome for name, outcome in outcomes.items()
           if outcome[0] != "passed" and not (outcome[0] == "skipped" and may_skip.get(name, "\0") in outcome[1])}
    summary = ", ".join(f"{name}: {outcome}: {message[:300]}" for name, (outcome, message) in sorted(bad.items()))
    assert not bad, f"{len(bad)} of {len(outcomes)} of wfl's remote tests did not pass: {summary}\n" \
                    f"end of wfl's output:\n{result['output'][-6000:]}"


ALL_TESTS = {"test_generic_calc", "test_generic_calc_qe", "test_minim", "test_md_deterministic", "test_vasp_fail",
             "test_fail_immediately", "test_ignore_failed_jobs", "test_resubmit_killed_jobs",
             "test_list_with_nested_configset_info"}


def test_wfl_remote_tests_on_direct(wfl_env, isolated_home):
    system = {"host": None, "scheduler": "direct", "commands": _job_commands(wfl_env),
              "partitions": {"regular": {"num_cores": 2, "max_time": None, "max_mem": "10GB"}}}
    _write_expyre_config(isolated_home, {"wfl_direct": system})
    result = run_wfl_tests(wfl_env, isolated_home, "wfl_direct", WFL_TEST_MODULES, TIMEOUT_DIRECT)
    assert_all_passed(result, ALL_TESTS)


def test_wfl_remote_tests_on_slurm_over_ssh(wfl_env, isolated_home, ssh_client_setup, sshd):
    slurm = require_service("slurm")
    # wfl's CI config for its GitHub runner's Slurm, reached over SSH as the cluster account.
    system = {"host": ssh_client_setup, "scheduler": "slurm", "rundir": SLURM_RUNDIR,
              "commands": _job_commands(wfl_env),
              "header": ["#SBATCH --nodes={num_nodes}", "#SBATCH --ntasks={num_cores}",
                         "#SBATCH --ntasks-per-node={num_cores_per_node}"],
              "partitions": {slurm["SLURM_PARTITION"]: {"num_cores": int(slurm["SLURM_CPUS"]), "max_time": None,
                                                        "max_mem": "10GB"}}}
    _write_expyre_config(isolated_home, {"wfl_slurm": system})
    selection = WFL_TEST_MODULES if FULL_SLURM else SLURM_SUBSET
    try:
        result = run_wfl_tests(wfl_env, isolated_home, "wfl_slurm", selection,
                               TIMEOUT_SLURM_FULL if FULL_SLURM else TIMEOUT_SLURM, skip_qe=QE_NEEDS_SHARED_FILES)
    finally:
        # Nothing of a failed run stays in the queue (wfl names the jobs pytest_<system>...).
        sshd.run_as_user("squeue --noheader --user=\"$USER\" --format='%i %j' "
                         "| awk '$2 ~ /^pytest_wfl_slurm/ {print $1}' | xargs --no-run-if-empty scancel; "
                         f"rm -rf -- \"$HOME/{SLURM_RUNDIR}\"")
    assert_all_passed(result, ALL_TESTS if FULL_SLURM else {name.split("::")[1] for name in SLURM_SUBSET},
                      may_skip={"test_generic_calc_qe": QE_NEEDS_SHARED_FILES})
