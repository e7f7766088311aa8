"""Peak memory (RSS) of ``get_results`` copying back and unpickling a large result.

    python benchmarks/bench_copy_back_rss.py [--mb 500] [--repeat 3] [--host HOST [--scheduler direct]]

Each run is a fresh Python process that creates a job returning a ``--mb`` MB numpy array,
starts it, waits (asking the scheduler only) until it has finished on the host, resets the
process's peak RSS (``/proc/self/clear_refs``), then calls ``get_results`` and reads the peak
(``VmHWM``). Without ``--host`` the job runs on this machine with a run directory (the
``local`` transport copies the files back); with ``--host`` it runs on that SSH host (as
``ssh HOST`` reaches it) through the ``ssh`` transport. Prints, for the median run, the peak
RSS during ``get_results`` and the peak above what the process held before, each against the
result size (goal: peak at most 1.2 x the result size).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

CHILD = textwrap.dedent("""
    import json, sys, time
    from expyre import FINISHED_REMOTE_STATES, RemoteJob, config
    from expyre.func import ExPyRe

    mb = int(sys.argv[1])

    def make(mb):
        import numpy
        return numpy.full(mb * 1024 * 1024 // 8, 1.5)

    def status_kb(key):
        for line in open("/proc/self/status"):
            if line.startswith(key + ":"):
                return int(line.split()[1])

    config.init()
    xpr = ExPyRe("rss", function=make, args=[mb], try_restart_from_prev=False)
    xpr.start(resources={"max_time": "10m", "num_cores": 1}, system_name="bench", partial_node=True)
    system = config.systems["bench"]
    job = RemoteJob(xpr.remote_id, config.db.get(xpr.id)["remote_dir"], xpr.id)
    while system.status([job]).get(xpr.remote_id) not in FINISHED_REMOTE_STATES:
        time.sleep(0.5)
    before = status_kb("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak (VmHWM) to the current RSS
    t0 = time.perf_counter()
    value, _, _ = xpr.get_results(check_interval=0.5, quiet=True)
    seconds = time.perf_counter() - t0
    assert value.nbytes == mb * 1024 * 1024 and value[-1] == 1.5
    print(json.dumps({"before_kb": before, "peak_kb": status_kb("VmHWM"), "seconds": seconds}))
    xpr.clean(wipe=True)
""")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=500, help="result size in MB (default 500)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--host", help="SSH host (default: this machine, local transport)")
    parser.add_argument("--scheduler", default="direct")
    parser.add_argument("--partition", default="regular")
    args = parser.parse_args()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / ".expyre"
        root.mkdir()
        system = {"scheduler": args.scheduler, "partitions": {args.partition: {"num_cores": 1}}}
        if args.host:
            system["host"] = args.host
        else:
            system.update(host=None, rundir=str(Path(tmp) / "rundir"))
        (root / "config.json").write_text(json.dumps({"systems": {"bench": system}}))
        (Path(tmp) / "child.py").write_text(CHILD)
        for _ in range(args.repeat):
            proc = subprocess.run([sys.executable, str(Path(tmp) / "child.py"), str(args.mb)], cwd=tmp,
                                  env=dict(os.environ, EXPYRE_ROOT=str(root)), capture_output=True,
                                  text=True, timeout=1800)
            if proc.returncode != 0:
                sys.exit(f"benchmark run failed:\n{proc.stderr}")
            runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    size_mb = args.mb * 1024 * 1024 / 1e6
    peak = statistics.median(r["peak_kb"] for r in runs) * 1024 / 1e6
    above = statistics.median(r["peak_kb"] - r["before_kb"] for r in runs) * 1024 / 1e6
    secs = statistics.median(r["seconds"] for r in runs)
    where = f"{args.host} ({args.scheduler}, ssh)" if args.host else "this machine (direct, local transport)"
    print(f"copy-back of a {size_mb:.0f} MB result from {where}, median of {args.repeat} runs:")
    print(f"  peak RSS during get_results: {peak:.0f} MB = {peak / size_mb:.2f} x the result size")
    print(f"  peak above the RSS before:   {above:.0f} MB = {above / size_mb:.2f} x the result size")
    print(f"  get_results time:            {secs:.2f} s")


if __name__ == "__main__":
    main()
