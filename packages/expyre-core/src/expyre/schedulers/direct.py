"""The ``direct`` scheduler: run the job script as a detached background process, no queue.

Used by the built-in default system and for hosts that have no batch system. Each job runs in
its own session (``setsid``), so cancelling kills the whole process group; a watchdog kills the
group when the job runs past its ``max_time``. The job's state comes from the process and from
marker files the launcher writes next to the job:

* ``_expyre_direct_pid``: pid (and process group id) of the launcher, written by ``submit``
* ``_expyre_direct_exit``: the job script's exit code, written when it ends
* ``_expyre_direct_timeout``: written by the watchdog before it kills the job; the job counts
  as out of time only once no process of its group is left, so nothing it started still writes
* ``_expyre_direct_cancelled``: written by ``cancel`` before it kills the job

Needs ``bash`` and ``setsid`` (util-linux) on the host.
"""
from __future__ import annotations

from typing import Dict, List, Sequence

from .. import jobfiles
from ..batch import one_by_one_command, split_one_by_one
from ..header import format_header_lines
from ..hookspecs import hookimpl
from ..hooktypes import ConnectionLostError, JobSpec, RemoteJob, Shell, quote

NAME = "direct"
PID_FILE = jobfiles.plugin_file("direct", "pid")
EXIT_FILE = jobfiles.plugin_file("direct", "exit")
TIMEOUT_FILE = jobfiles.plugin_file("direct", "timeout")
CANCELLED_FILE = jobfiles.plugin_file("direct", "cancelled")
#: Seconds between the TERM and the KILL sent to a job that is cancelled or out of time.
KILL_GRACE = 5

# Runs as the session leader; arguments: script, stdout file, stderr file, max time in s (0: none).
_LAUNCHER = f"""
bash "$1" > "$2" 2> "$3" < /dev/null &
child=$!
if [ "$4" -gt 0 ]; then
    (
        trap '' TERM
        while kill -0 "$child" 2>/dev/null; do
            if [ "$SECONDS" -ge "$4" ]; then
                echo "$4" > {TIMEOUT_FILE}
                kill -TERM -- -$$ 2>/dev/null
                waited=0
                while kill -0 "$child" 2>/dev/null && [ "$waited" -lt {KILL_GRACE * 5} ]; do
                    sleep 0.2
                    waited=$((waited + 1))
                done
                kill -KILL -- -$$ 2>/dev/null
                exit 0
            fi
            sleep 1
        done
    ) &
fi
wait "$child"
echo $? > {EXIT_FILE}.tmp && mv {EXIT_FILE}.tmp {EXIT_FILE}
"""

# Prints "<pid> <state> [exit code]" for each (pid, directory) pair given as arguments.
_STATUS = f"""
while [ $# -gt 1 ]; do
    pid=$1; d=$2; shift 2
    if [ -f "$d/{EXIT_FILE}" ]; then
        echo "$pid exit $(cat "$d/{EXIT_FILE}")"
    elif [ -f "$d/{TIMEOUT_FILE}" ]; then
        if kill -0 -- "-$pid" 2>/dev/null; then echo "$pid running"; else echo "$pid timeout"; fi
    elif kill -0 "$pid" 2>/dev/null && {{ [ ! -e /proc/$pid/cwd ] || [ /proc/$pid/cwd -ef "$d" ]; }}; then
        echo "$pid running"
    else
        echo "$pid gone"
    fi
done
"""


@hookimpl
def expyre_schedulers() -> List[str]:
    return [NAME]


@hookimpl
def render_header(scheduler: str, job: JobSpec) -> List[str]:
    return format_header_lines(job.header_lines, job.node_dict)


@hookimpl
def job_environment(scheduler: str, job: JobSpec) -> List[str]:
    return []


def launch_command(job, script: str) -> str:
    """The command that starts ``script`` detached in ``job.remote_dir`` and prints the pid.

    The launcher is a background child of a shell without job control, so it is not a process
    group leader and ``setsid`` makes it a session leader without forking: ``$!`` is its pid,
    which is also the id of the job's process group.

    The shell ignores hang-ups, interrupts and TERM from before the launch until it has written
    the pid file and printed the pid: killed in between, it would leave a running job that
    :func:`find_submitted` cannot find, and a rerun would start it again (the batch toolkit's
    submit wrapper ignores them for the same reason). The launcher takes HUP and TERM back as
    usual, so that ``cancel`` and the watchdog reach the job; INT stays ignored, as it is for
    every background command of a shell without job control.
    """
    max_time = int(job.max_time) if job.max_time else 0
    return (f"cd {quote(job.remote_dir)} || exit 1\n"
            "trap '' HUP INT TERM\n"
            f"( trap - HUP TERM; exec setsid bash -c {quote(_LAUNCHER)} expyre-direct {quote(script)} "
            f"{quote(job.stdout_file)} {quote(job.stderr_file)} {max_time} "
            "< /dev/null > /dev/null 2>&1 ) &\n"
            f"echo $! > {PID_FILE}.tmp && mv {PID_FILE}.tmp {PID_FILE} && echo $!")


@hookimpl
def submit(scheduler: str, job: JobSpec, script: str, shell: Shell) -> str:
    result = shell.run(launch_command(job, script))
    pid = result.stdout.strip()
    if not pid.isdigit():
        raise RuntimeError(f"direct scheduler: job {job.id} did not start in {job.remote_dir} "
                           f"(no pid reported; stderr: {result.stderr.strip()!r})")
    return pid


@hookimpl
def submit_many(scheduler: str, jobs: Sequence[JobSpec], script: str, shell: Shell) -> List[object]:
    """Start ``jobs`` with one command: each job's :func:`launch_command` in turn, stopping at
    the first that fails; the pid of each job started, and the error of the one that did not."""
    result = shell.run(one_by_one_command([launch_command(job, script) for job in jobs]), check=False)
    ran, complete = split_one_by_one(result.stdout, len(jobs))
    if not ran and not complete:
        raise ConnectionLostError(shell.host, f"direct scheduler: starting {len(jobs)} jobs did not answer "
                                              f"(exit status {result.returncode}, {result.stderr.strip()!r}); "
                                              "whether they started is unknown")
    started: List[object] = []
    for job, (rc, out, err) in zip(jobs, ran):
        pid = out.strip()
        if rc != 0 or not pid.isdigit():
            return started + [RuntimeError(f"direct scheduler: job {job.id} did not start in {job.remote_dir} "
                                           f"(exit status {rc}; stderr: {err.strip()!r})")]
        started.append(pid)
    if not complete:  # cut short: whether the next ones started is unknown (each has its pid file if it did)
        started += [ConnectionLostError(shell.host, f"direct scheduler: no answer for job {job.id}; whether it "
                                                    "started is unknown") for job in jobs[len(ran):]]
    return started


def parse_status(output: str, jobs) -> dict:
    """Map the status script's output to expyre remote states for ``jobs``."""
    states = {}
    for line in output.splitlines():
        words = line.split()
        if len(words) < 2:
            continue
        pid, what = words[0], words[1]
        if what == "exit":
            states[pid] = "done" if words[2:] == ["0"] else "failed"
        elif what in ("timeout", "running"):
            states[pid] = what
        else:
            states[pid] = "failed"
    return {job.remote_id: states.get(job.remote_id, "unknown") for job in jobs}


@hookimpl
def status(scheduler: str, jobs: Sequence[RemoteJob], shell: Shell) -> Dict[str, str]:
    args = " ".join(f"{quote(job.remote_id)} {quote(job.remote_dir)}" for job in jobs)
    result = shell.run(f"bash -c {quote(_STATUS)} expyre-status {args}")
    return parse_status(result.stdout, jobs)


@hookimpl
def cancel(scheduler: str, jobs: Sequence[RemoteJob], shell: Shell) -> bool:
    commands = []
    for job in jobs:
        pid = quote(job.remote_id)
        commands.append(f"touch {quote(job.remote_dir + '/' + CANCELLED_FILE)} 2>/dev/null; "
                        f"kill -TERM -- -{pid} 2>/dev/null; "
                        f"setsid bash -c 'sleep {KILL_GRACE}; kill -KILL -- -\"$1\" 2>/dev/null' "
                        f"expyre-kill {pid} < /dev/null > /dev/null 2>&1 &")
    shell.run("\n".join(commands) + "\ntrue")
    return True


@hookimpl
def find_submitted(scheduler: str, job: JobSpec, shell: Shell) -> List[str]:
    result = shell.run(f"cat {quote(job.remote_dir + '/' + PID_FILE)} 2>/dev/null || true")
    pid = result.stdout.strip()
    return [pid] if pid.isdigit() else []
