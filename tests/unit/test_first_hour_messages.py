"""What a newcomer sees in the first hour (issue 12), as far as it shows without services: errors in
the user's own terms, the waiting line's width, remote tracebacks and headers rendered for the
docs' own example configs."""
import importlib
import json
import re
import sys
import traceback
import warnings
from pathlib import Path

import cloudpickle
import paramiko
import pytest

from expyre import config as expyre_config_module
from expyre import progress, results
from expyre.resources import NoMatchingPartitionError, Resources
from expyre.transports import sshconfig

DOCS = Path(__file__).resolve().parents[2] / "docs"
TWO_CORES = {"standard": {"num_cores": 2, "max_time": 3600, "max_mem": 2_000_000},
             "short": {"num_cores": 2, "max_time": 600, "max_mem": None}}


# ---------------------------------------------------------------- item 4: resources


def test_one_core_on_two_core_nodes_says_partial_node():
    with pytest.raises(NoMatchingPartitionError) as info:
        Resources(max_time="5m", num_cores=1).find_nodes(TWO_CORES)
    message = str(info.value)
    assert "partial_node=True" in message
    assert "Resources(" not in message
    assert "{max_time='5m', num_cores=1}" in message  # the request as the user wrote it
    # one reason per partition, each on its own line
    assert [line.split(":")[0].strip() for line in message.splitlines()[1:]] == ["standard", "short"]


def test_many_cores_not_filling_nodes_says_exact_fit():
    with pytest.raises(NoMatchingPartitionError, match="multiple of 2 cores, or pass exact_fit=False"):
        Resources(max_time="5m", num_cores=3).find_nodes(TWO_CORES)


def test_misspelled_resources_key_names_the_allowed_keys():
    with pytest.raises(TypeError) as info:  # TypeError as before, and now also a ValueError
        Resources(**{"max_time": "1h", "ncores": 2})
    message = str(info.value)
    assert "'ncores' (did you mean 'num_cores'?)" in message
    assert "allowed keys: max_time, num_nodes, num_cores, max_mem_tot, max_mem_per_core, partitions, queues" in message
    assert isinstance(info.value, ValueError)


def test_memory_per_node_is_the_request_else_the_partition_share():
    partition = {"num_cores": 16, "max_mem": 50_000_000}
    whole = Resources(max_time="1h", num_nodes=2)
    assert whole.mem_per_node_kB(partition, {"num_nodes": 2, "num_cores_per_node": 16}) == 50_000_000
    part = Resources(max_time="1h", num_cores=4)
    assert part.mem_per_node_kB(partition, {"num_nodes": 1, "num_cores_per_node": 4}) == 12_500_000
    asked = Resources(max_time="1h", num_nodes=2, max_mem_tot="10GB")
    assert asked.mem_per_node_kB(partition, {"num_nodes": 2, "num_cores_per_node": 16}) == 5 * 1024 ** 2
    assert whole.mem_per_node_kB({"num_cores": 16, "max_mem": None}, {"num_nodes": 2, "num_cores_per_node": 16}) is None


# ---------------------------------------------------------------- item 5: the waiting line


@pytest.mark.parametrize("width", [60, 79, 120])
def test_status_line_fits_and_keeps_the_unique_end(width):
    job_id = "a_rather_long_job_name_" + "x" * 44 + "_q1w2e3r4"
    line = progress.fit_status_line(job_id, "queued", "12m05s", width)
    assert len(line) <= width
    assert line.endswith("queued, waited 12m05s")
    assert "_q1w2e3r4" in line and "a_rather" in line


def test_status_line_on_a_narrow_terminal_keeps_the_state():
    line = progress.fit_status_line("name_" + "x" * 60, "running", "3s", 30)
    assert line == "expyre: running, waited 3s"


# ---------------------------------------------------------------- item 6: Ctrl-C


def test_interrupt_message_is_one_line_with_the_cancel_command():
    error = progress.interrupted_error("job_abc", "cluster")
    text = str(error)
    assert isinstance(error, KeyboardInterrupt) and "\n" not in text
    assert "keeps running on system 'cluster'" in text and "re-attach" in text
    assert text.endswith("xpr cancel -i job_abc")


# ---------------------------------------------------------------- items 14-16: remote errors


def test_dynamic_code_frames_get_the_real_file(tmp_path, monkeypatch):
    """cloudpickle drops a by-value function's file name; it is put back from this process."""
    (tmp_path / "byvalue_helpers.py").write_text("def fails(x):\n    y = x * 2\n    raise ValueError(f'bad {y}')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("byvalue_helpers")
    cloudpickle.register_pickle_by_value(module)
    try:
        copy = cloudpickle.loads(cloudpickle.dumps(module.fails))
        try:
            copy(21)
        except ValueError:
            text = traceback.format_exc()
        assert 'File "<dynamic-code>", line 3, in fails' in text
        fixed = results.locate_dynamic_frames(text)
    finally:
        cloudpickle.unregister_pickle_by_value(module)
        sys.modules.pop("byvalue_helpers", None)
    assert "<dynamic-code>" not in fixed
    assert f'File "{tmp_path / "byvalue_helpers.py"}", line 3, in fails' in fixed
    assert "raise ValueError(f'bad {y}')" in fixed  # the source line, read here


def test_outputs_lists_only_what_exists(tmp_path):
    job_id = "j_1"
    assert "printed nothing" in results.describe_outputs(tmp_path, job_id)
    assert results.describe_outputs(tmp_path, job_id, say_if_none=False) == ""
    from expyre import jobfiles
    killed = "slurmstepd: error: *** JOB 7 CANCELLED DUE TO TIME LIMIT ***\n"
    (tmp_path / jobfiles.job_stderr(job_id)).write_text("".join(f"line {i}\n" for i in range(20)) + killed)
    (tmp_path / jobfiles.STDOUT).write_text("")
    text = results.describe_outputs(tmp_path, job_id)
    assert "None" not in text and "function stdout" not in text
    assert f"job stderr, {tmp_path / jobfiles.job_stderr(job_id)} (last 5 of 21 lines)" in text
    assert text.rstrip().endswith("CANCELLED DUE TO TIME LIMIT ***")


def test_missing_module_hint_names_both_remedies():
    hint = results.missing_module_hint("ModuleNotFoundError: No module named 'helpers'")
    assert "input_files=['helpers.py']" in hint
    assert "cloudpickle.register_pickle_by_value(helpers)" in hint
    assert results.missing_module_hint("ValueError: something else") == ""


# ---------------------------------------------------------------- item 11: ssh advice


def test_login_command_is_the_alias_or_a_real_ssh_command(isolated_home):
    ssh_config = paramiko.SSHConfig.from_text("Host cluster\n    HostName 127.0.0.1\n    Port 2222\n")
    assert sshconfig.resolve("cluster", ssh_config=ssh_config).login_command == "ssh cluster"
    plain = paramiko.SSHConfig.from_text("")
    assert sshconfig.resolve("login.example.org", {"port": 2222}, ssh_config=plain).login_command == \
        "ssh -p 2222 login.example.org"
    assert sshconfig.resolve("bob@host:2200", ssh_config=plain).login_command == "ssh -p 2200 bob@host"


# ---------------------------------------------------------------- items 13 and 19: config


def write_config(home: Path, systems: dict) -> None:
    (home / ".expyre").mkdir(exist_ok=True)
    (home / ".expyre" / "config.json").write_text(json.dumps({"systems": systems}))


CLUSTER = {"host": "cluster", "scheduler": "slurm", "partitions": {"standard": {"num_cores": 2}}}


def test_local_stays_after_a_config_file_is_added(isolated_home):
    write_config(isolated_home, {"cluster": CLUSTER})
    expyre_config_module.init()
    assert set(expyre_config_module.systems) == {"cluster", "local"}
    assert expyre_config_module.is_builtin(expyre_config_module.systems["local"])
    assert expyre_config_module.sole_system().name == "cluster"  # as before: the one configured system


def test_own_local_replaces_the_built_in(isolated_home):
    write_config(isolated_home, {"local": dict(CLUSTER, host=None, scheduler="direct")})
    expyre_config_module.init()
    assert list(expyre_config_module.systems) == ["local"]
    assert not expyre_config_module.is_builtin(expyre_config_module.systems["local"])


def test_system_name_typo_gets_did_you_mean(isolated_home):
    write_config(isolated_home, {"cluster": CLUSTER})
    expyre_config_module.init()
    from expyre.func import _system
    with pytest.raises(ValueError, match=r"system 'clustr' is not configured \(did you mean 'cluster'\?\)"):
        _system("clustr")


def test_config_key_typo_gets_did_you_mean(isolated_home):
    write_config(isolated_home, {"cluster": dict(CLUSTER, partitons={})})
    with pytest.raises(expyre_config_module.ConfigError) as info:
        expyre_config_module.init()
    assert "partitons: unknown key (value {}) (did you mean 'partitions'?)" in str(info.value)
    write_config(isolated_home, {"cluster": dict(CLUSTER, scheduler="slrum")})
    with pytest.raises(expyre_config_module.ConfigError, match=r"unknown scheduler 'slrum' \(did you mean 'slurm'\?\)"):
        expyre_config_module.init()


# ---------------------------------------------------------------- item 3: headers of the docs' configs


def _rendered_header(expyre_config, systems: dict, system_name: str, resources: dict, **start):
    from expyre import plugins
    from expyre.func import ExPyRe
    config = expyre_config(systems)
    xpr = ExPyRe("hdr", function=abs, args=[-1])
    system = config.systems[system_name]
    job = system.job_spec(xpr.id, xpr.name, xpr.stage_dir, Resources(**resources),
                          exact_fit=start.get("exact_fit", True), partial_node=start.get("partial_node", False))
    return plugins.render_header(system.scheduler, job)


def _slurm_readme_config() -> dict:
    text = (DOCS.parent / "packages" / "expyre-slurm" / "README.md").read_text()
    return json.loads(re.search(r"```json\n(.*?)```", text, re.S).group(1))["systems"]


def test_docs_slurm_system_gets_nodes_tasks_and_memory(expyre_config):
    """The docs' own example config (docs/examples/config/config.json, system 'kerberos'):
    no header lines of its own, so the defaults ask for what partition selection computed."""
    systems = json.loads((DOCS / "examples" / "config" / "config.json").read_text())["systems"]
    systems["remote"].pop("ssh")  # its proxy_jump needs no network here, but keep the test plain
    lines = _rendered_header(expyre_config, systems, "kerberos", {"max_time": "1h", "num_nodes": 2})
    assert "#SBATCH --nodes=2" in lines and "#SBATCH --ntasks-per-node=128" in lines
    assert not [line for line in lines if "--mem" in line]  # its partition states no max_mem


def test_slurm_readme_config_gets_no_duplicates(expyre_config):
    """The expyre-slurm README's config carries ExPyRe-style --nodes/--ntasks-per-node lines."""
    systems = _slurm_readme_config()
    lines = _rendered_header(expyre_config, systems, "remote", {"max_time": "1h", "num_nodes": 1,
                                                                  "partitions": "standard"})
    options = [line.split("=")[0] for line in lines]
    assert options.count("#SBATCH --nodes") == 1 and options.count("#SBATCH --ntasks-per-node") == 1
    assert "#SBATCH --mem=268435456K" in lines  # the partition's 256GB, for a whole node
    highmem = _rendered_header(expyre_config, systems, "remote", {"max_time": "1h", "num_nodes": 1,
                                                                   "partitions": "highmem"})
    assert [line for line in highmem if "--mem" in line] == ["#SBATCH --mem=1000G"]  # the partition's own


def test_docs_sge_quickstart_config_has_pe_and_no_warning(expyre_config):
    quickstart = (DOCS / "quickstart.rst").read_text()
    block = re.search(r"\.\. code-block:: json\n\n(.*?)\n\n``host``", quickstart, re.S).group(1)
    systems = json.loads(block)["systems"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lines = _rendered_header(expyre_config, systems, "remote", {"max_time": "1h", "num_nodes": 1,
                                                                      "partitions": "regular"})
    assert "#$ -pe smp 16" in lines


def test_sge_without_pe_warns_once_naming_the_key(expyre_config, monkeypatch):
    import expyre_sge.header
    monkeypatch.setattr(expyre_sge.header, "_warned_no_pe", False)
    systems = {"sge": {"host": None, "scheduler": "sge", "partitions": {"regular": {"num_cores": 4}}}}
    with pytest.warns(expyre_sge.header.NoParallelEnvironmentWarning) as record:
        _rendered_header(expyre_config, systems, "sge", {"max_time": "1h", "num_nodes": 1})
        _rendered_header(expyre_config, systems, "sge", {"max_time": "1h", "num_nodes": 1})
    assert len(record) == 1
    assert '"header": ["#$ -pe smp {num_cores}"]' in str(record[0].message)


def test_pbs_default_header_requests_nodes_and_memory(expyre_config):
    systems = {"pbs": {"host": None, "scheduler": "pbs",
                       "partitions": {"standard": {"num_cores": 2, "max_mem": "1GB"}}}}
    lines = _rendered_header(expyre_config, systems, "pbs", {"max_time": "1h", "num_nodes": 2})
    assert "#PBS -l nodes=2:ppn=2" in lines and "#PBS -l mem=2048mb" in lines
    for select in ("select={num_nodes}:ncpus={num_cores_per_node}:mem=1gb", "select={num_nodes}:ncpus=2"):
        systems["pbs"]["header"] = [f"#PBS -l {select}"]
        lines = _rendered_header(expyre_config, systems, "pbs", {"max_time": "1h", "num_nodes": 2})
        assert not [line for line in lines if "nodes=" in line or "-l mem" in line]
