"""The Grid Engine plugin's job arrays, on output captured from the real Son of Grid Engine of
tests/services/30-sge.sh (tests/fixtures/sge/, made by tests/fixtures/sge/capture.py), replayed
by :class:`ReplayShell` (a fake shell: no Grid Engine is involved in these tests)."""
from pathlib import Path

from shells import ReplayShell

import expyre_sge
from expyre import CommandResult, JobSpec, arrays
from expyre_sge import parse

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "sge"


def captured(name: str) -> str:
    text = (FIXTURES / name).read_text()
    first, _, rest = text.partition("\n")
    assert first.startswith("# "), f"{name} lacks its header line"
    return rest


def replay(outputs):
    """A ReplayShell answering each command with the output of the first ``(fragment, text)``
    whose fragment it contains, as a sectioned answer where sections are asked for."""
    def answer(command):
        for fragment, text in outputs:
            if fragment in command:
                names = [line.split("'@xpr-end@ ")[1].split("'")[0] for line in command.splitlines()
                         if "'@xpr-end@ " in line]
                if names:
                    text = "".join(f"{text}\n@xpr-end@ {name} 0\n" for name in names)
                return CommandResult(command, 0, text, "")
        raise AssertionError(f"unexpected command: {command}")
    return ReplayShell(answer)


def test_max_aj_tasks_from_qconf():
    assert parse.parse_max_aj_tasks(captured("qconf_sconf.txt")) == 75000
    assert parse.parse_max_aj_tasks("max_aj_tasks                 0\n") is None  # 0: no limit
    assert parse.parse_max_aj_tasks("max_aj_instances 2000\n") is None


def test_array_support_asks_qconf_once_per_system():
    shell = replay([("qconf -sconf", captured("qconf_sconf.txt"))])
    answer = expyre_sge.array_support(scheduler="sge", shell=shell)
    assert answer == {"index_var": "SGE_TASK_ID", "first_index": 1, "max_size": 75000}
    assert arrays.ArraySupport.from_answer(answer, "sge").first_index == 1


def test_submit_array_gives_one_task_id_per_call(tmp_path):
    shell = replay([("qsub -t 1-3 -tc 2 _expyre_array_job.sh", captured("qsub_array_submitted.txt"))])
    job = JobSpec(id="f_1_array", name="f", remote_dir=str(tmp_path), partition="regular", node_dict={},
                  max_time=None, array_size=3)
    assert expyre_sge.submit_array(scheduler="sge", job=job, script="_expyre_array_job.sh", shell=shell,
                                   max_parallel=2) == ["3.1", "3.2", "3.3"]
    # each task id is one Grid Engine task: qdel of one task names it
    assert parse.split_remote_id("3.2") == ("3", 2)
