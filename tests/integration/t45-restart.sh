#!/bin/bash
# t45-restart - peers of a multi-host cluster restart: a joined host
# after kill -9, the first host (controller, Raft voter) after SIGTERM;
# each comes back as the same member and Slurm runs on all hosts again
. "$(dirname "$0")/lib.sh"
th_trap
th_setup 3 || t_bail "cannot set up the test hosts"

it_three_hosts again || t_bail "cannot form the three-host cluster (see above)"
members=$(it_members 1)

# a joined host crashes and comes back
pid=$(th_peerd_pid 2)
th_kill 2 KILL
th_wait_gone "$pid" 10
t_ok "kill -9 of h2's peer takes its daemons along" th_wait_for 10 it_no_procs 2
th_peerd_start 2 >/dev/null
t_ok "h2's peer restarts from its data dir and is healthy" it_wait_healthy 2 60
t_is "h2 is still a compute member of the same cluster" \
    "$(it_json 2 '"\(.cluster) \(.role)"')" "again compute"
t_ok "h2's node is idle again" th_wait_for 60 it_nodes_are 1 "h1 idle h2 idle h3 idle "
same() { [ "$(it_members 1)" = "$members" ] && [ "$(it_members 2)" = "$members" ]; }
t_ok "the member list is unchanged (no new member for h2)" th_wait_for 20 same

# the first host (controller, a voter, maybe the leader) stops and returns
pid=$(th_peerd_pid 1)
th_kill 1 TERM
t_ok "SIGTERM on h1: its peer exits" th_wait_gone "$pid" 40
leader_elsewhere() {
    local l
    l=$(it_json 2 .raft.leader)
    [ -n "$l" ] && [ "$l" != 0 ] && [ "$l" != 1 ]
}
t_ok "the two other voters elect a leader among themselves" \
    th_wait_for 20 leader_elsewhere
t_ok "a config write commits without h1" \
    th_peerctl 3 config set description "written while h1 was away"
th_peerd_start 1 >/dev/null
t_ok "h1 restarts and is healthy" it_wait_healthy 1 60
caught_up() { [ "$(th_peerctl 1 config get description 2>/dev/null)" = "written while h1 was away" ]; }
t_ok "h1 catches up with the write made while it was away" th_wait_for 20 caught_up
t_ok "all nodes idle again" th_wait_for 60 it_nodes_are 1 "h1 idle h2 idle h3 idle "
t_is "srun -N3 runs on all hosts again" \
    "$(th_run 3 srun -N3 hostname | sort | tr '\n' ' ')" "h1 h2 h3 "
t_done
