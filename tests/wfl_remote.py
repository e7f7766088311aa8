"""Running wfl's own remote tests against this checkout's expyre: the helpers of
tests/integration/test_wfl.py, and the session fixtures (loaded by tests/conftest.py) that set
wfl's environment up and start its run on ``direct`` early.

tests/services/50-wfl.sh installs wfl 0.3.5 from PyPI without its ``expyre-wfl`` dependency, with
this checkout's expyre-core and expyre-slurm instead, into an environment that the tests and the
cluster account both use, and unpacks wfl's sdist. :class:`WflRun` runs, in that environment,
``pytest --runremote`` on a selection of wfl's tests against one system of a private
``~/.expyre/config.json``, selected with ``EXPYRE_PYTEST_SYSTEMS`` as wfl's CI does.
"""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from functools import cache
from pathlib import Path
from typing import Dict, Optional

import pytest
from servicelib import REPO, read_service, require_service

SETUP_SCRIPT = REPO / "tests" / "services" / "50-wfl.sh"
HARNESS_DIR = Path(__file__).resolve().parent / "integration" / "wfl_harness"
WFL_TEST_MODULES = ("tests/test_remote_run.py", "tests/test_list_with_nested_configset_info.py")
#: Read at import: the tests' own fixtures remove EXPYRE_* variables from the environment.
FULL_SLURM = os.environ.get("EXPYRE_WFL_FULL", "") == "1"
SLURM_SUBSET = ("tests/test_remote_run.py::test_generic_calc", "tests/test_remote_run.py::test_fail_immediately",
                "tests/test_remote_run.py::test_resubmit_killed_jobs")
#: The Slurm jobs' run directory in the cluster account's home, removed after the test.
SLURM_RUNDIR = "run_expyre_wfl"
#: wfl's Quantum Espresso test gives pw.x a pseudopotential directory in its local tmp_path, so the
#: job must see the submitting side's files: true on wfl's CI (same user, same machine), not for
#: jobs that run as the cluster account, which cannot read the test's private temporary directory.
QE_NEEDS_SHARED_FILES = ("wfl's Quantum Espresso test names a pseudopotential directory in the test's own "
                         "temporary directory, which the cluster account running the Slurm jobs cannot read")


@cache
def set_up_environment() -> Dict[str, str]:
    """Bring the wfl environment up to date (tests/services/50-wfl.sh), once per session, and
    return the values it prints; empty when the service cannot be set up here. Raises with the
    script's error output when it fails."""
    result = subprocess.run(["bash", str(SETUP_SCRIPT)], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                            timeout=30 * 60)
    if result.returncode != 0:
        raise RuntimeError(f"{SETUP_SCRIPT.name} failed:\n{result.stderr[-5000:]}")
    return dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)


def job_commands(wfl_env: Dict[str, str]) -> list:
    """The system's ``commands``: the wfl environment first on PATH, ASE's config for Quantum Espresso."""
    return [f"source {wfl_env['WFL_VENV']}/bin/activate", f"export ASE_CONFIG_PATH={wfl_env['WFL_ASE_CONFIG']}"]


def write_expyre_config(home: Path, systems: dict) -> None:
    root = home / ".expyre"
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(json.dumps({"systems": systems}, indent=1))


class WflRun:
    """wfl's pytest on ``selection`` against ``system_name``, running in the background from
    construction; :meth:`finish` waits for it and returns its outcomes.

    ``home`` holds ``.expyre/config.json`` and receives the log and JUnit XML. A non-empty
    ``skip_qe`` skips wfl's Quantum Espresso test with that reason.
    """

    def __init__(self, wfl_env: Dict[str, str], home: Path, system_name: str, selection, skip_qe: str = ""):
        self.system_name, self.home = system_name, home
        tests_root = Path(wfl_env["WFL_TESTS_ROOT"])
        self.log = home / f"wfl-{system_name}.log"
        self.junit = home / f"wfl-{system_name}.xml"
        # Our own EXPYRE_* settings (EXPYRE_WFL_FULL, EXPYRE_RETRY...) are not wfl's.
        env = {k: v for k, v in os.environ.items()
               if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTEST_ADDOPTS") and not k.startswith("EXPYRE_")}
        env.update(HOME=str(home), EXPYRE_PYTEST_SYSTEMS=f"^{system_name}$", WFL_SOURCE_ROOT=str(tests_root),
                   PYTHONPATH=str(HARNESS_DIR), PATH=f"{wfl_env['WFL_VENV']}/bin:{env.get('PATH', '/usr/bin:/bin')}",
                   ASE_CONFIG_PATH=wfl_env["WFL_ASE_CONFIG"], PYTHONUNBUFFERED="1", WFL_HARNESS_SKIP_QE=skip_qe)
        command = [wfl_env["WFL_PYTHON"], "-m", "pytest", "-p", "expyre_wfl_harness", "-p", "no:cacheprovider",
                   "--runremote", "--basetemp", str(home / "pytest"), "-rxXs", "-v", "--durations=0",
                   f"--junitxml={self.junit}", *selection]
        self.start = time.monotonic()
        with open(self.log, "w") as out:
            self.process = subprocess.Popen(command, cwd=tests_root, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                            stderr=subprocess.STDOUT, start_new_session=True)

    def kill(self) -> None:
        """Stop the run and everything it started, if it is still going."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def finish(self, timeout: float) -> dict:
        """Wait until ``timeout`` seconds after the start; returns the per-test outcomes, the wall
        time and wfl's output, and fails with the end of that output when pytest did not finish."""
        try:
            self.process.wait(timeout=max(0.0, self.start + timeout - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.kill()
        wall = time.monotonic() - self.start
        output = self.log.read_text(errors="replace")
        print(output)
        print(f"wfl remote tests on {self.system_name}: {wall:.0f} s wall time")
        assert self.junit.exists(), (f"wfl's pytest on {self.system_name} did not finish "
                                     f"(exit {self.process.returncode}, {wall:.0f} s):\n{output[-8000:]}")
        return {"outcomes": outcomes(self.junit), "wall": wall, "output": output}


def outcomes(junit: Path) -> dict:
    """``{test name: (outcome, message)}`` from pytest's JUnit XML."""
    found = {}
    for case in ElementTree.parse(junit).iter("testcase"):
        outcome, message = "passed", ""
        for kind in ("failure", "error", "skipped"):
            element = case.find(kind)
            if element is not None:
                outcome, message = kind, element.get("message", "")
                break
        found[case.get("name")] = (outcome, message)
    return found


def assert_all_passed(result: dict, expected: set, may_skip: Optional[dict] = None) -> None:
    """Every expected wfl test ran and passed; a skip counts as not passed, except for a test in
    ``may_skip`` ({name: reason}) skipped with that reason."""
    found = result["outcomes"]
    may_skip = may_skip or {}
    assert set(found) == expected, f"wfl's tests ran {sorted(found)}, expected {sorted(expected)}"
    bad = {name: outcome for name, outcome in found.items()
           if outcome[0] != "passed" and not (outcome[0] == "skipped" and may_skip.get(name, "\0") in outcome[1])}
    summary = ", ".join(f"{name}: {outcome}: {message[:300]}" for name, (outcome, message) in sorted(bad.items()))
    assert not bad, f"{len(bad)} of {len(found)} of wfl's remote tests did not pass: {summary}\n" \
                    f"end of wfl's output:\n{result['output'][-6000:]}"


def start_on_direct(wfl_env: Dict[str, str], home: Path) -> WflRun:
    """Every one of wfl's remote tests on this machine, with the ``direct`` scheduler."""
    system = {"host": None, "scheduler": "direct", "commands": job_commands(wfl_env),
              "partitions": {"regular": {"num_cores": 2, "max_time": None, "max_mem": "10GB"}}}
    write_expyre_config(home, {"wfl_direct": system})
    return WflRun(wfl_env, home, "wfl_direct", WFL_TEST_MODULES)


WFL_MODULE = "test_wfl.py"
#: Integration test modules that use neither the sshd nor a scheduler service: with the unit
#: tests, they run while wfl's run on Slurm goes on in the background (:func:`start_on_slurm_before`).
LOCAL_ONLY_MODULES = {"test_cli.py", "test_docs.py", "test_example_plugins.py", "test_executor_local.py",
                      "test_local_jobs.py", "test_preflight_local.py", "test_progress.py", "test_restart.py",
                      "test_wheels.py"}
SLURM_TEST = "test_wfl_remote_tests_on_slurm_over_ssh"
SLURM_HOME_PREFIX = "expyre-wfl-slurm-"


def _local_only(item) -> bool:
    return item.path.name in LOCAL_ONLY_MODULES or item.path.parent.name == "unit"


def order_session(items: list) -> None:
    """Order the session: tests that use the services, then those that do not, then the
    real-client tests. wfl's run on ``direct`` starts with the session, its run on Slurm before
    the first test that does not use the services, and both mostly wait on wfl's 10 s polls, so
    the longer they have had in the background, the less their tests wait."""
    wfl = [item for item in items if item.path.name == WFL_MODULE]
    others = [item for item in items if item.path.name != WFL_MODULE]
    items[:] = [item for item in others if not _local_only(item)] + [item for item in others if _local_only(item)] + wfl


#: wfl's run on Slurm once started: a WflRun, or the exception starting it raised.
slurm_run = None


def start_on_slurm_before(item) -> None:
    """Start wfl's run on Slurm before ``item`` if it is the first test that uses no service and
    the Slurm test is selected (the other tests stop the sshd, or fill the one Slurm node)."""
    global slurm_run
    if slurm_run is not None or not _local_only(item) or not any(i.name == SLURM_TEST for i in item.session.items):
        return
    try:
        slurm_run = start_on_slurm(Path(tempfile.mkdtemp(prefix=SLURM_HOME_PREFIX)))
    except Exception as error:  # reported by the test itself
        slurm_run = error


def start_on_slurm(home: Path):
    """The selection of wfl's remote tests on the local Slurm, over SSH as the cluster account
    (tests/services/10-sshd.sh, 20-slurm.sh); None when a service is missing (the test then
    skips, or fails under CI)."""
    from sshd_fixtures import SshdService, write_ssh_client_files
    wfl_env, slurm, sshd = set_up_environment(), read_service("slurm"), read_service("sshd")
    if not (wfl_env and slurm and sshd):
        return None
    service = SshdService.from_env(sshd)
    if not service.accepts_connections():  # a fault test stopped it; the session would restart it at its end
        service.start()
    host = write_ssh_client_files(home, service)
    # wfl's CI config for its GitHub runner's Slurm, reached over SSH as the cluster account.
    system = {"host": host, "scheduler": "slurm", "rundir": SLURM_RUNDIR, "commands": job_commands(wfl_env),
              "header": ["#SBATCH --nodes={num_nodes}", "#SBATCH --ntasks={num_cores}",
                         "#SBATCH --ntasks-per-node={num_cores_per_node}"],
              "partitions": {slurm["SLURM_PARTITION"]: {"num_cores": int(slurm["SLURM_CPUS"]), "max_time": None,
                                                        "max_mem": "10GB"}}}
    write_expyre_config(home, {"wfl_slurm": system})
    selection = WFL_TEST_MODULES if FULL_SLURM else SLURM_SUBSET
    return WflRun(wfl_env, home, "wfl_slurm", selection, skip_qe=QE_NEEDS_SHARED_FILES)


def stop_background_runs() -> None:
    """End of session: stop a run on Slurm whose test did not collect it, and remove the private
    home it was started in (its output is in the test's report)."""
    if isinstance(slurm_run, WflRun):
        slurm_run.kill()
        if slurm_run.home.name.startswith(SLURM_HOME_PREFIX):
            shutil.rmtree(slurm_run.home, ignore_errors=True)


@pytest.fixture(scope="session")
def wfl_env() -> Dict[str, str]:
    """The values tests/services/50-wfl.sh prints, after it brought the environment up to date;
    skips (fails under CI) when the service is not available here."""
    values = set_up_environment()
    if not values:
        require_service("wfl")
    return values


@pytest.fixture(scope="session", autouse=True)
def wfl_on_direct(request, tmp_path_factory):
    """wfl's remote tests on ``direct``, started in the background when the session's first test
    starts, if ``test_wfl_remote_tests_on_direct`` is selected; that test checks the outcome.

    Yields the :class:`WflRun`, None when the wfl service is not available, or the exception that
    setting the environment up raised (so that it fails that one test, not every test). A run
    still going when the session ends is stopped.
    """
    if not any(item.name == "test_wfl_remote_tests_on_direct" for item in request.session.items):
        yield None
        return
    try:
        values = set_up_environment()
        run = start_on_direct(values, tmp_path_factory.mktemp("wfl-direct")) if values else None
    except Exception as error:  # reported by the test itself
        run = error
    yield run
    if isinstance(run, WflRun):
        run.kill()
