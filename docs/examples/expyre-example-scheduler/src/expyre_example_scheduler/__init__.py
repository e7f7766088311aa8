"""``flockq``: a batch "scheduler" made of ``flock``, for the expyre guide.

Each partition of a system is a queue with a single slot, the lock file
``~/.expyre_flockq/<partition>.lock`` on the host. ``submit`` starts the job at once as a
detached process (its own session, so that ``cancel`` can kill the whole group) that waits for
the queue's lock with ``flock`` and then runs the job script under ``timeout``. Jobs of one
queue therefore run one after the other, in the order the lock is granted.

The job's state lives in marker files in its run directory:

* ``_flockq_pid``: pid of the waiting/running process (also its process group id)
* ``_flockq_running``: written when the job got the lock and started
* ``_flockq_exit``: the job script's exit status (124 from ``timeout``: out of time)
* ``_flockq_cancelled``: written by ``cancel``
"""
from expyre import hookimpl, quote
from expyre.header import format_header_lines

NAME = "flockq"
LOCK_DIR = ".expyre_flockq"

# Runs once the queue's lock is held; arguments: script, stdout file, stderr file, max time (s, 0: none).
_RUN = """
touch _flockq_running
if [ "$4" -gt 0 ]; then
    timeout --kill-after=5 "$4" bash "$1" > "$2" 2> "$3" < /dev/null
else
    bash "$1" > "$2" 2> "$3" < /dev/null
fi
echo $? > _flockq_exit.tmp && mv _flockq_exit.tmp _flockq_exit
"""

# Prints "<pid> <state>" for each (pid, run directory) pair given as arguments.
_STATUS = """
while [ $# -gt 1 ]; do
    pid=$1; d=$2; shift 2
    if [ -f "$d/_flockq_exit" ]; then
        case $(cat "$d/_flockq_exit") in
            0) echo "$pid done" ;;
            124|137) echo "$pid timeout" ;;
            *) echo "$pid failed" ;;
        esac
    elif [ -f "$d/_flockq_cancelled" ]; then
        echo "$pid failed"
    elif kill -0 "$pid" 2>/dev/null; then
        if [ -f "$d/_flockq_running" ]; then echo "$pid running"; else echo "$pid queued"; fi
    else
        echo "$pid failed"
    fi
done
"""


@hookimpl
def expyre_schedulers():
    return [NAME]


@hookimpl
def render_header(scheduler, job):
    lines = [] if job.no_default_header else [f"# flockq job {job.id} queue {job.partition}"]
    return lines + format_header_lines(job.header_lines, job.node_dict)


@hookimpl
def job_environment(scheduler, job):
    return []  # core's EXPYRE_NUM_* values from the partition are already right


@hookimpl
def submit(scheduler, job, script, shell):
    lock = f"{LOCK_DIR}/{job.partition or 'default'}.lock"
    max_time = int(job.max_time or 0)
    command = (f"mkdir -p {LOCK_DIR} && lock=\"$PWD\"/{quote(lock)} && cd {quote(job.remote_dir)} || exit 1\n"
               f"setsid nohup flock \"$lock\" bash -c {quote(_RUN)} flockq-job {quote(script)} "
               f"{quote(job.stdout_file)} {quote(job.stderr_file)} {max_time} "
               "< /dev/null > /dev/null 2>&1 &\n"
               "echo $! > _flockq_pid && echo $!")
    pid = shell.run(command).stdout.strip()
    if not pid.isdigit():
        raise RuntimeError(f"flockq: job {job.id} was not started (no pid reported)")
    return pid


@hookimpl
def status(scheduler, jobs, shell):
    args = " ".join(f"{quote(job.remote_id)} {quote(job.remote_dir)}" for job in jobs)
    output = shell.run(f"bash -c {quote(_STATUS)} flockq-status {args}").stdout
    states = dict(line.split() for line in output.splitlines() if len(line.split()) == 2)
    return {job.remote_id: states.get(job.remote_id, "unknown") for job in jobs}


@hookimpl
def cancel(scheduler, jobs, shell):
    commands = [f"touch {quote(job.remote_dir + '/_flockq_cancelled')}; "
                f"kill -TERM -- -{quote(job.remote_id)} 2>/dev/null" for job in jobs]
    shell.run("\n".join(commands) + "\ntrue")
    return True


@hookimpl
def find_submitted(scheduler, job, shell):
    pid = shell.run(f"cat {quote(job.remote_dir + '/_flockq_pid')} 2>/dev/null || true").stdout.strip()
    return [pid] if pid.isdigit() else []
