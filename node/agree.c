/* agree.c - agreement at run time: Raft + transport + store + fsm
 *
 * Order inside agree_flush(), which Raft's safety rests on: the hard
 * state and new entries are written (synchronously) before the messages
 * of the same Ready are sent, so no vote or acknowledgement is ever sent
 * for something a crash could forget; committed entries are applied
 * after that, each in its own transaction with the applied index.
 *
 * Proposals never call into Raft directly: they are queued and handed to
 * Raft at the start of the next flush, so that nothing re-enters Raft
 * between raft_ready() and raft_advance().
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "node/agree.h"
#include "node/lease.h"
#include "node/log.h"
#include "store/members.h"
#include "store/raftlog.h"

enum waiter_state {
    W_QUEUED,  /* not yet handed to a leader */
    W_SENT,    /* forwarded; waiting for the leader's index */
    W_INDEXED, /* in the log at index; waiting to be applied here */
};

struct waiter {
    uint64_t req_id;
    uint64_t index;
    unsigned char *data;
    size_t len;
    agree_done_fn cb;
    void *arg;
    double deadline;
    enum waiter_state st;
};

struct agree {
    store_t *store;
    transport_t *t;
    raft_t *raft;
    uint64_t self;
    agree_applied_fn applied_cb;
    void *arg;
    struct waiter *w;
    size_t nw, capw;
    uint64_t next_req;
    uint64_t rng;
    uint64_t applied;
    struct lease lease;
    enum raft_role logged_role; /* what was last logged */
    uint64_t logged_term, logged_leader;
};

static uint64_t splitmix(void *arg)
{
    uint64_t *s = arg;
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Membership to start with: the last RAFT_ENTRY_CONF in the log (it took
 * effect when appended), else the voters and active members in the
 * member table.
 */
static void initial_conf(store_t *s, const struct wire_entry *log, size_t n,
                         struct raft_conf *c)
{
    struct member *v = NULL;
    size_t nm = 0;

    memset(c, 0, sizeof(*c));
    for (size_t i = n; i > 0; i--)
        if (log[i - 1].type == RAFT_ENTRY_CONF &&
            raft_conf_decode(log[i - 1].data, log[i - 1].len, c) == 0)
            return;
    if (members_list(s, &v, &nm, NULL) < 0)
        return;
    for (size_t i = 0; i < nm && c->n < RAFT_MAX_PEERS; i++) {
        if (strcmp(v[i].state, "active") != 0)
            continue;
        c->ids[c->n] = v[i].id;
        c->voter[c->n] = v[i].voter;
        c->n++;
    }
    free(v);
}

agree_t *agree_new(store_t *s, transport_t *t, uint64_t self,
                   agree_applied_fn applied, void *arg, err_t *err)
{
    struct raftlog_state rs;
    struct wire_entry *log = NULL;
    struct raft_hard_state hs;
    struct raft_conf conf;
    struct raft_options opt = {0};
    size_t n = 0;
    agree_t *a = calloc(1, sizeof(*a));

    if (!a) {
        errprintf_errno(err, "cannot start Raft");
        return NULL;
    }
    if (raftlog_load(s, &rs, &log, &n, err) < 0) {
        free(a);
        return NULL;
    }
    a->store = s;
    a->t = t;
    a->self = self;
    a->applied_cb = applied;
    a->arg = arg;
    a->applied = rs.applied;
    randombytes_buf(&a->rng, sizeof(a->rng));
    randombytes_buf(&a->next_req, sizeof(a->next_req));
    initial_conf(s, log, n, &conf);
    hs.term = rs.term;
    hs.vote = rs.vote;
    hs.commit = rs.applied <= n ? rs.applied : n;
    opt.id = self;
    opt.election_ticks = AGREE_ELECTION_TICKS;
    opt.heartbeat_ticks = 1;
    opt.pre_vote = true;
    opt.check_quorum = true;
    opt.max_append = 256;
    opt.rand = splitmix;
    opt.rand_arg = &a->rng;
    a->raft = raft_new(&opt, &conf, &hs, log, n, hs.commit);
    raftlog_free(log, n);
    if (!a->raft) {
        errprintf_errno(err, "cannot start Raft");
        free(a);
        return NULL;
    }
    return a;
}

static void finish(agree_t *a, size_t i, bool ok, const struct fsm_effects *fx,
                   const char *error)
{
    struct waiter w = a->w[i];

    a->w[i] = a->w[--a->nw];
    if (w.cb)
        w.cb(w.arg, ok, w.index, fx, error);
    free(w.data);
}

void agree_destroy(agree_t **ap)
{
    agree_t *a;

    if (!ap || !*ap)
        return;
    a = *ap;
    while (a->nw > 0)
        finish(a, a->nw - 1, false, NULL, "peerd is stopping");
    free(a->w);
    raft_destroy(&a->raft);
    free(a);
    *ap = NULL;
}

int agree_propose(agree_t *a, json_t *op, agree_done_fn cb, void *arg,
                  double now)
{
    char *text = fsm_payload(op);
    struct waiter *w;

    if (!text)
        return -1;
    if (a->nw == a->capw) {
        size_t cap = a->capw ? a->capw * 2 : 16;
        struct waiter *p = realloc(a->w, cap * sizeof(*p));
        if (!p) {
            free(text);
            return -1;
        }
        a->w = p;
        a->capw = cap;
    }
    w = &a->w[a->nw++];
    memset(w, 0, sizeof(*w));
    w->req_id = ++a->next_req;
    w->data = (unsigned char *)text;
    w->len = strlen(text);
    w->cb = cb;
    w->arg = arg;
    w->deadline = now + AGREE_PROPOSE_TIMEOUT;
    w->st = W_QUEUED;
    return 0;
}

/* An APPEND carries its send time (microseconds of the monotonic clock)
 * as its stamp; the answer echoes it, which times the lease by when the
 * heartbeat left, not when the answer arrived (node/lease.h).
 */
static void send_raft(agree_t *a, enum wire_type type,
                      const struct wire_raft *r, double now)
{
    struct wire_msg m = {.type = type, .from = a->self};

    m.u.raft = *r;
    if (type == WIRE_APPEND)
        m.u.raft.hint = (uint64_t)(now * 1e6);
    transport_send(a->t, r->to, &m);
}

/* Log Raft's role, term and leader when they change. */
static void log_role(agree_t *a)
{
    enum raft_role role = raft_role(a->raft);
    uint64_t term = raft_term(a->raft), leader = raft_leader(a->raft);

    if (role == a->logged_role && term == a->logged_term &&
        leader == a->logged_leader)
        return;
    if (role != RAFT_PRE_CANDIDATE)
        log_info("raft: term %llu, %s, leader %llu", (unsigned long long)term,
                 raft_role_name(role), (unsigned long long)leader);
    a->logged_role = role;
    a->logged_term = term;
    a->logged_leader = leader;
}

/* Start counting a new lease when this peer became leader of a term. */
static void lease_sync(agree_t *a, double now)
{
    log_role(a);
    if (raft_role(a->raft) == RAFT_LEADER) {
        /* A handover that was given up: its TIMEOUT_NOW may still arrive
         * and make the target leader past the voters' wait, so this term
         * holds no lease again; step down for a new election instead.
         */
        if (a->lease.term == raft_term(a->raft) && a->lease.revoked &&
            raft_transferee(a->raft) == 0) {
            log_warnx("the handover of term %llu did not happen; stepping "
                      "down for a new election",
                      (unsigned long long)a->lease.term);
            raft_step_down(a->raft);
            a->lease.term = 0;
            return;
        }
        if (a->lease.term != raft_term(a->raft))
            lease_reset(&a->lease, raft_term(a->raft), now);
    } else if (a->lease.term != 0) {
        a->lease.term = 0;
    }
}

/* Hand queued proposals to Raft (leader) or to the leader. */
static void drain(agree_t *a)
{
    uint64_t leader = raft_leader(a->raft);

    for (size_t i = 0; i < a->nw; i++) {
        struct waiter *w = &a->w[i];
        if (w->st != W_QUEUED || leader == 0)
            continue;
        if (leader == a->self) {
            uint64_t idx = raft_propose(a->raft, FSM_ENTRY, w->data, w->len);
            if (idx > 0) {
                w->index = idx;
                w->st = W_INDEXED;
            }
        } else {
            struct wire_msg m = {.type = WIRE_PROPOSE, .from = a->self};
            m.u.propose.request_id = w->req_id;
            m.u.propose.type = FSM_ENTRY;
            m.u.propose.len = (uint32_t)w->len;
            m.u.propose.data = w->data;
            if (transport_send(a->t, leader, &m) == 0)
                w->st = W_SENT;
        }
    }
}

/* The leader takes a write forwarded by another peer. */
static int conf_find(const struct raft_conf *c, uint64_t id);

/* May member `from` have the leader propose this?  Only members Raft
 * counts may write; what a member says about a member (its hashes, its
 * leave) it may say only about itself; the first entry is never
 * forwarded.  NULL if allowed, else why not.
 */
static const char *may_forward(agree_t *a, uint64_t from,
                               const struct wire_propose *p)
{
    json_error_t jerr;
    json_t *o;
    const char *op, *why = NULL;
    json_int_t id = -1;

    if (p->type != FSM_ENTRY)
        return "not an application entry";
    if (conf_find(raft_conf(a->raft), from) < 0)
        return "not a member";
    if (!(o = json_loadb((const char *)p->data, p->len, 0, &jerr)) ||
        !(op = json_string_value(json_object_get(o, "op"))))
        why = "not an operation";
    else if (strcmp(op, "bootstrap") == 0)
        why = "a cluster is bootstrapped only once";
    else if ((strcmp(op, "member_leave") == 0 ||
              strcmp(op, "member_report") == 0) &&
             (json_unpack(o, "{s:I}", "id", &id) < 0 || (uint64_t)id != from))
        why = "a member speaks only for itself";
    json_decref(o);
    return why;
}

static void forwarded(agree_t *a, uint64_t from, const struct wire_propose *p)
{
    struct wire_msg m = {.type = WIRE_PROPOSE_RESP, .from = a->self};
    struct wire_propose_resp *r = &m.u.propose_resp;
    uint64_t idx = 0;

    const char *why = may_forward(a, from, p);

    r->request_id = p->request_id;
    if (why) {
        snprintf(r->error, sizeof(r->error), "%s", why);
        log_warnx("refused a write forwarded by member %llu: %s",
                  (unsigned long long)from, why);
    } else if ((idx = raft_propose(a->raft, p->type, p->data, p->len)) == 0)
        snprintf(r->error, sizeof(r->error), "%s",
                 errno == EPERM ? "not the leader" : strerror(errno));
    r->ok = idx > 0;
    r->index = idx;
    transport_send(a->t, from, &m);
}

static void forward_answered(agree_t *a, const struct wire_propose_resp *r)
{
    for (size_t i = 0; i < a->nw; i++) {
        struct waiter *w = &a->w[i];
        if (w->req_id != r->request_id || w->st != W_SENT)
            continue;
        if (r->ok && r->index > 0) {
            w->index = r->index;
            w->st = W_INDEXED;
            /* applied already (a fast follower)? checked in flush */
        } else {
            finish(a, i, false, NULL, r->error[0] ? r->error : "refused");
        }
        return;
    }
}

void agree_step(agree_t *a, struct wire_msg *m, double now)
{
    switch (m->type) {
    case WIRE_PREVOTE:
    case WIRE_PREVOTE_RESP:
    case WIRE_VOTE:
    case WIRE_VOTE_RESP:
    case WIRE_APPEND:
    case WIRE_APPEND_RESP:
    case WIRE_TIMEOUT_NOW:
        if (m->u.raft.to != a->self)
            log_debug("dropped %s meant for %llu", wire_type_name(m->type),
                      (unsigned long long)m->u.raft.to);
        else {
            if (m->type == WIRE_APPEND_RESP && a->lease.term != 0 &&
                m->u.raft.term == a->lease.term && m->u.raft.commit > 0) {
                double sent = m->u.raft.commit / 1e6;
                lease_heard(&a->lease, m->from, sent < now ? sent : now);
            }
            raft_step(a->raft, m->type, m->from, &m->u.raft);
            lease_sync(a, now);
        }
        break;
    case WIRE_PROPOSE:
        forwarded(a, m->from, &m->u.propose);
        break;
    case WIRE_PROPOSE_RESP:
        forward_answered(a, &m->u.propose_resp);
        break;
    default:
        log_debug("dropped %s on the peer socket", wire_type_name(m->type));
        break;
    }
    wire_msg_fini(m);
}

static int voters_wanted(agree_t *a)
{
    char *v = NULL;
    int n = 3;

    if (store_get(a->store, STORE_CONFIG, "voters", &v, NULL) == 1 && v) {
        int x = atoi(v);
        if (x == 1 || x == 3 || x == 5)
            n = x;
    }
    free(v);
    return n;
}

static int conf_find(const struct raft_conf *c, uint64_t id)
{
    for (uint32_t i = 0; i < c->n; i++)
        if (c->ids[i] == id)
            return (int)i;
    return -1;
}

/* Leader: one step of bringing Raft's membership to the member table. */
static void reconcile(agree_t *a)
{
    const struct raft_conf *cur = raft_conf(a->raft);
    struct raft_conf next = *cur;
    struct member *v = NULL;
    size_t n = 0;
    int voters = 0, want = voters_wanted(a), k;
    bool change = false;
    unsigned char buf[5 + 9 * RAFT_MAX_PEERS + 1];
    size_t len = 0;

    if (raft_role(a->raft) != RAFT_LEADER ||
        members_list(a->store, &v, &n, NULL) < 0)
        return;
    for (uint32_t i = 0; i < cur->n; i++)
        voters += cur->voter[i];
    /* 1. a member that left goes out */
    for (size_t i = 0; i < n && !change; i++) {
        if (strcmp(v[i].state, "active") == 0 || v[i].id == a->self ||
            (k = conf_find(cur, v[i].id)) < 0)
            continue;
        next.ids[k] = next.ids[next.n - 1];
        next.voter[k] = next.voter[next.n - 1];
        next.n--;
        change = true;
    }
    /* 2. a new member comes in as a learner */
    for (size_t i = 0; i < n && !change; i++) {
        if (strcmp(v[i].state, "active") != 0 || conf_find(cur, v[i].id) >= 0 ||
            next.n == RAFT_MAX_PEERS)
            continue;
        next.ids[next.n] = v[i].id;
        next.voter[next.n] = false;
        next.n++;
        change = true;
    }
    /* 3. a caught-up learner becomes a voter while voters are wanted.
     * Single-server changes pass through an even count (1 -> 2 -> 3);
     * go to an even count only when a second caught-up learner is there
     * to reach the next odd one, since two voters stop at one failure.
     */
    int ready = 0, first = -1;
    for (uint32_t i = 0; i < cur->n; i++) {
        if (cur->voter[i] ||
            raft_match(a->raft, cur->ids[i]) < raft_commit_index(a->raft))
            continue;
        if (first < 0)
            first = (int)i;
        ready++;
    }
    if (!change && voters < want && first >= 0 &&
        (voters % 2 == 0 || ready >= 2)) {
        next.voter[first] = true;
        change = true;
    }
    free(v);
    if (!change || raft_conf_encode(&next, buf, sizeof(buf), &len) < 0)
        return;
    if (raft_propose(a->raft, RAFT_ENTRY_CONF, buf, len) > 0)
        log_info("proposed a membership change (%u peers)", next.n);
}

void agree_tick(agree_t *a, double now)
{
    raft_tick(a->raft);
    lease_sync(a, now);
    for (size_t i = 0; i < a->nw;) {
        if (a->w[i].deadline <= now)
            finish(a, i, false, NULL,
                   raft_leader(a->raft) ? "timed out waiting for the commit"
                                        : "no leader (no quorum?)");
        else
            i++;
    }
    reconcile(a);
}

/* A proposal waiting at this index is done: ours, or lost. */
static void complete(agree_t *a, const struct wire_entry *e,
                     const struct fsm_effects *fx)
{
    for (size_t i = 0; i < a->nw;) {
        struct waiter *w = &a->w[i];
        if (w->st != W_INDEXED || w->index != e->index) {
            i++;
            continue;
        }
        if (e->type == FSM_ENTRY && e->len == w->len &&
            memcmp(e->data, w->data, w->len) == 0)
            finish(a, i, true, fx, NULL);
        else
            finish(a, i, false, NULL, "lost in a change of leader");
    }
}

int agree_flush(agree_t *a, double now)
{
    struct raft_ready rd;
    err_t err;
    int rc = 0;

    drain(a);
    lease_sync(a, now);
    if (!raft_has_ready(a->raft))
        return 0;
    raft_ready(a->raft, &rd);
    if ((rd.hard_state_changed || rd.n_entries > 0) &&
        raftlog_save(a->store, rd.hard_state_changed ? &rd.hs.term : NULL,
                     rd.hard_state_changed ? &rd.hs.vote : NULL, rd.entries,
                     rd.n_entries, &err) < 0) {
        /* nothing may be sent for what is not on disk */
        log_warnx("cannot persist the Raft log: %s", err.text);
        rd.hard_state_changed = false;
        rd.n_entries = 0;
        rd.n_msgs = 0;
        rd.n_committed = 0;
        raft_advance(a->raft, &rd);
        return -1;
    }
    for (size_t i = 0; i < rd.n_msgs; i++)
        send_raft(a, rd.msg_types[i], &rd.msgs[i], now);
    for (size_t i = 0; i < rd.n_committed; i++) {
        const struct wire_entry *e = &rd.committed[i];
        struct fsm_effects fx;
        if (e->index <= a->applied)
            continue; /* applied before a restart */
        if (fsm_apply(a->store, e, &fx, &err) < 0) {
            log_warnx("cannot apply entry %llu: %s",
                      (unsigned long long)e->index, err.text);
            rd.n_committed = i;
            rc = -1;
            break;
        }
        a->applied = e->index;
        if (a->applied_cb)
            a->applied_cb(a->arg, e, &fx);
        complete(a, e, &fx);
    }
    raft_advance(a->raft, &rd);
    return rc;
}

int agree_transfer(agree_t *a, uint64_t to)
{
    const struct raft_conf *c = raft_conf(a->raft);
    uint64_t best = 0, best_match = 0;

    if (to == 0) {
        for (uint32_t i = 0; i < c->n; i++) {
            uint64_t m = raft_match(a->raft, c->ids[i]);
            if (c->voter[i] && c->ids[i] != a->self && m >= best_match) {
                best = c->ids[i];
                best_match = m;
            }
        }
        to = best;
    }
    if (to == 0) {
        errno = EINVAL;
        return -1;
    }
    if (raft_transfer(a->raft, to) < 0)
        return -1;
    /* the new leader skips the wait (TIMEOUT_NOW): give the lease up */
    a->lease.revoked = true;
    return 0;
}

bool agree_lease_held(agree_t *a, double now)
{
    return raft_role(a->raft) == RAFT_LEADER &&
           lease_held(&a->lease, raft_conf(a->raft), a->self, now);
}

double agree_lease_until(agree_t *a, double now)
{
    if (raft_role(a->raft) != RAFT_LEADER)
        return 0;
    return lease_until(&a->lease, raft_conf(a->raft), a->self, now);
}

uint64_t agree_term(agree_t *a)
{
    return raft_term(a->raft);
}

int agree_voters(agree_t *a, uint64_t *ids, int cap)
{
    const struct raft_conf *c = raft_conf(a->raft);
    int n = 0;

    for (uint32_t i = 0; i < c->n; i++)
        if (c->voter[i] && n < cap)
            ids[n++] = c->ids[i];
    return n;
}

bool agree_has_quorum(agree_t *a)
{
    return raft_has_quorum(a->raft);
}

bool agree_in_conf(agree_t *a, uint64_t id)
{
    return conf_find(raft_conf(a->raft), id) >= 0;
}

uint64_t agree_leader(agree_t *a)
{
    return raft_leader(a->raft);
}

bool agree_is_leader(agree_t *a)
{
    return raft_role(a->raft) == RAFT_LEADER;
}

uint64_t agree_applied(agree_t *a)
{
    return a->applied;
}

json_t *agree_status_json(agree_t *a)
{
    const struct raft_conf *c = raft_conf(a->raft);
    json_t *voters = json_array(), *learners = json_array();
    json_t *match = json_object();
    char key[32];

    for (uint32_t i = 0; i < c->n; i++) {
        json_array_append_new(c->voter[i] ? voters : learners,
                              json_integer((json_int_t)c->ids[i]));
        if (agree_is_leader(a)) {
            snprintf(key, sizeof(key), "%llu", (unsigned long long)c->ids[i]);
            json_object_set_new(
                match, key,
                json_integer(
                    (json_int_t)(c->ids[i] == a->self
                                     ? raft_last_index(a->raft)
                                     : raft_match(a->raft, c->ids[i]))));
        }
    }
    return json_pack("{s:I,s:s,s:I,s:I,s:I,s:I,s:b,s:o,s:o,s:o}", "term",
                     (json_int_t)raft_term(a->raft), "role",
                     raft_role_name(raft_role(a->raft)), "leader",
                     (json_int_t)raft_leader(a->raft), "commit",
                     (json_int_t)raft_commit_index(a->raft), "applied",
                     (json_int_t)a->applied, "last_index",
                     (json_int_t)raft_last_index(a->raft), "has_quorum",
                     raft_has_quorum(a->raft), "voters", voters, "learners",
                     learners, "match", match);
}
