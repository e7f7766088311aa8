"""Discovery of scheduler and transport plugins, and the typed calls core makes into them.

Built-in plugins (:data:`DEFAULT_PLUGINS`) and third-party plugins (entry-point group
``expyre``) are registered with one :class:`pluggy.PluginManager`, the same way, by
:func:`load_plugins`. A third-party entry point that fails to import is recorded in
:data:`broken_plugins` with its distribution's name and a warning, and does not stop expyre
(or ``xpr --help``) from working.

Core code calls the functions at the bottom of this module (``plugins.submit(...)``), never
``pm.hook`` directly: each one names the scheduler or transport it asks for and turns
"no plugin answered" into one :class:`PluginNotFoundError` that lists what is installed.
"""
from __future__ import annotations

import importlib
import sys
import warnings
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import pluggy

from . import hookspecs
from .hooktypes import JobSpec, RemoteJob, Shell

if sys.version_info >= (3, 10):
    from importlib.metadata import entry_points
else:  # pragma: no cover - exercised on Python 3.9 only
    from importlib.metadata import entry_points as _entry_points

    def entry_points(group):
        return _entry_points().get(group, [])

ENTRY_POINT_GROUP = "expyre"

#: Built-in plugin modules, registered through the same manager as entry points.
DEFAULT_PLUGINS = (
    "expyre.transports.local",
    "expyre.transports.ssh",
    "expyre.transports.openssh",
    "expyre.schedulers.direct",
)


class PluginNotFoundError(LookupError):
    """No installed plugin provides the scheduler or transport a system asks for."""


@dataclass
class PluginInfo:
    """What ``xpr plugins`` shows for one registered plugin."""

    name: str
    distribution: str
    version: str
    schedulers: List[str] = field(default_factory=list)
    transports: List[str] = field(default_factory=list)
    hooks: List[str] = field(default_factory=list)


@dataclass
class BrokenPlugin:
    """A third-party entry point that could not be loaded."""

    name: str
    value: str
    distribution: str
    error: str


_pm: Optional[pluggy.PluginManager] = None
_plugin_dists: Dict[str, tuple] = {}
broken_plugins: List[BrokenPlugin] = []


def _new_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    return pm


def _core_distribution() -> tuple:
    try:
        from importlib.metadata import version
        return ("expyre-core", version("expyre-core"))
    except Exception:
        return ("expyre-core", "unknown")


def load_plugins(force: bool = False) -> pluggy.PluginManager:
    """Create the plugin manager and register built-in and entry-point plugins, once.

    Parameters
    ----------
    force: bool, default False
        forget the current manager and load everything again (tests use this after
        installing a plugin)

    Returns
    -------
    pluggy.PluginManager
    """
    global _pm
    if _pm is not None and not force:
        return _pm
    pm = _new_manager()
    _plugin_dists.clear()
    broken_plugins.clear()

    core_dist = _core_distribution()
    for module_name in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(module_name), name=module_name)
        _plugin_dists[module_name] = core_dist

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        dist_name = dist.metadata["Name"] if dist is not None else "unknown distribution"
        dist_version = dist.version if dist is not None else "unknown"
        if pm.has_plugin(ep.name) or ep.value in DEFAULT_PLUGINS:
            continue
        try:
            plugin = ep.load()
            pm.register(plugin, name=ep.name)
            pm.check_pending()
        except Exception as exc:  # a broken third-party plugin must not take expyre down
            if pm.has_plugin(ep.name):
                pm.unregister(name=ep.name)
            broken = BrokenPlugin(ep.name, ep.value, dist_name, f"{type(exc).__name__}: {exc}")
            broken_plugins.append(broken)
            warnings.warn(f"expyre plugin '{ep.name}' ({ep.value}) from distribution "
                          f"'{dist_name}' could not be loaded and is ignored: {broken.error}",
                          RuntimeWarning, stacklevel=2)
            continue
        _plugin_dists[ep.name] = (dist_name, dist_version)
    _pm = pm
    return pm


def register(plugin: object, name: Optional[str] = None) -> None:
    """Register an extra plugin object by hand (tests, notebooks, site start-up code)."""
    pm = load_plugins()
    pm.register(plugin, name=name)
    plugin_name = pm.get_name(plugin)
    _plugin_dists[plugin_name] = ("(registered at run time)", "")


def unregister(plugin: object) -> None:
    """Undo :func:`register`."""
    pm = load_plugins()
    name = pm.get_name(plugin)
    pm.unregister(plugin)
    _plugin_dists.pop(name, None)


def _flatten(lists) -> List[str]:
    return sorted({name for names in lists if names for name in names})


def scheduler_names() -> List[str]:
    """Names of all schedulers the installed plugins provide."""
    return _flatten(load_plugins().hook.expyre_schedulers())


def transport_names() -> List[str]:
    """Names of all transports the installed plugins provide."""
    return _flatten(load_plugins().hook.expyre_transports())


def list_plugins() -> List[PluginInfo]:
    """Describe every registered plugin: distribution, version, names and hooks."""
    pm = load_plugins()
    infos = []
    for name, plugin in pm.list_name_plugin():
        dist, version = _plugin_dists.get(name, ("unknown", ""))
        hooks = sorted(caller.name for caller in pm.get_hookcallers(plugin) or [])
        schedulers = _call_one(plugin, "expyre_schedulers")
        transports = _call_one(plugin, "expyre_transports")
        infos.append(PluginInfo(name, dist, version, schedulers, transports, hooks))
    return infos


def _call_one(plugin: object, hook_name: str) -> List[str]:
    impl = getattr(plugin, hook_name, None)
    return list(impl()) if callable(impl) else []


def _missing(kind: str, name: str, installed: Sequence[str]) -> PluginNotFoundError:
    message = (f"{kind} '{name}' is not available; installed {kind}s: "
               f"{', '.join(installed) or 'none'}. Install the plugin that provides it "
               f"(for example, from a checkout of expyre: pip install ./packages/expyre-{name}).")
    if broken_plugins:
        message += " Plugins that failed to load: " + ", ".join(
            f"{b.name} from {b.distribution} ({b.error})" for b in broken_plugins)
    return PluginNotFoundError(message)


def check_scheduler(name: str) -> None:
    """Raise :class:`PluginNotFoundError` unless an installed plugin provides scheduler ``name``."""
    installed = scheduler_names()
    if name not in installed:
        raise _missing("scheduler", name, installed)


def check_transport(name: str) -> None:
    """Raise :class:`PluginNotFoundError` unless an installed plugin provides transport ``name``."""
    installed = transport_names()
    if name not in installed:
        raise _missing("transport", name, installed)


def _answer(result, kind: str, name: str, hook: str):
    if result is None:
        installed = scheduler_names() if kind == "scheduler" else transport_names()
        if name in installed:
            raise PluginNotFoundError(f"{kind} '{name}' does not implement the '{hook}' hook")
        raise _missing(kind, name, installed)
    return result


def _hook():
    return load_plugins().hook


# --------------------------------------------------------------------------- typed calls

def render_header(scheduler: str, job: JobSpec) -> List[str]:
    return list(_answer(_hook().render_header(scheduler=scheduler, job=job),
                        "scheduler", scheduler, "render_header"))


def job_environment(scheduler: str, job: JobSpec) -> List[str]:
    return list(_hook().job_environment(scheduler=scheduler, job=job) or [])


def submit(scheduler: str, job: JobSpec, script: str, shell: Shell) -> str:
    remote_id = _answer(_hook().submit(scheduler=scheduler, job=job, script=script, shell=shell),
                        "scheduler", scheduler, "submit")
    return str(remote_id)


def status(scheduler: str, jobs: Sequence[RemoteJob], shell: Shell) -> Dict[str, str]:
    if not jobs:
        return {}
    return dict(_answer(_hook().status(scheduler=scheduler, jobs=list(jobs), shell=shell),
                        "scheduler", scheduler, "status"))


def cancel(scheduler: str, jobs: Sequence[RemoteJob], shell: Shell) -> None:
    if jobs:
        _answer(_hook().cancel(scheduler=scheduler, jobs=list(jobs), shell=shell),
                "scheduler", scheduler, "cancel")


def hold(scheduler: str, jobs: Sequence[RemoteJob], shell: Shell) -> None:
    if jobs:
        _answer(_hook().hold(scheduler=scheduler, jobs=list(jobs), shell=shell), "scheduler", scheduler, "hold")


def release(scheduler: str, jobs: Sequence[RemoteJob], shell: Shell) -> None:
    if jobs:
        _answer(_hook().release(scheduler=scheduler, jobs=list(jobs), shell=shell), "scheduler", scheduler, "release")


def find_submitted(scheduler: str, job: JobSpec, shell: Shell) -> List[str]:
    return list(_answer(_hook().find_submitted(scheduler=scheduler, job=job, shell=shell),
                        "scheduler", scheduler, "find_submitted"))


def open_shell(transport: str, system) -> Shell:
    return _answer(_hook().open_shell(transport=transport, system=system),
                   "transport", transport, "open_shell")


def transfer(transport: str, shell: Shell, direction: str, pairs) -> None:
    if direction not in ("put", "get"):
        raise ValueError(f"transfer direction must be 'put' or 'get', not {direction!r}")
    pairs = list(pairs)
    if pairs:
        _answer(_hook().transfer(transport=transport, shell=shell, direction=direction, pairs=pairs),
                "transport", transport, "transfer")
