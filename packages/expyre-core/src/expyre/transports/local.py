"""The ``local`` transport: the system's host is this machine.

Commands run as ``bash -c`` subprocesses started in the home directory (as a login over SSH
would start), and transfers are file copies. Remote paths that are relative are taken relative
to the home directory, as for a remote host.

As on a remote host, job directories (and the parents created for them) are private (0700) and
their files lose every permission bit for group and others; files copied back are written to
a temporary name and renamed into place.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional, Sequence, Tuple

from ..hookspecs import hookimpl
from ..hooktypes import CommandResult, Shell, command_result
from ..writes import copy_atomically, writing

if TYPE_CHECKING:  # pragma: no cover
    from ..system import System

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
    """Copy files of ``src_dir`` into ``dest_dir`` unless size and mtime already match.

    Each file is copied to a temporary name and renamed into place, the outcome markers last.
    """
    from .. import jobfiles
    markers = []
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
            if rel == Path(".") and name in jobfiles.OUTCOME:
                markers.append((src, dest))
            else:
                _copy_atomically(src, dest)
    markers.sort(key=lambda pair: pair[0].name != jobfiles.EXCEPTION)
    for src, dest in markers:
        _copy_atomically(src, dest)


def _copy_atomically(src: Path, dest: Path) -> None:
    copy_atomically(src, dest, _copy_link if src.is_symlink() else shutil.copy2)


def _copy_link(src: Path, tmp: Path) -> None:
    tmp.unlink()
    os.symlink(os.readlink(src), tmp)


def _make_private_dirs(path: Path) -> None:
    """Create ``path`` and its missing parents with mode 0700; existing ones are left as they are."""
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:
            pass


def _copy_private(src: str, dest: str, *, follow_symlinks: bool = True) -> str:
    """``shutil.copy2`` with the copy's group and other permission bits cleared."""
    shutil.copy2(src, dest, follow_symlinks=follow_symlinks)
    if not os.path.islink(dest):
        os.chmod(dest, os.stat(dest).st_mode & 0o700)
    return dest


def put(local_dir: Path, remote: Path) -> None:
    """Create ``remote`` (which must not exist) and copy the contents of ``local_dir`` into it."""
    _make_private_dirs(remote.parent)
    try:
        remote.mkdir(mode=0o700)
    except FileExistsError:
        raise FileExistsError(f"job directory '{remote}' already exists; nothing was copied into it") from None
    try:
        shutil.copytree(local_dir, remote, dirs_exist_ok=True, symlinks=True, copy_function=_copy_private)
        remote.chmod(0o700)  # copytree copied the stage directory's mode
        for root, dirs, _files in os.walk(remote):
            for name in dirs:
                path = Path(root) / name
                if not path.is_symlink():
                    path.chmod(path.stat().st_mode & 0o700)
    except BaseException:
        shutil.rmtree(remote, ignore_errors=True)
        raise


@hookimpl
def expyre_transports() -> List[str]:
    return [NAME]


@hookimpl
def open_shell(transport: str, system: System) -> Shell:
    return LocalShell()


@hookimpl
def transfer(transport: str, shell: Shell, direction: str, pairs: Sequence[Tuple[Path, str]]) -> bool:
    for local_dir, remote_dir in pairs:
        remote = resolve(remote_dir)
        if direction == "put":
            put(Path(local_dir), remote)
        elif remote.is_dir():
            with writing("the job's results copied back", local_dir):
                _copy_changed(remote, Path(local_dir))
    return True
