#!/bin/bash
# t70-mini - the mini tier: MariaDB + slurmdbd run by peerd's supervisor,
# jobs in sacct with their states and exit codes, the cluster in sacctmgr
# with its control host and port; then a running micro cluster switched
# to mini with `peerctl config set tier mini` keeps its running job, and
# the jobs after the switch are accounted.
. "$(dirname "$0")/lib.sh"
th_trap
th_setup 2 || t_bail "cannot set up the test hosts"

# it_sacct K JOBID: "State|ExitCode" of the job's allocation in sacct.
it_sacct() {
    th_run "$1" sacct -n -X -P -j "$2" -o State,ExitCode 2>/dev/null
}
it_job_state_is() {
    [ "$(th_run "$1" squeue -h -j "$2" -o %T 2>/dev/null)" = "$3" ]
}
it_sacct_is() {
    [ "$(it_sacct "$1" "$2")" = "$3" ]
}
# it_acct_ready K CLUSTER: slurmdbd answers and lists the cluster.
it_acct_ready() {
    it_json_is "$1" .accounting.cluster.name "$2"
}

# ---- mini from the start (h1) ---------------------------------------------
th_peerd_start 1 --bootstrap --cluster-name mini1 --tier mini >/dev/null
t_ok "h1: bootstrap --tier mini becomes healthy" it_wait_healthy 1 90
it_field_is "h1 status: tier" 1 .tier mini
it_field_is "h1 status: accounting on, storage here, primary" 1 \
    '"\(.accounting.enabled) \(.accounting.storage) \(.accounting.role)"' \
    "true h1 primary"
it_field_is "h1 status: mariadb and slurmdbd run under the supervisor" 1 \
    '[.services[] | select(.name=="mariadb" or .name=="slurmdbd") | .state] | join(" ")' \
    "running running"
t_ok "h1 status: slurmdbd answers and the cluster is registered" \
    th_wait_for 60 it_acct_ready 1 mini1
conf=$(th_dir 1)/etc-slurm/slurm.conf
t_is "slurm.conf points slurmctld at slurmdbd through peerd-dbd" \
    "$(grep -E '^AccountingStorage(Type|Host|Port)=' "$conf" | tr '\n' ' ')" \
    "AccountingStorageType=accounting_storage/slurmdbd AccountingStorageHost=peerd-dbd AccountingStoragePort=6819 "
t_is "peerd-dbd names the storage host in the hosts file" \
    "$(awk '$2 == "peerd-dbd" { print $1 }' "$(th_dir 1)/hosts")" "$(th_addr 1)"
dbdconf=$(th_data 1)/slurmdbd/slurmdbd.conf
t_is "slurmdbd.conf is 0600 root and holds a 32-digit password" \
    "$(stat -c '%a %U' "$dbdconf") $(grep -cE '^StoragePass=[0-9a-f]{32}$' "$dbdconf")" \
    "600 root 1"
pw=$(sed -n 's/^StoragePass=//p' "$dbdconf")
t_ok "the database password is not stored in clear in peerd's database" \
    bash -c "! grep -qaF '$pw' '$(th_data 1)/peerd.db'"
t_is "MariaDB's datadir belongs to mysql, 0700" \
    "$(stat -c '%a %U' "$(th_data 1)/mariadb")" "700 mysql"

ok=$(th_run 1 sbatch --parsable -o /dev/null --wrap 'exit 0')
bad=$(th_run 1 sbatch --parsable -o /dev/null --wrap 'exit 3')
t_ok "the job that exits 0 finishes" it_wait_job 1 "$ok" 60
t_ok "the job that exits 3 finishes" it_wait_job 1 "$bad" 60
t_ok "sacct: the job that exited 0 is COMPLETED 0:0" \
    th_wait_for 30 it_sacct_is 1 "$ok" "COMPLETED|0:0"
t_ok "sacct: the job that exited 3 is FAILED 3:0" \
    th_wait_for 30 it_sacct_is 1 "$bad" "FAILED|3:0"
t_is "srun's step is accounted too" \
    "$(th_run 1 srun -J stepjob hostname) $(sleep 3; th_run 1 sacct -n -X -P --name stepjob -o State)" \
    "h1 COMPLETED"
t_is "sacctmgr show cluster: the cluster with its control host and port" \
    "$(th_run 1 sacctmgr -n -P show cluster format=cluster,controlhost,controlport)" \
    "mini1|$(th_addr 1)|6817"
t_is "sacctmgr: the account 'users' exists, made by peerd" \
    "$(th_run 1 sacctmgr -n -P show account users format=account,org)" "users|peerd"
want=$(awk -F: '$3 >= 1000 && $3 < 65534 && $7 !~ /nologin|\/false/ { print $1 }' /etc/passwd | sort | tr '\n' ' ')
t_is "sacctmgr: every person of the host has an association to it (${want:-none here})" \
    "$(th_run 1 sacctmgr -n -P show assoc account=users format=user | grep . | sort | tr '\n' ' ')" \
    "$want"
t_ok "h1 is healthy with accounting" it_healthy 1

# ---- h1 restarted: accounting comes back registered with its controller --
th_kill 1 TERM
t_ok "h1: peerd stops (SIGTERM)" th_wait_gone "$(th_peerd_pid 1)" 60
th_peerd_start 1 >/dev/null
t_ok "h1: restarted peer healthy again" it_wait_healthy 1 90
it_homed() {
    it_json_is 1 '"\(.accounting.cluster.control_host):\(.accounting.cluster.control_port)"' \
        "$(th_addr 1):6817"
}
t_ok "h1: the cluster is listed with its control host and port again" \
    th_wait_for 60 it_homed
again=$(th_run 1 sbatch --parsable -o /dev/null --wrap 'exit 5')
t_ok "h1: a job after the restart finishes" it_wait_job 1 "$again" 60
t_ok "h1: ... and is in sacct as FAILED 5:0" \
    th_wait_for 60 it_sacct_is 1 "$again" "FAILED|5:0"
t_is "h1: the jobs from before the restart are still in sacct" \
    "$(it_sacct 1 "$ok")" "COMPLETED|0:0"

# ---- micro switched to mini (h2, a cluster of its own) --------------------
th_peerd_start 2 --bootstrap --cluster-name micro2 >/dev/null
t_ok "h2: micro cluster healthy" it_wait_healthy 2 60
it_field_is "h2 status: accounting off in micro" 2 .accounting.enabled false
long=$(th_run 2 sbatch --parsable -o /dev/null --wrap 'sleep 40')
t_ok "h2: a long job runs before the switch" \
    th_wait_for 30 it_job_state_is 2 "$long" RUNNING
t_ok "peerctl config set tier mini" th_peerctl 2 config set tier mini
it_field_is "h2 status: tier mini" 2 .tier mini
t_ok "h2: accounting comes up (cluster registered)" \
    th_wait_for 90 it_acct_ready 2 micro2
t_ok "h2: healthy after the switch" it_wait_healthy 2 60
t_is "h2: the job from before the switch still runs (same id)" \
    "$(th_run 2 squeue -h -j "$long" -o %T)" RUNNING
after=$(th_run 2 sbatch --parsable -o /dev/null --wrap 'exit 0')
it_wait_job 2 "$after" 60
t_ok "h2: a job after the switch is in sacct, COMPLETED" \
    th_wait_for 30 it_sacct_is 2 "$after" "COMPLETED|0:0"
t_ok "h2: the job from before the switch completes" it_wait_job 2 "$long" 60
t_ok "h2: ... and reaches sacct as COMPLETED" \
    th_wait_for 30 it_sacct_is 2 "$long" "COMPLETED|0:0"

t_done
