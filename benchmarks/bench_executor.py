"""Per-call cost of ``expyre.Executor.map``: submitting N calls, and gathering N finished results.

    python benchmarks/bench_executor.py [-n 10 100 1000] [--host HOST [--scheduler slurm] [--partition P]
                                        [--no-arrays]] [--repeats 5] [--one-by-one] [--python-cmd PY]

For each N, three steps, in a fresh temporary expyre root (step 1 runs ``--repeats`` times, each
in a root of its own, and its median is reported; the jobs of all but the last run are cancelled
and gone from the queue, the file system synced, and the machine's CPUs and disks idle (see
:func:`wait_until_quiet`), before the next run; the runs' files, here and on the host, are
removed only when the benchmark ends, see :func:`remove_runs`):

1. submit: a separate Python process creates an Executor and calls ``map`` over N tiny calls;
   ``map`` returns when every call is staged and submitted. Its time, divided by N, is the
   per-call submit cost. The process then exits at once, as a killed script would, so that no
   result is gathered yet;
2. the benchmark waits (asking the scheduler directly) until every job has finished on the host;
3. gather: this process runs the same ``map`` again. Every call re-attaches to its job (one
   jobs-database lookup for the whole batch), one status query finds them all finished, one
   transfer copies them back, and the results are read. Its time, divided by N, is the per-call
   gather cost.

Without ``--host`` the system is this machine (direct scheduler, with a run directory so that
files are really copied out and back). ``--host`` runs on that SSH host (as ``ssh HOST`` would
reach it) through the ``ssh`` transport with ``--scheduler`` (default slurm). On a scheduler with
job arrays the calls of one ``map`` go as array jobs (one submission per array, see
docs/many_calls.rst); ``--no-arrays`` sets ``arrays = false`` in the scheduler's table, for one
submission per call. Calls that do not go as arrays (``--no-arrays``, or ``--scheduler direct``)
are submitted together in one remote command (the ``submit_many`` hook); ``--one-by-one`` turns
that off for the comparison (one remote command per call, as before that hook). The report
counts the scheduler submissions (``submits``: one per job, array or ``submit_many`` command).

For the direct scheduler over SSH, e.g. ``--host cluster --scheduler direct --partition regular
-n 100``, with ``cluster`` an ``ssh`` host whose ``python3`` has cloudpickle (``--python-cmd``
names another interpreter).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SYSTEM = "bench"


def tiny(i):
    return i * i


def write_config(root: Path, host, scheduler: str, partition: str, arrays: bool = True) -> None:
    system = {"host": host, "scheduler": scheduler,
              "rundir": str(root / "rundir") if host is None else f"run_expyre_bench_{os.getpid()}",
              "partitions": {partition: {"num_cores": 1, "max_time": "1h"}}}
    if not arrays and scheduler != "direct":
        system[scheduler] = {"arrays": False}
    (root / "config.json").write_text(json.dumps({"systems": {SYSTEM: system}}))


def executor():
    from expyre import Executor
    return Executor(SYSTEM, resources={"max_time": "10m", "num_cores": 1}, name="bench", check_interval=0.5,
                    quiet=True, python_cmd=os.environ.get("BENCH_PYTHON_CMD") or None)


def submit_phase(n: int, one_by_one: bool = False) -> None:
    """Step 1, in its own process: print the seconds ``map`` took and how many scheduler
    submissions it made, then exit without gathering. ``one_by_one``: as if no scheduler had
    the ``submit_many`` hook (one submit command per job)."""
    from expyre import plugins
    submits = [0]
    real_submit, real_submit_array = plugins.submit, plugins.submit_array
    real_submit_many = getattr(plugins, "submit_many", None)   # None: an expyre from before the hook

    def counted(real):
        def submit(*args, **kwargs):
            submits[0] += 1
            return real(*args, **kwargs)
        return submit

    plugins.submit, plugins.submit_array = counted(real_submit), counted(real_submit_array)
    if real_submit_many is not None:
        plugins.submit_many = (lambda *args, **kwargs: None) if one_by_one else counted(real_submit_many)
    from expyre import many
    starting = [0.0]   # of it, the seconds in start_many (the round trip, scripts, bundle, records)
    real_start_many = many.start_many

    def timed_start_many(*args, **kwargs):
        t = time.perf_counter()
        try:
            return real_start_many(*args, **kwargs)
        finally:
            starting[0] += time.perf_counter() - t

    many.start_many = timed_start_many
    ex = executor()
    t0 = time.perf_counter()
    ex.map(tiny, range(n))
    print(f"SUBMIT {time.perf_counter() - t0:.6f} {submits[0]} {starting[0]:.6f}", flush=True)
    os._exit(0)


def _cpu_times() -> tuple:
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:9]]
    return sum(fields), fields[3] + fields[4]   # all, idle + iowait


def _disk_busy_ms() -> int:
    """Milliseconds the machine's disks have spent doing I/O since boot (the sum of their
    ``io_ticks`` in /proc/diskstats; partitions, loop and RAM devices left out)."""
    busy = 0
    with open("/proc/diskstats") as stats:
        for line in stats:
            fields = line.split()
            name = fields[2]
            if os.path.exists(f"/sys/block/{name}") and not name.startswith(("loop", "ram", "zram")):
                busy += int(fields[12])
    return busy


def wait_until_quiet(busy_below: float = 0.15, for_seconds: int = 3, timeout: float = 180) -> float:
    """Wait until the machine's CPUs and disks are each less than ``busy_below`` busy for
    ``for_seconds`` seconds in a row (at most ``timeout``); the seconds waited. On a machine that
    also runs the scheduler (as the test services do), cancelling a run's 1,000 tasks keeps
    slurmctld, slurmdbd and its database busy for a while after the queue is empty, and removing
    the run's files keeps the disk busy (discards, journal); a run that starts then measures
    them as much as expyre. Without /proc (not Linux) it does not wait."""
    if not os.path.exists("/proc/stat") or not os.path.exists("/proc/diskstats"):
        return 0.0
    t0 = time.monotonic()
    quiet = 0
    total, idle = _cpu_times()
    disk, then = _disk_busy_ms(), time.monotonic()
    while quiet < for_seconds and time.monotonic() - t0 < timeout:
        time.sleep(1)
        new_total, new_idle = _cpu_times()
        new_disk, now = _disk_busy_ms(), time.monotonic()
        busy = 1 - (new_idle - idle) / max(new_total - total, 1)
        disk_busy = (new_disk - disk) / max((now - then) * 1000, 1)
        quiet = quiet + 1 if busy < busy_below and disk_busy < busy_below else 0
        total, idle, disk, then = new_total, new_idle, new_disk, now
    return time.monotonic() - t0


def wait_until_finished(timeout: float = 3600) -> float:
    from expyre import FINISHED_REMOTE_STATES, config, gather
    system = config.systems[SYSTEM]
    jobs = [gather.remote_job(row) for row in config.db.jobs(status=["submitted", "started"])]
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        states = system.status(jobs)
        if all(state in FINISHED_REMOTE_STATES for state in states.values()):
            return time.perf_counter() - t0
        time.sleep(1.0)
    raise TimeoutError(f"jobs did not finish within {timeout} s")


def gather_phase(n: int) -> dict:
    from expyre import plugins
    from expyre.transports import ssh
    counts = {"status": 0, "get": 0}
    real_status, real_transfer = plugins.status, plugins.transfer

    def status(*args, **kwargs):
        counts["status"] += 1
        return real_status(*args, **kwargs)

    def transfer(transport, shell, direction, pairs):
        counts["get"] += direction == "get"
        return real_transfer(transport, shell, direction, pairs)

    plugins.status, plugins.transfer = status, transfer
    connections = ssh.connections_opened
    try:
        t0 = time.perf_counter()
        with executor() as ex:
            values = list(ex.map(tiny, range(n)))
        seconds = time.perf_counter() - t0
    finally:
        plugins.status, plugins.transfer = real_status, real_transfer
    assert values == [tiny(i) for i in range(n)], "wrong results"
    return {"gather": seconds, "connections": ssh.connections_opened - connections, **counts}


def run(n: int, host, scheduler: str, partition: str, arrays: bool = True, repeats: int = 1,
        one_by_one: bool = False) -> dict:
    """Steps 1-3 for ``n`` calls; the submit step ``repeats`` times (each in a fresh root, all
    but the last one's jobs cancelled at once), for the median of its times."""
    submits = [_submit_step(n, host, scheduler, partition, arrays, False, one_by_one) for _ in range(repeats - 1)]
    last = _submit_step(n, host, scheduler, partition, arrays, True, one_by_one)
    times = [s["submit"] for s in submits] + [last["submit"]]
    return dict(last, submit=statistics.median(times), submit_range=(min(times), max(times)), repeats=repeats)


#: The expyre roots of this benchmark's runs, removed when it ends (see :func:`remove_runs`).
_ROOTS: list = []


def _submit_step(n: int, host, scheduler: str, partition: str, arrays: bool, gather: bool,
                 one_by_one: bool = False) -> dict:
    from expyre import config
    from expyre import gather as gathering
    root = Path(tempfile.mkdtemp(prefix="bench_executor_"))
    _ROOTS.append(root)
    write_config(root, host, scheduler, partition, arrays)
    env = dict(os.environ, EXPYRE_ROOT=str(root))
    phase = [sys.executable, __file__, "--submit-phase", str(n)] + ["one-by-one"] * one_by_one
    os.sync()  # each run starts with no earlier run's files still being written to disk
    settled = wait_until_quiet()
    proc = subprocess.run(phase, env=env, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"submit step failed:\n{proc.stderr}")
    submit, submits, starting = proc.stdout.split("SUBMIT")[1].split()[:3]
    print(f"  {n} calls: submit {float(submit) / n * 1e3:.2f} ms/call, of which creating the calls "
          f"{(float(submit) - float(starting)) / n * 1e3:.2f} and starting them {float(starting) / n * 1e3:.2f} "
          f"(after waiting {settled:.0f} s for a quiet machine)", file=sys.stderr, flush=True)
    config.init(root)
    system = config.systems[SYSTEM]
    try:
        if not gather:
            # cancelled, and gone from the queue before the next run, which must not share the
            # machine with this run's tasks
            system.cancel([gathering.remote_job(row) for row in config.db.jobs(status=["submitted", "started"])])
            wait_until_finished()
            return {"submit": float(submit)}
        waited = wait_until_finished()
        figures = gather_phase(n)
    finally:
        system.close()
    return {"n": n, "submit": float(submit), "submits": int(submits), "waited": waited, **figures}


def remove_runs(host) -> None:
    """Remove the runs' files here and on the host, once all runs are over: removing a thousand
    stage directories slows the file creations of the next few seconds on this machine (measured:
    creating 1,000 calls took 0.72-1.16 ms per call in the 10 s after an ``rm -rf`` of 1,000
    directories of 5 files, against 0.32-0.35 ms before and after), which a run must not measure."""
    from expyre import config
    if host is not None and _ROOTS:
        config.init(_ROOTS[-1])
        system = config.systems[SYSTEM]
        try:
            system.remove_remote_dirs([system.rundir])   # every run's directory is under it
        finally:
            system.close()
    for root in _ROOTS:
        shutil.rmtree(root, ignore_errors=True)
    _ROOTS.clear()


def report(label: str, rows: list) -> None:
    print(label)
    print(f"  {'calls':>6} {'submit ms/call':>15} {'(min-max)':>13} {'gather ms/call':>15} {'gather s':>9} "
          f"{'status queries':>15} {'copy-backs':>11} {'ssh conns':>10} {'submits':>8}")
    for r in rows:
        low, high = (t / r["n"] * 1e3 for t in r["submit_range"])
        print(f"  {r['n']:>6} {r['submit'] / r['n'] * 1e3:>15.2f} {f'({low:.2f}-{high:.2f})':>13} "
              f"{r['gather'] / r['n'] * 1e3:>15.2f} {r['gather']:>9.3f} {r['status']:>15} {r['get']:>11} "
              f"{r['connections']:>10} {r['submits']:>8}")
    print(f"  submit: median of {rows[0]['repeats']} runs of each size (each in a fresh root)")
    # a map's fixed cost (the connection, the first submission's preflight, the round trip) is
    # spread over its calls; what each call adds shows between sizes
    for a, b in zip(rows, rows[1:]):
        if b["n"] > a["n"]:
            print(f"  each call from {a['n']} to {b['n']} calls adds: submit "
                  f"{(b['submit'] - a['submit']) / (b['n'] - a['n']) * 1e3:.2f} ms, gather "
                  f"{(b['gather'] - a['gather']) / (b['n'] - a['n']) * 1e3:.2f} ms")
    print(f"  median over sizes: submit {statistics.median(r['submit'] / r['n'] for r in rows) * 1e3:.2f} ms/call, "
          f"gather {statistics.median(r['gather'] / r['n'] for r in rows) * 1e3:.2f} ms/call")


def main() -> None:
    if len(sys.argv) in (3, 4) and sys.argv[1] == "--submit-phase":
        submit_phase(int(sys.argv[2]), sys.argv[3:] == ["one-by-one"])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, nargs="+", default=[10, 100, 1000],
                        help="numbers of calls (default 10 100 1000)")
    parser.add_argument("--host", help="SSH host to run on (with a temporary config)")
    parser.add_argument("--scheduler", default="slurm", help="scheduler for --host (default slurm)")
    parser.add_argument("--partition", default="standard", help="partition for --host (default standard)")
    parser.add_argument("--no-arrays", action="store_true", help="one submission per call, no job arrays")
    parser.add_argument("--repeats", type=int, default=5,
                        help="times the submit step runs for each size, for its median (default 5; the jobs of "
                             "all but the last run are cancelled, the last run's are gathered)")
    parser.add_argument("--one-by-one", action="store_true",
                        help="without arrays: one remote command per call (no submit_many), for comparison")
    parser.add_argument("--python-cmd", help="the job's Python on the host (default python3)")
    args = parser.parse_args()
    if args.python_cmd:
        os.environ["BENCH_PYTHON_CMD"] = args.python_cmd
    if args.host is None:
        label, scheduler, partition = "direct scheduler on this machine, with a run directory", "direct", "regular"
    else:
        label, scheduler, partition = f"{args.scheduler} on {args.host} over ssh", args.scheduler, args.partition
    try:
        rows = [run(n, args.host, scheduler, partition, not args.no_arrays, args.repeats, args.one_by_one)
                for n in args.n]
    finally:
        remove_runs(args.host)
    label += " without arrays" if args.no_arrays else ""
    label += ", one remote command per call" if args.one_by_one else ""
    report(label, rows)


if __name__ == "__main__":
    main()
