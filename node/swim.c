/* swim.c - SWIM membership with Lifeguard as a pure state machine
 *
 * swim_tick() and swim_step() change the member table and queue messages
 * and events; the caller drains them with swim_outbox() / swim_events().
 * Nothing here does I/O, reads a clock, logs, or draws randomness other
 * than through opt.rand.
 *
 * Invariants:
 * - members[0] is this member, never removed; ids are distinct and
 *   non-zero, and index[] maps each id to its slot (rebuilt on removal);
 * - count[st] is the number of members in state st;
 * - suspects[], order[] and queue[] hold ids, not slots, so a removal
 *   only leaves stale ids that are skipped when met;
 * - a member is in queue[] iff its `queued` flag is set; tx counts how
 *   often its current state was piggybacked;
 * - at most one probe is in flight; its seq is unique among our
 *   PINGs and relays, so a stale or foreign ACK cannot complete it;
 * - every queued SYNC owns its sync[] array until swim_outbox_clear().
 */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "node/swim.h"

#define MAX_ACCUSERS 8     /* enough for suspicion_mult - 2 confirmations */
#define MAX_RELAYS 64      /* PING_REQs we serve at once */
#define MAX_INDIRECT 16    /* k cap: asked[] below */
#define RELAY_WAIT_PCT 80  /* NACK before the requester gives up */
#define MIN_SUSP_PERIODS 2 /* suspicion floor, periods * (LHM + 1) */

struct member {
    uint64_t id, inc;
    enum swim_state state;
    /* suspicion (state SUSPECT) */
    uint64_t susp_start, susp_min, susp_max;
    uint32_t susp_k, n_accusers;
    uint64_t accusers[MAX_ACCUSERS];
    /* dissemination */
    bool queued;
    uint32_t tx;
    uint64_t recency, picked;
};

/* A PING we send on behalf of a PING_REQ. */
struct relay {
    uint64_t origin, target, deadline;
    uint32_t origin_seq, seq;
};

enum probe_phase {
    PROBE_IDLE,
    PROBE_DIRECT,   /* PING sent, waiting for the probe timeout */
    PROBE_INDIRECT, /* PING_REQs sent, waiting for the period's end */
};

struct probe {
    enum probe_phase phase;
    uint64_t target;
    uint32_t seq;
    uint64_t timeout_at, end_at;
    uint32_t n_asked;
    uint64_t asked[MAX_INDIRECT];
    bool nacked[MAX_INDIRECT];
};

struct swim {
    struct swim_options opt;
    uint64_t now;
    bool started, left;
    uint32_t lhm;
    uint32_t seq;
    struct member *members;
    size_t n, cap;
    uint32_t *index; /* slot + 1, 0 = empty; open addressing */
    size_t index_cap;
    uint32_t count[SWIM_LEFT + 1];
    uint64_t *order; /* probe order: ids, shuffled each round */
    size_t n_order, order_pos, order_cap;
    uint64_t *queue; /* ids with an update to piggyback */
    size_t n_queue, queue_cap;
    uint64_t recency, stamp;
    uint64_t *suspects;
    size_t n_suspects, suspects_cap;
    uint32_t *scratch; /* candidate slots for PING_REQ / SYNC */
    size_t scratch_cap;
    struct probe probe;
    uint64_t next_probe_at, next_sync_at, next_gossip_at;
    struct relay relays[MAX_RELAYS];
    size_t n_relays;
    struct swim_msg *out;
    size_t n_out, out_cap;
    struct swim_event *ev;
    size_t n_ev, ev_cap;
};

/* --- small helpers ---------------------------------------------------- */

static int grow(void *pp, size_t *cap, size_t need, size_t size)
{
    void **p = pp;
    size_t c = *cap ? *cap : 8;
    void *q;

    if (need <= *cap)
        return 0;
    while (c < need)
        c *= 2;
    q = realloc(*p, c * size);
    if (!q)
        return -1;
    *p = q;
    *cap = c;
    return 0;
}

static uint64_t rand_below(swim_t *s, uint64_t n)
{
    return n ? s->opt.rand(s->opt.rand_arg) % n : 0;
}

static uint64_t scaled(swim_t *s, uint32_t ms)
{
    return (uint64_t)ms * (s->lhm + 1);
}

static void lhm_add(swim_t *s, int delta)
{
    int v = (int)s->lhm + delta;

    if (v < 0)
        v = 0;
    if (v > (int)s->opt.max_lhm)
        v = (int)s->opt.max_lhm;
    s->lhm = (uint32_t)v;
}

static size_t hash_slot(uint64_t id, size_t cap)
{
    id ^= id >> 33;
    id *= 0xff51afd7ed558ccdULL;
    id ^= id >> 33;
    return (size_t)id & (cap - 1);
}

static struct member *find(swim_t *s, uint64_t id)
{
    size_t h;

    if (!id)
        return NULL;
    for (h = hash_slot(id, s->index_cap); s->index[h];
         h = (h + 1) & (s->index_cap - 1)) {
        struct member *mb = &s->members[s->index[h] - 1];

        if (mb->id == id)
            return mb;
    }
    return NULL;
}

static void index_put(swim_t *s, size_t slot)
{
    size_t h = hash_slot(s->members[slot].id, s->index_cap);

    while (s->index[h])
        h = (h + 1) & (s->index_cap - 1);
    s->index[h] = (uint32_t)slot + 1;
}

static void index_fill(swim_t *s)
{
    memset(s->index, 0, s->index_cap * sizeof(*s->index));
    for (size_t i = 0; i < s->n; i++)
        index_put(s, i);
}

/* Keeps the table at most half full, so lookups stay short. */
static int index_grow(swim_t *s, size_t need)
{
    size_t cap = 16;
    uint32_t *ix;

    while (cap < 2 * need)
        cap *= 2;
    if (cap <= s->index_cap)
        return 0;
    ix = calloc(cap, sizeof(*ix));
    if (!ix)
        return -1;
    free(s->index);
    s->index = ix;
    s->index_cap = cap;
    index_fill(s);
    return 0;
}

static bool probeable(const struct member *mb)
{
    return mb->state == SWIM_ALIVE || mb->state == SWIM_SUSPECT;
}

/* --- outputs ---------------------------------------------------------- */

static void push_event(swim_t *s, const struct member *mb)
{
    if (grow(&s->ev, &s->ev_cap, s->n_ev + 1, sizeof(*s->ev)) < 0)
        return;
    s->ev[s->n_ev++] = (struct swim_event){mb->id, mb->state, mb->inc};
}

static void enqueue(swim_t *s, struct member *mb)
{
    mb->tx = 0;
    mb->recency = ++s->recency;
    if (mb->queued)
        return;
    if (grow(&s->queue, &s->queue_cap, s->n_queue + 1, sizeof(*s->queue)) < 0)
        return;
    s->queue[s->n_queue++] = mb->id;
    mb->queued = true;
}

static struct swim_update as_update(const struct member *mb)
{
    struct swim_update u = {mb->id, mb->inc, (uint8_t)mb->state, 0};

    if (mb->state == SWIM_SUSPECT && mb->n_accusers)
        u.from = mb->accusers[mb->n_accusers - 1];
    return u;
}

static uint32_t retransmit_limit(swim_t *s)
{
    return s->opt.retransmit_mult * (uint32_t)ceil(log10((double)s->n + 1));
}

/* Suspicions and refutations (ALIVE above incarnation 0) race a
 * suspicion timeout somewhere; DEAD and LEFT can wait a little.
 */
static bool urgent(const struct member *mb)
{
    return mb->state == SWIM_SUSPECT || (mb->state == SWIM_ALIVE && mb->inc);
}

/* Is a better to send than b: sent fewer times, then urgent, then newer. */
static bool fresher(const struct member *a, const struct member *b)
{
    if (a->tx != b->tx)
        return a->tx < b->tx;
    if (urgent(a) != urgent(b))
        return urgent(a);
    return a->recency > b->recency;
}

static void put_first(swim_t *s, struct swim_msg *m, struct member *mb)
{
    m->updates[m->n_updates++] = as_update(mb);
    mb->picked = s->stamp;
}

/* Piggyback the freshest queued updates, up to `max` (more while the
 * queue is long).  First our own state if it is still being spread (a
 * refutation), and `prio`: the member a PING goes to if it is suspected,
 * so that it can refute at once, or ourselves when the pinger holds an
 * old state of us.
 */
static void piggyback(swim_t *s, struct swim_msg *m, uint64_t prio,
                      uint32_t max)
{
    struct member *best[SWIM_MAX_PIGGYBACK];
    struct member *p = find(s, prio), *self = &s->members[0];
    uint32_t n = 0, limit = retransmit_limit(s);
    size_t i;

    s->stamp++;
    if (s->n_queue > max)
        max = 2 * max < SWIM_MAX_PIGGYBACK ? 2 * max : SWIM_MAX_PIGGYBACK;
    if (self->queued) {
        put_first(s, m, self);
        self->tx++;
    }
    if (p && p != self && p->state != SWIM_ALIVE)
        put_first(s, m, p);
    else if (p == self && !self->queued)
        put_first(s, m, self);
    max = max > m->n_updates ? max - m->n_updates : 0;
    for (i = 0; max && i < s->n_queue; i++) {
        struct member *mb = find(s, s->queue[i]);
        uint32_t j;

        if (!mb || !mb->queued || mb->picked == s->stamp)
            continue;
        if (n < max)
            n++;
        else if (!fresher(mb, best[n - 1]))
            continue;
        for (j = n - 1; j > 0 && fresher(mb, best[j - 1]); j--)
            best[j] = best[j - 1];
        best[j] = mb;
    }
    for (uint32_t j = 0; j < n; j++) {
        m->updates[m->n_updates++] = as_update(best[j]);
        best[j]->tx++;
    }
    for (i = s->n_queue; i-- > 0;) {
        struct member *mb = find(s, s->queue[i]);

        /* !queued: a stale id of a member removed and added again */
        if (mb && mb->queued && mb->tx < limit)
            continue;
        if (mb && mb->queued)
            mb->queued = false;
        s->queue[i] = s->queue[--s->n_queue];
    }
}

static struct swim_msg *send_prio(swim_t *s, enum swim_msg_type type,
                                  uint64_t to, uint32_t seq, uint64_t target,
                                  uint64_t prio)
{
    struct swim_msg *m;

    if (grow(&s->out, &s->out_cap, s->n_out + 1, sizeof(*s->out)) < 0)
        return NULL;
    m = &s->out[s->n_out++];
    memset(m, 0, sizeof(*m));
    m->type = type;
    m->from = s->opt.id;
    m->to = to;
    m->seq = seq;
    m->target = target;
    piggyback(s, m, prio,
              type == SWIM_GOSSIP ? SWIM_MAX_PIGGYBACK : s->opt.max_piggyback);
    return m;
}

static struct swim_msg *send_msg(swim_t *s, enum swim_msg_type type,
                                 uint64_t to, uint32_t seq, uint64_t target)
{
    return send_prio(s, type, to, seq, target, type == SWIM_PING ? to : 0);
}

static void send_sync(swim_t *s, uint64_t to, bool reply)
{
    struct swim_update *all = malloc(s->n * sizeof(*all));
    struct swim_msg *m;

    if (!all)
        return;
    m = send_msg(s, SWIM_SYNC, to, 0, 0);
    if (!m) {
        free(all);
        return;
    }
    for (size_t i = 0; i < s->n; i++)
        all[i] = as_update(&s->members[i]);
    m->reply = reply;
    m->sync = all;
    m->n_sync = (uint32_t)s->n;
}

/* --- state changes ---------------------------------------------------- */

static void suspects_drop(swim_t *s, uint64_t id)
{
    for (size_t i = 0; i < s->n_suspects; i++)
        if (s->suspects[i] == id) {
            s->suspects[i] = s->suspects[--s->n_suspects];
            return;
        }
}

/* Lifeguard: the timeout is fixed when the suspicion starts, from the
 * number of members then believed up: min = suspicion_mult * log10(n)
 * periods, max = suspicion_max_mult * that (memberlist's formula).  Our
 * own LHM raises the floor of min: a member that is itself slow (a
 * starved CPU, a lossy link) gives the accused more time to refute.
 */
static void suspicion_start(swim_t *s, struct member *mb, uint64_t accuser)
{
    uint32_t up = s->count[SWIM_ALIVE] + s->count[SWIM_SUSPECT];
    double periods = s->opt.suspicion_mult * fmax(1.0, log10((double)up));
    uint64_t base = (uint64_t)(periods * s->opt.probe_interval_ms),
             floor_ms = scaled(s, MIN_SUSP_PERIODS * s->opt.probe_interval_ms);

    mb->susp_start = s->now;
    mb->susp_min = base > floor_ms ? base : floor_ms;
    mb->susp_max = base * s->opt.suspicion_max_mult;
    if (mb->susp_max < mb->susp_min)
        mb->susp_max = mb->susp_min;
    mb->susp_k = s->opt.suspicion_mult > 2 ? s->opt.suspicion_mult - 2 : 0;
    if (up < mb->susp_k + 2)
        mb->susp_k = 0;
    mb->n_accusers = 0;
    if (accuser)
        mb->accusers[mb->n_accusers++] = accuser;
}

static uint64_t suspicion_timeout(const struct member *mb)
{
    uint32_t c = mb->n_accusers ? mb->n_accusers - 1 : 0;
    double frac, t;

    if (mb->susp_k == 0 || c >= mb->susp_k)
        return mb->susp_min;
    frac = log((double)c + 1) / log((double)mb->susp_k + 1);
    t = (double)mb->susp_max - frac * (double)(mb->susp_max - mb->susp_min);
    return t < (double)mb->susp_min ? mb->susp_min : (uint64_t)t;
}

static void set_state(swim_t *s, struct member *mb, enum swim_state st,
                      uint64_t inc, uint64_t accuser)
{
    enum swim_state old = mb->state;

    if (old == SWIM_SUSPECT && st != SWIM_SUSPECT)
        suspects_drop(s, mb->id);
    if (st == SWIM_SUSPECT && old != SWIM_SUSPECT &&
        grow(&s->suspects, &s->suspects_cap, s->n_suspects + 1,
             sizeof(*s->suspects)) < 0)
        return; /* cannot time it out: as if the update was lost */
    if (st == SWIM_SUSPECT && old != SWIM_SUSPECT)
        s->suspects[s->n_suspects++] = mb->id;
    if (st == SWIM_SUSPECT)
        suspicion_start(s, mb, accuser);
    s->count[old]--;
    s->count[st]++;
    mb->state = st;
    mb->inc = inc;
    if (old != st)
        push_event(s, mb);
    enqueue(s, mb);
}

/* An independent accuser of a current suspicion shortens it. */
static void confirm(swim_t *s, struct member *mb, uint64_t accuser)
{
    if (!accuser || mb->n_accusers >= MAX_ACCUSERS)
        return;
    for (uint32_t i = 0; i < mb->n_accusers; i++)
        if (mb->accusers[i] == accuser)
            return;
    mb->accusers[mb->n_accusers++] = accuser;
    enqueue(s, mb);
}

/* Up to gossip_fanout distinct random members up (ALIVE or SUSPECT),
 * other than `skip`, get a GOSSIP with the pending updates.  Drawn by
 * rejection, so a step costs O(fanout), not O(n).
 */
static void gossip_send(swim_t *s, uint64_t skip)
{
    uint64_t picked[MAX_INDIRECT];
    uint32_t n = 0, want = s->opt.gossip_fanout;

    if (s->n < 2)
        return;
    for (uint32_t tries = 0; n < want && tries < 4 * want + 8; tries++) {
        struct member *mb = &s->members[1 + rand_below(s, s->n - 1)];
        uint32_t j;

        if (!probeable(mb) || mb->id == skip)
            continue;
        for (j = 0; j < n && picked[j] != mb->id; j++)
            ;
        if (j < n)
            continue;
        picked[n++] = mb->id;
    }
    for (uint32_t j = 0; j < n && s->n_queue; j++)
        send_msg(s, SWIM_GOSSIP, picked[j], 0, 0);
}

static void gossip_maybe(swim_t *s)
{
    if (s->now < s->next_gossip_at)
        return;
    s->next_gossip_at = s->now + s->opt.gossip_interval_ms;
    if (s->n_queue)
        gossip_send(s, 0);
}

/* The refutation is queued like any update (our own state goes first in
 * every message), and also sent at once to the member that told us and
 * gossiped to a few others: a starved member may send nothing else
 * before its suspicion expires.  Its PING carries the refutation first.
 */
static void refute(swim_t *s, uint64_t from, uint64_t inc)
{
    struct member *self = &s->members[0];

    self->inc = inc + 1;
    enqueue(s, self);
    send_msg(s, SWIM_PING, from, ++s->seq, from);
    gossip_send(s, from);
}

static void apply_self(swim_t *s, uint64_t from, const struct swim_update *u)
{
    struct member *self = &s->members[0];

    if (s->left)
        return;
    if (u->state == SWIM_ALIVE) {
        if (u->incarnation > self->inc) /* from before a restart */
            refute(s, from, u->incarnation);
        return;
    }
    if (u->incarnation >= self->inc) {
        refute(s, from, u->incarnation);
        lhm_add(s, 1);
    }
}

/* Merge one gossiped state.  via_sync: a DEAD from a SYNC is taken as
 * SUSPECT, so that a member alive on our side gets to refute it.
 */
static void apply(swim_t *s, uint64_t from, const struct swim_update *u,
                  bool via_sync)
{
    enum swim_state st;
    struct member *mb;
    uint64_t accuser;

    if (u->state > SWIM_LEFT)
        return;
    mb = find(s, u->id);
    if (!mb)
        return;
    if (mb == s->members) {
        apply_self(s, from, u);
        return;
    }
    st = (enum swim_state)u->state;
    accuser = u->from ? u->from : from;
    if (via_sync && st == SWIM_DEAD) {
        st = SWIM_SUSPECT;
        accuser = from;
    }
    if (u->incarnation < mb->inc)
        return;
    if (u->incarnation == mb->inc) {
        if (st == SWIM_SUSPECT && mb->state == SWIM_SUSPECT) {
            confirm(s, mb, accuser);
            return;
        }
        if (st <= mb->state)
            return;
    }
    set_state(s, mb, st, u->incarnation, accuser);
}

/* --- probing ---------------------------------------------------------- */

static void order_rebuild(swim_t *s)
{
    s->n_order = s->order_pos = 0;
    if (grow(&s->order, &s->order_cap, s->n, sizeof(*s->order)) < 0)
        return;
    for (size_t i = 1; i < s->n; i++)
        if (probeable(&s->members[i]))
            s->order[s->n_order++] = s->members[i].id;
    for (size_t i = s->n_order; i > 1; i--) {
        size_t j = rand_below(s, i);
        uint64_t t = s->order[i - 1];

        s->order[i - 1] = s->order[j];
        s->order[j] = t;
    }
}

static struct member *next_target(swim_t *s)
{
    for (size_t tries = 0; tries <= s->n; tries++) {
        struct member *mb;

        if (s->order_pos >= s->n_order) {
            order_rebuild(s);
            if (!s->n_order)
                return NULL;
        }
        mb = find(s, s->order[s->order_pos++]);
        if (mb && mb != s->members && probeable(mb))
            return mb;
    }
    return NULL;
}

static void probe_start(swim_t *s)
{
    struct member *mb = next_target(s);
    struct probe *p = &s->probe;

    s->next_probe_at = s->now + scaled(s, s->opt.probe_interval_ms);
    if (!mb)
        return;
    memset(p, 0, sizeof(*p));
    p->phase = PROBE_DIRECT;
    p->target = mb->id;
    p->seq = ++s->seq;
    p->timeout_at = s->now + scaled(s, s->opt.probe_timeout_ms);
    p->end_at = s->next_probe_at;
    send_msg(s, SWIM_PING, mb->id, p->seq, mb->id);
}

/* Up to k random ALIVE members other than the target. */
static void probe_indirect(swim_t *s)
{
    struct probe *p = &s->probe;
    size_t n = 0;

    if (grow(&s->scratch, &s->scratch_cap, s->n, sizeof(*s->scratch)) < 0)
        return;
    for (size_t i = 1; i < s->n; i++)
        if (s->members[i].state == SWIM_ALIVE && s->members[i].id != p->target)
            s->scratch[n++] = (uint32_t)i;
    while (n && p->n_asked < s->opt.indirect_probes) {
        size_t j = rand_below(s, n);
        uint64_t id = s->members[s->scratch[j]].id;

        s->scratch[j] = s->scratch[--n];
        p->asked[p->n_asked++] = id;
        send_msg(s, SWIM_PING_REQ, id, p->seq, p->target);
    }
}

static void probe_failed(swim_t *s)
{
    struct probe *p = &s->probe;
    struct member *mb = find(s, p->target);
    uint32_t nacks = 0;

    for (uint32_t i = 0; i < p->n_asked; i++)
        nacks += p->nacked[i];
    /* Missing NACKs mean our own links or CPU are the problem. */
    lhm_add(s, p->n_asked ? (int)(p->n_asked - nacks) : 1);
    p->phase = PROBE_IDLE;
    if (!mb || !probeable(mb) || s->left)
        return;
    if (mb->state == SWIM_SUSPECT)
        confirm(s, mb, s->opt.id);
    else
        set_state(s, mb, SWIM_SUSPECT, mb->inc, s->opt.id);
}

static void probe_advance(swim_t *s)
{
    struct probe *p = &s->probe;

    if (p->phase == PROBE_DIRECT && s->now >= p->timeout_at) {
        uint64_t rest = s->opt.probe_interval_ms - s->opt.probe_timeout_ms;

        /* A late tick (starved CPU) still gives the helpers their time. */
        probe_indirect(s);
        p->phase = PROBE_INDIRECT;
        if (p->end_at < s->now + scaled(s, (uint32_t)rest))
            p->end_at = s->now + scaled(s, (uint32_t)rest);
    }
    if (p->phase == PROBE_INDIRECT && s->now >= p->end_at)
        probe_failed(s);
    if (p->phase == PROBE_IDLE && s->now >= s->next_probe_at)
        probe_start(s);
}

static void relays_expire(swim_t *s)
{
    size_t i = 0;

    while (i < s->n_relays) {
        struct relay *r = &s->relays[i];

        if (s->now < r->deadline) {
            i++;
            continue;
        }
        send_msg(s, SWIM_NACK, r->origin, r->origin_seq, r->target);
        *r = s->relays[--s->n_relays];
    }
}

static void suspicions_expire(swim_t *s)
{
    for (size_t i = s->n_suspects; i-- > 0;) {
        struct member *mb = find(s, s->suspects[i]);

        if (!mb || mb->state != SWIM_SUSPECT) {
            s->suspects[i] = s->suspects[--s->n_suspects];
            continue;
        }
        if (s->now >= mb->susp_start + suspicion_timeout(mb))
            set_state(s, mb, SWIM_DEAD, mb->inc, 0);
    }
}

/* Push-pull with anyone not LEFT, DEAD included: that is the only
 * traffic that crosses a healed partition.
 */
static void sync_maybe(swim_t *s)
{
    size_t n = 0;

    if (s->now < s->next_sync_at)
        return;
    s->next_sync_at =
        s->now + (uint64_t)s->opt.sync_periods * s->opt.probe_interval_ms;
    if (grow(&s->scratch, &s->scratch_cap, s->n, sizeof(*s->scratch)) < 0)
        return;
    for (size_t i = 1; i < s->n; i++)
        if (s->members[i].state != SWIM_LEFT)
            s->scratch[n++] = (uint32_t)i;
    if (n)
        send_sync(s, s->members[s->scratch[rand_below(s, n)]].id, false);
}

/* --- public ----------------------------------------------------------- */

static uint32_t or_default(uint32_t v, uint32_t def)
{
    return v ? v : def;
}

swim_t *swim_new(const struct swim_options *opt)
{
    swim_t *s;

    if (!opt || !opt->id || !opt->rand) {
        errno = EINVAL;
        return NULL;
    }
    s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->opt = *opt;
    s->opt.probe_interval_ms = or_default(opt->probe_interval_ms, 1000);
    s->opt.probe_timeout_ms = or_default(opt->probe_timeout_ms, 500);
    s->opt.indirect_probes = or_default(opt->indirect_probes, 3);
    s->opt.suspicion_mult = or_default(opt->suspicion_mult, 4);
    s->opt.suspicion_max_mult = or_default(opt->suspicion_max_mult, 6);
    s->opt.max_lhm = or_default(opt->max_lhm, 8);
    s->opt.max_piggyback = or_default(opt->max_piggyback, 8);
    s->opt.retransmit_mult = or_default(opt->retransmit_mult, 4);
    s->opt.sync_periods = or_default(opt->sync_periods, 30);
    s->opt.gossip_interval_ms = or_default(opt->gossip_interval_ms, 200);
    s->opt.gossip_fanout = or_default(opt->gossip_fanout, 3);
    if (s->opt.probe_timeout_ms >= s->opt.probe_interval_ms ||
        s->opt.max_piggyback > SWIM_MAX_PIGGYBACK ||
        s->opt.indirect_probes > MAX_INDIRECT ||
        s->opt.gossip_fanout > MAX_INDIRECT) {
        free(s);
        errno = EINVAL;
        return NULL;
    }
    if (grow(&s->members, &s->cap, 1, sizeof(*s->members)) < 0 ||
        index_grow(s, 1) < 0) {
        free(s->members);
        free(s);
        errno = ENOMEM;
        return NULL;
    }
    s->members[0] = (struct member){
        .id = opt->id, .state = SWIM_ALIVE, .inc = opt->incarnation};
    s->n = 1;
    s->count[SWIM_ALIVE] = 1;
    index_fill(s);
    /* a restarted member announces its new incarnation, so that those
     * that hold it DEAD from before take it back at once
     */
    if (opt->incarnation > 0)
        enqueue(s, &s->members[0]);
    return s;
}

void swim_destroy(swim_t **sp)
{
    swim_t *s;

    if (!sp || !*sp)
        return;
    s = *sp;
    swim_outbox_clear(s);
    free(s->out);
    free(s->ev);
    free(s->members);
    free(s->index);
    free(s->order);
    free(s->queue);
    free(s->suspects);
    free(s->scratch);
    free(s);
    *sp = NULL;
}

int swim_add(swim_t *s, uint64_t id)
{
    if (!id) {
        errno = EINVAL;
        return -1;
    }
    if (find(s, id))
        return 0;
    if (grow(&s->members, &s->cap, s->n + 1, sizeof(*s->members)) < 0) {
        errno = ENOMEM;
        return -1;
    }
    if (index_grow(s, s->n + 1) < 0) {
        errno = ENOMEM;
        return -1;
    }
    s->members[s->n] = (struct member){.id = id, .state = SWIM_ALIVE};
    index_put(s, s->n++);
    s->count[SWIM_ALIVE]++;
    return 0;
}

int swim_remove(swim_t *s, uint64_t id)
{
    struct member *mb = find(s, id);
    size_t i;

    if (!mb) {
        errno = ENOENT;
        return -1;
    }
    if (mb == s->members) {
        errno = EINVAL;
        return -1;
    }
    i = (size_t)(mb - s->members);
    s->count[mb->state]--;
    if (s->probe.phase != PROBE_IDLE && s->probe.target == id)
        s->probe.phase = PROBE_IDLE;
    s->members[i] = s->members[--s->n];
    index_fill(s); /* smaller: the table needs no new room */
    return 0;
}

void swim_tick(swim_t *s, uint64_t now_ms)
{
    if (now_ms > s->now)
        s->now = now_ms;
    if (!s->started) {
        /* Spread the members' periods and push-pulls apart. */
        s->started = true;
        s->next_probe_at = s->now + rand_below(s, s->opt.probe_interval_ms);
        s->next_sync_at = s->now + rand_below(s, (uint64_t)s->opt.sync_periods *
                                                     s->opt.probe_interval_ms);
        s->next_gossip_at = s->now + rand_below(s, s->opt.gossip_interval_ms);
    }
    relays_expire(s);
    suspicions_expire(s);
    /* A member that left keeps probing (it accuses nobody) so that its
     * LEFT rides on its PINGs.
     */
    probe_advance(s);
    gossip_maybe(s); /* a LEFT member too: it spreads its leave */
    if (!s->left)
        sync_maybe(s);
}

static void on_ping_req(swim_t *s, uint64_t from, const struct swim_msg *m)
{
    struct member *t = find(s, m->target);
    struct relay *r;

    if (!t || t == s->members)
        return;
    if (s->n_relays == MAX_RELAYS) /* the oldest is the least useful */
        s->relays[0] = s->relays[--s->n_relays];
    r = &s->relays[s->n_relays++];
    r->origin = from;
    r->origin_seq = m->seq;
    r->target = t->id;
    r->seq = ++s->seq;
    r->deadline =
        s->now + (uint64_t)s->opt.probe_timeout_ms * RELAY_WAIT_PCT / 100;
    send_msg(s, SWIM_PING, t->id, r->seq, t->id);
}

static void on_ack(swim_t *s, uint64_t from, const struct swim_msg *m)
{
    struct probe *p = &s->probe;

    if (p->phase != PROBE_IDLE && m->seq == p->seq) {
        if (p->phase == PROBE_DIRECT) /* in time: we are healthy */
            lhm_add(s, -1);
        p->phase = PROBE_IDLE;
        return;
    }
    for (size_t i = 0; i < s->n_relays; i++) {
        struct relay *r = &s->relays[i];

        if (r->seq == m->seq && r->target == from) {
            send_msg(s, SWIM_ACK, r->origin, r->origin_seq, r->target);
            *r = s->relays[--s->n_relays];
            return;
        }
    }
}

static void on_nack(swim_t *s, uint64_t from, const struct swim_msg *m)
{
    struct probe *p = &s->probe;

    if (p->phase == PROBE_IDLE || m->seq != p->seq)
        return;
    for (uint32_t i = 0; i < p->n_asked; i++)
        if (p->asked[i] == from)
            p->nacked[i] = true;
}

/* Does the pinger hold an older state of us (a suspicion we already
 * refuted whose gossip it missed)?  Then our ACK tells it.
 */
static bool stale_about_self(swim_t *s, const struct swim_msg *m)
{
    for (uint32_t i = 0; i < m->n_updates; i++)
        if (m->updates[i].id == s->opt.id &&
            (m->updates[i].incarnation < s->members[0].inc ||
             m->updates[i].state != s->members[0].state))
            return true;
    return false;
}

void swim_step(swim_t *s, uint64_t from, const struct swim_msg *m)
{
    if (!m || from == s->opt.id || !find(s, from) ||
        m->n_updates > SWIM_MAX_PIGGYBACK || (m->n_sync && !m->sync))
        return;
    for (uint32_t i = 0; i < m->n_updates; i++)
        apply(s, from, &m->updates[i], false);
    switch (m->type) {
    case SWIM_PING:
        if (m->target == s->opt.id || m->target == 0)
            send_prio(s, SWIM_ACK, from, m->seq, s->opt.id,
                      stale_about_self(s, m) ? s->opt.id : 0);
        break;
    case SWIM_ACK:
        on_ack(s, from, m);
        break;
    case SWIM_PING_REQ:
        on_ping_req(s, from, m);
        break;
    case SWIM_NACK:
        on_nack(s, from, m);
        break;
    case SWIM_SYNC:
        for (uint32_t i = 0; i < m->n_sync; i++)
            apply(s, from, &m->sync[i], true);
        if (!m->reply)
            send_sync(s, from, true);
        break;
    case SWIM_GOSSIP: /* its updates are all it carries */
        break;
    }
}

void swim_leave(swim_t *s)
{
    struct member *self = &s->members[0];
    size_t n = 0;

    if (s->left)
        return;
    s->left = true;
    s->count[self->state]--;
    s->count[SWIM_LEFT]++;
    self->state = SWIM_LEFT;
    enqueue(s, self);
    /* Tell k members now rather than at the next period. */
    if (grow(&s->scratch, &s->scratch_cap, s->n, sizeof(*s->scratch)) < 0)
        return;
    for (size_t i = 1; i < s->n; i++)
        if (s->members[i].state == SWIM_ALIVE)
            s->scratch[n++] = (uint32_t)i;
    for (uint32_t k = 0; n && k < s->opt.indirect_probes; k++) {
        size_t j = rand_below(s, n);
        uint64_t id = s->members[s->scratch[j]].id;

        s->scratch[j] = s->scratch[--n];
        send_msg(s, SWIM_PING, id, ++s->seq, id);
    }
}

size_t swim_outbox(swim_t *s, const struct swim_msg **msgs)
{
    *msgs = s->out;
    return s->n_out;
}

void swim_outbox_clear(swim_t *s)
{
    for (size_t i = 0; i < s->n_out; i++)
        free((void *)s->out[i].sync);
    s->n_out = 0;
}

size_t swim_events(swim_t *s, const struct swim_event **ev)
{
    *ev = s->ev;
    return s->n_ev;
}

void swim_events_clear(swim_t *s)
{
    s->n_ev = 0;
}

int swim_member(swim_t *s, uint64_t id, enum swim_state *state,
                uint64_t *incarnation)
{
    struct member *mb = find(s, id);

    if (!mb) {
        errno = ENOENT;
        return -1;
    }
    if (state)
        *state = mb->state;
    if (incarnation)
        *incarnation = mb->inc;
    return 0;
}

uint32_t swim_health(swim_t *s)
{
    return s->lhm;
}

uint32_t swim_count(swim_t *s, enum swim_state state)
{
    return (unsigned)state <= SWIM_LEFT ? s->count[state] : 0;
}

uint32_t swim_size(swim_t *s)
{
    return (uint32_t)s->n;
}

uint64_t swim_incarnation(swim_t *s)
{
    return s->members[0].inc;
}

const char *swim_state_name(enum swim_state state)
{
    switch (state) {
    case SWIM_ALIVE:
        return "alive";
    case SWIM_SUSPECT:
        return "suspect";
    case SWIM_DEAD:
        return "dead";
    case SWIM_LEFT:
        return "left";
    }
    return "?";
}
