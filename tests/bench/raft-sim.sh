#!/bin/bash
# raft-sim.sh - many seeds of the Raft simulation, figures printed, not asserted
#
#   passed       seeds whose run kept every invariant and met every bound
#   time         wall-clock seconds for the whole run
#   elections    leaders seen (one per term), commits (entries applied),
#                messages sent and dropped, over all seeds
#   heal         ticks from healing the chaos to a commit on every peer
#   failover     ticks from a leader crash (healthy cluster) to a new leader
#   transfer     ticks from raft_transfer() to the new leader
# One tick is one heartbeat interval or less; the election timeout is 10.
#
# Builds nothing: point SIM_RAFT at a built tests/sim/sim_raft.
#   SIM_RAFT=_build/werror/tests/sim/sim_raft SEEDS=10000 tests/bench/raft-sim.sh
set -u
SIM_RAFT=${SIM_RAFT:-_build/werror/tests/sim/sim_raft}
SEEDS=${SEEDS:-10000}
# sim_raft is a check program: build it on demand in the -Werror tree
if [ ! -x "$SIM_RAFT" ] && [ -f _build/werror/Makefile ]; then
    make -C _build/werror tests/sim/sim_raft >/dev/null || exit 2
fi
[ -x "$SIM_RAFT" ] || { echo "raft-sim.sh: no $SIM_RAFT (set SIM_RAFT)" >&2; exit 2; }

out=$(mktemp)
trap 'rm -f "$out"' EXIT
t0=$(date +%s.%N)
"$SIM_RAFT" --seeds "$SEEDS" >"$out" 2>&1
rc=$?
t1=$(date +%s.%N)

failed=$(grep -c '^not ok [0-9]* - seed [0-9]*:' "$out")
echo "seeds:    $SEEDS"
echo "passed:   $((SEEDS - failed))"
awk -v a="$t0" -v b="$t1" 'BEGIN { printf "time:     %.1f s\n", b - a }'
grep '^# stats:' "$out" | sed 's/^# stats: /stats:    /'
if [ "$rc" -ne 0 ]; then
    echo "failures (replay one with: $SIM_RAFT --replay SEED):"
    grep '^not ok' "$out"
fi
exit "$rc"
