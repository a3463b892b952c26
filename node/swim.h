/* swim.h - SWIM membership with Lifeguard as a pure state machine
 *
 * No sockets, no clock, no logging, no randomness of its own: the caller
 * feeds it time (swim_tick), messages (swim_step) and the committed
 * member list (swim_add / swim_remove), and collects the messages to send
 * (swim_outbox) and the membership changes seen (swim_events).  One test
 * process can so run a thousand members on virtual time, reproducibly
 * from a seed (tests/sim/sim_swim.c).
 *
 * Protocol (Das et al., SWIM, 2002; Dadgar et al., Lifeguard, 2018):
 * - every protocol period one member is probed, in randomized
 *   round-robin order: PING; no ACK within the probe timeout -> PING_REQ
 *   to k others, who PING the target and relay its ACK, or answer NACK
 *   when they got none; no ACK by the end of the period -> SUSPECT;
 * - a suspicion expires into DEAD after a timeout that starts at
 *   max_mult * min and shrinks towards min (= suspicion_mult *
 *   log10(n) periods, but never under 2 * (LHM + 1) periods, so that a
 *   slow member is slow to condemn) with log(c + 1) / log(k + 1) as c of
 *   the k = suspicion_mult - 2 expected independent accusers confirm it;
 * - a member told it is suspected (or dead) refutes with a higher
 *   incarnation; a higher incarnation wins, and at equal incarnation
 *   ALIVE < SUSPECT < DEAD < LEFT;
 * - the local health multiplier (LHM, 0..max_lhm) counts evidence that
 *   this member itself is slow: +1 per failed probe without NACKs, +1 per
 *   NACK that should have come and did not, +1 per refutation, -1 per
 *   direct ACK in time.  The probe period and timeout are multiplied by
 *   LHM + 1, so a starved member probes gently and accuses less;
 * - updates piggyback on every message, our own state first, then
 *   fewest-sent, suspicions and refutations before the rest, each sent at
 *   most retransmit_mult * ceil(log10(n + 1)) times; max_piggyback per
 *   message, twice that (up to SWIM_MAX_PIGGYBACK) while more are queued;
 * - independent of probing, every gossip interval (and at once on a
 *   refutation) a GOSSIP carrying SWIM_MAX_PIGGYBACK pending updates goes
 *   to gossip_fanout random members, when anything is pending;
 * - every sync_periods periods a SYNC carrying the whole table goes to
 *   one random member, DEAD ones included (that is what heals a
 *   partition); the receiver merges and answers with its own table.  A
 *   DEAD learnt through SYNC is taken as a SUSPECT, so that a member
 *   dead on one side of a healed partition gets a chance to refute.
 *
 * Only members the caller added take part: messages from, and updates
 * about, unknown ids are ignored, as are stale sequence numbers and
 * garbage states.  DEAD members stay in the table (not probed) until the
 * caller removes them.  Time is the now of the last swim_tick().
 */
#ifndef PEERD_SWIM_H
#define PEERD_SWIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct swim swim_t;

#define SWIM_MAX_PIGGYBACK 16 /* updates in one message, at most */

enum swim_state {
    SWIM_ALIVE,
    SWIM_SUSPECT,
    SWIM_DEAD,
    SWIM_LEFT, /* graceful leave, final for its incarnation */
};

enum swim_msg_type {
    SWIM_PING = 1, /* seq, target = the member meant to answer */
    SWIM_ACK,      /* seq (of the PING or PING_REQ answered), target */
    SWIM_PING_REQ, /* seq, target = the member to probe for the sender */
    SWIM_NACK,     /* seq of a PING_REQ: target did not answer in time */
    SWIM_SYNC,     /* sync[]: whole table; reply = answer to a request */
    SWIM_GOSSIP,   /* updates only; nothing answered */
};

/* One member's state as gossiped.  from = the accuser of a SUSPECT
 * (counted once as a Lifeguard confirmation), 0 otherwise.
 */
struct swim_update {
    uint64_t id;
    uint64_t incarnation;
    uint8_t state; /* enum swim_state; anything else is ignored */
    uint64_t from;
};

struct swim_msg {
    enum swim_msg_type type;
    uint64_t from, to;
    uint32_t seq;
    uint64_t target;
    bool reply; /* SYNC only */
    uint32_t n_updates;
    struct swim_update updates[SWIM_MAX_PIGGYBACK];
    uint32_t n_sync; /* SYNC only */
    const struct swim_update *sync;
};

struct swim_event {
    uint64_t id;
    enum swim_state state;
    uint64_t incarnation;
};

/* Zero means the default, given in brackets. */
struct swim_options {
    uint64_t id;                 /* this member, > 0 */
    uint32_t probe_interval_ms;  /* protocol period [1000] */
    uint32_t probe_timeout_ms;   /* direct ACK wait, < interval [500] */
    uint32_t indirect_probes;    /* k for PING_REQ [3] */
    uint32_t suspicion_mult;     /* min timeout, periods * log10 n [4] */
    uint32_t suspicion_max_mult; /* max timeout = this * min [6] */
    uint32_t max_lhm;            /* local health multiplier cap [8] */
    uint32_t max_piggyback;      /* <= SWIM_MAX_PIGGYBACK [8] */
    uint32_t retransmit_mult;    /* lambda [4] */
    uint32_t sync_periods;       /* push-pull every this many [30] */
    uint32_t gossip_interval_ms; /* gossip step period [200] */
    uint32_t gossip_fanout;      /* members per gossip step, <= 16 [3] */
    uint64_t incarnation;        /* to start with [0]; peerd: start time,
                                    above any from a run before */
    uint64_t (*rand)(void *);    /* injected randomness, required */
    void *rand_arg;
};

/* A member that knows only itself (ALIVE, incarnation 0).  NULL + errno
 * (EINVAL: id 0, no rand, timeout >= interval, max_piggyback too big;
 * ENOMEM).
 */
swim_t *swim_new(const struct swim_options *opt);
void swim_destroy(swim_t **sp);

/* Add a committed member (ALIVE, incarnation 0, nothing announced); 0 if
 * it is already known or is this member.  -1 ENOMEM, EINVAL for id 0.
 */
int swim_add(swim_t *s, uint64_t id);
/* Forget a member; -1 ENOENT if unknown, EINVAL for this member. */
int swim_remove(swim_t *s, uint64_t id);

/* Advance time to now_ms (never backwards: an older now is taken as the
 * last one).  Call it every few tens of ms: probes, timeouts, suspicion
 * expiry and push-pull are driven from here.
 */
void swim_tick(swim_t *s, uint64_t now_ms);

/* A message received from `from` (m->from is not trusted; m->to is not
 * looked at).  Odd messages are ignored: strangers, ourselves, stale
 * sequence numbers, unknown types, more updates than SWIM_MAX_PIGGYBACK.
 */
void swim_step(swim_t *s, uint64_t from, const struct swim_msg *m);

/* Announce LEFT (current incarnation); this member stops probing and
 * syncing.  Keep ticking and stepping a few periods so it spreads.
 */
void swim_leave(swim_t *s);

/* What to send (msgs[i].to says where) and what changed, oldest first.
 * Borrowed: valid until the next swim_ call other than the views below;
 * the _clear functions drop them once handled.  A message that could not
 * be queued (ENOMEM) is dropped, as if lost.
 */
size_t swim_outbox(swim_t *s, const struct swim_msg **msgs);
void swim_outbox_clear(swim_t *s);
size_t swim_events(swim_t *s, const struct swim_event **ev);
void swim_events_clear(swim_t *s);

/* Views. */
/* 0 and the state and incarnation of id (this member included), or -1
 * ENOENT.
 */
int swim_member(swim_t *s, uint64_t id, enum swim_state *state,
                uint64_t *incarnation);
uint32_t swim_health(swim_t *s);                       /* LHM, 0..max_lhm */
uint32_t swim_count(swim_t *s, enum swim_state state); /* self included */
uint32_t swim_size(swim_t *s);                         /* self included */
uint64_t swim_incarnation(swim_t *s);

const char *swim_state_name(enum swim_state state);

#endif
