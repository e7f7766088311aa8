"""How a system's host is resolved: ~/.ssh/config as OpenSSH reads it, then the system's own
``ssh`` settings; and the validation of those settings."""
import paramiko
import pytest

from expyre.transports import sshconfig

SSH_CONFIG = """
Host cluster
    HostName login.example.org
    User alice
    Port 2222
    IdentityFile ~/.ssh/id_cluster
    IdentitiesOnly yes
    ProxyJump gateway
    ServerAliveInterval 15

Host behind-proxy
    HostName 10.0.0.5
    ProxyCommand ssh -W %h:%p bastion

Host *
    StrictHostKeyChecking accept-new
"""


@pytest.fixture
def ssh_config():
    return paramiko.SSHConfig.from_text(SSH_CONFIG)


def test_ssh_config_keys(ssh_config, isolated_home):
    spec = sshconfig.resolve("cluster", ssh_config=ssh_config)
    assert (spec.hostname, spec.user, spec.port) == ("login.example.org", "alice", 2222)
    assert spec.key_files == [str(isolated_home / ".ssh" / "id_cluster")]
    assert spec.identities_only and spec.proxy_jump == "gateway" and spec.server_alive_interval == 15
    assert spec.accept_new_host_keys
    assert spec.destination == "alice@login.example.org:2222"


def test_destination_user_and_port_win_then_system_settings(ssh_config):
    spec = sshconfig.resolve("bob@cluster:2300", {"user": "carol", "port": 2400}, ssh_config=ssh_config)
    assert (spec.user, spec.port) == ("bob", 2300)
    spec = sshconfig.resolve("cluster", {"user": "carol", "port": 2400, "proxy_jump": "other",
                                         "strict_host_key_checking": "yes", "connect_timeout": 3},
                             ssh_config=ssh_config)
    assert (spec.user, spec.port, spec.proxy_jump, spec.accept_new_host_keys, spec.connect_timeout) == \
        ("carol", 2400, "other", False, 3.0)


def test_proxy_command_tokens_expanded(ssh_config):
    spec = sshconfig.resolve("behind-proxy", ssh_config=ssh_config)
    assert spec.proxy_command == "ssh -W 10.0.0.5:22 bastion"


def test_unlisted_host_uses_defaults():
    spec = sshconfig.resolve("plain.example.org", ssh_config=paramiko.SSHConfig())
    assert (spec.hostname, spec.port, spec.user, spec.proxy_jump) == ("plain.example.org", 22, None, None)
    assert not spec.accept_new_host_keys


def test_connections_are_shared_by_destination(ssh_config):
    a = sshconfig.resolve("cluster", ssh_config=ssh_config)
    b = sshconfig.resolve("alice@login.example.org:2222", {"proxy_jump": "gateway"}, ssh_config=ssh_config)
    assert a.key == b.key


@pytest.mark.parametrize("options, problem", [
    ({"prot": 22}, "unknown ssh setting"),
    ({"port": "22"}, "must be int"),
    ({"strict_host_key_checking": "no"}, "must be one of yes, accept-new"),
    ({"connect_timeout": True}, "must be int or float"),
])
def test_bad_ssh_settings(options, problem):
    problems = sshconfig.check_ssh_options(options)
    assert len(problems) == 1 and problem in problems[0][2]


def test_split_destination():
    assert sshconfig.split_destination("u@h:2") == ("u", "h", 2)
    assert sshconfig.split_destination("h") == (None, "h", None)
    assert sshconfig.split_destination("[::1]:22") == (None, "::1", 22)
