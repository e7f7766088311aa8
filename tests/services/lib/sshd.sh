# Sourced by the service scripts that run a private OpenSSH server (10-sshd.sh, 15-sshd-mfa.sh):
# its keys, its port, starting it, and the known_hosts line a client checks it with.
#
# The caller sets `state` (private directory of this sshd), `user`, `group`, `home` (the account
# that logs in), `client_key`, `config`, `pid_file` and `log`, and defines `log_step`.

# Host keys (ed25519, rsa) and the client's key under $state, made once; sets `host_pubs`.
# The client's public key is authorized for $user (client_key_for, lib/account.sh, which the
# caller sources). $1: a word for the keys' comments.
sshd_keys() {
    local label=$1 type key
    for type in ed25519 rsa; do
        key=$state/ssh_host_${type}_key
        if [ ! -s "$key" ] || [ ! -s "$key.pub" ]; then
            rm -f "$key" "$key.pub"
            ssh-keygen -q -t "$type" -N '' -C "expyre-test-$label-host" -f "$key"
        fi
        chmod 600 "$key"
    done
    host_pubs=("$state/ssh_host_ed25519_key.pub" "$state/ssh_host_rsa_key.pub")
    client_key_for "$client_key" "expyre-test-$label-client" "$user" "$group" "$home"
}

# Whether the sshd of $pid_file runs, with $config.
sshd_alive() {
    local pid
    [ -s "$pid_file" ] || return 1
    pid=$(cat "$pid_file")
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$config"
}

_port_open() { (exec 5<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Sets `port`: the one in $state/port, or on the first run (or when our sshd is down and
# something else took that port) a free loopback port, remembered there.
sshd_port() {
    port=$(cat "$state/port" 2>/dev/null || true)
    if ! [[ "$port" =~ ^[0-9]+$ ]] || { ! sshd_alive && _port_open "$port"; }; then
        port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
        echo "$port" > "$state/port"
    fi
}

# Write $config with the text $2 (restarting a running sshd whose config changed), check it, and
# start the sshd program $1 unless it runs; waits until $port answers.
sshd_start() {
    local program=$1 new_config=$2
    if [ ! -f "$config" ] || [ "$(cat "$config")" != "$new_config" ]; then
        echo "$new_config" > "$config"
        chmod 600 "$config"
        if sshd_alive; then
            log_step "config changed: restarting sshd"
            kill "$(cat "$pid_file")"
            for _ in $(seq 100); do sshd_alive || break; sleep 0.1; done
        fi
    fi
    mkdir -p /run/sshd  # privilege separation directory (sshd -t needs it too)
    chmod 755 /run/sshd
    "$program" -t -f "$config"
    if ! sshd_alive; then
        log_step "starting $program on 127.0.0.1:$port"
        rm -f "$pid_file"
        "$program" -f "$config" -E "$log" </dev/null >/dev/null 2>&1 3>&- 9>&-
        for _ in $(seq 100); do _port_open "$port" && break; sleep 0.1; done
    fi
}

# Write the known_hosts file $1 for this sshd's host keys at 127.0.0.1:$port.
sshd_known_hosts() {
    local file=$1 pub ktype kdata
    : > "$file.tmp"
    for pub in "${host_pubs[@]}"; do
        read -r ktype kdata _ < "$pub"
        echo "[127.0.0.1]:$port $ktype $kdata" >> "$file.tmp"
    done
    mv "$file.tmp" "$file"
}
