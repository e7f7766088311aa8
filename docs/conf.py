"""Sphinx configuration of the expyre documentation.

Build: ``pip install -r docs/requirements.txt`` then
``sphinx-build -W --keep-going -b html docs docs/_build/html``.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
# the sources, so that the docs build from a checkout even where expyre is not installed
sys.path.insert(0, os.path.join(HERE, "..", "packages", "expyre-core", "src"))

project = "expyre"
author = "the expyre authors"
copyright = "the expyre authors"
try:
    from expyre import __version__ as release
except ImportError:  # pragma: no cover
    release = "0.1.0"
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx_click",
    # the scheduler plugins' READMEs (Markdown) are pages of this site: docs/plugins/*.rst
    "myst_parser",
]
myst_heading_anchors = 3

napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
autodoc_member_order = "bysource"
autodoc_typehints = "none"  # the numpy docstrings already give the types
# paramiko and pluggy are real dependencies; nothing needs mocking

exclude_patterns = ["_build", "README.md", "examples/**/README.md", "examples/**/*.egg-info"]
html_theme = "alabaster"
# alabaster's fixed 940 px page cuts off the config examples (100-character lines) even on wide
# screens: let the page use the window, up to a readable maximum, with a smaller code font.
html_theme_options = {"page_width": "min(1400px, 96%)", "body_max_width": "none",
                      "code_font_size": "0.8em"}
html_static_path = []
# Numpy docstrings name types in prose ("list(str)", "dict"); they are not cross-reference targets.
nitpicky = False
suppress_warnings = []


# ----------------------------------------------------------------------------- sphinx-click
# The xpr help texts are plain text for a terminal; sphinx-click renders them as
# reStructuredText, where a quoted 'run_' or '*' is markup. Show single-quoted words as
# inline literals instead.
import re  # noqa: E402

_QUOTED = re.compile(r"'([^'\s][^']*)'")
_LONE_STAR = re.compile(r"(?<=\s)\*(?=[\]\s,)]|$)")  # "[default: *]"


def _literal_quotes(app, ctx, lines):
    for i, line in enumerate(lines):
        line = _QUOTED.sub(lambda m: "``" + m.group(1) + "``", line)
        lines[i] = _LONE_STAR.sub("``*``", line)


def setup(app):
    for event in ("sphinx-click-process-description", "sphinx-click-process-options",
                  "sphinx-click-process-arguments", "sphinx-click-process-epilog"):
        app.connect(event, _literal_quotes)
