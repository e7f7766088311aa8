"""The ``#$`` header of a job script and the lines that run first inside the job."""
from __future__ import annotations

import warnings
from typing import List, Sequence, Set

from expyre import JobSpec
from expyre.header import directive_options as directive_options_set
from expyre.header import format_header_lines, queue_and_wall_time, requested_resources, unless_given

from .names import job_name, output_file

#: The default header as the seed's documentation lists it; shown for reference.
#: :func:`render_header` writes these lines with the job name and file names made acceptable
#: to Grid Engine (:mod:`expyre_sge.names`), and without the ``-q``/``-l h_rt`` lines when the
#: job has no partition or no wall time.
DEFAULT_HEADER = (
    "#$ -N N_{id}",
    "#$ -q {partition}",
    "#$ -l h_rt={max_time}",
    "#$ -o job.{id}.stdout",
    "#$ -e job.{id}.stderr",
    "#$ -S /bin/bash",
    "#$ -r n",
    "#$ -cwd",
)

#: File the job writes its script's exit status into when it ends by itself (not killed); see
#: :data:`JOB_ENVIRONMENT`. The status hook uses it for a job that left ``qstat`` before
#: ``qacct`` knows it (accounting written late, or not readable on the login node).
EXIT_FILE = "_expyre_sge_exit"

def directive_options(lines: Sequence[str]) -> Set[str]:
    """The options that the ``#$`` lines among ``lines`` set: ``-q``, ``-o``, ``-cwd`` ..., and
    ``-l NAME`` for each resource a ``-l`` requests (``-l h_rt``)."""
    return directive_options_set(lines, "#$") | {f"-l {name}" for name in requested_resources(lines, "#$")}


def default_header(job: JobSpec, given: Set[str] = frozenset()) -> List[str]:
    """The default lines, in the seed's order, but for those whose options ``given`` (what the
    configured lines set) already has; the ``-N`` line is always there."""
    partition, max_time = queue_and_wall_time(job)
    return [f"#$ -N {job_name(job.id)}", *unless_given(
        given,
        (("-q",), partition and f"#$ -q {partition}"),
        (("-l h_rt",), max_time and f"#$ -l h_rt={max_time}"),
        (("-o",), f"#$ -o {output_file(job.stdout_file)}"),
        (("-e", "-j"), f"#$ -e {output_file(job.stderr_file)}"),
        (("-S",), "#$ -S /bin/bash"),
        (("-r",), "#$ -r n"),
        (("-cwd", "-wd"), "#$ -cwd"))]


#: Whether this process already warned about a multi-core job without a parallel environment.
_warned_no_pe = False


class NoParallelEnvironmentWarning(UserWarning):
    """A job asks for more than one core, but its header has no ``-pe`` line: Grid Engine gives it one slot."""


def warn_if_no_parallel_environment(job: JobSpec, given: Set[str]) -> None:
    """Warn once per process when a job wants more than one core and no ``#$ -pe`` line asks for them.

    The parallel environment's name is site-specific (``qconf -spl`` lists them), so expyre does
    not guess it; the warning names the config key that adds it.
    """
    global _warned_no_pe
    cores = job.node_dict.get("num_cores") or 0
    if _warned_no_pe or cores <= 1 or "-pe" in given:
        return
    _warned_no_pe = True
    warnings.warn(
        f"Grid Engine job {job.id} asks for {cores} cores, but its header has no '-pe' line, so Grid "
        "Engine gives it one slot. Add the site's parallel environment (qconf -spl lists them) to the "
        "system's \"header\" in the expyre config, e.g. \"header\": [\"#$ -pe smp {num_cores}\"] "
        "(or to the partition's \"header\"). This warning is shown once.",
        NoParallelEnvironmentWarning, stacklevel=2)


def render_header(job: JobSpec) -> List[str]:
    """The job script's header lines (after the ``#!`` line).

    ``job.header_lines`` (the system's ``header``, the partition's ``header``, ``header_extra``
    and ``EXPYRE_HEADER_EXTRA``, as core collected them) formatted with ``job.node_dict``,
    followed by the default lines unless ``job.no_default_header``: the order of the seed's
    example, whose header begins with its configured ``#$ -pe smp 16``.

    A default line is left out when the configured lines already give its option (``-q``,
    ``-l h_rt=...``, ``-o``, ``-e`` (or ``-j``), ``-S``, ``-r``, ``-cwd``/``-wd``), so that a
    configured line decides instead of being overridden or merged (Grid Engine adds a second
    ``-q`` to the queue list and lets a later ``-o`` win). The ``-N`` line is always written:
    the job's name is how an interrupted submission is found again.

    Raises
    ------
    expyre.header.HeaderTemplateError
        a configured line uses a key the node dict does not have; the message names the line
    """
    configured = format_header_lines(job.header_lines, job.node_dict)
    given = directive_options(configured)
    warn_if_no_parallel_environment(job, given)
    return configured if job.no_default_header else configured + default_header(job, given)


#: Shell lines (POSIX sh) run in the job after core's own ``EXPYRE_NUM_*`` exports:
#:
#: * the numbers from Grid Engine's environment when it sets them: ``NSLOTS`` slots (cores) on
#:   ``NHOSTS`` hosts, so ``NSLOTS / NHOSTS`` per node (a job without a parallel environment
#:   has ``NSLOTS=1``);
#: * an ``EXIT`` trap that writes the job script's exit status to :data:`EXIT_FILE` in the
#:   job's directory when the script ends by itself (a job Grid Engine kills writes nothing).
JOB_ENVIRONMENT = [
    'case "${NSLOTS:-}:${NHOSTS:-1}" in',
    '    :*|0:*|*:|*:0|*[!0-9:]*) ;;',
    '    *) export EXPYRE_NUM_NODES="${NHOSTS:-1}" EXPYRE_NUM_CORES="$NSLOTS"',
    '       export EXPYRE_NUM_CORES_PER_NODE=$(( NSLOTS / ${NHOSTS:-1} )) ;;',
    'esac',
    '_xpr_sge_dir=$(pwd)',
    f"trap '_xpr_sge_rc=$?; echo \"$_xpr_sge_rc\" > \"$_xpr_sge_dir/{EXIT_FILE}.tmp\" && "
    f"mv -f \"$_xpr_sge_dir/{EXIT_FILE}.tmp\" \"$_xpr_sge_dir/{EXIT_FILE}\"' EXIT",
]
