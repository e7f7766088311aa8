"""The Slurm plugin's job arrays, on output captured from the real Slurm 22.05 of
tests/services/20-slurm.sh (tests/fixtures/slurm/capture_arrays.py: array 2225 of four tasks, at
most one at a time, its last task cancelled while waiting), replayed by :class:`ReplayShell`
(a fake shell: no Slurm is involved in these tests)."""
from pathlib import Path

from shells import ReplayShell

import expyre_slurm
from expyre import CommandResult, JobSpec, RemoteJob
from expyre_slurm import parse

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "slurm"
TASKS = [f"2225_{n}" for n in range(4)]


def captured(name: str) -> str:
    text = (FIXTURES / name).read_text()
    first, _, rest = text.partition("\n")
    assert first.startswith("# "), f"{name} lacks its header line"
    return rest


def sectioned(command: str, text: str, rc: int = 0) -> str:
    """``text`` as the answer of every section ``command`` asks for."""
    names = [line.split("'@xpr-end@ ")[1].split("'")[0] for line in command.splitlines() if "'@xpr-end@ " in line]
    return "".join(f"{text}\n@xpr-end@ {name} {rc}\n" for name in names)


def tasks(*ids):
    return [RemoteJob(i, f"run/job{i}", f"job{i}") for i in ids]


def test_sbatch_array_answer_is_the_arrays_id():
    assert parse.parse_sbatch_output(captured("sbatch_array.txt")) == "2225"


def test_submit_array_gives_each_task_its_own_id(tmp_path):
    shell = ReplayShell(lambda c: CommandResult(c, 0, captured("sbatch_array.txt"), ""))
    job = JobSpec(id="f_1_array", name="f", remote_dir="run/f_1", partition="standard", node_dict={},
                  max_time=60, array_size=4)
    assert expyre_slurm.submit_array(scheduler="slurm", job=job, script="_expyre_array_job.sh", shell=shell,
                                     max_parallel=1) == TASKS
    assert "sbatch --array=0-3%1 _expyre_array_job.sh" in shell.commands[0]


def test_one_squeue_answers_for_every_task():
    shell = ReplayShell(lambda c: CommandResult(c, 0, captured("squeue_array_tasks.txt"), ""))
    states = expyre_slurm.status(scheduler="slurm", jobs=tasks(*TASKS), shell=shell)
    assert states == {"2225_0": "running", "2225_1": "queued", "2225_2": "queued", "2225_3": "queued"}
    assert len(shell.commands) == 1 and "squeue --array " in shell.commands[0]


def test_finished_tasks_and_a_cancelled_waiting_task_slurm_forgot():
    def answer(command):
        if command.lstrip().startswith("squeue") or "squeue --array" in command:
            return CommandResult(command, 0, captured("squeue_array_tasks_finished.txt"), "")
        # the second look, at the task squeue no longer lists: scontrol has no record of it
        return CommandResult(command, 0, sectioned(command, captured("scontrol_array_task_cancelled.txt"), 1), "")

    states = expyre_slurm.status(scheduler="slurm", jobs=tasks(*TASKS), shell=ReplayShell(answer))
    assert states == {"2225_0": "done", "2225_1": "done", "2225_2": "done", "2225_3": "other"}


def test_scontrol_record_of_a_task_answers_to_the_task_id():
    fields = parse.parse_scontrol_job(captured("scontrol_array_task_completed.txt"))
    assert fields["JobId"] == "2227" and parse.scontrol_job_id(fields) == "2225_1"
    assert parse.map_state(fields["JobState"]) == "done"
    assert parse.task_not_found(captured("scontrol_array_task_cancelled.txt"))
    assert not parse.task_not_found("Job 2225 not found in the reservation")


def test_waiting_tasks_listed_together_are_found_by_the_arrays_name():
    listed = parse.parse_squeue_names(captured("squeue_array_names.txt"))
    assert [job_id for job_id, *_ in listed] == ["2225_[1-3%1]", "2225_0"]
    assert sorted(set(expyre_slurm.SCHEDULER.parse_find({"squeue": (0, captured("squeue_array_names.txt"))},
                                                        "fx-array"))) == ["2225"]
    collapsed = parse.parse_squeue(captured("squeue_array_collapsed.txt"))
    assert collapsed.lookup("2225_0") == ("RUNNING", "None")


def test_max_array_size_from_scontrol_show_config():
    assert parse.parse_max_array_size(captured("scontrol_show_config.txt")) == 1001
    shell = ReplayShell(lambda c: CommandResult(c, 0, sectioned(c, captured("scontrol_show_config.txt")), ""))
    assert expyre_slurm.array_support(scheduler="slurm", shell=shell) == \
        {"index_var": "SLURM_ARRAY_TASK_ID", "first_index": 0, "max_size": 1001}
