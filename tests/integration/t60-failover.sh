#!/bin/bash
# t60-failover - the controller moves when its host fails, with no shared
# state dir: kill -9 of the controller host's peer, SIGSTOP past the
# lease, the controller cut off the network, 10 % loss and 100 ms delay
# for a minute, and a planned `peerctl transfer`.  Queued and running
# jobs survive, job ids stay unique, and at no sampled instant do two
# hosts run slurmctld.
. "$(dirname "$0")/lib.sh"
th_trap
th_setup 3 || t_bail "cannot set up the test hosts"

# ctl_procs K: pids of slurmctld processes on hK
ctl_procs() {
    local p
    for p in $(ip netns pids "$(th_ns "$1")"); do
        [ "$(cat "/proc/$p/comm" 2>/dev/null)" = slurmctld ] && printf '%s ' "$p"
    done
}
# no_ctl K: hK runs no slurmctld
no_ctl() { [ -z "$(ctl_procs "$1")" ]; }
# ctl_hosts: the hosts that run slurmctld now, e.g. "h2 "
ctl_hosts() {
    local k
    for k in 1 2 3; do
        [ -n "$(ctl_procs "$k")" ] && printf 'h%s ' "$k"
    done
}
controller() { it_controller "$1"; }
# answers K: sinfo on hK gets an answer
answers() { th_run "$1" sinfo -h >/dev/null 2>&1; }
# moved K OLD: hK sees a controller other than OLD, and sinfo answers there
moved() {
    local c
    c=$(controller "$1")
    [ "$c" != "$2" ] && [ "$c" != "-" ] && [ "$c" != null ] && answers "$1"
}
# watch_ctl SECONDS FILE: sample ctl_hosts every 0.1 s, one line per sample
watch_ctl() {
    local end=$((SECONDS + $1))
    while [ "$SECONDS" -lt "$end" ]; do
        ctl_hosts
        echo
        sleep 0.1
    done > "$2"
}
# at_most_one FILE: no sample shows two hosts
at_most_one() { ! grep -q 'h[0-9] h[0-9]' "$1"; }
in_sync() { it_standbys_in_sync "$1"; }
job_state() {
    th_run "$1" scontrol show job "$2" 2>/dev/null |
        sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p'
}
job_is() { [ "$(job_state "$1" "$2")" = "$3" ]; }
host_of() { printf '%s\n' "${1#h}"; }

it_three_hosts fo || t_bail "cannot form the three-host cluster (see above)"
t_is "h1 is the controller" "$(controller 1)" h1
t_is "status says the cluster can fail over" \
    "$(it_json 1 .placement.can_fail_over)" true
t_ok "both standbys hold the controller's state" th_wait_for 20 in_sync 1
t_is "slurm.conf names every voter and the shared address" \
    "$(th_run 2 grep ^SlurmctldHost= /etc/slurm/slurm.conf)" \
    "SlurmctldHost=h1,h2,h3(peerd-ctl)"

# --- 1. kill -9 of the controller host's peer -----------------------------
jA=$(th_run 1 sbatch -p main -o /dev/null -w h3 --exclusive --parsable --wrap 'sleep 12')
th_wait_for 20 job_is 1 "$jA" RUNNING || t_bail "job A did not start"
jB=$(th_run 1 sbatch -p main -o /dev/null -w h3 --exclusive --parsable --wrap 'true')
th_wait_for 10 job_is 1 "$jB" PENDING || t_bail "job B is not pending"
# slurmctld saves state up to a few seconds late: let it reach the standbys
sleep 6
t_ok "the standbys hold the state with both jobs" th_wait_for 20 in_sync 1
th_run 2 touch /var/lib/slurm/slurmctld/private-h2
t_fails "every state dir is private: h3 does not see a file put in h2's" \
    th_run 3 test -e /var/lib/slurm/slurmctld/private-h2
watch_ctl 15 "$TH_ROOT/watch-kill" &
watcher=$!
th_host_signal 1 KILL
t_ok "a new controller answers sinfo on h2 after the kill" th_wait_for 20 moved 2 h1
new=$(controller 2)
t_diag "new controller: $new"
t_ok "srun works on the surviving hosts" th_run 2 srun -N1 -w h2 true
t_ok "job A (running on h3 during the move) completes" \
    th_wait_for 30 job_is 2 "$jA" COMPLETED
t_ok "job B (queued before the kill) runs and completes" \
    th_wait_for 30 job_is 2 "$jB" COMPLETED
jC=$(th_run 2 sbatch -p main -o /dev/null -w h2 --parsable --wrap 'true')
t_ok "a job after the move gets a new id ($jC, before: $jA $jB)" \
    test "$jC" -gt "$jB"
wait "$watcher"
t_ok "no sample showed two hosts running slurmctld" at_most_one "$TH_ROOT/watch-kill"
th_peerd_start 1 >/dev/null
t_ok "h1 comes back as a peer" it_wait_healthy 1 60
t_is "h1 does not run slurmctld (placed elsewhere)" "$(ctl_procs 1)" ""
t_ok "all nodes idle again" th_wait_for 60 it_nodes_are 2 "h1 idle h2 idle h3 idle "
th_wait_for 30 in_sync "$(host_of "$new")" || t_diag "standbys not in sync yet"

# --- 2. SIGSTOP of the controller host's peer past its lease --------------
old=$(controller 1)
k=$(host_of "$old")
other=$((k % 3 + 1))
watch_ctl 20 "$TH_ROOT/watch-stop" &
watcher=$!
th_kill "$k" STOP
t_ok "a stopped peer's slurmctld is killed when its lease ends" \
    th_wait_for 10 no_ctl "$k"
t_ok "another host takes over while $old's peer is stopped" \
    th_wait_for 20 moved "$other" "$old"
sleep 2
th_kill "$k" CONT
sleep 5
t_is "after SIGCONT $old runs no slurmctld (no new placement for it)" \
    "$(ctl_procs "$k")" ""
wait "$watcher"
t_ok "no sample showed two hosts running slurmctld" at_most_one "$TH_ROOT/watch-stop"
grep -q "lease ended" "$(th_dir "$k")/log/peerd.out" &&
    t_ok "the fence logged why it killed slurmctld" true ||
    t_ok "the fence logged why it killed slurmctld" false
t_ok "one controller answers on every host" \
    th_wait_for 20 sh -c "[ \"\$(echo '$(ctl_hosts)' | wc -w)\" = 1 ]"

# --- 3. the controller cut off the network (minority) ---------------------
th_wait_for 20 in_sync "$(host_of "$(controller "$other")")" || true
old=$(controller "$other")
k=$(host_of "$old")
other=$((k % 3 + 1))
th_cut "$k"
t_ok "the cut-off controller stops its slurmctld" \
    th_wait_for 10 no_ctl "$k"
t_ok "the majority places a new controller that answers" \
    th_wait_for 20 moved "$other" "$old"
th_heal "$k"
one_ctl() { [ "$(ctl_hosts | wc -w)" = 1 ]; }
t_ok "after the heal: one controller" th_wait_for 20 one_ctl
sleep 3
t_ok "and still one a few seconds later" one_ctl
t_ok "all three nodes idle again" th_wait_for 60 it_nodes_are "$other" "h1 idle h2 idle h3 idle "

# --- 4. 10 % loss and 100 ms delay on every host for a minute -------------
dead_seen() { cat "$(th_dir 1)"/log/peerd.out* "$(th_dir 2)"/log/peerd.out* \
    "$(th_dir 3)"/log/peerd.out* 2>/dev/null | grep -c "SWIM: member .* is dead"; }
# let SWIM settle after the heal: a member it still holds dead refutes
all_live() {
    [ "$(th_peerctl "$1" members --json | jq '[.[] | select(.liveness != "alive")] | length')" = 0 ]
}
th_wait_for 30 all_live "$other" || t_diag "SWIM still holds a member not alive"

dead0=$(dead_seen)
term0=$(it_json "$other" .placement.term)
ctl0=$(controller "$other")
for k in 1 2 3; do
    t_ok "h$k sends with 100 ms delay and 10 % loss" th_netem "$k" delay 100ms loss 10%
done
sleep "${T60_NETEM_SECONDS:-60}"
for k in 1 2 3; do th_netem "$k"; done
t_is "no failover under loss and delay (controller and term unchanged)" \
    "$(controller "$other") $(it_json "$other" .placement.term)" "$ctl0 $term0"
t_is "no host's node went down" "$(it_nodes "$other")" "h1 idle h2 idle h3 idle "
t_is "SWIM declared no host dead under loss and delay" "$(dead_seen)" "$dead0"

# --- 5. a compute host freezes: SWIM finds it dead, Slurm sets it down -----
ctl=$(controller 1)
k=$(host_of "$ctl")
f=$((k % 3 + 1))
th_host_signal "$f" STOP
node_down() { th_run "$k" sinfo -h -n "h$f" -o '%t %E' | grep -q '^down.*peerd: host not responding'; }
t_ok "h$f frozen: its node is set down by peerd (SWIM)" th_wait_for 30 node_down
t_diag "$(th_run "$k" sinfo -h -n "h$f" -o '%t %E')"
t_is "h$f is dead in the controller's member list" \
    "$(th_peerctl "$k" members --json | jq -r ".[] | select(.name == \"h$f\") | .liveness")" dead
th_host_signal "$f" CONT
t_ok "h$f thawed: its node is back" th_wait_for 60 it_nodes_are "$k" "h1 idle h2 idle h3 idle "
t_is "the controller did not move" "$(controller "$k")" "$ctl"

# --- 6. a planned move: peerctl transfer -----------------------------------
old=$(controller 1)
k=$(host_of "$old")
to=h$((k % 3 + 1))
jD=$(th_run 1 sbatch -p main -o /dev/null -w "$to" --parsable --wrap 'sleep 8')
th_wait_for 20 job_is 1 "$jD" RUNNING || t_diag "job D not running"
t_ok "peerctl transfer $to moves the controller" th_peerctl 1 transfer "$to"
t_is "the controller is $to" "$(controller 1)" "$to"
t_ok "job D (running during the transfer) completes" \
    th_wait_for 30 job_is 1 "$jD" COMPLETED
jE=$(th_run 1 sbatch -p main -o /dev/null --parsable --wrap 'true')
t_ok "job ids stay unique after the transfer ($jE > $jD)" test "$jE" -gt "$jD"
t_fails "peerctl transfer to the controller itself is refused" \
    th_peerctl 1 transfer "$to"
t_done
