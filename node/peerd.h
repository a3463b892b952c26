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

#include "node/agree.h"
#include "node/cluster.h"
#include "node/fence.h"
#include "node/gossip.h"
#include "node/health.h"
#include "node/hostinfo.h"
#include "node/ship.h"
#include "node/slurm.h"
#include "node/supervise.h"
#include "node/transport.h"

#define PEERD_DEFAULT_DATA_DIR "/var/lib/peerd"
#define PEERD_DEFAULT_SLURM_CONF "/etc/slurm/slurm.conf"
#define PEERD_CTL_NAME "peerd.ctl"

struct peerd {
    const char *data_dir;
    const char *slurm_conf;
    struct slurm_binaries bin;
    struct cluster cluster;
    struct hostinfo host;
    char advertise[160]; /* addr:port of our peer socket */

    transport_t *t;
    agree_t *agree;

    /* Slurm: set up once the cluster state is here */
    bool slurm_started;
    bool controller;  /* slurmctld is enabled on this host */
    bool static_node; /* this host's node is in slurm.conf (the first) */
    const char *hosts_file;

    /* the committed placement (node/place.h) */
    uint64_t controller_id;
    uint64_t ctl_term;     /* its fencing epoch */
    uint64_t first_job_id; /* FirstJobId of that term */
    char ctl_name[64];
    char ctl_addr[64];
    bool placing;              /* a placement proposal in flight */
    uint64_t ctl_started_term; /* term slurmctld was last set up for here */
    fence_t *fence;
    double fence_until; /* what the fence was told */
    double alias_at;    /* next check of the hosts file's aliases */
    double peers_at;    /* next sync of the transport's peers */
    struct handover {
        bool active;
        uint64_t to; /* 0: any voter */
        double started, final_at;
        bool transferred;
        double retry_at; /* a failing slurmctld: next handover attempt */
    } handover;
    struct ship ship;
    struct storage *storage; /* accounting (node/storage.h) */
    struct login *login;     /* Jupyter (node/login.h), or NULL */
    const char *login_addr;  /* --login, or NULL */
    const char *login_user;
    bool no_compute;  /* --no-compute: no slurmd here */
    gossip_t *gossip; /* SWIM (node/alive.h) */
    double alive_next;
    bool slurmd_enabled;    /* a controller answered once: slurmd runs */
    double unlisted_since;  /* our node missing from the controller's list */
    double reregistered_at; /* slurmd last restarted for that */
    struct slurm_layout layout;
    supervisor_t *sv;
    health_t *health;
    int svc_munged, svc_slurmctld, svc_slurmd;
    bool reported; /* our hashes are in the member table */
    bool reporting;
    char report_hash[65]; /* the config hash of the report in flight */

    /* last health report */
    struct health_report report;
    bool have_report;
    json_t *slurm_view; /* nodes and jobs, or NULL */

    void *zctx;
    void *ctl; /* ROUTER, ipc://DATA/peerd.ctl */
    char ctl_path[PATH_MAX];
    uint64_t ctl_requests;
    uint64_t ctl_malformed;
    uint64_t joins_admitted;
    uint64_t joins_refused;

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

/* Members as peerctl members --json prints them.  New reference. */
json_t *control_members(struct peerd *p);

/* The join server: answer a JOIN_REQ from a host with CURVE key pub. */
void peerd_join_request(struct peerd *p, struct wire_msg *m,
                        const unsigned char pub[32], const unsigned char *rid,
                        size_t ridlen);

#endif
