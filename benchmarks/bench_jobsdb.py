"""Time the JobsDB operations that happen once per job, on databases of growing size.

Builds databases of (by default) 100, 1,000 and 10,000 jobs in a temporary directory, with ids
made the way ExPyRe makes them (``<name>_<hash>_<n>``), and prints the median and 90th
percentile time of

- ``jobs(id=re.escape(job_id))``: looking up one job by a literal id regexp
- ``get(job_id)``
- ``update(job_id, status=...)`` (one committed write)
- ``jobs(id=re.escape(f"{name}_{hash}") + "_.*")``: the restart lookup of one call's jobs
- ``jobs(id=<general regexp>)``: a full scan, for comparison

The indexed operations should take about the same time whatever the size of the database.
No assertions are made: this only prints figures.

Usage::

    python benchmarks/bench_jobsdb.py [--sizes 100 1000 10000] [--repeat 200] [--dir DIR]
"""
from __future__ import annotations

import argparse
import hashlib
import random
import re
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Tuple

from expyre.jobsdb import JobsDB

JOBS_PER_CALL = 10
NAMES = ["relax", "md", "phonons", "singlepoint", "fit"]


def build(path: Path, n_jobs: int, journal_mode: str) -> Tuple[JobsDB, List[str], List[str]]:
    """A database of ``n_jobs`` jobs; returns it, the job ids and the per-call id prefixes."""
    db = JobsDB(path, journal_mode=journal_mode)
    ids: List[str] = []
    prefixes: List[str] = []
    statuses = JobsDB.possible_status
    call = 0
    while len(ids) < n_jobs:
        name = NAMES[call % len(NAMES)]
        digest = hashlib.sha256(f"{name}-{call}".encode()).hexdigest()[:20]
        prefix = f"{name}_{digest}"
        prefixes.append(prefix)
        for n in range(min(JOBS_PER_CALL, n_jobs - len(ids))):
            job_id = f"{prefix}_{n}"
            db.add(job_id, name, f"/home/user/project/_expyre/run_{job_id}", system=f"cluster{call % 3}",
                   status=statuses[(call + n) % len(statuses)], remote_dir=f"run_expyre/run_{job_id}")
            ids.append(job_id)
        call += 1
    return db, ids, prefixes


def timed(func: Callable[[int], object], repeat: int) -> Tuple[float, float]:
    """Median and 90th percentile, in ms, of ``repeat`` calls ``func(i)``."""
    func(0)  # warm up (statement cache, pages)
    times = []
    for i in range(repeat):
        start = time.perf_counter()
        func(i)
        times.append((time.perf_counter() - start) * 1000.0)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(0.9 * len(times)))]


def bench(size: int, repeat: int, workdir: Path, journal_mode: str,
          seed: int) -> Dict[str, Tuple[float, float]]:
    path = workdir / f"jobs_{size}_{journal_mode}.db"
    start = time.perf_counter()
    db, ids, prefixes = build(path, size, journal_mode)
    build_time = time.perf_counter() - start
    rng = random.Random(seed)
    pick = [rng.choice(ids) for _ in range(repeat + 1)]
    pick_prefix = [rng.choice(prefixes) for _ in range(repeat + 1)]
    statuses = ["submitted", "started", "succeeded"]

    def literal(i: int) -> None:
        found = list(db.jobs(id=re.escape(pick[i])))
        assert len(found) == 1

    def get(i: int) -> None:
        assert db.get(pick[i]) is not None

    def update(i: int) -> None:
        db.update(pick[i], status=statuses[i % len(statuses)], remote_status="R")

    def prefix(i: int) -> None:
        found = list(db.jobs(id=re.escape(pick_prefix[i]) + "_.*"))
        assert 1 <= len(found) <= JOBS_PER_CALL

    def scan(i: int) -> None:
        list(db.jobs(id=f"{NAMES[i % len(NAMES)]}_[0-9a-f]+_[0-3]"))

    results = {
        "jobs(id=re.escape(id))": timed(literal, repeat),
        "get(id)": timed(get, repeat),
        "update(id, status=...)": timed(update, repeat),
        "jobs(id=re.escape(prefix)+'_.*')": timed(prefix, repeat),
        "jobs(id=general regexp) [scan]": timed(scan, max(10, repeat // 10)),
    }
    print(f"  built {size} jobs in {build_time:.2f} s ({1000 * build_time / size:.3f} ms per add)",
          flush=True)
    db.close()
    return results


def main(argv: List[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000], help="database sizes")
    parser.add_argument("--repeat", type=int, default=200, help="timed calls per operation")
    parser.add_argument("--journal-mode", default="WAL", help="JobsDB journal_mode (WAL or DELETE)")
    parser.add_argument("--dir", type=Path, default=None,
                        help="where to build the databases (default: a temporary directory)")
    parser.add_argument("--seed", type=int, default=12345)
    args = parser.parse_args(argv)

    print(f"Python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}, "
          f"journal_mode={args.journal_mode}, {args.repeat} repetitions; times in ms, median / p90")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        table: Dict[int, Dict[str, Tuple[float, float]]] = {}
        for size in args.sizes:
            table[size] = bench(size, args.repeat, Path(tmp), args.journal_mode, args.seed)

    ops = list(next(iter(table.values())))
    width = max(len(op) for op in ops)
    header = f"{'operation':<{width}}" + "".join(f"{f'{size} jobs':>20}" for size in args.sizes)
    print()
    print(header)
    print("-" * len(header))
    for op in ops:
        cells = "".join(f"{f'{table[size][op][0]:.4f} / {table[size][op][1]:.4f}':>20}"
                        for size in args.sizes)
        print(f"{op:<{width}}{cells}")


if __name__ == "__main__":
    main()
