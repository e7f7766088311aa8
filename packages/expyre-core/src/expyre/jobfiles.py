"""The files of a job directory: the one place that names them.

A job directory (the local stage directory, and its copy on the host) holds what expyre staged
for the job, what the job writes while it runs, and the user's own input and output files.
Everything else in expyre (the job script, the runner, the gatherer, ``xpr``, the built-in
plugins) takes the names from here, so that a rerun can remove every file of the previous run
and a user's file can never be mistaken for one of expyre's.

Staged before the job runs (:data:`STAGED`):

* ``_expyre_task_in.pckl``: the pickled function and arguments
* ``_expyre_script_core.py``: the runner that loads and calls them
* ``_expyre_job.json``: the job's settings (env vars, pre/post-run commands, output files)
* ``_expyre_output_files``: the output-file patterns, for the runner's side
* ``_expyre_job.sh``: the job script (a task that goes to the host in its array's bundle has
  it only there)

Written by the job (:func:`run_files`):

* ``_expyre_job_started``: the job script began
* ``_expyre_job_succeeded``: the pickled return value (renamed into place when the script ends)
* ``_expyre_job_exception``: pickled ``(exception, traceback text)`` when the function raised
* ``_expyre_job_error``: text whose first line ``kind: load|exception|result|exit`` says what failed
* ``_expyre_stdout`` / ``_expyre_stderr``: what the function printed
* ``job.<id>.stdout`` / ``job.<id>.stderr``: what the job script printed (the scheduler writes them)
* files of the scheduler plugin, named with :func:`plugin_file`

Written when the job is one task of an array job (:mod:`expyre.arrays`):

* ``_expyre_array_task``: which array the job is a task of (its first task's directory, the
  array's name and this task's index), so a restarted script can find the array again
* ``_expyre_array_job.sh``: in the array's first task only, the array's job script, which picks
  its task's job directory from the scheduler's task index
* ``_expyre_array.stdout`` / ``_expyre_array.stderr``: in the first task only, what the array
  script itself printed (each task's job script writes its own ``job.<id>.stdout``/``.stderr``)

Every name expyre uses starts with :data:`PREFIX` (or is a job output named after the job id), so
:func:`is_reserved` can refuse input and output files that would collide with them.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import List, Tuple

#: Every file expyre or a plugin keeps in a job directory starts with this (or with ``_tmp`` + it).
PREFIX = "_expyre"

TASK = "_expyre_task_in.pckl"
RUNNER = "_expyre_script_core.py"
SETTINGS = "_expyre_job.json"
OUTPUT_FILES_LIST = "_expyre_output_files"
SCRIPT = "_expyre_job.sh"

STARTED = "_expyre_job_started"
SUCCEEDED = "_expyre_job_succeeded"
SUCCEEDED_TMP = "_tmp_expyre_job_succeeded"
EXCEPTION = "_expyre_job_exception"
ERROR = "_expyre_job_error"
STDOUT = "_expyre_stdout"
STDERR = "_expyre_stderr"
ARRAY_TASK = "_expyre_array_task"
ARRAY_SCRIPT = "_expyre_array_job.sh"
ARRAY_STDOUT = "_expyre_array.stdout"
ARRAY_STDERR = "_expyre_array.stderr"
#: In an array's first job directory: the other tasks' files, which each task unpacks when it starts.
ARRAY_BUNDLE = "_expyre_array_bundle.tar"
#: Left by ``ExPyRe.clean`` in a stage directory whose large files were overwritten.
CLEANED = "_expyre_job_cleaned"

#: Files staged before the job runs; a rerun keeps them (the job script is written anew).
STAGED: Tuple[str, ...] = (TASK, RUNNER, SETTINGS, OUTPUT_FILES_LIST, SCRIPT)
#: Marker files that say how the job ended.
OUTCOME: Tuple[str, ...] = (SUCCEEDED, EXCEPTION, ERROR)
#: Files that hold large data (the pickled call and its result): ``clean`` overwrites them.
LARGE: Tuple[str, ...] = (TASK, SUCCEEDED)

_JOB_OUTPUT = re.compile(r"job\..+\.(stdout|stderr)")


def job_stdout(job_id: str) -> str:
    """Name of the file the scheduler writes the job script's stdout to."""
    return f"job.{job_id}.stdout"


def job_stderr(job_id: str) -> str:
    """Name of the file the scheduler writes the job script's stderr to."""
    return f"job.{job_id}.stderr"


def plugin_file(plugin: str, what: str) -> str:
    """Name for a scheduler or transport plugin's own file in a job directory
    (``_expyre_<plugin>_<what>``), so that a rerun removes it and no user file can take it."""
    return f"{PREFIX}_{plugin}_{what}"


def is_reserved(name: str) -> bool:
    """True if ``name`` (a path relative to the job directory) is, or is inside, a name expyre
    uses: such an input or output file would be mistaken for expyre's own."""
    top = Path(name).parts[0] if Path(name).parts else name
    return (top.startswith(PREFIX) or top.startswith("_tmp" + PREFIX) or top.startswith(".tmp" + PREFIX)
            or bool(_JOB_OUTPUT.fullmatch(top)))


def run_files(job_dir: Path, job_id: str) -> List[Path]:
    """The files (and directories, such as a plugin's lock) in ``job_dir`` that a run of the job
    wrote: everything of expyre's and its plugins' that is not staged, and the job script's output
    files. A rerun removes them."""
    found = []
    for path in Path(job_dir).iterdir() if Path(job_dir).is_dir() else ():
        name = path.name
        if name in STAGED:
            continue
        if is_reserved(name) or name in (job_stdout(job_id), job_stderr(job_id)):
            found.append(path)
    return found
