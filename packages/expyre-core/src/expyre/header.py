"""Batch header lines: formatting them with a job's node dict (shared by all scheduler plugins),
and the extra lines a user sets in ``EXPYRE_HEADER_EXTRA``."""
from __future__ import annotations

import json
import os
from typing import Iterable, List, Optional, Tuple

from .hooktypes import JobSpec


class HeaderTemplateError(ValueError):
    """A header line from the config or ``header_extra`` uses a template key that does not exist."""


def format_header_lines(lines: Iterable[str], node_dict: dict) -> List[str]:
    """Format each header line with ``str.format(**node_dict)``.

    Parameters
    ----------
    lines: iterable(str)
        template lines such as ``"#SBATCH --nodes={num_nodes}"``
    node_dict: dict
        values the templates may use (see :class:`expyre.JobSpec`)

    Returns
    -------
    list(str)
        the formatted lines

    Raises
    ------
    HeaderTemplateError
        naming the line, the unknown key and the keys that exist
    """
    formatted = []
    for line in lines:
        try:
            formatted.append(line.format(**node_dict))
        except KeyError as exc:
            raise HeaderTemplateError(
                f"header line {line!r} uses unknown key {{{exc.args[0]}}}; "
                f"available keys: {', '.join(sorted(node_dict))}") from None
        except (ValueError, IndexError) as exc:
            raise HeaderTemplateError(f"header line {line!r} is not a valid template: {exc} "
                                      "(write a literal brace as '{{' or '}}')") from None
    return formatted


def env_header_extra() -> List[str]:
    """Header lines from ``$EXPYRE_HEADER_EXTRA`` (a JSON list of strings), added after the
    system's, the partition's and the job's own lines."""
    raw = os.environ.get("EXPYRE_HEADER_EXTRA")
    if not raw:
        return []
    try:
        lines = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"EXPYRE_HEADER_EXTRA must be a JSON list of header lines, got {raw!r}: {exc}") from None
    if not isinstance(lines, list) or not all(isinstance(line, str) for line in lines):
        raise ValueError(f"EXPYRE_HEADER_EXTRA must be a JSON list of strings, got {raw!r}")
    return lines


def queue_and_wall_time(job: JobSpec) -> Tuple[Optional[str], Optional[str]]:
    """The partition (queue) a job goes to and its wall time (``H:MM:SS``), each None when the
    job has none: what every scheduler's default header asks for."""
    return job.node_dict.get("partition", job.partition) or None, job.node_dict.get("max_time") or None


def optional_lines(*pairs: Tuple[str, Optional[object]]) -> List[str]:
    """``template.format(value)`` for each ``(template, value)`` whose value is set, so that a
    job without a partition or a wall time gets no such directive."""
    return [template.format(value) for template, value in pairs if value]
