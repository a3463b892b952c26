/* login.h - the login role: a Jupyter server run by peerd
 *
 * A host started with --login ADDR:PORT runs Jupyter (node/jupyter.h)
 * under its supervisor as --login-user (default root), bound to
 * ADDR:PORT, with a token kept in DATA/jupyter/token.  Its terminals
 * and kernels see peerd's slurm.conf, so sbatch, squeue and sacct work
 * there.  A login host started with --no-compute runs no slurmd.
 * Health: Jupyter's own API (/api/status with the token), checked from
 * a thread of this module every LOGIN_CHECK_EVERY seconds.
 */
#ifndef PEERD_LOGIN_H
#define PEERD_LOGIN_H

#include <jansson.h>

#include "proto/err.h"

struct peerd;

#define LOGIN_CHECK_EVERY 2.0

/* Set up the service and the checks (at start_slurm).  addr: the
 * "ADDR:PORT" given to --login (checked by login_check_option).
 * Returns 0, or -1 with err (no such user, no Jupyter installed, ...).
 */
int login_start(struct peerd *p, const char *addr, const char *user,
                err_t *err);
void login_stop(struct peerd *p);

/* Is "ADDR:PORT" usable for --login?  0, or -1 with err. */
int login_check_option(const char *addr, err_t *err);

/* Every loop round: health results to the supervisor. */
void login_tick(struct peerd *p, double now);

/* The "login" object of the status document, or null (doc/json.md). */
json_t *login_status_json(struct peerd *p, double now);

#endif
