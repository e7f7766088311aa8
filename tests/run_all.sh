#!/usr/bin/env bash
# Install what the tests need, start the local services they use (none yet: the core's tests
# run real jobs on this machine), and run the whole suite.
#
#   tests/run_all.sh [pytest arguments]
#
# Idempotent: a second run reuses the virtual environment in .venv and the running services.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e packages/expyre-core -e tests/site_plugin pytest numpy

set +e
.venv/bin/python -m pytest -rs "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
    echo "pytest collected no tests" >&2
fi
exit "$status"
