"""Job directories as tar streams, for transports that reach the host through a command channel.

``put``: the local directories are packed here into one tar archive per parent directory on the
host; one command on the host creates the job directories and unpacks each archive with one
``tar -x`` from the command's standard input.
``get``: one command on the host packs, for every job directory, the files created or changed
since the job was submitted (newer than its job script), and prints them as length-prefixed tar
archives one after the other; they are spooled to a file here (never held in memory) and
unpacked. Either way one round trip moves a whole batch, whatever the number of files.

Job directories are private: the archive carries no group or other permission bits, whatever
the local umask, and the parents the command creates are made under ``umask 077``. Copy-back
unpacks into a temporary directory and renames each file into place, the outcome markers last,
so a reader (another process polling the same job) sees the old file or the new one, never a
partial one.
"""
from __future__ import annotations

import io
import os
import shutil
import stat
import struct
import tarfile
import tempfile
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

from .. import jobfiles, shellfunctions
from ..hooktypes import CommandResult, RemoteCommandError, quote
from ..writes import writing

#: Archives bigger than this are spooled to a temporary file instead of memory.
SPOOL_LIMIT = 8 * 1024 * 1024


def pack_directory(local_dir: Path) -> IO[bytes]:
    """A tar archive of the contents of ``local_dir`` (entries relative to it), rewound."""
    return pack_directories([(Path(local_dir), "")])


def pack_directories(dirs: Sequence[Tuple[Path, str]]) -> IO[bytes]:
    """One tar archive of the contents of each local directory under its name in the archive
    (``""``: at the top), rewound. A named directory has an entry of its own, private to its
    owner, so that ``tar -x`` creates it (with no ``mkdir`` process on the host)."""
    archive = tempfile.SpooledTemporaryFile(max_size=SPOOL_LIMIT)
    for local_dir, name in dirs:
        write_directory(archive, Path(local_dir), name)
    end_archive(archive)
    archive.seek(0)
    return archive


#: Entry headers are POSIX ustar, or pax where ustar cannot hold the name or size; every
#: ``tar -x`` reads both.
_FORMAT, _ENCODING = tarfile.PAX_FORMAT, "utf-8"
_BLOCK = tarfile.BLOCKSIZE


def write_directory(out: IO[bytes], local_dir: Path, name: str = "",
                    files: Optional[Mapping[str, Tuple[bytes, int]]] = None) -> None:
    """Write the contents of ``local_dir`` to ``out`` as tar entries under ``name`` (``""``: at
    the top; else with an entry for the directory itself, see :func:`pack_directories`).
    ``files`` adds files from memory (name -> contents and mode), in the place of any file of
    the same name in ``local_dir``.

    Entries only: what is written is a tar archive once :func:`end_archive` follows, and ``tar -x``
    also reads it as it is, to the end of its input. The entries are written here rather than by
    :class:`tarfile.TarFile`, which costs several times as much per file (an array's bundle
    packs six entries per task); see :func:`_header`.
    """
    now = int(time.time())
    if name:
        out.write(_header(name, tarfile.DIRTYPE, 0o700, now))
    files = files or {}
    for entry in sorted(set(os.listdir(local_dir)) | set(files)):
        arcname = f"{name}/{entry}" if name else entry
        if entry in files:
            data, mode = files[entry]
            out.write(_header(arcname, tarfile.REGTYPE, mode & 0o700, now, len(data)))
            out.write(data)
            out.write(bytes(-len(data) % _BLOCK))
        else:
            _write_tree(out, local_dir / entry, arcname)


def end_archive(out: IO[bytes]) -> None:
    """Write the end-of-archive marker (two zero blocks) after the entries."""
    out.write(bytes(2 * _BLOCK))


def _write_tree(out: IO[bytes], path: Path, arcname: str) -> None:
    """Write ``path`` (a tree, for a directory) as ``arcname``, without group or other bits (the
    job's files may hold secrets), and without owner names: the host unpacks as its user."""
    info = os.lstat(path)
    mode, mtime = stat.S_IMODE(info.st_mode) & 0o700, int(info.st_mtime)
    if stat.S_ISREG(info.st_mode):
        out.write(_header(arcname, tarfile.REGTYPE, mode, mtime, info.st_size))
        with open(path, "rb") as data:
            _copy_exactly(data, out, info.st_size, path)
        out.write(bytes(-info.st_size % _BLOCK))
    elif stat.S_ISDIR(info.st_mode):
        out.write(_header(arcname, tarfile.DIRTYPE, mode, mtime))
        for entry in sorted(os.listdir(path)):
            _write_tree(out, path / entry, f"{arcname}/{entry}")
    elif stat.S_ISLNK(info.st_mode):
        out.write(_header(arcname, tarfile.SYMTYPE, mode, mtime, linkname=os.readlink(path)))
    else:
        raise ValueError(f"{path}: cannot copy it to the host: not a file, directory or symbolic link")


#: The fields of a ustar header, in order (512 bytes in all).
_USTAR = struct.Struct("100s8s8s8s12s12s8sc100s6s2s32s32s8s8s155s12s")
_NAME_MAX, _PREFIX_MAX, _CHECKSUM_AT = 100, 155, 148


def _header(name: str, type: bytes, mode: int, mtime: int, size: int = 0, linkname: str = "") -> bytes:
    """The header block(s) of one archive entry.

    Most entries (ASCII names, split into ustar's prefix and name fields when longer than 100
    bytes) get a plain ustar header, built here at a tenth of the cost of
    :meth:`tarfile.TarInfo.tobuf`; the others (non-ASCII or very long names, files of 8 GiB or
    more) get that method's pax header.
    """
    if type == tarfile.DIRTYPE and not name.endswith("/"):
        name += "/"
    try:
        raw, link = name.encode("ascii"), linkname.encode("ascii")
    except UnicodeEncodeError:
        return _pax_header(name, type, mode, mtime, size, linkname)
    prefix = b""
    if len(raw) > _NAME_MAX:
        # the first "/" that leaves at most 100 bytes after it, at most 155 before it
        cut = raw.find(b"/", len(raw) - _NAME_MAX - 1, _PREFIX_MAX + 1)
        if cut <= 0 or cut >= len(raw.rstrip(b"/")):
            return _pax_header(name, type, mode, mtime, size, linkname)
        prefix, raw = raw[:cut], raw[cut + 1:]
    if len(link) > _NAME_MAX or size >= 8 ** 11 or not 0 <= mtime < 8 ** 11:
        return _pax_header(name, type, mode, mtime, size, linkname)
    block = _USTAR.pack(raw, b"%07o\0" % mode, b"0000000\0", b"0000000\0", b"%011o\0" % size, b"%011o\0" % mtime,
                        b" " * 8, type, link, b"ustar\0", b"00", b"", b"", b"", b"", prefix, b"")
    return b"%s%06o\0%s" % (block[:_CHECKSUM_AT], sum(block), block[_CHECKSUM_AT + 7:])


def _pax_header(name: str, type: bytes, mode: int, mtime: int, size: int, linkname: str) -> bytes:
    member = tarfile.TarInfo(name)
    member.type, member.mode, member.mtime, member.size, member.linkname = type, mode, mtime, size, linkname
    return member.tobuf(_FORMAT, _ENCODING)


def _copy_exactly(source: IO[bytes], out: IO[bytes], size: int, path: Path) -> None:
    left = size
    while left > 0:
        chunk = source.read(min(left, 1 << 20))
        if not chunk:
            raise OSError(f"{path} became shorter while it was being packed for the host")
        out.write(chunk)
        left -= len(chunk)


def archive_size(archive: IO[bytes]) -> int:
    """Size of a rewound archive, leaving it rewound."""
    archive.seek(0, os.SEEK_END)
    size = archive.tell()
    archive.seek(0)
    return size


#: Shell functions: ``_xpr_put PARENT SIZE NAME...``, run by :func:`put_command` for each parent
#: directory, and ``_xpr_skip``, which reads past an archive that is not copied. SIZE ``-`` reads
#: the archive to the end of standard input. In the usual case (the parent exists, the copy
#: works) ``_xpr_put`` starts one process, ``tar``, however many jobs: the archive has an entry
#: for each job directory, so ``tar`` creates them.
_PUT_FUNCTIONS = shellfunctions.define("_xpr_put", (
    '_xpr_p=$1 _xpr_n=$2; shift 2\n'
    'for _xpr_d in "$@"; do if [ -e "$_xpr_p/$_xpr_d" ] || [ -L "$_xpr_p/$_xpr_d" ]; then\n'
    '  echo "expyre: $_xpr_p/$_xpr_d exists already on the host; nothing was copied into it" >&2\n'
    '  _xpr_skip; return 1; fi; done\n'
    '[ -d "$_xpr_p" ] || ( umask 077 && mkdir -p -- "$_xpr_p" ) || { _xpr_skip; return 1; }\n'
    'if [ "$_xpr_n" = - ]; then tar -xf - -C "$_xpr_p" && return 0\n'
    'else head -c "$_xpr_n" | { tar -xf - -C "$_xpr_p" || { _xpr_r=$?; cat > /dev/null; exit $_xpr_r; }; } &&\n'
    '  return 0; fi\n'
    'rm -rf -- "${@/#/$_xpr_p/}"; return 1')) + shellfunctions.define(
    "_xpr_skip", 'if [ "$_xpr_n" != - ]; then head -c "$_xpr_n" > /dev/null; fi')


def put_command(groups: Sequence[Tuple[str, int, Sequence[str]]]) -> str:
    """The command that creates the remote directories and unpacks their archives from standard input.

    ``groups`` holds, per parent directory on the host, ``(parent, archive size, directory names)``:
    the parent's archive holds each directory's files under the directory's name, and is unpacked
    by one ``tar`` (so the cost on the host does not grow with the number of jobs in processes).
    The archives follow each other on standard input; each but the last is read as exactly its
    size in bytes (``head -c`` never reads ahead), and what a failed ``tar`` left unread is
    drained, so that the next archive starts where it should; the last is read to the end of
    standard input, which holds nothing after it (the transport gives the command exactly the
    archives, and drains what is left if the command fails). A directory that already exists is
    an error (nothing is copied into it, nor into the others of its group); if unpacking fails the
    group's directories are removed again. The job directories and their files are the user's
    alone whatever the host's umask: their entries in the archive have no group or other bits
    (``tar -x`` takes those modes, less the umask), and the parents ``mkdir -p`` creates are made
    under ``umask 077`` (existing ones keep their mode). The shell's own umask is left as it was.
    """
    steps = [f"_xpr_put {quote(parent or '.')} {int(size) if n < len(groups) - 1 else '-'} "
             f"{' '.join(quote(name) for name in names)}" for n, (parent, size, names) in enumerate(groups)]
    return _PUT_FUNCTIONS + " && ".join(steps)


def by_parent(remote_dirs: Sequence[str]) -> List[Tuple[str, List[int]]]:
    """The positions of ``remote_dirs`` grouped by parent directory, in order of first appearance."""
    groups: Dict[str, List[int]] = {}
    for n, remote_dir in enumerate(remote_dirs):
        groups.setdefault(remote_dir.rstrip("/").rpartition("/")[0], []).append(n)
    return list(groups.items())


#: Shell function printing, NUL-terminated, the files and links below each directory given that are
#: newer than its job script (bash builtins only: no process per directory or file).
_NEW_FILES_FUNCTION = shellfunctions.define("_xpr_new", (
    "shopt -s globstar dotglob nullglob\n"
    'for _xpr_d in "$@"; do for _xpr_f in "$_xpr_d"/**; do\n'
    '  if { [ -f "$_xpr_f" ] || [ -L "$_xpr_f" ]; } && [ "$_xpr_f" -nt "$_xpr_d"/' + jobfiles.SCRIPT + ' ]; then\n'
    "    printf '%s\\0' \"$_xpr_f\"; fi; done; done"))


def get_command(groups: Sequence[Tuple[str, Sequence[str]]]) -> str:
    """The command that prints, per ``(parent, directory names)`` group, ``<size>\\n`` and one tar
    archive of the directories' new files (entries ``<name>/<path>``), made by one ``tar``."""
    parts = [_NEW_FILES_FUNCTION + '__xpr_tmp=$(mktemp) || exit 1']
    for parent, names in groups:
        parts.append(
            f"( cd {quote(parent or '.')} 2>/dev/null && _xpr_new {' '.join(quote(n) for n in names)} | "
            f"tar --null -T - -cf - ) > \"$__xpr_tmp\" 2>/dev/null"
            f" || : > \"$__xpr_tmp\"; wc -c < \"$__xpr_tmp\"; cat \"$__xpr_tmp\"")
    parts.append('rm -f "$__xpr_tmp"')
    return "\n".join(parts)


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
    with _packed(pairs) as (command, stream, size):
        status, _, stderr = shell.run_bytes(command, input_file=stream, input_size=size)
        _check(shell, _put_summary(pairs), status, stderr, "copying job files to the host")


#: Line a combined command (:func:`put_then_run`) prints when the copy succeeded.
STAGED_MARKER = "@xpr-staged@"


def put_then_run(shell, pairs: Sequence[Tuple[Path, str]], command: str, timeout: Optional[float] = None,
                 idempotent: bool = False) -> CommandResult:
    """:func:`put` the directories and then, in the same round trip, run ``command`` (only if
    the copy succeeded); ``command``'s result.

    The copy prints :data:`STAGED_MARKER` when it is done; the marker is removed from the output
    again. It starts no shell of its own and leaves the shell's umask as it was for ``command``.

    Raises
    ------
    RemoteCommandError
        the copy failed (``command`` did not run; the copy left nothing behind)
    """
    with _packed(pairs) as (put_command_, stream, size):
        combined = f"{{ {put_command_}\n}} || exit $?\necho {STAGED_MARKER}\n{command}"
        status, stdout, stderr = shell.run_bytes(combined, input_file=stream, input_size=size, timeout=timeout,
                                                 idempotent=idempotent)
    marker = STAGED_MARKER.encode() + b"\n"
    if not stdout.startswith(marker):
        _check(shell, _put_summary(pairs), status or 1, stderr, "copying job files to the host")
    return CommandResult(command, status, stdout[len(marker):].decode(errors="replace"),
                         stderr.decode(errors="replace"))


def _put_summary(pairs: Sequence[Tuple[Path, str]]) -> str:
    """What a put command does, for an error message (the command itself is long)."""
    first = pairs[0][1] if pairs else ""
    more = f" and {len(pairs) - 1} more" if len(pairs) > 1 else ""
    return f"tar -x of the job files into {first}{more}"


@contextmanager
def _packed(pairs: Sequence[Tuple[Path, str]]) -> Iterator[Tuple[str, IO[bytes], int]]:
    """The put command for ``pairs``, and its standard input and that input's size."""
    names = [remote.rstrip("/").rpartition("/")[2] for _, remote in pairs]
    grouped = by_parent([remote for _, remote in pairs])
    archives = [pack_directories([(Path(pairs[n][0]), names[n]) for n in members]) for _, members in grouped]
    try:
        sizes = [archive_size(a) for a in archives]
        command = put_command([(parent, size, [names[n] for n in members])
                               for (parent, members), size in zip(grouped, sizes)])
        stream = archives[0] if len(archives) == 1 else _concatenate(archives)
        archives.append(stream)
        yield command, stream, sum(sizes)
    finally:
        for archive in archives:
            archive.close()


def get(shell, pairs: Sequence[Tuple[Path, str]]) -> None:
    """Copy the new files of each remote directory into its local directory, in one command.

    The answer is spooled to a temporary file next to the first local directory (the shell
    writes it there as it arrives, when it can: ``run_bytes(..., stdout_file=)``), so memory
    use does not grow with the size of the results.
    """
    names = [remote.rstrip("/").rpartition("/")[2] for _, remote in pairs]
    grouped = by_parent([remote for _, remote in pairs])
    command = get_command([(parent, [names[n] for n in members]) for parent, members in grouped])
    spool_dir = Path(pairs[0][0]).parent if pairs else None
    spool_dir = spool_dir if spool_dir and spool_dir.is_dir() else Path(tempfile.gettempdir())
    with tempfile.TemporaryFile(dir=spool_dir) as spool:
        with writing("the job results copied back from the host (a temporary file)", spool_dir):
            status, stdout, stderr = _run_to_file(shell, command, spool)
        _check(shell, f"tar -c of the new files of {len(pairs)} job directories", status, stderr,
               "copying job results from the host")
        spool.seek(0)
        for _parent, members in grouped:
            header = spool.readline()
            if not header.endswith(b"\n"):
                raise RemoteCommandError(shell.host, CommandResult(command, status, "", "the answer ended early"),
                                         "copying job results from the host")
            size = int(header.strip())
            start = spool.tell()
            if size:
                unpack_many(_Slice(spool, size), {names[n]: Path(pairs[n][0]) for n in members})
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
    _unpack_into(archive, {}, Path(local_dir))


def unpack_many(archive: IO[bytes], local_dirs: Dict[str, Path]) -> None:
    """:func:`unpack` of an archive whose entries are ``<name>/<path>``: each into
    ``local_dirs[name]`` (an entry of any other name is refused)."""
    _unpack_into(archive, local_dirs, None)


def _unpack_into(archive: IO[bytes], local_dirs: Dict[str, Path], only: Optional[Path]) -> None:
    """Unpack into ``only``, or by each entry's first path component into ``local_dirs``."""
    scratches: Dict[Path, Path] = {}
    refused: Dict[Path, List[str]] = {}
    try:
        try:
            with tarfile.open(fileobj=archive, mode="r|", bufsize=1 << 20) as tar:
                for member in tar:
                    local_dir = only if only is not None else _route(member, local_dirs)
                    if local_dir is None:
                        warnings.warn(f"copy-back refused {member.name}: it belongs to no job directory asked for",
                                      RuntimeWarning, stacklevel=3)
                        continue
                    reason = _refusal(member, local_dir)
                    if reason:
                        refused.setdefault(local_dir, []).append(f"{member.name}: {reason}")
                        continue
                    if local_dir not in scratches:
                        with writing("the job's results copied back from the host", local_dir):
                            scratches[local_dir] = Path(tempfile.mkdtemp(prefix=f".{local_dir.name}.copy-back.",
                                                                         dir=local_dir.parent))
                    _extract(tar, member, scratches[local_dir])
        except tarfile.ReadError as exc:
            if "empty file" not in str(exc):
                raise
        for local_dir, scratch in scratches.items():
            with writing("the job's results copied back from the host", local_dir):
                _move_into_place(scratch, local_dir)
        for local_dir, reasons in refused.items():
            _record_refused(local_dir, reasons)
    finally:
        for scratch in scratches.values():
            shutil.rmtree(scratch, ignore_errors=True)


def _route(member: tarfile.TarInfo, local_dirs: Dict[str, Path]) -> Optional[Path]:
    """The local directory of an entry ``<name>/<path>``, with the entry renamed to ``<path>``
    (and a hard link's target likewise); None for an entry of no known name, or the directory
    entry itself."""
    name, _, rest = member.name.partition("/")
    if name not in local_dirs or not rest.strip("/"):
        return None
    member.name = rest
    if member.islnk():
        link_name, _, link_rest = member.linkname.partition("/")
        member.linkname = link_rest if link_name == name else "/" + member.linkname  # elsewhere: refused
    return local_dirs[name]


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
