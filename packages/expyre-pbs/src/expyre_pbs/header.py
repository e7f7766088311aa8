"""The ``#PBS`` header of a job script and the job's ``EXPYRE_NUM_*`` variables from PBS."""
from __future__ import annotations

from typing import List, Set

from expyre import JobSpec
from expyre.header import format_header_lines, optional_lines, queue_and_wall_time, requested_resources, unless_given

from .names import directive_path, job_name

#: The default header as the issue and the original ExPyRe give it, for reference.
#: :func:`default_header` writes these lines with the job name made acceptable to PBS
#: (:func:`expyre_pbs.names.job_name`), and leaves out the queue and walltime lines for a job
#: without a partition or a wall time.
DEFAULT_HEADER = (
    "#PBS -N N_{id}",
    "#PBS -q {partition}",
    "#PBS -l walltime={max_time}",
    "#PBS -o job.{id}.stdout",
    "#PBS -e job.{id}.stderr",
    "#PBS -S /bin/bash",
    "#PBS -r n",
)


def default_header(job: JobSpec) -> List[str]:
    """The default lines: name, queue, wall time, stdout and stderr files, shell, not rerunnable.

    The ``-o``/``-e`` files are the ones expyre reads back (``job.stdout_file``,
    ``job.stderr_file``, by default ``job.<id>.stdout``/``.stderr``), relative to the directory
    qsub runs in (the job's directory). A file name PBS cannot take in a directive (one with
    ``:``, a quote or a backslash, see :func:`expyre_pbs.names.directive_path`) leaves its line
    out; PBS then writes its default ``<job name>.o<number>``.
    """
    partition, max_time = queue_and_wall_time(job)
    return [f"#PBS -N {job_name(job.id)}",
            *optional_lines(("#PBS -q {}", partition), ("#PBS -l walltime={}", max_time),
                            ("#PBS -o {}", directive_path(job.stdout_file)),
                            ("#PBS -e {}", directive_path(job.stderr_file))),
            "#PBS -S /bin/bash", "#PBS -r n"]


#: ``-l`` resources that already say how many nodes or cores a job gets, and how much memory.
NODE_RESOURCES = ("nodes", "select", "ncpus", "procs", "nodect")
MEMORY_RESOURCES = ("mem", "pmem", "vmem", "pvmem")


def resource_lines(job: JobSpec, given: Set[str] = frozenset()) -> List[str]:
    """The lines that ask for what partition selection computed: ``-l nodes=N:ppn=P`` (Torque's
    form, which PBS Professional converts to a ``select`` by itself) and ``-l mem=`` for the
    whole job when its memory per node is known (``mem_per_node_kB``). A line is left out when
    ``given`` (the resources the configured lines ask for) already covers it."""
    nodes, ppn, mem = (job.node_dict.get(key) for key in ("num_nodes", "num_cores_per_node", "mem_per_node_kB"))
    # PBS Professional refuses a job-wide "-l mem" next to a select: memory belongs in its chunks;
    # whole megabytes, rounded up: every PBS (and Slurm's qsub wrapper) reads "mb"
    return unless_given(given, (NODE_RESOURCES, nodes and ppn and f"#PBS -l nodes={nodes}:ppn={ppn}"),
                        (MEMORY_RESOURCES + ("select",), mem and nodes and f"#PBS -l mem={-(-mem * nodes // 1024)}mb"))


def render_header(job: JobSpec) -> List[str]:
    """The job script's header lines (after the ``#!`` line).

    The default lines (unless ``job.no_default_header``), then ``job.header_lines`` (the system's
    ``header``, the partition's ``header``, ``header_extra`` and ``EXPYRE_HEADER_EXTRA``, in that
    order) formatted with ``job.node_dict``. Unless those lines ask for nodes or memory
    themselves (a site's ``#PBS -l select={num_nodes}:ncpus={num_cores_per_node}`` for PBS
    Professional, say), the default lines include the node and memory request of
    :func:`resource_lines`.

    Raises
    ------
    expyre.header.HeaderTemplateError
        a configured line uses a key the node dict does not have; the message names the line
    """
    configured = format_header_lines(job.header_lines, job.node_dict)
    if job.no_default_header:
        return configured
    return default_header(job) + resource_lines(job, requested_resources(configured, "#PBS")) + configured


#: Shell lines (POSIX sh) run in the job after core's own ``EXPYRE_NUM_*`` exports, which stay
#: when PBS tells nothing. Cores per node: Torque's ``PBS_NUM_PPN``, else PBS Pro's ``NCPUS``
#: (the chunk's ncpus on this host), else the lines of the first host in ``$PBS_NODEFILE``.
#: Nodes: Torque's ``PBS_NUM_NODES``, else the distinct hosts of the node file. Cores: Torque's
#: ``PBS_NP``, else nodes times cores per node, else the lines of the node file.
JOB_ENVIRONMENT = [
    '_xpr_nodes=; _xpr_ppn=; _xpr_np=',
    'if [ -n "${PBS_NODEFILE:-}" ] && [ -s "$PBS_NODEFILE" ]; then',
    '    _xpr_nodes=$(sort -u "$PBS_NODEFILE" | wc -l | tr -d " ")',
    '    _xpr_np=$(wc -l < "$PBS_NODEFILE" | tr -d " ")',
    '    _xpr_ppn=$(grep -cxF -- "$(head -n 1 "$PBS_NODEFILE")" "$PBS_NODEFILE")',
    'fi',
    'case "${PBS_NUM_NODES:-}" in ""|*[!0-9]*) ;; *) _xpr_nodes=$PBS_NUM_NODES ;; esac',
    'case "${NCPUS:-}" in ""|*[!0-9]*) ;; *) _xpr_ppn=$NCPUS; _xpr_np= ;; esac',
    'case "${PBS_NUM_PPN:-}" in ""|*[!0-9]*) ;; *) _xpr_ppn=$PBS_NUM_PPN; _xpr_np= ;; esac',
    'case "${PBS_NP:-}" in ""|*[!0-9]*) ;; *) _xpr_np=$PBS_NP ;; esac',
    'case "$_xpr_nodes" in ""|0|*[!0-9]*) _xpr_nodes= ;; esac',
    'case "$_xpr_ppn" in ""|0|*[!0-9]*) _xpr_ppn= ;; esac',
    'if [ -z "$_xpr_np" ] && [ -n "$_xpr_nodes" ] && [ -n "$_xpr_ppn" ]; then _xpr_np=$((_xpr_nodes * _xpr_ppn)); fi',
    'case "$_xpr_np" in ""|0|*[!0-9]*) _xpr_np= ;; esac',
    '[ -z "$_xpr_nodes" ] || export EXPYRE_NUM_NODES=$_xpr_nodes',
    '[ -z "$_xpr_ppn" ] || export EXPYRE_NUM_CORES_PER_NODE=$_xpr_ppn',
    '[ -z "$_xpr_np" ] || export EXPYRE_NUM_CORES=$_xpr_np',
    'unset _xpr_nodes _xpr_ppn _xpr_np',
]
