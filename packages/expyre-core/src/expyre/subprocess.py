"""ExPyRe 0.1.6's ``expyre.subprocess``, kept for code that imports it (compatibility module).

expyre itself does not use this module: it runs remote commands through its transports (one
long-lived connection per host). Scripts written for ExPyRe that call ``subprocess_run`` or
``subprocess_copy``, or filter :class:`FailedSubprocessWarning`, keep working with the same
signatures and behaviour:

* ``subprocess_run(host, args, ...)`` runs ``args`` through ``bash -c`` in the home directory,
  over ``ssh`` when ``host`` is given, retrying as ``EXPYRE_RETRY`` says, warns
  :class:`FailedSubprocessWarning` for every failed try and raises ``RuntimeError`` when the
  last one fails. As in ExPyRe, ``args`` are shell words: each is kept as one word (blanks,
  quotes and parentheses in it are escaped) and ``$``-expansions, globs and operators such as
  ``&&`` are left to the shell.
* ``subprocess_copy(from_files, to_file, ...)`` copies with ``rsync`` to or from one host.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess as _subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

from .errors import FailedSubprocessWarning
from .retry import retry_settings

__all__ = ["FailedSubprocessWarning", "subprocess_run", "subprocess_copy"]

#: As in ExPyRe, ``EXPYRE_RSH`` names the remote shell command when none is given.
_DEFAULT_REMSH = "ssh"
#: ``from_host``/``to_host`` default: that end is this machine, relative paths from the working directory.
_LOCAL = "_LOCAL_"


def _warn(message: str) -> None:
    if "pytest" in sys.modules:  # ExPyRe also printed it, as pytest collects warnings out of sight
        sys.stderr.write(message + "\n")
        sys.stderr.flush()
    warnings.warn(message, FailedSubprocessWarning, stacklevel=3)


def _shell_word(arg: str) -> str:
    return re.sub(r"""(['" ()])""", r"\\\1", str(arg))


def _command_line(args: Sequence[str], in_dir: str) -> str:
    steps = []
    if in_dir == "_HOME_":
        steps.append("cd $HOME")
    elif in_dir != "_PWD_":
        steps.append("cd " + in_dir)
    if args:
        steps.append(" ".join(_shell_word(a) for a in args))
    return " && ".join(steps)


def _argv(args: Sequence[str], shell: str, host: Optional[str], remsh_cmd: Union[str, Sequence[str]],
          in_dir: str) -> List[str]:
    if in_dir == "_PWD_" and host is not None:
        raise ValueError("in_dir='_PWD_' is only possible without a host")
    shell_words = shell.split()
    command = _command_line(args, in_dir)
    if host is None:
        return shell_words + [command]
    remsh = remsh_cmd.split() if isinstance(remsh_cmd, str) else list(remsh_cmd)
    # ssh joins its arguments into one command line for the remote login shell: quote the command once
    return remsh + [host] + shell_words + [shlex.quote(command)]


def _retry_pair(retry: Optional[Tuple[int, float]]) -> Tuple[int, float]:
    tries, wait = retry if retry is not None else retry_settings()
    return max(int(tries), 1), max(float(wait), 0.0)


def subprocess_run(host: Optional[str], args: Sequence[str], script: Optional[str] = None, shell: str = "bash -c",
                   remsh_cmd: Union[str, Sequence[str], None] = None, retry: Optional[Tuple[int, float]] = None,
                   in_dir: str = "_HOME_", dry_run: bool = False, verbose: bool = False):
    """Run a command, on ``host`` over ``remsh_cmd`` (ssh) or on this machine.

    Parameters
    ----------
    host: str or None
        ``[user@]host``, or None to run here (still starting in the home directory, like ssh)
    args: list(str)
        the command and its arguments, as shell words
    script: str, optional
        text for the command's standard input
    shell: str, default "bash -c"
        shell, with the flag that makes it run its next argument
    remsh_cmd: str or list(str), default ``$EXPYRE_RSH`` or "ssh"
        remote shell command
    retry: (int, float), default from ``EXPYRE_RETRY`` (3 tries, 5 s apart)
        number of tries and seconds between them
    in_dir: str, default "_HOME_"
        directory to run in: ``_HOME_`` (home), ``_PWD_`` (working directory; only without a host)
        or a path
    dry_run: bool, default False
        return ``(argv, script)`` instead of running
    verbose: bool, default False
        print the command and its output

    Returns
    -------
    (str, str)
        the command's stdout and stderr

    Raises
    ------
    RuntimeError
        the command failed on its last try
    """
    if remsh_cmd is None:
        remsh_cmd = os.environ.get("EXPYRE_RSH", _DEFAULT_REMSH)
    tries, wait = _retry_pair(retry)
    argv = _argv(args, shell, host, remsh_cmd, in_dir)
    if verbose:
        print(("DRY-RUN COMMAND:" if dry_run else "RUNNING COMMAND:") + "\n" + shlex.join(argv))
        if script is not None:
            print("SCRIPT:\n" + script.rstrip())
    if dry_run:
        return argv, (script.encode() if script is not None else None)
    shown = " ".join(argv)
    for attempt in range(tries):
        done = _subprocess.run(argv, input=script.encode() if script is not None else None, capture_output=True)
        stdout, stderr = done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace")
        if done.returncode == 0:
            if attempt > 0:
                _warn(f'Succeeded to run "{shown}" on attempt {attempt} after failure(s)')
            break
        if attempt == tries - 1:
            _warn(f'Failed to run "{shown}" on attempt {attempt} for the last time, giving up.\nSTDERR\n{stderr}')
            raise RuntimeError(f'Failed to run command "{shown}" with err {stderr}')
        _warn(f'Failed to run "{shown}" on attempt {attempt}, trying again.\nSTDERR\n{stderr}')
        time.sleep(wait)
    if verbose:
        print(f"GOT STDOUT:\n{stdout}\nGOT STDERR:\n{stderr}")
    return stdout, stderr


def _local_path(path: Union[str, Path], host: Optional[str]) -> str:
    # host None: this machine, but relative paths are from the home directory (as rsync does for a host)
    if host is None and not Path(path).is_absolute():
        return str(Path.home() / path)
    return str(path)


def _with_host(path: str, host: Optional[str]) -> str:
    return f"{host}:{path}" if host not in (None, _LOCAL) else path


def subprocess_copy(from_files: Union[str, Path, Sequence[Union[str, Path]]], to_file: Union[str, Path],
                    from_host: Optional[str] = _LOCAL, to_host: Optional[str] = _LOCAL, rcp_args: str = "-a",
                    rcp_cmd: str = "rsync", remsh_cmd: Optional[str] = None,
                    retry: Optional[Tuple[int, float]] = None, remsh_flags: str = "-e", delete: bool = False,
                    verbose: bool = False, dry_run: bool = False):
    """Copy files to or from one host with ``rcp_cmd`` (rsync).

    Parameters
    ----------
    from_files: str, Path or list of them
        files or directories to copy (without ``host:``)
    to_file: str or Path
        one destination (without ``host:``)
    from_host, to_host: str or None
        ``[user@]host`` of the source or of the destination (at most one of them); None for this
        machine with relative paths taken from the home directory; left out: this machine, from
        the working directory
    rcp_args: str, default "-a"
        options for ``rcp_cmd``
    rcp_cmd: str, default "rsync"
    remsh_cmd: str, default ``$EXPYRE_RSH`` or "ssh"
        remote shell for ``rcp_cmd`` (given with ``remsh_flags``)
    retry: (int, float), optional
        as for :func:`subprocess_run`
    remsh_flags: str, default "-e"
    delete: bool, default False
        delete destination files that the source does not have (``--delete``)
    verbose, dry_run: bool, default False
        as for :func:`subprocess_run`

    Raises
    ------
    RuntimeError
        both ends are remote, or the copy failed on its last try
    """
    if from_host != _LOCAL and to_host != _LOCAL:
        raise RuntimeError(f'Cannot have remote machine for both of source host "{from_host}" and "{to_host}"')
    if remsh_cmd is None:
        remsh_cmd = os.environ.get("EXPYRE_RSH", _DEFAULT_REMSH)
    if isinstance(from_files, (str, Path)):
        from_files = [from_files]
    sources = [_with_host(_local_path(f, from_host), from_host) for f in from_files]
    destination = _with_host(_local_path(to_file, to_host), to_host)
    options = [*remsh_flags.split(), remsh_cmd, *rcp_args.split()] + (["--delete"] if delete else [])
    return subprocess_run(None, [rcp_cmd, *options, *sources, destination], retry=retry, in_dir="_PWD_",
                          dry_run=dry_run, verbose=verbose)
