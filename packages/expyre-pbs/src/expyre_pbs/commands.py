"""PBS command lines. Every path, id and name in them is quoted here; core runs them."""
from __future__ import annotations

from typing import Dict, Sequence

from expyre import quote, quote_all
from expyre.batch import BatchError, section

from . import arrays
from .dialect import PBSPRO, Dialect

PBSCommandError = BatchError


def status_commands(dialect: Dialect, job_ids: Sequence[str]) -> Dict[str, str]:
    """One qstat for all ``job_ids``: PBS Pro ``qstat -x -f [-F json]`` (with finished jobs), Torque
    ``qstat -f -1`` (values not folded; ``-x`` would mean XML); both take subjob ids as they are.
    Array tasks of Slurm's Torque front end (``123_4``): one ``squeue`` (see :mod:`expyre_pbs.arrays`)."""
    pbs_ids, slurm_tasks = arrays.split_task_ids(job_ids)
    options = ("-x -f -F json" if dialect.json else "-x -f") if dialect.name == PBSPRO else "-f -1"
    return {**({"qstat": f"qstat {options} {quote_all(dict.fromkeys(pbs_ids))}"} if pbs_ids else {}),
            **({"squeue": arrays.SQUEUE} if slurm_tasks else {})}


def status_command(dialect: Dialect, job_ids: Sequence[str]) -> str:
    """The status query's qstat, followed by its section marker."""
    return section(status_commands(dialect, job_ids)["qstat"], "qstat")


def find_commands(dialect: Dialect, name: str, array: bool = False) -> Dict[str, str]:
    """This user's jobs named ``name``: PBS Pro ``qselect -x -N NAME -u USER`` (finished ones too);
    Torque ``qstat -f -1`` of all jobs, filtered by ``Job_Name`` (Slurm's front end has no qselect);
    an ``array`` on the front end, whose tasks are jobs of their own in its qstat: Slurm's ``squeue``."""
    if dialect.name == PBSPRO:
        return {"select": f'qselect -x -N {quote(name)} -u "${{USER:-$(id -un)}}"'}
    return {"squeue": arrays.SQUEUE} if dialect.slurm and array else {"select": "qstat -f -1"}
