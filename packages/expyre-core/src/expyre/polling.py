"""When a system may next be asked about its jobs: one poll schedule per system per process.

Each :class:`expyre.system.System` holds one :class:`PollSchedule`. Every ``get_results`` call in
a process that waits on jobs of the same system shares it, so many callers (a loop over 200 jobs,
or threads) make at most one status query per interval between them, and the back-off continues
from one call to the next instead of starting again at a fraction of a second. A new submission to
the system starts the back-off again, so a job started after a long wait is still looked at soon.
"""
from __future__ import annotations

import threading
import time

#: Shortest time between two status queries of a system reached over the network: no caller,
#: whatever its ``check_interval``, can make expyre query a remote scheduler more often.
MIN_INTERVAL_REMOTE = 1.0
#: The same for a system on this machine (a directory listing, not a scheduler query).
MIN_INTERVAL_LOCAL = 0.1
#: The first wait after a submission, before the back-off doubles it up to ``check_interval``.
FIRST_INTERVAL = 0.25


class PollSchedule:
    """The poll timing of one system.

    Parameters
    ----------
    remote: bool
        the system is reached over the network (has a host), so :data:`MIN_INTERVAL_REMOTE`
        applies rather than :data:`MIN_INTERVAL_LOCAL`
    """

    def __init__(self, remote: bool):
        self.min_interval = MIN_INTERVAL_REMOTE if remote else MIN_INTERVAL_LOCAL
        self._interval = max(FIRST_INTERVAL, self.min_interval)
        self._last_query = float("-inf")
        self._lock = threading.Lock()

    def seconds_until_due(self) -> float:
        """Seconds until the next query may be made (0 if it may be made now)."""
        with self._lock:
            return max(0.0, self._last_query + self._interval - time.monotonic())

    def claim(self, max_interval: float) -> bool:
        """Take the next query if it is due now, and push the one after it back.

        Parameters
        ----------
        max_interval: float
            longest time the back-off may reach (the caller's ``check_interval``)

        Returns
        -------
        bool
            True if the caller should query now; False if another query was made too recently
        """
        with self._lock:
            now = time.monotonic()
            if now < self._last_query + self._interval:
                return False
            self._last_query = now
            self._interval = max(self.min_interval, min(self._interval * 2, max_interval))
            return True

    def restart(self) -> None:
        """Start the back-off again (a job was just submitted): the next query is due soon, but
        never sooner than the minimum interval after the last one."""
        with self._lock:
            self._interval = max(FIRST_INTERVAL, self.min_interval)
