"""Copying job directories to a host as one tar stream per parent directory, alone or together
with the submission (``transfer_then_run``), and their new files back, against a real ``bash`` on
this machine standing in for the host's login shell (as the ``ssh`` and ``openssh`` transports
run their commands)."""
import os
import subprocess
import tarfile
import time

import pytest

from expyre import RemoteCommandError, plugins
from expyre.transports import tarstream


class LocalBash:
    """The ``run_bytes`` of a transport shell, run by ``bash`` in ``home`` (the "remote home")."""

    host = "localhost"

    def __init__(self, home):
        self.home = home
        self.commands = []

    def run_bytes(self, command, *, input=None, input_file=None, input_size=0, timeout=None, idempotent=True,
                  stdout_file=None):
        self.commands.append(command)
        if input_file is not None:
            input_file.seek(0)
            input = input_file.read(input_size)
        proc = subprocess.run(["bash", "-c", command], input=input or b"", capture_output=True, cwd=self.home,
                              timeout=timeout)
        if stdout_file is not None:
            stdout_file.write(proc.stdout)
            return proc.returncode, b"", proc.stderr
        return proc.returncode, proc.stdout, proc.stderr


def stage_dirs(tmp_path, count):
    dirs = []
    for n in range(count):
        d = tmp_path / "stage" / f"run_job{n}"
        (d / "sub").mkdir(parents=True)
        (d / "sub" / "data").write_text("x" * n)
        os.utime(d / "sub" / "data", (1, 1))
        (d / "_expyre_job.sh").write_text(f"#!/bin/bash\necho {n}\n")  # the job script is written last
        (d / "_expyre_job.sh").chmod(0o755)
        dirs.append(d)
    return dirs


def test_put_copies_directories_of_two_parents_in_one_command(tmp_path):
    home = tmp_path / "host_home"
    home.mkdir()
    shell = LocalBash(home)
    dirs = stage_dirs(tmp_path, 3)
    pairs = [(dirs[0], "run_a/run_job0"), (dirs[1], "run_b/deeper/run_job1"), (dirs[2], "run_a/run_job2")]
    tarstream.put(shell, pairs)
    assert len(shell.commands) == 1
    for local, remote in pairs:
        copied = home / remote
        assert (copied / "_expyre_job.sh").read_text() == (local / "_expyre_job.sh").read_text()
        assert (copied / "sub" / "data").read_text() == (local / "sub" / "data").read_text()
        assert oct(copied.stat().st_mode & 0o777) == oct(0o700)
        assert os.access(copied / "_expyre_job.sh", os.X_OK)


def test_put_refuses_a_directory_that_exists_and_copies_nothing_of_its_group(tmp_path):
    home = tmp_path / "host_home"
    (home / "run_a" / "run_job1").mkdir(parents=True)
    shell = LocalBash(home)
    dirs = stage_dirs(tmp_path, 2)
    with pytest.raises(RemoteCommandError, match="run_a/run_job1 exists already"):
        tarstream.put(shell, [(dirs[0], "run_a/run_job0"), (dirs[1], "run_a/run_job1")])
    assert not (home / "run_a" / "run_job0").exists()
    assert list((home / "run_a" / "run_job1").iterdir()) == []


def test_transfer_then_run_runs_the_command_after_the_copy_in_one_round_trip(tmp_path):
    home = tmp_path / "host_home"
    home.mkdir()
    shell = LocalBash(home)
    dirs = stage_dirs(tmp_path, 2)
    pairs = [(dirs[0], "run_a/run_job0"), (dirs[1], "run_a/run_job1")]
    umask = os.umask(0o022)
    os.umask(umask)
    result = plugins.transfer_then_run("ssh", shell, pairs, "cd run_a/run_job1 && ./_expyre_job.sh; umask; exit 3")
    assert len(shell.commands) == 1
    # the command saw the copied files; the copy's umask 077 did not reach it; no marker is left
    assert result.stdout.split() == ["1", f"{umask:04o}"] and result.returncode == 3


def test_transfer_then_run_does_not_run_the_command_when_the_copy_fails(tmp_path):
    home = tmp_path / "host_home"
    (home / "run_a" / "run_job0").mkdir(parents=True)
    shell = LocalBash(home)
    dirs = stage_dirs(tmp_path, 1)
    with pytest.raises(RemoteCommandError, match="(?s)copying job files to the host.*exists already"):
        tarstream.put_then_run(shell, [(dirs[0], "run_a/run_job0")], "touch ran")
    assert not (home / "ran").exists()


def test_get_brings_back_only_new_files_of_each_directory_in_one_command(tmp_path):
    home = tmp_path / "host_home"
    home.mkdir()
    shell = LocalBash(home)
    dirs = stage_dirs(tmp_path, 3)
    pairs = [(dirs[0], "run_a/run_job0"), (dirs[1], "run_b/run_job1"), (dirs[2], "run_a/run_job2")]
    tarstream.put(shell, pairs)
    time.sleep(0.05)
    for n in (0, 1):  # job 2 has not run
        (home / pairs[n][1] / "out dir").mkdir()
        (home / pairs[n][1] / "out dir" / ".result").write_text(f"r{n}")
        os.symlink(".result", home / pairs[n][1] / "out dir" / "link")
    (tmp_path / "back").mkdir()
    back = [(tmp_path / "back" / f"run_job{n}", remote) for n, (_, remote) in enumerate(pairs)]
    shell.commands.clear()
    tarstream.get(shell, back)
    assert len(shell.commands) == 1
    for n in (0, 1):
        local = back[n][0]
        assert sorted(str(p.relative_to(local)) for p in local.rglob("*")) == ["out dir", "out dir/.result",
                                                                             "out dir/link"]
        assert (local / "out dir" / "link").read_text() == f"r{n}"
    assert not back[2][0].exists()


def test_put_copies_trees_links_long_and_non_ascii_names_privately(tmp_path):
    """What input files bring (sub-directories, symbolic links, long and non-ASCII names, an
    empty file, a file of whole blocks) arrives as it is, unpacked by the real ``tar``."""
    local = tmp_path / "local" / "job_0"
    (local / "data" / "deeper").mkdir(parents=True)
    long_name = "n" * 150 + ".txt"
    files = {"a.py": b"print(1)\n", "empty": b"", "block": b"b" * 1024, "data/deeper/" + long_name: b"long",
             "data/\u00e9t\u00e9.dat": os.urandom(3000)}
    for name, data in files.items():
        (local / name).write_bytes(data)
    (local / "a.py").chmod(0o755)
    (local / "data" / "link").symlink_to("deeper")
    home = tmp_path / "host"
    home.mkdir()
    tarstream.put(LocalBash(home), [(local, "run/job_0")])
    remote = home / "run" / "job_0"
    for name, data in files.items():
        assert (remote / name).read_bytes() == data
    assert os.readlink(remote / "data" / "link") == "deeper"
    assert (remote / "a.py").stat().st_mode & 0o777 == 0o700
    assert all(p.lstat().st_mode & 0o077 == 0 for p in [remote, *remote.rglob("*")] if not p.is_symlink())


def test_headers_are_those_tarfile_writes_for_short_ascii_names():
    # the fast path builds ustar headers itself: byte for byte what tarfile.TarInfo.tobuf gives
    for name, kind, mode, size, linkname in [("run_j/_expyre_task_in.pckl", tarfile.REGTYPE, 0o600, 4321, ""),
                                             ("run_j", tarfile.DIRTYPE, 0o700, 0, ""),
                                             ("run_j/link", tarfile.SYMTYPE, 0o700, 0, "../x"),
                                             ("n" * 100, tarfile.REGTYPE, 0o700, 0, "")]:
        member = tarfile.TarInfo(name)
        member.type, member.mode, member.mtime, member.size, member.linkname = kind, mode, 1765000000, size, linkname
        assert tarstream._header(name, kind, mode, 1765000000, size, linkname) == \
            member.tobuf(tarfile.PAX_FORMAT, "utf-8")


def test_long_ascii_paths_use_the_ustar_prefix_and_reach_the_host_whole(tmp_path):
    """Paths of 101 to 255 bytes (a long job name with the job's files in it) are split between
    ustar's prefix and name fields, with no pax header; the real tar unpacks them whole."""
    local = tmp_path / "local" / "job_0"
    deep = local / ("d" * 90) / ("e" * 60)
    deep.mkdir(parents=True)
    (deep / "f.txt").write_bytes(b"deep")
    (local / ("g" * 99)).write_bytes(b"99")
    archive = tarstream.pack_directories([(local, "r" * 40)])
    with tarfile.open(fileobj=archive) as tar:
        members = tar.getmembers()
    long_names = [m.name for m in members if len(m.name) > 100]
    assert long_names and all(not m.pax_headers for m in members)
    home = tmp_path / "host"
    home.mkdir()
    tarstream.put(LocalBash(home), [(local, "run/" + "r" * 40)])
    remote = home / "run" / ("r" * 40)
    assert (remote / ("d" * 90) / ("e" * 60) / "f.txt").read_bytes() == b"deep"
    assert (remote / ("g" * 99)).read_bytes() == b"99"
