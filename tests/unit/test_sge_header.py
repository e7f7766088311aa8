"""The Grid Engine plugin's job script header, job names and the job's EXPYRE_NUM_* lines.

The seed's documentation lists the exact header of its example SGE site (below as
:data:`SEED_LISTING`): the system's ``#$ -pe smp {num_cores_per_node}`` first, then
``-N N_<id>``, ``-q``, ``-l h_rt``, ``-o``, ``-e``, ``-S /bin/bash``, ``-r n``, ``-cwd``. The job
id (in the name and the output file names) depends on the hash of the call; everything else
must match line by line.
"""
import os
import re
import subprocess

import numpy as np
import pytest

import expyre_sge
from expyre import JobSpec
from expyre.header import HeaderTemplateError
from expyre.resources import Resources
from expyre.units import time_to_HMS
from expyre_sge import header, names

SEED_ID = "test_task_tkrT4KjgpTu6r-4NiIWq-CuXMmAuUbEdP6_s1uSAGiQ=_e0p0ywcz"

#: The job script header the seed's documentation gives for its example (``xpr.start`` with
#: ``{'max_time': '1h', 'num_nodes': 1, 'partitions': 'regular'}`` on the system below).
SEED_LISTING = """\
#!/bin/bash -l
#$ -pe smp 16
#$ -N N_test_task_tkrT4KjgpTu6r-4NiIWq-CuXMmAuUbEdP6_s1uSAGiQ=_e0p0ywcz
#$ -q regular
#$ -l h_rt=1:00:00
#$ -o job.test_task_tkrT4KjgpTu6r-4NiIWq-CuXMmAuUbEdP6_s1uSAGiQ=_e0p0ywcz.stdout
#$ -e job.test_task_tkrT4KjgpTu6r-4NiIWq-CuXMmAuUbEdP6_s1uSAGiQ=_e0p0ywcz.stderr
#$ -S /bin/bash
#$ -r n
#$ -cwd
"""

#: The seed's example system (its ``config.json``), as the seed writes it.
SEED_SYSTEM = {
    "host": "my-cluster",
    "scheduler": "sge",
    "header": ["#$ -pe smp {num_cores_per_node}"],
    "partitions": {"regular": {"num_cores": 16, "max_time": "168h", "max_mem": "50GB"},
                   "large-mem": {"num_cores": 32, "max_time": "168h", "max_mem": "200GB"}},
}
SEED_RESOURCES = {"max_time": "1h", "num_nodes": 1, "partitions": "regular"}


def job_spec(job_id=SEED_ID, resources=SEED_RESOURCES, header_lines=("#$ -pe smp {num_cores_per_node}",),
             partitions=None, no_default_header=False, **overrides):
    """The JobSpec core builds for the seed's system (see ``System.job_spec``)."""
    parts = partitions or {"regular": {"num_cores": 16, "max_time": 168 * 3600},
                           "large-mem": {"num_cores": 32, "max_time": 168 * 3600}}
    res = Resources(**resources)
    key, node_dict = res.find_nodes(parts)
    hms = time_to_HMS(res.max_time) if res.max_time is not None else None
    node_dict = dict(node_dict, partition=key, queue=key, id=job_id, max_time=hms, max_time_HMS=hms,
                     max_time_s=res.max_time)
    fields = dict(id=job_id, name="test_task", remote_dir=f"run_expyre/run_{job_id}", partition=key,
                  node_dict=node_dict, max_time=res.max_time, header_lines=list(header_lines),
                  no_default_header=no_default_header)
    fields.update(overrides)
    return JobSpec(**fields)


def render(job):
    return expyre_sge.render_header(scheduler="sge", job=job)


def without_id(lines, job_id):
    """Lines with the job id (which depends on the hash) replaced by ``<id>``."""
    return [line.replace(job_id, "<id>") for line in lines]


def test_seed_listing_line_by_line():
    assert ["#!/bin/bash -l", *render(job_spec())] == SEED_LISTING.splitlines()


def test_seed_example_through_core(expyre_config):
    """The seed's config and call, rendered by core with this plugin (as ``xpr.start`` does,
    without a host to submit to): the script's header is the seed's listing, the id aside."""
    from expyre.func import ExPyRe
    config = expyre_config({"remote": SEED_SYSTEM})
    xpr = ExPyRe("test_task", function=np.sum, args=[np.ones((100, 50))], kwargs={"axis": 1})
    system = config.systems["remote"]
    job = system.job_spec(xpr.id, xpr.name, xpr.stage_dir, Resources(**SEED_RESOURCES),
                          exact_fit=True, partial_node=False)
    script = xpr._render_script(system, job, None)
    lines = script.splitlines()[: len(SEED_LISTING.splitlines())]
    assert re.fullmatch(r"test_task_[A-Za-z0-9_=-]{44}_[a-z0-9_]+", xpr.id)
    assert without_id(lines, xpr.id) == without_id(SEED_LISTING.splitlines(), SEED_ID)
    assert lines[2] == f"#$ -N N_{xpr.id}"
    # after the header: core's EXPYRE_NUM_* exports, then this plugin's lines from NSLOTS/NHOSTS
    assert "export EXPYRE_NUM_CORES_PER_NODE=16" in script
    assert all(line in script for line in header.JOB_ENVIRONMENT)


def test_large_mem_partition_and_header_extra():
    job = job_spec(resources={"max_time": "2h", "num_cores": 32, "partitions": "large-mem"},
                   header_lines=["#$ -pe smp {num_cores_per_node}", "#$ -l h_vmem=6G", "#$ -P proj_{partition}"])
    assert render(job) == [
        "#$ -pe smp 32", "#$ -l h_vmem=6G", "#$ -P proj_large-mem",
        f"#$ -N N_{SEED_ID}", "#$ -q large-mem", "#$ -l h_rt=2:00:00",
        f"#$ -o job.{SEED_ID}.stdout", f"#$ -e job.{SEED_ID}.stderr", "#$ -S /bin/bash", "#$ -r n", "#$ -cwd"]


def test_no_default_header():
    job = job_spec(no_default_header=True, header_lines=["#$ -pe smp {num_cores_per_node}", "#$ -N mine_{id}"])
    assert render(job) == ["#$ -pe smp 16", f"#$ -N mine_{SEED_ID}"]
    assert render(job_spec(no_default_header=True, header_lines=[])) == []


def test_configured_lines_replace_the_defaults_they_repeat():
    job = job_spec(header_lines=["#$ -q fast,slow", "#$ -l h_vmem=2G,h_rt=0:30:00", "#$ -j y", "#$ -wd /scratch"])
    lines = render(job)
    assert lines[:4] == ["#$ -q fast,slow", "#$ -l h_vmem=2G,h_rt=0:30:00", "#$ -j y", "#$ -wd /scratch"]
    assert lines[4:] == [f"#$ -N N_{SEED_ID}", f"#$ -o job.{SEED_ID}.stdout", "#$ -S /bin/bash", "#$ -r n"]
    # a -l without h_rt keeps the default wall time; lines that are not directives change nothing
    lines = render(job_spec(header_lines=["#$ -l h_vmem=2G", "# -q not a directive", "#SBATCH -o x"]))
    assert "#$ -l h_rt=1:00:00" in lines and "#$ -q regular" in lines and f"#$ -o job.{SEED_ID}.stdout" in lines


def test_no_wall_time_and_no_partition():
    job = job_spec()
    job.max_time = None
    job.node_dict.update(max_time=None, max_time_HMS=None, max_time_s=None)
    lines = render(job)
    assert not any("h_rt" in line for line in lines)
    job.node_dict["partition"] = None
    job.partition = None
    assert not any(line.startswith("#$ -q") for line in render(job))


def test_template_errors_name_the_line():
    with pytest.raises(HeaderTemplateError, match="num_gpus"):
        render(job_spec(header_lines=["#$ -l gpu={num_gpus}"]))


def test_directive_options():
    opts = header.directive_options(['#$ -l h_rt=1:00:00,h_vmem=4G -pe smp 4', '#$ -o "a b.out"', "#$ -cwd",
                                     "#SBATCH --time=1"])
    assert {"-l", "-l h_rt", "-l h_vmem", "-pe", "-o", "-cwd"} <= opts
    assert not any(o.startswith("--") for o in opts)


# --------------------------------------------------------------------------- names

GRID_ENGINE_REFUSES = re.compile(r"^[0-9]|[\s/\\:@*?]|[^\x21-\x7e]")


def acceptable(name):
    """What Son of Grid Engine 8.1.9 accepts as ``-N`` (see expyre_sge.names)."""
    return 0 < len(name) <= 512 and not GRID_ENGINE_REFUSES.search(name)


def test_seed_name_is_kept_exactly():
    assert names.job_name(SEED_ID) == f"N_{SEED_ID}"
    assert names.stdout_file(SEED_ID) == f"job.{SEED_ID}.stdout"


@pytest.mark.parametrize("job_id", [
    "1job_abc=_x1", "9", "my job_abc=_x1", "a:b_abc_x", "a@b*c?d_abc_x", "back\\slash_h_u", "tab\there_h_u",
    "résumé_h_u", "日本語_h_u", "comma,dollar$_h_u", "quote\"'_h_u", "x" * 600, "_leading_underscore",
    "semi;pipe|amp&lt<gt>_h_u"])
def test_names_are_acceptable(job_id):
    name = names.job_name(job_id)
    assert acceptable(name), name
    assert name.startswith("N_") and len(name) <= names.MAX_NAME_LENGTH
    assert names.job_name(job_id) == name  # stable
    for path in (names.stdout_file(job_id), names.stderr_file(job_id)):
        assert names.is_safe(path) and path.startswith("job.")
    assert names.stdout_file(job_id).endswith(".stdout") and names.stderr_file(job_id).endswith(".stderr")


@pytest.mark.parametrize("a,b", [
    ("my job_h_u", "my:job_h_u"), ("my job_h_u", "my_job_h_u"), ("a b_h_u", "a\tb_h_u"), ("é_h_u", "è_h_u"),
    ("x" * 300 + "1", "x" * 300 + "2"), ("1a_h_u", "2a_h_u")])
def test_different_ids_never_share_a_name_or_a_file(a, b):
    assert names.job_name(a) != names.job_name(b)
    assert names.stdout_file(a) != names.stdout_file(b)
    assert names.stderr_file(a) != names.stderr_file(b)


def test_unsafe_id_in_the_header():
    job_id = "my job: 1_abc=_u1"
    lines = render(job_spec(job_id=job_id))
    name_line = next(line for line in lines if line.startswith("#$ -N "))
    assert name_line == f"#$ -N {names.job_name(job_id)}" and name_line.startswith("#$ -N N_my_job__1_abc=_u1_")
    out = next(line for line in lines if line.startswith("#$ -o "))
    assert out == f"#$ -o {names.stdout_file(job_id)}" and " " not in out[len("#$ -o "):]


# --------------------------------------------------------------------------- inside the job

def run_job_lines(env, tmp_path):
    """Run core's exports followed by the plugin's job_environment lines in bash; return the
    EXPYRE_NUM_* values and the exit status the job wrote."""
    lines = ["export EXPYRE_NUM_NODES=1 EXPYRE_NUM_CORES=16 EXPYRE_NUM_CORES_PER_NODE=16",
             *expyre_sge.job_environment("sge", job_spec()),
             'echo "$EXPYRE_NUM_NODES $EXPYRE_NUM_CORES $EXPYRE_NUM_CORES_PER_NODE"', "exit 3"]
    clean = {k: v for k, v in os.environ.items() if k not in ("NSLOTS", "NHOSTS")}
    result = subprocess.run(["bash", "-c", "\n".join(lines)], env={**clean, **env}, cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode == 3, result.stderr
    return result.stdout.split(), (tmp_path / header.EXIT_FILE).read_text().strip()


@pytest.mark.parametrize("env,expected", [
    ({}, ["1", "16", "16"]),
    ({"NSLOTS": "4", "NHOSTS": "1"}, ["1", "4", "4"]),
    ({"NSLOTS": "8", "NHOSTS": "2"}, ["2", "8", "4"]),
    ({"NSLOTS": "2"}, ["1", "2", "2"]),
    ({"NSLOTS": "", "NHOSTS": "2"}, ["1", "16", "16"]),
    ({"NSLOTS": "x", "NHOSTS": "1"}, ["1", "16", "16"]),
    ({"NSLOTS": "4", "NHOSTS": "0"}, ["1", "16", "16"]),
])
def test_num_variables_from_nslots(env, expected, tmp_path):
    values, exit_status = run_job_lines(env, tmp_path)
    assert values == expected
    assert exit_status == "3"


def test_header_through_core_on_an_expyre_testing_system(expyre_local_system):
    """Core renders this plugin's header for a system that ``expyre.testing``'s fixture wrote
    (the pytest plugin expyre-core installs, with which a site tests its own plugin the same way)."""
    from expyre.func import ExPyRe
    from expyre.resources import Resources as _Resources
    line = "#$ -pe smp {num_cores_per_node}"
    config = expyre_local_system("sge_here", scheduler="sge", header=[line])
    system = config.systems["sge_here"]
    assert system.scheduler == "sge"
    assert config.local_stage_dir.resolve() == expyre_local_system.root.resolve()
    xpr = ExPyRe("test_task", function=sum, args=[[1, 2, 3]])
    job = system.job_spec(xpr.id, xpr.name, xpr.stage_dir, _Resources(max_time="1h", num_nodes=1, partitions="regular"),
                          exact_fit=True, partial_node=False)
    script = xpr._render_script(system, job, None)
    assert "#$ -pe smp 2" in script.splitlines()
    assert any(line.startswith("#$ -N N_") for line in script.splitlines())
