"""``sharedfs``: a transport for a host whose file system is mounted on this machine.

The system's ``host`` is the directory that plays the remote home (for example the cluster
home directory as mounted here). Commands run on this machine with ``bash -c``, started in
that directory and with ``HOME`` set to it (job scripts find their run directory relative to
``$HOME``, as on the real host); remote paths relative to the remote home are taken relative to it. Transfers
are file copies. The transport needs no config key of its own, because ``host`` carries the
directory.
"""
import os
import shutil
import subprocess
from pathlib import Path

from expyre import hookimpl
from expyre.hooktypes import command_result

NAME = "sharedfs"


class SharedFSShell:
    """Runs commands on this machine, starting in the mounted remote home."""

    def __init__(self, root):
        self.host = str(root)
        self.root = Path(root).expanduser()

    def run(self, command, *, input=None, timeout=None, check=True, idempotent=True):
        env = dict(os.environ, HOME=str(self.root))
        proc = subprocess.run(["bash", "-c", command], input=input, capture_output=True,
                              timeout=timeout, cwd=self.root, env=env)
        return command_result(self.host, command, proc.returncode, proc.stdout, proc.stderr, check)

    def close(self):
        pass

    def path(self, remote_dir):
        """A remote path as this machine sees it."""
        return self.root / remote_dir  # an absolute remote_dir stays as it is


@hookimpl
def expyre_transports():
    return [NAME]


@hookimpl
def open_shell(transport, system):
    if not system.host or not Path(system.host).expanduser().is_dir():
        raise ValueError(f"system {system.name}: transport {NAME} needs 'host' to be an existing "
                         f"directory (the mounted remote home), got {system.host!r}")
    return SharedFSShell(system.host)


@hookimpl
def transfer(transport, shell, direction, pairs):
    for local_dir, remote_dir in pairs:
        remote = shell.path(remote_dir)
        if direction == "put":
            remote.parent.mkdir(parents=True, exist_ok=True)
            remote.mkdir()  # FileExistsError: never copy into an existing job directory
            try:
                shutil.copytree(local_dir, remote, dirs_exist_ok=True, symlinks=True)
            except BaseException:
                shutil.rmtree(remote, ignore_errors=True)
                raise
        elif remote.is_dir():
            # "get": copying everything is allowed (a transport may copy more than what changed)
            shutil.copytree(remote, local_dir, dirs_exist_ok=True, symlinks=True)
    return True
