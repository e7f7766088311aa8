"""Grid Engine command lines (every word quoted here), each after :data:`SGE_ENVIRONMENT`."""
from __future__ import annotations

from typing import Dict, Iterable, List, Sequence, Tuple

from expyre import RemoteJob, jobfiles, quote, run_unchecked  # noqa: F401  (quote: part of the interface)
from expyre.batch import SUBMIT_LOCK, BatchError, sections_command

from .header import EXIT_FILE
from .parse import OutputError, split_remote_id

SGECommandError = BatchError
run = run_unchecked
#: Jobs looked up with qacct per status query (each reads the whole accounting file).
MAX_QACCT_PER_QUERY = 100
#: qsub's output, kept in the job's directory by the toolkit's exactly-once submission (in its
#: lock, once qsub has ended).
SUBMIT_RECORD = SUBMIT_LOCK
#: Written into the job's directory before ``qdel`` (accounting never hears of a queued job deleted).
CANCELLED_FILE = jobfiles.plugin_file("sge", "cancelled")

#: Begins every command: ``$SGE_ROOT/bin/$SGE_ARCH`` first on ``PATH`` when ``SGE_ROOT`` is set;
#: without ``qstat`` a message saying what to set up, and exit status 127.
SGE_ENVIRONMENT = r"""if [ -n "${SGE_ROOT:-}" ]; then
    if [ -z "${SGE_ARCH:-}" ] && ! command -v qstat >/dev/null 2>&1 && [ -x "$SGE_ROOT/util/arch" ]; then
        SGE_ARCH=$("$SGE_ROOT/util/arch" 2>/dev/null) || SGE_ARCH=""; fi
    _xpr_b=$SGE_ROOT/bin/${SGE_ARCH:-none}
    if [ -n "${SGE_ARCH:-}" ] && [ -x "$_xpr_b/qstat" ]; then PATH="$_xpr_b:$PATH"; export PATH; fi
fi
if ! command -v qstat >/dev/null 2>&1; then
    echo "expyre-sge: Grid Engine's commands are not available to $(id -un) on $(hostname):" \
         "qstat is not on PATH and SGE_ROOT is ${SGE_ROOT:-not set}${SGE_ROOT:+ (no bin/<arch>/qstat under it)}." \
         "The account's login profile (~/.bash_profile or ~/.profile) must set up Grid Engine," \
         "normally with: . \$SGE_ROOT/\$SGE_CELL/common/settings.sh" >&2
    exit 127
fi"""

#: For each job qstat did not list, section ``files:I``: ``exit N`` (the job's own exit status),
#: else qacct's records (section ``qacct:N``, once per job number), ``cancelled``, ``age S``, ``missing``.
_UNLISTED = f"""_xpr_unlisted() {{
    if [ -n "$_xpr_ids" ]; then case "$_xpr_ids" in *" $2 "*) return 0 ;; esac
    else case "$_xpr_q" in *"<JB_job_number>$2</JB_job_number>"*) return 0 ;; esac; fi
    if [ -f "$3/{EXIT_FILE}" ] && read -r _xpr_x < "$3/{EXIT_FILE}"; then
        echo "exit $_xpr_x"; _xpr_end "files:$1" 0; return 0; fi
    if [ "$4" = 1 ]; then qacct -j "$2" 2>&1; _xpr_end "qacct:$2" $?; fi
    if [ -e "$3/{CANCELLED_FILE}" ]; then echo cancelled; fi
    if [ -d "$3" ]; then _xpr_m=$(stat -c %Y "$3" "$3"/* 2>/dev/null | sort -n | tail -n 1)
        if [ -n "$_xpr_m" ]; then echo "age $((_xpr_now - _xpr_m))"; fi
    else echo missing; fi
    _xpr_end "files:$1" 0
}}"""


def with_environment(*lines: str) -> str:
    """A command: :data:`SGE_ENVIRONMENT` followed by ``lines``."""
    return "\n".join([SGE_ENVIRONMENT, *lines])


def status_commands(jobs: Sequence[RemoteJob]) -> Tuple[Dict[str, str], List[str]]:
    """The status query's sections (qstat, and for unlisted jobs their directory and qacct), and the
    job numbers looked up in qacct."""
    lines, looked_up = [], []
    for index, job in enumerate(jobs):
        try:
            number, _task = split_remote_id(job.remote_id)
        except OutputError:
            continue  # not a Grid Engine id: nothing to ask (reported unknown)
        first = number not in looked_up and len(looked_up) < MAX_QACCT_PER_QUERY
        looked_up += [number] * first
        lines.append(f"    _xpr_unlisted {index} {quote(number)} {quote(job.remote_dir)} {1 if first else 0}")
    # with a long queue the job numbers are picked out once; a short answer is matched directly
    unlisted = ['if [ "$_xpr_qs" -eq 0 ]; then', '    _xpr_ids=""; _xpr_now=$(date +%s)',
                '    if [ "${#_xpr_q}" -gt 100000 ]; then',
                "        _xpr_ids=\" $(printf '%s\\n' \"$_xpr_q\" | "
                "sed -n 's|^.*<JB_job_number>\\([0-9]*\\)</JB_job_number>.*$|\\1|p' | tr '\\n' ' ')\"",
                '    fi', *lines, 'fi']
    return {"+setup": f"_xpr_user=${{USER:-$(id -un)}}\n{_UNLISTED}",
            "qstat": '_xpr_q=$(qstat -xml -u "$_xpr_user"); _xpr_qs=$?; printf \'%s\\n\' "$_xpr_q"; (exit $_xpr_qs)',
            "+unlisted": "\n".join(unlisted)}, looked_up


def status_command(jobs: Sequence[RemoteJob]) -> Tuple[str, List[str]]:
    """The whole status query as one command, and the job numbers it looks up in qacct."""
    sections, looked_up = status_commands(jobs)
    return sections_command(sections, SGE_ENVIRONMENT), looked_up


def error_report_command(reports: Iterable[Tuple[str, str, str]]) -> str:
    """``(job number, stderr file, heading)``: the heading and ``qstat -j``'s error reasons into the file."""
    return with_environment(*(
        f"if [ ! -s {quote(path)} ] && [ -d \"$(dirname {quote(path)})\" ]; then "
        f"{{ printf '%s\\n' {quote(heading)}; qstat -j {quote(number)} 2>&1 | grep '^error reason'; }} "
        f"> {quote(path)}; fi"
        for number, path, heading in reports), "true")


def control_commands(program: str, jobs: Sequence[RemoteJob], marker: str = "") -> List[str]:
    """``program`` (qdel, qhold, qrls) for all ``jobs``: one call for whole jobs, one per array
    task; with ``marker``, that file is first created in each job's directory."""
    lines = [f"touch {quote(job.remote_dir.rstrip('/') + '/' + marker)} 2>/dev/null || true"
             for job in jobs if marker]
    whole = list(dict.fromkeys(n for n, t in map(split_remote_id, (j.remote_id for j in jobs)) if t is None))
    lines += [f"{program} {' '.join(quote(n) for n in whole)}"] * bool(whole)
    return lines + [f"{program} {quote(n)} -t {t}" for n, t in map(split_remote_id, (j.remote_id for j in jobs))
                    if t is not None]
