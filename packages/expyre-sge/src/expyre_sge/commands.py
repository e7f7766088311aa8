"""Grid Engine command lines, and running them through the shell core hands to the hooks.

Every command starts with :data:`SGE_ENVIRONMENT`, so that it finds the site's Grid Engine the
way the account's login shell does (see the README: "Grid Engine's environment"). Every path,
id and name that goes into a command is quoted here. Nothing here opens a connection.
"""
from __future__ import annotations

from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from expyre import JobSpec, RemoteCommandError, RemoteJob, quote, run_unchecked

from .header import EXIT_FILE
from .parse import SECTION_MARKER, OutputError, split_remote_id

#: Seconds a status query (qstat, and qacct for jobs it no longer lists) may take.
STATUS_TIMEOUT = 120.0
#: Seconds qsub may take before the submission's outcome is taken as unknown.
SUBMIT_TIMEOUT = 300.0
#: Seconds qdel, qhold and qrls may take.
CONTROL_TIMEOUT = 120.0
#: At most this many jobs are looked up with qacct in one status query (each qacct reads the
#: whole accounting file); the others stay ``unknown`` until a later poll.
MAX_QACCT_PER_QUERY = 100

#: File in the job's directory that keeps qsub's output, so that a submission whose answer was
#: lost on the way back can still be found (``find_submitted``).
SUBMIT_RECORD = "_expyre_sge_qsub.out"
SUBMIT_ERRORS = "_expyre_sge_qsub.err"
#: Written into the job's directory by the cancel hook before ``qdel``: a job deleted while
#: still queued never runs, so Grid Engine's accounting never hears of it.
CANCELLED_FILE = "_expyre_sge_cancelled"

#: Shell lines (POSIX sh) that begin every command: they make Grid Engine's programs
#: available as the account's login environment describes it. When ``SGE_ROOT`` is set (by the
#: login profile, normally by sourcing ``$SGE_ROOT/$SGE_CELL/common/settings.sh``),
#: ``$SGE_ROOT/bin/$SGE_ARCH`` goes first on ``PATH`` (``SGE_ARCH`` from ``$SGE_ROOT/util/arch``
#: when the profile did not export it and no ``qstat`` is on ``PATH``), so the site's own
#: programs are used even when another batch system's ``qsub`` is on ``PATH``. Without
#: ``SGE_ROOT`` the programs must be on ``PATH`` (such as Debian's ``/usr/bin`` wrappers, which
#: find ``SGE_ROOT`` themselves). If there is no ``qstat`` at all the command fails with a
#: message that says what to set up, and exit status 127.
SGE_ENVIRONMENT = r"""if [ -n "${SGE_ROOT:-}" ]; then
    if [ -z "${SGE_ARCH:-}" ] && ! command -v qstat >/dev/null 2>&1 && [ -x "$SGE_ROOT/util/arch" ]; then
        SGE_ARCH=$("$SGE_ROOT/util/arch" 2>/dev/null) || SGE_ARCH=""
    fi
    if [ -n "${SGE_ARCH:-}" ] && [ -x "$SGE_ROOT/bin/$SGE_ARCH/qstat" ]; then
        PATH="$SGE_ROOT/bin/$SGE_ARCH:$PATH"; export PATH
    fi
fi
if ! command -v qstat >/dev/null 2>&1; then
    echo "expyre-sge: Grid Engine's commands are not available to $(id -un) on $(hostname):" \
         "qstat is not on PATH and SGE_ROOT is ${SGE_ROOT:-not set}${SGE_ROOT:+ (no bin/<arch>/qstat under it)}." \
         "The account's login profile (~/.bash_profile or ~/.profile) must set up Grid Engine," \
         "normally with: . \$SGE_ROOT/\$SGE_CELL/common/settings.sh" >&2
    exit 127
fi"""

_END = f"_xpr_end() {{ printf '\\n%s %s %s\\n' {quote(SECTION_MARKER)} \"$1\" \"$2\"; }}"
_USER = '_xpr_user=${USER:-$(id -un)}'


class SGECommandError(RemoteCommandError):
    """A Grid Engine command failed, or printed what the plugin cannot read.

    The message names the command and quotes what it printed (qsub's, qstat's own message).
    """


def with_environment(*lines: str) -> str:
    """A command: :data:`SGE_ENVIRONMENT` followed by ``lines``."""
    return "\n".join([SGE_ENVIRONMENT, *lines])


#: Run a command without raising on its exit status (a timeout becomes exit status -1).
run = run_unchecked


def job_dir_file(remote_dir: str, name: str) -> str:
    """``remote_dir/name``, quoted."""
    return quote(f"{remote_dir.rstrip('/')}/{name}")


# --------------------------------------------------------------------------- submit

def submit_command(job: JobSpec, script: str) -> str:
    """qsub ``script`` in the job's directory; qsub's output is kept in :data:`SUBMIT_RECORD`
    there and printed (standard error to standard error), and its exit status is the command's."""
    # the files are printed with the shell's own read and echo: no further program is started
    return with_environment(
        f"cd {quote(job.remote_dir)} || exit 1",
        f"qsub {quote(script)} > {SUBMIT_RECORD} 2> {SUBMIT_ERRORS}",
        "_xpr_rc=$?",
        f"while IFS= read -r _xpr_l || [ -n \"$_xpr_l\" ]; do printf '%s\\n' \"$_xpr_l\"; done < {SUBMIT_RECORD}",
        f"while IFS= read -r _xpr_l || [ -n \"$_xpr_l\" ]; do printf '%s\\n' \"$_xpr_l\" >&2; done < {SUBMIT_ERRORS}",
        "exit $_xpr_rc")


def find_command(job: JobSpec) -> str:
    """qsub's record in the job's directory and qstat's list of this user's jobs, as sections
    ``record`` and ``qstat``."""
    return with_environment(
        _END, _USER,
        f"cat {job_dir_file(job.remote_dir, SUBMIT_RECORD)} 2>/dev/null; _xpr_end record $?",
        'qstat -xml -u "$_xpr_user"; _xpr_end qstat $?')


# --------------------------------------------------------------------------- status

#: Shell function run for each job asked about: nothing if qstat listed the job; otherwise what
#: the job's directory says (section ``files:I``): ``exit N`` (the exit status the job script
#: wrote when it ended by itself: then nothing more is needed), else qacct's records (section
#: ``qacct:N``, once per job number), ``cancelled``, ``age SECONDS`` since anything in the
#: directory changed, or ``missing``.
_UNLISTED = f"""_xpr_unlisted() {{
    if [ -n "$_xpr_ids" ]; then
        case "$_xpr_ids" in *" $2 "*) return 0 ;; esac
    else
        case "$_xpr_q" in *"<JB_job_number>$2</JB_job_number>"*) return 0 ;; esac
    fi
    if [ -f "$3/{EXIT_FILE}" ] && read -r _xpr_x < "$3/{EXIT_FILE}"; then
        echo "exit $_xpr_x"; _xpr_end "files:$1" 0; return 0
    fi
    if [ "$4" = 1 ]; then
        qacct -j "$2" 2>&1; _xpr_end "qacct:$2" $?
    fi
    if [ -e "$3/{CANCELLED_FILE}" ]; then echo cancelled; fi
    if [ -d "$3" ]; then
        _xpr_m=$(stat -c %Y "$3" "$3"/* 2>/dev/null | sort -n | tail -n 1)
        if [ -n "$_xpr_m" ]; then echo "age $((_xpr_now - _xpr_m))"; fi
    else
        echo missing
    fi
    _xpr_end "files:$1" 0
}}"""


def status_command(jobs: Sequence[RemoteJob]) -> Tuple[str, List[str]]:
    """One command that asks qstat about all of this user's jobs and, for each of ``jobs`` it
    does not list, qacct and the job's directory.

    Returns
    -------
    (str, list(str))
        the command, and the job numbers whose qacct lookup it includes (at most
        :data:`MAX_QACCT_PER_QUERY`)
    """
    lines = [_END, _USER, _UNLISTED,
             '_xpr_q=$(qstat -xml -u "$_xpr_user"); _xpr_s=$?',
             'printf \'%s\\n\' "$_xpr_q"; _xpr_end qstat $_xpr_s',
             'if [ "$_xpr_s" -ne 0 ]; then exit 0; fi',
             # with a long queue, the job numbers are picked out once (matching the whole XML
             # for each job would take long); a short answer is matched directly, without a program
             '_xpr_ids=""',
             'if [ "${#_xpr_q}" -gt 100000 ]; then',
             "    _xpr_ids=\" $(printf '%s\\n' \"$_xpr_q\" | "
             "sed -n 's|^.*<JB_job_number>\\([0-9]*\\)</JB_job_number>.*$|\\1|p' | tr '\\n' ' ')\"",
             'fi',
             "_xpr_now=$(date +%s)"]
    looked_up: List[str] = []
    for index, job in enumerate(jobs):
        try:
            number, _task = split_remote_id(job.remote_id)
        except OutputError:
            continue  # not a Grid Engine id: nothing to ask (the status hook reports it unknown)
        first = number not in looked_up and len(looked_up) < MAX_QACCT_PER_QUERY
        if first:
            looked_up.append(number)
        lines.append(f"_xpr_unlisted {index} {quote(number)} {quote(job.remote_dir)} {1 if first else 0}")
    lines.append("exit 0")
    return with_environment(*lines), looked_up


def error_report_command(reports: Iterable[Tuple[str, str, str]]) -> str:
    """For jobs in Grid Engine's error state: write ``qstat -j``'s error reasons, after a
    heading, into the job's stderr file unless the job already wrote something there.

    Parameters
    ----------
    reports: iterable((str, str, str))
        ``(job number, path of the stderr file, heading)``
    """
    lines = []
    for number, path, heading in reports:
        lines.append(f"if [ ! -s {quote(path)} ] && [ -d \"$(dirname {quote(path)})\" ]; then "
                     f"{{ printf '%s\\n' {quote(heading)}; qstat -j {quote(number)} 2>&1 | grep '^error reason'; }}"
                     f" > {quote(path)}; fi")
    return with_environment(*lines, "true")


# --------------------------------------------------------------------------- cancel, hold, release

def _id_words(jobs: Sequence[RemoteJob]) -> Tuple[List[str], Dict[str, List[int]]]:
    """Whole jobs (numbers) and array tasks (number -> task ids) among ``jobs``."""
    whole: List[str] = []
    tasks: Dict[str, List[int]] = {}
    for job in jobs:
        number, task = split_remote_id(job.remote_id)
        if task is None:
            if number not in whole:
                whole.append(number)
        else:
            tasks.setdefault(number, []).append(task)
    return whole, tasks


def control_command(program: str, jobs: Sequence[RemoteJob], marker: Optional[str] = None) -> str:
    """``program`` (qdel, qhold or qrls) for all ``jobs``: one call for whole jobs, one per
    array task for tasks; with ``marker``, that file is first created in each job's directory.
    The command's exit status is the last failing call's."""
    lines = ["_xpr_rc=0"]
    if marker:
        for job in jobs:
            lines.append(f"touch {job_dir_file(job.remote_dir, marker)} 2>/dev/null")
    whole, tasks = _id_words(jobs)
    if whole:
        lines.append(f"{program} {' '.join(quote(n) for n in whole)} || _xpr_rc=$?")
    for number, task_ids in tasks.items():
        for task in task_ids:
            lines.append(f"{program} {quote(number)} -t {task} || _xpr_rc=$?")
    lines.append("exit $_xpr_rc")
    return with_environment(*lines)
