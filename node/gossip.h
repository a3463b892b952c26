/* gossip.h - SWIM membership at run time: node/swim.c over peer messages
 *
 * A thin layer around the pure SWIM core (node/swim.c), as node/agree.c
 * is for Raft: it turns the event loop's clock into swim's milliseconds,
 * converts between struct swim_msg and the WIRE_SWIM message, hands every
 * outgoing message to a send function, keeps the membership changes until
 * the caller takes them, and counts.  It knows nothing of Slurm and owns
 * no socket: peerd passes gossip_send_transport with its transport_t, the
 * unit test an in-memory queue.
 *
 * Who takes part is decided elsewhere: the caller gives the committed
 * member ids (gossip_set_members); gossip only says which of them answer.
 * A received message is trusted to come from its frame's sender (the
 * transport checked that against the CURVE key); the sender field of the
 * SWIM message is never read, there is none on the wire.
 */
#ifndef PEERD_GOSSIP_H
#define PEERD_GOSSIP_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "node/swim.h"
#include "proto/err.h"
#include "proto/wire.h"

typedef struct gossip gossip_t;

#define GOSSIP_MAX_EVENTS 4096 /* kept for gossip_events; older ones go */

/* Send m (a WIRE_SWIM, borrowed for the call) to member `to`.  Returns 0
 * when it was handed on, -1 when it was dropped.
 */
typedef int (*gossip_send_fn)(void *arg, uint64_t to, const struct wire_msg *m);

/* A gossip_send_fn over transport_send(); arg is the transport_t. */
int gossip_send_transport(void *transport, uint64_t to,
                          const struct wire_msg *m);

/* A member knowing only itself (self > 0), with swim's default timing
 * (1 s protocol period), starting at incarnation = the current Unix time
 * (announced: others that hold it DEAD from an earlier run take it back).
 * Randomness comes from libsodium's randombytes_buf.  Every message goes out
 * through send(send_arg, ...) from within the gossip_ call that produced it.
 * Returns NULL with err (EINVAL: self 0 or no send; ENOMEM).
 */
gossip_t *gossip_new(uint64_t self, gossip_send_fn send, void *send_arg,
                     err_t *err);
void gossip_destroy(gossip_t **gp);

/* Replace the randomness (tests: a run then replays from its seed).
 * Call before the first gossip_tick.
 */
void gossip_set_rand(gossip_t *g, uint64_t (*rand)(void *), void *arg);

/* Make the SWIM table these committed member ids (duplicates and self
 * are ignored; 0 is not an id).  New ones start ALIVE, those missing are
 * forgotten without an event.  Returns 0, or -1 ENOMEM with some ids not
 * added (the next call tries again).
 */
int gossip_set_members(gossip_t *g, const uint64_t *ids, size_t n);

/* Advance to now (monotonic seconds; never backwards) and send what is
 * due.  Call it every few tens of milliseconds.
 */
void gossip_tick(gossip_t *g, double now);

/* A message received from a peer: m->from is the authenticated sender.
 * Anything but a WIRE_SWIM addressed to this member is ignored (counted).
 * Replies are sent before it returns.  m is not consumed.
 */
void gossip_step(gossip_t *g, const struct wire_msg *m, double now);

/* Announce that this member leaves (its state LEFT); sent at once, and
 * spread further by the ticks that follow.
 */
void gossip_leave(gossip_t *g);

/* Membership changes of other members since the last call, oldest
 * first: fills up to cap events, removes them, returns how many.  At
 * most GOSSIP_MAX_EVENTS wait; beyond that the oldest are dropped.
 */
size_t gossip_events(gossip_t *g, struct swim_event *ev, size_t cap);

/* 0 and the state of id (this member included), or -1 ENOENT. */
int gossip_state(gossip_t *g, uint64_t id, enum swim_state *st);

/* {"members":N (self included),"alive","suspect","dead","left",
 *  "health":LHM,"incarnation","sent","received","bytes_sent",
 *  "bytes_received","dropped","ignored"}, a new reference (NULL on
 * ENOMEM).  dropped counts messages not sent (send failed, or too large
 * to encode); ignored counts received messages gossip could not use.
 */
json_t *gossip_json(gossip_t *g);

#endif
