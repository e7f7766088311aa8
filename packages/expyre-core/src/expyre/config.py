"""expyre's configuration: discovery, merging and validation of ``config.json`` / ``config.toml``.

Module attributes (set by :func:`init`, which runs by itself the first time one is used):

systems: dict
    system name -> :class:`expyre.system.System`
db: JobsDB
    the jobs database, ``<local_stage_dir>/jobs.db``
local_stage_dir: Path
    directory holding the jobs database and the jobs' stage directories
config_files: list(Path)
    the config files that were read, shallow to deep

Where the config comes from
---------------------------
If ``init`` gets a directory, or the environment variable ``EXPYRE_ROOT`` is set (and is not
``@``), only that directory is read. Otherwise every directory named ``.expyre`` or ``_expyre``
from the home directory (or ``/`` when the working directory is not below home, after
``~/.expyre``) down to the working directory is read, shallow to deep. Each may hold ``config.json`` or ``config.toml``
(same schema). Deeper files override shallower ones key by key, recursively into tables; the
value ``"_DELETE_"`` removes a key and a system set to ``null`` is removed.

Top-level keys: ``systems``; ``local_stage_dir`` (a relative path is relative to the directory of
the file that sets it; default the deepest directory found); ``remote_rundir_submit_hostname``
(the hostname used in each project's remote subdirectory instead of this machine's).

There is always a system ``local``: the ``direct`` scheduler on this machine with one
partition ``regular`` of all its cores and memory. A config file adds its systems to it; a
system of its own named ``local`` replaces it. When a job names no system (and ``EXPYRE_SYS``
is not set), the one configured system is used, or ``local`` when the config defines none.
"""
from __future__ import annotations

import copy
import difflib
import json
import os
import socket
import sys
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from . import plugins
from .system import System, expand_home
from .units import mem_to_kB, time_to_sec

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python < 3.11 only
    import tomli as tomllib

DIR_NAMES = (".expyre", "_expyre")
FILE_NAMES = ("config.json", "config.toml")
DELETE = "_DELETE_"
DEFAULT_SYSTEM = "local"
DEFAULT_PARTITION = "regular"
TOP_LEVEL_KEYS = ("systems", "local_stage_dir", "remote_rundir_submit_hostname", "preflight")
SYSTEM_KEYS = ("host", "scheduler", "transport", "partitions", "queues", "header", "commands",
               "rundir", "remsh_cmd", "no_default_header", "script_exec", "pre_submit_cmds", "ssh",
               "preflight", "limits")
#: a system's ``limits`` table: key -> what it means (all optional; see expyre.politeness and
#: expyre.channels)
LIMIT_KEYS = {"status_queries_per_minute": "status queries of the host per minute, by all processes together",
              "max_channels": "remote commands and transfers in flight to the host at once, by all processes together",
              "max_channel_wait": "seconds to wait for a free channel to the host before giving up"}
#: the limits that count something, so must be whole numbers
INTEGER_LIMITS = ("max_channels",)
PARTITION_KEYS = ("num_cores", "max_time", "max_mem", "header", "partition")

_LAZY_ATTRIBUTES = ("systems", "db", "local_stage_dir", "config_files")

#: where each merged value came from: key path (a tuple) -> config file
Sources = Dict[Tuple[str, ...], Path]


class ConfigError(ValueError):
    """The configuration cannot be used; the message has one line per problem."""


def __getattr__(name: str) -> Any:
    """Read the configuration the first time ``systems``, ``db``, ... is used (PEP 562)."""
    if name in _LAZY_ATTRIBUTES:
        init()
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# =========================================================================== init


def init(root_dir: Union[str, os.PathLike, None] = None, verbose: bool = False) -> None:
    """Read the configuration and set ``systems``, ``db``, ``local_stage_dir`` and ``config_files``.

    Parameters
    ----------
    root_dir: str or Path, optional
        read only this directory; ``"@"`` searches the ``.expyre``/``_expyre`` hierarchy even
        when ``EXPYRE_ROOT`` is set; default ``EXPYRE_ROOT`` if set (and not ``@``), else search
    verbose: bool, default False
        report the directories, files and systems found on stderr

    Raises
    ------
    ConfigError
        a config file cannot be parsed, or its content is invalid (one line per problem)
    """
    dirs = find_config_dirs(root_dir)
    files = find_config_files(dirs)
    data, sources = load_config(files)
    if verbose:
        sys.stderr.write(f"expyre config: directories {[str(d) for d in dirs]}, "
                         f"files {[str(f) for f in files]}\n")

    stage_dir = _local_stage_dir(data, sources, dirs)
    new_systems = build_systems(data, sources, rundir_extra(stage_dir, data)) if files else {}
    if DEFAULT_SYSTEM not in new_systems:
        # the built-in system stays usable after a config file is added (quickstart step 1)
        new_systems[DEFAULT_SYSTEM] = default_system(rundir_extra(stage_dir, data),
                                                      preflight=data.get("preflight", True) is not False)
    stage_dir.mkdir(mode=0o700, parents=True, exist_ok=True)

    from .jobsdb import JobsDB

    g = globals()
    g["config_files"] = files
    g["local_stage_dir"] = stage_dir
    g["systems"] = new_systems
    g["db"] = JobsDB(stage_dir / "jobs.db")
    if verbose:
        sys.stderr.write(f"expyre config: local_stage_dir {stage_dir}, systems {list(new_systems)}\n")


def is_builtin(system: System) -> bool:
    """Whether ``system`` is the built-in ``local`` system rather than one from a config file."""
    return system.name == DEFAULT_SYSTEM and not system.sources


def sole_system() -> Optional[System]:
    """The system a job runs on when it names none: the only one the config files define, or
    the built-in ``local`` when they define none; None when there is a choice to make."""
    all_systems = sys.modules[__name__].systems
    configured = [s for s in all_systems.values() if not is_builtin(s)]
    if len(configured) == 1:
        return configured[0]
    if not configured:
        return all_systems.get(DEFAULT_SYSTEM)
    return None


def unknown_system_message(name: str) -> str:
    """The error for a system name that is not configured, with a "did you mean" when one is close."""
    module = sys.modules[__name__]
    names = list(module.systems)
    close = difflib.get_close_matches(name, names, n=1)
    suggestion = f" (did you mean '{close[0]}'?)" if close else ""
    files = ", ".join(_show(f) for f in module.config_files) or "no config file found"
    return (f"system '{name}' is not configured{suggestion}; configured systems: {', '.join(names) or 'none'} "
            f"(from {files}; 'local' is built in)")


def _did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(str(word), list(choices), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _forget() -> None:
    """Drop the loaded configuration so that the next use reads it again (for tests)."""
    for name in _LAZY_ATTRIBUTES:
        globals().pop(name, None)


# =========================================================================== discovery


def find_config_dirs(root_dir: Union[str, os.PathLike, None] = None) -> List[Path]:
    """Directories to read the configuration from, shallow to deep.

    Parameters
    ----------
    root_dir: str or Path, optional
        as for :func:`init`

    Returns
    -------
    list(Path)
    """
    if root_dir is None:
        env = os.environ.get("EXPYRE_ROOT")
        root_dir = env if env else "@"
    if str(root_dir) != "@":
        root = Path(root_dir).expanduser()
        if not root.is_dir():
            raise ConfigError(f"expyre root '{root}' (from EXPYRE_ROOT or init()) is not a directory")
        return [root.absolute()]
    return _search_dirs()


def _search_dirs() -> List[Path]:
    cwd = Path.cwd().resolve()
    home = Path.home().resolve()
    top = home if cwd == home or home in cwd.parents else Path(cwd.anchor)
    dirs = []
    current = cwd
    while True:
        found = [current / name for name in DIR_NAMES if (current / name).is_dir()]
        if len(found) > 1:
            raise ConfigError(f"both .expyre and _expyre found in '{current}'; keep only one")
        dirs.extend(found)
        if current == top or current.parent == current:
            break
        current = current.parent
    dirs.reverse()
    home_dir = next((home / name for name in DIR_NAMES if (home / name).is_dir()), None)
    if top != home and home_dir is not None:
        # outside the home directory, the user's own ~/.expyre still comes first
        dirs.insert(0, home_dir)
    return dirs


def find_config_files(dirs: List[Path]) -> List[Path]:
    """The config file of each directory that has one (``config.json`` or ``config.toml``)."""
    files = []
    for directory in dirs:
        found = [directory / name for name in FILE_NAMES if (directory / name).is_file()]
        if len(found) > 1:
            raise ConfigError(f"{_show(directory)}: both config.json and config.toml found; keep only one")
        files.extend(found)
    return files


# =========================================================================== reading and merging


def read_config_file(path: Path) -> dict:
    """Parse one config file (JSON or TOML by its suffix).

    Raises
    ------
    ConfigError
        naming the file and the line and column of a syntax error
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{_show(path)}: not a text file (not UTF-8: byte {exc.object[exc.start]:#04x} "
                          f"at offset {exc.start}); a config file is JSON or TOML text") from None
    try:
        if Path(path).suffix == ".toml":
            data = tomllib.loads(text)
        else:
            data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{_show(path)}: invalid JSON at line {exc.lineno}, column {exc.colno}: "
                          f"{exc.msg}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{_show(path)}: invalid TOML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{_show(path)}: the top level must be an object of settings, "
                          f"not {type(data).__name__}")
    return data


def load_config(files: List[Path]) -> Tuple[dict, Sources]:
    """Read ``files`` in order and merge them, deeper overriding shallower.

    Returns
    -------
    data: dict
        merged configuration
    sources: dict
        key path (tuple) -> file that last set the value there
    """
    data: dict = {}
    sources: Sources = {}
    problems = []
    for path in files:
        try:
            update = read_config_file(path)
        except ConfigError as exc:
            problems.append(str(exc))
            continue
        merge(data, update, path, sources)
    if problems:
        raise ConfigError("\n".join(problems))
    return data, sources


def merge(target: dict, update: dict, origin: Path, sources: Sources, path: Tuple[str, ...] = ()) -> None:
    """Merge ``update`` (read from file ``origin``) into ``target``, in place.

    Tables are merged key by key, any other value replaces the old one; ``"_DELETE_"`` removes
    the key, and so does ``null`` as the value of a system. ``sources`` records the file
    that last set each key path.
    """
    for key, value in update.items():
        here = path + (key,)
        if _is_deletion(here, value):
            target.pop(key, None)
            _drop_sources(sources, here)
            continue
        if isinstance(value, dict):
            if not isinstance(target.get(key), dict):
                _drop_sources(sources, here)
                target[key] = {}
            sources[here] = origin
            merge(target[key], value, origin, sources, here)
        else:
            _drop_sources(sources, here)
            target[key] = value
            sources[here] = origin


def update_dict_leaves(d: dict, d_loc: dict) -> None:
    """Merge ``d_loc`` into ``d`` in place, leaf by leaf (ExPyRe 0.1.6's function, kept for its users).

    A value ``"_DELETE_"`` removes the key; a table is merged into the table of the same key; any
    other value replaces the old one (a copy of it is stored).

    Raises
    ------
    ConfigMergeError
        a table would be merged into a value that is not a table (also an ``AssertionError``,
        which ExPyRe raised)
    """
    for key, value in d_loc.items():
        if isinstance(value, str) and value == DELETE:
            d.pop(key, None)
        elif isinstance(value, dict) and key in d:
            if not isinstance(d[key], dict):
                raise ConfigMergeError(f"cannot merge table {key!r} into {d[key]!r}, which is not a table")
            update_dict_leaves(d[key], value)
        else:
            d[key] = copy.deepcopy(value)


class ConfigMergeError(ValueError, AssertionError):
    """:func:`update_dict_leaves` was asked to merge a table into a value that is not a table."""


def _is_deletion(path: Tuple[str, ...], value: Any) -> bool:
    if isinstance(value, str) and value == DELETE:
        return True
    return value is None and len(path) == 2 and path[0] == "systems"


def _drop_sources(sources: Sources, path: Tuple[str, ...]) -> None:
    for key in [k for k in sources if k[:len(path)] == path]:
        del sources[key]


# =========================================================================== top-level values


def _local_stage_dir(data: dict, sources: Sources, dirs: List[Path]) -> Path:
    value = data.get("local_stage_dir")
    if value is None:
        return dirs[-1] if dirs else Path.home() / ".expyre"
    if not isinstance(value, str) or not value:
        origin = sources.get(("local_stage_dir",))
        raise ConfigError(f"{_show(origin)}: local_stage_dir: must be a path string, got {value!r}")
    stage_dir = Path(value).expanduser()
    if not stage_dir.is_absolute():
        stage_dir = sources[("local_stage_dir",)].parent / stage_dir
    return Path(os.path.normpath(stage_dir.absolute()))


def rundir_extra(stage_dir: Path, data: Optional[dict] = None) -> str:
    """Per-project subdirectory of a system's remote rundir: ``<hostname>-<project path>``.

    The hostname is ``remote_rundir_submit_hostname`` from the config, else this machine's; the
    project path is ``stage_dir`` (its parent when it is a ``.expyre``/``_expyre`` directory)
    with ``/`` replaced by ``_``.
    """
    hostname = (data or {}).get("remote_rundir_submit_hostname") or socket.gethostname()
    project = stage_dir.parent if stage_dir.name in DIR_NAMES else stage_dir
    return f"{hostname}-{str(project).replace('/', '_')}"


def _check_top_level(data: dict, sources: Sources, problems: List[str]) -> None:
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            warnings.warn(f"{_show(sources.get((key,)))}: unknown top-level key '{key}' is ignored"
                          f"{_did_you_mean(key, TOP_LEVEL_KEYS)}; known keys: {', '.join(TOP_LEVEL_KEYS)}",
                          UserWarning, stacklevel=3)
    host = data.get("remote_rundir_submit_hostname")
    if host is not None and (not isinstance(host, str) or not host):
        problems.append(f"{_show(sources.get(('remote_rundir_submit_hostname',)))}: "
                        f"remote_rundir_submit_hostname: must be a non-empty string, got {host!r}")
    if not isinstance(data.get("preflight", True), bool):
        problems.append(f"{_show(sources.get(('preflight',)))}: preflight: must be true or false, "
                        f"got {data['preflight']!r}")
    if "systems" in data and not isinstance(data["systems"], dict):
        problems.append(f"{_show(sources.get(('systems',)))}: systems: must be a table of systems, "
                        f"got {data['systems']!r}")


# =========================================================================== validation


class _Problems:
    """Collects the problems of one system, each naming file, system, key and value."""

    def __init__(self, name: str, sources: Sources, lines: List[str]):
        self.name = name
        self.sources = sources
        self.lines = lines

    def add(self, key: Tuple[str, ...], message: str) -> None:
        """Record ``message`` about the value at key path ``key`` inside this system."""
        origin = self._origin(("systems", self.name) + key)
        where = f"{'.'.join(key)}: " if key else ""
        self.lines.append(f"{_show(origin)}: system '{self.name}': {where}{message}")

    def _origin(self, path: Tuple[str, ...]) -> Optional[Path]:
        while path:
            if path in self.sources:
                return self.sources[path]
            path = path[:-1]
        return None


def build_systems(data: dict, sources: Sources, extra: str) -> Dict[str, System]:
    """Validate the merged config and build its systems.

    Parameters
    ----------
    data: dict
        merged configuration (from :func:`load_config`)
    sources: dict
        key path -> file (from :func:`load_config`)
    extra: str
        ``rundir_extra`` of every system

    Raises
    ------
    ConfigError
        listing every problem found, one per line
    """
    lines: List[str] = []
    _check_top_level(data, sources, lines)
    raw = data.get("systems") or {}
    systems = {}
    if isinstance(raw, dict):
        for name, entry in raw.items():
            problems = _Problems(name, sources, lines)
            system = _build_system(name, entry, problems, extra, data.get("preflight", True) is not False)
            if system is not None:
                system.sources = _system_sources(name, sources)
                systems[name] = system
    if lines:
        raise ConfigError("invalid expyre configuration:\n" + "\n".join(lines))
    return systems


def _build_system(name: str, entry: Any, problems: _Problems, extra: str,
                  preflight: bool = True) -> Optional[System]:
    if not isinstance(entry, dict):
        problems.add((), f"must be a table of settings, got {entry!r}")
        return None
    before = len(problems.lines)
    scheduler_table = (entry["scheduler"],) if isinstance(entry.get("scheduler"), str) else ()
    _unknown_keys(entry, SYSTEM_KEYS + scheduler_table, (), problems)
    kwargs = dict(
        host=_optional_str(entry, "host", problems),
        scheduler=_scheduler(entry, problems),
        transport=_transport(entry, problems),
        partitions=_partitions(entry, problems),
        header=_str_list(entry, "header", problems),
        commands=_str_list(entry, "commands", problems),
        rundir=_rundir(entry, problems),
        remsh_cmd=_optional_str(entry, "remsh_cmd", problems),
        no_default_header=_bool(entry, "no_default_header", False, problems),
        script_exec=_script_exec(entry, problems),
        pre_submit_cmds=_str_list(entry, "pre_submit_cmds", problems),
        preflight=_bool(entry, "preflight", preflight, problems),
        options=_options(entry, problems),
        scheduler_options=_plugin_options(entry, "scheduler", scheduler_table, problems),
        limits=_limits(entry, problems),
    )
    if len(problems.lines) > before:
        return None
    return System(name=name, rundir_extra=extra, **kwargs)


def _limits(entry: dict, problems: _Problems) -> dict:
    """The system's ``limits`` table: known keys, each a positive number (a whole one for
    :data:`INTEGER_LIMITS`)."""
    value = entry.get("limits", {})
    if not isinstance(value, dict):
        problems.add(("limits",), f"must be a table of limits ({', '.join(LIMIT_KEYS)}), got {value!r}")
        return {}
    _unknown_keys(value, tuple(LIMIT_KEYS), ("limits",), problems)
    limits = {}
    for key, number in value.items():
        if key not in LIMIT_KEYS:
            continue
        if key in INTEGER_LIMITS:
            if isinstance(number, bool) or not isinstance(number, int) or not number > 0:
                problems.add(("limits", key), f"must be a positive whole number ({LIMIT_KEYS[key]}), got {number!r}")
                continue
        elif isinstance(number, bool) or not isinstance(number, (int, float)) or not number > 0:
            problems.add(("limits", key), f"must be a positive number ({LIMIT_KEYS[key]}), got {number!r}")
            continue
        limits[key] = number
    return limits


def _rundir(entry: dict, problems: _Problems) -> Optional[str]:
    """``rundir``, with a leading ``~`` or ``~/`` meaning the remote home (as in ExPyRe)."""
    rundir = _optional_str(entry, "rundir", problems)
    if rundir is not None:
        try:
            return expand_home(rundir)
        except ValueError as exc:
            problems.add(("rundir",), str(exc))
    return rundir


def _system_sources(name: str, sources: Sources) -> Dict[str, str]:
    prefix = ("systems", name)
    return {".".join(path[2:]): str(origin) for path, origin in sources.items()
            if path[:2] == prefix and len(path) > 2}


def _unknown_keys(table: dict, allowed: Tuple[str, ...], at: Tuple[str, ...], problems: _Problems) -> None:
    for key in table:
        if key not in allowed:
            problems.add(at + (key,), f"unknown key (value {table[key]!r}){_did_you_mean(key, allowed)}; "
                                      f"allowed keys: {', '.join(allowed)}")


def _optional_str(entry: dict, key: str, problems: _Problems) -> Optional[str]:
    value = entry.get(key)
    if value is not None and (not isinstance(value, str) or not value):
        problems.add((key,), f"must be a non-empty string or null, got {value!r}")
        return None
    return value


def _str_list(table: dict, key: str, problems: _Problems, at: Tuple[str, ...] = ()) -> List[str]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        problems.add(at + (key,), f"must be a list of strings, got {value!r}")
        return []
    return list(value)


def _bool(entry: dict, key: str, default: bool, problems: _Problems) -> bool:
    value = entry.get(key, default)
    if not isinstance(value, bool):
        problems.add((key,), f"must be true or false, got {value!r}")
        return default
    return value


def _script_exec(entry: dict, problems: _Problems) -> str:
    value = entry.get("script_exec", "/bin/bash")
    if not isinstance(value, str) or not value:
        problems.add(("script_exec",), f"must be a non-empty string, got {value!r}")
        return "/bin/bash"
    return value


def _options(entry: dict, problems: _Problems) -> dict:
    value = entry.get("ssh", {})
    if not isinstance(value, dict):
        problems.add(("ssh",), f"must be a table of ssh settings, got {value!r}")
        return {}
    return _plugin_options(entry, "transport", ("ssh",), problems)


def _plugin_options(entry: dict, kind: str, table: Tuple[str, ...], problems: _Problems) -> dict:
    """A plugin's own settings (the system's table named after the plugin), checked by the
    plugin's ``check_options`` hook; each problem names the key and its value."""
    value = entry.get(table[0], {}) if table else {}
    if not isinstance(value, dict):
        problems.add(table, f"must be a table of {table[0]} settings, got {value!r}")
        return {}
    if value and table[0] in (plugins.scheduler_names() if kind == "scheduler" else plugins.transport_names()):
        for key, bad, problem in plugins.check_options(kind, table[0], value):
            problems.add((table[0], key), f"{problem}, got {bad!r}")
    return dict(value)


def _plugin_name(entry: dict, key: str, installed: Callable[[], List[str]], problems: _Problems,
                 required: bool) -> Optional[str]:
    value = entry.get(key)
    if value is None:
        if required:
            problems.add((key,), f"missing; one of the installed {key}s is required: "
                                 f"{', '.join(installed()) or 'none'}")
        return None
    if not isinstance(value, str):
        problems.add((key,), f"must be a string, got {value!r}")
        return None
    names = installed()
    if value not in names and plugins.broken_plugins:
        return value  # maybe the broken plugin's: the system reports it when it is used
    if value not in names:
        problems.add((key,), f"unknown {key} {value!r}{_did_you_mean(value, names)}; installed {key}s: "
                             f"{', '.join(names) or 'none'} (install the plugin that provides it, e.g. from "
                             f"a checkout: pip install ./packages/expyre-{value})")
        return None
    return value


def _scheduler(entry: dict, problems: _Problems) -> Optional[str]:
    return _plugin_name(entry, "scheduler", plugins.scheduler_names, problems, required=True)


def _transport(entry: dict, problems: _Problems) -> Optional[str]:
    return _plugin_name(entry, "transport", plugins.transport_names, problems, required=False)


def _partitions(entry: dict, problems: _Problems) -> Dict[str, dict]:
    keys = [k for k in ("partitions", "queues") if k in entry]
    if not keys:
        problems.add(("partitions",), "missing; a table of 'partitions' (or 'queues') is required")
        return {}
    if len(keys) > 1:
        problems.add(("queues",), "give only one of 'partitions' and 'queues' (they are synonyms)")
        return {}
    key = keys[0]
    value = entry[key]
    if not isinstance(value, dict) or not value:
        problems.add((key,), f"must be a non-empty table of partitions, got {value!r}")
        return {}
    return {name: _partition((key, name), spec, problems) for name, spec in value.items()}


def _partition(at: Tuple[str, ...], spec: Any, problems: _Problems) -> dict:
    if not isinstance(spec, dict):
        problems.add(at, f"must be a table with num_cores, max_time, max_mem, got {spec!r}")
        return {}
    _unknown_keys(spec, PARTITION_KEYS, at, problems)
    num_cores = spec.get("num_cores")
    if isinstance(num_cores, bool) or not isinstance(num_cores, int) or num_cores < 1:
        problems.add(at + ("num_cores",), "missing (required)" if num_cores is None else
                     f"must be a positive integer, got {num_cores!r}")
    partition = spec.get("partition", at[-1])
    if not isinstance(partition, str) or not partition:
        problems.add(at + ("partition",), f"must be a non-empty string, got {partition!r}")
    return {"num_cores": num_cores,
            "max_time": _unit(spec, "max_time", time_to_sec, at, problems),
            "max_mem": _unit(spec, "max_mem", mem_to_kB, at, problems),
            "header": _str_list(spec, "header", problems, at),
            "partition": partition}


def _unit(spec: dict, key: str, convert: Callable[[Any], Optional[int]], at: Tuple[str, ...],
          problems: _Problems) -> Optional[int]:
    value = spec.get(key)
    try:
        converted = convert(value)
    except ValueError as exc:
        problems.add(at + (key,), str(exc))
        return None
    if converted is not None and converted <= 0:
        problems.add(at + (key,), f"must be positive, got {value!r}")
        return None
    return converted


# =========================================================================== default system


def physical_memory_kB() -> Optional[int]:
    """This machine's physical memory in kB, or None where the OS does not tell."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 1024
    except (AttributeError, ValueError, OSError):
        return None


def default_system(extra: Optional[str] = None, preflight: bool = True) -> System:
    """The ``local`` system used when there is no config file: direct scheduler, this machine."""
    partition = {"num_cores": os.cpu_count() or 1, "max_time": None, "max_mem": physical_memory_kB(),
                 "header": [], "partition": DEFAULT_PARTITION}
    return System(name=DEFAULT_SYSTEM, scheduler="direct", host=None,
                  partitions={DEFAULT_PARTITION: partition}, rundir_extra=extra, preflight=preflight)


# =========================================================================== reporting


def describe_systems(systems: Optional[Dict[str, System]] = None) -> List[dict]:
    """Plain data about each system, for ``xpr systems``.

    Parameters
    ----------
    systems: dict, optional
        name -> System; default this module's ``systems`` (reading the config if needed)

    Returns
    -------
    list(dict)
        one dict per system with ``name``, ``host``, ``scheduler``, ``transport``, ``rundir``,
        ``partitions`` (key -> dict), ``files`` (config files that set any of its keys, in the
        order they were read; empty for the built-in default) and ``sources`` (key -> file)
    """
    if systems is None:
        systems = sys.modules[__name__].systems
    return [{"name": s.name, "host": s.host, "scheduler": s.scheduler, "transport": s.transport,
             "rundir": s.remote_rundir, "partitions": {k: dict(v) for k, v in s.partitions.items()},
             "files": list(dict.fromkeys(sorted(s.sources.values(), key=_file_order))),
             "sources": dict(s.sources)} for s in systems.values()]


def _file_order(path: str) -> int:
    read = globals().get("config_files") or []
    names = [str(p) for p in read]
    return names.index(path) if path in names else len(names)


def _show(path: Optional[Path]) -> str:
    """``path`` with the home directory written as ``~``, for messages."""
    if path is None:
        return "(config)"
    path = Path(path)
    try:
        return "~/" + str(path.relative_to(Path.home()))
    except ValueError:
        try:
            return "~/" + str(path.relative_to(Path.home().resolve()))
        except ValueError:
            return str(path)
