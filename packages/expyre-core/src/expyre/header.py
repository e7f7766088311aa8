"""Formatting of batch header lines with a job's node dict, shared by all scheduler plugins."""
from __future__ import annotations

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
