"""``expyre.Executor`` on the real Son of Grid Engine of tests/services/30-sge.sh, through the real
sshd as the account that submits: calls started together go as Grid Engine array jobs
(``qsub -t``), split at a configured maximum array size."""
import time
from collections import Counter

import pytest
from test_sge import ONE_SLOT, site  # noqa: F401  (the site fixture)

from expyre import Executor

pytestmark = pytest.mark.integration


def test_batch_as_arrays_split_at_max_size_with_per_task_results_and_exceptions(site):  # noqa: F811
    class OddInput(ValueError):  # defined here: cloudpickle sends it by value
        pass

    def cube_even(x):
        if x % 2:
            print(f"odd input {x}")
            raise OddInput(f"odd input {x}")
        return x ** 3

    site.rewrite(sge={"max_array_size": 3})
    with Executor("remote", resources=ONE_SLOT, partial_node=True, check_interval=0.5, quiet=True) as ex:
        with ex.batch():
            futures = [ex.submit(cube_even, x) for x in range(8)]
        assert [f.result(timeout=300) for f in futures[::2]] == [0, 8, 64, 216]
        for f in futures[1::2]:
            exc = f.exception(timeout=300)
            assert type(exc) is OddInput and str(exc) == f"odd input {futures.index(f)}"
        assert futures[3].stdout == "odd input 3\n"               # each task's own output
        # 200 calls, 25 to a job: 8 jobs, as arrays of 3, 3 and 2 tasks; every result in order
        assert list(ex.map(abs, range(-200, 0), chunksize=25)) == list(range(200, 0, -1))
    rows = [row for row in site.config.db.jobs() if row["name"] == "cube_even"]
    numbers = Counter(row["remote_id"].split(".")[0] for row in rows)
    assert sorted(numbers.values()) == [2, 3, 3]           # 8 calls: arrays of 3, 3 and 2 tasks
    tasks = sorted((int(n), int(t)) for n, t in (row["remote_id"].split(".") for row in rows))
    assert [t for _, t in tasks] == [1, 2, 3, 1, 2, 3, 1, 2]  # Grid Engine counts tasks from 1
    # Grid Engine ran each task once: one accounting record per task
    for number in numbers:
        text = site.accounting(number)
        deadline = time.monotonic() + 30
        while text.count("taskid") < numbers[number] and time.monotonic() < deadline:
            time.sleep(0.5)
            text = site.run(f"qacct -j {number}", check=False)
        assert sorted(line.split()[1] for line in text.splitlines() if line.startswith("taskid")) == \
            [str(t) for t in range(1, numbers[number] + 1)]
