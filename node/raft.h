/* raft.h - Raft agreement as a pure state machine
 *
 * No sockets, no clock, no randomness of its own, no logging: the caller
 * feeds it ticks (raft_tick), messages (raft_step) and proposals
 * (raft_propose), and collects what to persist, what to send and what
 * was committed with raft_ready() / raft_advance(), in the shape of
 * etcd's raft package.  One test process can so run many peers on
 * virtual time, reproducibly from a seed.
 *
 * Features: leader election with randomized timeouts, pre-vote (a
 * partitioned peer cannot disrupt the cluster when it comes back),
 * check-quorum (a leader that has not heard from a majority within an
 * election timeout steps down), log replication with fast back-off via
 * the reject hint, commit only of entries from the leader's own term
 * (Raft §5.4.2), learners (receive the log, never vote, never count for
 * a quorum), single-server membership changes carried by RAFT_ENTRY_CONF
 * entries that take effect when appended, leadership transfer
 * (TIMEOUT_NOW).
 *
 * Invariant checked by tests/sim: at most one leader per term; a
 * committed entry is never lost or changed; logs that share an index and
 * term are identical up to it.
 *
 * The whole log stays in memory: no compaction and no snapshots in this
 * version (raft_new takes the full log).
 *
 * How the shared struct wire_raft fields are used, beyond proto/wire.h:
 *   VOTE:        hint = 1 when the campaign was started by TIMEOUT_NOW
 *                (a leadership transfer): voters then grant it although
 *                they heard from a leader recently; 0 otherwise.
 *   PREVOTE:     term = the pre-candidate's term + 1 (its own term does
 *                not change); a grant answers with that term, a refusal
 *                with the voter's term.
 *   APPEND:      a heartbeat is an APPEND without entries whose index is
 *                the follower's match index and whose commit is
 *                min(commit, match).
 *   APPEND:      hint = a stamp of the caller's choosing (raft sets 0);
 *                node/agree.c numbers its APPENDs to time the lease.
 *   APPEND_RESP: on reject, index = the rejected prev index and hint =
 *                the highest index where the follower's log may still
 *                agree (its last index, or the index before its run of
 *                entries with the conflicting term); commit = the stamp
 *                (hint) of the APPEND answered.
 * Requests (PREVOTE, VOTE, TIMEOUT_NOW) and answers from peers outside
 * the configuration are ignored; APPEND is taken from any peer with a
 * current term, since a new leader may know a configuration we have not
 * seen yet.  A learner answers vote requests like any peer (a candidate
 * whose configuration already promoted it needs that answer) but only
 * the votes of the candidate's own voters are counted; learners never
 * campaign and never count towards a quorum.  A leader keeps sending the
 * log to a peer it removed until that peer holds the removing entry, so
 * that it learns to stop campaigning.
 */
#ifndef PEERD_RAFT_H
#define PEERD_RAFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/wire.h"

typedef struct raft raft_t;

#define RAFT_MAX_PEERS 256 /* members: voters and learners */
#define RAFT_ENTRY_CONF 1  /* data = raft_conf_encode() */
#define RAFT_ENTRY_NOOP 2  /* appended by a new leader */
#define RAFT_ENTRY_USER 16 /* first type free for the caller */

enum raft_role {
    RAFT_FOLLOWER,
    RAFT_PRE_CANDIDATE,
    RAFT_CANDIDATE,
    RAFT_LEADER,
};

/* The membership: who votes, who only learns. */
struct raft_conf {
    uint32_t n;
    uint64_t ids[RAFT_MAX_PEERS];
    bool voter[RAFT_MAX_PEERS];
};

struct raft_hard_state {
    uint64_t term;
    uint64_t vote; /* 0 = none */
    uint64_t commit;
};

struct raft_options {
    uint64_t id;              /* this peer, > 0 */
    int election_ticks;       /* e.g. 10; timeout is random in [e, 2e) */
    int heartbeat_ticks;      /* e.g. 1 */
    bool pre_vote;            /* default on in peerd */
    bool check_quorum;        /* default on in peerd */
    uint32_t max_append;      /* entries per APPEND, <= WIRE_MAX_ENTRIES */
    uint64_t (*rand)(void *); /* injected randomness */
    void *rand_arg;
};

/* What the caller must do, in this order: persist hard_state (if
 * hard_state_changed) and the entries (truncating the stored log after
 * entries[0].index - 1 first), then send the messages, then apply the
 * committed entries in order.  All pointers are borrowed until
 * raft_advance().  Persist hard state and entries in one transaction
 * (or the hard state first): raft_new refuses a log entry newer than
 * hs.term, and cuts a commit index past the log back to it.  Between
 * raft_ready() and raft_advance() call no raft_ function other than the
 * views (asserted).
 */
struct raft_ready {
    bool hard_state_changed;
    struct raft_hard_state hs;
    struct wire_entry *entries; /* to persist */
    size_t n_entries;
    struct wire_raft *msgs; /* to send; msgs[i].to says where */
    enum wire_type *msg_types;
    size_t n_msgs;
    struct wire_entry *committed; /* to apply */
    size_t n_committed;
};

/* A new peer.  conf is the membership to start with (from the last
 * applied RAFT_ENTRY_CONF or the bootstrap); hs and log restore what was
 * persisted (log entries 1..n in order; n may be 0).  Copies everything.
 * The latest RAFT_ENTRY_CONF in the log, committed or not, overrides
 * conf (a configuration takes effect when appended); conf is used again
 * only if a new leader truncates every RAFT_ENTRY_CONF away.
 * applied = the index already applied to the state machine (committed
 * entries up to it are not handed out again).  NULL + errno on failure
 * (EINVAL: bad options, configuration or log, applied > n; ENOMEM).
 */
raft_t *raft_new(const struct raft_options *opt, const struct raft_conf *conf,
                 const struct raft_hard_state *hs, const struct wire_entry *log,
                 size_t n, uint64_t applied);
void raft_destroy(raft_t **rp);

/* One tick of logical time. */
void raft_tick(raft_t *r);

/* A message from peer `from`.  Returns 0, or -1 (errno EINVAL) if the
 * message is not acceptable (unknown type, entries on a message other
 * than APPEND, entries that do not follow prev and each other, an APPEND
 * that contradicts committed entries) and then nothing changed; -1 with
 * ENOMEM drops the message as if lost.  Stale terms, strangers and
 * messages from ourselves or from 0 are ignored with 0.
 */
int raft_step(raft_t *r, enum wire_type type, uint64_t from,
              const struct wire_raft *m);

/* Propose an entry (copied).  Returns its index, or 0 with errno
 * EPERM when this peer is not the leader (or is transferring), EBUSY
 * for a second membership change while one is uncommitted or before the
 * leader committed an entry of its term, EINVAL for data NULL with len >
 * 0, an entry too large for one APPEND frame (WIRE_MAX_FRAME less 277
 * bytes), or a RAFT_ENTRY_CONF that does not decode, has no voter or
 * changes more than one voter; ENOMEM.
 */
uint64_t raft_propose(raft_t *r, uint8_t type, const void *data, size_t len);

/* Hand leadership to `to` (a voter with an up-to-date log): stop
 * accepting proposals, bring it up to date, send it TIMEOUT_NOW.  The
 * transfer is abandoned (proposals accepted again) after an election
 * timeout; to = this peer cancels a transfer in progress.
 * Returns 0 or -1 (EPERM not leader, EINVAL not a voter).
 */
int raft_transfer(raft_t *r, uint64_t to);

bool raft_has_ready(raft_t *r);
void raft_ready(raft_t *r, struct raft_ready *rd);
void raft_advance(raft_t *r, const struct raft_ready *rd);

/* Views. */
enum raft_role raft_role(raft_t *r);
uint64_t raft_term(raft_t *r);
uint64_t raft_leader(raft_t *r); /* 0 if unknown */
uint64_t raft_commit_index(raft_t *r);
uint64_t raft_last_index(raft_t *r);
const struct raft_conf *raft_conf(raft_t *r);
/* A leader becomes a follower of its own term (no-op otherwise); the
 * others elect a new leader in a later term.
 */
void raft_step_down(raft_t *r);

/* The voter leadership is being handed to, 0 if none. */
uint64_t raft_transferee(raft_t *r);
/* The leader's view of a peer's match index (0 if unknown / not leader). */
uint64_t raft_match(raft_t *r, uint64_t id);
/* True while the leader has heard from a quorum within the last
 * election timeout (check-quorum lease); false on non-leaders.  Counted
 * from when answers arrived, not when the heartbeats left: a caller that
 * fences on it must allow for message delay and clock drift.
 */
bool raft_has_quorum(raft_t *r);
/* An entry of the in-memory log (NULL if compacted/absent); borrowed. */
const struct wire_entry *raft_entry(raft_t *r, uint64_t index);

/* Membership entries' payload: version u8 (1), n u32, then n times
 * (id u64, flags u8: 1 = voter), big-endian, nothing after.  encode:
 * -1 EINVAL for a bad configuration, ENOSPC if cap is short (*len says
 * how much is needed).  decode: -1 EINVAL for anything else than exactly
 * that with n <= RAFT_MAX_PEERS, ids non-zero and distinct.
 */
int raft_conf_encode(const struct raft_conf *c, unsigned char *buf, size_t cap,
                     size_t *len);
int raft_conf_decode(const unsigned char *buf, size_t len, struct raft_conf *c);

const char *raft_role_name(enum raft_role role);

#endif
