/* gossip.c - SWIM membership at run time (see gossip.h)
 *
 * Every public call that lets swim act ends in flush(): the outbox is
 * converted and sent, then cleared, and swim's events are moved into our
 * own queue, since both are swim's to reuse at its next call.
 * Invariants:
 *  - ids[] is the sorted, duplicate-free set of members given to swim
 *    besides this one; swim's table holds exactly ids[] and self;
 *  - ev[] holds at most GOSSIP_MAX_EVENTS events, oldest first;
 *  - nothing here keeps a pointer into a wire_msg or a swim_msg past the
 *    call that handed it over.
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "node/gossip.h"
#include "node/log.h"
#include "node/transport.h"

/* The wire codec numbers what swim numbers, without including swim.h. */
#define SAME(a, b) ((int)(a) == (int)(b))
_Static_assert(WIRE_MAX_PIGGYBACK == SWIM_MAX_PIGGYBACK, "piggyback");
_Static_assert(SAME(WIRE_SWIM_PING, SWIM_PING) &&
                   SAME(WIRE_SWIM_ACK, SWIM_ACK) &&
                   SAME(WIRE_SWIM_PING_REQ, SWIM_PING_REQ) &&
                   SAME(WIRE_SWIM_NACK, SWIM_NACK) &&
                   SAME(WIRE_SWIM_SYNC, SWIM_SYNC) &&
                   SAME(WIRE_SWIM_GOSSIP, SWIM_GOSSIP),
               "swim message types");
_Static_assert(SAME(WIRE_SWIM_ALIVE, SWIM_ALIVE) &&
                   SAME(WIRE_SWIM_SUSPECT, SWIM_SUSPECT) &&
                   SAME(WIRE_SWIM_DEAD, SWIM_DEAD) &&
                   SAME(WIRE_SWIM_LEFT, SWIM_LEFT),
               "swim states");
#undef SAME

struct gossip {
    uint64_t self;
    swim_t *swim;
    gossip_send_fn send;
    void *send_arg;
    uint64_t (*rand)(void *);
    void *rand_arg;
    uint64_t *ids; /* sorted */
    size_t n_ids;
    struct swim_event *ev;
    size_t n_ev, ev_cap;
    /* scratch for a sync table, either way */
    struct wire_swim_update *tx_sync;
    size_t tx_cap;
    struct swim_update *rx_sync;
    size_t rx_cap;
    uint64_t sent, received, bytes_sent, bytes_received, dropped, ignored;
};

static uint64_t sodium_rand(void *arg)
{
    uint64_t v;

    (void)arg;
    randombytes_buf(&v, sizeof(v));
    return v;
}

/* swim's randomness goes through here, so that a test can swap it. */
static uint64_t gossip_rand(void *arg)
{
    gossip_t *g = arg;

    return g->rand(g->rand_arg);
}

static uint64_t to_ms(double now)
{
    return now > 0 ? (uint64_t)(now * 1000.0) : 0;
}

static int cmp_id(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return (x > y) - (x < y);
}

/* Room for n elements of size in *p (capacity *cap, in elements). */
static int reserve(void *pp, size_t *cap, size_t n, size_t size)
{
    void **p = pp;
    size_t c = *cap > 8 ? *cap : 8;
    void *q;

    if (n <= *cap)
        return 0;
    while (c < n)
        c *= 2;
    q = realloc(*p, c * size);
    if (!q)
        return -1;
    *p = q;
    *cap = c;
    return 0;
}

int gossip_send_transport(void *transport, uint64_t to,
                          const struct wire_msg *m)
{
    return transport_send(transport, to, m);
}

gossip_t *gossip_new(uint64_t self, gossip_send_fn send, void *send_arg,
                     err_t *err)
{
    gossip_t *g;
    struct swim_options opt = {.id = self, .rand = gossip_rand};

    if (!self || !send) {
        errno = EINVAL;
        errprintf(err, "gossip: %s", self ? "no send function" : "id 0");
        return NULL;
    }
    if (sodium_init() < 0) {
        errno = ENOMEM;
        errprintf(err, "gossip: cannot initialise libsodium");
        return NULL;
    }
    g = calloc(1, sizeof(*g));
    if (!g) {
        errprintf_errno(err, "gossip");
        return NULL;
    }
    g->self = self;
    g->send = send;
    g->send_arg = send_arg;
    g->rand = sodium_rand;
    opt.rand_arg = g;
    /* above every incarnation of an earlier run (one refutation a second
     * at most would be needed to catch up), so a peer that restarts is
     * taken back at once by those that saw it die
     */
    opt.incarnation = (uint64_t)time(NULL);
    g->swim = swim_new(&opt);
    if (!g->swim) {
        errprintf_errno(err, "gossip: swim");
        free(g);
        return NULL;
    }
    return g;
}

void gossip_destroy(gossip_t **gp)
{
    gossip_t *g;

    if (!gp || !*gp)
        return;
    g = *gp;
    swim_destroy(&g->swim);
    free(g->ids);
    free(g->ev);
    free(g->tx_sync);
    free(g->rx_sync);
    free(g);
    *gp = NULL;
}

void gossip_set_rand(gossip_t *g, uint64_t (*rand)(void *), void *arg)
{
    g->rand = rand ? rand : sodium_rand;
    g->rand_arg = arg;
}

/* Keep our copy equal to swim's table: an id is in ids[] iff swim_add
 * took it.
 */
int gossip_set_members(gossip_t *g, const uint64_t *ids, size_t n)
{
    uint64_t *want = NULL;
    size_t n_want = 0, n_new = 0, i = 0, j = 0;
    int rc = -1;

    if (n > 0 && !(want = malloc(n * sizeof(*want))))
        goto out;
    for (size_t k = 0; k < n; k++)
        if (ids[k] && ids[k] != g->self)
            want[n_want++] = ids[k];
    if (n_want > 1)
        qsort(want, n_want, sizeof(*want), cmp_id);
    for (size_t k = 0; k < n_want; k++)
        if (n_new == 0 || want[k] != want[n_new - 1])
            want[n_new++] = want[k];
    n_want = n_new;
    /* Merge two sorted lists; the new ids[] is built in want[] in place
     * (n_new <= j throughout).
     */
    rc = 0;
    n_new = 0;
    while (i < g->n_ids || j < n_want) {
        if (j == n_want || (i < g->n_ids && g->ids[i] < want[j])) {
            swim_remove(g->swim, g->ids[i++]);
        } else if (i < g->n_ids && g->ids[i] == want[j]) {
            want[n_new++] = want[j++];
            i++;
        } else if (swim_add(g->swim, want[j]) == 0) {
            want[n_new++] = want[j++];
        } else {
            rc = -1; /* not a member here until the next call */
            j++;
        }
    }
    free(g->ids);
    g->ids = want;
    g->n_ids = n_new;
    want = NULL;
out:
    free(want);
    if (rc < 0) {
        log_warnx("gossip: out of memory updating the member table");
        errno = ENOMEM;
    }
    return rc;
}

static void events_take(gossip_t *g)
{
    const struct swim_event *ev;
    size_t n = swim_events(g->swim, &ev);

    if (n > GOSSIP_MAX_EVENTS) {
        ev += n - GOSSIP_MAX_EVENTS;
        n = GOSSIP_MAX_EVENTS;
    }
    if (n == 0)
        return;
    if (reserve(&g->ev, &g->ev_cap,
                g->n_ev + n < GOSSIP_MAX_EVENTS ? g->n_ev + n
                                                : GOSSIP_MAX_EVENTS,
                sizeof(*g->ev)) < 0) {
        log_warnx("gossip: out of memory: %zu membership events lost", n);
        swim_events_clear(g->swim);
        return;
    }
    if (g->n_ev + n > GOSSIP_MAX_EVENTS) {
        size_t drop = g->n_ev + n - GOSSIP_MAX_EVENTS;

        memmove(g->ev, g->ev + drop, (g->n_ev - drop) * sizeof(*g->ev));
        g->n_ev -= drop;
    }
    memcpy(g->ev + g->n_ev, ev, n * sizeof(*ev));
    g->n_ev += n;
    swim_events_clear(g->swim);
}

static struct wire_swim_update to_wire_update(const struct swim_update *u)
{
    return (struct wire_swim_update){.id = u->id,
                                     .incarnation = u->incarnation,
                                     .state = u->state,
                                     .from = u->from};
}

static struct swim_update from_wire_update(const struct wire_swim_update *u)
{
    return (struct swim_update){.id = u->id,
                                .incarnation = u->incarnation,
                                .state = u->state,
                                .from = u->from};
}

/* One outgoing message.  A table too large for one frame is cut short:
 * this member comes first in it, and a partial push-pull still merges.
 */
static void send_one(gossip_t *g, const struct swim_msg *sm)
{
    struct wire_msg m = {.type = WIRE_SWIM, .from = g->self};
    struct wire_swim *w = &m.u.swim;
    uint32_t n_sync = sm->n_sync < WIRE_MAX_SYNC ? sm->n_sync : WIRE_MAX_SYNC;
    size_t len;

    w->type = (uint8_t)sm->type;
    w->to = sm->to;
    w->seq = sm->seq;
    w->target = sm->target;
    w->reply = sm->reply;
    w->n_updates =
        (uint8_t)(sm->n_updates < WIRE_MAX_PIGGYBACK ? sm->n_updates
                                                     : WIRE_MAX_PIGGYBACK);
    for (uint8_t i = 0; i < w->n_updates; i++)
        w->updates[i] = to_wire_update(&sm->updates[i]);
    if (n_sync > 0 && sm->sync) {
        if (reserve(&g->tx_sync, &g->tx_cap, n_sync, sizeof(*g->tx_sync)) < 0) {
            g->dropped++;
            return;
        }
        for (uint32_t i = 0; i < n_sync; i++)
            g->tx_sync[i] = to_wire_update(&sm->sync[i]);
        w->sync = g->tx_sync;
        w->n_sync = n_sync;
    }
    len = wire_size(&m);
    if (len == 0 || g->send(g->send_arg, sm->to, &m) < 0) {
        g->dropped++;
        return;
    }
    g->sent++;
    g->bytes_sent += len;
}

/* Send what swim queued and keep what it saw. */
static void flush(gossip_t *g)
{
    const struct swim_msg *out;
    size_t n = swim_outbox(g->swim, &out);

    for (size_t i = 0; i < n; i++)
        send_one(g, &out[i]);
    swim_outbox_clear(g->swim);
    events_take(g);
}

void gossip_tick(gossip_t *g, double now)
{
    swim_tick(g->swim, to_ms(now));
    flush(g);
}

void gossip_step(gossip_t *g, const struct wire_msg *m, double now)
{
    const struct wire_swim *w = &m->u.swim;
    struct swim_msg sm;
    size_t len;

    if (m->type != WIRE_SWIM || w->to != g->self ||
        w->n_updates > SWIM_MAX_PIGGYBACK || (w->n_sync && !w->sync) ||
        (len = wire_size(m)) == 0) {
        g->ignored++;
        return;
    }
    memset(&sm, 0, sizeof(sm));
    sm.type = (enum swim_msg_type)w->type;
    sm.from = m->from; /* authenticated by the transport */
    sm.to = w->to;
    sm.seq = w->seq;
    sm.target = w->target;
    sm.reply = w->reply;
    sm.n_updates = w->n_updates;
    for (uint8_t i = 0; i < w->n_updates; i++)
        sm.updates[i] = from_wire_update(&w->updates[i]);
    if (w->n_sync > 0) {
        if (reserve(&g->rx_sync, &g->rx_cap, w->n_sync, sizeof(*g->rx_sync)) <
            0) {
            g->ignored++;
            return;
        }
        for (uint32_t i = 0; i < w->n_sync; i++)
            g->rx_sync[i] = from_wire_update(&w->sync[i]);
        sm.sync = g->rx_sync;
        sm.n_sync = w->n_sync;
    }
    g->received++;
    g->bytes_received += len;
    swim_tick(g->swim, to_ms(now));
    swim_step(g->swim, m->from, &sm);
    flush(g);
}

void gossip_leave(gossip_t *g)
{
    swim_leave(g->swim);
    flush(g);
}

size_t gossip_events(gossip_t *g, struct swim_event *ev, size_t cap)
{
    size_t n = g->n_ev < cap ? g->n_ev : cap;

    if (n == 0)
        return 0;
    memcpy(ev, g->ev, n * sizeof(*ev));
    memmove(g->ev, g->ev + n, (g->n_ev - n) * sizeof(*g->ev));
    g->n_ev -= n;
    return n;
}

int gossip_state(gossip_t *g, uint64_t id, enum swim_state *st)
{
    return swim_member(g->swim, id, st, NULL);
}

json_t *gossip_json(gossip_t *g)
{
    return json_pack(
        "{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
        "members", (json_int_t)swim_size(g->swim), "alive",
        (json_int_t)swim_count(g->swim, SWIM_ALIVE), "suspect",
        (json_int_t)swim_count(g->swim, SWIM_SUSPECT), "dead",
        (json_int_t)swim_count(g->swim, SWIM_DEAD), "left",
        (json_int_t)swim_count(g->swim, SWIM_LEFT), "health",
        (json_int_t)swim_health(g->swim), "incarnation",
        (json_int_t)swim_incarnation(g->swim), "sent", (json_int_t)g->sent,
        "received", (json_int_t)g->received, "bytes_sent",
        (json_int_t)g->bytes_sent, "bytes_received",
        (json_int_t)g->bytes_received, "dropped", (json_int_t)g->dropped,
        "ignored", (json_int_t)g->ignored);
}
