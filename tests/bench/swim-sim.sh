#!/bin/bash
# swim-sim.sh - the SWIM/Lifeguard simulation at N = 10, 100, 1000; figures
# printed, not asserted (sim_swim itself fails on a broken property); any
# failure (failed check, non-zero exit, no output) prints FAILED, exits 1
#
#   detect       seconds from a crash until every live member sees it DEAD
#   spread       seconds from the first DEAD (or a refutation) until
#                99.99 % of the live members know it
#   refute       seconds from cutting a member off until it is ALIVE again,
#                at a higher incarnation, everywhere
#   heal         seconds from healing a partition until all views agree
#   per member   messages and estimated wire bytes sent per member per
#                second in the steady phase (header 13 + fields + 17 per
#                update, 8 more for a suspect's accuser)
#   false DEAD   DEAD declarations of live, connected members (must be 0)
# One protocol period is 1 s; 10 % loss; one member CPU-starved.
#
# Builds nothing: point SIM_SWIM at a built tests/sim/sim_swim.
#   SIM_SWIM=_build/werror/tests/sim/sim_swim SIZES="10 100" tests/bench/swim-sim.sh
set -u
SIM_SWIM=${SIM_SWIM:-_build/werror/tests/sim/sim_swim}
SIZES=${SIZES:-10 100 1000}
[ -x "$SIM_SWIM" ] || { echo "swim-sim.sh: no $SIM_SWIM (set SIM_SWIM)" >&2; exit 2; }

out=$(mktemp)
trap 'rm -f "$out"' EXIT
rc=0
for n in $SIZES; do
    # Fewer seeds as N grows: one N=1000 seed is a few minutes at -O2.
    seeds=${SEEDS:-$((n <= 10 ? 100 : n <= 100 ? 10 : 1))}
    t0=$(date +%s.%N)
    "$SIM_SWIM" --n "$n" --seeds "$seeds" >"$out" 2>&1
    sim_rc=$?
    t1=$(date +%s.%N)
    failed=$(grep -c '^not ok' "$out")
    awk -v n="$n" -v s="$seeds" -v f="$failed" -v a="$t0" -v b="$t1" \
        'BEGIN { printf "N=%s: %s seeds, %s failed checks, %.1f s\n", n, s, f, b - a }'
    grep '^# stats:' "$out" | sed "s/^# stats: n $n /    /"
    grep -A1 '^not ok' "$out" | sed 's/^/    /'
    # A crash, a sanitizer report or a silent run is a failure too.
    if [ "$sim_rc" -ne 0 ] || [ "$failed" -ne 0 ] || ! grep -q '^# stats:' "$out"; then
        if ! [ -s "$out" ]; then
            echo "    FAILED: N=$n: sim_swim printed nothing (exit $sim_rc)"
        else
            echo "    FAILED: N=$n: sim_swim exit $sim_rc, $failed failed checks; last lines:"
            tail -n 5 "$out" | sed 's/^/        /'
        fi
        rc=1
    fi
done
[ "$rc" -eq 0 ] || echo "FAILED"
exit "$rc"
