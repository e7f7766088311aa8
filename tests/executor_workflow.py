"""A user's script that maps a function over many inputs with ``expyre.Executor``, run as its own
Python process by the restart tests of the Executor (on this machine and on Slurm).

The function appends its input to a log file (``RUN_LOG``) when it runs, so a test can count how
often each call really ran. With ``DIE_AT`` the script kills itself (SIGKILL, as a crash or the
OOM killer would) at one point of the map:

* ``submit:K``: just before the K-th scheduler submission, of one job or of one array job (jobs
  after it are staged, not submitted); where several jobs go in one command
  (``System.submit_many``), each job counts, and the jobs before the K-th are taken first
* ``submitted:K``: right after the scheduler accepted the K-th job or array (or the command
  holding the K-th job), before expyre recorded it
* ``mapped``: after ``map`` returned (everything submitted), before any result was read

It prints ``LOOKUPS n`` (how many per-call jobs-database lookups re-attaching needed) and
``FINDS n`` (how many times the scheduler was asked for jobs whose submission was interrupted),
then ``RESULTS`` and the results, one per line.
"""
import os
import signal
import sys
import time

from expyre import Executor
from expyre.batch import BatchScheduler
from expyre.jobsdb import JobsDB
from expyre.system import System

N = int(os.environ.get("N_CALLS", "30"))
RUN_LOG = os.environ["RUN_LOG"]
DIE_AT = os.environ.get("DIE_AT", "")


def logged_square(x, run_log, pause):
    import os
    with open(os.path.expanduser(run_log), "a") as log:
        log.write(f"{x}\n")
    time.sleep(pause)
    return x * x


def die_during_submission():
    real_submit, real_submit_array = System.submit, System.submit_array
    what, _, k = DIE_AT.partition(":")
    count = [0]

    def dying(real):
        def submit(self, *args, **kwargs):
            count[0] += 1
            if what == "submit" and count[0] == int(k):
                os.kill(os.getpid(), signal.SIGKILL)
            remote_id = real(self, *args, **kwargs)
            if what == "submitted" and count[0] == int(k):
                os.kill(os.getpid(), signal.SIGKILL)
            return remote_id
        return submit

    def dying_many(self, jobs, script, *args, **kwargs):
        # several jobs in one command: killed before job K means jobs before it were taken and
        # the rest never reached the scheduler; after job K, that the command ended unrecorded
        before = count[0]
        count[0] += len(jobs)
        here = what in ("submit", "submitted") and before < int(k) <= count[0]
        if what == "submit" and here:
            if int(k) - before > 1:
                real_submit_many(self, jobs[:int(k) - before - 1], script, *args, **kwargs)
            os.kill(os.getpid(), signal.SIGKILL)
        results = real_submit_many(self, jobs, script, *args, **kwargs)
        if what == "submitted" and here:
            os.kill(os.getpid(), signal.SIGKILL)
        return results

    real_submit_many = System.submit_many
    System.submit, System.submit_array = dying(real_submit), dying(real_submit_array)
    System.submit_many = dying_many


def count_lookups():
    real_jobs = JobsDB.jobs
    count = [0]

    def jobs(self, *args, **kwargs):
        count[0] += 1
        return real_jobs(self, *args, **kwargs)

    JobsDB.jobs = jobs
    return count


def count_finds():
    real_query = BatchScheduler.query
    count = [0]

    def query(self, shell, commands, what, *args, **kwargs):
        count[0] += what.startswith("looking for")
        return real_query(self, shell, commands, what, *args, **kwargs)

    BatchScheduler.query = query
    return count


if __name__ == "__main__":
    die_during_submission()
    lookups = count_lookups()
    finds = count_finds()
    resources = {"max_time": "10m", "num_cores": 1, "partitions": os.environ.get("PARTITION", "regular")}
    with Executor(os.environ.get("SYSTEM", "remote"), resources=resources, partial_node=True, check_interval=0.5,
                  quiet=True) as executor:
        results = executor.map(logged_square, range(N), [RUN_LOG] * N, [float(os.environ.get("PAUSE", "0"))] * N)
        print("LOOKUPS", lookups[0], flush=True)
        print("FINDS", finds[0], flush=True)
        if DIE_AT == "mapped":
            os.kill(os.getpid(), signal.SIGKILL)
        values = list(results)
    print("RESULTS", *values, sep="\n", flush=True)
    sys.exit(0 if values == [x * x for x in range(N)] else 1)
