#!/bin/bash
# accounting.sh - accounting figures for peerd, printed, not asserted
#
#   to_sacct   seconds from `peerd --bootstrap --tier mini` (a fresh data
#              dir, one test host) to the first job visible in `sacct`:
#              the job is submitted as soon as sbatch is accepted, sacct
#              polled every 0.2 s (RUNS_MINI times, a new host each time)
#   resume     seconds from SIGKILL of every process of the storage host
#              (multi, three test hosts) to the first new job visible in
#              `sacct`; a job is submitted every 0.5 s from the moment of
#              the kill, each polled for; the figure is the end time of the
#              first one that shows (RUNS_MULTI times, a new cluster each
#              time: the killed host's MariaDB would be rebuilt otherwise)
# Also: mariadbd's and slurmdbd's RSS on the storage host.
#
#   PEERD=_build/werror/peerd PEERCTL=_build/werror/peerctl tests/bench/accounting.sh
set -u
. "$(dirname "$0")/../integration/lib.sh"
RUNS_MINI=${RUNS_MINI:-5}
RUNS_MULTI=${RUNS_MULTI:-3}
th_trap

now() { date +%s.%N; }
stats() { # "median X max Y min Z (n=N)" of the numbers on stdin
    sort -n | awk '{ v[NR] = $1 } END {
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "median %.2f max %.2f min %.2f (n=%d)\n", m, v[NR], v[1], NR }'
}
in_sacct() { # K JOBID
    [ -n "$(th_run "$1" sacct -n -X -P -j "$2" -o JobID 2>/dev/null)" ]
}
rss_mb() { # PID
    awk '/^VmRSS/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status" 2>/dev/null
}

mini=()
for r in $(seq 1 "$RUNS_MINI"); do
    th_setup 1 >/dev/null 2>&1 || { echo "cannot set up a test host" >&2; exit 1; }
    t0=$(now)
    th_peerd_start 1 --bootstrap --cluster-name bench --tier mini >/dev/null
    until j=$(th_run 1 sbatch --parsable -o /dev/null --wrap true 2>/dev/null); do
        sleep 0.2
    done
    th_wait_for 120 in_sacct 1 "$j" || { echo "run $r: job $j never in sacct" >&2; exit 1; }
    t1=$(now)
    mini+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')")
    echo "mini run $r: ${mini[-1]} s" >&2
    if [ "$r" = "$RUNS_MINI" ]; then
        db=$(it_svc 1 mariadb pid)
        dbd=$(it_svc 1 slurmdbd pid)
        echo "mariadbd RSS $(rss_mb "$db") MiB, slurmdbd RSS $(rss_mb "$dbd") MiB (mini, idle)"
    fi
    th_teardown >/dev/null 2>&1
done
echo "bootstrap --tier mini -> first job in sacct: $(printf '%s\n' "${mini[@]}" | stats)"

multi=()
for r in $(seq 1 "$RUNS_MULTI"); do
    th_setup 3 >/dev/null 2>&1 || { echo "cannot set up test hosts" >&2; exit 1; }
    it_three_hosts bench >/dev/null || exit 1
    th_peerctl 1 config set tier multi >/dev/null
    th_wait_for 120 it_json_is 1 .accounting.cluster.name bench || { echo "run $r: no accounting" >&2; exit 1; }
    storage=$(it_json 1 .accounting.storage)
    replica=$(it_json 1 .accounting.replica)
    th_wait_for 120 it_json_is "${replica#h}" .accounting.replication.sql_running true ||
        { echo "run $r: no replica" >&2; exit 1; }
    done_f=$TH_ROOT/resumed
    rm -f "$done_f"
    t0=$(now)
    th_host_signal "${storage#h}" KILL
    pids=()
    while [ ! -s "$done_f" ]; do
        (
            j=$(th_run 1 sbatch --parsable -o /dev/null -w h1 --wrap true 2>/dev/null) || exit 0
            th_wait_for 120 in_sacct 1 "$j" && now >> "$done_f"
        ) &
        pids+=($!)
        sleep 0.5
        awk -v a="$t0" -v b="$(now)" 'BEGIN { exit !(b - a > 180) }' && break
    done
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    [ -s "$done_f" ] || { echo "run $r: accounting did not resume" >&2; exit 1; }
    t1=$(sort -n "$done_f" | head -1)
    multi+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')")
    echo "multi run $r: ${multi[-1]} s (storage was $storage, replica $replica)" >&2
    th_teardown >/dev/null 2>&1
done
echo "storage host killed -> a new job in sacct: $(printf '%s\n' "${multi[@]}" | stats)"
