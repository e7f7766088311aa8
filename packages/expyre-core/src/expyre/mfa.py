"""One-time codes for hosts that ask for more than a key (MFA, keyboard-interactive login).

Sites that require a time-based one-time password (TOTP) accept the user's key and then ask a
question such as ``Verification code:``. expyre answers it from, in this order:

1. a Python callable registered with :func:`set_code_provider` (a program that has its own way
   to get codes, a GUI, a test);
2. the system's ``ssh.mfa_command``: a command on this machine, run without a shell, that prints
   the code on its standard output (for example ``["oathtool", "--totp", "-b", "@secret-file"]``
   or ``"pass otp cluster"``);
3. the terminal, with :func:`getpass.getpass`, when the process has one.

Without any of them the login fails at once with :class:`MFACodeUnavailableError`, instead of
waiting for an answer that will never come. The ``ssh`` transport logs in once per host per
process and keeps that connection, so a code is asked for once per session; the ``openssh``
transport keeps its own ControlMaster connection for ``control_persist`` seconds, so later
processes within that time need no code at all.
"""
from __future__ import annotations

import getpass
import os
import shlex
import subprocess
import sys
import threading
from typing import Callable, List, Optional, Sequence, Union

#: ``provider(host, prompt) -> code``: ``host`` is ``user@host:port``, ``prompt`` the server's question.
CodeProvider = Callable[[str, str], str]

_provider: Optional[CodeProvider] = None
_lock = threading.Lock()
#: Seconds a ``mfa_command`` may take before the login is abandoned.
COMMAND_TIMEOUT = 60.0


class MFACodeUnavailableError(RuntimeError):
    """The host asks for a one-time code and expyre has no way to get one (no terminal, no
    ``ssh.mfa_command``, no registered provider), or the way it has failed."""


def set_code_provider(provider: Optional[CodeProvider]) -> None:
    """Register the callable that supplies one-time codes (None removes it).

    Parameters
    ----------
    provider: callable(host: str, prompt: str) -> str, or None
        called once per login that asks a question, with the destination (``user@host:port``)
        and the server's prompt; returns the answer. It is called from paramiko's transport
        thread: it must not wait on the thread that is connecting.
    """
    global _provider
    with _lock:
        _provider = provider


def code_provider() -> Optional[CodeProvider]:
    """The callable registered with :func:`set_code_provider`, if any."""
    with _lock:
        return _provider


def command_argv(command: Union[str, Sequence[str]]) -> List[str]:
    """``ssh.mfa_command`` as an argument vector (a string is split as a shell would, without a shell)."""
    argv = shlex.split(command) if isinstance(command, str) else [str(word) for word in command]
    return [os.path.expanduser(word) for word in argv]


def code_from_command(command: Union[str, Sequence[str]], destination: str) -> str:
    """Run ``ssh.mfa_command`` and return the first line it printed.

    Raises
    ------
    MFACodeUnavailableError
        the command cannot be run, fails, times out or prints nothing
    """
    argv = command_argv(command)
    shown = " ".join(shlex.quote(word) for word in argv)
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=COMMAND_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise MFACodeUnavailableError(f"ssh.mfa_command '{shown}' for {destination} could not be run: {exc}") from None
    lines = proc.stdout.decode(errors="replace").strip().splitlines()
    if proc.returncode != 0 or not lines:
        err = proc.stderr.decode(errors="replace").strip() or "no output"
        raise MFACodeUnavailableError(f"ssh.mfa_command '{shown}' for {destination} exited with status "
                                      f"{proc.returncode} and printed no code: {err}")
    return lines[0].strip()


def has_terminal() -> bool:
    """True when a person can be asked: standard input is a terminal."""
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def no_way_message(destination: str, prompt: str, system: str = "", openssh: bool = False) -> str:
    """What to do when a host asks for a code and expyre cannot get one."""
    which = f" '{system}'" if system else ""
    provider = ("" if openssh else
                ", or register a provider with expyre.mfa.set_code_provider(func)")
    return (f"{destination} asks for a one-time code ({prompt.strip() or 'keyboard-interactive login'}) and "
            f"there is no terminal to ask on. Give the system{which} \"ssh\": {{\"mfa_command\": [...]}}, a "
            f"command that prints the code{provider}, or run the script from a terminal once (see the docs "
            "page 'One login per session')")


class Answerer:
    """Answers one login's keyboard-interactive questions (paramiko's handler signature).

    Errors from a provider or command are kept in :attr:`error` (the handler runs in paramiko's
    transport thread, where an exception would only break the connection) and answered with an
    empty string, so that the login fails and the caller raises :attr:`error` instead.
    """

    def __init__(self, destination: str, command: Union[str, Sequence[str], None] = None, system: str = ""):
        self.destination = destination
        self.command = command
        self.system = system
        self.error: Optional[BaseException] = None
        self.asked = 0

    def can_answer(self) -> bool:
        """True if some way to get a code exists (checked before the server asks)."""
        return code_provider() is not None or bool(self.command) or has_terminal()

    def answer(self, prompt: str, echo: bool) -> str:
        provider = code_provider()
        if provider is not None:
            return str(provider(self.destination, prompt)).strip()
        if self.command:
            return code_from_command(self.command, self.destination)
        if has_terminal():
            return getpass.getpass(f"{self.destination} {prompt.strip()} ")
        raise MFACodeUnavailableError(no_way_message(self.destination, prompt, self.system))

    def __call__(self, title: str, instructions: str, prompts) -> List[str]:
        answers = []
        for prompt, echo in prompts:
            self.asked += 1
            if self.error is not None:
                answers.append("")
                continue
            try:
                answers.append(self.answer(prompt, echo))
            except BaseException as exc:  # kept for the connecting thread (see the class docstring)
                self.error = exc
                answers.append("")
        return answers
