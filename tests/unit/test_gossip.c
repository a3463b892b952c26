/* test_gossip.c - SWIM at run time (node/gossip.c) on an in-memory network
 *
 * Four gossip instances exchange real frames: every message a gossip
 * sends is encoded with wire_encode, queued with a delay of 1..20 ms of
 * virtual time, decoded with wire_decode and stepped into its receiver,
 * so the conversions to and from struct wire_swim are on the path.  No
 * sockets, no clock: time advances 10 ms per step, and randomness (the
 * gossips' and the network's) comes from splitmix64 streams seeded per
 * run, so a failing seed replays exactly.
 *
 * Checked: everyone sees everyone ALIVE; a member cut off is reported
 * DEAD by every other through gossip_events within a bound, and once
 * reconnected it refutes (higher incarnation) and is ALIVE everywhere
 * again; a graceful leave; the member table; replies going to the
 * authenticated sender; odd messages and failed sends counted.
 */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "node/gossip.h"

#define N 4
#define STEP_MS 10
#define MAX_DELAY_MS 20
#define WARMUP_MS 5000
#define DEAD_BOUND_MS 40000  /* cut off -> DEAD at every other member */
#define BACK_BOUND_MS 180000 /* reconnected -> ALIVE everywhere */
#define LEAVE_BOUND_MS 10000
#ifndef SEEDS
#define SEEDS 10 /* more: -DSEEDS=500 */
#endif

static const uint64_t ids[N] = {1, 6, 7, 12};

struct pkt {
    size_t from, to;
    uint64_t at; /* ms */
    unsigned char *buf;
    size_t len;
};

struct net;

struct node {
    struct net *net;
    size_t i;
    uint64_t rng;
};

struct net {
    uint64_t now; /* ms */
    uint64_t rng;
    gossip_t *g[N];
    struct node node[N];
    bool cut[N];
    struct pkt *q;
    size_t n_q, cap_q;
    /* the last event each member reported about each other */
    bool seen_set[N][N];
    enum swim_state seen[N][N];
    uint64_t seen_inc[N][N];
    json_int_t inc0[N];   /* each member's incarnation at start */
    uint64_t dead_inc[N]; /* the incarnation each held the cut one DEAD at */
    size_t bad_events;    /* SUSPECT or DEAD about a connected member */
};

static uint64_t splitmix(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t node_rand(void *arg)
{
    return splitmix(&((struct node *)arg)->rng);
}

static size_t index_of(uint64_t id)
{
    for (size_t i = 0; i < N; i++)
        if (ids[i] == id)
            return i;
    fail_msg("message to %llu, not a member", (unsigned long long)id);
    return N;
}

static double secs(uint64_t ms)
{
    return (double)ms / 1000;
}

/* gossip_send_fn: encode and queue; a cut-off member's traffic is lost
 * on the way, as on a real network (the send itself succeeds).
 */
static int net_send(void *arg, uint64_t to, const struct wire_msg *m)
{
    struct node *nd = arg;
    struct net *net = nd->net;
    size_t j = index_of(to);
    struct pkt p = {.from = nd->i, .to = j};
    err_t err = {{0}};

    assert_int_equal(m->type, WIRE_SWIM);
    assert_true(m->from == ids[nd->i]);
    assert_true(m->u.swim.to == to);
    if (wire_encode(m, &p.buf, &p.len, &err) < 0)
        fail_msg("encode: %s", err.text);
    if (net->cut[nd->i] || net->cut[j]) {
        free(p.buf);
        return 0;
    }
    p.at = net->now + 1 + splitmix(&net->rng) % MAX_DELAY_MS;
    if (net->n_q == net->cap_q) {
        net->cap_q = net->cap_q ? 2 * net->cap_q : 64;
        net->q = realloc(net->q, net->cap_q * sizeof(*net->q));
        assert_non_null(net->q);
    }
    net->q[net->n_q++] = p;
    return 0;
}

static void net_init(struct net *net, uint64_t seed)
{
    err_t err = {{0}};

    memset(net, 0, sizeof(*net));
    net->rng = seed;
    for (size_t i = 0; i < N; i++) {
        net->node[i] = (struct node){.net = net, .i = i, .rng = seed * 31 + i};
        net->g[i] = gossip_new(ids[i], net_send, &net->node[i], &err);
        if (!net->g[i])
            fail_msg("gossip_new: %s", err.text);
        gossip_set_rand(net->g[i], node_rand, &net->node[i]);
        json_t *j0 = gossip_json(net->g[i]);
        net->inc0[i] = json_integer_value(json_object_get(j0, "incarnation"));
        json_decref(j0);
        /* every member's list holds itself too, as the member table does */
        assert_int_equal(gossip_set_members(net->g[i], ids, N), 0);
    }
}

static void net_fini(struct net *net)
{
    for (size_t k = 0; k < net->n_q; k++)
        free(net->q[k].buf);
    free(net->q);
    for (size_t i = 0; i < N; i++) {
        gossip_destroy(&net->g[i]);
        assert_null(net->g[i]);
    }
}

static void deliver(struct net *net, const struct pkt *p)
{
    struct wire_msg m;
    err_t err = {{0}};

    if (wire_decode(p->buf, p->len, &m, &err) < 0)
        fail_msg("decode: %s", err.text);
    assert_true(m.from == ids[p->from]);
    gossip_step(net->g[p->to], &m, secs(net->now));
    wire_msg_fini(&m);
}

/* Events come out a few at a time, to exercise the cap. */
static void take_events(struct net *net, size_t i)
{
    struct swim_event ev[3];
    size_t n;

    while ((n = gossip_events(net->g[i], ev, 3)) > 0) {
        assert_true(n <= 3);
        for (size_t k = 0; k < n; k++) {
            size_t j = index_of(ev[k].id);

            assert_true(j != i);
            net->seen_set[i][j] = true;
            net->seen[i][j] = ev[k].state;
            net->seen_inc[i][j] = ev[k].incarnation;
            if (!net->cut[i] && !net->cut[j] &&
                (ev[k].state == SWIM_SUSPECT || ev[k].state == SWIM_DEAD))
                net->bad_events++;
        }
    }
}

static void net_step(struct net *net)
{
    size_t keep = 0;

    net->now += STEP_MS;
    /* stepping may queue replies: re-read n_q, keep order */
    for (size_t k = 0; k < net->n_q; k++) {
        struct pkt p = net->q[k];

        if (p.at > net->now) {
            net->q[keep++] = p;
            continue;
        }
        deliver(net, &p);
        free(p.buf);
    }
    net->n_q = keep;
    for (size_t i = 0; i < N; i++) {
        gossip_tick(net->g[i], secs(net->now));
        take_events(net, i);
    }
}

/* Step until done(net, arg) holds; the virtual ms it took, or -1. */
static long run_until(struct net *net, uint64_t bound_ms,
                      bool (*done)(struct net *, size_t), size_t arg)
{
    uint64_t start = net->now;

    while (net->now - start < bound_ms) {
        net_step(net);
        if (done(net, arg))
            return (long)(net->now - start);
    }
    return -1;
}

static bool state_is(struct net *net, size_t i, size_t j, enum swim_state want)
{
    enum swim_state st;

    return gossip_state(net->g[i], ids[j], &st) == 0 && st == want;
}

static bool all_alive(struct net *net, size_t unused)
{
    for (size_t i = 0; i < N; i++)
        for (size_t j = 0; j < N; j++)
            if (!state_is(net, i, j, SWIM_ALIVE))
                return false;
    return true;
}

static bool others_report(struct net *net, size_t x, enum swim_state st)
{
    for (size_t i = 0; i < N; i++)
        if (i != x && (!net->seen_set[i][x] || net->seen[i][x] != st))
            return false;
    return true;
}

static bool reported_dead(struct net *net, size_t x)
{
    return others_report(net, x, SWIM_DEAD);
}

/* x itself holds every other member DEAD: only a push-pull (SYNC)
 * crosses back then, since nobody probes or gossips to the DEAD.
 */
static bool sees_all_dead(struct net *net, size_t x)
{
    for (size_t j = 0; j < N; j++)
        if (j != x && !state_is(net, x, j, SWIM_DEAD))
            return false;
    return true;
}

static bool reported_left(struct net *net, size_t x)
{
    return others_report(net, x, SWIM_LEFT);
}

/* x refuted: ALIVE at a higher incarnation in every other member's
 * events, and every member sees every other ALIVE.
 */
static bool back_alive(struct net *net, size_t x)
{
    for (size_t i = 0; i < N; i++)
        if (i != x && net->seen_inc[i][x] <= net->dead_inc[i])
            return false;
    return others_report(net, x, SWIM_ALIVE) && all_alive(net, 0);
}

static int64_t json_num(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);

    assert_non_null(v);
    assert_true(json_is_integer(v));
    return json_integer_value(v);
}

/* Tests */

static void test_all_alive(void **state)
{
    struct net net;
    json_t *j;

    net_init(&net, 1);
    assert_true(run_until(&net, WARMUP_MS, all_alive, 0) >= 0);
    /* and it stays so: no loss, no suspicion */
    for (int k = 0; k < 60000 / STEP_MS; k++)
        net_step(&net);
    assert_true(all_alive(&net, 0));
    assert_int_equal(net.bad_events, 0);
    for (size_t i = 0; i < N; i++) {
        j = gossip_json(net.g[i]);
        assert_non_null(j);
        assert_int_equal(json_num(j, "members"), N);
        assert_int_equal(json_num(j, "alive"), N);
        assert_int_equal(json_num(j, "suspect"), 0);
        assert_int_equal(json_num(j, "dead"), 0);
        assert_int_equal(json_num(j, "left"), 0);
        /* no refutation: still the start incarnation (the start time) */
        assert_int_equal(json_num(j, "incarnation"), net.inc0[i]);
        assert_true(net.inc0[i] > 0);
        assert_int_equal(json_num(j, "health"), 0);
        /* a probe a second at least, each answered */
        assert_true(json_num(j, "sent") >= 60);
        assert_true(json_num(j, "received") >= 60);
        assert_true(json_num(j, "bytes_sent") >=
                    json_num(j, "sent") * (WIRE_HEADER_LEN + 27));
        assert_true(json_num(j, "bytes_received") >=
                    json_num(j, "received") * (WIRE_HEADER_LEN + 27));
        assert_int_equal(json_num(j, "dropped"), 0);
        assert_int_equal(json_num(j, "ignored"), 0);
        json_decref(j);
    }
    net_fini(&net);
}

/* Odd seeds reconnect the member as soon as the others hold it DEAD
 * (it still probes them: a quick refutation); even seeds only once it
 * holds them all DEAD too (healed by push-pull).
 */
static void test_dead_and_back(void **state)
{
    for (uint64_t seed = 1; seed <= SEEDS; seed++) {
        struct net net;
        size_t x = seed % N;
        long dead, back, apart = 0;
        json_t *j;

        net_init(&net, seed);
        assert_true(run_until(&net, WARMUP_MS, all_alive, 0) >= 0);
        net.cut[x] = true;
        dead = run_until(&net, DEAD_BOUND_MS, reported_dead, x);
        if (dead < 0)
            fail_msg("seed %llu: member %llu not DEAD everywhere in %d s",
                     (unsigned long long)seed, (unsigned long long)ids[x],
                     DEAD_BOUND_MS / 1000);
        /* nobody else was suspected meanwhile */
        assert_int_equal(net.bad_events, 0);
        for (size_t i = 0; i < N; i++)
            if (i != x) {
                assert_true(state_is(&net, i, x, SWIM_DEAD));
                net.dead_inc[i] = net.seen_inc[i][x];
            }
        if (seed % 2 == 0 &&
            (apart = run_until(&net, DEAD_BOUND_MS, sees_all_dead, x)) < 0)
            fail_msg("seed %llu: member %llu does not hold the others DEAD",
                     (unsigned long long)seed, (unsigned long long)ids[x]);
        net.cut[x] = false;
        back = run_until(&net, BACK_BOUND_MS, back_alive, x);
        if (back < 0)
            fail_msg("seed %llu: member %llu not ALIVE again in %d s",
                     (unsigned long long)seed, (unsigned long long)ids[x],
                     BACK_BOUND_MS / 1000);
        if (getenv("TEST_GOSSIP_VERBOSE"))
            printf("# seed %llu: member %llu DEAD everywhere after %.2f s, "
                   "cut off %.2f s more, ALIVE again after %.2f s\n",
                   (unsigned long long)seed, (unsigned long long)ids[x],
                   secs((uint64_t)dead), secs((uint64_t)apart),
                   secs((uint64_t)back));
        j = gossip_json(net.g[x]);
        for (size_t i = 0; i < N; i++)
            if (i != x)
                assert_true(json_num(j, "incarnation") >
                            (int64_t)net.dead_inc[i]);
        json_decref(j);
        net_fini(&net);
    }
}

static void test_leave(void **state)
{
    struct net net;
    size_t x = 2;
    enum swim_state st;

    net_init(&net, 7);
    assert_true(run_until(&net, WARMUP_MS, all_alive, 0) >= 0);
    gossip_leave(net.g[x]);
    assert_int_equal(gossip_state(net.g[x], ids[x], &st), 0);
    assert_int_equal(st, SWIM_LEFT);
    assert_true(run_until(&net, LEAVE_BOUND_MS, reported_left, x) >= 0);
    assert_int_equal(net.bad_events, 0);
    net_fini(&net);
}

/* A send function that records what it is given. */
struct capture {
    size_t calls;
    size_t n;
    uint64_t to[16];
    struct wire_swim msg[16];
    int rc;
};

static int capture_send(void *arg, uint64_t to, const struct wire_msg *m)
{
    struct capture *c = arg;

    assert_int_equal(m->type, WIRE_SWIM);
    c->calls++;
    if (c->n < 16) {
        c->to[c->n] = to;
        c->msg[c->n] = m->u.swim;
        c->msg[c->n].sync = NULL; /* borrowed */
        c->n++;
    }
    return c->rc;
}

static void test_members(void **state)
{
    struct capture c = {0};
    const uint64_t two[] = {5, 1, 0, 9, 5, 9};
    const uint64_t other[] = {9, 11, 3};
    enum swim_state st;
    err_t err = {{0}};
    gossip_t *g = gossip_new(5, capture_send, &c, &err);
    json_t *j;

    assert_non_null(g);
    assert_int_equal(gossip_state(g, 5, &st), 0); /* self */
    assert_int_equal(st, SWIM_ALIVE);
    assert_int_equal(gossip_state(g, 1, &st), -1);
    assert_int_equal(errno, ENOENT);
    /* self, 0 and duplicates ignored */
    assert_int_equal(gossip_set_members(g, two, 6), 0);
    j = gossip_json(g);
    assert_int_equal(json_num(j, "members"), 3);
    json_decref(j);
    assert_int_equal(gossip_state(g, 1, &st), 0);
    assert_int_equal(gossip_state(g, 9, &st), 0);
    /* 1 goes, 9 stays, 11 and 3 come */
    assert_int_equal(gossip_set_members(g, other, 3), 0);
    assert_int_equal(gossip_state(g, 1, &st), -1);
    assert_int_equal(gossip_state(g, 9, &st), 0);
    assert_int_equal(gossip_state(g, 11, &st), 0);
    assert_int_equal(gossip_state(g, 3, &st), 0);
    assert_int_equal(gossip_state(g, 5, &st), 0); /* never self */
    j = gossip_json(g);
    assert_int_equal(json_num(j, "members"), 4);
    json_decref(j);
    assert_int_equal(gossip_set_members(g, NULL, 0), 0);
    j = gossip_json(g);
    assert_int_equal(json_num(j, "members"), 1);
    json_decref(j);
    assert_int_equal(gossip_events(g, NULL, 0), 0);
    gossip_destroy(&g);
    assert_null(g);
    gossip_destroy(&g); /* safe on NULL */
    gossip_destroy(NULL);
}

/* Where the ACK of seq went among the captured messages, or 0. */
static uint64_t ack_to(const struct capture *c, uint32_t seq)
{
    for (size_t k = 0; k < c->n; k++)
        if (c->msg[k].type == WIRE_SWIM_ACK && c->msg[k].seq == seq) {
            assert_true(c->msg[k].to == c->to[k]);
            assert_true(c->msg[k].target == 1); /* the member answering */
            return c->to[k];
        }
    return 0;
}

/* The answer goes to the frame's sender, with the PING's seq. */
static void test_reply_to_sender(void **state)
{
    struct capture c = {0};
    const uint64_t members[] = {1, 2, 3};
    struct wire_msg m = {.type = WIRE_SWIM, .from = 2};
    err_t err = {{0}};
    gossip_t *g = gossip_new(1, capture_send, &c, &err);
    json_t *j;

    assert_non_null(g);
    assert_int_equal(gossip_set_members(g, members, 3), 0);
    m.u.swim = (struct wire_swim){
        .type = WIRE_SWIM_PING, .to = 1, .seq = 77, .target = 1};
    gossip_step(g, &m, 0.001);
    assert_true(ack_to(&c, 77) == 2);
    /* the same PING from member 3 is answered to member 3 */
    c.n = 0;
    m.from = 3;
    gossip_step(g, &m, 0.002);
    assert_true(ack_to(&c, 77) == 3);
    /* a stranger gets nothing */
    c.n = 0;
    m.from = 4;
    gossip_step(g, &m, 0.003);
    assert_true(ack_to(&c, 77) == 0);
    for (size_t k = 0; k < c.n; k++)
        assert_true(c.to[k] != 4);
    j = gossip_json(g);
    assert_int_equal(json_num(j, "received"), 3);
    assert_int_equal(json_num(j, "ignored"), 0);
    json_decref(j);
    gossip_destroy(&g);
}

static void test_odd_messages_ignored(void **state)
{
    struct capture c = {0};
    const uint64_t members[] = {1, 2};
    struct wire_msg m = {.type = WIRE_SWIM, .from = 2};
    err_t err = {{0}};
    gossip_t *g = gossip_new(1, capture_send, &c, &err);
    json_t *j;

    assert_non_null(g);
    assert_int_equal(gossip_set_members(g, members, 2), 0);
    gossip_tick(g, 1.0);
    c.n = 0;
    /* meant for another member */
    m.u.swim = (struct wire_swim){
        .type = WIRE_SWIM_PING, .to = 3, .seq = 1, .target = 3};
    gossip_step(g, &m, 1.0);
    /* not a SWIM message */
    m = (struct wire_msg){.type = WIRE_PROPOSE_RESP, .from = 2};
    gossip_step(g, &m, 1.0);
    /* a table count without the table */
    m = (struct wire_msg){.type = WIRE_SWIM, .from = 2};
    m.u.swim = (struct wire_swim){.type = WIRE_SWIM_SYNC, .to = 1, .n_sync = 3};
    gossip_step(g, &m, 1.0);
    /* a state the codec would refuse */
    m.u.swim =
        (struct wire_swim){.type = WIRE_SWIM_GOSSIP, .to = 1, .n_updates = 1};
    m.u.swim.updates[0] = (struct wire_swim_update){.id = 1, .state = 9};
    gossip_step(g, &m, 1.0);
    assert_int_equal(c.n, 0);
    j = gossip_json(g);
    assert_int_equal(json_num(j, "ignored"), 4);
    assert_int_equal(json_num(j, "received"), 0);
    assert_true(json_num(j, "incarnation") <= (json_int_t)time(NULL));
    json_decref(j);
    gossip_destroy(&g);
}

static void test_send_failures_counted(void **state)
{
    struct capture c = {.rc = -1};
    const uint64_t members[] = {1, 2, 3};
    err_t err = {{0}};
    gossip_t *g = gossip_new(1, capture_send, &c, &err);
    json_t *j;

    assert_non_null(g);
    assert_int_equal(gossip_set_members(g, members, 3), 0);
    for (int ms = 0; ms <= 5000; ms += STEP_MS)
        gossip_tick(g, secs((uint64_t)ms));
    j = gossip_json(g);
    assert_true(c.calls > 0);
    assert_int_equal(json_num(j, "dropped"), c.calls);
    assert_int_equal(json_num(j, "sent"), 0);
    assert_int_equal(json_num(j, "bytes_sent"), 0);
    json_decref(j);
    gossip_destroy(&g);
}

static void test_new_refuses(void **state)
{
    struct capture c = {0};
    err_t err = {{0}};

    errno = 0;
    assert_null(gossip_new(0, capture_send, &c, &err));
    assert_int_equal(errno, EINVAL);
    assert_true(err.text[0] != '\0');
    errno = 0;
    assert_null(gossip_new(1, NULL, NULL, &err));
    assert_int_equal(errno, EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_alive),
        cmocka_unit_test(test_dead_and_back),
        cmocka_unit_test(test_leave),
        cmocka_unit_test(test_members),
        cmocka_unit_test(test_reply_to_sender),
        cmocka_unit_test(test_odd_messages_ignored),
        cmocka_unit_test(test_send_failures_counted),
        cmocka_unit_test(test_new_refuses),
    };

    return cmocka_run_group_tests_name("gossip", tests, NULL, NULL);
}
