"""The ``#SBATCH`` header of a job script and the job's ``EXPYRE_NUM_*`` variables from Slurm."""
from __future__ import annotations

from typing import List, Set

from expyre import JobSpec
from expyre.header import directive_options, format_header_lines, optional_lines, queue_and_wall_time, unless_given

from .parse import directive_path, job_name

#: The default header, as the seed's documentation gives it (the ``--time`` line is left out
#: for a job without a wall time). Shown for reference; :func:`render_header` writes these lines
#: with the job name made safe for Slurm and the output file names quoted where needed.
DEFAULT_HEADER = (
    "#SBATCH --job-name={id}",
    "#SBATCH --partition={partition}",
    "#SBATCH --time={max_time}",
    "#SBATCH --output=job.{id}.stdout",
    "#SBATCH --error=job.{id}.stderr",
)


#: Options that already say how many nodes, tasks or cores, or how much memory, a job gets; a
#: configured line with one of them replaces the matching default line (configs written for
#: ExPyRe carry ``#SBATCH --nodes={num_nodes}``-style lines of their own).
NODE_OPTIONS = ("--nodes", "-N")
TASK_OPTIONS = ("--ntasks", "-n", "--ntasks-per-node", "--tasks-per-node", "--cpus-per-task", "-c",
                "--exclusive")
MEMORY_OPTIONS = ("--mem", "--mem-per-cpu", "--mem-per-gpu")


def resource_lines(job: JobSpec, given: Set[str] = frozenset()) -> List[str]:
    """The lines that ask for what partition selection computed: nodes, tasks per node (one task
    per core, as MPI programs expect), and memory per node when it is known (``mem_per_node_kB``:
    what the job asked for, else its share of the partition's ``max_mem``). A line is left out
    when ``given`` (the options the configured lines set) already covers it."""
    nodes, cores, mem = (job.node_dict.get(key) for key in ("num_nodes", "num_cores_per_node", "mem_per_node_kB"))
    return unless_given(given, (NODE_OPTIONS, nodes and f"#SBATCH --nodes={nodes}"),
                        (TASK_OPTIONS, cores and f"#SBATCH --ntasks-per-node={cores}"),
                        (MEMORY_OPTIONS, mem and f"#SBATCH --mem={mem}K"))


def default_header(job: JobSpec, given: Set[str] = frozenset()) -> List[str]:
    """The default lines: job name (the expyre id), partition, wall time, stdout and stderr
    files, then nodes, tasks per node and memory (see :func:`resource_lines`)."""
    partition, max_time = queue_and_wall_time(job)
    return [f"#SBATCH --job-name={job_name(job.id)}",
            *optional_lines(("#SBATCH --partition={}", partition), ("#SBATCH --time={}", max_time)),
            f"#SBATCH --output={directive_path(job.stdout_file)}",
            f"#SBATCH --error={directive_path(job.stderr_file)}",
            *resource_lines(job, given)]


def render_header(job: JobSpec) -> List[str]:
    """The job script's header lines (after the ``#!`` line).

    The default lines (unless ``job.no_default_header``), then ``job.header_lines`` (the
    system's ``header``, the partition's ``header``, ``header_extra`` and ``EXPYRE_HEADER_EXTRA``,
    in that order, as core collected them) formatted with ``job.node_dict``. Slurm lets a later
    directive override an earlier one, so the configured lines can override the defaults; the
    node, task and memory lines are not written at all when a configured line sets those options.

    Raises
    ------
    expyre.header.HeaderTemplateError
        a configured line uses a key the node dict does not have; the message names the line
    """
    configured = format_header_lines(job.header_lines, job.node_dict)
    lines = [] if job.no_default_header else default_header(job, directive_options(configured, "#SBATCH", True))
    return lines + configured


#: Shell lines (POSIX sh) run in the job after core's own ``EXPYRE_NUM_*`` exports: they take
#: the numbers from Slurm's environment when Slurm sets them. Cores come from the tasks Slurm
#: placed on each node when tasks were asked for (``SLURM_NTASKS``), else from the CPUs it
#: allocated; ``SLURM_TASKS_PER_NODE``/``SLURM_JOB_CPUS_PER_NODE`` look like ``2(x3),1``: the first
#: count is taken per node and all are added up for the total.
JOB_ENVIRONMENT = [
    'if [ -n "${SLURM_JOB_NUM_NODES:-${SLURM_NNODES:-}}" ]; then',
    '    export EXPYRE_NUM_NODES="${SLURM_JOB_NUM_NODES:-$SLURM_NNODES}"',
    'fi',
    '_xpr_counts="${SLURM_JOB_CPUS_PER_NODE:-}"',
    'if [ -n "${SLURM_NTASKS:-}" ] && [ -n "${SLURM_TASKS_PER_NODE:-}" ]; then',
    '    _xpr_counts="$SLURM_TASKS_PER_NODE"',
    'fi',
    'if [ -n "$_xpr_counts" ]; then',
    '    _xpr_first=""; _xpr_total=0; _xpr_ifs=$IFS; IFS=,',
    '    for _xpr_item in $_xpr_counts; do',
    '        _xpr_n=${_xpr_item%%(*}; _xpr_m=1',
    '        case "$_xpr_item" in *"(x"*")") _xpr_m=${_xpr_item#*(x}; _xpr_m=${_xpr_m%)} ;; esac',
    '        case "$_xpr_n:$_xpr_m" in *[!0-9:]*|:*|*:) _xpr_first=""; break ;; esac',
    '        [ -n "$_xpr_first" ] || _xpr_first=$_xpr_n',
    '        _xpr_total=$((_xpr_total + _xpr_n * _xpr_m))',
    '    done',
    '    IFS=$_xpr_ifs',
    '    if [ -n "$_xpr_first" ] && [ "$_xpr_total" -gt 0 ]; then',
    '        export EXPYRE_NUM_CORES_PER_NODE=$_xpr_first EXPYRE_NUM_CORES=$_xpr_total',
    '    fi',
    'fi',
    'unset _xpr_counts _xpr_first _xpr_total _xpr_ifs _xpr_item _xpr_n _xpr_m',
]
