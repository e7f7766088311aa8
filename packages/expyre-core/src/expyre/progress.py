"""What ``get_results`` shows while it waits: one updating line on a terminal, occasional plain
lines otherwise, nothing when quiet."""
from __future__ import annotations

import sys
import time
from typing import Optional, TextIO


class Progress:
    """Status display for one job being waited on.

    Parameters
    ----------
    job_id: str
        the job being waited on
    quiet: bool
        show nothing
    stream: file, default sys.stderr
    plain_interval: float, default 60
        seconds between plain lines when ``stream`` is not a terminal (a line is also written
        whenever the state changes)
    """

    def __init__(self, job_id: str, quiet: bool = False, stream: Optional[TextIO] = None,
                 plain_interval: float = 60.0):
        self.job_id = job_id
        self.quiet = quiet
        self.stream = stream if stream is not None else sys.stderr
        self.is_tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.plain_interval = plain_interval
        self.start = time.monotonic()
        self._last_state: Optional[str] = None
        self._last_plain = 0.0
        self._line_open = False

    def update(self, state: str) -> None:
        """Show that the job is in ``state`` (for example ``queued``, ``running``)."""
        if self.quiet:
            return
        elapsed = time.monotonic() - self.start
        text = f"expyre: job {self.job_id}: {state}, waited {_format_elapsed(elapsed)}"
        if self.is_tty:
            self.stream.write("\r\033[K" + text)
            self._line_open = True
        elif state != self._last_state or elapsed - self._last_plain >= self.plain_interval:
            self.stream.write(text + "\n")
            self._last_plain = elapsed
        self._last_state = state
        self.stream.flush()

    def finish(self) -> None:
        """End the updating line, if one is shown."""
        if self._line_open:
            self.stream.write("\n")
            self.stream.flush()
            self._line_open = False


def _format_elapsed(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
