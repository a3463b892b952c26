/* test_acct.c - accounting setup and checks (node/acct.c)
 *
 * The pure parts: the data dir layout, slurmdbd.conf (content, and the
 * values refused instead of written), the password rule, the command
 * lines for mariadbd and slurmdbd, the services as the supervisor gets
 * them, and the parsing of sacctmgr's output.  The child-process parts
 * run against stand-ins: small shell scripts named sacctmgr and mariadb
 * put first in PATH, and a Unix socket server in a thread that speaks
 * the few packets of MariaDB's login.  Nothing here needs root, MariaDB or
 * Slurm.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>

#include <cmocka.h>
#include <jansson.h>
#include <sodium.h>

#include "node/acct.h"
#include "node/render.h"
#include "node/supervise.h"
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
    if (!strstr(haystack, needle))
        fail_msg("'%s' not found in:\n%s", needle, haystack);
}

static void assert_lacks(const char *haystack, const char *needle)
{
    if (strstr(haystack, needle))
        fail_msg("'%s' found in:\n%s", needle, haystack);
}

static struct acct_layout layout(const char *data_dir)
{
    struct acct_layout l;
    err_t err = {{0}};

    if (acct_layout_init(data_dir, &l, &err) < 0)
        fail_msg("acct_layout_init: %s", err.text);
    return l;
}

/* ---- layout ----------------------------------------------------------- */

static void test_layout_paths(void **state)
{
    struct acct_layout l = layout("/var/lib/peerd");

    assert_string_equal(l.db_dir, "/var/lib/peerd/mariadb");
    assert_string_equal(l.db_socket, "/var/lib/peerd/mariadb/db.sock");
    assert_string_equal(l.db_pid, "/var/lib/peerd/mariadb/mariadbd.pid");
    assert_string_equal(l.dbd_conf, "/var/lib/peerd/slurmdbd/slurmdbd.conf");
    /* slurmdbd reads slurmdbd.conf beside $SLURM_CONF */
    assert_string_equal(l.dbd_conf_env,
                        "SLURM_CONF=/var/lib/peerd/slurmdbd/slurm.conf");
    assert_string_equal(l.db_log, "/var/lib/peerd/log/mariadb.log");
    assert_string_equal(l.dbd_log, "/var/lib/peerd/log/slurmdbd.log");
}

/* peerd allows a data dir of 90 characters; the socket must still fit. */
static void test_layout_socket_fits_longest_data_dir(void **state)
{
    char dir[128], longer[128];
    struct acct_layout l;
    err_t err = {{0}};

    memset(dir, 'd', 90);
    dir[0] = '/';
    dir[90] = '\0';
    assert_int_equal(acct_layout_init(dir, &l, &err), 0);
    assert_true(strlen(l.db_socket) < sizeof(l.db_socket));

    memset(longer, 'd', 100);
    longer[0] = '/';
    longer[100] = '\0';
    assert_int_equal(acct_layout_init(longer, &l, &err), -1);
    assert_contains(err.text, "too long for a Unix socket");
}

/* ---- slurmdbd.conf ---------------------------------------------------- */

static struct acct_params valid_params(void)
{
    return (struct acct_params){
        .dbd_host = "node-1",
        .dbd_port = ACCT_DBD_PORT,
        .munge_socket = "/run/munge/munge.socket.2",
        .storage_host = "127.0.0.1",
        .storage_port = ACCT_DB_PORT,
        .storage_pass = PW,
        .pid_file = "/var/lib/peerd/slurmdbd/slurmdbd.pid",
    };
}

static char *render_ok(const struct acct_params *p)
{
    err_t err = {{0}};
    char *conf = acct_render_slurmdbd_conf(p, &err);

    if (!conf)
        fail_msg("acct_render_slurmdbd_conf: %s", err.text);
    return conf;
}

static void render_refused(const struct acct_params *p, const char *what)
{
    err_t err = {{0}};
    char *conf = acct_render_slurmdbd_conf(p, &err);

    if (conf) {
        free(conf);
        fail_msg("rendered with %s", what);
    }
    if (strlen(err.text) == 0)
        fail_msg("no error text for %s", what);
}

static void test_conf_settings(void **state)
{
    static const char *const lines[] = {
        "\nAuthType=auth/munge\n",
        "\nAuthInfo=socket=/run/munge/munge.socket.2\n",
        "\nDbdHost=node-1\n",
        "\nDbdPort=6819\n",
        "\nSlurmUser=root\n",
        "\nPidFile=/var/lib/peerd/slurmdbd/slurmdbd.pid\n",
        "\nStorageType=accounting_storage/mysql\n",
        "\nStorageHost=127.0.0.1\n",
        "\nStoragePort=3307\n",
        "\nStorageUser=slurm\n",
        "\nStoragePass=" PW "\n",
        "\nStorageLoc=slurm_acct_db\n",
    };
    struct acct_params p = valid_params();
    char *conf = render_ok(&p);

    assert_int_equal(strncmp(conf, RENDER_MARKER, strlen(RENDER_MARKER)), 0);
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
        assert_contains(conf, lines[i]);
    /* slurmdbd -D logs to stderr, which the supervisor keeps */
    assert_lacks(conf, "LogFile");
    assert_lacks(conf, "DbdAddr");
    assert_int_equal(conf[strlen(conf) - 1], '\n');
    free(conf);
}

static void test_conf_dbd_addr_and_deterministic(void **state)
{
    struct acct_params p = valid_params();
    char *a, *b;

    p.dbd_addr = "10.0.0.1";
    a = render_ok(&p);
    b = render_ok(&p);
    assert_contains(a, "\nDbdAddr=10.0.0.1\n");
    assert_string_equal(a, b);
    free(a);
    free(b);
}

static void test_conf_refuses_bad_values(void **state)
{
    static const char *const bad[] = {
        "two words", "a#b", "a=b",         "line\nStorageUser=root",
        "tab\there", "",    "caf\xc3\xa9",
    };
    struct acct_params p;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        p = valid_params();
        p.dbd_host = bad[i];
        render_refused(&p, "a bad DbdHost");
        p = valid_params();
        p.munge_socket = bad[i];
        render_refused(&p, "a bad munge socket");
        p = valid_params();
        p.storage_host = bad[i];
        render_refused(&p, "a bad StorageHost");
        p = valid_params();
        p.pid_file = bad[i];
        render_refused(&p, "a bad PidFile");
        p = valid_params();
        p.dbd_addr = bad[i];
        render_refused(&p, "a bad DbdAddr");
        p = valid_params();
        p.storage_pass = bad[i];
        render_refused(&p, "a bad password");
    }
    p = valid_params();
    p.dbd_host = NULL;
    render_refused(&p, "no DbdHost");
    p = valid_params();
    p.storage_pass = NULL;
    render_refused(&p, "no password");
    p = valid_params();
    p.dbd_port = 0;
    render_refused(&p, "DbdPort 0");
    p = valid_params();
    p.storage_port = 65536;
    render_refused(&p, "StoragePort 65536");
}

/* ---- password --------------------------------------------------------- */

static void test_password_rule(void **state)
{
    assert_true(acct_password_ok(PW));
    assert_true(acct_password_ok("0123456789abcdef")); /* 16: shortest */
    assert_false(acct_password_ok(NULL));
    assert_false(acct_password_ok(""));
    assert_false(acct_password_ok("0123456789abcde")); /* 15 */
    assert_false(acct_password_ok("0123456789ABCDEF0123456789abcdef"));
    assert_false(acct_password_ok("0123456789abcdef' OR '1'='1"));
    assert_false(acct_password_ok("0123456789abcdefg"));
    assert_false(acct_password_ok("0123456789abcdef\n"));
    char longest[130];
    memset(longest, 'a', 129);
    longest[129] = '\0';
    assert_false(acct_password_ok(longest)); /* 129 */
    longest[128] = '\0';
    assert_true(acct_password_ok(longest));
}

static void test_password_generate(void **state)
{
    char a[ACCT_PASSWORD_LEN + 1], b[ACCT_PASSWORD_LEN + 1];

    acct_password_generate(a);
    acct_password_generate(b);
    assert_int_equal(strlen(a), ACCT_PASSWORD_LEN);
    assert_true(acct_password_ok(a));
    assert_true(acct_password_ok(b));
    assert_string_not_equal(a, b);
}

/* ---- command lines ---------------------------------------------------- */

static bool has_arg(const char *const *argv, const char *want)
{
    for (int i = 0; argv[i]; i++)
        if (strcmp(argv[i], want) == 0)
            return true;
    return false;
}

static void test_mariadb_argv(void **state)
{
    struct acct_layout l = layout("/var/lib/peerd");
    struct svc_argv a;
    err_t err = {{0}};

    assert_int_equal(
        acct_mariadb_argv(&a, &l, NULL, "127.0.0.1,10.0.0.5", 3306, 7, &err),
        0);
    assert_string_equal(a.argv[0], "mariadbd");
    /* MariaDB takes --no-defaults only as the first option */
    assert_string_equal(a.argv[1], "--no-defaults");
    assert_true(has_arg(a.argv, "--datadir=/var/lib/peerd/mariadb"));
    assert_true(has_arg(a.argv, "--socket=/var/lib/peerd/mariadb/db.sock"));
    assert_true(
        has_arg(a.argv, "--pid-file=/var/lib/peerd/mariadb/mariadbd.pid"));
    assert_true(has_arg(a.argv, "--bind-address=127.0.0.1,10.0.0.5"));
    assert_true(has_arg(a.argv, "--port=3306"));
    assert_true(has_arg(a.argv, "--skip-name-resolve"));
    assert_true(has_arg(a.argv, "--innodb-lock-wait-timeout=900"));
    /* a binary log with this server's id, replication started by peerd */
    assert_true(has_arg(a.argv, "--server-id=7"));
    assert_true(has_arg(a.argv, "--log-bin=binlog"));
    assert_true(has_arg(a.argv, "--skip-slave-start"));
    /* the supervisor drops to the mysql user; no --user=root */
    for (int i = 0; a.argv[i]; i++)
        assert_int_not_equal(strncmp(a.argv[i], "--user", 6), 0);

    assert_int_equal(acct_mariadb_argv(&a, &l, "/opt/mariadb/bin/mariadbd",
                                       "::1", 3307, 0, &err),
                     0);
    assert_string_equal(a.argv[0], "/opt/mariadb/bin/mariadbd");
    assert_true(has_arg(a.argv, "--bind-address=::1"));
    assert_true(has_arg(a.argv, "--port=3307"));
    assert_true(has_arg(a.argv, "--server-id=1")); /* 0 is not an id */
}

static void test_mariadb_argv_refuses(void **state)
{
    static const char *const bad[] = {
        "",           "db.example.org",      "127.0.0.1,",
        ",127.0.0.1", "127.0.0.1,,10.0.0.1", "1.2.3.4 --skip-grant-tables",
        "1.2.3.4;x",
    };
    struct acct_layout l = layout("/var/lib/peerd");
    struct svc_argv a;
    err_t err = {{0}};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err.text[0] = '\0';
        if (acct_mariadb_argv(&a, &l, NULL, bad[i], 3306, 1, &err) == 0)
            fail_msg("bind list '%s' accepted", bad[i]);
        assert_true(strlen(err.text) > 0);
    }
    assert_int_equal(acct_mariadb_argv(&a, &l, NULL, NULL, 3306, 1, &err), -1);
    assert_int_equal(acct_mariadb_argv(&a, &l, NULL, "127.0.0.1", 0, 1, &err),
                     -1);
}

static void test_slurmdbd_argv(void **state)
{
    struct acct_layout l = layout("/var/lib/peerd");
    struct svc_argv a;
    err_t err = {{0}};

    assert_int_equal(
        acct_slurmdbd_argv(&a, &l, "/opt/slurm/sbin/slurmdbd", &err), 0);
    assert_string_equal(a.argv[0], "/usr/bin/env");
    assert_string_equal(a.argv[1],
                        "SLURM_CONF=/var/lib/peerd/slurmdbd/slurm.conf");
    assert_string_equal(a.argv[2], "/opt/slurm/sbin/slurmdbd");
    assert_string_equal(a.argv[3], "-D");
    assert_null(a.argv[4]);

    /* a bare name is resolved now, or left as it is if not installed */
    assert_int_equal(acct_slurmdbd_argv(&a, &l, NULL, &err), 0);
    const char *bin = a.argv[2];
    size_t n = strlen(bin);
    assert_true(n >= 8 && strcmp(bin + n - 8, "slurmdbd") == 0);
    assert_true(bin[0] == '/' || strcmp(bin, "slurmdbd") == 0);
}

/* ---- services --------------------------------------------------------- */

static const char *state_of(supervisor_t *sv, int idx, char *buf, size_t n)
{
    json_t *all = supervisor_json(sv, mono_now());
    const char *s =
        json_string_value(json_object_get(json_array_get(all, idx), "state"));

    snprintf(buf, n, "%s", s ? s : "?");
    json_decref(all);
    return buf;
}

static void test_add_services(void **state)
{
    struct acct_layout l = layout("/nonexistent/peerd");
    /* binaries that cannot run, should anything be started by mistake */
    struct acct_binaries bin = {"/nonexistent/mariadbd",
                                "/nonexistent/slurmdbd"};
    supervisor_t *sv = supervisor_new();
    err_t err = {{0}};
    char st[32];
    int db, dbd;

    assert_non_null(sv);
    l.db_uid = 65534;
    l.db_gid = 65534;
    if (acct_add_services(sv, &l, &bin, "127.0.0.1", 1, -1, &err) < 0)
        fail_msg("acct_add_services: %s", err.text);
    db = supervisor_find(sv, "mariadb");
    dbd = supervisor_find(sv, "slurmdbd");
    assert_true(db >= 0 && dbd > db);
    /* both start disabled: only the storage host enables them */
    assert_false(supervisor_enabled(sv, db));
    assert_false(supervisor_enabled(sv, dbd));
    assert_string_equal(state_of(sv, db, st, sizeof(st)), "stopped");
    /* slurmdbd waits for mariadb */
    supervisor_enable(sv, dbd, mono_now());
    supervisor_tick(sv, mono_now());
    assert_string_equal(state_of(sv, dbd, st, sizeof(st)), "waiting");
    assert_int_equal(supervisor_pid(sv, dbd), 0);
    supervisor_stop_all(sv, 1.0);
    supervisor_destroy(&sv);
}

static void test_add_services_needs_mysql_user(void **state)
{
    struct acct_layout l = layout("/nonexistent/peerd");
    supervisor_t *sv = supervisor_new();
    err_t err = {{0}};

    l.db_uid = 0; /* MariaDB would refuse to run as root */
    assert_int_equal(acct_add_services(sv, &l, NULL, "127.0.0.1", 1, -1, &err),
                     -1);
    assert_contains(err.text, "mysql");
    assert_int_equal(supervisor_find(sv, "mariadb"), -1);
    supervisor_destroy(&sv);
}

/* ---- sacctmgr output -------------------------------------------------- */

static void test_parse_clusters(void **state)
{
    struct acct_cluster c;

    assert_int_equal(acct_parse_clusters("other||0|0\n"
                                         "alpha|10.0.0.1|6817|9728\n",
                                         "alpha", &c),
                     0);
    assert_true(c.registered);
    assert_string_equal(c.control_host, "10.0.0.1");
    assert_int_equal(c.control_port, 6817);
    assert_int_equal(c.rpc_version, 9728);

    /* added, but slurmctld has not registered yet */
    assert_int_equal(acct_parse_clusters("alpha||0|0\n", "alpha", &c), 0);
    assert_true(c.registered);
    assert_string_equal(c.control_host, "");
    assert_int_equal(c.control_port, 0);

    assert_int_equal(acct_parse_clusters("alphabet|h|1|2\n", "alpha", &c), 0);
    assert_false(c.registered);
    assert_int_equal(acct_parse_clusters("", "alpha", &c), 0);
    assert_false(c.registered);
    /* a trailing '|' */
    assert_int_equal(acct_parse_clusters("alpha|h|6817|9728|\n", "alpha", &c),
                     0);
    assert_int_equal(c.rpc_version, 9728);

    assert_int_equal(acct_parse_clusters("alpha|h\n", "alpha", &c), -1);
    assert_int_equal(acct_parse_clusters("garbage\n", "alpha", &c), -1);
}

/* ---- child processes, against stand-in scripts ------------------------ */

struct fake {
    char dir[64];
    char old_path[4096];
};

static int fake_setup(void **state)
{
    struct fake *f = calloc(1, sizeof(*f));
    char path[4200];
    const char *old = getenv("PATH");

    if (!f || tmpdir_make(f->dir, sizeof(f->dir), "test_acct") < 0)
        return -1;
    snprintf(f->old_path, sizeof(f->old_path), "%s", old ? old : "");
    snprintf(path, sizeof(path), "%s:%s", f->dir, f->old_path);
    setenv("PATH", path, 1);
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

/* Write an executable shell script dir/name. */
static void script(struct fake *f, const char *name, const char *fmt, ...)
{
    char path[128], body[2048];
    va_list ap;
    FILE *fp;

    va_start(ap, fmt);
    vsnprintf(body, sizeof(body), fmt, ap);
    va_end(ap);
    snprintf(path, sizeof(path), "%s/%s", f->dir, name);
    assert_non_null(fp = fopen(path, "w"));
    fprintf(fp, "#!/bin/sh\n%s", body);
    assert_int_equal(fclose(fp), 0);
    assert_int_equal(chmod(path, 0755), 0);
}

static char *slurp(const char *path)
{
    static char buf[8192];
    FILE *fp = fopen(path, "r");
    size_t n;

    if (!fp)
        return NULL;
    n = fread(buf, 1, sizeof(buf) - 1, fp);
    buf[n] = '\0';
    fclose(fp);
    return buf;
}

/* No child of ours is left, reaped or not. */
static void assert_no_children(void)
{
    errno = 0;
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
}

static void test_ping_slurmdbd_answers(void **state)
{
    struct fake *f = *state;
    struct acct_cluster c;
    err_t err = {{0}};

    script(f, "sacctmgr",
           "[ \"$SLURM_CONF\" = /etc/peerd-test/slurm.conf ] || exit 9\n"
           "echo 'alpha|10.0.0.1|6817|9728'\n");
    if (acct_ping_slurmdbd("/etc/peerd-test/slurm.conf", "alpha", 5, &c, &err) <
        0)
        fail_msg("acct_ping_slurmdbd: %s", err.text);
    assert_true(c.registered);
    assert_string_equal(c.control_host, "10.0.0.1");
    assert_int_equal(c.control_port, 6817);
    assert_no_children();
}

static void test_ping_slurmdbd_down(void **state)
{
    struct fake *f = *state;
    struct acct_cluster c;
    err_t err = {{0}};

    script(f, "sacctmgr",
           "echo 'sacctmgr: error: Sending PersistInit msg: Connection "
           "refused' >&2\nexit 1\n");
    assert_int_equal(acct_ping_slurmdbd("/x/slurm.conf", "alpha", 5, &c, &err),
                     -1);
    assert_contains(err.text, "Connection refused");
    assert_false(c.registered);
    assert_no_children();
}

/* A slurmdbd that accepts and never answers makes sacctmgr wait 45 s;
 * the check gives up at its timeout and kills the whole group.
 */
static void test_ping_slurmdbd_hung(void **state)
{
    struct fake *f = *state;
    struct acct_cluster c;
    err_t err = {{0}};
    double t0 = mono_now();

    script(f, "sacctmgr", "sleep 30 & sleep 30\n");
    assert_int_equal(
        acct_ping_slurmdbd("/x/slurm.conf", "alpha", 0.3, &c, &err), -1);
    assert_true(mono_now() - t0 < 3.0);
    assert_contains(err.text, "no answer within");
    assert_no_children();
}

static void test_register_cluster(void **state)
{
    struct fake *f = *state;
    char log[128];
    err_t err = {{0}};

    snprintf(log, sizeof(log), "%s/acct.log", f->dir);
    /* the second time round: add says "already exists" and exits 1 */
    script(f, "sacctmgr",
           "case \"$*\" in\n"
           "'-i add cluster alpha') echo ' This cluster alpha already "
           "exists.  Not adding.'; exit 1;;\n"
           "*'show cluster'*) echo 'alpha|10.0.0.1|6817|9728';;\n"
           "*) exit 9;;\n"
           "esac\n");
    if (acct_register_cluster("alpha", "/x/slurm.conf", log, 5, &err) < 0)
        fail_msg("acct_register_cluster: %s", err.text);
    assert_contains(slurp(log), "sacctmgr -i add cluster alpha\n");
    assert_contains(slurp(log), "already exists");
    assert_no_children();
}

static void test_register_cluster_not_listed(void **state)
{
    struct fake *f = *state;
    err_t err = {{0}};

    script(f, "sacctmgr",
           "case \"$*\" in\n"
           "'-i add cluster alpha') echo ' Adding Cluster(s)'; "
           "echo '  Name           = alpha';;\n"
           "*) ;;\n"
           "esac\n");
    assert_int_equal(
        acct_register_cluster("alpha", "/x/slurm.conf", NULL, 5, &err), -1);
    assert_contains(err.text, "not listed");
}

static void test_register_cluster_refuses_names(void **state)
{
    static const char *const bad[] = {"",    "two words", "a=b",
                                      "a,b", "x;y",       "-i"};
    struct fake *f = *state;
    char marker[128];
    err_t err = {{0}};

    snprintf(marker, sizeof(marker), "%s/ran", f->dir);
    script(f, "sacctmgr", "touch '%s'\n", marker);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(
            acct_register_cluster(bad[i], "/x/slurm.conf", NULL, 5, &err), -1);
    }
    assert_int_equal(access(marker, F_OK), -1);
}

static void test_bootstrap_db(void **state)
{
    struct fake *f = *state;
    struct acct_layout l = layout(f->dir);
    char sql[128], args[128];
    err_t err = {{0}};

    snprintf(sql, sizeof(sql), "%s/sql", f->dir);
    snprintf(args, sizeof(args), "%s/args", f->dir);
    script(f, "mariadb",
           "echo \"$*\" > '%s'\ncat > '%s'\n"
           "grep -q \"SELECT 'peerd-sql-ok'\" '%s' && "
           "echo peerd-sql-ok\n",
           args, sql, sql);
    if (acct_bootstrap_db(&l, PW, 5, &err) < 0)
        fail_msg("acct_bootstrap_db: %s", err.text);
    const char *a = slurp(args);
    assert_contains(a, "--no-defaults");
    assert_contains(a, "--user=root");
    assert_contains(a, l.db_socket);
    const char *s = slurp(sql);
    assert_contains(s, "CREATE DATABASE IF NOT EXISTS slurm_acct_db;");
    assert_contains(s, "'slurm'@'localhost' IDENTIFIED BY '" PW "'");
    assert_contains(s, "'slurm'@'127.0.0.1' IDENTIFIED BY '" PW "'");
    assert_contains(s, "GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';");
    assert_no_children();
}

static void test_bootstrap_db_fails(void **state)
{
    struct fake *f = *state;
    struct acct_layout l = layout(f->dir);
    err_t err = {{0}};

    script(f, "mariadb",
           "cat > /dev/null\n"
           "echo \"ERROR 1045 (28000): Access denied for user 'root'@"
           "'localhost'\" >&2\nexit 1\n");
    assert_int_equal(acct_bootstrap_db(&l, PW, 5, &err), -1);
    assert_contains(err.text, "Access denied");
    assert_contains(err.text, "exit 1");

    /* exit 0 without the last line: a statement did not run */
    script(f, "mariadb", "cat > /dev/null\n");
    assert_int_equal(acct_bootstrap_db(&l, PW, 5, &err), -1);
}

static void test_bootstrap_db_refuses_password(void **state)
{
    struct fake *f = *state;
    struct acct_layout l = layout(f->dir);
    char marker[128];
    err_t err = {{0}};

    snprintf(marker, sizeof(marker), "%s/ran", f->dir);
    script(f, "mariadb", "touch '%s'\n", marker);
    assert_int_equal(acct_bootstrap_db(&l, "x'; DROP USER root; --", 5, &err),
                     -1);
    assert_contains(err.text, "password");
    assert_int_equal(acct_bootstrap_db(&l, "DEADBEEFDEADBEEF", 5, &err), -1);
    assert_int_equal(access(marker, F_OK), -1);
}

/* ---- MariaDB's login, against a stand-in server ----------------------- */

enum srv_mode {
    SRV_SILENT, /* never accepts: a hung server */
    SRV_CLOSE,  /* accepts and hangs up */
    SRV_BUSY,   /* an error packet instead of the greeting */
    SRV_OK,     /* greeting, login, OK */
    SRV_SWITCH, /* greeting, login, auth switch, OK */
    SRV_DENY,   /* greeting, login, access denied */
};

struct server {
    int fd;
    enum srv_mode mode;
    char user[32]; /* from the login packet */
    char plugin[32];
    int packets;   /* read from the client */
    bool got_quit; /* COM_QUIT at the end */
};

static void srv_send(int c, int seq, const void *payload, size_t len)
{
    unsigned char pkt[256];

    pkt[0] = len & 0xff;
    pkt[1] = (len >> 8) & 0xff;
    pkt[2] = 0;
    pkt[3] = seq;
    memcpy(pkt + 4, payload, len);
    if (write(c, pkt, 4 + len) < 0) {
        /* the test reports what the client saw */
    }
}

/* Read one packet (blocking); returns its length or -1. */
static int srv_read(int c, unsigned char *buf, size_t cap)
{
    unsigned char h[4];
    size_t len, got = 0;

    if (read(c, h, 4) != 4)
        return -1;
    len = h[0] | h[1] << 8 | (size_t)h[2] << 16;
    while (got < len && got < cap) {
        ssize_t n = read(c, buf + got, len - got);
        if (n <= 0)
            return -1;
        got += n;
    }
    return (int)got;
}

static void *serve(void *arg)
{
    static const unsigned char hello[] = {
        0x0a, '5', '.', '5', '.', '5', '-', '1', '0', '.', '1', '1', 0,
        1,    0,   0,   0,   'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 0,
    };
    static const unsigned char busy[] = {
        0xff, 0x10, 0x04, 'T', 'o', 'o', ' ', 'm', 'a', 'n', 'y', ' ',
        'c',  'o',  'n',  'n', 'e', 'c', 't', 'i', 'o', 'n', 's',
    };
    static const unsigned char ok[] = {0, 0, 0, 2, 0, 0, 0};
    static const char sw[] = "\xfemysql_native_password\0abcdefgh";
    static const char denied[] = "\xff\x15\x04#28000Access denied for user "
                                 "'root'@'localhost'";
    struct server *s = arg;
    unsigned char buf[512];
    int c, n;

    if (s->mode == SRV_SILENT || (c = accept(s->fd, NULL, NULL)) < 0)
        return NULL;
    if (s->mode == SRV_BUSY)
        srv_send(c, 0, busy, sizeof(busy));
    if (s->mode < SRV_OK)
        goto done;
    srv_send(c, 0, hello, sizeof(hello));
    if ((n = srv_read(c, buf, sizeof(buf) - 1)) < 0)
        goto done;
    s->packets++;
    buf[n] = '\0';
    if (n > 32) { /* fixed part, then user NUL, auth length, plugin */
        snprintf(s->user, sizeof(s->user), "%s", (char *)buf + 32);
        size_t at = 32 + strlen(s->user) + 1;
        if ((int)at < n)
            at += 1 + buf[at];
        if ((int)at < n)
            snprintf(s->plugin, sizeof(s->plugin), "%s", (char *)buf + at);
    }
    if (s->mode == SRV_DENY) {
        srv_send(c, 2, denied, sizeof(denied) - 1);
        goto done;
    }
    int seq = 2;
    if (s->mode == SRV_SWITCH) {
        srv_send(c, seq, sw, sizeof(sw) - 1);
        if (srv_read(c, buf, sizeof(buf)) < 0)
            goto done;
        s->packets++;
        seq += 2;
    }
    srv_send(c, seq, ok, sizeof(ok));
    if ((n = srv_read(c, buf, sizeof(buf))) == 1 && buf[0] == 0x01)
        s->got_quit = true;
done:
    close(c);
    return NULL;
}

static int listen_at(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fd, 4), 0);
    return fd;
}

/* Run acct_ping_mariadb against a stand-in server in mode. */
static int ping_with(struct fake *f, enum srv_mode mode, struct server *s,
                     err_t *err)
{
    char path[128];
    pthread_t t;
    int rc;

    snprintf(path, sizeof(path), "%s/db.sock", f->dir);
    unlink(path);
    *s = (struct server){.fd = listen_at(path), .mode = mode};
    assert_int_equal(pthread_create(&t, NULL, serve, s), 0);
    rc = acct_ping_mariadb(path, 0.3, err);
    pthread_join(t, NULL);
    close(s->fd);
    return rc;
}

static void test_ping_mariadb_login(void **state)
{
    struct server s;
    err_t err = {{0}};

    if (ping_with(*state, SRV_OK, &s, &err) < 0)
        fail_msg("acct_ping_mariadb: %s", err.text);
    assert_string_equal(s.user, "root");
    assert_string_equal(s.plugin, "mysql_native_password");
    /* a clean end, so the server logs no aborted connection */
    assert_true(s.got_quit);
}

static void test_ping_mariadb_auth_switch(void **state)
{
    struct server s;
    err_t err = {{0}};

    if (ping_with(*state, SRV_SWITCH, &s, &err) < 0)
        fail_msg("acct_ping_mariadb: %s", err.text);
    assert_int_equal(s.packets, 2);
    assert_true(s.got_quit);
}

static void test_ping_mariadb_refused(void **state)
{
    struct server s;
    err_t err = {{0}};

    assert_int_equal(ping_with(*state, SRV_BUSY, &s, &err), -1);
    assert_contains(err.text, "1040");
    assert_contains(err.text, "Too many connections");

    assert_int_equal(ping_with(*state, SRV_DENY, &s, &err), -1);
    assert_contains(err.text, "1045");
    assert_contains(err.text, "Access denied");
}

static void test_ping_mariadb_silent_or_closed(void **state)
{
    struct server s;
    err_t err = {{0}};
    double t0 = mono_now();

    /* a hung server: the kernel completes the connection, nobody talks */
    assert_int_equal(ping_with(*state, SRV_SILENT, &s, &err), -1);
    assert_contains(err.text, "no answer within");
    assert_true(mono_now() - t0 < 2.0);

    assert_int_equal(ping_with(*state, SRV_CLOSE, &s, &err), -1);
    assert_contains(err.text, "closed");
}

static void test_ping_mariadb_nobody(void **state)
{
    struct fake *f = *state;
    char path[128];
    err_t err = {{0}};

    snprintf(path, sizeof(path), "%s/none.sock", f->dir);
    assert_int_equal(acct_ping_mariadb(path, 0.3, &err), -1);
    assert_contains(err.text, "cannot connect");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout_paths),
        cmocka_unit_test(test_layout_socket_fits_longest_data_dir),
        cmocka_unit_test(test_conf_settings),
        cmocka_unit_test(test_conf_dbd_addr_and_deterministic),
        cmocka_unit_test(test_conf_refuses_bad_values),
        cmocka_unit_test(test_password_rule),
        cmocka_unit_test(test_password_generate),
        cmocka_unit_test(test_mariadb_argv),
        cmocka_unit_test(test_mariadb_argv_refuses),
        cmocka_unit_test(test_slurmdbd_argv),
        cmocka_unit_test(test_add_services),
        cmocka_unit_test(test_add_services_needs_mysql_user),
        cmocka_unit_test(test_parse_clusters),
        cmocka_unit_test_setup_teardown(test_ping_slurmdbd_answers, fake_setup,
                                        fake_teardown),
        cmocka_unit_test_setup_teardown(test_ping_slurmdbd_down, fake_setup,
                                        fake_teardown),
        cmocka_unit_test_setup_teardown(test_ping_slurmdbd_hung, fake_setup,
                                        fake_teardown),
        cmocka_unit_test_setup_teardown(test_register_cluster, fake_setup,
                                        fake_teardown),
        cmocka_unit_test_setup_teardown(test_register_cluster_not_listed,
                                        fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(test_register_cluster_refuses_names,
                                        fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(test_bootstrap_db, fake_setup,
                                        fake_teardown),
        cmocka_unit_test_setup_teardown(test_bootstrap_db_fails, fake_setup,
                                        fake_teardown),
        cmocka_unit_test_setup_teardown(test_bootstrap_db_refuses_password,
                                        fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(test_ping_mariadb_login, fake_setup,
                                        fake_teardown),
        cmocka_unit_test_setup_teardown(test_ping_mariadb_auth_switch,
                                        fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(test_ping_mariadb_refused, fake_setup,
                                        fake_teardown),
        cmocka_unit_test_setup_teardown(test_ping_mariadb_silent_or_closed,
                                        fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(test_ping_mariadb_nobody, fake_setup,
                                        fake_teardown),
    };

    if (sodium_init() < 0)
        return 1;
    return cmocka_run_group_tests_name("acct", tests, NULL, NULL);
}
