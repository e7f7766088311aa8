"""Unit tests for the fixes of the faults issue that need no service: names and paths refused
at creation, atomic and private files, compare-and-set updates, pickles a numpy 1.x job side
can load, and messages that say what failed and where."""
import io
import os
import pickle
import signal
import sqlite3
import subprocess
import sys
import tarfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import direct_system

from expyre import gather, jobfiles, jobnames, jobscript, results, stage
from expyre.config import ConfigError, read_config_file
from expyre.func import ExPyRe
from expyre.hooktypes import CommandResult, RemoteCommandError
from expyre.jobsdb import JobsDB
from expyre.system import System
from expyre.transports import local, ssh, tarstream


@pytest.fixture
def direct(expyre_config):
    return expyre_config({"local": direct_system()})


# --------------------------------------------------------------------------- job names (items 10, 11)

@pytest.mark.parametrize("name", ["50%_done", "job%j", 'say "hi"', "cost$HOME", "a/b", "back\\slash",
                                  "tab\there", "nul\0", "x" * 191])
def test_job_names_refused_at_creation(direct, name):
    with pytest.raises(ValueError, match="job name"):
        ExPyRe(name, function=abs, args=[-1])
    assert list(direct.db.jobs()) == []


@pytest.mark.parametrize("name", ["test_task", "wfl-eval.1", "we ird 'q' ünï", "x" * 190])
def test_ordinary_job_names_accepted(name):
    jobnames.check_job_name(name)


def test_existing_job_with_an_old_name_still_loads(direct):
    """Names are checked when a job is created, not when a row of an older version is read."""
    direct.db.add("old%name_hash_u", name="old%name", from_dir="/nowhere/run_old%name_hash_u")
    xpr, = ExPyRe.from_jobsdb(direct.db.get("old%name_hash_u"))
    assert xpr.name == "old%name"


# --------------------------------------------------------------------------- rundir (item 12)

@pytest.mark.parametrize("rundir, expected", [("~/x", "x"), ("~/x/y/", "x/y"), ("~", "."), ("~/", "."),
                                              ("/abs/x", "/abs/x"), ("rel/x", "rel/x")])
def test_rundir_tilde_is_the_remote_home(rundir, expected):
    system = System(name="s", scheduler="direct", host="h", rundir=rundir)
    assert system.rundir == expected
    assert "~" not in system.job_remote_dir(Path("/stage/run_a"))


def test_rundir_of_another_user_is_a_config_error(expyre_config):
    with pytest.raises(ConfigError, match=r"config.json: system 'remote': rundir: .*'~user'"):
        expyre_config({"remote": dict(direct_system(), host="h", rundir="~bob/x")})


# --------------------------------------------------------------------------- input and output names (2, 13)

def test_input_file_named_like_a_marker_is_refused(direct):
    Path(jobfiles.SUCCEEDED).write_bytes(pickle.dumps("forged"))
    with pytest.raises(ValueError, match="_expyre_job_succeeded.*expyre's own job files"):
        ExPyRe("forge", function=abs, args=[-1], input_files=[jobfiles.SUCCEEDED])
    Path("data").mkdir()
    (Path("data") / jobfiles.SUCCEEDED).write_text("inside a directory is fine")
    (Path("elsewhere")).mkdir()
    (Path("elsewhere") / "job.x.stdout").write_text("")
    with pytest.raises(ValueError, match="matched by"):
        ExPyRe("forge", function=abs, args=[-1], input_files=[str(Path.cwd() / "elsewhere" / "*")])
    ExPyRe("fine", function=abs, args=[-1], input_files=["data"])
    assert [r["name"] for r in direct.db.jobs()] == ["fine"]


@pytest.mark.parametrize("spec", [jobfiles.SUCCEEDED, "_expyre_whatever/x", "job.abc.stdout"])
def test_output_file_named_like_a_job_file_is_refused(direct, spec):
    with pytest.raises(ValueError, match="expyre's own job files"):
        ExPyRe("out", function=abs, args=[-1], output_files=[spec])


def test_output_glob_does_not_copy_job_files(tmp_path):
    stage_dir, dest = tmp_path / "stage", tmp_path / "dest"
    stage_dir.mkdir()
    (stage_dir / jobfiles.SUCCEEDED).write_text("result")
    (stage_dir / "mine.txt").write_text("mine")
    copied = stage.copy_output_files(["*"], stage_dir, dest)
    assert [p.name for p in copied] == ["mine.txt"]


def test_input_file_with_glob_characters_taken_literally(direct):
    Path("a[1].txt").write_text("literal")
    xpr = ExPyRe("literal", function=abs, args=[-1], input_files=["a[1].txt"])
    assert (xpr.stage_dir / "a[1].txt").read_text() == "literal"


def test_refused_symlink_is_reported_as_refused(tmp_path):
    stage_dir = tmp_path / "run_x"
    stage_dir.mkdir()
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        link = tarfile.TarInfo("out.txt")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    with pytest.warns(RuntimeWarning, match="out.txt: symlink to '/etc/passwd'"):
        tarstream.unpack(archive.getvalue(), stage_dir)
    assert not (stage_dir / "out.txt").exists()
    with pytest.raises(FileNotFoundError, match="was not copied back.*symlink to '/etc/passwd' points outside"):
        stage.copy_output_files(["out.txt"], stage_dir, tmp_path / "dest")


# --------------------------------------------------------------------------- private, atomic files (1, 3)

def test_put_command_makes_private_directories(tmp_path):
    """Under a umask that lets everyone read, the job directory, its files and the parents the
    copy makes are the user's alone (the real bash and tar)."""
    (tmp_path / "stage").mkdir()
    (tmp_path / "stage" / "data").write_text("x")
    (tmp_path / "stage" / "data").chmod(0o644)
    command = tarstream.put_command([("run_expyre/h-p", 0, ["run_a"])])
    with tarstream.pack_directories([(tmp_path / "stage", "run_a")]) as archive:
        subprocess.run(["bash", "-c", f"umask 022\n{command}"], stdin=archive, cwd=tmp_path, check=True)
    for path in ["run_expyre", "run_expyre/h-p", "run_expyre/h-p/run_a", "run_expyre/h-p/run_a/data"]:
        assert (tmp_path / path).stat().st_mode & 0o077 == 0, path


def test_archive_carries_no_group_or_other_bits(tmp_path):
    tmp_path = tmp_path / "stage"
    tmp_path.mkdir()
    (tmp_path / "script.sh").write_text("#!/bin/sh\n")
    (tmp_path / "script.sh").chmod(0o755)
    (tmp_path / "data").write_text("x")
    (tmp_path / "data").chmod(0o644)
    with tarfile.open(fileobj=tarstream.pack_directory(tmp_path)) as tar:
        assert {m.name: m.mode for m in tar.getmembers()} == {"data": 0o600, "script.sh": 0o700}


def test_local_transport_job_directory_is_private(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "umask", os.umask)  # restored below in any case
    old = os.umask(0o022)
    try:
        src = tmp_path / "stage"
        src.mkdir()
        (src / "f").write_text("secret")
        (src / "f").chmod(0o644)
        (tmp_path / "existing").mkdir(mode=0o755)
        remote = tmp_path / "existing" / "new" / "run_a"
        local.put(src, remote)
    finally:
        os.umask(old)
    assert (tmp_path / "existing").stat().st_mode & 0o777 == 0o755
    assert remote.parent.stat().st_mode & 0o777 == 0o700
    assert remote.stat().st_mode & 0o777 == 0o700
    assert (remote / "f").stat().st_mode & 0o777 == 0o600


def test_stage_directory_is_private(direct):
    xpr = ExPyRe("private", function=abs, args=[-1])
    assert xpr.stage_dir.stat().st_mode & 0o777 == 0o700


def _archive(files):
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return data.getvalue()


def test_copy_back_renames_into_place(tmp_path):
    """A reader that opened the old file reads it whole; the new file appears complete."""
    tmp_path = tmp_path / "stage_root"
    job = tmp_path / "run_a"
    job.mkdir(parents=True)
    (job / jobfiles.SUCCEEDED).write_bytes(b"old" * 1000)
    reader = open(job / jobfiles.SUCCEEDED, "rb")
    tarstream.unpack(_archive({jobfiles.SUCCEEDED: b"new" * 2000, "sub/out.txt": b"out"}), job)
    assert reader.read() == b"old" * 1000
    reader.close()
    assert (job / jobfiles.SUCCEEDED).read_bytes() == b"new" * 2000
    assert (job / "sub" / "out.txt").read_bytes() == b"out"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run_a"]  # no scratch directory left


def test_copy_back_moves_markers_last(tmp_path, monkeypatch):
    moved = []
    real_replace = os.replace
    monkeypatch.setattr(tarstream.os, "replace", lambda a, b: moved.append(Path(b).name) or real_replace(a, b))
    job = tmp_path / "run_a"
    tarstream.unpack(_archive({jobfiles.ERROR: b"kind: exception\n", jobfiles.EXCEPTION: b"x",
                               jobfiles.STDOUT: b"out", "z.txt": b"z"}), job)
    assert moved[-2:] == [jobfiles.EXCEPTION, jobfiles.ERROR]


def test_copy_back_streams_from_spooled_answer(tmp_path):
    """tarstream.get reads the length-prefixed archive (one per parent directory, entries
    ``<job directory>/<file>``) from the shell's stdout_file."""
    archive = _archive({f"a/{jobfiles.SUCCEEDED}": b"r1", "c/f": b"2"})
    answer = b"%d\n" % len(archive) + archive

    class FileShell:
        """A fake shell that answers the get command with a prepared byte stream."""
        host = "fake"

        def run_bytes(self, command, stdout_file=None):
            stdout_file.write(answer)
            return 0, b"", b""

    dirs = [tmp_path / n for n in ("a", "b", "c")]
    tarstream.get(FileShell(), [(d, f"run/{d.name}") for d in dirs])
    assert (dirs[0] / jobfiles.SUCCEEDED).read_bytes() == b"r1"
    assert not dirs[1].exists()
    assert (dirs[2] / "f").read_bytes() == b"2"


def test_ssh_answer_is_spilled_to_the_file(tmp_path):
    """SSHShell._read_answer writes a large answer to stdout_file as it arrives."""

    class FakeChannel:
        """Stands in for a paramiko channel: hands out a prepared answer in 1 MB pieces."""
        def __init__(self, data):
            self.data, self.position, self.largest_buffer = data, 0, 0

        def settimeout(self, timeout):
            pass

        def recv(self, n):
            piece = self.data[self.position:self.position + n]
            self.position += len(piece)
            return piece

        def recv_stderr_ready(self):
            return False

    shell = ssh.SSHShell.__new__(ssh.SSHShell)
    shell._token = "__expyre_tok"
    payload = os.urandom(20 << 20)
    shell._channel = FakeChannel(payload + b"\n__expyre_tok 0 3\nerr")
    with open(tmp_path / "out", "w+b") as out:
        status, stdout, stderr = shell._read_answer(None, out)
    assert (status, stdout, stderr) == (0, b"", b"err")
    assert (tmp_path / "out").read_bytes() == payload
    # a local write error (here a full disk: /dev/full) is not taken for a lost connection
    shell._channel = FakeChannel(payload + b"\n__expyre_tok 0 3\nerr")
    with open("/dev/full", "wb") as full, pytest.raises(ssh._LocalWriteFailed, match="No space left"):
        shell._read_answer(None, full)


# --------------------------------------------------------------------------- compare-and-set (4)

def test_update_if_status_is_compare_and_set(tmp_path):
    db = JobsDB(tmp_path / "jobs.db")
    db.add("j", name="j", from_dir="/x", status="submitted")
    db.update("j", status="processed")
    assert db.update("j", if_status="submitted", status="succeeded") is False
    assert db.get("j")["status"] == "processed"
    assert db.update("j", if_status=["processed", "cleaned"], remote_status="done") is True
    assert db.get("j")["remote_status"] == "done"
    with pytest.raises(ValueError, match="no job"):
        db.update("missing", if_status="submitted", status="succeeded")


# --------------------------------------------------------------------------- pickles (9)

def _runner_load(stage_dir):
    namespace = {"__name__": "runner"}
    exec(compile(jobscript.RUNNER_SOURCE, "runner", "exec"), namespace)
    cwd = os.getcwd()
    os.chdir(stage_dir)
    try:
        return namespace["load_task"]()
    finally:
        os.chdir(cwd)


def test_arrays_pickled_without_numpy2_only_modules(tmp_path):
    arrays = [np.arange(12.0).reshape(3, 4), np.asfortranarray(np.ones((3, 4))), np.arange(10)[::3],
              np.array(["a", None], dtype=object), np.zeros((0, 3)), np.array(5.0),
              np.zeros(2, dtype=[("x", "<i4"), ("y", ">f8")])]
    task = stage.pickle_task(len, arrays, {"k": arrays[0]})
    for piece in [task.function, *task.args, *task.kwargs.values()]:
        assert b"numpy._core.numeric" not in piece.data
    stage.write_task(task, tmp_path)
    function, args, kwargs = _runner_load(tmp_path)
    for loaded, original in zip(args, arrays):
        assert type(loaded) is np.ndarray and loaded.dtype == original.dtype
        assert loaded.shape == original.shape and (loaded == original).all()
    assert args[1].flags.f_contiguous and args[0].flags.writeable
    assert (kwargs["k"] == arrays[0]).all()


def test_task_index_records_versions(tmp_path):
    stage.write_task(stage.pickle_task(np.sum, [np.ones(3)], {}), tmp_path)
    namespace = {"__name__": "runner"}
    exec(compile(jobscript.RUNNER_SOURCE, "runner", "exec"), namespace)
    os.chdir(tmp_path)
    namespace["load_task"]()
    assert namespace["INDEX"]["versions"]["numpy"] == np.__version__


def test_result_that_cannot_be_unpickled_here_names_module(tmp_path):
    # a pickle of a global from a module that does not exist here
    forged = b"\x80\x04\x8c\x0fnot_here_module\x8c\x01f\x93."
    (tmp_path / jobfiles.SUCCEEDED).write_bytes(forged)
    with pytest.raises(results.ExPyReUnpickleError) as info:
        results.read_outcome(tmp_path)
    message = str(info.value)
    assert "cannot be unpickled here" in message and "module not_here_module" in message


# --------------------------------------------------------------------------- messages (13, 14)

def test_binary_config_file_names_the_file(tmp_path):
    path = tmp_path / "config.json"
    path.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(ConfigError, match=r"config.json: not a text file"):
        read_config_file(path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only files")
def test_read_only_jobs_db_names_the_path(tmp_path):
    JobsDB(tmp_path / "jobs.db").close()
    (tmp_path / "jobs.db").chmod(0o444)
    db = JobsDB(tmp_path / "jobs.db")
    with pytest.raises(PermissionError, match=str(tmp_path / "jobs.db")):
        db.add("j", name="j", from_dir="/x")


def test_read_only_sqlite_error_names_the_path(tmp_path):
    """The same message, for root too (who can write read-only files): SQLite's own read-only mode."""
    db = JobsDB(tmp_path / "jobs.db")
    db.close()
    readonly = sqlite3.connect(f"file:{tmp_path / 'jobs.db'}?mode=ro", uri=True, isolation_level=None,
                               check_same_thread=False)
    db._conn, db._pid = readonly, os.getpid()
    with pytest.raises(PermissionError, match=f"cannot write to the jobs database {tmp_path / 'jobs.db'}"):
        db.add("j", name="j", from_dir="/x")


def test_full_disk_says_what_and_where(tmp_path):
    (tmp_path / jobfiles.TASK).symlink_to("/dev/full")  # writing to /dev/full fails with ENOSPC, as a full disk does
    with pytest.raises(OSError, match=r"cannot write the pickled function and arguments to .*No space left"):
        stage.write_task(stage.pickle_task(abs, [np.ones(1000)], {}), tmp_path)


def test_interrupted_creation_leaves_no_job_directory(direct, tmp_path):
    """kill -9 while ExPyRe(...) writes the stage directory: no run_* directory is left."""
    script = tmp_path / "killed.py"
    script.write_text(textwrap.dedent("""
        import os, signal
        from expyre import config, stage
        from expyre.func import ExPyRe
        config.init()
        def die(*args):
            os.kill(os.getpid(), signal.SIGKILL)
        stage.stage_input_files = die
        ExPyRe("killed", function=abs, args=[-1])
    """))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL
    leftovers = [p for p in Path(direct.local_stage_dir).iterdir()]
    assert not [p.name for p in leftovers if p.name.startswith("run_")], leftovers
    assert list(direct.db.jobs()) == []
    # what it left under its temporary name is removed once it is clearly abandoned
    abandoned = [p for p in leftovers if p.name.startswith("_tmp_run_killed")]
    assert len(abandoned) == 1
    ExPyRe("next", function=abs, args=[-1])
    assert abandoned[0].exists()  # too recent: it might be another process's, still being written
    old = time.time() - stage.ABANDONED_AFTER_S - 60
    os.utime(abandoned[0], (old, old))
    ExPyRe("sooner", function=abs, args=[-3])
    assert abandoned[0].exists()  # one process looks at most every SWEEP_EVERY_S, not for each new job
    stage._last_sweep.clear()  # SWEEP_EVERY_S later (or another process)
    ExPyRe("later", function=abs, args=[-2])
    assert not abandoned[0].exists()


def test_status_failure_shows_first_line_and_scheduler_error():
    script = "squeue --noheader -j 1,2\n" + "\n".join(f"echo line {i}" for i in range(200))
    exc = RemoteCommandError("cluster", CommandResult(script, 1, "", "slurm_load_jobs error: Unable to contact "
                                                                     "slurm controller"))
    text = gather.describe_failure(exc)
    assert text == ("'squeue --noheader -j 1,2 ...' on cluster exited with status 1: slurm_load_jobs error: "
                    "Unable to contact slurm controller")


def test_runner_pickles_results_that_numpy1_can_load():
    """The job side's result pickle names no numpy-2-only module (numpy._core.numeric)."""
    namespace = {"__name__": "runner"}
    exec(compile(jobscript.RUNNER_SOURCE, "runner", "exec"), namespace)
    data = namespace["dumps"]([np.arange(5.0), np.asfortranarray(np.ones((2, 3)))])
    assert b"numpy._core.numeric" not in data
    assert (pickle.loads(data)[1] == 1).all()
