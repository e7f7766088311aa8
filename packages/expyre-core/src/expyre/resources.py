"""What a job asks for (time, nodes or cores, memory, partitions) and which partition gives it.

A system's partitions come from the config (see :mod:`expyre.config`): a dict from partition key
to ``{'num_cores': int, 'max_time': seconds or None, 'max_mem': kB or None, ...}``.
:meth:`Resources.find_nodes` picks one partition and says how many nodes and cores to ask for.
"""
from __future__ import annotations

import difflib
import re
from typing import Dict, List, Optional, Sequence, Tuple, Union

from .units import mem_to_kB, time_to_HMS, time_to_sec


class NoMatchingPartitionError(ValueError, RuntimeError):
    """No partition of the system can run a job with the requested resources.

    A ValueError; also a RuntimeError, which is what ExPyRe used to raise here.
    """


class UnknownResourceKeyError(TypeError, ValueError):
    """A resources dict has a key :class:`Resources` does not know (a TypeError, as an unknown
    keyword argument was before, and a ValueError, like the other bad-resources errors)."""


#: The keys a resources dict may have (the arguments of :class:`Resources`).
RESOURCE_KEYS = ("max_time", "num_nodes", "num_cores", "max_mem_tot", "max_mem_per_core", "partitions", "queues")

_MISSING = object()


def _check_keys(unknown: dict) -> None:
    if not unknown:
        return
    problems = []
    for key in unknown:
        close = difflib.get_close_matches(str(key), RESOURCE_KEYS, n=1)
        problems.append(f"'{key}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
    raise UnknownResourceKeyError(f"unknown resources key{'s' if len(problems) > 1 else ''} "
                                  f"{', '.join(problems)}; allowed keys: {', '.join(RESOURCE_KEYS)}")


def _count(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def _one_of(name_a: str, a: object, name_b: str, b: object, required: bool) -> None:
    given = (a is not None) + (b is not None)
    if given > 1:
        raise ValueError(f"give at most one of {name_a} ({a!r}) and {name_b} ({b!r})")
    if required and given == 0:
        raise ValueError(f"one of {name_a} and {name_b} is required")


def _patterns(partitions: Union[str, Sequence[str], None]) -> Optional[List[str]]:
    if partitions is None:
        return None
    patterns = [partitions] if isinstance(partitions, str) else list(partitions)
    for pattern in patterns:
        if not isinstance(pattern, str):
            raise ValueError(f"partitions must be a regexp or a list of regexps, got {partitions!r}")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"partitions: bad regexp {pattern!r}: {exc}") from None
    return patterns


class Resources:
    """Resources a job needs, and selection of the partition that provides them.

    Parameters
    ----------
    max_time: int, str or None
        wall time, seconds (int) or a time spec (``"1h"``, ``"2-00:00:00"``, see
        :func:`expyre.units.time_to_sec`); None for no limit
    num_nodes: int, optional
        number of whole nodes; exactly one of ``num_nodes`` and ``num_cores`` is required
    num_cores: int, optional
        total number of cores
    max_mem_tot: int or str, optional
        memory for the whole job, kB (int) or a memory spec (``"50GB"``)
    max_mem_per_core: int or str, optional
        memory per core; at most one of ``max_mem_tot`` and ``max_mem_per_core``
    partitions: str or list(str), optional
        regexps, each matched against the whole partition key; None allows every partition
    queues: str or list(str), optional
        synonym of ``partitions`` (give at most one of them)

    Attributes
    ----------
    max_time: int or None
        seconds
    n: (int, str)
        ``(count, 'nodes')`` or ``(count, 'cores')``
    max_mem: (int, str) or None
        ``(kB, 'tot')`` or ``(kB, 'per_core')``
    partitions: list(str) or None
        regexps
    """

    def __init__(self, max_time: Union[int, str, None] = _MISSING,  # type: ignore[assignment]
                 num_nodes: Optional[int] = None,
                 num_cores: Optional[int] = None, max_mem_tot: Union[int, str, None] = None,
                 max_mem_per_core: Union[int, str, None] = None,
                 partitions: Union[str, Sequence[str], None] = None,
                 queues: Union[str, Sequence[str], None] = None, **unknown):
        _check_keys(unknown)
        if max_time is _MISSING:
            raise ValueError("resources: max_time is required (seconds, a time such as '1h' or "
                             "'2-00:00:00', or None for no limit)")
        self._given = {key: value for key, value in (
            ("max_time", max_time), ("num_nodes", num_nodes), ("num_cores", num_cores),
            ("max_mem_tot", max_mem_tot), ("max_mem_per_core", max_mem_per_core),
            ("partitions", partitions), ("queues", queues)) if value is not None}
        _one_of("num_nodes", num_nodes, "num_cores", num_cores, required=True)
        _one_of("max_mem_tot", max_mem_tot, "max_mem_per_core", max_mem_per_core, required=False)
        _one_of("partitions", partitions, "queues", queues, required=False)

        self.max_time: Optional[int] = time_to_sec(max_time)
        if num_nodes is not None:
            self.n: Tuple[int, str] = (_count(num_nodes, "num_nodes"), "nodes")
        else:
            self.n = (_count(num_cores, "num_cores"), "cores")
        self.max_mem: Optional[Tuple[int, str]] = None
        if max_mem_tot is not None:
            self.max_mem = (mem_to_kB(max_mem_tot), "tot")
        elif max_mem_per_core is not None:
            self.max_mem = (mem_to_kB(max_mem_per_core), "per_core")
        self.partitions: Optional[List[str]] = _patterns(partitions if partitions is not None else queues)

    # ------------------------------------------------------------------ selection

    def find_nodes(self, partitions: Dict[str, dict], exact_fit: bool = True,
                   partial_node: bool = False) -> Tuple[str, Dict[str, int]]:
        """Pick the partition for these resources and the numbers of nodes and cores to ask for.

        A partition is eligible when its key matches one of the ``partitions`` regexps, its
        ``max_time`` is at least the requested one, (with ``exact_fit`` and a ``num_cores``
        request) the cores fill whole nodes, and the requested memory fits. Among eligible
        partitions the first that leaves no core of its nodes idle wins, else the one that
        leaves the fewest idle.

        Parameters
        ----------
        partitions: dict
            partition key -> ``{'num_cores': int, 'max_time': seconds or None,
            'max_mem': kB or None, ...}``, e.g. ``System.partitions``
        exact_fit: bool, default True
            only accept partitions whose node size divides a ``num_cores`` request
        partial_node: bool, default False
            allow a job smaller than one node to ask for just its cores (turns off
            ``exact_fit``); an error if the job needs more than one node

        Returns
        -------
        partition: str
            key of the selected partition
        node_dict: dict
            ``num_nodes``, ``num_cores`` (total) and ``num_cores_per_node``

        Raises
        ------
        NoMatchingPartitionError
            (a ValueError) when no partition fits; the message gives each partition's reason
        ValueError
            with ``partial_node`` when the job does not fit in one node
        """
        if partial_node:
            exact_fit = False
        eligible, rejected = [], []
        for key, spec in partitions.items():
            reason = self._rejection(key, spec, exact_fit)
            if reason is None:
                eligible.append(key)
            else:
                rejected.append(f"  {key}: {reason}")
        if not eligible:
            raise NoMatchingPartitionError(
                f"no partition fits the resources {self.describe()} "
                f"(exact_fit={exact_fit}, partial_node={partial_node}); one reason per partition:\n"
                + ("\n".join(rejected) if rejected else "  (no partitions defined)"))

        key = min(eligible, key=lambda k: self._excess_cores(partitions[k]))
        return key, self._node_dict(key, partitions[key], partial_node)

    def _totals(self, spec: dict) -> Tuple[int, int]:
        """Total (num_nodes, num_cores) this request needs on nodes like ``spec``."""
        per_node = spec["num_cores"]
        count, unit = self.n
        if unit == "nodes":
            return count, count * per_node
        return -(-count // per_node), count

    def _excess_cores(self, spec: dict) -> int:
        per_node = spec["num_cores"]
        _, num_cores = self._totals(spec)
        return (per_node - num_cores % per_node) % per_node

    def _rejection(self, key: str, spec: dict, exact_fit: bool) -> Optional[str]:
        """Why partition ``key`` cannot take this job, or None if it can."""
        if self.partitions is not None and not any(re.fullmatch(p, key) for p in self.partitions):
            return f"name does not match {' or '.join(repr(p) for p in self.partitions)}"
        limit = spec.get("max_time")
        if limit is not None and self.max_time is not None and self.max_time > limit:
            return f"max_time {time_to_HMS(self.max_time)} > {time_to_HMS(limit)}"
        per_node = spec["num_cores"]
        if exact_fit and self.n[1] == "cores" and self.n[0] % per_node != 0:
            if self.n[0] < per_node:
                advice = "to run on part of one node, pass partial_node=True to start()"
            else:
                advice = (f"ask for a multiple of {per_node} cores, or pass exact_fit=False to start() "
                          "to take whole nodes and leave some cores idle")
            return (f"num_cores {self.n[0]} is not a multiple of its {per_node} cores per node "
                    f"(exact_fit=True): {advice}")
        return self._memory_rejection(spec)

    def _memory_rejection(self, spec: dict) -> Optional[str]:
        node_mem = spec.get("max_mem")
        if self.max_mem is None or node_mem is None:
            return None
        wanted, kind = self.max_mem
        if kind == "per_core":
            available = node_mem / spec["num_cores"]
            if wanted > available:
                return f"max_mem_per_core {wanted} kB > {available:g} kB per core"
            return None
        num_nodes, _ = self._totals(spec)
        if wanted > node_mem * num_nodes:
            return f"max_mem_tot {wanted} kB > {node_mem * num_nodes} kB on {num_nodes} node(s)"
        return None

    def _node_dict(self, key: str, spec: dict, partial_node: bool) -> Dict[str, int]:
        per_node = spec["num_cores"]
        num_nodes, num_cores = self._totals(spec)
        if not partial_node:
            return {"num_nodes": num_nodes, "num_cores": num_nodes * per_node,
                    "num_cores_per_node": per_node}
        if num_cores > per_node:
            raise ValueError(f"partial_node=True needs a job that fits in one node, but {self.describe()} "
                             f"needs {num_cores} cores and partition '{key}' has {per_node} per node")
        return {"num_nodes": num_nodes, "num_cores": num_cores, "num_cores_per_node": num_cores}

    def mem_per_node_kB(self, partition: dict, node_dict: Dict[str, int]) -> Optional[int]:
        """Memory (kB) to request on each node: what this job asked for (``max_mem_tot`` spread
        over its nodes, or ``max_mem_per_core`` times its cores per node), else its share of the
        partition's ``max_mem`` (all of it for whole nodes); None when neither is known.

        Parameters
        ----------
        partition: dict
            the selected partition's spec (``num_cores``, ``max_mem``)
        node_dict: dict
            as :meth:`find_nodes` returned it for that partition
        """
        if self.max_mem is not None:
            wanted, kind = self.max_mem
            if kind == "tot":
                return -(-wanted // node_dict["num_nodes"])
            return wanted * node_dict["num_cores_per_node"]
        node_mem = partition.get("max_mem")
        if node_mem is None:
            return None
        return node_mem * node_dict["num_cores_per_node"] // partition["num_cores"]

    def describe(self) -> str:
        """The request in the user's own terms: ``num_cores=1, max_time='1h', partitions='regular'``."""
        given = getattr(self, "_given", None)
        if given is None:  # built by code that bypassed __init__
            return repr(self)
        return "{" + ", ".join(f"{key}={value!r}" for key, value in given.items()) + "}"

    def __repr__(self) -> str:
        return (f"Resources(max_time={self.max_time}, n={self.n}, max_mem={self.max_mem}, "
                f"partitions={self.partitions})")
