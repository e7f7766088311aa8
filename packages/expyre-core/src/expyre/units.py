"""Time and memory units used in config files and resource requests.

Times are kept in seconds and memory in kB (1 MB = 1024 kB) everywhere inside expyre; these
functions turn what a user writes (``"48h"``, ``"2-00:00:00"``, ``"50GB"``) into those numbers.
The string ``"_none_"`` (any case) means "no limit" and becomes None, so that TOML files, which
have no null, can say it too.
"""
from __future__ import annotations

import re
from typing import Optional, Union

NONE_WORD = "_none_"

_NUMBER = r"(\d+(?:\.\d*)?|\.\d+)"
_TIME_WITH_UNIT = re.compile(rf"^{_NUMBER}\s*([smhd])$")
_TIME_CLOCK = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")
_MEM_WITH_UNIT = re.compile(rf"^{_NUMBER}\s*([kmgt])b?$")

_SECONDS_PER = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_KB_PER = {"k": 1, "m": 1024, "g": 1024 ** 2, "t": 1024 ** 3}

_TIME_FORMS = "expected e.g. '90s', '30m', '1.5h', '2d', '1-12:00:00', '1:30:00', '30:00' or '_none_'"
_MEM_FORMS = "expected e.g. '512mb', '50GB', '1.5t', '2048k' or '_none_'"


def _reject_bool(value: object, what: str) -> None:
    if isinstance(value, bool):
        raise ValueError(f"cannot parse {what} {value!r}")


def time_to_sec(t: Union[int, str, None]) -> Optional[int]:
    """Convert a time to seconds.

    Parameters
    ----------
    t: int, str or None
        * None or int: returned unchanged (int is already in seconds)
        * ``"<float>[smhd]"``: seconds, minutes, hours or days (case-insensitive), e.g. ``"1.5h"``
        * ``"[<days>-]HH:MM:SS"``, ``"MM:SS"`` or ``"SS"``, e.g. ``"2-12:00:00"``
        * ``"_none_"``: no limit, None

    Returns
    -------
    int or None
        seconds

    Raises
    ------
    ValueError
        when ``t`` has none of these forms; the message names the value
    """
    _reject_bool(t, "time")
    if t is None or isinstance(t, int):
        return t
    if not isinstance(t, str):
        raise ValueError(f"cannot parse time {t!r} ({_TIME_FORMS})")
    text = t.strip().lower()
    if text == NONE_WORD:
        return None
    m = _TIME_WITH_UNIT.match(text)
    if m is not None:
        return int(float(m.group(1)) * _SECONDS_PER[m.group(2)])
    m = _TIME_CLOCK.match(text)
    if m is not None:
        return _clock_to_sec(m)
    raise ValueError(f"cannot parse time {t!r} ({_TIME_FORMS})")


def _clock_to_sec(m: re.Match) -> int:
    days = int(m.group(1)) if m.group(1) is not None else 0
    seconds = 0
    for part in m.group(2, 3, 4):
        if part is not None:
            seconds = seconds * 60 + int(part)
    return days * 86400 + seconds


def mem_to_kB(mem: Union[int, str, None]) -> Optional[int]:
    """Convert an amount of memory to kB.

    Parameters
    ----------
    mem: int, str or None
        * None or int: returned unchanged (int is already in kB)
        * ``"<float>[kmgt]b?"``: kB, MB, GB or TB (case-insensitive, 1 MB = 1024 kB), e.g. ``"50GB"``
        * ``"_none_"``: no limit, None

    Returns
    -------
    int or None
        kB

    Raises
    ------
    ValueError
        when ``mem`` has none of these forms; the message names the value
    """
    _reject_bool(mem, "memory")
    if mem is None or isinstance(mem, int):
        return mem
    if not isinstance(mem, str):
        raise ValueError(f"cannot parse memory {mem!r} ({_MEM_FORMS})")
    text = mem.strip().lower()
    if text == NONE_WORD:
        return None
    m = _MEM_WITH_UNIT.match(text)
    if m is None:
        raise ValueError(f"cannot parse memory {mem!r} ({_MEM_FORMS})")
    return int(float(m.group(1)) * _KB_PER[m.group(2)])


def time_to_HMS(seconds: Union[int, float]) -> str:
    """Format a number of seconds as ``H:MM:SS`` (hours are not wrapped at a day).

    Parameters
    ----------
    seconds: int or float
        non-negative number of seconds; a fraction is dropped

    Returns
    -------
    str
        e.g. ``"1:00:00"`` for 3600, ``"25:01:01"`` for 90061
    """
    _reject_bool(seconds, "seconds")
    total = int(seconds)
    if total < 0:
        raise ValueError(f"cannot format a negative time {seconds!r} as H:MM:SS")
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


_DURATION = re.compile(r"^(?:(?:(\d+):)?(\d+):)?(\d+(?:\.\d+)?)s?$")


def duration_seconds(value: Optional[str]) -> Optional[float]:
    """Seconds in a duration as schedulers print them (PBS's ``resources_used.walltime``, Grid
    Engine's ``ru_wallclock`` and ``h_rt``): ``[[H:]M:]S``, ``S.F`` or ``Ss``.

    Lenient where :func:`time_to_sec` is strict: it reads a scheduler's output, so what it cannot
    read gives None (nothing is concluded from it) instead of an error.
    """
    match = _DURATION.match(str(value).strip()) if value is not None else None
    if match is None:
        return None
    hours, minutes, seconds = match.groups()
    total = int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(seconds)
    return int(total) if total.is_integer() else total
