/* peerd.h - the state of one running peer, shared by node/ modules
 *
 * Owned by the main thread; only the event loop touches it.
 */
#ifndef PEERD_PEERD_H
#define PEERD_PEERD_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "node/cluster.h"
#include "node/health.h"
#include "node/hostinfo.h"
#include "node/slurm.h"
#include "node/supervise.h"

#define PEERD_DEFAULT_DATA_DIR "/var/lib/peerd"
#define PEERD_DEFAULT_SLURM_CONF "/etc/slurm/slurm.conf"
#define PEERD_CTL_NAME "peerd.ctl"

struct peerd {
    const char *data_dir;
    struct cluster cluster;
    struct hostinfo host;
    struct slurm_layout layout;
    supervisor_t *sv;
    health_t *health;
    int svc_munged, svc_slurmctld, svc_slurmd;

    /* last health report */
    struct health_report report;
    bool have_report;
    json_t *slurm_view; /* nodes and jobs, or NULL */

    void *zctx;
    void *ctl; /* ROUTER, ipc://DATA/peerd.ctl */
    char ctl_path[PATH_MAX];
    uint64_t ctl_requests;
    uint64_t ctl_malformed;

    double started; /* monotonic */
    bool stopping;
};

/* Monotonic seconds. */
double peerd_now(void);

/* Bind the control socket (mode 0600).  Returns 0 or -1 with err. */
int control_open(struct peerd *p, err_t *err);
void control_close(struct peerd *p);

/* Serve every request waiting on the control socket. */
void control_handle(struct peerd *p);

/* The status document (doc/json.md).  New reference. */
json_t *control_status(struct peerd *p);

#endif
