#!/usr/bin/env bash
# wfl (libAtoms' workflow package, expyre's main client) on top of this checkout's expyre, for the
# real-client test tests/integration/test_wfl.py (run by tests/run_all.sh, and again by that test
# so that the environment always holds the checkout under test).
#
#   bash tests/services/50-wfl.sh > .test-services/wfl.env
#
# Builds one Python environment, /opt/expyre-test-wfl/venv, readable by every account: the test
# runs wfl's tests with it on this machine, and the cluster account xpr-cluster of
# tests/services/10-sshd.sh runs its Slurm jobs with it (wfl imports expyre when it loads, so the
# job side needs both). It holds wfl from PyPI installed with --no-deps (wfl requires
# `expyre-wfl`, the original ExPyRe: expyre takes its place), wfl's other dependencies as its
# metadata lists them (numpy<2, and ase<3.25 as wfl's own CI pins it), pytest, and expyre-core
# and expyre-slurm built from this checkout. wfl's sdist is unpacked beside it: its tests/ are the
# tests the integration test runs, unchanged. For wfl's Quantum Espresso test it installs Debian's
# quantum-espresso and writes ASE's config for it, /opt/expyre-test-wfl/ase-config.ini (the jobs
# name it in ASE_CONFIG_PATH), as wfl's CI does with its own build.
#
# Idempotent: a second run reuses everything and reinstalls expyre only when this checkout's
# package files changed. Prints KEY=VALUE lines on stdout (and nothing else); progress goes to
# stderr. Without root or apt-get it prints nothing and exits 0, so the test skips (and fails
# under CI).
set -euo pipefail

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "50-wfl.sh: not root or no apt-get here: no wfl environment, its test will skip" >&2
    exit 0
fi

# Progress to stderr; the KEY=VALUE result goes to the original stdout (fd 3).
exec 3>&1 1>&2

log_step() { echo "50-wfl.sh: $*"; }

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
wfl_version=0.3.5
# wfl's install_requires without expyre-wfl; ase<3.25 as in wfl's CI (3.25 writes broken extxyz).
wfl_requirements=("click>=7.0" "numpy<2" "ase>=3.22.1,<3.25" pyyaml spglib docstring_parser universalSOAP
                  pandas pytest)
prefix=/opt/expyre-test-wfl
venv=$prefix/venv
python=$venv/bin/python
tests_root=$prefix/wfl-$wfl_version

install -d -m 755 "$prefix"
# One run at a time: the test and tests/run_all.sh of two checkouts may run this together.
exec 9>"$prefix/.lock"
flock 9

apt_install() {
    local missing=() pkg status
    for pkg in "$@"; do
        status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
        [ "$status" = "install ok installed" ] || missing+=("$pkg")
    done
    [ "${#missing[@]}" -gt 0 ] || return 0
    log_step "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    local apt_opts=(-y -q --no-install-recommends -o DPkg::Lock::Timeout=600)
    if ! apt-get install "${apt_opts[@]}" "${missing[@]}"; then
        log_step "install failed without an index update: running apt-get update"
        apt-get update -q -o DPkg::Lock::Timeout=600
        apt-get install "${apt_opts[@]}" "${missing[@]}"
    fi
}

pip() {
    "$python" -m pip --disable-pip-version-check --quiet "$@"
}

apt_install python3-venv

# --- the environment: Debian's python3, so that any account can run it ---------------------------
if [ ! -x "$python" ]; then
    log_step "creating $venv"
    umask 022
    /usr/bin/python3 -m venv "$venv"
fi

stamp=$prefix/.wfl-installed
wanted="wfl==$wfl_version ${wfl_requirements[*]}"
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ] || ! "$python" -c 'import wfl, ase, numpy' 2>/dev/null; then
    log_step "installing wfl $wfl_version (--no-deps) and its dependencies except expyre-wfl"
    (umask 022 && pip install --no-deps "wfl==$wfl_version" && pip install "${wfl_requirements[@]}")
    echo "$wanted" > "$stamp"
fi
# The original ExPyRe must not be there: it would shadow or mix with expyre.
if "$python" -m pip --disable-pip-version-check show --quiet expyre-wfl >/dev/null 2>&1; then
    log_step "removing expyre-wfl"
    pip uninstall -y expyre-wfl
fi

# --- expyre from this checkout (not editable: the cluster account cannot read every checkout) ----
sources_hash=$(cd "$repo" && find packages/expyre-core packages/expyre-slurm -type f \
        -not -path '*/__pycache__/*' -not -path '*.egg-info/*' -not -path '*/build/*' -print0 \
    | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
expyre_stamp=$prefix/.expyre-installed
if [ "$(cat "$expyre_stamp" 2>/dev/null)" != "$sources_hash" ] || ! "$python" -c 'import expyre, expyre_slurm' 2>/dev/null; then
    log_step "installing expyre-core and expyre-slurm from $repo"
    # Built in a copy, so that the build leaves nothing in the checkout.
    build=$(mktemp -d)
    cp -r "$repo/packages/expyre-core" "$repo/packages/expyre-slurm" "$build/"
    (umask 022 && pip install "$build/expyre-core" && \
        pip install --no-deps --force-reinstall "$build/expyre-core" "$build/expyre-slurm")
    rm -rf "$build"
    echo "$sources_hash" > "$expyre_stamp"
fi

# --- wfl's tests, from its sdist (unchanged) -------------------------------------------------------
if [ ! -f "$tests_root/tests/test_remote_run.py" ]; then
    log_step "unpacking wfl $wfl_version's sdist into $tests_root"
    download=$(mktemp -d)
    pip download --no-binary :all: --no-deps --dest "$download" "wfl==$wfl_version"
    rm -rf "$tests_root.tmp"
    mkdir "$tests_root.tmp"
    tar -xzf "$download/wfl-$wfl_version.tar.gz" -C "$tests_root.tmp" --strip-components=1
    chmod -R a+rX "$tests_root.tmp"
    rm -rf "$tests_root" "$download"
    mv "$tests_root.tmp" "$tests_root"
fi

# --- Quantum Espresso for wfl's test_generic_calc_qe, as wfl's CI sets it up -----------------------
apt_install quantum-espresso quantum-espresso-data
# wfl's test reads tests/assets/QE/Si.pz-vbc.UPF, which its sdist leaves out; Debian ships the file.
pseudo=$tests_root/tests/assets/QE/Si.pz-vbc.UPF
if [ ! -s "$pseudo" ]; then
    install -d -m 755 "$(dirname "$pseudo")"
    gzip -dc /usr/share/doc/quantum-espresso/examples/EPW/sic/pp/Si.pz-vbc.UPF.gz > "$pseudo.tmp"
    chmod 644 "$pseudo.tmp"
    mv "$pseudo.tmp" "$pseudo"
fi
# ASE's calculator config (ASE_CONFIG_PATH names it), readable by the cluster account too.
ase_config=$prefix/ase-config.ini
printf '[espresso]\ncommand = /usr/bin/pw.x\npseudo_dir = %s\n' "$(dirname "$pseudo")" > "$ase_config.tmp"
chmod 644 "$ase_config.tmp"
mv "$ase_config.tmp" "$ase_config"

versions=$("$python" -c 'import importlib.metadata as m; print(" ".join(f"{d}={m.version(d)}" for d in ("wfl", "expyre-core", "expyre-slurm", "ase", "numpy")))')
log_step "ok: $python with $versions"
{
    echo "WFL_PYTHON=$python"
    echo "WFL_VENV=$venv"
    echo "WFL_TESTS_ROOT=$tests_root"
    echo "WFL_VERSION=$wfl_version"
    echo "WFL_VERSIONS=$versions"
    echo "WFL_ASE_CONFIG=$ase_config"
} >&3
