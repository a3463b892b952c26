#!/bin/bash
# t40-join - many hosts: bootstrap h1, join h2 and h3 with a token, run
# jobs across them, agree on members and config, a host leaves, a fourth
# host joins while jobs run
. "$(dirname "$0")/lib.sh"
th_trap
th_setup 4 || t_bail "cannot set up the test hosts"

th_peerd_start 1 --bootstrap --cluster-name grid >/dev/null
it_wait_healthy 1 60 || t_bail "h1 did not become healthy"

token=$(th_peerctl 1 token create --ttl 1h --uses 3)
t_ok "token create prints only a pdt1 token on stdout" \
    grep -qE '^pdt1\.[0-9a-f]{16}\.[0-9a-f]{32}\.[0-9a-f]{64}$' <<<"$token"

it_join 2 "$token"
it_join 3 "$token"
t_ok "h2 joins and becomes healthy" it_wait_healthy 2 60
t_ok "h3 joins and becomes healthy" it_wait_healthy 3 60
t_ok "all three nodes idle in sinfo on h1" \
    th_wait_for 60 it_nodes_are 1 "h1 idle h2 idle h3 idle "
for k in 2 3; do
    t_is "sinfo on h$k shows the same three idle nodes" "$(it_nodes $k)" \
        "h1 idle h2 idle h3 idle "
done
t_is "a joined node has its host's CPUs and memory" \
    "$(th_run 1 sinfo -h -n h2 -o '%c %m')" \
    "$(it_json 2 '"\(.host.cpus) \(.host.memory_mb)"')"
t_is "srun -N3 runs on all three hosts" \
    "$(th_run 1 srun -N3 hostname | sort | tr '\n' ' ')" "h1 h2 h3 "
t_is "srun from a joined host works too" \
    "$(th_run 3 srun -N1 -w h2 hostname)" "h2"

t_is "h2 is a compute host, h1 the controller" \
    "$(it_json 2 '"\(.role) \(.controller)"')" "compute h1"
voters3() { [ "$(it_json 1 '.raft.voters | length')" = 3 ]; }
t_ok "Raft: the three hosts become voters" th_wait_for 30 voters3
same_members() {
    local a
    a=$(it_members 1)
    [ "$(jq length <<<"$a")" = "$1" ] &&
        [ "$(it_members 2)" = "$a" ] && [ "$(it_members 3)" = "$a" ]
}
t_ok "members --json agrees on every host" th_wait_for 20 same_members 3
t_is "members --json: names, states, voters" \
    "$(th_peerctl 2 members --json | jq -r '[.[] | "\(.name):\(.state):\(.voter)"] | join(" ")')" \
    "h1:active:true h2:active:true h3:active:true"
same_hashes() {
    [ "$(th_peerctl 1 members --json | jq -r '[.[].config_hash] | unique | length')" = 1 ] &&
        [ "$(th_peerctl 1 members --json | jq -r '.[0].config_hash')" = \
            "$(sha256sum <"$(th_dir 3)/etc-slurm/slurm.conf" | cut -d' ' -f1)" ]
}
t_ok "every host reports the same slurm.conf hash, that of the file" \
    th_wait_for 20 same_hashes
t_is "every host holds the same munge key" \
    "$(th_peerctl 1 members --json | jq -r '[.[].munge_key_hash] | unique | length')" 1

# a config change made on a follower is committed and seen everywhere
t_ok "config set on h3 (a follower) is committed" \
    th_peerctl 3 config set slurm.SchedulerParameters bf_interval=7
# committed = on a majority; the other hosts apply it at the next heartbeat
sees_change() { [ "$(th_peerctl "$1" config get slurm.SchedulerParameters 2>/dev/null)" = bf_interval=7 ]; }
for k in 1 2; do
    t_ok "config get on h$k sees the change" th_wait_for 5 sees_change $k
done
has_line() { grep -q '^SchedulerParameters=bf_interval=7$' "$(th_dir "$1")/etc-slurm/slurm.conf"; }
t_ok "slurm.conf on h2 carries it" th_wait_for 10 has_line 2
ctl_took_it() { th_run 1 scontrol show config | grep -q 'bf_interval=7'; }
t_ok "slurmctld was reconfigured with it" th_wait_for 20 ctl_took_it
t_fails "a key that may not be set is refused" \
    th_peerctl 2 config set cluster_name other
t_fails "a value slurm.conf cannot take is refused" \
    th_peerctl 2 config set slurm.SchedulerParameters "a b"
t_fails "voters must be 1, 3 or 5" th_peerctl 2 config set voters 4

# a fourth host joins while jobs run on the others
out=$(th_dir 1)/log/long.out
job=$(th_run 1 sbatch --parsable -N2 -w h1,h2 -o "$out" \
    --wrap 'srun -N2 sleep 40; echo finished')
running() { [ "$(th_run 1 squeue -h -j "$job" -o %t)" = R ]; }
t_ok "a two-node job runs" th_wait_for 30 running
started=$(date +%s)
it_join 4 "$token"
h4_idle() { [ "$(th_run 1 sinfo -h -n h4 -o %t)" = idle ]; }
t_ok "h4 joins while the job runs and its node becomes idle" \
    th_wait_for 30 h4_idle
t_diag "h4 idle $(($(date +%s) - started)) s after its peer started"
t_is "the running job was not disturbed: still running on h1 and h2" \
    "$(th_run 1 squeue -h -j "$job" -o '%t %N')" "R h[1-2]"
t_ok "the job completes" it_wait_job 1 "$job" 90
t_is "the job finished normally" \
    "$(th_run 1 scontrol show job "$job" | grep -o 'JobState=[A-Z]*') $(cat "$out")" \
    "JobState=COMPLETED finished"

# SIGTERM on h3: its node leaves Slurm, the member leaves the cluster
pid=$(th_peerd_pid 3)
th_kill 3 TERM
t_ok "SIGTERM on h3: its peer exits" th_wait_gone "$pid" 40
t_ok "h3's node leaves sinfo" th_wait_for 30 it_nodes_are 1 "h1 idle h2 idle h4 idle "
h3_left() { [ "$(th_peerctl 1 members --json | jq -r '.[] | select(.name == "h3") | .state')" = left ]; }
t_ok "members shows h3 as left" th_wait_for 20 h3_left
t_ok "nothing of h3 is left running" it_no_procs 3
left_refused() {
    th_run 3 timeout 30 "$PEERD" --data-dir "$(th_data 3)" >"$(th_dir 3)/log/again.out" 2>&1
    [ $? = 78 ] && grep -q "left cluster" "$(th_dir 3)/log/again.out"
}
t_ok "h3's peer refuses to start again as a member that left (exit 78)" left_refused
t_ok "... and starts no daemon" it_no_procs 3
t_is "the others go on: srun -N3 on h1, h2, h4" \
    "$(th_run 2 srun -N3 hostname | sort | tr '\n' ' ')" "h1 h2 h4 "
t_ok "h1 is healthy" it_healthy 1
t_done
