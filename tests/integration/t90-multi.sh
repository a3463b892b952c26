#!/bin/bash
# t90-multi - the multi tier on three hosts: a running cluster switched
# to multi places accounting on a host other than the controller's, with
# a MariaDB replica on the third; SIGKILL of every process of the storage
# host -> the replica is promoted, slurmdbd starts there, peerd-dbd
# follows, and every job that finished before and after the kill is in
# sacct exactly once (also a job that ran across the kill).
. "$(dirname "$0")/lib.sh"
th_trap
th_setup 3 || t_bail "cannot set up the test hosts"

it_three_hosts multi1 || t_bail "three hosts did not come up"
t_ok "peerctl config set tier multi" th_peerctl 1 config set tier multi
t_ok "accounting comes up (cluster registered)" \
    th_wait_for 120 it_json_is 1 .accounting.cluster.name multi1
ctl=$(it_json 1 .controller)
storage=$(it_json 1 .accounting.storage)
replica=$(it_json 1 .accounting.replica)
t_ok "storage ($storage) is not the controller's host ($ctl)" \
    test -n "$storage" -a "$storage" != "$ctl" -a "$storage" != null
t_ok "a replica host is named, other than the storage host ($replica)" \
    test -n "$replica" -a "$replica" != "$storage" -a "$replica" != null
s=${storage#h}
r=${replica#h}
it_replicating() {
    it_json_is "$1" '"\(.accounting.replication.io_running) \(.accounting.replication.sql_running)"' \
        "true true"
}
t_ok "$replica replicates $storage's MariaDB (both threads run)" \
    th_wait_for 120 it_replicating "$r"
it_field_is "$storage runs mariadb and slurmdbd" "$s" \
    '[.services[] | select(.name=="mariadb" or .name=="slurmdbd") | .state] | join(" ")' \
    "running running"
it_field_is "$replica runs mariadb only" "$r" \
    '[.services[] | select(.name=="mariadb" or .name=="slurmdbd") | .state] | join(" ")' \
    "running stopped"
it_field_is "peerd-dbd names $storage on every host" 1 .accounting.storage_address \
    "$(th_addr "$s")"

it_sacct_is() {
    [ "$(th_run 1 sacct -n -X -P -j "$1" -o State,ExitCode 2>/dev/null)" = "$2" ]
}
# it_jobs_in_db K: the number of jobs in hK's own MariaDB
it_jobs_in_db() {
    th_run "$1" mariadb --no-defaults --socket="$(th_data "$1")/mariadb/db.sock" \
        -u root -N -B -e "SELECT COUNT(*) FROM slurm_acct_db.multi1_job_table" 2>/dev/null
}
it_replica_has() {
    [ "$(it_jobs_in_db "$r")" = "$1" ]
}
a=$(th_run 1 sbatch --parsable -o /dev/null -w h1 --wrap 'exit 0')
b=$(th_run 1 sbatch --parsable -o /dev/null -w h1 --wrap 'exit 2')
t_ok "jobs before the kill finish" it_wait_job 1 "$b" 60
t_ok "sacct: job $a COMPLETED 0:0" th_wait_for 60 it_sacct_is "$a" "COMPLETED|0:0"
t_ok "sacct: job $b FAILED 2:0" th_wait_for 60 it_sacct_is "$b" "FAILED|2:0"
t_ok "the replica holds both jobs" th_wait_for 30 it_replica_has 2
c=$(th_run 1 sbatch --parsable -o /dev/null -w h1 --wrap 'sleep 20')
it_running() {
    [ "$(th_run 1 squeue -h -j "$1" -o %T)" = RUNNING ]
}
t_ok "job $c runs when the storage host is killed" th_wait_for 30 it_running "$c"

th_host_signal "$s" KILL
killed=$(date +%s.%N)
it_storage_moved() {
    local now
    now=$(it_json 1 .accounting.storage)
    [ "$now" != "$storage" ] && [ "$now" != null ]
}
t_ok "the leader moves storage away from the dead host" \
    th_wait_for 60 it_storage_moved
t_is "storage is now on the replica host" "$(it_json 1 .accounting.storage)" "$replica"
t_ok "$replica promoted: slurmdbd runs there" th_wait_for 60 it_json_is "$r" \
    '.services[] | select(.name=="slurmdbd") | .state' running
d=$(th_run 1 sbatch --parsable -o /dev/null -w h1 --wrap 'exit 0')
t_ok "a job after the kill finishes" it_wait_job 1 "$d" 60
t_ok "sacct: the job after the kill is COMPLETED" \
    th_wait_for 90 it_sacct_is "$d" "COMPLETED|0:0"
resumed=$(date +%s.%N)
echo "# storage death -> a new job in sacct: $(awk -v a="$killed" -v b="$resumed" 'BEGIN { printf "%.1f", b - a }') s" >&2
t_ok "job $c that ran across the kill completes" it_wait_job 1 "$c" 60
t_ok "sacct: job $c COMPLETED" th_wait_for 90 it_sacct_is "$c" "COMPLETED|0:0"
t_ok "sacct: jobs from before the kill still there" \
    it_sacct_is "$a" "COMPLETED|0:0"
t_is "every job exactly once in sacct" \
    "$(th_run 1 sacct -n -X -P -o JobID -S 2020-01-01 | sort | uniq -c | awk '{ print $1 }' | sort -u | tr '\n' ' ')" "1 "
t_is "four jobs in sacct" \
    "$(th_run 1 sacct -n -X -P -o JobID -S 2020-01-01 | wc -l)" 4
t_ok "the cluster is still registered with its controller" \
    th_wait_for 30 it_json_is 1 .accounting.cluster.control_port 6817

# a new replica after the failover, and the dead host back
nr=$(it_json 1 .accounting.replica)
t_ok "a new replica is named ($nr), not the new storage host" \
    test -n "$nr" -a "$nr" != null -a "$nr" != "$replica" -a "$nr" != "$storage"
t_ok "$nr replicates $replica (rebuilt from a dump)" \
    th_wait_for 120 it_replicating "${nr#h}"
it_field_is "$nr follows the new storage host" "${nr#h}" \
    .accounting.replication.primary "$(th_addr "$r")"
th_peerd_start "$s" >/dev/null
t_ok "$storage comes back and is healthy" it_wait_healthy "$s" 150 ||
    th_peerctl "$s" status >&2
t_ok "$storage learns where storage is now ($replica)" \
    th_wait_for 60 it_json_is "$s" .accounting.storage "$replica"
t_is "$storage's peerd-dbd names $replica" \
    "$(awk '$2 == "peerd-dbd" { print $1 }' "$(th_dir "$s")/hosts")" "$(th_addr "$r")"
it_field_is "$storage no longer runs mariadb or slurmdbd" "$s" \
    '[.services[] | select(.name=="mariadb" or .name=="slurmdbd") | .state] | join(" ")' \
    "stopped stopped"
t_is "sacct from $storage: still four jobs, once each" \
    "$(th_run "$s" sacct -n -X -P -o JobID -S 2020-01-01 | sort -u | wc -l)" 4

t_done
