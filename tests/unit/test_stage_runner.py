"""The job runner in stage directories: one shared copy per expyre version, hard-linked into each."""
import os

from expyre import jobfiles, jobscript, stage


def test_runners_are_links_to_one_copy_with_the_runner_source(tmp_path):
    dirs = [tmp_path / f"_tmp_run_j{n}" for n in range(3)]
    for d in dirs:
        d.mkdir()
        stage.write_runner(d, jobscript.RUNNER_SOURCE)
    inodes = {os.stat(d / jobfiles.RUNNER).st_ino for d in dirs}
    assert len(inodes) == 1 and os.stat(dirs[0] / jobfiles.RUNNER).st_nlink == 4   # three links and the copy
    assert all((d / jobfiles.RUNNER).read_text() == jobscript.RUNNER_SOURCE for d in dirs)
    # the copy is named after the source, so another expyre version gets a copy of its own
    copies = [p.name for p in tmp_path.iterdir() if p.is_file()]
    assert len(copies) == 1 and copies[0].startswith("." + jobfiles.RUNNER + ".")
    other = tmp_path / "_tmp_run_other"
    other.mkdir()
    stage.write_runner(other, "print('another version')\n")
    assert (other / jobfiles.RUNNER).read_text() == "print('another version')\n"
    assert (dirs[0] / jobfiles.RUNNER).read_text() == jobscript.RUNNER_SOURCE


def test_a_runner_is_written_as_a_file_when_no_link_can_be_made(tmp_path):
    first = tmp_path / "_tmp_run_a"
    first.mkdir()
    stage.write_runner(first, jobscript.RUNNER_SOURCE)
    for copy in tmp_path.glob("." + jobfiles.RUNNER + ".*"):
        copy.unlink()   # the shared copy is gone (this process checked it already): the link fails
    second = tmp_path / "_tmp_run_b"
    second.mkdir()
    stage.write_runner(second, jobscript.RUNNER_SOURCE)
    assert (second / jobfiles.RUNNER).read_text() == jobscript.RUNNER_SOURCE
    assert os.stat(second / jobfiles.RUNNER).st_nlink == 1


def test_a_damaged_shared_copy_is_replaced(tmp_path):
    job_dir = tmp_path / "_tmp_run_a"
    job_dir.mkdir()
    stage.write_runner(job_dir, "print(1)\n")
    (copy,) = tmp_path.glob("." + jobfiles.RUNNER + ".*")
    stage._runner_copies_checked.clear()   # a new process
    os.unlink(job_dir / jobfiles.RUNNER)
    copy.write_text("truncat")
    stage.write_runner(job_dir, "print(1)\n")
    assert (job_dir / jobfiles.RUNNER).read_text() == "print(1)\n"
