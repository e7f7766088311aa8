"""Building PBS command lines and running them through the shell core hands to the hooks.

Every path, id and name that goes into a command is quoted here. Nothing here opens a
connection of its own.
"""
from __future__ import annotations

from typing import Sequence

from expyre import RemoteCommandError, quote, quote_all, run_unchecked

from .dialect import PBSPRO, Dialect
from .parse import END_MARKER

#: Seconds a status query may take.
STATUS_TIMEOUT = 120.0
#: Seconds qsub may take before the submission's outcome is taken as unknown.
SUBMIT_TIMEOUT = 300.0
#: Seconds qdel, qhold, qrls and the dialect detection may take.
CONTROL_TIMEOUT = 120.0

#: Files in the job's directory that keep qsub's output, so that a submission whose answer was
#: lost on the way back can still be found (see ``find_submitted``).
SUBMIT_RECORD = "_expyre_pbs_qsub.out"
SUBMIT_ERRORS = "_expyre_pbs_qsub.err"


class PBSCommandError(RemoteCommandError):
    """A PBS command failed, or printed something that cannot be read.

    The message names the host and the command and quotes what the command printed.
    """


#: Run a command without raising on its exit status (a timeout becomes exit status -1).
run = run_unchecked


def section(command: str, name: str) -> str:
    """``command`` followed by an end marker with its exit status (see ``parse.split_sections``)."""
    return (f"{command}\n_xpr_rc=$?; printf '\\n%s %s %d\\n' {quote(END_MARKER)} {quote(name)} \"$_xpr_rc\"")


def submit_command(remote_dir: str, script: str) -> str:
    """cd into the job's directory and run qsub on the script, keeping its output there."""
    return (f"cd {quote(remote_dir)} || exit 1\n"
            f"qsub {quote(script)} > {SUBMIT_RECORD} 2> {SUBMIT_ERRORS}\n"
            "_xpr_rc=$?\n"
            f"cat {SUBMIT_RECORD}; cat {SUBMIT_ERRORS} >&2\n"
            "exit $_xpr_rc")


def status_command(dialect: Dialect, job_ids: Sequence[str]) -> str:
    """One qstat for all ``job_ids``, in the fullest form the dialect has.

    PBS Professional / OpenPBS: ``qstat -x -f [-F json]`` (``-x``: finished jobs too).
    Torque: ``qstat -f -1`` (``-1``: values not folded; ``-x`` would mean XML there).
    """
    ids = quote_all(dict.fromkeys(job_ids))
    if dialect.name == PBSPRO:
        options = "-x -f -F json" if dialect.json else "-x -f"
    else:
        options = "-f -1"
    return section(f"qstat {options} {ids}", "qstat")


def find_command(dialect: Dialect, remote_dir: str, name: str) -> str:
    """The record qsub left in the job's directory, and this user's jobs with job name ``name``.

    PBS Professional / OpenPBS: ``qselect -x -N NAME -u USER`` (ids only, finished jobs too).
    Torque: ``qstat -f -1`` of all jobs, filtered here by ``Job_Name`` (Slurm's Torque front end
    has no qselect, and a ``qselect`` found on PATH may belong to another batch system).
    """
    record = f"{remote_dir}/{SUBMIT_RECORD}"
    parts = [section(f"cat {quote(record)} 2>/dev/null", "record")]
    if dialect.name == PBSPRO:
        parts.append(section(f'qselect -x -N {quote(name)} -u "${{USER:-$(id -un)}}"', "select"))
    else:
        parts.append(section("qstat -f -1", "select"))
    return "\n".join(parts)


def control_command(program: str, job_ids: Sequence[str], options: Sequence[str] = ()) -> str:
    """``program [options] ID...`` (qdel, qhold, qrls) for all ``job_ids`` at once."""
    return " ".join([program, *(quote(o) for o in options), quote_all(dict.fromkeys(job_ids))])
