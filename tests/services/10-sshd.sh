#!/usr/bin/env bash
# A real OpenSSH server on 127.0.0.1 for the integration tests (run by tests/run_all.sh).
#
#   bash tests/services/10-sshd.sh > .test-services/sshd.env
#
# Installs openssh-server if needed, creates the ordinary account xpr-cluster (with its own
# Python venv holding cloudpickle and numpy, first on PATH for login and non-login shells),
# and runs a private sshd with its own host keys and config under .test-services/sshd/ on a
# free loopback port (chosen once, then kept). It also lets in xpr-pbs (40-pbs.sh) and
# xpr-limited (20-slurm.sh), each with its own authorized key. Idempotent: a second run reuses everything and
# only restarts sshd if it is not running. Prints KEY=VALUE lines on stdout (and nothing else);
# all progress goes to stderr. Without root or apt-get it prints nothing and exits 0, so the
# tests that need it skip (and fail under CI).
set -euo pipefail

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "10-sshd.sh: not root or no apt-get here: no local sshd, its tests will skip" >&2
    exit 0
fi

# Everything below writes progress to stderr; the KEY=VALUE result goes to the original stdout (fd 3).
exec 3>&1 1>&2

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
state="$repo/.test-services/sshd"
user=xpr-cluster
home=/home/$user
sshd_bin=/usr/sbin/sshd
remote_python=$home/venv/bin/python
config=$state/sshd_config
pid_file=$state/sshd.pid
log=$state/sshd.log
client_key=$state/client_ed25519
known_hosts_check=$state/known_hosts_check

mkdir -p "$state"
chmod 700 "$state"
# One run at a time (the lock fd is closed for sshd so the daemon never holds it).
exec 9>"$state/lock"
flock 9

log_step() { echo "10-sshd.sh: $*"; }

# --- packages -------------------------------------------------------------------------------------
# shellcheck source=tests/services/lib/packages.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/packages.sh"
ensure_packages openssh-server openssh-client python3-venv
[ -x "$sshd_bin" ] || { echo "10-sshd.sh: $sshd_bin missing after install" >&2; exit 1; }

# --- the account playing the cluster user ---------------------------------------------------------
# shellcheck source=tests/services/lib/account.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/account.sh"
setup_account "$user"
setup_numpy1_venv

# --- keys and port --------------------------------------------------------------------------------
# shellcheck source=tests/services/lib/sshd.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/sshd.sh"
sshd_keys sshd
sshd_port

# --- sshd -----------------------------------------------------------------------------------------
new_config=$(cat <<EOF
# Private sshd for expyre's integration tests (written by tests/services/10-sshd.sh).
Port $port
ListenAddress 127.0.0.1
HostKey $state/ssh_host_ed25519_key
HostKey $state/ssh_host_rsa_key
PidFile $pid_file
AuthorizedKeysFile .ssh/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin no
AllowUsers $user xpr-pbs xpr-limited
StrictModes yes
Subsystem sftp internal-sftp
LogLevel INFO
MaxSessions 100
MaxStartups 100:30:200
MaxAuthTries 10
PrintMotd no
UseDNS no
X11Forwarding no
EOF
)
sshd_start "$sshd_bin" "$new_config"

# --- check it with the OpenSSH client -------------------------------------------------------------
sshd_known_hosts "$known_hosts_check"

if ! version=$(ssh -F /dev/null -i "$client_key" -p "$port" -o IdentitiesOnly=yes -o BatchMode=yes \
        -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$known_hosts_check" -o ConnectTimeout=20 \
        "$user@127.0.0.1" 'python3 -c "import cloudpickle, numpy; print(numpy.__version__)"' </dev/null); then
    echo "10-sshd.sh: login to $user@127.0.0.1:$port with the client key failed; sshd log:" >&2
    tail -n 30 "$log" >&2 || true
    exit 1
fi
log_step "ok: $user@127.0.0.1:$port, remote numpy $version"

{
    echo "SSHD_HOST=127.0.0.1"
    echo "SSHD_PORT=$port"
    echo "SSHD_USER=$user"
    echo "SSHD_HOME=$home"
    echo "SSHD_CLIENT_KEY=$client_key"
    echo "SSHD_HOST_KEYS=${host_pubs[*]}"
    echo "SSHD_CONFIG=$config"
    echo "SSHD_PID_FILE=$pid_file"
    echo "SSHD_BIN=$sshd_bin"
    echo "SSHD_LOG=$log"
    echo "SSHD_REMOTE_PYTHON=$remote_python"
    echo "SSHD_REMOTE_PYTHON_NUMPY1=$home/venv-numpy1/bin/python"
} >&3
