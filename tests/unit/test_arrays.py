"""Job arrays in core (:mod:`expyre.arrays`) and the toolkit's array declarations
(:class:`expyre.batch.BatchScheduler`): the array script is run for real by bash here."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from expyre import arrays, batch, jobfiles
from expyre.arrays import ArraySupport, TaskMarker
from expyre.batch import BatchScheduler
from expyre.hooktypes import JobSpec


def spec(job_id, remote_dir):
    return JobSpec(id=job_id, name="f", remote_dir=str(remote_dir), partition="p",
                   node_dict={"num_nodes": 1, "num_cores": 1, "num_cores_per_node": 1}, max_time=60)


def make_job_dir(path: Path, job_id: str) -> JobSpec:
    path.mkdir(parents=True)
    script = path / jobfiles.SCRIPT
    script.write_text("#!/bin/bash\necho \"out of $(basename \"$PWD\") index=$XPR_TEST_INDEX\"\necho err >&2\n"
                      "touch ran\n")  # not executable: it is run by script_exec, as a scheduler would
    return spec(job_id, path)


@pytest.fixture
def three_jobs(tmp_path):
    # names with a blank and a quote: the script must quote every directory and file name
    return [make_job_dir(tmp_path / name, f"job{n}") for n, name in enumerate(["a", "b c", "d'e"])]


def run_array_script(tmp_path, tasks, index, first_index=1):
    support = ArraySupport("XPR_TEST_INDEX", first_index=first_index)
    script = tmp_path / "array.sh"
    script.write_text(arrays.array_script(script_exec="/bin/bash", header=["#XPR --array"], support=support,
                                          tasks=tasks))
    env = dict(os.environ)
    env.pop("XPR_TEST_INDEX", None)
    if index is not None:
        env["XPR_TEST_INDEX"] = str(index)
    return subprocess.run(["bash", str(script)], capture_output=True, text=True, env=env, cwd=tmp_path)


def test_array_task_runs_its_own_job_in_its_own_directory(tmp_path, three_jobs):
    done = run_array_script(tmp_path, three_jobs, 2)  # first index 1: the second job
    assert done.returncode == 0, done.stderr
    second = Path(three_jobs[1].remote_dir)
    assert (second / three_jobs[1].stdout_file).read_text() == "out of b c index=2\n"
    assert (second / three_jobs[1].stderr_file).read_text() == "err\n"
    assert (second / "ran").exists()
    assert not any((Path(job.remote_dir) / "ran").exists() for job in (three_jobs[0], three_jobs[2]))


def test_array_task_zero_based_and_quoted_names(tmp_path, three_jobs):
    done = run_array_script(tmp_path, three_jobs, 2, first_index=0)
    assert done.returncode == 0, done.stderr
    assert (Path(three_jobs[2].remote_dir) / three_jobs[2].stdout_file).read_text() == "out of d'e index=2\n"


@pytest.mark.parametrize("index", [0, 4, None])
def test_array_index_with_no_job_is_an_error_naming_it(tmp_path, three_jobs, index):
    done = run_array_script(tmp_path, three_jobs, index)
    assert done.returncode == 1
    assert f"XPR_TEST_INDEX='{'' if index is None else index}' names no job of this array" in done.stderr
    assert not any((Path(job.remote_dir) / "ran").exists() for job in three_jobs)


@pytest.mark.parametrize("env, expected", [
    ({"XPR_A": "1"}, "b c"), ({"XPR_A": "", "XPR_B": "2"}, "d'e"), ({"XPR_B": "0", "XPR_C": "2"}, "a"),
    ({"XPR_C": "1"}, "b c")])
def test_several_index_variables_first_set_one_counts(tmp_path, three_jobs, env, expected):
    # PBS: PBS Pro sets PBS_ARRAY_INDEX, Torque PBS_ARRAYID, Slurm's Torque front end SLURM_ARRAY_TASK_ID
    support = ArraySupport.from_answer({"index_var": ["XPR_A", "XPR_B", "XPR_C"], "first_index": 0}, "s")
    assert support == ArraySupport(("XPR_A", "XPR_B", "XPR_C"), 0)
    script = tmp_path / "array.sh"
    script.write_text(arrays.array_script(script_exec="/bin/bash", header=[], support=support, tasks=three_jobs))
    clean = {k: v for k, v in os.environ.items() if k not in ("XPR_A", "XPR_B", "XPR_C")}
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, env={**clean, **env}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    ran = [Path(job.remote_dir).name for job in three_jobs if (Path(job.remote_dir) / "ran").exists()]
    assert ran == [expected]


def test_several_index_variables_none_set_is_an_error_naming_them(tmp_path, three_jobs):
    support = ArraySupport(("XPR_A", "XPR_B"), 0)
    script = tmp_path / "array.sh"
    script.write_text(arrays.array_script(script_exec="/bin/bash", header=[], support=support, tasks=three_jobs))
    clean = {k: v for k, v in os.environ.items() if k not in ("XPR_A", "XPR_B")}
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, env=clean, cwd=tmp_path)
    assert done.returncode == 1
    assert "XPR_A/XPR_B=''" in done.stderr and "names no job" in done.stderr


def test_bundled_tasks_make_their_directory_and_unpack_their_own_files(tmp_path, three_jobs):
    """On a host with a run directory only the first task's directory is copied; the others'
    files travel in its bundle and each task unpacks its own when it starts."""
    stage = [Path(job.remote_dir) for job in three_jobs]
    host = tmp_path / "host"
    tasks = [spec(job.id, host / Path(job.remote_dir).name) for job in three_jobs]
    # the third task's job script is in memory only, as start_many gives the bundled tasks' scripts
    third_script = (stage[2] / jobfiles.SCRIPT).read_bytes()
    (stage[2] / jobfiles.SCRIPT).unlink()
    spans = arrays.write_bundle(stage[0], [(stage[1], {}), (stage[2], {jobfiles.SCRIPT: (third_script, 0o700)})])
    assert (stage[0] / jobfiles.ARRAY_BUNDLE).stat().st_mtime == 0  # never copied back as a result
    shutil.copytree(stage[0], host / stage[0].name)  # what the transport copies
    support = ArraySupport("XPR_TEST_INDEX", first_index=0)
    script = tmp_path / "array.sh"
    script.write_text(arrays.array_script(script_exec="/bin/bash", header=[], support=support, tasks=tasks,
                                          bundle=[None, *spans]))
    for index in (2, 0):
        done = subprocess.run(["bash", str(script)], capture_output=True, text=True, cwd=tmp_path,
                              env=dict(os.environ, XPR_TEST_INDEX=str(index)))
        assert done.returncode == 0, done.stderr
    third = Path(tasks[2].remote_dir)
    assert (third / tasks[2].stdout_file).read_text() == "out of d'e index=2\n"
    assert oct(third.stat().st_mode & 0o777) == oct(0o700)
    assert (Path(tasks[0].remote_dir) / "ran").exists()
    assert not Path(tasks[1].remote_dir).exists()  # task 1 has not started: nothing of it on the host


def test_split_and_groups():
    assert [len(g) for g in arrays.split(list(range(12)), 5)] == [5, 5, 2]
    assert [len(g) for g in arrays.split(list(range(12)), None)] == [12]
    assert arrays.split([], 5) == []
    jobs = [(n, None) for n in range(7)]
    assert [len(g) for g in arrays.groups(jobs, ArraySupport("I", 0, 3))] == [3, 3, 1]
    assert [len(g) for g in arrays.groups(jobs, None)] == [1] * 7              # no arrays: one by one
    assert [len(g) for g in arrays.groups(jobs[:1], ArraySupport("I"))] == [1]  # one job: on its own


def test_array_spec_is_named_after_its_first_task(tmp_path):
    leader = spec("f_abc_1", tmp_path / "f_abc_1")
    array = arrays.array_spec(leader, 7)
    assert (array.id, array.remote_dir, array.array_size) == ("f_abc_1_array", leader.remote_dir, 7)
    assert (array.stdout_file, array.stderr_file) == (jobfiles.ARRAY_STDOUT, jobfiles.ARRAY_STDERR)
    assert jobfiles.is_reserved(jobfiles.ARRAY_TASK) and jobfiles.is_reserved(jobfiles.ARRAY_SCRIPT)


def test_task_marker_round_trip_and_garbled(tmp_path):
    assert arrays.read_task_marker(tmp_path) is None
    marker = TaskMarker("run/f_abc_1", "f_abc_1_array", 3)
    arrays.write_task_marker(tmp_path, marker)
    assert arrays.read_task_marker(tmp_path) == marker
    (tmp_path / jobfiles.ARRAY_TASK).write_text("{\"leader_dir\": 1}")
    with pytest.raises(ValueError, match=jobfiles.ARRAY_TASK):
        arrays.read_task_marker(tmp_path)
    arrays.clear_task_marker(tmp_path)
    arrays.clear_task_marker(tmp_path)  # twice is fine
    assert arrays.read_task_marker(tmp_path) is None


@pytest.mark.parametrize("answer, problem", [
    ({"first_index": 0}, "index_var"), ({"index_var": "not a name"}, "index_var"), ("yes", "index_var"),
    ({"index_var": ["I", "no name"]}, "index_var"), ({"index_var": []}, "index_var"),
    ({"index_var": "I", "max_size": 0}, "max_size"), ({"index_var": "I", "max_size": "5"}, "max_size")])
def test_bad_array_support_answer_names_the_scheduler(answer, problem):
    with pytest.raises(ValueError, match=f"scheduler 'mysched'.*{problem}"):
        ArraySupport.from_answer(answer, "mysched")


def test_array_support_answer():
    assert ArraySupport.from_answer(None, "s") is None
    assert ArraySupport.from_answer({"index_var": "SGE_TASK_ID", "first_index": 1, "max_size": 75000}, "s") == \
        ArraySupport("SGE_TASK_ID", 1, 75000)


class WithArrays(BatchScheduler):
    name = "witharrays"
    array_index_var = "MY_TASK"

    def max_array_size_commands(self):
        return {"config": "echo max=9"}

    def parse_max_array_size(self, sections):
        return int(sections["config"][1].split("=")[1])


class Shell:
    """A real local shell (bash), counting commands."""
    host = None

    def __init__(self, cwd=None):
        self.cwd = cwd
        self.commands = []

    def run(self, command, *, input=None, timeout=None, check=True, idempotent=True):
        from expyre.hooktypes import CommandResult
        self.commands.append(command)
        done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, cwd=self.cwd)
        return CommandResult(command, done.returncode, done.stdout, done.stderr)

    def close(self):
        pass


def test_array_settings_are_checked():
    sched = WithArrays()
    assert sched.check({"max_array_size": 5, "arrays": False}) == []
    problems = {key: problem for key, _value, problem in
                sched.check({"max_array_size": 0, "arrays": "no", "max_arrays": 3})}
    assert "positive" in problems["max_array_size"] and "true or false" in problems["arrays"]
    assert "unknown" in problems["max_arrays"] and "max_array_size" in problems["max_arrays"]
    # a scheduler without arrays has no array settings
    assert BatchScheduler().check({"max_array_size": 5})[0][0] == "max_array_size"


def test_array_info_asks_the_scheduler_unless_configured():
    shell = Shell()
    sched = WithArrays().bound(shell, None)
    assert sched.array_info(shell) == {"index_var": "MY_TASK", "first_index": 0, "max_size": 9}
    sched.options = {"max_array_size": 5}
    assert sched.array_info(shell)["max_size"] == 5
    assert len(shell.commands) == 1          # the configured maximum needs no query
    sched.options = {"arrays": False}
    assert sched.array_info(shell) is None
    assert BatchScheduler().array_info(shell) is None


class ArrayToy(WithArrays):
    """A scheduler whose array submit prints an id and whose queue is a file of
    ``<array id> <job name>`` lines (in the directory above the array's first task)."""

    submit_poll = 0.1

    def header(self, job):
        return [f"# toy {self.job_name(job.id)}"]

    def array_submit_command(self, job, script, count, max_parallel):
        return (f"echo submitted 77 with {count} tasks at most {max_parallel}; "
                f"echo '77 {self.job_name(job.id)}' >> ../queue")

    def parse_submit(self, stdout):
        from expyre import batch
        return batch.one_id([w for w in stdout.split()[:2] if w.isdigit()], "toy-submit", stdout)

    def array_task_ids(self, array_id, count):
        return [f"{array_id}.{n}" for n in range(count)]

    def find_commands(self, job, name):
        return {"listing": "cat ../queue 2>/dev/null || true"}

    def parse_find(self, sections, name):
        return [line.split()[0] for line in sections["listing"][1].splitlines() if line.split()[1:] == [name]]


def test_array_submission_is_exactly_once_and_found_per_task(tmp_path):
    leader = make_job_dir(tmp_path / "f_1", "f_1")
    shell, toy = Shell(cwd=leader.remote_dir), ArrayToy()
    array = arrays.array_spec(leader, 3)
    assert toy.array_support(scheduler="toy", shell=shell) == {"index_var": "MY_TASK", "first_index": 0,
                                                               "max_size": 9}
    assert toy.submit_array(scheduler="toy", job=array, script=jobfiles.ARRAY_SCRIPT, shell=shell,
                            max_parallel=2) == ["77.0", "77.1", "77.2"]
    assert "submitted 77 with 3 tasks at most 2" in (tmp_path / "f_1" / batch.SUBMIT_LOCK).read_text()
    # a restarted script looks for task 2: from the array's record, and by the array's name
    probe = JobSpec(id=array.id, name="f", remote_dir=leader.remote_dir, partition=None, node_dict={},
                    max_time=None, array_index=2)
    assert toy.find_submitted(scheduler="toy", job=probe, shell=shell) == ["77.2"]
    (tmp_path / "f_1" / batch.SUBMIT_LOCK).unlink()   # no record: found by name alone
    assert toy.find_submitted(scheduler="toy", job=probe, shell=shell) == ["77.2"]
    (tmp_path / "queue").unlink()
    assert toy.find_submitted(scheduler="toy", job=probe, shell=shell) == []


def test_plugins_facade_answers_none_without_array_hooks():
    from expyre import plugins
    assert plugins.array_support("direct", Shell(), system=None) is None
