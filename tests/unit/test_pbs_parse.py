"""The PBS plugin's parsers, state mapping and hooks, on output of both dialects.

* tests/fixtures/pbs/torque/: REAL output of Slurm's PBS/Torque front end (slurm-wlm-torque, driving
  the real Slurm of tests/services/20-slurm.sh), captured by tests/fixtures/pbs/torque/capture.py
  as the account of tests/services/40-pbs.sh. Each file starts with a ``# `` line naming the
  command, its exit status and the stream.
* tests/fixtures/pbs/pbspro/: PBS Professional / OpenPBS output transcribed from the OpenPBS
  manual pages and design documents (or, where the documents give only the format, composed in
  that format); each file's ``# `` header names its sources and says which it is.

The hooks are driven through :class:`ReplayShell`, a stand-in for a transport's shell that answers
each command with recorded output (no PBS is involved in these tests). Output that is cut short or
garbled must never make a job look finished.
"""
import json
import re
from pathlib import Path
from typing import Callable, Dict, List

import pytest
from shells import ReplayShell

import expyre_pbs
from expyre import CommandResult, JobSpec, RemoteJob
from expyre_pbs import commands, dialect, parse
from expyre_pbs.commands import PBSCommandError
from expyre_pbs.parse import END_MARKER

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "pbs"
FINISHED = ("done", "failed", "timeout", "other")


def fixture(kind: str, name: str) -> str:
    """A fixture's text without its leading ``# `` header lines."""
    lines = (FIXTURES / kind / name).read_text().split("\n")
    assert lines[0].startswith("# "), f"{kind}/{name} lacks its header"
    while lines and lines[0].startswith("# "):
        lines.pop(0)
    return "\n".join(lines)


def torque(name: str) -> str:
    return fixture("torque", name)


def pbspro(name: str) -> str:
    return fixture("pbspro", name)


def header_status(name: str) -> int:
    first = (FIXTURES / "torque" / name).read_text().partition("\n")[0]
    return int(re.search(r"exit status (-?\d+)", first).group(1))


def header_command(name: str) -> str:
    first = (FIXTURES / "torque" / name).read_text().partition("\n")[0]
    return re.search(r"command: (.*?); exit status", first).group(1)


def answer(stdout="", stderr="", rc=0, section=None):
    """A CommandResult; with ``section``, stdout is followed by the end marker the plugin adds."""
    if section is not None:
        stdout = f"{stdout}\n{END_MARKER} {section} {rc}\n"
        rc = 0
    return lambda command: CommandResult(command, rc, stdout, stderr)


def shell_for(pbs: str, query: Callable[[str], CommandResult]) -> ReplayShell:
    """A shell whose host runs the dialect ``pbs`` (``torque`` answers like Slurm's front end)."""
    version = torque("qstat_version.txt") if pbs == "torque" else pbspro("qstat_version.txt")

    def reply(command):
        if command == dialect.VERSION_COMMAND:
            return CommandResult(command, 2 if pbs == "torque" else 0, version, "")
        return query(command)
    return ReplayShell(reply)


def jobs_for(*ids: str) -> List[RemoteJob]:
    return [RemoteJob(i, f"run_expyre/run_{n}", f"job{n}") for n, i in enumerate(ids)]


def torque_id(name: str) -> str:
    """The job id a torque fixture's command was about (its last word)."""
    return header_command(name).split()[-1]


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch):
    monkeypatch.setenv("EXPYRE_RETRY", "3 0")


def a_system(**options):
    """What the hooks need of a System: its pbs settings table and its plugin state."""
    from types import SimpleNamespace
    return SimpleNamespace(scheduler_options=options, plugin_state={})


# =========================================================================== dialects

def test_front_end_version_answer_is_a_torque_dialect():
    assert header_status("qstat_version.txt") == 2
    found = dialect.parse_version(torque("qstat_version.txt"), 2)
    assert (found.name, found.version, found.history, found.json) == ("torque", None, False, False)


def test_pbspro_version_gives_history_and_json():
    found = dialect.parse_version(pbspro("qstat_version.txt"), 0)
    assert (found.name, found.version, found.history, found.json) == ("pbspro", "14.1", True, True)
    old = dialect.parse_version("pbs_version = PBSPro_13.1.0.160576\n", 0)
    assert (old.name, old.history, old.json) == ("pbspro", True, False)


@pytest.mark.parametrize("output, name, version", [
    ("Version: 6.1.3\nCommit: 5d1f4c3\n", "torque", "6.1.3"),
    ("version: 2.5.13\n", "torque", "2.5.13"),
    ("pbs_version = 2022.1.1\n", "pbspro", "2022.1.1"),
    ("pbs_version = 23.06.06\n", "pbspro", "23.06.06"),
])
def test_versions_of_real_servers(output, name, version):
    found = dialect.parse_version(output, 0)
    assert (found.name, found.version) == (name, version)


def test_missing_qstat_is_an_error_not_a_dialect():
    with pytest.raises(dialect.DialectError, match="PATH"):
        dialect.parse_version("bash: line 1: qstat: command not found\n", 127)
    shell = ReplayShell(answer(stderr="bash: qstat: command not found", rc=127))
    with pytest.raises(PBSCommandError, match="qstat"):
        expyre_pbs.host_dialect(shell)


def test_dialect_is_asked_once_per_system_and_can_be_configured():
    shell = shell_for("pbspro", answer(section="qstat"))
    system = a_system()
    for _ in range(2):
        assert expyre_pbs.status("pbs", jobs_for("1.s"), shell, system) == {"1.s": "unknown"}
    assert [c for c in shell.commands if c == dialect.VERSION_COMMAND] == [dialect.VERSION_COMMAND]
    assert system.plugin_state["pbs"].dialect.name == "pbspro"
    other = shell_for("pbspro", answer(section="qstat"))
    expyre_pbs.status("pbs", jobs_for("1.s"), other, a_system(dialect="torque"))
    assert other.commands[0].startswith("qstat -f -1 ")  # the configured dialect: nothing asked
    assert expyre_pbs.host_dialect(other, configured="torque").name == "torque"
    with pytest.raises(ValueError, match="unknown PBS dialect"):
        dialect.for_name("lsf")


# =========================================================================== qsub and job ids

def test_front_end_qsub_prints_the_bare_id():
    assert header_status("qsub_submitted.txt") == 0
    job_id = parse.parse_qsub_output(torque("qsub_submitted.txt"))
    assert job_id.isdigit()


def test_front_end_refusal_holds_no_id_and_submit_raises_with_the_message():
    assert header_status("qsub_refused.txt") == 1
    with pytest.raises(parse.SubmitParseError):
        parse.parse_qsub_output(torque("qsub_refused.txt"))
    shell = ReplayShell(answer(stdout=torque("qsub_refused.txt"), rc=1))
    with pytest.raises(PBSCommandError, match="invalid partition"):
        expyre_pbs.submit("pbs", _job(), "_expyre_job.sh", shell)


def test_pbspro_qsub_outputs_are_whole_id_lines():
    lines = [line for line in pbspro("qsub_output.txt").splitlines() if line.strip()]
    assert [parse.parse_qsub_output(line + "\n") for line in lines] == ["1.vbox", "123.ServerA", "123[].ServerA"]


@pytest.mark.parametrize("output, expected", [
    ("1234.server\n", "1234.server"),
    ("1234.pbs01.cluster.example.org\n", "1234.pbs01.cluster.example.org"),
    ("   77  \n", "77"),
    # a site's banner around the id line, with a number of its own
    ("Welcome to the Example HPC service\nProject budget left:\n2024\n5555.head\nRemember to clean /scratch\n",
     "5555.head"),
    ("qsub: job will be charged to project p42\n9876[].pbs\n", "9876[].pbs"),
])
def test_qsub_ids_among_banners(output, expected):
    assert parse.parse_qsub_output(output) == expected


@pytest.mark.parametrize("output", ["", "qsub: Unknown queue\n", "1.a\n2.b\n", "12\n13\n", "Job 12 submitted\n"])
def test_qsub_output_without_one_id_is_an_error(output):
    with pytest.raises(parse.SubmitParseError):
        parse.parse_qsub_output(output)


def test_documented_job_id_forms():
    for line in pbspro("job_ids.txt").splitlines():
        if not line.strip():
            continue
        job_id, key, server = line.split("\t")
        assert parse.split_job_id(job_id) == (key, server or None)
    with pytest.raises(ValueError):
        parse.split_job_id("N_abc")


def _job(job_id="test_abc=_u1", remote_dir="run_expyre/run_test_abc=_u1"):
    return JobSpec(id=job_id, name="test", remote_dir=remote_dir, partition="standard",
                   node_dict={"partition": "standard", "id": job_id, "max_time": "0:10:00", "num_nodes": 1,
                              "num_cores": 1, "num_cores_per_node": 1}, max_time=600)


def test_submit_runs_qsub_in_the_job_directory_and_returns_the_whole_id():
    shell = ReplayShell(answer(stdout="Site notice: maintenance on Friday\n4321.pbs01\n"))
    assert expyre_pbs.submit("pbs", _job(remote_dir="run dir/it's"), "_expyre_job.sh", shell) == "4321.pbs01"
    assert len(shell.commands) == 1
    assert "\n_xpr_lock_submit 'run dir/it'\"'\"'s'\n" in shell.commands[0]
    assert "\nqsub _expyre_job.sh\n); _xpr_end_submit $?" in shell.commands[0]  # run under the exactly-once lock


def test_submit_that_prints_no_id_finds_the_job_by_name():
    job = _job()
    name = expyre_pbs.names.job_name(job.id)
    listing = (f"Job Id:\t500\n\tJob_Name = {name}\n\tjob_state = Q\n\n"
               "Job Id:\t501\n\tJob_Name = someone_else\n\tjob_state = R\n\n")

    def reply(command):
        if "\n_xpr_lock_submit " in command:
            return CommandResult(command, 0, "job submitted, see you later\n", "")
        return CommandResult(command, 0, f"\n{END_MARKER} record 1\n{listing}\n{END_MARKER} select 0\n", "")
    shell = shell_for("torque", reply)
    assert expyre_pbs.submit("pbs", job, "_expyre_job.sh", shell) == "500"


def test_submit_retries_a_server_it_could_not_reach_only_after_checking():
    job = _job()
    calls = []

    def reply(command):
        calls.append(command)
        if "\n_xpr_lock_submit " in command:
            if sum("\n_xpr_lock_submit " in c for c in calls) == 1:
                return CommandResult(command, 1, "", "qsub: cannot connect to server pbs01 (errno=111)")
            return CommandResult(command, 0, "77.pbs01\n", "")
        return CommandResult(command, 0, f"{END_MARKER} record 1\n\n{END_MARKER} select 0\n", "")
    shell = shell_for("pbspro", reply)
    assert expyre_pbs.submit("pbs", job, "_expyre_job.sh", shell) == "77.pbs01"
    assert sum("\n_xpr_lock_submit " in c for c in calls) == 2
    assert any("qselect -x -N" in c for c in calls)


def test_submit_timeout_is_a_lost_submission():
    from expyre import ConnectionLostError

    def reply(command):
        raise TimeoutError("no answer")
    with pytest.raises(ConnectionLostError, match="unknown"):
        expyre_pbs.submit("pbs", _job(), "_expyre_job.sh", ReplayShell(reply))


# =========================================================================== qstat -f, front end

@pytest.mark.parametrize("name, state", [
    ("qstat_f_queued.txt", "queued"),
    # qhold through the front end sets Slurm's priority to 0: the job stays "Q" (see qhold.txt), so a
    # held job shows as queued here; PBS Pro and Torque show H (tested on the pbspro fixtures)
    ("qstat_f_held.txt", "queued"),
    ("qstat_f_running.txt", "running"),
    # the front end prints no exit_status: C is finished with an outcome the scheduler does not tell
    ("qstat_f_completed.txt", "other"),
    ("qstat_f_cancelled.txt", "other"),
])
def test_front_end_records(name, state):
    assert header_status(name) == 0
    listed = parse.parse_qstat_full(torque(name))
    job_id = torque_id(name)
    assert list(listed.records) == [job_id] and not listed.garbled
    record = listed.records[job_id]
    assert record.name.startswith("fx-")
    assert parse.map_state(record, "torque") == state


def test_front_end_held_job_has_priority_zero():
    record = parse.parse_qstat_full(torque("qstat_f_held.txt")).records[torque_id("qstat_f_held.txt")]
    assert record.get("Priority") == "0" and record.state == "Q"


def test_front_end_many_jobs_in_one_query():
    ids = header_command("qstat_f_many.txt").split()[3:]
    assert ids[-1] == "999999"
    listed = parse.parse_qstat_full(torque("qstat_f_many.txt"))
    assert sorted(listed.records) == sorted(ids[:-1])
    shell = shell_for("torque", answer(stdout=torque("qstat_f_many.txt"), section="qstat",
                                       rc=header_status("qstat_f_many.txt")))
    states = expyre_pbs.status("pbs", jobs_for(*ids), shell)
    assert [states[i] for i in ids] == ["running", "queued", "queued", "other"]
    # one qstat for all of them (after the one-off dialect question)
    assert shell.commands[0] == dialect.VERSION_COMMAND
    assert len(shell.commands) == 2 and shell.commands[1].startswith(f"qstat -f -1 {' '.join(ids)}\n")


def test_front_end_says_nothing_about_unknown_jobs():
    assert header_status("qstat_f_unknown.txt") == 153 and torque("qstat_f_unknown.txt") == ""
    shell = shell_for("torque", answer(section="qstat", rc=153))
    assert expyre_pbs.status("pbs", jobs_for("999999", "999998"), shell) == {"999999": "other", "999998": "other"}


def test_front_end_control_commands():
    assert header_status("qhold.txt") == 0 and header_status("qrls.txt") == 0
    assert header_status("qdel_queued.txt") == 0
    # qdel of a finished job: exit status 1 and no message at all
    assert header_status("qdel_finished.txt") == 1 and torque("qdel_finished.txt").strip() == ""
    shell = ReplayShell(answer(rc=1))
    assert expyre_pbs.cancel("pbs", jobs_for("12", "13"), shell) is True
    assert shell.commands == ["qdel 12 13"]
    hold_shell = ReplayShell(answer())
    assert expyre_pbs.hold("pbs", jobs_for("12[3].s"), hold_shell) is True
    assert hold_shell.commands == ["qhold -h u '12[3].s'"]
    release_shell = ReplayShell(answer())
    assert expyre_pbs.release("pbs", jobs_for("12"), release_shell) is True
    assert release_shell.commands == ["qrls 12"]


def test_control_failures_raise_with_the_message():
    shell = ReplayShell(answer(stdout="qhold: Error on job id 12: Access/permission denied", rc=1))
    with pytest.raises(PBSCommandError, match="permission denied"):
        expyre_pbs.hold("pbs", jobs_for("12"), shell)
    shell = ReplayShell(answer(stderr="qdel: Unauthorized Request  12.pbs01", rc=159))
    with pytest.raises(PBSCommandError, match="Unauthorized"):
        expyre_pbs.cancel("pbs", jobs_for("12.pbs01"), shell)
    # jobs that are already over are not a failure to cancel
    shell = ReplayShell(answer(stderr="qdel: Unknown Job Id 12.pbs01\nqdel: Job has finished 13.pbs01\n", rc=153))
    assert expyre_pbs.cancel("pbs", jobs_for("12.pbs01", "13.pbs01"), shell) is True


# =========================================================================== qstat -f, PBS Pro

def test_pbspro_json_example_and_its_long_form_agree():
    from_json = parse.parse_qstat_json(pbspro("qstat_f_json_queued.txt"))
    from_text = parse.parse_qstat_full(pbspro("qstat_f_queued.txt"))
    assert list(from_json.records) == list(from_text.records) == ["1.vbox"]
    json_record, text_record = from_json.records["1.vbox"], from_text.records["1.vbox"]
    for key, value in text_record.attributes.items():
        assert json_record.attributes[key] == value
    assert json_record.name == "STDIN" and json_record.get("Error_Path").endswith("STDIN.e1")
    assert parse.map_state(json_record, "pbspro") == "queued"


HISTORY_STATES = {
    "130.ServerA": "done",      # F, Exit_status 0
    "131.ServerA": "failed",    # F, Exit_status 1
    "132.ServerA": "timeout",   # F, Exit_status -29 (JOB_EXEC_KILL_WALLTIME)
    "133.ServerA": "timeout",   # F, killed by a signal after using its whole walltime
    "134.ServerA": "failed",    # F, killed by a signal early (deleted while running)
    "135.ServerA": "other",     # F without Exit_status (deleted before it ran)
    "136.ServerA": "running",   # R, with a folded Variable_List
    "137.ServerA": "held",      # H
    "138.ServerA": "running",   # E: exiting, its files may not all be back yet
    "139.ServerA": "unknown",   # M: moved to another server, not followed
    "140[].ServerA": "running",  # B: array job with a subjob running
    "140[1].ServerA": "done",   # X: subjob finished, Exit_status 0
    "140[2].ServerA": "running",
}


def test_pbspro_long_format_history():
    listed = parse.parse_qstat_full(pbspro("qstat_xf_history.txt"))
    assert not listed.garbled
    assert {i: parse.map_state(r, "pbspro") for i, r in listed.records.items()} == HISTORY_STATES
    variables = listed.records["136.ServerA"].get("Variable_List")
    assert "PBS_O_WORKDIR=/home/alice/run_expyre/run_running,PBS_O_SYSTEM=Linux" in variables
    assert variables.endswith("PBS_O_HOST=login1") and "\t" not in variables


def test_pbspro_json_history():
    listed = parse.parse_qstat_json(pbspro("qstat_xf_json_history.txt"))
    states = {i: parse.map_state(r, "pbspro") for i, r in listed.records.items()}
    assert states == {"150.ServerA": "done", "151.ServerA": "timeout", "152.ServerA": "failed",
                      "153.ServerA": "queued", "154[].ServerA": "running", "154[1].ServerA": "done",
                      "154[2].ServerA": "running"}
    assert listed.records["151.ServerA"].walltime_limit == 600
    assert listed.records["153.ServerA"].get("Variable_List.PBS_O_HOME") == "/home/alice"


def test_pbspro_status_hook_uses_history_and_json_in_one_query():
    ids = ["150.ServerA", "154[1].ServerA", "160.ServerA", "161.ServerA", "162.ServerA"]
    shell = shell_for("pbspro", answer(stdout=pbspro("qstat_xf_json_history.txt"),
                                       stderr=pbspro("qstat_errors.txt"), rc=153, section="qstat"))
    states = expyre_pbs.status("pbs", jobs_for(*ids), shell)
    # 160 unknown to the server, 161 finished (named on stderr); 162 named nowhere: not concluded
    assert states == {"150.ServerA": "done", "154[1].ServerA": "done", "160.ServerA": "other",
                      "161.ServerA": "other", "162.ServerA": "unknown"}
    assert len(shell.commands) == 2
    assert shell.commands[1].startswith("qstat -x -f -F json 150.ServerA '154[1].ServerA' 160.ServerA")


def test_pbspro_json_that_cannot_be_read_is_asked_again_as_text():
    text = pbspro("qstat_xf_history.txt")

    def reply(command):
        if "-F json" in command:  # a server whose JSON has an unescaped character in it
            bad = '{"timestamp":1,"Jobs":{"130.ServerA":{"job_state":"F","Variable_List":"A=\\q"}}'
            return CommandResult(command, 0, f"{bad}\n{END_MARKER} qstat 0\n", "")
        return CommandResult(command, 0, f"{text}\n{END_MARKER} qstat 0\n", "")
    shell = shell_for("pbspro", reply)
    system = a_system()
    assert expyre_pbs.status("pbs", jobs_for("130.ServerA"), shell, system) == {"130.ServerA": "done"}
    assert expyre_pbs.status("pbs", jobs_for("131.ServerA"), shell, system) == {"131.ServerA": "failed"}
    queries = [c for c in shell.commands if c.startswith("qstat -x")]
    assert [("-F json" in q) for q in queries] == [True, False, False]


def test_ids_match_across_server_name_forms():
    listed = parse.parse_qstat_full("Job Id: 77.head\n    job_state = R\n\n")
    assert listed.lookup("77.head.cluster.example.org").state == "R"
    assert listed.lookup("77").state == "R"
    assert listed.lookup("78.head") is None


# =========================================================================== cut and garbled output

def _all_fixture_outputs():
    yield "torque", torque("qstat_f_many.txt")
    yield "torque", torque("qstat_f_completed.txt")
    yield "pbspro", pbspro("qstat_xf_history.txt")
    yield "pbspro", pbspro("qstat_f_queued.txt")


def _complete_records(text: str) -> Dict[str, str]:
    """id -> the record's text including its closing blank line."""
    records = {}
    for match in re.finditer(r"^Job Id:\s*(\S+)\n(.*?\n)\n", text, re.S | re.M):
        records[match.group(1)] = match.group(0)
    return records


@pytest.mark.parametrize("pbs, text", list(_all_fixture_outputs()))
def test_cut_text_never_finishes_a_job_whose_record_was_cut(pbs, text):
    records = _complete_records(text)
    assert records
    for cut in range(len(text)):
        prefix = text[:cut]
        listed = parse.parse_qstat_full(prefix)
        for job_id in listed.records:
            # a record counts only if all of it (and its closing blank line) arrived
            assert records[job_id] in prefix, (cut, job_id)


@pytest.mark.parametrize("pbs, text", list(_all_fixture_outputs()))
def test_cut_answers_never_report_unlisted_jobs_finished(pbs, text):
    ids = list(_complete_records(text)) + ["999999"]
    for cut in range(0, len(text), 7):
        prefix = text[:cut]
        whole = set(_complete_records(prefix))
        # the transport cut the answer: the end marker is missing, nothing is concluded
        shell = shell_for(pbs, answer(stdout=prefix, rc=0))
        with pytest.raises(PBSCommandError, match="no complete answer"):
            expyre_pbs.status("pbs", jobs_for(*ids), shell)
        # qstat itself printed a cut record and exited: jobs without a whole record stay open
        shell = shell_for(pbs, answer(stdout=prefix, rc=0, section="qstat"))
        states = expyre_pbs.status("pbs", jobs_for(*ids), shell)
        cut_mid_record = bool(prefix.strip()) and not prefix.endswith("\n\n") and prefix.rstrip("\n") != ""
        for job_id in ids:
            if job_id in whole:
                continue
            if pbs == "pbspro" or cut_mid_record:
                assert states[job_id] not in FINISHED, (cut, job_id, states[job_id])


@pytest.mark.parametrize("garbled", [
    # job_state twice
    "Job Id: 5.s\n    job_state = F\n    Exit_status = 0\n    job_state = F\n\n",
    # no job_state at all
    "Job Id: 5.s\n    Job_Name = N_x\n    Exit_status = 0\n\n",
    # a state that is no state
    "Job Id: 5.s\n    job_state = Finished\n    Exit_status = 0\n\n",
    "Job Id: 5.s\n    job_state = \n    Exit_status = 0\n\n",
    # a line that is neither an attribute nor a continuation
    "Job Id: 5.s\n    job_state = F\nExit_status = 0\n\n",
    # a continuation of the state
    "Job Id: 5.s\n    job_state = F\n\tX\n\n",
    # no blank line after the record
    "Job Id: 5.s\n    job_state = F\n    Exit_status = 0",
    # two different records for the same job
    "Job Id: 5.s\n    job_state = F\n\nJob Id: 5.s\n    job_state = R\n\n",
    # binary noise where the attributes should be
    "Job Id: 5.s\n\x00\x1b[2J\x7f\n\n",
])
def test_garbled_records_are_not_finished(garbled):
    listed = parse.parse_qstat_full(garbled)
    assert "5.s" not in listed.records and listed.is_garbled("5.s")
    for pbs in ("torque", "pbspro"):
        shell = shell_for(pbs, answer(stdout=garbled, section="qstat"))
        assert expyre_pbs.status("pbs", jobs_for("5.s", "6.s"), shell) == {"5.s": "unknown", "6.s": "unknown"}


@pytest.mark.parametrize("text", [
    pbspro("qstat_xf_json_history.txt")[:200],
    pbspro("qstat_xf_json_history.txt")[:-5],
    '{"Jobs": [1, 2]}',
    "not json at all",
    pbspro("qstat_xf_json_history.txt") + "{}",
])
def test_cut_or_garbled_json_is_an_error_not_a_state(text):
    with pytest.raises(parse.OutputError):
        parse.parse_qstat_json(text)


def test_json_job_without_a_readable_state_is_not_finished():
    document = json.dumps({"Jobs": {"5.s": {"Exit_status": 0}, "6.s": {"job_state": "F", "Exit_status": 0},
                                    "7.s": "F"}})
    listed = parse.parse_qstat_json(document)
    assert list(listed.records) == ["6.s"] and sorted(listed.garbled) == ["5.s", "7.s"]
    shell = shell_for("pbspro", answer(stdout=document, section="qstat"))
    assert expyre_pbs.status("pbs", jobs_for("5.s", "6.s", "7.s"), shell) == {
        "5.s": "unknown", "6.s": "done", "7.s": "unknown"}


@pytest.mark.parametrize("pbs", ["torque", "pbspro"])
def test_failing_queries_raise_and_never_finish_jobs(pbs):
    # qstat cannot reach its server
    shell = shell_for(pbs, answer(stderr="qstat: cannot connect to server pbs01 (errno=111)", rc=1, section="qstat"))
    with pytest.raises(PBSCommandError, match="cannot connect"):
        expyre_pbs.status("pbs", jobs_for("5.s"), shell)
    # the front end when slurmctld is down
    shell = shell_for(pbs, answer(stderr="Problem loading jobs.\n", rc=255, section="qstat"))
    with pytest.raises(PBSCommandError, match="Problem loading jobs"):
        expyre_pbs.status("pbs", jobs_for("5.s"), shell)

    # the query times out
    def slow(command):
        raise TimeoutError("no answer")
    with pytest.raises(PBSCommandError):
        expyre_pbs.status("pbs", jobs_for("5.s"), shell_for(pbs, slow))
    # an answer with an error line that says nothing about the job: absent jobs stay open
    shell = shell_for(pbs, answer(stderr="qstat: Warning: server is being restarted\n", rc=153, section="qstat"))
    assert expyre_pbs.status("pbs", jobs_for("5.s"), shell) == {"5.s": "unknown"}


def test_states_a_parser_does_not_know_are_never_finished():
    for letter in "ADGIKLNOPVYZUM":
        record = parse.JobRecord("1.s", {"job_state": letter, "Exit_status": "0"})
        assert parse.map_state(record, "torque") not in FINISHED, letter
        assert parse.map_state(record, "pbspro") not in FINISHED, letter


def test_torque_exit_status_is_lower_case():
    # Torque names the attribute exit_status (Torque 6.1 administrator guide, "Job exit status")
    listed = parse.parse_qstat_full("Job Id: 12.head\n    job_state = C\n    exit_status = -11\n\n"
                                    "Job Id: 13.head\n    job_state = C\n    exit_status = 0\n\n")
    assert parse.map_state(listed.records["12.head"], "torque") == "timeout"
    assert parse.map_state(listed.records["13.head"], "torque") == "done"


def test_torque_walltime_code_and_signals():
    def state(exit_status, pbs="torque", used=None, limit=None):
        return parse.finished_state(exit_status, pbs, used, limit)
    assert state(-11) == "timeout" and state(-11, "pbspro") == "failed"
    assert state(-29, "pbspro") == "timeout" and state(-29) == "failed"
    assert state(265, used=3600, limit=3600) == "timeout" and state(265, used=10, limit=3600) == "failed"
    assert state(0, used=4000, limit=3600) == "done"
    assert state(None) == "other"
    assert parse.duration_seconds("01:02:03") == 3723 and parse.duration_seconds("90") == 90
    assert parse.duration_seconds("1:2:3:4") is None and parse.duration_seconds("x") is None


# =========================================================================== find_submitted

def test_find_submitted_on_the_front_end_reads_the_record_and_the_listing():
    job = _job()
    name = expyre_pbs.names.job_name(job.id)
    listing = torque("qstat_f_many.txt").replace("fx-queued", name)
    queued_id = torque_id("qstat_f_queued.txt")

    def reply(command):
        stdout = f"{queued_id}\n\n{END_MARKER} record 0\n{listing}\n{END_MARKER} select 0\n"
        return CommandResult(command, 0, stdout, "")
    shell = shell_for("torque", reply)
    assert expyre_pbs.find_submitted("pbs", job, shell) == [queued_id]
    assert "qstat -f -1" in shell.commands[-1] and "qselect" not in shell.commands[-1]


def test_find_submitted_on_pbspro_asks_qselect_with_history():
    job = _job()

    def reply(command):
        stdout = f"\n{END_MARKER} record 1\n88.ServerA\n89.ServerA\n\n{END_MARKER} select 0\n"
        return CommandResult(command, 0, stdout, "")
    shell = shell_for("pbspro", reply)
    assert expyre_pbs.find_submitted("pbs", job, shell) == ["88.ServerA", "89.ServerA"]
    name = expyre_pbs.names.job_name(job.id)
    assert f"qselect -x -N {name} -u" in shell.commands[-1]


@pytest.mark.parametrize("pbs", ["torque", "pbspro"])
def test_find_submitted_raises_when_the_lookup_fails(pbs):
    # an empty answer would make core submit a second copy
    def reply(command):
        stdout = f"\n{END_MARKER} record 1\n\n{END_MARKER} select 1\n"
        return CommandResult(command, 0, stdout, "qselect: cannot connect")
    with pytest.raises(PBSCommandError):
        expyre_pbs.find_submitted("pbs", _job(), shell_for(pbs, reply))
    with pytest.raises(PBSCommandError, match="no complete answer"):
        expyre_pbs.find_submitted("pbs", _job(), shell_for(pbs, answer(stdout=f"{END_MARKER} record 1\n")))



def test_status_command_forms():
    ids = ["1.s", "2[3].s", "1.s"]
    assert commands.status_command(dialect.for_name("torque"), ids).startswith("qstat -f -1 1.s '2[3].s'\n")
    assert commands.status_command(dialect.for_name("pbspro", "2022.1"), ids).startswith(
        "qstat -x -f -F json 1.s '2[3].s'\n")
    assert commands.status_command(dialect.for_name("pbspro", "13.0"), ids).startswith("qstat -x -f 1.s '2[3].s'\n")


def test_pbs_settings_are_checked():
    assert expyre_pbs.check_options("pbs", {"dialect": "torque"}) == []
    problems = expyre_pbs.check_options("pbs", {"dialect": "lsf", "colour": "blue"})
    assert ("colour", "blue", "unknown pbs setting; known: max_array_size, arrays, dialect") in problems
    assert any(key == "dialect" and value == "lsf" and "unknown PBS dialect" in problem
               for key, value, problem in problems)
