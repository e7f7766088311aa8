"""Job directories as tar streams, for transports that reach the host through a command channel.

``put``: the local directories are packed into tar archives here; one command on the host creates
each job directory and unpacks its archive with ``tar -x`` from the command's standard input.
``get``: one command on the host packs, for every job directory, the files created or changed
since the job was submitted (newer than its job script), and prints them as length-prefixed tar
archives one after the other; they are unpacked here. Either way one round trip moves a whole
batch, whatever the number of files.
"""
from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import IO, List, Sequence, Tuple

from .. import jobfiles
from ..hooktypes import CommandResult, RemoteCommandError, quote

#: Archives bigger than this are spooled to a temporary file instead of memory.
SPOOL_LIMIT = 8 * 1024 * 1024


def pack_directory(local_dir: Path) -> IO[bytes]:
    """A tar archive of the contents of ``local_dir`` (entries relative to it), rewound."""
    archive = tempfile.SpooledTemporaryFile(max_size=SPOOL_LIMIT)
    with tarfile.open(fileobj=archive, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in sorted(os.listdir(local_dir)):
            tar.add(str(Path(local_dir) / entry), arcname=entry)
    archive.seek(0)
    return archive


def archive_size(archive: IO[bytes]) -> int:
    """Size of a rewound archive, leaving it rewound."""
    archive.seek(0, os.SEEK_END)
    size = archive.tell()
    archive.seek(0)
    return size


def put_command(remote_dirs_and_sizes: Sequence[Tuple[str, int]]) -> str:
    """The command that creates each remote directory and unpacks its archive from standard input.

    The archives follow each other on standard input; each is read as exactly its size in bytes
    (``head -c`` never reads ahead), and what a failed ``tar`` left unread is drained, so that the
    next archive starts where it should and, on a shell that reads its commands from the same
    stream, no byte of an archive is ever read as a command. A directory that already exists is
    an error (nothing is copied into it); a directory whose unpacking fails is removed again.
    """
    steps = []
    for remote_dir, size in remote_dirs_and_sizes:
        parent = remote_dir.rpartition("/")[0]
        make = f"mkdir -p {quote(parent)} && mkdir {quote(remote_dir)}" if parent else f"mkdir {quote(remote_dir)}"
        unpack = (f"head -c {int(size)} | {{ tar -xf - -C {quote(remote_dir)}; __xpr_r=$?; "
                  "cat > /dev/null; exit $__xpr_r; }")
        steps.append(f"{make} && {{ {unpack} || {{ rm -rf {quote(remote_dir)}; exit 1; }}; }}")
    return " && ".join(steps)


def get_command(remote_dirs: Sequence[str]) -> str:
    """The command that prints, for each directory, ``<size>\\n`` and a tar of its new files."""
    parts = ['__xpr_tmp=$(mktemp) || exit 1']
    for remote_dir in remote_dirs:
        parts.append(
            f"( cd {quote(remote_dir)} 2>/dev/null && find . -newer {jobfiles.SCRIPT} "
            f"\\( -type f -o -type l \\) -print0 | tar --null -T - -cf - ) > \"$__xpr_tmp\" 2>/dev/null"
            f" || : > \"$__xpr_tmp\"; wc -c < \"$__xpr_tmp\"; cat \"$__xpr_tmp\"")
    parts.append('rm -f "$__xpr_tmp"')
    return "\n".join(parts)


def split_get_output(output: bytes, count: int) -> List[bytes]:
    """The ``count`` archives printed by :func:`get_command`."""
    archives = []
    position = 0
    for _ in range(count):
        newline = output.index(b"\n", position)
        size = int(output[position:newline].strip())
        start = newline + 1
        archives.append(output[start:start + size])
        position = start + size
    return archives


def put(shell, pairs: Sequence[Tuple[Path, str]]) -> None:
    """Copy each local directory into its (new) remote directory, in one command of ``shell``.

    ``shell`` has ``run_bytes(command, input_file=, input_size=) -> (status, stdout, stderr)``.
    """
    archives = [pack_directory(Path(local_dir)) for local_dir, _ in pairs]
    try:
        sizes = [archive_size(a) for a in archives]
        command = put_command([(remote, size) for (_, remote), size in zip(pairs, sizes)])
        stream = archives[0] if len(archives) == 1 else _concatenate(archives)
        status, _, stderr = shell.run_bytes(command, input_file=stream, input_size=sum(sizes))
        _check(shell, command, status, stderr, "copying job files to the host")
    finally:
        for archive in archives:
            archive.close()


def get(shell, pairs: Sequence[Tuple[Path, str]]) -> None:
    """Copy the new files of each remote directory into its local directory, in one command."""
    command = get_command([remote for _, remote in pairs])
    status, stdout, stderr = shell.run_bytes(command)
    _check(shell, command, status, stderr, "copying job results from the host")
    for (local_dir, _), archive in zip(pairs, split_get_output(stdout, len(pairs))):
        unpack(archive, Path(local_dir))


def _check(shell, command: str, status: int, stderr: bytes, what: str) -> None:
    if status != 0:
        raise RemoteCommandError(shell.host, CommandResult(command, status, "", stderr.decode(errors="replace")), what)


def _concatenate(archives) -> IO[bytes]:
    joined = tempfile.SpooledTemporaryFile(max_size=SPOOL_LIMIT)
    for archive in archives:
        archive.seek(0)
        shutil.copyfileobj(archive, joined)
    joined.seek(0)
    return joined


def unpack(archive: bytes, local_dir: Path) -> None:
    """Unpack an archive into ``local_dir``, refusing entries that would land outside it."""
    if not archive:
        return
    local_dir = Path(local_dir)
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r") as tar:
        members = [m for m in tar.getmembers() if _is_safe(m, local_dir)]
        if hasattr(tarfile, "data_filter"):
            tar.extractall(local_dir, members=members, filter="data")
        else:  # Python < 3.12 (and older patch releases)
            tar.extractall(local_dir, members=members)


def _is_safe(member: tarfile.TarInfo, local_dir: Path) -> bool:
    root = local_dir.resolve()
    target = (root / member.name).resolve()
    if not _within(target, root):
        return False
    if member.issym():
        return not os.path.isabs(member.linkname) and _within((target.parent / member.linkname).resolve(), root)
    if member.islnk():
        return _within((root / member.linkname).resolve(), root)
    return True


def _within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents
