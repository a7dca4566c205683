#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for tests/test_slurm.py and CI.
#
#   bash tests/slurm/cluster.sh up       install (apt), configure and start it; ok if already up
#   bash tests/slurm/cluster.sh status   daemons, node and accounting; exit 0 when up, 3 when not
#   bash tests/slurm/cluster.sh down     cancel its jobs and stop the daemons it started; always exit 0
#
# Needs root and apt-get (Debian 12: SLURM 22.05, MariaDB 10.11). No systemd: every daemon runs
# in the foreground under nohup, its PID is recorded in $STATE/<daemon>.pid and `down` stops
# exactly those PIDs. Daemons: munged (authentication), mariadbd + slurmdbd (accounting, so that
# `sacct` answers: the executor plugin's default status check), slurmctld, slurmd.
#
# The node is this host (`hostname -s`), with all its CPUs, its memory less a margin, and one
# device-less GPU (gres.conf `File=/dev/null`) so that GPU requests (--gpus / --gres) are
# accepted and accounted. The partition is named by $HEADLAB_SLURM_PARTITION (default `debug`),
# the cluster by $HEADLAB_SLURM_CLUSTER (default `headlab`); account `headlab` holds root.
#
# Exit status of `up`: 0 up; 1 a daemon did not come up (see $STATE/log/); 2 cannot run here
# (not root, no apt-get, the packages cannot be installed): CI skips the SLURM tests then.
set -uo pipefail

STATE=${HEADLAB_SLURM_STATE:-/var/tmp/headlab-slurm}
CLUSTER=${HEADLAB_SLURM_CLUSTER:-headlab}
PARTITION=${HEADLAB_SLURM_PARTITION:-debug}
ACCOUNT=headlab
MEM_MARGIN_MB=${HEADLAB_SLURM_MEM_MARGIN_MB:-1024}
PACKAGES=(munge slurmctld slurmd slurm-client slurmdbd mariadb-server)
DAEMONS=(munged mariadbd slurmdbd slurmctld slurmd)   # start order; stopped in reverse
CONF_DIR=/etc/slurm
MARKER="# written by headlab tests/slurm/cluster.sh"
DB_NAME=slurm_acct_db
DB_USER=slurm
DB_PASS=headlab-slurmdbd
MYSQL_SOCKET=/run/mysqld/mysqld.sock
NODE=$(hostname -s)

log() { printf '[cluster.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $1"; exit "${2:-1}"; }

now_ms() { echo $(($(date +%s%N) / 1000000)); }
seconds_since() { # ms timestamp -> "12.3"
    local ms=$(($(now_ms) - $1))
    printf '%d.%d' $((ms / 1000)) $((ms % 1000 / 100))
}
PHASE_START=0
phase_begin() { PHASE_START=$(now_ms); log "$1 ..."; }
phase_end() { log "$1: $(seconds_since "$PHASE_START") s"; }

# -- PIDs -----------------------------------------------------------------------------------

pid_of() { # the recorded PID of a daemon, if it is still that daemon
    local name=$1 file="$STATE/$1.pid" pid
    [[ -s $file ]] || return 1
    pid=$(<"$file")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    # guard against a recycled PID: the process must still run the daemon's program
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$name"* ]] || return 1
    echo "$pid"
}

running() { pid_of "$1" >/dev/null; }

start_daemon() { # name, command...: run in the foreground under nohup, record the PID
    local name=$1
    shift
    nohup "$@" >>"$STATE/log/$name.out" 2>&1 </dev/null &
    echo $! >"$STATE/$name.pid"
    log "started $name (PID $!)"
}

stop_daemon() {
    local name=$1 pid
    if ! pid=$(pid_of "$name"); then
        rm -f "$STATE/$name.pid"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name (PID $pid) ignored SIGTERM for 10 s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null
    fi
    rm -f "$STATE/$name.pid"
    log "stopped $name (PID $pid)"
}

wait_for() { # seconds, description, command...: poll until the command succeeds
    local seconds=$1 what=$2
    shift 2
    local deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            log "timed out after ${seconds}s waiting for $what"
            return 1
        fi
        sleep 0.5
    done
}

show_logs() {
    local f
    for f in "$STATE"/log/*; do
        [[ -s $f ]] || continue
        echo "----- $f (tail)" >&2
        tail -n 25 "$f" >&2
    done
}

# -- up -------------------------------------------------------------------------------------

install_packages() {
    local missing=()
    for cmd in munged mariadbd slurmdbd slurmctld slurmd sbatch sacct sacctmgr; do
        command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
    done
    if ((${#missing[@]} == 0)); then
        log "packages already installed"
        return 0
    fi
    log "missing: ${missing[*]}; installing ${PACKAGES[*]}"
    # Keep the packages' init scripts from starting daemons we would not track.
    local policy=/usr/sbin/policy-rc.d own_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\n%s\nexit 101\n' "$MARKER" >"$policy"
        chmod 755 "$policy"
        own_policy=1
    fi
    local rc=0
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" >"$STATE/log/apt.log" 2>&1; then
        log "apt-get install failed; apt-get update and retry"
        apt-get update -q >>"$STATE/log/apt.log" 2>&1 &&
            apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" >>"$STATE/log/apt.log" 2>&1 ||
            rc=$?
    fi
    ((own_policy)) && rm -f "$policy"
    if ((rc != 0)); then
        tail -n 20 "$STATE/log/apt.log" >&2
        return 1
    fi
}

write_configs() {
    mkdir -p "$CONF_DIR" "$STATE"/{ctld,spool,log}
    local f
    for f in slurm.conf gres.conf slurmdbd.conf; do
        if [[ -e $CONF_DIR/$f ]] && ! grep -qF "$MARKER" "$CONF_DIR/$f"; then
            log "keeping a copy of the existing $CONF_DIR/$f as $f.before-headlab"
            cp -p "$CONF_DIR/$f" "$CONF_DIR/$f.before-headlab"
        fi
    done
    local cpus mem
    cpus=$(nproc)
    mem=$(($(free -m | awk '/^Mem:/ {print $2}') - MEM_MARGIN_MB))
    # slurm.conf must be here: jobs run without SLURM_CONF, so sbatch/srun in a job look here.
    cat >"$CONF_DIR/slurm.conf" <<EOF
$MARKER
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.daemon.pid
SlurmdPidFile=$STATE/slurmd.daemon.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# no cgroups, no systemd here
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
ReturnToService=2
KillWait=5
MinJobAge=300
GresTypes=gpu
# accounting through slurmdbd, so that sacct answers; keep the executor's job comments
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStorageTRES=gres/gpu
AccountingStoreFlags=job_comment
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
JobCompType=jobcomp/none
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem Gres=gpu:1 State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
    cat >"$CONF_DIR/gres.conf" <<EOF
$MARKER
# one device-less GPU: requests for it are scheduled and accounted, nothing is attached
NodeName=$NODE Name=gpu File=/dev/null
EOF
    cat >"$CONF_DIR/slurmdbd.conf" <<EOF
$MARKER
AuthType=auth/munge
DbdHost=localhost
DbdPort=6819
SlurmUser=root
DebugLevel=info
LogFile=$STATE/log/slurmdbd.log
PidFile=$STATE/slurmdbd.daemon.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StoragePort=3306
StorageUser=$DB_USER
StoragePass=$DB_PASS
StorageLoc=$DB_NAME
EOF
    chmod 600 "$CONF_DIR/slurmdbd.conf"
    log "node $NODE: CPUs=$cpus RealMemory=${mem}MB Gres=gpu:1, partition $PARTITION, cluster $CLUSTER"
}

start_munge() {
    running munged && return 0
    install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
    install -d -o munge -g munge -m 0755 /run/munge
    if [[ ! -s /etc/munge/munge.key ]]; then
        mungekey --create --keyfile=/etc/munge/munge.key
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
    start_daemon munged setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged --foreground
    wait_for 20 "munge" bash -c 'munge -n | unmunge'
}

mysql_root() { mariadb --protocol=socket --socket="$MYSQL_SOCKET" -uroot "$@"; }

start_mariadb() {
    if ! running mariadbd; then
        install -d -o mysql -g mysql -m 0755 /run/mysqld
        if [[ ! -d /var/lib/mysql/mysql ]]; then
            mariadb-install-db --user=mysql --datadir=/var/lib/mysql >>"$STATE/log/mariadb-install.log" 2>&1 ||
                return 1
        fi
        start_daemon mariadbd /usr/sbin/mariadbd --user=mysql --datadir=/var/lib/mysql \
            --socket="$MYSQL_SOCKET" --bind-address=127.0.0.1 --port=3306
        wait_for 60 "mariadb" mysql_root -e "SELECT 1" || return 1
    fi
    mysql_root <<EOF
CREATE DATABASE IF NOT EXISTS $DB_NAME;
CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON $DB_NAME.* TO '$DB_USER'@'localhost';
FLUSH PRIVILEGES;
EOF
}

start_slurmdbd() {
    if ! running slurmdbd; then
        start_daemon slurmdbd /usr/sbin/slurmdbd -D
    fi
    wait_for 60 "slurmdbd" sacctmgr -n list cluster || return 1
    # Register the cluster before slurmctld starts, then an account that holds root.
    if [[ -z $(sacctmgr -n -P list cluster "$CLUSTER" format=cluster) ]]; then
        sacctmgr -i add cluster "$CLUSTER" >&2 || return 1
    fi
    if [[ -z $(sacctmgr -n -P list account "$ACCOUNT" format=account) ]]; then
        sacctmgr -i add account "$ACCOUNT" Cluster="$CLUSTER" Description="headlab tests" Organization=headlab >&2 ||
            return 1
    fi
    if ! sacctmgr -n -P list association cluster="$CLUSTER" user=root format=account | grep -qx "$ACCOUNT"; then
        sacctmgr -i add user root Account="$ACCOUNT" Cluster="$CLUSTER" >&2 || return 1
    fi
}

node_idle() { sinfo -h -n "$NODE" -o %T | grep -Eq '^(idle|mixed|allocated)'; }

start_slurm() {
    running slurmctld || start_daemon slurmctld /usr/sbin/slurmctld -D -i
    wait_for 60 "slurmctld" scontrol ping || return 1
    running slurmd || start_daemon slurmd /usr/sbin/slurmd -D
    if ! wait_for 30 "node $NODE to register" node_idle; then
        scontrol update NodeName="$NODE" State=RESUME >&2
        wait_for 30 "node $NODE after resume" node_idle || return 1
    fi
}

all_up() {
    local d
    for d in "${DAEMONS[@]}"; do
        running "$d" || return 1
    done
    node_idle && sacct -n -X --starttime now-1minutes >/dev/null 2>&1
}

cmd_up() {
    [[ $EUID -eq 0 ]] || die "must run as root (it installs packages and writes /etc/slurm)" 2
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found: cannot install SLURM here" 2
    mkdir -p "$STATE/log"
    if all_up 2>/dev/null; then
        log "already up"
        cmd_status
        return 0
    fi
    local started d
    started=$(now_ms)
    for d in "${DAEMONS[@]}"; do
        if running "$d"; then
            log "partly up ($d runs): stopping what runs first"
            cmd_down
            mkdir -p "$STATE/log"
            break
        fi
    done
    phase_begin "apt-get install"
    install_packages || die "could not install ${PACKAGES[*]} (see $STATE/log/apt.log)" 2
    phase_end "apt-get install"

    phase_begin "start daemons"
    write_configs
    start_munge || { show_logs; die "munged did not start"; }
    start_mariadb || { show_logs; die "mariadb did not start"; }
    start_slurmdbd || { show_logs; die "slurmdbd did not start"; }
    start_slurm || { show_logs; die "slurmctld/slurmd did not start"; }
    phase_end "start daemons"
    log "up in $(seconds_since "$started") s"
    cmd_status
}

# -- status / down --------------------------------------------------------------------------

cmd_status() {
    local d pid up=0
    for d in "${DAEMONS[@]}"; do
        if pid=$(pid_of "$d"); then
            echo "$d: running (PID $pid)"
        else
            echo "$d: not running"
            up=3
        fi
    done
    if command -v sinfo >/dev/null 2>&1 && running slurmctld; then
        sinfo -N -o "%N %P %T %c %m %G" 2>&1 || up=3
        node_idle || up=3
    fi
    if command -v sacctmgr >/dev/null 2>&1 && running slurmdbd; then
        sacctmgr -n -P list association cluster="$CLUSTER" format=cluster,account,user 2>&1 || up=3
    fi
    return $up
}

cmd_down() {
    set +e
    if [[ ! -d $STATE ]]; then
        log "nothing to stop"
        return 0
    fi
    if running slurmctld && command -v squeue >/dev/null 2>&1; then
        local jobs
        jobs=$(squeue -h -o %i 2>/dev/null | tr '\n' ' ')
        if [[ -n ${jobs// /} ]]; then
            log "cancelling jobs $jobs"
            # shellcheck disable=SC2086
            scancel $jobs 2>/dev/null
            for _ in $(seq 1 30); do
                [[ -z $(squeue -h -o %i 2>/dev/null) ]] && break
                sleep 0.5
            done
        fi
    fi
    local i
    for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
        stop_daemon "${DAEMONS[i]}"
    done
    return 0
}

case ${1:-} in
up) cmd_up ;;
down)
    cmd_down
    exit 0
    ;;
status) cmd_status ;;
*)
    echo "usage: $0 up|down|status" >&2
    exit 64
    ;;
esac
