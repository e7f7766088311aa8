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
import tarfile
import tempfile
from pathlib import Path
from typing import IO, List, Sequence, Tuple

from ..hooktypes import quote
from ..jobscript import JOB_SCRIPT_FILE

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


def put_command(remote_dirs_and_sizes: Sequence[Tuple[str, int]], stdin_is_shared: bool) -> str:
    """The command that creates each remote directory and unpacks its archive from standard input.

    A directory that already exists is an error (nothing is copied into it); a directory whose
    unpacking fails is removed again. With ``stdin_is_shared`` (a long-lived shell reading its
    commands from the same stream) each archive is read as exactly its size in bytes, and what a
    failed ``tar`` left unread is drained, so that no byte of an archive is ever read as a command.
    """
    steps = []
    for remote_dir, size in remote_dirs_and_sizes:
        parent = remote_dir.rpartition("/")[0]
        make = f"mkdir -p {quote(parent)} && mkdir {quote(remote_dir)}" if parent else f"mkdir {quote(remote_dir)}"
        unpack = f"tar -xf - -C {quote(remote_dir)}"
        if stdin_is_shared:
            unpack = f"head -c {int(size)} | {{ {unpack}; __xpr_r=$?; cat > /dev/null; exit $__xpr_r; }}"
        steps.append(f"{make} && {{ {unpack} || {{ rm -rf {quote(remote_dir)}; exit 1; }}; }}")
    return " && ".join(steps)


def get_command(remote_dirs: Sequence[str]) -> str:
    """The command that prints, for each directory, ``<size>\\n`` and a tar of its new files."""
    parts = ['__xpr_tmp=$(mktemp) || exit 1']
    for remote_dir in remote_dirs:
        parts.append(
            f"( cd {quote(remote_dir)} 2>/dev/null && find . -newer {JOB_SCRIPT_FILE} "
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
