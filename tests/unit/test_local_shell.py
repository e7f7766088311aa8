"""The local transport's shell runs commands of any length (one about a thousand jobs at once is
longer than one argument of a new process may be)."""
from expyre.transports.local import MAX_ARGUMENT_BYTES, LocalShell


def test_long_command_runs(tmp_path):
    shell = LocalShell()
    words = [f"/some/run/dir/job_{i:06d}_{'x' * 40}" for i in range(4000)]
    command = "for w in " + " ".join(words) + "; do echo \"$w\"; done | wc -l; echo \"$0\" > /dev/null"
    assert len(command) > 1.5 * MAX_ARGUMENT_BYTES
    result = shell.run(command)
    assert result.stdout.strip() == "4000"
    assert shell.run("cat", input=b"through stdin").stdout == "through stdin"
    long_with_input = "cat; " + "true; " * (MAX_ARGUMENT_BYTES // 6 + 10)
    assert shell.run(long_with_input, input=b"still stdin").stdout == "still stdin"
