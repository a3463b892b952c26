/* cluster.h - this peer's cluster: identity, config and secrets
 *
 * cluster_open() turns a data dir into a usable cluster: it bootstraps a
 * new one (--bootstrap on an empty data dir) or resumes the one the data
 * dir holds, and refuses everything in between (a different cluster, a
 * database that was lost while the node key survived, a corrupt file).
 * It owns the store, the node key pair, the data key and the munge key.
 */
#ifndef PEERD_CLUSTER_H
#define PEERD_CLUSTER_H

#include <stdbool.h>

#include "node/hostinfo.h"
#include "node/join.h"
#include "proto/err.h"
#include "store/secret.h"
#include "store/store.h"

struct cluster_opts {
    const char *data_dir;
    bool bootstrap;
    const char *name;           /* NULL: keep / default */
    const char *tier;           /* NULL: keep / default */
    const char *munge_key_file; /* NULL: keep / generate */
    const struct hostinfo *host;
    const char *advertise; /* "addr:port" of this peer's socket */
    /* join mode: the key pair used to join and what the cluster sent */
    node_key_t *join_key;
    const struct join_result *join;
};

struct cluster {
    store_t *store;
    node_key_t key;
    uint64_t node_id; /* this peer's member id */
    secret_t *data_key;
    bool have_state; /* the cluster's first entry is applied here */
    /* from the applied state (when have_state) */
    secret_t *munge_key;
    secret_t *join_sec;
    unsigned char join_pub[32];
    char *name;
    char *id;
    char *tier;
    char munge_key_hash[65];
    bool created; /* bootstrapped by this call */
    bool joined;  /* joined by this call */
};

#define CLUSTER_DEFAULT_NAME "peerd"
#define MUNGE_KEY_BYTES 128 /* 1024 bits */
#define MUNGE_KEY_MIN 32
#define MUNGE_KEY_MAX 1024

/* Returns 0, or a sysexits.h code with err filled:
 *   EX_CONFIG    no cluster here and no --bootstrap; unsupported tier
 *   EX_DATAERR   corrupt or newer database; a different cluster; a lost
 *                database; a bad munge key file; bad name
 *   EX_CANTCREAT the data dir cannot be created or written
 *   EX_IOERR     any other I/O failure
 */
int cluster_open(struct cluster *c, const struct cluster_opts *o, err_t *err);
void cluster_close(struct cluster *c);

/* Load name, id, tier, munge key and join key from the applied state
 * (after the first entry arrived on a joined peer).  Returns 0 or a
 * sysexits.h code; EX_TEMPFAIL when the state is not there yet.
 */
int cluster_load_state(struct cluster *c, err_t *err);

/* Refuse a data dir that holds anything of a cluster (for --join).
 * Returns 0 or a sysexits.h code.
 */
int cluster_check_fresh(const char *data_dir, err_t *err);

/* Checks a cluster name: 1-40 chars of [a-z0-9_-], starting with a
 * letter (Slurm folds ClusterName to lower case; we refuse instead).
 */
bool cluster_name_valid(const char *name);

/* A secret set after the bootstrap (fsm secret_set), decrypted with the
 * data key.  Returns 1 with *out, 0 when there is none, -1 with err
 * (unreadable, or does not decrypt: a damaged or foreign value).
 */
int cluster_get_secret(struct cluster *c, const char *name, secret_t **out,
                       err_t *err);

/* plain encrypted with the data key for a secret_set entry: malloc'd
 * hex, or NULL with err.
 */
char *cluster_encrypt_hex(struct cluster *c, const char *name,
                          const secret_t *plain, err_t *err);

/* A numeric config value (member ids, terms); 0 when unset. */
uint64_t cluster_config_u64(struct cluster *c, const char *key);

/* Read the tier again (it can be changed with config set tier). */
void cluster_reload_tier(struct cluster *c);

#endif
