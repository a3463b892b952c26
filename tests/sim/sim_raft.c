/* sim_raft.c - Raft and the controller lease on a simulated network
 *
 * One process runs 3 or 5 voters and 1-2 learners on virtual time in
 * microseconds.  Each peer ticks Raft every 0.1 s (AGREE_TICK) or a
 * little later, never sooner, on its own phase; messages take a random
 * time, sometimes seconds.  The network drops, delays, duplicates and
 * reorders messages and splits the peers into partitions that heal;
 * peers crash and restart from their simulated disk, which is written
 * from raft_ready() in the documented order, and pause (SIGSTOP: no
 * ticks, no messages, which queue for them until they resume).
 * Everything random comes from one splitmix64 stream seeded by the seed,
 * so a failing seed replays exactly (--replay SEED).
 *
 * Where the options are peerd's (pre-vote and check-quorum on), each
 * peer also does what node/agree.c and node/place.c do for the
 * controller: stamps its APPENDs with its send time, times the lease by
 * the stamps echoed in APPEND_RESP (node/lease.c), runs "slurmctld"
 * while it holds the lease and hands the fence its lease end at every
 * event it handles; a slurmctld lives until that fence deadline, or
 * until it exits after peerd stopped it, or the peer crashes (the fence
 * kills it when peerd's pipe closes).  A paused peer renews nothing, and
 * its slurmctld lives on until the fence deadline.  Handovers stop
 * slurmctld first, then transfer leadership and revoke the lease.
 *
 * Checked after every event: at most one peer has a live slurmctld; at
 * most one leader per term over the whole run; a new leader holds every
 * entry applied in a lower term (leader completeness); an index is only ever
 * applied with the same entry (committed entries are never lost or
 * changed); log matching, through a map (index, term) -> (entry, term
 * of the previous entry) that every persisted entry must agree with; the
 * disk is written without gaps and never loses an applied or committed
 * entry.  After the chaos: liveness (a leader and a commit on every peer
 * within a bound), a leadership transfer (and one that times out), a
 * leader crash (failover and takeover of the controller within a bound)
 * and a membership change (add a learner, promote it, remove a voter,
 * who then never campaigns); with --steady, a cluster in service.
 *
 * Usage: sim_raft [--seeds N] [--first S] [--ticks T] [--steady T]
 *                 [--replay SEED] [--verbose] [--unsafe-wait]
 *                 [--unsafe-recv] [--probe restart|transfer]
 * The --unsafe flags break the lease on purpose (no LEASE_WAIT; answers
 * timed when they arrive, not by their stamp), to show that the check
 * finds the overlap; --probe runs one known hazard (tests/sim/README.md).
 * TAP: one line per property per group of 100 seeds, one more per
 * failing seed; "# stats" and "# sums" comment lines feed
 * tests/bench/raft-sim.sh.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/lease.h"
#include "node/raft.h"
#include "tests/sim/simlib.h"

#define MAX_NODES 8
#define ELECTION 10    /* ticks, AGREE_ELECTION_TICKS */
#define TICK_US 100000 /* a tick, AGREE_TICK, in microseconds */
#define GROUP 100
#define HEAL_BOUND (40 * ELECTION) /* steps of one tick */
#define SCENARIO_BOUND (40 * ELECTION)
#define CONF_BUF (5 + 9 * RAFT_MAX_PEERS + 1)
#define HANDOVER_TIMEOUT 20.0 /* s, node/place.c */
#define STOP_GRACE 2.0        /* s, LEASE_LOSS_GRACE in node/place.c */
#define SAVE_MAX 1.0          /* s slurmctld takes to save and exit */

/* --- entry hashing ---------------------------------------------------- */

static uint64_t hash_entry(uint8_t type, const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ULL ^ type;

    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

/* --- simulated peers and network -------------------------------------- */

struct disk {
    struct raft_hard_state hs;
    struct wire_entry *log;
    size_t n, cap;
    uint64_t applied;
};

/* The slurmctld a peer started: live while on and now < fence and now <
 * exit (node/place.c, node/fence.c).
 */
struct ctl {
    bool on;
    double start; /* when it was started */
    double fence; /* the last deadline handed to the fence */
    double exit;  /* when it exits after peerd stopped it (INFINITY) */
    uint64_t term;
};

/* node/place.c's handover: slurmctld stops, then leadership moves. */
struct handover {
    bool active, transferred;
    uint64_t to;
    double since;
};

struct node {
    uint64_t id;
    bool exists; /* part of the run (an added peer exists later) */
    raft_t *r;   /* NULL while crashed */
    struct disk disk;
    struct raft_conf boot; /* configuration it was started with */
    struct rng rng;
    int group;
    uint64_t restart_at;   /* step */
    uint64_t next_tick;    /* us */
    uint64_t paused_until; /* us; paused while now < paused_until */
    enum raft_role role;
    uint64_t term; /* as last seen, for the trace */
    struct lease lease;
    struct ctl ctl;
    struct handover ho;
    bool leaving; /* about to be removed: runs no slurmctld */
};

struct packet {
    uint64_t at, seq; /* delivery time (us), then sending order */
    uint64_t sent;
    uint64_t from, to;
    enum wire_type type;
    struct wire_raft m;
};

struct slot {
    uint64_t index, term; /* term 0 = empty */
    uint64_t hash, prev_term;
};

struct applied {
    uint64_t term, hash;
    uint64_t by_term; /* term of the peer that applied it first */
};

enum phase {
    PH_CHAOS,
    PH_CALM,   /* after healing: the scenarios */
    PH_STEADY, /* in service: a fault a minute */
    N_PHASES
};

struct figure {
    uint64_t n;
    double sum, max;
};

struct stats {
    uint64_t elections, commits, proposals, msgs, dropped;
    uint64_t pauses, handovers, ctl_starts, ctl_violations;
    struct figure heal, failover, takeover, transfer;
    struct figure lost[N_PHASES]; /* controller crash -> next controller */
    double down[N_PHASES], span[N_PHASES]; /* s without a live slurmctld */
};

struct sim {
    uint64_t seed;
    struct rng rng;
    bool verbose;
    uint64_t now;  /* virtual time, us */
    uint64_t step; /* ticks of TICK_US done: sim_step() count */
    int n;         /* nodes[0..n) */
    struct node nodes[MAX_NODES];
    struct raft_options opt;
    /* network: a min-heap on (at, seq) */
    struct packet *pk;
    size_t n_pk, cap_pk;
    uint64_t pseq;
    unsigned drop, dup;
    uint64_t delay_min, delay_max; /* us, one way */
    unsigned long_pm;              /* messages delayed by seconds, per mille */
    bool chaos;
    bool cut[MAX_NODES][MAX_NODES]; /* links down, both ways */
    /* chaos profile, per tick in per mille */
    unsigned split_pm, crash_pm, lcrash_pm, down_max;
    unsigned commit_crash_pm; /* a leader dies just after committing */
    unsigned pause_pm, lpause_pm;
    unsigned propose_pct; /* per tick, to each leader */
    /* the controller */
    bool ctl_model; /* peerd's options: the lease is modelled, checked */
    bool unsafe_wait, unsafe_recv;
    enum phase phase;
    uint64_t lost_at; /* us: the controller crashed, none took over yet */
    /* checks */
    uint64_t *term_leader;
    size_t cap_terms;
    struct applied *done; /* done[i]: entry applied at index i */
    size_t cap_done;
    uint64_t max_done;
    struct slot *map;
    size_t cap_map, n_map;
    char fail[768];
    bool safety;    /* the failure is a broken invariant */
    bool ctl_bad;   /* ... two live slurmctld */
    bool byzantine; /* fuzzing: garbage may break the Raft invariants */
    uint64_t hold;  /* scripted tests: entries past this index are lost */
    uint64_t seq;
    struct stats *st;
};

static double secs(uint64_t us)
{
    return (double)us / 1e6;
}

static void figure_add(struct figure *f, double x)
{
    f->n++;
    f->sum += x;
    if (x > f->max)
        f->max = x;
}

static bool failed(const struct sim *s)
{
    return s->fail[0] != 0;
}

static void failf(struct sim *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void failf(struct sim *s, const char *fmt, ...)
{
    va_list ap;
    int k;

    if (failed(s))
        return;
    k = snprintf(s->fail, sizeof(s->fail), "seed %" PRIu64 " t=%.6f: ", s->seed,
                 secs(s->now));
    va_start(ap, fmt);
    vsnprintf(s->fail + k, sizeof(s->fail) - (size_t)k, fmt, ap);
    va_end(ap);
}

/* A broken invariant, whatever the phase. */
static void violation(struct sim *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void violation(struct sim *s, const char *fmt, ...)
{
    char buf[600];
    va_list ap;

    if (failed(s))
        return;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    s->safety = true;
    failf(s, "%s", buf);
}

static void trace(struct sim *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void trace(struct sim *s, const char *fmt, ...)
{
    va_list ap;

    if (!s->verbose)
        return;
    printf("# t=%.6f ", secs(s->now));
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
}

static void *xrealloc(void *p, size_t n)
{
    if (!(p = realloc(p, n ? n : 1))) {
        perror("sim_raft");
        exit(99);
    }
    return p;
}

static void entry_copy(struct wire_entry *d, const struct wire_entry *e)
{
    *d = *e;
    d->data = NULL;
    if (e->len) {
        d->data = xrealloc(NULL, e->len);
        memcpy(d->data, e->data, e->len);
    }
}

static struct node *node_of(struct sim *s, uint64_t id)
{
    if (id == 0 || id > (uint64_t)s->n || !s->nodes[id - 1].exists)
        return NULL;
    return &s->nodes[id - 1];
}

static bool is_up(const struct node *nd)
{
    return nd && nd->exists && nd->r;
}

static bool is_paused(const struct sim *s, const struct node *nd)
{
    return s->now < nd->paused_until;
}

/* Up and not paused: it can take a call now. */
static bool is_awake(const struct sim *s, const struct node *nd)
{
    return is_up(nd) && !is_paused(s, nd);
}

/* --- invariant bookkeeping -------------------------------------------- */

static struct slot *map_slot(struct sim *s, uint64_t index, uint64_t term)
{
    size_t mask = s->cap_map - 1;
    size_t h = (size_t)((index * 0x9e3779b97f4a7c15ULL) ^
                        (term * 0xff51afd7ed558ccdULL));

    for (size_t i = h & mask;; i = (i + 1) & mask)
        if (s->map[i].term == 0 ||
            (s->map[i].index == index && s->map[i].term == term))
            return &s->map[i];
}

static void map_grow(struct sim *s)
{
    struct slot *old = s->map;
    size_t n = s->cap_map;

    s->cap_map = n ? 2 * n : 1024;
    s->map = calloc(s->cap_map, sizeof(*s->map));
    if (!s->map)
        exit(99);
    for (size_t i = 0; i < n; i++)
        if (old[i].term)
            *map_slot(s, old[i].index, old[i].term) = old[i];
    free(old);
}

/* Log matching: an (index, term) names one entry, and one predecessor
 * term; by induction two logs sharing it agree on everything before.
 */
static void check_matching(struct sim *s, struct node *nd,
                           const struct wire_entry *e, uint64_t prev_term)
{
    uint64_t h = hash_entry(e->type, e->data, e->len);
    struct slot *sl;

    if (s->byzantine)
        return;
    if (2 * (s->n_map + 1) > s->cap_map)
        map_grow(s);
    sl = map_slot(s, e->index, e->term);
    if (sl->term == 0) {
        *sl = (struct slot){e->index, e->term, h, prev_term};
        s->n_map++;
    } else if (sl->hash != h || sl->prev_term != prev_term) {
        violation(s,
                  "log matching: node %" PRIu64 " has a different entry or "
                  "history at index %" PRIu64 " term %" PRIu64,
                  nd->id, e->index, e->term);
    }
}

static void check_applied(struct sim *s, struct node *nd,
                          const struct wire_entry *e)
{
    uint64_t h = hash_entry(e->type, e->data, e->len);

    if (s->byzantine)
        return;
    if (e->index >= s->cap_done) {
        size_t cap = s->cap_done ? s->cap_done : 1024;

        while (cap <= e->index)
            cap *= 2;
        s->done = xrealloc(s->done, cap * sizeof(*s->done));
        memset(s->done + s->cap_done, 0,
               (cap - s->cap_done) * sizeof(*s->done));
        s->cap_done = cap;
    }
    if (s->done[e->index].term == 0) {
        s->done[e->index] = (struct applied){e->term, h, raft_term(nd->r)};
        if (e->index > s->max_done)
            s->max_done = e->index;
        if (e->type >= RAFT_ENTRY_USER)
            s->st->commits++;
    } else if (s->done[e->index].term != e->term ||
               s->done[e->index].hash != h) {
        violation(s,
                  "committed entry changed: node %" PRIu64
                  " applies index %" PRIu64 " term %" PRIu64
                  ", applied before with term %" PRIu64,
                  nd->id, e->index, e->term, s->done[e->index].term);
    }
}

/* A new leader must hold every entry anyone applied (leader completeness)
 * in an earlier term: the peer that applied it first learnt of its commit
 * in its term or before.  (A candidate paused with its votes can win a
 * term long after later terms committed more.)
 */
static void check_completeness(struct sim *s, struct node *nd)
{
    for (uint64_t i = 1; i <= s->max_done; i++) {
        const struct wire_entry *e = raft_entry(nd->r, i);

        if (s->done[i].by_term >= raft_term(nd->r))
            continue;
        if (!e || e->term != s->done[i].term ||
            hash_entry(e->type, e->data, e->len) != s->done[i].hash) {
            violation(s,
                      "leader %" PRIu64 " of term %" PRIu64 " lacks committed "
                      "entry %" PRIu64,
                      nd->id, raft_term(nd->r), i);
            return;
        }
    }
}

static void check_node(struct sim *s, struct node *nd)
{
    enum raft_role role;
    uint64_t term;

    if (!is_up(nd))
        return;
    role = raft_role(nd->r);
    term = raft_term(nd->r);
    if (role != nd->role || term != nd->term)
        trace(s, "node %" PRIu64 " %s term %" PRIu64, nd->id,
              raft_role_name(role), term);
    nd->role = role;
    nd->term = term;
    if (role != RAFT_LEADER || s->byzantine)
        return;
    if (term >= s->cap_terms) {
        size_t cap = s->cap_terms ? s->cap_terms : 256;

        while (cap <= term)
            cap *= 2;
        s->term_leader = xrealloc(s->term_leader, cap * sizeof(uint64_t));
        memset(s->term_leader + s->cap_terms, 0,
               (cap - s->cap_terms) * sizeof(uint64_t));
        s->cap_terms = cap;
    }
    if (s->term_leader[term] == 0) {
        s->term_leader[term] = nd->id;
        s->st->elections++;
        check_completeness(s, nd);
    } else if (s->term_leader[term] != nd->id) {
        violation(s,
                  "two leaders in term %" PRIu64 ": %" PRIu64 " and %" PRIu64,
                  term, s->term_leader[term], nd->id);
    }
}

/* --- the controller (node/agree.c, node/place.c) ---------------------- */

static bool ctl_live(const struct node *nd, double t)
{
    return nd->ctl.on && t < nd->ctl.fence && t < nd->ctl.exit;
}

/* At most one live slurmctld, at every event. */
static void ctl_check(struct sim *s)
{
    double t = secs(s->now);
    struct node *a = NULL;

    if (!s->ctl_model || failed(s))
        return;
    for (int i = 0; i < s->n; i++) {
        struct node *b = &s->nodes[i];

        if (!b->exists || !ctl_live(b, t))
            continue;
        if (!a) {
            a = b;
            continue;
        }
        s->ctl_bad = true;
        s->st->ctl_violations++;
        violation(s,
                  "two live slurmctld: node %" PRIu64 " (term %" PRIu64
                  ", started %.6f, fence %.6f%s) and node %" PRIu64
                  " (term %" PRIu64 ", started %.6f, fence %.6f%s)",
                  a->id, a->ctl.term, a->ctl.start, a->ctl.fence,
                  is_paused(s, a) ? ", paused" : "", b->id, b->ctl.term,
                  b->ctl.start, b->ctl.fence,
                  is_paused(s, b) ? ", paused" : "");
        return;
    }
}

/* Move the clock to t, counting the time no slurmctld was live. */
static void sim_advance(struct sim *s, uint64_t t)
{
    double from = secs(s->now), to = secs(t), best = 0;

    if (t < s->now) {
        fprintf(stderr, "sim_raft: time goes back\n");
        abort();
    }
    if (s->ctl_model && t > s->now) {
        for (int i = 0; i < s->n; i++) {
            const struct ctl *c = &s->nodes[i].ctl;
            double a = c->start > from ? c->start : from;
            double b = fmin(fmin(c->fence, c->exit), to);

            if (c->on && b - a > best)
                best = b - a;
        }
        s->st->down[s->phase] += to - from - best;
        s->st->span[s->phase] += to - from;
    }
    s->now = t;
}

/* agree.c's lease_sync: a new term starts a new lease; a leader whose
 * handover did not happen steps down (it holds no lease again in that
 * term).
 */
static void lease_sync(struct sim *s, struct node *nd)
{
    if (raft_role(nd->r) == RAFT_LEADER) {
        if (nd->lease.term == raft_term(nd->r) && nd->lease.revoked &&
            raft_transferee(nd->r) == 0) {
            raft_step_down(nd->r);
            nd->lease.term = 0;
            return;
        }
        if (nd->lease.term != raft_term(nd->r)) {
            lease_reset(&nd->lease, raft_term(nd->r), secs(s->now));
            if (s->unsafe_wait)
                nd->lease.since -= LEASE_WAIT;
        }
    } else if (nd->lease.term != 0) {
        nd->lease.term = 0;
    }
}

static bool lease_is_held(struct sim *s, struct node *nd)
{
    return raft_role(nd->r) == RAFT_LEADER &&
           lease_held(&nd->lease, raft_conf(nd->r), nd->id, secs(s->now));
}

static void process_ready(struct sim *s, struct node *nd);

/* agree_transfer: leadership to `to`, the lease given up. */
static int handover_transfer(struct sim *s, struct node *nd, uint64_t to)
{
    if (raft_transfer(nd->r, to) < 0)
        return -1;
    nd->lease.revoked = true;
    nd->ho.transferred = true;
    s->st->handovers++;
    trace(s, "node %" PRIu64 " transfers to %" PRIu64, nd->id, to);
    process_ready(s, nd);
    return 0;
}

static void handover_begin(struct sim *s, struct node *nd, uint64_t to)
{
    nd->ho = (struct handover){true, false, to, secs(s->now)};
    trace(s, "node %" PRIu64 " hands over to %" PRIu64, nd->id, to);
}

/* place.c's handover_tick: transfer once slurmctld is gone. */
static void handover_tick(struct sim *s, struct node *nd)
{
    struct handover *h = &nd->ho;

    if (!h->active)
        return;
    if (raft_role(nd->r) != RAFT_LEADER ||
        secs(s->now) - h->since > HANDOVER_TIMEOUT) {
        h->active = false;
        return;
    }
    if (nd->ctl.on || h->transferred)
        return;
    if (handover_transfer(s, nd, h->to) < 0)
        h->active = false;
}

/* place_tick, after every event the peer handles: run slurmctld while
 * the lease is held and renew the fence; else stop it.
 */
static void ctl_update(struct sim *s, struct node *nd)
{
    double now = secs(s->now);
    bool want;

    if (!s->ctl_model || !is_awake(s, nd) || failed(s))
        return;
    lease_sync(s, nd);
    if (nd->ctl.on && !ctl_live(nd, now)) {
        trace(s, "node %" PRIu64 " slurmctld %s", nd->id,
              now >= nd->ctl.exit ? "exited" : "killed by the fence");
        nd->ctl.on = false;
    }
    handover_tick(s, nd);
    want = !nd->ho.active && !nd->leaving && lease_is_held(s, nd);
    if (want && !nd->ctl.on) {
        nd->ctl = (struct ctl){true, now, 0, INFINITY, raft_term(nd->r)};
        s->st->ctl_starts++;
        trace(s, "node %" PRIu64 " starts slurmctld (term %" PRIu64 ")", nd->id,
              nd->ctl.term);
        if (s->lost_at) {
            figure_add(&s->st->lost[s->phase], secs(s->now - s->lost_at));
            s->lost_at = 0;
        }
    }
    if (want) {
        nd->ctl.fence = lease_until(&nd->lease, raft_conf(nd->r), nd->id, now);
    } else if (nd->ctl.on && isinf(nd->ctl.exit)) {
        nd->ctl.exit = now + (nd->ho.active ? SAVE_MAX : STOP_GRACE) *
                                 (double)rng_below(&s->rng, 1001) / 1000.0;
        trace(s, "node %" PRIu64 " stops slurmctld: exits by %.6f, fence %.6f",
              nd->id, nd->ctl.exit, nd->ctl.fence);
    }
    ctl_check(s);
}

/* --- network ---------------------------------------------------------- */

static bool pk_before(const struct packet *a, const struct packet *b)
{
    return a->at < b->at || (a->at == b->at && a->seq < b->seq);
}

static void heap_push(struct sim *s, const struct packet *p)
{
    size_t i;

    if (s->n_pk == s->cap_pk) {
        s->cap_pk = s->cap_pk ? 2 * s->cap_pk : 256;
        s->pk = xrealloc(s->pk, s->cap_pk * sizeof(*s->pk));
    }
    for (i = s->n_pk++; i > 0 && pk_before(p, &s->pk[(i - 1) / 2]);
         i = (i - 1) / 2)
        s->pk[i] = s->pk[(i - 1) / 2];
    s->pk[i] = *p;
}

static void heap_pop(struct sim *s, struct packet *out)
{
    struct packet last = s->pk[--s->n_pk];
    size_t i = 0;

    *out = s->pk[0];
    for (;;) {
        size_t c = 2 * i + 1;

        if (c >= s->n_pk)
            break;
        if (c + 1 < s->n_pk && pk_before(&s->pk[c + 1], &s->pk[c]))
            c++;
        if (!pk_before(&s->pk[c], &last))
            break;
        s->pk[i] = s->pk[c];
        i = c;
    }
    if (s->n_pk)
        s->pk[i] = last;
}

static uint64_t net_delay(struct sim *s)
{
    uint64_t d = s->delay_min + rng_below(&s->rng, s->delay_max + 1);

    if (s->chaos && rng_below(&s->rng, 1000) < s->long_pm)
        d += 500000 + rng_below(&s->rng, 4500001);
    return d;
}

static void net_push(struct sim *s, uint64_t from, enum wire_type type,
                     const struct wire_raft *m)
{
    struct packet p;

    p.at = s->now + net_delay(s);
    p.sent = s->now;
    p.seq = ++s->pseq;
    p.from = from;
    p.to = m->to;
    p.type = type;
    p.m = *m;
    p.m.entries = NULL;
    if (m->n_entries) {
        p.m.entries = xrealloc(NULL, m->n_entries * sizeof(*m->entries));
        for (uint32_t i = 0; i < m->n_entries; i++)
            entry_copy(&p.m.entries[i], &m->entries[i]);
    }
    heap_push(s, &p);
}

static void packet_free(struct packet *p)
{
    for (uint32_t i = 0; i < p->m.n_entries; i++)
        free(p->m.entries[i].data);
    free(p->m.entries);
}

/* agree.c's send_raft: an APPEND carries its send time as its stamp. */
static void net_send(struct sim *s, uint64_t from, enum wire_type type,
                     const struct wire_raft *m)
{
    size_t bytes = 13 + 6 * 8 + 1 + 4; /* as proto/wire.c encodes it */
    struct wire_raft c = *m;

    s->st->msgs++;
    for (uint32_t i = 0; i < m->n_entries; i++)
        bytes += 21 + (size_t)m->entries[i].len;
    if (bytes > WIRE_MAX_FRAME || m->n_entries > WIRE_MAX_ENTRIES ||
        (m->n_entries && type != WIRE_APPEND))
        violation(s, "node %" PRIu64 " sends a message no frame can carry",
                  from);
    /* A peer that is in a configuration but not (yet) in the run. */
    if (!node_of(s, m->to) || rng_pct(&s->rng, s->drop)) {
        s->st->dropped++;
        return;
    }
    if (type == WIRE_APPEND)
        c.hint = s->now;
    net_push(s, from, type, &c);
    if (rng_pct(&s->rng, s->dup))
        net_push(s, from, type, &c);
}

/* --- one peer: disk, Ready, crash and restart ------------------------- */

static void disk_truncate(struct disk *d, uint64_t keep)
{
    while (d->n > keep)
        free(d->log[--d->n].data);
}

/* Persist, send, apply: the order struct raft_ready documents. */
static void process_ready(struct sim *s, struct node *nd)
{
    struct raft_ready rd;
    struct disk *d = &nd->disk;

    if (s->ctl_model)
        lease_sync(s, nd);
    while (!failed(s) && raft_has_ready(nd->r)) {
        raft_ready(nd->r, &rd);
        if (rd.hard_state_changed) {
            if (rd.hs.term < d->hs.term ||
                (rd.hs.term == d->hs.term && d->hs.vote &&
                 rd.hs.vote != d->hs.vote))
                violation(s, "node %" PRIu64 " rewrites its term or vote",
                          nd->id);
            d->hs = rd.hs;
        }
        if (rd.n_entries) {
            uint64_t first = rd.entries[0].index;

            if (first == 0 || first > d->n + 1)
                violation(s,
                          "node %" PRIu64 " persists from %" PRIu64
                          " after a log of %zu",
                          nd->id, first, d->n);
            else if (first <= d->applied)
                violation(s,
                          "node %" PRIu64 " overwrites applied entry %" PRIu64,
                          nd->id, first);
            disk_truncate(d, first - 1);
            if (d->n + rd.n_entries > d->cap) {
                d->cap = 2 * (d->n + rd.n_entries);
                d->log = xrealloc(d->log, d->cap * sizeof(*d->log));
            }
            for (size_t i = 0; i < rd.n_entries && !failed(s); i++) {
                const struct wire_entry *e = &rd.entries[i];
                uint64_t pt = d->n ? d->log[d->n - 1].term : 0;

                if (e->index != d->n + 1)
                    violation(s, "node %" PRIu64 " hands out a gap", nd->id);
                check_matching(s, nd, e, pt);
                entry_copy(&d->log[d->n++], e);
            }
        }
        if (d->hs.commit > d->n)
            violation(s, "node %" PRIu64 " commit %" PRIu64 " past its log %zu",
                      nd->id, d->hs.commit, d->n);
        for (size_t i = 0; i < rd.n_msgs; i++)
            net_send(s, nd->id, rd.msg_types[i], &rd.msgs[i]);
        for (size_t i = 0; i < rd.n_committed && !failed(s); i++) {
            const struct wire_entry *e = &rd.committed[i];

            if (e->index != d->applied + 1 || e->index > d->n ||
                d->log[e->index - 1].term != e->term)
                violation(s,
                          "node %" PRIu64 " applies %" PRIu64 " out of order "
                          "or not as persisted",
                          nd->id, e->index);
            check_applied(s, nd, e);
            d->applied = e->index;
        }
        raft_advance(nd->r, &rd);
    }
}

static void node_start(struct sim *s, struct node *nd)
{
    struct raft_options o = s->opt;

    o.id = nd->id;
    o.rand = node_rand;
    o.rand_arg = &nd->rng;
    nd->r = raft_new(&o, &nd->boot, &nd->disk.hs, nd->disk.log, nd->disk.n,
                     nd->disk.applied);
    if (!nd->r)
        failf(s, "raft_new of node %" PRIu64 ": %s", nd->id, strerror(errno));
    nd->role = RAFT_FOLLOWER;
    nd->next_tick = s->now + 1 + rng_below(&s->rng, TICK_US);
    nd->paused_until = 0;
    memset(&nd->lease, 0, sizeof(nd->lease));
    memset(&nd->ctl, 0, sizeof(nd->ctl));
    memset(&nd->ho, 0, sizeof(nd->ho));
}

/* down_for: steps.  Its slurmctld dies with it (the fence kills it when
 * peerd's pipe closes; a host that dies takes it along).
 */
static void node_crash(struct sim *s, struct node *nd, uint64_t down_for)
{
    trace(s, "node %" PRIu64 " crashes for %.1f s%s", nd->id,
          (double)down_for * TICK_US / 1e6,
          ctl_live(nd, secs(s->now)) ? " with slurmctld" : "");
    if (ctl_live(nd, secs(s->now)) && !s->lost_at)
        s->lost_at = s->now;
    raft_destroy(&nd->r);
    nd->ctl.on = false;
    nd->restart_at = s->step + down_for;
}

static void node_restart(struct sim *s, struct node *nd)
{
    trace(s, "node %" PRIu64 " restarts", nd->id);
    node_start(s, nd);
    check_node(s, nd);
}

static void node_add(struct sim *s, const struct raft_conf *boot)
{
    struct node *nd = &s->nodes[s->n];

    memset(nd, 0, sizeof(*nd));
    nd->id = (uint64_t)++s->n;
    nd->exists = true;
    nd->boot = *boot;
    nd->rng.s = s->seed * 0x100000001b3ULL + nd->id;
    node_start(s, nd);
}

static void node_fini(struct node *nd)
{
    raft_destroy(&nd->r);
    disk_truncate(&nd->disk, 0);
    free(nd->disk.log);
}

/* Like SIGSTOP: nothing happens in the peer until `until` (us). */
static void node_pause(struct sim *s, struct node *nd, uint64_t us)
{
    if (!is_awake(s, nd))
        return;
    nd->paused_until = s->now + us;
    if (nd->next_tick < nd->paused_until)
        nd->next_tick = nd->paused_until;
    s->st->pauses++;
    trace(s, "node %" PRIu64 " paused for %.3f s%s", nd->id, secs(us),
          ctl_live(nd, secs(s->now)) ? " with slurmctld" : "");
}

/* --- the clock -------------------------------------------------------- */

static const char *type_name(enum wire_type t)
{
    switch (t) {
    case WIRE_PREVOTE:
        return "PREVOTE";
    case WIRE_PREVOTE_RESP:
        return "PREVOTE_RESP";
    case WIRE_VOTE:
        return "VOTE";
    case WIRE_VOTE_RESP:
        return "VOTE_RESP";
    case WIRE_APPEND:
        return "APPEND";
    case WIRE_APPEND_RESP:
        return "APPEND_RESP";
    case WIRE_TIMEOUT_NOW:
        return "TIMEOUT_NOW";
    default:
        return "?";
    }
}

static void deliver(struct sim *s, struct packet *p)
{
    struct node *from = node_of(s, p->from), *to = node_of(s, p->to);
    uint64_t commit;

    if (!is_up(to) || (s->chaos && (from->group != to->group ||
                                    s->cut[from->id - 1][to->id - 1])))
        return;
    /* Cut, not dropped, so the follower still answers (a shorter APPEND
     * is one the leader could have sent).
     */
    while (s->hold && p->m.n_entries &&
           p->m.entries[p->m.n_entries - 1].index > s->hold)
        free(p->m.entries[--p->m.n_entries].data);
    /* agree_step: an answer of the lease's term times the lease by the
     * stamp it echoes (or, unsafely, by when it arrived)
     */
    if (s->ctl_model && p->type == WIRE_APPEND_RESP && to->lease.term != 0 &&
        p->m.term == to->lease.term && p->m.commit > 0) {
        uint64_t sent = p->m.commit < s->now ? p->m.commit : s->now;

        lease_heard(&to->lease, p->from, secs(s->unsafe_recv ? s->now : sent));
        trace(s, "node %" PRIu64 " hears %" PRIu64 " (stamp %.6f)%s", to->id,
              p->from, secs(sent), p->m.reject ? " reject" : "");
    }
    if (p->type != WIRE_APPEND && p->type != WIRE_APPEND_RESP)
        trace(s,
              "node %" PRIu64 " gets %s%s term %" PRIu64 " from %" PRIu64
              " (sent %.6f)",
              to->id, type_name(p->type), p->m.reject ? " reject" : "",
              p->m.term, p->from, secs(p->sent));
    commit = raft_commit_index(to->r);
    if (raft_step(to->r, p->type, p->from, &p->m) < 0 && !s->byzantine)
        violation(s, "node %" PRIu64 " refuses a %d from %" PRIu64 ": %s",
                  to->id, p->type, p->from, strerror(errno));
    process_ready(s, to);
    check_node(s, to);
    ctl_update(s, to);
    if (s->chaos && raft_role(to->r) == RAFT_LEADER &&
        raft_commit_index(to->r) > commit &&
        rng_below(&s->rng, 1000) < s->commit_crash_pm)
        node_crash(s, to, 1 + rng_below(&s->rng, s->down_max));
}

/* peerd's loop: a tick at least TICK_US after the last one, a little
 * later as the loop wakes late, now and then much later (a slow round).
 */
static void node_tick(struct sim *s, struct node *nd)
{
    uint64_t late = 1000 + rng_below(&s->rng, 4000);

    if (rng_pct(&s->rng, 1))
        late += rng_below(&s->rng, 200000);
    nd->next_tick = s->now + TICK_US + late;
    raft_tick(nd->r);
    process_ready(s, nd);
    check_node(s, nd);
    ctl_update(s, nd);
}

/* One tick of virtual time: every tick and packet due in it, in time
 * order (a tick first on a tie); packets for a paused peer wait for it.
 */
static void sim_step(struct sim *s)
{
    uint64_t end = (s->step + 1) * (uint64_t)TICK_US;

    while (!failed(s)) {
        struct node *tn = NULL;
        uint64_t tt, pt;
        struct packet p;

        for (int i = 0; i < s->n; i++) {
            struct node *nd = &s->nodes[i];

            if (is_up(nd) && (!tn || nd->next_tick < tn->next_tick))
                tn = nd;
        }
        tt = tn ? tn->next_tick : UINT64_MAX;
        pt = s->n_pk ? s->pk[0].at : UINT64_MAX;
        if (tt > end && pt > end)
            break;
        if (tt <= pt) {
            sim_advance(s, tt);
            node_tick(s, tn);
            continue;
        }
        heap_pop(s, &p);
        sim_advance(s, pt);
        if (is_up(node_of(s, p.to)) && is_paused(s, node_of(s, p.to))) {
            p.at = node_of(s, p.to)->paused_until;
            p.seq = ++s->pseq;
            heap_push(s, &p);
            continue;
        }
        deliver(s, &p);
        packet_free(&p);
        ctl_check(s);
    }
    sim_advance(s, end > s->now ? end : s->now);
    s->step++;
    for (int i = 0; i < s->n; i++) {
        struct node *nd = &s->nodes[i];

        if (nd->exists && !nd->r && s->step >= nd->restart_at)
            node_restart(s, nd);
    }
    ctl_check(s);
}

/* The leader of the highest term among live peers, or NULL. */
static struct node *leader(struct sim *s)
{
    struct node *best = NULL;

    for (int i = 0; i < s->n; i++) {
        struct node *nd = &s->nodes[i];

        if (is_up(nd) && raft_role(nd->r) == RAFT_LEADER &&
            (!best || raft_term(nd->r) > raft_term(best->r)))
            best = nd;
    }
    return best;
}

/* The peer with a live slurmctld, or NULL. */
static struct node *controller(struct sim *s)
{
    for (int i = 0; i < s->n; i++)
        if (s->nodes[i].exists && ctl_live(&s->nodes[i], secs(s->now)))
            return &s->nodes[i];
    return NULL;
}

static uint64_t propose_user(struct sim *s, struct node *nd, uint64_t *hash)
{
    char buf[64];
    int len = snprintf(buf, sizeof(buf), "seed %" PRIu64 " op %" PRIu64,
                       s->seed, ++s->seq);
    uint64_t idx = raft_propose(nd->r, RAFT_ENTRY_USER, buf, (size_t)len);

    if (hash)
        *hash = hash_entry(RAFT_ENTRY_USER, buf, (size_t)len);
    if (idx) {
        s->st->proposals++;
        process_ready(s, nd);
        check_node(s, nd);
        ctl_update(s, nd);
    }
    return idx;
}

static uint64_t propose_conf(struct sim *s, struct node *nd,
                             const struct raft_conf *c)
{
    unsigned char buf[1024];
    size_t len;
    uint64_t idx;

    if (raft_conf_encode(c, buf, sizeof(buf), &len) < 0) {
        failf(s, "raft_conf_encode: %s", strerror(errno));
        return 0;
    }
    idx = raft_propose(nd->r, RAFT_ENTRY_CONF, buf, len);
    if (idx) {
        trace(s, "node %" PRIu64 " proposes a configuration at %" PRIu64,
              nd->id, idx);
        process_ready(s, nd);
        check_node(s, nd);
        ctl_update(s, nd);
    }
    return idx;
}

/* --- chaos ------------------------------------------------------------ */

/* peerd's reconcile never demotes the leader itself (a leader that
 * leaves hands over first).
 */
static void chaos_conf_change(struct sim *s, struct node *ld)
{
    struct raft_conf c = *raft_conf(ld->r);
    uint32_t voters = 0, i;

    if (c.n == 0)
        return;
    for (i = 0; i < c.n; i++)
        voters += c.voter[i];
    i = (uint32_t)rng_below(&s->rng, c.n);
    if (c.ids[i] == ld->id && s->ctl_model)
        return;
    if (c.voter[i] && voters > 3)
        c.voter[i] = false;
    else if (!c.voter[i] && voters < 5)
        c.voter[i] = true;
    else
        return;
    propose_conf(s, ld, &c);
}

/* A pause: mostly short, sometimes seconds, up to 5 s. */
static uint64_t pause_length(struct sim *s)
{
    if (rng_pct(&s->rng, 50))
        return 10000 + rng_below(&s->rng, 990000);
    return 1000000 + rng_below(&s->rng, 4000001);
}

static void chaos_events(struct sim *s, uint64_t *split_until)
{
    struct node *ld = leader(s);

    if (*split_until && s->step >= *split_until) {
        trace(s, "partition heals");
        for (int i = 0; i < s->n; i++)
            s->nodes[i].group = 0;
        memset(s->cut, 0, sizeof(s->cut));
        *split_until = 0;
    } else if (!*split_until && rng_below(&s->rng, 1000) < s->split_pm) {
        bool links = rng_pct(&s->rng, 50);

        *split_until = s->step + 20 + rng_below(&s->rng, 130);
        /* two sides, or single links down (A hears B, B hears C, A
         * does not hear C)
         */
        for (int i = 0; i < s->n; i++) {
            s->nodes[i].group = links ? 0 : (int)rng_below(&s->rng, 2);
            for (int j = 0; links && j < i; j++)
                s->cut[i][j] = s->cut[j][i] = rng_pct(&s->rng, 30);
        }
        trace(s, "partition until %.1f%s", (double)*split_until / 10,
              links ? " (links)" : "");
        for (int i = 0; links && i < s->n; i++)
            for (int j = 0; j < i; j++)
                if (s->cut[i][j])
                    trace(s, "link %d-%d down", j + 1, i + 1);
    }
    if (rng_below(&s->rng, 1000) < s->crash_pm) {
        struct node *nd = &s->nodes[rng_below(&s->rng, (uint64_t)s->n)];

        if (is_up(nd))
            node_crash(s, nd, 1 + rng_below(&s->rng, s->down_max));
    }
    if (ld && rng_below(&s->rng, 1000) < s->lcrash_pm)
        node_crash(s, ld, 1 + rng_below(&s->rng, s->down_max));
    if (rng_below(&s->rng, 1000) < s->pause_pm)
        node_pause(s, &s->nodes[rng_below(&s->rng, (uint64_t)s->n)],
                   pause_length(s));
    if ((ld = leader(s)) && rng_below(&s->rng, 1000) < s->lpause_pm)
        node_pause(s, ld, pause_length(s));
    /* Proposals go to any peer that believes it leads: those of a stale
     * leader must never be applied.
     */
    for (int i = 0; i < s->n; i++) {
        struct node *nd = &s->nodes[i];

        if (!is_awake(s, nd) || raft_role(nd->r) != RAFT_LEADER)
            continue;
        if (rng_pct(&s->rng, s->propose_pct))
            propose_user(s, nd, NULL);
        if (rng_pct(&s->rng, 1))
            chaos_conf_change(s, nd);
        if (rng_pct(&s->rng, 1)) {
            const struct raft_conf *c = raft_conf(nd->r);
            uint32_t k = (uint32_t)rng_below(&s->rng, c->n);

            if (!c->n || !c->voter[k] || nd->ho.active)
                continue;
            if (s->ctl_model && c->ids[k] != nd->id)
                handover_begin(s, nd, c->ids[k]);
            else if (!s->ctl_model && raft_transfer(nd->r, c->ids[k]) == 0) {
                trace(s, "node %" PRIu64 " transfers to %" PRIu64, nd->id,
                      c->ids[k]);
                process_ready(s, nd);
            }
            ctl_update(s, nd);
        }
    }
    ctl_check(s);
}

/* Raft needs a round trip well under the election timeout: the chaos
 * delays can exceed it and make check-quorum depose healthy leaders,
 * which the scenarios after healing must not suffer.
 */
static void heal(struct sim *s)
{
    s->chaos = false;
    s->phase = PH_CALM;
    s->drop = 0;
    if (s->delay_max > 200000)
        s->delay_max = 200000;
    for (int i = 0; i < s->n; i++) {
        struct node *nd = &s->nodes[i];

        nd->group = 0;
        memset(s->cut, 0, sizeof(s->cut));
        if (nd->exists && !nd->r)
            node_restart(s, nd);
        if (is_up(nd) && is_paused(s, nd)) {
            nd->paused_until = s->now;
            nd->next_tick = s->now + 1 + rng_below(&s->rng, TICK_US);
        }
    }
}

/* Ticks until a fresh proposal is applied by every live member of the
 * leader's configuration (and every node in `also`), or 0 after bound.
 */
static uint64_t commit_everywhere(struct sim *s, uint64_t bound, uint64_t *at)
{
    uint64_t t0 = s->step, idx = 0, hash = 0;
    struct node *by = NULL;

    while (!failed(s) && s->step - t0 < bound) {
        struct node *ld = leader(s);
        bool all = idx != 0;

        /* Re-propose when the entry was lost with its leader. */
        if (ld && (!idx ||
                   (idx < s->cap_done && s->done[idx].term &&
                    s->done[idx].hash != hash) ||
                   (by != ld && !(idx < s->cap_done && s->done[idx].term)))) {
            if ((idx = propose_user(s, ld, &hash)))
                by = ld;
            all = false;
        }
        for (int i = 0; all && i < s->n; i++) {
            struct node *nd = &s->nodes[i];
            const struct raft_conf *c;

            if (!is_up(nd) || !ld)
                continue;
            c = raft_conf(ld->r);
            for (uint32_t k = 0; k < c->n; k++)
                if (c->ids[k] == nd->id && nd->disk.applied < idx)
                    all = false;
        }
        if (all && ld && idx < s->cap_done && s->done[idx].hash == hash) {
            if (at)
                *at = idx;
            return s->step - t0 + 1;
        }
        sim_step(s);
    }
    return 0;
}

static bool run_until(struct sim *s, uint64_t bound,
                      bool (*cond)(struct sim *, void *), void *arg)
{
    for (uint64_t t0 = s->step; !failed(s) && s->step - t0 < bound; sim_step(s))
        if (cond(s, arg))
            return true;
    return !failed(s) && cond(s, arg);
}

/* --- scenarios -------------------------------------------------------- */

struct conf_wait {
    uint64_t index;
    const struct raft_conf *want;
};

static bool conf_is_member(const struct raft_conf *c, uint64_t id)
{
    for (uint32_t i = 0; i < c->n; i++)
        if (c->ids[i] == id)
            return true;
    return false;
}

static uint32_t conf_voter_count(const struct raft_conf *c)
{
    uint32_t n = 0;

    for (uint32_t i = 0; i < c->n; i++)
        n += c->voter[i];
    return n;
}

static bool conf_equal(const struct raft_conf *a, const struct raft_conf *b)
{
    if (a->n != b->n)
        return false;
    for (uint32_t i = 0; i < a->n; i++) {
        uint32_t k = 0;

        while (k < b->n && b->ids[k] != a->ids[i])
            k++;
        if (k == b->n || a->voter[i] != b->voter[k])
            return false;
    }
    return true;
}

/* Every member of `want` has applied `index` and runs `want`. */
static bool conf_applied(struct sim *s, void *arg)
{
    struct conf_wait *w = arg;

    for (uint32_t k = 0; k < w->want->n; k++) {
        struct node *nd = node_of(s, w->want->ids[k]);

        if (!is_up(nd) || nd->disk.applied < w->index ||
            !conf_equal(raft_conf(nd->r), w->want))
            return false;
    }
    return true;
}

static bool change_conf(struct sim *s, const struct raft_conf *want,
                        const char *what)
{
    struct conf_wait w = {0, want};
    uint64_t t0 = s->step;

    while (!failed(s) && s->step - t0 < SCENARIO_BOUND && !w.index) {
        struct node *ld = leader(s);

        if (ld)
            w.index = propose_conf(s, ld, want);
        if (!w.index)
            sim_step(s);
    }
    if (!w.index) {
        failf(s, "membership: cannot propose to %s", what);
        return false;
    }
    if (!run_until(s, SCENARIO_BOUND, conf_applied, &w)) {
        failf(s, "membership: %s not applied by all members in %d ticks", what,
              SCENARIO_BOUND);
        return false;
    }
    return true;
}

static bool knows_removed(struct sim *s, void *arg)
{
    struct node *nd = arg;

    return is_up(nd) && !conf_is_member(raft_conf(nd->r), nd->id);
}

static bool ctl_gone(struct sim *s, void *arg)
{
    struct node *nd = arg;

    return !ctl_live(nd, secs(s->now));
}

/* Add a learner, promote it, remove a voter (the leader half the time). */
static bool scenario_membership(struct sim *s)
{
    struct node *ld = leader(s), *gone;
    struct raft_conf c;
    uint64_t victim = 0;

    if (!ld || s->n >= MAX_NODES) {
        failf(s, "membership: no leader to start with");
        return false;
    }
    c = *raft_conf(ld->r);
    node_add(s, &c); /* boots with the configuration it will join */
    c.ids[c.n] = (uint64_t)s->n;
    c.voter[c.n++] = false;
    if (!change_conf(s, &c, "add a learner"))
        return false;
    c.voter[c.n - 1] = true;
    if (!change_conf(s, &c, "promote the learner"))
        return false;
    if (!(ld = leader(s)))
        return false;
    for (uint32_t k = 0; k < c.n; k++) {
        if (!c.voter[k] || c.ids[k] == (uint64_t)s->n)
            continue;
        if (!victim || (c.ids[k] == ld->id) == rng_pct(&s->rng, 50))
            victim = c.ids[k];
    }
    for (uint32_t k = 0; k < c.n; k++)
        if (c.ids[k] == victim) {
            c.ids[k] = c.ids[--c.n];
            c.voter[k] = c.voter[c.n];
        }
    trace(s, "membership: remove voter %" PRIu64, victim);
    /* A peer that leaves stops its slurmctld first (peerd's leave()):
     * the leader removing itself hands over with TIMEOUT_NOW.
     */
    gone = node_of(s, victim);
    gone->leaving = true;
    ctl_update(s, gone);
    if (!run_until(s, SCENARIO_BOUND, ctl_gone, gone)) {
        failf(s, "membership: %" PRIu64 " does not stop slurmctld", victim);
        return false;
    }
    if (!change_conf(s, &c, "remove a voter"))
        return false;
    if (!run_until(s, SCENARIO_BOUND, knows_removed, gone)) {
        failf(s, "membership: removed node %" PRIu64 " never learns it",
              victim);
        return false;
    }
    for (int t = 0; t < 6 * ELECTION && !failed(s); t++) {
        sim_step(s);
        if (is_up(gone) && raft_role(gone->r) != RAFT_FOLLOWER) {
            failf(s, "membership: removed node %" PRIu64 " campaigns (%s)",
                  victim, raft_role_name(raft_role(gone->r)));
            return false;
        }
    }
    if (!commit_everywhere(s, SCENARIO_BOUND, NULL)) {
        failf(s, "membership: no commit after removing %" PRIu64, victim);
        return false;
    }
    return !failed(s);
}

struct want_leader {
    uint64_t id;
};

static bool leads(struct sim *s, void *arg)
{
    struct node *ld = leader(s);

    return ld && ld->id == ((struct want_leader *)arg)->id;
}

static bool runs_ctl(struct sim *s, void *arg)
{
    struct node *nd = controller(s);

    return nd && (!arg || nd == arg);
}

/* Start a transfer as peerd does: slurmctld stops first. */
static bool transfer(struct sim *s, struct node *ld, struct node *to)
{
    if (!s->ctl_model) {
        if (raft_transfer(ld->r, to->id) < 0)
            return false;
        process_ready(s, ld);
        return true;
    }
    handover_begin(s, ld, to->id);
    ld->ho.transferred = true; /* the transfer is ours to make here */
    ctl_update(s, ld);
    if (!run_until(s, 3 * ELECTION, ctl_gone, ld) || !is_awake(s, ld) ||
        raft_role(ld->r) != RAFT_LEADER)
        return false;
    return handover_transfer(s, ld, to->id) == 0;
}

/* A leader that is not handing over, and runs slurmctld if modelled. */
static bool settled(struct sim *s, void *arg)
{
    struct node *ld = leader(s);

    (void)arg;
    return ld && raft_transferee(ld->r) == 0 && !ld->ho.active &&
           (!s->ctl_model || controller(s) == ld);
}

/* Hand leadership to a voter; then try a transfer that must time out. */
static bool scenario_transfer(struct sim *s)
{
    struct node *ld, *to = NULL;
    const struct raft_conf *c;
    struct want_leader w;
    uint64_t t0;

    /* a handover the chaos began ends first */
    run_until(s, SCENARIO_BOUND, settled, NULL);
    if (!(ld = leader(s))) {
        failf(s, "transfer: no leader to start with");
        return false;
    }
    c = raft_conf(ld->r);
    for (uint32_t k = 0; k < c->n; k++) {
        struct node *nd = node_of(s, c->ids[k]);

        if (c->voter[k] && nd != ld && is_up(nd) &&
            (!to || rng_pct(&s->rng, 50)))
            to = nd;
    }
    if (!to)
        return true; /* a single voter left: nothing to transfer to */
    t0 = s->now;
    if (!transfer(s, ld, to)) {
        failf(s, "transfer: cannot hand over to %" PRIu64, to->id);
        return false;
    }
    if (raft_propose(ld->r, RAFT_ENTRY_USER, "x", 1) != 0 || errno != EPERM) {
        failf(s, "transfer: leader accepts a proposal while transferring");
        return false;
    }
    trace(s, "transfer from %" PRIu64 " to %" PRIu64, ld->id, to->id);
    w.id = to->id;
    if (!run_until(s, 3 * ELECTION, leads, &w)) {
        failf(s, "transfer: %" PRIu64 " not leader %d ticks after the transfer",
              to->id, 3 * ELECTION);
        return false;
    }
    figure_add(&s->st->transfer, secs(s->now - t0));
    if (s->ctl_model && !run_until(s, 3 * ELECTION, runs_ctl, to)) {
        failf(s,
              "transfer: %" PRIu64 " runs no slurmctld %d ticks after "
              "it leads",
              to->id, 3 * ELECTION);
        return false;
    }
    /* A transfer to a dead voter is abandoned after an election timeout. */
    ld = to;
    to = NULL;
    c = raft_conf(ld->r);
    for (uint32_t k = 0; k < c->n; k++)
        if (c->voter[k] && c->ids[k] != ld->id)
            to = node_of(s, c->ids[k]);
    if (!to || conf_voter_count(c) - 1 < conf_voter_count(c) / 2 + 1)
        return !failed(s); /* losing one voter would lose the quorum */
    node_crash(s, to, 1000000);
    if (!transfer(s, ld, to)) {
        failf(s, "transfer: cannot hand over to dead voter %" PRIu64, to->id);
        return false;
    }
    /* The transfer is abandoned after an election timeout.  With the
     * controller model (peerd's settings) the leader then steps down, as
     * agree.c does (its term holds no lease again), and the others elect
     * a leader of a later term; without it the leader stays.  Either way
     * a leader takes writes again.
     */
    uint64_t term = raft_term(ld->r);
    struct node *nl = NULL;
    int steps = s->ctl_model ? 20 * ELECTION : ELECTION + 10;
    for (int t = 0; t < steps && !failed(s); t++) {
        sim_step(s);
        nl = leader(s);
        if (s->ctl_model && nl && raft_term(nl->r) > term)
            break; /* a new election can take a few rounds (split votes) */
    }
    nl = leader(s);
    if (!nl || !is_up(nl) ||
        (s->ctl_model ? raft_term(nl->r) <= term : nl != ld) ||
        !raft_propose(nl->r, RAFT_ENTRY_USER, "y", 1)) {
        failf(s, "transfer: a transfer to a dead voter is not abandoned");
        return false;
    }
    process_ready(s, nl);
    ld->ho.active = false; /* peerd gives up after HANDOVER_TIMEOUT */
    node_restart(s, to);
    return !failed(s);
}

/* Crash the leader (and controller) of a healthy cluster: a new leader
 * commits, and a peer runs slurmctld again, within a bound.
 */
static bool scenario_failover(struct sim *s)
{
    struct node *ld;
    uint64_t t0, ticks;
    const struct raft_conf *c;

    if (s->ctl_model && !run_until(s, SCENARIO_BOUND, settled, NULL)) {
        failf(s, "failover: no leader with slurmctld to start with");
        return false;
    }
    if (!(ld = leader(s))) {
        failf(s, "failover: no leader to start with");
        return false;
    }
    c = raft_conf(ld->r);
    if (conf_voter_count(c) < 3)
        return true;
    t0 = s->now;
    ticks = s->step;
    node_crash(s, ld, 1000000);
    s->lost_at = 0; /* counted here, not as chaos */
    while (!failed(s) && s->step - ticks < SCENARIO_BOUND &&
           (!leader(s) || leader(s) == ld))
        sim_step(s);
    if (!leader(s)) {
        failf(s, "failover: no leader %d ticks after the leader crashed",
              SCENARIO_BOUND);
        return false;
    }
    figure_add(&s->st->failover, secs(s->now - t0));
    if (s->ctl_model) {
        if (!run_until(s, SCENARIO_BOUND, runs_ctl, NULL)) {
            failf(s,
                  "failover: no slurmctld %d ticks after the leader "
                  "crashed",
                  SCENARIO_BOUND);
            return false;
        }
        figure_add(&s->st->takeover, secs(s->now - t0));
    }
    if (!commit_everywhere(s, SCENARIO_BOUND, NULL)) {
        failf(s, "failover: no commit after the leader crashed");
        return false;
    }
    node_restart(s, ld);
    return !failed(s);
}

/* A cluster in service for `steps` ticks: a fault a minute on average,
 * a peer (the leader half the time) that crashes for 1-10 s or pauses.
 */
static void steady(struct sim *s, uint64_t steps)
{
    s->phase = PH_STEADY;
    s->lost_at = 0;
    for (uint64_t t = 0; t < steps && !failed(s); t++) {
        if (rng_below(&s->rng, 600) == 0) {
            struct node *nd = leader(s);

            if (!nd || rng_pct(&s->rng, 50))
                nd = &s->nodes[rng_below(&s->rng, (uint64_t)s->n)];
            if (is_awake(s, nd) && rng_pct(&s->rng, 50))
                node_crash(s, nd, 10 + rng_below(&s->rng, 91));
            else
                node_pause(s, nd, pause_length(s));
        }
        sim_step(s);
    }
}

/* --- one seed --------------------------------------------------------- */

enum prop {
    P_SAFETY,
    P_CONTROLLER,
    P_LIVENESS,
    P_MEMBERSHIP,
    P_TRANSFER,
    P_FAILOVER,
    N_PROPS
};

static const char *prop_name[N_PROPS] = {
    "safety (one leader per term, committed entries kept, log matching)",
    "controller (at most one live slurmctld at any time)",
    "liveness (leader and commit on every peer after healing)",
    "membership (add learner, promote, remove voter)",
    "leadership transfer (and one abandoned)",
    "leader failover (new leader, new slurmctld)",
};

struct result {
    int prop; /* N_PROPS = passed */
    char msg[768];
};

struct run_opts {
    uint64_t ticks, steady;
    bool verbose, unsafe_wait, unsafe_recv;
    int probe; /* enum probe */
};

static void sim_fini(struct sim *s)
{
    for (int i = 0; i < s->n; i++)
        node_fini(&s->nodes[i]);
    for (size_t i = 0; i < s->n_pk; i++)
        packet_free(&s->pk[i]);
    free(s->pk);
    free(s->term_leader);
    free(s->done);
    free(s->map);
}

/* Every live peer's disk holds exactly its in-memory log. */
static void check_disks(struct sim *s)
{
    for (int i = 0; i < s->n && !failed(s); i++) {
        struct node *nd = &s->nodes[i];

        if (!is_up(nd))
            continue;
        if (nd->disk.n != raft_last_index(nd->r))
            violation(s,
                      "node %" PRIu64 ": disk has %zu entries, raft %" PRIu64,
                      nd->id, nd->disk.n, raft_last_index(nd->r));
        for (size_t k = 0; k < nd->disk.n && !failed(s); k++)
            if (raft_entry(nd->r, k + 1)->term != nd->disk.log[k].term)
                violation(s, "node %" PRIu64 ": disk differs at %zu", nd->id,
                          k + 1);
    }
}

static void sim_init(struct sim *s, uint64_t seed, bool verbose,
                     struct stats *st, int voters, int learners)
{
    struct raft_conf c;

    memset(s, 0, sizeof(*s));
    s->seed = seed;
    s->rng.s = seed;
    s->verbose = verbose;
    s->st = st;
    s->opt.election_ticks = ELECTION;
    s->opt.heartbeat_ticks = 1 + (int)rng_below(&s->rng, 2);
    s->opt.pre_vote = rng_pct(&s->rng, 85);
    s->opt.check_quorum = rng_pct(&s->rng, 85);
    s->opt.max_append = 1 + (uint32_t)rng_below(&s->rng, 8);
    /* one way: 0.2 ms up to 5..400 ms */
    s->delay_min = 200;
    s->delay_max = 5000 + rng_below(&s->rng, 395001);
    /* Two profiles: partitions and slow crashes, or leaders that crash
     * often and briefly while sending one entry per APPEND (where
     * committing an old-term entry by counting replicas would show).
     */
    if (rng_pct(&s->rng, 50)) {
        s->split_pm = 20, s->crash_pm = 20, s->lcrash_pm = 10,
        s->down_max = 100;
    } else {
        s->split_pm = 5, s->crash_pm = 10, s->lcrash_pm = 20, s->down_max = 30;
        s->commit_crash_pm = 50;
        s->opt.max_append = 1 + (uint32_t)rng_below(&s->rng, 2);
    }
    /* a busy log, or an idle one as peerd's mostly is (a peer cut off
     * from the leader then still has an up-to-date log)
     */
    s->propose_pct = rng_pct(&s->rng, 50) ? 30 : 1;
    s->pause_pm = 10;
    s->lpause_pm = 10;
    s->long_pm = 10;
    memset(&c, 0, sizeof(c));
    for (int i = 0; i < voters + learners; i++) {
        c.ids[c.n] = (uint64_t)i + 1;
        c.voter[c.n++] = i < voters;
    }
    for (int i = 0; i < voters + learners; i++)
        node_add(s, &c);
}

static void run_seed(uint64_t seed, const struct run_opts *o, struct stats *st,
                     struct result *res)
{
    struct sim s;
    uint64_t split = 0, t;
    int voters = seed % 2 ? 3 : 5;
    int prop = P_SAFETY;

    sim_init(&s, seed, o->verbose, st, voters, 1 + (int)(seed / 2 % 2));
    /* the lease is peerd's, and peerd runs Raft with both */
    s.ctl_model = s.opt.pre_vote && s.opt.check_quorum;
    s.unsafe_wait = o->unsafe_wait;
    s.unsafe_recv = o->unsafe_recv;
    trace(&s,
          "seed %" PRIu64 ": %d voters, %d peers, heartbeat %d, pre-vote "
          "%d, check-quorum %d, max-append %u, delay <= %.3f s, "
          "controller %s",
          seed, voters, s.n, s.opt.heartbeat_ticks, s.opt.pre_vote,
          s.opt.check_quorum, s.opt.max_append, secs(s.delay_max),
          s.ctl_model ? "modelled" : "not modelled");
    s.chaos = true;
    s.drop = 10;
    s.dup = 3;
    while (s.step < o->ticks && !failed(&s)) {
        chaos_events(&s, &split);
        sim_step(&s);
    }
    heal(&s);
    if (!failed(&s)) {
        prop = P_LIVENESS;
        if ((t = commit_everywhere(&s, HEAL_BOUND, NULL)))
            figure_add(&st->heal, (double)t * TICK_US / 1e6);
        else
            failf(&s,
                  "liveness: no commit on every peer %d ticks after healing",
                  HEAL_BOUND);
    }
    if (!failed(&s)) {
        prop = P_TRANSFER;
        scenario_transfer(&s);
    }
    if (!failed(&s)) {
        prop = P_FAILOVER;
        scenario_failover(&s);
    }
    if (!failed(&s)) {
        prop = P_MEMBERSHIP;
        scenario_membership(&s);
    }
    if (!failed(&s) && s.ctl_model && o->steady) {
        prop = P_SAFETY;
        steady(&s, o->steady);
    }
    check_disks(&s);
    res->prop = !failed(&s) ? N_PROPS
                : s.ctl_bad ? P_CONTROLLER
                : s.safety  ? P_SAFETY
                            : prop;
    snprintf(res->msg, sizeof(res->msg), "%s", s.fail);
    if (o->verbose)
        printf("# seed %" PRIu64 ": %s after %.1f s\n", seed,
               failed(&s) ? s.fail : "passed", secs(s.now));
    sim_fini(&s);
}

/* --- probes: one hazard each, on a calm cluster ------------------------ */

enum probe {
    PROBE_NONE,
    PROBE_RESTART,  /* a voter restarts and votes at once */
    PROBE_TRANSFER, /* a TIMEOUT_NOW delivered after the handover gave up */
};

/* 3 voters as peerd runs them, a fast network, an idle log; a leader
 * with slurmctld.  NULL if none came.
 */
static struct node *probe_cluster(struct sim *s, uint64_t seed,
                                  const struct run_opts *o, struct stats *st)
{
    sim_init(s, seed, o->verbose, st, 3, 0);
    s->opt.pre_vote = s->opt.check_quorum = true;
    s->opt.heartbeat_ticks = 1;
    for (int i = 0; i < s->n; i++) {
        raft_destroy(&s->nodes[i].r);
        node_start(s, &s->nodes[i]);
    }
    s->ctl_model = true;
    s->phase = PH_CALM;
    s->drop = s->dup = 0;
    s->delay_max = 5000;
    s->chaos = true; /* links can be cut; nothing else happens */
    if (!run_until(s, SCENARIO_BOUND, settled, NULL))
        return NULL;
    return leader(s);
}

/* C is cut off from leader L; V answers L, crashes, restarts at once and
 * hears nothing from L for a moment: it grants C's (pre-)vote although
 * L's lease counts V's last answer (raft_new starts with no leader, so
 * no stickiness).
 */
static void probe_restart(struct sim *s, struct node *ld)
{
    struct node *c = NULL, *v = NULL;

    for (int i = 0; i < s->n; i++)
        if (&s->nodes[i] != ld)
            *(c ? &v : &c) = &s->nodes[i];
    s->cut[c->id - 1][ld->id - 1] = s->cut[ld->id - 1][c->id - 1] = true;
    trace(s, "probe: link %" PRIu64 "-%" PRIu64 " down", c->id, ld->id);
    for (uint64_t t = rng_below(&s->rng, 3 * ELECTION); t > 0; t--)
        sim_step(s);
    node_crash(s, v, 1);
    s->cut[v->id - 1][ld->id - 1] = s->cut[ld->id - 1][v->id - 1] = true;
    for (int t = 0; t < 5 && !failed(s); t++)
        sim_step(s);
    memset(s->cut, 0, sizeof(s->cut));
    trace(s, "probe: links up");
    for (int t = 0; t < 3 * ELECTION && !failed(s); t++)
        sim_step(s);
}

/* L hands over to X, which is paused (SIGSTOP) longer than
 * HANDOVER_TIMEOUT with the TIMEOUT_NOW in its socket: L gave the
 * transfer up and runs slurmctld again when X wakes, campaigns, and the
 * voters grant a transfer's votes despite their leader.
 */
static void probe_transfer(struct sim *s, struct node *ld)
{
    struct node *x = &s->nodes[ld == &s->nodes[0] ? 1 : 0];

    node_pause(s, x,
               (uint64_t)(HANDOVER_TIMEOUT * 1e6) + 2000000 +
                   rng_below(&s->rng, 8000000));
    handover_begin(s, ld, x->id);
    ctl_update(s, ld);
    for (int t = 0; t < 35 * ELECTION && !failed(s); t++)
        sim_step(s);
}

static void run_probe(uint64_t seed, enum probe kind, const struct run_opts *o,
                      struct stats *st, struct result *res)
{
    struct sim s;
    struct node *ld = probe_cluster(&s, seed, o, st);

    if (!ld)
        failf(&s, "probe: no leader with slurmctld");
    else if (kind == PROBE_RESTART)
        probe_restart(&s, ld);
    else
        probe_transfer(&s, ld);
    res->prop = !failed(&s) ? N_PROPS : s.ctl_bad ? P_CONTROLLER : P_SAFETY;
    snprintf(res->msg, sizeof(res->msg), "%s", s.fail);
    if (o->verbose)
        printf("# seed %" PRIu64 ": %s after %.1f s\n", seed,
               failed(&s) ? s.fail : "passed", secs(s.now));
    sim_fini(&s);
}

/* --- checks of single calls ------------------------------------------- */

static void test_conf_codec(uint64_t seed)
{
    struct rng g = {seed};
    unsigned char buf[CONF_BUF], bad[CONF_BUF];
    struct raft_conf c, d;
    size_t len, blen;
    bool ok = true;

    for (int iter = 0; iter < 2000 && ok; iter++) {
        memset(&c, 0, sizeof(c));
        c.n = (uint32_t)rng_below(&g, RAFT_MAX_PEERS + 1);
        for (uint32_t i = 0; i < c.n; i++) {
            c.ids[i] = (i + 1) * 0x0101010101ULL + (rng_next(&g) & 0xff00);
            c.voter[i] = rng_pct(&g, 50);
        }
        expect(&ok, raft_conf_encode(&c, buf, sizeof(buf), &len) == 0,
               "encode a valid configuration");
        expect(&ok,
               raft_conf_decode(buf, len, &d) == 0 && conf_equal(&c, &d) &&
                   c.n == d.n && memcmp(c.ids, d.ids, sizeof(c.ids)) == 0,
               "round trip");
        for (size_t cut = 0; cut < len; cut++)
            expect(&ok, raft_conf_decode(buf, cut, &d) < 0 && errno == EINVAL,
                   "a truncated configuration is refused");
        memcpy(bad, buf, len);
        bad[len] = 0;
        expect(&ok, raft_conf_decode(bad, len + 1, &d) < 0,
               "trailing bytes are refused");
        expect(&ok, len == 0 || raft_conf_encode(&c, buf, len - 1, &blen) < 0,
               "encode into a short buffer fails");
        expect(&ok, blen == len || len == 0,
               "encode reports the length needed");
        /* Random corruption: refused, or canonical (encodes back the same). */
        memcpy(bad, buf, len);
        blen = len;
        bad[rng_below(&g, len)] ^= (unsigned char)(1 + rng_below(&g, 255));
        if (raft_conf_decode(bad, blen, &d) == 0) {
            unsigned char again[CONF_BUF];
            size_t alen;

            expect(&ok,
                   raft_conf_encode(&d, again, sizeof(again), &alen) == 0 &&
                       alen == blen && memcmp(again, bad, blen) == 0,
                   "an accepted corruption is a canonical configuration");
        }
        /* Random bytes. */
        blen = rng_below(&g, 64);
        for (size_t i = 0; i < blen; i++)
            bad[i] = (unsigned char)rng_next(&g);
        if (blen && rng_pct(&g, 50))
            bad[0] = 1;
        if (raft_conf_decode(bad, blen, &d) == 0)
            expect(&ok, d.n <= RAFT_MAX_PEERS, "random bytes decode sanely");
    }
    memset(&c, 0, sizeof(c));
    c.n = 2;
    c.ids[0] = c.ids[1] = 7;
    expect(&ok,
           raft_conf_encode(&c, buf, sizeof(buf), &len) < 0 && errno == EINVAL,
           "encode refuses duplicate ids");
    c.ids[1] = 0;
    expect(&ok, raft_conf_encode(&c, buf, sizeof(buf), &len) < 0,
           "encode refuses id 0");
    c.ids[1] = 8;
    raft_conf_encode(&c, buf, sizeof(buf), &len);
    memcpy(bad, buf, len);
    bad[0] = 2;
    expect(&ok, raft_conf_decode(bad, len, &d) < 0, "decode refuses version 2");
    memcpy(bad, buf, len);
    bad[len - 1] = 3;
    expect(&ok, raft_conf_decode(bad, len, &d) < 0,
           "decode refuses unknown flags");
    memcpy(bad, buf, len);
    memcpy(bad + 14, bad + 5, 8);
    expect(&ok, raft_conf_decode(bad, len, &d) < 0,
           "decode refuses duplicates");
    memset(bad + 14, 0, 8);
    expect(&ok, raft_conf_decode(bad, len, &d) < 0, "decode refuses id 0");
    memcpy(bad, buf, len);
    bad[1] = 0xff;
    expect(&ok, raft_conf_decode(bad, len, &d) < 0,
           "decode refuses a huge count");
    expect(&ok, raft_conf_decode(NULL, 0, &d) < 0, "decode refuses NULL");
    tap(ok, "conf codec: round trip, truncations, corruption and garbage");
}

static uint64_t test_rand(void *arg)
{
    return rng_next(arg);
}

static void test_new(void)
{
    struct rng g = {1};
    struct raft_options o = {.id = 1,
                             .election_ticks = 10,
                             .heartbeat_ticks = 1,
                             .max_append = 4,
                             .rand = test_rand,
                             .rand_arg = &g};
    struct raft_options b;
    struct raft_conf c = {.n = 1, .ids = {1}, .voter = {true}}, cb = c;
    struct raft_hard_state hs = {.term = 2, .vote = 1, .commit = 5};
    struct wire_entry log[3] = {{1, 1, RAFT_ENTRY_USER, 0, NULL},
                                {1, 2, RAFT_ENTRY_USER, 0, NULL},
                                {2, 3, RAFT_ENTRY_USER, 0, NULL}};
    struct wire_entry badlog[3];
    bool ok = true;
    raft_t *r;

#define REFUSED(...) ((r = raft_new(__VA_ARGS__)) == NULL && errno == EINVAL)
    b = o, b.id = 0;
    expect(&ok, REFUSED(&b, &c, &hs, log, 3, 0), "id 0");
    b = o, b.election_ticks = 0;
    expect(&ok, REFUSED(&b, &c, &hs, log, 3, 0), "election_ticks 0");
    b = o, b.heartbeat_ticks = 10;
    expect(&ok, REFUSED(&b, &c, &hs, log, 3, 0), "heartbeat >= election");
    b = o, b.max_append = 0;
    expect(&ok, REFUSED(&b, &c, &hs, log, 3, 0), "max_append 0");
    b = o, b.max_append = WIRE_MAX_ENTRIES + 1;
    expect(&ok, REFUSED(&b, &c, &hs, log, 3, 0), "max_append too big");
    b = o, b.rand = NULL;
    expect(&ok, REFUSED(&b, &c, &hs, log, 3, 0), "no rand");
    cb.n = 2, cb.ids[1] = 1;
    expect(&ok, REFUSED(&o, &cb, &hs, log, 3, 0), "duplicate ids");
    cb.n = RAFT_MAX_PEERS + 1;
    expect(&ok, REFUSED(&o, &cb, &hs, log, 3, 0), "too many peers");
    memcpy(badlog, log, sizeof(log));
    badlog[1].index = 3;
    expect(&ok, REFUSED(&o, &c, &hs, badlog, 3, 0), "log with a gap");
    memcpy(badlog, log, sizeof(log));
    badlog[2].term = 1, badlog[1].term = 2;
    expect(&ok, REFUSED(&o, &c, &hs, badlog, 3, 0), "log terms going down");
    memcpy(badlog, log, sizeof(log));
    badlog[2].term = 3;
    expect(&ok, REFUSED(&o, &c, &hs, badlog, 3, 0), "entry newer than term");
    memcpy(badlog, log, sizeof(log));
    badlog[0].len = 4;
    expect(&ok, REFUSED(&o, &c, &hs, badlog, 3, 0), "len without data");
    expect(&ok, REFUSED(&o, &c, &hs, NULL, 3, 0), "n without log");
    expect(&ok, REFUSED(&o, &c, &hs, log, 3, 4), "applied past the log");
#undef REFUSED
    r = raft_new(&o, &c, &hs, log, 3, 1);
    expect(&ok,
           r && raft_commit_index(r) == 3 && raft_term(r) == 2 &&
               raft_last_index(r) == 3 && raft_role(r) == RAFT_FOLLOWER,
           "commit past the log is cut back to it");
    if (r) {
        struct raft_ready rd;
        int t;

        raft_ready(r, &rd);
        expect(&ok, rd.n_committed == 2 && rd.committed[0].index == 2,
               "entries after `applied` are handed out again");
        raft_advance(r, &rd);
        for (t = 0; t < 20 && raft_role(r) != RAFT_LEADER; t++) {
            raft_tick(r);
            raft_ready(r, &rd);
            raft_advance(r, &rd);
        }
        expect(&ok, raft_role(r) == RAFT_LEADER && raft_term(r) == 3,
               "a single voter elects itself");
        expect(&ok,
               raft_propose(r, RAFT_ENTRY_USER, "a", 1) == 5 &&
                   raft_commit_index(r) == 5 && raft_has_quorum(r),
               "a single voter commits alone");
        raft_ready(r, &rd);
        expect(&ok,
               rd.n_entries == 1 && rd.entries[0].index == 5 &&
                   rd.n_committed == 1 && rd.committed[0].index == 5 &&
                   rd.hard_state_changed && rd.hs.commit == 5,
               "Ready carries the entry, to persist and to apply");
        raft_advance(r, &rd);
        expect(&ok, !raft_has_ready(r), "nothing left after advance");
        raft_destroy(&r);
        expect(&ok, r == NULL, "raft_destroy clears the pointer");
        raft_destroy(&r);
    }
    tap(ok, "raft_new refuses bad options, configurations and logs; one voter "
            "leads alone");
}

static struct node *some_follower(struct sim *s, struct node *ld)
{
    for (int i = 0; i < s->n; i++)
        if (&s->nodes[i] != ld && is_up(&s->nodes[i]) &&
            conf_is_member(raft_conf(ld->r), s->nodes[i].id))
            return &s->nodes[i];
    return NULL;
}

/* A calm cluster with a leader that has committed its NOOP. */
static struct node *calm_cluster(struct sim *s, uint64_t seed, struct stats *st)
{
    sim_init(s, seed, false, st, 3, 1);
    s->drop = 0;
    s->dup = 0;
    if (!commit_everywhere(s, HEAL_BOUND, NULL))
        return NULL;
    return leader(s);
}

static void test_odd_messages(void)
{
    struct stats st = {0};
    struct sim s;
    struct node *ld = calm_cluster(&s, 42, &st), *f = NULL;
    struct wire_entry e[3];
    struct wire_raft m;
    bool ok = true;
    uint64_t term, last, commit;

    if (!expect(&ok, ld && (f = some_follower(&s, ld)), "a calm cluster")) {
        tap(ok, "raft_step refuses malformed messages");
        sim_fini(&s);
        return;
    }
    term = raft_term(f->r);
    last = raft_last_index(f->r);
    commit = raft_commit_index(f->r);
#define STEP(type, from) raft_step(f->r, (type), (from), &m)
#define SAME()                                                                 \
    (raft_term(f->r) == term && raft_last_index(f->r) == last &&               \
     raft_commit_index(f->r) == commit && !raft_has_ready(f->r))
    memset(&m, 0, sizeof(m));
    m.term = term;
    expect(&ok,
           raft_step(f->r, WIRE_APPEND, ld->id, NULL) < 0 && errno == EINVAL,
           "NULL message");
    expect(&ok, STEP(0, ld->id) < 0 && errno == EINVAL, "type 0");
    expect(&ok, STEP(8, ld->id) < 0 && errno == EINVAL, "type 8");
    expect(&ok, STEP(WIRE_JOIN_REQ, ld->id) < 0 && errno == EINVAL,
           "type join");
    m.n_entries = 2;
    expect(&ok, STEP(WIRE_APPEND, ld->id) < 0 && errno == EINVAL && SAME(),
           "entries NULL with n_entries 2");
    m.entries = e;
    memset(e, 0, sizeof(e));
    m.index = last;
    m.log_term = raft_entry(f->r, last)->term;
    e[0] = (struct wire_entry){term, last + 1, RAFT_ENTRY_USER, 0, NULL};
    e[1] = (struct wire_entry){term, last + 3, RAFT_ENTRY_USER, 0, NULL};
    expect(&ok, STEP(WIRE_APPEND, ld->id) < 0 && errno == EINVAL && SAME(),
           "entries with a gap");
    e[1] = (struct wire_entry){term + 1, last + 2, RAFT_ENTRY_USER, 0, NULL};
    expect(&ok, STEP(WIRE_APPEND, ld->id) < 0 && SAME(),
           "entry newer than message");
    e[1] = (struct wire_entry){term, last + 2, RAFT_ENTRY_USER, 5, NULL};
    expect(&ok, STEP(WIRE_APPEND, ld->id) < 0 && SAME(), "len 5, data NULL");
    e[1].len = 0;
    m.n_entries = WIRE_MAX_ENTRIES + 1;
    expect(&ok, STEP(WIRE_APPEND, ld->id) < 0 && SAME(), "too many entries");
    m.n_entries = 1;
    expect(&ok, STEP(WIRE_VOTE, ld->id) < 0 && SAME(), "entries on a VOTE");
    m.index = UINT64_MAX;
    e[0].index = 0;
    expect(&ok, STEP(WIRE_APPEND, ld->id) < 0 && SAME(), "index overflow");
    m.n_entries = 0;
    m.index = last;
    m.term = UINT64_MAX;
    expect(&ok, STEP(WIRE_APPEND, ld->id) < 0 && SAME(), "last possible term");
    m.term = term + 5;
    m.index = last + 10;
    m.log_term = term;
    expect(&ok, STEP(WIRE_VOTE, 0) == 0 && SAME(), "from 0 is ignored");
    expect(&ok, STEP(WIRE_VOTE, f->id) == 0 && SAME(), "from self is ignored");
    expect(&ok, STEP(WIRE_VOTE, 77) == 0 && SAME(), "a vote for a stranger");
    expect(&ok, STEP(WIRE_TIMEOUT_NOW, 77) == 0 && SAME(),
           "a stranger's TIMEOUT_NOW");
    expect(&ok, STEP(WIRE_APPEND_RESP, 77) == 0 && SAME(),
           "a stranger's answer");
    m.term = term - 1;
    expect(&ok, STEP(WIRE_VOTE, ld->id) == 0 && SAME(), "a stale VOTE");
    expect(&ok, STEP(WIRE_TIMEOUT_NOW, ld->id) == 0 && SAME(),
           "a stale TIMEOUT_NOW");
    m.term = term;
    m.index = commit;
    m.log_term = raft_entry(f->r, commit)->term + 1;
    expect(&ok, STEP(WIRE_APPEND, ld->id) < 0 && errno == EINVAL && SAME(),
           "an APPEND that contradicts committed entries");
    m.index = commit - 1;
    m.log_term = raft_entry(f->r, commit - 1)->term;
    m.n_entries = 1;
    e[0] = (struct wire_entry){term + 0, commit, RAFT_ENTRY_USER, 1,
                               (unsigned char *)"z"};
    if (raft_entry(f->r, commit)->term == term)
        e[0].type = RAFT_ENTRY_USER + 1; /* same term: differ by content */
    e[0].term = raft_entry(f->r, commit)->term + 1 <= term
                    ? raft_entry(f->r, commit)->term + 1
                    : term;
    if (e[0].term != raft_entry(f->r, commit)->term)
        expect(&ok, STEP(WIRE_APPEND, ld->id) < 0 && SAME(),
               "entries that would overwrite committed ones");
    /* The leader ignores an answer claiming entries it never had. */
    memset(&m, 0, sizeof(m));
    m.term = raft_term(ld->r);
    m.index = raft_last_index(ld->r) + 100;
    expect(&ok,
           raft_step(ld->r, WIRE_APPEND_RESP, f->id, &m) == 0 &&
               raft_match(ld->r, f->id) <= raft_last_index(ld->r),
           "an answer from the future");
    process_ready(&s, ld);
#undef STEP
#undef SAME
    expect(&ok, commit_everywhere(&s, HEAL_BOUND, NULL) != 0 && !failed(&s),
           "the cluster still commits");
    if (failed(&s))
        printf("# %s\n", s.fail);
    tap(ok, "raft_step refuses malformed messages, ignores strangers and "
            "stale terms");
    sim_fini(&s);
}

static void test_propose_errors(void)
{
    struct stats st = {0};
    struct sim s;
    struct node *ld = calm_cluster(&s, 7, &st), *f = NULL;
    struct raft_conf c;
    unsigned char buf[CONF_BUF], *big;
    size_t len;
    bool ok = true;

    if (!expect(&ok, ld && (f = some_follower(&s, ld)), "a calm cluster")) {
        tap(ok, "raft_propose errors");
        sim_fini(&s);
        return;
    }
    expect(&ok,
           raft_propose(f->r, RAFT_ENTRY_USER, "a", 1) == 0 && errno == EPERM,
           "EPERM on a follower");
    expect(&ok, raft_transfer(f->r, ld->id) < 0 && errno == EPERM,
           "transfer: EPERM on a follower");
    expect(&ok, raft_transfer(ld->r, 77) < 0 && errno == EINVAL,
           "transfer: EINVAL to a stranger");
    expect(&ok,
           raft_propose(ld->r, RAFT_ENTRY_USER, NULL, 3) == 0 &&
               errno == EINVAL,
           "EINVAL on data NULL");
    big = calloc(1, WIRE_MAX_FRAME);
    expect(&ok,
           big &&
               raft_propose(ld->r, RAFT_ENTRY_USER, big, WIRE_MAX_FRAME) == 0 &&
               errno == EINVAL,
           "EINVAL on an entry no frame can carry");
    /* Three entries of 1.5 MiB: every APPEND must still fit one frame. */
    for (int k = 0; k < 3 && big; k++)
        expect(&ok, raft_propose(ld->r, RAFT_ENTRY_USER, big, 3u << 19) != 0,
               "a 1.5 MiB entry is accepted");
    free(big);
    process_ready(&s, ld);
    expect(&ok, commit_everywhere(&s, HEAL_BOUND, NULL) != 0 && !failed(&s),
           "large entries are replicated in frames that fit");
    expect(&ok,
           raft_propose(ld->r, RAFT_ENTRY_CONF, "junk", 4) == 0 &&
               errno == EINVAL,
           "EINVAL on a garbage configuration");
    c = *raft_conf(ld->r);
    for (uint32_t k = 0; k < c.n; k++)
        if (!c.voter[k])
            c.voter[k] = true;
    c.ids[c.n] = 50;
    c.voter[c.n++] = true;
    raft_conf_encode(&c, buf, sizeof(buf), &len);
    expect(&ok,
           raft_propose(ld->r, RAFT_ENTRY_CONF, buf, len) == 0 &&
               errno == EINVAL,
           "EINVAL on two voters changed at once");
    c = *raft_conf(ld->r);
    c.ids[c.n] = 50;
    c.voter[c.n++] = false;
    raft_conf_encode(&c, buf, sizeof(buf), &len);
    expect(&ok, raft_propose(ld->r, RAFT_ENTRY_CONF, buf, len) != 0,
           "a learner can be added");
    c.ids[c.n] = 51;
    c.voter[c.n++] = false;
    raft_conf_encode(&c, buf, sizeof(buf), &len);
    expect(&ok,
           raft_propose(ld->r, RAFT_ENTRY_CONF, buf, len) == 0 &&
               errno == EBUSY,
           "EBUSY on a second change while one is uncommitted");
    expect(&ok,
           conf_is_member(raft_conf(ld->r), 50) &&
               !conf_is_member(raft_conf(ld->r), 51),
           "the configuration takes effect when appended");
    /* Learner 50 never answers: the leader must still commit. */
    process_ready(&s, ld);
    for (int t = 0; t < 10; t++)
        sim_step(&s);
    expect(&ok, raft_commit_index(ld->r) == raft_last_index(ld->r),
           "a silent learner does not hold back the commit");
    /* Right after an election, a change must wait for the new NOOP. */
    raft_transfer(ld->r, f->id);
    process_ready(&s, ld);
    while (s.step < 10000 && (!leader(&s) || leader(&s) == ld))
        sim_step(&s);
    ld = leader(&s);
    c = *raft_conf(ld->r);
    raft_conf_encode(&c, buf, sizeof(buf), &len);
    expect(&ok,
           raft_commit_index(ld->r) < raft_last_index(ld->r) &&
               raft_propose(ld->r, RAFT_ENTRY_CONF, buf, len) == 0 &&
               errno == EBUSY,
           "EBUSY before the new leader committed in its term");
    expect(&ok, !failed(&s), s.fail);
    tap(ok, "raft_propose and raft_transfer: EPERM, EINVAL, EBUSY; "
            "large entries go out in APPENDs that fit a frame");
    sim_fini(&s);
}

/* Make nd campaign now: a TIMEOUT_NOW from a member at `term`. */
static void force_campaign(struct sim *s, struct node *nd, uint64_t from,
                           uint64_t term)
{
    struct wire_raft m = {.to = nd->id, .term = term};

    raft_step(nd->r, WIRE_TIMEOUT_NOW, from, &m);
    process_ready(s, nd);
    check_node(s, nd);
}

static void set_groups(struct sim *s, int g1, int g2, int g3)
{
    s->nodes[0].group = g1;
    s->nodes[1].group = g2;
    s->nodes[2].group = g3;
}

/* Raft paper, figure 8, with 3 voters: S1 leads term T and appends e at
 * index i alone; S3 leads T+1 and appends its NOOP at i alone; S1 leads
 * T+2 and copies e, but not its NOOP (held back), to S2.  e (term T) is now on
 * a majority, but counting replicas must not commit it: S3 (last term T+1) can
 * still win T+3 and overwrite it, which it then does.
 */
static void test_figure8(void)
{
    struct stats st = {0};
    struct sim s;
    struct node *s1, *s2, *s3;
    uint64_t i, t, t0;
    bool ok = true;

    sim_init(&s, 8, false, &st, 3, 0);
    s.opt.pre_vote = s.opt.check_quorum = false;
    s.opt.max_append = 1;
    s.delay_min = TICK_US; /* one tick, as the script counts */
    s.delay_max = 0;
    s.drop = s.dup = 0;
    for (int k = 0; k < 3; k++) {
        raft_destroy(&s.nodes[k].r);
        node_start(&s, &s.nodes[k]);
    }
    s1 = &s.nodes[0], s2 = &s.nodes[1], s3 = &s.nodes[2];
    force_campaign(&s, s1, 2, 0);
    expect(&ok, commit_everywhere(&s, 50, NULL) && leader(&s) == s1,
           "S1 leads and commits");
    s.chaos = true;
    set_groups(&s, 1, 0, 0);
    t = raft_term(s1->r);
    i = propose_user(&s, s1, NULL);
    sim_step(&s);
    force_campaign(&s, s3, 1, t);
    for (t0 = s.step; s.step - t0 < 5 && raft_role(s3->r) != RAFT_LEADER;)
        sim_step(&s);
    set_groups(&s, 1, 0, 2);
    expect(&ok,
           raft_role(s3->r) == RAFT_LEADER && raft_term(s3->r) == t + 1 &&
               raft_entry(s3->r, i) && raft_entry(s3->r, i)->term == t + 1 &&
               raft_last_index(s2->r) == i - 1,
           "S3 leads term T+1 with its NOOP at i, alone");
    set_groups(&s, 0, 0, 2);
    force_campaign(&s, s1, 2, t + 1);
    s.hold = i;
    for (t0 = s.step; s.step - t0 < 8 && raft_match(s1->r, s2->id) < i;)
        sim_step(&s);
    s.hold = 0;
    set_groups(&s, 1, 0, 2);
    expect(&ok,
           raft_role(s1->r) == RAFT_LEADER && raft_term(s1->r) == t + 2 &&
               raft_match(s1->r, s2->id) == i && raft_last_index(s2->r) == i,
           "S1 leads term T+2 and copied e to S2, not yet its NOOP");
    expect(&ok, raft_commit_index(s1->r) < i,
           "e (term T) is not committed by counting replicas");
    set_groups(&s, 1, 0, 0);
    force_campaign(&s, s3, 2, t + 2);
    for (t0 = s.step; s.step - t0 < 5 && leader(&s) != s3;)
        sim_step(&s);
    expect(&ok, leader(&s) == s3 && raft_term(s3->r) == t + 3,
           "S3 wins term T+3");
    for (t0 = s.step; s.step - t0 < 5;)
        sim_step(&s);
    expect(&ok, raft_entry(s2->r, i) && raft_entry(s2->r, i)->term == t + 1,
           "S3 overwrites e on S2");
    expect(&ok, !failed(&s), s.fail);
    tap(ok, "figure 8: an entry of an earlier term is not committed by "
            "counting replicas");
    sim_fini(&s);
}

/* Random garbage to the peers of a live cluster: each message is refused
 * (EINVAL) or taken; nothing crashes (ASan, UBSan) and Ready stays well
 * formed.  Garbage can impersonate a leader, so the Raft invariants are
 * not checked here, only the structure.
 */
static void test_fuzz(uint64_t seed, int n)
{
    struct stats st = {0};
    struct sim s;
    struct wire_entry e[6];
    unsigned char data[8] = "garbage";
    int refused = 0;
    bool ok = true;

    calm_cluster(&s, seed, &st);
    s.byzantine = true;
    for (int k = 0; k < n && !failed(&s); k++) {
        struct node *nd = &s.nodes[rng_below(&s.rng, (uint64_t)s.n)];
        struct wire_raft m;
        bool sloppy = rng_pct(&s.rng, 10);
        int type = 1 + (int)rng_below(&s.rng, 7), rc;
        uint64_t from = rng_below(&s.rng, (uint64_t)s.n + 2);
        uint64_t t = is_up(nd) ? raft_term(nd->r) : 1;
        uint64_t l = is_up(nd) ? raft_last_index(nd->r) : 1;

        if (!is_up(nd))
            continue;
        if (sloppy && rng_pct(&s.rng, 30))
            type = (int)rng_below(&s.rng, 20);
        memset(&m, 0, sizeof(m));
        m.term = t + rng_below(&s.rng, 3) - 1;
        if (rng_pct(&s.rng, 3))
            m.term = UINT64_MAX - rng_below(&s.rng, 3);
        m.index = l + rng_below(&s.rng, 5) - 2;
        if (rng_pct(&s.rng, 3))
            m.index = UINT64_MAX - rng_below(&s.rng, 3);
        m.log_term = t - rng_below(&s.rng, 3);
        m.commit = rng_pct(&s.rng, 5) ? UINT64_MAX : l + rng_below(&s.rng, 3);
        m.hint = rng_pct(&s.rng, 50) ? rng_below(&s.rng, 3) : rng_next(&s.rng);
        m.reject = rng_pct(&s.rng, 50);
        if (m.log_term > m.term)
            m.log_term = m.term;
        m.n_entries =
            type == WIRE_APPEND || sloppy ? (uint32_t)rng_below(&s.rng, 7) : 0;
        m.entries = sloppy && rng_pct(&s.rng, 20) ? NULL : e;
        for (uint32_t i = 0; i < m.n_entries; i++) {
            uint64_t lo = i ? e[i - 1].term : m.log_term;

            e[i].index =
                m.index + i + 1 - (sloppy && rng_pct(&s.rng, 20) ? 2 : 0);
            e[i].term = lo + rng_below(&s.rng, m.term - lo + 1 + sloppy);
            e[i].type = (uint8_t)rng_below(&s.rng, 20);
            e[i].len = (uint32_t)rng_below(&s.rng, 8);
            e[i].data = sloppy && rng_pct(&s.rng, 20) ? NULL : data;
            if (e[i].type == RAFT_ENTRY_CONF && rng_pct(&s.rng, 50)) {
                static unsigned char cbuf[CONF_BUF];
                size_t clen;

                raft_conf_encode(raft_conf(nd->r), cbuf, sizeof(cbuf), &clen);
                e[i].data = cbuf;
                e[i].len = (uint32_t)clen;
            }
        }
        if (sloppy && rng_pct(&s.rng, 10))
            m.n_entries = UINT32_MAX - (uint32_t)rng_below(&s.rng, 2);
        if (m.n_entries > 6)
            m.entries = NULL; /* an array that size would be a caller bug */
        rc = raft_step(nd->r, (enum wire_type)type, from, &m);
        if (rc < 0) {
            refused++;
            expect(&ok, errno == EINVAL, "raft_step fails only with EINVAL");
        } else {
            expect(&ok, rc == 0, "raft_step returns 0 or -1");
        }
        process_ready(&s, nd);
        if (rng_pct(&s.rng, 20))
            sim_step(&s);
        if (rng_pct(&s.rng, 5) && leader(&s))
            propose_user(&s, leader(&s), NULL);
    }
    check_disks(&s);
    expect(&ok, !failed(&s), s.fail);
    tap(ok,
        "fuzz: %d random messages (%d refused) to a live cluster, Ready "
        "stays well formed",
        n, refused);
    sim_fini(&s);
}

/* --- main ------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr, "usage: sim_raft [--seeds N] [--first S] [--ticks T] "
                    "[--steady T] [--replay SEED] [--verbose] "
                    "[--unsafe-wait] [--unsafe-recv] "
                    "[--probe restart|transfer]\n");
    exit(2);
}

static uint64_t num(const char *s)
{
    char *end;
    unsigned long long v;

    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || *end || end == s)
        usage();
    return v;
}

static void print_figure(const char *what, const struct figure *f)
{
    if (f->n)
        printf("# stats: %s s mean %.2f max %.2f (n=%" PRIu64 ")\n", what,
               f->sum / (double)f->n, f->max, f->n);
}

/* Human lines, then one line of sums for tests/bench/raft-sim.sh to add
 * up over several runs.
 */
static void print_stats(uint64_t seeds, const struct stats *st)
{
    const struct figure *fs[] = {&st->heal,     &st->failover, &st->takeover,
                                 &st->transfer, &st->lost[0],  &st->lost[2]};
    const char *names[] = {"heal",     "failover", "takeover",
                           "transfer", "lost0",    "lost2"};
    const char *phase[] = {"under chaos", "in the scenarios after healing",
                           "in service (a fault a minute)"};

    printf("# stats: seeds %" PRIu64 " elections %" PRIu64 " commits %" PRIu64
           " proposals %" PRIu64 " messages %" PRIu64 " dropped %" PRIu64 "\n",
           seeds, st->elections, st->commits, st->proposals, st->msgs,
           st->dropped);
    printf("# stats: controller: violations %" PRIu64 " starts %" PRIu64
           " handovers %" PRIu64 " pauses %" PRIu64 "\n",
           st->ctl_violations, st->ctl_starts, st->handovers, st->pauses);
    print_figure("heal-to-commit", &st->heal);
    print_figure("leader-crash-to-new-leader", &st->failover);
    print_figure("leader-crash-to-new-slurmctld", &st->takeover);
    print_figure("chaos: slurmctld-crash-to-new-slurmctld", &st->lost[0]);
    print_figure("in service: slurmctld-crash-to-new-slurmctld", &st->lost[2]);
    print_figure("transfer-to-new-leader", &st->transfer);
    for (int p = 0; p < N_PHASES; p++)
        if (st->span[p] > 0)
            printf("# stats: no live slurmctld %s: %.2f s per simulated "
                   "minute (%.0f min simulated)\n",
                   phase[p], 60 * st->down[p] / st->span[p], st->span[p] / 60);
    printf("# sums: seeds %" PRIu64 " violations %" PRIu64, seeds,
           st->ctl_violations);
    for (size_t k = 0; k < sizeof(fs) / sizeof(fs[0]); k++)
        printf(" %s %" PRIu64 " %.6f %.6f", names[k], fs[k]->n, fs[k]->sum,
               fs[k]->max);
    for (int p = 0; p < N_PHASES; p++)
        printf(" down%d %.6f %.6f", p, st->down[p], st->span[p]);
    printf("\n");
}

int main(int argc, char **argv)
{
    uint64_t seeds = 300, first = 1;
    struct run_opts o = {.ticks = 1500, .steady = 0};
    bool replay = false;
    struct stats st = {0};

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--verbose"))
            o.verbose = true;
        else if (!strcmp(argv[i], "--unsafe-wait"))
            o.unsafe_wait = true;
        else if (!strcmp(argv[i], "--unsafe-recv"))
            o.unsafe_recv = true;
        else if (i + 1 >= argc)
            usage();
        else if (!strcmp(argv[i], "--seeds"))
            seeds = num(argv[++i]);
        else if (!strcmp(argv[i], "--first"))
            first = num(argv[++i]);
        else if (!strcmp(argv[i], "--ticks"))
            o.ticks = num(argv[++i]);
        else if (!strcmp(argv[i], "--steady"))
            o.steady = num(argv[++i]);
        else if (!strcmp(argv[i], "--replay"))
            first = num(argv[++i]), seeds = 1, replay = true;
        else if (!strcmp(argv[i], "--probe") &&
                 (o.probe = !strcmp(argv[++i], "restart")  ? PROBE_RESTART
                            : !strcmp(argv[i], "transfer") ? PROBE_TRANSFER
                                                           : PROBE_NONE))
            ;
        else
            usage();
    }
    if (!replay && !o.probe) {
        test_conf_codec(first);
        test_new();
        test_odd_messages();
        test_propose_errors();
        test_figure8();
        test_fuzz(first, 5000);
    }
    o.verbose = o.verbose || replay;
    for (uint64_t g = first; g < first + seeds; g += GROUP) {
        uint64_t end = g + GROUP < first + seeds ? g + GROUP : first + seeds;
        char bad[N_PROPS][128] = {{0}};
        struct result res[GROUP];

        for (uint64_t seed = g; seed < end; seed++) {
            struct result *r = &res[seed - g];

            if (o.probe)
                run_probe(seed, o.probe, &o, &st, r);
            else
                run_seed(seed, &o, &st, r);
            if (r->prop < N_PROPS) {
                size_t k = strlen(bad[r->prop]);

                snprintf(bad[r->prop] + k, sizeof(bad[0]) - k, " %" PRIu64,
                         seed);
                tap(false, "seed %" PRIu64 ": %s", seed, r->msg);
                printf("# replay: sim_raft --replay %" PRIu64
                       " --ticks %" PRIu64 " --steady %" PRIu64 "%s%s%s\n",
                       seed, o.ticks, o.steady,
                       o.unsafe_wait ? " --unsafe-wait" : "",
                       o.unsafe_recv ? " --unsafe-recv" : "",
                       o.probe == PROBE_RESTART    ? " --probe restart"
                       : o.probe == PROBE_TRANSFER ? " --probe transfer"
                                                   : "");
            }
        }
        for (int p = 0; p < N_PROPS; p++) {
            if (bad[p][0])
                tap(false, "seeds %" PRIu64 "-%" PRIu64 ": %s; failed:%s", g,
                    end - 1, prop_name[p], bad[p]);
            else
                tap(true, "seeds %" PRIu64 "-%" PRIu64 ": %s", g, end - 1,
                    prop_name[p]);
        }
    }
    print_stats(seeds, &st);
    printf("1..%d\n", n_tests);
    return n_failed ? 1 : 0;
}
