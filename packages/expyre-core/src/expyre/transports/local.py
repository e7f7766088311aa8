"""The ``local`` transport: the system's host is this machine.

Commands run as ``bash -c`` subprocesses started in the home directory (as a login over SSH
would start), and transfers are file copies. Remote paths that are relative are taken relative
to the home directory, as for a remote host.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Optional

from ..hookspecs import hookimpl
from ..hooktypes import CommandResult, command_result

NAME = "local"
#: Commands longer than this are run from a temporary file rather than as an argument of ``bash -c``.
MAX_ARGUMENT_BYTES = 100_000


class LocalShell:
    """Runs commands on this machine with ``bash -c``, from the home directory."""

    host: Optional[str] = None

    def run(self, command: str, *, input: Optional[bytes] = None, timeout: Optional[float] = None,
            check: bool = True, idempotent: bool = True) -> CommandResult:
        script = None
        if len(command.encode()) > MAX_ARGUMENT_BYTES:
            # one argument of a new process is limited (128 KiB on Linux): a command about
            # many jobs at once goes through a private temporary file instead
            with tempfile.NamedTemporaryFile("w", prefix="expyre-command-", suffix=".sh", delete=False) as fout:
                fout.write(command)
            script = fout.name
        try:
            proc = subprocess.run(["bash", script] if script else ["bash", "-c", command], input=input,
                                  capture_output=True, timeout=timeout, cwd=Path.home())
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"command on this machine did not finish within {timeout} s: {command}") from None
        finally:
            if script:
                os.unlink(script)
        return command_result(None, command, proc.returncode, proc.stdout, proc.stderr, check)

    def close(self) -> None:
        pass


def resolve(remote_dir: str) -> Path:
    """A remote path as this machine sees it: relative paths are relative to the home directory."""
    path = Path(remote_dir).expanduser()
    return path if path.is_absolute() else Path.home() / path


def _copy_changed(src_dir: Path, dest_dir: Path) -> None:
    """Copy files of ``src_dir`` into ``dest_dir`` unless size and mtime already match."""
    for root, _dirs, files in os.walk(src_dir):
        rel = Path(root).relative_to(src_dir)
        target_root = dest_dir / rel
        target_root.mkdir(parents=True, exist_ok=True)
        for name in files:
            src, dest = Path(root) / name, target_root / name
            src_stat = src.stat()
            try:
                dest_stat = dest.stat()
                if dest_stat.st_size == src_stat.st_size and int(dest_stat.st_mtime) == int(src_stat.st_mtime):
                    continue
            except FileNotFoundError:
                pass
            shutil.copy2(src, dest)


def put(local_dir: Path, remote: Path) -> None:
    """Create ``remote`` (which must not exist) and copy the contents of ``local_dir`` into it."""
    remote.parent.mkdir(parents=True, exist_ok=True)
    try:
        remote.mkdir()
    except FileExistsError:
        raise FileExistsError(f"job directory '{remote}' already exists; nothing was copied into it") from None
    try:
        shutil.copytree(local_dir, remote, dirs_exist_ok=True, symlinks=True)
    except BaseException:
        shutil.rmtree(remote, ignore_errors=True)
        raise


@hookimpl
def expyre_transports():
    return [NAME]


@hookimpl
def open_shell(transport, system):
    if transport != NAME:
        return None
    return LocalShell()


@hookimpl
def transfer(transport, shell, direction, pairs):
    if transport != NAME:
        return None
    for local_dir, remote_dir in pairs:
        remote = resolve(remote_dir)
        if direction == "put":
            put(Path(local_dir), remote)
        elif remote.is_dir():
            _copy_changed(remote, Path(local_dir))
    return True
