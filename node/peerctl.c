/* peerctl.c - ask the local peer what the cluster looks like
 *
 * Talks to peerd over ipc://DATA/peerd.ctl (doc/protocol.md).  Exit
 * status: 0 healthy, 1 degraded, 2 peerd unreachable, 64 usage error.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#include "proto/ctl.h"

#define DEFAULT_DATA_DIR "/var/lib/peerd"

enum {
    EXIT_HEALTHY = 0,
    EXIT_DEGRADED = 1,
    EXIT_UNREACHABLE = 2,
    EXIT_USAGE = 64,
};

static void usage(FILE *f)
{
    fprintf(f, "usage: peerctl [--data-dir DIR] [--json] [--timeout SEC] "
               "COMMAND\n"
               "  status              the cluster and this host (default)\n"
               "  members             every member: address, role, voter, "
               "state\n"
               "  config get KEY      a cluster setting\n"
               "  config set KEY VAL  change it (voters, description, "
               "slurm.<Param>)\n"
               "  token create [--ttl 24h] [--uses 1]  a join token\n"
               "  transfer [HOST]     move the controller (to HOST, a voter)\n"
               "  ping                is peerd there?\n"
               "  --timeout SEC  wait at most SEC (0-3600] for an answer\n"
               "exit status: 0 healthy, 1 degraded, 2 peerd unreachable\n"
               "See peerctl(1).\n");
}

/* Is anybody listening?  Gives a clear answer before ZeroMQ would wait. */
static int probe(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct stat st;
    int fd, rc;

    if (stat(path, &st) < 0) {
        fprintf(stderr,
                "peerctl: peerd is not running (no control socket %s)\n", path);
        return -1;
    }
    if (strlen(path) >= sizeof(sa.sun_path)) {
        fprintf(stderr, "peerctl: control socket path too long: %s\n", path);
        return -1;
    }
    strcpy(sa.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        perror("peerctl: socket");
        return -1;
    }
    rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    close(fd);
    if (rc < 0) {
        if (errno == ECONNREFUSED)
            fprintf(stderr,
                    "peerctl: peerd is not running (stale control socket "
                    "%s)\n",
                    path);
        else if (errno == EACCES)
            fprintf(stderr,
                    "peerctl: permission denied on %s (peerd's control "
                    "socket is for root)\n",
                    path);
        else
            fprintf(stderr, "peerctl: cannot reach peerd at %s: %s\n", path,
                    strerror(errno));
        return -1;
    }
    return 0;
}

/* Send one request, wait for the reply.  Returns the reply body or NULL
 * (message printed).
 */
static json_t *call(const char *path, json_t *req, int timeout_ms)
{
    char endpoint[4200];
    void *ctx = zmq_ctx_new();
    void *s = NULL;
    unsigned char *buf = NULL;
    size_t len = 0;
    json_t *reply = NULL;
    zmq_msg_t msg;
    int linger = 0;
    err_t err;

    zmq_msg_init(&msg);
    if (!ctx || !(s = zmq_socket(ctx, ZMQ_DEALER))) {
        fprintf(stderr, "peerctl: %s\n", zmq_strerror(errno));
        goto out;
    }
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof(linger));
    snprintf(endpoint, sizeof(endpoint), "ipc://%s", path);
    if (zmq_connect(s, endpoint) < 0) {
        fprintf(stderr, "peerctl: cannot connect to %s: %s\n", endpoint,
                zmq_strerror(errno));
        goto out;
    }
    if (ctl_encode(CTL_REQUEST, req, &buf, &len, &err) < 0) {
        fprintf(stderr, "peerctl: %s\n", err.text);
        goto out;
    }
    if (zmq_send(s, buf, len, 0) < 0) {
        fprintf(stderr, "peerctl: send: %s\n", zmq_strerror(errno));
        goto out;
    }
    zmq_pollitem_t item = {s, 0, ZMQ_POLLIN, 0};
    int n = zmq_poll(&item, 1, timeout_ms);
    if (n <= 0) {
        fprintf(stderr, "peerctl: peerd did not answer within %d ms\n",
                timeout_ms);
        goto out;
    }
    if (zmq_msg_recv(&msg, s, 0) < 0) {
        fprintf(stderr, "peerctl: receive: %s\n", zmq_strerror(errno));
        goto out;
    }
    reply = ctl_decode(zmq_msg_data(&msg), zmq_msg_size(&msg), CTL_REPLY, &err);
    if (!reply)
        fprintf(stderr, "peerctl: bad reply from peerd: %s\n", err.text);
out:
    zmq_msg_close(&msg);
    free(buf);
    if (s)
        zmq_close(s);
    if (ctx)
        zmq_ctx_term(ctx);
    return reply;
}

static const char *str(json_t *o, const char *key)
{
    const char *v = json_string_value(json_object_get(o, key));
    return v ? v : "-";
}

static void print_status(json_t *st)
{
    json_t *host = json_object_get(st, "host");
    json_t *slurm = json_object_get(st, "slurm");
    json_t *jobs = json_object_get(slurm, "jobs");
    json_t *v;
    size_t i;

    printf("cluster     %s (%s), id %s\n", str(st, "cluster"), str(st, "tier"),
           str(st, "cluster_id"));
    printf("host        %s at %s, %lld CPUs, %lld MiB\n", str(host, "name"),
           str(host, "address"),
           (long long)json_integer_value(json_object_get(host, "cpus")),
           (long long)json_integer_value(json_object_get(host, "memory_mb")));
    printf("controller  %s (%s), %s\n", str(st, "controller"),
           str(st, "controller_address"),
           json_is_true(json_object_get(slurm, "reachable")) ? "answering"
                                                             : "NOT answering");
    json_t *pl = json_object_get(st, "placement");
    if (pl) {
        json_t *state = json_object_get(pl, "state"), *sb;
        size_t k;
        printf(
            "placement   term %lld, first job id %lld%s\n",
            (long long)json_integer_value(json_object_get(pl, "term")),
            (long long)json_integer_value(json_object_get(pl, "first_job_id")),
            json_is_true(json_object_get(pl, "here"))
                ? ", slurmctld runs here under the lease"
                : "");
        if (!json_is_true(json_object_get(pl, "can_fail_over")))
            printf("failover    NOT POSSIBLE: %s\n",
                   str(pl, "cannot_fail_over_because"));
        json_array_foreach(json_object_get(state, "standbys"), k, sb)
        {
            printf("standby     %s holds state %s, %lld generation(s) and "
                   "%.1f s behind%s%s\n",
                   str(sb, "host"), str(sb, "generation"),
                   (long long)json_integer_value(
                       json_object_get(sb, "lag_generations")),
                   json_number_value(json_object_get(sb, "lag_seconds")),
                   json_is_string(json_object_get(sb, "error")) ? ": " : "",
                   json_is_string(json_object_get(sb, "error"))
                       ? str(sb, "error")
                       : "");
        }
        if (!json_is_true(json_object_get(pl, "here")) &&
            json_is_string(json_object_get(state, "installed")))
            printf("state copy  generation %s installed here\n",
                   str(state, "installed"));
    }
    json_t *ac = json_object_get(st, "accounting");
    if (json_is_true(json_object_get(ac, "enabled"))) {
        json_t *dbd = json_object_get(ac, "slurmdbd");
        json_t *cl = json_object_get(ac, "cluster");
        json_t *db = json_object_get(ac, "mariadb");
        printf(
            "accounting  %s tier: storage on %s (term %lld), this host: "
            "%s\n",
            str(st, "tier"), str(ac, "storage"),
            (long long)json_integer_value(json_object_get(ac, "storage_term")),
            str(ac, "role"));
        printf("            slurmdbd %s",
               !json_is_object(dbd)                       ? "not checked yet"
               : json_is_true(json_object_get(dbd, "ok")) ? "answers"
                                                          : "DOES NOT ANSWER");
        if (json_is_object(cl))
            printf(", cluster %s registered at %s:%lld", str(cl, "name"),
                   str(cl, "control_host"),
                   (long long)json_integer_value(
                       json_object_get(cl, "control_port")));
        if (json_is_object(db))
            printf("; MariaDB here %s", json_is_true(json_object_get(db, "ok"))
                                            ? "answers"
                                            : "DOES NOT ANSWER");
        printf("\n");
        json_t *rp = json_object_get(ac, "replication");
        if (json_is_string(json_object_get(ac, "replica")))
            printf("            replica on %s\n", str(ac, "replica"));
        if (json_is_object(rp)) {
            json_t *behind = json_object_get(rp, "seconds_behind");
            printf("            this host replicates %s: receiving %s, "
                   "applying %s",
                   str(rp, "primary"),
                   json_is_true(json_object_get(rp, "io_running")) ? "yes"
                                                                   : "NO",
                   json_is_true(json_object_get(rp, "sql_running")) ? "yes"
                                                                    : "NO");
            if (json_is_integer(behind))
                printf(", %lld s behind",
                       (long long)json_integer_value(behind));
            printf("\n");
            if (json_is_string(json_object_get(rp, "error")))
                printf("            replication: %s\n", str(rp, "error"));
        }
        if (json_is_string(json_object_get(ac, "error")))
            printf("            ERROR: %s\n", str(ac, "error"));
    }
    json_t *lg = json_object_get(st, "login");
    if (json_is_object(lg)) {
        json_t *ck = json_object_get(lg, "check");
        printf("jupyter     %s (as %s), %s%s\n", str(lg, "url"),
               str(lg, "user"),
               !json_is_object(ck)                       ? "not checked yet"
               : json_is_true(json_object_get(ck, "ok")) ? "answers"
                                                         : "DOES NOT ANSWER: ",
               json_is_object(ck) && !json_is_true(json_object_get(ck, "ok"))
                   ? str(ck, "detail")
                   : "");
    }
    json_t *mb = json_object_get(st, "membership");
    if (json_is_object(mb))
        printf("membership  %lld alive, %lld suspect, %lld dead (SWIM)\n",
               (long long)json_integer_value(json_object_get(mb, "alive")),
               (long long)json_integer_value(json_object_get(mb, "suspect")),
               (long long)json_integer_value(json_object_get(mb, "dead")));
    printf("health      %s\n", json_is_true(json_object_get(st, "healthy"))
                                   ? "healthy"
                                   : "DEGRADED");
    printf("slurm.conf  %s, sha256 %.16s\n", str(st, "slurm_conf"),
           str(st, "config_hash"));
    printf("munge key   sha256 %.16s\n", str(st, "munge_key_hash"));
    json_t *raft = json_object_get(st, "raft");
    printf("raft        term %lld, %s, leader %lld, commit %lld, applied "
           "%lld, %zu voter(s), %zu learner(s)\n\n",
           (long long)json_integer_value(json_object_get(raft, "term")),
           str(raft, "role"),
           (long long)json_integer_value(json_object_get(raft, "leader")),
           (long long)json_integer_value(json_object_get(raft, "commit")),
           (long long)json_integer_value(json_object_get(raft, "applied")),
           json_array_size(json_object_get(raft, "voters")),
           json_array_size(json_object_get(raft, "learners")));

    printf("%-10s %-9s %8s %8s %-7s %s\n", "SERVICE", "STATE", "PID",
           "RESTARTS", "HEALTHY", "LAST ERROR");
    json_array_foreach(json_object_get(st, "services"), i, v)
    {
        printf("%-10s %-9s %8lld %8lld %-7s %s\n", str(v, "name"),
               str(v, "state"),
               (long long)json_integer_value(json_object_get(v, "pid")),
               (long long)json_integer_value(json_object_get(v, "restarts")),
               json_is_true(json_object_get(v, "healthy")) ? "yes" : "no",
               str(v, "last_error"));
    }
    printf("\n%-16s %-16s %5s %10s\n", "NODE", "STATE", "CPUS", "MEMORY_MB");
    json_array_foreach(json_object_get(slurm, "nodes"), i, v)
    {
        printf("%-16s %-16s %5lld %10lld\n", str(v, "name"), str(v, "state"),
               (long long)json_integer_value(json_object_get(v, "cpus")),
               (long long)json_integer_value(json_object_get(v, "memory_mb")));
    }
    if (json_is_object(jobs))
        printf("jobs        %lld running, %lld pending\n",
               (long long)json_integer_value(json_object_get(jobs, "running")),
               (long long)json_integer_value(json_object_get(jobs, "pending")));
    else
        printf("jobs        unknown (%s)\n", str(slurm, "error"));
}

/* "24h", "30m", "90s", "7d" or plain seconds; -1 if bad. */
static long parse_duration(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    long mult = 1;

    if (end == s || v <= 0)
        return -1;
    if (*end == 'd')
        mult = 86400;
    else if (*end == 'h')
        mult = 3600;
    else if (*end == 'm')
        mult = 60;
    else if (*end == 's' || *end == '\0')
        mult = 1;
    else
        return -1;
    if (*end && end[1])
        return -1;
    return (long)(v * mult);
}

static void print_members(json_t *a)
{
    json_t *v;
    size_t i;

    printf("%-4s %-14s %-21s %-10s %-6s %-7s %-10s %-12s %-12s\n", "ID", "NAME",
           "ADDRESS", "ROLE", "VOTER", "STATE", "LAST_HEARD", "CONFIG",
           "MUNGE_KEY");
    json_array_foreach(a, i, v)
    {
        json_t *h = json_object_get(v, "last_heard");
        char heard[32];
        if (json_is_true(json_object_get(v, "self")))
            snprintf(heard, sizeof(heard), "(self)");
        else if (json_is_number(h))
            snprintf(heard, sizeof(heard), "%.1fs ago", json_number_value(h));
        else
            snprintf(heard, sizeof(heard), "-");
        printf("%-4lld %-14s %-21s %-10s %-6s %-7s %-10s %-12.12s %-12.12s\n",
               (long long)json_integer_value(json_object_get(v, "id")),
               str(v, "name"), str(v, "address"), str(v, "role"),
               json_is_true(json_object_get(v, "voter")) ? "yes" : "no",
               str(v, "state"), heard, str(v, "config_hash"),
               str(v, "munge_key_hash"));
    }
}

/* The controller from a status document: host and term. */
static bool controller_of(const char *path, char *host, size_t cap,
                          long long *term, bool *answering)
{
    json_t *req = ctl_request("status", NULL), *reply, *st, *pl;
    bool ok;

    reply = call(path, req, 3000);
    json_decref(req);
    st = json_object_get(reply, "result");
    pl = json_object_get(st, "placement");
    ok = json_is_true(json_object_get(reply, "ok")) && pl;
    if (ok) {
        snprintf(host, cap, "%s", str(pl, "host"));
        *term = json_integer_value(json_object_get(pl, "term"));
        *answering = json_is_true(
            json_object_get(json_object_get(st, "slurm"), "reachable"));
    }
    json_decref(reply);
    return ok;
}

/* After a transfer was committed: wait until another host is the
 * controller and slurmctld answers there.
 */
static int follow_transfer(const char *path, const char *to, double timeout,
                           bool as_json)
{
    char first[128] = "", host[128];
    long long term0 = 0, term;
    bool answering;
    struct timespec pause = {0, 200 * 1000 * 1000};

    if (!controller_of(path, first, sizeof(first), &term0, &answering))
        return EXIT_UNREACHABLE;
    for (double waited = 0; waited < timeout; waited += 0.2) {
        if (controller_of(path, host, sizeof(host), &term, &answering) &&
            term > term0 && strcmp(host, "-") != 0 &&
            (!to || strcmp(host, to) == 0) && answering) {
            if (as_json) {
                json_t *o = json_pack("{s:s,s:I}", "controller", host, "term",
                                      (json_int_t)term);
                char *text = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS);
                printf("%s\n", text ? text : "null");
                free(text);
                json_decref(o);
            } else
                printf("the controller moved to %s (term %lld)\n", host, term);
            return EXIT_HEALTHY;
        }
        nanosleep(&pause, NULL);
    }
    fprintf(stderr, "peerctl: the controller did not move within %.0f s\n",
            timeout);
    return EXIT_DEGRADED;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"data-dir", required_argument, NULL, 'd'},
        {"json", no_argument, NULL, 'j'},
        {"timeout", required_argument, NULL, 't'},
        {"ttl", required_argument, NULL, 'T'},
        {"uses", required_argument, NULL, 'u'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    const char *data_dir = getenv("PEERD_DATA_DIR");
    const char *cmd = "status", *wire_cmd;
    char path[4096];
    bool as_json = false;
    double timeout = 10;
    long ttl = 24 * 3600, uses = 1;
    char *end;
    json_t *req, *reply, *result, *args = NULL;
    int c, rc, nargs;
    char **av;

    if (!data_dir || !*data_dir)
        data_dir = DEFAULT_DATA_DIR;
    while ((c = getopt_long(argc, argv, "d:jt:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'd':
            data_dir = optarg;
            break;
        case 'j':
            as_json = true;
            break;
        case 't':
            timeout = strtod(optarg, &end);
            if (end == optarg || *end || !(timeout > 0 && timeout <= 3600)) {
                fprintf(stderr, "peerctl: bad --timeout '%s'\n", optarg);
                return EXIT_USAGE;
            }
            break;
        case 'T':
            if ((ttl = parse_duration(optarg)) <= 0) {
                fprintf(stderr, "peerctl: bad --ttl '%s' (e.g. 24h)\n", optarg);
                return EXIT_USAGE;
            }
            break;
        case 'u':
            uses = strtol(optarg, &end, 10);
            if (end == optarg || *end || uses < 1) {
                fprintf(stderr, "peerctl: bad --uses '%s'\n", optarg);
                return EXIT_USAGE;
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("peerctl %s\n", PACKAGE_VERSION);
            return 0;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    /* GNU getopt permutes: options after the command are parsed too */
    av = argv + optind;
    nargs = argc - optind;
    if (nargs > 0)
        cmd = av[0];
    wire_cmd = cmd;
    if ((strcmp(cmd, "status") == 0 || strcmp(cmd, "ping") == 0 ||
         strcmp(cmd, "members") == 0) &&
        nargs <= 1) {
        args = NULL;
    } else if (strcmp(cmd, "config") == 0 && nargs == 3 &&
               strcmp(av[1], "get") == 0) {
        args = json_pack("{s:s}", "key", av[2]);
    } else if (strcmp(cmd, "config") == 0 && nargs == 4 &&
               strcmp(av[1], "set") == 0) {
        args = json_pack("{s:s,s:s}", "key", av[2], "value", av[3]);
        if (timeout < 20)
            timeout = 20; /* a write waits for a commit */
    } else if (strcmp(cmd, "transfer") == 0 && nargs <= 2) {
        args = nargs == 2 ? json_pack("{s:s}", "host", av[1]) : NULL;
        if (timeout < 20)
            timeout = 20;
    } else if (strcmp(cmd, "token") == 0 && nargs == 2 &&
               strcmp(av[1], "create") == 0) {
        args = json_pack("{s:I,s:I}", "ttl", (json_int_t)ttl, "uses",
                         (json_int_t)uses);
        if (timeout < 20)
            timeout = 20;
    } else {
        fprintf(stderr, "peerctl: unknown command '%s'\n", cmd);
        usage(stderr);
        return EXIT_USAGE;
    }
    snprintf(path, sizeof(path), "%s/peerd.ctl", data_dir);
    if (probe(path) < 0) {
        json_decref(args);
        return EXIT_UNREACHABLE;
    }
    req = ctl_request(wire_cmd, args);
    reply = call(path, req, (int)(timeout * 1000));
    json_decref(req);
    if (!reply)
        return EXIT_UNREACHABLE;
    if (!json_is_true(json_object_get(reply, "ok"))) {
        fprintf(stderr, "peerctl: %s\n", str(reply, "error"));
        json_decref(reply);
        return EXIT_DEGRADED;
    }
    result = json_object_get(reply, "result");
    rc = EXIT_HEALTHY;
    if (strcmp(cmd, "token") == 0) {
        /* only the token on stdout: scripts take it as it is */
        printf("%s\n", str(result, "token"));
    } else if (strcmp(cmd, "transfer") == 0) {
        rc = follow_transfer(path, nargs == 2 ? av[1] : NULL, timeout, as_json);
    } else if (as_json) {
        char *text = json_dumps(result, JSON_INDENT(2) | JSON_SORT_KEYS);
        printf("%s\n", text ? text : "null");
        free(text);
    } else if (strcmp(cmd, "status") == 0) {
        print_status(result);
    } else if (strcmp(cmd, "members") == 0) {
        print_members(result);
    } else if (strcmp(cmd, "config") == 0 && nargs == 3) {
        json_t *v = json_object_get(result, "value");
        if (json_is_string(v))
            printf("%s\n", json_string_value(v));
        else {
            fprintf(stderr, "peerctl: %s is not set\n", av[2]);
            rc = EXIT_DEGRADED;
        }
    } else if (strcmp(cmd, "config") == 0) {
        printf("%s = %s (committed at index %lld)\n", av[2], av[3],
               (long long)json_integer_value(json_object_get(result, "index")));
    } else {
        printf("pong\n");
    }
    if (strcmp(cmd, "status") == 0 &&
        !json_is_true(json_object_get(result, "healthy")))
        rc = EXIT_DEGRADED;
    json_decref(reply);
    return rc;
}
