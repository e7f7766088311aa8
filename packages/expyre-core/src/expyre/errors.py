"""Exceptions a user of :class:`expyre.ExPyRe` may catch."""
from __future__ import annotations


class ExPyReJobDiedError(Exception):
    """The remote job ended without a result or a Python exception: it was killed, ran out of
    time or memory, was cancelled, or vanished from the scheduler."""


class ExPyReTimeoutError(TimeoutError):
    """``get_results`` waited longer than its ``timeout`` for the job to finish."""


class ExPyReRemoteEnvironmentError(RuntimeError):
    """The remote Python could not load the job's function and arguments (a module the pickle
    needs is missing there, or is an incompatible version)."""


class ExPyRePreflightError(ExPyReRemoteEnvironmentError):
    """Preflight found, before anything was queued, that the job side of a system cannot load
    the call (a module missing there, numpy 1.x there for a pickle that needs numpy 2, another
    Python for code pickled by value). The message names module, versions, system and fix.

    Attributes
    ----------
    system: str
        the system's name
    findings: list(expyre.preflight.Finding)
        each problem: ``module``, ``local`` and ``remote`` versions, ``problem``, ``fix``
    """

    def __init__(self, message: str, system: str = "", findings: tuple = ()):
        super().__init__(message)
        self.system = system
        self.findings = list(findings)


class NotAFunctionError(TypeError, AssertionError):
    """``ExPyRe(function=...)`` was not given a callable. Also an ``AssertionError``, which ExPyRe
    raised, so that its callers' ``except`` clauses still match."""


class FailedSubprocessWarning(RuntimeWarning):
    """A command on a system's host failed (a try that will be repeated, or the last one).

    ExPyRe's warning category (``expyre.subprocess.FailedSubprocessWarning``): code that filters
    or escalates it keeps working. Status queries that fail warn with its subclass
    :class:`expyre.gather.StatusQueryWarning`.
    """


class ExPyReRemoteTraceback(Exception):
    """Carries the remote traceback text; set as ``__cause__`` of a re-raised remote exception."""

    def __init__(self, text: str):
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return "\n" + self.text
