/* slurm.c - lay out this host's Slurm and munge files and services
 *
 * munged runs as the "munge" user when it exists (Debian creates it),
 * reading a key file that user owns with mode 0400; munged refuses a key
 * owned by anyone else, and we never pass --force, which would silently
 * accept a wrong key.  slurmctld and slurmd run as root (SlurmUser=root).
 */
#include "config.h"

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "node/render.h"
#include "node/slurm.h"
#include "store/file.h"

static void munge_user(uid_t *uid, gid_t *gid)
{
    struct passwd *pw = getpwnam("munge");

    *uid = pw ? pw->pw_uid : 0;
    *gid = pw ? pw->pw_gid : 0;
}

#define PATHF(dst, ...) snprintf(dst, sizeof(dst), __VA_ARGS__)

/* Refuse to overwrite a slurm.conf that somebody else wrote.  Returns 1
 * if the file is ours (old content in *old), 0 if absent, -1.
 */
static int read_ours(const char *path, char **old, err_t *err)
{
    size_t len;
    char *text = file_read(path, 1 << 20, &len, err);

    *old = NULL;
    if (!text)
        return errno == ENOENT ? 0 : -1;
    if (strncmp(text, RENDER_MARKER, strlen(RENDER_MARKER)) != 0) {
        free(text);
        return errprintf(err,
                         "%s exists and was not written by peerd; "
                         "move it away or use --slurm-conf PATH",
                         path);
    }
    *old = text;
    return 1;
}

int slurm_render(const struct slurm_site *site, struct slurm_layout *l,
                 err_t *err)
{
    char dir[PATH_MAX];
    char *slash, *text, *old = NULL;
    struct slurm_params p = {
        .cluster_name = site->cluster_name,
        .ctl_host = site->ctl_hosts,
        .ctl_addr = SLURM_CTL_ALIAS,
        .munge_socket = l->munge_socket,
        .state_dir = l->state_dir,
        .spool_dir = l->spool_dir,
        .run_dir = l->run_dir,
        .node_name = site->static_name,
        .node_addr = site->static_addr,
        .node_cpus = site->static_cpus,
        .node_memory_mb = site->static_memory_mb,
        .max_nodes = 1024,
        .first_job_id = site->first_job_id,
        .acct_host = site->accounting ? SLURM_DBD_ALIAS : NULL,
        .acct_port = SLURM_DBD_PORT,
        .extra = site->extra,
        .n_extra = site->n_extra,
    };
    int rc;

    PATHF(dir, "%s", l->slurm_conf);
    if ((slash = strrchr(dir, '/')) && slash != dir) {
        *slash = '\0';
        if (file_mkdir_p(dir, 0755, err) < 0)
            return -1;
    }
    if (read_ours(l->slurm_conf, &old, err) < 0)
        return -1;
    if (!(text = render_slurm_conf(&p, err))) {
        free(old);
        return -1;
    }
    if (old && strcmp(old, text) == 0) {
        rc = 0;
    } else {
        rc = file_write_atomic(l->slurm_conf, text, strlen(text), 0644,
                               (uid_t)-1, (gid_t)-1, err);
        rc = rc < 0 ? -1 : 1;
    }
    if (rc >= 0)
        file_sha256_hex(text, strlen(text), l->config_hash);
    free(text);
    free(old);
    return rc;
}

int slurm_prepare(const char *data_dir, const char *slurm_conf_path,
                  const struct cluster *c, const struct slurm_site *site,
                  struct slurm_layout *l, err_t *err)
{
    uid_t muid;
    gid_t mgid;

    memset(l, 0, sizeof(*l));
    munge_user(&muid, &mgid);
    PATHF(l->munge_dir, "%s/munge", data_dir);
    PATHF(l->munge_key, "%s/munge/munge.key", data_dir);
    PATHF(l->munge_socket, "%s", SLURM_MUNGE_SOCKET);
    PATHF(l->run_dir, "%s", SLURM_RUN_DIR);
    PATHF(l->log_dir, "%s/log", data_dir);
    PATHF(l->state_dir, "%s", SLURM_STATE_DIR);
    PATHF(l->spool_dir, "%s", SLURM_SPOOL_DIR);
    PATHF(l->slurm_conf, "%s", slurm_conf_path);

    if (file_ensure_dir(l->munge_dir, 0700, muid, mgid, err) < 0 ||
        file_ensure_dir("/run/munge", 0755, muid, mgid, err) < 0 ||
        file_ensure_dir(l->run_dir, 0755, 0, 0, err) < 0 ||
        file_ensure_dir(l->log_dir, 0755, 0, 0, err) < 0 ||
        file_mkdir_p("/var/lib/slurm", 0755, err) < 0 ||
        file_ensure_dir(l->state_dir, 0700, 0, 0, err) < 0 ||
        file_ensure_dir(l->spool_dir, 0755, 0, 0, err) < 0)
        return EX_CANTCREAT;
    if (file_write_atomic(l->munge_key, c->munge_key->data, c->munge_key->len,
                          0400, muid, mgid, err) < 0)
        return EX_CANTCREAT;
    if (slurm_render(site, l, err) < 0)
        return strstr(err->text, "not written by peerd") ? EX_CONFIG
                                                         : EX_CANTCREAT;
    return 0;
}

int slurm_add_services(supervisor_t *sv, const struct slurm_layout *l,
                       const struct slurm_binaries *bin, const char *node_name,
                       bool static_node, int cpus, long memory_mb)
{
    char sock[PATH_MAX + 16], key[PATH_MAX + 16], pid[PATH_MAX + 16],
        seed[PATH_MAX + 16], logs[3][PATH_MAX], server[160], conf[96];
    uid_t muid;
    gid_t mgid;
    int m;

    munge_user(&muid, &mgid);
    snprintf(sock, sizeof(sock), "--socket=%s", l->munge_socket);
    snprintf(key, sizeof(key), "--key-file=%s", l->munge_key);
    snprintf(pid, sizeof(pid), "--pid-file=%s/munged.pid", l->munge_dir);
    snprintf(seed, sizeof(seed), "--seed-file=%s/munged.seed", l->munge_dir);
    snprintf(logs[0], sizeof(logs[0]), "%s/munged.log", l->log_dir);
    snprintf(logs[1], sizeof(logs[1]), "%s/slurmctld.log", l->log_dir);
    snprintf(logs[2], sizeof(logs[2]), "%s/slurmd.log", l->log_dir);
    snprintf(server, sizeof(server), "%s:6817", SLURM_CTL_ALIAS);
    snprintf(conf, sizeof(conf), "CPUs=%d RealMemory=%ld", cpus, memory_mb);

    /* munged logs to stderr in the foreground; its own log file would
     * only duplicate that, so it goes to /dev/null.
     */
    const char *munged[] = {bin->munged, "--foreground",         sock, key, pid,
                            seed,        "--log-file=/dev/null", NULL};
    const char *slurmctld[] = {bin->slurmctld, "-D", "-f", l->slurm_conf, NULL};
    const char *slurmd_static[] = {bin->slurmd, "-D",      "-f", l->slurm_conf,
                                   "-N",        node_name, NULL};
    const char *slurmd_dynamic[] = {
        bin->slurmd, "-D", "-Z", "--conf-server", server,
        "--conf",    conf, "-N", node_name,       NULL};
    struct svc_spec spec = {
        .name = "munged",
        .argv = munged,
        .log_path = logs[0],
        .uid = muid ? muid : (uid_t)-1,
        .gid = muid ? mgid : (gid_t)-1,
        .depends_on = -1,
        .start_timeout = 15,
        .hang_timeout = 60,
    };

    if ((m = supervisor_add(sv, &spec)) < 0)
        return -1;
    spec.uid = (uid_t)-1;
    spec.gid = (gid_t)-1;
    spec.start_timeout = 60;
    spec.hang_timeout = 120;
    spec.name = "slurmctld";
    spec.argv = slurmctld;
    spec.log_path = logs[1];
    spec.depends_on = m;
    spec.disabled = true;
    if (supervisor_add(sv, &spec) < 0)
        return -1;
    spec.name = "slurmd";
    spec.argv = static_node ? slurmd_static : slurmd_dynamic;
    spec.log_path = logs[2];
    spec.depends_on = m;
    spec.disabled = true; /* until a controller answers */
    return supervisor_add(sv, &spec) < 0 ? -1 : 0;
}
