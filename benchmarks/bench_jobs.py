"""Create, start and gather N tiny jobs on a system; print per-job times.

    python benchmarks/bench_jobs.py [-n 100] [--system NAME]

Without ``--system`` it runs in a temporary expyre root on a direct-scheduler system of this
machine (twice: jobs running in their stage directories, and with a run directory so that
files are really copied out and back). With ``--system`` it uses the configured system of that
name from the usual config files.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path


def tiny(i):
    return i * i


def run(n: int, system_name: str) -> dict:
    from expyre import plugins
    from expyre.func import ExPyRe

    counts = {"status": 0, "transfer_get": 0}
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
    create, start = [], []
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
    # wait until every job has finished remotely, then time gathering all of them
    deadline = time.time() + 600
    from expyre import config
    while time.time() < deadline:
        jobs[-1].sync_remote_results_status()
        if all(config.db.get(j.id)["remote_status"] in ("done", "failed") or
               config.db.get(j.id)["status"] in ("succeeded", "failed") for j in jobs):
            break
        time.sleep(0.5)
    counts["status"] = 0
    t0 = time.perf_counter()
    results = [xpr.get_results(quiet=True, check_interval=0.5)[0] for xpr in jobs]
    gather = time.perf_counter() - t0
    assert results == [i * i for i in range(n)]
    plugins.status, plugins.transfer = real_status, real_transfer
    return {"create": create, "start": start, "gather": gather, **counts}


def report(label: str, n: int, figures: dict) -> None:
    med = statistics.median
    print(f"{label}: {n} jobs")
    print(f"  create  median {med(figures['create']) * 1e3:7.2f} ms/job")
    print(f"  start   median {med(figures['start']) * 1e3:7.2f} ms/job")
    print(f"  gather  {figures['gather']:.3f} s for all {n} finished jobs "
          f"({figures['gather'] / n * 1e3:.2f} ms/job; {figures['status']} status queries)")


def local_config(root: Path, rundir) -> None:
    system = {"host": None, "scheduler": "direct",
              "partitions": {"regular": {"num_cores": os.cpu_count(), "max_time": "1h"}}}
    if rundir:
        system["rundir"] = str(root / "rundir")
    (root / "config.json").write_text(json.dumps({"systems": {"bench": system}}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=100, help="number of jobs (default 100)")
    parser.add_argument("--system", help="configured system to use instead of temporary local ones")
    args = parser.parse_args()
    from expyre import config
    if args.system:
        report(f"system {args.system}", args.n, run(args.n, args.system))
        return
    for label, rundir in (("direct, jobs run in stage dirs", False), ("direct, with run directory (copies)", True)):
        with tempfile.TemporaryDirectory() as tmp:
            local_config(Path(tmp), rundir)
            config.init(tmp)
            report(label, args.n, run(args.n, "bench"))


if __name__ == "__main__":
    main()
