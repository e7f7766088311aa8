"""What PBS commands print (``qsub`` ids, ``qstat -f`` as text and JSON, error lines) as plain data,
and PBS job states as expyre's. Output cut short or garbled never makes a job look finished: a
record counts only when complete and naming its state once, JSON only when it parses.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Set, Tuple

from expyre import batch
from expyre.batch import OutputError, split_sections  # noqa: F401  (part of this module's interface)
from expyre.units import duration_seconds

from .dialect import PBSPRO, TORQUE

SubmitParseError = OutputError
END_MARKER = batch.SECTION_MARKER
#: A PBS job id: sequence number, optional array index, optional ``.server``.
JOB_ID = re.compile(r"(?P<seq>\d+)(?P<index>\[(?:\d+(?:-\d+(?::\d+)?)?)?\])?(?P<server>\.[A-Za-z0-9][A-Za-z0-9._-]*)?")


def split_job_id(job_id: str) -> Tuple[str, Optional[str]]:
    """``("123[1]", "server")`` for ``123[1].server``; ValueError for what is not a PBS job id."""
    match = JOB_ID.fullmatch(str(job_id).strip())
    if not match:
        raise ValueError(f"not a PBS job id: {job_id!r}")
    server = match.group("server")
    return match.group("seq") + (match.group("index") or ""), server[1:] if server else None


def is_job_id(text: str) -> bool:
    """True if ``text`` (stripped) is a whole PBS job id."""
    return JOB_ID.fullmatch(text.strip()) is not None


def _key(job_id: str) -> Optional[str]:
    try:
        return split_job_id(job_id)[0]
    except ValueError:
        return None


def parse_qsub_output(stdout: str) -> str:
    """The job id line qsub printed (``1234.server``, ``1234[].server``, bare ``1234``); other lines
    are ignored, and ids with a server name win over bare numbers (a banner's). Raises
    :class:`SubmitParseError` unless exactly one."""
    ids = [line.strip() for line in stdout.splitlines() if is_job_id(line)]
    return batch.one_id([i for i in ids if "." in i] or ids, "qsub", stdout)


def parse_job_id_lines(stdout: str) -> List[str]:
    """Job ids printed one to a line (``qselect``); other lines are ignored."""
    return list(dict.fromkeys(line.strip() for line in stdout.splitlines() if is_job_id(line)))


def _integer(value: Optional[str]) -> Optional[int]:
    return int(value) if value is not None and re.fullmatch(r"\s*-?\d+\s*", value) else None


@dataclass
class JobRecord:
    """One job's ``qstat -f`` attributes as PBS names them (nested JSON flattened to ``outer.inner``):
    ``state`` (``job_state``), ``name``, ``exit_status`` (``Exit_status`` on PBS Pro, ``exit_status`` on
    Torque), ``walltime_used`` and ``walltime_limit`` in seconds."""

    job_id: str
    attributes: Dict[str, str] = field(default_factory=dict)

    def get(self, name: str) -> Optional[str]:
        """An attribute's value, its name matched without regard to case."""
        if name in self.attributes:
            return self.attributes[name]
        return next((v for k, v in self.attributes.items() if k.lower() == name.lower()), None)

    state = property(lambda self: (self.get("job_state") or "").strip())
    name = property(lambda self: None if self.get("Job_Name") is None else self.get("Job_Name").strip())
    exit_status = property(lambda self: _integer(self.get("Exit_status")))
    walltime_used = property(lambda self: duration_seconds(self.get("resources_used.walltime")))
    walltime_limit = property(lambda self: duration_seconds(self.get("Resource_List.walltime")))


@dataclass
class QstatOutput:
    """Complete records by job id, and ids of records cut short or garbled (``""``: id unreadable)."""

    records: Dict[str, JobRecord] = field(default_factory=dict)
    garbled: List[str] = field(default_factory=list)

    def lookup(self, remote_id: str) -> Optional[JobRecord]:
        """The record of ``remote_id``, or else the only one with its sequence number and index
        (servers may print ``123.head`` for ``123.head.domain``)."""
        if remote_id in self.records:
            return self.records[remote_id]
        key = _key(remote_id)
        matches = [r for job_id, r in self.records.items() if key is not None and _key(job_id) == key]
        return matches[0] if len(matches) == 1 else None

    def is_garbled(self, remote_id: str) -> bool:
        """True if a cut or garbled record may have been this job's."""
        key = _key(remote_id)
        return any(j in ("", remote_id) or key is None or _key(j) in (key, None) for j in self.garbled)


_JOB_ID_LINE = re.compile(r"^Job Id:\s*(\S+)\s*$")
_ATTRIBUTE = re.compile(r"^(?P<indent>[ \t]+)(?P<name>[A-Za-z_][A-Za-z0-9_.\-]*) = ?(?P<value>.*)$")


def parse_qstat_full(text: str) -> QstatOutput:
    """Parse ``qstat -f`` text (PBS Pro, OpenPBS, Torque: attributes indented by four spaces,
    folded values continued after a tab; Slurm's front end: indented by a tab). Lines before the
    first record are ignored; incomplete records, and text between records, go to ``garbled``."""
    result = QstatOutput()
    lines = text.split("\n")
    if lines.pop().strip():  # what follows the last newline is a line cut short
        result.garbled.append("")
    seen_record, i = False, 0
    while i < len(lines):
        match = _JOB_ID_LINE.match(lines[i].rstrip("\r"))
        if not match:
            if lines[i].strip() and seen_record:
                result.garbled.append("")
            i += 1
            continue
        seen_record, job_id, body, terminated = True, match.group(1), [], False
        i += 1
        while i < len(lines) and not _JOB_ID_LINE.match(lines[i].rstrip("\r")):
            if not lines[i].strip():
                terminated = True
                break
            body.append(lines[i].rstrip("\r"))
            i += 1
        record = _record(job_id, body) if terminated else None
        if record is None or (job_id in result.records and result.records[job_id].attributes != record.attributes):
            result.garbled.append(job_id)
            result.records.pop(job_id, None)
        else:
            result.records[job_id] = record
    return result


def _record(job_id: str, body: List[str]) -> Optional[JobRecord]:
    """A complete record from its attribute lines, or None if they are garbled."""
    spaces_style = any(line.startswith("    ") for line in body)
    attributes: Dict[str, str] = {}
    last: Optional[str] = None
    for line in body:
        match = _ATTRIBUTE.match(line)
        if match is not None and not (spaces_style and match.group("indent").startswith("\t")):
            if match.group("name") in attributes:
                return None  # an attribute twice: garbled
            last = match.group("name")
            attributes[last] = match.group("value")
        elif line.startswith("\t") and last is not None and last != "job_state":
            attributes[last] += line[1:]
        else:
            return None
    if not re.fullmatch(r"[A-Z]", attributes.get("job_state", "").strip()):
        return None
    return JobRecord(job_id, attributes)


def parse_qstat_json(text: str) -> QstatOutput:
    """Parse ``qstat -f -F json`` (PBS Pro / OpenPBS 14+): ``{..., "Jobs": {ID: {attributes}}}``;
    :class:`OutputError` unless the text is one complete JSON object."""
    start = text.find("{")
    if start < 0:
        raise OutputError("qstat -F json printed no JSON object")
    try:
        document, end = json.JSONDecoder(strict=False).raw_decode(text, start)
    except json.JSONDecodeError as exc:
        raise OutputError(f"qstat -F json printed invalid or cut JSON: {exc}") from None
    if text[end:].strip() or not isinstance(document, dict) or not isinstance(document.get("Jobs", {}), dict):
        raise OutputError("qstat -F json printed something other than one JSON object with 'Jobs'")
    result = QstatOutput()
    for job_id, attrs in document.get("Jobs", {}).items():
        if isinstance(attrs, dict) and re.fullmatch(r"[A-Z]", str(attrs.get("job_state", "")).strip()) \
                and isinstance(attrs["job_state"], str):
            result.records[job_id] = JobRecord(job_id, dict(_flatten(attrs)))
        else:
            result.garbled.append(job_id)
    return result


def _flatten(attrs: dict, prefix: str = "") -> Iterable[Tuple[str, str]]:
    for key, value in attrs.items():
        if isinstance(value, dict):
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", str(value)


_UNKNOWN = re.compile(r"Unknown Job Id(?: Error)?\s+(\S+)", re.IGNORECASE)
_FINISHED = re.compile(r"(\S+)\s+Job has finished", re.IGNORECASE)


@dataclass
class ErrorLines:
    """What qstat said on stderr: ids it does not know, ids it says finished, other lines."""

    unknown: Set[str] = field(default_factory=set)
    finished: Set[str] = field(default_factory=set)
    other: List[str] = field(default_factory=list)

    def says_unknown(self, remote_id: str) -> bool:
        return remote_id in self.unknown or _key(remote_id) in {_key(i) for i in self.unknown} - {None}

    def says_finished(self, remote_id: str) -> bool:
        return remote_id in self.finished or _key(remote_id) in {_key(i) for i in self.finished} - {None}


def parse_error_lines(stderr: str) -> ErrorLines:
    """Sort error lines: ``Unknown Job Id [Error] ID`` (PBS Pro, Torque), ``ID Job has finished``
    (PBS Pro without ``-x``), and anything else."""
    found = ErrorLines()
    for line in filter(None, map(str.strip, stderr.splitlines())):
        unknown, finished = _UNKNOWN.search(line), _FINISHED.search(line)
        if unknown:
            found.unknown.add(unknown.group(1).rstrip(",.;"))
        elif finished and is_job_id(finished.group(1)):
            found.finished.add(finished.group(1))
        else:
            found.other.append(line)
    return found


#: Exit statuses of a job killed for its wall time: PBS Pro's ``JOB_EXEC_KILL_WALLTIME`` (-29),
#: Torque's ``JOB_EXEC_OVERLIMIT_WT`` (-11).
WALLTIME_EXIT = {PBSPRO: {-29}, TORQUE: {-11}}
#: Q/W/T waiting, H/S held (S: suspended), R/E/B running (E: exiting, B: array with subjobs running).
_STATES = {"Q": "queued", "W": "queued", "T": "queued", "H": "held", "S": "held", "R": "running",
           "E": "running", "B": "running"}
#: Torque's C(ompleted), PBS Pro's F(inished) and X (finished array subjob).
FINISHED_STATES = ("C", "F", "X")


def map_state(record: JobRecord, dialect: str) -> str:
    """expyre's remote state from a ``qstat -f`` record; a finished job's by its exit status
    (:func:`finished_state`); U is PBS Pro's suspended (``held``) but unknown elsewhere; M (moved)
    and anything else: ``unknown``, never finished."""
    state = record.state
    if state == "U":
        return "held" if dialect == PBSPRO else "unknown"
    if state in FINISHED_STATES:
        return finished_state(record.exit_status, dialect, record.walltime_used, record.walltime_limit)
    return _STATES.get(state, "unknown")


def finished_state(exit_status: Optional[int], dialect: str, used: Optional[int] = None,
                   limit: Optional[int] = None) -> str:
    """0: ``done``; the dialect's wall-time code, or a failure after using the whole wall time:
    ``timeout``; other values ``failed``; none at all (Slurm's front end): ``other``."""
    if exit_status is None:
        return "other"
    if exit_status == 0:
        return "done"
    walltime = exit_status in WALLTIME_EXIT.get(dialect, set()) or (used is not None and limit and used >= limit)
    return "timeout" if walltime else "failed"
