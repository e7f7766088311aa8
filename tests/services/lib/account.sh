# Sourced by the service scripts: an ordinary account that plays a cluster user.
#
#   setup_account USER [DIR ...]
#   ensure_user USER             (the Unix account only)
#   setup_numpy1_venv            (after setup_account)
#
# Creates USER (uid >= 1000, home /home/USER, key logins allowed), gives it its own Python
# environment ~/venv with cloudpickle and numpy (built with Debian's python3 under a clean
# environment), and puts ~/venv/bin and the DIRs first on its PATH for both login shells
# (~/.profile) and the non-login `bash -c` that sshd runs (~/.bashrc). Idempotent. Sets
# `group` and defines `as_user` for the caller. Needs `log_step` from the caller.

# Run a command as $user with a clean environment (nothing of root's, e.g. pyenv) in its home.
as_user() {
    runuser -u "$user" -- env -i -C "$home" HOME="$home" USER="$user" LOGNAME="$user" SHELL=/bin/bash \
        PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 "$@"
}

# The Unix account USER alone (uid >= 1000, home /home/USER, key logins allowed), without its
# Python environment: 20-slurm.sh makes every submitting account before Slurm's accounting
# database learns of it (slurmctld resolves a user's uid once, when the association is added).
ensure_user() {
    local name=$1
    if ! id "$name" >/dev/null 2>&1; then
        log_step "creating account $name"
        useradd --create-home --home-dir "/home/$name" --shell /bin/bash "$name"
    fi
    # useradd leaves the password locked ('!'), which sshd with UsePAM no refuses even for keys.
    if [ "$(getent shadow "$name" | cut -d: -f2)" != "*" ]; then
        usermod -p '*' "$name"
    fi
    if [ "$(id -u "$name")" -lt 1000 ]; then
        echo "account $name has uid $(id -u "$name") < 1000" >&2
        return 1
    fi
}

setup_account() {
    user=$1
    shift
    home=/home/$user
    ensure_user "$user"
    group=$(id -gn "$user")

    local python=$home/venv/bin/python
    if ! as_user "$python" -c 'import cloudpickle, numpy' >/dev/null 2>&1; then
        if [ ! -x "$python" ]; then
            log_step "creating $home/venv"
            as_user /usr/bin/python3 -m venv "$home/venv"
        fi
        log_step "installing cloudpickle and numpy into $home/venv"
        as_user "$python" -m pip install --quiet --disable-pip-version-check cloudpickle numpy
    fi
    _first_on_path "\$HOME/venv/bin" "$@"
}

# A second environment ~/venv-numpy1 with numpy<2 (and cloudpickle), as wfl pins it: the jobs of
# the numpy 1.x/2.x interoperability test run their runner with its python. Idempotent.
setup_numpy1_venv() {
    local python=$home/venv-numpy1/bin/python
    if ! as_user "$python" -c 'import cloudpickle, numpy, sys; sys.exit(numpy.__version__ >= "2")' >/dev/null 2>&1; then
        if [ ! -x "$python" ]; then
            log_step "creating $home/venv-numpy1"
            as_user /usr/bin/python3 -m venv "$home/venv-numpy1"
        fi
        log_step "installing cloudpickle and numpy<2 into $home/venv-numpy1"
        as_user "$python" -m pip install --quiet --disable-pip-version-check cloudpickle 'numpy<2'
    fi
}

# ~/.bashrc: Debian's returns at once for non-interactive shells, so the line goes first there;
# ~/.profile sources ~/.bashrc, hence the guard against a second entry. A changed line replaces
# the old one (found by its marker).
_first_on_path() {
    local dirs=$1 dir rc tmp
    shift
    for dir in "$@"; do dirs="$dirs:$dir"; done
    local marker="# expyre test services: these directories first on PATH"
    local line="case \":\$PATH:\" in *\":$dirs:\"*) ;; *) PATH=\"$dirs:\$PATH\"; export PATH ;; esac"
    for rc in "$home/.bashrc" "$home/.profile"; do
        [ -e "$rc" ] || { touch "$rc"; chown "$user:$group" "$rc"; }
        grep -qxF "$line" "$rc" && continue
        tmp=$(mktemp "$rc.XXXXXX")
        if [ "$rc" = "$home/.bashrc" ]; then
            { echo "$marker"; echo "$line"; echo; _without_old_lines "$rc"; } > "$tmp"
        else
            { _without_old_lines "$rc"; echo; echo "$marker"; echo "$line"; } > "$tmp"
        fi
        chmod 644 "$tmp"
        chown "$user:$group" "$tmp"
        mv "$tmp" "$rc"
    done
}

# The file without an earlier expyre PATH marker and the PATH line that follows it.
_without_old_lines() {
    awk '/^# expyre test services: .*first on PATH$/ { skip = 1; next } skip { skip = 0; next } { print }' "$1"
}

# A client key pair $1 (made once, comment $2) whose public key may log in as user $3 (group $4,
# home $5): appended to ~/.ssh/authorized_keys once.
client_key_for() {
    local key=$1 comment=$2 login=$3 login_group=$4 login_home=$5
    if [ ! -s "$key" ] || [ ! -s "$key.pub" ]; then
        rm -f "$key" "$key.pub"
        ssh-keygen -q -t ed25519 -N '' -C "$comment" -f "$key"
    fi
    chmod 600 "$key"
    authorize_key "$key.pub" "$login" "$login_group" "$login_home"
}

# The public key in file $1 may log in as user $2 (group $3, home $4): appended to
# ~/.ssh/authorized_keys once.
authorize_key() {
    local pub_file=$1 login=$2 login_group=$3 login_home=$4 pub auth
    install -d -m 700 -o "$login" -g "$login_group" "$login_home/.ssh"
    auth=$login_home/.ssh/authorized_keys
    pub=$(cat "$pub_file")
    if [ ! -f "$auth" ] || ! grep -qxF "$pub" "$auth"; then
        echo "$pub" >> "$auth"
    fi
    chown "$login:$login_group" "$auth"
    chmod 600 "$auth"
}
