"""Building Slurm command lines and running them with retries of transient failures.

Every path, id and name that goes into a command is quoted here. Commands are run through the
``shell`` core hands to the hooks; nothing here opens a connection of its own.
"""
from __future__ import annotations

import time
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from expyre import CommandResult, RemoteCommandError, jobfiles, quote, run_unchecked
from expyre.retry import retry_settings

from .parse import END_MARKER, is_transient, split_remote_id

#: Seconds a status query (squeue, and scontrol/sacct for jobs it no longer lists) may take.
STATUS_TIMEOUT = 120.0
#: Seconds sbatch may take before the submission's outcome is taken as unknown.
SUBMIT_TIMEOUT = 300.0
#: Seconds scancel, scontrol hold/release may take.
CONTROL_TIMEOUT = 120.0

#: File in the job's directory that keeps sbatch's output, so that a submission whose answer
#: was lost on the way back can still be found (see ``find_submitted``).
SUBMIT_RECORD = jobfiles.plugin_file("slurm", "sbatch.out")


class SlurmCommandError(RemoteCommandError):
    """A Slurm command failed (after retries, if its failure looked transient).

    The message quotes what the command printed (sbatch's, squeue's own error message).
    """


#: Run a command without raising on its exit status (a timeout becomes exit status -1).
run_once = run_unchecked


def run_retrying(shell, command: str, *, what: str, timeout: Optional[float],
                 accept: Callable[[CommandResult], bool] = lambda result: False) -> CommandResult:
    """Run a command that is safe to repeat, retrying failures that Slurm says are transient.

    Parameters
    ----------
    shell: expyre.Shell
        the command runner core handed to the hook
    command: str
        the command (already quoted)
    what: str
        what the command is for, for the error message
    timeout: float or None
        seconds one try may take (a try that takes longer counts as a transient failure)
    accept: callable, optional
        ``accept(result)`` True for a non-zero exit status that is an answer, not a failure

    Returns
    -------
    expyre.CommandResult

    Raises
    ------
    SlurmCommandError
        the command failed for good, or still failed after the tries ``EXPYRE_RETRY`` allows;
        the message quotes the command's own error output
    """
    tries, wait = retry_settings()
    for attempt in range(1, tries + 1):
        result = run_once(shell, command, timeout)
        if result.returncode == 0 or accept(result):
            return result
        if attempt < tries and (result.returncode == -1 or is_transient(result.stderr + "\n" + result.stdout)):
            time.sleep(wait)
            wait *= 2
            continue
        raise SlurmCommandError(shell.host, result, what + (f" (after {attempt} tries)" if attempt > 1 else ""))
    raise AssertionError("unreachable")  # pragma: no cover


def section(command: str, name: str, decides: bool = False) -> str:
    """``command`` followed by an end marker carrying its exit status (see :func:`parse.split_sections`).

    Sections are joined by :func:`script`; a section that ``decides`` passes a failure on to the
    script's own exit status (so that :func:`run_retrying` sees it).
    """
    line = f"{command}\n_xpr_s=$?; echo {quote(f'{END_MARKER} {name}')} $_xpr_s"
    if decides:
        line += '; [ "$_xpr_s" -eq 0 ] || _xpr_rc=$_xpr_s'
    return line


def script(sections: Sequence[str]) -> str:
    """One command running ``sections`` in turn; its exit status is the last failing deciding one's."""
    return "\n".join(["_xpr_rc=0", *sections, "exit $_xpr_rc"])


def by_cluster(remote_ids: Iterable[str]) -> Dict[Optional[str], List[str]]:
    """Slurm job ids grouped by cluster (None: the default cluster), in the given order."""
    groups: Dict[Optional[str], List[str]] = {}
    for remote_id in remote_ids:
        job_id, cluster = split_remote_id(remote_id)
        groups.setdefault(cluster, []).append(job_id)
    return groups


def cluster_option(cluster: Optional[str]) -> str:
    """``--clusters=NAME `` for a named cluster, nothing for the default one."""
    return f"--clusters={quote(cluster)} " if cluster else ""


#: Federated job ids carry the origin cluster's id above bit 26.
FEDERATED_ID_MIN = 1 << 26


def squeue_command(job_ids_by_cluster: Dict[Optional[str], List[str]], fmt: str) -> Tuple[str, List[str]]:
    """One shell command running squeue for all jobs; returns it and the names of its sections.

    Jobs on the default cluster are asked about in one squeue; jobs on named clusters (multi-
    cluster sites) in one more, with ``--clusters`` naming all of them.
    """
    parts = []
    names = []
    plain = job_ids_by_cluster.get(None, [])
    named = {c: ids for c, ids in job_ids_by_cluster.items() if c is not None}
    groups: List[Tuple[str, List[str], str]] = []
    if plain:
        groups.append(("squeue", plain, ""))
    if named:
        ids = [i for group in named.values() for i in group]
        groups.append(("squeue-clusters", ids, f"--clusters={quote(','.join(named))} "))
    for name, ids, clusters in groups:
        unique = list(dict.fromkeys(ids))
        federated = "--federation " if any(i.isdigit() and int(i) >= FEDERATED_ID_MIN for i in unique) else ""
        parts.append(section(f"squeue {clusters}{federated}--noheader --states=all "
                             f"--jobs={quote(','.join(unique))} --format={quote(fmt)}", name, decides=True))
        names.append(name)
    return script(parts), names


def unset_slurm_job_environment() -> str:
    """Shell code that, inside a Slurm job, unsets the job's ``SLURM_*`` variables (keeping
    ``SLURM_CONF`` and ``SLURM_CLUSTERS``), so that a job submitted from inside another job does
    not inherit its allocation's settings. Outside a job it does nothing."""
    return ('if [ -n "${SLURM_JOB_ID:-}" ]; then '
            "for _xpr_var in $(compgen -e 2>/dev/null || env | sed -n 's/^\\(SLURM_[A-Za-z0-9_]*\\)=.*/\\1/p'); do "
            'case "$_xpr_var" in SLURM_CONF|SLURM_CLUSTERS) ;; SLURM_*) unset "$_xpr_var" ;; esac; done; fi')


def submit_command(remote_dir: str, script: str, extra_args: Sequence[str] = ()) -> str:
    """cd into the job's directory and run sbatch on the script; sbatch's output is printed and
    also kept in :data:`SUBMIT_RECORD` there (so that a submission whose answer was lost on the
    way back can be found). Only shell builtins besides sbatch itself: this runs once per job."""
    args = "".join(f"{quote(a)} " for a in extra_args)
    return (f"cd {quote(remote_dir)} || exit 1\n"
            f"_xpr_out=$({unset_slurm_job_environment()}\n"
            f"  exec sbatch {args}{quote(script)} < /dev/null)\n"
            "_xpr_rc=$?\n"
            f"printf '%s\\n' \"$_xpr_out\" > {SUBMIT_RECORD}; printf '%s\\n' \"$_xpr_out\"\n"
            "exit $_xpr_rc")
