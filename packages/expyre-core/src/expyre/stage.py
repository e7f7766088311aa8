"""The local stage directory of a job: pickled task, hash, input files.

The function and its arguments are pickled once, with cloudpickle (so lambdas and locally
defined functions work), as a sequence of pickles (function, then each argument) using pickle
protocol 5 with out-of-band buffers: a large numpy array is neither copied into one big bytes
object nor pickled twice. The same pieces feed the hash that identifies the call for restarts
(arguments listed in ``hash_ignore`` left out) and are then written to ``_expyre_task_in.pckl``.

File layout of ``_expyre_task_in.pckl``::

    b"EXPYRE-TASK-1\\n"
    8-byte length + pickle of {"n_args": int, "kwarg_names": [...], "pieces": [[pickle_len, [buffer_len, ...]], ...]}
    for each piece (function, args..., kwarg values...): its pickle bytes, then its buffers

The runner (``_expyre_script_core.py``) reads it with the standard library alone.

numpy arrays are pickled by a reduction of this module's own (``numpy.ndarray(shape, dtype,
buffer, ...)`` with the data as an out-of-band buffer) rather than numpy's protocol-5 one, which
names ``numpy._core.numeric._frombuffer``: that module exists only in numpy 2, and job sides
that pin ``numpy<2`` must still load arguments pickled here with numpy 2 (as they could from
the original ExPyRe's protocol-4 pickles). The index also records the versions of Python and of
the top-level packages the pickles refer to, so that a job side that cannot load them can say
which versions differ.

A stage directory is written under a temporary name (``_tmp_run_...``) and renamed to its
final name (``run_...``) only when complete, so an interrupted ``ExPyRe(...)`` leaves no
directory that looks like a job.
"""
from __future__ import annotations

import base64
import glob
import hashlib
import io
import os
import pickle
import shutil
import struct
import sys
import tempfile
import time
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Union

import cloudpickle

from . import jobfiles
from .writes import copy_atomically, replace_atomically, writing

TASK_MAGIC = b"EXPYRE-TASK-1\n"


@dataclass
class Piece:
    """One pickled object: its in-band pickle and its out-of-band buffers."""

    data: bytes
    buffers: List[memoryview] = field(default_factory=list)


@dataclass
class PickledTask:
    """The function, args and kwargs of a call, each pickled once."""

    function: Piece
    args: List[Piece]
    kwargs: dict  # name -> Piece, in the caller's order


def _reduce_ndarray(array) -> object:
    """A reduction of a plain contiguous numpy array that numpy 1.x and 2.x both load:
    ``numpy.ndarray(shape, dtype, buffer, 0, None, order)`` with the data out of band."""
    if array.dtype.hasobject:
        return NotImplemented
    if array.flags.c_contiguous:
        order = "C"
    elif array.flags.f_contiguous:
        order = "F"
    else:
        return NotImplemented
    return type(array), (array.shape, array.dtype, pickle.PickleBuffer(array), 0, None, order)


class _TaskPickler(cloudpickle.Pickler):
    """cloudpickle's pickler, with numpy arrays reduced by :func:`_reduce_ndarray`."""

    def reducer_override(self, obj):
        numpy = sys.modules.get("numpy")
        if numpy is not None and type(obj) is numpy.ndarray:
            reduced = _reduce_ndarray(obj)
            if reduced is not NotImplemented:
                return reduced
        return super().reducer_override(obj)


def _pickle_piece(obj: object) -> Piece:
    buffers: list = []
    stream = io.BytesIO()
    _TaskPickler(stream, protocol=5, buffer_callback=buffers.append).dump(obj)
    return Piece(stream.getvalue(), [b.raw() for b in buffers])


def _referenced_versions(pieces: Sequence[Piece]) -> dict:
    """``{"python": ..., package: version}`` for the top-level packages the pickles name (what
    the runner reports when it cannot load them), and under ``"preflight"`` the record
    :func:`expyre.preflight.local_record` makes for the check before submission."""
    from . import preflight
    scans = []
    for piece in pieces:
        try:
            scans.append(preflight.scan_pickle(piece.data))
        except Exception:  # an unusual pickle: nothing to check it by, and nothing lost
            pass
    record = preflight.local_record(scans)
    versions = {"python": record["python"]}
    versions.update({top: v for top, v in record["versions"].items() if isinstance(v, str)})
    return {"versions": versions, "preflight": record}


def read_preflight_record(stage_dir: Path) -> Optional[dict]:
    """The preflight record of the task staged in ``stage_dir`` (None for a task written
    before preflight existed, or cleaned)."""
    try:
        with open(Path(stage_dir) / jobfiles.TASK, "rb") as fin:
            if fin.readline() != TASK_MAGIC:
                return None
            (index_len,) = struct.unpack("<Q", fin.read(8))
            index = pickle.loads(fin.read(index_len))
    except (OSError, struct.error, pickle.UnpicklingError, EOFError, ValueError):
        return None
    return index.get("preflight")


def pickle_task(function, args: Sequence, kwargs: dict) -> PickledTask:
    """Pickle ``function``, each of ``args`` and each value of ``kwargs``, once."""
    return PickledTask(_pickle_piece(function), [_pickle_piece(a) for a in args],
                       {k: _pickle_piece(v) for k, v in kwargs.items()})


def _code_identity(code: types.CodeType) -> bytes:
    parts = [code.co_code, repr(code.co_names).encode()]
    for const in code.co_consts:
        parts.append(_code_identity(const) if isinstance(const, types.CodeType) else repr(const).encode())
    return b"\0".join(parts)


def function_identity(function, piece: Piece) -> bytes:
    """What identifies ``function`` for the hash.

    An importable function is identified by its module and qualified name. One that cloudpickle
    has to pickle by value (defined in ``__main__``, a lambda, a local function) also by its
    code, so that two different lambdas in one script do not share a hash; a callable object
    without a name (``functools.partial``) by its pickle.
    """
    module = getattr(function, "__module__", None)
    qualname = getattr(function, "__qualname__", None)
    if qualname is None:
        return piece.data
    identity = f"{module}.{qualname}".encode()
    code = getattr(function, "__code__", None)
    if code is not None and (module in (None, "__main__") or "<" in qualname):
        identity += b"\0" + _code_identity(code)
    return identity


def _update_with_piece(h, piece: Piece) -> None:
    h.update(piece.data)
    for buf in piece.buffers:
        h.update(buf)


def task_hash(function, task: PickledTask, hash_ignore: Iterable[Union[int, str]] = (),
              input_pairs: Sequence[tuple] = ()) -> str:
    """Hash of a call: function identity, arguments not in ``hash_ignore``, input file names and contents.

    ``input_pairs`` are ``(source, path_in_stage_dir)`` from :func:`expand_input_files`; the name
    in the stage directory (not where the file was found) enters the hash.

    Returns
    -------
    str
        url-safe base64 of a SHA-256 digest (44 characters, usable in file names)
    """
    ignore = set(hash_ignore)
    for item in ignore:
        if not isinstance(item, (int, str)):
            raise TypeError(f"hash_ignore items must be argument positions (int) or keyword names (str), "
                            f"not {item!r}")
    h = hashlib.sha256()
    h.update(function_identity(function, task.function))
    for i, piece in enumerate(task.args):
        if i not in ignore:
            h.update(f"\0arg{i}\0".encode())
            _update_with_piece(h, piece)
    for name in sorted(task.kwargs):
        if name not in ignore:
            h.update(f"\0kwarg {name}\0".encode())
            _update_with_piece(h, task.kwargs[name])
    for source, dest in input_pairs:
        _update_with_file(h, source, dest)
    return base64.urlsafe_b64encode(h.digest()).decode()


def _update_with_file(h, source: Path, dest: Path) -> None:
    """Hash a staged file's (or directory's) name in the stage directory and its contents."""
    entries = [source] + (sorted(source.rglob("*")) if source.is_dir() else [])
    for entry in entries:
        h.update(b"\0file\0" + str(dest / entry.relative_to(source)).encode())
        if entry.is_file():
            with open(entry, "rb") as fin:
                for block in iter(lambda: fin.read(1 << 20), b""):
                    h.update(block)


def write_task(task: PickledTask, stage_dir: Path) -> Optional[dict]:
    """Write the pickled task into ``stage_dir/_expyre_task_in.pckl``; its preflight record, as
    :func:`read_preflight_record` would read it.

    The file is written in place: ``stage_dir`` is a directory under its temporary name
    (:func:`new_stage_dir`), which nobody reads before :func:`publish_stage_dir` renames it.
    """
    pieces = [task.function] + task.args + list(task.kwargs.values())
    index = {"n_args": len(task.args), "kwarg_names": list(task.kwargs),
             "pieces": [[len(p.data), [b.nbytes for b in p.buffers]] for p in pieces],
             **_referenced_versions(pieces)}
    index_bytes = pickle.dumps(index, protocol=4)
    path = stage_dir / jobfiles.TASK
    with writing("the pickled function and arguments", path):
        with open(path, "wb") as fout:
            fout.write(TASK_MAGIC)
            fout.write(struct.pack("<Q", len(index_bytes)))
            fout.write(index_bytes)
            for piece in pieces:
                fout.write(piece.data)
                for buf in piece.buffers:
                    fout.write(buf)
    return index.get("preflight")


# --------------------------------------------------------------------------- the stage directory

#: Prefix of a stage directory being written; renamed to ``run_...`` when complete.
_BUILDING_PREFIX = "_tmp_"


#: A directory still under its temporary name after this long was left by a killed process.
ABANDONED_AFTER_S = 24 * 3600
#: How often one process looks for them in a stage root (not for each of a thousand new jobs).
SWEEP_EVERY_S = 600
_last_sweep: Dict[Path, float] = {}


def new_stage_dir(stage_root: Path, name: str, arghash: str) -> Path:
    """A new, private (0700) directory to write a job's stage directory in, under a temporary
    name; :func:`publish_stage_dir` gives it its final name ``run_<name>_<hash>_<unique>``.

    Directories that a killed process left under a temporary name for more than
    :data:`ABANDONED_AFTER_S` seconds are removed on the way (looked for at most every
    :data:`SWEEP_EVERY_S` seconds by one process).
    """
    stage_root = Path(stage_root)
    with writing("the job's stage directory", stage_root):
        stage_root.mkdir(parents=True, exist_ok=True)
        if time.monotonic() - _last_sweep.get(stage_root, -ABANDONED_AFTER_S) > SWEEP_EVERY_S:
            remove_abandoned_stage_dirs(stage_root)
            _last_sweep[stage_root] = time.monotonic()
        return Path(tempfile.mkdtemp(prefix=f"{_BUILDING_PREFIX}run_{name}_{arghash}_", dir=stage_root))


def remove_abandoned_stage_dirs(stage_root: Path, older_than_s: float = ABANDONED_AFTER_S) -> List[Path]:
    """Remove stage directories left under their temporary name (by a killed ``ExPyRe(...)``)
    that nothing has written to for ``older_than_s`` seconds; returns what was removed."""
    removed = []
    now = time.time()
    for path in Path(stage_root).glob(f"{_BUILDING_PREFIX}run_*"):
        try:
            if path.is_dir() and not path.is_symlink() and now - path.stat().st_mtime > older_than_s:
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
        except OSError:
            pass
    return removed


def published_path(building: Path) -> Path:
    """The final name of a stage directory from :func:`new_stage_dir`."""
    return building.with_name(building.name[len(_BUILDING_PREFIX):])


def publish_stage_dir(building: Path) -> Path:
    """Rename a complete stage directory from :func:`new_stage_dir` to its final name."""
    final = published_path(building)
    os.rename(building, final)
    return final


#: Shared runner copies this process has checked, by path.
_runner_copies_checked: set = set()


def write_runner(stage_dir: Path, source: str) -> None:
    """Put the job runner (``source``) into a stage directory under construction.

    It is a hard link to one copy per expyre version in the stage root
    (``.<runner name>.<digest>``, written once, through a temporary name): a new link costs a
    directory entry, where a new file costs an inode, which is what makes creating files in
    a thousand new directories slow. Nothing writes to a runner in place (copy-back renames
    files into place). Where a link cannot be made (no hard links on the file system, or the
    copy has as many links as it may have), the file is written as it is.
    """
    target = stage_dir / jobfiles.RUNNER
    try:
        os.link(_shared_runner(stage_dir.parent, source), target)
    except OSError:
        target.write_text(source)


def _shared_runner(stage_root: Path, source: str) -> Path:
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    path = stage_root / f".{jobfiles.RUNNER}.{digest}"
    if path not in _runner_copies_checked:
        try:
            current = path.read_text()
        except (OSError, UnicodeDecodeError):
            current = None
        if current != source:
            replace_atomically(path, lambda tmp: tmp.write_text(source))
        _runner_copies_checked.add(path)
    return path


# --------------------------------------------------------------------------- input and output files

def check_input_file_specs(input_files: Iterable[Union[str, Path]]) -> List[Path]:
    """Validate ``input_files`` entries: relative paths must not contain ``..``."""
    paths = [Path(f) for f in input_files]
    for path in paths:
        if not path.is_absolute() and ".." in path.parts:
            raise ValueError(f"input file '{path}' contains '..'; give it as an absolute path "
                             "(it is then staged at the top of the job directory) or relative "
                             "to the current directory without '..'")
    return paths


def expand_input_files(specs: Sequence[Path], cwd: Path) -> List[tuple]:
    """Expand globs in input file specs into ``(source_path, path_in_stage_dir)`` pairs.

    Relative specs keep their relative layout; absolute ones land at the top of the stage
    directory under their own name. A spec that names an existing file is taken literally,
    even if it contains glob characters (``a[1].txt``). A spec that matches nothing is an
    error, and so is a file that would take the name of one of expyre's own job files.
    """
    pairs = []
    for spec in specs:
        path = spec if spec.is_absolute() else cwd / spec
        matches = [str(path)] if os.path.lexists(path) else sorted(glob.glob(str(path), recursive=True))
        if not matches:
            raise FileNotFoundError(f"input file '{spec}' matches no file (looked in {cwd})")
        for match in matches:
            source = Path(match)
            dest = Path(source.name) if spec.is_absolute() else source.relative_to(cwd)
            _check_not_reserved("input", str(spec), dest)
            pairs.append((source, dest))
    return pairs


def _check_not_reserved(kind: str, spec: str, dest: Path) -> None:
    if jobfiles.is_reserved(str(dest)):
        matched = "" if str(dest) == spec else f" (matched by '{spec}')"
        raise ValueError(f"{kind} file '{dest}'{matched} has the name of one of expyre's own job files "
                         f"(names starting with '{jobfiles.PREFIX}', or job.<id>.stdout/stderr); "
                         "rename it")


def stage_input_files(pairs: Sequence[tuple], stage_dir: Path) -> None:
    """Copy input files and directories into the stage directory, keeping modes."""
    for source, dest in pairs:
        target = stage_dir / dest
        with writing(f"input file '{source}'", target):
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, target, dirs_exist_ok=True, symlinks=True)
            else:
                shutil.copy2(source, target)


def check_output_file_specs(output_files: Iterable[str]) -> List[str]:
    """Validate ``output_files`` entries: relative, without ``..``."""
    specs = [str(f) for f in output_files]
    for spec in specs:
        if Path(spec).is_absolute() or ".." in Path(spec).parts:
            raise ValueError(f"output file '{spec}' must be a path relative to the job directory, without '..'")
        _check_not_reserved("output", spec, Path(spec))
    return specs


def copy_output_files(specs: Sequence[str], stage_dir: Path, dest_dir: Path) -> List[Path]:
    """Copy the files matching ``specs`` from the stage directory into ``dest_dir``, keeping layout."""
    from .transports import tarstream
    copied = []
    for spec in specs:
        literal = stage_dir / spec
        found = [str(literal)] if os.path.lexists(literal) else sorted(glob.glob(str(literal), recursive=True))
        # a glob such as '*' must not copy expyre's own files out of the job directory
        matches = [m for m in found if not jobfiles.is_reserved(str(Path(m).relative_to(stage_dir)))]
        if not matches:
            refused = [line for line in tarstream.refused_entries(stage_dir)
                       if Path(line.partition(":")[0]).match(spec) or line.startswith(spec + ":")]
            if refused:
                raise FileNotFoundError(f"output file '{spec}' was not copied back from the job's directory: "
                                        f"{'; '.join(refused)}")
            raise FileNotFoundError(f"output file '{spec}' was not produced by the job (looked in {stage_dir})")
        for match in matches:
            rel = Path(match).relative_to(stage_dir)
            target = dest_dir / rel
            with writing(f"output file '{rel}'", target):
                target.parent.mkdir(parents=True, exist_ok=True)
                if Path(match).is_dir():
                    shutil.copytree(match, target, dirs_exist_ok=True, symlinks=True)
                else:
                    copy_atomically(Path(match), target)
            copied.append(target)
    return copied


