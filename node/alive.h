/* alive.h - which hosts answer: SWIM membership (node/gossip.h) for peerd
 *
 * Every member takes part, voters and learners alike.  The controller's
 * peer acts on what SWIM concludes: a member found DEAD has its Slurm
 * node set DOWN (reason ALIVE_REASON) at once; when it answers again its
 * node is resumed.  Only nodes peerd itself set down are resumed; an
 * administrator's DOWN stays.  Every ALIVE_RECONCILE seconds the
 * controller also compares SWIM's view with sinfo's, so a controller that
 * took over after the fact catches up.
 */
#ifndef PEERD_ALIVE_H
#define PEERD_ALIVE_H

#include <jansson.h>

#include "proto/wire.h"

struct peerd;

#define ALIVE_REASON "peerd: host not responding"
#define ALIVE_RECONCILE 2.0

int alive_start(struct peerd *p);
void alive_stop(struct peerd *p);

/* The committed member list changed. */
void alive_members(struct peerd *p);

/* Every loop round. */
void alive_tick(struct peerd *p, double now);

/* A WIRE_SWIM message (not consumed). */
void alive_recv(struct peerd *p, const struct wire_msg *m, double now);

/* Leaving: tell the others (SWIM LEFT). */
void alive_leave(struct peerd *p);

/* SWIM's state of a member: "alive", "suspect", "dead", "left" or NULL. */
const char *alive_state(struct peerd *p, uint64_t id);

/* The "membership" object of the status document. */
json_t *alive_status_json(struct peerd *p);

#endif
