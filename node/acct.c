/* acct.c - accounting on the storage host: MariaDB and slurmdbd
 *
 * Two kinds of code live here: pure functions (paths, slurmdbd.conf,
 * command lines, parsing sacctmgr's output), and the setup and health
 * steps, which run short commands as children.  A child runs in its own
 * process group with an empty signal mask, its stdin fed from a string,
 * its stdout and stderr captured (and copied to a log file), and is
 * killed with its whole group when its time is up.  Between fork() and
 * execve() the child makes only async-signal-safe calls, because peerd
 * has threads.
 *
 * Whether a step worked is decided from what the command printed, with
 * its exit status when we get it: peerd's main loop reaps every child
 * with waitpid(-1), so a step run from the health thread may find its
 * child already reaped (ECHILD).
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "node/acct.h"
#include "node/child.h"
#include "node/render.h"
#include "store/file.h"

#define CHILD_PATH                                                             \
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define INSTALL_TIMEOUT 120.0 /* mariadb-install-db: 1 s here */
/* In a datadir that is a mount point: the install has not finished. */
#define INIT_MARKER ".peerd-initialising"
#define ACCT_SQL_OK "peerd-sql-ok"

static double mono_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

#define PATHF(dst, ...)                                                        \
    (snprintf(dst, sizeof(dst), __VA_ARGS__) >= (int)sizeof(dst))

/* ---- paths ------------------------------------------------------------ */

int acct_layout_init(const char *data_dir, struct acct_layout *l, err_t *err)
{
    struct passwd *pw = getpwnam("mysql");

    memset(l, 0, sizeof(*l));
    l->db_uid = pw ? pw->pw_uid : 0;
    l->db_gid = pw ? pw->pw_gid : 0;
    if (PATHF(l->db_socket, "%s/mariadb/db.sock", data_dir))
        return errprintf(err,
                         "%s/mariadb/db.sock is too long for a Unix "
                         "socket (at most %zu characters)",
                         data_dir, sizeof(l->db_socket) - 1);
    if (PATHF(l->db_dir, "%s/mariadb", data_dir) ||
        PATHF(l->db_pid, "%s/mariadb/mariadbd.pid", data_dir) ||
        PATHF(l->dbd_dir, "%s/slurmdbd", data_dir) ||
        PATHF(l->dbd_conf, "%s/slurmdbd/slurmdbd.conf", data_dir) ||
        PATHF(l->dbd_conf_env, "SLURM_CONF=%s/slurmdbd/slurm.conf", data_dir) ||
        PATHF(l->dbd_pid, "%s/slurmdbd/slurmdbd.pid", data_dir) ||
        PATHF(l->log_dir, "%s/log", data_dir) ||
        PATHF(l->db_log, "%s/log/mariadb.log", data_dir) ||
        PATHF(l->dbd_log, "%s/log/slurmdbd.log", data_dir) ||
        PATHF(l->setup_log, "%s/log/acct.log", data_dir))
        return errprintf(err, "data dir path too long: %s", data_dir);
    return 0;
}

/* ---- acct_prepare ----------------------------------------------------- */

/* Can uid/gid search every directory from / down to dir?  A mktemp dir
 * (0700 root) above the data dir would stop mariadbd with an obscure
 * error; say so plainly instead.  Supplementary groups and ACLs are not
 * considered.
 */
static int reachable(const char *dir, uid_t uid, gid_t gid, const char *who,
                     err_t *err)
{
    char prefix[PATH_MAX];
    size_t n = strlen(dir);
    struct stat st;

    if (uid == 0)
        return 0;
    if (n >= sizeof(prefix))
        return errprintf(err, "path too long: %s", dir);
    /* each prefix that ends before a '/' or at the end: /, /a, /a/b */
    for (size_t i = 0; i <= n; i++) {
        if (i < n && dir[i] != '/')
            continue;
        if (i == 0)
            snprintf(prefix, sizeof(prefix), "/");
        else
            snprintf(prefix, sizeof(prefix), "%.*s", (int)i, dir);
        if (stat(prefix, &st) < 0)
            return errprintf_errno(err, "cannot stat %s", prefix);
        mode_t need = st.st_uid == uid   ? S_IXUSR
                      : st.st_gid == gid ? S_IXGRP
                                         : S_IXOTH;
        if (!(st.st_mode & need))
            return errprintf(err,
                             "the %s user cannot reach %s: %s has mode "
                             "%04o (owner %d); make it searchable "
                             "(chmod o+x)",
                             who, dir, prefix, (int)(st.st_mode & 07777),
                             (int)st.st_uid);
    }
    return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag,
                    struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

static int rm_tree(const char *path)
{
    struct stat st;

    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : -1;
    return nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

static int is_dir(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc;

    if (fd < 0)
        return -1;
    rc = fsync(fd);
    close(fd);
    return rc;
}

/* A file system's own lost+found is not content. */
static bool ignorable(const char *name)
{
    return !strcmp(name, ".") || !strcmp(name, "..") ||
           !strcmp(name, "lost+found");
}

/* Is dir missing or empty (but for lost+found and, with marker, an
 * unfinished in-place install)?
 */
static bool empty_dir(const char *dir, bool marker)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    bool empty = true;
    char path[PATH_MAX];
    struct stat st;

    if (!d)
        return errno == ENOENT;
    if (marker && !PATHF(path, "%s/" INIT_MARKER, dir) && stat(path, &st) == 0)
        empty = true; /* what is there is an install that did not finish */
    else
        while (empty && (de = readdir(d)))
            if (!ignorable(de->d_name))
                empty = false;
    closedir(d);
    return empty;
}

/* Is dir a mount point (another file system than its parent's)?  A
 * dedicated disk for the database is mounted at DATA/mariadb: it cannot
 * be replaced by a rename.
 */
static bool mount_point(const char *dir)
{
    char parent[PATH_MAX + 4];
    struct stat a, b;

    if (PATHF(parent, "%s/..", dir) || stat(dir, &a) < 0 ||
        stat(parent, &b) < 0)
        return false;
    return a.st_dev != b.st_dev;
}

/* Remove everything in dir but lost+found. */
static int clear_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char path[PATH_MAX];
    int rc = 0;

    if (!d)
        return -1;
    while ((de = readdir(d)))
        if (!ignorable(de->d_name) &&
            (PATHF(path, "%s/%s", dir, de->d_name) || rm_tree(path) < 0))
            rc = -1;
    closedir(d);
    return rc;
}

static int init_datadir(const char *data_dir, struct acct_layout *l,
                        bool in_place, err_t *err)
{
    char tmp[PATH_MAX], sys[PATH_MAX + 8], dbarg[PATH_MAX + 16], userarg[64];
    char marker[PATH_MAX];
    struct passwd *pw = getpwuid(l->db_uid);
    struct child r = {0};
    int fd;

    if (in_place) {
        /* the marker says "unfinished" until the install succeeded */
        snprintf(tmp, sizeof(tmp), "%s", l->db_dir);
        if (PATHF(marker, "%s/" INIT_MARKER, tmp))
            return errprintf(err, "data dir path too long: %s", data_dir);
        if ((fd = open(marker, O_WRONLY | O_CREAT | O_CLOEXEC, 0600)) < 0)
            return errprintf_errno(err, "cannot create %s", marker);
        close(fd);
        if (clear_dir(tmp) < 0)
            return errprintf_errno(err, "cannot empty %s", tmp);
        if ((fd = open(marker, O_WRONLY | O_CREAT | O_CLOEXEC, 0600)) < 0)
            return errprintf_errno(err, "cannot create %s", marker);
        close(fd);
        if (chown(tmp, l->db_uid, l->db_gid) < 0 || chmod(tmp, 0700) < 0)
            return errprintf_errno(err, "cannot give %s to mysql", tmp);
    } else {
        if (PATHF(tmp, "%s/mariadb.new", data_dir))
            return errprintf(err, "data dir path too long: %s", data_dir);
        if (rm_tree(tmp) < 0)
            return errprintf_errno(err, "cannot remove the leftover %s", tmp);
        if (file_ensure_dir(tmp, 0700, l->db_uid, l->db_gid, err) < 0)
            return -1;
    }
    snprintf(dbarg, sizeof(dbarg), "--datadir=%s", tmp);
    snprintf(userarg, sizeof(userarg), "--user=%s", pw ? pw->pw_name : "mysql");
    const char *argv[] = {"mariadb-install-db", "--no-defaults", dbarg, userarg,
                          "--auth-root-authentication-method=socket",
                          "--skip-test-db", "--skip-name-resolve",
                          /* as mariadbd will run: no resize at first start */
                          "--innodb-log-file-size=" ACCT_INNODB_LOG_FILE, NULL};
    const char *envp[] = {CHILD_PATH, "LC_ALL=C", NULL};
    r.argv = argv;
    r.envp = envp;
    r.log_path = l->setup_log;
    r.timeout = INSTALL_TIMEOUT;
    if (child_run(&r, err) < 0)
        return -1;
    snprintf(sys, sizeof(sys), "%s/mysql", tmp);
    if (!child_ok(&r) || !is_dir(sys)) {
        char what[PATH_MAX + 64];
        snprintf(what, sizeof(what), "mariadb-install-db (see %s)",
                 l->setup_log);
        return child_failed(&r, what, err);
    }
    if (in_place) {
        if (fsync_dir(tmp) < 0 || unlink(marker) < 0 || fsync_dir(tmp) < 0)
            return errprintf_errno(err, "cannot finish %s", tmp);
        return 0;
    }
    if (rename(tmp, l->db_dir) < 0)
        return errprintf_errno(err, "cannot rename %s to %s", tmp, l->db_dir);
    if (fsync_dir(data_dir) < 0)
        return errprintf_errno(err, "cannot fsync %s", data_dir);
    return 0;
}

int acct_prepare(const char *data_dir, struct acct_layout *l, err_t *err)
{
    char sys[PATH_MAX + 8];

    if (acct_layout_init(data_dir, l, err) < 0)
        return -1;
    if (l->db_uid == 0)
        return errprintf(err, "there is no mysql user: is mariadb-server "
                              "installed?");
    if (file_ensure_dir(l->log_dir, 0755, 0, 0, err) < 0 ||
        file_ensure_dir(l->dbd_dir, 0700, 0, 0, err) < 0)
        return -1;
    if (reachable(data_dir, l->db_uid, l->db_gid, "mysql", err) < 0)
        return -1;
    snprintf(sys, sizeof(sys), "%s/mysql", l->db_dir);
    bool in_place = mount_point(l->db_dir);
    if (!is_dir(sys) || (in_place && empty_dir(l->db_dir, true) &&
                         !empty_dir(l->db_dir, false))) {
        /* Not initialised.  An empty DATA/mariadb (made by hand) is
         * replaced by the rename; a mount point (a disk of its own) is
         * filled in place; one with files in it is somebody's.
         */
        if (!empty_dir(l->db_dir, in_place))
            return errprintf(err,
                             "%s is not empty but holds no MariaDB "
                             "system tables (no mysql/); move it away",
                             l->db_dir);
        if (init_datadir(data_dir, l, in_place, err) < 0)
            return -1;
    }
    return file_ensure_dir(l->db_dir, 0700, l->db_uid, l->db_gid, err);
}

/* ---- slurmdbd.conf ---------------------------------------------------- */

/* A value slurmdbd.conf can hold: no white space, '#', '=' or control
 * characters, nothing outside ASCII.
 */
static int check_value(const char *name, const char *v, err_t *err)
{
    if (!v || !*v)
        return errprintf(err, "slurmdbd.conf: %s is empty", name);
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if (*p <= ' ' || *p == '#' || *p == '=' || *p >= 0x7f)
            return errprintf(err,
                             "slurmdbd.conf: %s '%s' has a character "
                             "slurmdbd cannot take",
                             name, v);
    return 0;
}

bool acct_password_ok(const char *pw)
{
    size_t n = pw ? strlen(pw) : 0;

    if (n < 16 || n > 128)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((pw[i] >= '0' && pw[i] <= '9') || (pw[i] >= 'a' && pw[i] <= 'f')))
            return false;
    return true;
}

void acct_password_generate(char out[ACCT_PASSWORD_LEN + 1])
{
    unsigned char raw[ACCT_PASSWORD_LEN / 2];

    randombytes_buf(raw, sizeof(raw));
    sodium_bin2hex(out, ACCT_PASSWORD_LEN + 1, raw, sizeof(raw));
    sodium_memzero(raw, sizeof(raw));
}

char *acct_render_slurmdbd_conf(const struct acct_params *p, err_t *err)
{
    struct textbuf b = {0};
    const struct {
        const char *name, *value;
    } checks[] = {
        {"DbdHost", p->dbd_host},
        {"munge socket", p->munge_socket},
        {"StorageHost", p->storage_host},
        {"PidFile", p->pid_file},
    };

    for (size_t i = 0; i < sizeof(checks) / sizeof(checks[0]); i++)
        if (check_value(checks[i].name, checks[i].value, err) < 0)
            return NULL;
    if (p->dbd_addr && check_value("DbdAddr", p->dbd_addr, err) < 0)
        return NULL;
    if (p->dbd_port < 1 || p->dbd_port > 65535 || p->storage_port < 1 ||
        p->storage_port > 65535) {
        errprintf(err, "slurmdbd.conf: DbdPort and StoragePort must be "
                       "1 to 65535");
        return NULL;
    }
    if (!acct_password_ok(p->storage_pass)) {
        errprintf(err, "slurmdbd.conf: the database password is not 16 to "
                       "128 lowercase hex digits");
        return NULL;
    }
    b.cap = 1024;
    if (!(b.data = malloc(b.cap))) {
        errprintf_errno(err, "cannot render slurmdbd.conf");
        return NULL;
    }
    textbuf_put(&b, RENDER_MARKER ". Do not edit:\n");
    textbuf_put(
        &b, "# peerd rewrites this file; it holds the database password.\n");
    textbuf_put(&b, "AuthType=auth/munge\n");
    textbuf_put(&b, "AuthInfo=socket=%s\n", p->munge_socket);
    textbuf_put(&b, "DbdHost=%s\n", p->dbd_host);
    if (p->dbd_addr)
        textbuf_put(&b, "DbdAddr=%s\n", p->dbd_addr);
    textbuf_put(&b, "DbdPort=%d\n", p->dbd_port);
    textbuf_put(&b, "SlurmUser=root\n");
    textbuf_put(&b, "DebugLevel=info\n");
    /* no LogFile: slurmdbd -D logs to stderr, which the supervisor keeps */
    textbuf_put(&b, "PidFile=%s\n", p->pid_file);
    textbuf_put(&b, "StorageType=accounting_storage/mysql\n");
    /* An address, never "localhost": for that name the client library
     * uses its compiled-in socket /run/mysqld/mysqld.sock, and
     * slurmdbd.conf has no setting for another one.
     */
    textbuf_put(&b, "StorageHost=%s\n", p->storage_host);
    textbuf_put(&b, "StoragePort=%d\n", p->storage_port);
    textbuf_put(&b, "StorageUser=" ACCT_DB_USER "\n");
    textbuf_put(&b, "StoragePass=%s\n", p->storage_pass);
    textbuf_put(&b, "StorageLoc=" ACCT_DB_NAME "\n");
    if (b.failed) {
        free(b.data);
        errprintf(err, "cannot render slurmdbd.conf: out of memory");
        return NULL;
    }
    return b.data;
}

int acct_write_slurmdbd_conf(const struct acct_layout *l,
                             const struct acct_params *p, err_t *err)
{
    char *text = acct_render_slurmdbd_conf(p, err), *old;
    size_t len;
    int rc;

    if (!text)
        return -1;
    old = file_read(l->dbd_conf, 1 << 16, &len, NULL);
    if (old && strcmp(old, text) == 0) {
        rc = 0;
    } else {
        rc = file_write_atomic(l->dbd_conf, text, strlen(text), 0600, 0, 0,
                               err) < 0
                 ? -1
                 : 1;
    }
    if (old) {
        sodium_memzero(old, len);
        free(old);
    }
    sodium_memzero(text, strlen(text));
    free(text);
    return rc;
}

/* ---- command lines ---------------------------------------------------- */

static int set_argv(struct svc_argv *a, const char *const *v, int bad,
                    err_t *err)
{
    int n = 0;

    if (bad)
        return errprintf(err, "command line too long");
    for (; v[n]; n++) {
        if (n == SVC_ARGV_MAX)
            return errprintf(err, "too many arguments");
        a->argv[n] = v[n];
    }
    a->argv[n] = NULL;
    return 0;
}

/* "127.0.0.1" or "127.0.0.1,10.0.0.5": addresses only, no names (the
 * server resolves nothing), no empty item.
 */
static int check_binds(const char *s, err_t *err)
{
    bool item = false;

    if (!s || !*s)
        return errprintf(err, "MariaDB: no address to bind");
    for (const char *p = s; *p; p++) {
        if (*p == ',') {
            if (!item)
                break;
            item = false;
            continue;
        }
        if (!strchr("0123456789abcdefABCDEF.:", *p))
            return errprintf(err,
                             "MariaDB: bind address list '%s' is not "
                             "a comma-separated list of addresses",
                             s);
        item = true;
    }
    if (!item)
        return errprintf(err,
                         "MariaDB: bind address list '%s' has an "
                         "empty item",
                         s);
    return 0;
}

int acct_mariadb_argv(struct svc_argv *a, const struct acct_layout *l,
                      const char *bin, const char *bind_addrs, int port,
                      unsigned server_id, err_t *err)
{
    int bad = 0;

    memset(a, 0, sizeof(*a));
    if (check_binds(bind_addrs, err) < 0)
        return -1;
    if (port < 1 || port > 65535)
        return errprintf(err, "MariaDB: port %d out of range", port);
    const char *v[] = {
        svc_arg(a, &bad, "%s", bin ? bin : "mariadbd"),
        "--no-defaults", /* must come first; /etc/mysql does not apply */
        svc_arg(a, &bad, "--datadir=%s", l->db_dir),
        svc_arg(a, &bad, "--socket=%s", l->db_socket),
        svc_arg(a, &bad, "--pid-file=%s", l->db_pid),
        svc_arg(a, &bad, "--bind-address=%s", bind_addrs),
        svc_arg(a, &bad, "--port=%d", port),
        "--skip-name-resolve",
        /* no --log-error: errors go to stderr, into the service's log */
        "--innodb-buffer-pool-size=" ACCT_INNODB_BUFFER_POOL,
        "--innodb-log-file-size=" ACCT_INNODB_LOG_FILE,
        "--innodb-lock-wait-timeout=" ACCT_INNODB_LOCK_WAIT,
        /* replication (multi): a binary log kept in the datadir, with
         * GTIDs; what a replica applies is logged too, so a promoted
         * replica can serve the next one.  peerd starts replication
         * itself (never a stale primary from a previous life).
         */
        svc_arg(a, &bad, "--server-id=%u", server_id ? server_id : 1u),
        "--log-bin=binlog",
        "--log-slave-updates",
        "--binlog-format=ROW",
        "--binlog-expire-logs-seconds=" ACCT_BINLOG_EXPIRE,
        "--relay-log=relay",
        "--skip-slave-start",
        NULL,
    };
    return set_argv(a, v, bad, err);
}

int acct_slurmdbd_argv(struct svc_argv *a, const struct acct_layout *l,
                       const char *bin, err_t *err)
{
    char path[PATH_MAX];
    int bad = 0;

    memset(a, 0, sizeof(*a));
    if (!bin)
        bin = "slurmdbd";
    /* env searches only its own PATH; a missing binary stays a bare name
     * and the service's log says "No such file or directory".
     */
    if (supervisor_resolve_binary(bin, path, sizeof(path)) < 0)
        snprintf(path, sizeof(path), "%s", bin);
    const char *v[] = {
        "/usr/bin/env",
        svc_arg(a, &bad, "%s", l->dbd_conf_env),
        svc_arg(a, &bad, "%s", path),
        "-D",
        NULL,
    };
    return set_argv(a, v, bad, err);
}

int acct_add_services(supervisor_t *sv, const struct acct_layout *l,
                      const struct acct_binaries *bin, const char *bind_addrs,
                      unsigned server_id, int depends_on, err_t *err)
{
    struct svc_argv *db = malloc(sizeof(*db)), *dbd = malloc(sizeof(*dbd));
    int rc = -1, m;

    if (!db || !dbd) {
        errprintf_errno(err, "cannot add the accounting services");
        goto out;
    }
    if (l->db_uid == 0) {
        errprintf(err, "MariaDB: no mysql user to run as");
        goto out;
    }
    if (acct_mariadb_argv(db, l, bin ? bin->mariadbd : NULL, bind_addrs,
                          ACCT_DB_PORT, server_id, err) < 0 ||
        acct_slurmdbd_argv(dbd, l, bin ? bin->slurmdbd : NULL, err) < 0)
        goto out;
    /* Start-up may replay InnoDB's redo log (mariadbd) or create or
     * convert the schema (slurmdbd): both can take a while.
     */
    struct svc_spec spec = {
        .name = "mariadb",
        .argv = db->argv,
        .log_path = l->db_log,
        .uid = l->db_uid,
        .gid = l->db_gid,
        .depends_on = depends_on,
        .start_timeout = 120,
        .hang_timeout = 120,
        .disabled = true,
    };
    if ((m = supervisor_add(sv, &spec)) < 0) {
        errprintf_errno(err, "cannot add the mariadb service");
        goto out;
    }
    spec.name = "slurmdbd";
    spec.argv = dbd->argv;
    spec.log_path = l->dbd_log;
    spec.uid = (uid_t)-1;
    spec.gid = (gid_t)-1;
    spec.depends_on = m;
    if (supervisor_add(sv, &spec) < 0) {
        errprintf_errno(err, "cannot add the slurmdbd service");
        goto out;
    }
    rc = 0;
out:
    free(db);
    free(dbd);
    return rc;
}

/* ---- database and cluster --------------------------------------------- */

int acct_bootstrap_db(const struct acct_layout *l, const char *password,
                      double timeout, err_t *err)
{
    char sql[2048];
    int rc = -1;

    if (!acct_password_ok(password))
        return errprintf(err, "the database password is not 16 to 128 "
                              "lowercase hex digits");
    /* CREATE ... IF NOT EXISTS and ALTER USER make it idempotent and set
     * the password again if the store's changed.  'localhost' matches the
     * socket, '127.0.0.1' TCP (names are not resolved).  acct_sql decides
     * success from a marker selected after the last statement.
     */
    snprintf(
        sql, sizeof(sql),
        "CREATE DATABASE IF NOT EXISTS " ACCT_DB_NAME ";\n"
        "CREATE USER IF NOT EXISTS '" ACCT_DB_USER "'@'localhost' "
        "IDENTIFIED BY '%s';\n"
        "CREATE USER IF NOT EXISTS '" ACCT_DB_USER "'@'127.0.0.1' "
        "IDENTIFIED BY '%s';\n"
        "ALTER USER '" ACCT_DB_USER "'@'localhost' IDENTIFIED BY '%s';\n"
        "ALTER USER '" ACCT_DB_USER "'@'127.0.0.1' IDENTIFIED BY '%s';\n"
        "GRANT ALL ON " ACCT_DB_NAME ".* TO '" ACCT_DB_USER "'@'localhost';\n"
        "GRANT ALL ON " ACCT_DB_NAME ".* TO '" ACCT_DB_USER "'@'127.0.0.1';\n",
        password, password, password, password);
    if (acct_sql(l, sql, timeout, NULL, 0, err) < 0) {
        err_t why = *err;
        errprintf(err, "creating the accounting database: %s", why.text);
        goto out;
    }
    rc = 0;
out:
    sodium_memzero(sql, sizeof(sql));
    return rc;
}

int acct_sql(const struct acct_layout *l, const char *sql, double timeout,
             char *out, size_t outcap, err_t *err)
{
    char sock[PATH_MAX + 16], text[8192];
    struct child r = {0};
    int rc = -1;

    if (snprintf(text, sizeof(text), "%s\nSELECT '" ACCT_SQL_OK "';\n", sql) >=
        (int)sizeof(text))
        return errprintf(err, "SQL too long");
    snprintf(sock, sizeof(sock), "--socket=%s", l->db_socket);
    const char *argv[] = {
        "mariadb",     "--no-defaults", "--protocol=socket",   sock,
        "--user=root", "--batch",       "--skip-column-names", NULL};
    const char *envp[] = {CHILD_PATH, "LC_ALL=C", NULL};
    r.argv = argv;
    r.envp = envp;
    r.input = text;
    r.log_path = NULL; /* the SQL may hold a password */
    r.timeout = timeout;
    if (child_run(&r, err) < 0)
        goto out;
    char *ok = strstr(r.out, ACCT_SQL_OK);
    if (!child_ok(&r) || !ok) {
        child_failed(&r, "MariaDB", err);
        goto out;
    }
    if (out && outcap) {
        size_t n = (size_t)(ok - r.out);
        if (n >= outcap)
            n = outcap - 1;
        memcpy(out, r.out, n);
        out[n] = '\0';
    }
    rc = 0;
out:
    sodium_memzero(text, sizeof(text));
    return rc;
}

static int check_cluster_name(const char *c, err_t *err)
{
    size_t n = c ? strlen(c) : 0;

    if (n == 0 || n > 63)
        return errprintf(err, "cluster name must be 1 to 63 characters");
    if (c[0] == '-') /* would be an option to sacctmgr */
        return errprintf(err, "cluster name '%s' starts with '-'", c);
    for (size_t i = 0; i < n; i++)
        if (!((c[i] >= 'a' && c[i] <= 'z') || (c[i] >= 'A' && c[i] <= 'Z') ||
              (c[i] >= '0' && c[i] <= '9') || c[i] == '_' || c[i] == '-'))
            return errprintf(err,
                             "cluster name '%s' has a character other "
                             "than letters, digits, '-' and '_'",
                             c);
    return 0;
}

int acct_parse_clusters(const char *text, const char *cluster,
                        struct acct_cluster *c)
{
    memset(c, 0, sizeof(*c));
    for (const char *p = text; p && *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        char line[512], *f[4], *tok;
        int k = 0;

        if (n >= sizeof(line))
            return -1;
        memcpy(line, p, n);
        line[n] = '\0';
        p += n + (nl != NULL);
        if (n == 0)
            continue;
        /* strtok_r would merge empty fields; split by hand */
        for (tok = line; k < 4; k++) {
            f[k] = tok;
            char *bar = strchr(tok, '|');
            if (!bar) {
                k++;
                break;
            }
            *bar = '\0';
            tok = bar + 1;
        }
        if (k < 4)
            return -1;
        /* -P ends each line with '|' in some versions; f[3] may hold it */
        char *bar = strchr(f[3], '|');
        if (bar)
            *bar = '\0';
        if (strcmp(f[0], cluster) != 0)
            continue;
        c->registered = true;
        snprintf(c->control_host, sizeof(c->control_host), "%s", f[1]);
        c->control_port = atoi(f[2]);
        c->rpc_version = atoi(f[3]);
    }
    return 0;
}

/* sacctmgr with SLURM_CONF, bounded. */
static int sacctmgr(struct child *r, const char *const *argv,
                    const char *slurm_conf, const char *log_path,
                    double timeout, err_t *err)
{
    char env_conf[PATH_MAX + 16];
    const char *envp[] = {CHILD_PATH, "LC_ALL=C", env_conf, NULL};

    snprintf(env_conf, sizeof(env_conf), "SLURM_CONF=%s", slurm_conf);
    r->argv = argv;
    r->envp = envp;
    r->input = NULL;
    r->log_path = log_path;
    r->timeout = timeout;
    return child_run(r, err);
}

static const char *const show_cluster[] = {
    "sacctmgr", "-n",      "-P",
    "show",     "cluster", "format=cluster,controlhost,controlport,rpc",
    NULL};

/* sacctmgr prints "sacctmgr: error: ..." on stderr when slurmdbd does not
 * answer, and exits 1.
 */
static bool said_error(const struct child *r)
{
    return strstr(r->err, "error") != NULL;
}

int acct_ping_slurmdbd(const char *slurm_conf, const char *cluster,
                       double timeout, struct acct_cluster *c, err_t *err)
{
    struct child *r = malloc(sizeof(*r));
    int rc = -1;

    memset(c, 0, sizeof(*c));
    if (!r)
        return errprintf_errno(err, "slurmdbd check");
    memset(r, 0, sizeof(*r));
    if (sacctmgr(r, show_cluster, slurm_conf, NULL, timeout, err) < 0)
        goto out;
    if (!child_ok(r) || said_error(r)) {
        child_failed(r, "slurmdbd", err);
        goto out;
    }
    if (acct_parse_clusters(r->out, cluster, c) < 0) {
        errprintf(err, "slurmdbd: cannot parse sacctmgr's output");
        goto out;
    }
    rc = 0;
out:
    free(r);
    return rc;
}

int acct_register_cluster(const char *cluster, const char *slurm_conf,
                          const char *log_path, double timeout, err_t *err)
{
    struct child *r = malloc(sizeof(*r));
    struct acct_cluster c;
    double end = mono_now() + timeout;
    int rc = -1;

    if (!r)
        return errprintf_errno(err, "registering the cluster");
    memset(r, 0, sizeof(*r));
    if (check_cluster_name(cluster, err) < 0)
        goto out;
    const char *add[] = {"sacctmgr", "-i", "add", "cluster", cluster, NULL};
    if (sacctmgr(r, add, slurm_conf, log_path, timeout, err) < 0)
        goto out;
    /* exit 1 with " This cluster NAME already exists.  Not adding." */
    if (r->timed_out || said_error(r) ||
        !(strstr(r->out, "Adding Cluster") ||
          strstr(r->out, "already exists"))) {
        child_failed(r, "sacctmgr add cluster", err);
        goto out;
    }
    /* Whatever the exit status said (or if we did not get it): listed? */
    double left = end - mono_now();
    if (sacctmgr(r, show_cluster, slurm_conf, log_path, left > 1 ? left : 1,
                 err) < 0)
        goto out;
    if (!child_ok(r) || said_error(r)) {
        child_failed(r, "sacctmgr show cluster", err);
        goto out;
    }
    if (acct_parse_clusters(r->out, cluster, &c) < 0 || !c.registered) {
        errprintf(err,
                  "cluster %s is not listed by sacctmgr after it was "
                  "added",
                  cluster);
        goto out;
    }
    rc = 0;
out:
    free(r);
    return rc;
}

/* ---- MariaDB health --------------------------------------------------- */

/* MariaDB's client protocol, just enough to log in as root over the
 * socket and quit.  A packet is a 3-byte little-endian length, a sequence
 * number and the payload.  Merely reading the greeting and hanging up
 * works too, but the server then logs "Aborted connection ... closed
 * normally without authentication" for every check.
 */
enum {
    CAP_LONG_PASSWORD = 0x1,
    CAP_PROTOCOL_41 = 0x200,
    CAP_SECURE_CONNECTION = 0x8000,
    CAP_PLUGIN_AUTH = 0x80000,
    PKT_OK = 0x00,
    PKT_SWITCH = 0xfe, /* auth switch request */
    PKT_ERR = 0xff,
    COM_QUIT = 0x01,
    PKT_MAX = 1024, /* a greeting or an error is far shorter */
};

/* Read one packet within the deadline.  Returns its payload length, or
 * -1 with err.
 */
static int pkt_read(int fd, double deadline, unsigned char *buf, int *seq,
                    double timeout, err_t *err)
{
    unsigned char head[4];
    size_t got = 0, need = 4, len = 0;

    while (got < need) {
        double left = deadline - mono_now();
        struct pollfd p = {fd, POLLIN, 0};
        if (left <= 0 || poll(&p, 1, (int)(left * 1000) + 1) == 0)
            return errprintf(err, "MariaDB: no answer within %.1f s", timeout);
        unsigned char *at = got < 4 ? head + got : buf + (got - 4);
        size_t want = got < 4 ? 4 - got : need - got;
        ssize_t n = read(fd, at, want);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n < 0)
            return errprintf_errno(err, "MariaDB: read");
        if (n == 0)
            return errprintf(err, "MariaDB closed the connection");
        got += n;
        if (got == 4) {
            len = head[0] | head[1] << 8 | (size_t)head[2] << 16;
            if (len == 0 || len > PKT_MAX)
                return errprintf(err, "MariaDB: a packet of %zu bytes", len);
            need = 4 + len;
            *seq = head[3];
        }
    }
    return (int)len;
}

static int pkt_write(int fd, int seq, const unsigned char *data, size_t len,
                     err_t *err)
{
    unsigned char pkt[4 + 128];

    if (len > sizeof(pkt) - 4)
        return errprintf(err, "MariaDB: packet too long");
    pkt[0] = len & 0xff;
    pkt[1] = (len >> 8) & 0xff;
    pkt[2] = (len >> 16) & 0xff;
    pkt[3] = seq & 0xff;
    if (len)
        memcpy(pkt + 4, data, len);
    /* the socket's buffer takes a packet this small at once */
    if (send(fd, pkt, 4 + len, MSG_NOSIGNAL | MSG_DONTWAIT) !=
        (ssize_t)(4 + len))
        return errprintf_errno(err, "MariaDB: write");
    return 0;
}

/* The text of an error packet: code, optional '#' + SQLSTATE, message. */
static int pkt_error(const unsigned char *b, int len, const char *what,
                     err_t *err)
{
    char text[200];
    size_t k = 0;
    int at = 3;

    if (len < 3)
        return errprintf(err, "%s: a short error packet", what);
    if (len > at && b[at] == '#')
        at += 6;
    for (; at < len && k < sizeof(text) - 1; at++)
        if (b[at] >= ' ' && b[at] < 0x7f)
            text[k++] = (char)b[at];
    text[k] = '\0';
    return errprintf(err, "%s: %d %s", what, b[1] | b[2] << 8, text);
}

int acct_ping_mariadb(const char *socket_path, double timeout, err_t *err)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    unsigned char buf[PKT_MAX];
    double deadline = mono_now() + timeout;
    int fd, len, seq = 0, rc = -1;

    if (strlen(socket_path) >= sizeof(sa.sun_path))
        return errprintf(err, "MariaDB socket path too long");
    memcpy(sa.sun_path, socket_path, strlen(socket_path) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return errprintf_errno(err, "MariaDB: socket");
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        /* EAGAIN: the listen queue is full, the server accepts nothing */
        errprintf_errno(err, "MariaDB: cannot connect to %s", socket_path);
        goto out;
    }
    /* The server speaks first: protocol version 10 and its version, or
     * an error (too many connections).
     */
    if ((len = pkt_read(fd, deadline, buf, &seq, timeout, err)) < 0)
        goto out;
    if (buf[0] == PKT_ERR) {
        pkt_error(buf, len, "MariaDB refused the connection", err);
        goto out;
    }
    if (buf[0] != 0x0a) {
        errprintf(err, "MariaDB: unexpected greeting (protocol %d)", buf[0]);
        goto out;
    }
    /* Log in as root with no password: root@localhost is
     * "mysql_native_password (invalid) OR unix_socket", so the server
     * falls through to the socket's peer credentials (we are root).  Any
     * auth switch it asks for is answered with an empty response.
     */
    static const char login_tail[] = "root\0\0mysql_native_password";
    unsigned char resp[32 + sizeof(login_tail)];
    uint32_t caps = CAP_LONG_PASSWORD | CAP_PROTOCOL_41 |
                    CAP_SECURE_CONNECTION | CAP_PLUGIN_AUTH;
    memset(resp, 0, sizeof(resp));
    for (int i = 0; i < 4; i++)
        resp[i] = (caps >> (8 * i)) & 0xff;
    resp[7] = 1;  /* max packet 16 MiB */
    resp[8] = 33; /* utf8_general_ci */
    memcpy(resp + 32, login_tail, sizeof(login_tail));
    if (pkt_write(fd, seq + 1, resp, sizeof(resp), err) < 0)
        goto out;
    for (int round = 0; round < 4; round++) {
        if ((len = pkt_read(fd, deadline, buf, &seq, timeout, err)) < 0)
            goto out;
        if (buf[0] == PKT_OK) {
            unsigned char quit = COM_QUIT;
            pkt_write(fd, 0, &quit, 1, NULL);
            rc = 0;
            goto out;
        }
        if (buf[0] == PKT_ERR) {
            pkt_error(buf, len, "MariaDB refused root", err);
            goto out;
        }
        if (buf[0] != PKT_SWITCH) {
            errprintf(err, "MariaDB: unexpected answer 0x%02x to the login",
                      buf[0]);
            goto out;
        }
        if (pkt_write(fd, seq + 1, NULL, 0, err) < 0)
            goto out;
    }
    errprintf(err, "MariaDB: too many authentication rounds");
out:
    close(fd);
    return rc;
}

/* A user or account name sacctmgr can take and we can pass unquoted. */
static bool acct_name_ok(const char *n)
{
    size_t len = strlen(n);

    if (len < 1 || len > 32 || !((n[0] >= 'a' && n[0] <= 'z') || n[0] == '_'))
        return false;
    for (const char *c = n; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ||
              *c == '_' || *c == '-' || *c == '.'))
            return false;
    return true;
}

int acct_register_users(const char *cluster, const char *account,
                        const char *const *users, size_t n,
                        const char *slurm_conf, const char *log_path,
                        double timeout, err_t *err)
{
    struct child *r = malloc(sizeof(*r));
    char acct_arg[64], cluster_arg[80], list[4096];
    double end = mono_now() + timeout;
    size_t len = 0, added = 0;
    int rc = -1;

    if (!r)
        return errprintf_errno(err, "registering users");
    memset(r, 0, sizeof(*r));
    if (check_cluster_name(cluster, err) < 0)
        goto out;
    if (!acct_name_ok(account)) {
        errprintf(err, "account name '%s' is not one sacctmgr can take",
                  account);
        goto out;
    }
    snprintf(acct_arg, sizeof(acct_arg), "Account=%s", account);
    snprintf(cluster_arg, sizeof(cluster_arg), "Cluster=%s", cluster);
    const char *add[] = {"sacctmgr",
                         "-i",
                         "add",
                         "account",
                         account,
                         cluster_arg,
                         "Description=peerd_users",
                         "Organization=peerd",
                         NULL};
    if (sacctmgr(r, add, slurm_conf, log_path, timeout, err) < 0)
        goto out;
    /* exit 1 with " Nothing new added." when it exists */
    if (r->timed_out || said_error(r) ||
        !(strstr(r->out, "Adding Account") || strstr(r->out, "Nothing new"))) {
        child_failed(r, "sacctmgr add account", err);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        size_t k = strlen(users[i]);
        if (!acct_name_ok(users[i]) || len + k + 2 > sizeof(list))
            continue; /* a name sacctmgr would not take: left out */
        len += snprintf(list + len, sizeof(list) - len, "%s%s", len ? "," : "",
                        users[i]);
        added++;
    }
    if (added) {
        double left = end - mono_now();
        const char *addu[] = {"sacctmgr", "-i",     "add",       "user",
                              list,       acct_arg, cluster_arg, NULL};
        if (sacctmgr(r, addu, slurm_conf, log_path, left > 1 ? left : 1, err) <
            0)
            goto out;
        if (r->timed_out || said_error(r) ||
            !(strstr(r->out, "Adding User") || strstr(r->out, "Nothing new") ||
              strstr(r->out, "Associations"))) {
            child_failed(r, "sacctmgr add user", err);
            goto out;
        }
    }
    rc = 0;
out:
    free(r);
    return rc;
}
