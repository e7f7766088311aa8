"""expyre.config: finding, merging and validating real config files written in temporary dirs.

The autouse ``isolated_home`` fixture (tests/conftest.py) gives every test a fresh HOME and the
working directory HOME/work, with no EXPYRE_* variables.
"""
import dataclasses
import json
import os
import socket
import stat
from pathlib import Path

import pytest

from expyre import config, plugins
from expyre.config import ConfigError
from expyre.resources import Resources

SCHEDULERS = ["direct", "sge", "slurm"]
TRANSPORTS = ["local", "openssh", "ssh"]


@pytest.fixture(autouse=True)
def fake_environment(monkeypatch):
    """Plugin names as if expyre-sge, expyre-slurm and the ssh transports were installed (config
    validation only checks names), and no configuration loaded before or after the test."""
    monkeypatch.setattr(plugins, "scheduler_names", lambda: list(SCHEDULERS))
    monkeypatch.setattr(plugins, "transport_names", lambda: list(TRANSPORTS))
    config._forget()
    yield
    config._forget()


REMOTE = {
    "host": "my-cluster",
    "scheduler": "sge",
    "header": ["#$ -pe smp {num_cores_per_node}"],
    "partitions": {
        "regular": {"num_cores": 16, "max_time": "168h", "max_mem": "50GB"},
        "large-mem": {"num_cores": 32, "max_time": "168h", "max_mem": "200GB"},
    },
}


def write_json(directory, data):
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(data))
    return directory / "config.json"


def write_toml(directory, text):
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.toml").write_text(text)
    return directory / "config.toml"


def home_config(home, data):
    return write_json(home / ".expyre", data)


def config_error(**kwargs):
    with pytest.raises(ConfigError) as info:
        config.init(**kwargs)
    return str(info.value)


# =========================================================================== defaults and laziness


def test_default_local_system_without_any_config(isolated_home):
    config.init()
    assert list(config.systems) == ["local"]
    local = config.systems["local"]
    assert local.scheduler == "direct"
    assert local.host is None
    assert local.transport == "local"
    regular = local.partitions["regular"]
    assert regular["num_cores"] == os.cpu_count()
    assert regular["max_time"] is None
    assert regular["max_mem"] > 1024  # physical memory in kB
    assert regular["partition"] == "regular"
    assert config.config_files == []
    assert config.local_stage_dir == isolated_home / ".expyre"
    assert config.db.db_filename == isolated_home / ".expyre" / "jobs.db"


def test_default_system_runs_the_seed_example_resources():
    config.init()
    res = Resources(max_time="1h", num_nodes=1, partitions="regular")
    partition, node_dict = res.find_nodes(config.systems["local"].partitions)
    assert partition == "regular"
    assert node_dict["num_nodes"] == 1


def test_stage_dir_created_private(isolated_home):
    config.init()
    stage = isolated_home / ".expyre"
    assert stage.is_dir()
    assert stat.S_IMODE(stage.stat().st_mode) & 0o077 == 0


def test_nothing_read_at_import_and_first_use_reads(isolated_home):
    home_config(isolated_home, {"systems": {"remote": REMOTE}})
    assert "systems" not in vars(config)
    assert list(config.systems) == ["remote", "local"]  # the built-in local stays
    # init made them real module globals
    assert "systems" in vars(config) and "db" in vars(config)
    assert config.config_files == [isolated_home / ".expyre" / "config.json"]


@pytest.mark.parametrize("name", ["systems", "db", "local_stage_dir", "config_files"])
def test_each_lazy_attribute_triggers_init(isolated_home, name):
    (isolated_home / ".expyre").mkdir()
    (isolated_home / ".expyre" / "config.json").write_text("{ not json")
    with pytest.raises(ConfigError):
        getattr(config, name)


def test_unknown_attribute_is_attribute_error():
    with pytest.raises(AttributeError):
        config.no_such_thing  # noqa: B018


def test_init_again_rereads(isolated_home):
    config.init()
    assert list(config.systems) == ["local"]
    home_config(isolated_home, {"systems": {"remote": REMOTE}})
    config.init()
    assert list(config.systems) == ["remote", "local"]


# =========================================================================== discovery and merging


@pytest.fixture
def three_levels(isolated_home, tmp_path, monkeypatch):
    """~/.expyre, ~/work/proj/_expyre and ~/work/proj/sub/.expyre, cwd ~/work/proj/sub/deeper."""
    home_file = home_config(isolated_home, {"systems": {"remote": REMOTE, "other": REMOTE}})
    proj = isolated_home / "work" / "proj"
    proj_file = write_json(proj / "_expyre", {"systems": {"remote": {
        "partitions": {"regular": {"max_time": "24h"}},
        "commands": ["module load python"]}}})
    sub = proj / "sub"
    sub_file = write_json(sub / ".expyre", {"systems": {"remote": {"host": "login2.my-cluster"}}})
    # above HOME: must not be read when cwd is below HOME
    write_json(tmp_path / ".expyre", {"systems": {"above_home": REMOTE}})
    (sub / "deeper").mkdir()
    monkeypatch.chdir(sub / "deeper")
    return home_file, proj_file, sub_file


def test_discovery_order_and_override(three_levels):
    home_file, proj_file, sub_file = three_levels
    config.init()
    assert config.config_files == [home_file, proj_file, sub_file]
    assert sorted(config.systems) == ["local", "other", "remote"]
    remote = config.systems["remote"]
    assert remote.host == "login2.my-cluster"
    assert remote.scheduler == "sge"
    assert remote.commands == ["module load python"]
    assert remote.partitions["regular"]["max_time"] == 24 * 3600
    assert remote.partitions["regular"]["max_mem"] == 50 * 1024 ** 2  # kept from home
    assert remote.partitions["regular"]["num_cores"] == 16
    assert list(remote.partitions) == ["regular", "large-mem"]
    assert config.systems["other"].partitions["regular"]["max_time"] == 168 * 3600
    assert config.local_stage_dir == sub_file.parent


def test_sources_name_the_file_that_set_each_key(three_levels):
    home_file, proj_file, sub_file = three_levels
    config.init()
    sources = config.systems["remote"].sources
    assert sources["host"] == str(sub_file)
    assert sources["scheduler"] == str(home_file)
    assert sources["partitions.regular.max_time"] == str(proj_file)
    assert sources["partitions.regular.max_mem"] == str(home_file)
    assert sources["commands"] == str(proj_file)


def test_cwd_outside_home_searches_from_root(three_levels, tmp_path, monkeypatch):
    outside = tmp_path / "outside"
    outside.mkdir()
    monkeypatch.chdir(outside)
    config.init()
    assert "above_home" in config.systems
    assert config.local_stage_dir == tmp_path / ".expyre"


def test_deepest_dir_is_stage_dir_even_without_a_file(isolated_home, monkeypatch):
    home_config(isolated_home, {"systems": {"remote": REMOTE}})
    (isolated_home / "work" / "proj" / "_expyre").mkdir(parents=True)
    monkeypatch.chdir(isolated_home / "work" / "proj")
    config.init()
    assert config.local_stage_dir == isolated_home / "work" / "proj" / "_expyre"
    assert config.db.db_filename == isolated_home / "work" / "proj" / "_expyre" / "jobs.db"
    assert "remote" in config.systems


def test_both_dot_and_underscore_dirs_is_an_error(isolated_home):
    (isolated_home / "work" / ".expyre").mkdir()
    (isolated_home / "work" / "_expyre").mkdir()
    message = config_error()
    assert str(isolated_home / "work") in message
    assert ".expyre" in message and "_expyre" in message


def test_both_json_and_toml_in_one_dir_is_an_error(isolated_home):
    home_config(isolated_home, {"systems": {}})
    write_toml(isolated_home / ".expyre", "")
    message = config_error()
    assert "~/.expyre" in message
    assert "config.json" in message and "config.toml" in message


def test_delete_keyword(isolated_home):
    home_config(isolated_home, {"systems": {"remote": REMOTE}})
    write_json(isolated_home / "work" / "_expyre", {"systems": {"remote": {
        "header": "_DELETE_",
        "partitions": {"large-mem": "_DELETE_"}}}})
    config.init()
    remote = config.systems["remote"]
    assert remote.header == []
    assert list(remote.partitions) == ["regular"]
    assert "header" not in remote.sources
    assert not any(key.startswith("partitions.large-mem") for key in remote.sources)


def test_delete_keyword_removes_a_system_in_toml(isolated_home):
    home_config(isolated_home, {"systems": {"remote": REMOTE, "other": REMOTE}})
    write_toml(isolated_home / "work" / "_expyre", '[systems]\nother = "_DELETE_"\n')
    config.init()
    assert list(config.systems) == ["remote", "local"]


def test_null_system_is_removed(isolated_home):
    home_config(isolated_home, {"systems": {"remote": REMOTE, "other": REMOTE}})
    write_json(isolated_home / "work" / "_expyre", {"systems": {"other": None}})
    config.init()
    assert list(config.systems) == ["remote", "local"]


def test_null_value_inside_a_system_is_kept(isolated_home):
    home_config(isolated_home, {"systems": {"remote": REMOTE}})
    write_json(isolated_home / "work" / "_expyre", {"systems": {"remote": {"host": None}}})
    config.init()
    assert config.systems["remote"].host is None


def test_new_system_in_project(isolated_home):
    home_config(isolated_home, {"systems": {"remote": REMOTE}})
    write_json(isolated_home / "work" / "_expyre", {"systems": {"mine": {
        "scheduler": "slurm", "host": "h", "queues": {"q": {"num_cores": 4}}}}})
    config.init()
    assert sorted(config.systems) == ["local", "mine", "remote"]
    assert config.systems["mine"].partitions["q"]["num_cores"] == 4


# =========================================================================== EXPYRE_ROOT and init(root_dir)


def test_expyre_root_reads_only_that_dir(isolated_home, tmp_path, monkeypatch):
    home_config(isolated_home, {"systems": {"home_sys": REMOTE}})
    root = tmp_path / "root"
    root_file = write_json(root, {"systems": {"root_sys": REMOTE}})
    monkeypatch.setenv("EXPYRE_ROOT", str(root))
    config.init()
    assert list(config.systems) == ["root_sys", "local"]
    assert config.config_files == [root_file]
    assert config.local_stage_dir == root


def test_expyre_root_at_sign_searches(isolated_home, monkeypatch):
    home_config(isolated_home, {"systems": {"home_sys": REMOTE}})
    monkeypatch.setenv("EXPYRE_ROOT", "@")
    config.init()
    assert list(config.systems) == ["home_sys", "local"]


def test_expyre_root_not_a_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPYRE_ROOT", str(tmp_path / "missing"))
    message = config_error()
    assert str(tmp_path / "missing") in message
    assert "not a directory" in message


def test_init_root_dir_argument_wins_over_env(isolated_home, tmp_path, monkeypatch):
    write_json(tmp_path / "env_root", {"systems": {"env_sys": REMOTE}})
    write_json(tmp_path / "arg_root", {"systems": {"arg_sys": REMOTE}})
    monkeypatch.setenv("EXPYRE_ROOT", str(tmp_path / "env_root"))
    config.init(str(tmp_path / "arg_root"))
    assert list(config.systems) == ["arg_sys", "local"]
    config.init("@")
    assert list(config.systems) == ["local"]


def test_root_without_config_gets_default_system_and_stages_there(tmp_path):
    (tmp_path / "empty_root").mkdir()
    config.init(tmp_path / "empty_root")
    assert list(config.systems) == ["local"]
    assert config.local_stage_dir == tmp_path / "empty_root"


# =========================================================================== local_stage_dir and rundir_extra


def test_relative_local_stage_dir_is_relative_to_its_file(isolated_home):
    home_config(isolated_home, {"systems": {"remote": REMOTE}})
    write_json(isolated_home / "work" / "_expyre", {"local_stage_dir": "../stage"})
    config.init()
    stage = isolated_home / "work" / "stage"
    assert config.local_stage_dir == stage
    assert stage.is_dir()
    assert config.db.db_filename == stage / "jobs.db"
    assert config.systems["remote"].rundir_extra.endswith("-" + str(stage).replace("/", "_"))


def test_absolute_local_stage_dir(isolated_home, tmp_path):
    home_config(isolated_home, {"systems": {"remote": REMOTE}, "local_stage_dir": str(tmp_path / "st")})
    config.init()
    assert config.local_stage_dir == tmp_path / "st"
    assert (tmp_path / "st").is_dir()


def test_rundir_extra_uses_project_dir_and_hostname(isolated_home):
    home_config(isolated_home, {"systems": {"remote": REMOTE}})
    (isolated_home / "work" / "_expyre").mkdir()
    config.init()
    project = str(isolated_home / "work").replace("/", "_")
    remote = config.systems["remote"]
    assert remote.rundir_extra == f"{socket.gethostname()}-{project}"
    assert remote.remote_rundir == f"run_expyre/{socket.gethostname()}-{project}"


def test_remote_rundir_submit_hostname(isolated_home):
    home_config(isolated_home, {"systems": {"remote": REMOTE},
                                "remote_rundir_submit_hostname": "login-any"})
    config.init()
    project = str(isolated_home).replace("/", "_")
    assert config.systems["remote"].rundir_extra == f"login-any-{project}"


# =========================================================================== JSON and TOML


TOML_TEXT = """
[systems.remote]
host = "my-cluster"
scheduler = "sge"
header = ["#$ -pe smp {num_cores_per_node}"]

[systems.remote.partitions.regular]
num_cores = 16
max_time = "168h"
max_mem = "50GB"

[systems.remote.partitions.large-mem]
num_cores = 32
max_time = "168h"
max_mem = "200GB"
"""


def test_json_and_toml_give_identical_systems(tmp_path):
    write_json(tmp_path / "j" / ".expyre", {"systems": {"remote": REMOTE}})
    write_toml(tmp_path / "t" / ".expyre", TOML_TEXT)
    config.init(tmp_path / "j" / ".expyre")
    from_json = config.systems
    config.init(tmp_path / "t" / ".expyre")
    from_toml = config.systems
    assert list(from_json) == list(from_toml) == ["remote", "local"]

    def fields(system):
        data = dataclasses.asdict(system)
        data.pop("sources")
        data.pop("rundir_extra")  # differs by stage dir only
        return data

    assert fields(from_json["remote"]) == fields(from_toml["remote"])
    assert from_toml["remote"].partitions["large-mem"]["max_mem"] == 200 * 1024 ** 2
    assert set(from_json["remote"].sources) == set(from_toml["remote"].sources)


def test_toml_none_word_for_no_limit(isolated_home):
    write_toml(isolated_home / ".expyre", """
[systems.remote]
scheduler = "slurm"
host = "h"
[systems.remote.partitions.long]
num_cores = 8
max_time = "_none_"
max_mem = "_none_"
""")
    config.init()
    long = config.systems["remote"].partitions["long"]
    assert long["max_time"] is None and long["max_mem"] is None


def test_malformed_json_names_file_line_and_column(isolated_home):
    (isolated_home / ".expyre").mkdir()
    # the seed example's stray quotes and trailing comma
    (isolated_home / ".expyre" / "config.json").write_text(
        '{ "systems": {\n  "remote": { "host": \'my-cluster\',\n }}}\n')
    message = config_error()
    assert "~/.expyre/config.json" in message
    assert "line 2" in message
    assert "column 23" in message  # the stray quote


def test_malformed_toml_names_file_and_line(isolated_home):
    write_toml(isolated_home / ".expyre", '[systems.remote]\nhost = "x"\nscheduler = \n')
    message = config_error()
    assert "~/.expyre/config.toml" in message
    assert "line 3" in message


def test_top_level_not_an_object(isolated_home):
    (isolated_home / ".expyre").mkdir()
    (isolated_home / ".expyre" / "config.json").write_text("[1, 2]")
    assert "~/.expyre/config.json" in config_error()


# =========================================================================== system fields


def test_system_fields_are_typed(isolated_home):
    home_config(isolated_home, {"systems": {"remote": {
        "host": "user@my-cluster", "scheduler": "slurm", "transport": "ssh",
        "commands": ["module purge"], "rundir": "/scratch/me/runs/", "remsh_cmd": None,
        "no_default_header": True, "script_exec": "/bin/zsh", "ssh": {"port": 2222},
        "queues": {"std": {"num_cores": 40, "max_time": "2-00:00:00", "max_mem": "180GB",
                           "header": ["#SBATCH --exclusive"], "partition": "standard"}}}}})
    config.init()
    remote = config.systems["remote"]
    assert remote.host == "user@my-cluster"
    assert remote.scheduler == "slurm"
    assert remote.transport == "ssh"
    assert remote.commands == ["module purge"]
    assert remote.rundir == "/scratch/me/runs"
    assert remote.no_default_header is True
    assert remote.script_exec == "/bin/zsh"
    assert remote.options == {"port": 2222}
    assert remote.header == []
    assert remote.partitions == {"std": {"num_cores": 40, "max_time": 2 * 86400, "max_mem": 180 * 1024 ** 2,
                                         "header": ["#SBATCH --exclusive"], "partition": "standard"}}
    assert remote.sources["queues.std.max_time"] == str(isolated_home / ".expyre" / "config.json")


def test_partition_defaults(isolated_home):
    home_config(isolated_home, {"systems": {"remote": {
        "host": "h", "scheduler": "sge", "partitions": {"all.q": {"num_cores": 8}}}}})
    config.init()
    assert config.systems["remote"].partitions["all.q"] == {
        "num_cores": 8, "max_time": None, "max_mem": None, "header": [], "partition": "all.q"}


def test_describe_systems(three_levels):
    home_file, proj_file, sub_file = three_levels
    described = {d["name"]: d for d in config.describe_systems()}
    remote = described["remote"]
    assert remote["host"] == "login2.my-cluster"
    assert remote["scheduler"] == "sge"
    assert remote["transport"] == "ssh"
    assert remote["partitions"]["regular"]["max_time"] == 24 * 3600
    assert remote["files"] == [str(home_file), str(proj_file), str(sub_file)]
    assert described["other"]["files"] == [str(home_file)]


def test_describe_default_system():
    (described,) = config.describe_systems()
    assert described["name"] == "local"
    assert described["scheduler"] == "direct"
    assert described["files"] == []


def test_verbose_reports_on_stderr(isolated_home, capsys):
    home_config(isolated_home, {"systems": {"remote": REMOTE}})
    config.init(verbose=True)
    err = capsys.readouterr().err
    assert str(isolated_home / ".expyre" / "config.json") in err
    assert "remote" in err


def test_unknown_top_level_key_warns(isolated_home):
    home_config(isolated_home, {"systems": {"remote": REMOTE}, "sytems": {}})
    with pytest.warns(UserWarning, match="sytems"):
        config.init()


# =========================================================================== validation


def with_change(change):
    """REMOTE deep-copied, with ``change(system)`` applied."""
    system = json.loads(json.dumps(REMOTE))
    change(system)
    return system


def set_key(*path_and_value):
    *path, value = path_and_value

    def change(system):
        table = system
        for key in path[:-1]:
            table = table[key]
        table[path[-1]] = value
    return change


def del_key(*path):
    def change(system):
        table = system
        for key in path[:-1]:
            table = table[key]
        del table[path[-1]]
    return change


INVALID = [
    # (change, key, value shown, more text the message must contain)
    (set_key("partitions", "regular", "max_time", "1 fortnight"),
     "partitions.regular.max_time", "'1 fortnight'", "cannot parse time"),
    (set_key("partitions", "regular", "max_time", -5), "partitions.regular.max_time", "-5", "positive"),
    (set_key("partitions", "large-mem", "max_mem", "200 gigs"),
     "partitions.large-mem.max_mem", "'200 gigs'", "cannot parse memory"),
    (set_key("partitions", "regular", "num_cores", "16"), "partitions.regular.num_cores", "'16'", "positive"),
    (set_key("partitions", "regular", "num_cores", 0), "partitions.regular.num_cores", "0", "positive"),
    (del_key("partitions", "regular", "num_cores"), "partitions.regular.num_cores", "", "missing"),
    (set_key("partitions", "regular", "header", "#$ -l gpu"),
     "partitions.regular.header", "'#$ -l gpu'", "list of strings"),
    (set_key("partitions", "regular", "partition", 7), "partitions.regular.partition", "7", "string"),
    (set_key("partitions", "regular", "max_tme", "1h"), "partitions.regular.max_tme", "'1h'", "max_time"),
    (set_key("partitions", "regular", 16), "partitions.regular", "16", "num_cores"),
    (set_key("partitions", {}), "partitions", "{}", "non-empty"),
    (set_key("partitions", ["regular"]), "partitions", "['regular']", "table"),
    (set_key("queues", {"q": {"num_cores": 1}}), "queues", "", "only one of 'partitions' and 'queues'"),
    (del_key("partitions"), "partitions", "", "missing"),
    (set_key("scheduler", "slrum"), "scheduler", "'slrum'", "installed schedulers: direct, sge, slurm"),
    (del_key("scheduler"), "scheduler", "", "direct, sge, slurm"),
    (set_key("scheduler", 3), "scheduler", "3", "string"),
    (set_key("transport", "telnet"), "transport", "'telnet'", "installed transports: local, openssh, ssh"),
    (set_key("host", 42), "host", "42", "string"),
    (set_key("header", "#$ -pe smp 16"), "header", "'#$ -pe smp 16'", "list of strings"),
    (set_key("commands", ["module load x", 5]), "commands", "['module load x', 5]", "list of strings"),
    (set_key("rundir", ["runs"]), "rundir", "['runs']", "string"),
    (set_key("remsh_cmd", 1), "remsh_cmd", "1", "string"),
    (set_key("no_default_header", "yes"), "no_default_header", "'yes'", "true or false"),
    (set_key("script_exec", ""), "script_exec", "''", "string"),
    (set_key("ssh", "port 22"), "ssh", "'port 22'", "table"),
    (set_key("hostname", "my-cluster"), "hostname", "'my-cluster'", "allowed keys: host, scheduler"),
]


@pytest.mark.parametrize("change, key, value, text", INVALID, ids=[row[1] + "-" + row[3] for row in INVALID])
def test_invalid_value_message(isolated_home, change, key, value, text):
    home_config(isolated_home, {"systems": {"remote": with_change(change)}})
    message = config_error()
    line = next(line for line in message.splitlines() if "system 'remote'" in line)
    assert line.startswith(f"~/.expyre/config.json: system 'remote': {key}: ")
    assert value in line
    assert text in line
    assert "remote" not in config.__dict__.get("systems", {})


def test_unknown_key_lists_allowed_keys(isolated_home):
    home_config(isolated_home, {"systems": {"remote": with_change(set_key("hosts", "x"))}})
    message = config_error()
    for allowed in config.SYSTEM_KEYS:
        assert allowed in message


def test_seed_message_example(isolated_home):
    home_config(isolated_home, {"systems": {"remote": with_change(
        set_key("partitions", "regular", "max_time", "1 fortnight"))}})
    assert ("~/.expyre/config.json: system 'remote': partitions.regular.max_time: "
            "cannot parse time '1 fortnight'") in config_error()


def test_system_not_a_table(isolated_home):
    home_config(isolated_home, {"systems": {"remote": "my-cluster"}})
    assert "~/.expyre/config.json: system 'remote': must be a table of settings, got 'my-cluster'" in (
        config_error())


def test_systems_not_a_table(isolated_home):
    home_config(isolated_home, {"systems": ["remote"]})
    assert "~/.expyre/config.json: systems: must be a table of systems, got ['remote']" in config_error()


def test_bad_local_stage_dir(isolated_home):
    home_config(isolated_home, {"systems": {"remote": REMOTE}, "local_stage_dir": 5})
    assert "~/.expyre/config.json: local_stage_dir: must be a path string, got 5" in config_error()


def test_bad_remote_rundir_submit_hostname(isolated_home):
    home_config(isolated_home, {"systems": {"remote": REMOTE}, "remote_rundir_submit_hostname": ["a"]})
    assert ("~/.expyre/config.json: remote_rundir_submit_hostname: must be a non-empty string, "
            "got ['a']") in config_error()


def test_all_problems_reported_once_each_naming_the_right_file(isolated_home):
    home_config(isolated_home, {"systems": {"remote": with_change(set_key("scheduler", "slrum")),
                                            "other": REMOTE}})
    write_json(isolated_home / "work" / "_expyre", {"systems": {
        "other": {"partitions": {"regular": {"max_mem": "lots"}}},
        "remote": {"host": 42}}})
    message = config_error()
    lines = message.splitlines()[1:]
    assert len(lines) == 3
    assert "~/.expyre/config.json: system 'remote': scheduler: unknown scheduler 'slrum'" in message
    project = "~/work/_expyre/config.json"
    assert f"{project}: system 'remote': host: must be a non-empty string or null, got 42" in message
    assert f"{project}: system 'other': partitions.regular.max_mem: cannot parse memory 'lots'" in message


def test_missing_key_names_the_file_that_defined_the_system(isolated_home):
    home_config(isolated_home, {"systems": {"remote": REMOTE}})
    write_json(isolated_home / "work" / "_expyre",
               {"systems": {"mine": {"partitions": {"p": {"num_cores": 2}}}}})
    message = config_error()
    assert "~/work/_expyre/config.json: system 'mine': scheduler: missing" in message


def test_config_error_is_value_error():
    assert issubclass(ConfigError, ValueError)
