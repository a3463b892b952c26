#!/bin/bash
# onehost.sh - one-host figures for peerd, printed, not asserted
#
#   bootstrap_to_srun   seconds from `peerd --bootstrap` (fresh data dir)
#                       to the first `srun hostname` that succeeds; median
#                       and max of RUNS (default 5)
#   status_latency      `peerctl status --json` wall time, median and p99
#                       of 100 calls
#   idle_rss            peerd's VmRSS after IDLE seconds (default 10)
#
# Runs in a test host (scripts/testhost.sh), as root:
#   PEERD=_build/werror/peerd PEERCTL=_build/werror/peerctl tests/bench/onehost.sh
set -u
. "$(dirname "$0")/../integration/lib.sh"
RUNS=${RUNS:-5}
IDLE=${IDLE:-10}
th_trap
th_setup 1 >/dev/null 2>&1 || { echo "cannot set up a test host" >&2; exit 1; }

now() { date +%s.%N; }
stats() { # prints "median max" of the numbers on stdin
    sort -n | awk '{ v[NR] = $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2;
        printf "median %.3f max %.3f (n=%d)\n", m, v[NR], NR }'
}
srun_ok() { th_run 1 timeout 10 srun hostname >/dev/null 2>&1; }

times=()
for r in $(seq 1 "$RUNS"); do
    rm -rf "$(th_data 1)"
    t0=$(now)
    th_peerd_start 1 --bootstrap --cluster-name bench >/dev/null
    until srun_ok; do
        sleep 0.05
        [ "$(echo "$(now) - $t0 > 120" | bc)" = 1 ] && { echo "run $r: no srun within 120 s" >&2; exit 1; }
    done
    t=$(echo "$(now) - $t0" | bc)
    times+=("$t")
    echo "run $r: bootstrap -> srun ok in $t s"
    if [ "$r" -lt "$RUNS" ]; then
        pid=$(th_peerd_pid 1)
        th_kill 1 TERM
        th_wait_gone "$pid" 30
    fi
done
printf 'bootstrap_to_srun_seconds: '
printf '%s\n' "${times[@]}" | stats

lat=()
for i in $(seq 1 100); do
    t0=$(now)
    th_peerctl 1 status --json >/dev/null
    lat+=("$(echo "($(now) - $t0) * 1000" | bc)")
done
printf 'status_latency_ms: '
printf '%s\n' "${lat[@]}" | sort -n | awk '{ v[NR] = $1 } END {
    printf "median %.2f p99 %.2f (n=%d)\n", v[int(NR / 2) + 1], v[int(NR * 0.99)], NR }'

sleep "$IDLE"
pid=$(th_peerd_pid 1)
echo "idle_rss_kib: $(awk '/^VmRSS/ { print $2 }' /proc/"$pid"/status) (after ${IDLE} s idle, $(awk '/^Threads/ { print $2 }' /proc/"$pid"/status) threads)"
