/* lease.h - the controller lease: when the Raft leader may run slurmctld
 *
 * A pure calculation on monotonic seconds, shared by node/agree.c and the
 * simulation (tests/sim/sim_raft.c).  The leader counts, per voter, when
 * it last heard an answer of its own term; it holds the lease until
 * LEASE_SECONDS after the moment by which a quorum (itself included) had
 * answered, and, as a new leader, not before LEASE_WAIT after it won.
 *
 * Why that is safe (doc/architecture.md, "Placement and fencing"): every
 * APPEND carries its send time and the answer echoes it, so an answer
 * counts from when the heartbeat LEFT, however late it arrives.  A voter
 * that answered a heartbeat sent at s reset its timer after s and votes
 * for nobody until E later (E = LEASE_MIN_ELECTION: 10 ticks of at least
 * AGREE_TICK s, one lost to rounding; node/raft.c counts it across term
 * changes and from start).  A new leader needs a vote from one voter of
 * every quorum, so it wins at t >= s + E, and the old lease, which ends by
 * s + LEASE_SECONDS, is over by t + LEASE_SECONDS - E = t + 0.6 s.  The
 * new leader waits LEASE_WAIT (0.9 s): 0.6 s for the argument, the rest a
 * margin for scheduling and the fence's reaction.  LEASE_SECONDS is 1.5 s
 * rather than one election timeout so that a lossy network (TCP holding
 * heartbeats back for a second after a loss) does not make the leader
 * drop its lease and restart slurmctld; it costs 0.5 s of failover.  No bound
 * on message delay is assumed.  A leader that hands over (TIMEOUT_NOW makes
 * voters skip the wait) gives the lease up first and never takes it again in
 * that term: if the handover is abandoned it steps down.
 * tests/sim/sim_raft.c checks at every event that no two peers have a live
 * slurmctld, with pauses, crashes, partitions and late messages.
 */
#ifndef PEERD_LEASE_H
#define PEERD_LEASE_H

#include <stdbool.h>
#include <stdint.h>

#include "node/raft.h"

#define LEASE_SECONDS 1.5
#define LEASE_MIN_ELECTION 0.9 /* E above */
#define LEASE_MARGIN 0.3
#define LEASE_WAIT (LEASE_SECONDS - LEASE_MIN_ELECTION + LEASE_MARGIN)

struct lease {
    uint64_t term; /* the leader term it counts for; 0 = none */
    double since;  /* when this peer became leader of that term */
    bool revoked;  /* given up (a handover) until the next term */
    uint32_t n;
    uint64_t ids[RAFT_MAX_PEERS];
    double heard[RAFT_MAX_PEERS];
};

/* This peer became leader of term at now: forget what was heard. */
void lease_reset(struct lease *l, uint64_t term, double now);

/* An answer of the lease's term from peer id arrived at now. */
void lease_heard(struct lease *l, uint64_t id, double now);

/* When the lease ends, given the voters in c (self counts as heard
 * now): the quorum-th latest answer + LEASE_SECONDS.  0 if revoked or no
 * term.
 */
double lease_until(const struct lease *l, const struct raft_conf *c,
                   uint64_t self, double now);

/* Held at now: not revoked, past since + LEASE_WAIT (unless this peer is
 * the only voter), before the end.
 */
bool lease_held(const struct lease *l, const struct raft_conf *c, uint64_t self,
                double now);

#endif
