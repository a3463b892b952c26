#!/bin/bash
# acct-experiment.sh - node/acct.c end to end, by hand: MariaDB + slurmdbd
# under peerd's own supervisor code, a slurmctld and a slurmd pointed at
# them, two jobs (exit 0 and exit 3) that must show in sacct, the cluster
# in sacctmgr, then accounting stopped and restarted (idempotent setup,
# a job finished while slurmdbd was away reaches the database).
#
# Not part of the test suite: it needs root, mariadb-server, slurmdbd,
# munge, slurmctld and slurmd, and the ports 3307 and 6817-6819 free.
# Everything lives in a temporary dir under /tmp (the data dir is
# $T/data, never /var/lib/peerd); /etc/slurm and /etc/hosts are not
# touched.  Daemons are started by this script (munged, slurmctld, slurmd)
# or by the driver's supervisor (mariadbd, slurmdbd) and stopped by pid;
# the temporary dir is removed at the end (KEEP=1 keeps it).
#
#   tests/manual/acct-experiment.sh [BUILD_DIR]    (default _build/werror)
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=$(cd "${1:-$SRC/_build/werror}" && pwd)
CLUSTER=acctexp

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="${2:-$(now)}" 'BEGIN { printf "%.2f", b - a }'; }

[ "$(id -u)" = 0 ] || die "run as root"
for b in mariadbd mariadb-install-db mariadb slurmdbd slurmctld slurmd \
    sacctmgr sacct munged; do
    PATH=$PATH:/usr/sbin command -v "$b" > /dev/null || die "$b is not installed"
done
for port in 3307 6817 6818 6819; do
    ! ss -Hltn "sport = :$port" | grep -q . || die "port $port is taken"
done
[ -f "$BUILD/libnode.a" ] || die "no $BUILD/libnode.a: build first"

T=$(mktemp -d /tmp/acct-exp.XXXXXX)
chmod 755 "$T" # mariadbd (user mysql) must reach $T/data/mariadb
PIDS=()        # started here, stopped in reverse order
DRV=

stop_pid() { # TERM, up to 30 s, then KILL; by pid only
    local p=$1
    kill -TERM "$p" 2> /dev/null || return 0
    for _ in $(seq 300); do
        kill -0 "$p" 2> /dev/null || return 0
        sleep 0.1
    done
    log "pid $p did not stop: SIGKILL"
    kill -KILL "$p" 2> /dev/null || true
}

cleanup() {
    local k
    for ((k = ${#PIDS[@]} - 1; k >= 0; k--)); do stop_pid "${PIDS[k]}"; done
    [ -n "$DRV" ] && stop_pid "$DRV"
    [ -n "${MUNGED:-}" ] && stop_pid "$MUNGED"
    wait 2> /dev/null || true
    if [ "${KEEP:-0}" = 1 ]; then log "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT

# ---- the driver: peerd's acct.c and supervise.c, in a small loop -------
cat > "$T/drv.c" << 'EOF'
/* acct-drv DATA MUNGE_SOCKET CLUSTER SLURM_CONF: prepare, supervise
 * mariadb and slurmdbd, bootstrap the database, register the cluster,
 * print EVENT lines (epoch seconds) on stdout; SIGTERM stops it all. */
#include "config.h"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <sodium.h>
#include "node/acct.h"
#include "node/log.h"
#include "node/supervise.h"

static volatile sig_atomic_t stop;
static void on_term(int sig) { (void)sig; stop = 1; }
static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}
static void event(const char *what, const char *detail)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    printf("EVENT %s %ld.%09ld %s\n", what, (long)ts.tv_sec, ts.tv_nsec,
           detail ? detail : "");
    fflush(stdout);
}
static char *slurp_pw(const char *path, char *pw, size_t n)
{
    FILE *f = fopen(path, "r");
    if (!f || !fgets(pw, (int)n, f)) {
        if (f)
            fclose(f);
        return NULL;
    }
    fclose(f);
    pw[strcspn(pw, "\n")] = '\0';
    return pw;
}

int main(int argc, char **argv)
{
    struct acct_layout l;
    struct acct_params p;
    struct acct_cluster c;
    char pw[ACCT_PASSWORD_LEN + 2], pwfile[4200], detail[600];
    err_t err = {{0}};
    bool bootstrapped = false, registered = false, db_up = false,
         dbd_up = false;
    double next_check = 0;

    if (argc == 3 && strcmp(argv[1], "prepare") == 0) {
        /* acct-drv prepare DATA: acct_prepare alone, its error on stdout */
        int rc = acct_prepare(argv[2], &l, &err);
        printf("%s\n", rc == 0 ? "OK" : err.text);
        return rc == 0 ? 0 : 1;
    }
    if (argc != 5 || sodium_init() < 0)
        return 64;
    log_init("acct-drv", LOG_LEVEL_INFO, false);
    signal(SIGTERM, on_term);
    signal(SIGINT, on_term);
    signal(SIGPIPE, SIG_IGN);

    event("prepare-start", NULL);
    if (acct_prepare(argv[1], &l, &err) < 0) {
        fprintf(stderr, "acct_prepare: %s\n", err.text);
        return 1;
    }
    event("prepare-done", NULL);
    /* the password: generated once, then kept (peerd keeps it sealed in
     * its store; a file is enough here) */
    snprintf(pwfile, sizeof(pwfile), "%s/db-password", l.dbd_dir);
    if (!slurp_pw(pwfile, pw, sizeof(pw))) {
        acct_password_generate(pw);
        umask(077);
        FILE *f = fopen(pwfile, "w");
        if (!f || fprintf(f, "%s\n", pw) < 0 || fclose(f) != 0)
            return 1;
    }
    p = (struct acct_params){
        .dbd_host = "localhost",
        .dbd_port = ACCT_DBD_PORT,
        .munge_socket = argv[2],
        .storage_host = "127.0.0.1",
        .storage_port = ACCT_DB_PORT,
        .storage_pass = pw,
        .pid_file = l.dbd_pid,
    };
    int changed = acct_write_slurmdbd_conf(&l, &p, &err);
    if (changed < 0) {
        fprintf(stderr, "slurmdbd.conf: %s\n", err.text);
        return 1;
    }
    event("conf-written", changed ? "changed" : "same");

    supervisor_t *sv = supervisor_new();
    if (!sv || acct_add_services(sv, &l, NULL, "127.0.0.1", 1, -1, &err) < 0) {
        fprintf(stderr, "acct_add_services: %s\n", err.text);
        return 1;
    }
    int db = supervisor_find(sv, "mariadb"), dbd = supervisor_find(sv, "slurmdbd");
    supervisor_enable(sv, db, mono());
    supervisor_enable(sv, dbd, mono());
    pid_t db_pid = 0, dbd_pid = 0;

    while (!stop) {
        double now = mono();
        supervisor_reap(sv, now);
        double wait = supervisor_tick(sv, now);
        if (supervisor_pid(sv, db) != db_pid) {
            db_pid = supervisor_pid(sv, db);
            snprintf(detail, sizeof(detail), "pid %d", (int)db_pid);
            if (db_pid)
                event("mariadb-spawned", detail);
        }
        if (supervisor_pid(sv, dbd) != dbd_pid) {
            dbd_pid = supervisor_pid(sv, dbd);
            snprintf(detail, sizeof(detail), "pid %d", (int)dbd_pid);
            if (dbd_pid)
                event("slurmdbd-spawned", detail);
        }
        if (now >= next_check) {
            next_check = now + (registered && db_up && dbd_up ? 2.0 : 0.1);
            if (db_pid) {
                double at = mono();
                bool ok = acct_ping_mariadb(l.db_socket, 1.0, &err) == 0;
                supervisor_health(sv, db, ok, at, ok ? NULL : err.text, mono());
                snprintf(detail, sizeof(detail), "check %.4f s", mono() - at);
                if (ok && !db_up)
                    event("mariadb-answers", detail);
                db_up = ok;
                if (ok && !bootstrapped) {
                    if (acct_bootstrap_db(&l, pw, 30, &err) < 0) {
                        fprintf(stderr, "bootstrap: %s\n", err.text);
                    } else {
                        bootstrapped = true;
                        event("db-bootstrapped", NULL);
                    }
                }
            }
            if (dbd_pid) {
                double at = mono();
                bool ok = acct_ping_slurmdbd(argv[4], argv[3], 5.0, &c, &err) == 0;
                supervisor_health(sv, dbd, ok, at, ok ? NULL : err.text, mono());
                if (ok && !dbd_up) {
                    snprintf(detail, sizeof(detail),
                             "check %.3f s, cluster %s: %s %s:%d", mono() - at,
                             argv[3], c.registered ? "listed" : "not listed",
                             c.control_host, c.control_port);
                    event("slurmdbd-answers", detail);
                }
                if (!ok && dbd_up)
                    event("slurmdbd-fails", err.text);
                dbd_up = ok;
                if (ok && !registered) {
                    double t0 = mono();
                    if (acct_register_cluster(argv[3], argv[4], l.setup_log, 30,
                                              &err) < 0) {
                        fprintf(stderr, "register: %s\n", err.text);
                    } else {
                        registered = true;
                        snprintf(detail, sizeof(detail), "%.3f s", mono() - t0);
                        event("cluster-registered", detail);
                        event("READY", NULL);
                    }
                }
            }
        }
        struct timespec ts = {0, 20 * 1000 * 1000};
        if (wait < 0.02)
            ts.tv_nsec = (long)(wait > 0 ? wait * 1e9 : 0);
        nanosleep(&ts, NULL);
    }
    event("stopping", NULL);
    supervisor_stop_all(sv, 20.0);
    supervisor_destroy(&sv);
    event("stopped", NULL);
    return 0;
}
EOF
# shellcheck disable=SC2046
gcc -std=gnu11 -Wall -Wextra -O1 -I"$SRC" -I"$BUILD" -o "$T/acct-drv" "$T/drv.c" \
    "$BUILD/libnode.a" "$BUILD/libstore.a" "$BUILD/libproto.a" \
    $(pkg-config --libs libzmq libsodium sqlite3 jansson munge) -lslurm \
    -lpthread -lm || die "cannot build the driver"

# ---- acct_prepare's refusals and its recovery from a crash ---------------
mkdir -m 700 "$T/private"
mkdir -m 755 "$T/private/data"
out=$("$T/acct-drv" prepare "$T/private/data" || true)
log "prepare under a 0700 dir: $out"
echo "$out" | grep -q "cannot reach" || die "a data dir mysql cannot reach was accepted"
mkdir -p "$T/bad/data/mariadb"
echo "somebody's" > "$T/bad/data/mariadb/file"
out=$("$T/acct-drv" prepare "$T/bad/data" || true)
log "prepare with a foreign DATA/mariadb: $out"
echo "$out" | grep -q "not empty" || die "a foreign DATA/mariadb was accepted"
mkdir -p "$T/crash/data/mariadb.new/mysql"
echo half > "$T/crash/data/mariadb.new/ibdata1"
out=$("$T/acct-drv" prepare "$T/crash/data" || true)
log "prepare after a crash half-way through the install: $out"
if [ "$out" != OK ] || [ ! -d "$T/crash/data/mariadb/mysql" ] ||
    [ -e "$T/crash/data/mariadb.new" ]; then
    die "leftover mariadb.new not redone"
fi
rm -rf "$T/private" "$T/bad" "$T/crash"

# ---- munged, with a key of its own ---------------------------------------
mkdir -m 700 "$T/munge"
mkdir -m 755 "$T/run" "$T/etc" "$T/spool"
mkdir -m 700 "$T/state"
mkdir -m 755 "$T/data" "$T/log"
dd if=/dev/urandom of="$T/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$T/munge/munge.key"
SOCK=$T/run/munge.sock
munged --foreground --socket="$SOCK" --key-file="$T/munge/munge.key" \
    --pid-file="$T/munge/munged.pid" --seed-file="$T/munge/seed" \
    --log-file=/dev/null > "$T/log/munged.log" 2>&1 &
MUNGED=$!
for _ in $(seq 50); do
    munge -S "$SOCK" -n 2> /dev/null | unmunge -S "$SOCK" > /dev/null 2>&1 && break
    sleep 0.1
done

# ---- slurm.conf: peerd's rendering plus the accounting lines -------------
export SLURM_CONF=$T/etc/slurm.conf
cat > "$SLURM_CONF" << EOF
ClusterName=$CLUSTER
SlurmctldHost=localhost(127.0.0.1)
SlurmctldParameters=enable_configless
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SOCK
MailProg=/bin/true
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$T/state
SlurmdSpoolDir=$T/spool
SlurmctldPidFile=$T/run/slurmctld.pid
SlurmdPidFile=$T/run/slurmd.pid
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=${JOBACCT:-jobacct_gather/linux}
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
AccountingStoragePass=$SOCK
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
ReturnToService=2
SlurmctldTimeout=10
SlurmdTimeout=30
NodeName=n1 NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=1000 State=UNKNOWN
PartitionName=main Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF

event_time() { # event_time FILE NAME -> epoch of the last such EVENT
    awk -v n="$2" '$1 == "EVENT" && $2 == n { t = $3 } END { print t }' "$1"
}

start_driver() { # start_driver RUN
    "$T/acct-drv" "$T/data" "$SOCK" "$CLUSTER" "$SLURM_CONF" \
        > "$T/drv$1.out" 2> "$T/drv$1.err" &
    DRV=$!
    for _ in $(seq 1200); do
        grep -q '^EVENT READY' "$T/drv$1.out" && return 0
        kill -0 "$DRV" 2> /dev/null || break
        sleep 0.1
    done
    cat "$T/drv$1.err" >&2
    die "accounting did not come up (run $1)"
}

report_driver() { # report_driver RUN
    local f=$T/drv$1.out s
    s=$(event_time "$f" prepare-start)
    log "run $1: acct_prepare $(since "$s" "$(event_time "$f" prepare-done)") s"
    s=$(event_time "$f" mariadb-spawned)
    log "run $1: mariadbd spawned -> answers $(since "$s" "$(event_time "$f" mariadb-answers)") s," \
        "-> bootstrapped $(since "$s" "$(event_time "$f" db-bootstrapped)") s," \
        "-> slurmdbd answers $(since "$s" "$(event_time "$f" slurmdbd-answers)") s," \
        "-> cluster registered $(since "$s" "$(event_time "$f" cluster-registered)") s"
    grep -E '^EVENT (mariadb-answers|slurmdbd-answers|cluster-registered|conf-written)' "$f" |
        sed 's/^/    /' >&2
}

# ---- run 1: fresh data dir ------------------------------------------------
log "run 1: fresh data dir $T/data"
start_driver 1
report_driver 1
ls -la "$T/data" "$T/data/slurmdbd" | sed 's/^/    /' >&2
stat -c '    %A %U %n' "$T/data/mariadb" "$T/data/slurmdbd/slurmdbd.conf" >&2

t_ctl=$(now)
slurmctld -D -f "$SLURM_CONF" > "$T/log/slurmctld.log" 2>&1 &
PIDS+=($!)
slurmd -D -f "$SLURM_CONF" -N n1 > "$T/log/slurmd.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 300); do
    [ "$(sinfo -h -t idle -o %D 2> /dev/null)" = 1 ] && break
    sleep 0.1
done
[ "$(sinfo -h -t idle -o %D)" = 1 ] || die "node n1 not idle"
t_idle=$(now)

cd "$T"
t_sub=$(now)
ok=$(sbatch --parsable -o /dev/null --wrap 'echo fine; exit 0')
bad=$(sbatch --parsable -o /dev/null --wrap 'echo failing; exit 3')
first=
for _ in $(seq 600); do
    out=$(sacct -n -X -P -o JobID,State,ExitCode 2> /dev/null || true)
    [ -z "$first" ] && echo "$out" | grep -q "^$ok|COMPLETED|" && first=$(now)
    echo "$out" | grep -q "^$ok|COMPLETED|0:0$" &&
        echo "$out" | grep -q "^$bad|FAILED|3:0$" && break
    sleep 0.1
done
log "sacct -n -X -o JobID,State,ExitCode:"
sacct -n -X -o JobID,State,ExitCode | sed 's/^/    /' >&2
echo "$out" | grep -q "^$ok|COMPLETED|0:0$" || die "job $ok not COMPLETED 0:0"
echo "$out" | grep -q "^$bad|FAILED|3:0$" || die "job $bad not FAILED 3:0"
s=$(event_time "$T/drv1.out" mariadb-spawned)
log "TIMING mariadbd spawned -> first job in sacct: $(since "$s" "$first") s" \
    "(includes slurmctld/slurmd start and the job)"
log "TIMING of which: slurmctld+slurmd start -> node idle $(since "$t_ctl" "$t_idle") s," \
    "sbatch -> job in sacct $(since "$t_sub" "$first") s"
end=$(sacct -n -X -P -o End -j "$ok")
log "TIMING job $ok ended $end; in sacct $(since "$(date -d "$end" +%s)" "$first") s later (End has 1 s resolution)"
log "job $ok Submit|Start|End: $(sacct -n -X -P -o Submit,Start,End -j "$ok")"
log "TIMING acct_prepare start -> first job in sacct:" \
    "$(since "$(event_time "$T/drv1.out" prepare-start)" "$first") s"
log "sacctmgr -n show cluster format=cluster,controlhost,controlport:"
sacctmgr -n show cluster format=cluster,controlhost,controlport | sed 's/^/    /' >&2
sacctmgr -n -P show cluster format=cluster,controlhost,controlport |
    grep -q "^$CLUSTER|127.0.0.1|6817$" || die "cluster not listed with its control host"
log "associations (cluster|account|user):"
sacctmgr -n -P show assoc format=cluster,account,user | sed 's/^/    /' >&2
rss=$(ps -o rss= -p "$(awk '/mariadb-spawned/ { p = $5 } END { print p }' "$T/drv1.out")")
log "mariadbd RSS: $((rss / 1024)) MiB (innodb_buffer_pool_size=1G)"

# ---- run 2: accounting away while a job runs, then back -------------------
log "stopping accounting (driver pid $DRV: slurmdbd, then mariadbd)"
stop_pid "$DRV"
wait "$DRV" 2> /dev/null || true
DRV=
gone=$(sbatch --parsable -o /dev/null --wrap 'exit 0')
for _ in $(seq 300); do
    squeue -h -j "$gone" 2> /dev/null | grep -q . || break
    sleep 0.1
done
log "job $gone finished while slurmdbd was down"
t2=$(now)
start_driver 2
report_driver 2
for _ in $(seq 600); do
    sacct -n -X -P -o JobID,State -j "$gone" 2> /dev/null | grep -q "^$gone|COMPLETED$" && break
    sleep 0.1
done
sacct -n -X -P -o JobID,State -j "$gone" | grep -q "^$gone|COMPLETED$" ||
    die "job $gone never reached the database"
log "TIMING driver restarted -> job $gone (finished while slurmdbd was down) in sacct: $(since "$t2") s"
sacct -n -X -o JobID,State,ExitCode | sed 's/^/    /' >&2
n=$(grep -c 'already exists' "$T/data/log/acct.log" || true)
log "\"already exists\" lines in acct.log: $n"
grep -iE 'error|warn' "$T/data/log/slurmdbd.log" | sort | uniq -c | sed 's/^/    slurmdbd.log: /' >&2 || true
grep -iE '\[(warning|error)\]' "$T/data/log/mariadb.log" | sed 's/^[0-9: -]*//' | sort | uniq -c |
    sed 's/^/    mariadb.log: /' >&2 || true
log "ALL OK"
