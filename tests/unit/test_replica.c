/* test_replica.c - the pure parts of node/replica.c: the replication
 * status parser, the next action of a replica, the dump's GTID position
 * and the checks on a primary.  What runs MariaDB is driven by
 * tests/manual/replica-experiment.sh and tests/integration/t90-multi.sh.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "node/replica.h"

#define PW "0123456789abcdef0123456789abcdef"

/* A SHOW SLAVE STATUS line pair (a subset of its columns, in its order)
 * and the variables peerd selects after it, as `mariadb --batch` prints
 * them.
 */
static void status_text(char *out, size_t cap, const char *io, const char *sql,
                        const char *behind, int io_errno, int sql_errno,
                        const char *sql_error, long read_pos, long exec_pos,
                        const char *read_only)
{
    snprintf(out, cap,
             "Slave_IO_State\tMaster_Host\tMaster_User\tMaster_Port\t"
             "Master_Log_File\tRead_Master_Log_Pos\tRelay_Master_Log_File\t"
             "Slave_IO_Running\tSlave_SQL_Running\tLast_SQL_Errno\t"
             "Last_SQL_Error\tExec_Master_Log_Pos\tSeconds_Behind_Master\t"
             "Last_IO_Errno\tLast_IO_Error\tGtid_IO_Pos\t"
             "Slave_SQL_Running_State\n"
             "Waiting for master to send event\t10.0.0.2\tpeerd_repl\t3307\t"
             "binlog.000002\t%ld\tbinlog.000002\t%s\t%s\t%d\t%s\t%ld\t%s\t%d"
             "\t%s\t0-2-17\tSlave has read all relay log\n"
             "Read_only\tGtid_Slave_Pos\tGtid_Binlog_Pos\tPeerd_Status\n"
             "%s\t0-2-17\t0-2-17\tpeerd-status-ok\n",
             read_pos, io, sql, sql_errno, sql_error, exec_pos, behind,
             io_errno, io_errno ? "error reading" : "", read_only);
}

static void test_parse_following(void **state)
{
    struct replica_status st;
    err_t err = {{0}};
    char text[2048];

    (void)state;
    status_text(text, sizeof(text), "Yes", "Yes", "0", 0, 0, "", 900, 900, "1");
    assert_int_equal(replica_parse_status(text, &st, &err), 0);
    assert_true(st.configured);
    assert_true(st.io_running && st.sql_running && st.read_only);
    assert_true(st.relay_applied);
    assert_int_equal(st.seconds_behind, 0);
    assert_string_equal(st.master_host, "10.0.0.2");
    assert_int_equal(st.master_port, 3307);
    assert_string_equal(st.gtid_io_pos, "0-2-17");
    assert_string_equal(st.gtid_slave_pos, "0-2-17");
    assert_int_equal(replica_next_action(&st, "10.0.0.2", 3307),
                     REPLICA_FOLLOWING);
    /* another primary (a failover happened): rebuild from it */
    assert_int_equal(replica_next_action(&st, "10.0.0.3", 3307),
                     REPLICA_REBUILD);
    assert_int_equal(replica_next_action(&st, "10.0.0.2", 3308),
                     REPLICA_REBUILD);
}

static void test_parse_not_a_replica(void **state)
{
    struct replica_status st;
    err_t err = {{0}};
    const char *text = "Read_only\tGtid_Slave_Pos\tGtid_Binlog_Pos\t"
                       "Peerd_Status\n0\t\t0-1-40\tpeerd-status-ok\n";

    (void)state;
    assert_int_equal(replica_parse_status(text, &st, &err), 0);
    assert_false(st.configured);
    assert_false(st.read_only);
    assert_int_equal(st.seconds_behind, -1);
    assert_string_equal(st.gtid_binlog_pos, "0-1-40");
    assert_int_equal(replica_next_action(&st, "10.0.0.2", 3307),
                     REPLICA_REBUILD);
}

static void test_next_action_cases(void **state)
{
    struct replica_status st;
    err_t err = {{0}};
    char text[2048];

    (void)state;
    /* stopped without an error (mariadbd restarted, --skip-slave-start) */
    status_text(text, sizeof(text), "No", "No", "NULL", 0, 0, "", 900, 900,
                "1");
    assert_int_equal(replica_parse_status(text, &st, &err), 0);
    assert_int_equal(st.seconds_behind, -1);
    assert_int_equal(replica_next_action(&st, "10.0.0.2", 3307), REPLICA_START);
    /* the primary is away: the IO thread retries by itself */
    status_text(text, sizeof(text), "Connecting", "Yes", "NULL", 2003, 0, "",
                900, 900, "1");
    assert_int_equal(replica_parse_status(text, &st, &err), 0);
    assert_true(st.io_connecting);
    assert_int_equal(replica_next_action(&st, "10.0.0.2", 3307), REPLICA_WAIT);
    /* the applier stopped on an error: the data differ */
    status_text(text, sizeof(text), "Yes", "No", "NULL", 0, 1062,
                "Duplicate entry", 900, 800, "1");
    assert_int_equal(replica_parse_status(text, &st, &err), 0);
    assert_false(st.relay_applied);
    assert_string_equal(st.sql_error, "Duplicate entry");
    assert_int_equal(replica_next_action(&st, "10.0.0.2", 3307),
                     REPLICA_REBUILD);
    /* a position the primary cannot serve (1236) */
    status_text(text, sizeof(text), "No", "Yes", "NULL", 1236, 0, "", 900, 900,
                "1");
    assert_int_equal(replica_parse_status(text, &st, &err), 0);
    assert_int_equal(replica_next_action(&st, "10.0.0.2", 3307),
                     REPLICA_REBUILD);
    /* running but writable: set read_only again (start) */
    status_text(text, sizeof(text), "Yes", "Yes", "0", 0, 0, "", 900, 900, "0");
    assert_int_equal(replica_parse_status(text, &st, &err), 0);
    assert_int_equal(replica_next_action(&st, "10.0.0.2", 3307), REPLICA_START);
}

static void test_parse_refuses(void **state)
{
    static const char *const bad[] = {
        "",                             /* no marker */
        "Read_only\tPeerd_Status\n1\n", /* fields differ */
        "Read_only\tPeerd_Status\n",    /* no values */
        "Seconds_Behind_Master\tPeerd_Status\nx\tpeerd-status-ok\n",
        "Master_Port\tPeerd_Status\n99999999999999\tpeerd-status-ok\n",
        "Read_only\tPeerd_Status\n1\tsomething-else\n", /* wrong marker */
    };
    struct replica_status st;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err_t err = {{0}};
        if (replica_parse_status(bad[i], &st, &err) == 0)
            fail_msg("accepted: '%s'", bad[i]);
        assert_true(strlen(err.text) > 0);
    }
}

static void test_dump_tail(void **state)
{
    char gtid[REPLICA_GTID_MAX];
    err_t err = {{0}};

    (void)state;
    assert_int_equal(
        replica_parse_dump_tail("INSERT ...;\n-- SET GLOBAL "
                                "gtid_slave_pos='0-1-42,1-3-7';\nUNLOCK "
                                "TABLES;\n-- Dump completed on 2026-11-26\n",
                                gtid, sizeof(gtid), &err),
        0);
    assert_string_equal(gtid, "0-1-42,1-3-7");
    /* an empty binary log: an empty position is fine */
    assert_int_equal(
        replica_parse_dump_tail(
            "-- SET GLOBAL gtid_slave_pos='';\n-- Dump completed\n", gtid,
            sizeof(gtid), &err),
        0);
    assert_string_equal(gtid, "");
    /* cut short, no position, a position that would inject SQL */
    assert_int_equal(replica_parse_dump_tail(
                         "-- SET GLOBAL gtid_slave_pos='0-1-42';\nINSERT", gtid,
                         sizeof(gtid), &err),
                     -1);
    assert_int_equal(replica_parse_dump_tail("-- Dump completed\n", gtid,
                                             sizeof(gtid), &err),
                     -1);
    assert_int_equal(
        replica_parse_dump_tail("-- SET GLOBAL gtid_slave_pos='0-1-4 OR "
                                "1=1';\n-- Dump completed\n",
                                gtid, sizeof(gtid), &err),
        -1);
}

static void test_check_primary(void **state)
{
    err_t err = {{0}};

    (void)state;
    assert_int_equal(replica_check_primary("10.0.0.2", 3307, PW, &err), 0);
    assert_int_equal(replica_check_primary("::1", 3307, PW, &err), 0);
    assert_int_equal(replica_check_primary("db.example", 3307, PW, &err), -1);
    assert_non_null(strstr(err.text, "not an IPv4"));
    assert_int_equal(replica_check_primary("10.0.0.2'--", 3307, PW, &err), -1);
    assert_int_equal(replica_check_primary("10.0.0.2", 0, PW, &err), -1);
    assert_int_equal(replica_check_primary("10.0.0.2", 3307, "short", &err),
                     -1);
    assert_int_equal(replica_check_primary(NULL, 3307, PW, &err), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_following),
        cmocka_unit_test(test_parse_not_a_replica),
        cmocka_unit_test(test_next_action_cases),
        cmocka_unit_test(test_parse_refuses),
        cmocka_unit_test(test_dump_tail),
        cmocka_unit_test(test_check_primary),
    };

    return cmocka_run_group_tests_name("replica", tests, NULL, NULL);
}
