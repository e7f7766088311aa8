"""pytest fixtures for testing expyre and expyre plugins: a temporary expyre root and a local system.

This module is an opt-in pytest plugin: a project that wants its fixtures loads it with
``pytest_plugins = ["expyre.testing"]`` in its top-level ``conftest.py`` (or ``pytest -p
expyre.testing``). It is deliberately not registered through ``pytest11``, so it never loads into
the test sessions of every project that merely has expyre installed. expyre's own scheduler
packages (``expyre-slurm``, ``expyre-sge``, ``expyre-pbs``) test their plugins with these
fixtures, and a site writing its own plugin can do the same::

    def test_my_header(expyre_local_system):
        config = expyre_local_system("local_test", scheduler="mysched")
        system = config.systems["local_test"]
        ...

Nothing here reads or writes the user's ``~/.expyre``: the configuration is read only from the
temporary root (``EXPYRE_ROOT`` points at it for the test and for any process the test starts,
such as ``xpr``), and the jobs database and the jobs' stage directories live below it.

Fixtures
--------
expyre_root : pathlib.Path
    A fresh, empty expyre root directory below pytest's ``tmp_path``. ``EXPYRE_ROOT`` is set to
    it and :func:`expyre.config.init` has read it (with no config file there, the only system is
    the built-in default ``local``). On teardown every system's shell is closed and the loaded
    configuration is dropped, so the next test reads its own.
expyre_local_system : callable
    ``write(name="local_test", scheduler="direct", **overrides) -> expyre.config`` module.
    Writes ``config.json`` in :func:`expyre_root`'s directory with one system ``name`` on this
    machine (no host, jobs run in their stage directories below the root) that uses
    ``scheduler`` and has two partitions, ``regular`` (2 cores) and ``large-mem`` (4 cores),
    then (re)reads the configuration and returns :mod:`expyre.config`. ``overrides`` replace
    keys of the system (``header``, ``partitions``, ``transport``, ...). The fixture's
    attributes ``root`` (the expyre root) and ``default_name`` are set as well.

Conformance kit
---------------
:class:`SchedulerConformance` is a suite of tests a scheduler plugin's author runs against a real
scheduler: subclass it in a test module (its name must start with ``Test``), give it the
``conformance_system`` fixture (the system's config, as in ``config.json``) and the resources its
jobs ask for, and pytest runs every test of the suite on that system::

    pytest_plugins = ["expyre.testing"]

    class TestMySite(SchedulerConformance):
        resources = {"max_time": "10m", "num_cores": 1, "partitions": "batch"}
        timeout_resources = {"max_time": "1m", "num_cores": 1, "partitions": "batch"}
        blocker_resources = {"max_time": "10m", "num_nodes": 1, "partitions": "batch"}

        @pytest.fixture
        def conformance_system(self):
            return {"host": "login.example.org", "scheduler": "mysite", "partitions": {...}}

Functions
---------
write_expyre_config(root, systems, **top_level)
    Write ``config.json`` into an expyre root and (re)read it; usable without pytest.
local_system(scheduler="direct", **overrides)
    The config dict of a system on this machine, as :func:`expyre_local_system` writes it.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Union

import pytest

__all__ = ["expyre_root", "expyre_local_system", "write_expyre_config", "local_system",
           "close_systems", "reset_config", "SchedulerConformance", "FaultInjectingShell"]

#: name of the system :func:`expyre_local_system` writes unless told otherwise
DEFAULT_TEST_SYSTEM = "local_test"


def local_system(scheduler: str = "direct", **overrides: Any) -> Dict[str, Any]:
    """The config of a system on this machine (no host: jobs run in their stage directories).

    Parameters
    ----------
    scheduler: str, default "direct"
        scheduler name, as a plugin lists it in ``expyre_schedulers``
    **overrides
        keys of the system to set or replace (``header``, ``partitions``, ``transport``, ...)

    Returns
    -------
    dict
        the system's entry for ``config.json``'s ``systems``
    """
    system: Dict[str, Any] = {
        "host": None,
        "scheduler": scheduler,
        "header": [],
        "partitions": {"regular": {"num_cores": 2, "max_time": "168h", "max_mem": "4GB"},
                       "large-mem": {"num_cores": 4, "max_time": "168h", "max_mem": "16GB"}},
    }
    system.update(overrides)
    return system


def close_systems() -> None:
    """Close the shells of the systems of the loaded configuration (if one is loaded)."""
    from expyre import config

    for system in (config.__dict__.get("systems") or {}).values():
        try:
            system.close()
        except Exception:  # noqa: BLE001 - teardown must go on
            pass


def reset_config() -> None:
    """Close every loaded system and drop the loaded configuration, so the next use rereads it."""
    from expyre import config

    close_systems()
    config._forget()


def write_expyre_config(root: Union[str, os.PathLike], systems: Dict[str, dict], **top_level: Any):
    """Write ``config.json`` into an expyre root and (re)read the configuration from that root.

    Parameters
    ----------
    root: str or Path
        the expyre root directory (created if needed)
    systems: dict
        system name -> system config, as in ``config.json``
    **top_level
        other top-level keys (``local_stage_dir``, ``remote_rundir_submit_hostname``)

    Returns
    -------
    module
        :mod:`expyre.config`, initialised from ``root``
    """
    from expyre import config

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(json.dumps({"systems": systems, **top_level}, indent=1))
    close_systems()
    config.init(root)
    return config


@pytest.fixture
def expyre_root(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh expyre root directory, read by :func:`expyre.config.init` (see the module docs)."""
    from expyre import config

    root = tmp_path_factory.mktemp("expyre_root")
    monkeypatch.setenv("EXPYRE_ROOT", str(root))
    reset_config()
    config.init(root)
    yield root
    reset_config()


@pytest.fixture
def expyre_local_system(expyre_root: Path) -> Callable[..., Any]:
    """Write a config with a system on this machine and read it (see the module docs)."""

    def write(name: str = DEFAULT_TEST_SYSTEM, scheduler: str = "direct", **overrides: Any):
        return write_expyre_config(expyre_root, {name: local_system(scheduler, **overrides)})

    write.root = expyre_root  # type: ignore[attr-defined]
    write.default_name = DEFAULT_TEST_SYSTEM  # type: ignore[attr-defined]
    return write


# --------------------------------------------------------------------------- conformance kit

class FaultInjectingShell:
    """A fake for fault injection: passes commands on to a real shell, except that the first
    command containing ``match`` gets a fault.

    ``fault`` is ``"transient-after"`` (the command runs, then its answer is replaced by a failure
    with ``message``: the scheduler took the job but the answer said "try again"),
    ``"transient-before"`` (the command does not run; the failure with ``message`` comes back) or
    ``"lost-after"`` (the command runs, then the connection is reported lost).
    """

    #: the job's files are copied on their own, not in the submit command's round trip
    #: (``transfer_then_run``), so that the fault is in the submission alone
    separate_copies = True

    def __init__(self, shell: Any, match: str, fault: str, message: str = ""):
        self.shell, self.match, self.fault, self.message = shell, match, fault, message
        self.host = shell.host
        self.injected = 0

    def run(self, command: str, **kwargs: Any):
        from expyre import CommandResult, ConnectionLostError, RemoteCommandError

        if self.match not in command or self.injected:
            return self.shell.run(command, **kwargs)
        self.injected += 1
        if self.fault != "transient-before":
            self.shell.run(command, **dict(kwargs, check=False))
        if self.fault == "lost-after":
            raise ConnectionLostError(self.host, "connection lost (injected by the conformance kit)")
        result = CommandResult(command, 1, "", self.message)
        if kwargs.get("check", True):
            raise RemoteCommandError(self.host, result)
        return result

    def close(self) -> None:
        self.shell.close()

    def __getattr__(self, name: str) -> Any:
        # the transport's own ways in (its transfer hook streams through the shell it made)
        return getattr(self.shell, name)


class SchedulerConformance:
    """The conformance suite for a scheduler plugin, run against a real scheduler (see the
    module's description). Attributes a subclass sets:

    resources: dict
        what an ordinary job asks for (one core, a few minutes)
    timeout_resources: dict or None
        resources for a job that runs past its wall time (the smallest the scheduler enforces);
        None leaves the ``timeout`` state out (say why in the subclass)
    blocker_resources: dict or None
        resources that fill the whole system, so that the next job stays ``queued`` (for the
        queued, hold and release checks); None leaves them out
    transient_message: str or None
        an error message the plugin takes for a passing failure; default: its first
        :attr:`expyre.batch.BatchScheduler.transient` fragment
    exact_finished_states: bool
        the scheduler tells ``done``, ``failed`` and ``timeout`` apart (else any finished state counts)
    submit_marker: str or None
        a text that only the plugin's submit command holds, where the kit injects its faults;
        default: the batch toolkit's submit lock (:data:`expyre.batch.SUBMIT_LOCK`), which every
        plugin built on :class:`expyre.batch.BatchScheduler` has
    """

    system_name = "conformance"
    resources: Dict[str, Any] = {}
    timeout_resources: Optional[Dict[str, Any]] = None
    blocker_resources: Optional[Dict[str, Any]] = None
    transient_message: Optional[str] = None
    exact_finished_states = True
    submit_marker: Optional[str] = None
    #: seconds to wait for jobs to reach a state
    patience = 240.0

    @pytest.fixture
    def conformance_system(self) -> Dict[str, Any]:
        """The system's config (a subclass overrides this fixture)."""
        pytest.skip("the subclass gives no conformance_system fixture")

    @pytest.fixture
    def system(self, expyre_root: Path, conformance_system: Dict[str, Any]):
        config = write_expyre_config(expyre_root, {self.system_name: conformance_system})
        system = config.systems[self.system_name]
        yield system
        from expyre import RemoteJob, quote
        leftovers = [RemoteJob(r["remote_id"], r["remote_dir"], r["id"]) for r in config.db.jobs()
                     if r.get("remote_id")]
        try:
            system._shell = getattr(system._shell, "shell", system._shell)
            system.cancel(leftovers)
            self._wait_ended(system, leftovers)  # a job still dying could write into its directory
            system.remove_remote_dirs([job.remote_dir for job in leftovers])
            if system.rundir_extra and not system.runs_in_stage_dir:  # this test root's own directory, if empty
                system.shell.run(f"rmdir -- {quote(system.remote_rundir)} 2>/dev/null", check=False)
        except Exception:  # noqa: BLE001 - clean-up must not hide the test's own outcome
            pass

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _wait_ended(system, jobs: Sequence[Any], wait: float = 30.0) -> None:
        """Poll ``jobs`` (one status query a round) until the scheduler says each has ended or
        knows it no more, for at most ``wait`` seconds."""
        from expyre import FINISHED_REMOTE_STATES

        deadline = time.monotonic() + wait
        while jobs and time.monotonic() < deadline:
            states = system.status(jobs)
            if all(states.get(job.remote_id) in (*FINISHED_REMOTE_STATES, "unknown") for job in jobs):
                return
            time.sleep(0.5)

    def start(self, name: str, function: Callable, args: Sequence = (), resources: Optional[dict] = None, **kwargs):
        from expyre.func import ExPyRe

        xpr = ExPyRe(name, function=function, args=list(args))
        xpr.start(resources=dict(resources or self.resources), system_name=self.system_name, partial_node=True,
                  **kwargs)
        return xpr

    @staticmethod
    def remote_job(xpr):
        from expyre import RemoteJob
        return RemoteJob(xpr.remote_id, xpr.remote_dir, xpr.id)

    def wait_states(self, system, jobs: Dict[str, Any], until: Callable[[str], bool]) -> Dict[str, List[str]]:
        """Poll ``jobs`` (label -> xpr) with one status query per round until ``until`` holds for
        every state; returns the states seen per label, in order."""
        from expyre import FINISHED_REMOTE_STATES, REMOTE_STATES

        seen: Dict[str, List[str]] = {label: [] for label in jobs}
        deadline = time.monotonic() + self.patience
        while True:
            states = system.status([self.remote_job(x) for x in jobs.values()])
            for label, xpr in jobs.items():
                state = states[xpr.remote_id]
                assert state in REMOTE_STATES, f"{label}: {state!r} is not one of {REMOTE_STATES}"
                if seen[label] and seen[label][-1] in FINISHED_REMOTE_STATES:
                    assert state in FINISHED_REMOTE_STATES or state == "unknown", \
                        f"{label}: went from {seen[label][-1]} back to {state}"
                if not seen[label] or seen[label][-1] != state:
                    seen[label].append(state)
            if all(until(states[x.remote_id]) for x in jobs.values()):
                return seen
            assert time.monotonic() < deadline, f"states not reached within {self.patience} s: {seen}"
            time.sleep(1.0)

    def finished(self, state: str, expected: str) -> bool:
        from expyre import FINISHED_REMOTE_STATES
        return state == expected if self.exact_finished_states else state in FINISHED_REMOTE_STATES

    def transient(self, system) -> str:
        if self.transient_message:
            return self.transient_message
        from expyre import plugins
        plugin = plugins.load_plugins().get_plugin(plugins._provider("scheduler", system.scheduler))
        fragments = getattr(getattr(plugin, "SCHEDULER", plugin), "transient", ())
        if not fragments:
            pytest.skip("the plugin declares no transient errors and the test class gives no transient_message")
        return f"error: {fragments[0]}"

    def submit_command_marker(self) -> str:
        """The text that marks the plugin's submit command for fault injection (:attr:`submit_marker`)."""
        from expyre import batch
        return self.submit_marker or batch.SUBMIT_LOCK

    def jobs_named(self, system, xpr) -> List[str]:
        """The scheduler's jobs for ``xpr`` (by the plugin's lookup by name and submit record)."""
        from expyre import JobSpec
        probe = JobSpec(id=xpr.id, name=xpr.name, remote_dir=xpr.remote_dir, partition=None, node_dict={},
                        max_time=None)
        return system.find_submitted(probe)

    # ------------------------------------------------------------------ the suite

    def test_done_failed_running_and_timeout(self, system):
        """Jobs reach ``done`` (ran fine), ``failed`` (non-zero exit), ``timeout`` (past their wall
        time) through ``running``; no finished job comes back to life; results come back."""
        jobs = {"done": self.start("conf_done", int, ["7"]), "failed": self.start("conf_failed", int, ["x"])}
        if self.timeout_resources is not None:
            jobs["timeout"] = self.start("conf_timeout", time.sleep, [600], self.timeout_resources)
        else:
            jobs["running"] = self.start("conf_running", time.sleep, [8])
        from expyre import FINISHED_REMOTE_STATES
        seen = self.wait_states(system, jobs, lambda s: s in FINISHED_REMOTE_STATES)
        assert self.finished(seen["done"][-1], "done"), seen
        assert self.finished(seen["failed"][-1], "failed"), seen
        long_job = "timeout" if "timeout" in jobs else "running"
        assert "running" in seen[long_job], seen
        assert self.finished(seen[long_job][-1], "timeout" if long_job == "timeout" else "done"), seen
        assert jobs["done"].get_results(timeout=60, check_interval=0.5, quiet=True)[0] == 7

    def test_queued_hold_release_and_cancel(self, system):
        """Behind a job that fills the system a job is ``queued``; held it is ``held`` and does not
        start when room frees up; released it runs; cancel ends a running job; cancelling,
        holding or releasing a finished job is not an error."""
        if self.blocker_resources is None:
            pytest.skip("the test class gives no blocker_resources")
        blocker = self.start("conf_blocker", time.sleep, [600], self.blocker_resources, exact_fit=False)
        self.wait_states(system, {"blocker": blocker}, lambda s: s == "running")
        waiting = self.start("conf_waiting", int, ["5"])
        self.wait_states(system, {"waiting": waiting}, lambda s: s == "queued")
        system.hold([self.remote_job(waiting)])
        self.wait_states(system, {"waiting": waiting}, lambda s: s == "held")
        system.cancel([self.remote_job(blocker)])
        from expyre import FINISHED_REMOTE_STATES
        self.wait_states(system, {"blocker": blocker}, lambda s: s in FINISHED_REMOTE_STATES)
        time.sleep(3)
        assert system.status([self.remote_job(waiting)])[waiting.remote_id] == "held"
        system.release([self.remote_job(waiting)])
        self.wait_states(system, {"waiting": waiting}, lambda s: s in FINISHED_REMOTE_STATES)
        assert waiting.get_results(timeout=60, check_interval=0.5, quiet=True)[0] == 5
        for action in (system.cancel, system.hold, system.release):
            action([self.remote_job(waiting), self.remote_job(blocker)])

    def test_find_submitted_after_an_interrupted_submission(self, system):
        """The connection is lost right after the submit command ran: the job stays
        ``submitting``, and the next ``start()`` finds the job instead of submitting again."""
        from expyre import ConnectionLostError
        from expyre.func import ExPyRe

        system._shell = FaultInjectingShell(system.shell, self.submit_command_marker(), "lost-after")
        with pytest.raises(ConnectionLostError):
            self.start("conf_interrupted", int, ["11"])
        again = ExPyRe("conf_interrupted", function=int, args=["11"])
        assert again.status == "submitting"
        again.start(resources=dict(self.resources), system_name=self.system_name, partial_node=True)
        assert again.status == "submitted" and self.jobs_named(system, again) == [again.remote_id]
        assert again.get_results(timeout=self.patience, check_interval=0.5, quiet=True)[0] == 11

    @pytest.mark.parametrize("fault", ["transient-after", "transient-before"])
    def test_exactly_once_under_a_transient_failure(self, system, fault, monkeypatch):
        """A submission that fails with a transient error is tried again only after looking for
        the job: whether or not the failed try created it, there is exactly one job."""
        monkeypatch.setenv("EXPYRE_RETRY", "3 0.5")
        system._shell = FaultInjectingShell(system.shell, self.submit_command_marker(), fault, self.transient(system))
        xpr = self.start(f"conf_{fault.replace('-', '_')}", int, ["13"])
        assert system._shell.injected == 1
        assert self.jobs_named(system, xpr) == [xpr.remote_id]
        assert xpr.get_results(timeout=self.patience, check_interval=0.5, quiet=True)[0] == 13

    def test_many_jobs_one_status_query(self, system):
        """The states of several jobs come from one round trip to the host."""
        jobs = [self.start(f"conf_many_{i}", time.sleep, [5 + i]) for i in range(4)]
        system.status([self.remote_job(jobs[0])])  # what a plugin learns once per system (PBS: its dialect)
        counted = _CountingShell(system.shell)
        system._shell = counted
        states = system.status([self.remote_job(x) for x in jobs])
        assert counted.commands == 1, f"{counted.commands} commands for one status query"
        assert set(states) == {x.remote_id for x in jobs}
        assert set(states.values()) <= {"queued", "running", "held", "done"}


    def test_jobs_started_together_without_arrays_each_once(self, system, monkeypatch):
        """Jobs started together on a system without arrays (``arrays = false``) are each
        submitted once, each its own job that the lookup by name finds; with the plugin's
        ``submit_many`` hook, all of them by one command (without it, one command each)."""
        from expyre import plugins, start_many
        from expyre.func import ExPyRe

        system.scheduler_options = dict(system.scheduler_options, arrays=False)
        system.plugin_state.clear()
        if hasattr(system, "_arrays"):
            del system._arrays
        made = []
        real_submit_many = plugins.submit_many

        def counted(scheduler, jobs, script, shell, **kwargs):
            counting = _CountingShell(shell)
            results = real_submit_many(scheduler, jobs, script, counting, **kwargs)
            made.append((len(jobs), counting.commands, results is not None))
            return results

        monkeypatch.setattr(plugins, "submit_many", counted)
        xprs = [ExPyRe(f"conf_together_{i}", function=int, args=[str(i)]) for i in range(3)]
        assert start_many(xprs, dict(self.resources), self.system_name, partial_node=True) == []
        assert [n for n, _, _ in made] == [3]
        if made[0][2]:   # the plugin has the hook
            assert made[0][1] == 1, f"{made[0][1]} commands to submit 3 jobs with submit_many"
        ids = [x.remote_id for x in xprs]
        assert len(set(ids)) == 3 and all(x.status == "submitted" for x in xprs)
        for xpr in xprs:
            assert self.jobs_named(system, xpr) == [xpr.remote_id]


class _CountingShell:
    """Passes commands on to a real shell and counts them."""

    def __init__(self, shell: Any):
        self.shell, self.host, self.commands = shell, shell.host, 0

    def run(self, command: str, **kwargs: Any):
        self.commands += 1
        return self.shell.run(command, **kwargs)

    def close(self) -> None:
        self.shell.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.shell, name)
