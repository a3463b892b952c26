#!/bin/bash
# t20-supervise - the supervisor restarts killed daemons; a peer stops
# cleanly and resumes the same cluster; kill -9 of the peer takes its
# children with it
. "$(dirname "$0")/lib.sh"
th_trap
th_setup 1 || t_bail "cannot set up the test host"

th_peerd_start 1 --bootstrap --cluster-name restarts >/dev/null
it_wait_healthy 1 60 || t_bail "peer did not become healthy"
id=$(it_json 1 .cluster_id)
keyhash=$(it_json 1 .munge_key_hash)

# kill_daemon NAME: SIGKILL the daemon, wait for a new pid and health.
restarted() { # NAME OLDPID
    local pid
    pid=$(it_svc 1 "$1" pid)
    [ -n "$pid" ] && [ "$pid" != 0 ] && [ "$pid" != "$2" ] &&
        [ "$(it_svc 1 "$1" state)" = running ] && it_healthy 1
}
for d in slurmctld munged slurmd; do
    old=$(it_svc 1 "$d" pid)
    kill -9 "$old"
    t_ok "$d: kill -9 -> restarted by the supervisor, healthy again" \
        th_wait_for 60 restarted "$d" "$old"
    t_is "$d: status counts one restart" "$(it_svc 1 "$d" restarts)" 1
    t_is "$d: status names the cause" "$(it_svc 1 "$d" last_error)" \
        "killed by signal 9 (Killed)"
    out=$(th_dir 1)/log/after-$d.out
    job=$(th_run 1 sbatch --parsable -o "$out" --wrap "echo after-$d")
    th_wait_for 60 it_job_gone 1 "$job"
    t_is "$d: a job submitted after the restart completes" \
        "$(cat "$out" 2>/dev/null)" "after-$d"
done

# a job that is still running when the peer stops
long=$(th_run 1 sbatch --parsable -o /dev/null --wrap 'sleep 300')
job_running() { [ "$(th_run 1 squeue -h -j "$long" -o %t)" = R ]; }
t_ok "a long job runs before the peer stops" th_wait_for 30 job_running
pid=$(th_peerd_pid 1)
th_kill 1 TERM
t_ok "SIGTERM: peerd exits" th_wait_gone "$pid" 60
t_is "SIGTERM: exit status 0" "$(th_exit_status "$pid")" 0
t_ok "SIGTERM: no Slurm, munge or job process of the host is left" it_no_procs 1
t_fails "SIGTERM: control socket removed" test -e "$(th_data 1)/peerd.ctl"

th_peerd_start 1 >/dev/null
t_ok "restart without --bootstrap: healthy again" it_wait_healthy 1 60
it_field_is "restart: same cluster name" 1 .cluster restarts
it_field_is "restart: same cluster id" 1 .cluster_id "$id"
it_field_is "restart: same munge key (hash)" 1 .munge_key_hash "$keyhash"
t_is "restart: jobs run" "$(th_run 1 srun hostname)" h1

pid=$(th_peerd_pid 1)
children=$(it_json 1 '[.services[] | select(.pid > 0) | .pid] | join(" ")')
th_kill 1 KILL
th_wait_gone "$pid" 10
gone() { local p; for p in $children; do kill -0 "$p" 2>/dev/null && return 1; done; return 0; }
t_ok "kill -9 of peerd: no daemon it started outlives it" th_wait_for 10 gone
t_ok "kill -9 of peerd: nothing left on the host" th_wait_for 10 it_no_procs 1

th_peerd_start 1 >/dev/null
t_ok "start after kill -9: healthy (stale socket and pid file handled)" \
    it_wait_healthy 1 60
it_field_is "start after kill -9: same cluster id" 1 .cluster_id "$id"
t_done
