"""The line the ``ssh`` transport's session shell runs for each command
(:func:`expyre.transports.ssh._wrapped`), run here by the real ``bash`` as the session would
run it: several commands in a row on one standard input, each answer found by its marker."""
import subprocess

from expyre.transports.ssh import _wrapped

TOKEN = "__expyre_test"


def _session(tmp_path, commands):
    """Run ``commands`` (command, input bytes or None) through one bash, as one session;
    returns each command's (status, stdout, stderr) and what the session's stdin still held."""
    script = b'__xpr_err=$(mktemp) || exit 1; trap \'rm -f "$__xpr_err"\' EXIT\n'
    for command, data in commands:
        script += _wrapped(command, TOKEN, data is not None, len(data or b"")).encode() + (data or b"")
    script += b"cat\n"   # the session's shell reads on: whatever a command left unread would show here
    out = subprocess.run(["bash"], input=script, capture_output=True, cwd=tmp_path, timeout=30,
                         env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}).stdout
    answers = []
    marker = f"\n{TOKEN} ".encode()
    for _ in commands:
        stdout, _, rest = out.partition(marker)
        line, _, rest = rest.partition(b"\n")
        status, size = (int(v) for v in line.split())
        answers.append((status, stdout, rest[:size]))
        out = rest[size:]
    return answers, out


def test_answers_carry_status_stdout_and_stderr_and_no_input_leaks_into_the_next_command(tmp_path):
    answers, left = _session(tmp_path, [
        ("echo out; echo 'err ü' >&2; exit 3", None),          # no input, stderr not empty
        ("true", None),                                         # no input, empty stderr
        ("head -c 3", b"abcdef"),                               # reads part of its input
        ("head -c 2", b"x" * 300_000),                          # more than a pipe holds, mostly unread
        ("head -c 1", b"\0" * 20_000 + b"z"),                  # leaves NUL bytes (tar's padding) unread
        ("cat; echo done >&2", b"all of it\n"),                 # reads all of it
        ("cat", None),                                          # reads stdin: gets none
        ("pwd", None),                                          # runs from the home directory
    ])
    assert answers[0] == (3, b"out\n", "err ü\n".encode())
    assert answers[1] == (0, b"", b"")
    assert answers[2] == (0, b"abc", b"")                       # the rest ("def") is drained
    assert answers[3] == (0, b"xx", b"")
    assert answers[4] == (0, b"\0", b"")
    assert answers[5] == (0, b"all of it\n", b"done\n")
    assert answers[6] == (0, b"", b"")
    assert answers[7] == (0, f"{tmp_path}\n".encode(), b"")
    assert left == b""


def test_a_command_runs_in_a_subshell_of_its_own(tmp_path):
    answers, _ = _session(tmp_path, [("cd /; x=1; exit 0", None), ('echo "$PWD ${x:-unset}"', None)])
    assert answers[1] == (0, f"{tmp_path} unset\n".encode(), b"")
