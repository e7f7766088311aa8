#!/usr/bin/env bash
# A real one-node Slurm cluster on this machine for the integration tests (run by tests/run_all.sh).
#
#   bash tests/services/20-slurm.sh > .test-services/slurm.env
#
# Installs Debian's slurm-wlm and munge if needed, writes /etc/slurm/slurm.conf for this machine
# (one node: this host, all its CPUs; partitions "standard" (default) and "short"), starts munged,
# slurmctld and slurmd if they are not running, and waits until the node is idle. Idempotent: a
# second run changes nothing and restarts nothing unless the configuration it would write differs.
#
# Accounting: slurmdbd on a local MariaDB (Debian's slurmdbd and mariadb-server), with limits
# enforced (AccountingStorageEnforce=limits), so that a per-user job limit is real. With
# enforcement on, a user without an association cannot submit: every account that submits jobs in
# the tests (root, xpr-cluster, xpr-mfa, xpr-pbs, xpr-limited; wfl's jobs run as xpr-cluster) gets
# one in the account "expyre-test". Finished jobs stay visible to squeue and scontrol for
# MinJobAge seconds, and sacct answers for them after that.
#
# The account xpr-limited (made like the others by tests/services/lib/account.sh, key login over
# the private sshd of 10-sshd.sh with a key of its own, .test-services/slurm-limited/client_ed25519)
# has MaxSubmitJobs=4 on its association: Slurm refuses its fifth queued or running job (an array
# of N tasks counts N), for the tests of expyre's local backlog.
#
# Prints KEY=VALUE lines on stdout (and nothing else); progress goes to stderr. Without root or
# apt-get it prints nothing and exits 0, so the tests that need it skip (and fail under CI).
set -euo pipefail

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "20-slurm.sh: not root or no apt-get here: no local Slurm, its tests will skip" >&2
    exit 0
fi

# Progress to stderr; the KEY=VALUE result goes to the original stdout (fd 3).
exec 3>&1 1>&2

log_step() { echo "20-slurm.sh: $*"; }

conf_dir=/etc/slurm
conf=$conf_dir/slurm.conf
run_dir=/run/slurm
spool_ctld=/var/spool/slurmctld
spool_d=/var/spool/slurmd
log_dir=/var/log/slurm
ctld_pid=$run_dir/slurmctld.pid
slurmd_pid=$run_dir/slurmd.pid
dbd_conf=$conf_dir/slurmdbd.conf
dbd_pid=$run_dir/slurmdbd.pid
mysql_run=/run/mysqld
mysql_pid=$mysql_run/mysqld.pid
mysql_socket=$mysql_run/mysqld.sock
cluster=expyre-test
account=expyre-test
site_account=proj42
# every account that submits Slurm jobs in the tests (an association each, or Slurm refuses it)
submitters=(root xpr-cluster xpr-mfa xpr-pbs)
limited_user=xpr-limited
limited_max_submit=4
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
sshd_state=$repo/.test-services/sshd
limited_state=$(readlink -m "$repo/.test-services/slurm-limited")

mkdir -p "$conf_dir"
# One run at a time (the lock fd is closed for the daemons so that they never hold it).
exec 9>"$conf_dir/.expyre-test-service.lock"
flock 9

# --- packages -------------------------------------------------------------------------------------
# shellcheck source=tests/services/lib/packages.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/packages.sh"
ensure_packages slurm-wlm munge slurmdbd mariadb-server
for bin in /usr/sbin/slurmctld /usr/sbin/slurmd /usr/sbin/munged /usr/bin/sbatch /usr/sbin/slurmdbd \
        /usr/sbin/mariadbd /usr/bin/sacctmgr; do
    [ -x "$bin" ] || { echo "20-slurm.sh: $bin missing after install" >&2; exit 1; }
done

# --- munge ----------------------------------------------------------------------------------------
if [ ! -s /etc/munge/munge.key ]; then
    log_step "creating /etc/munge/munge.key"
    if command -v mungekey >/dev/null 2>&1; then
        mungekey --create --keyfile=/etc/munge/munge.key
    else
        dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
    fi
fi
chown munge:munge /etc/munge/munge.key
chmod 400 /etc/munge/munge.key
mkdir -p /run/munge
chown munge:munge /run/munge
chmod 755 /run/munge
munge_ok() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }
if ! munge_ok; then
    log_step "starting munged"
    # a stale socket or pid file from a daemon that is gone stops munged from starting
    if [ -s /run/munge/munged.pid ] && ! kill -0 "$(cat /run/munge/munged.pid)" 2>/dev/null; then
        rm -f /run/munge/munged.pid /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock
    fi
    su -s /bin/sh munge -c /usr/sbin/munged </dev/null >/dev/null 2>&1 9>&- || true
    for _ in $(seq 100); do munge_ok && break; sleep 0.1; done
    munge_ok || { echo "20-slurm.sh: munged does not answer (munge -n | unmunge fails)" >&2; exit 1; }
fi

# --- configuration --------------------------------------------------------------------------------
node=$(hostname -s)
cpus=$(nproc)
mem_total_mb=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
# A bit below the real memory: slurmd drains a node whose real memory is below the configured one.
real_memory=$(( mem_total_mb * 9 / 10 ))
[ "$real_memory" -ge 100 ] || real_memory=100

new_conf=$(cat <<EOF
# One-node Slurm cluster for expyre's integration tests (written by tests/services/20-slurm.sh).
ClusterName=expyre-test
SlurmctldHost=$node
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
StateSaveLocation=$spool_ctld
SlurmdSpoolDir=$spool_d
SlurmctldPidFile=$ctld_pid
SlurmdPidFile=$slurmd_pid
SlurmctldLogFile=$log_dir/slurmctld.log
SlurmdLogFile=$log_dir/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=$node
AccountingStorageEnforce=limits
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
# Fast turn-around for tests: schedule at once, kill quickly after the wall time, and keep
# finished jobs visible to squeue/scontrol for 10 minutes.
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=2,sched_min_interval=100000
MinJobAge=600
KillWait=2
OverTimeLimit=0
InactiveLimit=0
Waittime=0
MessageTimeout=10
SlurmdTimeout=300
SlurmctldTimeout=120
NodeName=$node CPUs=$cpus RealMemory=$real_memory State=UNKNOWN
PartitionName=standard Nodes=$node Default=YES MaxTime=INFINITE State=UP
PartitionName=short Nodes=$node Default=NO MaxTime=00:30:00 State=UP
EOF
)

pid_alive() {  # pid_alive PIDFILE NAME: the pid in PIDFILE is a running NAME
    local pid
    [ -s "$1" ] || return 1
    pid=$(cat "$1")
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ]
}
stop_daemon() {  # stop_daemon PIDFILE NAME
    local pid
    pid_alive "$1" "$2" || return 0
    pid=$(cat "$1")
    log_step "stopping $2 (pid $pid)"
    kill "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
}

if [ ! -f "$conf" ] || [ "$(cat "$conf")" != "$new_conf" ]; then
    log_step "writing $conf"
    echo "$new_conf" > "$conf.tmp"
    chmod 644 "$conf.tmp"
    mv "$conf.tmp" "$conf"
    # a changed node or partition definition needs fresh daemons
    stop_daemon "$slurmd_pid" slurmd
    stop_daemon "$ctld_pid" slurmctld
fi

install -d -m 755 -o slurm -g slurm "$run_dir" "$spool_ctld" "$log_dir"
install -d -m 755 "$spool_d"

# --- accounting: MariaDB and slurmdbd -------------------------------------------------------------
# MariaDB listens on its socket only; slurmdbd logs in as the Unix user slurm through MariaDB's
# unix_socket authentication, so there is no password anywhere.
mysql_ok() { mariadb --protocol=socket --socket="$mysql_socket" -e 'SELECT 1' >/dev/null 2>&1; }
if [ ! -d /var/lib/mysql/mysql ]; then
    log_step "creating MariaDB's data directory"
    mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
fi
install -d -m 755 -o mysql -g mysql "$mysql_run"
if ! mysql_ok; then
    log_step "starting mariadbd"
    if [ -s "$mysql_pid" ] && ! kill -0 "$(cat "$mysql_pid")" 2>/dev/null; then
        rm -f "$mysql_pid" "$mysql_socket"
    fi
    setsid /usr/sbin/mariadbd --user=mysql --skip-networking --socket="$mysql_socket" --pid-file="$mysql_pid" \
        --log-error="$log_dir/mariadb.log" </dev/null >/dev/null 2>&1 3>&- 9>&- &
    for _ in $(seq 150); do mysql_ok && break; sleep 0.2; done
    mysql_ok || { echo "20-slurm.sh: mariadbd does not answer; log tail:" >&2; tail -n 30 "$log_dir/mariadb.log" >&2 || true; exit 1; }
fi
mariadb --protocol=socket --socket="$mysql_socket" <<SQL
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED VIA unix_socket;
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
SQL

new_dbd_conf=$(cat <<EOF
# slurmdbd for expyre's integration tests (written by tests/services/20-slurm.sh).
AuthType=auth/munge
DbdHost=$node
SlurmUser=slurm
PidFile=$dbd_pid
LogFile=$log_dir/slurmdbd.log
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageLoc=slurm_acct_db
StorageUser=slurm
EOF
)
if [ ! -f "$dbd_conf" ] || [ "$(cat "$dbd_conf")" != "$new_dbd_conf" ]; then
    log_step "writing $dbd_conf"
    echo "$new_dbd_conf" > "$dbd_conf.tmp"
    chown slurm:slurm "$dbd_conf.tmp"
    chmod 600 "$dbd_conf.tmp"
    mv "$dbd_conf.tmp" "$dbd_conf"
    stop_daemon "$dbd_pid" slurmdbd
fi
dbd_ok() { sacctmgr -n -P show cluster format=cluster >/dev/null 2>&1; }
if ! pid_alive "$dbd_pid" slurmdbd; then
    log_step "starting slurmdbd"
    /usr/sbin/slurmdbd </dev/null >/dev/null 2>&1 3>&- 9>&-
fi
for _ in $(seq 150); do dbd_ok && break; sleep 0.2; done
dbd_ok || { echo "20-slurm.sh: slurmdbd does not answer; log tail:" >&2; tail -n 30 "$log_dir/slurmdbd.log" >&2 || true; exit 1; }

# --- accounting: the cluster, the account and an association for every submitting user ----------
# (added before slurmctld starts, so that it finds its cluster registered)
listed() { sacctmgr -n -P "$@" 2>/dev/null; }
if ! listed show cluster format=cluster | grep -qxF "$cluster"; then
    log_step "adding cluster $cluster to the accounting database"
    sacctmgr -i add cluster "$cluster" >/dev/null
fi
if ! listed show account format=account | grep -qxF "$account"; then
    log_step "adding account $account"
    sacctmgr -i add account "$account" cluster="$cluster" description="expyre tests" organization=expyre >/dev/null
fi
# shellcheck source=tests/services/lib/account.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/account.sh"
for name in "${submitters[@]}" "$limited_user"; do
    [ "$name" = root ] || ensure_user "$name"  # (a user unknown to the system when added stays unusable)
done
associated=$(listed show assoc cluster="$cluster" account="$account" format=user)
for name in "${submitters[@]}" "$limited_user"; do
    if ! grep -qxF "$name" <<<"$associated"; then
        log_step "adding $name to account $account"
        sacctmgr -i add user "$name" account="$account" cluster="$cluster" >/dev/null
    fi
done
# the example site plugin's systems charge a project (tests/site_plugin: "#SBATCH --account=proj42")
if ! listed show account format=account | grep -qxF "$site_account"; then
    log_step "adding account $site_account"
    sacctmgr -i add account "$site_account" cluster="$cluster" description="example site project" \
        organization=expyre >/dev/null
fi
if ! listed show assoc cluster="$cluster" account="$site_account" format=user | grep -qxF xpr-cluster; then
    log_step "adding xpr-cluster to account $site_account"
    sacctmgr -i add user xpr-cluster account="$site_account" cluster="$cluster" >/dev/null
fi
limit=$(listed show assoc cluster="$cluster" account="$account" user="$limited_user" format=maxsubmit)
if [ "$limit" != "$limited_max_submit" ]; then
    log_step "MaxSubmitJobs=$limited_max_submit for $limited_user"
    sacctmgr -i modify user where name="$limited_user" cluster="$cluster" account="$account" \
        set MaxSubmitJobs="$limited_max_submit" >/dev/null
fi

# --- daemons --------------------------------------------------------------------------------------
if ! pid_alive "$ctld_pid" slurmctld; then
    log_step "starting slurmctld"
    /usr/sbin/slurmctld </dev/null >/dev/null 2>&1 9>&-
fi
for _ in $(seq 150); do
    scontrol ping 2>/dev/null | grep -q "is UP" && break
    sleep 0.2
done
if ! scontrol ping 2>/dev/null | grep -q "is UP"; then
    echo "20-slurm.sh: slurmctld does not answer; log tail:" >&2
    tail -n 30 "$log_dir/slurmctld.log" >&2 || true
    exit 1
fi
if ! pid_alive "$slurmd_pid" slurmd; then
    log_step "starting slurmd"
    /usr/sbin/slurmd </dev/null >/dev/null 2>&1 9>&-
fi

# --- wait until the node takes jobs ---------------------------------------------------------------
state=""
for i in $(seq 120); do
    state=$(sinfo -h -n "$node" -o %T 2>/dev/null | head -n 1 || true)
    case "$state" in
        idle|mixed|allocated|completing) break ;;
        down*|drain*|fail*)
            # left down by an earlier run (for example a daemon restart): put it back in service
            if [ "$i" -gt 5 ]; then
                scontrol update NodeName="$node" State=RESUME 2>/dev/null || true
            fi ;;
    esac
    sleep 0.5
done
case "$state" in
    idle|mixed|allocated|completing) ;;
    *)
        echo "20-slurm.sh: node $node is '$state', not idle; slurmd log tail:" >&2
        tail -n 30 "$log_dir/slurmd.log" >&2 || true
        exit 1 ;;
esac
log_step "ok: node $node ($cpus CPUs) is $state; $(sinfo --version)"

# --- the account with a per-user job limit --------------------------------------------------------
# Made like the other cluster accounts (its own ~/venv first on PATH), with a client key of its own
# for the private sshd of 10-sshd.sh (which allows it). Without that sshd: no such account here.
limited_values=()
if [ -s "$sshd_state/port" ]; then
    setup_account "$limited_user"
    limited_home=$home
    install -d -m 700 "$limited_state"
    limited_key=$limited_state/client_ed25519
    client_key_for "$limited_key" "expyre-test-slurm-limited-client" "$limited_user" "$group" "$limited_home"
    limit=$(listed show assoc cluster="$cluster" account="$account" user="$limited_user" format=maxsubmit)
    [ "$limit" = "$limited_max_submit" ] || { echo "20-slurm.sh: $limited_user has MaxSubmitJobs '$limit'" >&2; exit 1; }
    log_step "ok: $limited_user may have at most $limited_max_submit jobs queued or running"
    limited_values=("SLURM_LIMITED_USER=$limited_user" "SLURM_LIMITED_HOME=$limited_home"
                    "SLURM_LIMITED_CLIENT_KEY=$limited_key" "SLURM_LIMITED_MAX_SUBMIT=$limited_max_submit")
else
    log_step "the private sshd of tests/services/10-sshd.sh is not set up: no account $limited_user"
fi

{
    echo "SLURM_PARTITION=standard"
    echo "SLURM_PARTITION_SHORT=short"
    echo "SLURM_NODE=$node"
    echo "SLURM_CPUS=$cpus"
    echo "SLURM_VERSION=$(sinfo --version | awk '{print $2}')"
    echo "SLURM_ACCOUNTING=slurmdbd"
    echo "SLURM_ACCOUNT=$account"
    for value in "${limited_values[@]}"; do echo "$value"; done
} >&3
