/* storage.c - where accounting runs (see storage.h) */
#include "config.h"

#include <errno.h>
#include <pwd.h>
#include <fcntl.h>
#include <unistd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>

#include <sodium.h>

#include "node/acct.h"
#include "node/alive.h"
#include "node/hostsfile.h"
#include "node/log.h"
#include "node/peerd.h"
#include "node/place.h"
#include "node/replica.h"
#include "node/storage.h"
#include "store/members.h"

enum role { ROLE_NONE, ROLE_PRIMARY, ROLE_REPLICA };

static const char *const role_names[] = {"none", "primary", "replica"};

#define WORKER_PERIOD 1.0   /* seconds between rounds */
#define DBD_CHECK_EVERY 5.0 /* sacctmgr is a process: not every round */
#define PREPARE_RETRY 10.0
#define REBOOTSTRAP_EVERY                                                      \
    30.0                 /* slurmdbd unhealthy: set the password again         \
                          */
#define DISK_LOW_MB 64.0 /* less free under the datadir: say so */
#define REPLICA_CHECK_EVERY 2.0
#define STORAGE_UID_MIN 1000
#define STORAGE_MAX_USERS 256
#define REPLICA_RETRY 10.0
#define REPLICA_FOLLOW_TIMEOUT 300.0

/* What the main loop wants of the worker. */
struct want {
    enum role role;
    bool accounting; /* tier mini/multi: check slurmdbd from here */
    bool have_password;
    char password[129];
    pid_t db_pid, dbd_pid; /* the services' processes, 0: none */
    bool multi;
    char primary[64]; /* the storage host's address (a replica follows) */
};

/* What the worker found. */
struct seen {
    bool prepared;
    bool conf_written;
    char error[256]; /* the last step that failed, for status */
    /* MariaDB here */
    double db_at; /* monotonic start of the check; 0: never */
    pid_t db_checked_pid;
    bool db_ok;
    char db_detail[200];
    char db_logged[200];    /* its log's last [ERROR] line, while down */
    pid_t bootstrapped_pid; /* MariaDB process the database was made in */
    bool primary_ready;     /* promoted and set up: slurmdbd may start */
    bool reg_failed;        /* error holds a failed registration */
    /* replica (multi) */
    struct replica_status repl;
    double repl_at; /* last status; 0: none */
    char repl_error[256];
    double follow_took; /* seconds the last rebuild took */
    struct replica_promotion promotion;
    bool promoted; /* promotion holds a replica's promotion */
    /* slurmdbd, from this host through SLURM_DBD_ALIAS */
    double dbd_at;
    pid_t dbd_checked_pid;
    bool dbd_ok;
    char dbd_detail[200];
    char dbd_logged[200]; /* its log's last error line, while down */
    struct acct_cluster cluster;
    bool registered;
    /* the disk under the datadir */
    double disk_free_mb, disk_total_mb;
};

struct storage {
    struct acct_layout layout;
    bool services;   /* mariadb and slurmdbd added to the supervisor */
    bool users_done; /* worker: users registered (register_users) */
    char no_services[200];
    int svc_db, svc_dbd;
    pthread_t thread;
    bool running;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool quit;
    struct want want; /* under mu */
    struct seen seen; /* under mu */
    double fed_db_at, fed_dbd_at;
    /* copies for the worker (read-only after start) */
    char cluster_name[64];
    char slurm_conf[PATH_MAX];
    char data_dir[PATH_MAX];
    /* committed placement */
    uint64_t storage_id, replica_id, term;
    char storage_name[64], storage_addr[64];
    bool accounting; /* tier mini/multi */
    bool multi;
    bool was_accounting;
    /* the password, once committed and readable */
    bool have_password;
    char password[129];
    char password_error[200];
    bool restart_ctl;     /* restart slurmctld once it may start */
    char dbd_ok_addr[64]; /* where slurmdbd last answered */
    bool ctl_gave_up;     /* slurmctld started without slurmdbd */
    double unhomed_since; /* the cluster listed without a control host */
    double rehomed_at;    /* slurmctld last restarted for that */
    double alias_at;      /* next check of SLURM_DBD_ALIAS */
    bool settled;         /* caught up with the cluster since start */
    double leader_since;  /* a leader known since (before settled) */
    double nudge_seen_at; /* the check nudge_ctl last looked at */
    double ctl_waiting;   /* slurmctld waits for slurmdbd since */
    bool proposing;       /* a storage entry in flight */
    bool proposing_secret;
    double dead_since; /* storage host DEAD to SWIM since (leader) */
};

static double mono(void)
{
    return peerd_now();
}

/* ---- worker ------------------------------------------------------------ */

static void set_error(struct storage *s, const char *text)
{
    pthread_mutex_lock(&s->mu);
    snprintf(s->seen.error, sizeof(s->seen.error), "%s", text);
    pthread_mutex_unlock(&s->mu);
}

static void disk_space(struct storage *s)
{
    struct statvfs v;
    double free_mb = -1, total_mb = -1;

    if (statvfs(s->layout.db_dir, &v) == 0) {
        free_mb = (double)v.f_bavail * v.f_frsize / (1024.0 * 1024.0);
        total_mb = (double)v.f_blocks * v.f_frsize / (1024.0 * 1024.0);
    }
    pthread_mutex_lock(&s->mu);
    s->seen.disk_free_mb = free_mb;
    s->seen.disk_total_mb = total_mb;
    pthread_mutex_unlock(&s->mu);
}

/* The last line of a service's log that holds needle (its own words for
 * what went wrong), from the last 16 KiB; empty if none.
 */
static void last_logged(const char *path, const char *needle, char *out,
                        size_t cap)
{
    char buf[16384], *line, *end;
    ssize_t n = -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    off_t size;

    out[0] = '\0';
    if (fd < 0)
        return;
    size = lseek(fd, 0, SEEK_END);
    if (size >= 0 &&
        lseek(fd,
              size > (off_t)sizeof(buf) - 1 ? size - (off_t)sizeof(buf) + 1 : 0,
              SEEK_SET) >= 0)
        n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return;
    buf[n] = '\0';
    for (end = buf + n; end > buf;) {
        while (end > buf && (end[-1] == '\n' || end[-1] == '\r'))
            *--end = '\0';
        line = end;
        while (line > buf && line[-1] != '\n')
            line--;
        /* "Aborting" says only that the line before it was fatal */
        if (strstr(line, needle) && !strstr(line, "] Aborting")) {
            snprintf(out, cap, "%s", line);
            for (char *c = out; *c; c++)
                if ((unsigned char)*c < ' ' || (unsigned char)*c >= 0x7f)
                    *c = '?';
            return;
        }
        end = line;
    }
}

/* MariaDB should run here but has no process (it exits at start, or
 * waits for its next try): say why, in its own words.
 */
static void mariadb_down(struct storage *s)
{
    char said[200];

    last_logged(s->layout.db_log, "[ERROR]", said, sizeof(said));
    pthread_mutex_lock(&s->mu);
    s->seen.db_at = mono();
    s->seen.db_checked_pid = 0;
    s->seen.db_ok = false;
    snprintf(s->seen.db_detail, sizeof(s->seen.db_detail), "not running");
    snprintf(s->seen.db_logged, sizeof(s->seen.db_logged), "%s", said);
    pthread_mutex_unlock(&s->mu);
}

static void check_mariadb(struct storage *s, const struct want *w)
{
    double at = mono();
    err_t err = {{0}};
    bool ok = acct_ping_mariadb(s->layout.db_socket, 2.0, &err) == 0;
    char said[200] = "";

    if (!ok)
        last_logged(s->layout.db_log, "[ERROR]", said, sizeof(said));
    pthread_mutex_lock(&s->mu);
    snprintf(s->seen.db_logged, sizeof(s->seen.db_logged), "%s", said);
    s->seen.db_at = at;
    s->seen.db_checked_pid = w->db_pid;
    s->seen.db_ok = ok;
    snprintf(s->seen.db_detail, sizeof(s->seen.db_detail), "%s",
             ok ? "" : err.text);
    pthread_mutex_unlock(&s->mu);
}

static void check_slurmdbd(struct storage *s, const struct want *w)
{
    struct acct_cluster c = {0};
    double at = mono();
    err_t err = {{0}};
    bool ok =
        acct_ping_slurmdbd(s->slurm_conf, s->cluster_name, 8.0, &c, &err) == 0;
    char said[200] = "";

    if (!ok && w->role == ROLE_PRIMARY)
        last_logged(s->layout.dbd_log, "error:", said, sizeof(said));
    pthread_mutex_lock(&s->mu);
    snprintf(s->seen.dbd_logged, sizeof(s->seen.dbd_logged), "%s", said);
    s->seen.dbd_at = at;
    s->seen.dbd_checked_pid = w->dbd_pid;
    s->seen.dbd_ok = ok;
    snprintf(s->seen.dbd_detail, sizeof(s->seen.dbd_detail), "%s",
             ok ? "" : err.text);
    if (ok) {
        s->seen.cluster = c;
        s->seen.registered = c.registered;
        /* registered meanwhile (slurmctld does it too): not an error */
        if (c.registered && s->seen.reg_failed) {
            s->seen.reg_failed = false;
            s->seen.error[0] = '\0';
        }
    }
    pthread_mutex_unlock(&s->mu);
}

/* The people of this host (uid STORAGE_UID_MIN up to nobody, as
 * Debian's adduser makes them, with a login shell) into the account
 * ACCT_USERS_ACCOUNT, so that their jobs carry an account; root's association
 * comes with the cluster.  Once per primary.
 */
static void register_users(struct storage *s)
{
    char *names[STORAGE_MAX_USERS], buf[1024];
    struct passwd pw, *got;
    size_t n = 0;
    err_t err = {{0}};
    FILE *f = fopen("/etc/passwd", "re");

    if (f) {
        while (n < STORAGE_MAX_USERS &&
               fgetpwent_r(f, &pw, buf, sizeof(buf), &got) == 0)
            if (pw.pw_uid >= STORAGE_UID_MIN && pw.pw_uid < 65534 &&
                !strstr(pw.pw_shell, "nologin") &&
                !strstr(pw.pw_shell, "/false"))
                names[n++] = strdup(pw.pw_name);
        fclose(f);
    }
    if (acct_register_users(s->cluster_name, ACCT_USERS_ACCOUNT,
                            (const char *const *)names, n, s->slurm_conf,
                            s->layout.setup_log, 30.0, &err) < 0) {
        log_warnx("accounting: %s", err.text);
    } else {
        log_info("accounting: account %s with %zu user(s) of this host",
                 ACCT_USERS_ACCOUNT, n);
        s->users_done = true;
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
}

/* The primary's steps, each once per MariaDB process (or when slurmdbd
 * keeps failing: a password changed behind peerd's back is put back).
 */
static void primary_steps(struct storage *s, const struct want *w,
                          double *rebootstrap_at)
{
    err_t err = {{0}};
    bool db_ok, boot, dbd_ok, registered;

    pthread_mutex_lock(&s->mu);
    db_ok = s->seen.db_ok && s->seen.db_checked_pid == w->db_pid;
    boot = s->seen.bootstrapped_pid == w->db_pid;
    dbd_ok = s->seen.dbd_ok;
    registered = s->seen.registered;
    pthread_mutex_unlock(&s->mu);
    if (!db_ok || !w->have_password)
        return;
    if (boot && !dbd_ok && w->dbd_pid > 0 && mono() >= *rebootstrap_at)
        boot = false; /* slurmdbd cannot log in: set the password again */
    if (!boot) {
        struct replica_promotion pr = {0};
        *rebootstrap_at = mono() + REBOOTSTRAP_EVERY;
        /* a replica that becomes the storage host: applies what it
         * received, stops replicating, becomes writable (a no-op on a
         * primary)
         */
        if (replica_promote(&s->layout, 30.0, &pr, &err) < 0) {
            log_warnx("accounting: promoting the replica: %s", err.text);
            set_error(s, err.text);
            return;
        }
        if (pr.was_replica) {
            log_info("accounting: replica promoted to primary after %.2f s "
                     "(%s, at %s)%s%s",
                     pr.waited, pr.caught_up ? "caught up" : "NOT caught up",
                     pr.gtid, pr.sql_error[0] ? ": " : "", pr.sql_error);
            pthread_mutex_lock(&s->mu);
            s->seen.promotion = pr;
            s->seen.promoted = true;
            pthread_mutex_unlock(&s->mu);
        }
        if (w->multi &&
            replica_primary_setup(&s->layout, w->password, 30.0, &err) < 0) {
            log_warnx("accounting: %s", err.text);
            set_error(s, err.text);
            return;
        }
        if (acct_bootstrap_db(&s->layout, w->password, 30.0, &err) < 0) {
            log_warnx("accounting: %s", err.text);
            set_error(s, err.text);
            return;
        }
        log_info("accounting: database %s and its user are in place",
                 ACCT_DB_NAME);
        pthread_mutex_lock(&s->mu);
        s->seen.bootstrapped_pid = w->db_pid;
        s->seen.primary_ready = true;
        s->seen.error[0] = '\0';
        pthread_mutex_unlock(&s->mu);
    }
    if (dbd_ok && !registered) {
        if (acct_register_cluster(s->cluster_name, s->slurm_conf,
                                  s->layout.setup_log, 30.0, &err) < 0) {
            log_warnx("accounting: %s", err.text);
            set_error(s, err.text);
            pthread_mutex_lock(&s->mu);
            s->seen.reg_failed = true;
            pthread_mutex_unlock(&s->mu);
            return;
        }
        log_info("accounting: cluster %s registered", s->cluster_name);
        pthread_mutex_lock(&s->mu);
        s->seen.registered = true;
        s->seen.error[0] = '\0';
        pthread_mutex_unlock(&s->mu);
    }
    if (dbd_ok && !s->users_done)
        register_users(s);
}

/* A replica's steps: keep replicating the storage host's MariaDB,
 * rebuilding from a dump when that is what it takes.
 */
static void replica_steps(struct storage *s, const struct want *w, double *next)
{
    struct replica_status st = {0};
    err_t err = {{0}};
    bool db_ok;
    double t0;

    pthread_mutex_lock(&s->mu);
    db_ok = s->seen.db_ok && s->seen.db_checked_pid == w->db_pid;
    pthread_mutex_unlock(&s->mu);
    if (!db_ok || !w->have_password || !w->primary[0] || mono() < *next)
        return;
    *next = mono() + REPLICA_CHECK_EVERY;
    if (replica_status(&s->layout, 10.0, &st, &err) < 0) {
        pthread_mutex_lock(&s->mu);
        snprintf(s->seen.repl_error, sizeof(s->seen.repl_error), "%s",
                 err.text);
        pthread_mutex_unlock(&s->mu);
        return;
    }
    switch (replica_next_action(&st, w->primary, ACCT_DB_PORT)) {
    case REPLICA_START:
        if (replica_start(&s->layout, 30.0, &err) < 0)
            log_warnx("accounting: starting replication: %s", err.text);
        break;
    case REPLICA_REBUILD:
        t0 = mono();
        log_info("accounting: rebuilding the replica from %s:%d", w->primary,
                 ACCT_DB_PORT);
        if (replica_follow(&s->layout, w->primary, ACCT_DB_PORT, w->password,
                           REPLICA_FOLLOW_TIMEOUT, &err) < 0) {
            log_warnx("accounting: replica of %s: %s", w->primary, err.text);
            *next = mono() + REPLICA_RETRY;
        } else {
            log_info("accounting: replicating %s (rebuilt in %.2f s)",
                     w->primary, mono() - t0);
            pthread_mutex_lock(&s->mu);
            s->seen.follow_took = mono() - t0;
            pthread_mutex_unlock(&s->mu);
        }
        replica_status(&s->layout, 10.0, &st, NULL);
        break;
    case REPLICA_FOLLOWING:
    case REPLICA_WAIT:
        break;
    }
    pthread_mutex_lock(&s->mu);
    s->seen.repl = st;
    s->seen.repl_at = mono();
    snprintf(s->seen.repl_error, sizeof(s->seen.repl_error), "%s",
             err.text[0]                        ? err.text
             : st.io_error[0] && !st.io_running ? st.io_error
             : st.sql_error[0]                  ? st.sql_error
                                                : "");
    pthread_mutex_unlock(&s->mu);
}

static void write_conf(struct storage *s, const struct want *w)
{
    err_t err = {{0}};
    struct acct_params prm = {
        .dbd_host = "localhost",
        .dbd_port = ACCT_DBD_PORT,
        .munge_socket = SLURM_MUNGE_SOCKET,
        .storage_host = "127.0.0.1",
        .storage_port = ACCT_DB_PORT,
        .storage_pass = w->password,
        .pid_file = s->layout.dbd_pid,
    };
    int rc = acct_write_slurmdbd_conf(&s->layout, &prm, &err);

    if (rc < 0) {
        log_warnx("accounting: %s", err.text);
        set_error(s, err.text);
        return;
    }
    if (rc > 0)
        log_info("accounting: wrote %s", s->layout.dbd_conf);
    pthread_mutex_lock(&s->mu);
    s->seen.conf_written = true;
    pthread_mutex_unlock(&s->mu);
}

static void *worker(void *arg)
{
    struct storage *s = arg;
    double prepare_at = 0, dbd_at = 0, rebootstrap_at = 0, repl_at = 0;
    struct want w;

    for (;;) {
        pthread_mutex_lock(&s->mu);
        if (s->quit) {
            pthread_mutex_unlock(&s->mu);
            break;
        }
        w = s->want;
        bool prepared = s->seen.prepared, written = s->seen.conf_written;
        pthread_mutex_unlock(&s->mu);

        if (w.role != ROLE_NONE && s->services) {
            if (!prepared && mono() >= prepare_at) {
                err_t err = {{0}};
                prepare_at = mono() + PREPARE_RETRY;
                if (acct_prepare(s->data_dir, &s->layout, &err) < 0) {
                    log_warnx("accounting: %s", err.text);
                    set_error(s, err.text);
                } else {
                    pthread_mutex_lock(&s->mu);
                    s->seen.prepared = prepared = true;
                    s->seen.error[0] = '\0';
                    pthread_mutex_unlock(&s->mu);
                }
            }
            if (prepared && w.role == ROLE_PRIMARY && w.have_password &&
                !written)
                write_conf(s, &w);
            disk_space(s);
            if (w.db_pid > 0)
                check_mariadb(s, &w);
            else if (prepared)
                mariadb_down(s);
        }
        if (w.accounting && mono() >= dbd_at &&
            (w.role != ROLE_PRIMARY || w.dbd_pid > 0)) {
            check_slurmdbd(s, &w);
            pthread_mutex_lock(&s->mu);
            bool settled = s->seen.dbd_ok && s->seen.registered;
            pthread_mutex_unlock(&s->mu);
            /* quickly while slurmctld may be waiting for it */
            dbd_at = mono() + (settled ? DBD_CHECK_EVERY : WORKER_PERIOD);
        }
        if (w.role == ROLE_PRIMARY && s->services)
            primary_steps(s, &w, &rebootstrap_at);
        if (w.role == ROLE_REPLICA && s->services)
            replica_steps(s, &w, &repl_at);

        pthread_mutex_lock(&s->mu);
        if (!s->quit) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += (time_t)WORKER_PERIOD;
            pthread_cond_timedwait(&s->cv, &s->mu, &until);
        }
        pthread_mutex_unlock(&s->mu);
    }
    return NULL;
}

/* ---- committed state --------------------------------------------------- */

static void load_password(struct peerd *p, struct storage *s)
{
    secret_t *pw = NULL;
    err_t err = {{0}};
    int rc = cluster_get_secret(&p->cluster, FSM_SECRET_DB_PASSWORD, &pw, &err);

    s->have_password = false;
    s->password_error[0] = '\0';
    if (rc < 0) {
        snprintf(s->password_error, sizeof(s->password_error),
                 "the database password in the store cannot be read: %s",
                 err.text);
    } else if (rc == 1) {
        if (pw->len < sizeof(s->password)) {
            memcpy(s->password, pw->data, pw->len);
            s->password[pw->len] = '\0';
        } else {
            s->password[0] = '\0';
        }
        if (acct_password_ok(s->password))
            s->have_password = true;
        else
            snprintf(s->password_error, sizeof(s->password_error),
                     "the database password in the store is damaged "
                     "(not 16-128 hex digits)");
    }
    secret_destroy(&pw);
    if (s->password_error[0])
        log_warnx("accounting: %s", s->password_error);
}

static void load_placement(struct peerd *p, struct storage *s)
{
    struct member m;
    int port;

    s->accounting = p->cluster.tier && strcmp(p->cluster.tier, "micro") != 0;
    s->multi = p->cluster.tier && strcmp(p->cluster.tier, "multi") == 0;
    s->storage_id = cluster_config_u64(&p->cluster, "storage");
    s->replica_id = cluster_config_u64(&p->cluster, "storage_replica");
    s->term = cluster_config_u64(&p->cluster, "storage_term");
    s->storage_name[0] = s->storage_addr[0] = '\0';
    if (s->storage_id &&
        members_get(p->cluster.store, s->storage_id, &m, NULL) == 1) {
        snprintf(s->storage_name, sizeof(s->storage_name), "%s", m.name);
        if (transport_parse_addr(m.address, s->storage_addr,
                                 sizeof(s->storage_addr), &port,
                                 TRANSPORT_DEFAULT_PORT) < 0)
            s->storage_addr[0] = '\0';
    }
}

static void point_alias(struct peerd *p, struct storage *s)
{
    err_t err = {{0}};
    int rc;

    if (!s->accounting || !s->storage_addr[0])
        return;
    rc = hostsfile_point(p->hosts_file, SLURM_DBD_ALIAS, s->storage_addr, &err);
    if (rc < 0)
        log_warnx("cannot point %s at %s: %s", SLURM_DBD_ALIAS, s->storage_addr,
                  err.text);
    else if (rc > 0)
        log_info("%s now means %s (%s) in %s", SLURM_DBD_ALIAS, s->storage_addr,
                 s->storage_name, p->hosts_file);
}

bool storage_accounting(const struct peerd *p)
{
    return p->cluster.tier && strcmp(p->cluster.tier, "micro") != 0;
}

/* ---- start, stop ------------------------------------------------------- */

int storage_start(struct peerd *p)
{
    struct storage *s = calloc(1, sizeof(*s));
    err_t err = {{0}};

    if (!s)
        return -1;
    s->svc_db = s->svc_dbd = -1;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    snprintf(s->cluster_name, sizeof(s->cluster_name), "%s", p->cluster.name);
    snprintf(s->slurm_conf, sizeof(s->slurm_conf), "%s", p->layout.slurm_conf);
    snprintf(s->data_dir, sizeof(s->data_dir), "%s", p->data_dir);
    /* server ids only need to differ between the hosts replicating */
    unsigned server_id = (unsigned)(p->cluster.node_id % 4294967294u) + 1u;
    char binds[160];
    if (strcmp(p->host.address, "127.0.0.1") == 0)
        snprintf(binds, sizeof(binds), "127.0.0.1");
    else
        snprintf(binds, sizeof(binds), "127.0.0.1,%s", p->host.address);
    if (acct_layout_init(p->data_dir, &s->layout, &err) < 0 ||
        acct_add_services(p->sv, &s->layout, NULL, binds, server_id,
                          p->svc_munged, &err) < 0) {
        snprintf(s->no_services, sizeof(s->no_services),
                 "this host cannot run accounting: %s", err.text);
        log_info("%s", s->no_services);
    } else {
        s->services = true;
        s->svc_db = supervisor_find(p->sv, "mariadb");
        s->svc_dbd = supervisor_find(p->sv, "slurmdbd");
    }
    p->storage = s;
    load_placement(p, s);
    s->was_accounting = s->accounting;
    load_password(p, s);
    point_alias(p, s);
    if (pthread_create(&s->thread, NULL, worker, s) != 0) {
        log_warnx("cannot start the accounting worker");
        return -1;
    }
    s->running = true;
    return 0;
}

void storage_stop(struct peerd *p)
{
    struct storage *s = p->storage;

    if (!s)
        return;
    if (s->running) {
        pthread_mutex_lock(&s->mu);
        s->quit = true;
        pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
    }
    sodium_memzero(s->password, sizeof(s->password));
    sodium_memzero(&s->want, sizeof(s->want));
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
    p->storage = NULL;
}

/* ---- applied entries --------------------------------------------------- */

void storage_applied(struct peerd *p, const struct fsm_effects *fx)
{
    struct storage *s = p->storage;
    uint64_t before = s ? s->storage_id : 0, term_before = s ? s->term : 0;

    if (!s)
        return;
    if (fx->config_changed || fx->storage_changed)
        cluster_reload_tier(&p->cluster);
    if (fx->secret_changed)
        load_password(p, s);
    load_placement(p, s);
    if (fx->storage_changed &&
        (before != s->storage_id || term_before != s->term))
        log_info("accounting: storage on %s (member %llu), replica %llu, "
                 "term %llu",
                 s->storage_name, (unsigned long long)s->storage_id,
                 (unsigned long long)s->replica_id,
                 (unsigned long long)s->term);
    point_alias(p, s);
    if (s->accounting != s->was_accounting) {
        s->was_accounting = s->accounting;
        log_info("accounting %s (tier %s)", s->accounting ? "on" : "off",
                 p->cluster.tier);
        /* slurmctld loads its accounting plugin only when it starts */
        s->restart_ctl = true;
    }
    pthread_mutex_lock(&s->mu);
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* ---- leader ------------------------------------------------------------ */

static void secret_done(void *arg, bool ok, uint64_t index,
                        const struct fsm_effects *fx, const char *error)
{
    struct peerd *p = arg;

    (void)index;
    (void)fx;
    if (p->storage)
        p->storage->proposing_secret = false;
    if (!ok)
        log_warnx("database password not committed: %s", error);
}

static void propose_password(struct peerd *p, struct storage *s, double now)
{
    char pw[ACCT_PASSWORD_LEN + 1];
    secret_t *plain = secret_new(ACCT_PASSWORD_LEN);
    err_t err = {{0}};
    char *hex;

    if (!plain)
        return;
    acct_password_generate(pw);
    memcpy(plain->data, pw, ACCT_PASSWORD_LEN);
    sodium_memzero(pw, sizeof(pw));
    hex = cluster_encrypt_hex(&p->cluster, FSM_SECRET_DB_PASSWORD, plain, &err);
    secret_destroy(&plain);
    if (!hex) {
        log_warnx("cannot make the database password: %s", err.text);
        return;
    }
    if (agree_propose(p->agree,
                      json_pack("{s:s,s:s,s:s}", "op", "secret_set", "name",
                                FSM_SECRET_DB_PASSWORD, "value", hex),
                      secret_done, p, now) == 0) {
        s->proposing_secret = true;
        log_info("accounting: made the database password");
    }
    free(hex);
}

static void storage_done(void *arg, bool ok, uint64_t index,
                         const struct fsm_effects *fx, const char *error)
{
    struct peerd *p = arg;

    (void)index;
    (void)fx;
    if (p->storage)
        p->storage->proposing = false;
    if (!ok)
        log_warnx("storage placement not committed: %s", error);
}

/* Can member id run accounting now: active, not dead to SWIM? */
static bool usable(struct peerd *p, const struct member *m)
{
    const char *st;

    if (strcmp(m->state, "active") != 0)
        return false;
    if (m->id == p->cluster.node_id)
        return true;
    st = alive_state(p, m->id);
    return !st || strcmp(st, "dead") != 0;
}

/* The best voter for a role: usable, not in avoid[], preferring one
 * that is not the controller's host.  0 when there is none.
 */
static uint64_t pick(struct peerd *p, const struct member *v, size_t n,
                     uint64_t avoid)
{
    uint64_t second = 0;

    for (size_t i = 0; i < n; i++) {
        if (!v[i].voter || v[i].id == avoid || !usable(p, &v[i]))
            continue;
        if (v[i].id != p->controller_id)
            return v[i].id;
        if (!second)
            second = v[i].id;
    }
    return second;
}

static const struct member *find(const struct member *v, size_t n, uint64_t id)
{
    for (size_t i = 0; i < n; i++)
        if (v[i].id == id)
            return &v[i];
    return NULL;
}

/* What the placement should be now; false when it is fine as it is. */
static bool plan(struct peerd *p, struct storage *s, double now,
                 uint64_t *storage, uint64_t *replica)
{
    struct member *v = NULL;
    const struct member *cur;
    size_t n = 0;
    bool dead;

    if (members_list(p->cluster.store, &v, &n, NULL) < 0)
        return false;
    *storage = s->storage_id;
    *replica = s->multi ? s->replica_id : 0;
    cur = find(v, n, s->storage_id);
    dead = cur && !usable(p, cur);
    if (!dead)
        s->dead_since = 0;
    else if (s->dead_since == 0)
        s->dead_since = now;
    if (!cur || strcmp(cur->state, "active") != 0) {
        /* none yet, or it left: mini takes the controller's host */
        *storage = s->multi ? pick(p, v, n, 0) : p->controller_id;
        if (!*storage)
            *storage = p->cluster.node_id;
    } else if (s->multi && dead && now - s->dead_since >= STORAGE_DEAD_GRACE) {
        const struct member *r = find(v, n, s->replica_id);
        *storage = r && usable(p, r) ? r->id : pick(p, v, n, s->storage_id);
        if (!*storage)
            *storage = s->storage_id; /* nobody else: wait for it */
    }
    if (s->multi) {
        const struct member *r = find(v, n, *replica);
        if (!r || *replica == *storage || !usable(p, r))
            *replica = pick(p, v, n, *storage);
    }
    free(v);
    return *storage != s->storage_id || *replica != s->replica_id ||
           s->term == 0;
}

static void leader_tick(struct peerd *p, struct storage *s, double now)
{
    uint64_t storage, replica;

    if (!s->accounting || !agree_is_leader(p->agree))
        return;
    if (!s->have_password && !s->password_error[0] && !s->proposing_secret)
        propose_password(p, s, now);
    if (s->proposing || !plan(p, s, now, &storage, &replica))
        return;
    if (agree_propose(p->agree,
                      json_pack("{s:s,s:I,s:I,s:I}", "op", "storage", "storage",
                                (json_int_t)storage, "replica",
                                (json_int_t)replica, "term",
                                (json_int_t)(s->term + 1)),
                      storage_done, p, now) == 0) {
        s->proposing = true;
        log_info("placing accounting on member %llu (replica %llu)",
                 (unsigned long long)storage, (unsigned long long)replica);
    }
}

/* ---- slurmctld --------------------------------------------------------- */

static bool has_tres_state(struct peerd *p)
{
    char path[PATH_MAX];
    struct stat st;

    snprintf(path, sizeof(path), "%s/%s", p->layout.state_dir,
             STORAGE_TRES_STATE);
    return stat(path, &st) == 0 && st.st_size > 0;
}

/* Does slurmdbd answer from here and list this cluster? */
static bool cluster_registered(struct storage *s)
{
    bool yes;

    pthread_mutex_lock(&s->mu);
    yes = s->seen.dbd_ok && s->seen.registered;
    pthread_mutex_unlock(&s->mu);
    return yes;
}

static bool ctl_wait(struct storage *s, double now, const char *why)
{
    if (s->ctl_waiting == 0) {
        s->ctl_waiting = now;
        s->ctl_gave_up = false;
        log_info("slurmctld waits for slurmdbd to list cluster %s: %s",
                 s->cluster_name, why);
    }
    return false;
}

bool storage_ctl_may_start(struct peerd *p, double now)
{
    struct storage *s = p->storage;

    if (!s || !s->accounting || cluster_registered(s)) {
        if (s)
            s->ctl_waiting = 0;
        return true;
    }
    /* slurmdbd cannot come up here: no point in waiting for it */
    if (s->storage_id == p->cluster.node_id &&
        (s->password_error[0] || !s->services) && has_tres_state(p))
        return true;
    if (s->ctl_waiting == 0)
        ctl_wait(s, now,
                 has_tres_state(p) ? "so that it registers its address"
                                   : "it has no accounting state yet and "
                                     "would not start without it");
    /* with saved state it can do without: not for ever */
    if (has_tres_state(p) && now - s->ctl_waiting >= STORAGE_CTL_WAIT) {
        if (!s->ctl_gave_up)
            log_warnx("slurmdbd does not answer after %.0f s: slurmctld "
                      "starts without it (it keeps its records for it)",
                      STORAGE_CTL_WAIT);
        s->ctl_gave_up = true;
        return true;
    }
    return false;
}

/* After a tier switch: restart a running slurmctld once it may start
 * (it loads its accounting plugin only at start); off is at once.
 */
static void restart_ctl(struct peerd *p, struct storage *s, double now)
{
    if (!s->restart_ctl)
        return;
    if (!p->controller || supervisor_pid(p->sv, p->svc_slurmctld) <= 0) {
        s->restart_ctl = false; /* it starts with the new slurm.conf */
        return;
    }
    /* a slurmctld that registers before the cluster is in the database
     * leaves it with no control host ("no remote port"): wait for it
     */
    if (s->accounting && !cluster_registered(s)) {
        ctl_wait(s, now, "accounting was switched on");
        return;
    }
    s->ctl_waiting = 0;
    s->restart_ctl = false;
    supervisor_restart(p->sv, p->svc_slurmctld,
                       s->accounting ? "accounting switched on"
                                     : "accounting switched off");
}

/* slurmdbd lists the cluster without a control host ("no remote
 * port"): slurmctld registered while slurmdbd was away and does not do
 * it again by itself.  Restarted, it registers at start.
 */
static void rehome_ctl(struct peerd *p, struct storage *s, double now)
{
    bool unhomed;

    pthread_mutex_lock(&s->mu);
    unhomed = s->seen.registered && s->seen.cluster.control_port == 0;
    pthread_mutex_unlock(&s->mu);
    if (!unhomed || !p->controller || s->restart_ctl ||
        supervisor_pid(p->sv, p->svc_slurmctld) <= 0) {
        s->unhomed_since = 0;
        return;
    }
    if (s->unhomed_since == 0)
        s->unhomed_since = now;
    if (now - s->unhomed_since >= STORAGE_UNHOMED_AFTER &&
        (s->rehomed_at == 0 || now - s->rehomed_at >= STORAGE_REHOME_SPACING)) {
        s->rehomed_at = now;
        s->unhomed_since = 0;
        supervisor_restart(p->sv, p->svc_slurmctld,
                           "slurmdbd lists the cluster without its "
                           "controller: register again");
    }
}

/* slurmdbd answers again, on another host than before (storage moved):
 * slurmctld found the old one gone and retries only every so often
 * (10-20 s were seen; `scontrol reconfigure` does not hurry it), so it
 * is restarted (it saves its state first; jobs go on) to connect now and
 * send what it kept meanwhile.
 */
static void nudge_ctl(struct peerd *p, struct storage *s)
{
    bool ok;
    double at;

    pthread_mutex_lock(&s->mu);
    ok = s->seen.dbd_ok;
    at = s->seen.dbd_at;
    pthread_mutex_unlock(&s->mu);
    if (at <= 0 || at == s->nudge_seen_at || !ok)
        return;
    s->nudge_seen_at = at;
    if (s->dbd_ok_addr[0] && strcmp(s->dbd_ok_addr, s->storage_addr) != 0 &&
        p->controller && s->accounting && !s->restart_ctl &&
        supervisor_pid(p->sv, p->svc_slurmctld) > 0)
        supervisor_restart(p->sv, p->svc_slurmctld,
                           "slurmdbd moved: connect to it now");
    snprintf(s->dbd_ok_addr, sizeof(s->dbd_ok_addr), "%s", s->storage_addr);
    rehome_ctl(p, s, at);
}

/* ---- every round ------------------------------------------------------- */

/* A peer that starts takes its role only once it has caught up with the
 * cluster: it has led, or followed a leader for STORAGE_SETTLE seconds.
 * A storage host that was dead while storage moved elsewhere would
 * otherwise come back as a primary from its stale state.
 */
static bool settled(struct peerd *p, struct storage *s, double now)
{
    if (s->settled)
        return true;
    if (agree_is_leader(p->agree)) {
        s->settled = true;
    } else if (agree_leader(p->agree) == 0) {
        s->leader_since = 0;
    } else if (s->leader_since == 0) {
        s->leader_since = now;
    } else if (now - s->leader_since >= STORAGE_SETTLE) {
        s->settled = true;
    }
    return s->settled;
}

static enum role my_role(struct peerd *p, struct storage *s, double now)
{
    if (!s->accounting || !s->services || !settled(p, s, now))
        return ROLE_NONE;
    if (s->storage_id == p->cluster.node_id)
        return ROLE_PRIMARY;
    if (s->multi && s->replica_id == p->cluster.node_id)
        return ROLE_REPLICA;
    return ROLE_NONE;
}

static void feed_health(struct peerd *p, struct storage *s, double now)
{
    struct seen v;

    pthread_mutex_lock(&s->mu);
    v = s->seen;
    pthread_mutex_unlock(&s->mu);
    if (v.db_at > s->fed_db_at && v.db_checked_pid > 0 &&
        v.db_checked_pid == supervisor_pid(p->sv, s->svc_db)) {
        s->fed_db_at = v.db_at;
        supervisor_health(p->sv, s->svc_db, v.db_ok, v.db_at,
                          v.db_detail[0] ? v.db_detail : NULL, now);
    }
    if (v.dbd_at > s->fed_dbd_at && v.dbd_checked_pid > 0 &&
        v.dbd_checked_pid == supervisor_pid(p->sv, s->svc_dbd)) {
        s->fed_dbd_at = v.dbd_at;
        supervisor_health(p->sv, s->svc_dbd, v.dbd_ok, v.dbd_at,
                          v.dbd_detail[0] ? v.dbd_detail : NULL, now);
    }
}

static void set_enabled(struct peerd *p, int idx, bool on, double now)
{
    if (idx < 0 || on == supervisor_enabled(p->sv, idx))
        return;
    if (on)
        supervisor_enable(p->sv, idx, now);
    else
        supervisor_disable(p->sv, idx, 10.0, now);
}

void storage_tick(struct peerd *p, double now)
{
    struct storage *s = p->storage;
    enum role role;
    bool prepared, written;

    if (!s || !p->sv)
        return;
    leader_tick(p, s, now);
    if (now >= s->alias_at) {
        s->alias_at = now + PLACE_ALIAS_RECHECK;
        point_alias(p, s);
    }
    role = p->stopping ? ROLE_NONE : my_role(p, s, now);
    pthread_mutex_lock(&s->mu);
    if (s->want.role != role) {
        s->seen.conf_written = false;
        s->seen.bootstrapped_pid = 0;
        s->seen.primary_ready = false;
        s->seen.registered = false;
        s->seen.repl_at = 0;
        pthread_cond_signal(&s->cv);
    }
    s->want.role = role;
    s->want.accounting = s->accounting && !p->stopping;
    s->want.have_password = s->have_password;
    memcpy(s->want.password, s->password, sizeof(s->password));
    s->want.db_pid = s->services ? supervisor_pid(p->sv, s->svc_db) : 0;
    s->want.dbd_pid = s->services ? supervisor_pid(p->sv, s->svc_dbd) : 0;
    s->want.multi = s->multi;
    snprintf(s->want.primary, sizeof(s->want.primary), "%s", s->storage_addr);
    bool ready = s->seen.primary_ready;
    prepared = s->seen.prepared;
    written = s->seen.conf_written;
    pthread_mutex_unlock(&s->mu);
    restart_ctl(p, s, now);
    nudge_ctl(p, s);
    if (!s->services)
        return;
    feed_health(p, s, now);
    set_enabled(p, s->svc_db, role != ROLE_NONE && prepared, now);
    /* slurmdbd only on a writable, set-up primary */
    set_enabled(p, s->svc_dbd,
                role == ROLE_PRIMARY && prepared && written && ready, now);
}

/* ---- status ------------------------------------------------------------ */

static json_t *check_json(bool ok, double at, const char *detail,
                          const char *logged, double now)
{
    if (at <= 0)
        return json_null();
    return json_pack("{s:b,s:s,s:f,s:o}", "ok", ok, "detail", detail, "age",
                     now - at, "log",
                     logged[0] ? json_string(logged) : json_null());
}

json_t *storage_status_json(struct peerd *p, double now)
{
    struct storage *s = p->storage;
    char low[PATH_MAX + 64];
    struct seen v;
    enum role role;
    json_t *o;

    if (!s)
        return json_null();
    pthread_mutex_lock(&s->mu);
    v = s->seen;
    role = s->want.role;
    pthread_mutex_unlock(&s->mu);
    char why[512] = "";
    const char *error = why;
    /* the first thing wrong, in the order it blocks accounting */
    if (s->password_error[0])
        error = s->password_error;
    else if (s->accounting && s->storage_id == p->cluster.node_id &&
             !s->services)
        error = s->no_services;
    else if (v.error[0])
        error = v.error;
    else if (role != ROLE_NONE && v.db_at > 0 && !v.db_ok)
        snprintf(why, sizeof(why), "MariaDB does not answer: %s",
                 v.db_logged[0] ? v.db_logged : v.db_detail);
    else if (s->accounting && v.dbd_at > 0 && !v.dbd_ok)
        snprintf(why, sizeof(why), "slurmdbd does not answer: %s",
                 v.dbd_logged[0] ? v.dbd_logged : v.dbd_detail);
    o = json_pack(
        "{s:b,s:s,s:o,s:I,s:o,s:I,s:s,s:b}", "enabled", s->accounting, "tier",
        p->cluster.tier ? p->cluster.tier : "micro", "storage",
        s->storage_name[0] ? json_string(s->storage_name) : json_null(),
        "storage_term", (json_int_t)s->term, "storage_address",
        s->storage_addr[0] ? json_string(s->storage_addr) : json_null(),
        "replica_id", (json_int_t)s->replica_id, "role", role_names[role],
        "password_committed", s->have_password);
    json_object_set_new(
        o, "slurmdbd",
        s->accounting
            ? check_json(v.dbd_ok, v.dbd_at, v.dbd_detail, v.dbd_logged, now)
            : json_null());
    json_object_set_new(
        o, "mariadb",
        role != ROLE_NONE
            ? check_json(v.db_ok, v.db_at, v.db_detail, v.db_logged, now)
            : json_null());
    if (v.dbd_ok && v.cluster.registered)
        json_object_set_new(o, "cluster",
                            json_pack("{s:s,s:s,s:i}", "name", s->cluster_name,
                                      "control_host", v.cluster.control_host,
                                      "control_port", v.cluster.control_port));
    else
        json_object_set_new(o, "cluster", json_null());
    if (role != ROLE_NONE && v.disk_total_mb >= 0 && v.disk_total_mb > 0) {
        json_object_set_new(
            o, "disk",
            json_pack("{s:s,s:f,s:f,s:b}", "path", s->layout.db_dir, "free_mb",
                      v.disk_free_mb, "total_mb", v.disk_total_mb, "low",
                      v.disk_free_mb < DISK_LOW_MB));
        if (v.disk_free_mb < DISK_LOW_MB && error == why) {
            snprintf(low, sizeof(low),
                     "the disk under %s is full (%.0f MiB free)",
                     s->layout.db_dir, v.disk_free_mb);
            error = low;
        }
    } else {
        json_object_set_new(o, "disk", json_null());
    }
    {
        struct member m;
        json_object_set_new(
            o, "replica",
            s->replica_id &&
                    members_get(p->cluster.store, s->replica_id, &m, NULL) == 1
                ? json_string(m.name)
                : json_null());
    }
    if (role == ROLE_REPLICA && v.repl_at > 0) {
        const struct replica_status *r = &v.repl;
        json_object_set_new(
            o, "replication",
            json_pack("{s:s,s:b,s:b,s:b,s:o,s:s,s:s,s:o,s:f,s:f}", "primary",
                      s->storage_addr, "configured", r->configured,
                      "io_running", r->io_running, "sql_running",
                      r->sql_running, "seconds_behind",
                      r->seconds_behind >= 0 ? json_integer(r->seconds_behind)
                                             : json_null(),
                      "gtid_received", r->gtid_io_pos, "gtid_applied",
                      r->gtid_slave_pos, "error",
                      v.repl_error[0] ? json_string(v.repl_error) : json_null(),
                      "rebuilt_in", v.follow_took, "age", now - v.repl_at));
    } else {
        json_object_set_new(o, "replication", json_null());
    }
    if (v.promoted)
        json_object_set_new(
            o, "promotion",
            json_pack("{s:b,s:f,s:s,s:s}", "caught_up", v.promotion.caught_up,
                      "waited", v.promotion.waited, "gtid", v.promotion.gtid,
                      "sql_error", v.promotion.sql_error));
    else
        json_object_set_new(o, "promotion", json_null());
    json_object_set_new(o, "error",
                        error[0] ? json_string(error) : json_null());
    return o;
}
