"""Batch header lines, shared by all scheduler plugins: formatting them with a job's node dict,
the extra lines a user sets in ``EXPYRE_HEADER_EXTRA``, and the rules for default lines (which
options and resources the configured lines already give, so that a default line they cover is
left out, and how a file name is written as a directive's argument)."""
from __future__ import annotations

import json
import os
import re
import shlex
from typing import Iterable, List, Optional, Set, Tuple

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


# --------------------------------------------------------------------------- what configured lines ask for

_RESOURCE_NAME = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*=")


def directive_words(lines: Iterable[str], prefix: str) -> List[List[str]]:
    """The words (split as the shell would, else at blanks) after ``prefix`` of each line that
    starts with it (``#SBATCH``, ``#$``, ``#PBS``); other lines are left out."""
    found = []
    for line in lines:
        stripped = line.strip()
        if stripped.startswith(prefix):
            try:
                found.append(shlex.split(stripped[len(prefix):]))
            except ValueError:
                found.append(stripped[len(prefix):].split())
    return found


def directive_options(lines: Iterable[str], prefix: str, attached: bool = False) -> Set[str]:
    """The options the ``prefix`` lines among ``lines`` set: ``--name`` for ``--name=value``, and
    each ``-x`` word whole (``-cwd``), or only its first two characters when the scheduler takes a
    short option's value attached to it (``attached``: Slurm's ``-N2``).

    A scheduler plugin leaves out a default line whose option the configured lines already set, so
    that a configured line decides (see :func:`unless_given`)."""
    options: Set[str] = set()
    for word in (w for words in directive_words(lines, prefix) for w in words):
        if word.startswith("--"):
            options.add(word.split("=", 1)[0])
        elif word.startswith("-") and len(word) >= 2:
            options.add(word[:2] if attached else word)
    return options


def requested_resources(lines: Iterable[str], prefix: str, option: str = "-l") -> Set[str]:
    """The resources (``h_rt``, ``nodes``, ``mem`` ...) that the ``option`` (``-l``) arguments of the
    ``prefix`` lines among ``lines`` ask for, including those in ``:``-separated chunks
    (``select=2:ncpus=8:mem=4gb``) and in an argument attached to the option (``-lnodes=1``)."""
    found: Set[str] = set()
    for words in directive_words(lines, prefix):
        for i, word in enumerate(words):
            value = words[i + 1] if word == option and i + 1 < len(words) else (
                word[len(option):] if word.startswith(option) and len(word) > len(option) else "")
            found.update(_RESOURCE_NAME.findall(value.replace(":", ",")))
    return found


def unless_given(given: Set[str], *rules: Tuple[Iterable[str], Optional[str]]) -> List[str]:
    """The lines of ``(options, line)`` rules whose line is set (not None or empty) and none of
    whose options is in ``given`` (what the configured lines already say): the default lines a
    configured line does not replace."""
    return [line for options, line in rules if line and not set(options) & given]


def quoted_directive_value(value: str, safe: str) -> Optional[str]:
    """``value`` as a directive's argument: as it is when it matches the regular expression
    ``safe`` whole, else double-quoted; None when it has a character no directive can quote
    (a double quote, a backslash or a line break)."""
    if re.fullmatch(safe, value):
        return value
    return None if re.search(r'["\\\n\r\0]', value) else f'"{value}"'
