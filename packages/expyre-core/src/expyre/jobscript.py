"""The files that run on the remote side: the job script and the Python runner.

The runner, ``_expyre_script_core.py``, needs only the standard library (and whatever modules
the pickled function and arguments need, cloudpickle included when they were pickled by
value): expyre itself is never installed on the remote side. It writes the marker files listed
in :mod:`expyre.jobfiles`, which :mod:`expyre.results` reads back.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import List, Mapping, Sequence

from . import jobfiles
from .hooktypes import quote

_RUNNER_BODY = r'''
import os
import pickle
import platform
import struct
import sys
import traceback


def write_atomically(name, data):
    mode = "wb" if isinstance(data, bytes) else "w"
    with open(name + ".partial", mode) as fout:
        fout.write(data)
    os.replace(name + ".partial", name)


def fail(kind, message, code):
    write_atomically(ERROR_FILE, "kind: %s\n%s" % (kind, message))
    sys.exit(code)


def redirect_output():
    sys.stdout.flush()
    sys.stderr.flush()
    for fd, name in ((1, STDOUT_FILE), (2, STDERR_FILE)):
        target = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(target, fd)
        os.close(target)
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)


INDEX = {}


def load_task(path=TASK_FILE):
    with open(path, "rb") as fin:
        if fin.readline() != b"EXPYRE-TASK-1\n":
            raise ValueError("%s is not an expyre task file (cleaned, or written by another version)" % path)
        (index_len,) = struct.unpack("<Q", fin.read(8))
        index = pickle.loads(fin.read(index_len))
        INDEX.update(index)
        objects = []
        for data_len, buffer_lens in index["pieces"]:
            data = fin.read(data_len)
            buffers = [bytearray(fin.read(n)) for n in buffer_lens]
            objects.append(pickle.loads(data, buffers=buffers))
    function, values = objects[0], objects[1:]
    n_args = index["n_args"]
    return function, values[:n_args], dict(zip(index["kwarg_names"], values[n_args:]))


def dumps(obj):
    # protocol 4: numpy 2's protocol-5 reduction names numpy._core.numeric, which a submitting
    # side with numpy 1.x cannot import; protocol 4's loads there, at the same cost
    try:
        import cloudpickle
        return cloudpickle.dumps(obj, protocol=4)
    except ImportError:
        return pickle.dumps(obj, protocol=4)


def versions_note(exc):
    """Which module failed, and its package's version on both sides, where known."""
    local = INDEX.get("versions", {})
    module = getattr(exc, "name", None) if isinstance(exc, ImportError) else None
    tops = [module.partition(".")[0]] if module else sorted(k for k in local if k != "python")
    notes = ["Python %s where the job was created, %s here" % (local.get("python", "unknown"),
                                                               platform.python_version())]
    for top in tops:
        try:
            here = getattr(__import__(top), "__version__", "unknown version")
        except BaseException:
            here = "not installed"
        notes.append("%s %s where the job was created, %s here" % (top, local.get(top, "unknown"), here))
    return ("module %s; " % module if module else "") + "; ".join(notes)


def main():
    try:
        function, args, kwargs = load_task()
    except BaseException as exc:
        fail("load", "the job side cannot load the job's function and arguments (unpickling what "
             "was pickled where the job was created): the remote Python %s (Python %s on %s) failed "
             "with %s: %s\n%s\n"
             "The remote environment must provide the modules the pickle needs, in versions "
             "compatible with the local ones.\n%s"
             % (sys.executable, platform.python_version(), platform.node(), type(exc).__name__,
                exc, versions_note(exc), traceback.format_exc()), 3)
    redirect_output()
    try:
        result = function(*args, **kwargs)
    except BaseException as exc:
        text = traceback.format_exc()
        try:
            data = dumps((exc, text))
        except Exception:
            data = pickle.dumps((RuntimeError("%s: %s" % (type(exc).__name__, exc)), text))
        write_atomically(EXCEPTION_FILE, data)
        fail("exception", text, 1)
    try:
        data = dumps(result)
    except BaseException as exc:
        fail("result", "the function returned, but its result cannot be pickled: %s: %s\n%s"
             % (type(exc).__name__, exc, traceback.format_exc()), 2)
    write_atomically(SUCCEEDED_TMP_FILE, data)


if __name__ == "__main__":
    main()
'''

#: The runner's source: its file names come from :mod:`expyre.jobfiles`.
RUNNER_SOURCE = ('"""expyre job runner: load the pickled call, run it, write the result. Standard library only."""\n'
                 + "".join(f"{name} = {value!r}\n" for name, value in (
                     ("TASK_FILE", jobfiles.TASK), ("ERROR_FILE", jobfiles.ERROR), ("STDOUT_FILE", jobfiles.STDOUT),
                     ("STDERR_FILE", jobfiles.STDERR), ("EXCEPTION_FILE", jobfiles.EXCEPTION),
                     ("SUCCEEDED_TMP_FILE", jobfiles.SUCCEEDED_TMP)))
                 + _RUNNER_BODY)


def env_var_lines(env_vars: Sequence[str], environ: Mapping[str, str]) -> List[str]:
    """``export`` lines for ``env_vars`` entries, with ExPyRe's semantics.

    * ``"NAME=value"`` becomes ``export NAME=value`` as written, so the job's shell expands the
      value when the job runs (``${EXPYRE_NUM_CORES_PER_NODE}``, ``$PYTHONPATH``, ``$(...)``):
      write it as you would on the remote command line, quoting included.
    * ``"NAME"`` takes the value from ``environ`` (this process's environment) and passes it
      literally (quoted).

    Raises
    ------
    ValueError
        the name is not a shell variable name, a bare ``NAME`` is not set in ``environ``, or a
        value holds a line break or NUL (it cannot stand on one ``export`` line)
    """
    lines = []
    for entry in env_vars:
        name, sep, value = entry.partition("=")
        if not name.isidentifier() or not name.isascii():
            raise ValueError(f"env_vars entry {entry!r}: {name!r} is not a valid variable name")
        if sep:
            if any(c in value for c in "\n\r\0"):
                raise ValueError(f"env_vars entry {entry!r}: the value holds a line break or NUL; "
                                 "set such a variable in pre_run_commands")
            lines.append(f"export {name}={value}")
            continue
        if name not in environ:
            raise ValueError(f"env_vars entry {entry!r}: variable {name} is not set in the current "
                             "environment (give it as 'NAME=value')")
        lines.append(f"export {name}={quote(environ[name])}")
    return lines


def host_path(remote_dir: str) -> str:
    """``remote_dir`` as a quoted shell word for a job (relative paths are under ``$HOME``)."""
    return quote(remote_dir) if remote_dir.startswith("/") else f'"$HOME"/{quote(remote_dir)}'


def write_job_script(path: Path, script: str) -> None:
    """Write a job script, executable by its owner: the mode is given as the file is created
    (a ``chmod`` after it would cost one more metadata write per job of a thousand-job batch).
    Schedulers only read it; the bit is for someone who runs it by hand."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o755)
    with open(fd, "w", encoding="utf-8") as fout:
        fout.write(script)


def cd_line(remote_dir: str) -> str:
    """The job script's first command: go to the job's directory (relative ones are under ``$HOME``)."""
    return f"cd {host_path(remote_dir)} || exit 1"


def job_script(*, script_exec: str, header: Sequence[str], remote_dir: str, node_dict: dict,
               scheduler_env: Sequence[str],
               system_commands: Sequence[str], env_lines: Sequence[str], pre_run_commands: Sequence[str],
               python_cmd: str, post_run_commands: Sequence[str]) -> str:
    """The whole job script: header, environment, the user's commands, the runner, the markers.

    The user's pre-run commands, then the ``env_vars`` exports (ExPyRe's order), the runner and the
    post-run commands run in a subshell; its exit status (the runner's) decides which marker the
    script leaves.
    """
    lines = [f"#!{script_exec} -l", *header, "",
             cd_line(remote_dir),
             f"touch {jobfiles.STARTED}",
             f"export EXPYRE_NUM_NODES={int(node_dict['num_nodes'])}",
             f"export EXPYRE_NUM_CORES={int(node_dict['num_cores'])}",
             f"export EXPYRE_NUM_CORES_PER_NODE={int(node_dict['num_cores_per_node'])}",
             *scheduler_env, *system_commands,
             "(", *pre_run_commands, *env_lines,
             f"{python_cmd} {jobfiles.RUNNER}",
             "error_stat=$?", *post_run_commands, "exit $error_stat", ")",
             "error_stat=$?",
             *_marker_lines()]
    return "\n".join(lines) + "\n"


def _marker_lines() -> List[str]:
    return [
        'if [ "$error_stat" -eq 0 ]; then',
        f"    if [ -f {jobfiles.SUCCEEDED_TMP} ]; then",
        f"        mv {jobfiles.SUCCEEDED_TMP} {jobfiles.SUCCEEDED}",
        "    else",
        "        printf 'kind: exit\\nthe job exited with status 0 but the runner wrote no result\\n' "
        f"> {jobfiles.ERROR}",
        "    fi",
        # 143 and 137: the runner was killed by TERM or KILL (cancelled, out of time or memory). The
        # scheduler's signal can reach this shell after it reaches the runner; with no marker the
        # job reads as died, as it does when this shell is killed first.
        f"elif [ ! -f {jobfiles.ERROR} ] && [ \"$error_stat\" -ne 143 ] && [ \"$error_stat\" -ne 137 ]; then",
        f"    printf 'kind: exit\\nthe Python runner exited with status %s\\n' \"$error_stat\" > {jobfiles.ERROR}",
        "fi",
        "exit $error_stat",
    ]
