"""Plugin discovery: built-ins and entry points through one manager, broken plugins reported,
missing schedulers named with what is installed."""
import os
import subprocess
import sys

import pytest

from expyre import hookimpl, plugins


@pytest.fixture
def broken_distribution(tmp_path, monkeypatch):
    """A real installed distribution (dist-info on sys.path) whose entry point fails to import."""
    site = tmp_path / "site"
    dist_info = site / "expyre_broken_site-1.0.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: expyre-broken-site\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text("[expyre]\nbroken = expyre_broken_site\n")
    (site / "expyre_broken_site.py").write_text("raise ImportError('site module needs libfoo')\n")
    monkeypatch.syspath_prepend(str(site))
    yield site
    monkeypatch.undo()
    plugins.load_plugins(force=True)


def test_builtins_are_registered_through_the_manager():
    pm = plugins.load_plugins(force=True)
    assert pm.has_plugin("expyre.schedulers.direct") and pm.has_plugin("expyre.transports.local")
    assert "direct" in plugins.scheduler_names()
    assert "local" in plugins.transport_names()


def test_load_plugins_is_idempotent():
    assert plugins.load_plugins() is plugins.load_plugins()


def test_unknown_scheduler_names_what_is_installed():
    with pytest.raises(plugins.PluginNotFoundError) as info:
        plugins.check_scheduler("slurmish")
    message = str(info.value)
    assert "scheduler 'slurmish' is not available" in message
    assert "direct" in message and "pip install ./packages/expyre-slurmish" in message


def test_unknown_transport_in_a_hook_call():
    with pytest.raises(plugins.PluginNotFoundError, match="transport 'carrier-pigeon' is not available"):
        plugins.open_shell("carrier-pigeon", system=None)


def test_broken_plugin_is_reported_by_distribution(broken_distribution):
    with pytest.warns(RuntimeWarning, match="from distribution 'expyre-broken-site' could not be loaded"):
        plugins.load_plugins(force=True)
    assert [b.distribution for b in plugins.broken_plugins] == ["expyre-broken-site"]
    assert "libfoo" in plugins.broken_plugins[0].error
    assert "direct" in plugins.scheduler_names()  # everything else still works
    with pytest.raises(plugins.PluginNotFoundError, match="failed to load: broken from expyre-broken-site"):
        plugins.check_scheduler("broken")


def test_xpr_help_and_plugins_work_with_a_broken_plugin(broken_distribution):
    env = dict(os.environ, PYTHONPATH=str(broken_distribution))
    xpr = [sys.executable, "-m", "expyre.cli"]
    helped = subprocess.run(xpr + ["--help"], capture_output=True, text=True, env=env)
    assert helped.returncode == 0 and "Manage expyre jobs" in helped.stdout
    listed = subprocess.run(xpr + ["plugins"], capture_output=True, text=True, env=env)
    assert listed.returncode == 0
    assert "BROKEN: broken (expyre_broken_site) from expyre-broken-site" in listed.stderr


class RecordingScheduler:
    """A scheduler plugin registered at run time, to check how core calls the hooks."""

    @hookimpl
    def expyre_schedulers(self):
        return ["recording"]

    @hookimpl
    def render_header(self, scheduler, job):
        # no check of ``scheduler``: core routes by name, so this is asked only for "recording"
        return [f"#REC {job.id}"]


def test_register_and_first_result_per_name():
    plugin = RecordingScheduler()
    plugins.register(plugin)
    try:
        from expyre import JobSpec
        job = JobSpec(id="j1", name="j", remote_dir="d", partition="p", node_dict={}, max_time=None)
        assert plugins.render_header("recording", job) == ["#REC j1"]
        assert plugins.render_header("direct", job) == []  # registered last, yet not asked for "direct"
        with pytest.raises(plugins.PluginNotFoundError, match="does not implement the 'submit' hook"):
            plugins.submit("recording", job, "script", shell=None)
    finally:
        plugins.unregister(plugin)
    assert "recording" not in plugins.scheduler_names()


def _dist_info(site, dist_name, module, entry_point, source):
    """Write a real installed distribution (dist-info directory and module) into ``site``."""
    dist_info = site / f"{dist_name.replace('-', '_')}-1.0.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(f"[expyre]\n{entry_point} = {module}\n")
    (site / f"{module}.py").write_text(source)


CLAIMS_DIRECT = """
from expyre import hookimpl

@hookimpl
def expyre_schedulers():
    return ["direct", "rival-only"]

@hookimpl
def render_header(scheduler, job):
    return ["#RIVAL"]
"""


@pytest.fixture
def rival_distribution(tmp_path, monkeypatch):
    """An installed distribution that claims the built-in scheduler name ``direct``."""
    site = tmp_path / "site"
    _dist_info(site, "expyre-rival-direct", "expyre_rival_direct", "rival", CLAIMS_DIRECT)
    monkeypatch.syspath_prepend(str(site))
    yield site
    monkeypatch.undo()
    plugins.load_plugins(force=True)


def test_a_name_claimed_twice_is_one_error_naming_both_distributions(rival_distribution):
    from expyre import JobSpec

    plugins.load_plugins(force=True)
    job = JobSpec(id="j1", name="j", remote_dir="d", partition="p", node_dict={}, max_time=None)
    with pytest.raises(plugins.PluginConflictError) as info:
        plugins.render_header("direct", job)
    message = str(info.value)
    assert "scheduler 'direct' is claimed by" in message
    assert "'expyre-core'" in message and "'expyre-rival-direct'" in message
    with pytest.raises(plugins.PluginConflictError):
        plugins.check_scheduler("direct")
    # only systems that use the contested name are affected
    assert plugins.render_header("rival-only", job) == ["#RIVAL"]
    assert plugins.transport_names() and plugins.open_shell("local", system=None) is not None


def test_a_plugin_failing_to_import_disables_only_its_systems(broken_distribution, tmp_path):
    """A system whose scheduler came from a broken plugin is reported when used; the config
    still loads, ``xpr ls`` and ``xpr systems`` work, and the other systems run jobs."""
    import json

    root = tmp_path / "root"
    root.mkdir()
    (root / "config.json").write_text(json.dumps({"systems": {
        "good": {"host": None, "scheduler": "direct", "partitions": {"p": {"num_cores": 1, "max_time": "1h"}}},
        "site": {"host": None, "scheduler": "broken-batch", "partitions": {"p": {"num_cores": 1, "max_time": "1h"}}},
    }}))
    env = dict(os.environ, PYTHONPATH=str(broken_distribution), EXPYRE_ROOT=str(root))
    xpr = [sys.executable, "-m", "expyre.cli"]
    for command in (["ls"], ["systems"]):
        done = subprocess.run(xpr + command, capture_output=True, text=True, env=env)
        assert done.returncode == 0, done.stderr
    systems = subprocess.run(xpr + ["systems"], capture_output=True, text=True, env=env).stdout
    assert "good" in systems and "site" in systems
    code = ("from expyre.func import ExPyRe\n"
            "x = ExPyRe('ok', function=sum, args=[[1, 2]])\n"
            "x.start(resources={'max_time': '1m', 'num_nodes': 1}, system_name='good')\n"
            "print(x.get_results(check_interval=0.2, quiet=True)[0])\n"
            "y = ExPyRe('bad', function=sum, args=[[3]])\n"
            "try:\n"
            "    y.start(resources={'max_time': '1m', 'num_nodes': 1}, system_name='site')\n"
            "except Exception as exc:\n"
            "    print(type(exc).__name__, exc)\n")
    ran = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=120)
    assert ran.returncode == 0, ran.stderr
    first, second = ran.stdout.splitlines()[:2]
    assert first == "3"
    assert second.startswith("PluginNotFoundError scheduler 'broken-batch' is not available")
    assert "broken from expyre-broken-site" in second
