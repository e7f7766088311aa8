"""PBS command lines. Every path, id and name in them is quoted here; core runs them."""
from __future__ import annotations

from typing import Dict, Sequence

from expyre import quote, quote_all
from expyre.batch import BatchError, section

from .dialect import PBSPRO, Dialect

PBSCommandError = BatchError


def status_commands(dialect: Dialect, job_ids: Sequence[str]) -> Dict[str, str]:
    """One qstat for all ``job_ids``: PBS Pro ``qstat -x -f [-F json]`` (with finished jobs), Torque
    ``qstat -f -1`` (values not folded; ``-x`` would mean XML)."""
    options = ("-x -f -F json" if dialect.json else "-x -f") if dialect.name == PBSPRO else "-f -1"
    return {"qstat": f"qstat {options} {quote_all(dict.fromkeys(job_ids))}"}


def status_command(dialect: Dialect, job_ids: Sequence[str]) -> str:
    """The status query's qstat, followed by its section marker."""
    return section(status_commands(dialect, job_ids)["qstat"], "qstat")


def find_commands(dialect: Dialect, name: str) -> Dict[str, str]:
    """This user's jobs named ``name``: PBS Pro ``qselect -x -N NAME -u USER`` (finished ones too);
    Torque ``qstat -f -1`` of all jobs, filtered by ``Job_Name`` (Slurm's front end has no qselect)."""
    if dialect.name == PBSPRO:
        return {"select": f'qselect -x -N {quote(name)} -u "${{USER:-$(id -un)}}"'}
    return {"select": "qstat -f -1"}
