#!/usr/bin/env bash
# A PBS site (Torque dialect) for the integration tests (run by tests/run_all.sh after 10-sshd.sh
# and 20-slurm.sh).
#
#   bash tests/services/40-pbs.sh > .test-services/pbs.env
#
# No PBS Pro, OpenPBS or Torque server is packaged for Debian 12. Debian's slurm-wlm-torque is
# Slurm's own PBS/Torque command front end: real qsub, qstat, qdel, qhold and qrls programs (Perl)
# that drive the real Slurm of 20-slurm.sh. Its files would collide with gridengine-client's
# /usr/bin/qsub (the Grid Engine site), so the package is not installed: it is unpacked into its
# own prefix, /opt/pbs-wrappers, with sbatch, squeue, scancel and scontrol linked next to the
# wrappers (they look for them in their own directory), and libslurm-perl and libslurmdb-perl
# (Slurm.pm, Slurmdb.pm, which the wrappers load) are installed.
#
# The ordinary account xpr-pbs plays the PBS site: key login over the private sshd of 10-sshd.sh
# with the same client key, its own venv (cloudpickle, numpy) built with Debian's python3, and the
# venv and the front end first on PATH for login and non-login shells.
#
# What the front end is and is not (the tests say which of these they cover): qsub prints the bare
# Slurm job id ("123", no ".server"); qstat -f prints Torque-style records with job_state Q, R, C
# (and S), but no exit_status and no held state (a held job shows Q); qstat -x (PBS Pro's history)
# and -F json are not supported; #PBS -o/-e inside the script are overridden by the wrapper's own
# -o/-e (files <script>.o<id> and <script>.e<id>); PBS_NODEFILE and PBS_NUM_PPN are not set.
#
# Idempotent: a second run unpacks nothing (unless the Slurm version changed) and changes nothing.
# Prints KEY=VALUE lines on stdout (and nothing else); progress goes to stderr. Without root or
# apt-get it prints nothing and exits 0, so the tests that need it skip (and fail under CI).
set -euo pipefail

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "40-pbs.sh: not root or no apt-get here: no PBS front end, its tests will skip" >&2
    exit 0
fi

# Progress to stderr; the KEY=VALUE result goes to the original stdout (fd 3).
exec 3>&1 1>&2

log_step() { echo "40-pbs.sh: $*"; }

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
sshd_state="$repo/.test-services/sshd"
state="$repo/.test-services/pbs"
prefix=/opt/pbs-wrappers
bin=$prefix/usr/bin
user=xpr-pbs
home=/home/$user
remote_python=$home/venv/bin/python

mkdir -p "$state"
chmod 700 "$state"
exec 9>"$state/lock"
flock 9

# --- what this service builds on ------------------------------------------------------------------
if ! sinfo -h -o %P >/dev/null 2>&1; then
    echo "40-pbs.sh: Slurm does not answer (sinfo fails): run tests/services/20-slurm.sh first; no PBS site" >&2
    exit 0
fi
client_pub_file=$sshd_state/client_ed25519.pub
if [ ! -s "$client_pub_file" ] || [ ! -s "$sshd_state/port" ]; then
    echo "40-pbs.sh: the private sshd of tests/services/10-sshd.sh is not set up; no PBS site" >&2
    exit 0
fi

# --- packages -------------------------------------------------------------------------------------
apt_opts=(-y -q -o DPkg::Lock::Timeout=600)
apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install "${apt_opts[@]}" "$@"; then
        log_step "install failed without an index update: running apt-get update"
        apt-get update -q -o DPkg::Lock::Timeout=600
        apt-get install "${apt_opts[@]}" "$@"
    fi
}
missing=()
for pkg in libslurm-perl libslurmdb-perl python3-venv; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    [ "$status" = "install ok installed" ] || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    log_step "installing ${missing[*]}"
    apt_install "${missing[@]}"
fi

# --- the front end, unpacked into its own prefix --------------------------------------------------
# The wrappers must match the installed Slurm: the unpacked version is recorded and compared with
# the version apt would download.
wanted=$(apt-cache policy slurm-wlm-torque 2>/dev/null | awk '/Candidate:/ {print $2}')
if [ -z "$wanted" ] || [ "$wanted" = "(none)" ]; then
    log_step "no candidate for slurm-wlm-torque: running apt-get update"
    apt-get update -q -o DPkg::Lock::Timeout=600
    wanted=$(apt-cache policy slurm-wlm-torque 2>/dev/null | awk '/Candidate:/ {print $2}')
fi
if [ -z "$wanted" ] || [ "$wanted" = "(none)" ]; then
    echo "40-pbs.sh: apt knows no slurm-wlm-torque package" >&2
    exit 1
fi
if [ "$(cat "$prefix/.expyre-unpacked-version" 2>/dev/null || true)" != "$wanted" ] || [ ! -x "$bin/qsub" ]; then
    log_step "unpacking slurm-wlm-torque $wanted into $prefix"
    work=$(mktemp -d)
    chown _apt "$work" 2>/dev/null || true  # apt downloads as its sandbox user when it may write here
    (cd "$work" && apt-get download -q -o DPkg::Lock::Timeout=600 "slurm-wlm-torque=$wanted" >&2)
    rm -rf "$prefix.new"
    mkdir -p "$prefix.new"
    dpkg-deb -x "$work"/slurm-wlm-torque_*.deb "$prefix.new"
    echo "$wanted" > "$prefix.new/.expyre-unpacked-version"
    rm -rf "$work"
    rm -rf "$prefix.old"
    [ ! -e "$prefix" ] || mv "$prefix" "$prefix.old"
    mv "$prefix.new" "$prefix"
    rm -rf "$prefix.old"
fi
chmod 755 "$prefix"
# qsub runs "sbatch" (and qstat/qdel/qhold/qrls use Slurm.pm) from the wrappers' own directory.
for cmd in sbatch squeue scancel scontrol salloc srun; do
    target=$(command -v "$cmd" || true)
    [ -n "$target" ] || { echo "40-pbs.sh: $cmd not found: is slurm-wlm installed?" >&2; exit 1; }
    if [ "$(readlink "$bin/$cmd" 2>/dev/null || true)" != "$target" ]; then
        ln -sfn "$target" "$bin/$cmd"
    fi
done

# --- the account playing the PBS site -------------------------------------------------------------
# shellcheck source=tests/services/lib/account.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/account.sh"
setup_account "$user" "$bin"
authorize_key "$client_pub_file" "$user" "$group" "$home"

# --- check: the front end works for the account, in a login shell and over the private sshd -------
queue=$(sinfo -h -o %P | sed -n 's/\*$//p' | head -n 1)
[ -n "$queue" ] || queue=$(sinfo -h -o %P | head -n 1)
check_dir=$home/.expyre-pbs-service-check
check=$(runuser -l "$user" -c "
    set -e
    [ \"\$(command -v qsub)\" = '$bin/qsub' ] || { echo \"qsub on PATH is \$(command -v qsub), not $bin/qsub\" >&2; exit 1; }
    rm -rf '$check_dir'; mkdir -p '$check_dir'; cd '$check_dir'
    printf '#!/bin/bash\n#PBS -N expyre_service_check\n#PBS -q $queue\n#PBS -l walltime=0:01:00\ntrue\n' > check.sh
    id=\$(qsub check.sh)
    qstat -f \"\$id\" | grep -q 'job_state = ' || { echo \"qstat -f \$id shows no job_state\" >&2; exit 1; }
    qdel \"\$id\" >/dev/null 2>&1 || true
    cd; rm -rf '$check_dir'
    echo \"\$id\"
" </dev/null) || { echo "40-pbs.sh: qsub/qstat as $user failed" >&2; exit 1; }
log_step "ok: qsub/qstat as $user (test job $check) in queue $queue"

port=$(cat "$sshd_state/port")
if ! over_ssh=$(ssh -F /dev/null -i "$sshd_state/client_ed25519" -p "$port" -o IdentitiesOnly=yes -o BatchMode=yes \
        -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$sshd_state/known_hosts_check" -o ConnectTimeout=20 \
        "$user@127.0.0.1" 'command -v qstat && python3 -c "import cloudpickle, numpy"' </dev/null); then
    echo "40-pbs.sh: login to $user@127.0.0.1:$port failed (does tests/services/10-sshd.sh allow $user?)" >&2
    exit 1
fi
[ "$over_ssh" = "$bin/qstat" ] || { echo "40-pbs.sh: over ssh, qstat is '$over_ssh', not $bin/qstat" >&2; exit 1; }
log_step "ok: $user@127.0.0.1:$port reaches $bin/qstat; slurm-wlm-torque $wanted"

{
    echo "PBS_PREFIX=$prefix"
    echo "PBS_BIN=$bin"
    echo "PBS_USER=$user"
    echo "PBS_HOME=$home"
    echo "PBS_QUEUE=$queue"
    echo "PBS_REMOTE_PYTHON=$remote_python"
    echo "PBS_FRONT_END=slurm-wlm-torque $wanted"
} >&3
