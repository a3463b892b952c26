/* lease.h - the controller lease: when the Raft leader may run slurmctld
 *
 * A pure calculation on monotonic seconds, shared by node/agree.c and the
 * simulation (tests/sim/sim_raft.c).  The leader counts, per voter, when
 * it last heard an answer of its own term; it holds the lease until
 * LEASE_SECONDS after the moment by which a quorum (itself included) had
 * answered, and, as a new leader, not before LEASE_WAIT after it won.
 *
 * Why that is safe (doc/architecture.md, "Placement and fencing"): a
 * voter that answered the old leader at time r (its election timer was
 * reset at some s <= r) grants no vote before s + E, E = the shortest
 * election timeout in real time (AGREE_ELECTION_TICKS - 1 ticks of at
 * least AGREE_TICK s, 0.9 s).  A new leader needs a vote from one voter of
 * every quorum, so it wins at t >= r - d + E, where d is how late the
 * answer arrived.  The old lease ends at r + LEASE_SECONDS <= t +
 * LEASE_SECONDS - E + d.  Waiting LEASE_WAIT >= LEASE_SECONDS - E + d
 * after the win therefore never overlaps, for answers late by up to
 * LEASE_MAX_DELAY.  A leader that hands over (TIMEOUT_NOW makes voters
 * skip the wait) gives the lease up first.
 */
#ifndef PEERD_LEASE_H
#define PEERD_LEASE_H

#include <stdbool.h>
#include <stdint.h>

#include "node/raft.h"

#define LEASE_SECONDS 1.0
#define LEASE_MIN_ELECTION 0.9 /* E above */
#define LEASE_MAX_DELAY 0.5    /* d above */
#define LEASE_WAIT (LEASE_SECONDS - LEASE_MIN_ELECTION + LEASE_MAX_DELAY)

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
