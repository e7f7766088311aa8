"""Cost of the per-host channel limit (``limits.max_channels``, expyre.channels).

    python benchmarks/bench_channels.py [--host HOST] [--repeat 7]

Prints medians over ``--repeat`` rounds of:

- the transfer path without the key: ``with channels.slot(system)`` (nanoseconds; commands
  without the key go to the transport's own shell, so they pay nothing at all, which is checked);
- taking and giving back a free slot with the key (microseconds);
- ``system.shell.run("true")`` on this machine (``local`` transport), without and with the key;
- with ``--host`` (a host in ``~/.ssh/config`` that the ``ssh`` transport reaches with the
  ``direct`` scheduler), the same command over SSH, without and with the key.

The slot files go to a temporary HOME, not to yours.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time


def per_call(function, count: int) -> float:
    """Seconds per call of ``function`` over ``count`` calls."""
    t0 = time.perf_counter()
    for _ in range(count):
        function()
    return (time.perf_counter() - t0) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", help="an ssh host for the remote measurement")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    real_home = os.environ["HOME"]
    home = tempfile.mkdtemp(prefix="expyre-bench-channels-")
    os.environ["HOME"] = home
    try:
        from expyre import channels
        from expyre.system import System

        def system(limit, host="cluster", transport="local"):
            limits = {"max_channels": limit} if limit else {}
            return System(name="bench", scheduler="direct", host=host, transport=transport, limits=limits)

        free, limited = system(None), system(4)
        assert not isinstance(free.shell, channels.LimitedShell), "without the key the shell must be the transport's"

        def slot_of(s):
            def enter_exit():
                with channels.slot(s):
                    pass
            return enter_exit

        rows = {"no key: slot() on a transfer [ns]": (lambda: per_call(slot_of(free), 100_000), 1e9),
                "key set: take and give back a free slot [us]": (lambda: per_call(slot_of(limited), 2_000), 1e6),
                "local run('true'), no key [ms]": (lambda: per_call(lambda: free.shell.run("true"), 50), 1e3),
                "local run('true'), key set [ms]": (lambda: per_call(lambda: limited.shell.run("true"), 50), 1e3)}
        if args.host:
            os.environ["HOME"] = real_home  # the user's ~/.ssh for the login; slots then in their ~/.expyre
            remote_free, remote_limited = system(None, args.host, "ssh"), system(4, args.host, "ssh")
            remote_free.shell.run("true")  # the login is not the limit's cost
            remote_limited.shell.run("true")
            rows["ssh run('true'), no key [ms]"] = (lambda: per_call(lambda: remote_free.shell.run("true"), 20), 1e3)
            rows["ssh run('true'), key set [ms]"] = (lambda: per_call(lambda: remote_limited.shell.run("true"), 20),
                                                     1e3)
        results = {name: [] for name in rows}
        for _ in range(args.repeat):
            for name, (measure, scale) in rows.items():
                results[name].append(measure() * scale)
        for name, values in results.items():
            print(f"{name:50s} median {statistics.median(values):10.3f}  (min {min(values):.3f}, "
                  f"max {max(values):.3f}, {args.repeat} rounds)")
    finally:
        os.environ["HOME"] = real_home
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
