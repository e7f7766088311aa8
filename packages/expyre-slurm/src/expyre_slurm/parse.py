"""Parsing what Slurm's commands print, and Slurm's job states as expyre's remote states.

Nothing here runs a command: each function takes the text a command printed and returns plain
data, so that the parsers can be tested on output captured from a real Slurm.

The rule that matters most: a job is reported as finished only from a state Slurm itself gave
for it. Output that is cut short, garbled or from a query that failed yields ``unknown`` (or an
error), never a finished state, because a job taken for finished has its results fetched and,
if there are none yet, is declared dead.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

# --------------------------------------------------------------------------- job ids and names

#: Characters that may stand in a ``#SBATCH`` directive value without quoting.
_DIRECTIVE_SAFE = re.compile(r"[A-Za-z0-9_.,:=+@^~!/%-]+")
#: Characters kept as they are in a job name; anything else becomes ``_``.
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_.,:=+@^~!%-]")


def split_remote_id(remote_id: str) -> Tuple[str, Optional[str]]:
    """Split a remote id into Slurm's job id and the cluster it belongs to.

    Parameters
    ----------
    remote_id: str
        ``"123"`` or ``"123;cluster"`` (the form :func:`parse_sbatch_output` returns for a job
        submitted to a named cluster of a multi-cluster site)

    Returns
    -------
    (str, str or None)
        job id and cluster name (None for the default cluster)
    """
    job_id, sep, cluster = str(remote_id).strip().partition(";")
    return job_id.strip(), (cluster.strip() or None) if sep else None


def join_remote_id(job_id: str, cluster: Optional[str]) -> str:
    """The inverse of :func:`split_remote_id`."""
    return f"{job_id};{cluster}" if cluster else job_id


def job_name(expyre_id: str) -> str:
    """The Slurm job name of an expyre job: its id, with characters Slurm cannot take replaced.

    ``#SBATCH`` lines are split at blanks, cut at ``#`` and strip quotes, so blanks, quotes,
    ``#``, backslashes, ``|`` and anything outside printable ASCII become ``_``. The ids expyre
    makes (``<name>_<hash>_<unique>``) are kept unchanged unless the user's ``name`` has such
    characters; the unique suffix keeps names apart either way.
    """
    return _NAME_UNSAFE.sub("_", expyre_id)


def directive_path(path: str) -> str:
    """A file name as the value of an ``#SBATCH --output``/``--error`` directive.

    Slurm expands ``%`` patterns in these names (``%j``: job id), so a literal ``%`` is written
    ``%%``; names with blanks or ``#`` are double-quoted. A name that cannot be written in a
    directive at all (a double quote or backslash in it) raises ValueError.
    """
    escaped = path.replace("%", "%%")
    if _DIRECTIVE_SAFE.fullmatch(escaped):
        return escaped
    if any(c in escaped for c in '"\\\n\r'):
        raise ValueError(f"file name {path!r} cannot be written in an #SBATCH directive")
    return f'"{escaped}"'


# --------------------------------------------------------------------------- sbatch

class SubmitParseError(RuntimeError):
    """sbatch's output holds no job id, or more than one."""


_SUBMITTED = re.compile(r"Submitted batch job (\d+)(?: on cluster (\S+))?")
_PARSABLE = re.compile(r"^\s*(\d+)(?:;(\S+))?\s*$")


def parse_sbatch_output(stdout: str) -> str:
    """The remote id from what sbatch printed.

    Understands ``Submitted batch job 123``, ``Submitted batch job 123 on cluster x`` (multi-
    cluster sites) and the ``--parsable`` forms ``123`` and ``123;x``. Other lines (a site
    wrapper's banners, warnings) are ignored; lines of the ``Submitted batch job`` form win over
    bare numbers, so a wrapper that prints a number of its own does not confuse the parser.

    Parameters
    ----------
    stdout: str
        sbatch's standard output

    Returns
    -------
    str
        ``"123"``, or ``"123;x"`` for a job on the named cluster ``x``

    Raises
    ------
    SubmitParseError
        if no job id, or more than one different id, is found
    """
    submitted = []
    parsable = []
    for line in stdout.splitlines():
        match = _SUBMITTED.search(line)
        if match:
            submitted.append(join_remote_id(match.group(1), match.group(2)))
            continue
        match = _PARSABLE.match(line)
        if match:
            parsable.append(join_remote_id(match.group(1), match.group(2)))
    found = list(dict.fromkeys(submitted or parsable))
    if len(found) == 1:
        return found[0]
    if not found:
        raise SubmitParseError(f"sbatch printed no job id; its output was:\n{stdout.strip() or '(nothing)'}")
    raise SubmitParseError(f"sbatch printed several job ids ({', '.join(found)}); its output was:\n{stdout.strip()}")


# --------------------------------------------------------------------------- states

#: Reasons of a PENDING job that mean it will not start until released.
HOLD_REASONS = ("JobHeldUser", "JobHeldAdmin")

_STATE_MAP = {
    # waiting
    "PENDING": "queued",
    "REQUEUED": "queued",
    "REQUEUE_FED": "queued",
    # waiting, and will not start until someone acts
    "REQUEUE_HOLD": "held",
    "SPECIAL_EXIT": "held",
    "RESV_DEL_HOLD": "held",
    # paused: neither finished nor running; it continues when resumed
    "SUSPENDED": "held",
    "STOPPED": "held",
    # running, starting or finishing
    "RUNNING": "running",
    "CONFIGURING": "running",
    "COMPLETING": "running",
    "RESIZING": "running",
    "SIGNALING": "running",
    "STAGE_OUT": "running",
    "POWER_UP_NODE": "running",
    # finished
    "COMPLETED": "done",
    "FAILED": "failed",
    "NODE_FAIL": "failed",
    "OUT_OF_MEMORY": "failed",
    "BOOT_FAIL": "failed",
    "CANCELLED": "failed",
    "PREEMPTED": "failed",
    "TIMEOUT": "timeout",
    "DEADLINE": "timeout",
    # a federated job's copy on this cluster, revoked because a sibling cluster runs it: the
    # job itself goes on elsewhere
    "REVOKED": "unknown",
}

#: Slurm's short state codes (``squeue %t``), for output that uses them.
_SHORT_STATES = {"PD": "PENDING", "R": "RUNNING", "CG": "COMPLETING", "CF": "CONFIGURING", "CD": "COMPLETED",
                 "F": "FAILED", "NF": "NODE_FAIL", "OOM": "OUT_OF_MEMORY", "BF": "BOOT_FAIL", "CA": "CANCELLED",
                 "PR": "PREEMPTED", "TO": "TIMEOUT", "DL": "DEADLINE", "S": "SUSPENDED", "ST": "STOPPED",
                 "RQ": "REQUEUED", "RH": "REQUEUE_HOLD", "RF": "REQUEUE_FED", "SE": "SPECIAL_EXIT",
                 "RS": "RESIZING", "RD": "RESV_DEL_HOLD", "RV": "REVOKED", "SI": "SIGNALING", "SO": "STAGE_OUT"}


def map_state(state: str, reason: str = "") -> str:
    """expyre's remote state for a Slurm job state (and, for pending jobs, the reason).

    Parameters
    ----------
    state: str
        Slurm's state as squeue, scontrol or sacct print it (``PENDING``, ``CANCELLED by 1001``,
        ``CANCELLED+``, ``PD``)
    reason: str, optional
        the job's reason (``squeue %r``, scontrol's ``Reason=``)

    Returns
    -------
    str
        one of :data:`expyre.REMOTE_STATES`; ``unknown`` for a state this module does not know
        (a state from a newer Slurm is not taken for a finished one)
    """
    word = state.strip().split(" ")[0].rstrip("+").upper() if state.strip() else ""
    word = _SHORT_STATES.get(word, word)
    mapped = _STATE_MAP.get(word, "unknown")
    if mapped == "queued" and word == "PENDING" and is_hold_reason(reason):
        return "held"
    return mapped


def is_hold_reason(reason: str) -> bool:
    """True for a pending reason that means the job is held (user, admin or requeue hold)."""
    reason = reason.strip().strip("()")
    return reason in HOLD_REASONS or reason.startswith("JobHeld")


# --------------------------------------------------------------------------- squeue

#: Marks each job line of the squeue format this plugin uses, so that any other line (a login
#: banner, a site wrapper's notice) is ignored and a cut line is recognised.
LINE_START = "@xpr@"
LINE_END = "@end@"
#: squeue format: job id, long state, reason; fields separated by ``|``.
SQUEUE_FORMAT = f"{LINE_START}|%i|%T|%r|{LINE_END}"
#: squeue format for :func:`parse_squeue_names`: job id, state, then the name (which may hold ``|``).
SQUEUE_NAME_FORMAT = f"{LINE_START}|%i|%T|{LINE_END}|%j"
#: Printed after a command's output, with its exit status, so that cut output is recognised.
END_MARKER = "@xpr-end@"

_JOB_LINE = re.compile(rf"^{re.escape(LINE_START)}\|(?P<id>[0-9][0-9_\[\]+-]*)\|(?P<state>[A-Z_]+)\|"
                       rf"(?P<reason>[^|]*)\|{re.escape(LINE_END)}$")
_NAME_LINE = re.compile(rf"^{re.escape(LINE_START)}\|(?P<id>[0-9][0-9_\[\]+-]*)\|(?P<state>[A-Z_]+)\|"
                        rf"{re.escape(LINE_END)}\|(?P<name>.*)$")
_CLUSTER_LINE = re.compile(r"^CLUSTER:\s*(\S+)\s*$")
_END_LINE = re.compile(rf"^{re.escape(END_MARKER)} (\S+) (-?\d+)$")


class OutputError(RuntimeError):
    """A scheduler command's output is cut short or garbled; nothing is concluded from it."""


@dataclass
class SqueueResult:
    """Jobs squeue listed: ``{(job id, cluster or None): (slurm state, reason)}``."""

    jobs: Dict[Tuple[str, Optional[str]], Tuple[str, str]] = field(default_factory=dict)

    def lookup(self, remote_id: str) -> Optional[Tuple[str, str]]:
        """``(state, reason)`` for a remote id, or None if squeue did not list it."""
        job_id, cluster = split_remote_id(remote_id)
        if (job_id, cluster) in self.jobs:
            return self.jobs[(job_id, cluster)]
        if cluster is None:
            # the default cluster's jobs, listed by a squeue that named its cluster
            matches = [v for (j, _c), v in self.jobs.items() if j == job_id]
            if len(matches) == 1:
                return matches[0]
        return None


def split_sections(output: str) -> Dict[str, Tuple[int, str]]:
    """Split the output of several commands, each followed by ``END_MARKER NAME STATUS``.

    Returns
    -------
    dict(str, (int, str))
        section name -> (exit status, text before its marker); sections whose marker is missing
        (the output was cut) are absent
    """
    sections = {}
    current: List[str] = []
    for line in output.splitlines():
        match = _END_LINE.match(line.strip())
        if match:
            sections[match.group(1)] = (int(match.group(2)), "\n".join(current))
            current = []
        else:
            current.append(line)
    return sections


def parse_squeue(output: str) -> SqueueResult:
    """Parse the output of ``squeue --noheader --format=SQUEUE_FORMAT`` (optionally ``-M ...``).

    Lines not starting with :data:`LINE_START` (banners, notices) are ignored, as are ``CLUSTER:``
    lines except that they name the cluster of the job lines after them.

    Raises
    ------
    OutputError
        for a job line that is cut or garbled: a job in it cannot be told apart from a job that
        is no longer listed
    """
    result = SqueueResult()
    cluster = None
    for raw in output.splitlines():
        line = raw.strip()
        match = _CLUSTER_LINE.match(line)
        if match:
            cluster = match.group(1)
            continue
        if not line.startswith(LINE_START):
            continue
        match = _JOB_LINE.match(line)
        if not match:
            raise OutputError(f"squeue printed a garbled or cut job line: {line!r}")
        result.jobs[(match.group("id"), cluster)] = (match.group("state"), match.group("reason").strip())
    return result


def parse_squeue_names(output: str) -> List[Tuple[str, Optional[str], str, str]]:
    """Parse ``squeue --format=SQUEUE_NAME_FORMAT``: ``[(job id, cluster, state, name)]``."""
    found = []
    cluster = None
    for raw in output.splitlines():
        line = raw.rstrip("\r\n").lstrip()
        match = _CLUSTER_LINE.match(line.strip())
        if match:
            cluster = match.group(1)
            continue
        match = _NAME_LINE.match(line)
        if match:
            found.append((match.group("id"), cluster, match.group("state"), match.group("name")))
    return found


# --------------------------------------------------------------------------- scontrol and sacct

#: What squeue, scontrol and scancel say about a job id the controller does not know (any more).
INVALID_JOB_ID = "Invalid job id specified"


def parse_scontrol_job(output: str) -> Optional[Dict[str, str]]:
    """Fields of ``scontrol show job ID`` (one-line or multi-line form), None if it shows no job.

    Only the fields this plugin needs are guaranteed to be parsed correctly (``JobId``,
    ``JobName``, ``JobState``, ``Reason``, ``ExitCode``); values with blanks in them (command
    lines, names) may be cut at the first blank.
    """
    fields: Dict[str, str] = {}
    for line in output.splitlines():
        for word in line.split():
            key, sep, value = word.partition("=")
            if sep and key and key not in fields:
                fields[key] = value
    if "JobId" not in fields or "JobState" not in fields:
        return None
    return fields


def parse_scontrol_jobs(output: str) -> Dict[str, Dict[str, str]]:
    """Several jobs' ``scontrol show job`` records (blank-line or one-line separated), by JobId."""
    jobs = {}
    block: List[str] = []
    for line in output.splitlines() + [""]:
        if line.strip() and not (line.lstrip().startswith("JobId=") and block):
            block.append(line)
            continue
        fields = parse_scontrol_job("\n".join(block))
        if fields is not None:
            jobs[fields["JobId"]] = fields
        block = [line] if line.strip() else []
    return jobs


#: sacct format: raw job id, state, exit code, with ``--parsable2`` (``|`` separated).
SACCT_FORMAT = "JobIDRaw,State,ExitCode"
ACCOUNTING_DISABLED = "accounting storage is disabled"


def parse_sacct(output: str) -> Dict[str, str]:
    """Parse ``sacct --noheader --parsable2 --allocations --format=SACCT_FORMAT``: ``{job id: state}``.

    Lines that are not ``id|STATE|exitcode`` (error messages, banners) are ignored.
    """
    states = {}
    for line in output.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 2 or not re.fullmatch(r"\d+(_\d+)?", parts[0]) or not re.fullmatch(r"[A-Z_]+.*", parts[1]):
            continue
        states[parts[0]] = parts[1]
    return states


# --------------------------------------------------------------------------- transient errors

#: Slurm's own messages for failures that go away when the command is run again.
TRANSIENT_PATTERNS = (
    "socket timed out",
    "unable to contact slurm controller",
    "try again",
    "temporarily unavailable",
    "temporarily unable",
    "connection refused",
    "connection reset",
    "communication connection failure",
    "zero bytes were transmitted or received",
    "slurmctld is not responding",
    "transport endpoint is not connected",
    "not responding",
    "unexpected message received",
)


def is_transient(message: str) -> bool:
    """True if a failed Slurm command's message says the failure is passing (controller busy, unreachable)."""
    text = message.lower()
    return any(pattern in text for pattern in TRANSIENT_PATTERNS)


def first_error_line(*texts: str) -> str:
    """The most telling line of a command's output: the first that says ``error``, else the first."""
    lines = [line.strip() for text in texts for line in str(text).splitlines() if line.strip()]
    for line in lines:
        if "error" in line.lower():
            return line
    return lines[0] if lines else ""
