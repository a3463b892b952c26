#!/bin/bash
# failover.sh - controller failover figures for peerd, printed, not asserted
#
# On 3 test hosts (3 voters, no shared state dir), RUNS times: kill -9
# every process of the controller host (its peer, slurmctld, slurmd, ...)
# and measure, polling every 0.05 s from a surviving host:
#   to_sinfo   seconds from the kill to the first `sinfo` answered by the
#              new controller.  A new sinfo is started every 0.1 s without
#              waiting for the earlier ones: a Slurm client resolves the
#              controller's address once and retries it for MessageTimeout
#              (10 s), so one started before the move answers late, while
#              a new one reaches the new controller at once.
#   to_srun    seconds from the kill to the first `srun -N1 true` that
#              succeeds on a surviving host
# Then the killed host's peer is started again and the cluster settles
# (all nodes idle, standbys in sync, 6 s for slurmctld's lazy state
# saves) before the next run.
#
#   PEERD=_build/werror/peerd PEERCTL=_build/werror/peerctl tests/bench/failover.sh
set -u
. "$(dirname "$0")/../integration/lib.sh"
RUNS=${RUNS:-20}
th_trap
th_setup 3 >/dev/null 2>&1 || { echo "cannot set up test hosts" >&2; exit 1; }

now() { date +%s.%N; }
stats() { # "median X max Y (n=N)" of the numbers on stdin
    sort -n | awk '{ v[NR] = $1 } END {
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "median %.2f max %.2f min %.2f (n=%d)\n", m, v[NR], v[1], NR }'
}
controller() { it_controller "$1"; }
in_sync() { it_standbys_in_sync "$1"; }
all_idle() { it_nodes_are "$1" "h1 idle h2 idle h3 idle "; }

it_three_hosts fobench || exit 1

sinfo_t=()
srun_t=()
for r in $(seq 1 "$RUNS"); do
    ctl=$(controller 1)
    k=${ctl#h}
    s=$((k % 3 + 1))
    th_wait_for 60 all_idle "$s" && th_wait_for 30 in_sync "$k" ||
        { echo "run $r: cluster not settled" >&2; exit 1; }
    # slurmctld saves what changed up to ~5 s late (SLURM-ON-ONE-BOX
    # pitfall 8): a steady cluster has its state at the standbys
    sleep 6
    th_wait_for 30 in_sync "$k" || { echo "run $r: standbys lag" >&2; exit 1; }
    ok=$TH_ROOT/sinfo-ok
    rm -f "$ok"
    probes=()
    t0=$(now)
    th_host_signal "$k" KILL
    until [ -s "$ok" ]; do
        ( th_run "$s" timeout 15 sinfo -h >/dev/null 2>&1 && now >> "$ok" ) &
        probes+=($!)
        sleep 0.1
    done
    t1=$(sort -n "$ok" | head -1)
    until th_run "$s" srun -N1 -w "h$s" true >/dev/null 2>&1; do sleep 0.05; done
    t2=$(now)
    wait "${probes[@]}" 2>/dev/null
    [ "$(controller "$s")" != "$ctl" ] || { echo "run $r: no new controller" >&2; exit 1; }
    a=$(awk "BEGIN { print $t1 - $t0 }")
    b=$(awk "BEGIN { print $t2 - $t0 }")
    sinfo_t+=("$a")
    srun_t+=("$b")
    printf 'run %2d: killed %s, new controller %s, sinfo %.2f s, srun %.2f s\n' \
        "$r" "$ctl" "$(controller "$s")" "$a" "$b"
    th_wait_for 10 it_no_procs "$k" || true
    th_peerd_start "$k" >/dev/null
    it_wait_healthy "$k" 60 || { echo "run $r: $ctl did not come back" >&2; exit 1; }
done
echo "to_sinfo: $(printf '%s\n' "${sinfo_t[@]}" | stats)"
echo "to_srun:  $(printf '%s\n' "${srun_t[@]}" | stats)"
