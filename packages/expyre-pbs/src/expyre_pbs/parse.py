"""Reading what PBS commands print: ``qsub`` job ids, ``qstat -f`` records (text and JSON), the
error lines of ``qstat``/``qdel``, and PBS job states as expyre's remote states.

Everything here is a pure function of the text it is given; nothing runs a command. The rule
that runs through it: output that is cut short or garbled never makes a job look finished. A
``qstat -f`` record counts only when it is complete (its ``Job Id:`` line, attribute lines and
the blank line that ends it) and names its state once; JSON counts only when it parses.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Set, Tuple

from .dialect import PBSPRO, TORQUE


class OutputError(RuntimeError):
    """A command's output is cut short or garbled; nothing is concluded from it."""


class SubmitParseError(RuntimeError):
    """qsub's output holds no job id, or more than one."""


# --------------------------------------------------------------------------- job ids

#: A PBS job id: sequence number, optional array index (``[]``, ``[3]``, ``[1-10]``), optional
#: ``.server`` (``1234.server``, ``123[].pbs01.example.org``, ``123[1].server``).
JOB_ID = re.compile(r"(?P<seq>\d+)(?P<index>\[(?:\d+(?:-\d+(?::\d+)?)?)?\])?"
                    r"(?P<server>\.[A-Za-z0-9][A-Za-z0-9._-]*)?")


def split_job_id(job_id: str) -> Tuple[str, Optional[str]]:
    """``("123[1]", "server")`` for ``123[1].server``: the part that identifies the job on its
    server (sequence number and array index), and the server name (None if absent).

    Raises
    ------
    ValueError
        for something that is not a PBS job id
    """
    match = JOB_ID.fullmatch(str(job_id).strip())
    if not match:
        raise ValueError(f"not a PBS job id: {job_id!r}")
    server = match.group("server")
    return match.group("seq") + (match.group("index") or ""), server[1:] if server else None


def is_job_id(text: str) -> bool:
    """True if ``text`` (stripped) is a whole PBS job id."""
    return JOB_ID.fullmatch(text.strip()) is not None


def parse_qsub_output(stdout: str) -> str:
    """The job id qsub printed: the whole id line, server name included (``1234.server``,
    ``1234[].server`` for an array job, bare ``1234`` from servers that print no server name).

    Lines that are not a job id (a site's banner or notice, before or after) are ignored. If
    several different ids appear, ids with a server name win over bare numbers (a banner may
    hold a number on a line of its own); more than one of the same kind is an error.

    Raises
    ------
    SubmitParseError
        no job id, or several
    """
    ids = [line.strip() for line in stdout.splitlines() if is_job_id(line)]
    full = list(dict.fromkeys(i for i in ids if "." in i))
    bare = list(dict.fromkeys(i for i in ids if "." not in i))
    found = full or bare
    if len(found) == 1:
        return found[0]
    if not found:
        raise SubmitParseError(f"qsub printed no job id; its output was:\n{stdout.strip() or '(nothing)'}")
    raise SubmitParseError(f"qsub printed several job ids ({', '.join(found)}); its output was:\n{stdout.strip()}")


def parse_job_id_lines(stdout: str) -> List[str]:
    """Job ids printed one to a line (``qselect``); other lines are ignored."""
    return list(dict.fromkeys(line.strip() for line in stdout.splitlines() if is_job_id(line)))


# --------------------------------------------------------------------------- qstat -f records

@dataclass
class JobRecord:
    """One job's attributes from ``qstat -f`` (text or JSON).

    Attribute names are as PBS prints them (``job_state``, ``Exit_status`` on PBS Pro,
    ``exit_status`` on Torque, ``Resource_List.walltime``); nested JSON objects are flattened to
    ``outer.inner``.
    """

    job_id: str
    attributes: Dict[str, str] = field(default_factory=dict)

    def get(self, name: str) -> Optional[str]:
        """An attribute's value, its name matched without regard to case."""
        if name in self.attributes:
            return self.attributes[name]
        lowered = name.lower()
        for key, value in self.attributes.items():
            if key.lower() == lowered:
                return value
        return None

    @property
    def state(self) -> str:
        """The one-letter ``job_state``."""
        return (self.get("job_state") or "").strip()

    @property
    def name(self) -> Optional[str]:
        """``Job_Name``."""
        value = self.get("Job_Name")
        return value.strip() if value is not None else None

    @property
    def exit_status(self) -> Optional[int]:
        """``Exit_status`` (PBS Pro) or ``exit_status`` (Torque); None if absent or not a number."""
        value = self.get("Exit_status")
        try:
            return int(str(value).strip()) if value is not None else None
        except ValueError:
            return None

    @property
    def walltime_used(self) -> Optional[int]:
        """``resources_used.walltime`` in seconds."""
        return duration_seconds(self.get("resources_used.walltime"))

    @property
    def walltime_limit(self) -> Optional[int]:
        """``Resource_List.walltime`` in seconds."""
        return duration_seconds(self.get("Resource_List.walltime"))


@dataclass
class QstatOutput:
    """What one ``qstat -f`` printed: complete records by job id, and the ids of records that
    were cut short or garbled (nothing is concluded about those)."""

    records: Dict[str, JobRecord] = field(default_factory=dict)
    garbled: List[str] = field(default_factory=list)

    def lookup(self, remote_id: str) -> Optional[JobRecord]:
        """The record of ``remote_id``: the same id, or else the only record with the same
        sequence number and array index (servers may print ``123.head`` for ``123.head.domain``)."""
        if remote_id in self.records:
            return self.records[remote_id]
        try:
            key, _server = split_job_id(remote_id)
        except ValueError:
            return None
        matches = []
        for job_id, record in self.records.items():
            try:
                if split_job_id(job_id)[0] == key:
                    matches.append(record)
            except ValueError:
                continue
        return matches[0] if len(matches) == 1 else None

    def is_garbled(self, remote_id: str) -> bool:
        """True if a cut or garbled record may have been this job's."""
        if not self.garbled:
            return False
        try:
            key, _server = split_job_id(remote_id)
        except ValueError:
            return True
        for job_id in self.garbled:
            if job_id == "" or job_id == remote_id:
                return True
            try:
                if split_job_id(job_id)[0] == key:
                    return True
            except ValueError:
                return True
        return False


_JOB_ID_LINE = re.compile(r"^Job Id:\s*(\S+)\s*$")
_ATTRIBUTE = re.compile(r"^(?P<indent>[ \t]+)(?P<name>[A-Za-z_][A-Za-z0-9_.\-]*) = ?(?P<value>.*)$")


def parse_qstat_full(text: str) -> QstatOutput:
    """Parse ``qstat -f`` text output (PBS Pro, OpenPBS, Torque, Slurm's Torque front end).

    A record is ``Job Id: ID`` (PBS Pro, Torque: a blank; Slurm's front end: a tab), attribute
    lines ``<indent>name = value`` and a blank line. PBS Pro and Torque indent attributes with
    four spaces and continue a long value on lines that start with a tab; Slurm's front end
    indents attributes with a tab and does not fold. Lines before the first record (banners)
    are ignored.

    A record counts only if it is complete: it ends with a blank line, every line in it is an
    attribute or a continuation, and it names ``job_state`` exactly once. Other records are
    listed in ``garbled`` (by id, or ``""`` when even the id is unreadable).
    """
    result = QstatOutput()
    lines = text.split("\n")
    # what follows the last newline is a line cut short (or nothing): it is no line of a record
    tail = lines.pop()
    if tail.strip():
        result.garbled.append("")
    seen_record = False
    i = 0
    while i < len(lines):
        match = _JOB_ID_LINE.match(lines[i].rstrip("\r"))
        if not match:
            if lines[i].strip() and seen_record:
                # text between or after records that belongs to none: a garbled record
                result.garbled.append("")
            i += 1
            continue
        seen_record = True
        job_id = match.group(1)
        body: List[str] = []
        i += 1
        terminated = False
        while i < len(lines):
            line = lines[i].rstrip("\r")
            if not line.strip():
                terminated = True
                break
            if _JOB_ID_LINE.match(line):
                break
            body.append(line)
            i += 1
        record = _record(job_id, body) if terminated else None
        if record is None:
            result.garbled.append(job_id)
        elif job_id in result.records and result.records[job_id].attributes != record.attributes:
            result.garbled.append(job_id)
            del result.records[job_id]
        else:
            result.records[job_id] = record
    return result


def _record(job_id: str, body: List[str]) -> Optional[JobRecord]:
    """A complete record from its attribute lines, or None if they are garbled."""
    spaces_style = any(line.startswith("    ") for line in body)
    attributes: Dict[str, str] = {}
    seen_state = 0
    last: Optional[str] = None
    for line in body:
        match = _ATTRIBUTE.match(line)
        is_attribute = match is not None and (not spaces_style or not match.group("indent").startswith("\t"))
        if is_attribute:
            name = match.group("name")
            if name in attributes:
                return None  # an attribute twice: garbled
            attributes[name] = match.group("value")
            last = name
            if name == "job_state":
                seen_state += 1
        elif line.startswith("\t") and last is not None:
            if last == "job_state":
                return None  # a state cannot continue on the next line
            attributes[last] += line[1:]
        else:
            return None
    if seen_state != 1 or not re.fullmatch(r"[A-Z]", attributes["job_state"].strip()):
        return None
    return JobRecord(job_id, attributes)


def parse_qstat_json(text: str) -> QstatOutput:
    """Parse ``qstat -f -F json`` output (PBS Professional / OpenPBS 14 and later).

    The document is ``{"timestamp": ..., "pbs_version": ..., "pbs_server": ..., "Jobs": {ID:
    {attributes}}}``; ``Jobs`` is absent when no job was found. Nested objects
    (``Resource_List``, ``resources_used``, ``Variable_List``) are flattened to ``outer.inner``.

    Raises
    ------
    OutputError
        the text is not one complete JSON object (cut short, or not JSON at all)
    """
    start = text.find("{")
    if start < 0:
        raise OutputError("qstat -F json printed no JSON object")
    try:
        document, end = json.JSONDecoder(strict=False).raw_decode(text, start)
    except json.JSONDecodeError as exc:
        raise OutputError(f"qstat -F json printed invalid or cut JSON: {exc}") from None
    if text[end:].strip():
        raise OutputError("qstat -F json printed more than one JSON document")
    if not isinstance(document, dict):
        raise OutputError("qstat -F json printed JSON that is not an object")
    jobs = document.get("Jobs", {})
    if not isinstance(jobs, dict):
        raise OutputError("qstat -F json: 'Jobs' is not an object")
    result = QstatOutput()
    for job_id, attrs in jobs.items():
        if not isinstance(attrs, dict) or not isinstance(attrs.get("job_state"), str) \
                or not re.fullmatch(r"[A-Z]", attrs["job_state"].strip()):
            result.garbled.append(job_id)
            continue
        result.records[job_id] = JobRecord(job_id, dict(_flatten(attrs)))
    return result


def _flatten(attrs: dict, prefix: str = "") -> Iterable[Tuple[str, str]]:
    for key, value in attrs.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from _flatten(value, name + ".")
        else:
            yield name, str(value)


# --------------------------------------------------------------------------- error lines

_UNKNOWN = re.compile(r"Unknown Job Id(?: Error)?\s+(\S+)", re.IGNORECASE)
_FINISHED = re.compile(r"(\S+)\s+Job has finished", re.IGNORECASE)
_FINISHED_NO_ID = re.compile(r"Job has finished|already completing or completed|already finished", re.IGNORECASE)


@dataclass
class ErrorLines:
    """What a ``qstat``/``qdel`` said about jobs on stderr: ids it does not know, ids it says
    have finished (history kept but not asked for), and any other lines."""

    unknown: Set[str] = field(default_factory=set)
    finished: Set[str] = field(default_factory=set)
    other: List[str] = field(default_factory=list)

    def says_unknown(self, remote_id: str) -> bool:
        return _named(self.unknown, remote_id)

    def says_finished(self, remote_id: str) -> bool:
        return _named(self.finished, remote_id)


def _named(ids: Set[str], remote_id: str) -> bool:
    if remote_id in ids:
        return True
    try:
        key, _ = split_job_id(remote_id)
    except ValueError:
        return False
    for job_id in ids:
        try:
            if split_job_id(job_id)[0] == key:
                return True
        except ValueError:
            continue
    return False


def parse_error_lines(stderr: str) -> ErrorLines:
    """Sort a PBS command's error lines (``qstat: Unknown Job Id 123.server``, Torque's
    ``qstat: Unknown Job Id Error 123.server``, PBS Pro's ``qstat: 123.server Job has finished,
    use -x or -H to obtain historical job information``)."""
    found = ErrorLines()
    for raw in stderr.splitlines():
        line = raw.strip()
        if not line:
            continue
        match = _UNKNOWN.search(line)
        if match:
            found.unknown.add(match.group(1).rstrip(",.;"))
            continue
        match = _FINISHED.search(line)
        if match and is_job_id(match.group(1)):
            found.finished.add(match.group(1))
            continue
        found.other.append(line)
    return found


#: What qdel/qhold/qrls say about a job that is already over (or gone): not a failure to act.
ALREADY_OVER = re.compile(r"Unknown Job Id|Job has finished|already completing or completed|already finished|"
                          r"Invalid job id specified|Request invalid for state of job|job is in exiting state",
                          re.IGNORECASE)


# --------------------------------------------------------------------------- states

#: Exit statuses that mean "killed for running past its wall time", by dialect: PBS Pro's
#: ``JOB_EXEC_KILL_WALLTIME`` (-29, OpenPBS ``src/include/job.h``), Torque's
#: ``JOB_EXEC_OVERLIMIT_WT`` (-11, Torque 6.1 administrator guide, "Job exit status").
WALLTIME_EXIT = {PBSPRO: {-29}, TORQUE: {-11}}

#: PBS job states that mean waiting, held, running.
_WAITING = {"Q": "queued", "W": "queued", "T": "queued"}
_HELD = {"H": "held", "S": "held"}
_RUNNING = {"R": "running", "E": "running", "B": "running"}
#: Finished states: Torque's C(ompleted), PBS Pro's F(inished) and X (finished array subjob).
FINISHED_STATES = ("C", "F", "X")


def map_state(record: JobRecord, dialect: str) -> str:
    """expyre's remote state of a job from its ``qstat -f`` record.

    * Q (queued), W (waiting for its start time), T (being moved): ``queued``
    * H (held): ``held``; S (suspended) is not finished and does not run until resumed:
      ``held`` as well; U is PBS Pro's suspended-for-keyboard-activity (``held``) but "unknown"
      in Slurm's Torque front end (``unknown``)
    * R (running), E (exiting after having run: its files may not all be back yet), B (array
      job with subjobs running): ``running``
    * C (Torque: completed), F (PBS Pro: finished), X (PBS Pro: array subjob finished): by the
      exit status: 0 ``done``; the dialect's walltime code, or any failure after using at least
      the requested walltime, ``timeout``; other values ``failed``; no exit status at all
      (Slurm's front end prints none; PBS Pro has none for a job deleted before it ran):
      ``other``, finished with an outcome the scheduler does not tell (expyre's own marker
      files then decide)
    * M (PBS Pro: moved to another server, which this query does not follow): ``unknown``
    * anything else: ``unknown``, never a finished state
    """
    state = record.state
    if state in _WAITING:
        return _WAITING[state]
    if state in _HELD:
        return _HELD[state]
    if state == "U":
        return "held" if dialect == PBSPRO else "unknown"
    if state in _RUNNING:
        return _RUNNING[state]
    if state in FINISHED_STATES:
        return finished_state(record.exit_status, dialect, record.walltime_used, record.walltime_limit)
    return "unknown"


def finished_state(exit_status: Optional[int], dialect: str, used: Optional[int] = None,
                   limit: Optional[int] = None) -> str:
    """The remote state of a finished job from its exit status (see :func:`map_state`)."""
    if exit_status is None:
        return "other"
    if exit_status == 0:
        return "done"
    if exit_status in WALLTIME_EXIT.get(dialect, set()):
        return "timeout"
    if used is not None and limit and used >= limit:
        return "timeout"
    return "failed"


def duration_seconds(value: Optional[str]) -> Optional[int]:
    """Seconds in a PBS duration (``[[HH:]MM:]SS``, ``01:00:00``); None if absent or unreadable."""
    if value is None:
        return None
    parts = str(value).strip().split(":")
    if not parts or len(parts) > 3 or not all(re.fullmatch(r"\d+", p) for p in parts):
        return None
    seconds = 0
    for part in parts:
        seconds = seconds * 60 + int(part)
    return seconds


# --------------------------------------------------------------------------- command sections

#: Printed after a command's output with its name and exit status, so that output cut short is
#: recognised (the marker is missing) and several commands can share one round trip.
END_MARKER = "@xpr-pbs-end@"
_END_LINE = re.compile(rf"^{re.escape(END_MARKER)} (\S+) (-?\d+)$")


def split_sections(output: str) -> Dict[str, Tuple[int, str]]:
    """Split output of commands each followed by ``END_MARKER NAME STATUS``: name -> (status,
    text before the marker). A section whose marker is missing (cut short) is absent."""
    sections: Dict[str, Tuple[int, str]] = {}
    current: List[str] = []
    for line in output.split("\n"):
        match = _END_LINE.match(line.strip())
        if match:
            sections[match.group(1)] = (int(match.group(2)), "\n".join(current))
            current = []
        else:
            current.append(line)
    return sections
