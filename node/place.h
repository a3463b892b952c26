/* place.h - where slurmctld runs: placement, lease, fencing, handover
 *
 * The Raft leader places the controller on itself: it commits
 * {"op":"placement","controller":self,"term":T,"first_job_id":N}; the
 * term is the fencing epoch.  A peer runs slurmctld only while the
 * committed placement names it for the current term AND it holds the
 * controller lease (node/lease.h); a watchdog process (node/fence.h)
 * kills slurmctld when the lease ends, even if peerd itself is stopped.
 * Every host points SLURM_CTL_ALIAS at the placed controller in its
 * hosts file.  Before a new term's slurmctld starts, the newest complete
 * state generation shipped from the last controller is put in place, and
 * the first job id is raised above every id the old controller may have
 * handed out (PLACE_JOB_ID_GAP above the highest seen).
 *
 * A planned move (peerctl transfer, or a slurmctld that keeps failing):
 * stop slurmctld with SIGTERM (it saves its state), ship that state to
 * the new voter, then hand Raft leadership to it.
 */
#ifndef PEERD_PLACE_H
#define PEERD_PLACE_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "node/agree.h"

struct peerd;

/* Job ids a controller may hand out between its last state copy and its
 * death: the next term starts this far above the highest id seen.
 */
#define PLACE_JOB_ID_GAP 10000
/* A slurmctld that failed this many times in a row is handed over. */
#define PLACE_MAX_FAILURES 3
/* Seconds between checks that the hosts file still names the controller
 * (and the storage host: node/storage.c).
 */
#define PLACE_ALIAS_RECHECK 5.0

/* Read the committed placement (after start and after every change). */
void place_load(struct peerd *p);

/* Act on what was applied (placement, config, members, transfer). */
void place_applied(struct peerd *p, bool placement_changed, bool transfer,
                   uint64_t transfer_to);

/* Every loop round: propose a placement, start or stop slurmctld, renew
 * the fence, move the handover along.
 */
void place_tick(struct peerd *p, double now);

/* May the controller move to voter to (0: any)?  0, or -1 with why. */
int place_transfer_check(struct peerd *p, uint64_t to, char *why, size_t cap);

/* Ask for a move (peerctl transfer): to = voter id, 0 = any.  Returns 0
 * or -1 with why filled.
 */
int place_request_transfer(struct peerd *p, uint64_t to, agree_done_fn cb,
                           void *arg, char *why, size_t cap);

/* "controller" object of the status document (doc/json.md). */
json_t *place_status_json(struct peerd *p, double now);

#endif
