/* replica.h - MariaDB replication of the accounting database (multi tier)
 *
 * In the multi tier one host, the primary, runs MariaDB writable with
 * slurmdbd in front of it; another host keeps a replica of slurm_acct_db
 * by MariaDB's own asynchronous GTID replication.  When the primary dies,
 * peerd promotes the replica (replica_promote, then replica_primary_setup
 * and acct_bootstrap_db, then slurmdbd there).  A host that comes back,
 * or a new replica, follows the current primary (replica_follow).
 *
 * A replica is always rebuilt from a dump of the current primary, never
 * reconciled: asynchronous replication can lose the last transactions of
 * a dead primary, so an old primary's data may have diverged, and the
 * dump is the one way to make it equal again whatever it holds.  The
 * rebuild also empties the replica's own binary log (RESET MASTER), so
 * that a diverged history is never served to anyone.
 *
 * Invariants kept here:
 *  - a replica runs with read_only=1 (slurmdbd's user cannot write; root
 *    and the replication thread can), a primary with read_only=0;
 *  - the replication account, REPLICA_USER@'%', has only what a dump and
 *    replication need, and is managed on each server by itself (its
 *    statements are not written to the binary log);
 *  - replication uses GTIDs (MASTER_USE_GTID=slave_pos), so a replica
 *    never depends on binary log file names.
 *
 * Every function is bounded by its timeout, decides success from the
 * output of the commands it runs (not only from their exit status: a
 * thread that does not reap its children may find them reaped by
 * peerd's main loop), and holds no state between calls, so it may run
 * in any thread.  Calls for the same data dir must not overlap: the
 * caller serialises them.  SQL goes through acct_sql (MariaDB's root
 * over the socket); the dump, its load and the status run as children
 * of this module, each in its own process group, killed with their
 * group when their time is up.
 */
#ifndef PEERD_REPLICA_H
#define PEERD_REPLICA_H

#include <stdbool.h>
#include <stddef.h>

#include "node/acct.h"
#include "proto/err.h"

#define REPLICA_USER "peerd_repl"
/* How often the replication thread retries a primary it cannot reach. */
#define REPLICA_CONNECT_RETRY 5
/* The dump while it is made and loaded: DATA/replica-load.sql, 0600. */
#define REPLICA_LOAD_FILE "replica-load.sql"
/* A GTID position: domain-server-sequence, comma-separated per domain. */
#define REPLICA_GTID_MAX 256

/* SHOW SLAVE STATUS and a few variables, parsed. */
struct replica_status {
    bool configured;    /* this server is a replica at all */
    bool io_running;    /* Slave_IO_Running: Yes */
    bool io_connecting; /* Slave_IO_Running: Connecting (retrying) */
    bool sql_running;   /* Slave_SQL_Running: Yes */
    bool relay_applied; /* the SQL thread has applied all that the IO
                           thread received (positions equal) */
    bool read_only;     /* @@read_only */
    int seconds_behind; /* Seconds_Behind_Master; -1 when NULL */
    char master_host[64];
    int master_port;
    int io_errno, sql_errno; /* Last_IO_Errno, Last_SQL_Errno */
    char io_error[256], sql_error[256];
    char sql_state[128];                    /* Slave_SQL_Running_State */
    char gtid_io_pos[REPLICA_GTID_MAX];     /* received from the primary */
    char gtid_slave_pos[REPLICA_GTID_MAX];  /* applied here */
    char gtid_binlog_pos[REPLICA_GTID_MAX]; /* in this server's binlog */
    /* positions in the primary's binary log: read (IO), executed (SQL) */
    char master_log_file[64], relay_master_log_file[64];
    unsigned long long read_pos, exec_pos;
};

/* What a replica host should do next, from its status. */
enum replica_action {
    REPLICA_FOLLOWING, /* replicating the right primary: nothing */
    REPLICA_START,     /* set up for this primary, threads stopped without
                          an error (mariadbd restarted: it runs with
                          --skip-slave-start): replica_start() */
    REPLICA_REBUILD,   /* not a replica of this primary, or an error only
                          a rebuild repairs: replica_follow() */
    REPLICA_WAIT,      /* the primary cannot be reached or refuses the
                          login; the IO thread retries by itself */
};

/* What replica_promote did. */
struct replica_promotion {
    bool was_replica; /* false: it was a primary already (idempotent) */
    bool caught_up;   /* all that had been received was applied */
    double waited;    /* seconds spent waiting for the SQL thread */
    char gtid[REPLICA_GTID_MAX]; /* @@gtid_slave_pos when it stopped */
    char sql_error[256];         /* why the SQL thread had stopped, or "" */
};

/* Is this a primary replica_follow may use: addr an IPv4 or IPv6
 * address (names are not resolved by MariaDB here, and the address ends
 * up in SQL), port 1-65535, password as acct_password_ok?  Returns 0 or
 * -1 with err.
 */
int replica_check_primary(const char *addr, int port, const char *password,
                          err_t *err);

/* On the primary: create the replication account REPLICA_USER@'%'
 * (idempotent; the password set again), with REPLICATION SLAVE on *.*,
 * SELECT and SHOW VIEW on slurm_acct_db.*, SELECT on mysql.proc (for the
 * stored procedures slurmdbd makes; without it mariadb-dump leaves them
 * out without a word), none of it written to the binary log; then
 * SET GLOBAL read_only=0.  Refuses (-1) a server that is set up as a
 * replica: promote it first.  Returns 0 or -1 with err.
 */
int replica_primary_setup(const struct acct_layout *l, const char *password,
                          double timeout, err_t *err);

/* Make this host's running MariaDB a replica of the primary at
 * primary_addr:primary_port, whatever it held before: dump slurm_acct_db
 * from the primary (mariadb-dump over TCP as REPLICA_USER: one
 * consistent snapshot and its GTID position, stored procedures included)
 * into DATA/REPLICA_LOAD_FILE; only then stop and forget any replication
 * here, set read_only=1, load the dump in place of the local
 * slurm_acct_db (not binary-logged), make the accounting users
 * (acct_bootstrap_db) and the replication account here too, empty the
 * local binary log (RESET MASTER), set gtid_slave_pos to the dump's
 * position, CHANGE MASTER ... MASTER_USE_GTID=slave_pos, START SLAVE, and
 * wait until both threads run.  The dump file is removed in every case.
 * slurmdbd must not run on this host (DROP DATABASE would wait for its
 * locks).  Bounded by timeout seconds in all.  Returns 0 when replication
 * runs, -1 with err otherwise: the step that failed.  A failed dump
 * (primary out of reach, wrong password) leaves this server as it was; a
 * later failure may leave the local database missing or partial, with
 * read_only=1: call it again.
 */
int replica_follow(const struct acct_layout *l, const char *primary_addr,
                   int primary_port, const char *password, double timeout,
                   err_t *err);

/* Start the replication threads of a replica that is set up but stopped
 * (REPLICA_START: after a restart of mariadbd), with read_only=1.  It
 * resumes from gtid_slave_pos, which MariaDB keeps in an InnoDB table.
 * Returns 0 or -1 with err (not a replica: follow instead).
 */
int replica_start(const struct acct_layout *l, double timeout, err_t *err);

/* Fill *st from SHOW SLAVE STATUS and @@read_only, @@gtid_slave_pos,
 * @@gtid_binlog_pos, within timeout seconds.  Returns 0 (st->configured
 * false on a server that is not a replica) or -1 with err.
 */
int replica_status(const struct acct_layout *l, double timeout,
                   struct replica_status *st, err_t *err);

/* Promote this replica to primary: stop receiving (STOP SLAVE
 * IO_THREAD), wait until the SQL thread has applied everything already
 * received, or has stopped on an error, or until most of timeout has
 * passed; then STOP SLAVE, RESET SLAVE ALL, SET GLOBAL read_only=0.  A
 * server that is no replica is only made writable.  *p says how long it
 * waited, whether it caught up, and at which position it stopped.
 * Returns 0 when the server is a writable primary, -1 with err.  Then
 * call replica_primary_setup and acct_bootstrap_db, and start slurmdbd.
 */
int replica_promote(const struct acct_layout *l, double timeout,
                    struct replica_promotion *p, err_t *err);

/* What a replica host should do, given its status and the current
 * primary (pure).
 */
enum replica_action replica_next_action(const struct replica_status *st,
                                        const char *primary_addr,
                                        int primary_port);

/* Parse the output of
 *   mariadb --batch -e "SHOW SLAVE STATUS; SELECT ... AS Peerd_Status"
 * (column names on, tab-separated, values escaped by the client): each
 * result set is a line of names and a line of values; SHOW SLAVE STATUS
 * prints nothing on a server that is no replica.  The last set must
 * carry the Peerd_Status marker.  Returns 0 or -1 with err (malformed,
 * marker missing).
 */
int replica_parse_status(const char *text, struct replica_status *st,
                         err_t *err);

/* From the tail of a dump made with --master-data=2 --gtid, the GTID
 * position it was taken at (the commented "SET GLOBAL gtid_slave_pos"
 * line; may be empty for a primary whose binary log is empty), into
 * gtid.  Refuses a dump that did not end ("-- Dump completed") and a
 * position with anything but digits, '-' and ','.  Returns 0 or -1 with
 * err.
 */
int replica_parse_dump_tail(const char *tail, char *gtid, size_t cap,
                            err_t *err);

#endif
