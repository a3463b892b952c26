/* sim_swim.c - SWIM with Lifeguard (node/swim.c) on a simulated network
 *
 * One process runs N members on virtual time (10 ms steps).  The network
 * loses 10 % of the messages and delays each by 1..40 ms (so it also
 * reorders); member 1 is CPU-starved: it wakes only every 0.5..1.5 s,
 * ticks first (its timers fire late) and only then reads what arrived
 * meanwhile.  Everything random comes from one splitmix64 stream seeded
 * by the seed, so a failing seed replays exactly (--replay SEED).
 *
 * One seed runs four phases, each checked:
 *   steady     60 s with loss and the starved member: nobody is ever
 *              declared DEAD (the Lifeguard point);
 *   refute     member 2 is cut off until someone suspects it, then
 *              reconnected: it ends ALIVE everywhere with a higher
 *              incarnation, and is never declared DEAD;
 *   crash      a few members crash and one leaves gracefully: every live
 *              member sees each crashed one DEAD within a bound (and no
 *              other member DEAD), and the leaver LEFT;
 *   partition  the live members are split in two for longer than the
 *              longest suspicion timeout, then healed: push-pull must
 *              bring every live member to see every other ALIVE.
 * Before the seeds, single-call checks: options, precedence of updates,
 * refutation, the Lifeguard suspicion timeout, odd messages, fuzz.
 *
 * Usage: sim_swim [--seeds N] [--first S] [--n N] [--replay SEED]
 *                 [--verbose]
 * Without --n, N = 10 and N = 50.  TAP: per N one line per property, one
 * more per failing seed; "# stats" lines feed tests/bench/swim-sim.sh.
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

#include "node/swim.h"
#include "tests/sim/simlib.h"

#define STEP 10  /* ms of virtual time per step */
#define WHEEL 16 /* delivery buckets: delay < WHEEL * STEP */
#define LOSS_PCT 10
#define MAX_DELAY 40 /* ms */
#define PERIOD 1000  /* default probe interval */
#define STEADY_MS 60000
#define REFUTE_BOUND 30000
#define ISOLATE_BOUND 60000
#define HEAL_BOUND 180000
#ifndef MAX_WAKE_STEPS
#define MAX_WAKE_STEPS 101 /* starved member wakes every 0.5..1.5 s */
#endif

/* Bytes the message would take on the wire: a 13-byte header (signature,
 * version, type, sender), seq and target, 17 per update (id,
 * incarnation, state) and 8 more for a suspect's accuser.
 */
static size_t update_bytes(const struct swim_update *u)
{
    return 17 + (u->state == SWIM_SUSPECT ? 8 : 0);
}

static size_t wire_bytes(const struct swim_msg *m)
{
    size_t n = 13 + 1;

    if (m->type == SWIM_SYNC)
        n += 1 + 4;
    else if (m->type != SWIM_GOSSIP)
        n += 4 + 8;
    for (uint32_t i = 0; i < m->n_updates; i++)
        n += update_bytes(&m->updates[i]);
    for (uint32_t i = 0; i < m->n_sync; i++)
        n += update_bytes(&m->sync[i]);
    return n;
}

/* --- simulated members and network ------------------------------------ */

struct packet {
    uint32_t from, to; /* node indices */
    struct swim_msg m; /* m.sync owned */
};

struct bucket {
    struct packet *pk;
    size_t n, cap;
};

struct node {
    swim_t *s;
    struct rng rng;
    bool crashed, left;
    uint64_t wake_every, next_wake; /* 0 = not starved */
    struct bucket inbox;            /* starved: what waits for a wake */
    int group;
    uint64_t crashed_at;
};

struct samples {
    double *v;
    size_t n, cap;
};

struct figures {
    struct samples detect, spread, refute, heal;
    uint64_t msgs, bytes, member_ms; /* steady phase */
    uint64_t false_dead, suspicions, max_lhm;
};

enum prop {
    P_STEADY,
    P_REFUTE,
    P_CRASH,
    P_PARTITION,
    N_PROPS,
};

static const char *prop_name[N_PROPS] = {
    "no false DEAD under 10% loss with a starved member",
    "a falsely suspected member refutes and ends ALIVE, higher incarnation",
    "every crashed member DEAD at every live member in bound, leaver LEFT",
    "after a partition heals every live member sees every other ALIVE",
};

struct sim {
    uint64_t seed;
    struct rng rng;
    bool verbose;
    uint64_t now;
    int n;
    struct node *nodes;
    struct bucket wheel[WHEEL];
    bool cut[2];  /* partition active; nodes in different groups */
    int isolated; /* node index cut off from all, -1 none */
    bool counting;
    bool after_cut;  /* member 2 was cut off */
    bool judge_dead; /* a DEAD of a connected live member is false */
    struct figures *fig;
    /* per-phase observation */
    uint64_t *dead_seen;  /* [subject*n + observer] = time, 0 = not */
    uint64_t *first_dead; /* per subject */
    int false_dead;
    char fail[256];
    enum prop failed;
};

static void trace(struct sim *sm, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void trace(struct sim *sm, const char *fmt, ...)
{
    va_list ap;

    if (!sm->verbose)
        return;
    printf("# %7.2f ", (double)sm->now / 1000);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
}

static void fail(struct sim *sm, enum prop p, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(struct sim *sm, enum prop p, const char *fmt, ...)
{
    va_list ap;

    if (sm->failed != N_PROPS)
        return;
    sm->failed = p;
    va_start(ap, fmt);
    vsnprintf(sm->fail, sizeof(sm->fail), fmt, ap);
    va_end(ap);
    trace(sm, "FAIL %s", sm->fail);
}

static void samples_add(struct samples *sa, double v)
{
    if (sa->n == sa->cap) {
        size_t cap = sa->cap ? 2 * sa->cap : 64;
        double *p = realloc(sa->v, cap * sizeof(*p));

        if (!p)
            abort();
        sa->v = p;
        sa->cap = cap;
    }
    sa->v[sa->n++] = v;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

static double percentile(struct samples *sa, double p)
{
    size_t i;

    if (!sa->n)
        return NAN;
    qsort(sa->v, sa->n, sizeof(double), cmp_double);
    i = (size_t)ceil(p / 100 * (double)sa->n);
    return sa->v[i ? i - 1 : 0];
}

static void bucket_push(struct bucket *b, const struct packet *p)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 64;
        struct packet *q = realloc(b->pk, cap * sizeof(*q));

        if (!q)
            abort();
        b->pk = q;
        b->cap = cap;
    }
    b->pk[b->n++] = *p;
}

static void bucket_drain_free(struct bucket *b)
{
    for (size_t i = 0; i < b->n; i++)
        free((void *)b->pk[i].m.sync);
    b->n = 0;
}

static uint64_t id_of(int i)
{
    return (uint64_t)i + 1;
}

static bool connected(struct sim *sm, int a, int b)
{
    if (sm->isolated == a || sm->isolated == b)
        return false;
    return !sm->cut[0] || sm->nodes[a].group == sm->nodes[b].group;
}

static void on_event(struct sim *sm, int obs, const struct swim_event *e)
{
    int subj = (int)e->id - 1;
    struct node *sn;

    if (subj < 0 || subj >= sm->n)
        return;
    sn = &sm->nodes[subj];
    trace(sm, "%d sees %d %s inc %" PRIu64, obs + 1, subj + 1,
          swim_state_name(e->state), e->incarnation);
    if (e->state == SWIM_SUSPECT && sm->counting)
        sm->fig->suspicions++;
    if (e->state != SWIM_DEAD)
        return;
    /* Member 2's own view after it was cut off is a partition effect:
     * it may miss a refutation and let its old suspicion expire.
     */
    if (sm->judge_dead && !sn->crashed && !sn->left && sm->isolated != subj &&
        !(sm->after_cut && obs == 1)) {
        sm->false_dead++;
        sm->fig->false_dead++;
    }
    if (!sm->first_dead[subj])
        sm->first_dead[subj] = sm->now;
    if (!sm->dead_seen[(size_t)subj * sm->n + obs])
        sm->dead_seen[(size_t)subj * sm->n + obs] = sm->now;
}

/* Hand a member's output to the network and the observers. */
static void drain(struct sim *sm, int i)
{
    struct node *nd = &sm->nodes[i];
    const struct swim_msg *msgs;
    const struct swim_event *ev;
    size_t n = swim_outbox(nd->s, &msgs);

    for (size_t k = 0; k < n; k++) {
        const struct swim_msg *m = &msgs[k];
        int to = (int)m->to - 1;
        uint64_t at;
        struct packet p;

        if (sm->counting) {
            sm->fig->msgs++;
            sm->fig->bytes += wire_bytes(m);
        }
        if (to < 0 || to >= sm->n || nd->crashed || !connected(sm, i, to) ||
            rng_below(&sm->rng, 100) < LOSS_PCT)
            continue;
        p.from = (uint32_t)i;
        p.to = (uint32_t)to;
        p.m = *m;
        if (m->n_sync) {
            struct swim_update *c = malloc(m->n_sync * sizeof(*c));

            if (!c)
                abort();
            memcpy(c, m->sync, m->n_sync * sizeof(*c));
            p.m.sync = c;
        }
        at = sm->now + 1 + rng_below(&sm->rng, MAX_DELAY);
        bucket_push(&sm->wheel[(at + STEP - 1) / STEP % WHEEL], &p);
    }
    swim_outbox_clear(nd->s);
    n = swim_events(nd->s, &ev);
    for (size_t k = 0; k < n; k++)
        on_event(sm, i, &ev[k]);
    swim_events_clear(nd->s);
}

static void deliver(struct sim *sm, struct packet *p)
{
    struct node *nd = &sm->nodes[p->to];

    swim_step(nd->s, id_of((int)p->from), &p->m);
    drain(sm, (int)p->to);
}

/* One step of virtual time: deliveries due, then ticks. */
static void step(struct sim *sm)
{
    struct bucket *b;

    sm->now += STEP;
    b = &sm->wheel[sm->now / STEP % WHEEL];
    for (size_t k = 0; k < b->n; k++) {
        struct packet *p = &b->pk[k];
        struct node *nd = &sm->nodes[p->to];

        if (nd->crashed) {
            free((void *)p->m.sync);
        } else if (nd->wake_every) {
            bucket_push(&nd->inbox, p);
        } else {
            deliver(sm, p);
            free((void *)p->m.sync);
        }
    }
    b->n = 0;
    for (int i = 0; i < sm->n; i++) {
        struct node *nd = &sm->nodes[i];

        if (nd->crashed)
            continue;
        if (nd->wake_every && sm->now < nd->next_wake)
            continue;
        /* Starved: the timers fire before the socket is read. */
        swim_tick(nd->s, sm->now);
        drain(sm, i);
        if (nd->wake_every) {
            if (getenv("DBG"))
                for (size_t k = 0; k < nd->inbox.n; k++) {
                    struct swim_msg *m = &nd->inbox.pk[k].m;
                    trace(sm, "wake: from %u type %d upd %u %s",
                          nd->inbox.pk[k].from + 1, m->type, m->n_updates,
                          m->n_updates && m->updates[0].id == 1
                              ? swim_state_name(m->updates[0].state)
                              : "");
                }
            for (size_t k = 0; k < nd->inbox.n; k++)
                deliver(sm, &nd->inbox.pk[k]);
            bucket_drain_free(&nd->inbox);
            nd->next_wake = sm->now + nd->wake_every;
        }
        if (sm->counting)
            sm->fig->member_ms += STEP;
    }
    for (int i = 0; i < sm->n && sm->counting; i++) {
        uint32_t h = swim_health(sm->nodes[i].s);

        if (h > sm->fig->max_lhm)
            sm->fig->max_lhm = h;
    }
}

static bool live(struct sim *sm, int i)
{
    return !sm->nodes[i].crashed && !sm->nodes[i].left;
}

static enum swim_state view(struct sim *sm, int obs, int subj, uint64_t *inc)
{
    enum swim_state st = SWIM_DEAD;

    if (swim_member(sm->nodes[obs].s, id_of(subj), &st, inc) < 0)
        return SWIM_LEFT + 1;
    return st;
}

static int sim_init(struct sim *sm, uint64_t seed, int n, bool verbose,
                    struct figures *fig)
{
    memset(sm, 0, sizeof(*sm));
    sm->seed = seed;
    sm->rng.s = seed * 0x2545f4914f6cdd1dULL + (uint64_t)n;
    sm->verbose = verbose;
    sm->n = n;
    sm->isolated = -1;
    sm->fig = fig;
    sm->failed = N_PROPS;
    sm->judge_dead = true;
    sm->nodes = calloc((size_t)n, sizeof(*sm->nodes));
    sm->dead_seen = calloc((size_t)n * n, sizeof(*sm->dead_seen));
    sm->first_dead = calloc((size_t)n, sizeof(*sm->first_dead));
    if (!sm->nodes || !sm->dead_seen || !sm->first_dead)
        return -1;
    for (int i = 0; i < n; i++) {
        struct node *nd = &sm->nodes[i];
        struct swim_options o = {.id = id_of(i), .rand = node_rand};

        nd->rng.s = rng_next(&sm->rng);
        o.rand_arg = &nd->rng;
        nd->s = swim_new(&o);
        if (!nd->s)
            return -1;
        for (int j = 0; j < n; j++)
            if (swim_add(nd->s, id_of(j)) < 0)
                return -1;
    }
    /* Member 1 is starved: it runs every 0.5..1.5 s. */
    sm->nodes[0].wake_every = 500 + 10 * rng_below(&sm->rng, MAX_WAKE_STEPS);
    sm->nodes[0].next_wake = sm->nodes[0].wake_every;
    trace(sm, "seed %" PRIu64 " n %d, member 1 wakes every %" PRIu64 " ms",
          seed, n, sm->nodes[0].wake_every);
    return 0;
}

static void sim_fini(struct sim *sm)
{
    for (int k = 0; k < WHEEL; k++) {
        bucket_drain_free(&sm->wheel[k]);
        free(sm->wheel[k].pk);
    }
    for (int i = 0; sm->nodes && i < sm->n; i++) {
        bucket_drain_free(&sm->nodes[i].inbox);
        free(sm->nodes[i].inbox.pk);
        swim_destroy(&sm->nodes[i].s);
    }
    free(sm->nodes);
    free(sm->dead_seen);
    free(sm->first_dead);
}

/* The longest a suspicion can last at n members, default options. */
static uint64_t max_suspicion_ms(int n)
{
    return (uint64_t)(6 * 4 * fmax(1.0, log10(n)) * PERIOD);
}

/* --- phases ----------------------------------------------------------- */

static void phase_steady(struct sim *sm)
{
    uint64_t end = sm->now + STEADY_MS;

    sm->counting = true;
    while (sm->now < end)
        step(sm);
    sm->counting = false;
    if (sm->false_dead)
        fail(sm, P_STEADY, "%d DEAD declarations of live members",
             sm->false_dead);
}

/* Suspected at its current incarnation (an older suspicion, already
 * refuted elsewhere, does not count).
 */
static bool anyone_suspects(struct sim *sm, int subj, uint64_t inc0)
{
    for (int i = 0; i < sm->n; i++) {
        uint64_t inc = 0;

        if (live(sm, i) && i != subj && view(sm, i, subj, &inc) != SWIM_ALIVE &&
            inc >= inc0)
            return true;
    }
    return false;
}

static int count_seeing(struct sim *sm, int subj, enum swim_state st,
                        uint64_t min_inc)
{
    int c = 0;

    for (int i = 0; i < sm->n; i++) {
        uint64_t inc = 0;

        if (live(sm, i) && i != subj && view(sm, i, subj, &inc) == st &&
            inc >= min_inc)
            c++;
    }
    return c;
}

static int live_count(struct sim *sm)
{
    int c = 0;

    for (int i = 0; i < sm->n; i++)
        c += live(sm, i);
    return c;
}

static int quorum_9999(int n)
{
    return (int)ceil(0.9999 * n);
}

static void phase_refute(struct sim *sm)
{
    int v = 1; /* member 2: not the starved one */
    uint64_t t0 = sm->now, inc0 = swim_incarnation(sm->nodes[v].s), inc, end,
             t_ref = 0;
    int others = live_count(sm) - 1;

    sm->isolated = v;
    sm->after_cut = true;
    while (!anyone_suspects(sm, v, inc0) && sm->now < t0 + ISOLATE_BOUND)
        step(sm);
    sm->isolated = -1;
    trace(sm, "member %d reconnected", v + 1);
    if (!anyone_suspects(sm, v, inc0)) {
        fail(sm, P_REFUTE, "member %d not suspected while cut off", v + 1);
        return;
    }
    for (end = sm->now + REFUTE_BOUND; sm->now < end;) {
        step(sm);
        inc = swim_incarnation(sm->nodes[v].s);
        if (!t_ref && inc > inc0)
            t_ref = sm->now;
        if (t_ref &&
            count_seeing(sm, v, SWIM_ALIVE, inc0 + 1) >= quorum_9999(others))
            break;
    }
    if (t_ref)
        samples_add(&sm->fig->spread, (double)(sm->now - t_ref) / 1000);
    samples_add(&sm->fig->refute, (double)(sm->now - t0) / 1000);
    if (sm->false_dead)
        fail(sm, P_STEADY, "%d DEAD declarations of live members",
             sm->false_dead);
    if (swim_incarnation(sm->nodes[v].s) <= inc0)
        fail(sm, P_REFUTE, "member %d never refuted", v + 1);
    else if (count_seeing(sm, v, SWIM_ALIVE, inc0 + 1) != others)
        fail(sm, P_REFUTE,
             "member %d ALIVE at a higher incarnation at only %d of %d "
             "after %d s",
             v + 1, count_seeing(sm, v, SWIM_ALIVE, inc0 + 1), others,
             REFUTE_BOUND / 1000);
}

static void phase_crash(struct sim *sm)
{
    int n_crash = sm->n / 25 > 1 ? sm->n / 25 : 1, crashed = 0;
    int leaver = -1, lv = -1;
    uint64_t t0 = sm->now, bound = max_suspicion_ms(sm->n) + 30 * PERIOD;
    bool done = false;

    /* Crash members 3.. at random (not the starved one nor 2). */
    while (crashed < n_crash) {
        int i = 2 + (int)rng_below(&sm->rng, (uint64_t)sm->n - 2);

        if (sm->nodes[i].crashed)
            continue;
        sm->nodes[i].crashed = true;
        sm->nodes[i].crashed_at = sm->now;
        crashed++;
        trace(sm, "member %d crashes", i + 1);
    }
    for (int i = 2; i < sm->n && leaver < 0; i++)
        if (!sm->nodes[i].crashed)
            leaver = i;
    if (leaver >= 0) {
        swim_leave(sm->nodes[leaver].s);
        drain(sm, leaver);
        trace(sm, "member %d leaves", leaver + 1);
    }
    while (!done && sm->now < t0 + bound) {
        step(sm);
        if (leaver >= 0 && !sm->nodes[leaver].left &&
            sm->now >= t0 + 3 * PERIOD) {
            /* Gone for good a few periods after announcing it. */
            sm->nodes[leaver].left = true;
            sm->nodes[leaver].crashed = true;
            lv = leaver;
        }
        done = lv >= 0;
        for (int s = 0; s < sm->n && done; s++)
            if (sm->nodes[s].crashed && s != lv &&
                count_seeing(sm, s, SWIM_DEAD, 0) != live_count(sm))
                done = false;
        if (done && lv >= 0 &&
            count_seeing(sm, lv, SWIM_LEFT, 0) != live_count(sm))
            done = false;
    }
    for (int s = 0; s < sm->n; s++) {
        uint64_t last = 0;
        int seen = 0, need = quorum_9999(live_count(sm));

        if (!sm->nodes[s].crashed || s == lv)
            continue;
        for (int i = 0; i < sm->n; i++) {
            uint64_t t = sm->dead_seen[(size_t)s * sm->n + i];

            if (!live(sm, i))
                continue;
            if (!t || view(sm, i, s, NULL) != SWIM_DEAD) {
                fail(sm, P_CRASH,
                     "member %d crashed at %.1f s, member %d has it %s "
                     "after %.1f s",
                     s + 1, (double)t0 / 1000, i + 1,
                     swim_state_name(view(sm, i, s, NULL)),
                     (double)bound / 1000);
                return;
            }
            last = t > last ? t : last;
            seen++;
        }
        samples_add(&sm->fig->detect, (double)(last - t0) / 1000);
        {
            /* Spread: first DEAD to 99.99 % of live members. */
            uint64_t *ts = malloc((size_t)sm->n * sizeof(*ts));
            int k = 0;

            if (!ts)
                abort();
            for (int i = 0; i < sm->n; i++)
                if (live(sm, i))
                    ts[k++] = sm->dead_seen[(size_t)s * sm->n + i];
            for (int a = 1; a < k; a++)
                for (int b = a; b > 0 && ts[b - 1] > ts[b]; b--) {
                    uint64_t t = ts[b];

                    ts[b] = ts[b - 1];
                    ts[b - 1] = t;
                }
            samples_add(&sm->fig->spread,
                        (double)(ts[need - 1] - sm->first_dead[s]) / 1000);
            free(ts);
            (void)seen;
        }
    }
    if (lv >= 0 && count_seeing(sm, lv, SWIM_LEFT, 0) != live_count(sm))
        fail(sm, P_CRASH, "leaver %d LEFT at only %d of %d members", lv + 1,
             count_seeing(sm, lv, SWIM_LEFT, 0), live_count(sm));
    if (sm->false_dead)
        fail(sm, P_STEADY, "%d DEAD declarations of live members",
             sm->false_dead);
}

/* The starved member (0) flaps between SUSPECT and ALIVE by design: of
 * it, only a DEAD view counts against convergence.
 */
static bool view_ok(struct sim *sm, int i, int j)
{
    enum swim_state st = view(sm, i, j, NULL);

    return st == SWIM_ALIVE || (j == 0 && st == SWIM_SUSPECT);
}

static bool converged(struct sim *sm)
{
    for (int i = 0; i < sm->n; i++)
        for (int j = 0; j < sm->n; j++)
            if (i != j && live(sm, i) && live(sm, j) && !view_ok(sm, i, j))
                return false;
    return true;
}

static void phase_partition(struct sim *sm)
{
    uint64_t split = max_suspicion_ms(sm->n) + 20 * PERIOD, t0;
    int sides[2] = {0, 0};

    for (int i = 0; i < sm->n; i++) {
        sm->nodes[i].group = (int)rng_below(&sm->rng, 2);
        sides[sm->nodes[i].group] += live(sm, i);
    }
    sm->judge_dead = false;
    trace(sm, "partition %d | %d for %.0f s", sides[0], sides[1],
          (double)split / 1000);
    sm->cut[0] = true;
    for (t0 = sm->now; sm->now < t0 + split;)
        step(sm);
    sm->cut[0] = false;
    trace(sm, "partition healed");
    for (t0 = sm->now; sm->now < t0 + HEAL_BOUND;) {
        step(sm);
        if (sm->now % PERIOD == 0 && converged(sm))
            break;
    }
    if (!converged(sm)) {
        for (int i = 0; i < sm->n; i++)
            for (int j = 0; j < sm->n; j++)
                if (i != j && live(sm, i) && live(sm, j) &&
                    !view_ok(sm, i, j)) {
                    fail(sm, P_PARTITION,
                         "%.0f s after healing, member %d sees %d %s",
                         (double)HEAL_BOUND / 1000, i + 1, j + 1,
                         swim_state_name(view(sm, i, j, NULL)));
                    return;
                }
    }
    samples_add(&sm->fig->heal, (double)(sm->now - t0) / 1000);
}

static enum prop run_seed(uint64_t seed, int n, bool verbose,
                          struct figures *fig, char *msg, size_t len)
{
    struct sim sm;
    enum prop p;

    if (sim_init(&sm, seed, n, verbose, fig) < 0) {
        snprintf(msg, len, "out of memory");
        sim_fini(&sm);
        return P_STEADY;
    }
    /* All phases run even after a failure, for the figures; only the
     * first failure is reported.
     */
    phase_steady(&sm);
    phase_refute(&sm);
    phase_crash(&sm);
    phase_partition(&sm);
    p = sm.failed;
    snprintf(msg, len, "%s", sm.fail);
    sim_fini(&sm);
    return p;
}

/* --- single-call checks ----------------------------------------------- */

static swim_t *member(struct rng *g, uint64_t id, int n)
{
    struct swim_options o = {.id = id, .rand = node_rand, .rand_arg = g};
    swim_t *s = swim_new(&o);

    for (int i = 1; s && i <= n; i++)
        if (swim_add(s, (uint64_t)i) < 0)
            swim_destroy(&s);
    return s;
}

/* One update from `from`, on an ACK nobody waits for. */
static void gossip(swim_t *s, uint64_t from, uint64_t id, uint64_t inc,
                   uint8_t state, uint64_t accuser)
{
    struct swim_msg m = {.type = SWIM_ACK, .from = from, .seq = 0xdead};

    m.updates[0] = (struct swim_update){id, inc, state, accuser};
    m.n_updates = 1;
    swim_step(s, from, &m);
}

static bool is(swim_t *s, uint64_t id, enum swim_state st, uint64_t inc)
{
    enum swim_state got;
    uint64_t ginc;

    return swim_member(s, id, &got, &ginc) == 0 && got == st && ginc == inc;
}

static void test_options(void)
{
    struct rng g = {1};
    struct swim_options o = {.id = 1, .rand = node_rand, .rand_arg = &g};
    struct swim_options bad[5];
    bool ok = true;
    swim_t *s;

    for (int i = 0; i < 5; i++)
        bad[i] = o;
    bad[0].id = 0;
    bad[1].rand = NULL;
    bad[2].probe_timeout_ms = 1000;
    bad[3].max_piggyback = SWIM_MAX_PIGGYBACK + 1;
    bad[4].indirect_probes = 17;
    for (int i = 0; i < 5; i++) {
        errno = 0;
        s = swim_new(&bad[i]);
        expect(&ok, !s && errno == EINVAL, "bad options refused");
        swim_destroy(&s);
    }
    s = swim_new(&o);
    expect(&ok, s != NULL, "swim_new");
    if (s) {
        expect(&ok, swim_add(s, 0) < 0 && errno == EINVAL, "add 0");
        expect(&ok, swim_add(s, 2) == 0 && swim_add(s, 2) == 0, "add twice");
        expect(&ok, swim_size(s) == 2, "size 2");
        expect(&ok, swim_remove(s, 1) < 0 && errno == EINVAL, "remove self");
        expect(&ok, swim_remove(s, 7) < 0 && errno == ENOENT, "remove unknown");
        expect(&ok, swim_remove(s, 2) == 0 && swim_size(s) == 1, "remove");
    }
    swim_destroy(&s);
    swim_destroy(&s);
    tap(ok, "options: bad ones refused, add/remove errors");
}

static void test_precedence(void)
{
    struct rng g = {2};
    swim_t *s = member(&g, 1, 3);
    const struct swim_event *ev;
    bool ok = true;
    size_t n;

    if (!s) {
        tap(false, "precedence: swim_new");
        return;
    }
    gossip(s, 3, 2, 0, SWIM_SUSPECT, 3);
    expect(&ok, is(s, 2, SWIM_SUSPECT, 0), "suspect beats alive");
    gossip(s, 3, 2, 0, SWIM_ALIVE, 0);
    expect(&ok, is(s, 2, SWIM_SUSPECT, 0), "alive same inc loses");
    gossip(s, 3, 2, 1, SWIM_ALIVE, 0);
    expect(&ok, is(s, 2, SWIM_ALIVE, 1), "higher inc wins");
    gossip(s, 3, 2, 1, SWIM_DEAD, 0);
    expect(&ok, is(s, 2, SWIM_DEAD, 1), "dead beats alive");
    gossip(s, 3, 2, 1, SWIM_SUSPECT, 3);
    expect(&ok, is(s, 2, SWIM_DEAD, 1), "suspect loses to dead");
    gossip(s, 3, 2, 1, SWIM_LEFT, 0);
    expect(&ok, is(s, 2, SWIM_LEFT, 1), "left beats dead");
    gossip(s, 3, 2, 1, SWIM_DEAD, 0);
    gossip(s, 3, 2, 1, SWIM_ALIVE, 0);
    expect(&ok, is(s, 2, SWIM_LEFT, 1), "left final for its inc");
    gossip(s, 3, 2, 2, SWIM_ALIVE, 0);
    expect(&ok, is(s, 2, SWIM_ALIVE, 2), "rejoin at a higher inc");
    gossip(s, 3, 2, 0, SWIM_DEAD, 0);
    expect(&ok, is(s, 2, SWIM_ALIVE, 2), "stale inc ignored");
    gossip(s, 3, 2, 9, 4, 0);
    gossip(s, 3, 2, 9, 255, 0);
    expect(&ok, is(s, 2, SWIM_ALIVE, 2), "garbage state ignored");
    gossip(s, 3, 99, 0, SWIM_DEAD, 0);
    expect(&ok, swim_member(s, 99, NULL, NULL) < 0, "unknown id ignored");
    n = swim_events(s, &ev);
    expect(&ok, n == 5, "one event per state change");
    if (n == 5)
        expect(&ok,
               ev[0].state == SWIM_SUSPECT && ev[1].state == SWIM_ALIVE &&
                   ev[2].state == SWIM_DEAD && ev[3].state == SWIM_LEFT &&
                   ev[4].state == SWIM_ALIVE && ev[4].incarnation == 2,
               "events in order");
    expect(&ok, swim_count(s, SWIM_ALIVE) == 3 && swim_count(s, SWIM_DEAD) == 0,
           "counts");
    swim_destroy(&s);
    tap(ok, "precedence: higher incarnation wins, then alive < suspect < "
            "dead < left");
}

static bool carries(const struct swim_msg *m, uint64_t id, uint64_t inc,
                    enum swim_state st)
{
    for (uint32_t i = 0; i < m->n_updates; i++)
        if (m->updates[i].id == id && m->updates[i].incarnation == inc &&
            m->updates[i].state == st)
            return true;
    return false;
}

static void test_refute(void)
{
    struct rng g = {3};
    swim_t *s = member(&g, 1, 3);
    struct swim_msg ping = {.type = SWIM_PING, .seq = 7, .target = 1};
    const struct swim_msg *out;
    bool ok = true;
    size_t n;

    if (!s) {
        tap(false, "refute: swim_new");
        return;
    }
    gossip(s, 2, 1, 0, SWIM_SUSPECT, 2);
    expect(&ok, swim_incarnation(s) == 1 && is(s, 1, SWIM_ALIVE, 1),
           "suspected at 0: incarnation 1");
    expect(&ok, swim_health(s) == 1, "refuting raises the LHM");
    n = swim_outbox(s, &out);
    expect(&ok,
           n >= 1 && out[0].type == SWIM_PING && out[0].to == 2 &&
               carries(&out[0], 1, 1, SWIM_ALIVE),
           "refutation sent at once to the informer");
    for (size_t i = 1; i < n; i++)
        expect(&ok,
               out[i].type == SWIM_GOSSIP && out[i].to == 3 &&
                   carries(&out[i], 1, 1, SWIM_ALIVE),
               "refutation gossiped at once to the others");
    expect(&ok, n == 2, "refutation gossiped to the one other member");
    swim_outbox_clear(s);
    gossip(s, 2, 1, 0, SWIM_DEAD, 0);
    expect(&ok, swim_incarnation(s) == 1, "stale accusation ignored");
    swim_step(s, 3, &ping);
    n = swim_outbox(s, &out);
    expect(&ok,
           n == 1 && out[0].type == SWIM_ACK && out[0].seq == 7 &&
               out[0].to == 3,
           "PING answered with ACK");
    expect(&ok, n == 1 && carries(&out[0], 1, 1, SWIM_ALIVE),
           "the ACK carries the refutation");
    swim_outbox_clear(s);
    gossip(s, 2, 1, 5, SWIM_DEAD, 0);
    expect(&ok, swim_incarnation(s) == 6, "declared dead at 5: 6");
    swim_leave(s);
    gossip(s, 2, 1, 6, SWIM_SUSPECT, 2);
    expect(&ok, is(s, 1, SWIM_LEFT, 6), "left: no refutation");
    swim_destroy(&s);
    tap(ok, "refutation: suspected or dead self -> higher incarnation, "
            "gossiped");
}

/* Answer every PING so that probes succeed and add no accusers. */
static void run_answering(swim_t *s, uint64_t from_ms, uint64_t to_ms)
{
    for (uint64_t t = from_ms; t <= to_ms; t += STEP) {
        const struct swim_msg *out;
        size_t n;

        swim_tick(s, t);
        n = swim_outbox(s, &out);
        struct swim_msg acks[8];
        size_t na = 0;
        uint64_t tos[8];

        for (size_t i = 0; i < n && na < 8; i++)
            if (out[i].type == SWIM_PING) {
                acks[na] =
                    (struct swim_msg){.type = SWIM_ACK, .seq = out[i].seq};
                tos[na++] = out[i].to;
            }
        swim_outbox_clear(s);
        for (size_t i = 0; i < na; i++)
            swim_step(s, tos[i], &acks[i]);
        swim_outbox_clear(s);
    }
}

/* Time at which member 5 becomes DEAD, suspected by `accusers`. */
static uint64_t time_to_dead(int accusers)
{
    struct rng g = {4};
    swim_t *s = member(&g, 1, 10);
    uint64_t t;

    if (!s)
        return 0;
    swim_tick(s, 0);
    swim_outbox_clear(s);
    for (int a = 0; a < accusers; a++)
        gossip(s, (uint64_t)a + 2, 5, 0, SWIM_SUSPECT, (uint64_t)a + 2);
    for (t = 0; t < 60000 && !is(s, 5, SWIM_DEAD, 0); t += STEP)
        run_answering(s, t + STEP, t + STEP);
    swim_destroy(&s);
    return t;
}

static void test_lifeguard(void)
{
    uint64_t t1 = time_to_dead(1), t2 = time_to_dead(2), t3 = time_to_dead(3),
             t5 = time_to_dead(5);
    bool ok = true;
    char what[128];

    /* n = 10: min 4 s, max 24 s, k = 2 confirmations expected. */
    snprintf(what, sizeof(what),
             "DEAD after %" PRIu64 "/%" PRIu64 "/%" PRIu64 "/%" PRIu64
             " ms with 1/2/3/5 accusers",
             t1, t2, t3, t5);
    expect(&ok, t1 >= 24000 && t1 <= 24010, what);
    expect(&ok, t2 > 4000 && t2 < t1 && t2 >= 11000 && t2 <= 11400, what);
    expect(&ok, t3 >= 4000 && t3 <= 4010 && t5 == t3, what);
    tap(ok, "lifeguard: suspicion timeout 24 s -> 11.4 s -> 4 s (n=10) as "
            "confirmations arrive");
}

static void test_odd_messages(uint64_t seed, int n_fuzz)
{
    struct rng g = {seed}, fz = {seed ^ 0x5eed};
    swim_t *s = member(&g, 1, 4);
    struct swim_msg m;
    const struct swim_msg *out;
    uint64_t inc[5];
    enum swim_state st[5];
    bool ok = true;

    if (!s) {
        tap(false, "odd messages: swim_new");
        return;
    }
    swim_tick(s, 0);
    swim_outbox_clear(s);
    for (int i = 1; i <= 4; i++)
        swim_member(s, (uint64_t)i, &st[i], &inc[i]);
    /* Each of these must change nothing and send nothing. */
    for (int k = 0; k < 9; k++) {
        uint64_t from = 2;

        memset(&m, 0, sizeof(m));
        m.type = SWIM_ACK;
        m.seq = 12345;
        m.n_updates = 1;
        m.updates[0] = (struct swim_update){3, 9, SWIM_DEAD, 0};
        switch (k) {
        case 0:
            from = 99;
            break; /* stranger */
        case 1:
            from = 1;
            break; /* self */
        case 2:
            m.n_updates = SWIM_MAX_PIGGYBACK + 1;
            break;
        case 3:
            m.type = 0, m.n_updates = 0;
            break;
        case 4:
            m.type = 77, m.n_updates = 0;
            break;
        case 5:
            m.type = SWIM_SYNC, m.n_sync = 3, m.n_updates = 0;
            break;
        case 6:
            m.type = SWIM_NACK, m.n_updates = 0;
            break;
        case 7:
            m.type = SWIM_PING_REQ, m.target = 42, m.n_updates = 0;
            break;
        case 8:
            m.type = SWIM_PING, m.target = 3, m.n_updates = 0;
            break;
        }
        swim_step(s, from, &m);
        expect(&ok, swim_outbox(s, &out) == 0, "odd message answered");
        for (int i = 1; i <= 4; i++)
            expect(&ok, is(s, (uint64_t)i, st[i], inc[i]),
                   "odd message changed the table");
    }
    /* Fuzz: random fields, random ticks; the table must stay sane. */
    for (int k = 0; k < n_fuzz; k++) {
        uint32_t sum = 0;
        uint64_t fill[4];

        for (int w = 0; w < 4; w++)
            fill[w] = rng_next(&fz);
        memset(&m, 0, sizeof(m));
        m.type = (enum swim_msg_type)rng_below(&fz, 7);
        m.seq = (uint32_t)rng_below(&fz, 20);
        m.target = rng_below(&fz, 7);
        m.reply = rng_below(&fz, 2);
        m.n_updates = (uint32_t)rng_below(&fz, SWIM_MAX_PIGGYBACK + 2);
        for (uint32_t i = 0; i < SWIM_MAX_PIGGYBACK; i++)
            m.updates[i] = (struct swim_update){
                rng_below(&fz, 7), rng_below(&fz, 4),
                (uint8_t)rng_below(&fz, 6), rng_below(&fz, 7)};
        if (m.type == SWIM_SYNC) {
            m.n_sync = (uint32_t)rng_below(&fz, SWIM_MAX_PIGGYBACK);
            m.sync = m.updates;
        }
        swim_step(s, rng_below(&fz, 7), &m);
        if (rng_below(&fz, 4) == 0)
            swim_tick(s, (uint64_t)k * 50 + (fill[0] & 63));
        if (rng_below(&fz, 200) == 0)
            swim_remove(s, 2 + rng_below(&fz, 3));
        if (rng_below(&fz, 100) == 0)
            swim_add(s, 2 + rng_below(&fz, 3));
        swim_outbox_clear(s);
        swim_events_clear(s);
        for (int x = SWIM_ALIVE; x <= SWIM_LEFT; x++)
            sum += swim_count(s, (enum swim_state)x);
        if (!expect(&ok, sum == swim_size(s) && swim_health(s) <= 8,
                    "fuzz: counts or LHM out of range"))
            break;
    }
    swim_destroy(&s);
    tap(ok,
        "odd messages ignored (strangers, self, stale seqs, bad types, "
        "unknown targets); %d random messages",
        n_fuzz);
}

/* --- main ------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr, "usage: sim_swim [--seeds N] [--first S] [--n N] "
                    "[--replay SEED] [--verbose]\n");
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

static void figures_print(int n, uint64_t seeds, struct figures *f)
{
    double secs = (double)f->member_ms / 1000;

    printf("# stats: n %d seeds %" PRIu64
           " detect p50 %.1f s p99 %.1f s (crash -> DEAD at all live)\n",
           n, seeds, percentile(&f->detect, 50), percentile(&f->detect, 99));
    printf("# stats: n %d spread-99.99%% p50 %.1f s p99 %.1f s (first DEAD "
           "or refutation -> 99.99%% of members)\n",
           n, percentile(&f->spread, 50), percentile(&f->spread, 99));
    printf("# stats: n %d refute p50 %.1f s p99 %.1f s (cut off -> ALIVE "
           "again everywhere); heal p50 %.1f s p99 %.1f s\n",
           n, percentile(&f->refute, 50), percentile(&f->refute, 99),
           percentile(&f->heal, 50), percentile(&f->heal, 99));
    printf("# stats: n %d per member per s: %.2f msgs %.0f bytes; false "
           "DEAD %" PRIu64
           "; SUSPECT events seen %.2f per member per min; max LHM "
           "%" PRIu64 "\n",
           n, secs ? (double)f->msgs / secs : 0,
           secs ? (double)f->bytes / secs : 0, f->false_dead,
           secs ? (double)f->suspicions / secs * 60 : 0, f->max_lhm);
}

static void figures_free(struct figures *f)
{
    free(f->detect.v);
    free(f->spread.v);
    free(f->refute.v);
    free(f->heal.v);
}

int main(int argc, char **argv)
{
    uint64_t seeds = 24, first = 1;
    int sizes[2] = {10, 50}, n_sizes = 2;
    bool verbose = false, replay = false;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--verbose"))
            verbose = true;
        else if (i + 1 >= argc)
            usage();
        else if (!strcmp(argv[i], "--seeds"))
            seeds = num(argv[++i]);
        else if (!strcmp(argv[i], "--first"))
            first = num(argv[++i]);
        else if (!strcmp(argv[i], "--n"))
            sizes[0] = (int)num(argv[++i]), n_sizes = 1;
        else if (!strcmp(argv[i], "--replay"))
            first = num(argv[++i]), seeds = 1, replay = true;
        else
            usage();
    }
    for (int k = 0; k < n_sizes; k++)
        if (sizes[k] < 4 || sizes[k] > 100000)
            usage();
    if (!replay) {
        test_options();
        test_precedence();
        test_refute();
        test_lifeguard();
        test_odd_messages(first, 5000);
    }
    for (int k = 0; k < n_sizes; k++) {
        int n = sizes[k];
        char bad[N_PROPS][160] = {{0}};
        struct figures fig = {0};

        for (uint64_t seed = first; seed < first + seeds; seed++) {
            char msg[256];
            enum prop p =
                run_seed(seed, n, verbose || replay, &fig, msg, sizeof(msg));

            if (p < N_PROPS) {
                size_t l = strlen(bad[p]);

                snprintf(bad[p] + l, sizeof(bad[0]) - l, " %" PRIu64, seed);
                tap(false, "n %d seed %" PRIu64 ": %s", n, seed, msg);
                printf("# replay: sim_swim --n %d --replay %" PRIu64 "\n", n,
                       seed);
            }
        }
        for (int p = 0; p < N_PROPS; p++) {
            if (bad[p][0])
                tap(false, "n %d seeds %" PRIu64 "-%" PRIu64 ": %s; failed:%s",
                    n, first, first + seeds - 1, prop_name[p], bad[p]);
            else
                tap(true, "n %d seeds %" PRIu64 "-%" PRIu64 ": %s", n, first,
                    first + seeds - 1, prop_name[p]);
        }
        figures_print(n, seeds, &fig);
        figures_free(&fig);
    }
    printf("1..%d\n", n_tests);
    return n_failed ? 1 : 0;
}
