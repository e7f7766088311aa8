"""Job directories as tar streams, for transports that reach the host through a command channel.

``put``: the local directories are packed into tar archives here; one command on the host creates
each job directory and unpacks its archive with ``tar -x`` from the command's standard input.
``get``: one command on the host packs, for every job directory, the files created or changed
since the job was submitted (newer than its job script), and prints them as length-prefixed tar
archives one after the other; they are spooled to a file here (never held in memory) and
unpacked. Either way one round trip moves a whole batch, whatever the number of files.

Job directories are private: the host's directories (and the parents the command creates) are
made under ``umask 077`` and the archive carries no group or other permission bits, whatever
the local umask. Copy-back unpacks into a temporary directory and renames each file into place,
the outcome markers last, so a reader (another process polling the same job) sees the old file
or the new one, never a partial one.
"""
from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile
import warnings
from pathlib import Path
from typing import IO, List, Optional, Sequence, Tuple, Union

from .. import jobfiles
from ..hooktypes import CommandResult, RemoteCommandError, quote
from ..writes import writing

#: Archives bigger than this are spooled to a temporary file instead of memory.
SPOOL_LIMIT = 8 * 1024 * 1024


def pack_directory(local_dir: Path) -> IO[bytes]:
    """A tar archive of the contents of ``local_dir`` (entries relative to it), rewound."""
    archive = tempfile.SpooledTemporaryFile(max_size=SPOOL_LIMIT)
    with tarfile.open(fileobj=archive, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in sorted(os.listdir(local_dir)):
            tar.add(str(Path(local_dir) / entry), arcname=entry, filter=_private)
    archive.seek(0)
    return archive


def _private(member: tarfile.TarInfo) -> tarfile.TarInfo:
    """The entry with no permission bits for group and others (the job's files may hold secrets)."""
    member.mode &= 0o700
    return member


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
    Everything runs under ``umask 077``: the job directories, the parents ``mkdir -p`` creates
    (existing ones keep their mode) and the unpacked files are the user's alone.
    """
    steps = ["umask 077"]
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


class _Slice(io.RawIOBase):
    """The next ``size`` bytes of ``source``, as a read-only stream (for ``tarfile``'s stream mode)."""

    def __init__(self, source: IO[bytes], size: int):
        super().__init__()
        self._source = source
        self._left = size

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        n = self._left if n is None or n < 0 else min(n, self._left)
        data = self._source.read(n)
        self._left -= len(data)
        return data

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


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
    """Copy the new files of each remote directory into its local directory, in one command.

    The answer is spooled to a temporary file next to the first local directory (the shell
    writes it there as it arrives, when it can: ``run_bytes(..., stdout_file=)``), so memory
    use does not grow with the size of the results.
    """
    command = get_command([remote for _, remote in pairs])
    spool_dir = Path(pairs[0][0]).parent if pairs else None
    spool_dir = spool_dir if spool_dir and spool_dir.is_dir() else Path(tempfile.gettempdir())
    with tempfile.TemporaryFile(dir=spool_dir) as spool:
        with writing("the job results copied back from the host (a temporary file)", spool_dir):
            status, stdout, stderr = _run_to_file(shell, command, spool)
        _check(shell, command, status, stderr, "copying job results from the host")
        spool.seek(0)
        for local_dir, _ in pairs:
            header = spool.readline()
            if not header.endswith(b"\n"):
                raise RemoteCommandError(shell.host, CommandResult(command, status, "", "the answer ended early"),
                                         "copying job results from the host")
            size = int(header.strip())
            start = spool.tell()
            with writing("the job's results copied back from the host", local_dir):
                unpack(_Slice(spool, size) if size else b"", Path(local_dir))
            spool.seek(start + size)


def _run_to_file(shell, command: str, spool: IO[bytes]) -> Tuple[int, bytes, bytes]:
    """Run ``command`` with its standard output written to ``spool`` (streamed if the shell can)."""
    try:
        return shell.run_bytes(command, stdout_file=spool)
    except TypeError as exc:  # a shell without stdout_file: its answer comes back in memory
        if "stdout_file" not in str(exc):
            raise
    status, stdout, stderr = shell.run_bytes(command)
    spool.write(stdout)
    return status, b"", stderr


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


def unpack(archive: Union[bytes, IO[bytes]], local_dir: Path) -> None:
    """Unpack an archive (bytes or a stream) into ``local_dir``, through a temporary directory.

    Entries that would land outside ``local_dir`` (absolute or ``..`` paths, symlinks pointing
    out) are refused, with a warning and a record that :func:`refused_entries` reads, so that a
    missing output file can be explained. Every file is renamed into place, outcome markers last.
    """
    if isinstance(archive, (bytes, bytearray)):
        if not archive:
            return
        archive = io.BytesIO(archive)
    local_dir = Path(local_dir)
    scratch = Path(tempfile.mkdtemp(prefix=f".{local_dir.name}.copy-back.", dir=local_dir.parent))
    try:
        refused = []
        try:
            with tarfile.open(fileobj=archive, mode="r|", bufsize=1 << 20) as tar:
                for member in tar:
                    reason = _refusal(member, local_dir)
                    if reason:
                        refused.append(f"{member.name}: {reason}")
                        continue
                    _extract(tar, member, scratch)
        except tarfile.ReadError as exc:
            if "empty file" not in str(exc):
                raise
        _move_into_place(scratch, local_dir)
        if refused:
            _record_refused(local_dir, refused)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _extract(tar: tarfile.TarFile, member: tarfile.TarInfo, dest: Path) -> None:
    if hasattr(tarfile, "data_filter"):
        tar.extract(member, dest, filter="data")
    else:  # Python < 3.12 (and older patch releases)
        tar.extract(member, dest)


def _move_into_place(scratch: Path, local_dir: Path) -> None:
    """Rename every file of ``scratch`` to the same place under ``local_dir``, markers last."""
    entries, markers = [], []
    for root, dirs, files in os.walk(scratch):
        rel_root = Path(root).relative_to(scratch)
        for name in dirs:
            if (Path(root) / name).is_symlink():
                entries.append(rel_root / name)
            else:
                (local_dir / rel_root / name).mkdir(parents=True, exist_ok=True)
        for name in files:
            rel = rel_root / name
            (markers if str(rel) in jobfiles.OUTCOME else entries).append(rel)
    # the exception file before the marker that says there is one
    markers.sort(key=lambda rel: str(rel) != jobfiles.EXCEPTION)
    local_dir.mkdir(parents=True, exist_ok=True)
    for rel in entries + markers:
        os.replace(scratch / rel, local_dir / rel)


def refused_entries(local_dir: Path) -> List[str]:
    """Entries of earlier copy-backs into ``local_dir`` that were refused, with the reason."""
    try:
        return (Path(local_dir) / REFUSED).read_text().splitlines()
    except OSError:
        return []


#: Record, in a job directory, of the entries a copy-back refused.
REFUSED = jobfiles.plugin_file("tarstream", "refused")


def _record_refused(local_dir: Path, refused: List[str]) -> None:
    lines = sorted(set(refused_entries(local_dir)) | set(refused))
    tmp = local_dir / (REFUSED + ".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, local_dir / REFUSED)
    warnings.warn(f"copy-back into {local_dir} refused {len(refused)} entr{'y' if len(refused) == 1 else 'ies'} "
                  f"of the job directory: {'; '.join(refused)}", RuntimeWarning, stacklevel=4)


def _refusal(member: tarfile.TarInfo, local_dir: Path) -> Optional[str]:
    """Why ``member`` is refused, or None if it may be unpacked into ``local_dir``."""
    if not _is_safe(member, local_dir):
        if member.issym():
            return f"symlink to '{member.linkname}' points outside the job directory"
        if member.islnk():
            return f"hard link to '{member.linkname}' points outside the job directory"
        return "path leads outside the job directory"
    if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
        return "not a regular file, directory or link"
    return None


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


def transfer(shell, direction: str, pairs: Sequence[Tuple[Path, str]]) -> bool:
    """The ``transfer`` hook of a transport whose shell runs ``tar`` on the host: ``put`` or
    ``get`` every pair in one stream; True (the transport did it)."""
    if direction == "put":
        put(shell, pairs)
    else:
        get(shell, pairs)
    return True
