/* acct.h - accounting on the storage host: MariaDB and slurmdbd
 *
 * The mini tier keeps Slurm's accounting in a MariaDB of its own, run by
 * peerd's supervisor like the Slurm daemons, with slurmdbd in front of it.
 * Everything lives in the peer's data dir:
 *   DATA/mariadb/               0700 mysql  MariaDB's datadir; also
 *                                           db.sock and mariadbd.pid
 *   DATA/slurmdbd/              0700 root   slurmdbd.conf (0600 root),
 *                                           slurmdbd.pid
 *   DATA/log/                   0755 root   mariadb.log, slurmdbd.log
 *                                           (supervisor), acct.log (the
 *                                           setup commands' output)
 * The socket is inside the datadir because only root and mysql may use
 * it: MariaDB's root account is authenticated by the socket's peer
 * credentials (unix_socket), with no password anywhere.  Its path is
 * DATA/mariadb/db.sock, which fits a sockaddr_un for a data dir of up
 * to 90 characters (peerd's limit).
 *
 * slurmdbd 22.05 has no -f option: it reads slurmdbd.conf from the
 * directory of $SLURM_CONF.  The service is therefore started as
 * `env SLURM_CONF=DATA/slurmdbd/slurm.conf /usr/sbin/slurmdbd -D` (env
 * execs, so the supervised pid is slurmdbd's); that slurm.conf need not
 * exist.
 *
 * The setup steps run short child processes (mariadb-install-db, the
 * mariadb client, sacctmgr), each bounded by a timeout after which its
 * whole process group is killed.  They block the calling thread for at
 * most that long.  Their success is decided from their output, not only
 * from their exit status, so that they also work from a thread other
 * than the one reaping children (peerd's main loop reaps every child
 * with waitpid(-1)).
 */
#ifndef PEERD_ACCT_H
#define PEERD_ACCT_H

#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>
#include <sys/un.h>

#include "node/supervise.h"
#include "proto/err.h"

#define ACCT_DB_NAME "slurm_acct_db" /* StorageLoc */
#define ACCT_DB_USER "slurm"         /* StorageUser */
/* MariaDB's own port plus one: Debian's mariadb-server package starts a
 * MariaDB of the system on 3306 where systemd runs it.
 */
#define ACCT_DB_PORT 3307
#define ACCT_DBD_PORT 6819
/* What slurmdbd 22.05 checks at start ("Database settings not
 * recommended values"); the buffer pool is reserved, not touched, so a
 * small database costs far less than this.
 */
#define ACCT_INNODB_BUFFER_POOL "1G"
#define ACCT_INNODB_LOG_FILE "64M"
#define ACCT_INNODB_LOCK_WAIT "900"
/* Binary log kept a week (a replica further behind is rebuilt). */
#define ACCT_BINLOG_EXPIRE "604800"
/* A generated database password: lowercase hex, 32 characters. */
#define ACCT_PASSWORD_LEN 32

struct acct_layout {
    char db_dir[PATH_MAX]; /* MariaDB datadir */
    char db_socket[sizeof(((struct sockaddr_un *)0)->sun_path)];
    char db_pid[PATH_MAX];
    char dbd_dir[PATH_MAX];
    char dbd_conf[PATH_MAX];     /* DATA/slurmdbd/slurmdbd.conf */
    char dbd_conf_env[PATH_MAX]; /* "SLURM_CONF=DATA/slurmdbd/slurm.conf" */
    char dbd_pid[PATH_MAX];
    char log_dir[PATH_MAX];
    char db_log[PATH_MAX];    /* mariadbd's stderr (supervisor) */
    char dbd_log[PATH_MAX];   /* slurmdbd's stderr (supervisor) */
    char setup_log[PATH_MAX]; /* output of the setup commands */
    uid_t db_uid;             /* the mysql user */
    gid_t db_gid;
};

/* What slurmdbd.conf says. */
struct acct_params {
    const char *dbd_host; /* DbdHost: this host's short name or localhost */
    const char *dbd_addr; /* DbdAddr, or NULL for none */
    int dbd_port;         /* DbdPort (ACCT_DBD_PORT) */
    const char *munge_socket;
    const char *storage_host; /* StorageHost: an address, 127.0.0.1 */
    int storage_port;         /* StoragePort (ACCT_DB_PORT) */
    const char *storage_pass; /* the generated password (hex) */
    const char *pid_file;
};

struct acct_binaries {
    const char *mariadbd, *slurmdbd; /* name or path; NULL: the default */
};

/* What sacctmgr says about a cluster. */
struct acct_cluster {
    bool registered;       /* listed by sacctmgr show cluster */
    char control_host[64]; /* empty until slurmctld has registered */
    int control_port;      /* 0 until then */
    int rpc_version;
};

/* Fill l with the paths under data_dir and the mysql user's ids (0 if
 * there is no such user); creates nothing.  Returns 0, or -1 with err
 * when a path does not fit (the socket path must fit a sockaddr_un).
 */
int acct_layout_init(const char *data_dir, struct acct_layout *l, err_t *err);

/* Fill l as acct_layout_init does, create the directories with
 * their modes and owners (forced, as slurm_prepare does), and initialise
 * the MariaDB datadir if it holds no system tables yet: into
 * DATA/mariadb.new with mariadb-install-db (bounded, output appended to
 * the setup log), renamed to DATA/mariadb once complete, so a crash
 * half-way leaves no half-made datadir behind.  Returns 0, or -1 with err
 * filled (no mysql user, a path too long for a socket, a directory the
 * mysql user cannot reach, DATA/mariadb not a datadir, the install
 * failing or timing out).
 */
int acct_prepare(const char *data_dir, struct acct_layout *l, err_t *err);

/* Render slurmdbd.conf.  Returns a malloc'd string (the caller frees),
 * or NULL with err filled when a value is missing or holds a character
 * that would change the file's meaning.
 */
char *acct_render_slurmdbd_conf(const struct acct_params *p, err_t *err);

/* Render and write l->dbd_conf (0600 root), atomically.  Returns 1 if
 * the file changed, 0 if it was the same, -1 with err.
 */
int acct_write_slurmdbd_conf(const struct acct_layout *l,
                             const struct acct_params *p, err_t *err);

/* Is pw a password peerd could have generated: 16 to 128 characters of
 * [0-9a-f]?  Anything else is refused before it reaches SQL or a file.
 */
bool acct_password_ok(const char *pw);

/* Fill out with ACCT_PASSWORD_LEN random hex characters and a NUL
 * (libsodium; sodium_init() must have been called).
 */
void acct_password_generate(char out[ACCT_PASSWORD_LEN + 1]);

/* The mariadbd command line: foreground, --no-defaults (no /etc/mysql
 * file applies), datadir, socket and pid file from l, bound to
 * bind_addrs ("127.0.0.1", or a comma-separated list: MariaDB 10.11
 * listens on each) on port, no name resolution, errors to stderr.
 * bin NULL: "mariadbd".  Returns 0 or -1 with err (bad address list,
 * too long).
 */
int acct_mariadb_argv(struct svc_argv *a, const struct acct_layout *l,
                      const char *bin, const char *bind_addrs, int port,
                      unsigned server_id, err_t *err);

/* The slurmdbd command line (see above: through env).  bin NULL:
 * "slurmdbd", looked up in PATH, /usr/sbin and /usr/bin now, because env
 * would not look in sbin when peerd's PATH lacks it.  Returns 0 or -1.
 */
int acct_slurmdbd_argv(struct svc_argv *a, const struct acct_layout *l,
                       const char *bin, err_t *err);

/* Register "mariadb" (run as the mysql user) and "slurmdbd" (root,
 * depends on mariadb), both disabled: peerd enables them on the storage
 * host only.  mariadb depends on depends_on (munged's index, or -1).
 * Returns 0 or -1 with err.
 */
int acct_add_services(supervisor_t *sv, const struct acct_layout *l,
                      const struct acct_binaries *bin, const char *bind_addrs,
                      unsigned server_id, int depends_on, err_t *err);

/* Run sql (statements, ';'-terminated) with the mariadb client as
 * MariaDB's root over l->db_socket, within timeout seconds.  The output
 * (tab-separated, no column names) is copied to out (may be NULL).
 * Success is decided by a marker selected after the statements (the
 * client stops at the first error), so it also works from a thread that
 * does not reap its children.  Nothing is logged (the SQL may hold a
 * password).  Returns 0 or -1 with err (the server's error line).
 */
int acct_sql(const struct acct_layout *l, const char *sql, double timeout,
             char *out, size_t outcap, err_t *err);

/* Create the database and its user ('slurm'@'localhost' and
 * 'slurm'@'127.0.0.1', password set again if it changed, ALL on
 * slurm_acct_db.*), idempotently, with the mariadb client as MariaDB's
 * root over l->db_socket (socket authentication).  Bounded by timeout
 * seconds.  Returns 0 or -1 with err.
 */
int acct_bootstrap_db(const struct acct_layout *l, const char *password,
                      double timeout, err_t *err);

/* Make sure the cluster is in the accounting database (sacctmgr -i add
 * cluster; "already exists" is success), which also creates the root
 * account and root's association, so that jobs show in sacct.
 * slurmctld 22.05 adds its cluster itself when it first registers; this
 * makes it exist before that.  slurm_conf: the SLURM_CONF for sacctmgr
 * (it must name accounting_storage/slurmdbd).  log_path may be NULL.
 * Returns 0 or -1 with err.
 */
int acct_register_cluster(const char *cluster, const char *slurm_conf,
                          const char *log_path, double timeout, err_t *err);

/* Make the account (Organization peerd) and the users (each with an
 * association to it on cluster, so that their jobs are accounted to it),
 * idempotently.  Names sacctmgr would not take are left out.  Returns
 * 0 or -1 with err.
 */
#define ACCT_USERS_ACCOUNT "users"
int acct_register_users(const char *cluster, const char *account,
                        const char *const *users, size_t n,
                        const char *slurm_conf, const char *log_path,
                        double timeout, err_t *err);

/* Health: does MariaDB answer on its socket?  Logs in as MariaDB's root
 * (socket authentication: the caller must be root) and quits, within
 * timeout seconds; a bare connect-and-hang-up would make the server log
 * an aborted connection at every check.  Returns 0, or -1 with err
 * ("cannot connect", "no answer within 1.0 s", the server's own error:
 * too many connections, access denied).
 */
int acct_ping_mariadb(const char *socket_path, double timeout, err_t *err);

/* Health: does slurmdbd answer?  Runs `sacctmgr -n -P show cluster`
 * with a timeout (a hung slurmdbd makes libslurm's own calls wait 45 s
 * per request) and fills *c for the named cluster.  Returns 0 when
 * slurmdbd answered (c->registered says whether the cluster is there),
 * -1 with err otherwise.
 */
int acct_ping_slurmdbd(const char *slurm_conf, const char *cluster,
                       double timeout, struct acct_cluster *c, err_t *err);

/* Parse `sacctmgr -n -P show cluster format=cluster,controlhost,
 * controlport,rpc` output into *c for cluster.  Returns 0 (c->registered
 * false if it is not listed) or -1 if a line is malformed.
 */
int acct_parse_clusters(const char *text, const char *cluster,
                        struct acct_cluster *c);

#endif
