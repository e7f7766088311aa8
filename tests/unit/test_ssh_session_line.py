"""The line the ``ssh`` transport's session shell runs for each command
(:func:`expyre.transports.ssh._wrapped`, after :func:`~expyre.transports.ssh._session_start`),
run here by the real ``bash`` as the session would run it: several commands in a row on one
standard input, each answer found by its marker."""
import subprocess

from expyre.transports.ssh import _session_start, _wrapped

TOKEN = "__expyre_test"


def _session(tmp_path, commands):
    """Run ``commands`` (command, input bytes or None) through one bash, as one session;
    returns each command's (status, stdout, stderr, whether the session ended) and what the
    session's stdin still held."""
    script = _session_start(TOKEN).encode()
    for command, data in commands:
        script += _wrapped(command, data is not None, len(data or b"")).encode() + (data or b"")
    script += b"cat\n"   # the session's shell reads on: whatever a command left unread would show here
    out = subprocess.run(["bash"], input=script, capture_output=True, cwd=tmp_path, timeout=30,
                         env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}).stdout
    answers = []
    marker = f"\n{TOKEN} ".encode()
    _start, _, out = out.partition(marker)
    out = out.partition(b"\n")[2]
    for _ in commands:
        if marker not in out:  # the session ended
            break
        stdout, _, rest = out.partition(marker)
        line, _, rest = rest.partition(b"\n")
        status, size, *ended = line.split()
        answers.append((int(status), stdout, rest[:int(size)]) + ((True,) if ended else ()))
        out = rest[int(size):]
    return answers, out


def test_answers_carry_status_stdout_and_stderr_and_no_input_leaks_into_the_next_command(tmp_path):
    answers, left = _session(tmp_path, [
        ("echo out; echo 'err ü' >&2; exit 3", None),          # no input, stderr not empty
        ("true", None),                                         # no input, empty stderr
        ("head -c 3", b"abcdef"),                               # reads part of its input
        ("head -c 2", b"x" * 300_000),                          # more than a pipe holds, mostly unread
        ("head -c 1", b"\0" * 20_000 + b"z"),                  # leaves NUL bytes (tar's padding) unread
        ("cat; echo done >&2", b"all of it\n"),                 # reads all of it
        ("head -c 1; exit 5", b"12" + b"echo leaked\n" * 20_000),  # exits early: the rest is drained
        ("cat", None),                                          # reads stdin: gets none
        ("pwd", None),                                          # runs from the home directory
    ])
    assert answers[0] == (3, b"out\n", "err ü\n".encode())
    assert answers[1] == (0, b"", b"")
    assert answers[2] == (0, b"abc", b"")                       # the rest ("def") is drained
    assert answers[3] == (0, b"xx", b"")
    assert answers[4] == (0, b"\0", b"")
    assert answers[5] == (0, b"all of it\n", b"done\n")
    assert answers[6] == (5, b"1", b"")
    assert answers[7] == (0, b"", b"")
    assert answers[8] == (0, f"{tmp_path}\n".encode(), b"")
    assert left == b""


def test_a_program_execd_by_a_command_that_leaves_input_unread_ends_the_session(tmp_path):
    """The rest of its input is never run as commands: the answer says the session ended,
    and its shell exits before reading on."""
    answers, left = _session(tmp_path, [
        ("exec head -c 2", b"ab" + b"echo leaked\n" * 20_000),
        ("echo never", None),
    ])
    assert len(answers) == 1
    assert answers[0][:2] == (0, b"ab") and answers[0][3] is True
    assert b"left part of its input unread" in answers[0][2]
    assert b"leaked" not in left and b"never" not in left


def test_a_command_runs_in_a_subshell_of_its_own(tmp_path):
    answers, _ = _session(tmp_path, [("cd /; x=1; exit 0", None), ('echo "$PWD ${x:-unset}"', None)])
    assert answers[1] == (0, f"{tmp_path} unset\n".encode(), b"")
