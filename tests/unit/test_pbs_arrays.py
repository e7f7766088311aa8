"""Job arrays in the PBS plugin (:mod:`expyre_pbs.arrays`), on output of both dialects.

* tests/fixtures/pbs/torque/ (``qsub_array.txt``, ``array_task_env.txt``, ``qstat*_array.txt``,
  ``squeue_array*.txt``, ``scancel_array_task.txt``, ``qdel_array_task.txt``,
  ``scontrol_show_config.txt``): REAL output of Slurm's Torque front end, captured by
  tests/fixtures/pbs/torque/capture_arrays.py as the account of tests/services/40-pbs.sh.
* tests/fixtures/pbs/pbspro/: PBS Professional output composed from the OpenPBS manual pages
  (each file's ``# `` header names its sources): ``qsub_output.txt`` (an array's id
  ``123[].ServerA``), ``qstat_xf_history.txt`` (subjob records ``140[1].ServerA``),
  ``qstat_Bf.txt`` and ``qstat_Bf_default.txt`` (the server's ``max_array_size``).

The array script is run for real by bash with the index variables each PBS sets.
"""
import os
import subprocess

import pytest
from shells import ReplayShell
from test_pbs_parse import a_system, fixture, header_command, jobs_for, shell_for

import expyre_pbs
from expyre import CommandResult, JobSpec
from expyre import arrays as core_arrays
from expyre_pbs import arrays, dialect, parse
from expyre_pbs.parse import END_MARKER

FRONT_END, TORQUE, PBSPRO = dialect.for_name("slurm-torque"), dialect.for_name("torque"), dialect.for_name("pbspro")


def torque(name):
    return fixture("torque", name)


def pbspro(name):
    return fixture("pbspro", name)


# =========================================================================== what each PBS is told

def test_front_end_is_told_apart_from_torque_by_its_answer_to_version():
    found = dialect.parse_version(torque("qstat_version.txt"), 2)
    assert (found.name, found.slurm) == ("torque", True)
    assert dialect.parse_version("Version: 6.1.3\n", 0).slurm is False
    assert dialect.parse_version("qstat: usage: qstat [-f] ...\n", 2).slurm is False  # some other qstat
    assert dialect.for_name("slurm-torque") == dialect.Dialect("torque", slurm=True)


@pytest.mark.parametrize("pbs, count, limit, command", [
    (PBSPRO, 4, None, "qsub -r y -J 0-3 _expyre_array.sh"),
    (PBSPRO, 4, 2, "qsub -r y -J 0-3%2 _expyre_array.sh"),
    (PBSPRO, 1, 2, "qsub -r y -J 0-1:2 _expyre_array.sh"),  # -J wants a range: one index is 0-1 in steps of 2
    (TORQUE, 3, None, "qsub -t 0-2 _expyre_array.sh"),
    (TORQUE, 3, 1, "qsub -t 0-2%1 _expyre_array.sh"),
    (FRONT_END, 1, 1, "qsub -t 0-0 _expyre_array.sh"),
])
def test_array_submit_commands(pbs, count, limit, command):
    assert arrays.submit_command(pbs, "_expyre_array.sh", count, limit) == command


def test_front_end_qsub_t_prints_the_bare_array_id_and_tasks_get_slurm_ids():
    assert header_command("qsub_array.txt") == "qsub -t 0-3%1 fx-array.sh"
    array_id = parse.parse_qsub_output(torque("qsub_array.txt"))
    assert array_id.isdigit()
    assert arrays.task_ids(array_id, 3) == [f"{array_id}_0", f"{array_id}_1", f"{array_id}_2"]


def test_pbs_array_ids_give_subjob_ids():
    array_id = parse.parse_qsub_output(pbspro("qsub_output.txt").split("\n")[2])
    assert array_id == "123[].ServerA"
    assert arrays.task_ids(array_id, 2) == ["123[0].ServerA", "123[1].ServerA"]
    assert arrays.task_ids("77[]", 1) == ["77[0]"]
    with pytest.raises(parse.OutputError, match="not the id of an array"):
        arrays.task_ids("123.ServerA", 2)


# =========================================================================== the task index

def test_front_end_sets_only_slurms_index_variable():
    assert torque("array_task_env.txt").split() == ["SLURM_ARRAY_TASK_ID=0"]


@pytest.mark.parametrize("variable", arrays.INDEX_VARS)
def test_array_script_runs_the_task_whichever_variable_the_pbs_sets(tmp_path, variable):
    tasks = []
    for n in range(3):
        (tmp_path / f"t{n}").mkdir()
        (tmp_path / f"t{n}" / "_expyre_job.sh").write_text("touch ran\n")
        tasks.append(JobSpec(id=f"t{n}", name="f", remote_dir=str(tmp_path / f"t{n}"), partition="p", node_dict={},
                             max_time=60))
    support = core_arrays.ArraySupport.from_answer(
        {"index_var": list(expyre_pbs.PBS.array_index_var), "first_index": expyre_pbs.PBS.array_first_index}, "pbs")
    (tmp_path / "array.sh").write_text(core_arrays.array_script(script_exec="/bin/bash", header=[], support=support,
                                                                tasks=tasks))
    env = {k: v for k, v in os.environ.items() if k not in arrays.INDEX_VARS}
    done = subprocess.run(["bash", str(tmp_path / "array.sh")], env={**env, variable: "1"}, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    assert [(tmp_path / f"t{n}" / "ran").exists() for n in range(3)] == [False, True, False]


# =========================================================================== states of the tasks

def test_front_end_qstat_cannot_name_tasks():
    # why the front end's tasks are asked of squeue: no qstat -t, and a record without its index
    assert torque("qstat_t_array.txt").startswith("Unknown option: t")
    record = parse.parse_qstat_full(torque("qstat_f_array.txt")).records
    assert list(record) == [header_command("qstat_f_array.txt").split()[-1]]
    assert not any("array" in key.lower() for key in next(iter(record.values())).attributes)


def front_end_tasks():
    array_id = parse.parse_qsub_output(torque("qsub_array.txt"))
    return arrays.task_ids(array_id, 4)


def test_front_end_task_states_from_squeue():
    tasks = front_end_tasks()
    assert arrays.task_states(torque("squeue_array.txt"), tasks) == dict(
        zip(tasks, ["running", "queued", "queued", "queued"]))
    # the waiting last task, cancelled with scancel, is no longer listed: over (its markers tell)
    assert arrays.task_states(torque("squeue_array_task_cancelled.txt"), tasks) == dict(
        zip(tasks, ["done", "queued", "queued", "other"]))


def test_front_end_qdel_of_one_task_cancels_the_whole_array():
    # the reason single tasks are cancelled with scancel: qdel reads "ID[1]" as the number ID
    tasks = front_end_tasks()
    assert "isn't numeric" in torque("qdel_array_task.txt")
    assert arrays.task_states(torque("squeue_array_qdel.txt"), tasks) == dict(
        zip(tasks, ["done", "failed", "failed", "other"]))
    assert torque("scancel_array_task.txt").strip() == ""


def test_squeue_ranges_and_garbled_lines():
    listed = arrays.parse_squeue("|70_[2-4,7%2]|PD|fx|\n|70_0|R|fx|\n|71|CD|single|\n")
    assert {k: v[0] for k, v in listed.items()} == {"70_2": "queued", "70_3": "queued", "70_4": "queued",
                                                    "70_7": "queued", "70_0": "running", "71": "done"}
    assert arrays.find_arrays("|70_[2-4]|PD|fx|\n|70_0|R|fx|\n|71|CD|other|\n", "fx") == ["70"]
    with pytest.raises(parse.OutputError, match="cannot be read"):
        arrays.parse_squeue("|70_0|R|fx|\n|70_1|P")


def test_status_hook_asks_squeue_for_front_end_tasks_and_qstat_for_the_rest():
    tasks = front_end_tasks()
    single = header_command("qstat_f_queued.txt").split()[-1]

    def reply(command):
        return CommandResult(command, 0, f"{torque('qstat_f_queued.txt')}\n{END_MARKER} qstat 0\n"
                                         f"{torque('squeue_array_task_cancelled.txt')}\n{END_MARKER} squeue 0\n", "")
    shell = shell_for("torque", reply)
    states = expyre_pbs.status("pbs", jobs_for(single, *tasks), shell, system=a_system())
    assert states == {single: "queued", **dict(zip(tasks, ["done", "queued", "queued", "other"]))}
    assert f"qstat -f -1 {single}\n" in shell.commands[-1] and "squeue --noheader --array" in shell.commands[-1]


def test_pbspro_subjobs_are_asked_by_their_own_ids():
    listed = parse.parse_qstat_full(pbspro("qstat_xf_history.txt"))
    assert parse.map_state(listed.lookup("140[1].ServerA"), "pbspro") == "done"
    assert parse.map_state(listed.lookup("140[2]"), "pbspro") == "running"
    commands = expyre_pbs.commands.status_commands(PBSPRO, ["140[1].ServerA", "140[2].ServerA"])
    assert commands == {"qstat": "qstat -x -f -F json '140[1].ServerA' '140[2].ServerA'"}


# =========================================================================== cancel, find

def test_cancel_one_front_end_task_with_scancel_and_pbs_subjobs_with_qdel():
    tasks = front_end_tasks()
    assert expyre_pbs.SCHEDULER.control_commands("cancel", jobs_for(tasks[3], "140[1].ServerA", tasks[3])) == \
        ["qdel '140[1].ServerA'", f"scancel {tasks[3]}"]
    assert arrays.control_commands("hold", tasks[:2]) == [f"scontrol hold {tasks[0]} {tasks[1]}"]


def test_find_an_array_on_the_front_end_by_name_with_squeue():
    job = JobSpec(id="f_abc_array", name="f", remote_dir="run/f_abc", partition="p", node_dict={}, max_time=60,
                  array_size=4)
    name = expyre_pbs.names.job_name(job.id)
    array_id = parse.parse_qsub_output(torque("qsub_array.txt"))
    listing = torque("squeue_array.txt").replace("|fx-array|", f"|{name}|")

    def reply(command):
        return CommandResult(command, 0, f"\n{END_MARKER} record 1\n{listing}\n{END_MARKER} squeue 0\n", "")
    shell = shell_for("torque", reply)
    assert expyre_pbs.find_submitted("pbs", job, shell, system=a_system()) == [array_id]
    task = JobSpec(**{**job.__dict__, "array_size": None, "array_index": 2})
    assert expyre_pbs.find_submitted("pbs", task, shell, system=a_system()) == [f"{array_id}_2"]


# =========================================================================== the most tasks per array

def test_max_array_size_of_each_pbs():
    assert arrays.parse_max_size(FRONT_END, {"limit": (0, torque("scontrol_show_config.txt"))}) == 1001
    assert arrays.parse_max_size(PBSPRO, {"limit": (0, pbspro("qstat_Bf.txt"))}) == 2500
    assert arrays.parse_max_size(PBSPRO, {"limit": (0, pbspro("qstat_Bf_default.txt"))}) == 10000
    # Torque's server attribute (Torque Administrator Guide, server parameters: max_job_array_size)
    assert arrays.parse_max_size(TORQUE, {"limit": (0, "Server: head\n    max_job_array_size = 500\n")}) == 500
    assert arrays.parse_max_size(TORQUE, {"limit": (0, "Server: head\n    server_state = Active\n")}) is None
    with pytest.raises(parse.OutputError, match="takes no job arrays"):
        arrays.parse_max_size(FRONT_END, {"limit": (0, "MaxArraySize            = 0\n")})


def test_array_support_hook_on_the_front_end_and_the_tables_override():
    config = torque("scontrol_show_config.txt")

    def reply(command):
        assert command.endswith("scontrol show config\n_xpr_s=$?; echo; echo '@xpr-end@ limit' $_xpr_s\nexit 0")
        return CommandResult(command, 0, f"{config}\n{END_MARKER} limit 0\n", "")
    answer = expyre_pbs.array_support("pbs", shell=shell_for("torque", reply), system=a_system())
    assert answer == {"index_var": arrays.INDEX_VARS, "first_index": 0, "max_size": 1001}
    shell = ReplayShell(lambda command: pytest.fail(f"nothing to ask: {command}"))
    assert expyre_pbs.array_support("pbs", shell=shell, system=a_system(dialect="pbspro", max_array_size=3)) == \
        {"index_var": arrays.INDEX_VARS, "first_index": 0, "max_size": 3}
    assert expyre_pbs.array_support("pbs", shell=shell, system=a_system(dialect="torque", arrays=False)) is None
