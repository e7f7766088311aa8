"""Time ``ExPyRe(...)`` with a large numpy argument (default 200 MB).

    python benchmarks/bench_large_argument.py [--mb 200] [--repeat 5]

Prints the median time to create the job (pickle once, hash, write the stage directory), and,
for comparison, the time of the three steps done by hand: cloudpickle.dumps, sha256 and a
file write.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import tempfile
import time
from pathlib import Path

import cloudpickle
import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=200, help="argument size in MB (default 200)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    array = np.random.default_rng(0).random(args.mb * 1024 * 1024 // 8)

    from expyre import config
    from expyre.func import ExPyRe

    creates, by_hand = [], []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "config.json").write_text(json.dumps({"systems": {"bench": {
            "host": None, "scheduler": "direct", "partitions": {"regular": {"num_cores": 1}}}}}))
        config.init(tmp)
        for i in range(args.repeat):
            array[0] = i  # a new call each time: no restart from the previous one
            t0 = time.perf_counter()
            xpr = ExPyRe("large", function=np.sum, args=[array])
            creates.append(time.perf_counter() - t0)
            xpr.clean(wipe=True)

            t0 = time.perf_counter()
            data = cloudpickle.dumps(array)
            hashlib.sha256(data).digest()
            (root / "by_hand.pckl").write_bytes(data)
            by_hand.append(time.perf_counter() - t0)
    med = statistics.median
    print(f"ExPyRe(...) with a {args.mb} MB numpy argument: median {med(creates):.3f} s "
          f"(min {min(creates):.3f}, max {max(creates):.3f}, {args.repeat} runs)")
    print(f"by hand, cloudpickle.dumps + sha256 + write: median {med(by_hand):.3f} s")
    print(f"ratio ExPyRe / by hand: {med(creates) / med(by_hand):.2f}")


if __name__ == "__main__":
    main()
