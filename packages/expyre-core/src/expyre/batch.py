"""The batch-scheduler toolkit: core runs the commands, a scheduler plugin only translates.

A plugin for a batch scheduler (Slurm, Grid Engine, PBS, LSF, a site's wrapper) subclasses
:class:`BatchScheduler` and supplies command builders and output parsers:

* :meth:`~BatchScheduler.header` (and optionally :meth:`~BatchScheduler.environment`): the job
  script's directives;
* :meth:`~BatchScheduler.submit_command` / :meth:`~BatchScheduler.parse_submit`: the submit
  command, run in the job's directory, and the scheduler's id from what it printed;
* :meth:`~BatchScheduler.status_commands` / :meth:`~BatchScheduler.parse_status`: one query for
  many jobs (several commands, one round trip) and the states in it;
* :meth:`~BatchScheduler.control_commands`: cancel, hold and release;
* :meth:`~BatchScheduler.find_commands` / :meth:`~BatchScheduler.parse_find`: this user's jobs
  with a given job name;
* :attr:`~BatchScheduler.transient` and :attr:`~BatchScheduler.already_over`: which messages mean
  "try again" and "that job is already over"; :attr:`~BatchScheduler.submit_limit`: which refusals
  of a submission mean "the per-user job limit is reached" (:class:`SubmitLimitError`);
* optionally, job arrays: :attr:`~BatchScheduler.array_index_var` (and
  :attr:`~BatchScheduler.array_first_index`), :meth:`~BatchScheduler.array_submit_command`,
  :meth:`~BatchScheduler.array_task_ids`, and :meth:`~BatchScheduler.max_array_size_commands` /
  :meth:`~BatchScheduler.parse_max_array_size`; status, cancel, hold and release then get task
  ids (the plugin's :meth:`~BatchScheduler.status_commands` and :meth:`~BatchScheduler.parse_status`
  must answer for each task).

Core then does the rest, the same way for every scheduler:

* every command is retried with back-off (``EXPYRE_RETRY``) when it fails with a transient
  message, and a failure for good raises one error type, :class:`BatchError`, that quotes the
  scheduler's own message;
* several commands travel in one round trip, each followed by a section marker carrying its exit
  status (:func:`sections_command`, :func:`split_sections`), so cut output is recognised;
* submission is exactly-once: the submit command runs on the host under a lock in the job's
  directory, detached from the connection, and records its output and exit status in the lock
  when it ends. :meth:`~BatchScheduler.find_submitted` reads that record and, while the lock's
  process still runs, waits for it, so a submission whose outcome is unknown stays unknown until
  the remote submit command has provably ended. A transient failure is retried only after
  looking the job up by name;
* cancel, hold and release of jobs that are already over is not an error;
* a status query that fails raises, and a job its answer does not cover is ``unknown``; a job
  is never reported finished from a failed or unreadable answer;
* one encoding of expyre ids into job names the scheduler accepts (:func:`job_name`).

A plugin module exposes the hooks of one instance::

    SCHEDULER = MyScheduler()
    (expyre_schedulers, check_options, render_header, job_environment, submit, status,
     find_submitted, cancel, hold, release) = SCHEDULER.hooks()
    check_system = SCHEDULER.check_system   # optional: ``xpr check`` (check_commands, parse_check)
    array_support, submit_array = SCHEDULER.array_hooks()   # only if it declares arrays
    submit_many = SCHEDULER.submit_many   # optional: several jobs in one remote command

An array is submitted exactly-once the same way as a single job (in its first task's directory);
a restarted script finds it by the array's name and derives each task's id from the array's id.
The system's scheduler table may set ``max_array_size`` (overrides what the scheduler says) and
``arrays = false`` (submit one job per call). Jobs of one batch that do not go as an array are
submitted in one remote command (:meth:`BatchScheduler.submit_jobs`, the ``submit_many`` hook):
each job's own exactly-once submission, in turn, stopping at the first that is not taken.
"""
from __future__ import annotations

import copy
import hashlib
import re
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from . import jobfiles, shellfunctions
from .hookspecs import hookimpl
from .hooktypes import (
    CheckResult,
    CommandResult,
    ConnectionLostError,
    JobSpec,
    RemoteCommandError,
    RemoteJob,
    Shell,
    quote,
    run_unchecked,
)
from .retry import retry_settings

__all__ = ["BatchScheduler", "BatchError", "SubmitLimitError", "OutputError", "Sections", "job_name", "digest",
           "one_id", "sections_command", "split_sections",
           "one_by_one_command", "split_one_by_one", "run_retrying", "ask_host", "SECTION_MARKER"]


class BatchError(RemoteCommandError):
    """A scheduler command failed for good (after retries, if its failure looked transient), or
    printed what the plugin cannot read. The message quotes what the scheduler said."""


class SubmitLimitError(BatchError):
    """The scheduler refused a submission because the per-user job limit is reached (Slurm's
    ``MaxSubmitJobs``, Grid Engine's ``max_u_jobs``, PBS's ``max_queued``): nothing was queued.

    Not retried as transient: the limit frees up only as the user's jobs end.
    :func:`expyre.many.start_many` and :class:`expyre.Executor` catch it and keep what does not
    fit queued locally; a single :meth:`expyre.ExPyRe.start` raises it. The message quotes the
    scheduler's own words.
    """

    def __init__(self, host: Optional[str], result: CommandResult, what: str = ""):
        super().__init__(host, result, what)
        said = (result.stderr.strip() or result.stdout.strip() or "(nothing)")
        where = host if host else "this machine"
        RuntimeError.__init__(self, f"{what + ': ' if what else ''}the per-user job limit on {where} is reached; "
                                    f"the scheduler said:\n{said}\nNothing was queued. Start the job again later, "
                                    "or run many calls with expyre.Executor (or expyre.start_many), which keeps "
                                    "what does not fit queued locally and submits it as slots free up.")


class OutputError(ValueError):
    """A command's output is cut short, garbled or not of the expected form; nothing is concluded
    from it (a parser raises this, core turns it into :class:`BatchError`)."""


# --------------------------------------------------------------------------- job names

def digest(text: str, length: int = 10) -> str:
    """A short, stable hexadecimal digest of ``text`` (SHA-256)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:length]


def job_name(expyre_id: str, safe: str = "A-Za-z0-9_.=+-", prefix: str = "", max_length: int = 200) -> str:
    """The scheduler job name of an expyre job: one encoding for every scheduler.

    Parameters
    ----------
    expyre_id: str
        the job's id, ``<name>_<hash>_<unique>``
    safe: str
        the characters (a regular-expression character class body) the scheduler takes in a name
    prefix: str
        put before the id (Grid Engine and PBS want a letter first)
    max_length: int
        longest name the scheduler takes

    Returns
    -------
    str
        ``prefix + expyre_id`` when every character is safe and it fits; otherwise the prefix, the
        id with each unsafe character replaced by ``_`` (shortened to fit), ``_`` and a digest
        of the whole id, so that ids differing only in unsafe characters get different names
    """
    unsafe = re.compile(f"[^{safe}]")
    name = prefix + expyre_id
    if expyre_id and not unsafe.search(expyre_id) and len(name) <= max_length:
        return name
    tail = "_" + digest(expyre_id)
    return (prefix + unsafe.sub("_", expyre_id))[:max_length - len(tail)] + tail


def one_id(found: Sequence[Any], program: str, output: str, key: Callable[[Any], str] = str) -> Any:
    """The one job ``program`` reported among ``found`` (duplicates by ``key`` count once);
    :class:`OutputError` quoting ``output`` when there is none or more than one."""
    ids = list(dict.fromkeys(map(key, found)))
    if len(ids) == 1:
        return found[0]
    what = f"several job ids ({', '.join(ids)})" if ids else "no job id"
    raise OutputError(f"{program} printed {what}; its output was:\n{output.strip() or '(nothing)'}")


# --------------------------------------------------------------------------- sections

#: Line that ends each section of a combined command's output: ``@xpr-end@ NAME STATUS``.
SECTION_MARKER = "@xpr-end@"
_SECTION_END = re.compile(rf"^{re.escape(SECTION_MARKER)} (\S+) (-?\d+)$", re.MULTILINE)

#: ``{name: (exit status, text)}``; a section whose marker did not arrive is absent.
Sections = Dict[str, Tuple[int, str]]


def section(command: str, name: str) -> str:
    """``command`` followed by its end marker (a blank line first, so that output without a final
    newline does not swallow the marker; :func:`split_sections` removes it again)."""
    return f"{command}\n_xpr_s=$?; echo; echo {quote(f'{SECTION_MARKER} {name}')} $_xpr_s"


def sections_command(commands: Mapping[str, str], preamble: str = "") -> str:
    """One shell command that runs ``{name: command}`` in turn, each as a section; exit status 0
    unless ``preamble`` (run first, e.g. to set up the scheduler's environment) exits.

    A name starting with ``+`` marks shell code that writes sections of its own (any number,
    each ended with ``_xpr_end NAME STATUS``); it gets no marker and is not required to answer.
    """
    own = any(n.startswith("+") for n in commands)
    parts = [preamble] * bool(preamble) + [f"_xpr_end() {{ echo; echo {SECTION_MARKER} \"$1\" \"$2\"; }}"] * own
    parts += [c if n.startswith("+") else section(c, n) for n, c in commands.items()]
    return "\n".join(parts + ["exit 0"])


def split_sections(output: str) -> Sections:
    """The sections of a combined command's output (see :func:`sections_command`); the newline
    written before each marker is removed again."""
    sections: Sections = {}
    start = 0
    for match in _SECTION_END.finditer(output):
        text = output[start:match.start()]
        text = text[:-1] if text.endswith("\n") else text
        text = text[1:] if start and text.startswith("\n") else text
        sections[match.group(1)] = (int(match.group(2)), text)
        start = match.end()
    return sections


def one_by_one_command(commands: Sequence[str], preamble: str = "") -> str:
    """One shell command that runs ``commands`` in turn, each in a subshell of its own, and
    stops after the first that exits non-zero (so that nothing runs behind a refusal).

    Command ``i``'s output and exit status are section ``s<i>``; the error output of the command
    that failed is section ``e<i>`` (kept apart in a temporary file, so that a parser reads only
    the output, and read only on failure: no extra process per command that works); the
    commands after a failed one print no sections. :func:`split_one_by_one` reads the answer.
    """
    lines = [preamble] * bool(preamble)
    lines.append('_xpr_e=$(mktemp 2>/dev/null) || _xpr_e="${TMPDIR:-/tmp}/_xpr_e.$$"; '
                 'trap \'rm -f "$_xpr_e"\' EXIT')
    for i, command in enumerate(commands):
        lines.append(section(f"( {command}\n) 2>\"$_xpr_e\"", f"s{i}"))
        lines += ['if [ "$_xpr_s" -ne 0 ]; then', section('cat "$_xpr_e"', f"e{i}"), "exit 0", "fi"]
    return "\n".join(lines + ["exit 0"])


def split_one_by_one(output: str, count: int) -> Tuple[List[Tuple[int, str, str]], bool]:
    """The answer of :func:`one_by_one_command` for ``count`` commands: ``(exit status, output,
    error output)`` of each command that ran, in order (the error output only for a command
    that failed), and whether the answer is complete (every command answered, or the last one
    that answered failed, so the rest did not run). An incomplete answer was cut short: whether
    the first command without an answer ran is unknown."""
    sections = split_sections(output)
    ran = []
    for i in range(count):
        if f"s{i}" not in sections:
            return ran, False
        rc, text = sections[f"s{i}"]
        if rc != 0:
            if f"e{i}" not in sections:
                return ran, False
            ran.append((rc, text, sections[f"e{i}"][1]))
            break
        ran.append((rc, text, ""))
    return ran, True


# --------------------------------------------------------------------------- running

def run_retrying(shell: Shell, command: str, *, what: str, timeout: Optional[float],
                 transient: Callable[[str], bool], accept: Callable[[CommandResult], bool] = lambda r: False,
                 complete: Callable[[CommandResult], Optional[str]] = lambda r: None) -> CommandResult:
    """Run a command that is safe to repeat, retrying transient failures with back-off.

    Parameters
    ----------
    shell: expyre.Shell
    command: str
        the command (every word in it already quoted)
    what: str
        what the command is for, for the error message
    timeout: float or None
        seconds one try may take; a try that takes longer counts as a transient failure
    transient: callable
        ``transient(message)`` True for a message that means "try again"
    accept: callable, optional
        ``accept(result)`` True for a non-zero exit status that is an answer, not a failure
    complete: callable, optional
        ``complete(result)`` a problem with an exit-status-0 answer (such as a section that failed
        or was cut short), or None; a problem whose message is transient is retried too

    Raises
    ------
    BatchError
        the command failed for good, or still failed after the tries ``EXPYRE_RETRY`` allows
    """
    tries, wait = retry_settings()
    for attempt in range(1, tries + 1):
        result = run_unchecked(shell, command, timeout)
        problem = None
        if result.returncode == 0 or accept(result):
            problem = complete(result)
            if problem is None:
                return result
        again = result.returncode == -1 or transient(f"{result.stderr}\n{result.stdout}\n{problem or ''}")
        if attempt < tries and again:
            time.sleep(wait)
            wait *= 2
            continue
        after = f" (after {attempt} tries)" if attempt > 1 else ""
        raise BatchError(shell.host, result, f"{what}{': ' + problem if problem else ''}{after}")
    raise AssertionError("unreachable")  # pragma: no cover


def ask_host(shell: Shell, command: str, parse: Callable[[str, int], Any], what: str,
             timeout: Optional[float] = 120.0) -> Any:
    """What ``parse(output, exit status)`` makes of ``command``'s output (stdout and stderr
    together) on the host: for a fact about the host's scheduler that a plugin learns once per
    system (PBS's dialect), unless the system's config gives it.

    Raises
    ------
    BatchError
        the command could not be run, or ``parse`` raised ValueError (its message is quoted);
        ``what`` (``"the PBS dialect"``) says what was being found
    """
    result = run_unchecked(shell, command, timeout)
    if result.returncode == -1:
        raise BatchError(shell.host, result, f"running {command!r} to find {what}")
    try:
        return parse(result.stdout + result.stderr, result.returncode)
    except ValueError as exc:
        raise BatchError(shell.host, CommandResult(command, 127, "", str(exc)), f"finding {what}") from None


# --------------------------------------------------------------------------- exactly-once submission

#: The one file of a submission attempt in the job's directory, created only if it does not
#: exist (the lock): while the submit command runs it holds the pid of the shell that runs it and
#: its host's name; when the command has ended it holds ``done <exit status>`` and, on the lines
#: after, the command's output (the record). One file: the lock must be created anyway, and on a
#: cluster's shared file system (Lustre, GPFS, NFS) each file created is a round trip to its
#: metadata server, while the record overwrites the lock in place.
SUBMIT_LOCK = jobfiles.plugin_file("batch", "submit.lock")
#: Record files of earlier versions (output, error output, exit status, written last), which
#: :func:`record_probe` still reads and a retry still clears; earlier versions also made the lock
#: a directory holding the pid in a file ``pid``.
SUBMIT_OUT = jobfiles.plugin_file("batch", "submit.out")
SUBMIT_ERR = jobfiles.plugin_file("batch", "submit.err")
SUBMIT_RC = jobfiles.plugin_file("batch", "submit.rc")
#: Exit status of the submit wrapper when an earlier attempt holds the lock.
LOCK_TAKEN = 75
#: Exit status of the record section while the submit command is still running.
STILL_SUBMITTING = 76


def submit_wrapper(remote_dir: str, command: str, again: bool = False) -> str:
    """The remote side of an exactly-once submission of ``command`` in ``remote_dir``.

    The lock is :data:`SUBMIT_LOCK`, created only if it does not exist (``set -C``, atomic),
    holding the pid (``$BASHPID``: the wrapper runs in a subshell, whose ``$$`` names its parent)
    and host of the shell that runs the submit command. That shell ignores hang-ups and broken
    pipes, and the submit command writes only to it (its output) and to the lock (its error
    output, after the pid's line), never to the connection, so it ends normally and leaves its
    record in the lock even when the connection (or the process that drives it) dies; the record
    is written before anything is sent back. ``again`` first clears the record of an earlier
    attempt that has ended (a retry after a transient failure). Apart from the submit command the
    wrapper starts no process and creates no file but the lock (where ``/proc`` gives the host's
    name). What comes before and after the submit command are shell functions
    (:mod:`expyre.shellfunctions`), which a long-lived session on the host defines once; the
    command itself stays in the text, so that functions it defines are found there too.
    """
    return (f"{_SUBMIT_FUNCTIONS}_xpr_lock_submit {quote(remote_dir)}{' again' * again}\n"
            f"_xpr_o=$( exec < /dev/null 2>> {SUBMIT_LOCK}\n{command}\n); _xpr_end_submit $?")


#: Prints the submit command's output (kept in ``_xpr_o``, without its final newlines), if any.
_PRINT_OUTPUT = "if [ -n \"$_xpr_o\" ]; then printf '%s\\n' \"$_xpr_o\"; fi"
#: Shell code for each line of :func:`_after_first_line`: print it, or add it to ``_xpr_e``.
_PRINT_LINE = "printf '%s\\n' \"$_xpr_l\""
_APPEND_LINE = "_xpr_e+=$_xpr_l$'\\n'"


def _after_first_line(path: str, body: str) -> str:
    """Shell code running ``body`` for each line of the file ``path`` after its first (the
    lock's pid line or ``done`` line), each in ``_xpr_l``, with builtins only (no process)."""
    return (f"{{ read -r _xpr_l; while IFS= read -r _xpr_l || [ -n \"$_xpr_l\" ]; do {body}; done; }} "
            f"< {path}")


#: Sets ``_xpr_host`` to the host's name as ``uname -n`` prints it (read from ``/proc`` on Linux,
#: without a process).
_HOST_NAME = "{ read -r _xpr_host < /proc/sys/kernel/hostname; } 2>/dev/null || _xpr_host=$(uname -n)"


#: Before the submit command: ``_xpr_lock_submit DIR [again]`` goes to DIR, clears an ended
#: earlier attempt's record (``again``) and takes the lock (exit status :data:`LOCK_TAKEN` if
#: another attempt holds it). After it: ``_xpr_end_submit STATUS`` writes the record over the
#: lock, then prints the output and error output and exits with STATUS. See :func:`submit_wrapper`.
_SUBMIT_FUNCTIONS = shellfunctions.define("_xpr_lock_submit", (
    'cd -- "$1" || exit 1\n'
    f'if [ "${{2:-}}" = again ]; then {{ read -r _xpr_w _xpr_r < {SUBMIT_LOCK}; }} 2>/dev/null || _xpr_w=\n'
    f'  if [ "$_xpr_w" = done ] || [ -s {SUBMIT_RC} ]; then\n'
    f"    rm -rf {SUBMIT_LOCK} {SUBMIT_RC} {SUBMIT_OUT} {SUBMIT_ERR}; fi; fi\n"
    f"{_HOST_NAME}; set -C\n"
    f'{{ echo "${{BASHPID:-$$}} $_xpr_host" > {SUBMIT_LOCK}; }} 2>/dev/null || '
    f"{{ echo 'expyre: an earlier submission holds the lock' >&2; exit {LOCK_TAKEN}; }}\n"
    "set +C; trap '' HUP INT TERM PIPE")) + shellfunctions.define("_xpr_end_submit", (
    "_xpr_rc=$1 _xpr_e=\n"
    f"{_after_first_line(SUBMIT_LOCK, _APPEND_LINE)}\n"
    f"{{ printf 'done %d\\n' \"$_xpr_rc\"; {_PRINT_OUTPUT}; }} > {SUBMIT_LOCK}\n"
    f"{_PRINT_OUTPUT}; printf '%s' \"$_xpr_e\" >&2; exit $_xpr_rc"))


def record_probe(remote_dir: str) -> str:
    """Shell code printing the submit record of the job in ``remote_dir``: the submit command's
    output with its exit status; :data:`STILL_SUBMITTING` while its process still runs (or runs on
    another login node, whose processes cannot be seen from here, or has taken the lock in the
    last two minutes and not written its pid yet); 1 when there was no attempt or it died.
    Records of earlier versions (:data:`SUBMIT_RC`) are read too."""
    d, lock = quote(remote_dir.rstrip("/") or "/"), SUBMIT_LOCK
    return (f"_xpr_p=; _xpr_h=; if [ -s {d}/{SUBMIT_RC} ]; then cat {d}/{SUBMIT_OUT}; "
            f"read -r _xpr_r < {d}/{SUBMIT_RC}; (exit ${{_xpr_r:-1}})\n"
            f"elif [ -e {d}/{lock} ]; then {{ if [ -d {d}/{lock} ]; then read -r _xpr_p _xpr_h < {d}/{lock}/pid; "
            f"else read -r _xpr_p _xpr_h < {d}/{lock}; fi; }} 2>/dev/null\n"
            f"  if [ \"$_xpr_p\" = done ]; then {_after_first_line(f'{d}/{lock}', _PRINT_LINE)}; "
            f"(exit ${{_xpr_h:-1}})\n"
            f"  elif {{ [ -z \"$_xpr_p\" ] && [ -n \"$(find {d}/{lock} -maxdepth 0 -mmin -2)\" ]; }} || "
            f"{{ [ -n \"$_xpr_p\" ] && {{ {_HOST_NAME}; [ \"$_xpr_h\" != \"$_xpr_host\" ] || "
            "kill -0 \"$_xpr_p\" 2>/dev/null; }; }\n"
            f"  then echo \"submitting $_xpr_p\"; (exit {STILL_SUBMITTING}); else (exit 1); fi\n"
            "else (exit 1); fi")


# --------------------------------------------------------------------------- array settings

def _positive_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError("must be a positive whole number")
    return value


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


#: Settings of every scheduler with arrays (the system's table named after the scheduler):
#: ``max_array_size`` (most tasks in one array; overrides what the scheduler says) and
#: ``arrays`` (false: submit one job per call).
ARRAY_SETTINGS: Mapping[str, Callable[[Any], Any]] = {"max_array_size": _positive_int, "arrays": _boolean}


# --------------------------------------------------------------------------- the base class

class BatchScheduler:
    """A batch scheduler described by command builders and parsers; core runs them.

    Subclasses set :attr:`name` and implement the methods marked "plugin supplies". Every word a
    builder puts into a command must be quoted (:func:`expyre.quote`).
    """

    #: the scheduler name a system's config selects (``"scheduler": NAME``)
    name: str = ""
    #: lower-case fragments of messages that mean the command may work when tried again
    transient: Sequence[str] = ()
    #: lower-case fragments of a refused submission's message that mean the per-user job limit is
    #: reached (:class:`SubmitLimitError`; not retried, the job waits locally for a free slot)
    submit_limit: Sequence[str] = ()
    #: regular expression matching what cancel/hold/release print for a job that is already over
    already_over: str = r"(?!)"
    #: regular expression matching the lines of their output that complain (others are ignored)
    complaint: str = r"\S"
    #: a non-zero exit status without any complaint means the jobs are already over
    already_over_silently: bool = False
    #: shell code run before every command (e.g. to set up the scheduler's environment)
    preamble: str = ""
    #: the characters the scheduler takes in a job name, a prefix and the longest name
    name_safe: str = "A-Za-z0-9_.=+-"
    name_prefix: str = ""
    name_max: int = 200
    #: seconds a status query, a submission, and cancel/hold/release may take
    status_timeout: float = 120.0
    submit_timeout: float = 300.0
    control_timeout: float = 120.0
    #: seconds between looks at a submission that is still running
    submit_poll: float = 1.0
    #: the submit program's name, for messages ("sbatch refused job ...")
    submit_program: str = "the submit command"

    # ------------------------------------------------------------------ plugin supplies

    #: ``render_header(job) -> lines`` (as a ``staticmethod``), or override :meth:`header`
    render_header_lines: Optional[Callable[[JobSpec], List[str]]] = None
    #: shell lines that set ``EXPYRE_NUM_*`` from the scheduler's environment
    environment_lines: Sequence[str] = ()

    def header(self, job: JobSpec) -> List[str]:
        """The job script's header lines (plugin supplies :attr:`render_header_lines`, or this)."""
        if self.render_header_lines is None:
            raise NotImplementedError(f"{type(self).__name__} renders no header")
        return self.render_header_lines(job)

    def environment(self, job: JobSpec) -> List[str]:
        """Shell lines that set ``EXPYRE_NUM_*`` from the scheduler's environment (optional)."""
        return list(self.environment_lines)

    def submit_command(self, job: JobSpec, script: str) -> str:
        """The command that submits ``script``, run in the job's directory: by default
        :attr:`submit_program` with the script's name. Its output is read until it is closed:
        a process it leaves running must not hold its standard output open."""
        return f"{self.submit_program} {quote(script)}"

    def parse_submit(self, stdout: str) -> str:
        """The remote id from the submit command's output; :class:`OutputError` if there is none
        (plugin supplies)."""
        raise NotImplementedError

    def status_commands(self, jobs: Sequence[RemoteJob]) -> Dict[str, str]:
        """``{section: command}`` that together answer for all ``jobs`` (plugin supplies)."""
        raise NotImplementedError

    def parse_status(self, sections: Sections, jobs: Sequence[RemoteJob], stderr: str) -> Dict[str, str]:
        """``{remote_id: state}`` from the sections; raise :class:`OutputError` for output that
        cannot be read. Jobs left out are ``unknown`` (plugin supplies)."""
        raise NotImplementedError

    def control_commands(self, action: str, jobs: Sequence[RemoteJob]) -> List[str]:
        """Commands that ``action`` (``cancel``, ``hold``, ``release``) ``jobs`` (plugin supplies)."""
        raise NotImplementedError

    def find_commands(self, job: JobSpec, name: str) -> Dict[str, str]:
        """``{section: command}`` listing this user's jobs, at least those named ``name`` (plugin
        supplies)."""
        raise NotImplementedError

    def parse_find(self, sections: Sections, name: str) -> List[str]:
        """Remote ids of the jobs named ``name``; raise :class:`OutputError` if the listing failed
        or cannot be read (an empty answer would make core submit again) (plugin supplies)."""
        raise NotImplementedError

    def answered(self, section: str, returncode: int, text: str) -> bool:
        """True if a section's exit status and output (with the command's stderr) are an answer."""
        return returncode == 0

    # ------------------------------------------------------------------ plugin supplies, for arrays

    #: the variable holding a task's index inside an array task (empty: this scheduler has no arrays);
    #: or a tuple of several, of which the first set and not empty counts
    array_index_var: Union[str, Tuple[str, ...]] = ""
    #: the index of an array's first task
    array_first_index: int = 0

    def array_submit_command(self, job: JobSpec, script: str, count: int, max_parallel: Optional[int]) -> str:
        """The command that submits ``script`` as an array of ``count`` tasks, indexed from
        :attr:`array_first_index`, at most ``max_parallel`` running at once (plugin supplies)."""
        raise NotImplementedError

    def parse_array_submit(self, stdout: str) -> str:
        """The array's id from what the array submit command printed; by default
        :meth:`parse_submit`'s answer."""
        return self.parse_submit(stdout)

    def array_task_ids(self, array_id: str, count: int) -> List[str]:
        """The remote id of each task of array ``array_id``, in task order (plugin supplies)."""
        raise NotImplementedError

    def max_array_size_commands(self) -> Dict[str, str]:
        """``{section: command}`` whose output says the most tasks one array may have; by default
        none (no limit known)."""
        return {}

    def parse_max_array_size(self, sections: Sections) -> Optional[int]:
        """The most tasks one array may have, from :meth:`max_array_size_commands`'s output, or
        None when it does not say."""
        return None

    # ------------------------------------------------------------------ what core runs

    def is_transient(self, message: str) -> bool:
        """True if ``message`` says the failure is passing (see :attr:`transient`)."""
        text = message.lower()
        return any(fragment in text for fragment in self.transient)

    def is_submit_limit(self, message: str) -> bool:
        """True if a refused submission's ``message`` says the per-user job limit is reached
        (see :attr:`submit_limit`)."""
        text = message.lower()
        return any(fragment in text for fragment in self.submit_limit)

    def job_name(self, expyre_id: str) -> str:
        """The job name of an expyre job (:func:`job_name` with this scheduler's rules)."""
        return job_name(expyre_id, self.name_safe, self.name_prefix, self.name_max)

    def query(self, shell: Shell, commands: Mapping[str, str], what: str, timeout: Optional[float] = None) -> \
            Tuple[Sections, CommandResult]:
        """Run ``commands`` in one round trip (retrying transient failures); every section must
        arrive and be :meth:`answered`. Raises :class:`BatchError`."""
        def complete(result: CommandResult) -> Optional[str]:
            sections = split_sections(result.stdout)
            for name in (n for n in commands if not n.startswith("+")):
                if name not in sections:
                    return f"{name}: no complete answer (output cut short)"
                rc, text = sections[name]
                if name != "record" and not self.answered(name, rc, f"{text}\n{result.stderr}"):
                    return f"{name} exited with status {rc}: {_first_line(text, result.stderr)}"
            return None

        result = run_retrying(shell, sections_command(commands, self.preamble), what=what,
                              timeout=timeout or self.status_timeout, transient=self.is_transient,
                              accept=lambda r: r.returncode > 0 and complete(r) is None, complete=complete)
        return split_sections(result.stdout), result

    def submit_job(self, job: JobSpec, script: str, shell: Shell, command: Optional[str] = None,
                   parse: Optional[Callable[[str], str]] = None, first: Optional[CommandResult] = None) -> str:
        """Submit exactly once (see the module's description); returns the remote id.

        ``command`` and ``parse`` replace :meth:`submit_command` and :meth:`parse_submit` (an
        array's submission uses them). ``first``: the answer of a first attempt made elsewhere
        (in :meth:`submit_jobs`' command), which failed transiently: go on from there."""
        command = command if command is not None else self.submit_command(job, script)
        parse = parse or self.parse_submit
        tries, wait = retry_settings()
        for attempt in range(1, tries + 1):
            if attempt == 1 and first is not None:
                result = first
            else:
                result = run_unchecked(shell, self._with_preamble(submit_wrapper(job.remote_dir, command, attempt > 1)),
                                       self.submit_timeout)
            remote_id = self._submitted(job, result, shell, parse, attempt, attempt < tries)
            if remote_id is not None:
                return remote_id
            time.sleep(wait)
            wait *= 2
            found = self._by_name(job, shell, f"submission failed: {_first_line(result.stderr, result.stdout)}")
            if found:
                return found[0]
        raise AssertionError("unreachable")  # pragma: no cover

    def _submitted(self, job: JobSpec, result: CommandResult, shell: Shell, parse: Callable[[str], str],
                   attempt: int, may_retry: bool) -> Optional[str]:
        """What one exactly-once submission's answer says: the remote id; None for a transient
        failure that may be tried again (``may_retry``); else it raises (:class:`BatchError`,
        :class:`SubmitLimitError`, or :class:`expyre.ConnectionLostError` when whether the
        scheduler took the job is unknown)."""
        if result.returncode in (-1, LOCK_TAKEN):
            raise ConnectionLostError(shell.host, f"{self.name}: the submission of job {job.id} did not "
                                                  f"answer ({_first_line(result.stderr)}); whether it "
                                                  "took the job is unknown")
        if result.returncode == 0:
            try:
                return parse(result.stdout)
            except OutputError as exc:
                found = self._by_name(job, shell, f"the submit command's output could not be read ({exc})")
                if found:
                    return found[0]
                raise BatchError(shell.host, result, f"job {job.id}: {exc}") from None
        if self.is_submit_limit(f"{result.stderr}\n{result.stdout}"):
            raise SubmitLimitError(shell.host, result, f"{self.submit_program} refused job {job.id}")
        if may_retry and self.is_transient(f"{result.stderr}\n{result.stdout}"):
            return None
        after = f" (after {attempt} tries)" if attempt > 1 else ""
        refused = f"{self.submit_program} refused job {job.id} (in {job.remote_dir}){after}"
        raise BatchError(shell.host, result, refused)

    def submit_jobs(self, jobs: Sequence[JobSpec], script: str, shell: Shell) -> List[Union[str, BaseException]]:
        """Submit ``jobs`` (each on its own) in one remote command: the answer of the
        ``submit_many`` hook (see :func:`expyre.hookspecs.submit_many`).

        Each job is submitted exactly-once as :meth:`submit_job` does it (its own
        :func:`submit_wrapper`, under its own lock in its own directory), in turn, and the
        command stops at the first job that is not taken. A job whose answer says "try again"
        goes on alone through :meth:`submit_job`'s retries; the jobs after it then go in one
        more command. A lost connection or a timeout before any job answered raises
        :class:`expyre.ConnectionLostError`; after that, the jobs without an answer get one each.
        """
        results: List[Union[str, BaseException]] = []
        pending = list(jobs)
        tries, _wait = retry_settings()
        while pending:
            command = one_by_one_command([submit_wrapper(job.remote_dir, self.submit_command(job, script))
                                          for job in pending], self.preamble)
            try:
                result = run_unchecked(shell, command, self.submit_timeout)
            except ConnectionLostError as exc:
                if not results:
                    raise
                return results + [exc] * len(pending)
            ran, complete = split_one_by_one(result.stdout, len(pending))
            cut = result.returncode == -1 or not complete
            lost: Optional[ConnectionLostError] = None
            if cut:
                first_unknown = pending[min(len(ran), len(pending) - 1)].id
                said = _first_line(result.stderr) or "output cut short"
                lost = ConnectionLostError(shell.host, f"{self.name}: the submission of jobs from {first_unknown} on "
                                                       f"did not answer ({said}); whether it took them is unknown")
                if not results and not ran:
                    raise lost
                ran = [r for r in ran if r[0] == 0]
            for n, (job, (rc, out, err)) in enumerate(zip(pending, ran)):
                answer = CommandResult(command, rc, out, err)
                try:
                    remote_id = self._submitted(job, answer, shell, self.parse_submit, 1, tries > 1)
                    if remote_id is None:  # transient: this job on its own, with retries
                        remote_id = self.submit_job(job, script, shell, first=answer)
                except Exception as exc:  # not taken (or unknown); the later jobs were not tried, unless cut
                    return results + [exc] + [lost] * (len(pending) - n - 1) * cut
                results.append(remote_id)
            pending = pending[len(ran):]
            if pending and cut:
                return results + [lost] * len(pending)
        return results

    def array_info(self, shell: Shell) -> Optional[Dict[str, Any]]:
        """The ``array_support`` hook's answer: None without :attr:`array_index_var` or when the
        system's table says ``arrays = false``; the maximum size from the table's
        ``max_array_size``, else from the scheduler (asked once per system)."""
        if not self.array_index_var or not self.options.get("arrays", True):
            return None
        max_size = self.options.get("max_array_size")
        if max_size is None and self.max_array_size_commands():
            sections, result = self.query(shell, self.max_array_size_commands(), f"{self.name} maximum array size")
            try:
                max_size = self.parse_max_array_size(sections)
            except OutputError as exc:
                raise BatchError(shell.host, result, f"{self.name} maximum array size: {exc}") from None
        return {"index_var": self.array_index_var, "first_index": self.array_first_index, "max_size": max_size}

    def submit_array_job(self, job: JobSpec, script: str, shell: Shell, max_parallel: Optional[int]) -> List[str]:
        """Submit an array exactly once (as :meth:`submit_job`); the remote id of each task."""
        count = int(job.array_size or 0)
        if count < 1:
            raise ValueError(f"array {job.id}: array_size must be at least 1, not {job.array_size!r}")
        if self.arrays_found:
            self.arrays_found.pop((job.id, job.remote_dir), None)  # a new submission in the same directory
        command = self.array_submit_command(job, script, count, max_parallel)
        array_id = self.submit_job(job, script, shell, command=command, parse=self.parse_array_submit)
        return self.array_task_ids(array_id, count)

    def _by_name(self, job: JobSpec, shell: Shell, failure: str) -> List[str]:
        try:
            return self.find_jobs(job, shell, wait=False)
        except BatchError as exc:
            raise ConnectionLostError(shell.host, f"{failure}; whether {self.name} took job {job.id} is unknown, "
                                                  f"and it could not be asked: {exc}") from exc

    def find_jobs(self, job: JobSpec, shell: Shell, wait: bool = True) -> List[str]:
        """Remote ids for ``job``: the id the submit record holds, and jobs listed under its name
        (for an array: the array's ids; with ``job.array_index``, that task's ids).

        While an earlier submit command still runs, wait for it (up to :attr:`submit_timeout`);
        if it still runs then, the outcome is unknown: :class:`expyre.ConnectionLostError`.
        """
        if self.arrays_found is None:
            self.arrays_found = {}
        known = self.arrays_found.get((job.id, job.remote_dir)) if job.array_index is not None else None
        if known is not None:  # another task of an array looked up before
            return [self.array_task_ids(array_id, job.array_index + 1)[job.array_index] for array_id in known]
        name = self.job_name(job.id)
        commands = {"record": record_probe(job.remote_dir), **self.find_commands(job, name)}
        deadline = time.monotonic() + self.submit_timeout
        while True:
            sections, result = self.query(shell, commands, f"looking for {self.name} jobs named {name}")
            record_rc, record_text = sections.get("record", (1, ""))
            if record_rc != STILL_SUBMITTING or not wait:
                break
            if time.monotonic() > deadline:
                raise ConnectionLostError(shell.host, f"{self.name}: the submit command for job {job.id} is still "
                                                      f"running after {self.submit_timeout:.0f} s; its outcome is "
                                                      "unknown")
            time.sleep(self.submit_poll)
        is_array = job.array_size is not None or job.array_index is not None
        found = []
        if record_rc == 0:
            try:
                found.append((self.parse_array_submit if is_array else self.parse_submit)(record_text))
            except OutputError:
                pass
        try:
            found += self.parse_find(sections, name)
        except OutputError as exc:
            raise BatchError(shell.host, result, f"looking for {self.name} jobs named {name}: {exc}") from None
        found = list(dict.fromkeys(found))
        if job.array_index is not None and record_rc != STILL_SUBMITTING:
            # no submit command of the array is running, so what was found is final (until the
            # next submission in its directory): the array's other tasks need no lookup
            self.arrays_found[(job.id, job.remote_dir)] = found
        if job.array_index is not None:  # one task of the array(s) found
            return [self.array_task_ids(array_id, job.array_index + 1)[job.array_index] for array_id in found]
        return found

    def query_status(self, jobs: Sequence[RemoteJob], shell: Shell) -> Dict[str, str]:
        """States of ``jobs`` from one round trip; jobs the answer does not cover are ``unknown``."""
        if not jobs:
            return {}
        sections, result = self.query(shell, self.status_commands(jobs), f"{self.name} status query")
        try:
            states = self.parse_status(sections, jobs, result.stderr)
        except OutputError as exc:
            raise BatchError(shell.host, result, f"{self.name} status query: {exc}") from None
        unlisted = [job for job in jobs if job.remote_id not in states]
        if unlisted:
            states.update(self.resolve_unlisted(shell, unlisted))
        states = {job.remote_id: states.get(job.remote_id, "unknown") for job in jobs}
        self.after_status(shell, sections, jobs, states)
        return states

    def after_status(self, shell: Shell, sections: Sections, jobs: Sequence[RemoteJob], states: Dict[str, str]) -> None:
        """Called with every status answer (for example to note why a job is stuck); by default nothing."""

    def resolve_unlisted(self, shell: Shell, jobs: Sequence[RemoteJob]) -> Dict[str, str]:
        """States of jobs the status answer left out, from a second look (for example accounting);
        by default none: they stay ``unknown``."""
        return {}

    def control(self, action: str, jobs: Sequence[RemoteJob], shell: Shell) -> bool:
        """Run ``action`` on ``jobs``; jobs already over (:attr:`already_over`) are not an error."""
        if not jobs:
            return True
        commands = self.control_commands(action, jobs)
        lines = commands if len(commands) == 1 else ["_xpr_rc=0", *(f"{c} || _xpr_rc=$?" for c in commands),
                                                      "exit $_xpr_rc"]
        over, complaint = re.compile(self.already_over), re.compile(self.complaint)

        def only_over(result: CommandResult) -> bool:
            said = [line for line in f"{result.stderr}\n{result.stdout}".splitlines() if complaint.search(line)]
            return result.returncode > 0 and (bool(said) or self.already_over_silently) and \
                all(over.search(line) for line in said)

        run_retrying(shell, self._with_preamble("\n".join(lines)), timeout=self.control_timeout,
                     what=f"{action} of {self.name} jobs {', '.join(job.remote_id for job in jobs)}",
                     transient=self.is_transient, accept=only_over)
        return True

    def _with_preamble(self, command: str) -> str:
        return f"{self.preamble}\n{command}" if self.preamble else command

    # ------------------------------------------------------------------ xpr check

    def check_commands(self, partitions: Mapping[str, dict]) -> Dict[str, str]:
        """Plugin supplies (optional): ``{name: command}`` whose answers show that the scheduler's
        commands are there and what its partitions are; run in one round trip by
        :meth:`check_system_with`. Default: none (the plugin offers no checks)."""
        return {}

    def parse_check(self, sections: Sections, partitions: Mapping[str, dict]) -> List[CheckResult]:
        """Plugin supplies (with :meth:`check_commands`): the check results from the sections."""
        return []

    def check_system_with(self, shell: Shell, partitions: Mapping[str, dict]) -> Optional[List[CheckResult]]:
        """Run :meth:`check_commands` in one round trip and :meth:`parse_check` the answers."""
        commands = self.check_commands(partitions)
        if not commands:
            return None
        result = run_unchecked(shell, sections_command(commands, self.preamble), self.status_timeout)
        sections = split_sections(result.stdout)
        for name in commands:
            if name not in sections:
                sections[name] = (-1, (result.stdout + result.stderr).strip()[-500:])
        return self.parse_check(sections, partitions)

    # ------------------------------------------------------------------ per system

    #: the scheduler's own settings (the system's table named after it): key -> a check that raises
    #: ValueError for a bad value
    settings: Mapping[str, Callable[[Any], Any]] = {}
    #: for a scheduler bound to a system (:meth:`bound`): the system's shell and settings table
    shell: Optional[Shell] = None
    options: Mapping[str, Any] = {}
    #: for a bound scheduler: what :meth:`find_jobs` found for arrays with no submission running,
    #: by (array id, directory)
    arrays_found: Optional[Dict[Tuple[str, str], List[str]]] = None

    def check(self, options: Mapping[str, Any]) -> List[Tuple[str, object, str]]:
        """Problems in the system's settings table for this scheduler, as ``(key, value, problem)``."""
        problems = []
        known = {**(ARRAY_SETTINGS if self.array_index_var else {}), **self.settings}
        for key, value in options.items():
            try:
                if key not in known:
                    raise ValueError(f"unknown {self.name} setting; known: {', '.join(known) or 'none'}")
                known[key](value)
            except ValueError as exc:
                problems.append((key, value, str(exc)))
        return problems

    def bound(self, shell: Shell, system: Optional[Any]) -> BatchScheduler:
        """The scheduler to run ``system``'s commands with: a copy of this one, kept in
        ``system.plugin_state`` (so what it learns about the host is learnt once per system, and
        nothing is kept at module level), with :attr:`shell` and :attr:`options` set."""
        state = getattr(system, "plugin_state", {})
        if self.name not in state:
            state[self.name] = copy.copy(self)
            state[self.name].options = dict(getattr(system, "scheduler_options", None) or {})
            state[self.name].arrays_found = None
        state[self.name].shell = shell
        return state[self.name]

    # ------------------------------------------------------------------ the hooks

    def hooks(self) -> Tuple[Callable, ...]:
        """The hook implementations, for a plugin module to expose (see the module's description)."""
        return (self.expyre_schedulers, self.check_options, self.render_header, self.job_environment, self.submit,
                self.status, self.find_submitted, self.cancel, self.hold, self.release)

    def array_hooks(self) -> Tuple[Callable, ...]:
        """The array hook implementations (``array_support``, ``submit_array``), for a plugin
        that declares arrays (:attr:`array_index_var`) to expose."""
        return (self.array_support, self.submit_array)

    @hookimpl
    def array_support(self, scheduler: str, shell: Shell, system: Optional[Any] = None) -> Optional[dict]:
        return self.bound(shell, system).array_info(shell)

    @hookimpl
    def submit_array(self, scheduler: str, job: JobSpec, script: str, shell: Shell, max_parallel: Optional[int] = None,
                     system: Optional[Any] = None) -> List[str]:
        return self.bound(shell, system).submit_array_job(job, script, shell, max_parallel)

    @hookimpl
    def check_system(self, scheduler: str, partitions: Dict[str, dict], shell: Shell,
                     system: Optional[Any] = None) -> Optional[List[CheckResult]]:
        return self.bound(shell, system).check_system_with(shell, partitions)

    @hookimpl
    def expyre_schedulers(self) -> List[str]:
        return [self.name]

    @hookimpl
    def check_options(self, name: str, options: dict) -> List[Tuple[str, object, str]]:
        return self.check(options)

    @hookimpl
    def render_header(self, scheduler: str, job: JobSpec) -> List[str]:
        return self.header(job)

    @hookimpl
    def job_environment(self, scheduler: str, job: JobSpec) -> List[str]:
        return list(self.environment(job))

    @hookimpl
    def submit(self, scheduler: str, job: JobSpec, script: str, shell: Shell, system: Optional[Any] = None) -> str:
        return self.bound(shell, system).submit_job(job, script, shell)

    @hookimpl
    def status(self, scheduler: str, jobs: Sequence[RemoteJob], shell: Shell,
               system: Optional[Any] = None) -> Dict[str, str]:
        return self.bound(shell, system).query_status(jobs, shell)

    @hookimpl
    def submit_many(self, scheduler: str, jobs: Sequence[JobSpec], script: str, shell: Shell,
                    system: Optional[Any] = None) -> List[Union[str, BaseException]]:
        return self.bound(shell, system).submit_jobs(jobs, script, shell)

    @hookimpl
    def find_submitted(self, scheduler: str, job: JobSpec, shell: Shell, system: Optional[Any] = None) -> List[str]:
        return self.bound(shell, system).find_jobs(job, shell)

    @hookimpl
    def cancel(self, scheduler: str, jobs: Sequence[RemoteJob], shell: Shell, system: Optional[Any] = None) -> bool:
        return self.bound(shell, system).control("cancel", jobs, shell)

    @hookimpl
    def hold(self, scheduler: str, jobs: Sequence[RemoteJob], shell: Shell, system: Optional[Any] = None) -> bool:
        return self.bound(shell, system).control("hold", jobs, shell)

    @hookimpl
    def release(self, scheduler: str, jobs: Sequence[RemoteJob], shell: Shell, system: Optional[Any] = None) -> bool:
        return self.bound(shell, system).control("release", jobs, shell)


def compare_partitions(partitions: Mapping[str, dict], reported: Mapping[str, Tuple[Optional[int], Optional[float]]],
                       kind: str, listing: str) -> List[CheckResult]:
    """One check per configured partition against what the scheduler reports for it.

    ``reported`` maps the scheduler's partition (queue) names to ``(cores per node, time limit
    in seconds)``, either None when unknown or unlimited. A partition the scheduler does not
    list, more configured cores per node than it has, or a longer configured ``max_time`` than
    its limit is a failed check; ``listing`` is the command that shows the truth.
    """
    from .units import time_to_HMS
    results = []
    for key, spec in partitions.items():
        actual = spec.get("partition", key)
        name = f"{kind} '{key}'" + (f" ({actual})" if actual != key else "")
        if actual not in reported:
            known = ", ".join(sorted(reported)) or "none"
            results.append(CheckResult(name, False, f"the scheduler has no {kind} '{actual}' (it has: {known})",
                                       f"correct the name in the config's partitions (see `{listing}`)"))
            continue
        cores, limit = reported[actual]
        problems, facts = [], []
        if cores is not None:
            facts.append(f"{cores} cores per node")
            if spec.get("num_cores") and int(spec["num_cores"]) > cores:
                problems.append(f"num_cores {spec['num_cores']} in the config, but the scheduler reports {cores} "
                                "cores per node")
        max_time = spec.get("max_time")
        facts.append(f"time limit {time_to_HMS(limit) if limit is not None else 'none'}")
        if limit is not None and max_time is not None and max_time > limit:
            problems.append(f"max_time {time_to_HMS(max_time)} in the config, longer than the scheduler's limit "
                            f"{time_to_HMS(limit)}")
        if problems:
            results.append(CheckResult(name, False, "; ".join(problems),
                                       f"set num_cores/max_time of this {kind} in the config to what `{listing}` "
                                       "shows"))
        else:
            results.append(CheckResult(name, True, ", ".join(facts)))
    return results


def command_check(name: str, sections: Sections, section: str, fix: str, show: bool = False) -> CheckResult:
    """A check that the command of ``section`` ran and answered (exit status 0); with ``show``
    its first line of output (a version) is the detail."""
    rc, text = sections.get(section, (-1, ""))
    first = _first_line(text)
    if rc == 0:
        return CheckResult(name, True, first[:100] if show else "")
    return CheckResult(name, False, f"exit status {rc}: {first[:200] or 'no output'}", fix)


def _first_line(*texts: str) -> str:
    """The most telling line of a command's output: the first that says ``error``, else the first."""
    lines = [line.strip() for text in texts for line in str(text).splitlines() if line.strip()]
    return next((line for line in lines if "error" in line.lower()), lines[0] if lines else "")
