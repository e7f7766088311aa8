"""Parsers for what Grid Engine's commands print, and the mapping to expyre's remote states.

Pure functions on text (no I/O), tested on output captured from Son of Grid Engine 8.1.9
(``tests/fixtures/sge``):

* ``qsub``: ``Your job 12 ("N_x") has been submitted``, ``Your job-array 16.1-3:1 ("N_x") has
  been submitted``, or with ``-terse`` the bare ``12`` / ``16.1-3:1``;
* ``qstat -xml``: ``<job_info>`` with ``<job_list>`` entries (job number, name, owner, state
  code such as ``qw``, ``hqw``, ``r``, ``Eqw``, and ``<tasks>`` for array tasks);
* plain ``qstat``: the table with the columns ``job-ID prior name user state submit/start at
  queue slots ja-task-ID``;
* ``qacct -j``: records separated by ``=====`` lines, one ``key value`` per line;
* ``qstat -j``: only its ``error reason`` lines.

Anything that does not look like the command's normal output raises :class:`OutputError`: a
status query whose answer cannot be read must never make a job look finished.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

#: Marker line that ends each section of a combined command's output (see :func:`split_sections`).
SECTION_MARKER = "@@expyre-sge@@"


class OutputError(ValueError):
    """A command's output does not have the form this module expects."""


# --------------------------------------------------------------------------- remote ids

_REMOTE_ID = re.compile(r"^(\d+)(?:\.(\d+)(?:-(\d+)(?::(\d+))?)?)?$")


def split_remote_id(remote_id: str) -> Tuple[str, Optional[int]]:
    """``(job number, task)`` of a remote id: ``"12"`` -> ``("12", None)``, ``"16.2"`` ->
    ``("16", 2)``; a task range (``"16.1-3:1"``, as qsub prints it for an array job) stands for
    the whole array job: ``("16", None)``.

    Raises
    ------
    OutputError
        not a Grid Engine job id
    """
    match = _REMOTE_ID.match(remote_id.strip())
    if not match:
        raise OutputError(f"{remote_id!r} is not a Grid Engine job id")
    number, first, last = match.group(1), match.group(2), match.group(3)
    if first is not None and last is None:
        return number, int(first)
    return number, None


# --------------------------------------------------------------------------- qsub

_SUBMITTED = re.compile(r'Your job(-array)? (\d+)(?:\.(\d+-\d+:\d+))? \((".*")\) has been submitted')
_TERSE = re.compile(r"^(\d+)(?:\.(\d+-\d+:\d+))?$")


@dataclass(frozen=True)
class Submission:
    """What qsub said it accepted.

    Parameters
    ----------
    job_number: str
        the job's number (the remote id expyre records; for an array job it stands for all tasks)
    tasks: str or None
        the task range of an array job (``"1-3:1"``)
    name: str or None
        the job name qsub quoted (None for ``-terse`` output)
    """

    job_number: str
    tasks: Optional[str] = None
    name: Optional[str] = None


def parse_qsub_output(stdout: str) -> Submission:
    """The job qsub accepted, from its standard output (other lines are ignored).

    Raises
    ------
    OutputError
        no job id in the output, or more than one
    """
    found: List[Submission] = []
    for line in stdout.splitlines():
        match = _SUBMITTED.search(line)
        if match:
            found.append(Submission(match.group(2), match.group(3), match.group(4)[1:-1]))
    if not found:
        for line in stdout.splitlines():
            match = _TERSE.match(line.strip())
            if match:
                found.append(Submission(match.group(1), match.group(2)))
    numbers = list(dict.fromkeys(s.job_number for s in found))
    if len(numbers) == 1:
        return found[0]
    if not numbers:
        raise OutputError(f"qsub printed no job id; its output was:\n{stdout.strip() or '(nothing)'}")
    raise OutputError(f"qsub printed several job ids ({', '.join(numbers)}); its output was:\n{stdout.strip()}")


# --------------------------------------------------------------------------- qstat

@dataclass(frozen=True)
class QstatEntry:
    """One line of qstat: a job, or some tasks of an array job.

    Parameters
    ----------
    job_number: str
    name: str
        job name (the plain table cuts it to 10 characters)
    owner: str
    state: str
        Grid Engine's state code (``qw``, ``hqw``, ``r``, ``Eqw``, ``dr`` ...)
    tasks: str or None
        ``"1-3:1"`` (pending tasks), ``"2"`` (one running task), None for a job without tasks
    """

    job_number: str
    name: str
    owner: str
    state: str
    tasks: Optional[str] = None

    def has_task(self, task: int) -> bool:
        """True if this entry covers array task ``task`` (or has no task list at all)."""
        if not self.tasks:
            return True
        for part in self.tasks.split(","):
            match = re.match(r"^(\d+)(?:-(\d+)(?::(\d+))?)?$", part.strip())
            if not match:
                return True  # a form this module does not know: do not rule the task out
            first = int(match.group(1))
            last = int(match.group(2) or first)
            step = int(match.group(3) or 1) or 1
            if first <= task <= last and (task - first) % step == 0:
                return True
        return False


def _text(element: ElementTree.Element, tag: str) -> Optional[str]:
    child = element.find(tag)
    return None if child is None else (child.text or "").strip()


def parse_qstat_xml(text: str) -> List[QstatEntry]:
    """The jobs in ``qstat -xml`` output (running ones under ``<queue_info>``, the others under
    ``<job_info>``).

    Raises
    ------
    OutputError
        the output is not complete, well-formed ``qstat -xml`` output (cut short, garbled,
        empty, an entry without job number or state, or a DTD, which qstat never prints)
    """
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
        number = _text(job, "JB_job_number")
        state = _text(job, "state")
        if not number or not number.isdigit() or not state:
            raise OutputError(f"qstat -xml lists a job without job number or state: "
                              f"{ElementTree.tostring(job, encoding='unicode')[:300]}")
        entries.append(QstatEntry(number, _text(job, "JB_name") or "", _text(job, "JB_owner") or "", state,
                                  _text(job, "tasks") or None))
    return entries


_TABLE_HEADER = re.compile(r"^job-ID\s+prior\s+name\s+user\s+state\b")
_TABLE_RULE = re.compile(r"^-{20,}$")


def parse_qstat_table(text: str) -> List[QstatEntry]:
    """The jobs in plain ``qstat`` output (the table; no output at all means no jobs).

    Raises
    ------
    OutputError
        lines that are not the table's header, rule or job lines
    """
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return []
    if not _TABLE_HEADER.match(lines[0].strip()) or len(lines) < 2 or not _TABLE_RULE.match(lines[1].strip()):
        raise OutputError(f"qstat output does not begin with its table header:\n{text[:300]}")
    entries = []
    for line in lines[2:]:
        words = line.split()
        # job-ID prior name user state date time [queue] slots [ja-task-ID]
        if len(words) < 8 or not words[0].isdigit():
            raise OutputError(f"qstat line not understood: {line!r}")
        rest = words[7:]
        if rest and "@" in rest[0]:
            rest = rest[1:]
        if not rest or not rest[0].isdigit() or len(rest) > 2:
            raise OutputError(f"qstat line not understood: {line!r}")
        tasks = rest[1] if len(rest) == 2 else None
        entries.append(QstatEntry(words[0], words[2], words[3], words[4], tasks))
    return entries


#: expyre's state for each letter of a Grid Engine state code, in order of precedence.
_STATE_LETTERS = (
    ("E", "other"),      # error: the job will not run until an administrator clears it
    ("s", "held"),       # suspended (by the user or admin): paused, continues when resumed
    ("S", "held"),       # suspended by a subordinate queue
    ("T", "held"),       # suspended because a suspend threshold was reached
    ("r", "running"),    # running, also Rr (restarted), dr (being deleted), hr
    ("t", "running"),    # being transferred to its host
    ("d", "queued"),     # deleted while pending: leaves the queue at once
    ("h", "held"),       # hqw, hRwq: on hold
    ("w", "queued"),     # qw, Rq
    ("q", "queued"),
)


def map_state(code: str) -> str:
    """expyre's remote state for a Grid Engine state code from qstat.

    Parameters
    ----------
    code: str
        e.g. ``qw``, ``hqw``, ``hRwq``, ``r``, ``t``, ``Rr``, ``s``, ``S``, ``Eqw``, ``dr``

    Returns
    -------
    str
        ``queued``, ``held``, ``running`` or ``other`` (error state); ``unknown`` for a code
        this module does not know (never a finished state: the job is still listed)
    """
    for letter, state in _STATE_LETTERS:
        if letter in code:
            return state
    return "unknown"


#: Precedence when several qstat entries (array tasks) belong to one job.
_LISTED_PRECEDENCE = ("running", "queued", "held", "unknown", "other")


def combine_listed(states: Iterable[str]) -> str:
    """One state for a job from the states of its listed tasks (running wins over queued,
    queued over held, held over error state)."""
    present = set(states)
    for state in _LISTED_PRECEDENCE:
        if state in present:
            return state
    return "unknown"


def listed_state(entries: Sequence[QstatEntry], job_number: str, task: Optional[int] = None) -> Optional[str]:
    """The state of a job (or one task) among qstat's entries; None if qstat does not list it."""
    states = [map_state(entry.state) for entry in entries
              if entry.job_number == job_number and (task is None or entry.has_task(task))]
    return combine_listed(states) if states else None


# --------------------------------------------------------------------------- qacct

@dataclass(frozen=True)
class AccountingRecord:
    """One ``qacct -j`` record (one run of a job or of one array task).

    Parameters
    ----------
    job_number: str
    task: int or None
        array task id; None for ``undefined``
    name: str
    failed: int
        Grid Engine's failure code (0: the job script ran; 37: a limit enforced by the master;
        100: killed, e.g. by qdel; 28: could not change into the working directory ...)
    failed_reason: str
        the text after the code
    exit_status: int
        the job script's exit status (137 when it was killed with SIGKILL)
    wallclock: float or None
        seconds it ran (``ru_wallclock``)
    h_rt: float or None
        its wall-time limit in seconds, from the ``category`` (``-l h_rt=5``)
    started: bool
        False when ``start_time`` is ``-/-`` (the job never started)
    """

    job_number: str
    task: Optional[int]
    name: str
    failed: int
    failed_reason: str
    exit_status: int
    wallclock: Optional[float]
    h_rt: Optional[float]
    started: bool


_NUMBER = re.compile(r"^-?\d+(?:\.\d+)?")


def _seconds(value: str) -> Optional[float]:
    """``6s``, ``6``, ``6.25`` or ``[[H:]M:]S`` as seconds; None if it is none of these."""
    value = value.strip()
    if re.match(r"^\d+(?::\d+){1,2}$", value):
        total = 0.0
        for part in value.split(":"):
            total = total * 60 + int(part)
        return total
    match = re.match(r"^(\d+(?:\.\d+)?)s?$", value)
    return float(match.group(1)) if match else None


def _h_rt(category: str) -> Optional[float]:
    match = re.search(r"(?:^|[\s,])h_rt=([0-9:.]+)", category)
    return _seconds(match.group(1)) if match else None


def parse_qacct(text: str) -> List[AccountingRecord]:
    """The records in ``qacct -j`` output, in the order qacct printed them.

    Lines that are not part of a record (``error: job id 12 not found``) are ignored: a job
    qacct does not know has no records.

    Raises
    ------
    OutputError
        a record without ``jobnumber``, ``failed`` or ``exit_status``, or with values that
        are not numbers
    """
    records = []
    blocks = re.split(r"^=+\s*$", text, flags=re.MULTILINE)
    for block in blocks[1:]:
        fields: Dict[str, str] = {}
        for line in block.splitlines():
            if not line.strip():
                continue
            key, _, value = line.strip().partition(" ")
            fields[key] = value.strip()
        if not fields:
            continue
        try:
            number = fields["jobnumber"]
            failed_word, _, failed_reason = fields["failed"].partition(":")
            failed = int(failed_word.strip())
            exit_match = _NUMBER.match(fields["exit_status"])
            if not number.isdigit() or exit_match is None:
                raise ValueError(fields["exit_status"])
            exit_status = int(float(exit_match.group(0)))
        except (KeyError, ValueError) as exc:
            raise OutputError(f"qacct record not understood ({exc!r}):\n{block.strip()[:500]}") from None
        task_word = fields.get("taskid", "undefined")
        records.append(AccountingRecord(
            job_number=number, task=int(task_word) if task_word.isdigit() else None,
            name=fields.get("jobname", ""), failed=failed, failed_reason=failed_reason.strip(),
            exit_status=exit_status, wallclock=_seconds(fields.get("ru_wallclock", "")),
            h_rt=_h_rt(fields.get("category", "")), started=fields.get("start_time", "-/-") != "-/-"))
    return records


def qacct_not_found(text: str) -> bool:
    """True if qacct said it has no record of the job (``error: job id 12 not found``,
    ``error: job name N_x not found``)."""
    return re.search(r"error: job (?:id|name) \S+ not found", text) is not None


#: Failure code qacct records when the master killed a job for exceeding h_rt, h_cpu or h_vmem.
FAILED_LIMIT = 37
#: Exit statuses of a job killed by SIGKILL (h_rt, qdel) or SIGXCPU (h_cpu).
_KILLED = (137, 152)


def accounting_state(record: AccountingRecord) -> str:
    """``done``, ``failed`` or ``timeout`` for one accounting record.

    ``timeout`` when the record has a wall-time limit and the job was killed (failure code 37,
    or exit status 137/152) after running at least that long; ``done`` when nothing failed and
    the exit status is 0; ``failed`` otherwise (including a job that never started).
    """
    killed = record.failed == FAILED_LIMIT or record.exit_status in _KILLED
    if (killed and record.h_rt is not None and record.wallclock is not None
            and record.wallclock >= record.h_rt - 1):
        return "timeout"
    if record.failed == 0 and record.exit_status == 0 and record.started:
        return "done"
    return "failed"


def accounted_state(records: Sequence[AccountingRecord], job_number: str, task: Optional[int] = None) -> Optional[str]:
    """The finished state of a job (or one task) from its accounting records; None if there
    are none. The last record of each task counts (a rerun job has several); for an array job
    ``timeout`` wins over ``failed``, and ``failed`` over ``done``."""
    last: Dict[Optional[int], AccountingRecord] = {}
    for record in records:
        if record.job_number == job_number and (task is None or record.task == task):
            last[record.task] = record
    if not last:
        return None
    states = {accounting_state(record) for record in last.values()}
    for state in ("timeout", "failed", "done"):
        if state in states:
            return state
    return "failed"  # pragma: no cover


# --------------------------------------------------------------------------- qstat -j

def error_reasons(text: str) -> List[str]:
    """The ``error reason`` lines of ``qstat -j`` output, without their label."""
    reasons = []
    for line in text.splitlines():
        match = re.match(r"^error reason\s+\d+:\s*(.*)$", line.strip())
        if match:
            reasons.append(match.group(1).strip())
    return reasons


# --------------------------------------------------------------------------- combined commands

def split_sections(stdout: str) -> Dict[str, Tuple[int, str]]:
    """Sections of a combined command's output: ``{name: (exit status, text)}``.

    Each section's output is followed by a line ``@@expyre-sge@@ NAME STATUS`` (preceded by a
    newline of its own, which is removed again). A section whose marker is missing (output cut
    short) is absent from the result.
    """
    sections: Dict[str, Tuple[int, str]] = {}
    start = 0
    for match in re.finditer(rf"^{re.escape(SECTION_MARKER)} (\S+) (-?\d+)$", stdout, flags=re.MULTILINE):
        text = stdout[start:match.start()]
        if text.endswith("\n"):
            text = text[:-1]
        if text.startswith("\n") and start > 0:
            text = text[1:]
        sections[match.group(1)] = (int(match.group(2)), text)
        start = match.end()
    return sections


@dataclass(frozen=True)
class FileEvidence:
    """What the job's directory on the host says about a job qstat no longer lists.

    Parameters
    ----------
    exit_status: int or None
        the job script's exit status, if it ended by itself and wrote it
    cancelled: bool
        expyre's cancel hook asked Grid Engine to delete the job
    age: float or None
        seconds since anything in the job's directory last changed; None if unknown
    missing: bool
        the job's directory does not exist
    """

    exit_status: Optional[int] = None
    cancelled: bool = False
    age: Optional[float] = None
    missing: bool = False


def parse_evidence(text: str) -> FileEvidence:
    """The evidence lines a status command prints for one job (``exit N``, ``cancelled``,
    ``age N``, ``missing``); lines it does not know are ignored."""
    exit_status, cancelled, age, missing = None, False, None, False
    for line in text.splitlines():
        words = line.split()
        if len(words) == 2 and words[0] == "exit" and re.match(r"^-?\d+$", words[1]):
            exit_status = int(words[1])
        elif words == ["cancelled"]:
            cancelled = True
        elif len(words) == 2 and words[0] == "age" and re.match(r"^-?\d+$", words[1]):
            age = max(float(words[1]), 0.0)
        elif words == ["missing"]:
            missing = True
    return FileEvidence(exit_status, cancelled, age, missing)


#: Seconds after which a job that qstat no longer lists, that qacct does not know and that
#: left no exit status is taken to be over (``other``): longer than Grid Engine's default
#: accounting flush interval (15 s), so that a record written late is still waited for.
FINISH_GRACE = 60.0


def unlisted_state(qacct: Optional[Tuple[int, str]], evidence: Optional[FileEvidence], job_number: str,
                   task: Optional[int] = None, grace: float = FINISH_GRACE) -> str:
    """The state of a job that a complete, well-formed qstat answer does not list.

    Parameters
    ----------
    qacct: (int, str) or None
        qacct's exit status and output for the job number; None if qacct was not asked
    evidence: FileEvidence or None
        what the job's directory says; None if that part of the answer is missing
    job_number: str
    task: int, optional
        the array task asked about
    grace: float
        see :data:`FINISH_GRACE`

    Returns
    -------
    str
        from the exit status the job script wrote when it ended by itself: ``done`` or
        ``failed``; else from accounting: ``done``, ``failed`` or ``timeout``; else ``failed`` if
        expyre cancelled it, ``other`` if its directory is gone or (with qacct asked) nothing
        changed there for ``grace`` seconds; otherwise ``unknown`` (an accounting record may
        still be on its way)
    """
    if evidence is not None and evidence.exit_status is not None:
        return "done" if evidence.exit_status == 0 else "failed"
    if qacct is not None:
        try:
            state = accounted_state(parse_qacct(qacct[1]), job_number, task)
        except OutputError:
            state = None
        if state is not None:
            return state
    if evidence is None:
        return "unknown"
    if evidence.cancelled:
        return "failed"
    if evidence.missing:
        return "other"
    if qacct is not None and evidence.age is not None and evidence.age >= grace:
        return "other"
    return "unknown"
