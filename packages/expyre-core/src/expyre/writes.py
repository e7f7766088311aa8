"""Local writes that say what was being written, and where, when they fail.

A full disk otherwise shows only ``[Errno 28] No space left on device``, with no hint of which
of expyre's files (a stage directory, a copied-back result, an output file) could not be written.
"""
from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Callable, Union


class writing:
    """Context manager that turns an ``OSError`` raised inside it into one of the same type and
    errno whose message says what was being written and where.

    Example: ``with writing("the pickled function and arguments", path): ...``
    """

    def __init__(self, what: str, where: Union[str, Path]):
        self.what, self.where = what, where

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is not None and issubclass(exc_type, OSError) and not getattr(exc, "_expyre_described", False):
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            hint = " (the disk is full)" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else ""
            described = OSError(exc.errno, f"cannot write {self.what} to {self.where}: {reason}{hint}")
            described._expyre_described = True
            raise described from exc
        return False


def copy_atomically(source: Path, target: Path, copy: Callable[[Path, Path], object] = shutil.copy2) -> None:
    """Copy ``source`` with ``copy`` to a temporary name next to ``target`` and rename it into
    place, so that a reader of ``target`` sees the old file or the new one, never a partial one."""
    replace_atomically(target, lambda tmp: copy(source, tmp))


def replace_atomically(target: Path, fill: Callable[[Path], object]) -> None:
    """Have ``fill`` write a temporary file next to ``target``, then rename it into place (see
    :func:`copy_atomically`)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        fill(Path(tmp))
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def private_dir(path: Path, what: str) -> Path:
    """``path`` created if needed, owned by this user and closed to others (0700), or an error
    saying that expyre will not put ``what`` there (another user's directory, or not a directory)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise RuntimeError(f"{path} is not a directory of this user: expyre will not put {what} there")
    if stat.S_IMODE(info.st_mode) != 0o700:
        path.chmod(0o700)
    return path
