#!/bin/bash
# multihost.sh - multi-host figures for peerd, printed, not asserted
#
#   join_to_idle      seconds from `peerd --join` on a new host to its
#                     node idle in sinfo on the controller (median of RUNS)
#   commit_leader     wall time of `peerctl config set` on the leader of 3
#                     voters: the write is answered once it is committed
#                     (on disk on a majority) and applied there (median,
#                     p99 of WRITES); includes starting peerctl (see
#                     status_latency in onehost.sh for that overhead)
#   commit_follower   the same from a follower (forwarded to the leader)
#
#   PEERD=_build/werror/peerd PEERCTL=_build/werror/peerctl tests/bench/multihost.sh
set -u
. "$(dirname "$0")/../integration/lib.sh"
RUNS=${RUNS:-5}
WRITES=${WRITES:-100}
th_trap
th_setup 4 >/dev/null 2>&1 || { echo "cannot set up test hosts" >&2; exit 1; }

now() { date +%s.%N; }
stats() { # "median X p99 Y max Z (n=N)" of the numbers on stdin
    sort -n | awk '{ v[NR] = $1 } END {
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        p = v[int(NR * 0.99) > 0 ? int(NR * 0.99) : 1]
        printf "median %.3f p99 %.3f max %.3f (n=%d)\n", m, p, v[NR], NR }'
}

th_peerd_start 1 --bootstrap --cluster-name bench >/dev/null
it_wait_healthy 1 60 || { echo "h1 not healthy" >&2; exit 1; }
token=$(th_peerctl 1 token create --uses 100)
idle() { [ "$(th_run 1 sinfo -h -n "$1" -o %t 2>/dev/null)" = idle ]; }
h4_gone() { [ -z "$(th_run 1 sinfo -h -n h4 -o %t 2>/dev/null)" ]; }

times=()
for r in $(seq 1 "$RUNS"); do
    rm -rf "$(th_data 4)"
    t0=$(now)
    it_join 4 "$token"
    th_wait_for 120 idle h4 || { echo "run $r: h4 not idle" >&2; exit 1; }
    t=$(echo "$(now) - $t0" | bc)
    times+=("$t")
    echo "run $r: join -> node idle in $t s"
    pid=$(th_peerd_pid 4)
    th_kill 4 TERM
    th_wait_gone "$pid" 40
    th_wait_for 30 h4_gone
done
printf 'join_to_idle_seconds: '
printf '%s\n' "${times[@]}" | stats

it_join 2 "$token"
it_join 3 "$token"
voters3() { [ "$(it_json 1 '.raft.voters | length')" = 3 ]; }
th_wait_for 60 voters3 || { echo "no 3 voters" >&2; exit 1; }
leader=$(it_json 1 .raft.leader)
echo "3 voters; leader is member $leader"

lat() { # host -> prints ms per write
    local k=$1 i t0
    for i in $(seq 1 "$WRITES"); do
        t0=$(now)
        th_peerctl "$k" config set description "w$i" >/dev/null || echo "write $i failed" >&2
        echo "($(now) - $t0) * 1000" | bc
    done
}
lk=$(th_peerctl 1 members --json | jq -r ".[] | select(.id == $leader) | .name" | tr -d h)
fk=$(th_peerctl 1 members --json | jq -r ".[] | select(.id != $leader and .state == \"active\") | .name" | head -1 | tr -d h)
printf 'commit_leader_ms (h%s): ' "$lk"
lat "$lk" | stats
printf 'commit_follower_ms (h%s): ' "$fk"
lat "$fk" | stats
