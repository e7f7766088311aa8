"""The rows ``xpr ls`` prints, in full (for scripts) or fitted to a terminal's width.

Full rows (``xpr ls`` piped, or ``-w 0``) carry every field on one line, as before: the id
shortened in the middle, ``status (since)`` with the full time, ``remote_id@system`` and the
scheduler's status. With long names and arrays on several systems they are 130 to 150
characters wide, so on a terminal they wrapped.

Fitted rows (``xpr ls`` on a terminal, or ``-w COLS``) keep what a user checks at a glance
within ``COLS`` columns:

* the status, followed by the scheduler's status in brackets only when it adds to it
  (``died (timeout)``, ``submitted (held)``; not ``started`` with ``running``);
* when it changed, as ``ls -l`` shows times: the time of day if today, else the date;
* the remote id, with ``@system`` only when the listed jobs are on several systems (the one
  system is named in the column's header);
* the id, shortened in the middle to what is left of the width: its start (the job's name)
  and its unique suffix (what tells apart the jobs of one name) stay;
* an array job as one row, with how many of its tasks are in each status. When the rows are still
  too wide, ``array of N:`` goes, then the system in the header, then more of the id's start,
  and last the arrays' counts become the totals of the progress line that ``Executor.map``
  shows (:mod:`expyre.manyprogress`): ``q3 r2 d10 f1`` for queued, running, done and failed.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

from .manyprogress import FIELDS

#: The scheduler's states that say nothing more than a job's status: the scheduler's state is
#: shown next to the status only when it is not one of these (``processed`` and ``cleaned`` jobs
#: are over, so what the scheduler last said of them does not matter any more).
EXPECTED_REMOTE: Dict[str, Tuple[str, ...]] = {
    "submitted": ("queued",),
    "started": ("running",),
    "succeeded": ("done",),
    "failed": ("done", "failed"),
    "died": ("failed",),
}
OVER = ("processed", "cleaned")
#: The progress line's total (:data:`expyre.manyprogress.FIELDS`) each status counts in.
TOTALS: Dict[str, str] = {"created": "queued", "submitting": "queued", "submitted": "queued", "started": "running",
                          "succeeded": "done", "processed": "done", "cleaned": "done", "failed": "failed",
                          "died": "failed"}

#: Characters of a job id's end that are always kept: ``_`` and the 8-character unique suffix.
ID_TAIL = 9
#: Characters of a job id's start kept at least, when the width asks for a shortened id.
ID_HEAD = (6, 3)
#: Text of an array's name after its first task's id (:func:`expyre.arrays.array_name`).
ARRAY_SUFFIX = "_array"
SEPARATOR = "  "
#: A time longer ago than this is shown as a date with the year.
RECENT = 180 * 24 * 3600


def format_table(headers: List[str], rows: List[List[str]]) -> str:
    """Left-aligned columns, each as wide as its widest cell."""
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows)]
    lines = [SEPARATOR.join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip() for line in [headers] + rows]
    return "\n".join(lines)


def counts(values: Sequence[str]) -> str:
    """``3 succeeded, 1 started``: how many of each value, most frequent first."""
    seen: Dict[str, int] = {}
    for value in values:
        seen[value] = seen.get(value, 0) + 1
    return ", ".join(f"{n} {value}" for value, n in sorted(seen.items(), key=lambda kv: (-kv[1], kv[0])))


def id_range(first: str, last: str) -> str:
    """The task ids ``first`` to ``last`` as one range: ``8602_[0-12]`` (Slurm), ``77.[1-4]``
    (Grid Engine), ``1234[0-7].server`` (PBS); ``first..last`` when they differ otherwise."""
    prefix = os.path.commonprefix([first, last]).rstrip("0123456789")
    rest = [first[len(prefix):], last[len(prefix):]]
    suffix = os.path.commonprefix([r[::-1] for r in rest])[::-1].lstrip("0123456789")
    a, b = (r[:len(r) - len(suffix)] for r in rest)
    if not (prefix and a.isdigit() and b.isdigit()):
        return f"{first}..{last}"
    if prefix.endswith("[") and suffix.startswith("]"):
        return f"{prefix}{a}-{b}{suffix}"
    return f"{prefix}[{a}-{b}]{suffix}"


def _tasks_remote_id(tasks: Sequence[Mapping]) -> str:
    first, last = tasks[0], tasks[-1]
    return str(first["remote_id"]) if len(tasks) == 1 else id_range(str(first["remote_id"]), str(last["remote_id"]))


# --------------------------------------------------------------------------- full rows

def short_id(job: Mapping) -> str:
    """The id shortened in the middle: ``<name>_<start of hash>...<unique suffix>``.

    The unique suffix at the end is what tells apart the jobs of one name and arguments, so
    it is always kept.
    """
    job_id = job["id"]
    head = len(job["name"]) + 7
    if len(job_id) <= head + 3 + ID_TAIL:
        return job_id
    return job_id[:head] + "..." + job_id[-ID_TAIL:]


def full_headers() -> List[str]:
    return ["#", "id", "status (since)", "remote_id@system", "remote status"]


def full_job_row(job: Mapping) -> List[str]:
    """A job's full row (without its number); ``job`` is a readable jobs-database row."""
    return [short_id(job), f"{job['status']} ({job['status_time'] or job['creation_time']})",
            f"{job['remote_id'] or '-'}@{job['system'] or '-'}", str(job["remote_status"] or "-")]


def full_array_row(array: str, tasks: Sequence[Mapping]) -> List[str]:
    """An array's one full row (without its number): its name and the task counts."""
    first = tasks[0]
    short = (short_id({"id": array[:-len(ARRAY_SUFFIX)], "name": first["name"]}) + ARRAY_SUFFIX
             if array.endswith(ARRAY_SUFFIX) else array)
    return [short, f"array of {len(tasks)}: {counts([t['status'] for t in tasks])}",
            f"{_tasks_remote_id(tasks)}@{first['system'] or '-'}",
            counts([str(t["remote_status"] or "-") for t in tasks])]


# --------------------------------------------------------------------------- fitted rows

def job_state(status: str, remote_status: Optional[str]) -> str:
    """The status, with the scheduler's state in brackets when it adds to it: ``died (timeout)``."""
    if not remote_status or status in OVER or remote_status in EXPECTED_REMOTE.get(status, ()):
        return status
    return f"{status} ({remote_status})"


def since(timestamp: Optional[float], now: float) -> str:
    """When, as ``ls -l`` shows it: ``17:45`` today, ``Dec 02`` within half a year, else ``2025-06-01``."""
    if timestamp is None:
        return "-"
    when = time.localtime(timestamp)
    if time.strftime("%Y-%m-%d", when) == time.strftime("%Y-%m-%d", time.localtime(now)):
        return time.strftime("%H:%M", when)
    if abs(now - timestamp) < RECENT:
        return time.strftime("%b %d", when)
    return time.strftime("%Y-%m-%d", when)


def fit_id(job_id: str, width: int, head: int = ID_HEAD[0]) -> str:
    """``job_id`` in at most ``width`` characters: its start, ``...`` and its unique suffix
    (and ``_array`` for an array's name); never fewer than ``head`` characters of its start."""
    if len(job_id) <= width:
        return job_id
    tail = ID_TAIL + (len(ARRAY_SUFFIX) if job_id.endswith(ARRAY_SUFFIX) else 0)
    keep = max(width - 3 - tail, head)
    if keep + 3 + tail >= len(job_id):
        return job_id
    return job_id[:keep] + "..." + job_id[-tail:]


@dataclass
class _Entry:
    """One fitted row before its id is shortened: a job, or an array with its tasks."""

    id: str
    statuses: List[str]
    states: List[str]
    time: Optional[float]
    remote_id: str
    system: Optional[str]
    array: bool


def _entry(item: Union[Mapping, Tuple[str, Sequence[Mapping]]]) -> _Entry:
    if isinstance(item, tuple):
        array, tasks = item
        times = [t["status_time"] or t["creation_time"] for t in tasks]
        return _Entry(array, [t["status"] for t in tasks], [job_state(t["status"], t["remote_status"]) for t in tasks],
                      max((t for t in times if t is not None), default=None), _tasks_remote_id(tasks),
                      tasks[0]["system"], True)
    return _Entry(item["id"], [item["status"]], [job_state(item["status"], item["remote_status"])],
                  item["status_time"] or item["creation_time"], str(item["remote_id"] or "-"), item["system"], False)


def totals(statuses: Sequence[str]) -> str:
    """``r2 d10 f1``: the tasks' statuses as the progress line's short totals, those that are
    not zero."""
    keys = [TOTALS.get(status, "queued") for status in statuses]
    return " ".join(f"{label}{keys.count(key)}" for key, label in FIELDS if key in keys)


def _array_state(e: _Entry, form: str) -> str:
    if form == "totals":
        return totals(e.statuses)
    return (f"array of {len(e.states)}: " if form == "array of" else "") + counts(e.states)


#: The ways to narrow the rows, tried in turn until they fit: (how an array's tasks are counted,
#: the one system named in the header, fewest characters kept of an id's start).
_LEVELS = (("array of", True, ID_HEAD[0]), ("counts", True, ID_HEAD[0]), ("counts", False, ID_HEAD[0]),
           ("counts", False, ID_HEAD[1]), ("totals", False, ID_HEAD[1]))


def fitted_table(items: Sequence[Union[Mapping, Tuple[str, Sequence[Mapping]]]], width: int,
                 now: Optional[float] = None) -> str:
    """The listing of ``items`` in rows of at most ``width`` characters, where that can be done.

    Parameters
    ----------
    items: list
        jobs-database rows with times as seconds (``readable=False``), and for an array a tuple
        ``(array name, its listed tasks' rows)``, in the order they are listed
    width: int
        the terminal's columns
    now: float, optional
        the time to show times against (default: now)

    Returns
    -------
    str
        the table, header first. When even the narrowest form is too wide (a very narrow
        terminal, an array with tasks in many statuses), its rows are as narrow as they can be.
    """
    now = time.time() if now is None else now
    entries = [_entry(item) for item in items]
    systems = {e.system for e in entries}
    several = len(systems) > 1
    table: List[List[str]] = []
    for array_form, system_in_header, head in _LEVELS:
        remote_header = "remote_id@system" if several else "remote_id"
        if not several and system_in_header and None not in systems:
            remote_header = f"remote_id@{next(iter(systems))}"
        table = []
        for i, e in enumerate(entries):
            state = _array_state(e, array_form) if e.array else e.states[0]
            remote = f"{e.remote_id}@{e.system or '-'}" if several else e.remote_id
            table.append([str(i), e.id, state, since(e.time, now), remote])
        headers = ["#", "id", "status", "since", remote_header]
        others = [max(len(h), *(len(row[c]) for row in table)) for c, h in enumerate(headers) if c != 1]
        room = width - sum(others) - len(SEPARATOR) * (len(headers) - 1)
        for row, e in zip(table, entries):
            row[1] = fit_id(e.id, room, head)
        if max(len(row[1]) for row in table) <= room:
            break
    return format_table(headers, table)
