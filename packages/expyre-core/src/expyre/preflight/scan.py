"""Preflight, the local side: which modules a call's pickles name, and their versions here.

Which modules a call needs is read from the pickles themselves (:func:`scan_pickle`: the
``GLOBAL``/``STACK_GLOBAL`` opcodes), so nothing is guessed; ``stage.write_task`` records them,
with the local versions (:func:`local_record`), in the job's staged task file.
"""
from __future__ import annotations

import functools
import pickletools
import platform
import sys
from dataclasses import dataclass, field
from typing import Dict, FrozenSet, Iterable, List, Optional, Sequence, Set, Tuple

#: Top-level modules never checked: always there (``builtins``, pickle's own helpers) or pickled
#: by value (``__main__``).
ALWAYS_THERE = frozenset({"builtins", "__builtin__", "__main__", "copyreg", "copy_reg", "_codecs"})


@dataclass
class Scan:
    """What one pickle refers to: full module names of its globals, and whether cloudpickle
    pickled code by value (then the job side's Python must have the same major.minor)."""

    modules: Set[str] = field(default_factory=set)
    by_value: bool = False


def scan_pickle(data: bytes) -> Scan:
    """The modules the globals of a pickle come from, without loading it.

    ``GLOBAL`` carries ``"module name"``; ``STACK_GLOBAL`` takes module and name from the two
    values below it on the stack, which are string pushes or memo gets of strings put there
    earlier (a pickler memoizes repeated module names): both are tracked. A map of 1,000 calls
    pickles one function 1,000 times: small pickles seen before are not scanned again.
    """
    data = bytes(data)
    modules, by_value = _scan_small(data) if len(data) <= _CACHED_SCAN_MAX else _scan(data)
    return Scan(set(modules), by_value)


#: Largest pickle whose scan is remembered (a cache of large arguments would hold their memory).
_CACHED_SCAN_MAX = 1 << 16


def _scan(data: bytes) -> Tuple[FrozenSet[str], bool]:
    scan = Scan()
    memo: Dict[int, object] = {}
    recent: List[object] = []  # the values pushed most recently (enough for STACK_GLOBAL)
    for opcode, arg, _pos in pickletools.genops(data):
        name = opcode.name
        if name in ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE",
                    "SHORT_BINSTRING", "BINSTRING", "STRING"):
            recent.append(arg)
        elif name in ("BINGET", "LONG_BINGET", "GET"):
            recent.append(memo.get(int(arg)))
        elif name in ("BINPUT", "LONG_BINPUT", "PUT"):
            memo[int(arg)] = recent[-1] if recent else None
        elif name == "MEMOIZE":
            memo[len(memo)] = recent[-1] if recent else None
        elif name == "STACK_GLOBAL":
            module = recent[-2] if len(recent) >= 2 else None
            if isinstance(module, str):
                scan.modules.add(module)
            recent.append(None)
        elif name in ("GLOBAL", "INST"):
            module = str(arg).partition(" ")[0]
            scan.modules.add(module)
            recent.append(None)
        else:
            recent.append(None)
        del recent[:-4]
    by_value = any(m == "cloudpickle" or m.startswith("cloudpickle.") for m in scan.modules)
    return frozenset(scan.modules), by_value


_scan_small = functools.lru_cache(maxsize=256)(_scan)


def top_level(modules: Iterable[str]) -> List[str]:
    """Top-level package names of ``modules``, without those that never need checking."""
    return sorted({m.partition(".")[0] for m in modules} - ALWAYS_THERE)


@functools.lru_cache(maxsize=1)
def _packages_distributions() -> Dict[str, List[str]]:
    try:
        from importlib import metadata
        return dict(metadata.packages_distributions())  # Python >= 3.10
    except Exception:
        return {}


def local_version(top: str) -> Optional[str]:
    """The version of the installed top-level module ``top`` here: its ``__version__``, else
    its distribution's version (``importlib.metadata``); None if neither is known."""
    module = sys.modules.get(top)
    version = getattr(module, "__version__", None)
    if isinstance(version, str):
        return version
    return _distribution_version(top)


@functools.cache
def _distribution_version(top: str) -> Optional[str]:
    """The version of the distribution that installs ``top``, looked up once per process: a
    look-up searches every installed distribution (about half a millisecond), and a map over a
    thousand calls of a function from the user's own module (no distribution) asks a thousand
    times."""
    from importlib import metadata
    for dist in _packages_distributions().get(top, [top]):
        try:
            return metadata.version(dist)
        except Exception:
            continue
    return None


def local_record(scans: Sequence[Scan]) -> dict:
    """What ``stage.write_task`` records about the call: Python version, the full module names
    the pickles refer to, whether code was pickled by value, and the local versions of their
    top-level modules."""
    modules = set().union(*(s.modules for s in scans)) if scans else set()
    tops = top_level(modules)
    return {"python": platform.python_version(), "modules": sorted(modules),
            "by_value": any(s.by_value for s in scans),
            "versions": {top: local_version(top) for top in tops}}
