/* transport.c - peer sockets: ZeroMQ with CURVE, admission by key
 *
 * The ZAP handler runs in the event loop's thread: ZeroMQ's I/O thread
 * sends the request over inproc and waits, so it must be answered
 * promptly, which the loop does (it is polled with the other sockets).
 * The User-Id the handler assigns is what ties a message to a member:
 * "m<id>" on the peer socket, the key in hex on the join socket.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <time.h>

#include <sodium.h>

#include "node/log.h"
#include "node/transport.h"

#define ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define MON_PEER "inproc://peerd-monitor-peer"
#define MON_JOIN "inproc://peerd-monitor-join"
#define SEND_HWM 512
#define MONITOR_EVENTS                                                         \
    (ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |                                    \
     ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |   \
     ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_ACCEPTED)

struct peer {
    uint64_t id;
    unsigned char pub[32];
    char endpoint[160];
    void *dealer; /* NULL until the first send */
    void *mon;    /* PAIR: the dealer's connection events, or NULL */
    double last_heard;
};

struct transport {
    void *zctx;
    unsigned char pub[32];
    unsigned char sec[32]; /* copy of the node secret key (locked) */
    void *router;          /* peer socket */
    void *join;            /* join socket, or NULL */
    void *zap;             /* ZAP handler (REP) */
    void *mon_peer, *mon_join;
    char bind[64];
    int port;
    struct peer peers[TRANSPORT_MAX_PEERS];
    int npeers;
    struct transport_stats stats;
};

static double mono_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int transport_parse_addr(const char *s, char *host, size_t cap, int *port,
                         int default_port)
{
    const char *colon = strrchr(s, ':');
    size_t n = colon ? (size_t)(colon - s) : strlen(s);
    char *end;
    long p;

    if (n == 0 || n >= cap)
        return -1;
    memcpy(host, s, n);
    host[n] = '\0';
    *port = default_port;
    if (colon) {
        p = strtol(colon + 1, &end, 10);
        if (end == colon + 1 || *end || p < 1 || p > 65534)
            return -1;
        *port = (int)p;
    }
    return 0;
}

static void set_int(void *s, int opt, int v)
{
    zmq_setsockopt(s, opt, &v, sizeof(v));
}

static void *server_socket(transport_t *t, const unsigned char *sec,
                           const char *domain, const char *mon, int port,
                           void **monp, err_t *err)
{
    char ep[128];
    int64_t maxsize = WIRE_MAX_FRAME;
    void *s = zmq_socket(t->zctx, ZMQ_ROUTER);

    if (!s) {
        errprintf(err, "socket: %s", zmq_strerror(errno));
        return NULL;
    }
    set_int(s, ZMQ_LINGER, 0);
    set_int(s, ZMQ_CURVE_SERVER, 1);
    set_int(s, ZMQ_RCVHWM, 4096);
    set_int(s, ZMQ_SNDHWM, SEND_HWM);
    set_int(s, ZMQ_ROUTER_MANDATORY, 1); /* EHOSTUNREACH, not silence */
    zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &maxsize, sizeof(maxsize));
    zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, sec, 32);
    zmq_setsockopt(s, ZMQ_ZAP_DOMAIN, domain, strlen(domain));
    if (zmq_socket_monitor(s, mon, MONITOR_EVENTS) == 0 &&
        (*monp = zmq_socket(t->zctx, ZMQ_PAIR)) != NULL) {
        set_int(*monp, ZMQ_LINGER, 0);
        zmq_connect(*monp, mon);
    }
    snprintf(ep, sizeof(ep), "tcp://%s:%d", t->bind, port);
    if (zmq_bind(s, ep) < 0) {
        errprintf(err, "cannot listen on %s: %s", ep, zmq_strerror(errno));
        zmq_close(s);
        return NULL;
    }
    return s;
}

transport_t *transport_new(void *zctx, const node_key_t *key, const char *bind,
                           int port, const unsigned char *join_pub,
                           const secret_t *join_sec, err_t *err)
{
    transport_t *t = sodium_malloc(sizeof(*t));

    if (!t) {
        errprintf_errno(err, "cannot set up the transport");
        return NULL;
    }
    memset(t, 0, sizeof(*t));
    t->zctx = zctx;
    t->port = port;
    memcpy(t->pub, key->pub, 32);
    memcpy(t->sec, key->sec->data, 32);
    snprintf(t->bind, sizeof(t->bind), "%s", bind);
    /* the ZAP handler must exist before the first handshake */
    if (!(t->zap = zmq_socket(zctx, ZMQ_REP)) ||
        zmq_bind(t->zap, ZAP_ENDPOINT) < 0) {
        errprintf(err, "cannot bind the ZAP handler: %s", zmq_strerror(errno));
        goto fail;
    }
    set_int(t->zap, ZMQ_LINGER, 0);
    t->router =
        server_socket(t, t->sec, "peer", MON_PEER, port, &t->mon_peer, err);
    if (!t->router)
        goto fail;
    if (join_sec && transport_listen_join(t, join_pub, join_sec, err) < 0)
        goto fail;
    return t;
fail:
    transport_destroy(&t);
    return NULL;
}

int transport_listen_join(transport_t *t, const unsigned char *join_pub,
                          const secret_t *join_sec, err_t *err)
{
    (void)join_pub;
    if (t->join)
        return 0;
    t->join = server_socket(t, join_sec->data, "join", MON_JOIN, t->port + 1,
                            &t->mon_join, err);
    return t->join ? 0 : -1;
}

static void close_dealer(struct peer *p);

void transport_destroy(transport_t **tp)
{
    transport_t *t;

    if (!tp || !*tp)
        return;
    t = *tp;
    /* every socket must be closed, or zmq_ctx_term waits for ever */
    for (int i = 0; i < t->npeers; i++)
        close_dealer(&t->peers[i]);
    if (t->router) {
        zmq_socket_monitor(t->router, NULL, 0);
        zmq_close(t->router);
    }
    if (t->join) {
        zmq_socket_monitor(t->join, NULL, 0);
        zmq_close(t->join);
    }
    if (t->mon_peer)
        zmq_close(t->mon_peer);
    if (t->mon_join)
        zmq_close(t->mon_join);
    if (t->zap)
        zmq_close(t->zap);
    sodium_free(t); /* wipes the secret key copy */
    *tp = NULL;
}

static struct peer *find_peer(transport_t *t, uint64_t id)
{
    for (int i = 0; i < t->npeers; i++)
        if (t->peers[i].id == id)
            return &t->peers[i];
    return NULL;
}

static struct peer *find_key(transport_t *t, const unsigned char *pub)
{
    for (int i = 0; i < t->npeers; i++)
        if (sodium_memcmp(t->peers[i].pub, pub, 32) == 0)
            return &t->peers[i];
    return NULL;
}

static void close_dealer(struct peer *p)
{
    if (p->dealer) {
        zmq_socket_monitor(p->dealer, NULL, 0);
        zmq_close(p->dealer);
        p->dealer = NULL;
    }
    if (p->mon) {
        zmq_close(p->mon);
        p->mon = NULL;
    }
}

/* Heartbeats are a thin stream (a few small messages in flight): after a
 * loss, TCP's exponential backoff would hold every later message on the
 * connection for 0.4, 0.8, 1.6 s...  and that is what lets a lease lapse
 * or an election start on a lossy network.  Linear timeouts for thin
 * streams keep the first retransmissions at one RTO each.  Best effort:
 * ZeroMQ hands the descriptor over in its connection event.
 */
static void tune_tcp(int fd)
{
    int one = 1;

    if (fd >= 0)
        setsockopt(fd, IPPROTO_TCP, TCP_THIN_LINEAR_TIMEOUTS, &one,
                   sizeof(one));
}

int transport_set_peer(transport_t *t, uint64_t id, const unsigned char *pub,
                       const char *address)
{
    char host[128], ep[160];
    int port;
    struct peer *p = find_peer(t, id);

    if (transport_parse_addr(address, host, sizeof(host), &port,
                             TRANSPORT_DEFAULT_PORT) < 0) {
        errno = EINVAL;
        return -1;
    }
    snprintf(ep, sizeof(ep), "tcp://%s:%d", host, port);
    if (!p) {
        if (t->npeers == TRANSPORT_MAX_PEERS) {
            errno = ENOSPC;
            return -1;
        }
        p = &t->peers[t->npeers++];
        memset(p, 0, sizeof(*p));
        p->id = id;
        p->last_heard = -1;
    } else if (memcmp(p->pub, pub, 32) == 0 && strcmp(p->endpoint, ep) == 0) {
        return 0;
    }
    close_dealer(p); /* new key or address: reconnect */
    memcpy(p->pub, pub, 32);
    snprintf(p->endpoint, sizeof(p->endpoint), "%s", ep);
    return 0;
}

void transport_remove_peer(transport_t *t, uint64_t id)
{
    struct peer *p = find_peer(t, id);

    if (!p)
        return;
    close_dealer(p);
    *p = t->peers[--t->npeers];
}

static void *open_dealer(transport_t *t, struct peer *p)
{
    void *s = zmq_socket(t->zctx, ZMQ_DEALER);

    if (!s)
        return NULL;
    set_int(s, ZMQ_LINGER, 0);
    set_int(s, ZMQ_IMMEDIATE, 1);
    set_int(s, ZMQ_SNDHWM, SEND_HWM);
    set_int(s, ZMQ_RECONNECT_IVL, 100);
    set_int(s, ZMQ_RECONNECT_IVL_MAX, 2000);
    zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, p->pub, 32);
    zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, t->pub, 32);
    zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, t->sec, 32);
    {
        char mon[96];
        snprintf(mon, sizeof(mon), "inproc://peerd-monitor-dealer-%llu-%p",
                 (unsigned long long)p->id, (void *)s);
        if (zmq_socket_monitor(s, mon, ZMQ_EVENT_CONNECTED) == 0 &&
            (p->mon = zmq_socket(t->zctx, ZMQ_PAIR)) != NULL) {
            set_int(p->mon, ZMQ_LINGER, 0);
            if (zmq_connect(p->mon, mon) < 0) {
                zmq_close(p->mon);
                p->mon = NULL;
            }
        }
    }
    if (zmq_connect(s, p->endpoint) < 0) {
        log_warnx("cannot connect to %s: %s", p->endpoint, zmq_strerror(errno));
        zmq_close(s);
        return NULL;
    }
    return s;
}

int transport_send(transport_t *t, uint64_t to, const struct wire_msg *m)
{
    struct peer *p = find_peer(t, to);
    unsigned char *buf = NULL;
    size_t len = 0;
    err_t err;
    int rc = -1;

    if (!p || (!p->dealer && !(p->dealer = open_dealer(t, p))))
        goto out;
    if (wire_encode(m, &buf, &len, &err) < 0) {
        log_warnx("cannot encode %s to %llu: %s", wire_type_name(m->type),
                  (unsigned long long)to, err.text);
        goto out;
    }
    rc = zmq_send(p->dealer, buf, len, ZMQ_DONTWAIT) < 0 ? -1 : 0;
out:
    free(buf);
    if (rc == 0)
        t->stats.sent++;
    else
        t->stats.send_dropped++;
    return rc;
}

int transport_poll_items(transport_t *t, zmq_pollitem_t *items)
{
    void *socks[] = {t->zap, t->mon_peer, t->mon_join, t->router, t->join};
    int n = 0;

    for (size_t i = 0; i < sizeof(socks) / sizeof(socks[0]); i++) {
        if (!socks[i])
            continue;
        items[n].socket = socks[i];
        items[n].fd = 0;
        items[n].events = ZMQ_POLLIN;
        items[n].revents = 0;
        n++;
    }
    return n;
}

/* Answer one ZAP request (RFC 27). */
static void zap_one(transport_t *t)
{
    zmq_msg_t f[7];
    int n = 0, more = 1;
    size_t sz = sizeof(more);
    char status[4] = "400", user[80] = "";
    const char *text = "refused";

    while (more && n < 7) {
        zmq_msg_init(&f[n]);
        if (zmq_msg_recv(&f[n], t->zap, n == 0 ? ZMQ_DONTWAIT : 0) < 0) {
            zmq_msg_close(&f[n]);
            if (n == 0)
                return;
            break;
        }
        n++;
        zmq_getsockopt(t->zap, ZMQ_RCVMORE, &more, &sz);
    }
    while (more) { /* more frames than RFC 27 has: drain */
        zmq_msg_t x;
        zmq_msg_init(&x);
        zmq_msg_recv(&x, t->zap, 0);
        zmq_msg_close(&x);
        zmq_getsockopt(t->zap, ZMQ_RCVMORE, &more, &sz);
    }
    if (n == 7 && zmq_msg_size(&f[6]) == 32 && zmq_msg_size(&f[5]) == 5 &&
        memcmp(zmq_msg_data(&f[5]), "CURVE", 5) == 0) {
        const unsigned char *key = zmq_msg_data(&f[6]);
        size_t dlen = zmq_msg_size(&f[2]);
        const char *dom = zmq_msg_data(&f[2]);
        if (dlen == 4 && memcmp(dom, "peer", 4) == 0) {
            struct peer *p = find_key(t, key);
            if (p) {
                memcpy(status, "200", 4);
                text = "OK";
                snprintf(user, sizeof(user), "m%llu",
                         (unsigned long long)p->id);
            }
        } else if (dlen == 4 && memcmp(dom, "join", 4) == 0) {
            memcpy(status, "200", 4);
            text = "OK";
            sodium_bin2hex(user, sizeof(user), key, 32);
        }
        if (status[0] != '2') {
            char hex[65];
            sodium_bin2hex(hex, sizeof(hex), key, 32);
            t->stats.refused_keys++;
            log_warnx("refused a connection with unknown key %.16s...", hex);
        }
    }
    /* reply: version, request id, status code, text, user id, metadata */
    zmq_send(t->zap, "1.0", 3, ZMQ_SNDMORE);
    if (n >= 2)
        zmq_send(t->zap, zmq_msg_data(&f[1]), zmq_msg_size(&f[1]), ZMQ_SNDMORE);
    else
        zmq_send(t->zap, "", 0, ZMQ_SNDMORE);
    zmq_send(t->zap, status, 3, ZMQ_SNDMORE);
    zmq_send(t->zap, text, strlen(text), ZMQ_SNDMORE);
    zmq_send(t->zap, user, strlen(user), ZMQ_SNDMORE);
    zmq_send(t->zap, "", 0, 0);
    for (int i = 0; i < n; i++)
        zmq_msg_close(&f[i]);
}

static void monitor_one(transport_t *t, void *mon)
{
    zmq_msg_t a, b;
    uint16_t event;

    zmq_msg_init(&a);
    zmq_msg_init(&b);
    if (zmq_msg_recv(&a, mon, ZMQ_DONTWAIT) < 0)
        goto out;
    if (zmq_msg_more(&a))
        zmq_msg_recv(&b, mon, 0);
    if (zmq_msg_size(&a) < 6)
        goto out;
    memcpy(&event, zmq_msg_data(&a), 2);
    if (event == ZMQ_EVENT_CONNECTED || event == ZMQ_EVENT_ACCEPTED) {
        int32_t fd;
        memcpy(&fd, (const char *)zmq_msg_data(&a) + 2, 4);
        tune_tcp(fd);
        goto out;
    }
    if (event == ZMQ_EVENT_DISCONNECTED)
        t->stats.disconnects++;
    else
        t->stats.handshake_failures++;
out:
    zmq_msg_close(&a);
    zmq_msg_close(&b);
}

/* The dealers' connection events (a new connection: tune it). */
static void service_dealers(transport_t *t)
{
    for (int i = 0; i < t->npeers; i++) {
        struct peer *p = &t->peers[i];
        zmq_pollitem_t it = {p->mon, 0, ZMQ_POLLIN, 0};
        if (!p->mon)
            continue;
        while (zmq_poll(&it, 1, 0) > 0 && (it.revents & ZMQ_POLLIN))
            monitor_one(t, p->mon);
    }
}

void transport_service(transport_t *t)
{
    zmq_pollitem_t it[3] = {{t->zap, 0, ZMQ_POLLIN, 0},
                            {t->mon_peer, 0, ZMQ_POLLIN, 0},
                            {t->mon_join, 0, ZMQ_POLLIN, 0}};
    int n = t->mon_join ? 3 : (t->mon_peer ? 2 : 1);

    service_dealers(t);

    for (int round = 0; round < 64; round++) {
        if (zmq_poll(it, n, 0) <= 0)
            return;
        if (it[0].revents & ZMQ_POLLIN)
            zap_one(t);
        for (int i = 1; i < n; i++)
            if (it[i].revents & ZMQ_POLLIN)
                monitor_one(t, it[i].socket);
    }
}

/* Receive [routing id][body] from a ROUTER; 1 got, 0 none, -1 bad shape. */
static int recv_routed(void *s, zmq_msg_t *rid, zmq_msg_t *body)
{
    int more;

    zmq_msg_init(rid);
    zmq_msg_init(body);
    if (zmq_msg_recv(rid, s, ZMQ_DONTWAIT) < 0)
        return 0;
    if (!zmq_msg_more(rid))
        return -1;
    zmq_msg_recv(body, s, 0);
    more = zmq_msg_more(body);
    while (more) { /* we send one frame per message: extra is garbage */
        zmq_msg_t x;
        zmq_msg_init(&x);
        zmq_msg_recv(&x, s, 0);
        more = zmq_msg_more(&x);
        zmq_msg_close(&x);
        more = more ? 1 : 0;
        if (!more)
            return -1;
    }
    return 1;
}

int transport_recv(transport_t *t, struct wire_msg *m)
{
    for (int round = 0; round < 256; round++) {
        zmq_msg_t rid, body;
        const char *user;
        err_t err;
        int rc = recv_routed(t->router, &rid, &body);
        unsigned long long id = 0;

        if (rc == 0) {
            zmq_msg_close(&rid);
            zmq_msg_close(&body);
            return 0;
        }
        user = rc > 0 ? zmq_msg_gets(&body, "User-Id") : NULL;
        if (rc < 0 || !user || sscanf(user, "m%llu", &id) != 1) {
            t->stats.malformed++;
        } else if (wire_decode(zmq_msg_data(&body), zmq_msg_size(&body), m,
                               &err) < 0) {
            t->stats.malformed++;
            log_warnx("dropped a frame from member %llu: %s", id, err.text);
        } else if (!find_peer(t, id)) {
            /* admitted at handshake, since removed: its session goes on
             * but it is not heard any more
             */
            t->stats.refused_keys++;
            wire_msg_fini(m);
        } else if (m->from != id) {
            t->stats.spoofed++;
            log_warnx("dropped %s claiming to be from %llu, sent by member "
                      "%llu",
                      wire_type_name(m->type), (unsigned long long)m->from, id);
            wire_msg_fini(m);
        } else {
            struct peer *p = find_peer(t, id);
            if (p)
                p->last_heard = mono_now();
            t->stats.received++;
            zmq_msg_close(&rid);
            zmq_msg_close(&body);
            return 1;
        }
        zmq_msg_close(&rid);
        zmq_msg_close(&body);
    }
    return 0;
}

int transport_recv_join(transport_t *t, struct wire_msg *m,
                        unsigned char pub[32], unsigned char *rid,
                        size_t *ridlen)
{
    if (!t->join)
        return 0;
    for (int round = 0; round < 64; round++) {
        zmq_msg_t r, body;
        const char *user;
        size_t got = 0;
        err_t err;
        int rc = recv_routed(t->join, &r, &body);

        if (rc == 0) {
            zmq_msg_close(&r);
            zmq_msg_close(&body);
            return 0;
        }
        user = rc > 0 ? zmq_msg_gets(&body, "User-Id") : NULL;
        if (rc < 0 || !user ||
            sodium_hex2bin(pub, 32, user, strlen(user), NULL, &got, NULL) < 0 ||
            got != 32 || zmq_msg_size(&r) > *ridlen) {
            t->stats.malformed++;
        } else if (wire_decode(zmq_msg_data(&body), zmq_msg_size(&body), m,
                               &err) < 0) {
            t->stats.malformed++;
            log_warnx("dropped a frame on the join socket: %s", err.text);
        } else if (m->type != WIRE_JOIN_REQ) {
            t->stats.malformed++;
            log_warnx("dropped %s on the join socket", wire_type_name(m->type));
            wire_msg_fini(m);
        } else {
            *ridlen = zmq_msg_size(&r);
            memcpy(rid, zmq_msg_data(&r), *ridlen);
            zmq_msg_close(&r);
            zmq_msg_close(&body);
            return 1;
        }
        zmq_msg_close(&r);
        zmq_msg_close(&body);
    }
    return 0;
}

int transport_reply_join(transport_t *t, const unsigned char *rid,
                         size_t ridlen, const struct wire_msg *m)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    err_t err;
    int rc = -1;

    if (!t->join)
        return -1;
    if (wire_encode(m, &buf, &len, &err) < 0) {
        log_warnx("cannot encode a join reply: %s", err.text);
        return -1;
    }
    if (zmq_send(t->join, rid, ridlen, ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0 &&
        zmq_send(t->join, buf, len, ZMQ_DONTWAIT) >= 0)
        rc = 0;
    free(buf);
    return rc;
}

double transport_last_heard(transport_t *t, uint64_t id, double now)
{
    struct peer *p = find_peer(t, id);

    return p && p->last_heard >= 0 ? now - p->last_heard : -1;
}

const struct transport_stats *transport_stats(transport_t *t)
{
    return &t->stats;
}

json_t *transport_stats_json(transport_t *t)
{
    const struct transport_stats *s = &t->stats;

    return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "received",
                     (json_int_t)s->received, "sent", (json_int_t)s->sent,
                     "send_dropped", (json_int_t)s->send_dropped, "malformed",
                     (json_int_t)s->malformed, "spoofed",
                     (json_int_t)s->spoofed, "refused_keys",
                     (json_int_t)s->refused_keys, "handshake_failures",
                     (json_int_t)s->handshake_failures, "disconnects",
                     (json_int_t)s->disconnects);
}
