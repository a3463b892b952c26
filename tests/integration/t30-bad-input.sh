#!/bin/bash
# t30-bad-input - what a person gets for bad input: a clear message and
# the documented exit code (peerd(8), peerctl(1)); a running peer keeps
# running
. "$(dirname "$0")/lib.sh"
th_trap
th_setup 1 || t_bail "cannot set up the test host"
log=$(th_dir 1)/log
data=$(th_data 1)

# run_peerd EXPECTED-STATUS PATTERN ARGS...: run peerd in the foreground
# on h1; ok if it exits with that status and says PATTERN on stderr.
run_peerd() {
    local want=$1 pat=$2 rc
    shift 2
    th_run 1 timeout 30 "$PEERD" "$@" >"$log/fg.out" 2>&1
    rc=$?
    if [ "$rc" != "$want" ]; then
        echo "exit status $rc, expected $want"; cat "$log/fg.out"; return 1
    fi
    grep -q -- "$pat" "$log/fg.out" || { echo "no '$pat' in:"; cat "$log/fg.out"; return 1; }
}

t_ok "no cluster and no --bootstrap: exit 78, says how to start" \
    run_peerd 78 "start with --bootstrap" --data-dir "$data"
t_ok "bad cluster name: exit 65" \
    run_peerd 65 "bad cluster name" --bootstrap --cluster-name "Bad Name" --data-dir "$data"
t_ok "unknown tier: exit 78" \
    run_peerd 78 "unknown tier" --bootstrap --tier huge --data-dir "$data"
t_ok "unknown option: exit 64" run_peerd 64 "usage" --frobnicate
t_ok "munge key file too short: exit 65" \
    run_peerd 65 "too short" --bootstrap --munge-key /etc/hostname --data-dir "$data"

# An unwritable data dir: a read-only file system inside the host.
th_sh 1 'mkdir -p /run/ro && mount -t tmpfs tmpfs /run/ro && mkdir /run/ro/data && mount -o remount,ro /run/ro'
t_ok "data dir on a read-only file system: exit 73, names the dir" \
    run_peerd 73 "/run/ro/data" --bootstrap --data-dir /run/ro/data

# slurm.conf written by somebody else is never overwritten
mkdir -p "$log/other"
echo "ClusterName=theirs" > "$log/other/slurm.conf"
t_ok "slurm.conf not written by peerd: exit 78, file untouched" \
    run_peerd 78 "not written by peerd" --bootstrap --data-dir "$log/d-other" \
    --slurm-conf "$log/other/slurm.conf"
t_is "... and its content is unchanged" "$(cat "$log/other/slurm.conf")" "ClusterName=theirs"

# peerctl_exits STATUS [PATTERN] ARGS...: peerctl on h1 exits with STATUS
# (and says PATTERN, if not empty, on stderr).
peerctl_exits() {
    local want=$1 pat=$2 rc
    shift 2
    th_peerctl 1 "$@" >"$log/pc.out" 2>&1
    rc=$?
    [ "$rc" = "$want" ] || { echo "exit status $rc, expected $want"; cat "$log/pc.out"; return 1; }
    [ -z "$pat" ] || grep -q -- "$pat" "$log/pc.out" || { echo "no '$pat' in:"; cat "$log/pc.out"; return 1; }
}
# ctl_reply MODE PATTERN: bytes on stdin to the control socket; the reply
# must contain PATTERN.
ctl_reply() {
    th_run 1 "$CTLSEND" "$1" "$data/peerd.ctl" >"$log/ctl.out" 2>&1 || { cat "$log/ctl.out"; return 1; }
    [ -z "$2" ] || grep -aq -- "$2" "$log/ctl.out" || { echo "no '$2' in:"; cat "$log/ctl.out"; return 1; }
}

t_ok "peerctl with no peerd: exit 2, says it is not running" \
    peerctl_exits 2 "not running" status

# A running peer with a slurmd binary that does not exist.
th_peerd_start 1 --bootstrap --cluster-name bad --slurmd /nonexistent/slurmd >/dev/null
slurmd_failed() { [ "$(it_svc 1 slurmd state)" = failed ]; }
t_ok "missing slurmd binary: service state 'failed'" th_wait_for 60 slurmd_failed
t_ok "missing slurmd binary: last_error says the binary is not found" \
    grep -q "not found" <<<"$(it_svc 1 slurmd last_error)"
t_ok "missing slurmd binary: peerctl status exits 1 (degraded)" \
    peerctl_exits 1 "" status
t_ok "missing slurmd binary: the error is in peerd's log" \
    grep -q "slurmd: cannot run /nonexistent/slurmd" "$log/peerd.out"
ctl_running() { [ "$(it_svc 1 slurmctld state)" = running ]; }
t_ok "missing slurmd binary: the controller still runs" \
    th_wait_for 30 ctl_running

pid=$(th_peerd_pid 1)
t_ok "a second peerd on the same data dir: exit 75, names the first" \
    run_peerd 75 "another peerd (pid $pid)" --data-dir "$data"

# Garbage on the control socket.
t_ok "garbage frame: error reply" \
    ctl_reply zmq malformed < <(head -c 300 /dev/urandom)
t_ok "valid header, body not JSON: error reply" \
    ctl_reply zmq "not JSON" < <(printf 'PDCT\001\001{not json')
t_ok "unknown command: error reply" \
    ctl_reply zmq "unknown command" < <(printf 'PDCT\001\001{"cmd":"explode"}')
t_ok "raw bytes without a ZeroMQ handshake are dropped" \
    ctl_reply raw "" < <(head -c 4096 /dev/urandom)
t_fails "an oversized frame (2 MiB) gets no reply (connection dropped)" \
    ctl_reply zmq "" < <(head -c 2097152 /dev/zero)
t_ok "after all that, peerd still runs" kill -0 "$pid"
t_ok "... and still answers peerctl" peerctl_exits 1 "" status
# (raw bytes can parse as old ZMTP 1.0 frames, so they may add to the count)
t_ok "... and counted the malformed requests (at least the 2 frames sent)" \
    test "$(it_json 1 .peerd.control.malformed)" -ge 2
t_ok "peerctl with an unknown command: exit 64" peerctl_exits 64 "unknown command" frobnicate

th_kill 1 KILL
th_wait_gone "$pid" 30
t_ok "peerctl after kill -9 of peerd (stale socket): exit 2, says so" \
    peerctl_exits 2 "stale control socket" status
t_ok "--bootstrap of another cluster over this one: exit 65" \
    run_peerd 65 "refusing to bootstrap a different cluster" --bootstrap \
    --cluster-name other --data-dir "$data"

# A corrupt database is refused and left as it is.
db=$data/peerd.db
printf 'this is not a database %.0s' $(seq 1 400) > "$db"
rm -f "$db-wal" "$db-shm"
sum=$(sha256sum < "$db")
t_ok "corrupt database: exit 65, says so" run_peerd 65 "not a database" --data-dir "$data"
t_ok "corrupt database: also refused with --bootstrap" \
    run_peerd 65 "not a database" --bootstrap --data-dir "$data"
t_is "corrupt database: the file is left as it was" "$(sha256sum < "$db")" "$sum"

rm -f "$db"
t_ok "database lost but node key kept: exit 65, not a new cluster" \
    run_peerd 65 "the database was lost" --bootstrap --data-dir "$data"

t_done
