/* lease.c - the controller lease (see lease.h for the argument) */
#include "config.h"

#include <string.h>

#include "node/lease.h"

void lease_reset(struct lease *l, uint64_t term, double now)
{
    memset(l, 0, sizeof(*l));
    l->term = term;
    l->since = now;
}

void lease_heard(struct lease *l, uint64_t id, double now)
{
    for (uint32_t i = 0; i < l->n; i++)
        if (l->ids[i] == id) {
            if (now > l->heard[i])
                l->heard[i] = now;
            return;
        }
    if (l->n < RAFT_MAX_PEERS) {
        l->ids[l->n] = id;
        l->heard[l->n++] = now;
    }
}

static double heard_from(const struct lease *l, uint64_t id)
{
    for (uint32_t i = 0; i < l->n; i++)
        if (l->ids[i] == id)
            return l->heard[i];
    return 0;
}

double lease_until(const struct lease *l, const struct raft_conf *c,
                   uint64_t self, double now)
{
    double t[RAFT_MAX_PEERS];
    uint32_t nv = 0;

    if (l->term == 0 || l->revoked)
        return 0;
    for (uint32_t i = 0; i < c->n; i++)
        if (c->voter[i])
            t[nv++] = c->ids[i] == self ? now : heard_from(l, c->ids[i]);
    if (nv == 0)
        return 0;
    /* descending insertion sort: nv is at most a handful of voters */
    for (uint32_t i = 1; i < nv; i++)
        for (uint32_t j = i; j > 0 && t[j] > t[j - 1]; j--) {
            double x = t[j];
            t[j] = t[j - 1];
            t[j - 1] = x;
        }
    double q = t[nv / 2]; /* quorum = nv / 2 + 1 answers at or after q */
    return q > 0 ? q + LEASE_SECONDS : 0;
}

/* A lone voter has no one to wait for: no other peer can have won. */
static bool alone(const struct raft_conf *c, uint64_t self)
{
    for (uint32_t i = 0; i < c->n; i++)
        if (c->voter[i] && c->ids[i] != self)
            return false;
    return true;
}

bool lease_held(const struct lease *l, const struct raft_conf *c, uint64_t self,
                double now)
{
    return l->term != 0 && !l->revoked &&
           (alone(c, self) || now >= l->since + LEASE_WAIT) &&
           now < lease_until(l, c, self, now);
}
