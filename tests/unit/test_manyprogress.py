"""The totals line shown while many jobs are waited on."""
import io

from expyre.manyprogress import ManyProgress, format_totals

COUNTS = {"queued": 120, "running": 2, "done": 870, "failed": 8}


def test_long_form_when_it_fits():
    assert format_totals(COUNTS, 190, 80) == "expyre: 1000 jobs: 120 queued, 2 running, 870 done, 8 failed, 3m10s"


def test_short_form_and_cut_to_narrow_terminals():
    assert format_totals(COUNTS, 190, 40) == "expyre 1000: q120 r2 d870 f8 3m10s"
    for width in (10, 20, 30, 40, 60, 68, 69, 200):
        assert len(format_totals(COUNTS, 190, width)) <= max(width - 1, 10)


class TerminalStream(io.StringIO):
    """A stream that says it is a terminal (stands in for a real one in this unit test)."""

    def isatty(self):
        return True


def test_terminal_line_updated_in_place(monkeypatch):
    monkeypatch.setenv("COLUMNS", "40")
    stream = TerminalStream()
    progress = ManyProgress(stream=stream)
    progress.update(COUNTS)
    progress.update(dict(COUNTS, done=871, queued=119))
    progress.finish()
    text = stream.getvalue()
    assert text.count("\r\033[K") == 2 and text.endswith("\n") and text.count("\n") == 1
    assert all(len(part.rstrip("\n")) <= 39 for part in text.split("\r\033[K"))


def test_plain_lines_now_and_then_and_nothing_when_quiet():
    stream = io.StringIO()
    progress = ManyProgress(stream=stream, plain_interval=3600)
    for n in range(5):
        progress.update(dict(COUNTS, done=870 + n))
    progress.finish(dict(COUNTS, done=880, queued=110))
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and "870 done" in lines[0] and "880 done" in lines[1] and "\r" not in stream.getvalue()
    quiet = io.StringIO()
    progress = ManyProgress(quiet=True, stream=quiet)
    progress.update(COUNTS)
    progress.finish(COUNTS)
    assert quiet.getvalue() == ""
