#!/usr/bin/env bash
# Install what the tests need, start the local services they use, and run the whole suite.
#
#   tests/run_all.sh [pytest arguments]
#
# Idempotent: a second run reuses the virtual environment in .venv and the running services.
#
# Environment:
#   EXPYRE_WFL_FULL=1   the real-client test (tests/integration/test_wfl.py) runs every one of wfl's
#                       remote tests on Slurm, not only test_generic_calc, test_fail_immediately and
#                       test_resubmit_killed_jobs (on the direct scheduler it always runs them all);
#                       about 15 minutes more
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e packages/expyre-core -e packages/expyre-slurm -e packages/expyre-sge \
    -e packages/expyre-pbs -e tests/site_plugin -e docs/examples/expyre-example-scheduler \
    -e docs/examples/expyre-example-transport -r docs/requirements.txt pytest numpy

# Local services (sshd, schedulers): tests/services/NN-NAME.sh starts one, idempotently, and
# prints KEY=VALUE lines that the tests read from .test-services/NAME.env. A service that
# cannot be set up here (not root, no apt) prints nothing and its tests skip, except under CI.
mkdir -p .test-services
for service in tests/services/[0-9][0-9]-*.sh; do
    [ -e "$service" ] || continue
    name=$(basename "$service" .sh)
    name=${name#[0-9][0-9]-}
    echo "starting service $name" >&2
    bash "$service" > ".test-services/$name.env.tmp"
    mv ".test-services/$name.env.tmp" ".test-services/$name.env"
done

set +e
.venv/bin/python -m pytest -rs "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
    echo "pytest collected no tests" >&2
fi
exit "$status"
