"""The Slurm plugin's job script header and its EXPYRE_NUM_* lines.

The seed's documentation gives the default header of the original ExPyRe (its Slurm form):
``#SBATCH --job-name={id}``, ``--partition={partition}``, ``--time={max_time}``,
``--output=job.{id}.stdout``, ``--error=job.{id}.stderr``, with the system's ``header`` lines
formatted with the node dict. The contract (``render_header`` in expyre's hookspecs) puts the
default lines first and the configured ones after them, so that a configured line can override
a default one (Slurm takes the last of two directives).
"""
import os
import subprocess

import pytest

import expyre_slurm
from expyre import JobSpec
from expyre.header import HeaderTemplateError
from expyre.resources import Resources
from expyre.units import time_to_HMS, time_to_sec

SEED_ID = "test_task_tkrT4KjgpTu6r-4NiIWq-CuXMmAuUbEdP6_s1uSAGiQ=_e0p0ywcz"

#: The seed's example system, with "scheduler": "slurm" and a Slurm header line.
SEED_SYSTEM = {
    "host": "my-cluster", "scheduler": "slurm",
    "header": ["#SBATCH --ntasks-per-node={num_cores_per_node}"],
    "partitions": {"regular": {"num_cores": 16, "max_time": time_to_sec("168h"), "max_mem": 50_000_000},
                   "large-mem": {"num_cores": 32, "max_time": time_to_sec("168h"), "max_mem": 200_000_000,
                                 "header": ["#SBATCH --mem=190G"]}},
}


def job_spec(system, resources, job_id=SEED_ID, header_extra=(), env_extra=(), no_default_header=False):
    """The JobSpec core hands to render_header for this system and these resources."""
    res = Resources(**resources)
    key, node_dict = res.find_nodes(system["partitions"])
    partition = system["partitions"][key]
    hms = time_to_HMS(res.max_time) if res.max_time is not None else None
    node_dict = dict(node_dict, partition=key, queue=key, id=job_id, max_time=hms, max_time_HMS=hms,
                     max_time_s=res.max_time)
    lines = list(system.get("header", [])) + list(partition.get("header", [])) + list(header_extra) + list(env_extra)
    return JobSpec(id=job_id, name="test_task", remote_dir=f"run_expyre/run_{job_id}", partition=key,
                   node_dict=node_dict, max_time=res.max_time, header_lines=lines,
                   no_default_header=no_default_header)


def render(job):
    return expyre_slurm.render_header(scheduler="slurm", job=job)


def test_seed_example_header_line_by_line():
    job = job_spec(SEED_SYSTEM, {"max_time": "1h", "num_nodes": 1, "partitions": "regular"})
    assert render(job) == [
        f"#SBATCH --job-name={SEED_ID}",
        "#SBATCH --partition=regular",
        "#SBATCH --time=1:00:00",
        f"#SBATCH --output=job.{SEED_ID}.stdout",
        f"#SBATCH --error=job.{SEED_ID}.stderr",
        "#SBATCH --ntasks-per-node=16",
    ]


def test_defaults_follow_the_seed_templates():
    job = job_spec(SEED_SYSTEM, {"max_time": "1h", "num_nodes": 1, "partitions": "regular"})
    templates = [line.format(**job.node_dict) for line in expyre_slurm.header.DEFAULT_HEADER]
    assert render(job)[:5] == templates


def test_all_configured_lines_in_order_and_formatted():
    job = job_spec(SEED_SYSTEM, {"max_time": "2:30:00", "num_nodes": 2, "partitions": "large-mem"},
                   header_extra=["#SBATCH --comment={id}", "#SBATCH --nodes={num_nodes} --ntasks={num_cores}"],
                   env_extra=["#SBATCH --time={max_time}", "#SBATCH --partition={partition}"])
    assert render(job) == [
        f"#SBATCH --job-name={SEED_ID}",
        "#SBATCH --partition=large-mem",
        "#SBATCH --time=2:30:00",
        f"#SBATCH --output=job.{SEED_ID}.stdout",
        f"#SBATCH --error=job.{SEED_ID}.stderr",
        "#SBATCH --ntasks-per-node=32",          # system header
        "#SBATCH --mem=190G",                    # partition header
        f"#SBATCH --comment={SEED_ID}",          # header_extra
        "#SBATCH --nodes=2 --ntasks=64",
        "#SBATCH --time=2:30:00",                # EXPYRE_HEADER_EXTRA
        "#SBATCH --partition=large-mem",
    ]


def test_no_default_header():
    job = job_spec(SEED_SYSTEM, {"max_time": "1h", "num_nodes": 1, "partitions": "regular"},
                   header_extra=["#SBATCH --job-name=custom"], no_default_header=True)
    assert render(job) == ["#SBATCH --ntasks-per-node=16", "#SBATCH --job-name=custom"]


def test_no_max_time_leaves_out_the_time_line():
    system = dict(SEED_SYSTEM, partitions={"regular": {"num_cores": 16, "max_time": None}})
    job = job_spec(system, {"max_time": None, "num_nodes": 1, "partitions": "regular"})
    assert not [line for line in render(job) if "--time" in line]
    assert len(render(job)) == 5


def test_unknown_template_key_names_the_line():
    job = job_spec(SEED_SYSTEM, {"max_time": "1h", "num_nodes": 1, "partitions": "regular"},
                   header_extra=["#SBATCH --ntasks={ncores}"])
    with pytest.raises(HeaderTemplateError, match=r"header line '#SBATCH --ntasks=\{ncores\}' uses unknown key "
                                                  r"\{ncores\}; available keys: .*num_cores"):
        render(job)


def test_unusual_ids_give_a_valid_job_name_and_quoted_output_files():
    job_id = "my step #2 50%_hash=_u1"
    job = job_spec(SEED_SYSTEM, {"max_time": "1h", "num_nodes": 1, "partitions": "regular"}, job_id=job_id)
    lines = render(job)
    assert lines[0] == "#SBATCH --job-name=my_step__2_50%_hash=_u1"
    assert lines[3] == '#SBATCH --output="job.my step #2 50%%_hash=_u1.stdout"'
    assert lines[4] == '#SBATCH --error="job.my step #2 50%%_hash=_u1.stderr"'


def test_render_header_through_the_entry_point():
    from expyre import plugins
    plugins.load_plugins(force=True)
    assert "slurm" in plugins.scheduler_names()
    job = job_spec(SEED_SYSTEM, {"max_time": "1h", "num_nodes": 1, "partitions": "regular"})
    assert plugins.render_header("slurm", job) == render(job)
    info = [p for p in plugins.list_plugins() if "slurm" in p.schedulers]
    assert len(info) == 1 and info[0].distribution == "expyre-slurm"


# --------------------------------------------------------------------------- EXPYRE_NUM_* in the job

def run_environment_lines(slurm_env):
    lines = expyre_slurm.job_environment(scheduler="slurm", job=None)
    script = "\n".join(["export EXPYRE_NUM_NODES=1 EXPYRE_NUM_CORES=16 EXPYRE_NUM_CORES_PER_NODE=16", *lines,
                        'echo "$EXPYRE_NUM_NODES $EXPYRE_NUM_CORES $EXPYRE_NUM_CORES_PER_NODE"',
                        'set | grep -c "^_xpr_" || true'])
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM")}
    env.update(slurm_env)
    out = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, check=True)
    assert out.stderr == ""
    values, leftovers = out.stdout.split("\n")[:2]
    assert leftovers == "0"  # the helper variables are gone
    return values


@pytest.mark.parametrize("slurm_env, expected", [
    ({}, "1 16 16"),                                                            # not in Slurm: core's values
    ({"SLURM_JOB_NUM_NODES": "1", "SLURM_JOB_CPUS_PER_NODE": "2", "SLURM_TASKS_PER_NODE": "1"}, "1 2 2"),
    ({"SLURM_JOB_NUM_NODES": "3", "SLURM_JOB_CPUS_PER_NODE": "4(x2),2"}, "3 10 4"),
    ({"SLURM_JOB_NUM_NODES": "2", "SLURM_NTASKS": "6", "SLURM_TASKS_PER_NODE": "3(x2)",
      "SLURM_JOB_CPUS_PER_NODE": "12(x2)"}, "2 6 3"),                            # tasks asked for: tasks count
    ({"SLURM_NNODES": "2", "SLURM_JOB_CPUS_PER_NODE": "8(x2)"}, "2 16 8"),       # older Slurm's variable
    ({"SLURM_JOB_NUM_NODES": "1", "SLURM_JOB_CPUS_PER_NODE": "garbage(x"}, "1 16 16"),
    ({"SLURM_JOB_NUM_NODES": "1", "SLURM_JOB_CPUS_PER_NODE": ""}, "1 16 16"),
])
def test_environment_from_slurm(slurm_env, expected):
    assert run_environment_lines(slurm_env) == expected


def test_header_through_core_on_an_expyre_testing_system(expyre_local_system):
    """Core renders this plugin's header for a system that ``expyre.testing``'s fixture wrote
    (the pytest plugin expyre-core installs, with which a site tests its own plugin the same way)."""
    from expyre.func import ExPyRe
    from expyre.resources import Resources as _Resources
    line = "#SBATCH --ntasks-per-node={num_cores_per_node}"
    config = expyre_local_system("slurm_here", scheduler="slurm", header=[line])
    system = config.systems["slurm_here"]
    assert system.scheduler == "slurm"
    assert config.local_stage_dir.resolve() == expyre_local_system.root.resolve()
    xpr = ExPyRe("test_task", function=sum, args=[[1, 2, 3]])
    job = system.job_spec(xpr.id, xpr.name, xpr.stage_dir, _Resources(max_time="1h", num_nodes=1, partitions="regular"),
                          exact_fit=True, partial_node=False)
    script = xpr._render_script(system, job, None)
    assert "#SBATCH --ntasks-per-node=2" in script.splitlines()
    assert f"#SBATCH --job-name={xpr.id}" in script.splitlines()
