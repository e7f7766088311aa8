"""What is shown while many jobs are waited on: one line of totals (queued, running, done, failed,
elapsed) that fits the terminal and is updated in place; plain lines now and then when stderr is
not a terminal; nothing when quiet."""
from __future__ import annotations

import os
import shutil
import sys
import time
from typing import Mapping, Optional, TextIO

from .progress import _format_elapsed

#: The totals shown, in order, with their long and short labels.
FIELDS = (("queued", "q"), ("running", "r"), ("done", "d"), ("failed", "f"))


def format_totals(counts: Mapping[str, int], elapsed: float, width: int) -> str:
    """The line for ``counts`` (``queued``, ``running``, ``done``, ``failed``), at most
    ``width - 1`` characters: the long form if it fits, else a short one, else cut."""
    total = sum(counts.get(key, 0) for key, _ in FIELDS)
    waited = _format_elapsed(elapsed)
    long = (f"expyre: {total} jobs: " + ", ".join(f"{counts.get(key, 0)} {key}" for key, _ in FIELDS)
            + f", {waited}")
    limit = max(width - 1, 10)
    if len(long) <= limit:
        return long
    short = f"expyre {total}: " + " ".join(f"{label}{counts.get(key, 0)}" for key, label in FIELDS) + f" {waited}"
    return short[:limit]


def _terminal_width(stream: TextIO) -> int:
    """Columns of the terminal ``stream`` writes to (``$COLUMNS`` wins, as for ``shutil``)."""
    try:
        return int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        pass
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError):
        return shutil.get_terminal_size().columns


class ManyProgress:
    """Totals display for many jobs being waited on.

    Parameters
    ----------
    quiet: bool
        show nothing
    stream: file, default sys.stderr
    plain_interval: float, default 60
        seconds between plain lines when ``stream`` is not a terminal
    """

    def __init__(self, quiet: bool = False, stream: Optional[TextIO] = None, plain_interval: float = 60.0):
        self.quiet = quiet
        self.stream = stream if stream is not None else sys.stderr
        self.is_tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.plain_interval = plain_interval
        self.start = time.monotonic()
        self._last_plain: Optional[float] = None
        self._line_open = False

    def update(self, counts: Mapping[str, int]) -> None:
        """Show the totals ``counts`` (``queued``, ``running``, ``done``, ``failed``)."""
        if self.quiet:
            return
        elapsed = time.monotonic() - self.start
        if self.is_tty:
            width = _terminal_width(self.stream)
            self.stream.write("\r\033[K" + format_totals(counts, elapsed, width))
            self._line_open = True
        elif self._last_plain is None or elapsed - self._last_plain >= self.plain_interval:
            self.stream.write(format_totals(counts, elapsed, 10**6) + "\n")
            self._last_plain = elapsed
        else:
            return
        self.stream.flush()

    def finish(self, counts: Optional[Mapping[str, int]] = None) -> None:
        """Show the final totals (if given) and end the updating line."""
        if self.quiet:
            return
        if counts is not None:
            self._last_plain = None
            self.update(counts)
        if self._line_open:
            self.stream.write("\n")
            self.stream.flush()
            self._line_open = False
