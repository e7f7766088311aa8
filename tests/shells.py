"""Shells for the scheduler plugins' tests, shared by the Slurm, Grid Engine and PBS tests.

:class:`ReplayShell` is a fake: it stands in for a transport's shell in unit tests and answers
with captured (or hand-written) scheduler output. :class:`CountingShell` wraps a real shell and
counts how often a scheduler command appears in what is sent through it.
"""
import re
from typing import Callable, List

from expyre import CommandResult, RemoteCommandError


class ReplayShell:
    """Fake transport shell: ``answer(command)`` returns a CommandResult (or raises: a timeout,
    a lost connection). Every command is recorded in ``commands``."""

    host = "replayed-cluster"

    def __init__(self, answer: Callable[[str], CommandResult]):
        self.answer = answer
        self.commands: List[str] = []

    def run(self, command, *, input=None, timeout=None, check=True, idempotent=True):
        self.commands.append(command)
        result = self.answer(command)
        if check and result.returncode != 0:
            raise RemoteCommandError(self.host, result)
        return result

    def close(self):
        pass


class CountingShell:
    """Passes commands on to a real shell; counts them (``commands``) and the places in them
    that match ``pattern`` (``matches``, a multi-line regular expression)."""

    def __init__(self, shell, pattern: str):
        self.shell = shell
        self.host = shell.host
        self.pattern = re.compile(pattern, re.MULTILINE)
        self.commands = 0
        self.matches = 0

    def run(self, command, **kwargs):
        self.commands += 1
        self.matches += len(self.pattern.findall(command))
        return self.shell.run(command, **kwargs)

    def close(self):
        self.shell.close()
