"""The documentation builds with warnings treated as errors, and its examples run.

Runnable examples live in ``docs/examples/snippets/*.py`` and the pages show them with
``literalinclude``, so the docs show exactly the code run here. Each snippet runs in its own
Python process with a fresh HOME; ``NAME.config.json`` next to ``NAME.py``, if present, becomes
that HOME's ``~/.expyre/config.json``. The example config files are checked as well.
"""
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
EXAMPLES = DOCS / "examples"
SNIPPETS = sorted((EXAMPLES / "snippets").glob("*.py"))
UNDER_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _have_sphinx():
    try:
        import sphinx  # noqa: F401
        import sphinx_click  # noqa: F401
    except ImportError:
        return False
    return True


def test_docs_build_without_warnings(tmp_path):
    if not _have_sphinx():
        if UNDER_CI:
            pytest.fail("sphinx and sphinx-click are required under CI (pip install -r docs/requirements.txt)")
        pytest.skip("sphinx or sphinx-click not installed (pip install -r docs/requirements.txt)")
    proc = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
                           str(DOCS), str(tmp_path / "html")], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, f"sphinx-build failed:\n{proc.stdout}\n{proc.stderr}"
    assert (tmp_path / "html" / "index.html").is_file()
    xpr_page = (tmp_path / "html" / "xpr.html").read_text()
    for command in ("ls", "rm", "sync", "cancel", "systems", "plugins"):  # generated from the click group
        assert f'id="xpr-{command}"' in xpr_page, command


def test_every_snippet_is_shown_in_the_docs():
    pages = "\n".join(p.read_text() for p in DOCS.glob("*.rst"))
    for snippet in SNIPPETS:
        assert f"examples/snippets/{snippet.name}" in pages, f"{snippet.name} is not included by any page"


def _ensure_example_plugins():
    """Snippets may use the worked plugin examples: install them if run_all.sh has not."""
    missing = []
    for path in sorted(EXAMPLES.glob("expyre-example-*")):
        try:
            importlib.metadata.distribution(path.name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(str(path))
    if missing:
        proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                               *missing], capture_output=True, text=True)
        assert proc.returncode == 0, f"could not install the example plugins:\n{proc.stdout}\n{proc.stderr}"


@pytest.mark.parametrize("snippet", SNIPPETS, ids=[s.stem for s in SNIPPETS])
def test_snippet_runs(snippet, tmp_path):
    _ensure_example_plugins()
    home = tmp_path / "home"
    (home / ".expyre").mkdir(parents=True)
    config = snippet.with_suffix(".config.json")
    if config.exists():
        shutil.copy(config, home / ".expyre" / "config.json")
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXPYRE_")}
    env.update(HOME=str(home), EXPYRE_DOCS_EXAMPLES=str(EXAMPLES))
    proc = subprocess.run([sys.executable, str(snippet)], cwd=home, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, f"{snippet.name} failed:\n{proc.stdout}\n{proc.stderr}"


def test_json_and_toml_examples_are_the_same_config(tmp_path, monkeypatch):
    from expyre import config

    json_data = config.read_config_file(EXAMPLES / "config" / "config.json")
    toml_data = config.read_config_file(EXAMPLES / "config" / "config.toml")
    assert json_data == toml_data
    described = []
    root = tmp_path / "root"
    root.mkdir()
    for name in ("config.json", "config.toml"):
        for old in root.glob("config.*"):
            old.unlink()
        shutil.copy(EXAMPLES / "config" / name, root / name)
        config.init(root)  # validates every key; raises ConfigError on any problem
        described.append([{k: v for k, v in s.items() if k not in ("sources", "files")}
                          for s in config.describe_systems()])
        for system in config.systems.values():
            system.close()
    assert described[0] == described[1]
    json.dumps(described[0])
    config._forget()
