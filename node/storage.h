/* storage.h - where accounting runs: MariaDB + slurmdbd, placed
 *
 * In the mini and multi tiers one member is the storage host: it runs
 * MariaDB (node/acct.h) and slurmdbd under peerd's supervisor, and every
 * host points SLURM_DBD_ALIAS at it in its hosts file, as it does
 * SLURM_CTL_ALIAS for the controller.  The Raft leader commits
 * {"op":"storage","storage":S,"replica":R,"term":T}:
 *   mini   S is the controller's host when the tier is switched on, and
 *          stays there (no replica, R = 0);
 *   multi  S prefers a voter other than the controller's host, R another
 *          voter that keeps a MariaDB replica; when SWIM finds S dead the
 *          leader moves storage to R (promoted) and picks a new replica.
 * The database password is made once by the leader, encrypted with the
 * cluster's data key and committed (secret_set), like the munge key.
 *
 * The slow steps (initialising the datadir, creating the database,
 * registering the cluster, replication, health checks that run sacctmgr)
 * run in a worker thread of this module; the main loop only moves
 * wishes in and results out, and enables or disables the services.
 */
#ifndef PEERD_STORAGE_H
#define PEERD_STORAGE_H

#include <stdbool.h>

#include <jansson.h>

#include "node/fsm.h"

struct peerd;

/* Seconds a storage host must have been DEAD to SWIM before the leader
 * moves storage to the replica (multi).
 */
#define STORAGE_DEAD_GRACE 2.0
/* Seconds a starting peer follows a leader before it takes a storage
 * role from the committed state (which may be stale until then).
 */
#define STORAGE_SETTLE 2.0

/* Set up (at start_slurm, after the Slurm services): the accounting
 * services (disabled) and the worker.  Returns 0 or -1 (logged); a host
 * without MariaDB installed still starts (it cannot be the storage host,
 * and says so if it is placed there).
 */
int storage_start(struct peerd *p);

/* Stop the worker (the services are stopped with the others). */
void storage_stop(struct peerd *p);

/* Accounting on in this cluster's tier (mini, multi)? */
bool storage_accounting(const struct peerd *p);

/* Act on an applied entry (tier, storage placement, secret). */
void storage_applied(struct peerd *p, const struct fsm_effects *fx);

/* Every loop round: leader proposals, services, health results. */
void storage_tick(struct peerd *p, double now);

/* May slurmctld start here now?  With accounting on, slurmctld waits
 * until slurmdbd lists the cluster: a slurmctld with no saved accounting
 * state (STORAGE_TRES_STATE in its state dir: a new cluster) exits at
 * start without slurmdbd ("we have no TRES from it"), and one that
 * registers while slurmdbd is away leaves the cluster without a control
 * host ("no remote port").  With saved state it waits at most
 * STORAGE_CTL_WAIT seconds, then starts anyway (it keeps its records for
 * slurmdbd).  After a switch from micro the running slurmctld is
 * restarted (to load the accounting plugin) only once slurmdbd lists the
 * cluster: until then it keeps scheduling without accounting.  Logs the
 * wait once.
 */
#define STORAGE_TRES_STATE "assoc_mgr_state"
/* With saved state, slurmctld waits at most this long for slurmdbd. */
#define STORAGE_CTL_WAIT 30.0
/* The cluster listed with no control host this long: restart slurmctld
 * (at most every STORAGE_REHOME_SPACING seconds).
 */
#define STORAGE_UNHOMED_AFTER 10.0
#define STORAGE_REHOME_SPACING 120.0
bool storage_ctl_may_start(struct peerd *p, double now);

/* The "accounting" object of the status document (doc/json.md). */
json_t *storage_status_json(struct peerd *p, double now);

#endif
