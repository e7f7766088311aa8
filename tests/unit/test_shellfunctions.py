"""Shell functions that a long-lived session defines once (:mod:`expyre.shellfunctions`): what
:func:`~expyre.shellfunctions.split` takes out of a command, and that the session runs the rest
as the whole command would run (checked with the real ``bash``)."""
import subprocess

import pytest

from expyre import batch, quote, shellfunctions
from expyre.transports import tarstream

GREET = shellfunctions.define("_xpr_test_greet", 'echo "hello $1"')


def bash(script: str, cwd, input: bytes) -> subprocess.CompletedProcess:
    done = subprocess.run(["bash", "-c", script], capture_output=True, cwd=cwd, timeout=30, input=input)
    return subprocess.CompletedProcess(done.args, done.returncode, done.stdout.decode(), done.stderr.decode())


def test_a_definition_is_sent_once_and_taken_out_of_every_command_after():
    defined = set()
    command = f"{GREET}_xpr_test_greet a\n( {GREET}_xpr_test_greet b\n)"
    first, rest = shellfunctions.split(command, defined)
    assert first == GREET
    assert rest == "_xpr_test_greet a\n( _xpr_test_greet b\n)"
    again, rest_again = shellfunctions.split(command, defined)
    assert again == "" and rest_again == rest
    assert shellfunctions.split("echo unrelated", defined) == ("", "echo unrelated")


def test_a_quoted_copy_is_data_and_stays():
    for quoted in (quote(GREET), '"' + GREET.replace('"', '\\"').replace("$", "\\$") + '"'):
        command = f"printf %s {quoted}"
        assert shellfunctions.split(command, set()) == ("", command)


def test_the_session_runs_the_rest_as_the_whole_command_would(tmp_path):
    """The exactly-once submission of a job whose directory is staged first: whole in one
    shell, and split as the session runs it (definitions first, then the rest)."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "script.sh").write_text("echo hi\n")
    archive = tarstream.pack_directories([(tmp_path / "src", "job")]).read()
    for name in ("whole", "split"):
        (tmp_path / name).mkdir()
    command = (tarstream.put_command([(".", len(archive), ["job"])]) + "\n"
               + batch.submit_wrapper("job", "echo submitted $PWD; cat script.sh; echo note >&2"))
    whole = bash(command, tmp_path / "whole", archive)
    definitions, rest = shellfunctions.split(command, set())
    assert "_xpr_lock_submit() {" in definitions and "_xpr_put() {" in definitions and "() {" not in rest
    split = bash(f"{definitions}( {rest}\n)", tmp_path / "split", archive)
    assert whole.returncode == split.returncode == 0
    assert whole.stdout.replace("whole", "split") == split.stdout == f"submitted {tmp_path}/split/job\necho hi\n"
    assert whole.stderr == split.stderr == "note\n"
    assert (tmp_path / "split/job" / batch.SUBMIT_LOCK).read_text() == f"done 0\n{split.stdout}"


@pytest.mark.parametrize("name", ["1abc", "a-b", "a b", ""])
def test_a_name_must_be_a_shell_name(name):
    with pytest.raises(ValueError, match="letters, digits and _"):
        shellfunctions.define(name, "true")


def test_one_name_cannot_have_two_bodies():
    assert shellfunctions.define("_xpr_test_greet", 'echo "hello $1"') == GREET
    with pytest.raises(ValueError, match="registered already"):
        shellfunctions.define("_xpr_test_greet", "echo other")
