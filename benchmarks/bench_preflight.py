"""Cost of preflight: the first submission to a system in a process, and later ones.

    python benchmarks/bench_preflight.py [--host HOST --scheduler slurm --partition NAME] [--repeat 5]

Each repetition is a fresh jobs database and a fresh process cache: it times ``start()`` of a
first job with and without preflight (the difference is preflight's one round trip), then the
``start()`` of a second job, whose preflight costs nothing (the report is cached; the round
trips made are counted). Without ``--host`` the built-in ``local`` system is used (direct
scheduler, the job's Python started through a login shell on this machine). Prints medians.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time


def one_run(args) -> tuple:
    import numpy

    from expyre import config, preflight
    from expyre.func import ExPyRe
    root = tempfile.mkdtemp(prefix="expyre-bench-preflight-")
    system = {"scheduler": args.scheduler, "partitions": {args.partition: {"num_cores": args.cores}}}
    if args.host:
        system.update(host=args.host, rundir="run_expyre_bench_preflight")
    with open(os.path.join(root, "config.json"), "w") as fout:
        json.dump({"systems": {"bench": system}}, fout)
    config.init(root)
    preflight.forget()
    res = dict(resources={"max_time": "5m", "num_cores": 1}, partial_node=True, system_name="bench")
    config.systems["bench"].shell.run("true")  # the login is not preflight's cost
    times = {}
    for label, flag in (("without", False), ("with", True)):
        preflight.forget()
        config.db.preflight_forget()
        xpr = ExPyRe(f"bench_{label}_{time.time_ns()}", function=numpy.sum, args=[numpy.ones(3)])
        t0 = time.perf_counter()
        xpr.start(preflight=flag, **res)
        times[label] = time.perf_counter() - t0
        xpr.cancel()
        xpr.clean(wipe=True)
    count = preflight.probe_count
    xpr = ExPyRe(f"bench_second_{time.time_ns()}", function=numpy.sum, args=[numpy.ones(4)])
    t0 = time.perf_counter()
    xpr.start(**res)
    second = time.perf_counter() - t0
    xpr.cancel()
    xpr.clean(wipe=True)
    config.systems["bench"].close()
    return times["with"] - times["without"], second, preflight.probe_count - count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host")
    parser.add_argument("--scheduler", default="direct")
    parser.add_argument("--partition", default="regular")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    runs = [one_run(args) for _ in range(args.repeat)]
    print(f"system: {args.scheduler} on {args.host or 'this machine'}, {args.repeat} runs")
    print(f"preflight on the first submission: median {1000 * statistics.median(r[0] for r in runs):.1f} ms")
    print(f"second submission: median start() {1000 * statistics.median(r[1] for r in runs):.1f} ms, "
          f"preflight round trips made: {sum(r[2] for r in runs)}")


if __name__ == "__main__":
    main()
