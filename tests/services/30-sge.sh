#!/usr/bin/env bash
# A real Son of Grid Engine 8.1.9 on this machine for the integration tests (run by tests/run_all.sh).
#
#   bash tests/services/30-sge.sh > .test-services/sge.env
#
# Installs Debian's gridengine-master, -exec and -client, configures cell "default" for this
# machine (host aliases, a submit host, a parallel environment "smp", a queue "regular" with 2
# slots, a scheduler that runs every second, accounting written every second) and starts
# sge_qmaster and sge_execd. Jobs are submitted by the ordinary account xpr-cluster (root cannot
# submit: Grid Engine refuses uids below 1000) over the sshd of 10-sshd.sh.
#
# The account sees Grid Engine the way users of a real site do: only through its login profile.
# Debian's /usr/bin/q* wrappers (which find SGE_ROOT on their own) are diverted away with
# dpkg-divert, and ~xpr-cluster/.profile sources $SGE_ROOT/default/common/settings.sh and puts
# $SGE_ROOT/bin/$SGE_ARCH on PATH, as a site's settings.sh does.
#
# Idempotent: a second run changes nothing that is already right and only (re)starts daemons
# that are not running. Prints KEY=VALUE lines on stdout (and nothing else); progress goes to
# stderr. Without root or apt-get it prints nothing and exits 0, so the tests that need it skip
# (and fail under CI).
set -euo pipefail

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "30-sge.sh: not root or no apt-get here: no Grid Engine, its tests will skip" >&2
    exit 0
fi

# Everything below writes progress to stderr; the KEY=VALUE result goes to the original stdout (fd 3).
exec 3>&1 1>&2

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
state="$repo/.test-services/sge"
user=xpr-cluster
queue=regular
pe=smp
slots=2
export SGE_ROOT=/var/lib/gridengine
export SGE_CELL=default
common=$SGE_ROOT/$SGE_CELL/common
bin=/usr/lib/gridengine            # the real client programs ($SGE_ROOT/bin/<arch> points here)
spool=/var/spool/gridengine
master_pid_file=$spool/qmaster/qmaster.pid
execd_pid_file=/var/run/gridengine/execd.pid
# The client programs Debian puts into /usr/bin as wrappers of /usr/share/gridengine/gridengine-wrapper.
wrapped=(qacct qalter qconf qdel qhold qhost qlogin qmake_sge qmod qping qquota qrdel qresub qrls qrsh
         qrstat qrsub qsched qselect qsh qstat qstatus qsub qtcsh)

mkdir -p "$state"
chmod 700 "$state"
# One run at a time (the lock fd is closed for the daemons so that they never hold it).
exec 9>"$state/lock"
flock 9

log_step() { echo "30-sge.sh: $*"; }
die() { echo "30-sge.sh: $*" >&2; exit 1; }
trap 'echo "30-sge.sh: failed (exit status $?) at line $LINENO: $BASH_COMMAND" >&2' ERR

# --- packages -------------------------------------------------------------------------------------
missing=()
for pkg in gridengine-master gridengine-exec gridengine-client; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    [ "$status" = "install ok installed" ] || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    log_step "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # the master's host name: without it the package leaves act_qmaster empty
    printf '%s\n' "gridengine-common shared/gridenginemaster string localhost" \
        "gridengine-common shared/gridenginecell string $SGE_CELL" \
        "gridengine-common shared/gridengineconfig boolean true" | debconf-set-selections
    apt_opts=(-y -q -o DPkg::Lock::Timeout=600)
    if ! apt-get install "${apt_opts[@]}" "${missing[@]}"; then
        log_step "install failed without an index update: running apt-get update"
        apt-get update -q -o DPkg::Lock::Timeout=600
        apt-get install "${apt_opts[@]}" "${missing[@]}"
    fi
fi
[ -x "$bin/qsub" ] && [ -x /usr/sbin/sge_qmaster ] && [ -x /usr/sbin/sge_execd ] \
    || die "Grid Engine programs missing after install"
[ -f "$common/bootstrap" ] || die "$common/bootstrap missing: the package did not create cell $SGE_CELL"

# --- Debian's /usr/bin wrappers out of everyone's PATH (a real site has none) ---------------------
for prog in "${wrapped[@]}"; do
    if [ "$(dpkg-divert --truename "/usr/bin/$prog")" = "/usr/bin/$prog" ]; then
        log_step "diverting /usr/bin/$prog to /usr/bin/$prog.debian-wrapper"
        dpkg-divert --quiet --local --rename --divert "/usr/bin/$prog.debian-wrapper" --add "/usr/bin/$prog"
    fi
done
qconf() { "$bin/qconf" "$@"; }

# --- cell files: master host and host aliases (see ../shared notes: the exec daemon is refused when
# this machine's names resolve differently) ------------------------------------------------------
write_if_changed() {  # file content: rewrite (owned by sgeadmin) only if different; returns 0 if written
    local file=$1 content=$2
    if [ -f "$file" ] && [ "$(cat "$file")" = "$content" ]; then
        return 1
    fi
    printf '%s\n' "$content" > "$file.tmp"
    chown sgeadmin:sgeadmin "$file.tmp"
    chmod 644 "$file.tmp"
    mv "$file.tmp" "$file"
    return 0
}
restart=false
if [ -z "$(tr -d '[:space:]' < "$common/act_qmaster" 2>/dev/null)" ]; then
    write_if_changed "$common/act_qmaster" localhost && restart=true
fi
master_host=$(tr -d '[:space:]' < "$common/act_qmaster")
names=("$master_host" localhost "$(hostname -s)" "$(hostname)")
while read -r addr rest; do
    [ "$addr" = 127.0.0.1 ] || continue
    for name in $rest; do names+=("$name"); done
done < <(grep -v '^[[:space:]]*#' /etc/hosts)
aliases=$(printf '%s\n' "${names[@]}" | awk 'NF && !seen[$0]++' | paste -sd' ')
write_if_changed "$common/host_aliases" "$aliases" && restart=true

# --- daemons --------------------------------------------------------------------------------------
daemon_pid() {  # pid of the running daemon named $2 (from its pid file $1), or nothing
    local pid_file=$1 name=$2 pid state
    pid=$(cat "$pid_file" 2>/dev/null || true)
    [[ "$pid" =~ ^[0-9]+$ ]] || return 0
    # a daemon that was stopped may linger as a zombie for a while: not running
    state=$(sed -e 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1 || true)
    if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ] && [ -n "$state" ] && [ "$state" != Z ]; then
        echo "$pid"
    fi
}
stray_pids() {  # pids of processes running the program $1 (a stale daemon keeps its port)
    local exe=$1 proc
    for proc in /proc/[0-9]*; do
        if [ "$(readlink "$proc/exe" 2>/dev/null)" = "$exe" ]; then
            echo "${proc#/proc/}"
        fi
    done
}
stop_daemon() {  # stop every process of program $1 by its pid
    local exe=$1 pid
    for pid in $(stray_pids "$exe"); do
        log_step "stopping $exe (pid $pid)"
        kill "$pid" 2>/dev/null || true
    done
    for _ in $(seq 100); do
        [ -z "$(stray_pids "$exe")" ] && return 0
        sleep 0.1
    done
    for pid in $(stray_pids "$exe"); do kill -9 "$pid" 2>/dev/null || true; done
}
master_up() { qconf -sh >/dev/null 2>&1; }

if $restart; then
    stop_daemon "$bin/sge_execd"
    stop_daemon "$bin/sge_qmaster"
fi
ensure_master() {
    if [ -z "$(daemon_pid "$master_pid_file" sge_qmaster)" ] || ! master_up; then
        stop_daemon "$bin/sge_qmaster"
        log_step "starting sge_qmaster"
        /etc/init.d/gridengine-master start </dev/null >/dev/null 2>&1 3>&- 9>&- || true
        for _ in $(seq 300); do master_up && break; sleep 0.1; done
        master_up || { tail -n 20 "$spool/qmaster/messages" >&2 || true; die "sge_qmaster did not start"; }
    fi
}
ensure_master

# --- cluster configuration ------------------------------------------------------------------------
if ! admin_host=$(qconf -sh 2>/dev/null | head -n 1); then
    # a qmaster that was being stopped answers for a moment longer: wait for it to go, start anew
    log_step "sge_qmaster stopped answering: starting it again"
    stop_daemon "$bin/sge_qmaster"
    ensure_master
    admin_host=$(qconf -sh 2>/dev/null | head -n 1) || die "sge_qmaster does not answer (qconf -sh failed)"
fi
[ -n "$admin_host" ] || die "no admin host in the cell"
host=$admin_host                    # the name Grid Engine knows this machine by (with the aliases)

if ! qconf -ss 2>/dev/null | grep -qxF "$host"; then
    log_step "adding $host as a submit host"
    qconf -as "$host"
fi

# Scheduler: run every second (and right after submissions and finished jobs), not every 15 s.
sconf=$(qconf -ssconf)
new_sconf=$(printf '%s\n' "$sconf" | sed -E \
    -e 's/^(schedule_interval[[:space:]]+).*/\10:0:1/' \
    -e 's/^(flush_submit_sec[[:space:]]+).*/\11/' \
    -e 's/^(flush_finish_sec[[:space:]]+).*/\11/')
if [ "$sconf" != "$new_sconf" ]; then
    log_step "scheduler: schedule_interval 0:0:1, flush_submit_sec 1, flush_finish_sec 1"
    printf '%s\n' "$new_sconf" > "$state/sconf"
    qconf -Msconf "$state/sconf"
fi

# Global configuration: accounting on and written every second, so that qacct knows a finished
# job at once (Debian's default flushes every 15 s).
gconf=$(qconf -sconf global | sed -e '1{/^#/d}')
reporting="accounting=true reporting=false flush_time=00:00:01 joblog=false sharelog=00:00:00"
new_gconf=$(printf '%s\n' "$gconf" | awk -v rp="$reporting" '
    /^reporting_params/ { print "reporting_params             " rp; skip = /\\$/; next }
    skip { skip = /\\$/; next }
    { print }')
if [ "$(printf '%s\n' "$gconf" | tr -s ' \\\n' ' ')" != "$(printf '%s\n' "$new_gconf" | tr -s ' \\\n' ' ')" ]; then
    log_step "global config: $reporting"
    mkdir -p "$state/conf"
    printf '%s\n' "$new_gconf" > "$state/conf/global"
    qconf -Mconf "$state/conf/global"
fi

# Parallel environment "smp": all slots of a job on one host.
pe_file=$(cat <<EOF
pe_name            $pe
slots              999
user_lists         NONE
xuser_lists        NONE
start_proc_args    NONE
stop_proc_args     NONE
allocation_rule    \$pe_slots
control_slaves     FALSE
job_is_first_task  TRUE
urgency_slots      min
accounting_summary FALSE
qsort_args         NONE
EOF
)
normalize() { tr -s ' \t' ' ' | sed -e 's/ $//'; }
if ! current=$(qconf -sp "$pe" 2>/dev/null); then
    log_step "adding parallel environment $pe"
    printf '%s\n' "$pe_file" > "$state/pe"
    qconf -Ap "$state/pe"
elif [ "$(printf '%s\n' "$current" | normalize)" != "$(printf '%s\n' "$pe_file" | normalize)" ]; then
    log_step "updating parallel environment $pe"
    printf '%s\n' "$pe_file" > "$state/pe"
    qconf -Mp "$state/pe"
fi

# Queue "regular": this host, $slots slots, the smp environment, no load threshold (a busy
# 2-core machine must not put the queue into alarm state), jobs started as login shells
# (login_shells in the global config lists bash) so that the account's profile applies.
queue_file=$(cat <<EOF
qname                 $queue
hostlist              $host
seq_no                0
load_thresholds       NONE
suspend_thresholds    NONE
nsuspend              1
suspend_interval      00:05:00
priority              0
min_cpu_interval      00:05:00
processors            UNDEFINED
qtype                 BATCH INTERACTIVE
ckpt_list             NONE
pe_list               $pe
rerun                 FALSE
slots                 $slots
tmpdir                /tmp
shell                 /bin/bash
prolog                NONE
epilog                NONE
shell_start_mode      posix_compliant
starter_method        NONE
suspend_method        NONE
resume_method         NONE
terminate_method      NONE
notify                00:00:60
owner_list            NONE
user_lists            NONE
xuser_lists           NONE
subordinate_list      NONE
complex_values        NONE
projects              NONE
xprojects             NONE
calendar              NONE
initial_state         default
s_rt                  INFINITY
h_rt                  INFINITY
s_cpu                 INFINITY
h_cpu                 INFINITY
s_fsize               INFINITY
h_fsize               INFINITY
s_data                INFINITY
h_data                INFINITY
s_stack               INFINITY
h_stack               INFINITY
s_core                INFINITY
h_core                INFINITY
s_rss                 INFINITY
h_rss                 INFINITY
s_vmem                INFINITY
h_vmem                INFINITY
EOF
)
if ! current=$(qconf -sq "$queue" 2>/dev/null); then
    log_step "adding queue $queue"
    printf '%s\n' "$queue_file" > "$state/queue"
    qconf -Aq "$state/queue"
elif [ "$(printf '%s\n' "$current" | normalize)" != "$(printf '%s\n' "$queue_file" | normalize)" ]; then
    log_step "updating queue $queue"
    printf '%s\n' "$queue_file" > "$state/queue"
    qconf -Mq "$state/queue"
fi

# --- exec daemon ----------------------------------------------------------------------------------
execd_up() { [ -n "$(daemon_pid "$execd_pid_file" sge_execd)" ]; }
if ! execd_up; then
    stop_daemon "$bin/sge_execd"
    log_step "starting sge_execd"
    /etc/init.d/gridengine-exec start </dev/null >/dev/null 2>&1 3>&- 9>&- || true
    for _ in $(seq 100); do execd_up && break; sleep 0.1; done
    execd_up || die "sge_execd did not start"
fi
# the host reports load (is not "au") once the exec daemon registered; a cleared alarm or error
# state of the queue instance is cleared again here
queue_ready() {
    local states
    states=$("$bin/qstat" -f -q "$queue@$host" 2>/dev/null | awk -v q="$queue@$host" '$1 == q { print $6 }')
    [ -n "$("$bin/qstat" -f -q "$queue@$host" 2>/dev/null | awk -v q="$queue@$host" '$1 == q')" ] \
        && ! [[ "$states" =~ [auEdsSDC] ]]
}
for _ in $(seq 300); do queue_ready && break; sleep 0.2; done
if ! queue_ready; then
    qconf -sq "$queue" >/dev/null 2>&1 && "$bin/qmod" -c "$queue@$host" >/dev/null 2>&1 || true
    "$bin/qmod" -e "$queue@$host" >/dev/null 2>&1 || true
    for _ in $(seq 100); do queue_ready && break; sleep 0.2; done
fi
queue_ready || { "$bin/qstat" -f >&2 || true; die "queue $queue@$host is not ready"; }

# --- the submitting account -----------------------------------------------------------------------
if ! id "$user" >/dev/null 2>&1; then
    log_step "creating account $user"
    useradd --create-home --home-dir "/home/$user" --shell /bin/bash "$user"
fi
home=$(getent passwd "$user" | cut -d: -f6)
group=$(id -gn "$user")
[ "$(id -u "$user")" -ge 1000 ] || die "$user has uid $(id -u "$user"): Grid Engine refuses uids below 1000"

# The site's login profile: Grid Engine's settings (SGE_ROOT, SGE_CELL, SGE_ARCH) and programs.
marker="# expyre test services: Grid Engine environment, as a site's login profile sets it"
profile_block=$(cat <<EOF
$marker
if [ -r $common/settings.sh ]; then
    . $common/settings.sh
    case ":\$PATH:" in *":\$SGE_ROOT/bin/\$SGE_ARCH:"*) ;; *) PATH="\$SGE_ROOT/bin/\$SGE_ARCH:\$PATH"; export PATH ;; esac
fi
# end of the Grid Engine environment
EOF
)
rc=$home/.profile
[ -e "$rc" ] || { touch "$rc"; chown "$user:$group" "$rc"; }
if ! grep -qF "$marker" "$rc"; then
    log_step "adding the Grid Engine environment to $rc"
    tmp=$(mktemp "$rc.XXXXXX")
    { cat "$rc"; echo; echo "$profile_block"; } > "$tmp"
    chmod 644 "$tmp"
    chown "$user:$group" "$tmp"
    mv "$tmp" "$rc"
fi

# --- check: the account submits a job that runs, through its login shell only ---------------------
as_user_login() {
    runuser -u "$user" -- env -i HOME="$home" USER="$user" LOGNAME="$user" SHELL=/bin/bash \
        PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 bash -l -c "cd && $1" </dev/null
}
if ! as_user_login 'command -v qsub >/dev/null && qstat >/dev/null'; then
    die "$user cannot reach Grid Engine through its login profile"
fi
if [ ! -f "$state/checked" ]; then
    log_step "test job as $user"
    out=$(as_user_login "printf '#!/bin/bash\necho ok-\$NSLOTS\n' | qsub -sync y -N expyre_check -q $queue -pe $pe 1 -o /dev/null -e /dev/null -l h_rt=0:1:0 -S /bin/bash -r n -terse" 2>&1) \
        || die "test job failed: $out"
    log_step "test job: $out"
    touch "$state/checked"
fi
log_step "ok: Grid Engine cell $SGE_CELL at $SGE_ROOT, queue $queue@$host ($slots slots), pe $pe"

{
    echo "SGE_ROOT=$SGE_ROOT"
    echo "SGE_CELL=$SGE_CELL"
    echo "SGE_ARCH=$("$SGE_ROOT/util/arch")"
    echo "SGE_BIN=$bin"
    echo "SGE_HOST=$host"
    echo "SGE_QUEUE=$queue"
    echo "SGE_PE=$pe"
    echo "SGE_SLOTS=$slots"
    echo "SGE_USER=$user"
    echo "SGE_ACCOUNTING=$common/accounting"
    echo "SGE_QMASTER_MESSAGES=$spool/qmaster/messages"
} >&3
