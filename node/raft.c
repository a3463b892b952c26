/* raft.c - Raft agreement as a pure state machine
 *
 * The shape is etcd's raft package: raft_tick(), raft_step() and
 * raft_propose() change the state and queue messages; raft_ready() hands
 * out what to persist, send and apply; raft_advance() records that it was
 * done.  Nothing here does I/O, reads a clock, logs, or draws randomness
 * other than through opt->rand.
 *
 * Invariants:
 * - log[i] holds the entry of index i + 1: the whole log stays in memory
 *   (no compaction and no snapshots in this version);
 * - applied <= commit <= last index; entries below `unstable` are on the
 *   caller's disk, the others still have to be handed out;
 * - conf is the latest decodable RAFT_ENTRY_CONF entry of the log (at
 *   conf_index), or the configuration given to raft_new when the log holds
 *   none: a configuration takes effect when appended, and is undone when
 *   a conflicting leader truncates it away;
 * - prs[] and votes[] are parallel to conf.ids[];
 * - every queued message owns a deep copy of its entries, so a later
 *   truncation or reallocation of the log cannot change what was sent;
 * - between raft_ready and raft_advance nothing mutates (asserted), so the
 *   pointers in struct raft_ready stay valid.
 */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "node/raft.h"

/* APPENDs a leader keeps in flight to one follower in replicate mode. */
#define MAX_INFLIGHT 8
/* An APPEND must fit one frame: room is kept for the header and the
 * fixed fields, and each entry costs its data plus term, index, type and
 * length (proto/wire.c).
 */
#define APPEND_MAX_BYTES (WIRE_MAX_FRAME - 256)
#define ENTRY_WIRE_BYTES 21
#define CONF_VERSION 1
#define CONF_HEADER_LEN 5 /* version u8, n u32 */
#define CONF_PEER_LEN 9   /* id u64, flags u8 */
#define CONF_VOTER 0x01

enum pr_state {
    PR_PROBE,     /* one APPEND at a time until the follower's log matches */
    PR_REPLICATE, /* stream entries, next advanced optimistically */
};

/* What a leader knows of one member's log. */
struct progress {
    uint64_t next, match;
    enum pr_state state;
    bool probe_sent;
    bool heard;                      /* an APPEND_RESP arrived in this term */
    uint64_t heard_at;               /* r->now when it did */
    uint64_t inflight[MAX_INFLIGHT]; /* ring: last index of each APPEND */
    unsigned in_start, in_count;
};

/* A peer the latest configuration removed: the leader keeps sending it
 * the log until it holds the entry that removes it, so that it learns it
 * must stop campaigning.
 */
struct departing {
    uint64_t id;
    uint64_t until; /* index of the removing entry */
    uint64_t since; /* r->now when removed; given up after a while */
    struct progress pr;
};

enum campaign_kind {
    CAMPAIGN_PRE,
    CAMPAIGN_ELECTION,
    CAMPAIGN_TRANSFER,
};

struct raft {
    struct raft_options opt;
    uint64_t term, vote, commit, applied;
    struct raft_hard_state saved; /* last hard state handed out */
    enum raft_role role;
    uint64_t lead;

    struct wire_entry *log;
    size_t n_log, cap_log;
    uint64_t unstable;

    struct raft_conf base_conf, conf;
    uint64_t conf_index;
    struct progress prs[RAFT_MAX_PEERS];
    int8_t votes[RAFT_MAX_PEERS]; /* 0 none, 1 granted, -1 rejected */
    struct departing gone[RAFT_MAX_PEERS];
    uint32_t n_gone;

    uint64_t now;
    int election_elapsed, heartbeat_elapsed, timeout;
    int leader_ticks;
    int quiet; /* ticks since we last led or heard a leader (or started) */
    uint64_t term_start; /* index of this leader's NOOP entry */
    uint64_t transferee;
    int transfer_elapsed;

    struct wire_raft *msgs;
    enum wire_type *types;
    size_t n_msgs, cap_msgs;
    bool in_ready;
};

/* --- log ------------------------------------------------------------ */

static uint64_t last_index(const struct raft *r)
{
    return r->n_log;
}

/* Term of entry i; 0 for index 0 and for indexes past the end. */
static uint64_t term_at(const struct raft *r, uint64_t i)
{
    if (i == 0 || i > r->n_log)
        return 0;
    return r->log[i - 1].term;
}

static int entry_copy(struct wire_entry *dst, const struct wire_entry *src)
{
    *dst = *src;
    dst->data = NULL;
    if (src->len > 0) {
        if (!(dst->data = malloc(src->len)))
            return -1;
        memcpy(dst->data, src->data, src->len);
    }
    return 0;
}

static void entries_free(struct wire_entry *e, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(e[i].data);
    free(e);
}

static int log_reserve(struct raft *r, size_t extra)
{
    size_t want = r->n_log + extra, cap = r->cap_log ? r->cap_log : 64;
    struct wire_entry *p;

    if (want <= r->cap_log)
        return 0;
    while (cap < want)
        cap *= 2;
    if (!(p = realloc(r->log, cap * sizeof(*p))))
        return -1;
    r->log = p;
    r->cap_log = cap;
    return 0;
}

/* --- configuration -------------------------------------------------- */

static int conf_find(const struct raft_conf *c, uint64_t id)
{
    for (uint32_t i = 0; i < c->n; i++)
        if (c->ids[i] == id)
            return (int)i;
    return -1;
}

static bool conf_is_voter(const struct raft_conf *c, uint64_t id)
{
    int i = conf_find(c, id);

    return i >= 0 && c->voter[i];
}

static uint32_t conf_voters(const struct raft_conf *c)
{
    uint32_t n = 0;

    for (uint32_t i = 0; i < c->n; i++)
        n += c->voter[i];
    return n;
}

static bool conf_valid(const struct raft_conf *c)
{
    if (c->n > RAFT_MAX_PEERS)
        return false;
    for (uint32_t i = 0; i < c->n; i++) {
        if (c->ids[i] == 0)
            return false;
        for (uint32_t j = 0; j < i; j++)
            if (c->ids[j] == c->ids[i])
                return false;
    }
    return true;
}

/* Voters that are in one configuration and not in the other. */
static uint32_t conf_voter_changes(const struct raft_conf *a,
                                   const struct raft_conf *b)
{
    uint32_t n = 0;

    for (uint32_t i = 0; i < a->n; i++)
        if (a->voter[i] && !conf_is_voter(b, a->ids[i]))
            n++;
    for (uint32_t i = 0; i < b->n; i++)
        if (b->voter[i] && !conf_is_voter(a, b->ids[i]))
            n++;
    return n;
}

static uint32_t quorum(const struct raft *r)
{
    return conf_voters(&r->conf) / 2 + 1;
}

static bool promotable(const struct raft *r)
{
    return conf_is_voter(&r->conf, r->opt.id);
}

static bool lone_voter(const struct raft *r)
{
    for (uint32_t i = 0; i < r->conf.n; i++)
        if (r->conf.voter[i] && r->conf.ids[i] != r->opt.id)
            return false;
    return promotable(r);
}

static void progress_reset(struct raft *r, struct progress *pr, uint64_t id)
{
    memset(pr, 0, sizeof(*pr));
    pr->next = last_index(r) + 1;
    pr->state = PR_PROBE;
    if (id == r->opt.id) {
        pr->match = last_index(r);
        pr->heard = true;
        pr->heard_at = r->now;
    }
}

static void abort_transfer(struct raft *r)
{
    r->transferee = 0;
    r->transfer_elapsed = 0;
}

static void gone_drop(struct raft *r, uint32_t k)
{
    r->gone[k] = r->gone[--r->n_gone];
}

static int gone_find(const struct raft *r, uint64_t id)
{
    for (uint32_t k = 0; k < r->n_gone; k++)
        if (r->gone[k].id == id)
            return (int)k;
    return -1;
}

static void gone_add(struct raft *r, uint64_t id, uint64_t until,
                     const struct progress *pr)
{
    struct departing *d;

    if (r->n_gone == RAFT_MAX_PEERS)
        gone_drop(r, 0);
    d = &r->gone[r->n_gone++];
    d->id = id;
    d->until = until;
    d->since = r->now;
    d->pr = *pr;
}

/* Switch to configuration c (from the entry at index, 0 = base), keeping
 * what the leader knows of members that stay.
 */
static void conf_set(struct raft *r, const struct raft_conf *c, uint64_t index)
{
    struct progress old[RAFT_MAX_PEERS];
    struct raft_conf old_conf = r->conf;
    int k;

    memcpy(old, r->prs, sizeof(old));
    for (uint32_t i = 0; i < c->n; i++) {
        int j = conf_find(&old_conf, c->ids[i]);

        if (j >= 0)
            r->prs[i] = old[j];
        else
            progress_reset(r, &r->prs[i], c->ids[i]);
        if ((k = gone_find(r, c->ids[i])) >= 0)
            gone_drop(r, (uint32_t)k);
    }
    if (r->role == RAFT_LEADER) {
        for (uint32_t j = 0; j < old_conf.n; j++)
            if (old_conf.ids[j] != r->opt.id &&
                conf_find(c, old_conf.ids[j]) < 0)
                gone_add(r, old_conf.ids[j], index, &old[j]);
    }
    memset(r->votes, 0, sizeof(r->votes));
    r->conf = *c;
    r->conf_index = index;
    if (r->transferee && !conf_is_voter(c, r->transferee))
        abort_transfer(r);
}

/* After a truncation: the configuration is the latest one left. */
static void conf_rescan(struct raft *r)
{
    struct raft_conf c;

    for (uint64_t i = last_index(r); i > 0; i--) {
        const struct wire_entry *e = &r->log[i - 1];

        if (e->type == RAFT_ENTRY_CONF &&
            raft_conf_decode(e->data, e->len, &c) == 0) {
            conf_set(r, &c, i);
            return;
        }
    }
    conf_set(r, &r->base_conf, 0);
}

/* Append one entry whose data is already owned (capacity reserved). */
static void log_push(struct raft *r, const struct wire_entry *e)
{
    struct raft_conf c;

    r->log[r->n_log++] = *e;
    if (e->type == RAFT_ENTRY_CONF &&
        raft_conf_decode(e->data, e->len, &c) == 0)
        conf_set(r, &c, e->index);
}

/* Drop entries from index `from` on; they are not committed. */
static void log_truncate(struct raft *r, uint64_t from)
{
    assert(from > r->commit && from <= last_index(r));
    for (uint64_t i = from; i <= last_index(r); i++)
        free(r->log[i - 1].data);
    r->n_log = from - 1;
    if (r->unstable > from)
        r->unstable = from;
    if (r->conf_index >= from)
        conf_rescan(r);
}

/* --- messages ------------------------------------------------------- */

static struct wire_raft *msg_new(struct raft *r, enum wire_type type,
                                 uint64_t to)
{
    struct wire_raft *m;

    if (r->n_msgs == r->cap_msgs) {
        size_t cap = r->cap_msgs ? 2 * r->cap_msgs : 16;
        struct wire_raft *msgs = realloc(r->msgs, cap * sizeof(*msgs));
        enum wire_type *types;

        if (!msgs)
            return NULL;
        r->msgs = msgs;
        if (!(types = realloc(r->types, cap * sizeof(*types))))
            return NULL;
        r->types = types;
        r->cap_msgs = cap;
    }
    m = &r->msgs[r->n_msgs];
    memset(m, 0, sizeof(*m));
    m->to = to;
    m->term = r->term;
    r->types[r->n_msgs++] = type;
    return m;
}

/* A failed allocation drops a message: to Raft that is a lost packet. */
static void send_simple(struct raft *r, enum wire_type type, uint64_t to,
                        uint64_t term, bool reject)
{
    struct wire_raft *m = msg_new(r, type, to);

    if (m) {
        m->term = term;
        m->reject = reject;
    }
}

/* Copies of log entries [from, from + n) for a message. */
static struct wire_entry *entries_dup(struct raft *r, uint64_t from, size_t n)
{
    struct wire_entry *e = calloc(n, sizeof(*e));

    if (!e)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (entry_copy(&e[i], &r->log[from - 1 + i]) < 0) {
            entries_free(e, i);
            return NULL;
        }
    }
    return e;
}

static void msgs_clear(struct raft *r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        entries_free(r->msgs[i].entries, r->msgs[i].n_entries);
    if (n < r->n_msgs) {
        memmove(r->msgs, r->msgs + n, (r->n_msgs - n) * sizeof(*r->msgs));
        memmove(r->types, r->types + n, (r->n_msgs - n) * sizeof(*r->types));
    }
    r->n_msgs -= n;
}

/* --- roles ---------------------------------------------------------- */

static void reset_timeout(struct raft *r)
{
    int e = r->opt.election_ticks;

    r->election_elapsed = 0;
    r->timeout = e + (int)(r->opt.rand(r->opt.rand_arg) % (uint64_t)e);
}

static void reset(struct raft *r, uint64_t term)
{
    if (term != r->term) {
        r->term = term;
        r->vote = 0;
    }
    r->lead = 0;
    reset_timeout(r);
    r->heartbeat_elapsed = 0;
    abort_transfer(r);
    memset(r->votes, 0, sizeof(r->votes));
    r->n_gone = 0;
}

static void become_follower(struct raft *r, uint64_t term, uint64_t lead)
{
    reset(r, term);
    r->role = RAFT_FOLLOWER;
    r->lead = lead;
}

/* Has this peer led or heard a leader within an election timeout?  Then
 * it votes for nobody else.  Counted across term changes and from start
 * (a peer that just started may have answered a leader a moment before it
 * stopped): the controller lease relies on it (node/lease.h).
 */
static bool in_lease(const struct raft *r)
{
    if (r->role == RAFT_LEADER)
        return true;
    return r->quiet < r->opt.election_ticks;
}

static bool log_up_to_date(const struct raft *r, uint64_t index, uint64_t term)
{
    uint64_t lt = term_at(r, last_index(r));

    return term > lt || (term == lt && index >= last_index(r));
}

/* --- replication (leader) ------------------------------------------- */

static bool pr_paused(const struct progress *pr)
{
    if (pr->state == PR_PROBE)
        return pr->probe_sent;
    return pr->in_count == MAX_INFLIGHT;
}

static void pr_become_probe(struct progress *pr)
{
    pr->state = PR_PROBE;
    pr->next = pr->match + 1;
    pr->probe_sent = false;
    pr->in_count = 0;
}

static void pr_become_replicate(struct progress *pr)
{
    pr->state = PR_REPLICATE;
    pr->next = pr->match + 1;
    pr->probe_sent = false;
    pr->in_count = 0;
}

static void inflight_add(struct progress *pr, uint64_t last)
{
    pr->inflight[(pr->in_start + pr->in_count) % MAX_INFLIGHT] = last;
    pr->in_count++;
}

static void inflight_free_to(struct progress *pr, uint64_t index)
{
    while (pr->in_count > 0 && pr->inflight[pr->in_start] <= index) {
        pr->in_start = (pr->in_start + 1) % MAX_INFLIGHT;
        pr->in_count--;
    }
}

/* Send member i the entries from its next index on (at most max_append).
 * An empty APPEND goes out only when allow_empty: it probes whether the
 * follower holds next - 1.  Returns whether a message was queued.
 */
static bool send_append(struct raft *r, uint64_t to, struct progress *pr,
                        bool allow_empty)
{
    uint64_t prev = pr->next - 1, n = 0;
    struct wire_raft *m;
    struct wire_entry *e = NULL;

    if (pr_paused(pr))
        return false;
    for (uint64_t bytes = 0; n < r->opt.max_append && prev + n < last_index(r);
         n++) {
        bytes += ENTRY_WIRE_BYTES + r->log[prev + n].len;
        if (n > 0 && bytes > APPEND_MAX_BYTES)
            break;
    }
    if (n == 0 && !allow_empty)
        return false;
    if (n > 0 && !(e = entries_dup(r, prev + 1, n)))
        return false;
    if (!(m = msg_new(r, WIRE_APPEND, to))) {
        entries_free(e, n);
        return false;
    }
    m->index = prev;
    m->log_term = term_at(r, prev);
    m->commit = r->commit;
    m->entries = e;
    m->n_entries = (uint32_t)n;
    if (pr->state == PR_PROBE) {
        pr->probe_sent = true;
    } else if (n > 0) {
        pr->next = prev + n + 1;
        inflight_add(pr, prev + n);
    }
    return true;
}

/* A heartbeat is an empty APPEND at the follower's match index, which it
 * is known to hold, so it never triggers a spurious reject; the commit it
 * carries is capped at match for the same reason.
 */
static void send_heartbeat(struct raft *r, uint64_t to,
                           const struct progress *pr)
{
    struct wire_raft *m = msg_new(r, WIRE_APPEND, to);

    if (!m)
        return;
    m->index = pr->match;
    m->log_term = term_at(r, pr->match);
    m->commit = r->commit < pr->match ? r->commit : pr->match;
}

static void bcast_append(struct raft *r)
{
    for (uint32_t i = 0; i < r->conf.n; i++)
        if (r->conf.ids[i] != r->opt.id)
            send_append(r, r->conf.ids[i], &r->prs[i], false);
    for (uint32_t k = 0; k < r->n_gone; k++)
        send_append(r, r->gone[k].id, &r->gone[k].pr, false);
}

static void bcast_heartbeat(struct raft *r)
{
    for (uint32_t i = 0; i < r->conf.n; i++)
        if (r->conf.ids[i] != r->opt.id)
            send_heartbeat(r, r->conf.ids[i], &r->prs[i]);
    for (uint32_t k = 0; k < r->n_gone; k++)
        send_heartbeat(r, r->gone[k].id, &r->gone[k].pr);
}

static void send_timeout_now(struct raft *r, uint64_t to)
{
    send_simple(r, WIRE_TIMEOUT_NOW, to, r->term, false);
}

/* A leader that is no longer a voter steps down once that configuration
 * is committed (Raft thesis §4.2.2), handing over to an up-to-date voter
 * so the cluster need not wait for an election timeout.
 */
static void step_down_if_removed(struct raft *r)
{
    if (r->role != RAFT_LEADER || promotable(r) || r->conf_index > r->commit)
        return;
    for (uint32_t i = 0; i < r->conf.n; i++) {
        if (r->conf.voter[i] && r->prs[i].match == last_index(r)) {
            send_timeout_now(r, r->conf.ids[i]);
            break;
        }
    }
    become_follower(r, r->term, 0);
}

/* Advance commit to the highest index a quorum of voters holds, if that
 * entry is of the current term (Raft §5.4.2).
 */
static bool maybe_commit(struct raft *r)
{
    uint64_t m[RAFT_MAX_PEERS], n;
    uint32_t k = 0;

    for (uint32_t i = 0; i < r->conf.n; i++) {
        if (!r->conf.voter[i])
            continue;
        uint64_t v = r->prs[i].match;
        uint32_t j = k++;

        for (; j > 0 && m[j - 1] < v; j--)
            m[j] = m[j - 1];
        m[j] = v;
    }
    if (k == 0)
        return false;
    n = m[quorum(r) - 1];
    if (n <= r->commit || term_at(r, n) != r->term)
        return false;
    r->commit = n;
    return true;
}

static void after_commit(struct raft *r)
{
    bcast_heartbeat(r);
    step_down_if_removed(r);
}

static bool quorum_active(const struct raft *r)
{
    uint32_t n = 0;

    for (uint32_t i = 0; i < r->conf.n; i++) {
        const struct progress *pr = &r->prs[i];

        if (!r->conf.voter[i])
            continue;
        if (r->conf.ids[i] == r->opt.id ||
            (pr->heard &&
             r->now - pr->heard_at < (uint64_t)r->opt.election_ticks))
            n++;
    }
    return n >= quorum(r);
}

static int append_own(struct raft *r, uint8_t type, const void *data,
                      size_t len)
{
    struct wire_entry e = {.term = r->term,
                           .index = last_index(r) + 1,
                           .type = type,
                           .len = (uint32_t)len};
    int self;

    if (log_reserve(r, 1) < 0)
        return -1;
    if (len > 0) {
        if (!(e.data = malloc(len)))
            return -1;
        memcpy(e.data, data, len);
    }
    log_push(r, &e);
    if ((self = conf_find(&r->conf, r->opt.id)) >= 0) {
        r->prs[self].match = last_index(r);
        r->prs[self].next = last_index(r) + 1;
    }
    return 0;
}

static void become_leader(struct raft *r)
{
    reset(r, r->term);
    r->role = RAFT_LEADER;
    r->lead = r->opt.id;
    r->leader_ticks = 0;
    for (uint32_t i = 0; i < r->conf.n; i++)
        progress_reset(r, &r->prs[i], r->conf.ids[i]);
    /* The NOOP commits the entries of earlier terms (§5.4.2) and marks
     * where this term starts.  Without memory for it, leading is
     * pointless: give the term up.
     */
    if (append_own(r, RAFT_ENTRY_NOOP, NULL, 0) < 0) {
        become_follower(r, r->term, 0);
        return;
    }
    r->term_start = last_index(r);
    if (maybe_commit(r))
        after_commit(r);
    if (r->role == RAFT_LEADER)
        bcast_append(r);
}

/* --- elections ------------------------------------------------------ */

static void campaign(struct raft *r, enum campaign_kind kind);

/* Record a vote and act on the tally. */
static void poll(struct raft *r, int i, bool granted)
{
    uint32_t yes = 0, no = 0;

    if (r->votes[i] == 0)
        r->votes[i] = granted ? 1 : -1;
    for (uint32_t j = 0; j < r->conf.n; j++) {
        if (!r->conf.voter[j])
            continue;
        yes += r->votes[j] > 0;
        no += r->votes[j] < 0;
    }
    if (yes >= quorum(r)) {
        if (r->role == RAFT_PRE_CANDIDATE)
            campaign(r, CAMPAIGN_ELECTION);
        else
            become_leader(r);
    } else if (no >= quorum(r)) {
        become_follower(r, r->term, 0);
    }
}

static void campaign(struct raft *r, enum campaign_kind kind)
{
    enum wire_type type = WIRE_VOTE;
    uint64_t term;
    int self = conf_find(&r->conf, r->opt.id);

    /* The last two terms are kept out of reach so term + 1 cannot wrap. */
    if (!promotable(r) || r->role == RAFT_LEADER || r->term >= UINT64_MAX - 1)
        return;
    if (kind == CAMPAIGN_PRE) {
        reset(r, r->term);
        r->role = RAFT_PRE_CANDIDATE;
        type = WIRE_PREVOTE;
        term = r->term + 1;
    } else {
        reset(r, r->term + 1);
        r->role = RAFT_CANDIDATE;
        r->vote = r->opt.id;
        term = r->term;
    }
    for (uint32_t i = 0; i < r->conf.n; i++) {
        struct wire_raft *m;

        if (!r->conf.voter[i] || r->conf.ids[i] == r->opt.id)
            continue;
        if (!(m = msg_new(r, type, r->conf.ids[i])))
            continue;
        m->term = term;
        m->index = last_index(r);
        m->log_term = term_at(r, last_index(r));
        m->hint = kind == CAMPAIGN_TRANSFER;
    }
    poll(r, self, true);
}

static void handle_vote(struct raft *r, enum wire_type type, uint64_t from,
                        const struct wire_raft *m)
{
    bool pre = type == WIRE_PREVOTE;
    enum wire_type resp = pre ? WIRE_PREVOTE_RESP : WIRE_VOTE_RESP;
    bool can = r->vote == from || (r->vote == 0 && r->lead == 0) ||
               (pre && m->term > r->term);
    bool force = type == WIRE_VOTE && m->hint == 1;

    /* stickiness also within a term we moved to without a leader */
    if (!force && (pre || r->opt.check_quorum) && in_lease(r) &&
        r->vote != from)
        can = false;

    if (can && log_up_to_date(r, m->index, m->log_term)) {
        /* A granted pre-vote answers with the term asked about, so the
         * pre-candidate does not take it for a newer term.
         */
        send_simple(r, resp, from, m->term, false);
        if (!pre) {
            r->election_elapsed = 0;
            r->vote = from;
        }
    } else {
        send_simple(r, resp, from, r->term, true);
    }
}

/* --- replication (follower) ----------------------------------------- */

/* An APPEND's entries must follow prev and each other, with terms
 * between prev's and the message's; anything else is malformed.
 */
static bool append_well_formed(const struct wire_raft *m)
{
    uint64_t t = m->log_term;

    if (m->n_entries > WIRE_MAX_ENTRIES || (m->n_entries > 0 && !m->entries))
        return false;
    if (m->index > UINT64_MAX - m->n_entries || m->log_term > m->term)
        return false;
    for (uint32_t k = 0; k < m->n_entries; k++) {
        const struct wire_entry *e = &m->entries[k];

        if (e->index != m->index + k + 1 || e->term < t || e->term == 0 ||
            e->term > m->term)
            return false;
        if (e->len > WIRE_MAX_FRAME || (e->len > 0 && !e->data))
            return false;
        t = e->term;
    }
    return true;
}

/* The highest index at which our log may still agree with the leader's
 * after a mismatch at prev: before the run of entries of the conflicting
 * term, but not below commit (committed entries always agree).
 */
static uint64_t conflict_hint(const struct raft *r, uint64_t prev)
{
    uint64_t t = term_at(r, prev), i = prev;

    while (i - 1 > r->commit && term_at(r, i - 1) == t)
        i--;
    return i - 1;
}

/* stamp: the hint of the APPEND answered, echoed in commit (raft.h) */
static void send_append_resp(struct raft *r, uint64_t to, bool reject,
                             uint64_t index, uint64_t hint, uint64_t stamp)
{
    struct wire_raft *m = msg_new(r, WIRE_APPEND_RESP, to);

    if (m) {
        m->reject = reject;
        m->index = index;
        m->hint = hint;
        m->commit = stamp;
    }
}

static int handle_append(struct raft *r, uint64_t from,
                         const struct wire_raft *m)
{
    uint64_t lastnew, commit;
    uint32_t k, n = m->n_entries;
    struct wire_entry *copies = NULL;
    bool conflict = false;

    if (m->index > last_index(r)) {
        send_append_resp(r, from, true, m->index, last_index(r), m->hint);
        return 0;
    }
    if (term_at(r, m->index) != m->log_term) {
        if (m->index <= r->commit)
            goto bad; /* a leader always holds our committed entries */
        send_append_resp(r, from, true, m->index, conflict_hint(r, m->index),
                         m->hint);
        return 0;
    }
    for (k = 0; k < n; k++) {
        const struct wire_entry *e = &m->entries[k];

        if (e->index > last_index(r))
            break;
        if (term_at(r, e->index) != e->term) {
            if (e->index <= r->commit)
                goto bad;
            conflict = true;
            break;
        }
    }
    /* Everything that can fail happens before the log changes. */
    if (k < n) {
        if (log_reserve(r, n - k) < 0 ||
            !(copies = calloc(n - k, sizeof(*copies))))
            goto nomem;
        for (uint32_t j = k; j < n; j++)
            if (entry_copy(&copies[j - k], &m->entries[j]) < 0) {
                entries_free(copies, j - k);
                goto nomem;
            }
        if (conflict)
            log_truncate(r, m->entries[k].index);
        for (uint32_t j = k; j < n; j++)
            log_push(r, &copies[j - k]);
        free(copies);
    }
    lastnew = m->index + n;
    commit = m->commit < lastnew ? m->commit : lastnew;
    if (commit > r->commit)
        r->commit = commit;
    send_append_resp(r, from, false, lastnew, 0, m->hint);
    return 0;
bad:
    errno = EINVAL;
    return -1;
nomem:
    errno = ENOMEM;
    return -1;
}

/* --- replication responses (leader) --------------------------------- */

/* A follower rejected an APPEND at prev `rejected`; move next back.
 * Returns false for a stale reject (etcd's MaybeDecrTo).
 */
static bool pr_decrease(struct progress *pr, uint64_t rejected, uint64_t hint)
{
    uint64_t to;

    if (pr->state == PR_REPLICATE) {
        if (rejected <= pr->match)
            return false;
        pr_become_probe(pr);
        return true;
    }
    if (pr->next - 1 != rejected)
        return false;
    to = hint < rejected ? hint + 1 : rejected;
    pr->next = to > pr->match + 1 ? to : pr->match + 1;
    pr->probe_sent = false;
    return true;
}

static void handle_append_resp(struct raft *r, uint64_t from,
                               struct progress *pr, const struct wire_raft *m)
{
    pr->heard = true;
    pr->heard_at = r->now;
    if (m->reject) {
        if (pr_decrease(pr, m->index, m->hint))
            send_append(r, from, pr, true);
        return;
    }
    if (m->index > last_index(r))
        return; /* claims entries this leader never had */
    if (m->index > pr->match) {
        pr->match = m->index;
        if (pr->next <= m->index)
            pr->next = m->index + 1;
        if (pr->state == PR_PROBE)
            pr_become_replicate(pr);
        else
            inflight_free_to(pr, m->index);
        if (maybe_commit(r)) {
            after_commit(r);
            if (r->role != RAFT_LEADER)
                return;
        }
        while (send_append(r, from, pr, false))
            ;
    } else {
        /* A heartbeat answer (or an old duplicate): unblock a paused
         * follower and probe the tail in case APPENDs were lost.
         */
        pr->probe_sent = false;
        if (pr->state == PR_REPLICATE && pr->in_count == MAX_INFLIGHT) {
            pr->in_start = (pr->in_start + 1) % MAX_INFLIGHT;
            pr->in_count--;
        }
        if (pr->match < last_index(r) || pr->state == PR_PROBE)
            send_append(r, from, pr, true);
    }
    if (r->transferee == from && pr->match == last_index(r))
        send_timeout_now(r, from);
}

/* --- public --------------------------------------------------------- */

static bool options_valid(const struct raft_options *o)
{
    return o->id != 0 && o->election_ticks > 0 && o->heartbeat_ticks > 0 &&
           o->heartbeat_ticks < o->election_ticks &&
           o->election_ticks <= 1000000 && o->max_append > 0 &&
           o->max_append <= WIRE_MAX_ENTRIES && o->rand;
}

static bool log_valid(const struct raft_hard_state *hs,
                      const struct wire_entry *log, size_t n)
{
    uint64_t t = 0;

    if (n > 0 && !log)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (log[i].index != i + 1 || log[i].term < t || log[i].term == 0 ||
            log[i].term > hs->term || (log[i].len > 0 && !log[i].data))
            return false;
        t = log[i].term;
    }
    return true;
}

raft_t *raft_new(const struct raft_options *opt, const struct raft_conf *conf,
                 const struct raft_hard_state *hs, const struct wire_entry *log,
                 size_t n, uint64_t applied)
{
    struct raft *r;

    if (!opt || !conf || !hs || !options_valid(opt) || !conf_valid(conf) ||
        !log_valid(hs, log, n) || applied > n || hs->term >= UINT64_MAX - 1) {
        errno = EINVAL;
        return NULL;
    }
    if (!(r = calloc(1, sizeof(*r))))
        return NULL;
    r->opt = *opt;
    r->base_conf = *conf;
    r->conf = *conf;
    if (log_reserve(r, n) < 0)
        goto nomem;
    for (size_t i = 0; i < n; i++) {
        struct wire_entry e;

        if (entry_copy(&e, &log[i]) < 0)
            goto nomem;
        log_push(r, &e);
    }
    r->term = hs->term;
    r->vote = hs->vote;
    /* The commit index is a hint: one past the stored log (the caller
     * lost entries it had acknowledged) is cut back rather than trusted.
     */
    r->commit = hs->commit < n ? hs->commit : n;
    if (r->commit < applied)
        r->commit = applied;
    r->applied = applied;
    r->saved = *hs;
    r->unstable = n + 1;
    r->role = RAFT_FOLLOWER;
    reset_timeout(r);
    r->quiet = 0;
    return r;
nomem:
    raft_destroy(&r);
    errno = ENOMEM;
    return NULL;
}

void raft_destroy(raft_t **rp)
{
    struct raft *r;

    if (!rp || !(r = *rp))
        return;
    for (size_t i = 0; i < r->n_log; i++)
        free(r->log[i].data);
    free(r->log);
    msgs_clear(r, r->n_msgs);
    free(r->msgs);
    free(r->types);
    free(r);
    *rp = NULL;
}

static void tick_leader(struct raft *r)
{
    if (r->leader_ticks < r->opt.election_ticks)
        r->leader_ticks++;
    if (r->opt.check_quorum && r->leader_ticks >= r->opt.election_ticks &&
        !quorum_active(r)) {
        become_follower(r, r->term, 0);
        return;
    }
    if (r->transferee && ++r->transfer_elapsed >= r->opt.election_ticks)
        abort_transfer(r);
    /* A removed peer that stays silent is down: stop chasing it. */
    for (uint32_t k = r->n_gone; k-- > 0;)
        if (r->now - r->gone[k].since >= 10 * (uint64_t)r->opt.election_ticks)
            gone_drop(r, k);
    if (++r->heartbeat_elapsed >= r->opt.heartbeat_ticks) {
        r->heartbeat_elapsed = 0;
        bcast_heartbeat(r);
    }
}

void raft_tick(raft_t *r)
{
    assert(r && !r->in_ready);
    r->now++;
    if (r->role == RAFT_LEADER) {
        r->quiet = 0;
        tick_leader(r);
        return;
    }
    /* Capped so a learner that never campaigns cannot overflow it. */
    if (r->election_elapsed < 2 * r->opt.election_ticks)
        r->election_elapsed++;
    if (r->quiet < 2 * r->opt.election_ticks)
        r->quiet++;
    /* a lone voter has no one to wait for, nor to disturb */
    if (promotable(r) && (r->election_elapsed >= r->timeout || lone_voter(r)))
        campaign(r, r->opt.pre_vote ? CAMPAIGN_PRE : CAMPAIGN_ELECTION);
}

/* Messages of a term newer than ours.  Returns false to drop it. */
static bool step_newer_term(struct raft *r, enum wire_type type, uint64_t from,
                            const struct wire_raft *m)
{
    int elapsed, timeout;

    if (type == WIRE_PREVOTE || type == WIRE_VOTE) {
        /* Leader stickiness: while we hear from a leader, a peer that
         * merely timed out is not followed, unless the leader itself
         * asked it to campaign (TIMEOUT_NOW, flagged by hint = 1).
         */
        bool force = type == WIRE_VOTE && m->hint == 1;
        bool sticky = type == WIRE_PREVOTE || r->opt.check_quorum;

        if (!force && sticky && in_lease(r))
            return false;
    }
    if (type == WIRE_PREVOTE || (type == WIRE_PREVOTE_RESP && !m->reject))
        return true; /* a pre-vote never changes our term */
    elapsed = r->election_elapsed;
    timeout = r->timeout;
    become_follower(r, m->term, type == WIRE_APPEND ? from : 0);
    /* Only a granted vote or a leader restarts the election timer (Raft
     * §5.2): else a candidate with a stale log, raising the term again
     * and again, holds back forever the peer that could win.
     */
    if (type == WIRE_VOTE) {
        r->election_elapsed = elapsed;
        r->timeout = timeout;
    }
    return true;
}

/* Messages of an older term are dropped, but a stale leader learns our
 * term (else, with check-quorum or pre-vote, a peer whose term ran ahead
 * could never rejoin), and a pre-candidate gets its rejection.
 */
static void step_older_term(struct raft *r, enum wire_type type, uint64_t from)
{
    if (type == WIRE_APPEND && (r->opt.check_quorum || r->opt.pre_vote))
        send_append_resp(r, from, false, 0, 0, 0);
    else if (type == WIRE_PREVOTE)
        send_simple(r, WIRE_PREVOTE_RESP, from, r->term, true);
}

static int step_role(struct raft *r, enum wire_type type, uint64_t from, int i,
                     const struct wire_raft *m)
{
    int k;

    switch (r->role) {
    case RAFT_LEADER:
        if (type == WIRE_APPEND_RESP && i >= 0)
            handle_append_resp(r, from, &r->prs[i], m);
        else if (type == WIRE_APPEND_RESP && (k = gone_find(r, from)) >= 0) {
            handle_append_resp(r, from, &r->gone[k].pr, m);
            if (r->role == RAFT_LEADER && (k = gone_find(r, from)) >= 0 &&
                r->gone[k].pr.match >= r->gone[k].until)
                gone_drop(r, (uint32_t)k);
        }
        return 0;
    case RAFT_PRE_CANDIDATE:
    case RAFT_CANDIDATE:
        if (type == WIRE_APPEND) {
            become_follower(r, r->term, from);
            r->election_elapsed = 0;
            r->quiet = 0;
            return handle_append(r, from, m);
        }
        /* A pre-vote is granted with the term asked about (ours + 1) and
         * refused with the voter's term (ours, or we would have stepped
         * down); anything else answers an earlier campaign.
         */
        if (type == WIRE_PREVOTE_RESP && r->role == RAFT_PRE_CANDIDATE &&
            m->term == r->term + !m->reject)
            poll(r, i, !m->reject);
        if (type == WIRE_VOTE_RESP && r->role == RAFT_CANDIDATE)
            poll(r, i, !m->reject);
        return 0;
    case RAFT_FOLLOWER:
        if (type == WIRE_APPEND) {
            if (r->lead != 0 && r->lead != from)
                return 0; /* two leaders in one term cannot be */
            r->lead = from;
            r->election_elapsed = 0;
            r->quiet = 0;
            return handle_append(r, from, m);
        }
        if (type == WIRE_TIMEOUT_NOW)
            campaign(r, CAMPAIGN_TRANSFER);
        return 0;
    }
    return 0;
}

int raft_step(raft_t *r, enum wire_type type, uint64_t from,
              const struct wire_raft *m)
{
    int i;

    assert(r && !r->in_ready);
    if (!m || type < WIRE_PREVOTE || type > WIRE_TIMEOUT_NOW ||
        m->term == UINT64_MAX)
        goto bad;
    if (type == WIRE_APPEND ? !append_well_formed(m) : m->n_entries != 0)
        goto bad;
    if (from == 0 || from == r->opt.id)
        return 0;
    /* Only a leader may know a configuration we have not seen yet, so
     * only APPEND is taken from a peer outside ours (and the answers of
     * peers we are still telling that they were removed).
     */
    i = conf_find(&r->conf, from);
    if (i < 0 && type != WIRE_APPEND &&
        !(type == WIRE_APPEND_RESP && gone_find(r, from) >= 0))
        return 0;
    if (m->term > r->term) {
        if (!step_newer_term(r, type, from, m))
            return 0;
    } else if (m->term < r->term) {
        step_older_term(r, type, from);
        return 0;
    }
    if (type == WIRE_PREVOTE || type == WIRE_VOTE) {
        handle_vote(r, type, from, m);
        return 0;
    }
    return step_role(r, type, from, i, m);
bad:
    errno = EINVAL;
    return -1;
}

static int check_conf_change(struct raft *r, const void *data, size_t len)
{
    struct raft_conf c;

    if (raft_conf_decode(data, len, &c) < 0 || conf_voters(&c) == 0 ||
        conf_voter_changes(&r->conf, &c) > 1) {
        errno = EINVAL;
        return -1;
    }
    /* One change at a time, and none before this leader has committed an
     * entry of its term (the single-server change fix, raft-dev 2015).
     */
    if (r->conf_index > r->commit || r->commit < r->term_start) {
        errno = EBUSY;
        return -1;
    }
    return 0;
}

uint64_t raft_propose(raft_t *r, uint8_t type, const void *data, size_t len)
{
    assert(r && !r->in_ready);
    if (r->role != RAFT_LEADER || r->transferee) {
        errno = EPERM;
        return 0;
    }
    if (len > APPEND_MAX_BYTES - ENTRY_WIRE_BYTES || (len > 0 && !data)) {
        errno = EINVAL;
        return 0;
    }
    if (type == RAFT_ENTRY_CONF && check_conf_change(r, data, len) < 0)
        return 0;
    if (append_own(r, type, data, len) < 0) {
        errno = ENOMEM;
        return 0;
    }
    if (maybe_commit(r))
        after_commit(r);
    if (r->role == RAFT_LEADER)
        bcast_append(r);
    return last_index(r);
}

int raft_transfer(raft_t *r, uint64_t to)
{
    int i;

    assert(r && !r->in_ready);
    if (r->role != RAFT_LEADER) {
        errno = EPERM;
        return -1;
    }
    if (to == r->opt.id) {
        abort_transfer(r); /* we lead already: keep leading */
        return 0;
    }
    if ((i = conf_find(&r->conf, to)) < 0 || !r->conf.voter[i]) {
        errno = EINVAL;
        return -1;
    }
    if (r->transferee == to)
        return 0;
    r->transferee = to;
    r->transfer_elapsed = 0;
    if (r->prs[i].match == last_index(r))
        send_timeout_now(r, to);
    else
        send_append(r, to, &r->prs[i], true);
    return 0;
}

static bool hs_changed(const struct raft *r)
{
    return r->term != r->saved.term || r->vote != r->saved.vote ||
           r->commit != r->saved.commit;
}

bool raft_has_ready(raft_t *r)
{
    return hs_changed(r) || r->unstable <= last_index(r) || r->n_msgs > 0 ||
           r->applied < r->commit;
}

void raft_ready(raft_t *r, struct raft_ready *rd)
{
    assert(r && rd && !r->in_ready);
    memset(rd, 0, sizeof(*rd));
    rd->hard_state_changed = hs_changed(r);
    rd->hs.term = r->term;
    rd->hs.vote = r->vote;
    rd->hs.commit = r->commit;
    if (r->unstable <= last_index(r)) {
        rd->entries = &r->log[r->unstable - 1];
        rd->n_entries = last_index(r) - r->unstable + 1;
    }
    rd->msgs = r->msgs;
    rd->msg_types = r->types;
    rd->n_msgs = r->n_msgs;
    if (r->applied < r->commit) {
        rd->committed = &r->log[r->applied];
        rd->n_committed = r->commit - r->applied;
    }
    r->in_ready = true;
}

void raft_advance(raft_t *r, const struct raft_ready *rd)
{
    assert(r && rd && r->in_ready && rd->n_msgs <= r->n_msgs);
    if (rd->hard_state_changed)
        r->saved = rd->hs;
    if (rd->n_entries > 0)
        r->unstable = rd->entries[rd->n_entries - 1].index + 1;
    msgs_clear(r, rd->n_msgs);
    if (rd->n_committed > 0)
        r->applied = rd->committed[rd->n_committed - 1].index;
    r->in_ready = false;
}

enum raft_role raft_role(raft_t *r)
{
    return r->role;
}

uint64_t raft_term(raft_t *r)
{
    return r->term;
}

uint64_t raft_leader(raft_t *r)
{
    return r->lead;
}

uint64_t raft_commit_index(raft_t *r)
{
    return r->commit;
}

uint64_t raft_last_index(raft_t *r)
{
    return last_index(r);
}

const struct raft_conf *raft_conf(raft_t *r)
{
    return &r->conf;
}

uint64_t raft_match(raft_t *r, uint64_t id)
{
    int i;

    if (r->role != RAFT_LEADER)
        return 0;
    if (id == r->opt.id)
        return last_index(r);
    if ((i = conf_find(&r->conf, id)) < 0)
        return 0;
    return r->prs[i].match;
}

void raft_step_down(raft_t *r)
{
    assert(r && !r->in_ready);
    if (r->role == RAFT_LEADER)
        become_follower(r, r->term, 0);
}

uint64_t raft_transferee(raft_t *r)
{
    return r->role == RAFT_LEADER ? r->transferee : 0;
}

bool raft_has_quorum(raft_t *r)
{
    return r->role == RAFT_LEADER && quorum_active(r);
}

const struct wire_entry *raft_entry(raft_t *r, uint64_t index)
{
    if (index == 0 || index > last_index(r))
        return NULL;
    return &r->log[index - 1];
}

/* --- configuration codec -------------------------------------------- */

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 3; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

static uint32_t get_u32(const unsigned char *p)
{
    uint32_t v = 0;

    for (int i = 0; i < 4; i++)
        v = v << 8 | p[i];
    return v;
}

static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

int raft_conf_encode(const struct raft_conf *c, unsigned char *buf, size_t cap,
                     size_t *len)
{
    size_t need;

    if (!c || !len || !conf_valid(c)) {
        errno = EINVAL;
        return -1;
    }
    need = CONF_HEADER_LEN + (size_t)c->n * CONF_PEER_LEN;
    *len = need;
    if (!buf || cap < need) {
        errno = ENOSPC;
        return -1;
    }
    buf[0] = CONF_VERSION;
    put_u32(buf + 1, c->n);
    for (uint32_t i = 0; i < c->n; i++) {
        unsigned char *p = buf + CONF_HEADER_LEN + (size_t)i * CONF_PEER_LEN;

        put_u64(p, c->ids[i]);
        p[8] = c->voter[i] ? CONF_VOTER : 0;
    }
    return 0;
}

int raft_conf_decode(const unsigned char *buf, size_t len, struct raft_conf *c)
{
    struct raft_conf d;
    uint32_t n;

    memset(&d, 0, sizeof(d));
    if (!c || !buf || len < CONF_HEADER_LEN || buf[0] != CONF_VERSION)
        goto malformed;
    n = get_u32(buf + 1);
    if (n > RAFT_MAX_PEERS ||
        len != CONF_HEADER_LEN + (size_t)n * CONF_PEER_LEN)
        goto malformed;
    d.n = n;
    for (uint32_t i = 0; i < n; i++) {
        const unsigned char *p =
            buf + CONF_HEADER_LEN + (size_t)i * CONF_PEER_LEN;

        if (p[8] & ~CONF_VOTER)
            goto malformed;
        d.ids[i] = get_u64(p);
        d.voter[i] = p[8] & CONF_VOTER;
    }
    if (!conf_valid(&d))
        goto malformed;
    *c = d;
    return 0;
malformed:
    errno = EINVAL;
    return -1;
}

const char *raft_role_name(enum raft_role role)
{
    switch (role) {
    case RAFT_FOLLOWER:
        return "follower";
    case RAFT_PRE_CANDIDATE:
        return "pre-candidate";
    case RAFT_CANDIDATE:
        return "candidate";
    case RAFT_LEADER:
        return "leader";
    }
    return "?";
}
