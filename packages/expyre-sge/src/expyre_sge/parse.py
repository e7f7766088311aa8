"""What Grid Engine's commands print (``qsub``, ``qstat``, ``qacct``), as plain data and states.

Pure functions on text, tested on output captured from Son of Grid Engine 8.1.9. Output that is
not the command's normal output raises :class:`OutputError`: it never makes a job look finished.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from expyre import batch
from expyre.batch import OutputError, split_sections  # noqa: F401  (part of this module's interface)
from expyre.units import duration_seconds

SECTION_MARKER = batch.SECTION_MARKER
REMOTE_ID = re.compile(r"^(\d+)(?:\.(\d+)(?:-(\d+)(?::(\d+))?)?)?$")


def split_remote_id(remote_id: str) -> Tuple[str, Optional[int]]:
    """``"12"`` -> ``("12", None)``, ``"16.2"`` -> ``("16", 2)``; a task range (``"16.1-3:1"``)
    stands for the whole array job. Raises :class:`OutputError` for what is not a Grid Engine id."""
    match = REMOTE_ID.match(remote_id.strip())
    if not match:
        raise OutputError(f"{remote_id!r} is not a Grid Engine job id")
    single = match.group(2) is not None and match.group(3) is None
    return match.group(1), int(match.group(2)) if single else None


_SUBMITTED = re.compile(r'Your job(-array)? (\d+)(?:\.(\d+-\d+:\d+))? \((".*")\) has been submitted')
_TERSE = re.compile(r"^(\d+)(?:\.(\d+-\d+:\d+))?$")


@dataclass(frozen=True)
class Submission:
    """What qsub accepted: the job number (the remote id), an array job's task range, the name."""

    job_number: str
    tasks: Optional[str] = None
    name: Optional[str] = None


def parse_qsub_output(stdout: str) -> Submission:
    """The job qsub accepted (other lines are ignored); :class:`OutputError` unless exactly one."""
    found = [Submission(m.group(2), m.group(3), m.group(4)[1:-1])
             for m in map(_SUBMITTED.search, stdout.splitlines()) if m]
    if not found:
        found = [Submission(m.group(1), m.group(2)) for line in stdout.splitlines()
                 for m in [_TERSE.match(line.strip())] if m]
    return batch.one_id(found, "qsub", stdout, key=lambda submission: submission.job_number)


_MAX_AJ_TASKS = re.compile(r"^max_aj_tasks\s+(\d+)\s*$", re.MULTILINE)


def parse_max_aj_tasks(output: str) -> Optional[int]:
    """The most tasks one array job may have, from ``qconf -sconf`` (``max_aj_tasks``); None when
    it is not listed or is 0 (Grid Engine's "no limit")."""
    match = _MAX_AJ_TASKS.search(output)
    return int(match.group(1)) or None if match else None


@dataclass(frozen=True)
class QstatEntry:
    """One qstat line: a job or some tasks of an array job (``tasks`` ``"1-3:1"``, ``"2"`` or None)."""

    job_number: str
    name: str
    owner: str
    state: str
    tasks: Optional[str] = None

    def has_task(self, task: int) -> bool:
        """True if this entry covers array task ``task`` (or has no, or an unknown, task list)."""
        for part in (self.tasks or "").split(","):
            match = re.match(r"^(\d+)(?:-(\d+)(?::(\d+))?)?$", part.strip())
            if not match:
                return True
            first, last, step = int(match.group(1)), int(match.group(2) or match.group(1)), int(match.group(3) or 1)
            if first <= task <= last and (task - first) % (step or 1) == 0:
                return True
        return False


_FIELDS = ("JB_job_number", "JB_name", "JB_owner", "state", "tasks")


def parse_qstat_xml(text: str) -> List[QstatEntry]:
    """The jobs in ``qstat -xml`` output; :class:`OutputError` unless it is complete, well-formed
    ``<job_info>`` whose entries have a number and a state (and no DTD, which qstat never prints)."""
    body = text.strip()
    if not body:
        raise OutputError("qstat -xml printed nothing")
    if "<!DOCTYPE" in body or "<!ENTITY" in body:
        raise OutputError("qstat -xml output contains a DTD, which qstat does not print")
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError as exc:
        raise OutputError(f"qstat -xml output is not well-formed XML ({exc}); it begins:\n{body[:300]}") from None
    if root.tag != "job_info":
        raise OutputError(f"qstat -xml output has root element <{root.tag}>, not <job_info>")
    entries = []
    for job in root.iter("job_list"):
        number, name, owner, state, tasks = ((job.findtext(tag) or "").strip() for tag in _FIELDS)
        if not number.isdigit() or not state:
            raise OutputError(f"qstat -xml lists a job without job number or state: "
                              f"{ElementTree.tostring(job, encoding='unicode')[:300]}")
        entries.append(QstatEntry(number, name, owner, state, tasks or None))
    return entries


def parse_qstat_table(text: str) -> List[QstatEntry]:
    """The jobs in plain ``qstat`` output (no output: no jobs); :class:`OutputError` for lines
    that are not the table's header, rule or job lines."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return []
    if (not re.match(r"^job-ID\s+prior\s+name\s+user\s+state\b", lines[0].strip()) or len(lines) < 2
            or not re.match(r"^-{20,}$", lines[1].strip())):
        raise OutputError(f"qstat output does not begin with its table header:\n{text[:300]}")
    entries = []
    for line in lines[2:]:
        words = line.split()  # job-ID prior name user state date time [queue] slots [ja-task-ID]
        rest = words[7:] if len(words) >= 8 and words[0].isdigit() else []
        rest = rest[1:] if rest and "@" in rest[0] else rest
        if not rest or not rest[0].isdigit() or len(rest) > 2:
            raise OutputError(f"qstat line not understood: {line!r}")
        entries.append(QstatEntry(words[0], words[2], words[3], words[4], rest[1] if len(rest) == 2 else None))
    return entries


#: expyre's state for each letter of a state code, by precedence: E error (stays until cleared),
#: s/S/T suspended, r/t running (also Rr, dr, hr), d deleted while pending, h hold, w/q waiting.
_STATE_LETTERS = (("E", "other"), ("s", "held"), ("S", "held"), ("T", "held"), ("r", "running"),
                  ("t", "running"), ("d", "queued"), ("h", "held"), ("w", "queued"), ("q", "queued"))


def map_state(code: str) -> str:
    """expyre's remote state for a qstat state code (``qw``, ``hqw``, ``r``, ``Eqw`` ...);
    ``unknown`` for a code this module does not know (never finished: the job is still listed)."""
    return next((state for letter, state in _STATE_LETTERS if letter in code), "unknown")


def listed_state(entries: Sequence[QstatEntry], job_number: str, task: Optional[int] = None) -> Optional[str]:
    """The state of a job (or one task) among qstat's entries (of its tasks' states running wins
    over queued, queued over held, held over error); None if qstat does not list it."""
    states = {map_state(e.state) for e in entries if e.job_number == job_number and (task is None or e.has_task(task))}
    return next((s for s in ("running", "queued", "held", "unknown", "other") if s in states), None)


@dataclass(frozen=True)
class AccountingRecord:
    """One ``qacct -j`` record (``failed``: 37 a limit the master enforced, 100 killed; times in seconds)."""

    job_number: str
    task: Optional[int]
    name: str
    failed: int
    failed_reason: str
    exit_status: int
    wallclock: Optional[float]
    h_rt: Optional[float]
    started: bool


def parse_qacct(text: str) -> List[AccountingRecord]:
    """The records in ``qacct -j`` output, in order (other lines ignored); :class:`OutputError` for a
    record without jobnumber, failed or exit_status, or with values that are not numbers."""
    records = []
    for block in re.split(r"^=+\s*$", text, flags=re.MULTILINE)[1:]:
        fields = dict(line.strip().partition(" ")[::2] for line in block.splitlines() if line.strip())
        fields = {k: v.strip() for k, v in fields.items()}
        if not fields:
            continue
        try:
            number = fields["jobnumber"]
            failed_word, _, failed_reason = fields["failed"].partition(":")
            exit_match = re.match(r"^-?\d+(?:\.\d+)?", fields["exit_status"])
            if not number.isdigit() or exit_match is None:
                raise ValueError(fields["exit_status"])
            failed, exit_status = int(failed_word.strip()), int(float(exit_match.group(0)))
        except (KeyError, ValueError) as exc:
            raise OutputError(f"qacct record not understood ({exc!r}):\n{block.strip()[:500]}") from None
        task = fields.get("taskid", "undefined")
        h_rt = re.search(r"(?:^|[\s,])h_rt=([0-9:.]+)", fields.get("category", ""))
        records.append(AccountingRecord(
            number, int(task) if task.isdigit() else None, fields.get("jobname", ""), failed, failed_reason.strip(),
            exit_status, duration_seconds(fields.get("ru_wallclock")), h_rt and duration_seconds(h_rt.group(1)),
            fields.get("start_time", "-/-") != "-/-"))
    return records


def qacct_not_found(text: str) -> bool:
    """True if qacct said it has no record of the job (by id or by name)."""
    return re.search(r"error: job (?:id|name) \S+ not found", text) is not None


def accounting_state(record: AccountingRecord) -> str:
    """``timeout`` if killed (failure 37, exit 137/152) after running at least its h_rt; ``done``
    if it started and nothing failed; ``failed`` otherwise."""
    killed = record.failed == 37 or record.exit_status in (137, 152)
    if killed and record.h_rt is not None and record.wallclock is not None and record.wallclock >= record.h_rt - 1:
        return "timeout"
    return "done" if record.failed == 0 and record.exit_status == 0 and record.started else "failed"


def accounted_state(records: Sequence[AccountingRecord], job_number: str, task: Optional[int] = None) -> Optional[str]:
    """The finished state of a job (or task) from its records (the last per task counts; timeout
    wins over failed, failed over done); None without records."""
    last: Dict[Optional[int], AccountingRecord] = {}
    for record in records:
        if record.job_number == job_number and (task is None or record.task == task):
            last[record.task] = record
    states = {accounting_state(record) for record in last.values()}
    return next((s for s in ("timeout", "failed", "done") if s in states), None)


def error_reasons(text: str) -> List[str]:
    """The ``error reason`` lines of ``qstat -j`` output, without their label."""
    return [m.group(1).strip() for line in text.splitlines()
            for m in [re.match(r"^error reason\s+\d+:\s*(.*)$", line.strip())] if m]


@dataclass(frozen=True)
class FileEvidence:
    """What the job's directory says of a job qstat no longer lists (exit status, cancel mark, age)."""

    exit_status: Optional[int] = None
    cancelled: bool = False
    age: Optional[float] = None
    missing: bool = False


def parse_evidence(text: str) -> FileEvidence:
    """The evidence lines (``exit N``, ``cancelled``, ``age N``, ``missing``); others are ignored."""
    found = {w[0]: int(w[1]) if len(w) == 2 else True for w in map(str.split, text.splitlines())
             if w in (["cancelled"], ["missing"]) or (len(w) == 2 and w[0] in ("exit", "age")
                                                       and re.match(r"^-?\d+$", w[1]))}
    age = found.get("age")
    return FileEvidence(found.get("exit"), "cancelled" in found, None if age is None else max(float(age), 0.0),
                        "missing" in found)


#: Seconds after which an unlisted job unknown to qacct is over (more than the 15 s accounting flush).
FINISH_GRACE = 60.0


def unlisted_state(qacct: Optional[Tuple[int, str]], evidence: Optional[FileEvidence], job_number: str,
                   task: Optional[int] = None, grace: float = FINISH_GRACE) -> str:
    """The state of a job a complete qstat answer does not list: from the exit status it wrote, else
    accounting, else ``failed`` if cancelled, ``other`` if its directory is gone or (qacct asked)
    unchanged for ``grace`` seconds, else ``unknown``."""
    if evidence is not None and evidence.exit_status is not None:
        return "done" if evidence.exit_status == 0 else "failed"
    try:
        state = accounted_state(parse_qacct(qacct[1]), job_number, task) if qacct is not None else None
    except OutputError:
        state = None  # a garbled record does not count
    if state is not None or evidence is None:
        return state or "unknown"
    if evidence.cancelled:
        return "failed"
    gone = evidence.missing or (qacct is not None and evidence.age is not None and evidence.age >= grace)
    return "other" if gone else "unknown"
