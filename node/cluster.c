/* cluster.c - this peer's cluster: identity, config and secrets
 *
 * Order of writes at bootstrap: the database file is created (empty
 * schema), then the node key file, then one store transaction with the
 * cluster.  A bootstrap that fails on the way removes what it created; a
 * crash leaves at worst an empty database and a key, which the next start
 * reports ("the database was emptied") instead of silently making a
 * second cluster.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include <sodium.h>

#include "node/cluster.h"
#include "store/file.h"

static const char *const tiers[] = {"micro", "mini", "multi"};

bool cluster_name_valid(const char *name)
{
    size_t n = strlen(name);

    if (n < 1 || n > 40 || name[0] < 'a' || name[0] > 'z')
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = name[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_'))
            return false;
    }
    return true;
}

static int check_tier(const char *tier, err_t *err)
{
    for (size_t i = 0; i < sizeof(tiers) / sizeof(tiers[0]); i++) {
        if (strcmp(tier, tiers[i]) == 0) {
            if (i > 0)
                return errprintf(err,
                                 "tier '%s' is not supported by this "
                                 "peerd yet (only micro)",
                                 tier);
            return 0;
        }
    }
    return errprintf(err, "unknown tier '%s' (micro, mini or multi)", tier);
}

static int probe_writable(const char *dir, err_t *err)
{
    char path[PATH_MAX];
    FILE *f;

    snprintf(path, sizeof(path), "%s/.peerd-write-test", dir);
    if (!(f = fopen(path, "w")))
        return errprintf_errno(err, "data dir %s is not writable", dir);
    fclose(f);
    unlink(path);
    return 0;
}

static secret_t *read_munge_key_file(const char *path, err_t *err)
{
    secret_t *s = NULL;
    size_t len = 0;
    char *buf = file_read(path, MUNGE_KEY_MAX, &len, err);

    if (!buf)
        return NULL;
    if (len < MUNGE_KEY_MIN) {
        errprintf(err, "munge key %s is too short (%zu bytes, at least %d)",
                  path, len, MUNGE_KEY_MIN);
    } else if ((s = secret_new(len))) {
        memcpy(s->data, buf, len);
    } else {
        errprintf_errno(err, "cannot read munge key %s", path);
    }
    sodium_memzero(buf, len);
    free(buf);
    return s;
}

/* Read a required text value from the config table. */
static int get_required(struct cluster *c, const char *key, char **out,
                        err_t *err)
{
    int rc = store_get(c->store, STORE_CONFIG, key, out, err);

    if (rc == 0) {
        errno = EBADMSG;
        return errprintf(err, "database has a cluster without '%s'", key);
    }
    return rc < 0 ? -1 : 0;
}

static int load_secret(struct cluster *c, const char *name, secret_t **out,
                       err_t *err)
{
    void *blob = NULL;
    size_t len = 0;
    int rc = store_get_blob(c->store, name, &blob, &len, err);

    if (rc == 0) {
        errno = EBADMSG;
        return errprintf(err, "database has no %s", name);
    }
    if (rc < 0)
        return -1;
    if (strcmp(name, "data_key.sealed") == 0)
        *out = secret_unseal(&c->key, blob, len, err);
    else
        *out = secret_decrypt(c->data_key, name, blob, len, err);
    free(blob);
    return *out ? 0 : -1;
}

static int put_secret(struct cluster *c, const char *name,
                      const secret_t *plain, err_t *err)
{
    unsigned char *blob = NULL;
    size_t len = 0;
    int rc;

    if (strcmp(name, "data_key.sealed") == 0)
        rc = secret_seal(c->key.pub, plain, &blob, &len, err);
    else
        rc = secret_encrypt(c->data_key, name, plain, &blob, &len, err);
    if (rc == 0)
        rc = store_put_blob(c->store, name, blob, len, err);
    free(blob);
    return rc;
}

static int bootstrap(struct cluster *c, const struct cluster_opts *o,
                     err_t *err)
{
    unsigned char idbytes[16];
    char idhex[33];
    const char *name = o->name ? o->name : CLUSTER_DEFAULT_NAME;
    const char *tier = o->tier ? o->tier : "micro";

    if (!c->munge_key && !(c->munge_key = secret_random(MUNGE_KEY_BYTES))) {
        errprintf_errno(err, "cannot generate the munge key");
        return EX_OSERR;
    }
    if (!(c->data_key = secret_random(SECRET_DATA_KEY_BYTES))) {
        errprintf_errno(err, "cannot generate the data key");
        return EX_OSERR;
    }
    randombytes_buf(idbytes, sizeof(idbytes));
    sodium_bin2hex(idhex, sizeof(idhex), idbytes, sizeof(idbytes));

    if (store_begin(c->store, err) < 0)
        return EX_IOERR;
    if (store_set(c->store, STORE_CONFIG, "cluster_name", name, err) < 0 ||
        store_set(c->store, STORE_CONFIG, "cluster_id", idhex, err) < 0 ||
        store_set(c->store, STORE_CONFIG, "tier", tier, err) < 0 ||
        put_secret(c, "data_key.sealed", c->data_key, err) < 0 ||
        put_secret(c, "munge_key", c->munge_key, err) < 0 ||
        store_commit(c->store, err) < 0) {
        store_rollback(c->store);
        return EX_IOERR;
    }
    c->name = strdup(name);
    c->id = strdup(idhex);
    c->tier = strdup(tier);
    c->created = true;
    return 0;
}

static int resume(struct cluster *c, const struct cluster_opts *o, err_t *err)
{
    secret_t *given = NULL;
    int rc = EX_DATAERR;

    if (get_required(c, "cluster_name", &c->name, err) < 0 ||
        get_required(c, "cluster_id", &c->id, err) < 0 ||
        get_required(c, "tier", &c->tier, err) < 0)
        return errno == EBADMSG ? EX_DATAERR : EX_IOERR;
    if (o->name && strcmp(o->name, c->name) != 0)
        return errprintf(err,
                         "%s holds cluster '%s'; refusing to bootstrap "
                         "a different cluster '%s' over it",
                         o->data_dir, c->name, o->name),
               EX_DATAERR;
    if (o->tier && strcmp(o->tier, c->tier) != 0)
        return errprintf(err,
                         "%s holds a %s cluster; --tier %s does not "
                         "change it",
                         o->data_dir, c->tier, o->tier),
               EX_DATAERR;
    if (load_secret(c, "data_key.sealed", &c->data_key, err) < 0 ||
        load_secret(c, "munge_key", &c->munge_key, err) < 0)
        return EX_DATAERR;
    if (o->munge_key_file) {
        if (!(given = read_munge_key_file(o->munge_key_file, err)))
            return EX_DATAERR;
        if (given->len != c->munge_key->len ||
            sodium_memcmp(given->data, c->munge_key->data, given->len) != 0)
            errprintf(err,
                      "%s holds cluster '%s' with another munge key "
                      "than %s; refusing",
                      o->data_dir, c->name, o->munge_key_file);
        else
            rc = 0;
        secret_destroy(&given);
        return rc;
    }
    return 0;
}

/* A bootstrap that failed half way removes what it created, so that the
 * next attempt does not find "a node key without a database".
 */
static void undo_bootstrap(struct cluster *c, const char *dbpath,
                           const char *keypath)
{
    char path[PATH_MAX];

    store_destroy(&c->store);
    unlink(dbpath);
    snprintf(path, sizeof(path), "%s-wal", dbpath);
    unlink(path);
    snprintf(path, sizeof(path), "%s-shm", dbpath);
    unlink(path);
    unlink(keypath);
}

int cluster_open(struct cluster *c, const struct cluster_opts *o, err_t *err)
{
    char secdir[PATH_MAX], keypath[PATH_MAX], dbpath[PATH_MAX];
    struct stat st;
    bool have_db, have_key;
    char *existing = NULL;
    int rc;

    memset(c, 0, sizeof(*c));
    if (o->name && !cluster_name_valid(o->name)) {
        errprintf(err,
                  "bad cluster name '%s': use 1-40 characters a-z, "
                  "0-9, '-' or '_', starting with a letter",
                  o->name);
        return EX_DATAERR;
    }
    if (o->tier && check_tier(o->tier, err) < 0)
        return EX_CONFIG;
    /* 0755: munged (as the munge user) and Slurm's commands (any user)
     * must reach DATA/run/munge; what is secret is protected one level
     * down (secret/ 0700, munge/ 0700, peerd.db 0600).
     */
    if (file_ensure_dir(o->data_dir, 0755, (uid_t)-1, (gid_t)-1, err) < 0 ||
        probe_writable(o->data_dir, err) < 0)
        return EX_CANTCREAT;
    snprintf(secdir, sizeof(secdir), "%s/secret", o->data_dir);
    snprintf(keypath, sizeof(keypath), "%s/node.key", secdir);
    snprintf(dbpath, sizeof(dbpath), "%s/peerd.db", o->data_dir);
    have_db = stat(dbpath, &st) == 0;
    have_key = stat(keypath, &st) == 0;

    if (!have_db && have_key) {
        errprintf(err,
                  "%s exists but %s does not: the database was lost; "
                  "refusing to create a new cluster over it (move %s "
                  "away to start over)",
                  keypath, dbpath, o->data_dir);
        return EX_DATAERR;
    }
    if (!have_db && !o->bootstrap) {
        errprintf(err,
                  "no cluster in %s: start with --bootstrap to create "
                  "one",
                  o->data_dir);
        return EX_CONFIG;
    }
    /* Read what is given before anything is created, so that a bad
     * munge key file leaves the data dir as it was.
     */
    if (!have_db && o->munge_key_file &&
        !(c->munge_key = read_munge_key_file(o->munge_key_file, err)))
        return EX_DATAERR;
    if (file_ensure_dir(secdir, 0700, (uid_t)-1, (gid_t)-1, err) < 0)
        return EX_CANTCREAT;
    c->store = store_open(dbpath, o->bootstrap, err);
    if (!c->store) {
        if (errno == EBADMSG || errno == EPROTONOSUPPORT)
            return EX_DATAERR;
        return errno == EACCES || errno == EROFS ? EX_CANTCREAT : EX_IOERR;
    }
    rc = store_get(c->store, STORE_CONFIG, "cluster_name", &existing, err);
    if (rc < 0)
        return EX_IOERR;
    free(existing);
    if (rc == 0 && (!o->bootstrap || have_key)) {
        errprintf(err, "%s holds no cluster%s", dbpath,
                  have_key ? " but a node key exists: the database was "
                             "emptied; refusing to start over"
                           : ": start with --bootstrap to create one");
        return have_key ? EX_DATAERR : EX_CONFIG;
    }
    if (node_key_load(keypath, rc == 0, &c->key, err) < 0)
        return errno == EBADMSG || errno == ENOENT ? EX_DATAERR : EX_IOERR;
    if (rc == 0) {
        rc = bootstrap(c, o, err);
        if (rc != 0 && !have_db)
            undo_bootstrap(c, dbpath, keypath);
    } else
        rc = resume(c, o, err);
    if (rc == 0)
        secret_hash_hex(c->munge_key, c->munge_key_hash);
    return rc;
}

void cluster_close(struct cluster *c)
{
    store_destroy(&c->store);
    node_key_fini(&c->key);
    secret_destroy(&c->data_key);
    secret_destroy(&c->munge_key);
    free(c->name);
    free(c->id);
    free(c->tier);
    memset(c, 0, sizeof(*c));
}
