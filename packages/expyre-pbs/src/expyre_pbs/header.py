"""The ``#PBS`` header of a job script and the job's ``EXPYRE_NUM_*`` variables from PBS."""
from __future__ import annotations

from typing import List

from expyre import JobSpec
from expyre.header import format_header_lines

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
    lines = [f"#PBS -N {job_name(job.id)}"]
    partition = job.node_dict.get("partition", job.partition)
    if partition:
        lines.append(f"#PBS -q {partition}")
    max_time = job.node_dict.get("max_time")
    if max_time:
        lines.append(f"#PBS -l walltime={max_time}")
    for option, path in (("-o", job.stdout_file), ("-e", job.stderr_file)):
        value = directive_path(path)
        if value is not None:
            lines.append(f"#PBS {option} {value}")
    lines.append("#PBS -S /bin/bash")
    lines.append("#PBS -r n")
    return lines


def render_header(job: JobSpec) -> List[str]:
    """The job script's header lines (after the ``#!`` line).

    The default lines (unless ``job.no_default_header``), then ``job.header_lines`` (the system's
    ``header``, the partition's ``header``, ``header_extra`` and ``EXPYRE_HEADER_EXTRA``, in that
    order) formatted with ``job.node_dict``: sites write their node request there, for example
    ``#PBS -l select={num_nodes}:ncpus={num_cores_per_node}`` (PBS Professional / OpenPBS) or
    ``#PBS -l nodes={num_nodes}:ppn={num_cores_per_node}`` (Torque). A configured line that uses a
    key the node dict lacks raises :class:`expyre.header.HeaderTemplateError`, naming the line.
    """
    return ([] if job.no_default_header else default_header(job)) + format_header_lines(job.header_lines, job.node_dict)


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
