/* agree.h - agreement at run time: Raft + transport + store + fsm
 *
 * Drives the pure Raft core (node/raft.c) with real I/O: ticks from the
 * event loop, messages from the transport, entries persisted in the store
 * before any message that depends on them is sent, committed entries
 * applied through the state machine (node/fsm.c).  A write is proposed
 * with agree_propose(): on the leader directly, elsewhere forwarded to
 * the leader; its callback runs once this peer has applied the entry
 * (so the caller sees its effect locally) or when it failed.
 *
 * The leader also keeps Raft's membership in step with the member table:
 * every active member is a learner, and the first caught-up members
 * become voters up to the configured number (config "voters", 3 by
 * default), one change at a time.
 */
#ifndef PEERD_AGREE_H
#define PEERD_AGREE_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "node/fsm.h"
#include "node/raft.h"
#include "node/transport.h"
#include "store/store.h"

typedef struct agree agree_t;

#define AGREE_TICK 0.1          /* seconds per Raft tick */
#define AGREE_ELECTION_TICKS 10 /* 1-2 s election timeout */
#define AGREE_PROPOSE_TIMEOUT 15.0

/* ok: the entry was applied here (fx says what it did); otherwise error
 * says why it failed (no leader, timed out, lost in a leader change).
 */
typedef void (*agree_done_fn)(void *arg, bool ok, uint64_t index,
                              const struct fsm_effects *fx, const char *error);

/* Called after every entry applied here. */
typedef void (*agree_applied_fn)(void *arg, const struct wire_entry *e,
                                 const struct fsm_effects *fx);

agree_t *agree_new(store_t *s, transport_t *t, uint64_t self,
                   agree_applied_fn applied, void *arg, err_t *err);
void agree_destroy(agree_t **ap);

/* One Raft tick (every AGREE_TICK s); also expires old proposals. */
void agree_tick(agree_t *a, double now);

/* A peer message (Raft, PROPOSE, PROPOSE_RESP); m is consumed. */
void agree_step(agree_t *a, struct wire_msg *m, double now);

/* Queue a write (op is stolen).  cb may be NULL.  Returns 0, -1 on
 * allocation failure (cb not called).
 */
int agree_propose(agree_t *a, json_t *op, agree_done_fn cb, void *arg,
                  double now);

/* Persist, send, apply: call after agree_tick / agree_step /
 * agree_propose, before waiting again.  Returns -1 if the store failed
 * (nothing sent or applied; it will be retried).
 */
int agree_flush(agree_t *a, double now);

/* Hand leadership to another voter (0: the most caught-up one). */
int agree_transfer(agree_t *a, uint64_t to);

/* The controller lease (node/lease.h): held now?  Until when (monotonic
 * seconds; 0 when not leader or revoked)?  A transfer revokes it.
 */
bool agree_lease_held(agree_t *a, double now);
double agree_lease_until(agree_t *a, double now);
uint64_t agree_term(agree_t *a);
bool agree_has_quorum(agree_t *a);
/* The voters' ids (up to cap); returns how many were written. */
int agree_voters(agree_t *a, uint64_t *ids, int cap);

/* Is id in Raft's membership (voter or learner)? */
bool agree_in_conf(agree_t *a, uint64_t id);

uint64_t agree_leader(agree_t *a);
bool agree_is_leader(agree_t *a);
uint64_t agree_applied(agree_t *a);

/* {"term","role","leader","commit","applied","last_index","has_quorum",
 *  "voters":[ids],"learners":[ids],"match":{id: index}} (new reference)
 */
json_t *agree_status_json(agree_t *a);

#endif
