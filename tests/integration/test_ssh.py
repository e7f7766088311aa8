"""Jobs on a remote host through the ``ssh`` (paramiko) and ``openssh`` transports, against the
real OpenSSH server of tests/services/10-sshd.sh, with the ``direct`` scheduler running the jobs
as the account ``xpr-cluster``."""
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from workflows import check_restart

from expyre import ConnectionLostError
from expyre.func import ExPyRe
from expyre.transports import ssh as ssh_transport

pytestmark = pytest.mark.integration

SEED_RESOURCES = {"max_time": "1h", "num_nodes": 1, "partitions": "regular"}
FAST = {"check_interval": 0.2, "quiet": True}


def cluster_system(host="cluster", **overrides):
    system = {"host": host, "scheduler": "direct", "header": ["# cores {num_cores_per_node}"],
              "partitions": {"regular": {"num_cores": 2, "max_time": "168h", "max_mem": "4GB"},
                             "large-mem": {"num_cores": 4, "max_time": "168h", "max_mem": "16GB"}}}
    system.update(overrides)
    return system


@pytest.fixture(autouse=True)
def fresh_connections(monkeypatch):
    monkeypatch.setenv("EXPYRE_RETRY", "4 0.5")
    ssh_transport.close_all()
    yield
    ssh_transport.close_all()


@pytest.fixture
def remote(expyre_config, ssh_client_setup):
    return expyre_config({"remote": cluster_system(ssh_client_setup)})


def remote_listing(sshd, path="run_expyre"):
    result = sshd.run_as_user(f"cd ~/{path} && find . -name '_expyre_job_succeeded' -o -name '_expyre_task_in.pckl'")
    return sorted(result.stdout.split())


def run_seed_example(system_name="remote"):
    array_to_sum = np.ones((100, 50))
    xpr = ExPyRe("test_task", function=np.sum, args=[array_to_sum], kwargs={"axis": 1})
    res = {"max_time": "1h", "num_nodes": 1, "partitions": "regular"}
    xpr.start(resources=res, system_name=system_name)
    array_sum, stdout, stderr = xpr.get_results(**FAST)
    assert np.max(np.abs(array_sum - [50.0] * 100)) == 0.0
    xpr.mark_processed()
    return xpr


def test_seed_example_over_ssh(remote, sshd):
    opened = ssh_transport.connections_opened
    xpr = run_seed_example()
    row = remote.db.get(xpr.id)
    assert row["remote_dir"].startswith("run_expyre/")
    on_host = sshd.run_as_user(f"ls -A ~/{row['remote_dir']}").stdout.split()
    assert "_expyre_job_succeeded" in on_host and "_expyre_task_in.pckl" in on_host
    # the job ran as the remote account, in its own run directory, and its results came back
    owner = sshd.run_as_user(f"stat -c %U ~/{row['remote_dir']}/_expyre_job_succeeded").stdout.strip()
    assert owner == "xpr-cluster"
    assert (xpr.stage_dir / "_expyre_job_succeeded").is_file()
    assert ssh_transport.connections_opened - opened == 1


def test_many_jobs_share_one_connection_and_poll(remote, monkeypatch):
    from expyre import plugins
    calls = []
    real_status = plugins.status
    monkeypatch.setattr(plugins, "status", lambda s, jobs, sh: calls.append(len(jobs)) or real_status(s, jobs, sh))
    opened = ssh_transport.connections_opened
    jobs = [ExPyRe(f"many{i}", function=pow, args=[i, 2]) for i in range(5)]
    for xpr in jobs:
        xpr.start(resources=SEED_RESOURCES, system_name="remote")
    assert [xpr.get_results(**FAST)[0] for xpr in jobs] == [0, 1, 4, 9, 16]
    assert ssh_transport.connections_opened - opened == 1
    assert max(calls) == 5


def test_remote_exception_and_output_files_over_ssh(remote):
    def work():
        from pathlib import Path
        Path("produced.txt").write_text("from the host\n")
        print("printed remotely")
        raise KeyError("missing thing")

    xpr = ExPyRe("remote_exc", function=work, output_files=["produced.txt"])
    xpr.start(resources=SEED_RESOURCES, system_name="remote")
    with pytest.raises(KeyError, match="missing thing"):
        xpr.get_results(**FAST)
    assert (xpr.stage_dir / "_expyre_stdout").read_text() == "printed remotely\n"

    def ok():
        from pathlib import Path
        Path("produced.txt").write_text("from the host\n")
        return "fine"

    good = ExPyRe("remote_ok", function=ok, output_files=["produced.txt"])
    good.start(resources=SEED_RESOURCES, system_name="remote")
    assert good.get_results(**FAST)[0] == "fine"
    assert Path("produced.txt").read_text() == "from the host\n"


def test_restart_across_processes_over_ssh(remote, tmp_path):
    check_restart(tmp_path / "workflow.py", remote.db)


def test_xpr_rm_clean_removes_remote_directory(remote, sshd):
    xpr = run_seed_example()
    remote_dir = remote.db.get(xpr.id)["remote_dir"]
    assert sshd.run_as_user(f"test -d ~/{remote_dir}").returncode == 0
    proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), "xpr"), "rm", "-y", "-c", "-s", "processed"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert sshd.run_as_user(f"test -e ~/{remote_dir}").returncode == 1
    assert not xpr.stage_dir.exists()


def test_unknown_host_key_is_refused_and_nothing_staged(remote, sshd, isolated_home):
    (isolated_home / ".ssh" / "known_hosts").write_text("")
    xpr = ExPyRe("unknown_host", function=abs, args=[-1])
    with pytest.raises(ssh_transport.HostKeyError) as info:
        xpr.start(resources=SEED_RESOURCES, system_name="remote")
    message = str(info.value)
    assert f"host key of [127.0.0.1]:{sshd.port} is not known" in message
    assert "'ssh cluster'" in message and "accept-new" in message  # the alias: a command that works
    assert remote.db.get(xpr.id)["status"] == "created"
    assert sshd.run_as_user("ls ~/run_expyre 2>/dev/null | wc -l").stdout.strip() in ("", "0")


def test_changed_host_key_is_refused_and_nothing_staged(remote, sshd, isolated_home, tmp_path):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "impostor")], check=True)
    impostor = (tmp_path / "impostor.pub").read_text().split()[:2]
    (isolated_home / ".ssh" / "known_hosts").write_text(f"[127.0.0.1]:{sshd.port} {' '.join(impostor)}\n")
    xpr = ExPyRe("changed_key", function=abs, args=[-1])
    with pytest.raises(ssh_transport.HostKeyError, match="has CHANGED"):
        xpr.start(resources=SEED_RESOURCES, system_name="remote")
    assert remote.db.get(xpr.id)["status"] == "created"
    assert sshd.run_as_user("ls ~/run_expyre 2>/dev/null | wc -l").stdout.strip() in ("", "0")


def test_accept_new_records_the_host_key(expyre_config, ssh_client_setup, sshd, isolated_home):
    known_hosts = isolated_home / ".ssh" / "known_hosts"
    known_hosts.write_text("")
    config = expyre_config({"remote": cluster_system(ssh_client_setup,
                                                      ssh={"strict_host_key_checking": "accept-new"})})
    xpr = ExPyRe("accept_new", function=abs, args=[-3])
    xpr.start(resources=SEED_RESOURCES, system_name="remote")
    assert xpr.get_results(**FAST)[0] == 3
    assert f"[127.0.0.1]:{sshd.port}" in known_hosts.read_text()
    assert config.db.get(xpr.id)["status"] == "succeeded"


def _kill_sessions(sshd):
    """Drop every established SSH session of the account (the per-connection sshd processes)."""
    subprocess.run(["pkill", "-KILL", "-u", sshd.user, "-x", "sshd"], check=False)


def test_sshd_restart_while_job_runs(remote, sshd):
    xpr = ExPyRe("survives", function=lambda: (__import__("time").sleep(4), "still here")[1])
    xpr.start(resources=SEED_RESOURCES, system_name="remote")
    sshd.stop()
    _kill_sessions(sshd)
    restarter = threading.Timer(2.0, sshd.start)
    restarter.start()
    try:
        result = xpr.get_results(timeout=120, **FAST)
    finally:
        restarter.join()
    assert result[0] == "still here"


def test_connection_lost_during_submission_is_not_repeated(remote, sshd, monkeypatch):
    """A submission whose outcome is unknown raises; the next start() asks the scheduler."""
    from expyre.schedulers import direct
    real_launch = direct.launch_command

    def launch_then_drop(job, script):
        # fault injection: the submission goes through, then the connection dies before the answer
        return real_launch(job, script) + f"\npkill -KILL -u {sshd.user} -x sshd"

    monkeypatch.setattr(direct, "launch_command", launch_then_drop)
    xpr = ExPyRe("lost_submit", function=abs, args=[-7])
    with pytest.raises(ConnectionLostError, match="must not be repeated"):
        xpr.start(resources=SEED_RESOURCES, system_name="remote")
    assert remote.db.get(xpr.id)["status"] == "submitting"
    monkeypatch.undo()
    again = ExPyRe("lost_submit", function=abs, args=[-7])
    again.start(resources=SEED_RESOURCES, system_name="remote")
    assert again.get_results(**FAST)[0] == 7
    launched = sshd.run_as_user(f"cat ~/{remote.db.get(xpr.id)['remote_dir']}/_expyre_direct_pid").stdout.split()
    assert launched == [again.remote_id]  # one launch only


def test_a_shell_function_is_sent_once_per_session_and_again_after_a_reconnect(remote, sshd, monkeypatch):
    """The session defines a registered shell function (:mod:`expyre.shellfunctions`) the first
    time a command carries it; later commands go without its text, and a new session (after the
    connection dropped) gets it again."""
    import paramiko

    from expyre import shellfunctions
    definition = shellfunctions.define("_xpr_test_twice", 'echo "$1$1"')
    sent = []
    real_sendall = paramiko.Channel.sendall
    monkeypatch.setattr(paramiko.Channel, "sendall", lambda channel, data: (sent.append(bytes(data)),
                                                                          real_sendall(channel, data))[1])
    shell = remote.systems["remote"].shell
    outputs = []
    for word in ("ab", "cd", "drop", "ef"):
        if word == "drop":
            _kill_sessions(sshd)
            continue
        sent.clear()
        outputs.append(shell.run(f"{definition}_xpr_test_twice {word}").stdout)
        outputs.append(b"_xpr_test_twice() {" in b"".join(sent))
    assert outputs == ["abab\n", True, "cdcd\n", False, "efef\n", True]


WEIRD = "we ird $x; 'q' \"dq\" ünï"


def test_special_characters_round_trip(remote, sshd):
    Path(f"{WEIRD}.txt").write_text("input ünï\n")

    def read_and_write():
        from pathlib import Path
        text = Path(f"{WEIRD}.txt").read_text()
        Path(f"out {WEIRD}.txt").write_text(text.upper())
        return text

    # job names may not hold '$' or '"' (a scheduler would read them in its paths and directives)
    with pytest.raises(ValueError, match="job name"):
        ExPyRe(WEIRD, function=read_and_write)
    weird_name = "we ird; 'q' (ünï)"
    xpr = ExPyRe(weird_name, function=read_and_write, input_files=[f"{WEIRD}.txt"],
                 output_files=[f"out {WEIRD}.txt"],
                 env_vars=[f"ODD={WEIRD}"], pre_run_commands=['test "$ODD" = "$(cat ./*.txt | head -0)$ODD"'])
    xpr.start(resources=SEED_RESOURCES, system_name="remote")
    assert xpr.get_results(**FAST)[0] == "input ünï\n"
    assert Path(f"out {WEIRD}.txt").read_text() == "INPUT ÜNÏ\n"
    assert weird_name in remote.db.get(xpr.id)["remote_dir"]


def test_openssh_transport_runs_seed_example(expyre_config, ssh_client_setup, sshd, isolated_home):
    ssh = f"ssh -F {isolated_home}/.ssh/config"
    config = expyre_config({"remote": cluster_system(ssh_client_setup, remsh_cmd=ssh)})
    assert config.systems["remote"].transport == "openssh"
    try:
        xpr = run_seed_example()
    finally:
        # the transport's own ControlMaster would otherwise outlive the test by ControlPersist
        config.systems["remote"].shell.logout()
    row = config.db.get(xpr.id)
    assert sshd.run_as_user(f"test -f ~/{row['remote_dir']}/_expyre_job_succeeded").returncode == 0


def test_unreachable_host_is_a_clear_error(expyre_config, ssh_client_setup, isolated_home, monkeypatch):
    monkeypatch.setenv("EXPYRE_RETRY", "2 0.1")
    config = expyre_config({"remote": cluster_system(ssh_client_setup, ssh={"port": 1, "connect_timeout": 2})})
    xpr = ExPyRe("unreachable", function=abs, args=[-1])
    with pytest.raises(ConnectionLostError, match=r"cannot reach xpr-cluster@127\.0\.0\.1:1 after 2 tries"):
        xpr.start(resources=SEED_RESOURCES, system_name="remote")
    assert config.db.get(xpr.id)["status"] == "created"


def _add_host(isolated_home, sshd, alias, extra):
    config = isolated_home / ".ssh" / "config"
    config.write_text(config.read_text() + f"\nHost {alias}\n    HostName 127.0.0.1\n    Port {sshd.port}\n"
                      f"    User {sshd.user}\n    IdentityFile {sshd.client_key}\n    IdentitiesOnly yes\n"
                      f"    {extra}\n")


def test_proxy_jump_through_the_cluster_itself(expyre_config, ssh_client_setup, sshd, isolated_home):
    _add_host(isolated_home, sshd, "inner", "ProxyJump cluster")
    opened = ssh_transport.connections_opened
    config = expyre_config({"remote": cluster_system("inner")})
    xpr = ExPyRe("jumped", function=abs, args=[-11])
    xpr.start(resources=SEED_RESOURCES, system_name="remote")
    assert xpr.get_results(**FAST)[0] == 11
    assert ssh_transport.connections_opened - opened == 2  # the jump host, then the host through it
    assert config.db.get(xpr.id)["status"] == "succeeded"


def test_proxy_command(expyre_config, ssh_client_setup, sshd, isolated_home):
    _add_host(isolated_home, sshd, "proxied",
              f"ProxyCommand ssh -F {isolated_home}/.ssh/config -o BatchMode=yes -W %h:%p cluster")
    expyre_config({"remote": cluster_system("proxied")})
    xpr = ExPyRe("proxied", function=abs, args=[-12])
    xpr.start(resources=SEED_RESOURCES, system_name="remote")
    assert xpr.get_results(**FAST)[0] == 12
