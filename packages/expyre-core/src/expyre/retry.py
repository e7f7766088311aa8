"""How often and how patiently to try again: ``EXPYRE_RETRY``, shared by transports and plugins."""
from __future__ import annotations

import os
from typing import Tuple


def retry_settings() -> Tuple[int, float]:
    """``(tries, first wait in seconds)`` from ``EXPYRE_RETRY`` (``"<tries> <seconds>"``).

    Default: 3 tries, 5 s before the second one; callers double the wait after each try.
    """
    raw = os.environ.get("EXPYRE_RETRY", "3 5").split()
    try:
        tries = int(raw[0]) if raw else 3
        wait = float(raw[1]) if len(raw) > 1 else 5.0
    except ValueError:
        raise ValueError(f"EXPYRE_RETRY must be '<tries> <seconds>', got {os.environ['EXPYRE_RETRY']!r}") from None
    return max(tries, 1), max(wait, 0.0)
