"""Everything a plugin author imports, from one module::

    from expyre.plugin import BatchScheduler, JobSpec, OutputError, RemoteJob, Sections, quote

* the marker for hook implementations (:data:`hookimpl`) and the contract's types
  (:class:`JobSpec`, :class:`RemoteJob`, :class:`Shell`, :class:`CommandResult`, the remote states);
* quoting for the remote shell (:func:`quote`, :func:`quote_all`) and the errors a hook raises
  (:class:`RemoteCommandError`, :class:`ConnectionLostError`);
* for a transport: :func:`command_result`; for a header: :func:`format_header_lines` and the
  rules for default lines (:func:`optional_lines`, :func:`directive_options`,
  :func:`requested_resources`, :func:`unless_given`, :func:`quoted_directive_value`);
* the batch-scheduler toolkit (:mod:`expyre.batch`): :class:`BatchScheduler`, :class:`BatchError`,
  :class:`OutputError`, :data:`Sections`, :func:`job_name`, :func:`ask_host`; reading durations
  schedulers print: :func:`duration_seconds`;
* the job-file names a plugin may need (:mod:`expyre.jobfiles`).

The hook specifications themselves are documented in :mod:`expyre.hookspecs`; the conformance
kit is :class:`expyre.testing.SchedulerConformance`.
"""
from . import jobfiles
from .batch import BatchError, BatchScheduler, OutputError, Sections, ask_host, job_name
from .header import (
    directive_options,
    format_header_lines,
    optional_lines,
    quoted_directive_value,
    requested_resources,
    unless_given,
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
                        command_result,
                        quote,
                        quote_all,
                        run_unchecked,
)
from .units import duration_seconds

__all__ = ["hookimpl", "JobSpec", "RemoteJob", "Shell", "CommandResult", "REMOTE_STATES", "FINISHED_REMOTE_STATES",
           "quote", "quote_all", "run_unchecked", "RemoteCommandError", "ConnectionLostError", "command_result",
           "format_header_lines", "optional_lines", "directive_options", "requested_resources", "unless_given",
           "quoted_directive_value", "duration_seconds", "BatchScheduler", "BatchError", "OutputError", "Sections",
           "job_name", "ask_host", "jobfiles"]
