"""What Slurm's commands print, as plain data, and Slurm's job states as expyre's remote states.

Pure functions on text, tested on output captured from a real Slurm (``tests/fixtures/slurm``).
A job is reported finished only from a state Slurm itself gave for it: output that is cut
short or garbled raises :class:`OutputError`, never yields a finished state.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from expyre import batch
from expyre.batch import OutputError, split_sections  # noqa: F401  (part of this module's interface)
from expyre.header import quoted_directive_value

#: Characters kept in a job name (``#SBATCH`` lines split at blanks, cut at ``#``, strip quotes).
NAME_SAFE = "A-Za-z0-9_.,:=+@^~!%-"
_DIRECTIVE_SAFE = r"[A-Za-z0-9_.,:=+@^~!/%-]+"
#: What squeue, scontrol and scancel say about a job id the controller does not know (any more).
INVALID_JOB_ID = "Invalid job id specified"
#: What ``scontrol show job`` says about an array task the controller no longer has (a waiting
#: task cancelled on its own leaves no record: ``Job 2225_3 not found``).
_TASK_NOT_FOUND = re.compile(r"^Job \d+_\d+ not found\s*$", re.MULTILINE)


def task_not_found(text: str) -> bool:
    """True if scontrol's answer says it has no such array task."""
    return bool(_TASK_NOT_FOUND.search(text))
ACCOUNTING_DISABLED = "accounting storage is disabled"
#: sacct format (with ``--parsable2``): job id, state, exit code. ``JobID``, not ``JobIDRaw``: an
#: array task is ``<array id>_<task>`` there, as in its remote id (its raw id is a number of its own).
SACCT_FORMAT = "JobID,State,ExitCode"
#: Marks each job line of this plugin's squeue formats, so banners are ignored and cut lines seen.
LINE_START, LINE_END = "@xpr@", "@end@"
SQUEUE_FORMAT = f"{LINE_START}|%i|%T|%r|{LINE_END}"
#: The name comes last: it may hold ``|``.
SQUEUE_NAME_FORMAT = f"{LINE_START}|%i|%T|{LINE_END}|%j"
END_MARKER = batch.SECTION_MARKER
SubmitParseError = OutputError


def split_remote_id(remote_id: str) -> Tuple[str, Optional[str]]:
    """``"123"`` -> ``("123", None)``; ``"123;cluster"`` (multi-cluster sites) -> ``("123", "cluster")``."""
    job_id, sep, cluster = str(remote_id).strip().partition(";")
    return job_id.strip(), (cluster.strip() or None) if sep else None


def join_remote_id(job_id: str, cluster: Optional[str]) -> str:
    """The inverse of :func:`split_remote_id`."""
    return f"{job_id};{cluster}" if cluster else job_id


def job_name(expyre_id: str) -> str:
    """The Slurm job name of an expyre job (:func:`expyre.batch.job_name` with :data:`NAME_SAFE`)."""
    return batch.job_name(expyre_id, NAME_SAFE)


def directive_path(path: str) -> str:
    """A file name as an ``#SBATCH --output``/``--error`` value: ``%`` doubled (Slurm expands
    ``%j``), double-quoted if it has blanks or ``#``; ValueError if it cannot be written at all."""
    value = quoted_directive_value(path.replace("%", "%%"), _DIRECTIVE_SAFE)
    if value is None:
        raise ValueError(f"file name {path!r} cannot be written in an #SBATCH directive")
    return value


_SUBMITTED = re.compile(r"Submitted batch job (\d+)(?: on cluster (\S+))?")
_PARSABLE = re.compile(r"^\s*(\d+)(?:;(\S+))?\s*$")


def parse_sbatch_output(stdout: str) -> str:
    """The remote id sbatch printed: ``Submitted batch job 123 [on cluster x]`` or the
    ``--parsable`` ``123[;x]``; other lines are ignored, and the first form wins over bare
    numbers (a site wrapper's banner). Raises :class:`SubmitParseError` unless exactly one id."""
    submitted, parsable = [], []
    for line in stdout.splitlines():
        match = _SUBMITTED.search(line)
        if match:
            submitted.append(join_remote_id(match.group(1), match.group(2)))
        elif _PARSABLE.match(line):
            match = _PARSABLE.match(line)
            parsable.append(join_remote_id(match.group(1), match.group(2)))
    return batch.one_id(submitted or parsable, "sbatch", stdout)


def _states(**groups: str) -> Dict[str, str]:
    return {word: state for state, words in groups.items() for word in words.split()}


#: Slurm's states (SUSPENDED/STOPPED are paused: ``held``; REVOKED: a federated copy whose job
#: goes on elsewhere: ``unknown``).
_STATE_MAP = _states(
    queued="PENDING REQUEUED REQUEUE_FED", held="REQUEUE_HOLD SPECIAL_EXIT RESV_DEL_HOLD SUSPENDED STOPPED",
    running="RUNNING CONFIGURING COMPLETING RESIZING SIGNALING STAGE_OUT POWER_UP_NODE", done="COMPLETED",
    failed="FAILED NODE_FAIL OUT_OF_MEMORY BOOT_FAIL CANCELLED PREEMPTED", timeout="TIMEOUT DEADLINE",
    unknown="REVOKED")
_SHORT_STATES = dict(zip(
    "PD R CG CF CD F NF OOM BF CA PR TO DL S ST RQ RH RF SE RS RD RV SI SO".split(),
    ("PENDING RUNNING COMPLETING CONFIGURING COMPLETED FAILED NODE_FAIL OUT_OF_MEMORY BOOT_FAIL CANCELLED "
     "PREEMPTED TIMEOUT DEADLINE SUSPENDED STOPPED REQUEUED REQUEUE_HOLD REQUEUE_FED SPECIAL_EXIT RESIZING "
     "RESV_DEL_HOLD REVOKED SIGNALING STAGE_OUT").split()))


def map_state(state: str, reason: str = "") -> str:
    """expyre's remote state for a Slurm state (``PENDING``, ``CANCELLED by 1001``, ``CA+``, ``PD``)
    and, for pending jobs, the reason; ``unknown`` for a state this module does not know."""
    word = state.strip().split(" ")[0].rstrip("+").upper() if state.strip() else ""
    word = _SHORT_STATES.get(word, word)
    mapped = _STATE_MAP.get(word, "unknown")
    return "held" if mapped == "queued" and word == "PENDING" and is_hold_reason(reason) else mapped


def is_hold_reason(reason: str) -> bool:
    """True for a pending reason that means the job is held (user, admin or requeue hold)."""
    return reason.strip().strip("()").startswith("JobHeld")


#: Job ids as squeue prints them: ``123``, ``123_4`` (an array task), ``123_[5-9%2]`` (an array's
#: waiting tasks, with its limit of tasks at once), ``123+0`` (a heterogeneous job's part).
_ID_STATE = rf"^{LINE_START}\|(?P<id>[0-9][0-9_\[\]%+-]*)\|(?P<state>[A-Z_]+)\|"
_JOB_LINE = re.compile(rf"{_ID_STATE}(?P<reason>[^|]*)\|{LINE_END}$")
_NAME_LINE = re.compile(rf"{_ID_STATE}{LINE_END}\|(?P<name>.*)$")
_CLUSTER_LINE = re.compile(r"^CLUSTER:\s*(\S+)\s*$")


@dataclass
class SqueueResult:
    """Jobs squeue listed: ``{(job id, cluster or None): (slurm state, reason)}``."""

    jobs: Dict[Tuple[str, Optional[str]], Tuple[str, str]] = field(default_factory=dict)

    def lookup(self, remote_id: str) -> Optional[Tuple[str, str]]:
        """``(state, reason)`` for a remote id, or None if squeue did not list it (or it is
        ambiguous: a default-cluster id listed under two named clusters)."""
        job_id, cluster = split_remote_id(remote_id)
        if (job_id, cluster) in self.jobs:
            return self.jobs[(job_id, cluster)]
        matches = [v for (j, _c), v in self.jobs.items() if j == job_id] if cluster is None else []
        return matches[0] if len(matches) == 1 else None


def _lines(output: str):
    """``(cluster, line)`` for each line, with the cluster named by the last ``CLUSTER:`` line."""
    cluster = None
    for raw in output.splitlines():
        match = _CLUSTER_LINE.match(raw.strip())
        if match:
            cluster = match.group(1)
        else:
            yield cluster, raw.strip()


def parse_squeue(output: str) -> SqueueResult:
    """Parse ``squeue --format=SQUEUE_FORMAT`` (optionally ``-M``); raises :class:`OutputError`
    for a cut or garbled job line (such a job cannot be told from one no longer listed)."""
    result = SqueueResult()
    for cluster, line in _lines(output):
        if line.startswith(LINE_START):
            match = _JOB_LINE.match(line)
            if not match:
                raise OutputError(f"squeue printed a garbled or cut job line: {line!r}")
            result.jobs[(match.group("id"), cluster)] = (match.group("state"), match.group("reason").strip())
    return result


def parse_squeue_names(output: str) -> List[Tuple[str, Optional[str], str, str]]:
    """Parse ``squeue --format=SQUEUE_NAME_FORMAT``: ``[(job id, cluster, state, name)]``."""
    return [(m.group("id"), cluster, m.group("state"), m.group("name"))
            for cluster, line in _lines(output) for m in [_NAME_LINE.match(line)] if m]


def parse_scontrol_job(output: str) -> Optional[Dict[str, str]]:
    """Fields of ``scontrol show job ID`` (one- or multi-line), None if it shows no job; values
    with blanks in them may be cut at the first blank."""
    fields: Dict[str, str] = {}
    for word in output.split():
        key, sep, value = word.partition("=")
        if sep and key and key not in fields:
            fields[key] = value
    return fields if "JobId" in fields and "JobState" in fields else None


def scontrol_job_id(fields: Dict[str, str]) -> str:
    """The id a ``scontrol show job`` record answers to: ``<array id>_<task>`` for an array
    task (whose ``JobId`` is a job id of its own), else ``JobId``."""
    if fields.get("ArrayJobId") and re.fullmatch(r"\d+", fields.get("ArrayTaskId", "")):
        return f"{fields['ArrayJobId']}_{fields['ArrayTaskId']}"
    return fields.get("JobId", "")


#: ``MaxArraySize = N`` in ``scontrol show config``: task indices run from 0 to N - 1.
_MAX_ARRAY_SIZE = re.compile(r"^\s*MaxArraySize\s*=\s*(\d+)\s*$", re.MULTILINE)


def parse_max_array_size(output: str) -> Optional[int]:
    """The most tasks one array may have (``MaxArraySize``) from ``scontrol show config``, or
    None when it is not listed; 0 (arrays disabled) is returned as 0."""
    match = _MAX_ARRAY_SIZE.search(output)
    return int(match.group(1)) if match else None


def parse_scontrol_jobs(output: str) -> Dict[str, Dict[str, str]]:
    """Several jobs' ``scontrol show job`` records (blank-line or one-line separated), by JobId."""
    records = re.split(r"\n\s*\n|\n(?=\s*JobId=)", output)
    return {f["JobId"]: f for f in map(parse_scontrol_job, records) if f is not None}


def parse_sacct(output: str) -> Dict[str, str]:
    """Parse ``sacct --parsable2 --noheader --format=SACCT_FORMAT``: ``{job id: state}``."""
    states = {}
    for line in output.splitlines():
        parts = line.strip().split("|")
        if len(parts) >= 2 and re.fullmatch(r"\d+(_\d+)?", parts[0]) and re.fullmatch(r"[A-Z_]+.*", parts[1]):
            states[parts[0]] = parts[1]
    return states


#: Slurm's messages for failures that go away when the command is run again.
TRANSIENT_PATTERNS = (
    "socket timed out", "unable to contact slurm controller", "try again", "temporarily unavailable",
    "temporarily unable", "connection refused", "connection reset", "communication connection failure",
    "zero bytes were transmitted or received", "not responding", "transport endpoint is not connected",
    "unexpected message received")


#: Slurm's reasons for refusing a submission at the per-user (or account's) job limit, as sbatch
#: prints them before its general "Job violates accounting/QOS policy (job submit limit, user's
#: size and/or time limits)" (which a size or time limit gets too): AssocMaxSubmitJobLimit,
#: AssocGrpSubmitJobsLimit, QOSMaxSubmitJobPerUserLimit, QOSMaxSubmitJobPerAccountLimit,
#: QOSGrpSubmitJobsLimit.
SUBMIT_LIMIT_PATTERNS = ("maxsubmitjob", "grpsubmitjobs")


def is_transient(message: str) -> bool:
    """True if a failed Slurm command's message says the failure is passing."""
    return any(pattern in message.lower() for pattern in TRANSIENT_PATTERNS)
