"""Access from tests to the local services that tests/run_all.sh started (tests/services/).

Each service script writes ``.test-services/NAME.env`` (KEY=VALUE lines). A test that needs a
service calls :func:`require_service`: if the service is not there the test is skipped, except
under CI (``CI=true``), where a missing service is a failure, so that CI never passes by
skipping the tests against real services.
"""
import os
from pathlib import Path
from typing import Dict

import pytest

REPO = Path(__file__).resolve().parent.parent
STATE_DIR = REPO / ".test-services"


def read_service(name: str) -> Dict[str, str]:
    """The KEY=VALUE pairs the service script printed; empty if it did not run or printed nothing."""
    path = STATE_DIR / f"{name}.env"
    if not path.is_file():
        return {}
    values = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip():
            values[key.strip()] = value
    return values


def require_service(name: str) -> Dict[str, str]:
    """The service's values, or skip (fail under CI) when the service is not available."""
    values = read_service(name)
    if values:
        return values
    message = (f"service '{name}' is not running: run tests/run_all.sh as root on a machine with apt "
               f"(it starts tests/services/*-{name}.sh)")
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message + " -- under CI the real-service tests must run")
    pytest.skip(message)
