"""expyre: run a Python function as a job on an HPC cluster or any SSH host, and get its result back.

    >>> from expyre import ExPyRe
    >>> xpr = ExPyRe('sum', function=sum, args=[[1, 2, 3]])
    >>> xpr.start(resources={'max_time': '1h', 'num_nodes': 1})
    >>> result, stdout, stderr = xpr.get_results()

Plugin authors import :data:`hookimpl` and the contract's types from here.
"""
from .batch import SubmitLimitError
from .errors import (
    ExPyReJobDiedError,
    ExPyRePreflightError,
    ExPyReRemoteEnvironmentError,
    ExPyReRemoteTraceback,
    ExPyReTimeoutError,
    FailedSubprocessWarning,
)
from .hookspecs import hookimpl
from .hooktypes import (
    FINISHED_REMOTE_STATES,
    REMOTE_STATES,
    CommandResult,
    ConnectionLostError,
    JobSpec,
    RemoteCommandError,
    RemoteJob,
    Shell,
    quote,
    quote_all,
    run_unchecked,
)
from .shellfunctions import define as shell_function

__version__ = "0.1.0"

__all__ = ["ExPyRe", "Executor", "start_many", "ExPyReJobDiedError", "ExPyReTimeoutError",
           "ExPyReRemoteEnvironmentError", "ExPyRePreflightError", "FailedSubprocessWarning",
           "ExPyReRemoteTraceback", "hookimpl", "JobSpec", "RemoteJob", "Shell", "CommandResult",
           "RemoteCommandError", "ConnectionLostError", "SubmitLimitError", "REMOTE_STATES", "FINISHED_REMOTE_STATES",
           "quote", "quote_all", "run_unchecked", "shell_function", "__version__"]


def __getattr__(name):
    # ExPyRe, Executor, start_many, the config module and its systems are imported on first use,
    # so that "import expyre" (for example by a plugin for hookimpl) does not read the config, the
    # jobs database or the plugins. ExPyRe 0.1.6 had expyre.config and expyre.systems at package
    # level; so do we.
    if name == "ExPyRe":
        from .func import ExPyRe
        return ExPyRe
    if name == "Executor":
        from .executor import Executor
        return Executor
    if name == "start_many":
        from .many import start_many
        return start_many
    if name == "config":
        import importlib
        return importlib.import_module(".config", __name__)
    if name == "systems":
        from . import config
        return config.systems
    raise AttributeError(f"module 'expyre' has no attribute {name!r}")
