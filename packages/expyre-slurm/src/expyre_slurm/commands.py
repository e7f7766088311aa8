"""Slurm command lines. Every path, id and name in them is quoted here; core runs them."""
from __future__ import annotations

from typing import Dict, Iterable, List, Optional

from expyre import quote, shell_function
from expyre.batch import BatchError

from .parse import split_remote_id

#: The one error type of the batch toolkit, under the name this plugin always gave it.
SlurmCommandError = BatchError
#: Federated job ids carry the origin cluster's id above bit 26.
FEDERATED_ID_MIN = 1 << 26


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


def squeue_commands(remote_ids: Iterable[str], fmt: str) -> Dict[str, str]:
    """``{section: squeue command}``: one squeue for the default cluster's jobs, one more (naming
    all clusters) for jobs on named clusters of a multi-cluster site."""
    groups = by_cluster(remote_ids)
    named = {c: ids for c, ids in groups.items() if c is not None}
    parts = {"squeue": (groups.get(None, []), "")}
    parts["squeue-clusters"] = ([i for ids in named.values() for i in ids], f"--clusters={quote(','.join(named))} ")
    commands = {}
    for section, (ids, clusters) in parts.items():
        unique = list(dict.fromkeys(ids))
        if unique:
            federated = "--federation " if any(i.isdigit() and int(i) >= FEDERATED_ID_MIN for i in unique) else ""
            array = "--array " if any("_" in i for i in unique) else ""  # one line per array task
            commands[section] = (f"squeue {clusters}{federated}{array}--noheader --states=all "
                                 f"--jobs={quote(','.join(unique))} --format={quote(fmt)}")
    return commands


#: Inside a Slurm job, unset the job's ``SLURM_*`` variables (but ``SLURM_CONF``/``SLURM_CLUSTERS``),
#: so that a job submitted from inside another does not inherit its allocation. A shell function
#: (:func:`expyre.shell_function`), so that an ssh session on the host reads it once.
UNSET_JOB_ENVIRONMENT = shell_function("_xpr_slurm_leave_job", (
    'if [ -n "${SLURM_JOB_ID:-}" ]; then '
    "for _xpr_var in $(compgen -e 2>/dev/null || env | sed -n 's/^\\(SLURM_[A-Za-z0-9_]*\\)=.*/\\1/p'); do "
    'case "$_xpr_var" in SLURM_CONF|SLURM_CLUSTERS) ;; SLURM_*) unset "$_xpr_var" ;; esac; done; fi')) + \
    "_xpr_slurm_leave_job"
