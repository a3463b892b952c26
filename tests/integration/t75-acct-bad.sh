#!/bin/bash
# t75-acct-bad - accounting meets bad input; the controller keeps
# scheduling throughout and the records arrive once the fault is gone:
#   h1  MariaDB's port taken by another process when mini is switched on;
#       then MariaDB's password for slurmdbd changed behind peerd's back
#       (the store's password is put back); then the password in peerd's
#       own database damaged (clear status, no crash)
#   h2  the disk under the database (a file system of its own, mounted at
#       DATA/mariadb) full, then freed
. "$(dirname "$0")/lib.sh"
th_trap
th_setup 2 || t_bail "cannot set up the test hosts"

it_sacct_is() {
    [ "$(th_run "$1" sacct -n -X -P -j "$2" -o State,ExitCode 2>/dev/null)" = "$3" ]
}
# it_acct_error_has K TEXT: status says accounting fails, with TEXT.
it_acct_error_has() {
    it_json "$1" '.accounting.error // ""' | grep -qF -- "$2"
}
it_degraded() {
    th_peerctl "$1" status >/dev/null 2>&1
    [ $? = 1 ]
}
# it_job_runs K: a batch job submitted now (or as soon as the controller
# takes it, within 60 s) completes.
it_submit() {
    th_run "$1" sbatch --parsable -o /dev/null --wrap 'exit 0' 2>/dev/null
}
it_job_runs() {
    local j i
    for (( i = 0; i < 60; i++ )); do
        j=$(it_submit "$1") && break
        sleep 1
    done
    [ -n "$j" ] || return 1
    it_wait_job "$1" "$j" 60 || return 1
    echo "$j"
}

# ---- h1: MariaDB's port taken ------------------------------------------------
th_peerd_start 1 --bootstrap --cluster-name bad1 >/dev/null
t_ok "h1: micro cluster healthy" it_wait_healthy 1 60
squatter=$(th_bg 1 "$(th_dir 1)/log/squatter.out" perl -MIO::Socket::INET -e \
    '$s = IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => 3307,
        Listen => 5, ReuseAddr => 1) or die "listen: $!"; sleep 3600')
it_port_taken() {
    [ -n "$(th_run 1 ss -Hltn 'sport = :3307')" ]
}
t_ok "h1: something else listens on 127.0.0.1:3307" th_wait_for 10 it_port_taken
t_ok "h1: peerctl config set tier mini" th_peerctl 1 config set tier mini
t_ok "h1: status names the taken port (MariaDB's own words)" \
    th_wait_for 60 it_acct_error_has 1 "another server running on port: 3307"
t_ok "h1: peerctl status exits 1 (degraded)" it_degraded 1
th_peerctl 1 status | grep -E '^ +ERROR' >&2
j1=$(it_job_runs 1)
t_ok "h1: the controller keeps scheduling (job $j1 completed)" test -n "$j1"
kill "$squatter"
t_ok "h1: once the port is free, accounting comes up (cluster registered)" \
    th_wait_for 120 it_json_is 1 .accounting.cluster.name bad1
t_ok "h1: healthy again" it_wait_healthy 1 60
j2=$(it_job_runs 1)
t_ok "h1: a job after that is in sacct" th_wait_for 30 it_sacct_is 1 "$j2" "COMPLETED|0:0"

# ---- h1: the database password changed behind peerd's back -------------------
sock=$(th_data 1)/mariadb/db.sock
t_ok "h1: MariaDB's password for slurm changed by hand" \
    th_run 1 mariadb --no-defaults --socket="$sock" -u root -e \
    "ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '0123456789abcdef0000'"
kill -KILL "$(it_svc 1 slurmdbd pid)"
it_dbd_refused() {
    grep -q "Access denied for user 'slurm'" "$(th_data 1)/log/slurmdbd.log"
}
t_ok "h1: slurmdbd's log shows MariaDB refusing its password" \
    th_wait_for 60 it_dbd_refused
j3=$(it_job_runs 1)
t_ok "h1: the controller keeps scheduling (job $j3 completed)" test -n "$j3"
it_repaired() {
    [ "$(grep -c 'database slurm_acct_db and its user are in place' \
        "$(th_dir 1)/log/peerd.out")" -ge 2 ]
}
t_ok "h1: peerd puts the store's password back (database set up again)" \
    th_wait_for 90 it_repaired
t_ok "h1: accounting answers again" \
    th_wait_for 90 it_json_is 1 '.accounting.error // "none"' none
t_ok "h1: the job run meanwhile reaches sacct" \
    th_wait_for 60 it_sacct_is 1 "$j3" "COMPLETED|0:0"

# ---- h1: the password in peerd's database damaged ----------------------------
th_kill 1 TERM
t_ok "h1: peerd stopped (SIGTERM)" th_wait_gone "$(th_peerd_pid 1)" 30
t_ok "h1: the password's ciphertext damaged in peerd.db" \
    sqlite3 "$(th_data 1)/peerd.db" \
    "UPDATE secret SET value = zeroblob(72) WHERE name = 'db_password'"
th_peerd_start 1 >/dev/null
t_ok "h1: peerd starts anyway and answers" th_wait_for 60 it_json_is 1 .cluster bad1
t_ok "h1: status says the stored password cannot be read" \
    th_wait_for 60 it_acct_error_has 1 "password in the store cannot be read"
t_ok "h1: peerctl status exits 1 (degraded)" it_degraded 1
j4=$(it_job_runs 1)
t_ok "h1: the controller keeps scheduling (job $j4 completed)" test -n "$j4"

# ---- h2: the disk under the database full ------------------------------------
img=$(th_dir 2)/mariadb.img
truncate -s 400M "$img" && mkfs.ext4 -q -m 0 "$img"
mkdir -p "$(th_data 2)/mariadb"
t_ok "h2: a 400 MB file system of its own at DATA/mariadb" \
    nsenter -t "$(th_anchor 2)" -m -- mount -o loop "$img" "$(th_data 2)/mariadb"
th_peerd_start 2 --bootstrap --cluster-name bad2 --tier mini >/dev/null
t_ok "h2: mini comes up with the datadir on that file system" \
    th_wait_for 120 it_json_is 2 .accounting.cluster.name bad2
t_ok "h2: healthy" it_wait_healthy 2 60
t_ok "h2: MariaDB was installed in place on the mount point" \
    th_run 2 test -d "$(th_data 2)/mariadb/mysql"
free=$(th_run 2 df -B1 --output=avail "$(th_data 2)/mariadb" | tail -1)
t_ok "h2: the disk filled up (1 MiB left)" \
    th_run 2 fallocate -l "$((free - 1048576))" "$(th_data 2)/mariadb/fill"
t_ok "h2: status says the disk under the database is full" \
    th_wait_for 30 it_acct_error_has 2 "is full"
t_ok "h2: peerctl status exits 1 (degraded)" it_degraded 2
j5=$(it_job_runs 2)
t_ok "h2: the controller keeps scheduling (job $j5 completed)" test -n "$j5"
th_run 2 rm -f "$(th_data 2)/mariadb/fill"
t_ok "h2: space freed: status clear again" \
    th_wait_for 60 it_json_is 2 '.accounting.error // "none"' none
t_ok "h2: the job run while the disk was full reaches sacct" \
    th_wait_for 120 it_sacct_is 2 "$j5" "COMPLETED|0:0"

t_done
