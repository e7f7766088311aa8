"""Which PBS a host runs: PBS Professional / OpenPBS or a Torque-style server.

PBS Pro: ``qstat -x`` also lists finished jobs (``F``, ``Exit_status``), ``-F json`` from version
14, ``qstat --version`` prints ``pbs_version = X``. Torque (and Slurm's Torque front end):
completed jobs stay listed as ``C`` for a while, ``-x`` means XML, ``qstat --version`` prints
``Version: X``. Slurm's Torque front end rejects ``--version`` (``Unknown option``, then its
usage): its array tasks are Slurm's (``SLURM_ARRAY_TASK_ID``, ids ``123_4``), which its own
``qstat``/``qdel`` cannot name, so those go to Slurm's ``squeue``/``scancel`` (:mod:`expyre_pbs.arrays`).
Asked once per system, unless the config names it (``"pbs": {"dialect": "torque"}``, or
``"slurm-torque"`` for the front end).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Optional

PBSPRO, TORQUE = "pbspro", "torque"
DIALECTS = (PBSPRO, TORQUE)
#: Spellings accepted for a configured dialect.
ALIASES = {"pbspro": PBSPRO, "pbs_pro": PBSPRO, "pbs-pro": PBSPRO, "pbs professional": PBSPRO,
           "openpbs": PBSPRO, "torque": TORQUE, "slurm-torque": TORQUE}
#: Configured names of Slurm's Torque front end.
SLURM_FRONT_END = ("slurm-torque",)
#: First PBS Professional major version with ``qstat -f -F json``.
JSON_SINCE = 14
#: The detection command (stdout and stderr together go to :func:`parse_version`).
VERSION_COMMAND = "qstat --version 2>&1"


@dataclass(frozen=True)
class Dialect:
    """What the plugin may ask this host's ``qstat``: dialect ``name``, ``version`` as qstat
    printed it, ``history`` (``qstat -x`` lists finished jobs), ``json`` (``-F json`` works),
    ``slurm`` (Slurm's Torque front end: array tasks are Slurm's)."""

    name: str
    version: Optional[str] = None
    history: bool = False
    json: bool = False
    slurm: bool = False

    def without_json(self) -> Dialect:
        """The same dialect, with JSON output switched off (after JSON that could not be read)."""
        return replace(self, json=False)



def for_name(name: str, version: Optional[str] = None) -> Dialect:
    """The dialect called ``name`` (``pbspro``, ``torque`` or an alias); ValueError if unknown."""
    key = ALIASES.get(str(name).strip().lower())
    if key is None:
        raise ValueError(f"unknown PBS dialect {name!r}; use one of: {', '.join(DIALECTS)}")
    if key == TORQUE:
        return Dialect(TORQUE, version, slurm=str(name).strip().lower() in SLURM_FRONT_END)
    major = _major(version)
    return Dialect(PBSPRO, version, history=True, json=major is None or major >= JSON_SINCE)


def _major(version: Optional[str]) -> Optional[int]:
    return next((int(m) for m in re.findall(r"\d+", version or "")[:1]), None)


_PBSPRO_VERSION = re.compile(r"^\s*pbs_version\s*=\s*(\S+)", re.IGNORECASE | re.MULTILINE)
_TORQUE_VERSION = re.compile(r"^\s*version\s*:\s*(\S+)", re.IGNORECASE | re.MULTILINE)
_FRONT_END = re.compile(r"^Unknown option: version$", re.MULTILINE)
_NOT_FOUND = re.compile(r"command not found|no such file or directory|not found", re.IGNORECASE)


class DialectError(ValueError):
    """``qstat`` cannot be run on the host, so no dialect can be told."""


def parse_version(output: str, returncode: int) -> Dialect:
    """The dialect from ``qstat --version``'s output: ``pbs_version = X`` PBS Pro, ``Version: X``
    Torque, anything else from a qstat that exists (Slurm's front end prints its usage) a Torque-style
    server of unknown version (Slurm's front end when it says ``Unknown option: version``);
    :class:`DialectError` if qstat is not there."""
    match = _PBSPRO_VERSION.search(output)
    if match:
        return for_name(PBSPRO, match.group(1))
    match = _TORQUE_VERSION.search(output)
    if match:
        return for_name(TORQUE, match.group(1))
    if returncode in (126, 127) or (returncode != 0 and _NOT_FOUND.search(output) and "usage" not in output.lower()):
        raise DialectError(f"qstat cannot be run (exit status {returncode}): {output.strip() or '(no output)'}; "
                           "is PBS on the PATH of the account's login shell?")
    return for_name("slurm-torque" if _FRONT_END.search(output) else TORQUE, None)
