#!/usr/bin/env bash
# A second private OpenSSH server that asks for a key AND a one-time code (TOTP through PAM), as
# MFA sites do, for the integration tests of "one login per session" (run by tests/run_all.sh).
#
#   bash tests/services/15-sshd-mfa.sh > .test-services/sshd-mfa.env
#
# Installs openssh-server, Debian's libpam-google-authenticator and oathtool if needed; creates
# the ordinary account xpr-mfa (its own ~/venv with cloudpickle and numpy first on PATH, like
# xpr-cluster, and so its own use of the local Slurm: any account may submit there); gives it a
# TOTP secret (~/.google_authenticator, codes may be used more than once within their 30 s, so
# several tests may log in within one period); and runs sshd on a free loopback port with
# `AuthenticationMethods publickey,keyboard-interactive:pam`, PAM service `sshd-mfa` (sshd names
# its PAM service after the program it runs as, so it is started through a symlink of that name)
# and `LogLevel VERBOSE`, whose log has one "Accepted keyboard-interactive/pam" line per login.
#
# For the politeness test, the account's shells put the directory named in
# ~/.expyre-test-path-prefix (if that file exists) first on PATH: a test writes it to put a
# counting wrapper of its own in front of a command and removes it afterwards; a stale file
# naming a removed directory changes nothing.
#
# Idempotent: a second run reuses everything and only restarts sshd if it is not running or its
# config changed. Prints KEY=VALUE lines on stdout (and nothing else); progress goes to stderr.
# Without root or apt-get it prints nothing and exits 0, so the tests that need it skip (and fail
# under CI).
set -euo pipefail

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "15-sshd-mfa.sh: not root or no apt-get here: no MFA sshd, its tests will skip" >&2
    exit 0
fi

# Progress to stderr; the KEY=VALUE result goes to the original stdout (fd 3).
exec 3>&1 1>&2

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
state="$repo/.test-services/sshd-mfa"
user=xpr-mfa
home=/home/$user
pam_service=sshd-mfa
sshd_bin=/usr/sbin/sshd
# sshd re-executes itself by its absolute path and names its PAM service after it
sshd_link=/usr/local/sbin/$pam_service
config=$state/sshd_config
pid_file=$state/sshd.pid
log=$state/sshd.log
client_key=$state/client_ed25519
secret_file=$state/totp_secret
code_command=$state/totp-code

mkdir -p "$state"
chmod 700 "$state"
exec 9>"$state/lock"
flock 9

log_step() { echo "15-sshd-mfa.sh: $*"; }

# --- packages -------------------------------------------------------------------------------------
# shellcheck source=tests/services/lib/packages.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/packages.sh"
ensure_packages openssh-server openssh-client python3-venv libpam-google-authenticator oathtool
pam_module=$(find /lib /usr/lib -name pam_google_authenticator.so 2>/dev/null | head -n 1)
[ -n "$pam_module" ] || { echo "15-sshd-mfa.sh: pam_google_authenticator.so missing after install" >&2; exit 1; }
command -v oathtool >/dev/null || { echo "15-sshd-mfa.sh: oathtool missing after install" >&2; exit 1; }

# --- the account ----------------------------------------------------------------------------------
# shellcheck source=tests/services/lib/account.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/account.sh"
setup_account "$user"

prefix_marker="# expyre test services: the directory named in ~/.expyre-test-path-prefix first on PATH"
prefix_line='__xpr_p=$(cat "$HOME/.expyre-test-path-prefix" 2>/dev/null); case ":$PATH:" in *":$__xpr_p:"*) ;; *) [ -z "$__xpr_p" ] || PATH="$__xpr_p:$PATH" ;; esac; unset __xpr_p'
rc=$home/.bashrc
if ! grep -qxF "$prefix_line" "$rc"; then
    # after the venv's PATH line (which _first_on_path keeps first in the file), so it comes first
    tmp=$(mktemp "$rc.XXXXXX")
    awk -v marker="$prefix_marker" 'index($0, marker) == 1 { skip = 1; next } skip { skip = 0; next } { print }' "$rc" \
        | awk -v marker="$prefix_marker" -v line="$prefix_line" \
            'done == 0 && NR > 2 { print marker; print line; done = 1 } { print } END { if (!done) { print marker; print line } }' \
        > "$tmp"
    chmod 644 "$tmp"
    chown "$user:$group" "$tmp"
    mv "$tmp" "$rc"
fi

# --- the TOTP secret ------------------------------------------------------------------------------
# One secret per account, not per checkout: PAM checks every code against the account's
# ~/.google_authenticator, whichever checkout's sshd-mfa asked, so a second checkout running
# this script must not replace the secret the first one's tests use.
ga=$home/.google_authenticator
secret=$(head -n 1 "$ga" 2>/dev/null || true)
if ! [[ "$secret" =~ ^[A-Z2-7]{32}$ ]]; then
    secret=$(python3 -c 'import base64, secrets; print(base64.b32encode(secrets.token_bytes(20)).decode())')
fi
(umask 077 && echo "$secret" > "$secret_file")
new_ga=$(printf '%s\n" WINDOW_SIZE 3\n" TOTP_AUTH\n' "$secret")
if [ ! -f "$ga" ] || [ "$(cat "$ga")" != "$new_ga" ]; then
    echo "$new_ga" > "$ga.tmp"
    chown "$user:$group" "$ga.tmp"
    chmod 400 "$ga.tmp"
    mv "$ga.tmp" "$ga"
fi
# the command a client runs to get the current code (what a user's password manager would do)
printf '#!/bin/sh\nexec oathtool --totp -b "$(cat %q)"\n' "$secret_file" > "$code_command.tmp"
chmod 700 "$code_command.tmp"
mv "$code_command.tmp" "$code_command"

new_pam=$(cat <<EOF
# Key plus one-time code for expyre's MFA test sshd (written by tests/services/15-sshd-mfa.sh).
auth     required  pam_google_authenticator.so
account  required  pam_unix.so
session  required  pam_permit.so
EOF
)
if [ ! -f "/etc/pam.d/$pam_service" ] || [ "$(cat "/etc/pam.d/$pam_service")" != "$new_pam" ]; then
    echo "$new_pam" > "/etc/pam.d/$pam_service"
fi
ln -sfn "$sshd_bin" "$sshd_link"

# --- keys and port --------------------------------------------------------------------------------
# shellcheck source=tests/services/lib/sshd.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/sshd.sh"
sshd_keys sshd-mfa
sshd_port

# --- sshd -----------------------------------------------------------------------------------------
new_config=$(cat <<EOF
# Private sshd asking for a key and a one-time code (written by tests/services/15-sshd-mfa.sh).
Port $port
ListenAddress 127.0.0.1
HostKey $state/ssh_host_ed25519_key
HostKey $state/ssh_host_rsa_key
PidFile $pid_file
AuthorizedKeysFile .ssh/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication yes
UsePAM yes
AuthenticationMethods publickey,keyboard-interactive:pam
PermitRootLogin no
AllowUsers $user
StrictModes yes
Subsystem sftp internal-sftp
LogLevel VERBOSE
MaxSessions 100
MaxStartups 100:30:200
MaxAuthTries 10
PrintMotd no
UseDNS no
X11Forwarding no
EOF
)
sshd_start "$sshd_link" "$new_config"

# --- check it: the key alone is refused, key plus code logs in -------------------------------------
known_hosts=$state/known_hosts
sshd_known_hosts "$known_hosts"
ssh_opts=(-F /dev/null -i "$client_key" -p "$port" -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes
          -o UserKnownHostsFile="$known_hosts" -o ConnectTimeout=20 -o ControlMaster=no -o ControlPath=none)
if ssh "${ssh_opts[@]}" -o BatchMode=yes "$user@127.0.0.1" true </dev/null 2>/dev/null; then
    echo "15-sshd-mfa.sh: $user@127.0.0.1:$port let the key alone in; it must ask for a code" >&2
    exit 1
fi
if ! version=$(SSH_ASKPASS="$code_command" SSH_ASKPASS_REQUIRE=force ssh "${ssh_opts[@]}" "$user@127.0.0.1" \
        'python3 -c "import cloudpickle, numpy; print(numpy.__version__)"' </dev/null); then
    echo "15-sshd-mfa.sh: login to $user@127.0.0.1:$port with key and code failed; sshd log:" >&2
    tail -n 30 "$log" >&2 || true
    exit 1
fi
log_step "ok: $user@127.0.0.1:$port asks for key and code, remote numpy $version"

{
    echo "MFA_SSHD_HOST=127.0.0.1"
    echo "MFA_SSHD_PORT=$port"
    echo "MFA_SSHD_USER=$user"
    echo "MFA_SSHD_HOME=$home"
    echo "MFA_SSHD_CLIENT_KEY=$client_key"
    echo "MFA_SSHD_KNOWN_HOSTS=$known_hosts"
    echo "MFA_SSHD_HOST_KEYS=${host_pubs[*]}"
    echo "MFA_SSHD_CONFIG=$config"
    echo "MFA_SSHD_PID_FILE=$pid_file"
    echo "MFA_SSHD_BIN=$sshd_link"
    echo "MFA_SSHD_LOG=$log"
    echo "MFA_TOTP_SECRET_FILE=$secret_file"
    echo "MFA_CODE_COMMAND=$code_command"
} >&3
