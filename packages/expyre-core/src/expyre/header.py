"""Batch header lines: formatting them with a job's node dict (shared by all scheduler plugins),
and the extra lines a user sets in ``EXPYRE_HEADER_EXTRA``."""
from __future__ import annotations

import json
import os
from typing import Iterable, List


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
