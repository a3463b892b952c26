/* peerd.c - the peer daemon: one per host, owns the host's Slurm
 *
 * Start-up: parse options, lock the data dir, open or bootstrap the
 * cluster, lay out Slurm's files, bind the control socket, then run the
 * event loop until SIGTERM/SIGINT.  The loop waits on the control socket,
 * a signalfd (SIGCHLD, SIGTERM, SIGINT, SIGHUP) and the health thread's
 * eventfd, with a timeout from the supervisor's next deadline.
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

#include <zmq.h>

#include "node/log.h"
#include "node/peerd.h"
#include "store/file.h"

struct options {
    const char *data_dir;
    const char *slurm_conf;
    const char *address;
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
    fprintf(f,
            "usage: peerd [--bootstrap] [--cluster-name NAME] [--tier micro]\n"
            "             [--munge-key FILE] [--data-dir DIR] "
            "[--address ADDR]\n"
            "             [--slurm-conf PATH] [--munged PATH] "
            "[--slurmctld PATH]\n"
            "             [--slurmd PATH] [--syslog] [--debug]\n"
            "\n"
            "  --bootstrap         create a cluster on this host (or resume "
            "it)\n"
            "  --cluster-name NAME cluster name (default %s)\n"
            "  --tier TIER         micro (mini and multi: later)\n"
            "  --munge-key FILE    import this munge key at bootstrap\n"
            "  --data-dir DIR      state of this peer (default %s)\n"
            "  --address ADDR      address other hosts reach this one at\n"
            "  --slurm-conf PATH   where to write slurm.conf (default %s)\n"
            "  --munged/--slurmctld/--slurmd PATH   daemon binaries\n"
            "  --syslog            log to syslog instead of stderr\n"
            "  --debug             log debug messages\n"
            "See peerd(8).\n",
            CLUSTER_DEFAULT_NAME, PEERD_DEFAULT_DATA_DIR,
            PEERD_DEFAULT_SLURM_CONF);
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
        OPT_SLURM_CONF,
        OPT_MUNGED,
        OPT_SLURMCTLD,
        OPT_SLURMD,
        OPT_SYSLOG,
        OPT_DEBUG,
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
        {"slurm-conf", required_argument, NULL, OPT_SLURM_CONF},
        {"munged", required_argument, NULL, OPT_MUNGED},
        {"slurmctld", required_argument, NULL, OPT_SLURMCTLD},
        {"slurmd", required_argument, NULL, OPT_SLURMD},
        {"syslog", no_argument, NULL, OPT_SYSLOG},
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
        case OPT_SLURM_CONF:
            o->slurm_conf = optarg;
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

/* Feed the newest health report to the supervisor. */
static void take_health(struct peerd *p, double now)
{
    struct health_report r;

    if (!health_take(p->health, &r))
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
}

/* Returns false when the loop should end. */
static bool handle_signals(struct peerd *p, int sfd)
{
    struct signalfd_siginfo si;
    bool go_on = true;

    while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
        switch (si.ssi_signo) {
        case SIGCHLD:
            supervisor_reap(p->sv, peerd_now());
            break;
        case SIGTERM:
        case SIGINT:
            log_info("%s: stopping", strsignal(si.ssi_signo));
            go_on = false;
            break;
        case SIGHUP:
            log_info("SIGHUP: nothing to reload yet");
            break;
        }
    }
    return go_on;
}

#define STARTING_POLL 0.25 /* seconds */

static void loop(struct peerd *p, int sfd)
{
    zmq_pollitem_t items[3] = {
        {p->ctl, 0, ZMQ_POLLIN, 0},
        {NULL, sfd, ZMQ_POLLIN, 0},
        {NULL, health_fd(p->health), ZMQ_POLLIN, 0},
    };
    double last_poke = 0;

    for (;;) {
        double now = peerd_now();
        double wait = supervisor_tick(p->sv, now);
        health_set_active(p->health, supervisor_pid(p->sv, p->svc_munged) > 0,
                          supervisor_pid(p->sv, p->svc_slurmctld) > 0,
                          supervisor_pid(p->sv, p->svc_slurmd) > 0);
        /* While a daemon is coming up, check it every STARTING_POLL s
         * rather than every health interval: start-up time is what a
         * person waits for.
         */
        if (supervisor_starting(p->sv)) {
            if (now - last_poke >= STARTING_POLL) {
                health_poke(p->health);
                last_poke = now;
            }
            if (wait > STARTING_POLL)
                wait = STARTING_POLL;
        }
        if (zmq_poll(items, 3, (long)(wait * 1000) + 1) < 0) {
            if (errno == EINTR)
                continue;
            log_warnx("zmq_poll: %s", zmq_strerror(errno));
            continue;
        }
        if (items[1].revents & ZMQ_POLLIN) {
            if (!handle_signals(p, sfd))
                return;
        }
        if (items[2].revents & ZMQ_POLLIN)
            take_health(p, peerd_now());
        if (items[0].revents & ZMQ_POLLIN)
            control_handle(p);
    }
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

int main(int argc, char **argv)
{
    struct options o;
    struct peerd p;
    err_t err = {{0}};
    int sfd, rc;

    if (parse_options(argc, argv, &o) < 0)
        return EX_USAGE;
    /* what peerd creates is private unless made otherwise on purpose
     * (the database, WAL files, the control socket)
     */
    umask(077);
    log_init("peerd", o.debug ? LOG_LEVEL_DEBUG : LOG_LEVEL_INFO, o.syslog);
    memset(&p, 0, sizeof(p));
    p.data_dir = o.data_dir;
    p.started = peerd_now();

    if ((sfd = setup_signals()) < 0) {
        log_warn("cannot set up signals");
        return EX_OSERR;
    }
    if (secret_init(&err) < 0) {
        log_warnx("%s", err.text);
        return EX_SOFTWARE;
    }
    /* before anything is created: a bad --address must leave no trace */
    if (hostinfo_detect(&p.host, o.address, &err) < 0) {
        log_warnx("%s", err.text);
        return EX_USAGE;
    }
    if ((rc = lock_data_dir(o.data_dir, &err)) != 0) {
        log_warnx("%s", err.text);
        return rc;
    }
    if ((rc = cluster_open(&p.cluster, &o.cluster, &err)) != 0) {
        log_warnx("%s", err.text);
        cluster_close(&p.cluster);
        return rc;
    }
    log_info("%s cluster '%s' (%s, id %s) in %s",
             p.cluster.created ? "bootstrapped" : "resumed", p.cluster.name,
             p.cluster.tier, p.cluster.id, o.data_dir);
    log_info("this host: %s at %s, %d CPUs, %ld MiB", p.host.name,
             p.host.address, p.host.cpus, p.host.memory_mb);
    if ((rc = slurm_prepare(o.data_dir, o.slurm_conf, &p.cluster, &p.host,
                            &p.layout, &err)) != 0) {
        log_warnx("%s", err.text);
        goto out;
    }
    log_info("wrote %s (sha256 %.16s...)", p.layout.slurm_conf,
             p.layout.config_hash);

    if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
        log_warn("cannot become a child subreaper");
    p.zctx = zmq_ctx_new();
    if (!p.zctx || control_open(&p, &err) < 0) {
        log_warnx("%s", p.zctx ? err.text : "cannot create a ZeroMQ context");
        rc = EX_OSERR;
        goto out;
    }
    p.sv = supervisor_new();
    if (!p.sv || slurm_add_services(p.sv, &p.layout, &o.bin, p.host.name) < 0) {
        log_warn("cannot set up the supervisor");
        rc = EX_OSERR;
        goto out;
    }
    p.svc_munged = supervisor_find(p.sv, "munged");
    p.svc_slurmctld = supervisor_find(p.sv, "slurmctld");
    p.svc_slurmd = supervisor_find(p.sv, "slurmd");
    p.health = health_start(p.layout.munge_socket, p.layout.slurm_conf, 2.0);
    if (!p.health) {
        log_warn("cannot start the health checks");
        rc = EX_OSERR;
        goto out;
    }
    log_info("control socket %s; peerd %s ready", p.ctl_path, PACKAGE_VERSION);

    loop(&p, sfd);

    rc = 0;
    /* no more RPCs to daemons that are going away */
    health_stop(&p.health);
    supervisor_stop_all(p.sv, 10.0);
    stop_orphans();
out:
    health_stop(&p.health);
    control_close(&p);
    if (p.zctx)
        zmq_ctx_term(p.zctx);
    supervisor_destroy(&p.sv);
    json_decref(p.slurm_view);
    json_decref(p.report.slurm);
    cluster_close(&p.cluster);
    log_info("exit %d", rc);
    return rc;
}
