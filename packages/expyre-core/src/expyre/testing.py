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
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, Union

import pytest

__all__ = ["expyre_root", "expyre_local_system", "write_expyre_config", "local_system",
           "close_systems", "reset_config"]

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
