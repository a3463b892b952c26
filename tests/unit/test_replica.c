/* test_replica.c - replication of the accounting database (node/replica.c)
 *
 * The pure parts first: which primaries are accepted, SHOW SLAVE STATUS
 * as the mariadb client prints it (the fixtures below are its real
 * output, captured from MariaDB 10.11.19 in the states a replica goes
 * through: running, waiting on a lock, an applier error, a primary out
 * of reach, a position the primary cannot serve, stopped after a
 * restart, and a primary), the tail of a dump, and what a replica
 * should do next.  Then the steps, against stand-ins: shell scripts
 * named mariadb and mariadb-dump put first in PATH, which log what they
 * were given and answer from files the test writes.  Nothing here needs
 * root or MariaDB.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>

#include <cmocka.h>

#include "node/acct.h"
#include "node/replica.h"
#include "tests/unit/tmpdir.h"

#define PW "0123456789abcdef0123456789abcdef"

static double mono_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void assert_contains(const char *haystack, const char *needle)
{
    if (!haystack || !strstr(haystack, needle))
        fail_msg("'%s' not found in:\n%s", needle,
                 haystack ? haystack : "(nothing)");
}

static void assert_lacks(const char *haystack, const char *needle)
{
    if (haystack && strstr(haystack, needle))
        fail_msg("'%s' found in:\n%s", needle, haystack);
}

/* needle a comes before needle b in haystack */
static void assert_before(const char *haystack, const char *a, const char *b)
{
    const char *pa = strstr(haystack, a), *pb = strstr(haystack, b);

    if (!pa || !pb || pa > pb)
        fail_msg("'%s' does not come before '%s' in:\n%s", a, b, haystack);
}

/* ---- real output of the status query ---------------------------------- */

/* SHOW SLAVE STATUS's names in 10.11 (54 columns). */
#define NAMES                                                                  \
    "Slave_IO_State\tMaster_Host\tMaster_User\tMaster_Port\tConnect_Retry\t"   \
    "Master_Log_File\tRead_Master_Log_Pos\tRelay_Log_File\tRelay_Log_Pos\t"    \
    "Relay_Master_Log_File\tSlave_IO_Running\tSlave_SQL_Running\t"             \
    "Replicate_Do_DB\tReplicate_Ignore_DB\tReplicate_Do_Table\t"               \
    "Replicate_Ignore_Table\tReplicate_Wild_Do_Table\t"                        \
    "Replicate_Wild_Ignore_Table\tLast_Errno\tLast_Error\tSkip_Counter\t"      \
    "Exec_Master_Log_Pos\tRelay_Log_Space\tUntil_Condition\tUntil_Log_File\t"  \
    "Until_Log_Pos\tMaster_SSL_Allowed\tMaster_SSL_CA_File\t"                  \
    "Master_SSL_CA_Path\tMaster_SSL_Cert\tMaster_SSL_Cipher\tMaster_SSL_Key\t" \
    "Seconds_Behind_Master\tMaster_SSL_Verify_Server_Cert\tLast_IO_Errno\t"    \
    "Last_IO_Error\tLast_SQL_Errno\tLast_SQL_Error\t"                          \
    "Replicate_Ignore_Server_Ids\tMaster_Server_Id\tMaster_SSL_Crl\t"          \
    "Master_SSL_Crlpath\tUsing_Gtid\tGtid_IO_Pos\tReplicate_Do_Domain_Ids\t"   \
    "Replicate_Ignore_Domain_Ids\tParallel_Mode\tSQL_Delay\t"                  \
    "SQL_Remaining_Delay\tSlave_SQL_Running_State\tSlave_DDL_Groups\t"         \
    "Slave_Non_Transactional_Groups\tSlave_Transactional_Groups\t"             \
    "Replicate_Rewrite_DB\n"
#define VARS "Read_only\tGtid_Slave_Pos\tGtid_Binlog_Pos\tPeerd_Status\n"

/* replicating, everything applied */
static const char st_running[] = NAMES
    "Waiting for master to send event\t127.0.0.1\tpeerd_repl\t3307\t5\t"
    "binlog.000001\t2052\trelay.000002\t664\tbinlog.000001\tYes\tYes\t\t\t\t"
    "\t\t\t0\t\t0\t2052\t963\tNone\t\t0\tNo\t\t\t\t\t\t0\tNo\t0\t\t0\t\t\t1\t"
    "\t\tSlave_Pos\t0-1-9\t\t\toptimistic\t0\tNULL\t"
    "Slave has read all relay log; waiting for more updates\t0\t0\t0\t\n" VARS
    "1\t0-1-9\t\tpeerd-status-ok\n";

/* a primary: SHOW SLAVE STATUS prints nothing at all */
static const char st_primary[] = VARS "0\t\t0-1-9\tpeerd-status-ok\n";

/* the applier stopped: a row the primary updated is missing here */
static const char st_sql_error[] = NAMES
    "Waiting for master to send event\t127.0.0.1\tpeerd_repl\t3307\t5\t"
    "binlog.000001\t2302\trelay.000002\t664\tbinlog.000001\tYes\tNo\t\t\t\t\t"
    "\t\t1032\t"
    "Could not execute Update_rows_v1 event on table slurm_acct_db.peerd_test"
    "; Can't find record in 'peerd_test', Error_code: 1032; handler error HA_"
    "ERR_KEY_NOT_FOUND; the event's master log binlog.000001, end_log_pos 227"
    "1\t0\t2052\t1213\tNone\t\t0\tNo\t\t\t\t\t\tNULL\tNo\t0\t\t1032\t"
    "Could not execute Update_rows_v1 event on table slurm_acct_db.peerd_test"
    "; Can't find record in 'peerd_test', Error_code: 1032; handler error HA_"
    "ERR_KEY_NOT_FOUND; the event's master log binlog.000001, end_log_pos 227"
    "1\t\t1\t\t\tSlave_Pos\t0-1-10\t\t\toptimistic\t0\tNULL\t\t0\t0\t1\t\n" VARS
    "1\t0-1-9\t\tpeerd-status-ok\n";

/* the primary stopped: the receiver retries every 5 s */
static const char st_connecting[] = NAMES
    "Reconnecting after a failed master event read\t127.0.0.1\tpeerd_repl\t"
    "3307\t5\t\t4\trelay.000001\t4\t\tConnecting\tYes\t\t\t\t\t\t\t0\t\t0\t"
    "4\t256\tNone\t\t0\tNo\t\t\t\t\t\tNULL\tNo\t2003\t"
    "error reconnecting to master 'peerd_repl@127.0.0.1:3307' - retry-time: 5"
    "  maximum-retries: 100000  message: Can't connect to server on '127.0.0."
    "1' (111 \"Connection refused\")\t0\t\t\t1\t\t\tSlave_Pos\t0-1-10\t\t\t"
    "optimistic\t0\tNULL\t"
    "Slave has read all relay log; waiting for more updates\t0\t0\t1\t\n" VARS
    "1\t0-1-10\t\tpeerd-status-ok\n";

/* the primary's binary log lacks the replica's position */
static const char st_1236[] = NAMES
    "\t127.0.0.1\tpeerd_repl\t3307\t5\t\t4\trelay.000001\t4\t\tNo\tYes\t\t\t"
    "\t\t\t\t0\t\t0\t4\t256\tNone\t\t0\tNo\t\t\t\t\t\tNULL\tNo\t1236\t"
    "Got fatal error 1236 from master when reading data from binary log: 'Err"
    "or: connecting slave requested to start from GTID 0-1-10, which is not i"
    "n the master's binlog'\t0\t\t\t1\t\t\tSlave_Pos\t0-1-10\t\t\t"
    "optimistic\t0\tNULL\t"
    "Slave has read all relay log; waiting for more updates\t0\t0\t1\t\n" VARS
    "1\t0-1-10\t\tpeerd-status-ok\n";

/* the applier waits on a row lock held by a local session: received
 * (841) but not applied (579), 2 s behind
 */
static const char st_waiting[] = NAMES
    "Waiting for master to send event\t127.0.0.1\tpeerd_repl\t3307\t5\t"
    "binlog.000001\t841\trelay.000002\t664\tbinlog.000001\tYes\tYes\t\t\t\t\t"
    "\t\t0\t\t0\t579\t1225\tNone\t\t0\tNo\t\t\t\t\t\t2\tNo\t0\t\t0\t\t\t1\t\t"
    "\tSlave_Pos\t0-1-2\t\t\toptimistic\t0\tNULL\t"
    "Update_rows_log_event::find_row()\t0\t0\t2\t\n" VARS
    "1\t0-1-1\t\tpeerd-status-ok\n";

/* mariadbd restarted (--skip-slave-start): set up, stopped, writable */
static const char st_stopped[] = NAMES
    "\t127.0.0.1\tpeerd_repl\t3307\t5\tbinlog.000001\t841\trelay.000002\t"
    "926\tbinlog.000001\tNo\tNo\t\t\t\t\t\t\t0\t\t0\t841\t1504\tNone\t\t0\t"
    "No\t\t\t\t\t\tNULL\tNo\t0\t\t0\t\t\t0\t\t\tSlave_Pos\t\t\t\toptimistic\t"
    "0\tNULL\t\t0\t0\t0\t\n" VARS "0\t0-1-2\t0-1-2\tpeerd-status-ok\n";

/* the end of a real dump (--master-data=2 --gtid --routines) */
static const char dump_tail[] =
    "INSERT INTO `peerd_test` VALUES\n(1,'y'),\n(2,'w');\n"
    "/*!40000 ALTER TABLE `peerd_test` ENABLE KEYS */;\n"
    "UNLOCK TABLES;\n\n--\n"
    "-- Dumping routines for database 'slurm_acct_db'\n--\n\n"
    "-- The deferred gtid setting for slave corresponding to the "
    "master-data CHANGE-MASTER follows\n\n"
    "-- Preferably use GTID to start replication from GTID position:\n\n"
    "-- SET GLOBAL gtid_slave_pos='0-1-2';\n"
    "/*!40103 SET TIME_ZONE=@OLD_TIME_ZONE */;\n\n"
    "/*!40101 SET SQL_MODE=@OLD_SQL_MODE */;\n"
    "/*!40111 SET SQL_NOTES=@OLD_SQL_NOTES */;\n\n"
    "-- Dump completed on 2026-11-26 22:47:50\n";

static struct replica_status parsed(const char *text)
{
    struct replica_status st;
    err_t err = {{0}};

    if (replica_parse_status(text, &st, &err) < 0)
        fail_msg("replica_parse_status: %s", err.text);
    return st;
}

/* ---- checks ----------------------------------------------------------- */

static void test_check_primary(void **state)
{
    static const char *const good[] = {"10.0.0.5", "127.0.0.2", "::1",
                                       "fd00::17"};
    static const char *const bad[] = {"",
                                      "localhost",
                                      "db1.example.org",
                                      "10.0.0.5 ",
                                      "10.0.0.5,",
                                      "10.0.0.256",
                                      "10.0.0.5'; DROP USER root; --",
                                      "[::1]"};
    err_t err = {{0}};

    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (replica_check_primary(good[i], 3306, PW, &err) < 0)
            fail_msg("%s refused: %s", good[i], err.text);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(replica_check_primary(bad[i], 3306, PW, &err), -1);
        assert_contains(err.text, "not an IPv4 or IPv6 address");
    }
    assert_int_equal(replica_check_primary(NULL, 3306, PW, &err), -1);
    assert_int_equal(replica_check_primary("10.0.0.5", 0, PW, &err), -1);
    assert_contains(err.text, "port 0");
    assert_int_equal(replica_check_primary("10.0.0.5", 65536, PW, &err), -1);
    assert_int_equal(replica_check_primary("10.0.0.5", 65535, PW, &err), 0);
    assert_int_equal(
        replica_check_primary("10.0.0.5", 3306, "0123456789ABCDEF", &err), -1);
    assert_contains(err.text, "password");
    assert_int_equal(replica_check_primary("10.0.0.5", 3306, "pw'", &err), -1);
}

/* ---- parsing the status ----------------------------------------------- */

static void test_parse_running(void **state)
{
    struct replica_status st = parsed(st_running);

    (void)state;
    assert_true(st.configured);
    assert_true(st.io_running);
    assert_false(st.io_connecting);
    assert_true(st.sql_running);
    assert_true(st.relay_applied);
    assert_true(st.read_only);
    assert_int_equal(st.seconds_behind, 0);
    assert_string_equal(st.master_host, "127.0.0.1");
    assert_int_equal(st.master_port, 3307);
    assert_int_equal(st.io_errno, 0);
    assert_int_equal(st.sql_errno, 0);
    assert_string_equal(st.gtid_io_pos, "0-1-9");
    assert_string_equal(st.gtid_slave_pos, "0-1-9");
    assert_string_equal(st.gtid_binlog_pos, "");
    assert_string_equal(st.master_log_file, "binlog.000001");
    assert_true(st.read_pos == 2052 && st.exec_pos == 2052);
    assert_contains(st.sql_state, "has read all relay log");
}

static void test_parse_primary(void **state)
{
    struct replica_status st = parsed(st_primary);

    (void)state;
    assert_false(st.configured);
    assert_false(st.io_running);
    assert_false(st.sql_running);
    assert_false(st.relay_applied);
    assert_false(st.read_only);
    assert_int_equal(st.seconds_behind, -1);
    assert_string_equal(st.gtid_binlog_pos, "0-1-9");
    assert_string_equal(st.master_host, "");
}

static void test_parse_errors(void **state)
{
    struct replica_status st = parsed(st_sql_error);

    (void)state;
    assert_true(st.configured);
    assert_true(st.io_running);
    assert_false(st.sql_running);
    assert_false(st.relay_applied); /* 2302 received, 2052 applied */
    assert_int_equal(st.seconds_behind, -1);
    assert_int_equal(st.sql_errno, 1032);
    assert_contains(st.sql_error, "Can't find record in 'peerd_test'");

    st = parsed(st_connecting);
    assert_false(st.io_running);
    assert_true(st.io_connecting);
    assert_true(st.sql_running);
    assert_int_equal(st.io_errno, 2003);
    assert_contains(st.io_error, "(111 \"Connection refused\")");

    st = parsed(st_1236);
    assert_false(st.io_running);
    assert_false(st.io_connecting);
    assert_int_equal(st.io_errno, 1236);
    assert_contains(st.io_error, "not in the master's binlog");
}

static void test_parse_waiting_and_stopped(void **state)
{
    struct replica_status st = parsed(st_waiting);

    (void)state;
    assert_true(st.io_running && st.sql_running);
    assert_false(st.relay_applied); /* 841 received, 579 applied */
    assert_int_equal(st.seconds_behind, 2);
    assert_string_equal(st.gtid_io_pos, "0-1-2");
    assert_string_equal(st.gtid_slave_pos, "0-1-1");
    assert_string_equal(st.sql_state, "Update_rows_log_event::find_row()");

    st = parsed(st_stopped);
    assert_true(st.configured);
    assert_false(st.io_running || st.io_connecting || st.sql_running);
    assert_false(st.read_only);
    assert_int_equal(st.io_errno + st.sql_errno, 0);
    assert_string_equal(st.gtid_io_pos, "");
    assert_string_equal(st.gtid_slave_pos, "0-1-2");
}

/* The client escapes tabs, newlines and backslashes in values; an error
 * text holding them must neither shift the fields nor span lines.
 */
static void test_parse_escapes(void **state)
{
    static const char text[] =
        "Slave_IO_Running\tLast_SQL_Errno\tLast_SQL_Error\tSlave_SQL_Running"
        "\tMaster_Port\n"
        "Yes\t1064\ta\\tb\\nSlave_SQL_Running: Yes\\\\x\\0y\tNo\t3306\n" VARS
        "1\t\t\tpeerd-status-ok\n";
    struct replica_status st = parsed(text);

    (void)state;
    assert_string_equal(st.sql_error, "a b Slave_SQL_Running: Yes\\xy");
    assert_false(st.sql_running);
    assert_int_equal(st.master_port, 3306);
}

static void test_parse_refuses(void **state)
{
    struct replica_status st;
    err_t err = {{0}};
    char cut[sizeof(st_running)];

    (void)state;
    /* no marker: the output stopped short, or is not ours */
    assert_int_equal(replica_parse_status("", &st, &err), -1);
    assert_contains(err.text, "incomplete");
    snprintf(cut, sizeof(cut), "%s", st_running);
    cut[strlen(NAMES) + 100] = '\0';
    assert_int_equal(replica_parse_status(cut, &st, &err), -1);
    /* names without their values, values not matching the names */
    assert_int_equal(replica_parse_status(VARS, &st, &err), -1);
    assert_int_equal(
        replica_parse_status(VARS "1\t0-1-9\tpeerd-status-ok\n", &st, &err),
        -1);
    assert_contains(err.text, "do not match");
    assert_int_equal(
        replica_parse_status(VARS "1\t0-1-9\t\tpeerd-status-ok\textra\n", &st,
                             &err),
        -1);
    /* numbers that are not */
    assert_int_equal(replica_parse_status("Master_Port\n33o6\n" VARS
                                          "1\t\t\tpeerd-status-ok\n",
                                          &st, &err),
                     -1);
    assert_contains(err.text, "Master_Port");
    assert_int_equal(replica_parse_status("Seconds_Behind_Master\n-3\n" VARS
                                          "1\t\t\tpeerd-status-ok\n",
                                          &st, &err),
                     -1);
    assert_int_equal(
        replica_parse_status("Last_IO_Errno\n99999999999999999999\n" VARS
                             "1\t\t\tpeerd-status-ok\n",
                             &st, &err),
        -1);
    /* a marker with another value */
    assert_int_equal(
        replica_parse_status(VARS "1\t\t\tpeerd-status-no\n", &st, &err), -1);
}

/* ---- the dump's tail -------------------------------------------------- */

static void test_dump_tail(void **state)
{
    char gtid[REPLICA_GTID_MAX];
    err_t err = {{0}};

    (void)state;
    if (replica_parse_dump_tail(dump_tail, gtid, sizeof(gtid), &err) < 0)
        fail_msg("replica_parse_dump_tail: %s", err.text);
    assert_string_equal(gtid, "0-1-2");

    /* several domains; an empty position (a primary with no binlog) */
    assert_int_equal(
        replica_parse_dump_tail("-- SET GLOBAL gtid_slave_pos='0-2-134,1-1-7';"
                                "\n\n-- Dump completed on x\n",
                                gtid, sizeof(gtid), &err),
        0);
    assert_string_equal(gtid, "0-2-134,1-1-7");
    assert_int_equal(
        replica_parse_dump_tail("x\n-- SET GLOBAL gtid_slave_pos='';\n"
                                "-- Dump completed on x\n",
                                gtid, sizeof(gtid), &err),
        0);
    assert_string_equal(gtid, "");
}

static void test_dump_tail_refuses(void **state)
{
    char gtid[REPLICA_GTID_MAX], buf[2048];
    err_t err = {{0}};

    (void)state;
    /* cut before its end: mariadb-dump failed half-way */
    snprintf(buf, sizeof(buf), "%.*s",
             (int)(strstr(dump_tail, "-- Dump completed") - dump_tail),
             dump_tail);
    assert_int_equal(replica_parse_dump_tail(buf, gtid, sizeof(gtid), &err),
                     -1);
    assert_contains(err.text, "did not complete");
    /* no position: made without --master-data */
    assert_int_equal(replica_parse_dump_tail("-- Dump completed on x\n", gtid,
                                             sizeof(gtid), &err),
                     -1);
    assert_contains(err.text, "no GTID position");
    /* a position with something else in it would end up in SQL */
    assert_int_equal(replica_parse_dump_tail(
                         "-- SET GLOBAL gtid_slave_pos='0-1-2'; DROP x;--';\n"
                         "-- Dump completed on x\n",
                         gtid, sizeof(gtid), &err),
                     -1);
    assert_contains(err.text, "malformed");
    assert_int_equal(
        replica_parse_dump_tail("-- SET GLOBAL gtid_slave_pos='0-1-2 OR 1';\n"
                                "-- Dump completed on x\n",
                                gtid, sizeof(gtid), &err),
        -1);
    assert_contains(err.text, "malformed");
    /* the line must start a line: row data cannot pose as it */
    assert_int_equal(replica_parse_dump_tail(
                         "INSERT INTO t VALUES ('x -- SET GLOBAL "
                         "gtid_slave_pos=''9-9-9'');\n-- Dump completed\n",
                         gtid, sizeof(gtid), &err),
                     -1);
    /* too long for the caller's buffer */
    assert_int_equal(replica_parse_dump_tail(dump_tail, gtid, 5, &err), -1);
    assert_contains(err.text, "too long");
}

/* ---- what next -------------------------------------------------------- */

static void test_next_action(void **state)
{
    struct replica_status st;

    (void)state;
    assert_int_equal(
        replica_next_action((st = parsed(st_running), &st), "127.0.0.1", 3307),
        REPLICA_FOLLOWING);
    /* following somebody else: the old primary, another port */
    assert_int_equal(replica_next_action(&st, "127.0.0.2", 3307),
                     REPLICA_REBUILD);
    assert_int_equal(replica_next_action(&st, "127.0.0.1", 3306),
                     REPLICA_REBUILD);
    /* running, but writable (somebody ran START SLAVE by hand) */
    st.read_only = false;
    assert_int_equal(replica_next_action(&st, "127.0.0.1", 3307),
                     REPLICA_START);
    assert_int_equal(
        replica_next_action((st = parsed(st_primary), &st), "127.0.0.1", 3307),
        REPLICA_REBUILD);
    assert_int_equal(replica_next_action((st = parsed(st_sql_error), &st),
                                         "127.0.0.1", 3307),
                     REPLICA_REBUILD);
    assert_int_equal(replica_next_action((st = parsed(st_connecting), &st),
                                         "127.0.0.1", 3307),
                     REPLICA_WAIT);
    assert_int_equal(
        replica_next_action((st = parsed(st_1236), &st), "127.0.0.1", 3307),
        REPLICA_REBUILD);
    assert_int_equal(
        replica_next_action((st = parsed(st_waiting), &st), "127.0.0.1", 3307),
        REPLICA_FOLLOWING);
    assert_int_equal(
        replica_next_action((st = parsed(st_stopped), &st), "127.0.0.1", 3307),
        REPLICA_START);
    /* the receiver stopped for good on another error */
    st = parsed(st_stopped);
    st.io_errno = 1593; /* equal server ids */
    assert_int_equal(replica_next_action(&st, "127.0.0.1", 3307),
                     REPLICA_REBUILD);
}

/* ---- the steps, against stand-ins ------------------------------------- */

struct fake {
    char dir[64];
    char data[96]; /* the data dir: DATA/mariadb, DATA/log */
    char old_path[4096];
    struct acct_layout l;
};

static char *slurp(const char *dir, const char *name)
{
    static char buf[65536];
    char path[256];
    FILE *fp;
    size_t n;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (!(fp = fopen(path, "r")))
        return NULL;
    n = fread(buf, 1, sizeof(buf) - 1, fp);
    buf[n] = '\0';
    fclose(fp);
    return buf;
}

static void put(struct fake *f, const char *name, const char *text)
{
    char path[256];
    FILE *fp;

    snprintf(path, sizeof(path), "%s/%s", f->dir, name);
    assert_non_null(fp = fopen(path, "w"));
    fputs(text, fp);
    assert_int_equal(fclose(fp), 0);
}

/* An executable shell script dir/name. */
static void script(struct fake *f, const char *name, const char *fmt, ...)
{
    char path[256], body[4096];
    va_list ap;
    FILE *fp;

    va_start(ap, fmt);
    vsnprintf(body, sizeof(body), fmt, ap);
    va_end(ap);
    snprintf(path, sizeof(path), "%s/%s", f->dir, name);
    assert_non_null(fp = fopen(path, "w"));
    fprintf(fp, "#!/bin/sh\nD='%s'\n%s", f->dir, body);
    assert_int_equal(fclose(fp), 0);
    assert_int_equal(chmod(path, 0755), 0);
}

/* mariadb: the status query answers from D/status.N (the Nth query) or
 * D/status; SQL on stdin is logged to D/sql.log and answered with the
 * markers it selects (and a GTID for SELECT @@gtid_slave_pos).  The
 * load fails when D/load-fails exists.
 */
static void fake_mariadb(struct fake *f)
{
    script(f, "mariadb",
           "case \"$*\" in\n"
           "*'SHOW SLAVE STATUS'*)\n"
           "  n=$(cat \"$D/n\" 2>/dev/null || echo 0); n=$((n + 1))\n"
           "  echo $n > \"$D/n\"\n"
           "  if [ -f \"$D/status.$n\" ]; then cat \"$D/status.$n\"\n"
           "  else cat \"$D/status\"; fi\n"
           "  exit 0;;\n"
           "esac\n"
           "cat > \"$D/in.$$\"\n"
           "{ echo '=== mariadb'; cat \"$D/in.$$\"; } >> \"$D/sql.log\"\n"
           "if [ -f \"$D/load-fails\" ] && grep -q peerd-load-ok \"$D/in.$$\";"
           " then\n"
           "  echo 'ERROR 1064 (42000) at line 3: You have an error' >&2\n"
           "  rm -f \"$D/in.$$\"; exit 1\n"
           "fi\n"
           "grep -q 'SELECT @@gtid_slave_pos' \"$D/in.$$\" && echo 0-1-77\n"
           "sed -n \"s/^SELECT '\\(peerd-[a-z-]*\\)';$/\\1/p\" \"$D/in.$$\"\n"
           "rm -f \"$D/in.$$\"\n");
}

/* mariadb-dump: logs its arguments and password, prints body. */
static void fake_dump(struct fake *f, const char *body)
{
    script(f, "mariadb-dump",
           "echo \"$*\" > \"$D/dump.args\"\n"
           "echo \"$MYSQL_PWD\" > \"$D/dump.pw\"\n"
           "echo '=== mariadb-dump' >> \"$D/sql.log\"\n"
           "%s",
           body);
}

static int fake_setup(void **state)
{
    struct fake *f = calloc(1, sizeof(*f));
    char path[4200];
    const char *old = getenv("PATH");
    err_t err = {{0}};

    if (!f || tmpdir_make(f->dir, sizeof(f->dir), "test_replica") < 0)
        return -1;
    snprintf(f->data, sizeof(f->data), "%s/data", f->dir);
    snprintf(path, sizeof(path), "%s/log", f->data);
    if (mkdir(f->data, 0700) < 0 || mkdir(path, 0755) < 0 ||
        acct_layout_init(f->data, &f->l, &err) < 0)
        return -1;
    snprintf(f->old_path, sizeof(f->old_path), "%s", old ? old : "");
    snprintf(path, sizeof(path), "%s:%s", f->dir, f->old_path);
    setenv("PATH", path, 1);
    fake_mariadb(f);
    *state = f;
    return 0;
}

static int fake_teardown(void **state)
{
    struct fake *f = *state;

    setenv("PATH", f->old_path, 1);
    tmpdir_remove(f->dir);
    free(f);
    return 0;
}

/* No child of ours is left, reaped or not. */
static void assert_no_children(void)
{
    errno = 0;
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
}

static bool load_file_gone(struct fake *f)
{
    char path[256];

    snprintf(path, sizeof(path), "%s/" REPLICA_LOAD_FILE, f->data);
    return access(path, F_OK) < 0 && errno == ENOENT;
}

#define DUMP_OK                                                                \
    "cat <<'EOF'\n"                                                            \
    "CREATE DATABASE /*!32312 IF NOT EXISTS*/ `slurm_acct_db`;\n"              \
    "USE `slurm_acct_db`;\n"                                                   \
    "INSERT INTO `t` VALUES (1,'from-the-primary');\n"                         \
    "-- SET GLOBAL gtid_slave_pos='0-1-42';\n"                                 \
    "-- Dump completed on 2026-11-26 22:47:50\n"                               \
    "EOF\n"

static void test_follow(void **state)
{
    struct fake *f = *state;
    err_t err = {{0}};

    fake_dump(f, DUMP_OK);
    put(f, "status", st_running);
    if (replica_follow(&f->l, "10.0.0.5", 3306, PW, 10, &err) < 0)
        fail_msg("replica_follow: %s", err.text);

    const char *args = slurp(f->dir, "dump.args");
    assert_contains(args, "--host=10.0.0.5 --port=3306");
    assert_contains(args, "--protocol=tcp");
    assert_contains(args, "--user=" REPLICA_USER);
    assert_contains(args, "--single-transaction");
    assert_contains(args, "--master-data=2 --gtid");
    assert_contains(args, "--routines");
    assert_contains(args, "--databases slurm_acct_db");
    /* the password goes in the environment, never on a command line */
    assert_lacks(args, PW);
    assert_string_equal(slurp(f->dir, "dump.pw"), PW "\n");

    const char *log = slurp(f->dir, "sql.log");
    /* the dump first: the server is touched only with the copy in hand */
    assert_before(log, "=== mariadb-dump", "STOP SLAVE;\nRESET SLAVE ALL;");
    assert_before(log, "RESET SLAVE ALL;", "SET GLOBAL read_only=1;");
    /* the load: not binary-logged, the old database dropped, the dump,
     * the marker last
     */
    assert_before(log, "RESET SLAVE ALL;",
                  "SET SESSION sql_log_bin=0;\n"
                  "SET SESSION lock_wait_timeout=");
    assert_before(log, "DROP DATABASE IF EXISTS slurm_acct_db;",
                  "INSERT INTO `t` VALUES (1,'from-the-primary');");
    assert_before(log, "-- Dump completed", "SELECT 'peerd-load-ok';");
    /* the users here too, then the replication account, unlogged */
    assert_before(log, "SELECT 'peerd-load-ok';",
                  "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1'");
    assert_before(log, "'slurm'@'127.0.0.1'",
                  "CREATE USER IF NOT EXISTS '" REPLICA_USER "'@'%'");
    /* then replication, from the dump's position */
    assert_before(log, "GRANT SELECT ON mysql.proc", "RESET MASTER;");
    assert_contains(log, "RESET MASTER;\n"
                         "SET GLOBAL gtid_slave_pos='0-1-42';\n"
                         "CHANGE MASTER TO MASTER_HOST='10.0.0.5', "
                         "MASTER_PORT=3306, MASTER_USER='" REPLICA_USER "', "
                         "MASTER_PASSWORD='" PW "', "
                         "MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=5;\n"
                         "SET GLOBAL read_only=1;\nSTART SLAVE;\n");
    assert_true(load_file_gone(f));
    /* the setup log says what happened, never with the password */
    const char *notes = slurp(f->data, "log/acct.log");
    assert_contains(notes, "mariadb-dump from 10.0.0.5:3306");
    assert_contains(notes, "following 10.0.0.5:3306 from GTID '0-1-42'");
    assert_lacks(notes, PW);
    assert_no_children();
}

/* A primary out of reach or a wrong password: nothing here is touched. */
static void test_follow_dump_fails(void **state)
{
    struct fake *f = *state;
    err_t err = {{0}};

    fake_dump(f, "echo 'mariadb-dump: Got error: 1045: \"Access denied for "
                 "user '\\''peerd_repl'\\''@'\\''10.0.0.7'\\'' (using "
                 "password: YES)\" when trying to connect' >&2\nexit 2\n");
    put(f, "status", st_running);
    assert_int_equal(replica_follow(&f->l, "10.0.0.5", 3306, PW, 10, &err), -1);
    assert_contains(err.text, "mariadb-dump: exit 2");
    assert_contains(err.text, "Access denied");
    assert_lacks(slurp(f->dir, "sql.log"), "=== mariadb\n");
    assert_true(load_file_gone(f));
    assert_no_children();
}

/* exit 0 (or a status we never got) but no end: not loaded */
static void test_follow_dump_incomplete(void **state)
{
    struct fake *f = *state;
    err_t err = {{0}};

    fake_dump(f, "echo \"-- SET GLOBAL gtid_slave_pos='0-1-42';\"\n");
    assert_int_equal(replica_follow(&f->l, "10.0.0.5", 3306, PW, 10, &err), -1);
    assert_contains(err.text, "did not complete");
    assert_lacks(slurp(f->dir, "sql.log"), "=== mariadb\n");
    assert_true(load_file_gone(f));
}

/* A dump that hangs (a primary that accepts and never answers) is
 * killed at the timeout, with whatever it started.
 */
static void test_follow_dump_hangs(void **state)
{
    struct fake *f = *state;
    err_t err = {{0}};
    double t0 = mono_now();

    fake_dump(f, "sleep 30 & sleep 30\n");
    assert_int_equal(replica_follow(&f->l, "10.0.0.5", 3306, PW, 0.5, &err),
                     -1);
    assert_true(mono_now() - t0 < 3.0);
    assert_contains(err.text, "no answer within");
    assert_true(load_file_gone(f));
    assert_no_children();
}

static void test_follow_load_fails(void **state)
{
    struct fake *f = *state;
    err_t err = {{0}};

    fake_dump(f, DUMP_OK);
    put(f, "status", st_running);
    put(f, "load-fails", "");
    assert_int_equal(replica_follow(&f->l, "10.0.0.5", 3306, PW, 10, &err), -1);
    assert_contains(err.text, "loading the dump: exit 1");
    assert_contains(err.text, "ERROR 1064");
    assert_lacks(slurp(f->dir, "sql.log"), "CHANGE MASTER");
    assert_true(load_file_gone(f));
    assert_no_children();
}

/* Started, but the applier stops at once: say why. */
static void test_follow_applier_error(void **state)
{
    struct fake *f = *state;
    err_t err = {{0}};

    fake_dump(f, DUMP_OK);
    put(f, "status", st_sql_error);
    assert_int_equal(replica_follow(&f->l, "10.0.0.5", 3306, PW, 10, &err), -1);
    assert_contains(err.text, "applier stopped: 1032");
    assert_contains(err.text, "Can't find record");
}

/* A primary out of reach after the dump: wait, then say so. */
static void test_follow_not_running(void **state)
{
    struct fake *f = *state;
    err_t err = {{0}};
    double t0 = mono_now();

    fake_dump(f, DUMP_OK);
    put(f, "status", st_connecting);
    assert_int_equal(replica_follow(&f->l, "10.0.0.5", 3306, PW, 1.0, &err),
                     -1);
    assert_true(mono_now() - t0 < 3.0);
    assert_contains(err.text, "not running yet (receiver connecting");
    assert_contains(err.text, "Connection refused");
}

static void test_follow_refuses(void **state)
{
    struct fake *f = *state;
    err_t err = {{0}};

    fake_dump(f, DUMP_OK);
    assert_int_equal(replica_follow(&f->l, "db1", 3306, PW, 10, &err), -1);
    assert_int_equal(replica_follow(&f->l, "10.0.0.5", 0, PW, 10, &err), -1);
    assert_int_equal(replica_follow(&f->l, "10.0.0.5", 3306, "x'y", 10, &err),
                     -1);
    assert_null(slurp(f->dir, "sql.log"));
    assert_null(slurp(f->dir, "dump.args"));
}

/* Promotion waits for what was received to be applied. */
static void test_promote_waits(void **state)
{
    struct fake *f = *state;
    struct replica_promotion p;
    err_t err = {{0}};

    put(f, "status.1", st_waiting);
    put(f, "status.2", st_waiting);
    put(f, "status.3", st_waiting);
    put(f, "status", st_running); /* the lock is gone: applied */
    if (replica_promote(&f->l, 10, &p, &err) < 0)
        fail_msg("replica_promote: %s", err.text);
    assert_true(p.was_replica);
    assert_true(p.caught_up);
    assert_true(p.waited >= 0.09 && p.waited < 5);
    assert_string_equal(p.gtid, "0-1-77");
    assert_string_equal(p.sql_error, "");
    const char *log = slurp(f->dir, "sql.log");
    assert_before(log, "STOP SLAVE IO_THREAD;",
                  "STOP SLAVE;\nSELECT @@gtid_slave_pos;\nRESET SLAVE ALL;\n"
                  "SET GLOBAL read_only=0;\n");
    assert_no_children();
}

/* An applier stopped on an error: promoted anyway, and said so. */
static void test_promote_applier_error(void **state)
{
    struct fake *f = *state;
    struct replica_promotion p;
    err_t err = {{0}};

    put(f, "status", st_sql_error);
    if (replica_promote(&f->l, 10, &p, &err) < 0)
        fail_msg("replica_promote: %s", err.text);
    assert_true(p.was_replica);
    assert_false(p.caught_up);
    assert_true(p.waited < 1);
    assert_contains(p.sql_error, "Can't find record");
    assert_contains(slurp(f->dir, "sql.log"), "RESET SLAVE ALL;");
}

/* An applier that never catches up: the wait is bounded, the promotion
 * happens within the timeout.
 */
static void test_promote_bounded(void **state)
{
    struct fake *f = *state;
    struct replica_promotion p;
    err_t err = {{0}};
    double t0 = mono_now();

    put(f, "status", st_waiting);
    if (replica_promote(&f->l, 2.0, &p, &err) < 0)
        fail_msg("replica_promote: %s", err.text);
    assert_true(mono_now() - t0 < 2.0);
    assert_false(p.caught_up);
    assert_true(p.waited > 1.0);
    assert_contains(slurp(f->dir, "sql.log"), "SET GLOBAL read_only=0;");
}

/* A primary already: only made writable. */
static void test_promote_primary(void **state)
{
    struct fake *f = *state;
    struct replica_promotion p;
    err_t err = {{0}};

    put(f, "status", st_primary);
    if (replica_promote(&f->l, 10, &p, &err) < 0)
        fail_msg("replica_promote: %s", err.text);
    assert_false(p.was_replica);
    assert_true(p.waited == 0);
    const char *log = slurp(f->dir, "sql.log");
    assert_contains(log, "SET GLOBAL read_only=0;");
    assert_lacks(log, "STOP SLAVE");
}

static void test_primary_setup(void **state)
{
    struct fake *f = *state;
    err_t err = {{0}};

    put(f, "status", st_primary);
    if (replica_primary_setup(&f->l, PW, 10, &err) < 0)
        fail_msg("replica_primary_setup: %s", err.text);
    const char *log = slurp(f->dir, "sql.log");
    assert_contains(log,
                    "SET SESSION sql_log_bin=0;\n"
                    "CREATE USER IF NOT EXISTS 'peerd_repl'@'%' IDENTIFIED BY "
                    "'" PW "';\n"
                    "ALTER USER 'peerd_repl'@'%' IDENTIFIED BY '" PW "';\n"
                    "GRANT REPLICATION SLAVE ON *.* TO 'peerd_repl'@'%';\n"
                    "GRANT SELECT, SHOW VIEW ON slurm_acct_db.* TO "
                    "'peerd_repl'@'%';\n"
                    "GRANT SELECT ON mysql.proc TO 'peerd_repl'@'%';\n");
    assert_contains(log, "SET GLOBAL read_only=0;");
    /* nothing more than that */
    assert_lacks(log, "GRANT ALL");
    assert_lacks(log, "RELOAD");
    assert_lacks(log, "SUPER");
}

/* A replica is promoted, not made writable behind replication's back. */
static void test_primary_setup_refuses(void **state)
{
    struct fake *f = *state;
    err_t err = {{0}};

    put(f, "status", st_running);
    assert_int_equal(replica_primary_setup(&f->l, PW, 10, &err), -1);
    assert_contains(err.text, "replicates from 127.0.0.1:3307");
    assert_null(slurp(f->dir, "sql.log"));
    assert_int_equal(replica_primary_setup(&f->l, "short", 10, &err), -1);
    assert_contains(err.text, "password");
}

static void test_start(void **state)
{
    struct fake *f = *state;
    err_t err = {{0}};

    put(f, "status", st_stopped);
    if (replica_start(&f->l, 10, &err) < 0)
        fail_msg("replica_start: %s", err.text);
    assert_contains(slurp(f->dir, "sql.log"),
                    "SET GLOBAL read_only=1;\nSTART SLAVE;\n");

    put(f, "status", st_primary);
    assert_int_equal(replica_start(&f->l, 10, &err), -1);
    assert_contains(err.text, "no replica");
}

static void test_status_fails(void **state)
{
    struct fake *f = *state;
    struct replica_status st;
    err_t err = {{0}};

    script(f, "mariadb",
           "echo \"ERROR 2002 (HY000): Can't connect to local server "
           "through socket '/x/db.sock' (2)\" >&2\nexit 1\n");
    assert_int_equal(replica_status(&f->l, 5, &st, &err), -1);
    assert_contains(err.text, "exit 1");
    assert_contains(err.text, "Can't connect to local server");
    assert_false(st.configured);

    /* cut short: no marker */
    script(f, "mariadb", "printf '%%s' '%s'\n", NAMES);
    assert_int_equal(replica_status(&f->l, 5, &st, &err), -1);
    assert_no_children();
}

static void test_status_query(void **state)
{
    struct fake *f = *state;
    struct replica_status st;
    char args[128];
    err_t err = {{0}};

    snprintf(args, sizeof(args), "%s/args", f->dir);
    script(f, "mariadb", "echo \"$*\" > '%s'\ncat \"$D/status\"\n", args);
    put(f, "status", st_running);
    if (replica_status(&f->l, 5, &st, &err) < 0)
        fail_msg("replica_status: %s", err.text);
    assert_true(st.io_running);
    const char *a = slurp(f->dir, "args");
    assert_contains(a, "--user=root");
    assert_contains(a, f->l.db_socket);
    assert_contains(a, "--batch");
    assert_lacks(a, "--skip-column-names"); /* read by name */
    assert_contains(a, "SHOW SLAVE STATUS;");
}

#define FAKE(t) cmocka_unit_test_setup_teardown(t, fake_setup, fake_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_primary),
        cmocka_unit_test(test_parse_running),
        cmocka_unit_test(test_parse_primary),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_parse_waiting_and_stopped),
        cmocka_unit_test(test_parse_escapes),
        cmocka_unit_test(test_parse_refuses),
        cmocka_unit_test(test_dump_tail),
        cmocka_unit_test(test_dump_tail_refuses),
        cmocka_unit_test(test_next_action),
        FAKE(test_follow),
        FAKE(test_follow_dump_fails),
        FAKE(test_follow_dump_incomplete),
        FAKE(test_follow_dump_hangs),
        FAKE(test_follow_load_fails),
        FAKE(test_follow_applier_error),
        FAKE(test_follow_not_running),
        FAKE(test_follow_refuses),
        FAKE(test_promote_waits),
        FAKE(test_promote_applier_error),
        FAKE(test_promote_bounded),
        FAKE(test_promote_primary),
        FAKE(test_primary_setup),
        FAKE(test_primary_setup_refuses),
        FAKE(test_start),
        FAKE(test_status_fails),
        FAKE(test_status_query),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
