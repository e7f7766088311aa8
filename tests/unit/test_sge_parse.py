"""The Grid Engine plugin's parsers and state logic, on output captured from a real Grid Engine.

The files under tests/fixtures/sge/ were printed by Son of Grid Engine 8.1.9 on the one-host
test cluster of tests/services/30-sge.sh (tests/fixtures/sge/capture.py makes them again); each
starts with one ``# `` line naming the command. Array jobs with running tasks, the states
``hRwq`` and ``Rr`` and cut or garbled output cannot be produced on demand there and are written
here by hand, after the captured forms.

The hooks are driven through :class:`ReplayShell`, a stand-in for a transport's shell that
answers each command with captured output (no Grid Engine is involved in these tests).
"""
import re
from pathlib import Path

import pytest
from shells import ReplayShell

import expyre_sge
from expyre import CommandResult, ConnectionLostError, JobSpec, RemoteCommandError, RemoteJob
from expyre_sge import commands, parse
from expyre_sge.commands import SGECommandError

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "sge"
FINISHED = ("done", "failed", "timeout", "other")


def captured(name: str) -> str:
    """A fixture file's text without its first ``# ...`` line."""
    text = (FIXTURES / name).read_text()
    first, _, rest = text.partition("\n")
    assert first.startswith("# sge 8.1.9; command: "), f"{name} lacks its header line"
    return rest


def header(name: str) -> str:
    return (FIXTURES / name).read_text().partition("\n")[0]


def header_status(name: str) -> int:
    return int(re.search(r"exit status (-?\d+)", header(name)).group(1))


def header_number(name: str) -> str:
    """The job number in a fixture's command (``qacct -j 48`` -> ``48``)."""
    return re.search(r"command: \S+ (?:-j )?(\d+)", header(name)).group(1)


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch):
    monkeypatch.setenv("EXPYRE_RETRY", "3 0")


def answer(stdout="", stderr="", rc=0):
    return lambda command: CommandResult(command, rc, stdout, stderr)


def spec(job_id="t_abc=_u1", remote_dir="run_expyre/run_t"):
    return JobSpec(id=job_id, name="t", remote_dir=remote_dir, partition="regular",
                   node_dict={"num_nodes": 1, "num_cores": 2, "num_cores_per_node": 2, "partition": "regular",
                              "id": job_id, "max_time": "0:10:00"}, max_time=600)


def section(name, text, rc=0):
    return f"{text}\n{parse.SECTION_MARKER} {name} {rc}\n"


# --------------------------------------------------------------------------- qsub

def test_qsub_submitted():
    text = captured("qsub_submitted.txt")
    sub = parse.parse_qsub_output(text)
    assert sub.job_number == re.search(r"Your job (\d+)", text).group(1)
    assert sub.name == "fx-submitted" and sub.tasks is None


def test_qsub_array_job_stands_for_all_tasks():
    sub = parse.parse_qsub_output(captured("qsub_array_submitted.txt"))
    assert sub.tasks == "1-3:1" and sub.name == "fx-array"
    assert re.fullmatch(r"\d+", sub.job_number)


def test_qsub_terse_and_synthetic_array_forms():
    assert parse.parse_qsub_output(captured("qsub_terse.txt")).job_number == captured("qsub_terse.txt").strip()
    assert parse.parse_qsub_output("16.1-3:1\n") == parse.Submission("16", "1-3:1")
    assert parse.parse_qsub_output('Your job-array 7.2-10:2 ("N_a b") has been submitted\n').job_number == "7"
    # other lines (a site's submit filter, a warning on stdout) are ignored
    out = ('warning: "-N" option has already been set, overriding previous setting\n'
           'Your job 5 ("N_x") has been submitted\n')
    assert parse.parse_qsub_output(out).job_number == "5"


@pytest.mark.parametrize("stdout", ["", "Unable to run job\n",
                                    'Your job 1 ("a") has been submitted\nYour job 2 ("b") has been submitted\n'])
def test_qsub_without_one_id_raises(stdout):
    with pytest.raises(parse.OutputError):
        parse.parse_qsub_output(stdout)


@pytest.mark.parametrize("name", ["qsub_rejected_queue.txt", "qsub_rejected_digit.txt", "qsub_rejected_colon.txt"])
def test_submit_refused_raises_with_qsubs_message(name):
    message = captured(name)
    shell = ReplayShell(answer(stderr=message, rc=header_status(name)))
    with pytest.raises(SGECommandError) as info:
        expyre_sge.submit("sge", spec(), "_expyre_job.sh", shell)
    assert "Unable to run job" in str(info.value) and "qsub refused job t_abc=_u1" in str(info.value)
    assert "qsub '_expyre_job.sh'" in shell.commands[0] or "qsub _expyre_job.sh" in shell.commands[0]


def test_submit_returns_the_job_number_and_keeps_the_record():
    shell = ReplayShell(answer(stdout=captured("qsub_submitted.txt")))
    number = expyre_sge.submit("sge", spec(), "_expyre_job.sh", shell)
    assert number == parse.parse_qsub_output(captured("qsub_submitted.txt")).job_number
    command = shell.commands[0]
    assert command.startswith(commands.SGE_ENVIRONMENT)
    assert "\n_xpr_lock_submit run_expyre/run_t\n" in command and f"> {commands.SUBMIT_RECORD}" in command


def test_submit_timeout_is_an_unknown_outcome():
    def hang(command):
        raise TimeoutError("no answer")
    with pytest.raises(ConnectionLostError):
        expyre_sge.submit("sge", spec(), "_expyre_job.sh", ReplayShell(hang))



# --------------------------------------------------------------------------- qstat

def names_and_states(entries):
    return {e.name: e.state for e in entries}


def test_qstat_xml_states():
    entries = parse.parse_qstat_xml(captured("qstat_xml_states.txt"))
    states = names_and_states(entries)
    assert states == {"fx-running": "r", "fx-suspended": "s", "fx-error": "Eqw", "fx-pending": "qw",
                      "fx-array-pending": "qw", "fx-held": "hqw"}
    array = next(e for e in entries if e.name == "fx-array-pending")
    assert array.tasks == "1-4:1" and array.has_task(3) and not array.has_task(5)
    assert all(e.owner == "xpr-cluster" for e in entries)
    mapped = {e.name: parse.map_state(e.state) for e in entries}
    assert mapped == {"fx-running": "running", "fx-suspended": "held", "fx-error": "other", "fx-pending": "queued",
                      "fx-array-pending": "queued", "fx-held": "held"}


def test_qstat_xml_transfer_and_delete_states():
    entries = parse.parse_qstat_xml(captured("qstat_xml_transfer_delete.txt"))
    assert names_and_states(entries) == {"fx-running": "dr", "fx-pending": "t"}
    assert {parse.map_state(e.state) for e in entries} == {"running"}


def test_qstat_xml_empty_queue():
    assert parse.parse_qstat_xml(captured("qstat_xml_empty.txt")) == []


def test_plain_qstat_table_matches_the_xml():
    for table, xml in (("qstat_states.txt", "qstat_xml_states.txt"),
                       ("qstat_transfer_delete.txt", "qstat_xml_transfer_delete.txt")):
        plain = parse.parse_qstat_table(captured(table))
        full = parse.parse_qstat_xml(captured(xml))
        assert {(e.job_number, e.state, e.tasks) for e in plain} == {(e.job_number, e.state, e.tasks) for e in full}
        # the table cuts names to 10 characters
        assert {e.name for e in plain} == {e.name[:10] for e in full}
    assert parse.parse_qstat_table(captured("qstat_empty.txt")) == []


def test_plain_qstat_garbled_raises():
    with pytest.raises(parse.OutputError):
        parse.parse_qstat_table("error: commlib error\n")
    lines = captured("qstat_states.txt").splitlines()
    with pytest.raises(parse.OutputError):
        parse.parse_qstat_table("\n".join(lines[:2] + ["     51 0.75000 fx-running"]))


@pytest.mark.parametrize("code,state", [
    ("qw", "queued"), ("hqw", "held"), ("hRwq", "held"), ("Rq", "queued"), ("r", "running"), ("t", "running"),
    ("Rr", "running"), ("Rt", "running"), ("dr", "running"), ("dt", "running"), ("hr", "running"),
    ("s", "held"), ("S", "held"), ("T", "held"), ("Rs", "held"), ("ds", "held"),
    ("Eqw", "other"), ("Ehqw", "other"), ("EhRqw", "other"), ("dqw", "queued"), ("z", "unknown"), ("", "unknown")])
def test_state_codes(code, state):
    assert parse.map_state(code) == state


SYNTHETIC_ARRAY = """<?xml version='1.0'?>
<job_info  xmlns:xsd="http://arc.liv.ac.uk/repos/darcs/sge/source/dist/util/resources/schemas/qstat/qstat.xsd">
  <queue_info>
    <job_list state="running">
      <JB_job_number>16</JB_job_number>
      <JAT_prio>0.50000</JAT_prio>
      <JB_name>N_arr</JB_name>
      <JB_owner>xpr-cluster</JB_owner>
      <state>r</state>
      <JAT_start_time>2026-11-24T23:01:03</JAT_start_time>
      <queue_name>regular@localhost</queue_name>
      <slots>1</slots>
      <tasks>1</tasks>
    </job_list>
    <job_list state="running">
      <JB_job_number>16</JB_job_number>
      <JAT_prio>0.50000</JAT_prio>
      <JB_name>N_arr</JB_name>
      <JB_owner>xpr-cluster</JB_owner>
      <state>Rr</state>
      <JAT_start_time>2026-11-24T23:01:03</JAT_start_time>
      <queue_name>regular@localhost</queue_name>
      <slots>1</slots>
      <tasks>2</tasks>
    </job_list>
  </queue_info>
  <job_info>
    <job_list state="pending">
      <JB_job_number>16</JB_job_number>
      <JAT_prio>0.50000</JAT_prio>
      <JB_name>N_arr</JB_name>
      <JB_owner>xpr-cluster</JB_owner>
      <state>hRwq</state>
      <JB_submission_time>2026-11-24T23:01:03</JB_submission_time>
      <queue_name></queue_name>
      <slots>1</slots>
      <tasks>3-9:2</tasks>
    </job_list>
  </job_info>
</job_info>
"""


def test_array_tasks_combine():
    entries = parse.parse_qstat_xml(SYNTHETIC_ARRAY)
    assert len(entries) == 3
    assert parse.listed_state(entries, "16") == "running"
    assert parse.listed_state(entries, "16", 2) == "running"
    assert parse.listed_state(entries, "16", 7) == "held"
    assert parse.listed_state(entries, "16", 4) is None   # not in 3-9:2
    assert parse.listed_state(entries, "17") is None


@pytest.mark.parametrize("remote_id,expected", [("12", ("12", None)), ("16.2", ("16", 2)), ("16.1-3:1", ("16", None)),
                                                ("16.1-3", ("16", None))])
def test_split_remote_id(remote_id, expected):
    assert parse.split_remote_id(remote_id) == expected


@pytest.mark.parametrize("bad", ["", "abc", "12.x", "-1", "1 2"])
def test_split_remote_id_refuses(bad):
    with pytest.raises(parse.OutputError):
        parse.split_remote_id(bad)


def garbled_xml_variants():
    text = captured("qstat_xml_states.txt")
    return [
        "",                                              # nothing at all
        text[: len(text) // 2],                          # cut short in the middle
        text[: text.rindex("</job_info>")],              # cut before the last closing tag
        text.replace("<state>r</state>", "<state>r</stat>"),
        text.replace("<JB_job_number>", "<JB_job_nmber>", 1),
        text.replace("<state>qw</state>", "<state></state>", 1),
        "error: commlib error: got select error (Connection refused)\n",
        "<html><body>proxy error</body></html>",
        "<?xml version='1.0'?>\n<!DOCTYPE x [<!ENTITY a 'aaaa'>]>\n<job_info>&a;</job_info>",
        text.replace("<?xml version='1.0'?>", "<?xml version='1.0'?>\x00"),
    ]


@pytest.mark.parametrize("variant", range(10))
def test_garbled_qstat_xml_raises(variant):
    with pytest.raises(parse.OutputError):
        parse.parse_qstat_xml(garbled_xml_variants()[variant])


# --------------------------------------------------------------------------- qacct

@pytest.mark.parametrize("name,state", [("qacct_done.txt", "done"), ("qacct_exit3.txt", "failed"),
                                        ("qacct_timeout.txt", "timeout"), ("qacct_cancelled.txt", "failed"),
                                        ("qacct_error_state.txt", "failed")])
def test_qacct_records(name, state):
    records = parse.parse_qacct(captured(name))
    assert len(records) == 1
    number = header_number(name)
    assert records[0].job_number == number
    assert parse.accounted_state(records, number) == state


def test_qacct_fields():
    timeout = parse.parse_qacct(captured("qacct_timeout.txt"))[0]
    assert (timeout.failed, timeout.exit_status, timeout.h_rt, timeout.name) == (37, 137, 3.0, "fx-timeout")
    assert timeout.wallclock >= 3 and timeout.started and "h_rt" in timeout.failed_reason
    cancelled = parse.parse_qacct(captured("qacct_cancelled.txt"))[0]
    assert (cancelled.failed, cancelled.exit_status, cancelled.h_rt) == (100, 137, None)
    never = parse.parse_qacct(captured("qacct_error_state.txt"))[0]
    assert not never.started and never.failed == 28


def test_qacct_array_job():
    records = parse.parse_qacct(captured("qacct_array.txt"))
    number = header_number("qacct_array.txt")
    assert sorted(r.task for r in records) == [1, 2, 3]
    assert parse.accounted_state(records, number) == "done"
    assert parse.accounted_state(records, number, 2) == "done"
    assert parse.accounted_state(records, number, 4) is None


def test_qacct_synthetic_array_with_a_failed_task_and_a_rerun():
    text = captured("qacct_array.txt")
    blocks = text.split("==============================================================")
    failed_task = blocks[2].replace("exit_status  0", "exit_status  1")
    records = parse.parse_qacct("=" * 62 + ("=" * 62).join([blocks[1], failed_task, blocks[3]]))
    number = header_number("qacct_array.txt")
    assert parse.accounted_state(records, number) == "failed"
    # a task run twice: the last record counts
    rerun = parse.parse_qacct("=" * 62 + failed_task + "=" * 62 + blocks[2])
    assert parse.accounted_state(rerun, number) == "done"


def test_qacct_not_found_and_by_name():
    assert parse.parse_qacct(captured("qacct_not_found.txt")) == []
    assert parse.qacct_not_found(captured("qacct_not_found.txt"))
    by_name = parse.parse_qacct(captured("qacct_by_name.txt"))
    # every job ever run under that name (earlier captures too), the newest last
    assert by_name and {r.name for r in by_name} == {"fx-done"}
    assert by_name[-1].job_number == header_number("qacct_done.txt")


def test_qacct_garbled_record_raises():
    text = captured("qacct_done.txt").replace("exit_status  0", "exit_status  zero")
    with pytest.raises(parse.OutputError):
        parse.parse_qacct(text)
    with pytest.raises(parse.OutputError):
        parse.parse_qacct(captured("qacct_done.txt").replace("failed       0", "flaw 0"))


def test_error_reasons():
    reasons = parse.error_reasons(captured("qstat_j_error.txt"))
    assert len(reasons) == 1 and "can't chdir" in reasons[0]


# --------------------------------------------------------------------------- the status hook

def status_fixture_jobs():
    """The jobs of status_command.txt, named by their fx- names (job numbers from the header)."""
    first = header("status_command.txt")
    numbers = re.search(r"for jobs ([\d, ]+) \(", first).group(1).split(", ")
    names = ["running", "pending", "held", "error", "suspended", "done", "exit3", "timeout", "cancelled", "array"]
    work = re.search(r"dirs (\S+)/d<N>", first).group(1)
    return {name: RemoteJob(n, f"{work}/d{n}", f"fx{n}") for name, n in zip(names, numbers)}


def test_status_from_the_captured_combined_command():
    jobs = status_fixture_jobs()
    shell = ReplayShell(answer(stdout=captured("status_command.txt")))
    states = expyre_sge.status("sge", list(jobs.values()), shell)
    by_name = {name: states[job.remote_id] for name, job in jobs.items()}
    assert by_name == {"running": "running", "pending": "queued", "held": "held", "error": "other",
                       "suspended": "held", "done": "done", "exit3": "failed", "timeout": "timeout",
                       "cancelled": "failed", "array": "queued"}
    # one command for all jobs, then one more only to report the error state's reason
    assert len(shell.commands) == 2
    assert "qstat -xml" in shell.commands[0] and "qstat -j" in shell.commands[1]
    assert f"fx{jobs['error'].remote_id}.stderr" in shell.commands[1]


def test_status_is_one_command_for_many_jobs():
    jobs = [RemoteJob(str(n), f"run_expyre/d{n}", f"j{n}") for n in range(1000, 1100)]
    xml = captured("qstat_xml_empty.txt").replace(
        "  <job_info>\n", "  <job_info>\n" + "".join(
            f"    <job_list state=\"pending\"><JB_job_number>{j.remote_id}</JB_job_number><JB_name>N_{j.id}</JB_name>"
            f"<JB_owner>u</JB_owner><state>qw</state></job_list>\n" for j in jobs))
    shell = ReplayShell(answer(stdout=section("qstat", xml)))
    states = expyre_sge.status("sge", jobs, shell)
    assert set(states.values()) == {"queued"} and len(states) == 100
    assert len(shell.commands) == 1


def unlisted_answer(qacct_text=None, files="", qacct_rc=0):
    out = section("qstat", captured("qstat_xml_empty.txt"))
    if qacct_text is not None:
        out += section("qacct:42", qacct_text, qacct_rc)
    if files is not None:
        out += section("files:0", files)
    return answer(stdout=out)


JOB42 = RemoteJob("42", "run_expyre/d42", "x42")


@pytest.mark.parametrize("qacct_text,files,expected", [
    # accounting decides
    (None, "exit 0", "done"),
    ("error: job id 42 not found", "exit 0\nage 3", "done"),
    ("error: job id 42 not found", "exit 1\nage 3", "failed"),
    ("error: job id 42 not found", "cancelled\nage 1", "failed"),
    ("error: job id 42 not found", "missing", "other"),
    # no record yet, nothing written: wait for the accounting record ...
    ("error: job id 42 not found", "age 5", "unknown"),
    # ... but not forever
    ("error: job id 42 not found", "age 61", "other"),
    ("error: unable to open accounting file", "age 600", "other"),
    # the directory part of the answer is missing (output cut short): nothing is concluded
    ("error: job id 42 not found", None, "unknown"),
    # a garbled accounting record does not count
    ("==========\njobnumber 42\nfailed zero\n", "age 5", "unknown"),
])
def test_unlisted_jobs(qacct_text, files, expected):
    shell = ReplayShell(unlisted_answer(qacct_text, files))
    assert expyre_sge.status("sge", [JOB42], shell) == {"42": expected}


@pytest.mark.parametrize("fixture,state", [("qacct_done.txt", "done"), ("qacct_timeout.txt", "timeout"),
                                           ("qacct_cancelled.txt", "failed")])
def test_unlisted_job_from_captured_accounting(fixture, state):
    number = header_number(fixture)
    job = RemoteJob(number, f"run_expyre/d{number}", "x")
    out = (section("qstat", captured("qstat_xml_empty.txt")) + section(f"qacct:{number}", captured(fixture))
           + section("files:0", "age 2"))
    assert expyre_sge.status("sge", [job], ReplayShell(answer(stdout=out))) == {number: state}


def test_an_id_that_is_not_grid_engines_is_unknown():
    jobs = [RemoteJob("12345;cluster", "d", "a"), JOB42]
    command, looked_up = commands.status_command(jobs)
    assert looked_up == ["42"] and "12345" not in command
    shell = ReplayShell(answer(stdout=section("qstat", captured("qstat_xml_empty.txt"))
                               + section("qacct:42", "error: job id 42 not found", 1) + section("files:1", "exit 0")))
    assert expyre_sge.status("sge", jobs, shell) == {"12345;cluster": "unknown", "42": "done"}


def test_accounting_is_asked_once_per_job_number_and_at_most_a_limit(monkeypatch):
    monkeypatch.setattr(commands, "MAX_QACCT_PER_QUERY", 2)
    jobs = [RemoteJob("16.1", "d16", "a"), RemoteJob("16.2", "d16", "a"), RemoteJob("17", "d17", "b"),
            RemoteJob("18", "d18", "c")]
    command, looked_up = commands.status_command(jobs)
    assert looked_up == ["16", "17"]
    assert "_xpr_unlisted 0 16 d16 1" in command and "_xpr_unlisted 1 16 d16 0" in command
    assert "_xpr_unlisted 3 18 d18 0" in command
    # job 18 was not looked up in qacct: with nothing else known it stays unknown, however old
    out = section("qstat", captured("qstat_xml_empty.txt")) + section("files:3", "age 5000")
    states = expyre_sge.status("sge", [jobs[3]], ReplayShell(answer(stdout=out)))
    assert states == {"18": "unknown"}


@pytest.mark.parametrize("stdout,rc", [
    ("", 0),                                                            # nothing came back
    (section("qstat", "", 1), 0),                                       # qstat failed
    (section("qstat", captured("qstat_xml_states.txt")[:500]), 0),      # XML cut short
    (captured("qstat_xml_states.txt"), 0),                              # end marker missing
    (section("qstat", "garbage"), 0),
    ("", 127),                                                          # no Grid Engine programs
])
def test_failing_status_query_raises_and_never_finishes(stdout, rc):
    shell = ReplayShell(answer(stdout=stdout, stderr=captured("qstat_qmaster_unreachable.txt"), rc=rc))
    with pytest.raises(RemoteCommandError):
        expyre_sge.status("sge", [JOB42], shell)


def test_core_treats_a_failing_query_as_still_ongoing(expyre_config, monkeypatch):
    """Through core's gathering: a status query that raises leaves the jobs unknown, not finished."""
    import warnings

    from expyre import gather
    config = expyre_config({"sgesys": {"host": "nowhere", "scheduler": "sge",
                                       "partitions": {"regular": {"num_cores": 2, "max_time": "1h"}}}})
    system = config.systems["sgesys"]
    system._shell = ReplayShell(answer(stdout=section("qstat", captured("qstat_xml_states.txt")[:700])))
    config.db.add("j1", name="j", from_dir="/nonexistent", status="submitted")
    config.db.update("j1", system="sgesys", remote_id="42", remote_dir="run_expyre/j1")
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        states = gather.sync([config.db.get("j1")])
    assert states == {"j1": "unknown"}
    assert config.db.get("j1")["status"] == "submitted"
    system._shell = None


def test_missing_environment_message():
    message = captured("qstat_no_environment.txt")
    assert header_status("qstat_no_environment.txt") == 127
    assert "SGE_ROOT is not set" in message and "settings.sh" in message


# --------------------------------------------------------------------------- cancel, hold, release, find

def test_cancel_marks_then_deletes_and_accepts_finished_jobs():
    shell = ReplayShell(answer(stdout=captured("qdel_finished.txt"), rc=header_status("qdel_finished.txt")))
    jobs = [RemoteJob("69", "run_expyre/a b", "x"), RemoteJob("70", "run_expyre/c", "y"), RemoteJob("16.2", "d", "z")]
    assert expyre_sge.cancel("sge", jobs, shell) is True
    command = shell.commands[0]
    assert "touch 'run_expyre/a b/_expyre_sge_cancelled'" in command
    assert command.index("_expyre_sge_cancelled") < command.index("qdel 69 70")
    assert "qdel 16 -t 2" in command


def test_hold_and_release():
    shell = ReplayShell(answer(stdout=captured("qhold_queued.txt")))
    assert expyre_sge.hold("sge", [RemoteJob("53", "d", "x")], shell) is True
    assert "qhold 53" in shell.commands[-1]
    shell = ReplayShell(answer(stdout=captured("qrls_held.txt")))
    assert expyre_sge.release("sge", [RemoteJob("53", "d", "x")], shell) is True
    assert "qrls 53" in shell.commands[-1]
    finished = ReplayShell(answer(stdout=captured("qhold_finished.txt"), rc=header_status("qhold_finished.txt")))
    assert expyre_sge.hold("sge", [RemoteJob("69", "d", "x")], finished) is True


def test_control_failure_raises():
    shell = ReplayShell(answer(stderr=captured("qstat_qmaster_unreachable.txt"), rc=1))
    with pytest.raises(SGECommandError):
        expyre_sge.cancel("sge", [RemoteJob("69", "d", "x")], shell)


def test_find_submitted_from_record_and_name():
    job = spec(job_id="fx-pending_x")
    entries_xml = captured("qstat_xml_states.txt").replace("<JB_name>fx-pending</JB_name>",
                                                           "<JB_name>N_fx-pending_x</JB_name>")
    pending = re.search(r"<JB_job_number>(\d+)</JB_job_number>\s*<JAT_prio>[^<]*</JAT_prio>\s*"
                        r"<JB_name>N_fx-pending_x<", entries_xml).group(1)
    out = section("record", captured("qsub_submitted.txt")) + section("qstat", entries_xml)
    shell = ReplayShell(answer(stdout=out))
    found = expyre_sge.find_submitted("sge", job, shell)
    assert found == [parse.parse_qsub_output(captured("qsub_submitted.txt")).job_number, pending]
    assert len(shell.commands) == 1


def test_find_submitted_when_nothing_was_submitted_and_when_qstat_fails():
    job = spec(job_id="fx-done")
    shell = ReplayShell(answer(stdout=section("record", "", 1) + section("qstat", captured("qstat_xml_empty.txt"))))
    assert expyre_sge.find_submitted("sge", job, shell) == []
    assert len(shell.commands) == 1
    for stdout in (section("record", "", 1) + section("qstat", "", 1), section("record", "", 1),
                   section("record", "", 1) + section("qstat", captured("qstat_xml_states.txt")[:300])):
        with pytest.raises(SGECommandError):
            expyre_sge.find_submitted("sge", job, ReplayShell(answer(stdout=stdout)))


def test_sections_split():
    out = f"a\nb\n\n{parse.SECTION_MARKER} one 0\nc\n{parse.SECTION_MARKER} two 3\n"
    assert parse.split_sections(out) == {"one": (0, "a\nb\n"), "two": (3, "c")}
    assert parse.split_sections("cut short\n") == {}


class FakeGridEngineShell:
    """Runs commands in a local bash in which ``qstat`` prints the given XML and ``qacct`` knows
    no job (shell functions standing in for Grid Engine's programs): the status command's own
    shell logic, without a Grid Engine."""

    host = "fake-grid-engine"

    def __init__(self, xml_file, workdir):
        self.prefix = (f"qstat() {{ cat {xml_file}; }}\n"
                       "qacct() { echo \"error: job id $2 not found\" >&2; return 1; }\n")
        self.workdir = workdir

    def run(self, command, *, input=None, timeout=None, check=True, idempotent=True):
        import subprocess
        proc = subprocess.run(["bash", "-c", self.prefix + command], cwd=self.workdir, capture_output=True,
                              text=True, timeout=60)
        result = CommandResult(command, proc.returncode, proc.stdout, proc.stderr)
        if check and proc.returncode != 0:
            raise RemoteCommandError(self.host, result)
        return result

    def close(self):
        pass


@pytest.mark.parametrize("queued", [3, 2000])   # a short answer, and one over 100 kB
def test_status_command_runs_in_bash(queued, tmp_path):
    template = captured("qstat_xml_empty.txt")
    entries = "".join(f"    <job_list state=\"pending\">\n      <JB_job_number>{n}</JB_job_number>\n"
                      f"      <JB_name>N_job{n}</JB_name>\n      <JB_owner>u</JB_owner>\n      <state>qw</state>\n"
                      "    </job_list>\n" for n in range(1, queued + 1))
    xml = template.replace("  <job_info>\n", "  <job_info>\n" + entries)
    (tmp_path / "q.xml").write_text(xml)
    assert (len(xml) > 100_000) == (queued > 100)
    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "_expyre_sge_exit").write_text("0\n")
    (tmp_path / "killed").mkdir()
    (tmp_path / "cancelled").mkdir()
    (tmp_path / "cancelled" / commands.CANCELLED_FILE).write_text("")
    jobs = [RemoteJob("2", "queued", "a"), RemoteJob("90001", "done", "b"), RemoteJob("90002", "killed", "c"),
            RemoteJob("90003", "cancelled", "d"), RemoteJob("90004", "gone", "e")]
    shell = FakeGridEngineShell(tmp_path / "q.xml", tmp_path)
    states = expyre_sge.status("sge", jobs, shell)
    assert states == {"2": "queued", "90001": "done", "90002": "unknown", "90003": "failed", "90004": "other"}
