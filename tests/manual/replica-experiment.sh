#!/bin/bash
# replica-experiment.sh - node/replica.c end to end, by hand: two private
# MariaDB servers (A, the primary, and B, its replica) made and run the
# way peerd makes and runs them (acct_prepare, acct_mariadb_argv), with
# slurmdbd on the primary for a real schema, then a failover: B promoted
# after A is SIGKILLed with a write B never got, and A, come back with
# that diverged row, rebuilt as B's replica.
#
# Not part of the test suite: it needs root, mariadb-server, and for the
# schema slurmdbd, sacctmgr and munged; the ports 3307, 3308 and 16819
# free (3306 is left to other tests).  A listens on 127.0.0.1:3307, B on
# 127.0.0.2 and 127.0.0.1, port 3308 (a host address plus loopback, as
# in the multi tier).  Everything lives in a temporary dir under /tmp;
# every daemon is started here and stopped by pid; the dir is removed at
# the end (KEEP=1 keeps it).
#
#   [ROWS=1000] tests/manual/replica-experiment.sh [BUILD_DIR]
#                                            (default _build/werror)
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=$(cd "${1:-$SRC/_build/werror}" && pwd)
PW=0123456789abcdef0123456789abcdef # the accounting password (a test one)
A_ADDR=127.0.0.1 A_PORT=3307
B_ADDR=127.0.0.2 B_PORT=3308
DBD_PORT=16819
CLUSTER=replexp
ROWS=${ROWS:-1000} # rows in the test table at the start (a size knob)

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() {
    log "FAILED: $*"
    exit 1
}
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="${2:-$(now)}" 'BEGIN { printf "%.2f", b - a }'; }

[ "$(id -u)" = 0 ] || die "run as root"
for b in mariadbd mariadb-install-db mariadb mariadb-dump setpriv; do
    PATH=$PATH:/usr/sbin command -v "$b" > /dev/null || die "$b is not installed"
done
SLURM=1
for b in slurmdbd sacctmgr munged munge; do
    PATH=$PATH:/usr/sbin command -v "$b" > /dev/null || SLURM=0
done
[ $SLURM = 1 ] || log "no slurmdbd/sacctmgr/munged: a test table only, no Slurm schema"
for port in $A_PORT $B_PORT $DBD_PORT; do
    ! ss -Hltn "sport = :$port" | grep -q . || die "port $port is taken"
done
ping -c1 -W1 $B_ADDR > /dev/null 2>&1 || die "$B_ADDR does not answer"
[ -f "$BUILD/libnode.a" ] || die "no $BUILD/libnode.a: build first"

T=$(mktemp -d /tmp/replica-exp.XXXXXX)
chmod 755 "$T" # mariadbd (user mysql) must reach $T/a/mariadb
declare -A PID # name -> pid, everything started here

stop_pid() { # stop_pid PID [SIGNAL]: by pid only, up to 30 s, then KILL
    local p=$1 sig=${2:-TERM}
    kill "-$sig" "$p" 2> /dev/null || return 0
    for _ in $(seq 300); do
        kill -0 "$p" 2> /dev/null || {
            wait "$p" 2> /dev/null || true
            return 0
        }
        sleep 0.1
    done
    log "pid $p did not stop: SIGKILL"
    kill -KILL "$p" 2> /dev/null || true
    wait "$p" 2> /dev/null || true
}

cleanup() {
    local n
    for n in dbd_a dbd_b locker db_a db_b munged; do
        [ -n "${PID[$n]:-}" ] && stop_pid "${PID[$n]}"
    done
    if [ "${KEEP:-0}" = 1 ]; then log "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT

# ---- the driver: replica.c and acct.c, one step per invocation ----------
cat > "$T/drv.c" << 'EOF'
/* repl-drv STEP DATA [ARGS]: one step of node/replica.c or node/acct.c
 * on the MariaDB of data dir DATA; prints what it found, and TIME lines
 * (seconds).  Exit 0 when the step did what it should. */
#include "config.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sodium.h>
#include "node/acct.h"
#include "node/replica.h"

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void pause_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static const char *action_name(enum replica_action a)
{
    switch (a) {
    case REPLICA_FOLLOWING: return "following";
    case REPLICA_START: return "start";
    case REPLICA_REBUILD: return "rebuild";
    case REPLICA_WAIT: return "wait";
    }
    return "?";
}

static void print_status(const struct replica_status *s)
{
    printf("configured=%d io=%s sql=%d read_only=%d behind=%d applied=%d\n",
           s->configured, s->io_running ? "yes" : s->io_connecting
           ? "connecting" : "no", s->sql_running, s->read_only,
           s->seconds_behind, s->relay_applied);
    printf("master=%s:%d gtid_io=%s gtid_slave=%s gtid_binlog=%s\n",
           s->master_host, s->master_port, s->gtid_io_pos, s->gtid_slave_pos,
           s->gtid_binlog_pos);
    if (s->io_errno || s->sql_errno)
        printf("io_error=%d %s\nsql_error=%d %s\n", s->io_errno, s->io_error,
               s->sql_errno, s->sql_error);
    if (*s->sql_state)
        printf("sql_state=%s\n", s->sql_state);
}

int main(int argc, char **argv)
{
    struct acct_layout l;
    err_t err = {{0}};
    double t0;

    if (argc < 3 || sodium_init() < 0)
        return 64;
    const char *step = argv[1];
    if (!strcmp(step, "prepare")) {
        if (acct_prepare(argv[2], &l, &err) < 0)
            goto fail;
        return 0;
    }
    if (acct_layout_init(argv[2], &l, &err) < 0)
        goto fail;
    t0 = mono();
    if (!strcmp(step, "argv") && argc == 6) { /* ADDRS PORT ID */
        struct svc_argv a;
        if (acct_mariadb_argv(&a, &l, NULL, argv[3], atoi(argv[4]),
                              (unsigned)atoi(argv[5]), &err) < 0)
            goto fail;
        for (int i = 0; a.argv[i]; i++)
            printf("%s\n", a.argv[i]);
    } else if (!strcmp(step, "wait-up")) { /* until MariaDB answers */
        while (acct_ping_mariadb(l.db_socket, 1.0, &err) < 0) {
            if (mono() - t0 > 60)
                goto fail;
            pause_ms(20);
        }
        printf("TIME up %.3f\n", mono() - t0);
    } else if (!strcmp(step, "bootstrap") && argc == 4) {
        if (acct_bootstrap_db(&l, argv[3], 30, &err) < 0)
            goto fail;
        printf("TIME bootstrap %.3f\n", mono() - t0);
    } else if (!strcmp(step, "dbdconf") && argc == 7) {
        /* PW MUNGE_SOCKET STORAGE_PORT DBD_PORT */
        struct acct_params p = {
            .dbd_host = "localhost", .dbd_port = atoi(argv[6]),
            .munge_socket = argv[4], .storage_host = "127.0.0.1",
            .storage_port = atoi(argv[5]), .storage_pass = argv[3],
            .pid_file = l.dbd_pid};
        if (acct_write_slurmdbd_conf(&l, &p, &err) < 0)
            goto fail;
        printf("%s\n", l.dbd_conf_env);
    } else if (!strcmp(step, "primary") && argc == 4) {
        if (replica_primary_setup(&l, argv[3], 30, &err) < 0)
            goto fail;
        printf("TIME primary-setup %.3f\n", mono() - t0);
    } else if (!strcmp(step, "follow") && argc == 6) { /* ADDR PORT PW */
        double timeout = getenv("FOLLOW_TIMEOUT")
                             ? atof(getenv("FOLLOW_TIMEOUT")) : 120;
        if (replica_follow(&l, argv[3], atoi(argv[4]), argv[5], timeout,
                           &err) < 0) {
            printf("TIME follow-failed %.3f\n", mono() - t0);
            goto fail;
        }
        printf("TIME follow %.3f\n", mono() - t0);
    } else if (!strcmp(step, "start")) {
        if (replica_start(&l, 30, &err) < 0)
            goto fail;
        printf("TIME start %.3f\n", mono() - t0);
    } else if (!strcmp(step, "status")) {
        struct replica_status s;
        if (replica_status(&l, 10, &s, &err) < 0)
            goto fail;
        print_status(&s);
        printf("TIME status %.3f\n", mono() - t0);
    } else if (!strcmp(step, "action") && argc == 5) { /* ADDR PORT */
        struct replica_status s;
        if (replica_status(&l, 10, &s, &err) < 0)
            goto fail;
        printf("%s\n", action_name(replica_next_action(&s, argv[3],
                                                       atoi(argv[4]))));
    } else if (!strcmp(step, "promote")) {
        struct replica_promotion p;
        if (replica_promote(&l, 30, &p, &err) < 0)
            goto fail;
        printf("was_replica=%d caught_up=%d waited=%.3f gtid=%s%s%s\n",
               p.was_replica, p.caught_up, p.waited, p.gtid,
               *p.sql_error ? " sql_error=" : "", p.sql_error);
        printf("TIME promote %.3f\n", mono() - t0);
    } else if (!strcmp(step, "sql") && argc == 4) {
        char out[8192];
        if (acct_sql(&l, argv[3], 30, out, sizeof(out), &err) < 0)
            goto fail;
        fputs(out, stdout);
    } else if (!strcmp(step, "lag") && argc == 5) {
        /* VALUE REPLICA_DATA: insert VALUE here, poll the replica for it
         * (each check is a client process, about 10 ms) */
        struct acct_layout r;
        char sql[512], out[256];
        if (acct_layout_init(argv[4], &r, &err) < 0)
            goto fail;
        snprintf(sql, sizeof(sql), "INSERT INTO slurm_acct_db.peerd_test "
                 "(v) VALUES ('%s');", argv[3]);
        if (acct_sql(&l, sql, 10, NULL, 0, &err) < 0)
            goto fail;
        t0 = mono();
        snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM "
                 "slurm_acct_db.peerd_test WHERE v='%s';", argv[3]);
        for (;;) {
            if (acct_sql(&r, sql, 10, out, sizeof(out), &err) < 0)
                goto fail;
            if (atoi(out) == 1)
                break;
            if (mono() - t0 > 30) {
                snprintf(err.text, sizeof(err.text), "row never arrived");
                goto fail;
            }
        }
        printf("TIME lag %.3f\n", mono() - t0);
    } else {
        fprintf(stderr, "unknown step or arguments: %s\n", step);
        return 64;
    }
    return 0;
fail:
    printf("ERROR %s\n", err.text);
    return 1;
}
EOF
# shellcheck disable=SC2046
gcc -std=gnu11 -Wall -Wextra -O1 -I"$SRC" -I"$BUILD" -o "$T/drv" "$T/drv.c" \
    "$BUILD/libnode.a" "$BUILD/libstore.a" "$BUILD/libproto.a" \
    $(pkg-config --libs libzmq libsodium sqlite3 jansson munge) -lslurm \
    -lpthread -lm || die "cannot build the driver"
DRV=$T/drv

a() { "$DRV" "$1" "$T/a" "${@:2}"; } # a STEP ARGS: a step on A
b() { "$DRV" "$1" "$T/b" "${@:2}"; }
timing() { awk -v n="$1" '$1 == "TIME" && $2 == n { print $3 }'; }
field() { tr ' ' '\n' | awk -F= -v k="$1" '$1 == k { print $2 }'; }
sqlv() { "$DRV" sql "$T/$1" "$2"; } # sqlv a|b SQL: the output
as_slurm() {                        # as_slurm PORT SQL: slurmdbd's user, TCP
    MYSQL_PWD=$PW mariadb --no-defaults --protocol=tcp --host=127.0.0.1 \
        --port="$1" --user=slurm --batch --skip-column-names -e "$2" 2>&1
}
start_db() { # start_db a|b ADDRS PORT ID: mariadbd as mysql, by pid
    local args
    mapfile -t args < <("$DRV" argv "$T/$1" "$2" "$3" "$4")
    [ ${#args[@]} -gt 3 ] || die "no mariadbd command line"
    setpriv --reuid=mysql --regid=mysql --clear-groups -- "${args[@]}" \
        >> "$T/$1/log/mariadb.log" 2>&1 &
    PID[db_$1]=$! # setpriv execs: this is mariadbd's pid
    "$DRV" wait-up "$T/$1" > /dev/null || die "mariadbd $1 did not come up"
}
start_dbd() { # start_dbd a|b STORAGE_PORT
    local env
    env=$("$DRV" dbdconf "$T/$1" "$PW" "$MUNGE_SOCK" "$2" "$DBD_PORT")
    env "$env" slurmdbd -D >> "$T/$1/log/slurmdbd.log" 2>&1 &
    PID[dbd_$1]=$!
}
wait_sacctmgr() { # wait_sacctmgr a|b: until slurmdbd answers (60 s)
    local end=$((SECONDS + 60))
    while [ $SECONDS -lt $end ]; do
        timeout 5 sacctmgr -n -P show cluster > /dev/null 2>&1 && return 0
        sleep 0.1
    done
    tail -5 "$T/$1/log/slurmdbd.log" | sed 's/^/    slurmdbd.log: /' >&2
    die "slurmdbd does not answer"
}
counts() { # counts a|b: tables, routines, test rows
    sqlv "$1" "SELECT (SELECT COUNT(*) FROM information_schema.tables
        WHERE table_schema='slurm_acct_db'), (SELECT COUNT(*) FROM
        information_schema.routines WHERE routine_schema='slurm_acct_db'),
        (SELECT COUNT(*) FROM slurm_acct_db.peerd_test);" | tr '\t' ' '
}

# ---- two data dirs, two servers ------------------------------------------
for h in a b; do
    "$DRV" prepare "$T/$h" > /dev/null || die "acct_prepare $h"
done
start_db a "$A_ADDR" $A_PORT 1
start_db b "$B_ADDR,127.0.0.1" $B_PORT 2
log "A: mariadbd pid ${PID[db_a]} on $A_ADDR:$A_PORT; B: pid ${PID[db_b]} on $B_ADDR,127.0.0.1:$B_PORT"
ss -Hltn "( sport = :$A_PORT or sport = :$B_PORT )" | awk '{ print "    listening " $4 }' >&2

# ---- A is the primary ------------------------------------------------------
a bootstrap "$PW" > /dev/null || die "bootstrap A"
out=$(a primary "$PW") || die "primary setup A: $out"
log "A: acct_bootstrap_db + replica_primary_setup ($(echo "$out" | timing primary-setup) s)"
sqlv a "SHOW GRANTS FOR 'peerd_repl'@'%';" | sed 's/IDENTIFIED BY PASSWORD .*//; s/^/    /' >&2

if [ $SLURM = 1 ]; then
    # munged and slurmdbd on A: the real schema, a cluster, an account
    mkdir -m 700 "$T/munge"
    mkdir -m 755 "$T/run" # munged wants its socket's dir open to all
    dd if=/dev/urandom of="$T/munge/munge.key" bs=1024 count=1 status=none
    chmod 400 "$T/munge/munge.key"
    MUNGE_SOCK=$T/run/munge.sock
    munged --foreground --socket="$MUNGE_SOCK" --key-file="$T/munge/munge.key" \
        --pid-file="$T/munge/munged.pid" --seed-file="$T/munge/seed" \
        --log-file=/dev/null > "$T/munged.log" 2>&1 &
    PID[munged]=$!
    for _ in $(seq 50); do
        munge -S "$MUNGE_SOCK" -n 2> /dev/null | unmunge -S "$MUNGE_SOCK" > /dev/null 2>&1 && break
        sleep 0.1
    done
    export SLURM_CONF=$T/slurm.conf
    cat > "$SLURM_CONF" << EOF
ClusterName=$CLUSTER
SlurmctldHost=localhost(127.0.0.1)
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCK
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$DBD_PORT
AccountingStoragePass=$MUNGE_SOCK
NodeName=n1 NodeAddr=127.0.0.1 CPUs=1 State=UNKNOWN
PartitionName=main Nodes=ALL Default=YES
EOF
    t=$(now)
    start_dbd a $A_PORT
    wait_sacctmgr a
    sacctmgr -i add cluster $CLUSTER > /dev/null || true
    sacctmgr -i add account physics cluster=$CLUSTER > /dev/null
    log "A: slurmdbd up, cluster $CLUSTER and account physics added ($(since "$t") s)"
fi
out=$(sqlv a "CREATE TABLE slurm_acct_db.peerd_test (id INT AUTO_INCREMENT PRIMARY KEY,
    v VARCHAR(64), at TIMESTAMP(6) DEFAULT CURRENT_TIMESTAMP(6), KEY (v));
    INSERT INTO slurm_acct_db.peerd_test (v) SELECT CONCAT('seed-', seq)
    FROM slurm_acct_db.seq_1_to_$ROWS;") || die "test table on A: $out"
log "A: tables, routines, test rows: $(counts a)"
# ---- B follows A -------------------------------------------------------------
out=$(b follow $A_ADDR $A_PORT "$PW") || die "B follows A: $out"
T_FOLLOW1=$(echo "$out" | timing follow)
log "B follows A: replica_follow $T_FOLLOW1 s (dump + load + start)"
grep -- '--- replica' "$T/b/log/acct.log" | sed 's/^/    acct.log: /' >&2
size=$(awk '/mariadb-dump from/ { print $6 }' "$T/b/log/acct.log" | head -1)
b status | sed 's/^/    B: /' >&2
[ "$(counts b)" = "$(counts a)" ] || die "B has $(counts b), A has $(counts a)"
log "B: tables, routines, test rows: $(counts b) (same as A)"
[ "$(b action $A_ADDR $A_PORT)" = following ] || die "B's next action is not 'following'"
out=$(as_slurm $B_PORT "INSERT INTO slurm_acct_db.peerd_test (v) VALUES ('by-slurm');" || true)
log "slurm@127.0.0.1 writing on B (read_only): $out"
echo "$out" | grep -q 1290 || die "slurmdbd's user could write on the replica"
out=$(b primary "$PW" || true)
log "replica_primary_setup on B while it replicates: $out"
echo "$out" | grep -q "promote it" || die "primary setup accepted on a replica"

lags=()
for i in 1 2 3 4 5; do
    out=$(a lag "row-$i" "$T/b") || die "lag: $out"
    lags+=("$(echo "$out" | timing lag)")
done
log "row written on A -> visible on B (5 rows, each check a client process of ~10 ms): ${lags[*]} s"

# the primary re-runs acct_bootstrap_db (as after a restart of its MariaDB):
# its user statements replicate and must apply cleanly on B
a bootstrap "$PW" > /dev/null || die "bootstrap A again"
a lag "after-bootstrap" "$T/b" > /dev/null || die "replication after a bootstrap"
b status | grep -q 'io=yes sql=1' || die "B's replication stopped after A's bootstrap"
log "acct_bootstrap_db again on A: replicated to B, replication still running"

# ---- lag, a transaction B received but has not applied, a lost write ------
# A session on B holds row 1; A updates it: B's applier waits on the lock.
mariadb --no-defaults -S "$T/b/mariadb/db.sock" -uroot -e "BEGIN;
    SELECT v FROM slurm_acct_db.peerd_test WHERE id=1 FOR UPDATE;
    DO SLEEP(4); COMMIT;" > /dev/null &
PID[locker]=$!
sleep 0.5
sqlv a "UPDATE slurm_acct_db.peerd_test SET v='updated' WHERE id=1;" > /dev/null
sleep 1.5
st=$(b status)
log "B while its applier waits on a lock:"
printf '%s\n' "$st" | sed 's/^/    B: /' >&2
behind=$(echo "$st" | head -1 | field behind)
[ "$behind" -ge 1 ] || die "no lag reported (behind=$behind)"
echo "$st" | head -1 | grep -q 'applied=0' || die "relayed transaction reported as applied"
# B stops receiving; A takes one more write that B will never see, and dies
sqlv b "STOP SLAVE IO_THREAD;" > /dev/null
sqlv a "INSERT INTO slurm_acct_db.peerd_test (v) VALUES ('lost');" > /dev/null
A_GTID=$(sqlv a "SELECT @@gtid_binlog_pos;")
log "A wrote 'lost' (B is not receiving), A at GTID $A_GTID; SIGKILL A"
kill -KILL "${PID[db_a]}"
wait "${PID[db_a]}" 2> /dev/null || true
PID[db_a]=
if [ -n "${PID[dbd_a]:-}" ]; then
    kill -KILL "${PID[dbd_a]}"
    wait "${PID[dbd_a]}" 2> /dev/null || true
    PID[dbd_a]=
fi

# ---- promote B ----------------------------------------------------------------
out=$(b promote) || die "promote B: $out"
T_PROMOTE=$(echo "$out" | timing promote)
log "B promoted: $(echo "$out" | head -1), replica_promote $T_PROMOTE s"
echo "$out" | grep -q 'caught_up=1' || die "B did not catch up"
wait "${PID[locker]}" 2> /dev/null || true
PID[locker]=
out=$(b primary "$PW") || die "primary setup B: $out"
b bootstrap "$PW" > /dev/null || die "bootstrap B"
b status | sed 's/^/    B: /' >&2
[ "$(sqlv b "SELECT v FROM slurm_acct_db.peerd_test WHERE id=1;")" = updated ] ||
    die "the relayed update is not on B"
[ "$(sqlv b "SELECT COUNT(*) FROM slurm_acct_db.peerd_test WHERE v='lost';")" = 0 ] ||
    die "B has the row it never received"
out=$(as_slurm $B_PORT "INSERT INTO slurm_acct_db.peerd_test (v) VALUES ('after-promotion');") ||
    die "slurm@127.0.0.1 cannot write on the promoted B: $out"
log "B: the relayed update is there, 'lost' is not; slurm@127.0.0.1 writes on B"
if [ $SLURM = 1 ]; then
    t=$(now)
    start_dbd b $B_PORT
    wait_sacctmgr b
    sacctmgr -i add account chemistry cluster=$CLUSTER > /dev/null
    log "B: slurmdbd up on the promoted replica ($(since "$t") s); sacctmgr show account:"
    sacctmgr -n -P show account format=account | sed 's/^/    /' >&2
    sacctmgr -n -P show account format=account | grep -qx physics ||
        die "the account made through A's slurmdbd is not on B"
fi

# ---- A comes back, diverged ------------------------------------------------
start_db a "$A_ADDR" $A_PORT 1
log "A back (same data dir): 'lost' rows on A: $(sqlv a "SELECT COUNT(*) FROM
    slurm_acct_db.peerd_test WHERE v='lost';"), GTID $(sqlv a "SELECT @@gtid_binlog_pos;")," \
    "read_only=$(sqlv a "SELECT @@read_only;"); B at GTID $(sqlv b "SELECT @@gtid_binlog_pos;")"
log "A's next action: $(a action $B_ADDR $B_PORT)"
# what reconnecting without a rebuild does (current_pos: A's own binlog)
sqlv a "CHANGE MASTER TO MASTER_HOST='$B_ADDR', MASTER_PORT=$B_PORT,
    MASTER_USER='peerd_repl', MASTER_PASSWORD='$PW', MASTER_USE_GTID=current_pos;
    START SLAVE;" > /dev/null
sleep 2
log "A reconnected to B without a rebuild (MASTER_USE_GTID=current_pos):"
a status | grep -E 'configured|error' | sed 's/^/    A: /' >&2
log "A's next action: $(a action $B_ADDR $B_PORT)"

out=$(a follow $B_ADDR $B_PORT "$PW") || die "A follows B: $out"
T_FOLLOW2=$(echo "$out" | timing follow)
log "A follows B: replica_follow $T_FOLLOW2 s"
a status | sed 's/^/    A: /' >&2
a status | grep -q 'io=yes sql=1 read_only=1' || die "A is not replicating"
a status | grep -q 'error' && die "A reports an error"
[ "$(sqlv a "SELECT COUNT(*) FROM slurm_acct_db.peerd_test WHERE v IN ('lost');")" = 0 ] ||
    die "A still has its lost row"
[ "$(sqlv a "SELECT COUNT(*) FROM slurm_acct_db.peerd_test WHERE v='after-promotion';")" = 1 ] ||
    die "A lacks B's row"
[ "$(counts a)" = "$(counts b)" ] || die "A has $(counts a), B has $(counts b)"
log "A: $(counts a) (same as B), no 'lost', has 'after-promotion'"
out=$(b lag "after-failover" "$T/a") || die "lag B -> A: $out"
log "row written on B -> visible on A: $(echo "$out" | timing lag) s"
b bootstrap "$PW" > /dev/null || die "bootstrap B again"
b primary "$PW" > /dev/null || die "primary setup B again"
b lag "after-bootstrap-b" "$T/a" > /dev/null || die "replication after B's bootstrap"
a status | grep -q 'error' && die "A's replication broke on B's bootstrap"
log "acct_bootstrap_db and replica_primary_setup again on B: A still replicating"

# ---- A's MariaDB restarts: configured, stopped (--skip-slave-start) --------
stop_pid "${PID[db_a]}"
PID[db_a]=
sqlv b "INSERT INTO slurm_acct_db.peerd_test (v) VALUES ('while-a-down');" > /dev/null
start_db a "$A_ADDR" $A_PORT 1
log "A restarted: $(a status | head -1); next action: $(a action $B_ADDR $B_PORT)"
[ "$(a action $B_ADDR $B_PORT)" = start ] || die "A's action after a restart is not 'start'"
out=$(a start) || die "replica_start A: $out"
for _ in $(seq 100); do
    [ "$(sqlv a "SELECT COUNT(*) FROM slurm_acct_db.peerd_test WHERE v='while-a-down';")" = 1 ] && break
    sleep 0.05
done
[ "$(a action $B_ADDR $B_PORT)" = following ] || die "A not following after replica_start"
log "replica_start on A: $(echo "$out" | timing start) s; caught up with the write made while it was down"

# ---- refusals and failures ---------------------------------------------------
out=$(b follow localhost $A_PORT "$PW" || true)
log "follow a name: $out"
echo "$out" | grep -q "not an IPv4" || die "a name was accepted"
t=$(now)
out=$(FOLLOW_TIMEOUT=20 a follow $B_ADDR $B_PORT "fedcba9876543210fedcba9876543210" || true)
log "follow with a wrong password ($(since "$t") s): $(echo "$out" | grep ERROR)"
echo "$out" | grep -q "Access denied" || die "a wrong password was not reported"
t=$(now)
out=$(FOLLOW_TIMEOUT=20 a follow $B_ADDR 3309 "$PW" || true)
log "follow a port nobody listens on ($(since "$t") s): $(echo "$out" | grep ERROR)"
[ "$(a action $B_ADDR $B_PORT)" = following ] ||
    die "a failed follow broke A's working replication"
log "after the failed follows A still follows B (nothing is touched before the dump is in hand)"
out=$(a follow $B_ADDR $B_PORT "$PW") || die "A follows B again: $out"
log "A follows B again: $(echo "$out" | timing follow) s"

log "FIGURES follow (dump+load+start, $(counts a | awk '{ print $1 " tables, " $3 " test rows" }'), dump of $size bytes):" \
    "$T_FOLLOW1 s (B from A), $T_FOLLOW2 s (A from B); promote $T_PROMOTE s" \
    "(incl. the wait on the lock); row delay ${lags[*]} s"
grep -iE '\[(warning|error)\]' "$T"/{a,b}/log/mariadb.log | sed 's/^[^:]*log\/mariadb.log://; s/^[0-9: -]*//' |
    sed 's/[0-9]\{1,\}/N/g' | sort | uniq -c | sort -rn | head -20 | sed 's/^/    mariadb.log: /' >&2 || true
log "ALL OK"
