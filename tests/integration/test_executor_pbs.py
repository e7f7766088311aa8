"""``expyre.Executor`` with job arrays on the PBS plugin, against Slurm's real Torque front end
(tests/services/40-pbs.sh, the account ``xpr-pbs`` through the real sshd; see test_pbs.py).

The arrays are submitted with the front end's own ``qsub -t 0-N%M`` and run with only
``SLURM_ARRAY_TASK_ID`` set; the front end's ``qstat -f`` lists each task as a job of its own
under the array's name, which is how the submissions are counted here. PBS Professional's
``qsub -J`` and Torque's ``PBS_ARRAYID`` cannot run here (tests/unit/test_pbs_arrays.py covers
them on documented output, and runs the array script with each PBS's index variable).
"""
# ruff: noqa: F811
import concurrent.futures
import shlex
import time
from collections import Counter

import pytest
from sshd_fixtures import ssh_client_setup, sshd  # noqa: F401  (pytest fixtures)
from test_pbs import ONE_CORE, pbs_host, pbs_system, site  # noqa: F401  (pytest fixtures)

from expyre import Executor, ExPyReRemoteTraceback
from expyre.arrays import array_name
from expyre_pbs import names, parse

pytestmark = pytest.mark.integration


@pytest.fixture
def remote(expyre_config, pbs_host, site):
    return expyre_config({"remote": pbs_system(site, pbs={"max_array_size": 3})})


def listed_tasks(site, rows):
    """How many jobs the front end's ``qstat -f`` lists under the name of each array of ``rows``."""
    names_of_arrays = {names.job_name(array_name(row["id"])) for row in rows}
    records = parse.parse_qstat_full(site.run("qstat -f -1").stdout).records.values()
    return Counter(record.name for record in records if record.name in names_of_arrays)


def test_map_as_arrays_split_at_max_size_exception_and_cancel_of_one_task(remote, site):
    class ModelError(RuntimeError):  # defined here: pickled by value, as a user's script's would be
        pass

    def model(x):
        if x < 0:
            raise ModelError(f"negative input {x}")
        time.sleep(x / 10)
        return x * x

    def nap(seconds):
        time.sleep(seconds)
        return seconds

    with Executor("remote", resources=ONE_CORE, partial_node=True, check_interval=0.5, quiet=True,
                  max_parallel=1) as ex:
        results = ex.map(model, [0, 1, 2, 3, 4, 5, 6, -7], timeout=180)
        assert [next(results) for _ in range(7)] == [0, 1, 4, 9, 16, 25, 36]  # in order
        with pytest.raises(ModelError, match="negative input -7") as raised:
            next(results)
        assert type(raised.value) is ModelError
        assert isinstance(raised.value.__cause__, ExPyReRemoteTraceback)
        rows = list(remote.db.jobs())
        assert len(rows) == 8
        # 8 calls, at most 3 tasks per array: arrays of 3, 3 and 2, each task with its own Slurm id
        arrays_by_id = Counter(row["remote_id"].split("_")[0] for row in rows)
        assert sorted(arrays_by_id.values()) == [2, 3, 3]
        assert sorted(listed_tasks(site, rows).values()) == [2, 3, 3]  # what the front end lists

        with ex.batch():  # one array of 2, one task at a time: the second waits while the first runs
            running = ex.submit(nap, 60)
            waiting = ex.submit(nap, 0)
        assert waiting.remote_id.split("_")[0] == running.remote_id.split("_")[0]
        assert not waiting.done() and waiting.cancel() and waiting.cancelled()
        assert running.cancel()  # and the running task too: the array is over
        done, _ = concurrent.futures.wait([running, waiting], timeout=5)
        assert done == {running, waiting}
    # 200 calls, 25 to a job: 8 jobs, as arrays of at most 3 tasks; every result in order
    with Executor("remote", resources=ONE_CORE, partial_node=True, check_interval=0.5, quiet=True) as ex:
        assert list(ex.map(abs, range(-200, 0), chunksize=25, timeout=180)) == list(range(200, 0, -1))
    array_id = running.remote_id.split("_")[0]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        listing = site.run(f"squeue --noheader --array --states=all --jobs={array_id} --format='%i %t'").stdout
        states = dict(line.split() for line in listing.split("\n") if line.strip())
        if set(states.values()) == {"CA"}:
            break
        time.sleep(0.5)
    assert set(states.values()) == {"CA"}, states  # every task of the array cancelled, none ran to its end
    directories = {f: shlex.quote(f"{site.home}/{remote.db.get(f.id)['remote_dir']}") for f in (running, waiting)}
    assert "_expyre_job_succeeded" not in site.run(f"ls -A {directories[running]}", check=False).stdout
    # the waiting task never started: its files (in the array's bundle) were never unpacked on the host
    assert site.run(f"test -e {directories[waiting]}", check=False).returncode == 1
