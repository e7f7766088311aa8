"""The Slurm plugin's parsers and state logic, on output captured from a real Slurm.

The files under tests/fixtures/slurm/ were printed by Slurm 22.05 on the one-node test cluster
of tests/services/20-slurm.sh (tests/fixtures/slurm/capture.py makes them again); each starts
with one ``# `` line naming the command. Federated and multi-cluster forms, site wrappers'
extra lines and cut or garbled output cannot be produced by that cluster and are written here
by hand, after Slurm's documentation.

The hooks are driven through :class:`ReplayShell`, a stand-in for a transport's shell that
answers each command with captured output (no Slurm is involved in these tests).
"""
import re
from pathlib import Path

import pytest
from shells import ReplayShell

import expyre_slurm
from expyre import CommandResult, JobSpec, RemoteJob
from expyre_slurm import parse
from expyre_slurm.commands import SlurmCommandError

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "slurm"


def captured(name: str) -> str:
    """A fixture file's text without its first ``# command ...`` line."""
    text = (FIXTURES / name).read_text()
    first, _, rest = text.partition("\n")
    assert first.startswith("# "), f"{name} lacks its header line"
    return rest


def header_status(name: str) -> int:
    """The exit status the fixture's header line records."""
    first = (FIXTURES / name).read_text().partition("\n")[0]
    return int(re.search(r"exit status (-?\d+)", first).group(1))


def ok(command, stdout="", stderr="", rc=0):
    return CommandResult(command, rc, stdout, stderr)


def ids_by_name():
    """Job name -> Slurm job id, from the captured ``squeue --format=...%j`` listing."""
    return {name: job_id for job_id, _c, _s, name in parse.parse_squeue_names(captured("squeue_names.txt"))}


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch):
    monkeypatch.setenv("EXPYRE_RETRY", "3 0")


# --------------------------------------------------------------------------- sbatch

def test_sbatch_plain_and_parsable_output():
    assert parse.parse_sbatch_output(captured("sbatch_submitted.txt")) == ids_by_name()["fx-completed"]
    assert parse.parse_sbatch_output(captured("sbatch_parsable.txt")) == ids_by_name()["fx-completed2"]


@pytest.mark.parametrize("output, expected", [
    ("123;cluster\n", "123;cluster"),
    ("Submitted batch job 123 on cluster x\n", "123;x"),
    ("Submitted batch job 4242\n", "4242"),
    ("  77  \n", "77"),
    # a site wrapper's banner, with numbers of its own, around the real line
    ("Welcome to the Example HPC service\nProject budget left: 1200 hours\n2024\n"
     "Submitted batch job 555\nRemember: /scratch is purged after 30 days\n", "555"),
    ("sbatch: info: job will be charged to project p42\nSubmitted batch job 9 on cluster gpu-east\n", "9;gpu-east"),
])
def test_sbatch_federated_and_wrapped_forms(output, expected):
    assert parse.parse_sbatch_output(output) == expected


@pytest.mark.parametrize("output", ["", "sbatch: error: something\n", "Submitted batch job\n",
                                    "Submitted batch job 1\nSubmitted batch job 2\n", "12\n13\n"])
def test_sbatch_output_without_one_id_is_an_error(output):
    with pytest.raises(parse.SubmitParseError):
        parse.parse_sbatch_output(output)


@pytest.mark.parametrize("name", ["sbatch_rejected_partition.txt", "sbatch_rejected_option.txt"])
def test_sbatch_rejections_hold_no_id(name):
    assert header_status(name) != 0
    with pytest.raises(parse.SubmitParseError):
        parse.parse_sbatch_output(captured(name))


def _job(job_id="test_abc=_u1", remote_dir="run_expyre/run_test_abc=_u1"):
    return JobSpec(id=job_id, name="test", remote_dir=remote_dir, partition="standard",
                   node_dict={"partition": "standard", "id": job_id, "max_time": "0:10:00", "num_nodes": 1,
                              "num_cores": 1, "num_cores_per_node": 1}, max_time=600)


def test_submit_returns_the_id_and_quotes_the_directory():
    shell = ReplayShell(lambda c: ok(c, captured("sbatch_submitted.txt")))
    job = _job(remote_dir="run expyre/it's here")
    assert expyre_slurm.submit(scheduler="slurm", job=job, script="_expyre_job.sh", shell=shell) == \
        ids_by_name()["fx-completed"]
    assert len(shell.commands) == 1
    assert "\n_xpr_lock_submit 'run expyre/it'\"'\"'s here'\n" in shell.commands[0]
    assert "sbatch _expyre_job.sh" in shell.commands[0]


@pytest.mark.parametrize("name, message", [
    ("sbatch_rejected_partition.txt", "Batch job submission failed: Invalid partition name specified"),
    ("sbatch_rejected_option.txt", "unrecognized option '--no-such-option'"),
])
def test_submit_refused_raises_with_sbatchs_message(name, message):
    shell = ReplayShell(lambda c: ok(c, "", captured(name), header_status(name)))
    with pytest.raises(SlurmCommandError, match=re.escape(message)) as info:
        expyre_slurm.submit(scheduler="slurm", job=_job(), script="_expyre_job.sh", shell=shell)
    assert "sbatch refused job test_abc=_u1" in str(info.value)
    assert len(shell.commands) == 1  # a refusal is final: not tried again


def test_submit_transient_failure_is_retried_after_checking_nothing_was_submitted():
    def answer(command):
        if "sbatch " in command:
            if sum("sbatch " in c for c in shell.commands) == 1:
                return ok(command, "", "sbatch: error: Batch job submission failed: Socket timed out on send/recv "
                                       "operation", 1)
            return ok(command, "Submitted batch job 31\n")
        # find_submitted: no record, and squeue lists no job of that name
        return ok(command, "@xpr-end@ record 1\n@xpr-end@ squeue 0\n")

    shell = ReplayShell(answer)
    assert expyre_slurm.submit(scheduler="slurm", job=_job(), script="s.sh", shell=shell) == "31"
    assert [("sbatch " in c) for c in shell.commands] == [True, False, True]


def test_submit_transient_failure_that_did_submit_is_not_submitted_again():
    def answer(command):
        if "sbatch " in command:
            return ok(command, "", "sbatch: error: Batch job submission failed: Socket timed out on send/recv "
                                   "operation", 1)
        # the job is there after all: sbatch's record in the job directory says so
        return ok(command, "Submitted batch job 32\n@xpr-end@ record 0\n@xpr-end@ squeue 0\n")

    shell = ReplayShell(answer)
    assert expyre_slurm.submit(scheduler="slurm", job=_job(), script="s.sh", shell=shell) == "32"
    assert sum("sbatch " in c for c in shell.commands) == 1


def test_submit_that_keeps_failing_transiently_raises_with_the_message():
    shell = ReplayShell(lambda c: ok(c, "@xpr-end@ record 1\n@xpr-end@ squeue 0\n") if "sbatch " not in c else
                        ok(c, "", "sbatch: error: Batch job submission failed: Unable to contact slurm controller "
                                  "(connect failure)", 1))
    with pytest.raises(SlurmCommandError, match=r"Unable to contact slurm controller.*") as info:
        expyre_slurm.submit(scheduler="slurm", job=_job(), script="s.sh", shell=shell)
    assert "after 3 tries" in str(info.value)


def test_submit_timeout_is_an_unknown_outcome():
    from expyre import ConnectionLostError

    def answer(command):
        raise TimeoutError("no answer")

    with pytest.raises(ConnectionLostError, match="unknown"):
        expyre_slurm.submit(scheduler="slurm", job=_job(), script="s.sh", shell=ReplayShell(answer))



# --------------------------------------------------------------------------- states

EXPECTED_BY_NAME = {"fx-completed": "done", "fx-failed": "failed", "fx-running": "running",
                    "fx-timeout": "running",  # still running when squeue_jobs.txt was captured
                    "fx-pending": "queued", "fx-held": "held", "fx-adminheld": "held", "fx-cancelled": "failed"}


def test_squeue_captured_states():
    listed = parse.parse_squeue(captured("squeue_jobs.txt"))
    names = ids_by_name()
    got = {name: parse.map_state(*listed.lookup(names[name])) for name in EXPECTED_BY_NAME}
    assert got == EXPECTED_BY_NAME
    assert parse.map_state(*parse.parse_squeue(captured("squeue_timeout.txt")).lookup(names["fx-timeout"])) == "timeout"


@pytest.mark.parametrize("state, reason, expected", [
    ("PENDING", "Priority", "queued"), ("PENDING", "Resources", "queued"), ("PENDING", "JobHeldUser", "held"),
    ("PENDING", "JobHeldAdmin", "held"), ("PENDING", "(JobHeldUser)", "held"), ("REQUEUE_HOLD", "", "held"),
    ("SPECIAL_EXIT", "", "held"), ("REQUEUED", "", "queued"),
    ("RUNNING", "JobHeldUser", "running"), ("COMPLETING", "", "running"), ("CONFIGURING", "", "running"),
    ("COMPLETED", "", "done"), ("FAILED", "NonZeroExitCode", "failed"), ("NODE_FAIL", "", "failed"),
    ("OUT_OF_MEMORY", "", "failed"), ("BOOT_FAIL", "", "failed"), ("TIMEOUT", "TimeLimit", "timeout"),
    ("DEADLINE", "", "timeout"), ("CANCELLED", "", "failed"), ("CANCELLED by 1001", "", "failed"),
    ("CANCELLED+", "", "failed"), ("PREEMPTED", "", "failed"), ("SUSPENDED", "", "held"), ("STOPPED", "", "held"),
    ("PD", "", "queued"), ("R", "", "running"), ("CD", "", "done"), ("TO", "", "timeout"),
    # never a finished state for what is not understood
    ("REVOKED", "", "unknown"), ("SOME_NEW_STATE", "", "unknown"), ("", "", "unknown"), ("COMPL", "", "unknown"),
])
def test_state_mapping(state, reason, expected):
    assert parse.map_state(state, reason) == expected


@pytest.mark.parametrize("name, expected", [
    ("scontrol_completed.txt", "done"), ("scontrol_failed.txt", "failed"), ("scontrol_timeout.txt", "timeout"),
    ("scontrol_cancelled.txt", "failed"), ("scontrol_running.txt", "running"), ("scontrol_pending.txt", "queued"),
    ("scontrol_held.txt", "held"), ("scontrol_multiline_completed.txt", "done"),
])
def test_scontrol_captured_states(name, expected):
    fields = parse.parse_scontrol_job(captured(name))
    assert fields["JobId"].isdigit()
    assert parse.map_state(fields["JobState"], fields["Reason"]) == expected


def test_scontrol_invalid_and_sacct_disabled():
    assert parse.parse_scontrol_job(captured("scontrol_invalid.txt")) is None
    assert parse.INVALID_JOB_ID in captured("scontrol_invalid.txt")
    assert parse.parse_sacct(captured("sacct_disabled.txt")) == {}
    assert parse.ACCOUNTING_DISABLED in captured("sacct_disabled.txt")


def test_parse_several_scontrol_records():
    names = ids_by_name()
    completed, failed = names["fx-completed"], names["fx-failed"]
    text = captured("scontrol_completed.txt") + captured("scontrol_multiline_completed.txt").replace(
        f"JobId={completed}", "JobId=99999999", 1) + captured("scontrol_failed.txt")
    jobs = parse.parse_scontrol_jobs(text)
    assert {k: v["JobState"] for k, v in jobs.items()} == {completed: "COMPLETED", "99999999": "COMPLETED",
                                                          failed: "FAILED"}


def test_sacct_output():
    text = "13|COMPLETED|0:0\n15|FAILED|3:0\n21|CANCELLED by 1001|0:15\n16|TIMEOUT|0:0\nsacct: warning: x\n"
    states = {k: parse.map_state(v) for k, v in parse.parse_sacct(text).items()}
    assert states == {"13": "done", "15": "failed", "21": "failed", "16": "timeout"}


def test_sacct_array_tasks_by_their_task_ids():
    # sacct --format=JobID,... as this machine's Slurm (accounting through slurmdbd) prints a
    # finished array (6585_0, 6585_3) and a single job; a pending array's range line is no state
    text = "6585_0|COMPLETED|0:0\n6585_3|FAILED|1:0\n6587|COMPLETED|0:0\n6590_[2-4]|PENDING|0:0\n"
    states = {k: parse.map_state(v) for k, v in parse.parse_sacct(text).items()}
    assert states == {"6585_0": "done", "6585_3": "failed", "6587": "done"}
    assert parse.SACCT_FORMAT.startswith("JobID,")  # not JobIDRaw: a task's raw id is a number of its own


def test_multi_cluster_squeue_sections():
    text = ("CLUSTER: east\n@xpr@|5|RUNNING|None|@end@\n@xpr@|6|PENDING|JobHeldUser|@end@\n"
            "CLUSTER: west\n@xpr@|5|PENDING|Priority|@end@\n")
    listed = parse.parse_squeue(text)
    assert parse.map_state(*listed.lookup("5;east")) == "running"
    assert parse.map_state(*listed.lookup("6;east")) == "held"
    assert parse.map_state(*listed.lookup("5;west")) == "queued"
    assert listed.lookup("6;west") is None
    assert listed.lookup("5") is None  # ambiguous between two clusters: not taken from either
    assert parse.map_state(*listed.lookup("6")) == "held"


def test_banner_lines_are_ignored():
    text = "Welcome to the cluster!\nLast login: yesterday\n" + captured("squeue_jobs.txt") + "Have a nice day\n"
    assert len(parse.parse_squeue(text).jobs) == len(EXPECTED_BY_NAME)


@pytest.mark.parametrize("line", ["@xpr@|13|COMPL", "@xpr@|13|COMPLETED|None|@en", "@xpr@|13|",
                                  "@xpr@|1x|RUNNING|None|@end@", "@xpr@|13|completed|None|@end@"])
def test_garbled_or_cut_job_lines_are_errors(line):
    with pytest.raises(parse.OutputError):
        parse.parse_squeue(captured("squeue_jobs.txt") + line + "\n")


# --------------------------------------------------------------------------- the status hook

def _jobs(*names):
    ids = ids_by_name()
    return [RemoteJob(remote_id=ids[n], remote_dir=f"run_expyre/run_{n}", id=f"{n}_hash_u") for n in names]


def _is_squeue(command):
    return re.search(r"^squeue ", command, re.M) is not None


def _status_answer(squeue_stdout, resolve_stdout=None, squeue_stderr="", squeue_rc=0):
    def answer(command):
        if _is_squeue(command):
            return ok(command, squeue_stdout, squeue_stderr, squeue_rc)
        if resolve_stdout is None:
            pytest.fail(f"unexpected command: {command}")
        return ok(command, resolve_stdout(command) if callable(resolve_stdout) else resolve_stdout)
    return answer


def test_status_many_jobs_in_one_squeue():
    jobs = _jobs(*EXPECTED_BY_NAME)
    shell = ReplayShell(_status_answer(captured("status_squeue_command.txt")))
    states = expyre_slurm.status(scheduler="slurm", jobs=jobs, shell=shell)
    assert {n: states[j.remote_id] for n, j in zip(EXPECTED_BY_NAME, jobs)} == EXPECTED_BY_NAME
    assert len(shell.commands) == 1 and shell.commands[0].count("squeue ") == 1


def _resolution(scontrol_file=None, sacct_text=None):
    """Output of the scontrol/sacct look-up for jobs squeue no longer lists, from captured pieces."""
    def build(command):
        out = []
        for line in command.splitlines():
            match = re.search(r"echo '(@xpr-end@ (\S+))'", line)
            if not match:
                continue
            name = match.group(2)
            if name.startswith("sacct@"):
                text = sacct_text if sacct_text is not None else captured("sacct_disabled.txt")
                rc = 0 if sacct_text is not None else 1
            elif scontrol_file is None:
                text, rc = captured("scontrol_invalid.txt"), 1
            else:
                text, rc = captured(scontrol_file), 0
            out.append(f"{text.rstrip()}\n{match.group(1)} {rc}")
        return "\n".join(out) + "\n"
    return build


@pytest.mark.parametrize("scontrol_file, sacct_text, expected", [
    ("scontrol_timeout.txt", None, "timeout"),      # no accounting; the controller still has it
    ("scontrol_completed.txt", None, "done"),
    (None, "{timeout}|TIMEOUT|0:0\n", "timeout"),  # purged from the controller; accounting has it
    (None, None, "other"),                         # nobody knows it any more: it is over
    (None, "", "other"),                           # accounting works and does not know it either
])
def test_status_of_a_job_squeue_no_longer_lists(scontrol_file, sacct_text, expected):
    job = _jobs("fx-timeout")
    if scontrol_file == "scontrol_completed.txt":
        job = _jobs("fx-completed")
    empty = "@xpr-end@ squeue 0\n"
    if sacct_text:
        sacct_text = sacct_text.format(timeout=ids_by_name()["fx-timeout"])
    shell = ReplayShell(_status_answer(empty, _resolution(scontrol_file, sacct_text)))
    assert expyre_slurm.status(scheduler="slurm", jobs=job, shell=shell) == {job[0].remote_id: expected}
    assert _is_squeue(shell.commands[0]) and len(shell.commands) == 2


def test_single_unknown_job_id_is_an_answer_not_a_failure():
    job = _jobs("fx-completed")
    squeue = "@xpr-end@ squeue 1\n"
    shell = ReplayShell(_status_answer(squeue, _resolution(None, None),
                                       squeue_stderr=captured("squeue_unknown_single_job.txt"), squeue_rc=1))
    assert expyre_slurm.status(scheduler="slurm", jobs=job, shell=shell) == {job[0].remote_id: "other"}


def test_lookup_that_fails_leaves_the_job_unknown():
    job = _jobs("fx-timeout")

    def resolve(command):
        # scontrol cannot reach the controller, sacct is not there: nothing is known
        out = []
        for line in command.splitlines():
            match = re.search(r"echo '(@xpr-end@ (\S+))'", line)
            if match and match.group(2).startswith("sacct@"):
                out.append(f"bash: sacct: command not found\n{match.group(1)} 127")
            elif match:
                out.append("slurm_load_jobs error: Unable to contact slurm controller (connect failure)\n"
                           f"{match.group(1)} 1")
        return "\n".join(out) + "\n"

    shell = ReplayShell(_status_answer("@xpr-end@ squeue 0\n", resolve))
    assert expyre_slurm.status(scheduler="slurm", jobs=job, shell=shell) == {job[0].remote_id: "unknown"}


def test_cut_squeue_output_never_finishes_a_job():
    whole = captured("status_squeue_command.txt")
    jobs = _jobs(*EXPECTED_BY_NAME)
    for cut in range(0, len(whole) - len("@xpr-end@ squeue 0\n") + 1, 7):
        shell = ReplayShell(_status_answer(whole[:cut], lambda c: pytest.fail("no look-up on cut output")))
        with pytest.raises(SlurmCommandError, match="cut short|garbled"):
            expyre_slurm.status(scheduler="slurm", jobs=jobs, shell=shell)


def test_garbled_squeue_output_never_finishes_a_job():
    completed = ids_by_name()["fx-completed"]
    line = f"@xpr@|{completed}|COMPLETED|None|@end@"
    assert line in captured("status_squeue_command.txt")
    text = captured("status_squeue_command.txt").replace(line, f"@xpr@|{completed}|COMPLETED")
    shell = ReplayShell(_status_answer(text))
    with pytest.raises(SlurmCommandError, match="garbled"):
        expyre_slurm.status(scheduler="slurm", jobs=_jobs("fx-completed", "fx-running"), shell=shell)


def test_failing_squeue_is_retried_then_raises_with_its_message():
    message = "slurm_load_jobs error: Socket timed out on send/recv operation"
    shell = ReplayShell(_status_answer("@xpr-end@ squeue 1\n", squeue_stderr=message, squeue_rc=1))
    with pytest.raises(SlurmCommandError, match="Socket timed out") as info:
        expyre_slurm.status(scheduler="slurm", jobs=_jobs("fx-completed"), shell=shell)
    assert len(shell.commands) == 3
    assert "after 3 tries" in str(info.value)


def test_squeue_that_cannot_reach_the_controller_is_retried():
    tries = []

    def answer(command):
        tries.append(command)
        if len(tries) < 3:
            return ok(command, "", "slurm_load_jobs error: Unable to contact slurm controller (connect failure)", 1)
        return ok(command, captured("status_squeue_command.txt"))

    shell = ReplayShell(answer)
    states = expyre_slurm.status(scheduler="slurm", jobs=_jobs("fx-completed"), shell=shell)
    assert list(states.values()) == ["done"] and len(tries) == 3


def test_status_query_timeout_raises():
    def answer(command):
        raise TimeoutError("command did not finish within 120 s")

    with pytest.raises(SlurmCommandError, match="timed out"):
        expyre_slurm.status(scheduler="slurm", jobs=_jobs("fx-completed"), shell=ReplayShell(answer))


def test_status_of_jobs_on_named_clusters():
    jobs = [RemoteJob("5;east", "d1", "a"), RemoteJob("5;west", "d2", "b"), RemoteJob("7", "d3", "c")]
    output = ("@xpr@|7|RUNNING|None|@end@\n@xpr-end@ squeue 0\n"
              "CLUSTER: east\n@xpr@|5|COMPLETED|None|@end@\nCLUSTER: west\n@xpr@|5|PENDING|Priority|@end@\n"
              "@xpr-end@ squeue-clusters 0\n")
    shell = ReplayShell(lambda c: ok(c, output))
    assert expyre_slurm.status(scheduler="slurm", jobs=jobs, shell=shell) == {"5;east": "done", "5;west": "queued",
                                                                              "7": "running"}
    assert "--clusters=east,west" in shell.commands[0]


# --------------------------------------------------------------------------- cancel, hold, find_submitted

def test_cancel_of_finished_jobs_is_not_an_error():
    shell = ReplayShell(lambda c: ok(c, "", captured("scontrol_hold_finished.txt"), 1))
    assert expyre_slurm.hold(scheduler="slurm", jobs=_jobs("fx-completed"), shell=shell) is True
    shell = ReplayShell(lambda c: ok(c, captured("scancel_finished.txt")))
    assert expyre_slurm.cancel(scheduler="slurm", jobs=_jobs("fx-completed", "fx-failed"), shell=shell) is True
    names = ids_by_name()
    assert f"scancel {names['fx-completed']} {names['fx-failed']}" in shell.commands[0].replace("'", "")


def test_cancel_failure_raises_with_the_message():
    shell = ReplayShell(lambda c: ok(c, "", "scancel: error: Kill job error on job id 17: Access/permission denied", 1))
    with pytest.raises(SlurmCommandError, match="Access/permission denied"):
        expyre_slurm.cancel(scheduler="slurm", jobs=_jobs("fx-running"), shell=shell)


def test_find_submitted_by_name_and_record():
    listing = captured("squeue_names.txt")
    held = [job_id for job_id, _c, _s, name in parse.parse_squeue_names(listing) if name == "fx-held"]
    assert held
    job = _job(job_id="fx-held")
    shell = ReplayShell(lambda c: ok(c, f"@xpr-end@ record 1\n{listing}@xpr-end@ squeue 0\n"))
    assert expyre_slurm.find_submitted(scheduler="slurm", job=job, shell=shell) == held
    assert "--name=fx-held" in shell.commands[0]
    shell = ReplayShell(lambda c: ok(c, f"Submitted batch job 4\n@xpr-end@ record 0\n{listing}@xpr-end@ squeue 0\n"))
    assert expyre_slurm.find_submitted(scheduler="slurm", job=job, shell=shell) == ["4", *held]
    # a name with a comma cannot be given to squeue --name: all the user's jobs are listed and compared
    job = _job(job_id="my job, with x")
    shell = ReplayShell(lambda c: ok(c, f"@xpr-end@ record 1\n{listing}@xpr-end@ squeue 0\n"))
    assert expyre_slurm.find_submitted(scheduler="slurm", job=job, shell=shell) == []
    assert "--name" not in shell.commands[0]


def test_find_submitted_raises_when_squeue_fails():
    shell = ReplayShell(lambda c: ok(c, "@xpr-end@ record 1\n@xpr-end@ squeue 1\n", "squeue: error: Invalid user"))
    with pytest.raises(SlurmCommandError):
        expyre_slurm.find_submitted(scheduler="slurm", job=_job(), shell=shell)
    shell = ReplayShell(lambda c: ok(c, "@xpr-end@ record 1\n@xpr@|5|PENDING|@en"))
    with pytest.raises(SlurmCommandError, match="cut short"):
        expyre_slurm.find_submitted(scheduler="slurm", job=_job(), shell=shell)


# --------------------------------------------------------------------------- names and commands

@pytest.mark.parametrize("expyre_id, name", [
    ("test_task_tkrT4KjgpTu6r-4NiIWq-CuXMmAuUbEdP6_s1uSAGiQ=_e0p0ywcz",
     "test_task_tkrT4KjgpTu6r-4NiIWq-CuXMmAuUbEdP6_s1uSAGiQ=_e0p0ywcz"),
    ("my job #2_h=_u", "my_job__2_h=_u"),
    ("a'b\"c|d_h_u", "a_b_c_d_h_u"),
    ("düne_h_u", "d_ne_h_u"),
])
def test_job_names(expyre_id, name):
    # one encoding for every scheduler (expyre.batch.job_name): an id that had to be changed gets a
    # digest of the whole id, so that ids differing only in unsafe characters stay apart
    from expyre.batch import digest
    assert parse.job_name(expyre_id) == (name if name == expyre_id else f"{name}_{digest(expyre_id)}")


def test_directive_paths():
    assert parse.directive_path("job.a=b_c.stdout") == "job.a=b_c.stdout"
    assert parse.directive_path("job.50%_x.stdout") == "job.50%%_x.stdout"
    assert parse.directive_path("job.my job #1.stdout") == '"job.my job #1.stdout"'
    with pytest.raises(ValueError):
        parse.directive_path('job.say "hi".stdout')


def test_transient_messages():
    assert parse.is_transient("sbatch: error: Batch job submission failed: Socket timed out on send/recv operation")
    assert parse.is_transient("slurm_load_jobs error: Unable to contact slurm controller (connect failure)")
    assert parse.is_transient("sbatch: error: Slurm temporarily unable to accept job, sleeping and retrying")
    assert parse.is_transient("error: Resource temporarily unavailable, try again")
    assert not parse.is_transient(captured("sbatch_rejected_partition.txt"))
    assert not parse.is_transient(captured("sbatch_rejected_option.txt"))


def test_submit_transient_failure_when_slurm_cannot_be_asked_is_an_unknown_outcome():
    from expyre import ConnectionLostError
    down = "slurm_load_jobs error: Unable to contact slurm controller (connect failure)"

    def answer(command):
        if "sbatch " in command:
            return ok(command, "", "sbatch: error: Batch job submission failed: Socket timed out on send/recv "
                                   "operation", 1)
        return ok(command, "@xpr-end@ record 1\n@xpr-end@ squeue 1\n", down, 1)

    with pytest.raises(ConnectionLostError, match=r"(?s)unknown.*Unable to contact slurm controller"):
        expyre_slurm.submit(scheduler="slurm", job=_job(), script="s.sh", shell=ReplayShell(answer))


def test_submit_with_unreadable_output_looks_for_the_job():
    def answer(command):
        if "sbatch " in command:
            return ok(command, "Your job has been accepted.\n")
        return ok(command, "Your job has been accepted.\n@xpr-end@ record 0\n"
                           "@xpr@|77|PENDING|@end@|test_abc=_u1\n@xpr-end@ squeue 0\n")

    assert expyre_slurm.submit(scheduler="slurm", job=_job(), script="s.sh", shell=ReplayShell(answer)) == "77"

    def nothing(command):
        if "sbatch " in command:
            return ok(command, "Your job has been accepted.\n")
        return ok(command, "@xpr-end@ record 0\n@xpr-end@ squeue 0\n")

    with pytest.raises(SlurmCommandError, match="sbatch printed no job id"):
        expyre_slurm.submit(scheduler="slurm", job=_job(), script="s.sh", shell=ReplayShell(nothing))
