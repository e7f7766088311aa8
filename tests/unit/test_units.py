"""Time and memory units as users write them in config files and resource requests."""
import pytest

from expyre.units import duration_seconds, mem_to_kB, time_to_HMS, time_to_sec


@pytest.mark.parametrize("spec, seconds", [
    (None, None),
    (3600, 3600),
    ("90s", 90),
    ("30m", 1800),
    ("30M", 1800),
    ("1.5h", 5400),
    ("168h", 168 * 3600),
    ("2d", 2 * 86400),
    (" 2 D ", 2 * 86400),
    ("1:00:00", 3600),
    ("48:00:00", 48 * 3600),
    ("1:05:00", 3900),
    ("00:30", 30),
    ("30:00", 1800),
    ("45", 45),
    ("2-1:10:05", 2 * 86400 + 3600 + 600 + 5),
    ("_none_", None),
    ("_NONE_", None),
])
def test_time_to_sec(spec, seconds):
    assert time_to_sec(spec) == seconds


@pytest.mark.parametrize("bad", ["1 fortnight", "1h30m", "", "-5s", "1:2:3:4", "h", 1.5, True, [1]])
def test_time_to_sec_rejects_and_names_value(bad):
    with pytest.raises(ValueError) as info:
        time_to_sec(bad)
    assert repr(bad) in str(info.value)


@pytest.mark.parametrize("spec, kB", [
    (None, None),
    (2048, 2048),
    ("512k", 512),
    ("512kb", 512),
    ("1mb", 1024),
    ("50GB", 50 * 1024 ** 2),
    ("1.5g", int(1.5 * 1024 ** 2)),
    ("1tb", 1024 ** 3),
    ("2T", 2 * 1024 ** 3),
    ("_none_", None),
])
def test_mem_to_kB(spec, kB):
    assert mem_to_kB(spec) == kB


@pytest.mark.parametrize("bad", ["50 gigs", "50", "GB", "5pb", 1.0, False])
def test_mem_to_kB_rejects_and_names_value(bad):
    with pytest.raises(ValueError) as info:
        mem_to_kB(bad)
    assert repr(bad) in str(info.value)


@pytest.mark.parametrize("seconds, hms", [
    (0, "0:00:00"),
    (59, "0:00:59"),
    (3600, "1:00:00"),
    (3661, "1:01:01"),
    (90061, "25:01:01"),
    (168 * 3600, "168:00:00"),
])
def test_time_to_HMS(seconds, hms):
    assert time_to_HMS(seconds) == hms


def test_time_round_trip():
    assert time_to_sec(time_to_HMS(123456)) == 123456


def test_time_to_HMS_rejects_negative():
    with pytest.raises(ValueError):
        time_to_HMS(-1)


@pytest.mark.parametrize("text, seconds", [
    ("01:02:03", 3723), ("2:03", 123), ("90", 90), ("6s", 6), ("6.25", 6.25), ("0:00:01.5", 1.5),
    (" 45 ", 45)])
def test_duration_seconds_reads_what_schedulers_print(text, seconds):
    assert duration_seconds(text) == seconds


@pytest.mark.parametrize("text", [None, "", "x", "1:2:3:4", "-5", "1h", "1::2"])
def test_duration_seconds_gives_none_for_what_it_cannot_read(text):
    assert duration_seconds(text) is None
