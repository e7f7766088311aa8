"""What ``get_results`` shows while it waits: one updating line on a terminal, occasional plain
lines otherwise, nothing when quiet."""
from __future__ import annotations

import os
import shutil
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
            # a line that wraps cannot be rewritten in place: keep it one column short of the width
            text = fit_status_line(self.job_id, state, _format_elapsed(elapsed), _terminal_width(self.stream) - 1)
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


def _terminal_width(stream: TextIO) -> int:
    """Columns of the terminal ``stream`` writes to (``COLUMNS`` wins, as for shutil)."""
    if not os.environ.get("COLUMNS"):
        try:
            return os.get_terminal_size(stream.fileno()).columns or 80
        except (AttributeError, ValueError, OSError):
            pass
    return shutil.get_terminal_size().columns


def fit_status_line(job_id: str, state: str, waited: str, width: int) -> str:
    """The waiting line in at most ``width`` characters.

    The job id is shortened in the middle first (its start names the job, its end tells apart
    jobs of the same name); the line is cut at the end only when even that does not fit.
    """
    def line(shown_id: str) -> str:
        return f"expyre: job {shown_id}: {state}, waited {waited}"

    text = line(job_id)
    excess = len(text) - width
    if excess > 0:
        keep = len(job_id) - excess - 3
        if keep >= 8:
            head = (keep + 1) // 2
            text = line(job_id[:head] + "..." + job_id[len(job_id) - (keep - head):])
        else:
            text = f"expyre: {state}, waited {waited}"
    return text[:max(width, 1)]


def interrupted_error(job_id: str, system_name: Optional[str]) -> KeyboardInterrupt:
    """The KeyboardInterrupt ``get_results`` raises on Ctrl-C: one line saying what became of the job.

    The job is not cancelled: it keeps running on its system, a rerun of the script re-attaches
    to it, and ``xpr cancel`` stops it.
    """
    where = f" on system '{system_name}'" if system_name else ""
    return KeyboardInterrupt(f"stopped waiting; expyre job {job_id} keeps running{where}. Rerun the "
                             f"script to re-attach to it, or cancel it with: xpr cancel -i {job_id}")


def _format_elapsed(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
