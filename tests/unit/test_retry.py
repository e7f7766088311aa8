"""EXPYRE_RETRY: how often transports and plugins try again."""
import pytest

from expyre.retry import retry_settings


def test_retry_settings(monkeypatch):
    monkeypatch.setenv("EXPYRE_RETRY", "5 0.5")
    assert retry_settings() == (5, 0.5)
    monkeypatch.delenv("EXPYRE_RETRY")
    assert retry_settings() == (3, 5.0)
    monkeypatch.setenv("EXPYRE_RETRY", "x")
    with pytest.raises(ValueError, match="EXPYRE_RETRY"):
        retry_settings()
