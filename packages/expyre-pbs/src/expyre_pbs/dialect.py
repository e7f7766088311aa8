"""Which PBS a host runs: PBS Professional / OpenPBS or a Torque-style server.

The two dialects share ``qsub``, ``qdel``, ``qhold``, ``qrls`` and the ``qstat -f`` record
format, and differ where it matters for status queries:

* PBS Professional / OpenPBS: ``qstat -x`` also shows finished jobs (state ``F``, with
  ``Exit_status``) when the server keeps job history; ``qstat -f -F json`` prints JSON (PBS Pro
  14 and later); ``qstat --version`` prints ``pbs_version = 2022.1.1``.
* Torque (and Torque-compatible front ends such as Slurm's ``slurm-wlm-torque``): completed jobs
  stay visible as state ``C`` (with ``exit_status``) for the server's ``keep_completed`` time;
  ``qstat -x`` means XML output, not history, so it is never used; ``qstat --version`` prints
  ``Version: 6.1.3`` (Slurm's front end rejects the option and prints its usage).

The dialect is asked once per shell (one ``qstat --version``) and kept for the life of that
shell; :func:`resolve` takes a configured dialect instead when one is given.
"""
from __future__ import annotations

import re
import threading
import weakref
from dataclasses import dataclass, replace
from typing import Any, Dict, Optional

PBSPRO = "pbspro"
TORQUE = "torque"
DIALECTS = (PBSPRO, TORQUE)
#: Other spellings accepted for a configured dialect.
ALIASES = {"pbspro": PBSPRO, "pbs_pro": PBSPRO, "pbs-pro": PBSPRO, "pbs professional": PBSPRO,
           "openpbs": PBSPRO, "torque": TORQUE}

#: First PBS Professional major version with ``qstat -f -F json``.
JSON_SINCE = 14

#: The detection command; its output (stdout and stderr together) goes to :func:`parse_version`.
VERSION_COMMAND = "qstat --version 2>&1"


@dataclass(frozen=True)
class Dialect:
    """What the plugin may ask this host's ``qstat``.

    Parameters
    ----------
    name: str
        ``pbspro`` or ``torque``
    version: str or None
        the server's version as ``qstat --version`` printed it, None if it printed none
    history: bool
        ``qstat -x`` lists finished jobs (PBS Professional / OpenPBS)
    json: bool
        ``qstat -f -F json`` works (PBS Professional / OpenPBS 14 and later)
    """

    name: str
    version: Optional[str] = None
    history: bool = False
    json: bool = False

    def without_json(self) -> Dialect:
        """The same dialect, with JSON output switched off (after JSON that could not be read)."""
        return replace(self, json=False)

    def __str__(self) -> str:
        features = [f for f, on in (("qstat -x", self.history), ("-F json", self.json)) if on]
        return (f"{self.name} {self.version or '(no version)'}"
                + (f" [{', '.join(features)}]" if features else ""))


def for_name(name: str, version: Optional[str] = None) -> Dialect:
    """The dialect called ``name`` (``pbspro``, ``torque`` or an alias), with its features.

    Raises
    ------
    ValueError
        for an unknown name
    """
    key = ALIASES.get(str(name).strip().lower())
    if key is None:
        raise ValueError(f"unknown PBS dialect {name!r}; use one of: {', '.join(DIALECTS)}")
    if key == TORQUE:
        return Dialect(TORQUE, version)
    major = _major(version)
    return Dialect(PBSPRO, version, history=True, json=major is None or major >= JSON_SINCE)


def _major(version: Optional[str]) -> Optional[int]:
    match = re.search(r"(\d+)", version or "")
    return int(match.group(1)) if match else None


_PBSPRO_VERSION = re.compile(r"^\s*pbs_version\s*=\s*(\S+)", re.IGNORECASE | re.MULTILINE)
_TORQUE_VERSION = re.compile(r"^\s*version\s*:\s*(\S+)", re.IGNORECASE | re.MULTILINE)
_NOT_FOUND = re.compile(r"command not found|no such file or directory|not found", re.IGNORECASE)


class DialectError(RuntimeError):
    """``qstat`` cannot be run on the host, so no dialect can be told."""


def parse_version(output: str, returncode: int) -> Dialect:
    """The dialect from what ``qstat --version`` printed (stdout and stderr together).

    ``pbs_version = X`` is PBS Professional / OpenPBS; ``Version: X`` is Torque; anything else
    from a ``qstat`` that exists (Slurm's Torque front end prints "Unknown option: version" and
    its usage) is taken as a Torque-style server of unknown version, which asks the least of it.

    Raises
    ------
    DialectError
        ``qstat`` is not there (exit status 127, or the shell says it is not found)
    """
    match = _PBSPRO_VERSION.search(output)
    if match:
        return for_name(PBSPRO, match.group(1))
    match = _TORQUE_VERSION.search(output)
    if match:
        return for_name(TORQUE, match.group(1))
    if returncode in (126, 127) or (returncode != 0 and _NOT_FOUND.search(output) and "usage" not in output.lower()):
        raise DialectError(f"qstat cannot be run (exit status {returncode}): {output.strip() or '(no output)'}; "
                           "is PBS on the PATH of the account's login shell?")
    return for_name(TORQUE, None)


# --------------------------------------------------------------------------- per-shell cache

_lock = threading.Lock()
_by_shell: weakref.WeakKeyDictionary[Any, Dialect] = weakref.WeakKeyDictionary()
_by_id: Dict[int, Any] = {}  # shells that cannot be weakly referenced: id -> (shell, dialect)


def cached(shell: Any) -> Optional[Dialect]:
    """The dialect already found for ``shell``, if any."""
    with _lock:
        try:
            return _by_shell.get(shell)
        except TypeError:
            entry = _by_id.get(id(shell))
            return entry[1] if entry is not None and entry[0] is shell else None


def remember(shell: Any, dialect: Dialect) -> None:
    """Keep ``dialect`` for ``shell`` (for as long as the shell lives)."""
    with _lock:
        try:
            _by_shell[shell] = dialect
        except TypeError:
            _by_id[id(shell)] = (shell, dialect)


def forget(shell: Any = None) -> None:
    """Forget the dialect of ``shell`` (of every shell when None), so that it is asked again."""
    with _lock:
        if shell is None:
            _by_shell.clear()
            _by_id.clear()
            return
        try:
            _by_shell.pop(shell, None)
        except TypeError:
            _by_id.pop(id(shell), None)


def resolve(shell: Any, run, configured: Optional[str] = None) -> Dialect:
    """The dialect for ``shell``: the configured one, the one found before, or ask the host.

    Parameters
    ----------
    shell: expyre.Shell
        the shell core handed to the hook (the dialect is kept per shell)
    run: callable
        ``run(command) -> (returncode, output)``, runs a command through ``shell``
    configured: str, optional
        a dialect set in the configuration; skips the detection

    Returns
    -------
    Dialect
    """
    if configured:
        return for_name(configured)
    found = cached(shell)
    if found is not None:
        return found
    returncode, output = run(VERSION_COMMAND)
    found = parse_version(output, returncode)
    remember(shell, found)
    return found
