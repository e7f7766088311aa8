"""The per-host limit on concurrent channels (expyre.channels, ``limits.max_channels``): config
validation, slots shared by threads and processes through locked files, nesting, the error after
the longest wait, and nothing at all when the key is unset. The run of several processes against
the real sshd is in tests/integration/test_channels.py."""
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading

import pytest

from expyre import channels
from expyre.config import ConfigError
from expyre.system import System

SYSTEM = {"host": "cluster", "scheduler": "slurm", "partitions": {"p": {"num_cores": 1}}}

#: A process that holds slot files of host_dir(sys.argv[1]) (every given index) until killed.
HOLDER = """
    import fcntl, os, sys, time
    from expyre import channels
    directory = channels.host_dir(sys.argv[1])
    fds = []
    for index in sys.argv[2:]:
        fd = os.open(directory / index, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.pwrite(fd, f"{os.getpid()}\\n".encode(), 0)
        fds.append(fd)
    print("holding", flush=True)
    time.sleep(600)
"""


def limited_system(limit, wait=None, host="cluster"):
    limits = {"max_channels": limit}
    if wait is not None:
        limits["max_channel_wait"] = wait
    return System(name="c", scheduler="direct", host=host, transport="local", limits=limits)


@pytest.fixture
def holder(isolated_home):
    """Start a process (same HOME) that holds slots ``indices`` of ``host``; killed afterwards."""
    procs = []

    def start(host, *indices):
        proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(HOLDER), host, *map(str, indices)],
                                stdout=subprocess.PIPE, text=True, env=dict(os.environ))
        procs.append(proc)
        assert proc.stdout.readline().strip() == "holding"
        return proc

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


# ------------------------------------------------------------------------------ config


def test_max_channels_is_validated_with_file_system_key_and_value(expyre_config):
    config = expyre_config({"c": dict(SYSTEM, limits={"max_channels": 2, "max_channel_wait": 0.5})})
    assert config.systems["c"].limits == {"max_channels": 2, "max_channel_wait": 0.5}
    path = "~/.expyre/config.json"  # shown relative to the home directory
    for bad in (0, -1, 1.5, "2", True):
        with pytest.raises(ConfigError) as info:
            expyre_config({"c": dict(SYSTEM, limits={"max_channels": bad})})
        assert (f"{path}: system 'c': limits.max_channels: must be a positive whole number (remote commands and "
                f"transfers in flight to the host at once, by all processes together), got {bad!r}") in str(info.value)
    with pytest.raises(ConfigError) as info:
        expyre_config({"c": dict(SYSTEM, limits={"max_channel_wait": 0})})
    assert f"{path}: system 'c': limits.max_channel_wait: must be a positive number" in str(info.value)
    with pytest.raises(ConfigError, match=r"limits.max_chanels: unknown key \(value 2\).*max_channels"):
        expyre_config({"c": dict(SYSTEM, limits={"max_chanels": 2})})


# ------------------------------------------------------------------------------ no limit: nothing


def test_without_the_key_the_system_keeps_its_transports_shell_and_takes_no_slot(isolated_home):
    system = System(name="c", scheduler="direct", host="cluster", transport="local")
    shell = system.shell
    assert not isinstance(shell, channels.LimitedShell)
    taken = channels.slots_taken
    with channels.slot(system):
        shell.run("true")
    assert channels.slots_taken == taken
    assert not (isolated_home / ".expyre" / "channels").exists()
    # a system on this machine has no host to limit, whatever it says
    local = System(name="l", scheduler="direct", limits={"max_channels": 1})
    assert not isinstance(local.shell, channels.LimitedShell)


def test_with_the_key_every_command_takes_a_slot_and_gives_it_back(isolated_home):
    system = limited_system(1, wait=2)
    shell = system.shell
    assert isinstance(shell, channels.LimitedShell) and channels.unwrapped(shell) is shell.inner
    taken = channels.slots_taken
    for _ in range(3):  # one slot, given back after each command: no wait
        assert shell.run("echo hi").stdout == "hi\n"
    assert channels.slots_taken == taken + 3
    slot_dir = channels.host_dir("cluster")
    assert slot_dir.parent == isolated_home / ".expyre" / "channels"
    assert oct(slot_dir.stat().st_mode & 0o777) == "0o700"
    assert [p.name for p in slot_dir.iterdir()] == ["0"]


# ------------------------------------------------------------------------------ nesting and threads


def test_nested_use_in_one_thread_reuses_its_slot(isolated_home):
    system = limited_system(1, wait=0.5)  # a second slot would be waited for, then an error
    shell = system.shell
    taken = channels.slots_taken
    with channels.slot(system):  # as a transfer holds it
        assert shell.run("echo nested").stdout == "nested\n"
        with channels.slot(system):
            shell.run("true")
    assert channels.slots_taken == taken + 1


def test_threads_of_one_process_take_slots_of_their_own(isolated_home):
    system = limited_system(2, wait=30)
    inside, peak, lock = [0], [0], threading.Lock()
    pair = threading.Barrier(2, timeout=20)  # passes only when two threads are inside at once

    def work():
        with channels.slot(system):
            with lock:
                inside[0] += 1
                peak[0] = max(peak[0], inside[0])
            pair.wait()
            with lock:
                inside[0] -= 1

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert peak[0] == 2 and not pair.broken


# ------------------------------------------------------------------------------ other processes


def test_slots_held_by_another_process_are_waited_for_then_named_in_the_error(isolated_home, holder):
    proc = holder("cluster", 0, 1)
    system = limited_system(2, wait=0.3)
    system.sources = {"limits.max_channels": "~/.expyre/config.json"}
    with pytest.raises(channels.ChannelWaitError) as info:
        system.shell.run("true")
    assert str(info.value) == (
        f"system 'c': no channel to host 'cluster' came free within 0.3 s: limits.max_channels = 2 (set in "
        f"~/.expyre/config.json) allows 2 remote command(s) or transfer(s) at once, and all were held by "
        f"processes {proc.pid}, {proc.pid} of this user. Let those processes finish, or raise "
        f"limits.max_channels if the site allows more, or limits.max_channel_wait (seconds) to wait longer")
    # with a third slot allowed, the command runs; other hosts have slots of their own
    assert limited_system(3, wait=0.3).shell.run("echo ok").stdout == "ok\n"
    assert limited_system(1, wait=0.3, host="other").shell.run("echo ok").stdout == "ok\n"


def test_a_killed_processs_slot_is_free_at_once(isolated_home, holder):
    proc = holder("cluster", 0)
    system = limited_system(1, wait=0.2)
    with pytest.raises(channels.ChannelWaitError, match=f"held by processes {proc.pid} of this user"):
        system.shell.run("true")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert system.shell.run("echo free").stdout == "free\n"


def test_a_slot_freed_while_waiting_is_taken(isolated_home, holder):
    proc = holder("cluster", 0)
    system = limited_system(1, wait=60)
    threading.Timer(0.3, proc.kill).start()
    assert system.shell.run("echo after").stdout == "after\n"


def test_slot_files_removed_under_a_running_process_are_made_again(isolated_home):
    system = limited_system(1, wait=0.5)
    assert system.shell.run("echo one").stdout == "one\n"
    shutil.rmtree(isolated_home / ".expyre" / "channels")
    assert system.shell.run("echo two").stdout == "two\n"
    assert (channels.host_dir("cluster") / "0").is_file()
