/* replica.c - MariaDB replication of the accounting database (multi tier)
 *
 * Two kinds of code live here: pure functions (checking a primary's
 * address, parsing SHOW SLAVE STATUS and the tail of a dump, deciding
 * what a replica should do), and the steps that set replication up,
 * start it or tear it down.  SQL goes through acct_sql; the commands
 * acct_sql cannot run go through node/child.c: mariadb-dump, whose
 * output goes to a file, and the mariadb client with column names
 * (SHOW SLAVE STATUS is read by name, never by position) or with a file
 * on its stdin (the load).
 *
 * A step's success is read from what the server printed: acct_sql's
 * marker, a marker column in the status, a marker row at the end of the
 * load, "-- Dump completed" at the end of the dump.  Exit statuses are
 * used when we get them; peerd's main loop may reap our children first.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "node/child.h"
#include "node/replica.h"

#define CHILD_PATH                                                             \
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define STATUS_OK "peerd-status-ok"
#define LOAD_OK "peerd-load-ok"
#define TAIL_CAP 65536  /* the end of a dump, where its GTID position is */
#define POLL_EVERY 0.05 /* seconds between status checks */
/* Server error 1236: the primary's binary log does not hold the position
 * the replica asks for (purged, reset, or the replica is ahead of it).
 */
#define ER_MASTER_FATAL_READING_BINLOG 1236

static double mono_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void pause_for(double seconds)
{
    struct timespec ts = {(time_t)seconds,
                          (long)((seconds - (time_t)seconds) * 1e9)};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* ---- checks ----------------------------------------------------------- */

int replica_check_primary(const char *addr, int port, const char *password,
                          err_t *err)
{
    unsigned char buf[sizeof(struct in6_addr)];

    if (!addr || (inet_pton(AF_INET, addr, buf) != 1 &&
                  inet_pton(AF_INET6, addr, buf) != 1))
        return errprintf(err,
                         "replication: primary '%s' is not an IPv4 or IPv6 "
                         "address (MariaDB resolves no names here)",
                         addr ? addr : "");
    if (port < 1 || port > 65535)
        return errprintf(err, "replication: port %d out of range", port);
    if (!acct_password_ok(password))
        return errprintf(err, "replication: the password is not 16 to 128 "
                              "lowercase hex digits");
    return 0;
}

/* A GTID position: "", or domain-server-seq items separated by ','. */
static bool gtid_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == ','))
            return false;
    return true;
}

/* ---- parsing ---------------------------------------------------------- */

/* Copy a batch-mode value, undoing the client's escapes (\t \n \\ \0).
 * Tabs and newlines become spaces: the text is for one line of a log.
 */
static void unescape(char *dst, size_t cap, const char *src, size_t n)
{
    size_t k = 0;

    for (size_t i = 0; i < n && k + 1 < cap; i++) {
        char ch = src[i];
        if (ch == '\\' && i + 1 < n) {
            ch = src[++i];
            if (ch == 't' || ch == 'n')
                ch = ' ';
            else if (ch == '0')
                continue;
        }
        dst[k++] = ch;
    }
    dst[k] = '\0';
}

static int to_ull(const char *v, unsigned long long *out)
{
    char *end;

    if (!*v || *v == '-')
        return -1;
    errno = 0;
    *out = strtoull(v, &end, 10);
    return errno || *end ? -1 : 0;
}

static int to_int(const char *v, int *out)
{
    unsigned long long u;

    if (to_ull(v, &u) < 0 || u > INT_MAX)
        return -1;
    *out = (int)u;
    return 0;
}

#define COPY(dst, v) snprintf(dst, sizeof(dst), "%s", v)

/* One field of a result set into *st.  Returns -1 on a bad number. */
static int take_field(struct replica_status *st, const char *name,
                      const char *v, bool *marker)
{
    if (!strcmp(name, "Slave_IO_Running")) {
        st->configured = true;
        st->io_running = !strcmp(v, "Yes");
        st->io_connecting = !strcmp(v, "Connecting");
    } else if (!strcmp(name, "Slave_SQL_Running")) {
        st->sql_running = !strcmp(v, "Yes");
    } else if (!strcmp(name, "Seconds_Behind_Master")) {
        if (!strcmp(v, "NULL"))
            st->seconds_behind = -1;
        else
            return to_int(v, &st->seconds_behind);
    } else if (!strcmp(name, "Master_Host")) {
        COPY(st->master_host, v);
    } else if (!strcmp(name, "Master_Port")) {
        return to_int(v, &st->master_port);
    } else if (!strcmp(name, "Last_IO_Errno")) {
        return to_int(v, &st->io_errno);
    } else if (!strcmp(name, "Last_SQL_Errno")) {
        return to_int(v, &st->sql_errno);
    } else if (!strcmp(name, "Last_IO_Error")) {
        COPY(st->io_error, v);
    } else if (!strcmp(name, "Last_SQL_Error")) {
        COPY(st->sql_error, v);
    } else if (!strcmp(name, "Slave_SQL_Running_State")) {
        COPY(st->sql_state, v);
    } else if (!strcmp(name, "Gtid_IO_Pos")) {
        COPY(st->gtid_io_pos, v);
    } else if (!strcmp(name, "Master_Log_File")) {
        COPY(st->master_log_file, v);
    } else if (!strcmp(name, "Relay_Master_Log_File")) {
        COPY(st->relay_master_log_file, v);
    } else if (!strcmp(name, "Read_Master_Log_Pos")) {
        return to_ull(v, &st->read_pos);
    } else if (!strcmp(name, "Exec_Master_Log_Pos")) {
        return to_ull(v, &st->exec_pos);
    } else if (!strcmp(name, "Read_only")) {
        st->read_only = strcmp(v, "0") != 0;
    } else if (!strcmp(name, "Gtid_Slave_Pos")) {
        COPY(st->gtid_slave_pos, v);
    } else if (!strcmp(name, "Gtid_Binlog_Pos")) {
        COPY(st->gtid_binlog_pos, v);
    } else if (!strcmp(name, "Peerd_Status")) {
        *marker = !strcmp(v, STATUS_OK);
    }
    return 0;
}

/* The next line of *p (without its '\n'); NULL at the end. */
static const char *next_line(const char **p, size_t *len)
{
    const char *s = *p, *nl;

    if (!s || !*s)
        return NULL;
    nl = strchr(s, '\n');
    *len = nl ? (size_t)(nl - s) : strlen(s);
    *p = nl ? nl + 1 : s + *len;
    return s;
}

int replica_parse_status(const char *text, struct replica_status *st,
                         err_t *err)
{
    const char *p = text, *names, *values;
    size_t nlen, vlen;
    bool marker = false;

    memset(st, 0, sizeof(*st));
    st->seconds_behind = -1;
    while ((names = next_line(&p, &nlen))) {
        if (nlen == 0)
            continue;
        if (!(values = next_line(&p, &vlen)))
            return errprintf(err, "replication status: a line of names "
                                  "without values");
        /* walk both lines field by field, in step */
        const char *n = names, *v = values;
        const char *nend = names + nlen, *vend = values + vlen;
        for (;;) {
            const char *nt = memchr(n, '\t', nend - n);
            const char *vt = memchr(v, '\t', vend - v);
            size_t nl = (nt ? nt : nend) - n, vl = (vt ? vt : vend) - v;
            char name[64], value[512];

            if (!nt != !vt)
                return errprintf(err, "replication status: names and "
                                      "values do not match");
            unescape(name, sizeof(name), n, nl);
            unescape(value, sizeof(value), v, vl);
            if (take_field(st, name, value, &marker) < 0)
                return errprintf(err,
                                 "replication status: %s is not a "
                                 "number: '%s'",
                                 name, value);
            if (!nt)
                break;
            n = nt + 1;
            v = vt + 1;
        }
    }
    if (!marker)
        return errprintf(err, "replication status: incomplete output");
    st->relay_applied =
        st->configured &&
        !strcmp(st->master_log_file, st->relay_master_log_file) &&
        st->read_pos == st->exec_pos;
    return 0;
}

int replica_parse_dump_tail(const char *tail, char *gtid, size_t cap,
                            err_t *err)
{
    static const char set[] = "-- SET GLOBAL gtid_slave_pos='";
    const char *at = NULL, *q, *end;

    for (const char *s = tail; (s = strstr(s, set)); s++)
        if (s == tail || s[-1] == '\n')
            at = s;
    if (!at)
        return errprintf(err, "the dump holds no GTID position "
                              "(--master-data=2 --gtid)");
    q = at + sizeof(set) - 1;
    if (!(end = strchr(q, '\'')) || !gtid_ok(q, end - q) ||
        strncmp(end, "';\n", 3) != 0)
        return errprintf(err, "the dump's GTID position is malformed");
    if ((size_t)(end - q) >= cap)
        return errprintf(err, "the dump's GTID position is too long");
    /* mariadb-dump writes this last, and only when everything worked */
    if (!strstr(end, "\n-- Dump completed"))
        return errprintf(err, "the dump did not complete");
    memcpy(gtid, q, end - q);
    gtid[end - q] = '\0';
    return 0;
}

enum replica_action replica_next_action(const struct replica_status *st,
                                        const char *primary_addr,
                                        int primary_port)
{
    if (!st->configured || strcmp(st->master_host, primary_addr) != 0 ||
        st->master_port != primary_port)
        return REPLICA_REBUILD;
    /* An applier error (a missing row, a duplicate key: the data
     * differ) or a position the primary cannot serve: only a new copy
     * repairs either.
     */
    if ((!st->sql_running && st->sql_errno) ||
        st->io_errno == ER_MASTER_FATAL_READING_BINLOG)
        return REPLICA_REBUILD;
    if (st->io_connecting)
        return REPLICA_WAIT;
    if (!st->io_running && st->io_errno)
        return REPLICA_REBUILD; /* stopped for good on an error */
    if (st->io_running && st->sql_running && st->read_only)
        return REPLICA_FOLLOWING;
    return REPLICA_START;
}

/* Append one line to the setup log (best effort; never the password). */
static void note(const struct acct_layout *l, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void note(const struct acct_layout *l, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    int fd, n;

    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if (n > (int)sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    fd = open(l->setup_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0)
        return;
    if (write(fd, line, n) < 0) {
        /* best effort */
    }
    close(fd);
}

/* ---- steps ------------------------------------------------------------ */

/* Seconds left before end, or -1 with err when there are none. */
static double time_left(double end, const char *what, err_t *err)
{
    double left = end - mono_now();

    if (left <= 0.05)
        return errprintf(err, "replication: out of time before %s", what);
    return left;
}

/* acct_sql with the time left and the step's name in the error. */
static int sql_step(const struct acct_layout *l, const char *sql, double end,
                    const char *what, char *out, size_t cap, err_t *err)
{
    double left = time_left(end, what, err);
    err_t e = {{0}};

    if (left < 0)
        return -1;
    if (acct_sql(l, sql, left, out, cap, &e) < 0)
        return errprintf(err, "%s: %s", what, e.text);
    return 0;
}

int replica_status(const struct acct_layout *l, double timeout,
                   struct replica_status *st, err_t *err)
{
    char sock[PATH_MAX + 16];
    struct child *c = calloc(1, sizeof(*c));
    int rc = -1;

    memset(st, 0, sizeof(*st));
    st->seconds_behind = -1;
    if (!c)
        return errprintf_errno(err, "replication status");
    snprintf(sock, sizeof(sock), "--socket=%s", l->db_socket);
    const char *argv[] = {
        "mariadb",
        "--no-defaults",
        "--protocol=socket",
        sock,
        "--user=root",
        "--batch",
        "--execute=SHOW SLAVE STATUS; SELECT @@read_only AS Read_only, "
        "@@gtid_slave_pos AS Gtid_Slave_Pos, "
        "@@gtid_binlog_pos AS Gtid_Binlog_Pos, "
        "'" STATUS_OK "' AS Peerd_Status",
        NULL};
    const char *envp[] = {CHILD_PATH, "LC_ALL=C", NULL};
    *c = (struct child){.argv = argv, .envp = envp, .in_fd = -1, .out_fd = -1};
    c->timeout = timeout;
    if (child_run(c, err) < 0)
        goto out;
    if (!child_ok(c) || !strstr(c->out, STATUS_OK)) {
        child_failed(c, "replication status", err);
        goto out;
    }
    rc = replica_parse_status(c->out, st, err);
out:
    free(c);
    return rc;
}

/* The replication account, made or repaired on this server only. */
static void account_sql(char *sql, size_t cap, const char *password)
{
    snprintf(sql, cap,
             "SET SESSION sql_log_bin=0;\n"
             "CREATE USER IF NOT EXISTS '" REPLICA_USER "'@'%%' "
             "IDENTIFIED BY '%s';\n"
             "ALTER USER '" REPLICA_USER "'@'%%' IDENTIFIED BY '%s';\n"
             "GRANT REPLICATION SLAVE ON *.* TO '" REPLICA_USER "'@'%%';\n"
             "GRANT SELECT, SHOW VIEW ON " ACCT_DB_NAME ".* TO '" REPLICA_USER
             "'@'%%';\n"
             "GRANT SELECT ON mysql.proc TO '" REPLICA_USER "'@'%%';\n"
             "SET SESSION sql_log_bin=1;\n",
             password, password);
}

int replica_primary_setup(const struct acct_layout *l, const char *password,
                          double timeout, err_t *err)
{
    struct replica_status st;
    double end = mono_now() + timeout;
    char sql[2048];
    int rc = -1;

    if (!acct_password_ok(password))
        return errprintf(err, "replication: the password is not 16 to 128 "
                              "lowercase hex digits");
    if (replica_status(l, timeout, &st, err) < 0)
        return -1;
    if (st.configured)
        return errprintf(err,
                         "replication: this server replicates from %s:%d; "
                         "promote it before making it the primary",
                         st.master_host, st.master_port);
    account_sql(sql, sizeof(sql), password);
    size_t n = strlen(sql);
    snprintf(sql + n, sizeof(sql) - n, "SET GLOBAL read_only=0;\n");
    if (sql_step(l, sql, end, "setting up the primary", NULL, 0, err) < 0)
        goto out;
    rc = 0;
out:
    sodium_memzero(sql, sizeof(sql));
    return rc;
}

/* DATA/REPLICA_LOAD_FILE, beside DATA/mariadb. */
static int load_path(const struct acct_layout *l, char *path, size_t cap,
                     err_t *err)
{
    const char *slash = strrchr(l->db_dir, '/');
    int n;

    if (!slash)
        return errprintf(err, "replication: no data dir above %s", l->db_dir);
    n = snprintf(path, cap, "%.*s/" REPLICA_LOAD_FILE, (int)(slash - l->db_dir),
                 l->db_dir);
    if (n < 0 || (size_t)n >= cap)
        return errprintf(err, "replication: data dir path too long");
    return 0;
}

static int put_all(int fd, const char *s)
{
    size_t len = strlen(s), done = 0;

    while (done < len) {
        ssize_t n = write(fd, s + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        done += n;
    }
    return 0;
}

/* Dump the primary's database into fd (after the prologue already
 * there), then read the GTID position from the dump's tail.
 */
static int dump_primary(const struct acct_layout *l, struct child *c, int fd,
                        const char *addr, int port, const char *password,
                        double end, char *gtid, size_t cap, err_t *err)
{
    char host[64], portarg[32], pwenv[160], *tail = NULL;
    double left = time_left(end, "the dump", err), t0 = mono_now();
    struct stat sb;
    off_t from;
    ssize_t n;
    int rc = -1;

    if (left < 0)
        return -1;
    snprintf(host, sizeof(host), "--host=%s", addr);
    snprintf(portarg, sizeof(portarg), "--port=%d", port);
    /* the password in the environment: /proc/PID/environ is root's only,
     * while the command line is anybody's to read
     */
    snprintf(pwenv, sizeof(pwenv), "MYSQL_PWD=%s", password);
    const char *argv[] = {"mariadb-dump", "--no-defaults", "--protocol=tcp",
                          host, portarg, "--user=" REPLICA_USER,
                          /* one consistent snapshot; its binary log
                           * position comes from the snapshot itself
                           * (binlog_snapshot_file), so no FLUSH TABLES
                           * WITH READ LOCK and no RELOAD privilege
                           */
                          "--single-transaction", "--master-data=2", "--gtid",
                          "--routines", "--hex-blob", "--databases",
                          ACCT_DB_NAME, NULL};
    const char *envp[] = {CHILD_PATH, "LC_ALL=C", pwenv, NULL};
    *c = (struct child){.argv = argv, .envp = envp, .in_fd = -1, .out_fd = fd};
    c->timeout = left;
    if (child_run(c, err) < 0)
        goto out;
    if (!child_ok(c)) {
        child_failed(c, "mariadb-dump", err);
        goto out;
    }
    /* the tail decides, whatever the exit status we got */
    if (fstat(fd, &sb) < 0 || !(tail = malloc(TAIL_CAP + 1))) {
        errprintf_errno(err, "replication: reading the dump");
        goto out;
    }
    from = sb.st_size > TAIL_CAP ? sb.st_size - TAIL_CAP : 0;
    if ((n = pread(fd, tail, TAIL_CAP, from)) < 0) {
        errprintf_errno(err, "replication: reading the dump");
        goto out;
    }
    tail[n] = '\0';
    if (replica_parse_dump_tail(tail, gtid, cap, err) < 0)
        goto out;
    note(l,
         "--- replica: mariadb-dump from %s:%d: %lld bytes in %.2f s, at "
         "GTID '%s'",
         addr, port, (long long)sb.st_size, mono_now() - t0, gtid);
    rc = 0;
out:
    if (rc < 0)
        note(l, "--- replica: mariadb-dump from %s:%d failed: %s", addr, port,
             c->err);
    sodium_memzero(pwenv, sizeof(pwenv));
    free(tail);
    return rc;
}

/* Feed the load file to the mariadb client; it stops at the first error,
 * so the marker at the end prints only if every statement ran.
 */
static int load_dump(const struct acct_layout *l, struct child *c,
                     const char *path, double end, err_t *err)
{
    char sock[PATH_MAX + 16];
    double left = time_left(end, "loading the dump", err), t0 = mono_now();
    int fd, rc = -1;

    if (left < 0)
        return -1;
    if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
        return errprintf_errno(err, "replication: cannot open %s", path);
    snprintf(sock, sizeof(sock), "--socket=%s", l->db_socket);
    const char *argv[] = {
        "mariadb",     "--no-defaults", "--protocol=socket",   sock,
        "--user=root", "--batch",       "--skip-column-names", NULL};
    const char *envp[] = {CHILD_PATH, "LC_ALL=C", NULL};
    *c = (struct child){.argv = argv, .envp = envp, .in_fd = fd, .out_fd = -1};
    c->timeout = left;
    if (child_run(c, err) < 0)
        goto out;
    if (!child_ok(c) || !strstr(c->out, LOAD_OK)) {
        child_failed(c, "loading the dump", err);
        note(l, "--- replica: loading the dump failed: %s", c->err);
        goto out;
    }
    note(l, "--- replica: dump loaded in %.2f s", mono_now() - t0);
    rc = 0;
out:
    close(fd);
    return rc;
}

/* Poll the status until both threads run or the replica reports an
 * error it will not get over by itself.
 */
static int wait_running(const struct acct_layout *l, double end, err_t *err)
{
    struct replica_status st;
    bool seen = false;

    for (;;) {
        double left = end - mono_now();
        if (left <= 0.05)
            break;
        if (replica_status(l, left, &st, err) < 0)
            return -1;
        seen = true;
        if (st.io_running && st.sql_running)
            return 0;
        if (!st.sql_running && st.sql_errno)
            return errprintf(err, "replication: the applier stopped: %d %s",
                             st.sql_errno, st.sql_error);
        if (!st.io_running && st.io_errno && !st.io_connecting)
            return errprintf(err, "replication: the receiver stopped: %d %s",
                             st.io_errno, st.io_error);
        if (mono_now() + POLL_EVERY >= end)
            break;
        pause_for(POLL_EVERY);
    }
    if (!seen)
        return errprintf(err, "replication: out of time before it ran");
    return errprintf(err, "replication: not running yet (receiver %s%s%s)",
                     st.io_connecting ? "connecting" : "stopped",
                     st.io_errno ? ": " : "", st.io_error);
}

int replica_follow(const struct acct_layout *l, const char *primary_addr,
                   int primary_port, const char *password, double timeout,
                   err_t *err)
{
    char path[PATH_MAX], gtid[REPLICA_GTID_MAX], sql[2048];
    double end = mono_now() + timeout, left, started;
    struct child *c = NULL;
    err_t e = {{0}};
    int fd = -1, rc = -1;

    if (replica_check_primary(primary_addr, primary_port, password, err) < 0)
        return -1;
    if (load_path(l, path, sizeof(path), err) < 0)
        return -1;
    if (!(c = calloc(1, sizeof(*c))))
        return errprintf_errno(err, "replication");

    /* The load file: a prologue, the dump, a marker.  Loaded without
     * binary logging (it is the primary's data, not this server's
     * history), and DROP DATABASE gives up rather than wait for ever on
     * a connection still holding a table.
     */
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        errprintf_errno(err, "replication: cannot create %s", path);
        goto out;
    }
    snprintf(sql, sizeof(sql),
             "SET SESSION sql_log_bin=0;\n"
             "SET SESSION lock_wait_timeout=%d;\n"
             "DROP DATABASE IF EXISTS " ACCT_DB_NAME ";\n",
             (int)(timeout > 2 ? timeout / 2 : 1));
    if (put_all(fd, sql) < 0) {
        errprintf_errno(err, "replication: cannot write %s", path);
        goto out;
    }
    if (dump_primary(l, c, fd, primary_addr, primary_port, password, end, gtid,
                     sizeof(gtid), err) < 0)
        goto out;
    if (lseek(fd, 0, SEEK_END) < 0 ||
        put_all(fd, "\nSELECT '" LOAD_OK "';\n") < 0) {
        errprintf_errno(err, "replication: cannot write %s", path);
        goto out;
    }
    close(fd);
    fd = -1;
    /* Only now, with the copy in hand, is this server touched (a primary
     * out of reach leaves a replica as it was): nothing from before
     * survives, and slurmdbd's user cannot write while it is rebuilt.
     */
    if (sql_step(l,
                 "STOP SLAVE;\nRESET SLAVE ALL;\n"
                 "SET GLOBAL read_only=1;\n",
                 end, "stopping replication", NULL, 0, err) < 0)
        goto out;
    if (load_dump(l, c, path, end, err) < 0)
        goto out;

    /* The accounting users and the replication account exist here too:
     * the primary's own user statements, replicated, then apply cleanly
     * (a GRANT to a user the replica lacks stops replication), and a
     * promoted replica serves slurmdbd at once.  What they write to the
     * binary log goes with RESET MASTER below.
     */
    if ((left = time_left(end, "the accounting users", err)) < 0)
        goto out;
    if (acct_bootstrap_db(l, password, left, &e) < 0) {
        errprintf(err, "replication: %s", e.text);
        goto out;
    }
    account_sql(sql, sizeof(sql), password);
    if (sql_step(l, sql, end, "the replication account", NULL, 0, err) < 0)
        goto out;

    /* RESET MASTER: this server's history (a diverged one, for an old
     * primary) is never served to anyone; it also lets gtid_slave_pos
     * be set without a conflict with a later GTID in the binary log.
     */
    snprintf(sql, sizeof(sql),
             "RESET MASTER;\n"
             "SET GLOBAL gtid_slave_pos='%s';\n"
             "CHANGE MASTER TO MASTER_HOST='%s', MASTER_PORT=%d, "
             "MASTER_USER='" REPLICA_USER "', MASTER_PASSWORD='%s', "
             "MASTER_USE_GTID=slave_pos, "
             "MASTER_CONNECT_RETRY=%d;\n"
             "SET GLOBAL read_only=1;\n"
             "START SLAVE;\n",
             gtid, primary_addr, primary_port, password, REPLICA_CONNECT_RETRY);
    if (sql_step(l, sql, end, "starting replication", NULL, 0, err) < 0)
        goto out;
    started = mono_now();
    if (wait_running(l, end, err) < 0)
        goto out;
    note(l,
         "--- replica: following %s:%d from GTID '%s' (%.2f s in all, "
         "%.2f s of it for the threads to run)",
         primary_addr, primary_port, gtid, mono_now() - (end - timeout),
         mono_now() - started);
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    unlink(path);
    sodium_memzero(sql, sizeof(sql));
    free(c);
    return rc;
}

int replica_start(const struct acct_layout *l, double timeout, err_t *err)
{
    struct replica_status st;
    double end = mono_now() + timeout;

    if (replica_status(l, timeout, &st, err) < 0)
        return -1;
    if (!st.configured)
        return errprintf(err, "replication: this server is no replica");
    if (sql_step(l, "SET GLOBAL read_only=1;\nSTART SLAVE;\n", end,
                 "starting replication", NULL, 0, err) < 0)
        return -1;
    return 0;
}

int replica_promote(const struct acct_layout *l, double timeout,
                    struct replica_promotion *p, err_t *err)
{
    struct replica_status st;
    double end = mono_now() + timeout, t0;
    /* what the last steps need, kept out of the wait */
    double reserve = timeout / 4 < 2.0 ? timeout / 4 : 2.0;
    char out[REPLICA_GTID_MAX + 8];

    memset(p, 0, sizeof(*p));
    if (replica_status(l, timeout, &st, err) < 0)
        return -1;
    if (!st.configured)
        return sql_step(l, "SET GLOBAL read_only=0;\n", end,
                        "making the server writable", NULL, 0, err);
    p->was_replica = true;
    /* Receive nothing more: the primary is gone, or must be. */
    if (sql_step(l, "STOP SLAVE IO_THREAD;\n", end, "stopping the receiver",
                 NULL, 0, err) < 0)
        return -1;
    t0 = mono_now();
    for (;;) {
        double left = time_left(end, "the applier caught up", err);
        if (left < 0)
            return -1;
        if (replica_status(l, left, &st, err) < 0)
            return -1;
        if (st.relay_applied) {
            p->caught_up = true;
            break;
        }
        if (!st.sql_running) { /* stopped on an error: no use waiting */
            COPY(p->sql_error, st.sql_error);
            break;
        }
        /* idle with the positions apart: the rest of a transaction that
         * never arrived whole; it cannot be applied
         */
        if (strstr(st.sql_state, "has read all relay log"))
            break;
        if (mono_now() + POLL_EVERY >= end - reserve)
            break;
        pause_for(POLL_EVERY);
    }
    p->waited = mono_now() - t0;
    if (sql_step(l,
                 "STOP SLAVE;\nSELECT @@gtid_slave_pos;\nRESET SLAVE ALL;\n"
                 "SET GLOBAL read_only=0;\n",
                 end, "promoting", out, sizeof(out), err) < 0)
        return -1;
    out[strcspn(out, "\n")] = '\0';
    COPY(p->gtid, out);
    return 0;
}
