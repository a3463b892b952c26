/* fsm.c - the cluster state machine: committed Raft entries -> SQLite
 *
 * Operations (fields of the JSON object):
 *   bootstrap    cluster_name cluster_id tier join_pub munge_key join_key
 *                member{...}           (the cluster's first entry)
 *   config_set   key value
 *   token_add    id verifier expires uses
 *   member_add   name pubkey address cpus memory_mb token time
 *   member_report id config_hash munge_key_hash
 *   member_leave id
 *   placement    controller term first_job_id
 *   transfer     to
 *   secret_set   name value      (value: encrypted with the data key)
 *   storage      storage replica term   (where accounting runs)
 * Binary values are lowercase hex.  RAFT_ENTRY_CONF entries set the voter
 * flag of the members they list.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "node/fsm.h"
#include "node/log.h"
#include "store/members.h"
#include "store/raftlog.h"

char *fsm_payload(json_t *o)
{
    char *text = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;

    json_decref(o);
    return text;
}

static int ignore(struct fsm_effects *fx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int ignore(struct fsm_effects *fx, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(fx->why, sizeof(fx->why), fmt, ap);
    va_end(ap);
    return 1; /* applied as a no-op */
}

/* Hex text -> exactly len bytes (or, with len 0, a malloc'd buffer). */
static int unhex(const char *hex, unsigned char *out, size_t len)
{
    size_t got = 0;

    if (!hex || strlen(hex) != 2 * len)
        return -1;
    return sodium_hex2bin(out, len, hex, 2 * len, NULL, &got, NULL) == 0 &&
                   got == len
               ? 0
               : -1;
}

static unsigned char *unhex_alloc(const char *hex, size_t *len)
{
    size_t n = hex ? strlen(hex) : 1;
    unsigned char *buf;

    if (n % 2 || n == 0 || n > 8192)
        return NULL;
    if (!(buf = malloc(n / 2)))
        return NULL;
    if (unhex(hex, buf, n / 2) < 0) {
        free(buf);
        return NULL;
    }
    *len = n / 2;
    return buf;
}

static bool text_ok(const char *t, size_t max)
{
    if (!t || !*t || strlen(t) >= max)
        return false;
    for (const unsigned char *p = (const unsigned char *)t; *p; p++)
        if (*p <= ' ' || *p >= 0x7f)
            return false;
    return true;
}

/* Fill m from a JSON member object (without id/state/joined). */
static int member_from_json(json_t *o, struct member *m)
{
    const char *name = NULL, *pub = NULL, *addr = NULL;
    json_int_t cpus = 0, mem = 0;

    if (json_unpack(o, "{s:s,s:s,s:s,s:I,s:I}", "name", &name, "pubkey", &pub,
                    "address", &addr, "cpus", &cpus, "memory_mb", &mem) < 0)
        return -1;
    if (!text_ok(name, sizeof(m->name)) || !text_ok(addr, sizeof(m->address)) ||
        cpus < 1 || cpus > 100000 || mem < 1 ||
        unhex(pub, m->pubkey, MEMBER_KEY_BYTES) < 0)
        return -1;
    snprintf(m->name, sizeof(m->name), "%s", name);
    snprintf(m->address, sizeof(m->address), "%s", addr);
    m->cpus = (int)cpus;
    m->memory_mb = (long)mem;
    return 0;
}

static int put_blob_hex(store_t *s, const char *name, const char *hex,
                        err_t *err)
{
    size_t len = 0;
    unsigned char *buf = unhex_alloc(hex, &len);
    int rc;

    if (!buf) {
        errno = EINVAL;
        return -2; /* malformed, not a store failure */
    }
    rc = store_put_blob(s, name, buf, len, err);
    free(buf);
    return rc;
}

static int op_bootstrap(store_t *s, json_t *o, uint64_t index,
                        struct fsm_effects *fx, err_t *err)
{
    const char *name, *id, *tier, *join_pub, *munge, *join_key;
    json_t *jm;
    struct member m = {0};
    char idtext[32];
    int rc;

    /* a cluster with members is bootstrapped already; one from peerd 0.1
     * (schema 1) has its config but no members and takes this entry
     */
    struct member *mv = NULL;
    size_t nm = 0;
    if (members_list(s, &mv, &nm, err) < 0)
        return -1;
    free(mv);
    if (nm > 0)
        return ignore(fx, "the cluster is bootstrapped already");
    if (json_unpack(o, "{s:s,s:s,s:s,s:s,s:s,s:s,s:o}", "cluster_name", &name,
                    "cluster_id", &id, "tier", &tier, "join_pub", &join_pub,
                    "munge_key", &munge, "join_key", &join_key, "member",
                    &jm) < 0 ||
        member_from_json(jm, &m) < 0)
        return ignore(fx, "malformed bootstrap entry");
    m.id = index;
    m.voter = true;
    m.joined = index;
    snprintf(m.state, sizeof(m.state), "active");
    snprintf(idtext, sizeof(idtext), "%llu", (unsigned long long)index);
    if (store_set(s, STORE_CONFIG, "cluster_name", name, err) < 0 ||
        store_set(s, STORE_CONFIG, "cluster_id", id, err) < 0 ||
        store_set(s, STORE_CONFIG, "tier", tier, err) < 0 ||
        store_set(s, STORE_CONFIG, "join_pub", join_pub, err) < 0 ||
        store_set(s, STORE_CONFIG, "controller", idtext, err) < 0 ||
        store_set(s, STORE_CONFIG, "static_node", idtext, err) < 0)
        return -1;
    if ((rc = put_blob_hex(s, "munge_key", munge, err)) == -1 ||
        (rc == 0 && (rc = put_blob_hex(s, "join_key", join_key, err)) == -1))
        return -1;
    if (rc == -2)
        return ignore(fx, "malformed secret in bootstrap entry");
    if (members_put(s, &m, err) < 0)
        return -1;
    fx->bootstrapped = fx->config_changed = fx->members_changed = true;
    return 0;
}

/* Keys an administrator may set; "slurm.<Param>" adds a slurm.conf line. */
static bool config_key_ok(const char *key)
{
    static const char *const plain[] = {"voters", "description", "tier", NULL};

    for (int i = 0; plain[i]; i++)
        if (strcmp(key, plain[i]) == 0)
            return true;
    if (strncmp(key, "slurm.", 6) == 0 && text_ok(key + 6, 64)) {
        for (const char *p = key + 6; *p; p++)
            if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                  (*p >= '0' && *p <= '9')))
                return false;
        return true;
    }
    return false;
}

bool fsm_config_key_ok(const char *key)
{
    return config_key_ok(key);
}

bool fsm_config_value_ok(const char *key, const char *value, char *why,
                         size_t cap)
{
    if (strlen(value) > 1024 || strchr(value, '\n')) {
        snprintf(why, cap, "a value is one line of at most 1024 bytes");
        return false;
    }
    if (strcmp(key, "tier") == 0 && strcmp(value, "micro") &&
        strcmp(value, "mini") && strcmp(value, "multi")) {
        snprintf(why, cap, "tier is micro, mini or multi");
        return false;
    }
    if (strcmp(key, "voters") == 0 && strcmp(value, "1") &&
        strcmp(value, "3") && strcmp(value, "5")) {
        snprintf(why, cap, "voters is 1, 3 or 5");
        return false;
    }
    /* slurm.<Param>: what render.c can write (empty removes the line) */
    if (strncmp(key, "slurm.", 6) == 0)
        for (const unsigned char *p = (const unsigned char *)value; *p; p++)
            if (*p <= ' ' || *p == '#' || *p >= 0x7f) {
                snprintf(why, cap,
                         "a slurm.conf value has no white space, '#' or "
                         "non-ASCII bytes");
                return false;
            }
    return true;
}

static int op_config_set(store_t *s, json_t *o, struct fsm_effects *fx,
                         err_t *err)
{
    const char *key, *value;

    char why[96];

    if (json_unpack(o, "{s:s,s:s}", "key", &key, "value", &value) < 0 ||
        !config_key_ok(key))
        return ignore(fx, "invalid config_set entry");
    if (!fsm_config_value_ok(key, value, why, sizeof(why)))
        return ignore(fx, "%s", why);
    if (store_set(s, STORE_CONFIG, key, value, err) < 0)
        return -1;
    fx->config_changed = true;
    return 0;
}

static int op_token_add(store_t *s, json_t *o, struct fsm_effects *fx,
                        err_t *err)
{
    struct token t = {0};
    const char *id, *verifier;
    json_int_t expires, uses;

    if (json_unpack(o, "{s:s,s:s,s:I,s:I}", "id", &id, "verifier", &verifier,
                    "expires", &expires, "uses", &uses) < 0 ||
        !text_ok(id, sizeof(t.id)) ||
        unhex(verifier, t.verifier, TOKEN_VERIFIER_BYTES) < 0 || uses < 1 ||
        uses > 1000000)
        return ignore(fx, "invalid token_add entry");
    snprintf(t.id, sizeof(t.id), "%s", id);
    t.expires = expires;
    t.uses_left = (int)uses;
    return tokens_put(s, &t, err);
}

static int active_members(store_t *s, err_t *err)
{
    struct member *v = NULL;
    size_t n = 0;
    int active = 0;

    if (members_list(s, &v, &n, err) < 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        active += strcmp(v[i].state, "active") == 0;
    free(v);
    return active;
}

static int op_member_add(store_t *s, json_t *o, uint64_t index,
                         struct fsm_effects *fx, err_t *err)
{
    struct member m = {0}, old;
    struct token t;
    const char *token_id;
    json_int_t now;
    int rc;

    if (json_unpack(o, "{s:s,s:I}", "token", &token_id, "time", &now) < 0 ||
        member_from_json(o, &m) < 0) {
        fx->refused = true;
        return ignore(fx, "malformed member_add entry");
    }
    if ((rc = tokens_get(s, token_id, &t, err)) < 0)
        return -1;
    if (rc == 0 || t.uses_left < 1 || t.expires <= now) {
        fx->refused = true;
        return ignore(fx, "token %s is %s", token_id,
                      rc == 0           ? "unknown"
                      : t.uses_left < 1 ? "used up"
                                        : "expired");
    }
    if ((rc = active_members(s, err)) < 0)
        return -1;
    if (rc >= RAFT_MAX_PEERS) {
        fx->refused = true;
        return ignore(fx, "the cluster is full (%d members)", RAFT_MAX_PEERS);
    }
    if ((rc = members_by_key(s, m.pubkey, &old, err)) < 0)
        return -1;
    if (rc == 1) {
        fx->refused = true;
        return ignore(fx, "key already admitted as member %llu",
                      (unsigned long long)old.id);
    }
    if ((rc = members_by_name(s, m.name, &old, err)) < 0)
        return -1;
    if (rc == 1 && strcmp(old.state, "left") != 0) {
        fx->refused = true;
        return ignore(fx, "a member named %s is already in the cluster",
                      m.name);
    }
    if (rc == 1) {
        /* the host left and comes back with a new key: rename the old row
         * so that the name is free (UNIQUE); its id stays in the history
         */
        char suffix[24];
        snprintf(suffix, sizeof(suffix), "~%llu", (unsigned long long)old.id);
        snprintf(old.name, sizeof(old.name), "%.*s%s",
                 (int)(sizeof(old.name) - 1 - strlen(suffix)), m.name, suffix);
        if (members_put(s, &old, err) < 0)
            return -1;
    }
    t.uses_left--;
    m.id = index;
    m.joined = index;
    snprintf(m.state, sizeof(m.state), "active");
    if (tokens_put(s, &t, err) < 0 || members_put(s, &m, err) < 0)
        return -1;
    fx->admitted = index;
    fx->members_changed = true;
    return 0;
}

static int op_member_report(store_t *s, json_t *o, struct fsm_effects *fx,
                            err_t *err)
{
    struct member m;
    json_int_t id;
    const char *ch, *mh;
    int rc;

    if (json_unpack(o, "{s:I,s:s,s:s}", "id", &id, "config_hash", &ch,
                    "munge_key_hash", &mh) < 0 ||
        strlen(ch) > 64 || strlen(mh) > 64)
        return ignore(fx, "malformed member_report entry");
    if ((rc = members_get(s, (uint64_t)id, &m, err)) <= 0)
        return rc < 0 ? -1 : ignore(fx, "report of unknown member");
    snprintf(m.config_hash, sizeof(m.config_hash), "%s", ch);
    snprintf(m.munge_key_hash, sizeof(m.munge_key_hash), "%s", mh);
    return members_put(s, &m, err);
}

static int op_member_leave(store_t *s, json_t *o, struct fsm_effects *fx,
                           err_t *err)
{
    struct member m;
    json_int_t id;
    int rc;

    if (json_unpack(o, "{s:I}", "id", &id) < 0)
        return ignore(fx, "malformed member_leave entry");
    if ((rc = members_get(s, (uint64_t)id, &m, err)) <= 0)
        return rc < 0 ? -1 : ignore(fx, "leave of unknown member");
    snprintf(m.state, sizeof(m.state), "left");
    m.voter = false;
    if (members_put(s, &m, err) < 0)
        return -1;
    fx->members_changed = true;
    return 0;
}

static int apply_conf(store_t *s, const struct wire_entry *e,
                      struct fsm_effects *fx, err_t *err)
{
    struct raft_conf c;
    struct member *v = NULL;
    size_t n = 0;
    int rc = 0;

    if (raft_conf_decode(e->data, e->len, &c) < 0)
        return ignore(fx, "malformed membership entry");
    if (members_list(s, &v, &n, err) < 0)
        return -1;
    for (size_t i = 0; i < n && rc == 0; i++) {
        bool voter = false;
        for (uint32_t j = 0; j < c.n; j++)
            if (c.ids[j] == v[i].id)
                voter = c.voter[j];
        if (voter != v[i].voter) {
            v[i].voter = voter;
            rc = members_put(s, &v[i], err);
        }
    }
    free(v);
    fx->members_changed = true;
    return rc;
}

/* A config value as an unsigned number; 0 when absent.  -1 store error. */
static int config_u64(store_t *s, const char *key, uint64_t *v, err_t *err)
{
    char *text = NULL;
    int rc = store_get(s, STORE_CONFIG, key, &text, err);

    if (rc < 0)
        return -1;
    *v = rc == 1 && text ? strtoull(text, NULL, 10) : 0;
    free(text);
    return 0;
}

static int config_put_u64(store_t *s, const char *key, uint64_t v, err_t *err)
{
    char text[32];

    snprintf(text, sizeof(text), "%llu", (unsigned long long)v);
    return store_set(s, STORE_CONFIG, key, text, err);
}

/* The leader of a term places slurmctld on itself: controller, the term
 * as the fencing epoch, and the first job id it may hand out.  Terms only
 * grow; the first job id never goes down.
 */
static int op_placement(store_t *s, json_t *o, struct fsm_effects *fx,
                        err_t *err)
{
    json_int_t id, term, first;
    uint64_t old_ctl, old_term, old_first, old_static;
    struct member m;
    int rc;

    if (json_unpack(o, "{s:I,s:I,s:I}", "controller", &id, "term", &term,
                    "first_job_id", &first) < 0 ||
        id <= 0 || term <= 0 || first <= 0 || first > FSM_MAX_JOB_ID)
        return ignore(fx, "malformed placement entry");
    if (config_u64(s, "controller", &old_ctl, err) < 0 ||
        config_u64(s, "controller_term", &old_term, err) < 0 ||
        config_u64(s, "first_job_id", &old_first, err) < 0 ||
        config_u64(s, "static_node", &old_static, err) < 0)
        return -1;
    if ((uint64_t)term <= old_term)
        return ignore(fx, "placement of term %lld after term %llu",
                      (long long)term, (unsigned long long)old_term);
    if ((rc = members_get(s, (uint64_t)id, &m, err)) <= 0)
        return rc < 0 ? -1 : ignore(fx, "placement on an unknown member");
    if (strcmp(m.state, "active") != 0)
        return ignore(fx, "placement on member %lld, which is %s",
                      (long long)id, m.state);
    if ((uint64_t)first < old_first)
        first = (json_int_t)old_first;
    /* a cluster from before placements: its static node is the first
     * controller
     */
    if (old_static == 0 && old_ctl != 0 &&
        config_put_u64(s, "static_node", old_ctl, err) < 0)
        return -1;
    if (config_put_u64(s, "controller", (uint64_t)id, err) < 0 ||
        config_put_u64(s, "controller_term", (uint64_t)term, err) < 0 ||
        config_put_u64(s, "first_job_id", (uint64_t)first, err) < 0)
        return -1;
    fx->placement_changed = true;
    if ((uint64_t)first != old_first)
        fx->config_changed = true;
    return 0;
}

/* Someone asked to move the controller (peerctl transfer): nothing is
 * stored; the leader acts on it when it applies the entry.
 */
static int op_transfer(store_t *s, json_t *o, struct fsm_effects *fx,
                       err_t *err)
{
    json_int_t to;
    struct member m;
    int rc;

    if (json_unpack(o, "{s:I}", "to", &to) < 0 || to < 0)
        return ignore(fx, "malformed transfer entry");
    if (to > 0) {
        if ((rc = members_get(s, (uint64_t)to, &m, err)) <= 0)
            return rc < 0 ? -1 : ignore(fx, "transfer to an unknown member");
        if (!m.voter || strcmp(m.state, "active") != 0)
            return ignore(fx,
                          "transfer to member %lld, which is not an "
                          "active voter",
                          (long long)to);
    }
    fx->transfer = true;
    fx->transfer_to = (uint64_t)to;
    return 0;
}

/* A secret made after the bootstrap (the accounting database password),
 * encrypted with the cluster's data key.  Only known names; set once:
 * a second value for the same name is ignored, so that a late proposal
 * from an old leader cannot replace the password MariaDB already has.
 */
static int op_secret_set(store_t *s, json_t *o, struct fsm_effects *fx,
                         err_t *err)
{
    const char *name, *value;
    void *old = NULL;
    size_t len = 0;
    int rc;

    if (json_unpack(o, "{s:s,s:s}", "name", &name, "value", &value) < 0 ||
        strcmp(name, FSM_SECRET_DB_PASSWORD) != 0)
        return ignore(fx, "malformed secret_set entry");
    if ((rc = store_get_blob(s, name, &old, &len, err)) < 0)
        return -1;
    free(old);
    if (rc == 1)
        return ignore(fx, "secret %s is already set", name);
    if ((rc = put_blob_hex(s, name, value, err)) != 0)
        return rc == -1 ? -1 : ignore(fx, "secret_set: value is not hex");
    fx->secret_changed = true;
    return 0;
}

/* Where accounting runs: the storage host (MariaDB primary + slurmdbd)
 * and, in the multi tier, the host keeping a replica (0: none).  The
 * term only grows, like the controller's.
 */
static int op_storage(store_t *s, json_t *o, struct fsm_effects *fx, err_t *err)
{
    json_int_t id, replica, term;
    uint64_t old_term;
    struct member m;
    int rc;

    if (json_unpack(o, "{s:I,s:I,s:I}", "storage", &id, "replica", &replica,
                    "term", &term) < 0 ||
        id <= 0 || replica < 0 || replica == id || term <= 0)
        return ignore(fx, "malformed storage entry");
    if (config_u64(s, "storage_term", &old_term, err) < 0)
        return -1;
    if ((uint64_t)term <= old_term)
        return ignore(fx, "storage of term %lld after term %llu",
                      (long long)term, (unsigned long long)old_term);
    for (int k = 0; k < 2; k++) {
        json_int_t who = k ? replica : id;
        if (who == 0)
            continue;
        if ((rc = members_get(s, (uint64_t)who, &m, err)) <= 0)
            return rc < 0 ? -1 : ignore(fx, "storage on an unknown member");
        if (strcmp(m.state, "active") != 0)
            return ignore(fx, "storage on member %lld, which is %s",
                          (long long)who, m.state);
    }
    if (config_put_u64(s, "storage", (uint64_t)id, err) < 0 ||
        config_put_u64(s, "storage_replica", (uint64_t)replica, err) < 0 ||
        config_put_u64(s, "storage_term", (uint64_t)term, err) < 0)
        return -1;
    fx->storage_changed = true;
    fx->config_changed = true;
    return 0;
}

static int apply_user(store_t *s, const struct wire_entry *e,
                      struct fsm_effects *fx, err_t *err)
{
    json_error_t jerr;
    json_t *o = json_loadb((const char *)e->data, e->len, 0, &jerr);
    const char *op = json_string_value(json_object_get(o, "op"));
    int rc;

    if (!op)
        rc = ignore(fx, "entry %llu is not an operation",
                    (unsigned long long)e->index);
    else if (strcmp(op, "bootstrap") == 0)
        rc = op_bootstrap(s, o, e->index, fx, err);
    else if (strcmp(op, "config_set") == 0)
        rc = op_config_set(s, o, fx, err);
    else if (strcmp(op, "token_add") == 0)
        rc = op_token_add(s, o, fx, err);
    else if (strcmp(op, "member_add") == 0)
        rc = op_member_add(s, o, e->index, fx, err);
    else if (strcmp(op, "member_report") == 0)
        rc = op_member_report(s, o, fx, err);
    else if (strcmp(op, "member_leave") == 0)
        rc = op_member_leave(s, o, fx, err);
    else if (strcmp(op, "placement") == 0)
        rc = op_placement(s, o, fx, err);
    else if (strcmp(op, "transfer") == 0)
        rc = op_transfer(s, o, fx, err);
    else if (strcmp(op, "secret_set") == 0)
        rc = op_secret_set(s, o, fx, err);
    else if (strcmp(op, "storage") == 0)
        rc = op_storage(s, o, fx, err);
    else
        rc = ignore(fx, "unknown operation '%s'", op);
    json_decref(o);
    return rc;
}

int fsm_apply(store_t *s, const struct wire_entry *e, struct fsm_effects *fx,
              err_t *err)
{
    int rc = 0;

    memset(fx, 0, sizeof(*fx));
    if (store_begin(s, err) < 0)
        return -1;
    if (e->type == RAFT_ENTRY_CONF)
        rc = apply_conf(s, e, fx, err);
    else if (e->type == FSM_ENTRY)
        rc = apply_user(s, e, fx, err);
    if (rc > 0) {
        /* ignored: whatever it wrote before it found out goes, only the
         * applied index stays (and, for a refused member_add, nothing
         * else of it either)
         */
        store_rollback(s);
        if (store_begin(s, err) < 0)
            return -1;
    }
    if (rc < 0 || raftlog_set_applied(s, e->index, err) < 0 ||
        store_commit(s, err) < 0) {
        store_rollback(s);
        return -1;
    }
    if (rc > 0)
        log_warnx("entry %llu: %s", (unsigned long long)e->index, fx->why);
    return 0;
}
