"""Meta-test of the plugin contract: every hook spec in :mod:`expyre.hookspecs` is documented in
its docstring and in ``docs/``, and is exercised by a test.

For each hook spec (a function that carries pluggy's ``expyre`` hookspec mark):

(a) its docstring has a numpy-style ``Returns`` section, and a ``Parameters`` section that names
    every argument of the spec (a spec without arguments, like the discovery hooks
    ``expyre_schedulers``/``expyre_transports``, needs only ``Returns``);
(b) ``docs/`` mentions it as code: ```name```, ````name````, ``name(`` or ``hook.name``
    (a bare English word such as "status" or "release" does not count);
(c) a Python file of the test suite (``tests/``) or of an example plugin package
    (``docs/examples/``, ``examples/``) calls it — ``plugins.name(``, ``hook.name(``,
    ``<plugin module>.name(`` or ``x.name(scheduler=...)`` / ``x.name(transport=...)`` /
    ``x.name("<literal name>", ...)`` — or implements it: ``def name(`` decorated with
    ``hookimpl``.

The checker functions take the spec and the trees to search as arguments, so the self-tests at
the bottom can show that they flag a fake spec that is undocumented and untested.
"""
from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional

import pytest

from expyre import hookspecs

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
#: where tests and example plugins live (searched for calls and implementations of the hooks)
TEST_TREES = (REPO / "tests", REPO / "docs" / "examples", REPO / "examples")
#: never searched: copies made by builds, caches, and this file (it names every hook)
SKIP_PARTS = {"build", "dist", "__pycache__", ".eggs"}
DOC_SUFFIXES = {".md", ".rst", ".txt", ".py", ".toml", ".html"}


# --------------------------------------------------------------------------- the checkers


def hook_specs(module=hookspecs) -> Dict[str, Callable]:
    """Every function of ``module`` marked with the ``expyre`` hookspec marker, by name."""
    attr = f"{hookspecs.PROJECT_NAME}_spec"
    return {name: obj for name, obj in vars(module).items()
            if inspect.isfunction(obj) and getattr(obj, attr, None) is not None}


def _sections(doc: str) -> Dict[str, str]:
    """numpy-style docstring sections: title -> body (a title line underlined with dashes)."""
    lines = inspect.cleandoc(doc).splitlines()
    sections: Dict[str, List[str]] = {}
    current: Optional[str] = None
    for i, line in enumerate(lines):
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if line.strip() and re.fullmatch(r"\s*-{3,}\s*", nxt) and not re.fullmatch(r"\s*-{3,}\s*", line):
            current = line.strip()
            sections[current] = []
            continue
        if current is not None and not re.fullmatch(r"\s*-{3,}\s*", line):
            sections[current].append(line)
    return {title: "\n".join(body) for title, body in sections.items()}


def docstring_problems(name: str, func: Callable) -> List[str]:
    """What the spec's docstring lacks, one line per problem (empty: documented)."""
    doc = func.__doc__
    if not doc or not doc.strip():
        return [f"{name}: no docstring"]
    sections = _sections(doc)
    problems = []
    if not sections.get("Returns", "").strip():
        problems.append(f"{name}: docstring has no 'Returns' section")
    args = list(inspect.signature(func).parameters)
    if args:
        params = sections.get("Parameters")
        if params is None:
            problems.append(f"{name}: docstring has no 'Parameters' section (arguments {args})")
        else:
            for arg in args:
                if not re.search(rf"^\s*\**{re.escape(arg)}\s*(:|,|$)", params, re.MULTILINE):
                    problems.append(f"{name}: argument '{arg}' is not listed under 'Parameters'")
    return problems


def _files(roots: Iterable[Path], suffixes) -> List[Path]:
    found = []
    for root in roots:
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(root).parts
            if (path.is_file() and path.suffix in suffixes and not SKIP_PARTS.intersection(rel)
                    and not any(p.endswith(".egg-info") for p in rel)
                    and path.resolve() != Path(__file__).resolve()):
                found.append(path)
    return found


def doc_mentions(name: str, docs_dir: Path) -> List[Path]:
    """Files below ``docs_dir`` that mention hook ``name`` as code (see the module docs)."""
    n = re.escape(name)
    pattern = re.compile(rf"(?<![\w`])(`{n}`|``{n}``)(?![\w`])|(?<![\w.]){n}\(|\bhook\.{n}\b")
    return [p for p in _files([docs_dir], DOC_SUFFIXES) if pattern.search(p.read_text(errors="replace"))]


def _dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    elif isinstance(node, ast.Call):
        parts.append(_dotted(node.func) + "()")
    return ".".join(reversed(parts))


def _is_hookimpl(decorator: ast.AST) -> bool:
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    return _dotted(target).split(".")[-1] == "hookimpl"


def _calls_hook(call: ast.Call, name: str) -> bool:
    if not (isinstance(call.func, ast.Attribute) and call.func.attr == name):
        return False
    owner = _dotted(call.func.value)
    last = owner.split(".")[-1] if owner else ""
    if last in ("plugins", "hook") or last.startswith("expyre_") or "plugin" in last:
        return True
    if any(kw.arg in ("scheduler", "transport") for kw in call.keywords):
        return True
    # positional scheduler/transport name: x.status("slurm", jobs, shell)
    return bool(call.args) and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str)


def hook_uses(name: str, roots: Iterable[Path]) -> List[str]:
    """``path:line`` of every call or ``@hookimpl`` implementation of hook ``name`` below ``roots``."""
    uses = []
    for path in _files(roots, {".py"}):
        try:
            tree = ast.parse(path.read_text(errors="replace"), filename=str(path))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name \
                    and any(_is_hookimpl(d) for d in node.decorator_list):
                uses.append(f"{path}:{node.lineno} (implements)")
            elif isinstance(node, ast.Call) and _calls_hook(node, name):
                uses.append(f"{path}:{node.lineno} (calls)")
    return uses


# --------------------------------------------------------------------------- the meta-tests

SPECS = hook_specs()


def test_the_contract_has_hook_specs():
    assert {"expyre_schedulers", "expyre_transports", "render_header", "submit", "status",
            "open_shell", "transfer"} <= set(SPECS)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_hook_spec_docstring(name):
    assert docstring_problems(name, SPECS[name]) == []


@pytest.mark.parametrize("name", sorted(SPECS))
def test_hook_spec_is_in_the_docs(name):
    if not DOCS.is_dir():
        pytest.skip("docs/ does not exist yet: cannot check that the hook specs are documented there")
    assert doc_mentions(name, DOCS), f"hook spec {name!r} is not mentioned (as code) anywhere in docs/"


@pytest.mark.parametrize("name", sorted(SPECS))
def test_hook_spec_has_a_test(name):
    assert hook_uses(name, TEST_TREES), (
        f"hook spec {name!r}: no test calls it and no test or example plugin implements it "
        f"(searched {[str(t.relative_to(REPO)) for t in TEST_TREES]})")


# --------------------------------------------------------------------------- self-tests


class _FakeSpecs:
    """A fake contract: one spec documented everywhere, one documented nowhere."""

    @staticmethod
    @hookspecs.hookspec(firstresult=True)
    def xyz_documented(scheduler, jobs):
        """Do something.

        Parameters
        ----------
        scheduler: str
        jobs: list
            the jobs

        Returns
        -------
        bool or None
        """

    @staticmethod
    @hookspecs.hookspec(firstresult=True)
    def xyz_undocumented(scheduler, jobs):
        """Do something, with no sections at all."""

    @staticmethod
    @hookspecs.hookspec(firstresult=True)
    def xyz_half_documented(scheduler, jobs):
        """Do something.

        Parameters
        ----------
        scheduler: str

        Returns
        -------
        bool or None
        """


def test_checker_finds_marked_specs_only():
    import types
    module = types.ModuleType("fake_specs")
    module.xyz_undocumented = _FakeSpecs.xyz_undocumented
    module.not_a_spec = lambda: None
    assert list(hook_specs(module)) == ["xyz_undocumented"]


def test_checker_flags_undocumented_spec():
    assert docstring_problems("xyz_documented", _FakeSpecs.xyz_documented) == []
    problems = docstring_problems("xyz_undocumented", _FakeSpecs.xyz_undocumented)
    assert any("'Returns'" in p for p in problems) and any("'Parameters'" in p for p in problems)
    assert docstring_problems("xyz_half_documented", _FakeSpecs.xyz_half_documented) == [
        "xyz_half_documented: argument 'jobs' is not listed under 'Parameters'"]

    def no_doc():
        pass
    assert docstring_problems("no_doc", no_doc) == ["no_doc: no docstring"]


def test_checker_flags_spec_missing_from_docs_and_tests(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "hooks.md").write_text("The `xyz_documented` hook. We xyz_undocumented nothing here.\n"
                                   "Plain words: status, release.\n")
    assert doc_mentions("xyz_documented", docs)
    assert not doc_mentions("xyz_undocumented", docs)  # a bare word is not documentation
    assert not doc_mentions("status", docs)

    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "test_x.py").write_text(
        "from expyre import hookimpl, plugins\n"
        "@hookimpl\n"
        "def xyz_documented(scheduler):\n"
        "    return None\n"
        "def xyz_undocumented():  # not a hookimpl\n"
        "    pass\n"
        "def test_it(xpr):\n"
        "    plugins.xyz_called('sched', [])\n"
        "    xpr.xyz_undocumented()  # some other object's method, no scheduler/transport\n")
    (tests / "build").mkdir()
    (tests / "build" / "test_copy.py").write_text("plugins.xyz_in_build(scheduler='s')\n")
    assert hook_uses("xyz_documented", [tests]) == [f"{tests / 'test_x.py'}:3 (implements)"]
    assert hook_uses("xyz_called", [tests]) == [f"{tests / 'test_x.py'}:8 (calls)"]
    assert hook_uses("xyz_undocumented", [tests]) == []
    assert hook_uses("xyz_in_build", [tests]) == []
