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
#include "node/fsm.h"
#include "node/raft.h"
#include "store/members.h"
#include "store/raftlog.h"
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
        if (strcmp(tier, tiers[i]) == 0)
            return 0;
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

static char *hex_of(const unsigned char *p, size_t n)
{
    char *h = malloc(2 * n + 1);

    if (h)
        sodium_bin2hex(h, 2 * n + 1, p, n);
    return h;
}

/* The encrypted form of a secret, as hex for a log entry. */
static char *sealed_hex(struct cluster *c, const char *name,
                        const secret_t *plain, err_t *err)
{
    unsigned char *blob = NULL;
    size_t len = 0;
    char *h;

    if (secret_encrypt(c->data_key, name, plain, &blob, &len, err) < 0)
        return NULL;
    h = hex_of(blob, len);
    free(blob);
    return h;
}

static int set_local_u64(struct cluster *c, const char *key, uint64_t v,
                         err_t *err)
{
    char text[32];

    snprintf(text, sizeof(text), "%llu", (unsigned long long)v);
    return store_set(c->store, STORE_LOCAL, key, text, err);
}

static uint64_t table_u64(struct cluster *c, enum store_table t,
                          const char *key)
{
    char *v = NULL;
    uint64_t n = 0;

    if (store_get(c->store, t, key, &v, NULL) == 1 && v)
        n = strtoull(v, NULL, 10);
    free(v);
    return n;
}

static uint64_t get_local_u64(struct cluster *c, const char *key)
{
    return table_u64(c, STORE_LOCAL, key);
}

/* Write the cluster's first two entries (the bootstrap operation, then
 * the membership with this peer as the only voter) at term 1 and apply
 * them: a single voter commits alone.  The values come from c (and, for
 * an upgrade from schema 1, were already in the tables).
 */
static int write_first_entries(struct cluster *c, const char *name,
                               const char *id, const char *tier,
                               const struct cluster_opts *o, err_t *err)
{
    struct wire_entry e[2] = {{0}};
    struct raft_conf conf = {.n = 1, .ids = {1}, .voter = {true}};
    unsigned char confbuf[64];
    size_t conflen = 0;
    char *munge = sealed_hex(c, "munge_key", c->munge_key, err);
    char *joinsec = sealed_hex(c, "join_key", c->join_sec, err);
    char *joinpub = hex_of(c->join_pub, 32);
    char *pub = hex_of(c->key.pub, 32);
    char *text = NULL;
    uint64_t one = 1;
    int rc = EX_IOERR;

    if (!munge || !joinsec || !joinpub || !pub)
        goto out;
    text = fsm_payload(json_pack(
        "{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:{s:s,s:s,s:s,s:i,s:I}}", "op",
        "bootstrap", "cluster_name", name, "cluster_id", id, "tier", tier,
        "join_pub", joinpub, "munge_key", munge, "join_key", joinsec, "member",
        "name", o->host->name, "pubkey", pub, "address", o->advertise, "cpus",
        o->host->cpus, "memory_mb", (json_int_t)o->host->memory_mb));
    if (!text ||
        raft_conf_encode(&conf, confbuf, sizeof(confbuf), &conflen) < 0) {
        errprintf(err, "cannot build the first entries");
        goto out;
    }
    e[0] = (struct wire_entry){.term = 1,
                               .index = 1,
                               .type = FSM_ENTRY,
                               .len = (uint32_t)strlen(text),
                               .data = (unsigned char *)text};
    e[1] = (struct wire_entry){.term = 1,
                               .index = 2,
                               .type = RAFT_ENTRY_CONF,
                               .len = (uint32_t)conflen,
                               .data = confbuf};
    if (raftlog_save(c->store, &one, &one, e, 2, err) < 0)
        goto out;
    for (int i = 0; i < 2; i++) {
        struct fsm_effects fx;
        if (fsm_apply(c->store, &e[i], &fx, err) < 0)
            goto out;
        if (i == 0 && !fx.bootstrapped) {
            errprintf(err, "the bootstrap entry was not applied: %s", fx.why);
            rc = EX_DATAERR;
            goto out;
        }
    }
    rc = 0;
out:
    free(munge);
    free(joinsec);
    free(joinpub);
    free(pub);
    free(text);
    return rc;
}

static int new_join_key(struct cluster *c, err_t *err)
{
    if (!(c->join_sec = secret_new(32))) {
        errprintf_errno(err, "cannot generate the join key");
        return -1;
    }
    crypto_box_keypair(c->join_pub, c->join_sec->data);
    return 0;
}

static int bootstrap(struct cluster *c, const struct cluster_opts *o,
                     err_t *err)
{
    unsigned char idbytes[16];
    char idhex[33];
    const char *name = o->name ? o->name : CLUSTER_DEFAULT_NAME;
    const char *tier = o->tier ? o->tier : "micro";
    int rc;

    if (!c->munge_key && !(c->munge_key = secret_random(MUNGE_KEY_BYTES))) {
        errprintf_errno(err, "cannot generate the munge key");
        return EX_OSERR;
    }
    if (!(c->data_key = secret_random(SECRET_DATA_KEY_BYTES)) ||
        new_join_key(c, err) < 0) {
        errprintf_errno(err, "cannot generate the data key");
        return EX_OSERR;
    }
    randombytes_buf(idbytes, sizeof(idbytes));
    sodium_bin2hex(idhex, sizeof(idhex), idbytes, sizeof(idbytes));

    if (store_begin(c->store, err) < 0)
        return EX_IOERR;
    if (put_secret(c, "data_key.sealed", c->data_key, err) < 0 ||
        store_commit(c->store, err) < 0) {
        store_rollback(c->store);
        return EX_IOERR;
    }
    /* node_id last: a crash before it leaves a database that resume()
     * repairs (the member with our key) or refuses, never a peer that
     * waits for a log that will not come
     */
    if ((rc = write_first_entries(c, name, idhex, tier, o, err)) != 0 ||
        set_local_u64(c, "node_id", 1, err) < 0)
        return rc ? rc : EX_IOERR;
    c->node_id = 1;
    c->created = true;
    secret_destroy(&c->munge_key);
    secret_destroy(&c->join_sec);
    return cluster_load_state(c, err);
}

/* A cluster made by peerd 0.1 (schema 1) has its state in the tables but
 * no Raft log: give it the first entries it would have had.
 */
static int upgrade(struct cluster *c, const struct cluster_opts *o, err_t *err)
{
    char *name = NULL, *id = NULL, *tier = NULL;
    int rc = EX_DATAERR;

    if (get_required(c, "cluster_name", &name, err) < 0 ||
        get_required(c, "cluster_id", &id, err) < 0 ||
        get_required(c, "tier", &tier, err) < 0 ||
        load_secret(c, "data_key.sealed", &c->data_key, err) < 0 ||
        load_secret(c, "munge_key", &c->munge_key, err) < 0 ||
        new_join_key(c, err) < 0)
        goto out;
    rc = write_first_entries(c, name, id, tier, o, err);
    if (rc == 0 && set_local_u64(c, "node_id", 1, err) < 0)
        rc = EX_IOERR;
    secret_destroy(&c->munge_key);
    secret_destroy(&c->join_sec);
    c->node_id = 1;
out:
    free(name);
    free(id);
    free(tier);
    return rc;
}

int cluster_load_state(struct cluster *c, err_t *err)
{
    char *pubhex = NULL;
    size_t got = 0;
    int rc;

    rc = store_get(c->store, STORE_CONFIG, "cluster_name", &c->name, err);
    if (rc <= 0)
        return rc < 0 ? EX_IOERR : EX_TEMPFAIL;
    if (get_required(c, "cluster_id", &c->id, err) < 0 ||
        get_required(c, "tier", &c->tier, err) < 0 ||
        get_required(c, "join_pub", &pubhex, err) < 0)
        return errno == EBADMSG ? EX_DATAERR : EX_IOERR;
    if (sodium_hex2bin(c->join_pub, 32, pubhex, strlen(pubhex), NULL, &got,
                       NULL) < 0 ||
        got != 32) {
        free(pubhex);
        errprintf(err, "the join key in the database is damaged");
        return EX_DATAERR;
    }
    free(pubhex);
    if (load_secret(c, "munge_key", &c->munge_key, err) < 0 ||
        load_secret(c, "join_key", &c->join_sec, err) < 0)
        return EX_DATAERR;
    secret_hash_hex(c->munge_key, c->munge_key_hash);
    c->have_state = true;
    return 0;
}

static int resume(struct cluster *c, const struct cluster_opts *o, err_t *err)
{
    struct member self;
    secret_t *given = NULL;
    int rc;

    c->node_id = get_local_u64(c, "node_id");
    if (c->node_id == 0 &&
        members_by_key(c->store, c->key.pub, &self, NULL) == 1) {
        /* bootstrapped, but stopped before node_id was written */
        if (set_local_u64(c, "node_id", self.id, err) < 0)
            return EX_IOERR;
        c->node_id = self.id;
    }
    if (c->node_id == 0) {
        if ((rc = upgrade(c, o, err)) != 0)
            return rc;
    } else if (load_secret(c, "data_key.sealed", &c->data_key, err) < 0) {
        return EX_DATAERR;
    }
    rc = cluster_load_state(c, err);
    if (rc == EX_TEMPFAIL)
        return 0; /* joined; the log has not arrived yet */
    if (rc != 0)
        return rc;
    if (o->name && strcmp(o->name, c->name) != 0)
        return errprintf(err,
                         "%s holds cluster '%s'; refusing to bootstrap "
                         "a different cluster '%s' over it",
                         o->data_dir, c->name, o->name),
               EX_DATAERR;
    if (o->tier && strcmp(o->tier, c->tier) != 0)
        return errprintf(err,
                         "%s holds a %s cluster; --tier %s does not "
                         "change it (peerctl config set tier %s does)",
                         o->data_dir, c->tier, o->tier, o->tier),
               EX_DATAERR;
    if (o->munge_key_file) {
        rc = EX_DATAERR;
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

int cluster_get_secret(struct cluster *c, const char *name, secret_t **out,
                       err_t *err)
{
    void *blob = NULL;
    size_t len = 0;
    int rc = store_get_blob(c->store, name, &blob, &len, err);

    *out = NULL;
    if (rc <= 0)
        return rc;
    *out = secret_decrypt(c->data_key, name, blob, len, err);
    free(blob);
    return *out ? 1 : -1;
}

char *cluster_encrypt_hex(struct cluster *c, const char *name,
                          const secret_t *plain, err_t *err)
{
    return sealed_hex(c, name, plain, err);
}

uint64_t cluster_config_u64(struct cluster *c, const char *key)
{
    return table_u64(c, STORE_CONFIG, key);
}

void cluster_reload_tier(struct cluster *c)
{
    char *tier = NULL;

    if (store_get(c->store, STORE_CONFIG, "tier", &tier, NULL) == 1 && tier) {
        free(c->tier);
        c->tier = tier;
    } else {
        free(tier);
    }
}

/* Join mode: the cluster admitted our key; keep what it sent. */
static int joined(struct cluster *c, const struct cluster_opts *o,
                  const char *keypath, err_t *err)
{
    const struct join_result *j = o->join;
    char pub[65];

    c->key = *o->join_key; /* ownership moves to c */
    memset(o->join_key, 0, sizeof(*o->join_key));
    if (node_key_save(keypath, &c->key, err) < 0)
        return EX_CANTCREAT;
    if (!(c->data_key = secret_unseal(&c->key, j->sealed, j->sealed_len, err)))
        return EX_PROTOCOL;
    sodium_bin2hex(pub, sizeof(pub), j->leader_pub, 32);
    if (store_begin(c->store, err) < 0)
        return EX_IOERR;
    if (store_put_blob(c->store, "data_key.sealed", j->sealed, j->sealed_len,
                       err) < 0 ||
        set_local_u64(c, "node_id", j->node_id, err) < 0 ||
        set_local_u64(c, "leader_id", j->leader_id, err) < 0 ||
        store_set(c->store, STORE_LOCAL, "leader_address", j->leader_address,
                  err) < 0 ||
        store_set(c->store, STORE_LOCAL, "leader_pub", pub, err) < 0 ||
        store_commit(c->store, err) < 0) {
        store_rollback(c->store);
        return EX_IOERR;
    }
    c->node_id = j->node_id;
    c->joined = true;
    return 0;
}

int cluster_check_fresh(const char *data_dir, err_t *err)
{
    char path[PATH_MAX];
    struct stat st;

    snprintf(path, sizeof(path), "%s/peerd.db", data_dir);
    if (stat(path, &st) == 0) {
        errprintf(err,
                  "%s already holds a cluster; --join needs an empty data "
                  "dir",
                  data_dir);
        return EX_DATAERR;
    }
    snprintf(path, sizeof(path), "%s/secret/node.key", data_dir);
    if (stat(path, &st) == 0) {
        errprintf(err, "%s holds a node key; --join needs an empty data dir",
                  data_dir);
        return EX_DATAERR;
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
    if (!have_db && !o->bootstrap && !o->join) {
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
    c->store = store_open(dbpath, o->bootstrap || o->join, err);
    if (!c->store) {
        if (errno == EBADMSG || errno == EPROTONOSUPPORT)
            return EX_DATAERR;
        return errno == EACCES || errno == EROFS ? EX_CANTCREAT : EX_IOERR;
    }
    rc = store_get(c->store, STORE_CONFIG, "cluster_name", &existing, err);
    if (rc < 0)
        return EX_IOERR;
    free(existing);
    if (o->join) {
        if (rc != 0 || have_key) {
            errprintf(err, "%s is not empty; --join needs an empty data dir",
                      o->data_dir);
            return EX_DATAERR;
        }
        rc = joined(c, o, keypath, err);
        if (rc != 0)
            undo_bootstrap(c, dbpath, keypath);
        return rc;
    }
    if (rc == 0 && get_local_u64(c, "node_id") != 0)
        rc = 1; /* joined earlier; its state has not arrived yet */
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
    return rc;
}

void cluster_close(struct cluster *c)
{
    store_destroy(&c->store);
    node_key_fini(&c->key);
    secret_destroy(&c->data_key);
    secret_destroy(&c->munge_key);
    secret_destroy(&c->join_sec);
    free(c->name);
    free(c->id);
    free(c->tier);
    memset(c, 0, sizeof(*c));
}
