"""The packages as a site gets them: built wheels installed into a fresh virtual environment.

Builds the wheels of all four packages, creates a new virtual environment, installs
``expyre-core`` and ``expyre-slurm`` from those wheels only (their third-party dependencies, and
numpy for the seed example, come from the package index as for any user), and checks there,
outside the source tree and with a fresh HOME, that

* each wheel carries its metadata, license, ``py.typed`` and entry points;
* the installed expyre packages are the wheels' copies, not the source tree;
* ``xpr plugins`` lists the ``direct`` scheduler, the ``local`` and ``ssh`` transports and ``slurm``;
* the seed example runs on the default system ``local`` and prints the sum.

Takes about a minute (wheel builds and a pip install); pip's cache is reused between runs.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = {"expyre-core": "expyre", "expyre-slurm": "expyre_slurm", "expyre-sge": "expyre_sge",
            "expyre-pbs": "expyre_pbs"}

pytestmark = [pytest.mark.integration, pytest.mark.slow]

def run(cmd, *, env=None, cwd=None, timeout=300):
    proc = subprocess.run([str(c) for c in cmd], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, (f"{' '.join(map(str, cmd))} exited {proc.returncode}\n"
                                  f"--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}")
    return proc


def clean_env(home: Path) -> dict:
    """The caller's environment without anything that would put the source tree or the test
    venv on the path, and with a fresh HOME (pip's cache stays the caller's, to reuse it)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("EXPYRE_", "PYTHON", "VIRTUAL_ENV", "PIP_REQUIRE", "PYTEST"))}
    if "PIP_CACHE_DIR" not in env and "HOME" in os.environ:
        env["PIP_CACHE_DIR"] = str(Path(os.environ["HOME"]).expanduser() / ".cache" / "pip")
    env["HOME"] = str(home)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


@pytest.fixture(scope="module")
def wheels(tmp_path_factory):
    """All four packages built as wheels into one directory: {distribution name: wheel path}."""
    out = tmp_path_factory.mktemp("wheels")
    env = clean_env(tmp_path_factory.mktemp("build_home"))
    env["PIP_CACHE_DIR"] = os.environ.get("PIP_CACHE_DIR") or str(Path.home() / ".cache" / "pip")
    # pip builds each package in an isolated build environment (setuptools from the index)
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", out,
         *[REPO / "packages" / name for name in PACKAGES]], env=env, cwd=out)
    found = {}
    for name in PACKAGES:
        matches = sorted(out.glob(name.replace("-", "_") + "-*.whl"))
        assert len(matches) == 1, f"no single wheel for {name}: {sorted(p.name for p in out.iterdir())}"
        found[name] = matches[0]
    return found


def test_wheels_carry_their_metadata(wheels):
    import expyre
    for name, pkg in PACKAGES.items():
        with zipfile.ZipFile(wheels[name]) as whl:
            files = whl.namelist()
            dist_info = next(f.split("/")[0] for f in files if f.endswith(".dist-info/METADATA"))
            meta = whl.read(f"{dist_info}/METADATA").decode()
            entry_points = whl.read(f"{dist_info}/entry_points.txt").decode()
            record = whl.read(f"{dist_info}/RECORD").decode()
        assert f"Name: {name}\n" in meta
        assert f"Version: {expyre.__version__}\n" in meta
        for field in ("Summary: ", "Requires-Python: >=3.9", "License-Expression: GPL-2.0-or-later",
                      "License-File: LICENSE", "Classifier: Programming Language :: Python :: 3",
                      "Classifier: Typing :: Typed", "Project-URL: Homepage, ", "Project-URL: Changelog, ",
                      "Project-URL: Source, ", "Project-URL: Documentation, ",
                      "Description-Content-Type: text/markdown"):
            assert field in meta, f"{name}: METADATA lacks {field!r}"
        assert f"# {name}" in meta, f"{name}: the README is not the long description"
        assert f"{dist_info}/licenses/LICENSE" in files
        assert f"{pkg}/py.typed" in files and f"{pkg}/py.typed," in record
        if name == "expyre-core":
            assert "xpr = expyre.cli:cli" in entry_points
            assert "pytest11" not in entry_points, "expyre.testing must be opt-in, not auto-loaded"
            assert "expyre/testing.py" in files
        else:
            scheduler = pkg.split("_")[1]
            assert f"[expyre]\n{scheduler} = {pkg}" in entry_points
            assert "Requires-Dist: expyre-core<0.2,>=0.1" in meta


@pytest.fixture(scope="module")
def site_venv(wheels, tmp_path_factory):
    """A fresh venv with expyre-core and expyre-slurm installed from the wheels (and numpy)."""
    root = tmp_path_factory.mktemp("site")
    home = root / "home"
    (home / "work").mkdir(parents=True)
    venv = root / "venv"
    env = clean_env(home)
    run([sys.executable, "-m", "venv", venv], env=env, cwd=home)
    python = venv / "bin" / "python"
    wheel_dir = wheels["expyre-core"].parent
    run([python, "-m", "pip", "install", "--quiet", "--find-links", wheel_dir, "expyre-core", "expyre-slurm",
         "numpy"], env=env, cwd=home / "work")
    return {"python": python, "venv": venv, "home": home, "env": env, "work": home / "work"}


def test_expyre_comes_from_the_wheels(site_venv):
    python, env = site_venv["python"], site_venv["env"]
    shown = run([python, "-m", "pip", "show", "-f", "expyre-core", "expyre-slurm"], env=env,
                cwd=site_venv["work"]).stdout
    assert "Editable project location" not in shown
    assert "expyre/testing.py" in shown and "expyre_slurm/py.typed" in shown
    code = ("import json, expyre, expyre_slurm, expyre.cli; "
            "print(json.dumps([expyre.__file__, expyre_slurm.__file__, expyre.__version__]))")
    core_file, slurm_file, version = json.loads(run([python, "-c", code], env=env, cwd=site_venv["work"]).stdout)
    site_packages = str(site_venv["venv"].resolve())
    for path in (core_file, slurm_file):
        assert str(Path(path).resolve()).startswith(site_packages), path
        assert not str(Path(path).resolve()).startswith(str(REPO / "packages")), path
    import expyre
    assert version == expyre.__version__
    # nothing of the source tree is on the path: no .pth file points into the repository
    for pth in site_venv["venv"].rglob("*.pth"):
        assert str(REPO) not in pth.read_text(), pth
    # expyre-sge and expyre-pbs were built but not installed
    missing = subprocess.run([python, "-c", "import expyre_sge"], env=env, capture_output=True)
    assert missing.returncode != 0


def test_xpr_plugins_lists_the_builtins_and_slurm(site_venv):
    xpr = site_venv["venv"] / "bin" / "xpr"
    out = run([xpr, "plugins", "--json"], env=site_venv["env"], cwd=site_venv["work"]).stdout
    data = json.loads(out)
    schedulers = {s for p in data["plugins"] for s in p["schedulers"]}
    transports = {t for p in data["plugins"] for t in p["transports"]}
    assert {"direct", "slurm"} <= schedulers, data
    assert {"local", "ssh"} <= transports, data
    assert data["broken"] == []
    slurm = [p for p in data["plugins"] if "slurm" in p["schedulers"]]
    assert len(slurm) == 1 and slurm[0]["distribution"] == "expyre-slurm", slurm
    assert "sge" not in schedulers and "pbs" not in schedulers
    text = run([xpr, "plugins"], env=site_venv["env"], cwd=site_venv["work"]).stdout
    assert "slurm" in text and "direct" in text


def test_seed_example_runs_on_the_default_system(site_venv):
    work = site_venv["work"]
    script = work / "seed_example.py"
    shutil.copy(REPO / "examples" / "seed_example.py", script)
    proc = run([site_venv["python"], script], env=site_venv["env"], cwd=work, timeout=300)
    assert "summed the array on system local: [50. 50. 50. 50. 50.] ..." in proc.stdout, proc.stdout
    # the job ran below the fresh HOME, not anywhere in the source tree
    assert (site_venv["home"] / ".expyre" / "jobs.db").exists() or any(site_venv["home"].rglob("jobs.db"))
