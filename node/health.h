/* health.h - real health checks, run in a thread of their own
 *
 * The checks block (libslurm RPCs wait up to MessageTimeout), so they run
 * in one background thread that owns all libslurm and libmunge calls.
 * Each round: a munge credential encode/decode round trip through this
 * peer's munged; slurm_ping() of the controller; the local slurmd's own
 * status RPC (its pid must be the one we started); and, when the
 * controller answers, a snapshot of nodes and jobs for `peerctl status`.
 * The main loop is woken through an eventfd and takes the latest report.
 */
#ifndef PEERD_HEALTH_H
#define PEERD_HEALTH_H

#include <stdbool.h>
#include <sys/types.h>

#include <jansson.h>

typedef struct health health_t;

struct health_check {
    bool ok;
    char detail[160]; /* why not ok */
};

struct health_report {
    double started; /* CLOCK_MONOTONIC at the start of the round */
    struct health_check munge, slurmctld, slurmd;
    pid_t slurmd_pid; /* as slurmd reported it */
    json_t *slurm;    /* nodes + jobs, or NULL; owned by the taker */
};

/* Start the thread.  Paths are copied.  Returns NULL (errno) on failure.
 * interval: seconds between rounds.
 */
health_t *health_start(const char *munge_socket, const char *slurm_conf,
                       double interval);
void health_stop(health_t **hp);

/* File descriptor that is readable when a new report is ready. */
int health_fd(health_t *h);

/* Take the latest report: returns true and fills *r (the caller owns
 * r->slurm) if one was ready, false otherwise.  Drains the eventfd.
 */
bool health_take(health_t *h, struct health_report *r);

/* Which daemons have a process to check; the others are reported not
 * ok ("not running") without an RPC, so that no RPC goes to a daemon
 * that is not there.
 */
void health_set_active(health_t *h, bool munged, bool slurmctld, bool slurmd);

/* Ask slurmctld to re-read slurm.conf (scontrol reconfigure) in the next
 * round.
 */
void health_reconfigure(health_t *h);

/* Ask for a new round now (e.g. a service was just started). */
void health_poke(health_t *h);

#endif
