"""Discovery of scheduler and transport plugins, and the typed calls core makes into them.

Built-in plugins (:data:`DEFAULT_PLUGINS`) and third-party plugins (entry-point group
``expyre``) are registered with one :class:`pluggy.PluginManager`, the same way, by
:func:`load_plugins`. A third-party entry point that fails to import is recorded in
:data:`broken_plugins` with its distribution's name and a warning, and does not stop expyre
(or ``xpr --help``) from working.

Core code calls the functions at the bottom of this module (``plugins.submit(...)``), never
``pm.hook`` directly. Each call is routed by name: it goes only to the plugin that declared that
scheduler (``expyre_schedulers``) or transport (``expyre_transports``), found in a registry built
when the plugins are loaded, so a plugin never sees, and never checks, another plugin's names.
A name nobody provides gives one :class:`PluginNotFoundError` that lists what is installed (and
what failed to load); a name two distributions claim gives one :class:`PluginConflictError`
naming both, raised only when a system that uses that name is used.
"""
from __future__ import annotations

import importlib
import sys
import warnings
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import pluggy

from . import hookspecs
from .hooktypes import CommandResult, JobSpec, RemoteJob, Shell

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


class PluginConflictError(PluginNotFoundError):
    """Two registered plugins (from two distributions) claim the same scheduler or transport name."""


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
#: ``(kind, name)`` -> names of the registered plugins that declared it (kind: scheduler/transport)
_providers: Dict[Tuple[str, str], List[str]] = {}
#: The System a status query is for, when its caller does not pass it (see :meth:`System.status`).
current_system: ContextVar = ContextVar("expyre_current_system", default=None)


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
    _build_registry(pm)
    return pm


def _build_registry(pm: pluggy.PluginManager) -> None:
    """Record which plugin declared which scheduler and transport names."""
    _providers.clear()
    for plugin_name, plugin in pm.list_name_plugin():
        for kind, hook_name in (("scheduler", "expyre_schedulers"), ("transport", "expyre_transports")):
            for name in dict.fromkeys(_call_one(plugin, hook_name)):
                _providers.setdefault((kind, name), []).append(plugin_name)


def register(plugin: object, name: Optional[str] = None) -> None:
    """Register an extra plugin object by hand (tests, notebooks, site start-up code)."""
    pm = load_plugins()
    pm.register(plugin, name=name)
    plugin_name = pm.get_name(plugin)
    _plugin_dists[plugin_name] = ("(registered at run time)", "")
    _build_registry(pm)


def unregister(plugin: object) -> None:
    """Undo :func:`register`."""
    pm = load_plugins()
    name = pm.get_name(plugin)
    pm.unregister(plugin)
    _plugin_dists.pop(name, None)
    _build_registry(pm)


def scheduler_names() -> List[str]:
    """Names of all schedulers the installed plugins provide."""
    load_plugins()
    return sorted(name for kind, name in _providers if kind == "scheduler")


def transport_names() -> List[str]:
    """Names of all transports the installed plugins provide."""
    load_plugins()
    return sorted(name for kind, name in _providers if kind == "transport")


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
    return list(impl() or []) if callable(impl) else []


def _missing(kind: str, name: str, installed: Sequence[str]) -> PluginNotFoundError:
    message = (f"{kind} '{name}' is not available; installed {kind}s: "
               f"{', '.join(installed) or 'none'}. Install the plugin that provides it "
               f"(for example, from a checkout of expyre: pip install ./packages/expyre-{name}).")
    if broken_plugins:
        message += " Plugins that failed to load: " + ", ".join(
            f"{b.name} from {b.distribution} ({b.error})" for b in broken_plugins)
    return PluginNotFoundError(message)


def _provider(kind: str, name: str) -> str:
    """The name of the one registered plugin that declared ``name``; raises if none or several."""
    load_plugins()
    providers = _providers.get((kind, name), [])
    if not providers:
        installed = scheduler_names() if kind == "scheduler" else transport_names()
        raise _missing(kind, name, installed)
    if len(providers) > 1:
        claims = " and ".join(f"plugin '{p}' from distribution '{_plugin_dists.get(p, ('unknown',))[0]}'"
                              for p in providers)
        raise PluginConflictError(f"{kind} '{name}' is claimed by {claims}; uninstall one of them "
                                  f"(systems that use another {kind} are not affected)")
    return providers[0]


def check_scheduler(name: str) -> None:
    """Raise :class:`PluginNotFoundError` unless exactly one installed plugin provides scheduler ``name``."""
    _provider("scheduler", name)


def check_transport(name: str) -> None:
    """Raise :class:`PluginNotFoundError` unless exactly one installed plugin provides transport ``name``."""
    _provider("transport", name)


def _call(kind: str, provided: str, hook_name: str, required: bool = True, **kwargs: Any) -> Any:
    """Call hook ``hook_name`` of the plugin that declared ``provided`` (and of no other plugin).

    The plugin's implementation is called with the arguments it accepts (pluggy lets an
    implementation take fewer than the spec lists). A plugin that does not implement an optional
    hook (``required`` False) answers None.
    """
    plugin_name = _provider(kind, provided)
    pm = load_plugins()
    plugin = pm.get_plugin(plugin_name)
    for impl in getattr(pm.hook, hook_name).get_hookimpls():
        if impl.plugin is plugin:
            wanted = (*impl.argnames, *impl.kwargnames)  # kwargnames: arguments with defaults, like system
            return impl.function(**{arg: kwargs[arg] for arg in wanted if arg in kwargs})
    if required:
        raise PluginNotFoundError(f"{kind} '{provided}' does not implement the '{hook_name}' hook")
    return None


# --------------------------------------------------------------------------- typed calls

def _scheduler_call(hook_name: str, scheduler: str, system: Any, **kwargs: Any) -> Any:
    return _call("scheduler", scheduler, hook_name, scheduler=scheduler, system=system, **kwargs)


def _scheduler_call_optional(hook_name: str, scheduler: str, system: Any, **kwargs: Any) -> Any:
    return _call("scheduler", scheduler, hook_name, False, scheduler=scheduler, system=system, **kwargs)


def render_header(scheduler: str, job: JobSpec) -> List[str]:
    return list(_call("scheduler", scheduler, "render_header", job=job, scheduler=scheduler))


def job_environment(scheduler: str, job: JobSpec) -> List[str]:
    return list(_call("scheduler", scheduler, "job_environment", False, scheduler=scheduler, job=job) or [])


def submit(scheduler: str, job: JobSpec, script: str, shell: Shell, system: Any = None) -> str:
    return str(_scheduler_call("submit", scheduler, system, job=job, script=script, shell=shell))


def status(scheduler: str, jobs: Sequence[RemoteJob], shell: Shell, system: Any = None) -> Dict[str, str]:
    if not jobs:
        return {}
    system = system if system is not None else current_system.get()
    return dict(_scheduler_call("status", scheduler, system, jobs=list(jobs), shell=shell))


def cancel(scheduler: str, jobs: Sequence[RemoteJob], shell: Shell, system: Any = None) -> None:
    if jobs:
        _scheduler_call("cancel", scheduler, system, jobs=list(jobs), shell=shell)


def hold(scheduler: str, jobs: Sequence[RemoteJob], shell: Shell, system: Any = None) -> None:
    if jobs:
        _scheduler_call("hold", scheduler, system, jobs=list(jobs), shell=shell)


def release(scheduler: str, jobs: Sequence[RemoteJob], shell: Shell, system: Any = None) -> None:
    if jobs:
        _scheduler_call("release", scheduler, system, jobs=list(jobs), shell=shell)


def find_submitted(scheduler: str, job: JobSpec, shell: Shell, system: Any = None) -> List[str]:
    return list(_scheduler_call("find_submitted", scheduler, system, job=job, shell=shell))


def submit_many(scheduler: str, jobs: Sequence[JobSpec], script: str, shell: Shell,
                system: Any = None) -> Optional[List[Any]]:
    """The scheduler's results for ``jobs`` submitted in one command (see the ``submit_many``
    hook: ids as str, exceptions as they are), or None when the plugin has no such hook."""
    results = _scheduler_call_optional("submit_many", scheduler, system, jobs=list(jobs), script=script,
                                       shell=shell)
    if results is None:
        return None
    return [r if isinstance(r, BaseException) else str(r) for r in results]


def check_system(scheduler: str, partitions: Dict[str, dict], shell: Shell, system: Any = None) -> Optional[list]:
    """The scheduler plugin's checks of a system (``xpr check``); None if it offers none."""
    result = _call("scheduler", scheduler, "check_system", False, scheduler=scheduler, partitions=dict(partitions),
                   shell=shell, system=system)
    return list(result) if result is not None else None


def array_support(scheduler: str, shell: Shell, system: Any = None) -> Optional[dict]:
    """The scheduler's answer about arrays, or None (also for a plugin without the hook)."""
    return _scheduler_call_optional("array_support", scheduler, system, shell=shell)


def submit_array(scheduler: str, job: JobSpec, script: str, shell: Shell, max_parallel: Optional[int] = None,
                 system: Any = None) -> List[str]:
    return [str(i) for i in _scheduler_call("submit_array", scheduler, system, job=job, script=script, shell=shell,
                                            max_parallel=max_parallel)]


def check_options(kind: str, name: str, options: dict) -> List[Tuple[str, Any, str]]:
    """Problems in a system's settings table for the scheduler or transport ``name``, as
    ``(key, value, problem)``; a plugin without a ``check_options`` hook accepts any table."""
    return list(_call(kind, name, "check_options", False, name=name, options=options) or [])


def open_shell(transport: str, system: Any) -> Shell:
    return _call("transport", transport, "open_shell", transport=transport, system=system)


def transfer(transport: str, shell: Shell, direction: str, pairs: Sequence[Tuple[Path, str]]) -> None:
    if direction not in ("put", "get"):
        raise ValueError(f"transfer direction must be 'put' or 'get', not {direction!r}")
    pairs = list(pairs)
    if pairs:
        _call("transport", transport, "transfer", transport=transport, shell=shell, direction=direction,
              pairs=pairs)


def transfer_then_run(transport: str, shell: Shell, pairs: Sequence[Tuple[Path, str]], command: str,
                      timeout: Optional[float] = None) -> Optional[CommandResult]:
    """The transport's copy and ``command`` in one round trip, or None when it cannot (then
    the caller transfers and runs the command itself)."""
    return _call("transport", transport, "transfer_then_run", False, transport=transport, shell=shell,
                 pairs=list(pairs), command=command, timeout=timeout)
