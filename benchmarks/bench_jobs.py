"""Create, start and gather N tiny jobs on a system; print per-job times.

    python benchmarks/bench_jobs.py [-n 100] [--system NAME | --host HOST [--scheduler direct]]

Without options it runs in a temporary expyre root on a direct-scheduler system of this machine
(twice: jobs running in their stage directories, and with a run directory so that files are
really copied out and back). ``--host`` runs on that SSH host (as ``ssh HOST`` would reach it)
through the ``ssh`` transport, with ``--scheduler`` (default direct) and ``--partition``, in a run
directory of its own on the host (removed at the end). With ``--scheduler slurm`` it also times a
bare ``sbatch`` of an empty job on the same connection after each start, the floor of what a
start can cost.
``--system`` uses a configured system from the usual config files.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional


def tiny(i):
    return i * i


def run(n: int, system_name: str, pause: float = 0.0, bare: Optional[Callable[[], float]] = None) -> dict:
    from expyre import plugins
    from expyre.func import ExPyRe
    from expyre.transports import ssh
    counts = {"status": 0, "transfer_get": 0}
    connections_before = ssh.connections_opened
    real_status, real_transfer = plugins.status, plugins.transfer

    def count_status(*args, **kwargs):
        counts["status"] += 1
        return real_status(*args, **kwargs)

    def count_transfer(transport, shell, direction, pairs):
        if direction == "get":
            counts["transfer_get"] += 1
        return real_transfer(transport, shell, direction, pairs)

    plugins.status, plugins.transfer = count_status, count_transfer
    resources = {"max_time": "10m", "num_cores": 1}
    create, start, bare_times = [], [], []
    jobs = []
    for i in range(n):
        t0 = time.perf_counter()
        xpr = ExPyRe("bench", function=tiny, args=[i], try_restart_from_prev=False)
        t1 = time.perf_counter()
        xpr.start(resources=resources, system_name=system_name, partial_node=True)
        t2 = time.perf_counter()
        create.append(t1 - t0)
        start.append(t2 - t1)
        jobs.append(xpr)
        if bare is not None:  # alternated with the starts, so that both see the same load
            bare_times.append(bare())
        time.sleep(pause)
    # wait until every job has finished on the host, asking the scheduler directly (nothing is
    # recorded or copied back), then time gathering all of them
    from expyre import FINISHED_REMOTE_STATES, RemoteJob, config
    system = config.systems[system_name]
    remote_jobs = [RemoteJob(j.remote_id, j.remote_dir, j.id) for j in jobs]
    deadline = time.time() + 600
    while time.time() < deadline:
        states = real_status(system.scheduler, remote_jobs, system.shell)
        if all(state in FINISHED_REMOTE_STATES for state in states.values()):
            break
        time.sleep(0.5)
    counts["status"] = counts["transfer_get"] = 0
    t0 = time.perf_counter()
    results = [xpr.get_results(quiet=True, check_interval=0.5)[0] for xpr in jobs]
    gather = time.perf_counter() - t0
    assert results == [i * i for i in range(n)]
    plugins.status, plugins.transfer = real_status, real_transfer
    return {"create": create, "start": start, "gather": gather, "bare": bare_times,
            "connections": ssh.connections_opened - connections_before, **counts}


class BareSbatch:
    """Times a bare ``sbatch`` of an empty job on a system's connection (each cancelled at the end)."""

    def __init__(self, system_name: str, partition: str):
        from expyre import config
        self.shell = config.systems[system_name].shell
        self.command = f"sbatch --parsable -p {partition} -t 1 -o /dev/null -e /dev/null --wrap true"
        self.ids: list = []

    def __call__(self) -> float:
        t0 = time.perf_counter()
        self.ids.append(self.shell.run(self.command).stdout.strip().split(";")[0])
        return time.perf_counter() - t0

    def cancel(self) -> None:
        if self.ids:
            self.shell.run("scancel " + " ".join(self.ids), check=False)


def report(label: str, n: int, figures: dict) -> None:
    med = statistics.median
    print(f"{label}: {n} jobs")
    print(f"  create  median {med(figures['create']) * 1e3:7.2f} ms/job")
    print(f"  start   median {med(figures['start']) * 1e3:7.2f} ms/job")
    if figures.get("bare"):
        print(f"  bare sbatch on the same connection: median {med(figures['bare']) * 1e3:7.2f} ms "
              f"(start / bare sbatch = {med(figures['start']) / med(figures['bare']):.2f})")
    print(f"  gather  {figures['gather']:.3f} s for all {n} finished jobs "
          f"({figures['gather'] / n * 1e3:.2f} ms/job; {figures['status']} status queries, "
          f"{figures['transfer_get']} transfers back)")
    print(f"  SSH connections opened: {figures['connections']}")


def write_config(root: Path, host=None, rundir=None, scheduler="direct", partition="regular") -> None:
    system = {"host": host, "scheduler": scheduler,
              "partitions": {partition: {"num_cores": os.cpu_count(), "max_time": "1h"}}}
    if rundir:
        system["rundir"] = rundir
    (root / "config.json").write_text(json.dumps({"systems": {"bench": system}}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=100, help="number of jobs (default 100)")
    parser.add_argument("--system", help="configured system to use instead of temporary ones")
    parser.add_argument("--host", help="SSH host to run on (with a temporary config)")
    parser.add_argument("--scheduler", default="direct", help="scheduler for --host (default direct)")
    parser.add_argument("--partition", default="regular", help="partition for --host (default regular)")
    parser.add_argument("--pause", type=float, default=0.0,
                        help="seconds between starts, so that jobs running on this same machine (direct "
                             "scheduler) do not slow the next start down (default 0)")
    args = parser.parse_args()
    from expyre import config
    if args.system:
        report(f"system {args.system}", args.n, run(args.n, args.system, args.pause))
        return
    if args.host:
        cases = [(f"{args.scheduler} on {args.host} over ssh", dict(host=args.host, scheduler=args.scheduler,
                                                                    partition=args.partition,
                                                                    rundir=f"run_expyre_bench_{os.getpid()}"))]
    else:
        cases = [("direct, jobs run in stage dirs", {}), ("direct, with run directory (copies)", {"rundir": "rundir"})]
    for label, system in cases:
        with tempfile.TemporaryDirectory() as tmp:
            if system.get("rundir") and not system.get("host"):
                system["rundir"] = str(Path(tmp) / "rundir")
            write_config(Path(tmp), **system)
            config.init(tmp)
            bare = BareSbatch("bench", args.partition) if system.get("scheduler") == "slurm" else None
            try:
                figures = run(args.n, "bench", args.pause, bare)
            finally:
                if bare is not None:
                    bare.cancel()
                if system.get("host"):
                    bench = config.systems["bench"]
                    bench.remove_remote_dirs([bench.rundir])  # every run's directory is under it
            report(label + (f", {args.pause} s between starts" if args.pause else ""), args.n, figures)


if __name__ == "__main__":
    main()
