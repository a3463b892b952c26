#!/bin/bash
# raft-sim.sh - many seeds of the Raft + controller-lease simulation, figures
#
#   seeds        seeds run (SEEDS, from FIRST), in JOBS processes
#   violations   moments two peers had a live slurmctld (must be 0)
#   failed       seeds that broke anything (a Raft invariant, a bound)
#   takeover     a healthy cluster's controller crashes: seconds until a
#                peer holds the lease and runs slurmctld (and until a new
#                leader is elected)
#   no ctl       seconds per simulated minute without a live slurmctld:
#                under the chaos profile (partitions, crashes, pauses,
#                loss, long delays), and in service (STEADY ticks of a
#                calm cluster with one crash or pause a minute)
#   transfer     raft transfer -> new leader, after slurmctld stopped
# One tick is 0.1 s of virtual time (AGREE_TICK).  Arguments go to sim_raft:
#   tests/bench/raft-sim.sh --unsafe-recv    (the check must find overlaps)
#   tests/bench/raft-sim.sh --probe restart  (a known hazard, see README)
#
# Builds nothing: point SIM_RAFT at a built tests/sim/sim_raft.
#   SIM_RAFT=_build/werror/tests/sim/sim_raft SEEDS=2000 tests/bench/raft-sim.sh
set -u
SIM_RAFT=${SIM_RAFT:-_build/werror/tests/sim/sim_raft}
SEEDS=${SEEDS:-2000}
FIRST=${FIRST:-1}
STEADY=${STEADY:-600}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
# sim_raft is a check program: build it on demand in the -Werror tree
if [ ! -x "$SIM_RAFT" ] && [ -f _build/werror/Makefile ]; then
    make -C _build/werror tests/sim/sim_raft >/dev/null || exit 2
fi
[ -x "$SIM_RAFT" ] || { echo "raft-sim.sh: no $SIM_RAFT (set SIM_RAFT)" >&2; exit 2; }

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
t0=$(date +%s.%N)
per=$(( (SEEDS + JOBS - 1) / JOBS ))
pids=()
for ((j = 0; j < JOBS; j++)); do
    first=$((FIRST + j * per))
    n=$per
    [ $((first + n)) -gt $((FIRST + SEEDS)) ] && n=$((FIRST + SEEDS - first))
    [ "$n" -gt 0 ] || continue
    "$SIM_RAFT" --first "$first" --seeds "$n" --steady "$STEADY" "$@" \
        >"$dir/$j.out" 2>&1 &
    pids+=($!)
done
rc=0
for p in "${pids[@]}"; do
    wait "$p" || rc=1
done
t1=$(date +%s.%N)

cat "$dir"/*.out >"$dir/all"
failed=$(grep -c '^not ok [0-9]* - seed [0-9]*:' "$dir/all")
awk -v a="$t0" -v b="$t1" -v failed="$failed" '
function mean(k) { return n[k] ? sum[k] / n[k] : 0 }
function fig(label, k) {
    if (n[k])
        printf "%-10s %.2f s mean, %.2f s max (n=%d)\n", label, mean(k), mx[k], n[k]
}
function ctl(label, k) {
    if (span[k] > 0)
        printf "%-10s %.2f s per simulated minute %s (%.0f min)\n", "no ctl", \
            60 * down[k] / span[k], label, span[k] / 60
}
/^# sums:/ {
    seeds += $4; viol += $6
    for (i = 7; i <= NF; ) {
        k = $i
        if (k ~ /^down/) { down[k] += $(i+1); span[k] += $(i+2); i += 3; continue }
        n[k] += $(i+1); sum[k] += $(i+2); if ($(i+3) > mx[k]) mx[k] = $(i+3); i += 4
    }
}
END {
    printf "%-10s %d\n", "seeds", seeds
    printf "%-10s %d\n", "violations", viol
    printf "%-10s %d\n", "failed", failed
    printf "%-10s %.1f s wall\n", "time", b - a
    fig("takeover", "takeover")
    fig("election", "failover")
    fig("ctl lost", "lost2")
    fig("chaos lost", "lost0")
    ctl("under chaos", "down0")
    ctl("in service, a fault a minute", "down2")
    fig("transfer", "transfer")
    fig("heal", "heal")
}' "$dir/all"
if [ "$rc" -ne 0 ]; then
    echo "failures (replay one with the line after it):"
    grep -A1 '^not ok [0-9]* - seed [0-9]*:' "$dir/all" | grep -v '^--$'
fi
exit "$rc"
