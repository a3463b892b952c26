/* control.c - the control socket: peerctl's way into the peer
 *
 * A ROUTER socket on ipc://DATA/peerd.ctl, created with mode 0600 so that
 * the file mode decides who may ask.  Requests are served in the event
 * loop; reads are answered at once from state the loop already holds, so
 * a request never waits on Slurm.  Writes (config set, token create) are
 * answered once the entry is committed and applied on this peer (a
 * deferred reply keeps the client's envelope).  Malformed requests get
 * an error reply and are counted; they never stop the peer.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zmq.h>

#include <time.h>

#include <sodium.h>

#include "node/join.h"
#include "node/log.h"
#include "node/alive.h"
#include "node/peerd.h"
#include "node/place.h"
#include "node/login.h"
#include "node/storage.h"
#include "proto/ctl.h"
#include "store/members.h"

#define MAX_FRAMES 8

int control_open(struct peerd *p, err_t *err)
{
    char endpoint[PATH_MAX + 8];
    int64_t maxsize = CTL_HEADER_LEN + CTL_MAX_BODY;
    int linger = 0, hwm = 64;
    mode_t old;
    int rc;

    snprintf(p->ctl_path, sizeof(p->ctl_path), "%s/%s", p->data_dir,
             PEERD_CTL_NAME);
    snprintf(endpoint, sizeof(endpoint), "ipc://%s", p->ctl_path);
    if (!(p->ctl = zmq_socket(p->zctx, ZMQ_ROUTER)))
        return errprintf(err, "control socket: %s", zmq_strerror(errno));
    zmq_setsockopt(p->ctl, ZMQ_MAXMSGSIZE, &maxsize, sizeof(maxsize));
    zmq_setsockopt(p->ctl, ZMQ_LINGER, &linger, sizeof(linger));
    zmq_setsockopt(p->ctl, ZMQ_SNDHWM, &hwm, sizeof(hwm));
    zmq_setsockopt(p->ctl, ZMQ_RCVHWM, &hwm, sizeof(hwm));
    unlink(p->ctl_path); /* a stale socket from a peer that was killed */
    old = umask(0077);
    rc = zmq_bind(p->ctl, endpoint);
    umask(old);
    if (rc < 0)
        return errprintf(err, "cannot bind %s: %s", endpoint,
                         zmq_strerror(errno));
    /* created 0700 under our umask; 0600 says what it is: read-write
     * for root, nothing for anyone else
     */
    if (chmod(p->ctl_path, 0600) < 0)
        return errprintf_errno(err, "cannot chmod %s", p->ctl_path);
    return 0;
}

void control_close(struct peerd *p)
{
    if (p->ctl) {
        zmq_close(p->ctl);
        p->ctl = NULL;
        unlink(p->ctl_path);
    }
}

static json_t *str_or_null(const char *s)
{
    return s && *s ? json_string(s) : json_null();
}

json_t *control_status(struct peerd *p)
{
    double now = peerd_now();
    json_t *o, *slurm, *svcs;
    bool healthy = p->sv && supervisor_healthy(p->sv);
    bool reachable = p->have_report && p->report.slurmctld.ok;

    o = json_object();
    json_object_set_new(o, "cluster", str_or_null(p->cluster.name));
    json_object_set_new(o, "cluster_id", str_or_null(p->cluster.id));
    json_object_set_new(o, "tier", str_or_null(p->cluster.tier));
    json_object_set_new(o, "member_id",
                        json_integer((json_int_t)p->cluster.node_id));
    json_object_set_new(o, "controller", str_or_null(p->ctl_name));
    json_object_set_new(o, "controller_address", str_or_null(p->ctl_addr));
    json_object_set_new(o, "role",
                        json_string(!p->slurm_started ? "waiting"
                                    : p->controller   ? "controller"
                                    : p->no_compute   ? "login"
                                                      : "compute"));
    json_object_set_new(o, "healthy", json_boolean(healthy && reachable));
    json_object_set_new(o, "host",
                        json_pack("{s:s,s:s,s:s,s:i,s:I}", "name", p->host.name,
                                  "address", p->host.address, "peer_address",
                                  p->advertise, "cpus", p->host.cpus,
                                  "memory_mb", (json_int_t)p->host.memory_mb));
    json_object_set_new(o, "config_hash", str_or_null(p->layout.config_hash));
    json_object_set_new(o, "slurm_conf", str_or_null(p->layout.slurm_conf));
    json_object_set_new(o, "munge_key_hash",
                        str_or_null(p->cluster.munge_key_hash));
    json_object_set_new(o, "munge_socket", str_or_null(p->layout.munge_socket));
    svcs = p->sv ? supervisor_json(p->sv, now) : json_array();
    json_object_set_new(o, "services", svcs);

    slurm = json_object();
    json_object_set_new(slurm, "reachable", json_boolean(reachable));
    if (reachable && p->slurm_view) {
        json_object_set(slurm, "nodes",
                        json_object_get(p->slurm_view, "nodes"));
        json_object_set(slurm, "jobs", json_object_get(p->slurm_view, "jobs"));
    } else {
        json_object_set_new(slurm, "nodes", json_array());
        json_object_set_new(slurm, "jobs", json_null());
        if (p->have_report)
            json_object_set_new(slurm, "error",
                                json_string(p->report.slurmctld.detail));
    }
    json_object_set_new(o, "slurm", slurm);
    json_object_set_new(o, "raft", agree_status_json(p->agree));
    json_object_set_new(o, "placement", place_status_json(p, now));
    json_t *acct = storage_status_json(p, now);
    /* accounting that does not work makes the host degraded, though
     * jobs still run (slurmctld keeps its records for slurmdbd)
     */
    if (json_is_string(json_object_get(acct, "error")))
        json_object_set_new(o, "healthy", json_false());
    json_object_set_new(o, "accounting", acct);
    json_object_set_new(o, "login", login_status_json(p, now));
    json_object_set_new(o, "membership", alive_status_json(p));
    json_object_set_new(
        o, "peer",
        json_pack("{s:o,s:I,s:I}", "transport", transport_stats_json(p->t),
                  "joins_admitted", (json_int_t)p->joins_admitted,
                  "joins_refused", (json_int_t)p->joins_refused));
    json_object_set_new(o, "peerd",
                        json_pack("{s:i,s:s,s:s,s:f,s:{s:I,s:I}}", "pid",
                                  (int)getpid(), "version", PACKAGE_VERSION,
                                  "data_dir", p->data_dir, "uptime",
                                  now - p->started, "control", "requests",
                                  (json_int_t)p->ctl_requests, "malformed",
                                  (json_int_t)p->ctl_malformed));
    return o;
}

json_t *control_members(struct peerd *p)
{
    struct member *v = NULL;
    size_t n = 0;
    json_t *a = json_array();
    double now = peerd_now();

    if (members_list(p->cluster.store, &v, &n, NULL) < 0)
        return a;
    for (size_t i = 0; i < n; i++) {
        bool self = v[i].id == p->cluster.node_id;
        double heard = self ? 0 : transport_last_heard(p->t, v[i].id, now);
        json_t *o = json_pack(
            "{s:I,s:s,s:s,s:s,s:b,s:s,s:i,s:I,s:b}", "id", (json_int_t)v[i].id,
            "name", v[i].name, "address", v[i].address, "role",
            v[i].id == p->controller_id ? "controller" : "compute", "voter",
            v[i].voter, "state", v[i].state, "cpus", v[i].cpus, "memory_mb",
            (json_int_t)v[i].memory_mb, "self", self);
        char pub[65];
        sodium_bin2hex(pub, sizeof(pub), v[i].pubkey, 32);
        json_object_set_new(o, "pubkey", json_string(pub));
        json_object_set_new(o, "last_heard",
                            heard >= 0 ? json_real(heard) : json_null());
        json_object_set_new(o, "liveness",
                            str_or_null(alive_state(p, v[i].id)));
        json_object_set_new(o, "config_hash", str_or_null(v[i].config_hash));
        json_object_set_new(o, "munge_key_hash",
                            str_or_null(v[i].munge_key_hash));
        json_array_append_new(a, o);
    }
    free(v);
    return a;
}

/* Where a reply goes: the client's routing id, and whether it sent the
 * empty delimiter of a REQ socket.
 */
struct envelope {
    struct peerd *p;
    unsigned char id[256];
    size_t idlen;
    bool delim;
    char what[64];              /* for a deferred reply: what was asked */
    char token[TOKEN_TEXT_MAX]; /* token create: the text to hand out */
};

static void send_reply(struct peerd *p, const struct envelope *env,
                       json_t *reply)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    err_t err;

    if (!reply) {
        log_warnx("control: no reply could be built");
        return;
    }
    if (ctl_encode(CTL_REPLY, reply, &buf, &len, &err) < 0) {
        log_warnx("control: %s", err.text);
        return;
    }
    if (zmq_send(p->ctl, env->id, env->idlen, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
        (env->delim &&
         zmq_send(p->ctl, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) ||
        zmq_send(p->ctl, buf, len, ZMQ_DONTWAIT) < 0)
        log_debug("control: reply dropped: %s", zmq_strerror(errno));
    free(buf);
}

/* A write the client waits for: answered once applied here. */
static void write_done(void *arg, bool ok, uint64_t index,
                       const struct fsm_effects *fx, const char *error)
{
    struct envelope *env = arg;
    json_t *reply;

    if (!ok)
        reply = ctl_reply_error("%s: %s", env->what, error);
    else if (fx && fx->why[0])
        reply = ctl_reply_error("%s: %s", env->what, fx->why);
    else if (env->token[0])
        reply = ctl_reply_ok(json_pack("{s:s,s:I}", "token", env->token,
                                       "index", (json_int_t)index));
    else
        reply = ctl_reply_ok(json_pack("{s:I}", "index", (json_int_t)index));
    sodium_memzero(env->token, sizeof(env->token));
    if (!env->p->stopping)
        send_reply(env->p, env, reply);
    json_decref(reply);
    free(env);
}

static json_t *defer(struct peerd *p, const struct envelope *env,
                     const char *what, const char *token, json_t *op)
{
    struct envelope *copy = malloc(sizeof(*copy));

    if (!copy) {
        json_decref(op);
        return ctl_reply_error("%s: out of memory", what);
    }
    *copy = *env;
    copy->p = p;
    snprintf(copy->what, sizeof(copy->what), "%s", what);
    snprintf(copy->token, sizeof(copy->token), "%s", token ? token : "");
    if (agree_propose(p->agree, op, write_done, copy, peerd_now()) < 0) {
        free(copy);
        return ctl_reply_error("%s: out of memory", what);
    }
    return NULL; /* answered later */
}

static json_t *cmd_config(struct peerd *p, const json_t *args,
                          const struct envelope *env)
{
    const char *key = json_string_value(json_object_get(args, "key"));
    json_t *val = json_object_get(args, "value");
    json_t *r;
    char *v = NULL;
    int rc;

    if (!key || !*key)
        return ctl_reply_error("config: a key is needed");
    if (!val) {
        rc = store_get(p->cluster.store, STORE_CONFIG, key, &v, NULL);
        if (rc < 0)
            return ctl_reply_error("config: cannot read the store");
        r = ctl_reply_ok(json_pack("{s:s,s:o}", "key", key, "value",
                                   v ? json_string(v) : json_null()));
        free(v);
        return r;
    }
    if (!json_is_string(val))
        return ctl_reply_error("config: the value must be a string");
    if (!fsm_config_key_ok(key))
        return ctl_reply_error("config: '%s' cannot be set (voters, "
                               "description, tier, or slurm.<Parameter>)",
                               key);
    char why[96];
    if (!fsm_config_value_ok(key, json_string_value(val), why, sizeof(why)))
        return ctl_reply_error("config: %s", why);
    if (!p->cluster.have_state)
        return ctl_reply_error("config: this peer has no cluster state yet");
    return defer(p, env, "config set", NULL,
                 json_pack("{s:s,s:s,s:O}", "op", "config_set", "key", key,
                           "value", val));
}

static json_t *cmd_token(struct peerd *p, const json_t *args,
                         const struct envelope *env)
{
    json_int_t ttl = 24 * 3600, uses = 1;
    struct join_token tok;
    unsigned char verifier[32];
    char text[TOKEN_TEXT_MAX], vhex[65];
    json_t *v, *reply;

    if ((v = json_object_get(args, "ttl")) && json_is_integer(v))
        ttl = json_integer_value(v);
    if ((v = json_object_get(args, "uses")) && json_is_integer(v))
        uses = json_integer_value(v);
    if (ttl < 1 || ttl > 365 * 24 * 3600 || uses < 1 || uses > 1000000)
        return ctl_reply_error("token create: ttl must be 1 s to 365 days "
                               "and uses 1 to 1000000");
    if (!p->cluster.have_state)
        return ctl_reply_error("token create: this peer has no cluster "
                               "state yet");
    token_new(&tok, p->cluster.join_pub);
    token_verifier(tok.secret, verifier);
    token_format(&tok, text);
    sodium_bin2hex(vhex, sizeof(vhex), verifier, sizeof(verifier));
    reply = defer(p, env, "token create", text,
                  json_pack("{s:s,s:s,s:s,s:I,s:I}", "op", "token_add", "id",
                            tok.id, "verifier", vhex, "expires",
                            (json_int_t)time(NULL) + ttl, "uses", uses));
    sodium_memzero(&tok, sizeof(tok));
    sodium_memzero(text, sizeof(text));
    return reply;
}

static json_t *cmd_transfer(struct peerd *p, const json_t *args,
                            const struct envelope *env)
{
    const char *host = json_string_value(json_object_get(args, "host"));
    struct member m;
    char why[160];
    uint64_t to = 0;

    if (!p->cluster.have_state || !p->slurm_started)
        return ctl_reply_error("transfer: this peer has no cluster state yet");
    if (host && *host) {
        if (members_by_name(p->cluster.store, host, &m, NULL) != 1)
            return ctl_reply_error("transfer: no member is called '%s'", host);
        to = m.id;
    }
    if (place_transfer_check(p, to, why, sizeof(why)) < 0)
        return ctl_reply_error("transfer: %s", why);
    return defer(
        p, env, "transfer", NULL,
        json_pack("{s:s,s:I}", "op", "transfer", "to", (json_int_t)to));
}

static json_t *dispatch(struct peerd *p, const json_t *req,
                        const struct envelope *env)
{
    const char *cmd = json_string_value(json_object_get(req, "cmd"));
    json_t *args = json_object_get(req, "args");

    if (strcmp(cmd, "status") == 0)
        return ctl_reply_ok(control_status(p));
    if (strcmp(cmd, "members") == 0)
        return ctl_reply_ok(control_members(p));
    if (strcmp(cmd, "config") == 0)
        return cmd_config(p, args, env);
    if (strcmp(cmd, "token") == 0)
        return cmd_token(p, args, env);
    if (strcmp(cmd, "ping") == 0)
        return ctl_reply_ok(json_pack("{s:b}", "pong", 1));
    if (strcmp(cmd, "transfer") == 0)
        return cmd_transfer(p, args, env);
    return ctl_reply_error("unknown command '%s'", cmd);
}

static int recv_one(struct peerd *p)
{
    zmq_msg_t frames[MAX_FRAMES];
    int n = 0, more = 1;
    size_t moresz = sizeof(more);
    json_t *req = NULL, *reply;
    err_t err = {{0}};

    while (more) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, p->ctl, n == 0 ? ZMQ_DONTWAIT : 0) < 0) {
            zmq_msg_close(&part);
            if (n == 0)
                return errno == EAGAIN ? 0 : -1;
            break;
        }
        zmq_getsockopt(p->ctl, ZMQ_RCVMORE, &more, &moresz);
        if (n < MAX_FRAMES)
            frames[n++] = part;
        else
            zmq_msg_close(&part); /* too many frames: drop the rest */
    }
    p->ctl_requests++;
    struct envelope env = {.p = p};
    if (n >= 1 && zmq_msg_size(&frames[0]) <= sizeof(env.id)) {
        env.idlen = zmq_msg_size(&frames[0]);
        memcpy(env.id, zmq_msg_data(&frames[0]), env.idlen);
    }
    env.delim = n == 3 && zmq_msg_size(&frames[1]) == 0;
    /* identity, [empty delimiter,] body */
    if (n < 2 || n > 3 || (n == 3 && zmq_msg_size(&frames[1]) != 0)) {
        errprintf(&err, "malformed control message: %d frames", n);
        req = NULL;
    } else {
        req = ctl_decode(zmq_msg_data(&frames[n - 1]),
                         zmq_msg_size(&frames[n - 1]), CTL_REQUEST, &err);
    }
    if (!req) {
        p->ctl_malformed++;
        log_warnx("control: dropped request #%llu: %s",
                  (unsigned long long)p->ctl_requests, err.text);
        reply = ctl_reply_error("%s", err.text);
    } else {
        reply = dispatch(p, req, &env);
    }
    if (reply && env.idlen > 0)
        send_reply(p, &env, reply);
    json_decref(reply);
    json_decref(req);
    for (int i = 0; i < n; i++)
        zmq_msg_close(&frames[i]);
    return 1;
}

void control_handle(struct peerd *p)
{
    /* bounded, so a flood cannot starve the supervisor */
    for (int i = 0; i < 64; i++)
        if (recv_one(p) <= 0)
            break;
}
