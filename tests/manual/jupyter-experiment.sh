#!/bin/bash
# jupyter-experiment.sh - node/jupyter.c end to end, by hand: the real
# Jupyter server started from jupyter_add_service()'s spec by peerd's own
# supervisor code, checked with jupyter_ping(), then poked from outside:
# wrong and missing tokens (403), a terminal made through the REST API and
# driven over its websocket (user, HOME, cwd; sbatch and squeue against a
# small Slurm of its own), a kernel, a restart after /api/shutdown, a
# SIGKILL of the server (what happens to its kernel), a second server on
# the same port, and the stop.
#
# Not part of the test suite: it needs root, jupyter-notebook (Debian's
# 6.4.12, with python3-terminado) and gcc; the Slurm part also munged,
# slurmctld and slurmd (skipped without them, or with SLURM=0).  The
# server runs as JUPYTER_USER (default nobody: a user without a home, so
# the work dir is DATA/jupyter/work).  Everything lives in a temporary
# dir under /tmp; ports are picked free; every process is stopped by pid;
# the dir is removed at the end (KEEP=1 keeps it).
#
#   tests/manual/jupyter-experiment.sh [BUILD_DIR]     (default _build/jup)
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=$(cd "${1:-$SRC/_build/jup}" && pwd)
JUSER=${JUPYTER_USER:-nobody}
PY=/usr/bin/python3 # Debian's, with tornado; not a pyenv shim

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() {
    log "FAILED: $*"
    exit 1
}

[ "$(id -u)" = 0 ] || die "run as root"
[ -f "$BUILD/libnode.a" ] || die "no $BUILD/libnode.a: build first"
for b in gcc curl ss "$PY"; do command -v "$b" > /dev/null || die "$b is missing"; done
command -v jupyter-notebook > /dev/null || command -v jupyter-lab > /dev/null ||
    die "no Jupyter: apt-get install jupyter-notebook"
dpkg -s python3-terminado > /dev/null 2>&1 || die "python3-terminado is not installed"
log "Jupyter: $(dpkg-query -W -f '${Package} ${Version}' jupyter-notebook 2> /dev/null)," \
    "$(dpkg-query -W -f '${Package} ${Version}' python3-terminado)"
id "$JUSER" > /dev/null 2>&1 || die "no user $JUSER"

umask 077 # the driver's output names the token's file; keep it ours
T=$(mktemp -d /tmp/jup-exp.XXXXXX)
chmod 755 "$T" # the Jupyter user must reach $T/data/jupyter
DATA=$T/data
mkdir -m 755 "$DATA"
DRV=
DRV2=
PIDS=()   # Slurm daemons, stopped in reverse order
ORPHANS=() # processes the experiment itself left behind, by pid

stop_pid() { # TERM, up to 20 s, then KILL; by pid only
    local p=$1
    kill -TERM "$p" 2> /dev/null || return 0
    for _ in $(seq 200); do
        kill -0 "$p" 2> /dev/null || return 0
        sleep 0.1
    done
    log "pid $p did not stop: SIGKILL"
    kill -KILL "$p" 2> /dev/null || true
}

cleanup() {
    local k
    [ -n "$DRV2" ] && stop_pid "$DRV2"
    [ -n "$DRV" ] && stop_pid "$DRV"
    for p in "${ORPHANS[@]}"; do stop_pid "$p"; done
    for ((k = ${#PIDS[@]} - 1; k >= 0; k--)); do stop_pid "${PIDS[k]}"; done
    wait 2> /dev/null || true
    if [ "${KEEP:-0}" = 1 ]; then log "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT

free_port() { # a TCP port nothing listens on, from a random start
    local p
    for _ in $(seq 100); do
        p=$((20000 + RANDOM % 20000))
        ss -Hltn "sport = :$p" | grep -q . || {
            echo "$p"
            return 0
        }
    done
    die "no free port"
}

# ---- the driver: jupyter.c and supervise.c in a small loop ---------------
cat > "$T/drv.c" << 'EOF'
/* jup-drv DATA USER ADDR:PORT [SLURM_CONF]: prepare, register the
 * service with peerd's supervisor, ping it (0.05 s until healthy, then
 * every 0.5 s), feed the results back, print EVENT lines with monotonic
 * times on stdout.  A child subreaper, as peerd is.  SIGTERM stops all. */
#include "config.h"
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <sodium.h>
#include "node/jupyter.h"
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
static void event(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void event(const char *fmt, ...)
{
    va_list ap;
    printf("EVENT %.6f ", mono());
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

int main(int argc, char **argv)
{
    struct jupyter_layout l;
    struct jupyter_addr addr;
    struct jupyter_status st;
    enum jupyter_kind kind;
    char token[JUPYTER_TOKEN_LEN + 1], bin[4096], url[256];
    err_t err = {{0}};
    bool healthy = false;
    double next_check = 0, t0;
    pid_t last = 0;

    if ((argc != 4 && argc != 5) || sodium_init() < 0)
        return 64;
    log_init("jup-drv", LOG_LEVEL_INFO, false);
    signal(SIGTERM, on_term);
    signal(SIGINT, on_term);
    signal(SIGPIPE, SIG_IGN);
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    if (jupyter_addr_parse(argv[3], &addr, &err) < 0) {
        fprintf(stderr, "address: %s\n", err.text);
        return 64;
    }
    t0 = mono();
    if (jupyter_prepare(argv[1], argv[2], &l, token, &err) < 0) {
        fprintf(stderr, "jupyter_prepare: %s\n", err.text);
        return 1;
    }
    event("prepared %.4f work %s home %d", mono() - t0, l.work, l.work_is_home);
    if (jupyter_find(NULL, NULL, bin, sizeof(bin), &kind, &err) < 0) {
        fprintf(stderr, "%s\n", err.text);
        return 1;
    }
    event("binary %s %s", kind == JUPYTER_LAB ? "lab" : "notebook", bin);
    if (jupyter_url(addr.host, addr.port, token, url, sizeof(url)) == 0 &&
        strstr(url, token))
        event("url-ok %zu", strlen(url));
    supervisor_t *sv = supervisor_new();
    int idx = sv ? jupyter_add_service(sv, &l, bin, &addr,
                                       argc == 5 ? argv[4] : NULL, true, -1,
                                       &err)
                 : -1;
    if (idx < 0) {
        fprintf(stderr, "jupyter_add_service: %s\n", err.text);
        return 1;
    }
    while (!stop) {
        double now = mono();
        supervisor_reap(sv, now);
        double wait = supervisor_tick(sv, now);
        pid_t pid = supervisor_pid(sv, idx);
        if (pid != last) {
            if (pid)
                event("spawned %d", (int)pid);
            else
                event("exited %d", (int)last);
            last = pid;
            healthy = false;
            next_check = 0;
        }
        if (pid && now >= next_check) {
            double at = mono();
            bool ok = jupyter_ping(addr.host, addr.port, token, 1.0, &st,
                                   &err) == 0;
            double took = mono() - at;
            supervisor_health(sv, idx, ok, at, ok ? NULL : err.text, mono());
            if (ok && !healthy)
                event("healthy %d ping %.4f kernels %d", (int)pid, took,
                      st.kernels);
            if (!ok && healthy)
                event("unhealthy %d %s", (int)pid, err.text);
            if (!ok && !healthy && strstr(err.text, "403"))
                event("refused %d %s", (int)pid, err.text);
            healthy = ok;
            next_check = now + (healthy ? 0.5 : 0.05);
        }
        struct timespec ts = {0, 20 * 1000 * 1000};
        if (wait < 0.02)
            ts.tv_nsec = (long)(wait > 0 ? wait * 1e9 : 0);
        nanosleep(&ts, NULL);
    }
    event("stopping");
    sodium_memzero(token, sizeof(token));
    supervisor_stop_all(sv, 10.0);
    supervisor_destroy(&sv);
    event("stopped");
    return 0;
}
EOF
# shellcheck disable=SC2046
gcc -std=gnu11 -Wall -Wextra -Werror -O1 -I"$SRC" -I"$BUILD" -o "$T/jup-drv" \
    "$T/drv.c" "$BUILD/libnode.a" "$BUILD/libstore.a" "$BUILD/libproto.a" \
    $(pkg-config --libs libzmq libsodium sqlite3 jansson munge) -lslurm \
    -lpthread -lm || die "cannot build the driver"

# ---- a terminal's websocket, driven from Python (tornado comes with
# python3-notebook): run one command line, print what it printed ----------
cat > "$T/term.py" << 'EOF'
import asyncio, json, os, re, sys
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

async def main(base, token, name, cmd):
    req = HTTPRequest(f"ws://{base}/terminals/websocket/{name}",
                      headers={"Authorization": "token " + token})
    ws = await websocket_connect(req)
    # The markers are split in the command line, so only the output has
    # them, and new each time: a terminal replays its history to a new
    # connection.
    n = os.urandom(4).hex()
    ws.write_message(json.dumps(["stdin",
        f"echo @@B''EGIN{n}@@; {cmd}; echo @@E''ND{n}@@\r"]))
    out, loop = "", asyncio.get_running_loop()
    end = loop.time() + 30
    while f"@@END{n}@@" not in out and loop.time() < end:
        msg = await asyncio.wait_for(ws.read_message(), end - loop.time())
        if msg is None:
            break
        kind, *data = json.loads(msg)
        if kind == "stdout":
            out += data[0]
    ws.close()
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out).replace("\r", "")
    m = re.search(f"@@BEGIN{n}@@\n(.*?)@@END{n}@@", text, re.S)
    if not m:
        sys.exit("no output from the terminal:\n" + text)
    print(m.group(1), end="")

asyncio.run(main(*sys.argv[1:5]))
EOF

ev() { # ev FILE NAME [N] -> "time rest..." of the Nth (default last) EVENT
    awk -v n="$2" -v k="${3:-0}" '$1 == "EVENT" && $3 == n { c++; if (k == 0 || c == k) l = $0 }
        END { sub(/^EVENT /, "", l); print l }' "$1"
}
evcount() { awk -v n="$2" '$1 == "EVENT" && $3 == n { c++ } END { print c + 0 }' "$1"; }
wait_event() { # wait_event FILE NAME COUNT SECONDS
    for _ in $(seq $(($4 * 10))); do
        [ "$(evcount "$1" "$2")" -ge "$3" ] && return 0
        sleep 0.1
    done
    return 1
}
diff_s() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
indent() { while IFS= read -r line; do printf '    %s\n' "$line" >&2; done; }
rss_mib() { ps -o rss= -p "$1" | awk '{ printf "%.0f", $1 / 1024 }'; }

# ---- optional: a small Slurm of its own (own ports, munged socket) -------
SLURM_CONF_ARG=()
if [ "${SLURM:-1}" = 1 ] && PATH=$PATH:/usr/sbin command -v munged > /dev/null &&
    PATH=$PATH:/usr/sbin command -v slurmctld > /dev/null &&
    PATH=$PATH:/usr/sbin command -v slurmd > /dev/null; then
    CTLPORT=$(free_port)
    DPORT=$(free_port)
    S=$T/slurm
    mkdir -m 755 "$S" "$S/run" "$S/spool" "$S/log"
    mkdir -m 700 "$S/munge" "$S/state"
    dd if=/dev/urandom of="$S/munge/munge.key" bs=1024 count=1 status=none
    chmod 400 "$S/munge/munge.key"
    MSOCK=$S/run/munge.sock
    /usr/sbin/munged --foreground --socket="$MSOCK" --key-file="$S/munge/munge.key" \
        --pid-file="$S/munge/munged.pid" --seed-file="$S/munge/seed" \
        --log-file=/dev/null > "$S/log/munged.log" 2>&1 &
    PIDS+=($!)
    SCONF=$S/slurm.conf
    cat > "$SCONF" << EOF
ClusterName=jupexp
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MSOCK
MailProg=/bin/true
SlurmctldPort=$CTLPORT
SlurmdPort=$DPORT
StateSaveLocation=$S/state
SlurmdSpoolDir=$S/spool
SlurmctldPidFile=$S/run/slurmctld.pid
SlurmdPidFile=$S/run/slurmd.pid
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
ReturnToService=2
NodeName=n1 NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=500 State=UNKNOWN
PartitionName=main Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    chmod 644 "$SCONF"
    for _ in $(seq 50); do
        munge -S "$MSOCK" -n 2> /dev/null | unmunge -S "$MSOCK" > /dev/null 2>&1 && break
        sleep 0.1
    done
    /usr/sbin/slurmctld -D -f "$SCONF" > "$S/log/slurmctld.log" 2>&1 &
    PIDS+=($!)
    /usr/sbin/slurmd -D -f "$SCONF" -N n1 > "$S/log/slurmd.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 300); do
        [ "$(SLURM_CONF=$SCONF sinfo -h -t idle -o %D 2> /dev/null)" = 1 ] && break
        sleep 0.1
    done
    [ "$(SLURM_CONF=$SCONF sinfo -h -t idle -o %D)" = 1 ] || die "Slurm: node n1 not idle"
    log "Slurm of its own: slurmctld on :$CTLPORT, slurmd on :$DPORT, node n1 idle"
    SLURM_CONF_ARG=("$SCONF")
else
    log "no Slurm part (SLURM=0, or munged/slurmctld/slurmd missing)"
fi

# ---- run: start, first healthy ping ----------------------------------------
PORT=$(free_port)
ADDR=127.0.0.1
BASE=http://$ADDR:$PORT
"$T/jup-drv" "$DATA" "$JUSER" "$ADDR:$PORT" "${SLURM_CONF_ARG[@]}" \
    > "$T/drv.out" 2> "$T/drv.err" &
DRV=$!
wait_event "$T/drv.out" healthy 1 60 || {
    cat "$T/drv.err" "$DATA/log/jupyter.log" >&2 2> /dev/null || true
    die "Jupyter did not become healthy"
}
read -r t_sp _ pid < <(ev "$T/drv.out" spawned)
read -r t_ok _ _ _ ping _ < <(ev "$T/drv.out" healthy)
log "binary: $(ev "$T/drv.out" binary | cut -d' ' -f3-)"
read -r _ _ t_prep _ WORK _ home < <(ev "$T/drv.out" prepared)
log "jupyter_prepare: ${t_prep} s; work dir $WORK (the user's home: $home)"
log "TIMING spawn -> first healthy jupyter_ping: $(diff_s "$t_sp" "$t_ok") s (that ping took ${ping} s)"
[ "$(evcount "$T/drv.out" url-ok)" = 1 ] || die "jupyter_url did not give a URL with the token"
TOKEN=$(cat "$DATA/jupyter/token")

# ---- files and what ps shows --------------------------------------------
stat -c '    %a %U %n' "$DATA/jupyter" "$DATA/jupyter/token" "$DATA/jupyter/config.json" \
    "$DATA/jupyter/runtime" "$WORK" "$DATA/log/jupyter.log" >&2
[ "$(stat -c %a%U "$DATA/jupyter/token")" = 600root ] || die "token file not 0600 root"
[ "$(stat -c %a%U "$DATA/jupyter/config.json")" = "600$JUSER" ] || die "config not 0600 $JUSER"
[ "$(stat -c %a%U "$DATA/jupyter/runtime")" = "700$JUSER" ] || die "runtime dir not 0700 $JUSER"
[ "$(ps -o user= -p "$pid")" = "$JUSER" ] || die "server runs as $(ps -o user= -p "$pid")"
log "server pid $pid: $(ps -o args= -p "$pid")"
ps -o args= -p "$pid" | grep -q "$TOKEN" && die "the token is on the command line"
tr '\0' '\n' < "/proc/$pid/environ" | grep -q "$TOKEN" && die "the token is in the environment"
grep -q "$TOKEN" "$DATA/log/jupyter.log" && die "the token is in the log"
log "environment: $(tr '\0' ' ' < "/proc/$pid/environ")"
log "token: not in argv, environment or log; RSS idle $(rss_mib "$pid") MiB"

# ---- the token guards the API ---------------------------------------------
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
c_ok=$(code -H "Authorization: token $TOKEN" "$BASE/api/status")
c_bad=$(code -H "Authorization: token 0000$TOKEN" "$BASE/api/status")
c_none=$(code "$BASE/api/status")
c_q=$(code "$BASE/api/status?token=$TOKEN")
log "GET /api/status: right token $c_ok, wrong token $c_bad, none $c_none, ?token= $c_q"
if [ "$c_ok" != 200 ] || [ "$c_bad" != 403 ] || [ "$c_none" != 403 ]; then
    die "the API does not refuse a wrong token"
fi
c_post=$(code -X POST -H "Authorization: token 0000$TOKEN" "$BASE/api/terminals")
[ "$c_post" = 403 ] || die "POST /api/terminals with a wrong token: $c_post"

# ---- a terminal -------------------------------------------------------------
ans=$(curl -s -w '\n%{http_code}' -X POST -H "Authorization: token $TOKEN" "$BASE/api/terminals")
[ "$(tail -1 <<< "$ans")" = 200 ] || die "POST /api/terminals: $ans"
TERM_NAME=$(head -1 <<< "$ans" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["name"])')
log "POST /api/terminals -> 200, terminal '$TERM_NAME'"
# shellcheck disable=SC2016 # expanded by the terminal's shell
out=$("$PY" "$T/term.py" "$ADDR:$PORT" "$TOKEN" "$TERM_NAME" \
    'echo "user=$(id -un) home=$HOME cwd=$PWD shell=$0"; command -v sbatch squeue | tr "\n" " "; echo; echo "SLURM_CONF=${SLURM_CONF:-}"')
log "in the terminal:"
indent <<< "$out"
grep -q "^user=$JUSER home=$WORK cwd=$WORK " <<< "$out" || die "the terminal is not $JUSER in $WORK"

# ---- Slurm from the terminal -------------------------------------------------
if [ ${#SLURM_CONF_ARG[@]} = 1 ]; then
    t_sub=$(date +%s.%N)
    out=$("$PY" "$T/term.py" "$ADDR:$PORT" "$TOKEN" "$TERM_NAME" \
        "sbatch --parsable -o job-%j.out --wrap 'id -un; pwd'")
    job=$(tr -d '\n ' <<< "$out")
    [[ $job =~ ^[0-9]+$ ]] || die "sbatch in the terminal said: $out"
    for _ in $(seq 300); do
        [ -z "$(SLURM_CONF=$SCONF squeue -h -j "$job" 2> /dev/null)" ] && [ -s "$WORK/job-$job.out" ] && break
        sleep 0.1
    done
    log "TIMING sbatch in the terminal -> job $job done: $(diff_s "$t_sub" "$(date +%s.%N)") s"
    out=$("$PY" "$T/term.py" "$ADDR:$PORT" "$TOKEN" "$TERM_NAME" \
        "squeue -h -o '%i %u %T' --state=all -j $job; cat job-$job.out")
    log "in the terminal: squeue -j $job; cat job-$job.out:"
    indent <<< "$out"
    grep -qx "$JUSER" "$WORK/job-$job.out" || die "job $job did not run as $JUSER"
    grep -qx "$WORK" "$WORK/job-$job.out" || die "job $job did not run in $WORK"
fi

# ---- a kernel ------------------------------------------------------------------
k=$(curl -s -X POST -H "Authorization: token $TOKEN" -H 'Content-Type: application/json' \
    -d '{"name": "python3"}' "$BASE/api/kernels")
KID=$("$PY" -c 'import json,sys; print(json.load(sys.stdin)["id"])' <<< "$k")
kpid=
for _ in $(seq 100); do
    kpid=$(pgrep -f "kernel-$KID.json" || true)
    [ -n "$kpid" ] && break
    sleep 0.1
done
[ -n "$kpid" ] || die "no kernel process"
sleep 3 # let it import what it imports
log "kernel $KID: pid $kpid, user $(ps -o user= -p "$kpid"), RSS $(rss_mib "$kpid") MiB;" \
    "server RSS with a terminal and a kernel $(rss_mib "$pid") MiB"
st=$(curl -s -H "Authorization: token $TOKEN" "$BASE/api/status")
log "GET /api/status: $st"

# ---- /api/shutdown: the supervisor starts it again ------------------------------
n_sp=$(evcount "$T/drv.out" spawned)
code -X POST -H "Authorization: token $TOKEN" "$BASE/api/shutdown" > /dev/null || true
wait_event "$T/drv.out" healthy 2 60 || die "not healthy again after /api/shutdown"
read -r t_ex _ < <(ev "$T/drv.out" exited 1)
read -r t_sp2 _ pid2 < <(ev "$T/drv.out" spawned $((n_sp + 1)))
read -r t_ok2 _ < <(ev "$T/drv.out" healthy 2)
kill -0 "$kpid" 2> /dev/null && die "kernel $kpid outlived a clean shutdown"
log "TIMING /api/shutdown: exited -> respawned $(diff_s "$t_ex" "$t_sp2") s (backoff)," \
    "-> healthy $(diff_s "$t_ex" "$t_ok2") s; kernel $kpid gone; new pid $pid2"
[ "$(code -H "Authorization: token $TOKEN" "$BASE/api/status")" = 200 ] ||
    die "the token changed across a restart"

# ---- SIGKILL of the server: does its kernel go? --------------------------------
k=$(curl -s -X POST -H "Authorization: token $TOKEN" -H 'Content-Type: application/json' \
    -d '{"name": "python3"}' "$BASE/api/kernels")
KID=$("$PY" -c 'import json,sys; print(json.load(sys.stdin)["id"])' <<< "$k")
kpid=
for _ in $(seq 100); do
    kpid=$(pgrep -f "kernel-$KID.json" || true)
    [ -n "$kpid" ] && break
    sleep 0.1
done
[ -n "$kpid" ] || die "no kernel process"
code -X POST -H "Authorization: token $TOKEN" "$BASE/api/terminals" > /dev/null
tpid=
for _ in $(seq 50); do
    tpid=$(ps -o pid=,args= --ppid "$pid2" | awk '$2 ~ /sh$/ { print $1 }')
    [ -n "$tpid" ] && break
    sleep 0.1
done
[ -n "$tpid" ] || die "no terminal shell under pid $pid2"
sleep 2
kill -KILL "$pid2"
wait_event "$T/drv.out" healthy 3 60 || die "not healthy again after SIGKILL"
read -r t_ex3 _ < <(ev "$T/drv.out" exited 2)
read -r t_ok3 _ pid3 _ < <(ev "$T/drv.out" healthy 3)
sleep 3 # ipykernel polls its parent every second
if kill -0 "$kpid" 2> /dev/null; then
    ORPHANS+=("$kpid")
    log "FINDING kernel $kpid outlived SIGKILL of its server: parent now pid" \
        "$(ps -o ppid= -p "$kpid" | tr -d ' ') (the driver, a subreaper like peerd); stopping it by pid"
else
    log "kernel $kpid went with its server"
fi
if kill -0 "$tpid" 2> /dev/null; then
    ORPHANS+=("$tpid")
    log "FINDING terminal shell $tpid outlived SIGKILL of its server; stopping it by pid"
else
    log "terminal shell $tpid went with its server (hang-up of its pty)"
fi
log "TIMING SIGKILL: exited -> healthy $(diff_s "$t_ex3" "$t_ok3") s (pid $pid3)"

# ---- a second server on the same port ------------------------------------------
mkdir -m 755 "$T/data2"
"$T/jup-drv" "$T/data2" "$JUSER" "$ADDR:$PORT" > "$T/drv2.out" 2> "$T/drv2.err" &
DRV2=$!
for _ in $(seq 100); do
    grep -q "is not available" "$T/data2/log/jupyter.log" 2> /dev/null && break
    sleep 0.1
done
grep -q "is not available" "$T/data2/log/jupyter.log" || die "the second server did not say the port is taken"
log "second server on :$PORT: $(grep -m1 'is not available' "$T/data2/log/jupyter.log" | sed 's/^.*] //')"
[ "$(evcount "$T/drv2.out" healthy)" = 0 ] || die "the second server's check passed"
log "its jupyter_ping: $(ev "$T/drv2.out" refused | cut -d' ' -f4-)"
ss -Hltn "sport = :$((PORT + 1))" | grep -q . && die "the second server took port $((PORT + 1))"
stop_pid "$DRV2"
wait "$DRV2" 2> /dev/null || true
DRV2=

# ---- stop ------------------------------------------------------------------------
spids=$(ps -o pid= --ppid "$pid3" | tr '\n' ' ' || true) # its terminal
t_stop=$(date +%s.%N)
stop_pid "$DRV"
wait "$DRV" 2> /dev/null || true
DRV=
log "TIMING stop (SIGTERM to the driver -> all gone): $(diff_s "$t_stop" "$(date +%s.%N)") s"
for p in $pid3 $spids; do
    kill -0 "$p" 2> /dev/null && ! [[ " ${ORPHANS[*]} " == *" $p "* ]] &&
        die "pid $p ($(ps -o args= -p "$p")) is still there after the stop"
done
log "warnings and errors in jupyter.log (counted):"
grep -E '^\[(W|E|C) ' "$DATA/log/jupyter.log" | sed -e 's/^\[\(.\) [0-9:.]* /[\1] /' \
    -e 's/[0-9.]*ms /N ms /' | sort | uniq -c | sort -rn | head -8 | indent || true
log "ALL OK"
