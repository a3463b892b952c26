/* slurm.h - lay out this host's Slurm and munge files and services
 *
 * The munge key file lives in the data dir; what slurm.conf names lives
 * where Debian's Slurm keeps it, because the controller hands one
 * slurm.conf to every host (configless) and its paths must mean the same
 * on every host:
 *   DATA/munge/                   0700 munge  munge.key (0400), seed, pid
 *   DATA/log/                     0755 root   <daemon>.log
 *   /run/munge/munge.socket.2            munge  this host's munged
 *   /run/slurm/                   0755 root   pid files
 *   /var/lib/slurm/slurmctld/     0700 root   StateSaveLocation
 *   /var/lib/slurm/slurmd/        0755 root   SlurmdSpoolDir
 *   /etc/slurm/slurm.conf         0644 root   (--slurm-conf) for commands
 */
#ifndef PEERD_SLURM_H
#define PEERD_SLURM_H

#include <limits.h>
#include <stdbool.h>

#include "node/cluster.h"
#include "node/hostinfo.h"
#include "node/supervise.h"
#include "proto/err.h"

#define SLURM_MUNGE_SOCKET "/run/munge/munge.socket.2"
#define SLURM_RUN_DIR "/run/slurm"
#define SLURM_STATE_DIR "/var/lib/slurm/slurmctld"
#define SLURM_SPOOL_DIR "/var/lib/slurm/slurmd"
/* The controller's address as slurm.conf, slurmd and every job step know
 * it: a name that peerd points at the current controller in every host's
 * hosts file (node/hostsfile.h).
 */
#define SLURM_CTL_ALIAS "peerd-ctl"
/* The name of the storage host (slurmdbd), kept like SLURM_CTL_ALIAS. */
#define SLURM_DBD_ALIAS "peerd-dbd"
#define SLURM_DBD_PORT 6819

struct slurm_layout {
    char munge_dir[PATH_MAX];
    char munge_key[PATH_MAX];
    char munge_socket[PATH_MAX];
    char run_dir[PATH_MAX];
    char log_dir[PATH_MAX];
    char state_dir[PATH_MAX];
    char spool_dir[PATH_MAX];
    char slurm_conf[PATH_MAX];
    char config_hash[65]; /* SHA-256 of the slurm.conf written */
};

/* What slurm.conf says, from the replicated state. */
struct slurm_site {
    const char *cluster_name;
    const char *ctl_hosts;   /* controller candidates (voters), "h1,h2" */
    const char *static_name; /* the first host's node, in slurm.conf */
    const char *static_addr;
    int static_cpus;
    long static_memory_mb;
    unsigned long first_job_id;
    bool accounting;          /* mini, multi: slurmdbd at SLURM_DBD_ALIAS */
    const char *const *extra; /* "Key=Value" from config slurm.<Key> */
    size_t n_extra;
};

struct slurm_binaries {
    const char *munged, *slurmctld, *slurmd; /* name or path */
};

/* Create the directories, write the munge key file, render and write
 * slurm.conf to slurm_conf_path.  Returns 0, or a sysexits.h code with
 * err filled (EX_CONFIG when slurm.conf exists and was not written by
 * peerd; EX_CANTCREAT when a file cannot be written).
 */
int slurm_prepare(const char *data_dir, const char *slurm_conf_path,
                  const struct cluster *c, const struct slurm_site *site,
                  struct slurm_layout *l, err_t *err);

/* Render and write slurm.conf again (the site changed).  Returns 1 if
 * the file changed, 0 if it is the same, -1 with err.
 */
int slurm_render(const struct slurm_site *site, struct slurm_layout *l,
                 err_t *err);

/* Register munged, slurmctld (disabled: peerd enables it while this
 * host holds the controller lease) and slurmd (disabled: peerd enables it
 * once a controller answers, since slurmd registers only when it
 * starts), both depending on munged.
 * The first host's slurmd is its static node; elsewhere slurmd is a
 * dynamic node (-Z) that takes its configuration from the controller
 * (--conf-server SLURM_CTL_ALIAS).  Returns 0 or -1.
 */
int slurm_add_services(supervisor_t *sv, const struct slurm_layout *l,
                       const struct slurm_binaries *bin, const char *node_name,
                       bool static_node, int cpus, long memory_mb);

#endif
