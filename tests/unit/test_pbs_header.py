"""The PBS plugin's job script header, its job names, and its EXPYRE_NUM_* lines.

The default header is the one the issue and the original ExPyRe give: ``#PBS -N N_{id}``,
``#PBS -q {partition}``, ``#PBS -l walltime={max_time}``, ``#PBS -o job.{id}.stdout``,
``#PBS -e job.{id}.stderr``, ``#PBS -S /bin/bash``, ``#PBS -r n``, then the system's, the
partition's and the job's header lines formatted with the node dict. PBS Professional accepts
only letters, digits, ``-``, ``_`` and ``+`` in a job name (OpenPBS ``ck_job_name.c``), so the
``{id}`` of ``-N`` is written encoded (``=`` becomes ``+3D``); the ``-o``/``-e`` files keep the
id as it is, since those are the names expyre reads back.
"""
import os
import random
import string
import subprocess

import pytest

import expyre_pbs
from expyre import JobSpec, plugins
from expyre.header import HeaderTemplateError
from expyre.resources import Resources
from expyre.units import time_to_HMS, time_to_sec
from expyre_pbs import names

SEED_ID = "test_task_tkrT4KjgpTu6r-4NiIWq-CuXMmAuUbEdP6_s1uSAGiQ=_e0p0ywcz"
SEED_NAME = "N_test_task_tkrT4KjgpTu6r-4NiIWq-CuXMmAuUbEdP6_s1uSAGiQ+3D_e0p0ywcz"

#: The seed's example system with "scheduler": "pbs" and a PBS Professional node request.
SEED_SYSTEM = {
    "host": "my-cluster", "scheduler": "pbs",
    "header": ["#PBS -l select={num_nodes}:ncpus={num_cores_per_node}"],
    "partitions": {"regular": {"num_cores": 16, "max_time": time_to_sec("168h"), "max_mem": 50_000_000},
                   "large-mem": {"num_cores": 32, "max_time": time_to_sec("168h"), "max_mem": 200_000_000,
                                 "header": ["#PBS -l mem=190gb"]}},
}


def job_spec(system, resources, job_id=SEED_ID, header_extra=(), no_default_header=False):
    """The JobSpec core hands to render_header for this system and these resources."""
    res = Resources(**resources)
    key, node_dict = res.find_nodes(system["partitions"])
    partition = system["partitions"][key]
    hms = time_to_HMS(res.max_time) if res.max_time is not None else None
    node_dict = dict(node_dict, partition=key, queue=key, id=job_id, max_time=hms, max_time_HMS=hms,
                     max_time_s=res.max_time)
    lines = list(system.get("header", [])) + list(partition.get("header", [])) + list(header_extra)
    return JobSpec(id=job_id, name="test_task", remote_dir=f"run_expyre/run_{job_id}", partition=key,
                   node_dict=node_dict, max_time=res.max_time, header_lines=lines,
                   no_default_header=no_default_header)


def render(job):
    return expyre_pbs.render_header(scheduler="pbs", job=job)


def test_seed_example_header_line_by_line():
    job = job_spec(SEED_SYSTEM, {"max_time": "1h", "num_nodes": 1, "partitions": "regular"})
    assert render(job) == [
        f"#PBS -N {SEED_NAME}",
        "#PBS -q regular",
        "#PBS -l walltime=1:00:00",
        f"#PBS -o job.{SEED_ID}.stdout",
        f"#PBS -e job.{SEED_ID}.stderr",
        "#PBS -S /bin/bash",
        "#PBS -r n",
        "#PBS -l select=1:ncpus=16",
    ]
    # the -o/-e files are the ones expyre reads back
    assert job.stdout_file == f"job.{SEED_ID}.stdout" and job.stderr_file == f"job.{SEED_ID}.stderr"


def test_header_through_the_plugin_manager_and_the_entry_point():
    job = job_spec(SEED_SYSTEM, {"max_time": "1h", "num_nodes": 1, "partitions": "regular"})
    assert plugins.render_header("pbs", job) == render(job)
    assert "pbs" in plugins.scheduler_names()
    assert any(p.name == "pbs" and p.distribution == "expyre-pbs" for p in plugins.list_plugins())


def test_torque_node_request_partition_header_and_extra_lines():
    system = dict(SEED_SYSTEM, header=["#PBS -l nodes={num_nodes}:ppn={num_cores_per_node}"])
    job = job_spec(system, {"max_time": "2:30:00", "num_nodes": 2, "partitions": "large-mem"},
                   header_extra=["#PBS -A project42", "# {num_cores} cores in queue {partition} for {id}"])
    assert render(job) == [
        f"#PBS -N {SEED_NAME}",
        "#PBS -q large-mem",
        "#PBS -l walltime=2:30:00",
        f"#PBS -o job.{SEED_ID}.stdout",
        f"#PBS -e job.{SEED_ID}.stderr",
        "#PBS -S /bin/bash",
        "#PBS -r n",
        "#PBS -l nodes=2:ppn=32",
        "#PBS -l mem=190gb",
        "#PBS -A project42",
        f"# 64 cores in queue large-mem for {SEED_ID}",
    ]


def test_no_default_header_leaves_only_the_configured_lines():
    job = job_spec(SEED_SYSTEM, {"max_time": "1h", "num_nodes": 1, "partitions": "regular"},
                   no_default_header=True)
    assert render(job) == ["#PBS -l select=1:ncpus=16"]


def test_job_without_wall_time_or_partition():
    job = JobSpec(id="j=1_x", name="j", remote_dir="run_expyre/run_j", partition=None,
                  node_dict={"num_nodes": 1, "num_cores": 1, "num_cores_per_node": 1, "id": "j=1_x",
                             "max_time": None}, max_time=None)
    assert render(job) == ["#PBS -N N_j+3D1_x", "#PBS -o job.j=1_x.stdout", "#PBS -e job.j=1_x.stderr",
                           "#PBS -S /bin/bash", "#PBS -r n"]


def test_bad_template_line_is_named():
    job = job_spec(SEED_SYSTEM, {"max_time": "1h", "num_nodes": 1, "partitions": "regular"},
                   header_extra=["#PBS -l ncpus={cores}"])
    with pytest.raises(HeaderTemplateError, match=r"#PBS -l ncpus=\{cores\}"):
        render(job)


# --------------------------------------------------------------------------- names

PBS_NAME = set(string.ascii_letters + string.digits + "-_+")


def acceptable(name: str) -> bool:
    """What OpenPBS's check_job_name accepts for qsub -N (and Torque too)."""
    return (0 < len(name) <= names.MAX_NAME_LENGTH and name[0].isalpha() and set(name) <= PBS_NAME)


@pytest.mark.parametrize("job_id", [
    SEED_ID, "a", "plain_name_abc_123", "with space_x", "tab\there", "quote'n\"d", "$(rm -rf ~)", "semi;colon",
    "unicode_ünï_名前", "plus+sign", "percent%20", "colon:path", "hash#tag", "dots.and..dots", "=" * 40,
    "back\\slash", "emoji_\U0001F600",
])
def test_names_are_acceptable_and_decode_back(job_id):
    name = names.job_name(job_id)
    assert acceptable(name), name
    assert names.decode_job_name(name) == job_id


def test_names_do_not_collide():
    # the original ExPyRe replaced '=' by 'EQ': these would collide there
    ids = ["a=b", "aEQb", "a+3Db", "a+b", "a_b", "a-b", "a b", "a.b", "a:b", "a=b_", "a=b=", "a==b"]
    assert len({names.job_name(i) for i in ids}) == len(ids)
    rng = random.Random(1)
    alphabet = string.ascii_letters + string.digits + "=+-_ .:%#é"
    seen = {}
    for _ in range(3000):
        job_id = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12)))
        name = names.job_name(job_id)
        assert seen.setdefault(name, job_id) == job_id


def test_long_names_are_cut_with_a_hash_and_stay_distinct():
    base = "x=" * 200
    long_ids = [base + suffix for suffix in ("a", "b", "=", "+3D")]
    cut = [names.job_name(i) for i in long_ids]
    assert all(len(n) == names.MAX_NAME_LENGTH and acceptable(n) for n in cut)
    assert len(set(cut)) == len(cut)
    assert all(names.decode_job_name(n) is None for n in cut)
    # an id whose encoding just fits is not cut, and differs from every cut name
    fits = "y" * (names.MAX_NAME_LENGTH - len(names.NAME_PREFIX))
    assert names.job_name(fits) == "N_" + fits and names.job_name(fits) not in cut
    assert names.job_name(fits + "y") != names.job_name(fits)


def test_output_paths_in_directives():
    assert names.directive_path("job.a=b.stdout") == "job.a=b.stdout"
    assert names.directive_path("job.a b.stdout") == '"job.a b.stdout"'
    assert names.directive_path("job.a#b.stdout") == '"job.a#b.stdout"'
    for impossible in ("job.a:b.stdout", 'job.a"b.stdout', "job.a\\b.stdout", "job.a'b.stdout", ""):
        assert names.directive_path(impossible) is None
    job = JobSpec(id="host:path_x", name="n", remote_dir="r", partition="q",
                  node_dict={"partition": "q", "max_time": "0:01:00"}, max_time=60)
    header = render(job)
    assert header[0] == "#PBS -N N_host+3Apath_x"
    assert not any(line.startswith(("#PBS -o", "#PBS -e")) for line in header)


# --------------------------------------------------------------------------- EXPYRE_NUM_* in the job

def job_numbers(tmp_path, env, nodefile_lines=None):
    """Run core's defaults (2 nodes, 8 cores, 4 per node) and the plugin's lines in bash with ``env``."""
    if nodefile_lines is not None:
        nodefile = tmp_path / "nodefile"
        nodefile.write_text("".join(line + "\n" for line in nodefile_lines))
        env = dict(env, PBS_NODEFILE=str(nodefile))
    script = "\n".join(["export EXPYRE_NUM_NODES=2 EXPYRE_NUM_CORES=8 EXPYRE_NUM_CORES_PER_NODE=4",
                        *expyre_pbs.job_environment("pbs", None),
                        'echo "$EXPYRE_NUM_NODES $EXPYRE_NUM_CORES $EXPYRE_NUM_CORES_PER_NODE"'])
    result = subprocess.run(["bash", "-c", script], env={"PATH": os.environ["PATH"], **env},
                            capture_output=True, text=True, check=True)
    assert result.stderr == ""
    return tuple(int(v) for v in result.stdout.split())


def test_job_environment_torque(tmp_path):
    assert job_numbers(tmp_path, {"PBS_NUM_NODES": "3", "PBS_NUM_PPN": "6", "PBS_NP": "18"}) == (3, 18, 6)
    assert job_numbers(tmp_path, {"PBS_NUM_NODES": "3", "PBS_NUM_PPN": "6"}) == (3, 18, 6)
    # Torque's node file has one line per core, and the variables win over it
    assert job_numbers(tmp_path, {"PBS_NUM_PPN": "2"}, ["n1", "n1", "n2", "n2"]) == (2, 4, 2)


def test_job_environment_pbspro(tmp_path):
    # PBS Pro: NCPUS is the chunk's ncpus; the node file has one line per MPI process
    assert job_numbers(tmp_path, {"NCPUS": "16"}, ["n1", "n2", "n3"]) == (3, 48, 16)
    assert job_numbers(tmp_path, {"NCPUS": "16"}) == (2, 8, 16)


def test_job_environment_node_file_only(tmp_path):
    assert job_numbers(tmp_path, {}, ["n1", "n1", "n1", "n2", "n2", "n2"]) == (2, 6, 3)


def test_job_environment_without_pbs_keeps_core_values(tmp_path):
    # Slurm's Torque front end sets none of these: core's values stay
    assert job_numbers(tmp_path, {}) == (2, 8, 4)
    assert job_numbers(tmp_path, {"PBS_NUM_PPN": "x", "NCPUS": "", "PBS_NP": "-1"}) == (2, 8, 4)
    assert job_numbers(tmp_path, {"PBS_NODEFILE": "/nonexistent/file"}) == (2, 8, 4)


def test_header_through_core_on_an_expyre_testing_system(expyre_local_system):
    """Core renders this plugin's header for a system that ``expyre.testing``'s fixture wrote
    (the pytest plugin expyre-core installs, with which a site tests its own plugin the same way)."""
    from expyre.func import ExPyRe
    from expyre.resources import Resources as _Resources
    line = "#PBS -l nodes={num_nodes}:ppn={num_cores_per_node}"
    config = expyre_local_system("pbs_here", scheduler="pbs", header=[line])
    system = config.systems["pbs_here"]
    assert system.scheduler == "pbs"
    assert config.local_stage_dir.resolve() == expyre_local_system.root.resolve()
    xpr = ExPyRe("test_task", function=sum, args=[[1, 2, 3]])
    job = system.job_spec(xpr.id, xpr.name, xpr.stage_dir, _Resources(max_time="1h", num_nodes=1, partitions="regular"),
                          exact_fit=True, partial_node=False)
    script = xpr._render_script(system, job, None)
    assert "#PBS -l nodes=1:ppn=2" in script.splitlines()
    assert any(line.startswith("#PBS -N ") for line in script.splitlines())
