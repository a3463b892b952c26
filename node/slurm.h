/* slurm.h - lay out this host's Slurm and munge files and services
 *
 * Everything lives under the data dir except slurm.conf, which goes where
 * Slurm's commands look by default (/etc/slurm/slurm.conf) so that `sinfo`
 * works on the host with no environment variable:
 *   DATA/munge/        0700 munge   munge.key (0400 munge), seed, pid
 *   DATA/run/          0755 root    slurmctld/slurmd pid files
 *   DATA/run/munge/    0755 munge   munge.socket.2
 *   DATA/log/          0755 root    <daemon>.log
 *   DATA/slurm/state/  0700 root    StateSaveLocation
 *   DATA/slurm/spool/  0755 root    SlurmdSpoolDir
 */
#ifndef PEERD_SLURM_H
#define PEERD_SLURM_H

#include <limits.h>

#include "node/cluster.h"
#include "node/hostinfo.h"
#include "node/supervise.h"
#include "proto/err.h"

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

struct slurm_binaries {
    const char *munged, *slurmctld, *slurmd; /* name or path */
};

/* Create the directories, write the munge key file, render and write
 * slurm.conf to slurm_conf_path.  Returns 0, or a sysexits.h code with
 * err filled (EX_CONFIG when slurm.conf exists and was not written by
 * peerd; EX_CANTCREAT when a file cannot be written).
 */
int slurm_prepare(const char *data_dir, const char *slurm_conf_path,
                  const struct cluster *c, const struct hostinfo *hi,
                  struct slurm_layout *l, err_t *err);

/* Register munged, slurmctld and slurmd with the supervisor, in that
 * order, each depending on the one before.  Returns 0 or -1.
 */
int slurm_add_services(supervisor_t *sv, const struct slurm_layout *l,
                       const struct slurm_binaries *bin, const char *node_name);

#endif
