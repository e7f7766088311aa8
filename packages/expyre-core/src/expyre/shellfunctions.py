"""Shell functions that expyre's remote commands call, defined once per session where a shell keeps one.

A remote command that calls one of these functions carries its definition (the text
:func:`define` returns), so that it runs whole on any shell: ``bash -c``, one ``ssh`` per
command, a site's own transport. The ``ssh`` transport keeps one ``bash`` on the host for every
command of a connection; it defines a function there the first time a command carries it, and
from then on sends commands without the definition (:func:`split`). That matters on the path of
every job: bash reads its commands from a pipe one byte per system call, and the session parses
each command a second time (``eval``), so each kilobyte sent costs the host about 0.3 ms; the
definitions were four fifths of a job's stage-and-submit command.

Only function definitions are registered. Defining a function does nothing else, so defining it
in the session ahead of a command that would have defined it (with the same text) changes
nothing; commands run in subshells, so none can change the session's definitions. A registered
text is taken out of a command wherever it appears as it is. Only expyre's own commands carry
these texts, and as code. A copy quoted as data with :func:`expyre.quote` never matches: each
definition's first line is a comment holding a single quote, which that quoting escapes.
"""
from __future__ import annotations

import re
from typing import Dict, List, MutableSet, Tuple

#: Every registered definition text, and the name of the function it defines.
_DEFINITIONS: Dict[str, str] = {}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def define(name: str, body: str) -> str:
    """The definition of the shell function ``name`` running ``body``, registered so that a
    session defines it once (see the module's description).

    The names share the host shell's one namespace: expyre's start with ``_xpr_``.

    Raises
    ------
    ValueError
        ``name`` is not a shell name, or a different function of that name is registered
    """
    if not _NAME.match(name):
        raise ValueError(f"shell function name {name!r}: letters, digits and _ only, not starting with a digit")
    text = f"{name}() {{ # expyre's\n{body}\n}}\n"
    if text not in _DEFINITIONS and name in _DEFINITIONS.values():
        raise ValueError(f"shell function {name!r} is registered already with another body")
    _DEFINITIONS[text] = name
    return text


def split(command: str, defined: MutableSet[str]) -> Tuple[str, str]:
    """``(definitions, rest)``: the registered definitions that ``command`` carries and that are
    not in ``defined`` (the session's; they are added to it), and ``command`` without any
    registered definition. The session runs ``definitions`` at its own level, then ``rest``."""
    new: List[str] = []
    for text in _DEFINITIONS:
        if text in command:
            command = command.replace(text, "")
            if text not in defined:
                defined.add(text)
                new.append(text)
    return "".join(new), command
