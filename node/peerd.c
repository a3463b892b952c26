/* peerd.c - the peer daemon: one per host, owns the host's Slurm
 *
 * Start-up: parse options, lock the data dir, bootstrap a cluster, join
 * one (--join, with a token) or resume the one the data dir holds, open
 * the peer sockets and Raft, bind the control socket, and once the
 * cluster's state is here (at once, or when a joined peer has received
 * the log) lay out Slurm's files and start the daemons.  The event loop
 * waits on the control socket, the peer and join sockets, the ZAP
 * handler, a signalfd (SIGCHLD, SIGTERM, SIGINT, SIGHUP) and the health
 * thread's eventfd, with a timeout from the next Raft tick or supervisor
 * deadline.
 *
 * peerd is a child subreaper: processes that the daemons leave behind
 * (slurmstepd) become its children, so that at shutdown it can make sure
 * no Slurm process of this host outlives it.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <slurm/slurm.h>
#include <slurm/slurm_errno.h>
#include <sodium.h>
#include <zmq.h>

#include "node/join.h"
#include "node/log.h"
#include "node/alive.h"
#include "node/hostsfile.h"
#include "node/peerd.h"
#include "node/place.h"
#include "node/login.h"
#include "node/storage.h"
#include "store/file.h"
#include "store/members.h"

struct options {
    const char *data_dir;
    const char *slurm_conf;
    const char *address;
    const char *listen;
    const char *join;
    const char *token;
    const char *hosts_file;
    const char *login;      /* --login ADDR:PORT */
    const char *login_user; /* --login-user */
    bool no_compute;
    bool syslog;
    bool debug;
    struct cluster_opts cluster;
    struct slurm_binaries bin;
};

double peerd_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: peerd [--bootstrap [--cluster-name NAME] [--tier TIER]\n"
        "              [--munge-key FILE]]\n"
        "             [--join HOST[:PORT] --token TOKEN]\n"
        "             [--data-dir DIR] [--listen ADDR[:PORT]] "
        "[--address ADDR]\n"
        "             [--slurm-conf PATH] [--hosts-file PATH]\n"
        "             [--login ADDR:PORT [--login-user USER]] "
        "[--no-compute]\n"
        "             [--munged PATH] [--slurmctld PATH]\n"
        "             [--slurmd PATH] [--syslog] [--debug]\n"
        "\n"
        "  --bootstrap         create a cluster on this host (or resume it)\n"
        "  --cluster-name NAME cluster name (default %s)\n"
        "  --tier TIER         micro, mini (+ accounting) or multi (+ its "
        "failover)\n"
        "  --munge-key FILE    import this munge key at bootstrap\n"
        "  --join HOST[:PORT]  join the cluster of the peer at HOST (port "
        "%d)\n"
        "  --token TOKEN       the join token ('peerctl token create')\n"
        "  --data-dir DIR      state of this peer (default %s)\n"
        "  --listen ADDR[:PORT] where the peer socket listens (join "
        "socket: PORT+1)\n"
        "  --address ADDR      address other hosts reach this one at\n"
        "  --slurm-conf PATH   where to write slurm.conf (default %s)\n"
        "  --hosts-file PATH   where %s is pointed at the controller "
        "(default\n"
        "                      /etc/hosts)\n"
        "  --login ADDR:PORT   run a Jupyter server here, bound there\n"
        "  --login-user USER   the user Jupyter runs as (default root)\n"
        "  --no-compute        run no slurmd here (a login-only host)\n"
        "  --munged/--slurmctld/--slurmd PATH   daemon binaries\n"
        "  --syslog            log to syslog instead of stderr\n"
        "  --debug             log debug messages\n"
        "See peerd(8).\n",
        CLUSTER_DEFAULT_NAME, TRANSPORT_DEFAULT_PORT, PEERD_DEFAULT_DATA_DIR,
        PEERD_DEFAULT_SLURM_CONF, SLURM_CTL_ALIAS);
}

static int parse_options(int argc, char **argv, struct options *o)
{
    enum {
        OPT_BOOTSTRAP = 256,
        OPT_NAME,
        OPT_TIER,
        OPT_MUNGE_KEY,
        OPT_DATA_DIR,
        OPT_ADDRESS,
        OPT_LISTEN,
        OPT_JOIN,
        OPT_TOKEN,
        OPT_SLURM_CONF,
        OPT_HOSTS_FILE,
        OPT_MUNGED,
        OPT_SLURMCTLD,
        OPT_SLURMD,
        OPT_SYSLOG,
        OPT_DEBUG,
        OPT_LOGIN,
        OPT_LOGIN_USER,
        OPT_NO_COMPUTE,
        OPT_HELP,
        OPT_VERSION,
    };
    static const struct option longopts[] = {
        {"bootstrap", no_argument, NULL, OPT_BOOTSTRAP},
        {"cluster-name", required_argument, NULL, OPT_NAME},
        {"tier", required_argument, NULL, OPT_TIER},
        {"munge-key", required_argument, NULL, OPT_MUNGE_KEY},
        {"data-dir", required_argument, NULL, OPT_DATA_DIR},
        {"address", required_argument, NULL, OPT_ADDRESS},
        {"listen", required_argument, NULL, OPT_LISTEN},
        {"join", required_argument, NULL, OPT_JOIN},
        {"token", required_argument, NULL, OPT_TOKEN},
        {"slurm-conf", required_argument, NULL, OPT_SLURM_CONF},
        {"hosts-file", required_argument, NULL, OPT_HOSTS_FILE},
        {"munged", required_argument, NULL, OPT_MUNGED},
        {"slurmctld", required_argument, NULL, OPT_SLURMCTLD},
        {"slurmd", required_argument, NULL, OPT_SLURMD},
        {"syslog", no_argument, NULL, OPT_SYSLOG},
        {"login", required_argument, NULL, OPT_LOGIN},
        {"login-user", required_argument, NULL, OPT_LOGIN_USER},
        {"no-compute", no_argument, NULL, OPT_NO_COMPUTE},
        {"debug", no_argument, NULL, OPT_DEBUG},
        {"help", no_argument, NULL, OPT_HELP},
        {"version", no_argument, NULL, OPT_VERSION},
        {NULL, 0, NULL, 0},
    };
    int c;

    memset(o, 0, sizeof(*o));
    o->data_dir = getenv("PEERD_DATA_DIR");
    if (!o->data_dir || !*o->data_dir)
        o->data_dir = PEERD_DEFAULT_DATA_DIR;
    o->slurm_conf = PEERD_DEFAULT_SLURM_CONF;
    o->hosts_file = "/etc/hosts";
    o->bin.munged = "munged";
    o->bin.slurmctld = "slurmctld";
    o->bin.slurmd = "slurmd";
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_BOOTSTRAP:
            o->cluster.bootstrap = true;
            break;
        case OPT_NAME:
            o->cluster.name = optarg;
            break;
        case OPT_TIER:
            o->cluster.tier = optarg;
            break;
        case OPT_MUNGE_KEY:
            o->cluster.munge_key_file = optarg;
            break;
        case OPT_DATA_DIR:
            o->data_dir = optarg;
            break;
        case OPT_ADDRESS:
            o->address = optarg;
            break;
        case OPT_LISTEN:
            o->listen = optarg;
            break;
        case OPT_JOIN:
            o->join = optarg;
            break;
        case OPT_TOKEN:
            o->token = optarg;
            break;
        case OPT_SLURM_CONF:
            o->slurm_conf = optarg;
            break;
        case OPT_HOSTS_FILE:
            o->hosts_file = optarg;
            break;
        case OPT_MUNGED:
            o->bin.munged = optarg;
            break;
        case OPT_SLURMCTLD:
            o->bin.slurmctld = optarg;
            break;
        case OPT_SLURMD:
            o->bin.slurmd = optarg;
            break;
        case OPT_SYSLOG:
            o->syslog = true;
            break;
        case OPT_LOGIN:
            o->login = optarg;
            break;
        case OPT_LOGIN_USER:
            o->login_user = optarg;
            break;
        case OPT_NO_COMPUTE:
            o->no_compute = true;
            break;
        case OPT_DEBUG:
            o->debug = true;
            break;
        case 'h':
        case OPT_HELP:
            usage(stdout);
            exit(0);
        case OPT_VERSION:
            printf("peerd %s\n", PACKAGE_VERSION);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "peerd: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return -1;
    }
    if (o->data_dir[0] != '/' || o->slurm_conf[0] != '/') {
        fprintf(stderr, "peerd: --data-dir and --slurm-conf must be "
                        "absolute paths\n");
        return -1;
    }
    /* the control socket DATA/peerd.ctl must fit in sun_path (108) */
    if (strlen(o->data_dir) > 90) {
        fprintf(stderr, "peerd: --data-dir is too long (at most 90 "
                        "characters)\n");
        return -1;
    }
    if (o->join && o->cluster.bootstrap) {
        fprintf(stderr, "peerd: --join and --bootstrap exclude each other\n");
        return -1;
    }
    if (!o->join != !o->token) {
        fprintf(stderr, "peerd: --join needs --token, and --token --join\n");
        return -1;
    }
    if (o->no_compute && o->cluster.bootstrap) {
        fprintf(stderr, "peerd: --no-compute: the first host's node is in "
                        "slurm.conf; bootstrap on a compute host and join "
                        "the login host\n");
        return -1;
    }
    if (o->login_user && !o->login) {
        fprintf(stderr, "peerd: --login-user needs --login\n");
        return -1;
    }
    if (o->login) {
        err_t err = {{0}};
        if (login_check_option(o->login, &err) < 0) {
            fprintf(stderr, "peerd: --login: %s\n", err.text);
            return -1;
        }
        if (!o->login_user)
            o->login_user = "root";
    }
    o->cluster.data_dir = o->data_dir;
    return 0;
}

/* One peer per data dir: hold an exclusive lock on DATA/peerd.pid for
 * the life of the process and write our pid into it.
 */
static int lock_data_dir(const char *dir, err_t *err)
{
    char path[PATH_MAX], pid[32], old[32] = "";
    int fd, n;

    if (file_mkdir_p(dir, 0755, err) < 0)
        return EX_CANTCREAT;
    snprintf(path, sizeof(path), "%s/peerd.pid", dir);
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        errprintf_errno(err, "data dir %s is not writable: cannot open %s", dir,
                        path);
        return EX_CANTCREAT;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        n = read(fd, old, sizeof(old) - 1);
        old[n > 0 ? n : 0] = '\0';
        old[strcspn(old, "\n")] = '\0';
        errprintf(err, "another peerd (pid %s) is using %s", old, dir);
        close(fd);
        return EX_TEMPFAIL;
    }
    n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
    if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, n, 0) != n) {
        errprintf_errno(err, "cannot write %s", path);
        close(fd);
        return EX_CANTCREAT;
    }
    return 0; /* fd stays open: the lock lives as long as we do */
}

static int setup_signals(void)
{
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    /* before any thread exists, so every thread inherits the mask */
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
        return -1;
    signal(SIGPIPE, SIG_IGN);
    return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

/* Keep the transport's peers equal to the active members (and, on a
 * joined peer whose log has not arrived, the leader it was given).
 */
static void sync_peers(struct peerd *p)
{
    struct member *v = NULL;
    size_t n = 0;
    err_t err;

    if (members_list(p->cluster.store, &v, &n, &err) < 0) {
        log_warnx("cannot read members: %s", err.text);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (v[i].id == p->cluster.node_id)
            continue;
        /* a member that left stays reachable while Raft still counts it:
         * it must hear that its leave is committed
         */
        if (strcmp(v[i].state, "active") == 0 ||
            (p->agree && agree_in_conf(p->agree, v[i].id)))
            transport_set_peer(p->t, v[i].id, v[i].pubkey, v[i].address);
        else
            transport_remove_peer(p->t, v[i].id);
    }
    if (n == 0) {
        char *id = NULL, *addr = NULL, *pub = NULL;
        unsigned char key[32];
        size_t got = 0;
        if (store_get(p->cluster.store, STORE_LOCAL, "leader_id", &id, NULL) ==
                1 &&
            store_get(p->cluster.store, STORE_LOCAL, "leader_address", &addr,
                      NULL) == 1 &&
            store_get(p->cluster.store, STORE_LOCAL, "leader_pub", &pub,
                      NULL) == 1 &&
            sodium_hex2bin(key, 32, pub, strlen(pub), NULL, &got, NULL) == 0 &&
            got == 32)
            transport_set_peer(p->t, strtoull(id, NULL, 10), key, addr);
        free(id);
        free(addr);
        free(pub);
    }
    free(v);
}

/* The controller candidates (the voters) as "h1,h2,h3", by member id:
 * the same on every host.  Returns 0, -1 when there is none.
 */
static int voter_names(struct peerd *p, char *out, size_t cap)
{
    struct member *v = NULL;
    size_t n = 0, len = 0;

    out[0] = '\0';
    if (members_list(p->cluster.store, &v, &n, NULL) < 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (v[i].voter && strcmp(v[i].state, "active") == 0 &&
            len + strlen(v[i].name) + 2 < cap)
            len += snprintf(out + len, cap - len, "%s%s", len ? "," : "",
                            v[i].name);
    free(v);
    return len ? 0 : -1;
}

/* Render slurm.conf from the state; 1 changed, 0 same, -1 failed. */
static int render_site(struct peerd *p, bool prepare, err_t *err)
{
    struct member first;
    char **extra = NULL, hosts[1024], addr[64], *v = NULL;
    uint64_t first_id = 0;
    size_t n = 0;
    int rc, port;

    if (store_get(p->cluster.store, STORE_CONFIG, "static_node", &v, NULL) ==
            1 &&
        v)
        first_id = strtoull(v, NULL, 10);
    free(v);
    if (first_id == 0) /* a cluster from before placements */
        first_id = p->controller_id;
    if (members_get(p->cluster.store, first_id, &first, err) != 1 ||
        transport_parse_addr(first.address, addr, sizeof(addr), &port,
                             TRANSPORT_DEFAULT_PORT) < 0)
        return errprintf(err, "the cluster state names no first host");
    if (voter_names(p, hosts, sizeof(hosts)) < 0)
        return errprintf(err, "the cluster state names no voter");
    if (store_config_lines(p->cluster.store, "slurm.", &extra, &n, err) < 0)
        return -1;
    struct slurm_site site = {
        .cluster_name = p->cluster.name,
        .ctl_hosts = hosts,
        .static_name = first.name,
        .static_addr = addr,
        .static_cpus = first.cpus,
        .static_memory_mb = first.memory_mb,
        .first_job_id = (unsigned long)p->first_job_id,
        .accounting = storage_accounting(p),
        .extra = (const char *const *)extra,
        .n_extra = n,
    };
    if (prepare)
        rc = slurm_prepare(p->data_dir, p->slurm_conf, &p->cluster, &site,
                           &p->layout, err) == 0
                 ? 1
                 : -1;
    else
        rc = slurm_render(&site, &p->layout, err);
    store_lines_free(extra, n);
    if (rc >= 0)
        p->static_node = first_id == p->cluster.node_id;
    return rc;
}

static int start_slurm(struct peerd *p)
{
    err_t err = {{0}};

    int rc;

    place_load(p);
    rc = render_site(p, true, &err);
    if (rc < 0) {
        log_warnx("%s", err.text);
        return strstr(err.text, "not written by peerd") ? EX_CONFIG
                                                        : EX_CANTCREAT;
    }
    log_info("wrote %s (sha256 %.16s...); the controller is %s (term %llu)",
             p->layout.slurm_conf, p->layout.config_hash,
             p->ctl_name[0] ? p->ctl_name : "not placed yet",
             (unsigned long long)p->ctl_term);
    if (p->ctl_addr[0] &&
        hostsfile_point(p->hosts_file, SLURM_CTL_ALIAS, p->ctl_addr, &err) < 0)
        log_warnx("%s", err.text);
    ship_init(p);
    p->sv = supervisor_new();
    if (!p->sv || slurm_add_services(p->sv, &p->layout, &p->bin, p->host.name,
                                     p->static_node, p->host.cpus,
                                     p->host.memory_mb) < 0) {
        log_warn("cannot set up the supervisor");
        supervisor_destroy(&p->sv);
        return EX_OSERR;
    }
    p->svc_munged = supervisor_find(p->sv, "munged");
    p->svc_slurmctld = supervisor_find(p->sv, "slurmctld");
    p->svc_slurmd = supervisor_find(p->sv, "slurmd");
    storage_start(p);
    if (p->login_addr) {
        err_t lerr = {{0}};
        if (login_start(p, p->login_addr, p->login_user, &lerr) < 0) {
            log_warnx("login: %s", lerr.text);
            login_stop(p);
            health_stop(&p->health);
            storage_stop(p);
            supervisor_destroy(&p->sv);
            return EX_CONFIG;
        }
    }
    p->health = health_start(p->layout.munge_socket, p->layout.slurm_conf, 2.0);
    if (!p->health) {
        log_warn("cannot start the health checks");
        supervisor_destroy(&p->sv);
        return EX_OSERR;
    }
    p->slurm_started = true;
    p->reported = false;
    return 0;
}

static void reported(void *arg, bool ok, uint64_t index,
                     const struct fsm_effects *fx, const char *error)
{
    struct peerd *p = arg;

    p->reporting = false;
    /* slurm.conf may have been rewritten while the report was on its way:
     * then the next round reports again
     */
    if (ok && strcmp(p->report_hash, p->layout.config_hash) == 0)
        p->reported = true;
    else
        log_debug("hash report not committed: %s", error);
}

/* Put this host's config and munge key hashes in the member table, so
 * that `peerctl members` shows drift.  One report in flight at a time.
 */
static void report_hashes(struct peerd *p, double now)
{
    struct member m;

    if (!p->slurm_started || p->reported || p->reporting)
        return;
    if (members_get(p->cluster.store, p->cluster.node_id, &m, NULL) == 1 &&
        strcmp(m.config_hash, p->layout.config_hash) == 0 &&
        strcmp(m.munge_key_hash, p->cluster.munge_key_hash) == 0) {
        p->reported = true;
        return;
    }
    if (agree_propose(p->agree,
                      json_pack("{s:s,s:I,s:s,s:s}", "op", "member_report",
                                "id", (json_int_t)p->cluster.node_id,
                                "config_hash", p->layout.config_hash,
                                "munge_key_hash", p->cluster.munge_key_hash),
                      reported, p, now) == 0) {
        p->reporting = true;
        snprintf(p->report_hash, sizeof(p->report_hash), "%s",
                 p->layout.config_hash);
    }
}

/* Called by agree for every entry applied here. */
static void on_applied(void *arg, const struct wire_entry *e,
                       const struct fsm_effects *fx)
{
    struct peerd *p = arg;
    err_t err = {{0}};
    int rc;

    if (fx->members_changed) {
        sync_peers(p);
        alive_members(p);
    }
    if (fx->bootstrapped && !p->cluster.have_state) {
        if ((rc = cluster_load_state(&p->cluster, &err)) != 0) {
            log_warnx("cannot load the cluster state: %s", err.text);
            return;
        }
        log_info("received the state of cluster '%s' (%s)", p->cluster.name,
                 p->cluster.id);
        if (transport_listen_join(p->t, p->cluster.join_pub,
                                  p->cluster.join_sec, &err) < 0)
            log_warnx("cannot serve joins: %s", err.text);
    }
    if (p->cluster.have_state && !p->slurm_started && !p->sv &&
        fx->members_changed && p->cluster.node_id != 0) {
        struct member m;
        if (members_get(p->cluster.store, p->cluster.node_id, &m, NULL) == 1)
            start_slurm(p);
    }
    place_applied(p, fx->placement_changed, fx->transfer, fx->transfer_to);
    if (fx->config_changed)
        cluster_reload_tier(&p->cluster);
    if ((fx->config_changed || fx->members_changed || fx->placement_changed) &&
        p->slurm_started) {
        rc = render_site(p, false, &err);
        if (rc < 0)
            log_warnx("%s", err.text);
        else if (rc > 0) {
            log_info("rewrote %s (sha256 %.16s...)", p->layout.slurm_conf,
                     p->layout.config_hash);
            p->reported = false;
            if (p->controller)
                health_reconfigure(p->health);
        }
    }
    if (p->slurm_started)
        storage_applied(p, fx);
    (void)e;
}

/* A dynamic node exists only in the controller's memory and state: a new
 * controller that took over from state saved before this node registered
 * does not know it, and slurmd registers only when it starts.  So when
 * the controller answers but lists no node of ours for a while, slurmd
 * is restarted (its job steps keep running).
 */
#define UNREGISTERED_AFTER 3.0
#define REREGISTER_SPACING 30.0

static void check_registered(struct peerd *p, const struct health_report *r,
                             double now)
{
    json_t *nodes = json_object_get(p->slurm_view, "nodes"), *n;
    bool listed = false;
    size_t i;

    if (p->static_node || p->no_compute || !r->slurmctld.ok || !r->slurmd.ok ||
        !json_is_array(nodes))
        return;
    json_array_foreach(nodes, i, n)
    {
        const char *name = json_string_value(json_object_get(n, "name"));
        listed |= name && strcmp(name, p->host.name) == 0;
    }
    if (listed) {
        p->unlisted_since = 0;
        return;
    }
    if (p->unlisted_since == 0) {
        p->unlisted_since = now;
        return;
    }
    if (now - p->unlisted_since >= UNREGISTERED_AFTER &&
        now - p->reregistered_at >= REREGISTER_SPACING) {
        p->reregistered_at = now;
        p->unlisted_since = 0;
        supervisor_restart(p->sv, p->svc_slurmd,
                           "the controller does not know this node");
    }
}

/* Feed the newest health report to the supervisor. */
static void take_health(struct peerd *p, double now)
{
    struct health_report r;

    if (!p->health || !health_take(p->health, &r))
        return;
    json_decref(p->slurm_view);
    p->slurm_view = r.slurm;
    r.slurm = NULL;
    p->report = r;
    p->have_report = true;
    supervisor_health(p->sv, p->svc_munged, r.munge.ok, r.started,
                      r.munge.detail, now);
    supervisor_health(p->sv, p->svc_slurmctld, r.slurmctld.ok, r.started,
                      r.slurmctld.detail, now);
    /* slurmd answers for itself; it must be the process we started */
    if (r.slurmd.ok && r.slurmd_pid != supervisor_pid(p->sv, p->svc_slurmd)) {
        r.slurmd.ok = false;
        snprintf(r.slurmd.detail, sizeof(r.slurmd.detail),
                 "a slurmd with pid %d answers, not ours", (int)r.slurmd_pid);
    }
    supervisor_health(p->sv, p->svc_slurmd, r.slurmd.ok, r.started,
                      r.slurmd.detail, now);
    /* slurmd registers when it starts: start it once a controller
     * answers (then it is supervised as any other service)
     */
    if (r.slurmctld.ok && !p->slurmd_enabled && !p->stopping &&
        !p->no_compute) {
        p->slurmd_enabled = true;
        supervisor_enable(p->sv, p->svc_slurmd, now);
        health_poke(p->health);
    }
    check_registered(p, &r, now);
}

/* Returns false when the loop should end. */
static bool handle_signals(struct peerd *p, int sfd)
{
    struct signalfd_siginfo si;
    bool go_on = true;

    while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
        switch (si.ssi_signo) {
        case SIGCHLD:
            if (p->sv)
                supervisor_reap(p->sv, peerd_now());
            else
                while (waitpid(-1, NULL, WNOHANG) > 0)
                    ;
            break;
        case SIGTERM:
        case SIGINT:
            log_info("%s: stopping", strsignal(si.ssi_signo));
            go_on = false;
            break;
        case SIGHUP:
            log_info("SIGHUP: nothing to reload");
            break;
        }
    }
    return go_on;
}

#define STARTING_POLL 0.25 /* seconds */
#define PEERS_RESYNC 5.0   /* seconds between sync_peers rounds */
#define MAX_ITEMS (3 + TRANSPORT_MAX_POLL)

/* One round of the loop: wait at most max_wait seconds, serve what is
 * ready.  Returns false on SIGTERM/SIGINT.
 */
static bool loop_once(struct peerd *p, int sfd, double *next_tick,
                      double *last_poke, double max_wait)
{
    zmq_pollitem_t items[MAX_ITEMS];
    double now = peerd_now(), wait = max_wait;
    int n = 0, nt;
    bool go_on = true;

    if (now >= *next_tick) {
        agree_tick(p->agree, now);
        *next_tick = now + AGREE_TICK;
        report_hashes(p, now);
    }
    agree_flush(p->agree, now);
    if (*next_tick - now < wait)
        wait = *next_tick - now;
    if (p->sv && p->health) {
        double w = supervisor_tick(p->sv, now);
        health_set_active(p->health, supervisor_pid(p->sv, p->svc_munged) > 0,
                          true, supervisor_pid(p->sv, p->svc_slurmd) > 0);
        /* While a daemon is coming up, check it every STARTING_POLL s
         * rather than every health interval: start-up time is what a
         * person waits for.
         */
        if (supervisor_starting(p->sv)) {
            if (now - *last_poke >= STARTING_POLL) {
                health_poke(p->health);
                *last_poke = now;
            }
            if (w > STARTING_POLL)
                w = STARTING_POLL;
        }
        if (w < wait)
            wait = w;
        /* the peers follow the member table; also now and then, so that
         * a change applied while the transport could not take it is not
         * missed for good (two followers were seen never to connect)
         */
        if (now >= p->peers_at) {
            p->peers_at = now + PEERS_RESYNC;
            sync_peers(p);
        }
        place_tick(p, now);
        storage_tick(p, now);
        login_tick(p, now);
        ship_tick(p, now);
        alive_tick(p, now);
    }
    agree_flush(p->agree, now);

    items[n++] = (zmq_pollitem_t){p->ctl, 0, ZMQ_POLLIN, 0};
    items[n++] = (zmq_pollitem_t){NULL, sfd, ZMQ_POLLIN, 0};
    items[n++] = (zmq_pollitem_t){NULL, p->health ? health_fd(p->health) : -1,
                                  ZMQ_POLLIN, 0};
    nt = transport_poll_items(p->t, &items[n]);
    if (!p->health)
        items[2].events = 0;
    if (zmq_poll(items, n + nt, (long)(wait * 1000) + 1) < 0) {
        if (errno != EINTR)
            log_warnx("zmq_poll: %s", zmq_strerror(errno));
        return true;
    }
    now = peerd_now();
    if (items[1].revents & ZMQ_POLLIN)
        go_on = handle_signals(p, sfd);
    if (items[2].revents & ZMQ_POLLIN)
        take_health(p, now);
    transport_service(p->t);
    for (;;) {
        struct wire_msg m;
        if (transport_recv(p->t, &m) <= 0)
            break;
        if (m.type == WIRE_SWIM) {
            alive_recv(p, &m, now);
            wire_msg_fini(&m);
            continue;
        }
        if (m.type == WIRE_STATE_CHUNK || m.type == WIRE_STATE_ACK) {
            if (p->slurm_started)
                ship_recv(p, &m, now);
            wire_msg_fini(&m);
            continue;
        }
        agree_step(p->agree, &m, now);
    }
    for (;;) {
        struct wire_msg m;
        unsigned char pub[32], rid[256];
        size_t ridlen = sizeof(rid);
        if (transport_recv_join(p->t, &m, pub, rid, &ridlen) <= 0)
            break;
        peerd_join_request(p, &m, pub, rid, ridlen);
        wire_msg_fini(&m);
    }
    if (items[0].revents & ZMQ_POLLIN)
        control_handle(p);
    agree_flush(p->agree, now);
    return go_on;
}

/* A Slurm call that may block for MessageTimeout (or longer when the
 * controller is gone) runs in a thread of its own; the caller waits a
 * bounded time and goes on either way.
 */
struct slurm_call {
    char name[64];
    bool delete; /* delete the node, else drain it */
    int rc;
    int err;
};

static void *slurm_call_run(void *arg)
{
    struct slurm_call *c = arg;
    update_node_msg_t u;

    slurm_init_update_node_msg(&u);
    u.node_names = c->name;
    if (!c->delete) {
        u.node_state = NODE_STATE_DRAIN;
        u.reason = "peerd: host leaving the cluster";
        c->rc = slurm_update_node(&u);
    } else {
        c->rc = slurm_delete_node(&u);
    }
    c->err = c->rc == SLURM_SUCCESS ? 0 : slurm_get_errno();
    return NULL;
}

/* Returns 0 done, -1 failed or timed out (message logged). */
static int slurm_call(const char *name, bool del, double timeout)
{
    static struct slurm_call calls[2]; /* outlive a thread we give up on */
    struct slurm_call *c = &calls[del];
    struct timespec until;
    pthread_t th;

    memset(c, 0, sizeof(*c));
    snprintf(c->name, sizeof(c->name), "%s", name);
    c->delete = del;
    c->rc = -1;
    if (pthread_create(&th, NULL, slurm_call_run, c) != 0)
        return -1;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)timeout;
    if (pthread_timedjoin_np(th, NULL, &until) != 0) {
        pthread_detach(th);
        log_warnx("could not %s node %s within %.0f s",
                  del ? "delete" : "drain", name, timeout);
        return -1;
    }
    if (c->rc != SLURM_SUCCESS) {
        log_warnx("cannot %s node %s: %s", del ? "delete" : "drain", name,
                  slurm_strerror(c->err));
        return -1;
    }
    return 0;
}

/* 0 waiting, 1 left, -1 failed; file scope: the callback may run after
 * leave() gave up waiting (when agree is destroyed).
 */
static int leave_done;

static void left(void *arg, bool ok, uint64_t index,
                 const struct fsm_effects *fx, const char *error)
{
    (void)arg;
    leave_done = ok ? 1 : -1;
    if (!ok)
        log_warnx("could not leave the cluster: %s", error);
}

/* A compute host going away: drain its node, stop slurmd, delete the
 * node from Slurm and record in the cluster that it left.  Each step is
 * bounded, so that a cluster without a controller cannot hold us.
 */
static void leave(struct peerd *p, int sfd)
{
    double next_tick = 0, last_poke = 0, deadline;
    bool ctl = p->have_report && p->report.slurmctld.ok;

    if (ctl)
        slurm_call(p->host.name, false, 2.0);
    supervisor_stop_one(p->sv, p->svc_slurmd, 10.0);
    if (ctl && slurm_call(p->host.name, true, 2.0) == 0)
        log_info("removed node %s from Slurm", p->host.name);
    /* a leader that leaves hands leadership over first: otherwise the
     * voters left behind may be too few to elect one
     */
    if (agree_is_leader(p->agree) && agree_transfer(p->agree, 0) == 0) {
        deadline = peerd_now() + 3.0;
        while (agree_is_leader(p->agree) && peerd_now() < deadline)
            loop_once(p, sfd, &next_tick, &last_poke, 0.05);
    }
    if (agree_propose(p->agree,
                      json_pack("{s:s,s:I}", "op", "member_leave", "id",
                                (json_int_t)p->cluster.node_id),
                      left, NULL, peerd_now()) < 0)
        return;
    deadline = peerd_now() + 2.0;
    while (leave_done == 0 && peerd_now() < deadline)
        loop_once(p, sfd, &next_tick, &last_poke, 0.05);
    if (leave_done == 1)
        log_info("left the cluster");
}

/* The controller host stopping: slurmctld saves its state, the state
 * goes to a standby and leadership with it (as peerctl transfer does),
 * bounded in time; with no other voter there is nothing to do.
 */
#define STOP_HANDOVER_WAIT 15.0

static void hand_over(struct peerd *p, int sfd)
{
    double next_tick = 0, last_poke = 0, deadline;
    char why[160];

    if (place_transfer_check(p, 0, why, sizeof(why)) < 0)
        return;
    log_info("stopping: handing the controller over first");
    memset(&p->handover, 0, sizeof(p->handover));
    p->handover.active = true;
    p->handover.started = peerd_now();
    deadline = p->handover.started + STOP_HANDOVER_WAIT;
    while (p->handover.active && agree_is_leader(p->agree) &&
           peerd_now() < deadline)
        loop_once(p, sfd, &next_tick, &last_poke, 0.05);
    if (!agree_is_leader(p->agree))
        log_info("handed the controller over");
}

/* Pids of our children that are not services: what the daemons left
 * behind and was reparented to us (job steps, their processes).
 */
static int kill_children(pid_t self, int sig)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    int found = 0;

    if (!d)
        return 0;
    while ((e = readdir(d))) {
        char path[64], buf[512];
        pid_t pid = atoi(e->d_name), ppid;
        FILE *f;
        char *rp;
        if (pid <= 0)
            continue;
        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        if (!(f = fopen(path, "r")))
            continue;
        rp = fgets(buf, sizeof(buf), f) ? strrchr(buf, ')') : NULL;
        fclose(f);
        if (!rp || sscanf(rp + 1, " %*c %d", &ppid) != 1 || ppid != self)
            continue;
        found++;
        kill(pid, sig);
    }
    closedir(d);
    return found;
}

/* Stop what the daemons left behind.  Killing a slurmstepd reparents
 * its job's processes to us in turn, so go round until none is left:
 * SIGTERM first, then SIGKILL, for at most ORPHAN_ROUNDS rounds.
 */
#define ORPHAN_ROUNDS 20

static void stop_orphans(void)
{
    struct timespec pause = {0, 250 * 1000 * 1000};
    pid_t self = getpid();
    int total = 0;

    for (int round = 0; round < ORPHAN_ROUNDS; round++) {
        int n = kill_children(self, round < 4 ? SIGTERM : SIGKILL);
        if (n == 0)
            break;
        total += n;
        nanosleep(&pause, NULL);
        while (waitpid(-1, NULL, WNOHANG) > 0)
            ;
    }
    if (total)
        log_info("stopped processes left behind by the daemons");
}

/* Where to listen and what to tell others: --listen ADDR[:PORT], else
 * the host's address and the default port.
 */
static int plan_addresses(const struct options *o, struct peerd *p, char *bind,
                          size_t cap, int *port, err_t *err)
{
    *port = TRANSPORT_DEFAULT_PORT;
    snprintf(bind, cap, "%s", p->host.address);
    if (o->listen && transport_parse_addr(o->listen, bind, cap, port,
                                          TRANSPORT_DEFAULT_PORT) < 0)
        return errprintf(err, "bad --listen '%s' (ADDR or ADDR:PORT)",
                         o->listen);
    snprintf(p->advertise, sizeof(p->advertise), "%s:%d",
             strcmp(bind, "*") == 0 || strcmp(bind, "0.0.0.0") == 0
                 ? p->host.address
                 : bind,
             *port);
    return 0;
}

/* --join: ask the cluster to admit a new key pair.  Returns 0 or a
 * sysexits.h code.
 */
static int join_first(struct options *o, struct peerd *p, node_key_t *key,
                      struct join_result *jr, err_t *err)
{
    struct join_token tok;
    int rc;

    if ((rc = cluster_check_fresh(o->data_dir, err)) != 0)
        return rc;
    if (token_parse(o->token, &tok, err) < 0)
        return EX_USAGE;
    if (node_key_generate(key, err) < 0)
        return EX_OSERR;
    log_info("asking %s to admit %s (token %s)", o->join, p->host.name, tok.id);
    rc = join_request(p->zctx, key, o->join, &tok, p->host.name, p->advertise,
                      p->host.cpus, p->host.memory_mb, 60.0, jr, err);
    sodium_memzero(&tok, sizeof(tok));
    if (rc == 0)
        log_info("admitted as member %llu", (unsigned long long)jr->node_id);
    return rc;
}

int main(int argc, char **argv)
{
    struct options o;
    struct peerd p;
    struct join_result jr;
    node_key_t joinkey = {0};
    err_t err = {{0}};
    char bind[128];
    double next_tick = 0, last_poke = 0;
    int sfd, rc, port;

    if (parse_options(argc, argv, &o) < 0)
        return EX_USAGE;
    /* what peerd creates is private unless made otherwise on purpose
     * (the database, WAL files, the control socket)
     */
    umask(077);
    log_init("peerd", o.debug ? LOG_LEVEL_DEBUG : LOG_LEVEL_INFO, o.syslog);
    memset(&p, 0, sizeof(p));
    p.data_dir = o.data_dir;
    p.slurm_conf = o.slurm_conf;
    p.hosts_file = o.hosts_file;
    p.bin = o.bin;
    p.login_addr = o.login;
    p.login_user = o.login_user;
    p.no_compute = o.no_compute;
    p.started = peerd_now();
    p.svc_munged = p.svc_slurmctld = p.svc_slurmd = -1;

    if ((sfd = setup_signals()) < 0) {
        log_warn("cannot set up signals");
        return EX_OSERR;
    }
    if (secret_init(&err) < 0) {
        log_warnx("%s", err.text);
        return EX_SOFTWARE;
    }
    if (!zmq_has("curve")) {
        log_warnx("this libzmq has no CURVE security; peerd needs it");
        return EX_UNAVAILABLE;
    }
    /* before anything is created: a bad --address must leave no trace */
    if (hostinfo_detect(&p.host, o.address, &err) < 0 ||
        plan_addresses(&o, &p, bind, sizeof(bind), &port, &err) < 0) {
        log_warnx("%s", err.text);
        return EX_USAGE;
    }
    if ((rc = lock_data_dir(o.data_dir, &err)) != 0) {
        log_warnx("%s", err.text);
        return rc;
    }
    if (!(p.zctx = zmq_ctx_new())) {
        log_warnx("cannot create a ZeroMQ context");
        return EX_OSERR;
    }
    if (o.join) {
        if ((rc = join_first(&o, &p, &joinkey, &jr, &err)) != 0) {
            log_warnx("%s", err.text);
            node_key_fini(&joinkey);
            zmq_ctx_term(p.zctx);
            return rc;
        }
        o.cluster.join_key = &joinkey;
        o.cluster.join = &jr;
    }
    o.cluster.host = &p.host;
    o.cluster.advertise = p.advertise;
    rc = cluster_open(&p.cluster, &o.cluster, &err);
    node_key_fini(&joinkey);
    if (rc != 0) {
        log_warnx("%s", err.text);
        goto out;
    }
    if (p.cluster.have_state)
        log_info("%s cluster '%s' (%s, id %s) in %s; member %llu",
                 p.cluster.created ? "bootstrapped" : "resumed", p.cluster.name,
                 p.cluster.tier, p.cluster.id, o.data_dir,
                 (unsigned long long)p.cluster.node_id);
    else
        log_info("member %llu; waiting for the cluster's state",
                 (unsigned long long)p.cluster.node_id);
    {
        struct member self;
        if (members_get(p.cluster.store, p.cluster.node_id, &self, NULL) == 1 &&
            strcmp(self.state, "left") == 0) {
            log_warnx("this host left cluster '%s' (it was member %llu); to "
                      "come back, move %s away and join again with a new "
                      "token",
                      p.cluster.name, (unsigned long long)p.cluster.node_id,
                      o.data_dir);
            rc = EX_CONFIG;
            goto out;
        }
    }
    log_info("this host: %s at %s, %d CPUs, %ld MiB", p.host.name, p.advertise,
             p.host.cpus, p.host.memory_mb);

    if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
        log_warn("cannot become a child subreaper");
    p.t = transport_new(p.zctx, &p.cluster.key, bind, port,
                        p.cluster.have_state ? p.cluster.join_pub : NULL,
                        p.cluster.have_state ? p.cluster.join_sec : NULL, &err);
    if (!p.t) {
        log_warnx("%s", err.text);
        rc = EX_UNAVAILABLE;
        goto out;
    }
    p.agree = agree_new(p.cluster.store, p.t, p.cluster.node_id, on_applied, &p,
                        &err);
    if (!p.agree) {
        log_warnx("%s", err.text);
        rc = EX_DATAERR;
        goto out;
    }
    sync_peers(&p);
    if (alive_start(&p) < 0) {
        rc = EX_OSERR;
        goto out;
    }
    if (control_open(&p, &err) < 0) {
        log_warnx("%s", err.text);
        rc = EX_OSERR;
        goto out;
    }
    if (!(p.fence = fence_start())) {
        log_warn("cannot start the lease fence");
        rc = EX_OSERR;
        goto out;
    }
    if (p.cluster.have_state && (rc = start_slurm(&p)) != 0)
        goto out;
    log_info("control socket %s; peer socket %s; peerd %s ready", p.ctl_path,
             p.advertise, PACKAGE_VERSION);

    while (loop_once(&p, sfd, &next_tick, &last_poke, 1.0))
        ;

    rc = 0;
    p.stopping = true;
    if (p.slurm_started && p.controller)
        hand_over(&p, sfd);
    else if (p.slurm_started && !p.static_node)
        leave(&p, sfd);
    /* no more RPCs to daemons that are going away */
    health_stop(&p.health);
    storage_stop(&p);
    login_stop(&p);
    if (p.sv)
        supervisor_stop_all(p.sv, 10.0);
    fence_stop(&p.fence);
    stop_orphans();
out:
    fence_stop(&p.fence);
    ship_fini(&p);
    storage_stop(&p);
    login_stop(&p);
    alive_stop(&p);
    health_stop(&p.health);
    control_close(&p);
    agree_destroy(&p.agree);
    transport_destroy(&p.t);
    if (p.zctx)
        zmq_ctx_term(p.zctx);
    supervisor_destroy(&p.sv);
    json_decref(p.slurm_view);
    json_decref(p.report.slurm);
    cluster_close(&p.cluster);
    log_info("exit %d", rc);
    return rc;
}
