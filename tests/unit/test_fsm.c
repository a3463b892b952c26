/* test_fsm.c - the cluster state machine (node/fsm.c)
 *
 * Each test gets a fresh mkdtemp directory and store and applies entries
 * built here, as a committed log would hand them over: index by index,
 * data in a heap buffer of exactly its length (AddressSanitizer sees a
 * read past the end).  After every apply the applied index is read back
 * with raftlog_load.  "Changes nothing" is checked by dumping the config,
 * secret, members and tokens tables with the sqlite3 C API before and
 * after; a store failure in the middle of an apply is made with a trigger
 * that aborts the insert of a member.
 */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "tests/unit/dbfile.h"
#include "tests/unit/tmpdir.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>
#include <sqlite3.h>

#include "node/fsm.h"
#include "node/log.h"
#include "node/raft.h"
#include "store/members.h"
#include "store/raftlog.h"
#include "store/store.h"

/* The bootstrap entry's values. */
#define CLUSTER_NAME "alpha"
#define CLUSTER_ID "5f1d0c2a9e3b4a7c"
#define TIER "small"
#define TOKEN_ID "0123456789abcdef"
#define T_EXPIRES 1000000 /* token expiry, in entry "time" seconds */

enum { SEED_JOIN_PUB = 50, SEED_MUNGE = 60, SEED_JOIN_KEY = 70 };

struct fixture {
    char dir[64];
    char path[128];
    store_t *s;
    /* held here, not on the stack, so that teardown frees them after a
     * failed assertion jumped out of the test
     */
    char *before, *after; /* dump_tables() */
    char *text;           /* the last payload */
};

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    err_t err = {{0}};

    if (!fx)
        return -1;
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/test_fsm.XXXXXX");
    if (!mkdtemp(fx->dir)) {
        free(fx);
        return -1;
    }
    snprintf(fx->path, sizeof(fx->path), "%s/peerd.db", fx->dir);
    if (!(fx->s = store_open(fx->path, true, &err))) {
        print_error("store_open: %s\n", err.text);
        rmdir(fx->dir);
        free(fx);
        return -1;
    }
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;

    store_destroy(&fx->s);
    free(fx->before);
    free(fx->after);
    free(fx->text);
    tmpdir_remove(fx->dir);
    free(fx);
    return 0;
}

/* ---- bytes and hex ----------------------------------------------------- */

static void fill(unsigned char *buf, size_t len, int seed)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (unsigned char)(seed * 13 + i * 7);
    buf[len / 2] = 0; /* a zero byte in every value */
}

/* 32 bytes from seed as 64 lowercase hex digits. */
static void hex32(int seed, char out[65])
{
    unsigned char b[32];

    fill(b, sizeof(b), seed);
    sodium_bin2hex(out, 65, b, sizeof(b));
}

/* ---- the database behind the store's back ------------------------------ */

static void append(char **buf, size_t *len, const char *s, size_t n)
{
    char *p = realloc(*buf, *len + n + 1);

    assert_non_null(p);
    memcpy(p + *len, s, n);
    *len += n;
    p[*len] = '\0';
    *buf = p;
}

/* Every row of the state tables (not raft_state), blobs as hex. */
static char *dump_tables(const char *path)
{
    static const char *const sql[] = {
        "SELECT 'config', * FROM config ORDER BY key",
        "SELECT 'secret', * FROM secret ORDER BY name",
        "SELECT 'members', * FROM members ORDER BY id",
        "SELECT 'tokens', * FROM tokens ORDER BY id",
    };
    sqlite3 *db = NULL;
    char *out = NULL;
    size_t len = 0;

    append(&out, &len, "", 0);
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL),
                     SQLITE_OK);
    for (size_t t = 0; t < sizeof(sql) / sizeof(sql[0]); t++) {
        sqlite3_stmt *st = NULL;
        assert_int_equal(sqlite3_prepare_v2(db, sql[t], -1, &st, NULL),
                         SQLITE_OK);
        while (sqlite3_step(st) == SQLITE_ROW) {
            for (int c = 0; c < sqlite3_column_count(st); c++) {
                if (sqlite3_column_type(st, c) == SQLITE_BLOB) {
                    int n = sqlite3_column_bytes(st, c);
                    char *h = malloc(2 * (size_t)n + 1);
                    assert_non_null(h);
                    sodium_bin2hex(h, 2 * (size_t)n + 1,
                                   sqlite3_column_blob(st, c), (size_t)n);
                    append(&out, &len, "x'", 2);
                    append(&out, &len, h, strlen(h));
                    append(&out, &len, "'", 1);
                    free(h);
                } else {
                    const char *v = (const char *)sqlite3_column_text(st, c);
                    append(&out, &len, v ? v : "NULL", strlen(v ? v : "NULL"));
                }
                append(&out, &len, "|", 1);
            }
            append(&out, &len, "\n", 1);
        }
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return out;
}

static void snapshot(struct fixture *fx)
{
    free(fx->before);
    fx->before = dump_tables(fx->path);
}

/* No table changed since snapshot(). */
static void assert_unchanged(struct fixture *fx)
{
    free(fx->after);
    fx->after = dump_tables(fx->path);
    assert_string_equal(fx->after, fx->before);
}

/* ---- applying entries -------------------------------------------------- */

static uint64_t applied_index(store_t *s)
{
    struct raftlog_state st;
    struct wire_entry *log = NULL;
    err_t err = {{0}};
    size_t n = 0;

    if (raftlog_load(s, &st, &log, &n, &err) < 0)
        fail_msg("raftlog_load: %s", err.text);
    raftlog_free(log, n);
    return st.applied;
}

/* Apply one entry; it must succeed and be recorded as applied. */
static struct fsm_effects apply_raw(struct fixture *fx, uint64_t index,
                                    uint8_t type, const void *data, size_t len)
{
    struct wire_entry e = {
        .term = 1, .index = index, .type = type, .len = (uint32_t)len};
    struct fsm_effects eff;
    err_t err = {{0}};
    int rc;

    if (!(e.data = malloc(len ? len : 1)))
        fail_msg("out of memory");
    if (len)
        memcpy(e.data, data, len);
    memset(&eff, 0xa5, sizeof(eff)); /* fsm_apply must clear it */
    rc = fsm_apply(fx->s, &e, &eff, &err);
    free(e.data);
    if (rc < 0)
        fail_msg("fsm_apply %llu: %s", (unsigned long long)index, err.text);
    assert_int_equal(rc, 0);
    assert_int_equal(applied_index(fx->s), index);
    return eff;
}

static struct fsm_effects apply_json(struct fixture *fx, uint64_t index,
                                     const char *json)
{
    return apply_raw(fx, index, FSM_ENTRY, json, strlen(json));
}

/* Apply the operation o (stolen). */
static struct fsm_effects apply_op(struct fixture *fx, uint64_t index,
                                   json_t *o)
{
    free(fx->text);
    fx->text = fsm_payload(o);
    assert_non_null(fx->text);
    return apply_json(fx, index, fx->text);
}

/* Nothing changed and the reason was said. */
static void assert_ignored(const struct fsm_effects *eff)
{
    assert_false(eff->bootstrapped);
    assert_false(eff->config_changed);
    assert_false(eff->members_changed);
    assert_int_equal(eff->admitted, 0);
    assert_true(strlen(eff->why) > 0);
}

/* A refused member_add: refused, nothing admitted, why mentions what. */
static void assert_refused(const struct fsm_effects *eff, const char *what)
{
    assert_true(eff->refused);
    assert_int_equal(eff->admitted, 0);
    assert_false(eff->members_changed);
    if (!strstr(eff->why, what))
        fail_msg("why '%s' does not mention '%s'", eff->why, what);
}

/* ---- operations -------------------------------------------------------- */

static json_t *member_json(const char *name, int keyseed)
{
    char pub[65], addr[64];

    hex32(keyseed, pub);
    snprintf(addr, sizeof(addr), "10.0.0.%d:7817", keyseed);
    return json_pack("{s:s,s:s,s:s,s:i,s:I}", "name", name, "pubkey", pub,
                     "address", addr, "cpus", 4, "memory_mb", (json_int_t)7900);
}

static json_t *bootstrap_op(void)
{
    char join_pub[65], munge[65], join_key[65];

    hex32(SEED_JOIN_PUB, join_pub);
    hex32(SEED_MUNGE, munge);
    hex32(SEED_JOIN_KEY, join_key);
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:o}", "op", "bootstrap",
                     "cluster_name", CLUSTER_NAME, "cluster_id", CLUSTER_ID,
                     "tier", TIER, "join_pub", join_pub, "munge_key", munge,
                     "join_key", join_key, "member", member_json("node-1", 1));
}

static json_t *config_set_op(const char *key, const char *value)
{
    return json_pack("{s:s,s:s,s:s}", "op", "config_set", "key", key, "value",
                     value);
}

static json_t *token_add_op(const char *id, int verifier_seed,
                            json_int_t expires, json_int_t uses)
{
    char v[65];

    hex32(verifier_seed, v);
    return json_pack("{s:s,s:s,s:s,s:I,s:I}", "op", "token_add", "id", id,
                     "verifier", v, "expires", expires, "uses", uses);
}

static json_t *member_add_op(const char *name, int keyseed, const char *token,
                             json_int_t now)
{
    json_t *o = member_json(name, keyseed);

    json_object_set_new(o, "op", json_string("member_add"));
    json_object_set_new(o, "token", json_string(token));
    json_object_set_new(o, "time", json_integer(now));
    return o;
}

static json_t *leave_op(uint64_t id)
{
    return json_pack("{s:s,s:I}", "op", "member_leave", "id", (json_int_t)id);
}

/* ---- reading the state ------------------------------------------------- */

static void assert_config(store_t *s, const char *key, const char *want)
{
    err_t err = {{0}};
    char *got = NULL, copy[2048];
    int rc = store_get(s, STORE_CONFIG, key, &got, &err);

    snprintf(copy, sizeof(copy), "%s", got ? got : "");
    free(got);
    if (!want) {
        if (rc != 0)
            fail_msg("config %s is set to '%s'", key, copy);
        return;
    }
    if (rc != 1)
        fail_msg("config %s not set (%d: %s)", key, rc, err.text);
    assert_string_equal(copy, want);
}

static void assert_blob(store_t *s, const char *name, int seed)
{
    unsigned char want[32];
    err_t err = {{0}};
    void *got = NULL;
    size_t len = 0;

    fill(want, sizeof(want), seed);
    assert_int_equal(store_get_blob(s, name, &got, &len, &err), 1);
    assert_int_equal(len, sizeof(want));
    assert_memory_equal(got, want, sizeof(want));
    free(got);
}

static struct member get_member(store_t *s, uint64_t id)
{
    struct member m;
    err_t err = {{0}};

    if (members_get(s, id, &m, &err) != 1)
        fail_msg("no member %llu %s", (unsigned long long)id, err.text);
    return m;
}

static int token_uses(store_t *s, const char *id)
{
    struct token t;
    err_t err = {{0}};

    assert_int_equal(tokens_get(s, id, &t, &err), 1);
    return t.uses_left;
}

/* Bootstrap at index 1 (member 1) and add TOKEN_ID at index 2. */
static void bootstrap_with_token(struct fixture *fx, int uses)
{
    apply_op(fx, 1, bootstrap_op());
    apply_op(fx, 2, token_add_op(TOKEN_ID, 9, T_EXPIRES, uses));
}

/* Apply o at index; it must change no table, only the applied index. */
static struct fsm_effects apply_unchanged(struct fixture *fx, uint64_t index,
                                          json_t *o)
{
    struct fsm_effects eff;

    snapshot(fx);
    eff = apply_op(fx, index, o);
    assert_unchanged(fx);
    return eff;
}

/* ---- tests ------------------------------------------------------------- */

static void test_bootstrap_sets_cluster(void **state)
{
    struct fixture *fx = *state;
    struct fsm_effects eff;
    struct member m;
    unsigned char pub[32];
    char join_pub[65];

    eff = apply_op(fx, 3, bootstrap_op()); /* id = index, whatever it is */
    assert_true(eff.bootstrapped);
    assert_true(eff.config_changed);
    assert_true(eff.members_changed);
    assert_false(eff.refused);
    assert_int_equal(eff.admitted, 0);
    assert_config(fx->s, "cluster_name", CLUSTER_NAME);
    assert_config(fx->s, "cluster_id", CLUSTER_ID);
    assert_config(fx->s, "tier", TIER);
    hex32(SEED_JOIN_PUB, join_pub);
    assert_config(fx->s, "join_pub", join_pub);
    assert_config(fx->s, "controller", "3");
    assert_blob(fx->s, "munge_key", SEED_MUNGE);
    assert_blob(fx->s, "join_key", SEED_JOIN_KEY);
    m = get_member(fx->s, 3);
    assert_string_equal(m.name, "node-1");
    fill(pub, sizeof(pub), 1);
    assert_memory_equal(m.pubkey, pub, sizeof(pub));
    assert_string_equal(m.address, "10.0.0.1:7817");
    assert_int_equal(m.cpus, 4);
    assert_int_equal(m.memory_mb, 7900);
    assert_true(m.voter);
    assert_string_equal(m.state, "active");
    assert_int_equal(m.joined, 3);
}

static void test_other_entry_types_record_applied(void **state)
{
    struct fixture *fx = *state;
    struct fsm_effects eff;

    snapshot(fx);
    eff = apply_raw(fx, 1, RAFT_ENTRY_NOOP, NULL, 0);
    assert_false(eff.config_changed || eff.members_changed ||
                 eff.bootstrapped || eff.refused);
    eff = apply_raw(fx, 2, 99, "{\"op\":\"bootstrap\"}", 18);
    assert_false(eff.config_changed || eff.members_changed ||
                 eff.bootstrapped || eff.refused);
    assert_unchanged(fx);
}

static void test_config_set_bad_values_refused(void **state)
{
    static const char *const kv[][2] = {
        {"voters", "4"},
        {"voters", "three"},
        {"tier", "huge"},
        {"tier", "Mini"},
        {"tier", ""},
        {"slurm.SchedulerParameters", "bf_interval=1 # comment"},
        {"slurm.SchedulerParameters", "a b"},
    };
    struct fixture *fx = *state;
    uint64_t index = 1;

    apply_op(fx, index++, bootstrap_op());
    for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i++) {
        char why[96];
        struct fsm_effects eff;
        assert_false(fsm_config_value_ok(kv[i][0], kv[i][1], why, sizeof(why)));
        snapshot(fx);
        eff = apply_op(fx, index++, config_set_op(kv[i][0], kv[i][1]));
        assert_false(eff.config_changed);
        assert_string_not_equal(eff.why, "");
        assert_unchanged(fx);
    }
}

static void test_config_set_allowed_keys(void **state)
{
    static const char *const keys[] = {"voters", "description",
                                       "slurm.SchedulerParameters"};
    static const char *const values[] = {"5", "value 1, with spaces=ok",
                                         "bf_interval=1,max_job_test=50"};
    struct fixture *fx = *state;
    uint64_t index = 1;

    apply_op(fx, index++, bootstrap_op());
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        const char *value = values[i];
        struct fsm_effects eff;
        eff = apply_op(fx, index++, config_set_op(keys[i], value));
        assert_true(eff.config_changed);
        assert_false(eff.members_changed);
        assert_string_equal(eff.why, "");
        assert_config(fx->s, keys[i], value);
    }
    /* and again: a new value replaces the old one */
    apply_op(fx, index++, config_set_op("voters", "5"));
    assert_config(fx->s, "voters", "5");
}

static void test_config_set_refused(void **state)
{
    static const struct {
        const char *key, *value;
    } bad[] = {
        {"cluster_name", "beta"},
        {"cluster_id", "0000"},
        {"join_pub", "00"},
        {"controller", "7"},
        {"slurm.Bad Key", "1"},
        {"slurm.", "1"},
        {"slurm.A=B", "1"},
        {"x", "1"},
        {"", "1"},
        {"voters", "3\nSlurmctldHost=evil"},
    };
    struct fixture *fx = *state;
    uint64_t index = 1;

    apply_op(fx, index++, bootstrap_op());
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct fsm_effects eff = apply_unchanged(
            fx, index++, config_set_op(bad[i].key, bad[i].value));
        assert_ignored(&eff);
    }
    assert_config(fx->s, "cluster_name", CLUSTER_NAME);
    assert_config(fx->s, "x", NULL);
}

static void test_config_set_long_value_refused(void **state)
{
    struct fixture *fx = *state;
    char value[1100];
    struct fsm_effects eff;

    memset(value, 'v', sizeof(value) - 1);
    value[sizeof(value) - 1] = '\0';
    eff = apply_unchanged(fx, 1, config_set_op("description", value));
    assert_ignored(&eff);
    value[1024] = '\0'; /* the longest value taken */
    eff = apply_op(fx, 2, config_set_op("description", value));
    assert_true(eff.config_changed);
    assert_config(fx->s, "description", value);
}

static void test_config_key_ok(void **state)
{
    static const char *const yes[] = {"voters",   "description",
                                      "tier",     "slurm.SchedulerParameters",
                                      "slurm.A1", "slurm.x"};
    static const char *const no[] = {"cluster_name",
                                     "cluster_id",
                                     "storage",
                                     "storage_term",
                                     "join_pub",
                                     "controller",
                                     "x",
                                     "",
                                     "Voters",
                                     "voters ",
                                     "description.x",
                                     "slurm",
                                     "slurm.",
                                     "slurm.Bad Key",
                                     "slurm.A=B",
                                     "slurm.a.b",
                                     "slurm.A\n",
                                     "slurm.A-B",
                                     "SLURM.A",
                                     ".slurm.A",
                                     "slurm..A"};

    (void)state;
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
        if (!fsm_config_key_ok(yes[i]))
            fail_msg("key '%s' refused", yes[i]);
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        if (fsm_config_key_ok(no[i]))
            fail_msg("key '%s' allowed", no[i]);
}

static void test_member_add_admits(void **state)
{
    struct fixture *fx = *state;
    struct fsm_effects eff;
    struct member m;
    unsigned char pub[32];

    bootstrap_with_token(fx, 2);
    eff = apply_op(fx, 3, member_add_op("node-2", 2, TOKEN_ID, 500));
    assert_int_equal(eff.admitted, 3);
    assert_true(eff.members_changed);
    assert_false(eff.refused);
    assert_false(eff.bootstrapped);
    m = get_member(fx->s, 3);
    assert_string_equal(m.name, "node-2");
    fill(pub, sizeof(pub), 2);
    assert_memory_equal(m.pubkey, pub, sizeof(pub));
    assert_string_equal(m.address, "10.0.0.2:7817");
    assert_string_equal(m.state, "active");
    assert_false(m.voter); /* a learner until a conf entry says otherwise */
    assert_int_equal(m.joined, 3);
    assert_int_equal(token_uses(fx->s, TOKEN_ID), 1);
}

static void test_used_up_token_refused(void **state)
{
    struct fixture *fx = *state;
    struct fsm_effects eff;
    struct member m;
    err_t err = {{0}};

    bootstrap_with_token(fx, 1);
    eff = apply_op(fx, 3, member_add_op("node-2", 2, TOKEN_ID, 500));
    assert_int_equal(eff.admitted, 3);
    assert_int_equal(token_uses(fx->s, TOKEN_ID), 0);
    eff = apply_unchanged(fx, 4, member_add_op("node-3", 3, TOKEN_ID, 501));
    assert_refused(&eff, "used up");
    assert_int_equal(members_get(fx->s, 4, &m, &err), 0);
}

static void test_expired_token_refused(void **state)
{
    struct fixture *fx = *state;
    struct fsm_effects eff;

    bootstrap_with_token(fx, 5);
    /* the entry's time, not the clock: expired at exactly `expires` */
    eff =
        apply_unchanged(fx, 3, member_add_op("node-2", 2, TOKEN_ID, T_EXPIRES));
    assert_refused(&eff, "expired");
    eff = apply_unchanged(
        fx, 4, member_add_op("node-2", 2, TOKEN_ID, T_EXPIRES + 1000));
    assert_refused(&eff, "expired");
    /* one second earlier it is still good */
    eff = apply_op(fx, 5, member_add_op("node-2", 2, TOKEN_ID, T_EXPIRES - 1));
    assert_int_equal(eff.admitted, 5);
}

static void test_unknown_token_refused(void **state)
{
    struct fixture *fx = *state;
    struct fsm_effects eff;

    bootstrap_with_token(fx, 5);
    eff = apply_unchanged(fx, 3,
                          member_add_op("node-2", 2, "fedcba9876543210", 500));
    assert_refused(&eff, "unknown");
}

static void test_admitted_key_refused(void **state)
{
    struct fixture *fx = *state;
    struct fsm_effects eff;

    bootstrap_with_token(fx, 5);
    apply_op(fx, 3, member_add_op("node-2", 2, TOKEN_ID, 500));
    /* the key of node-1 (bootstrap) and of node-2, under new names */
    eff = apply_unchanged(fx, 4, member_add_op("node-3", 1, TOKEN_ID, 500));
    assert_refused(&eff, "already admitted");
    eff = apply_unchanged(fx, 5, member_add_op("node-4", 2, TOKEN_ID, 500));
    assert_refused(&eff, "already admitted");
    assert_int_equal(token_uses(fx->s, TOKEN_ID), 4);
}

static void test_active_name_refused(void **state)
{
    struct fixture *fx = *state;
    struct fsm_effects eff;

    bootstrap_with_token(fx, 5);
    eff = apply_unchanged(fx, 3, member_add_op("node-1", 2, TOKEN_ID, 500));
    assert_refused(&eff, "node-1");
    assert_int_equal(token_uses(fx->s, TOKEN_ID), 5);
}

static void test_left_name_admitted_old_renamed(void **state)
{
    struct fixture *fx = *state;
    struct fsm_effects eff;
    struct member old, m;
    err_t err = {{0}};

    bootstrap_with_token(fx, 5);
    apply_op(fx, 3, member_add_op("node-2", 2, TOKEN_ID, 500));
    apply_op(fx, 4, leave_op(3));
    /* the same host comes back with a new key */
    eff = apply_op(fx, 5, member_add_op("node-2", 12, TOKEN_ID, 600));
    assert_int_equal(eff.admitted, 5);
    old = get_member(fx->s, 3);
    assert_string_equal(old.name, "node-2~3");
    assert_string_equal(old.state, "left");
    assert_int_equal(members_by_name(fx->s, "node-2", &m, &err), 1);
    assert_int_equal(m.id, 5);
    assert_string_equal(m.state, "active");
}

/* A name at the length limit: the rename "name~id" must still differ
 * from the name, or writing the new member (INSERT OR REPLACE, name
 * UNIQUE) deletes the old row, which should stay in the history.
 */
static void test_left_long_name_keeps_old_row(void **state)
{
    struct fixture *fx = *state;
    char name[64];
    struct fsm_effects eff;
    struct member *v = NULL;
    err_t err = {{0}};
    size_t n = 0;

    memset(name, 'h', sizeof(name) - 1); /* 63: the longest taken */
    name[sizeof(name) - 1] = '\0';
    bootstrap_with_token(fx, 5);
    eff = apply_op(fx, 3, member_add_op(name, 2, TOKEN_ID, 500));
    assert_int_equal(eff.admitted, 3);
    apply_op(fx, 4, leave_op(3));
    eff = apply_op(fx, 5, member_add_op(name, 12, TOKEN_ID, 600));
    assert_int_equal(eff.admitted, 5);
    assert_int_equal(members_list(fx->s, &v, &n, &err), 0);
    free(v);
    assert_int_equal(n, 3); /* 1, the old 3 (renamed), the new 5 */
    assert_string_equal(get_member(fx->s, 3).state, "left");
    assert_string_not_equal(get_member(fx->s, 3).name, name);
}

static void test_member_add_malformed_refused(void **state)
{
    static const char *const drop[] = {"token",   "time", "name",     "pubkey",
                                       "address", "cpus", "memory_mb"};
    struct fixture *fx = *state;
    uint64_t index = 3;

    bootstrap_with_token(fx, 5);
    for (size_t i = 0; i < sizeof(drop) / sizeof(drop[0]); i++) {
        json_t *o = member_add_op("node-2", 2, TOKEN_ID, 500);
        struct fsm_effects eff;
        json_object_del(o, drop[i]);
        eff = apply_unchanged(fx, index++, o);
        assert_true(eff.refused);
        assert_ignored(&eff);
    }
    /* values out of range */
    for (int i = 0; i < 3; i++) {
        json_t *o =
            member_add_op(i == 1 ? "node 2" : "node-2", 2, TOKEN_ID, 500);
        struct fsm_effects eff;
        if (i == 0)
            json_object_set_new(o, "cpus", json_integer(0));
        else if (i == 2)
            json_object_set_new(o, "pubkey", json_string("abcd"));
        eff = apply_unchanged(fx, index++, o);
        assert_true(eff.refused);
        assert_ignored(&eff);
    }
    assert_int_equal(token_uses(fx->s, TOKEN_ID), 5);
}

static void test_member_report_updates_hashes(void **state)
{
    struct fixture *fx = *state;
    char ch[65], mh[65];
    struct member before, after;

    hex32(80, ch);
    hex32(81, mh);
    apply_op(fx, 1, bootstrap_op());
    before = get_member(fx->s, 1);
    apply_op(fx, 2,
             json_pack("{s:s,s:i,s:s,s:s}", "op", "member_report", "id", 1,
                       "config_hash", ch, "munge_key_hash", mh));
    after = get_member(fx->s, 1);
    assert_string_equal(after.config_hash, ch);
    assert_string_equal(after.munge_key_hash, mh);
    /* nothing else of the member changed */
    memcpy(before.config_hash, after.config_hash, sizeof(ch));
    memcpy(before.munge_key_hash, after.munge_key_hash, sizeof(mh));
    assert_memory_equal(&before, &after, sizeof(before));
}

static void test_member_report_unknown_ignored(void **state)
{
    struct fixture *fx = *state;
    struct fsm_effects eff;

    apply_op(fx, 1, bootstrap_op());
    eff = apply_unchanged(fx, 2,
                          json_pack("{s:s,s:i,s:s,s:s}", "op", "member_report",
                                    "id", 7, "config_hash", "ab",
                                    "munge_key_hash", "cd"));
    assert_ignored(&eff);
}

static void test_member_leave(void **state)
{
    struct fixture *fx = *state;
    struct fsm_effects eff;
    struct member m;

    apply_op(fx, 1, bootstrap_op());
    assert_true(get_member(fx->s, 1).voter);
    eff = apply_op(fx, 2, leave_op(1));
    assert_true(eff.members_changed);
    m = get_member(fx->s, 1);
    assert_string_equal(m.state, "left");
    assert_false(m.voter);
    eff = apply_unchanged(fx, 3, leave_op(9));
    assert_ignored(&eff);
}

static struct fsm_effects apply_conf(struct fixture *fx, uint64_t index,
                                     const struct raft_conf *c)
{
    unsigned char buf[1024];
    size_t len = 0;

    assert_int_equal(raft_conf_encode(c, buf, sizeof(buf), &len), 0);
    return apply_raw(fx, index, RAFT_ENTRY_CONF, buf, len);
}

static void test_conf_entry_sets_voters(void **state)
{
    struct fixture *fx = *state;
    struct raft_conf all = {
        .n = 3, .ids = {1, 3, 4}, .voter = {true, true, false}};
    struct raft_conf one = {.n = 1, .ids = {3}, .voter = {true}};
    struct fsm_effects eff;

    bootstrap_with_token(fx, 5);
    apply_op(fx, 3, member_add_op("node-2", 2, TOKEN_ID, 500));
    apply_op(fx, 4, member_add_op("node-3", 3, TOKEN_ID, 500));
    eff = apply_conf(fx, 5, &all);
    assert_true(eff.members_changed);
    assert_true(get_member(fx->s, 1).voter);
    assert_true(get_member(fx->s, 3).voter);
    assert_false(get_member(fx->s, 4).voter);
    /* a member not listed is not a voter */
    apply_conf(fx, 6, &one);
    assert_false(get_member(fx->s, 1).voter);
    assert_true(get_member(fx->s, 3).voter);
    assert_false(get_member(fx->s, 4).voter);
}

static void test_conf_entry_malformed_ignored(void **state)
{
    static const unsigned char junk[] = {9, 0, 0, 0, 1, 0};
    struct fixture *fx = *state;
    struct fsm_effects eff;

    apply_op(fx, 1, bootstrap_op());
    snapshot(fx);
    eff = apply_raw(fx, 2, RAFT_ENTRY_CONF, junk, sizeof(junk));
    assert_ignored(&eff);
    eff = apply_raw(fx, 3, RAFT_ENTRY_CONF, NULL, 0);
    assert_ignored(&eff);
    assert_unchanged(fx);
}

static void test_malformed_entries_are_noops(void **state)
{
    static const char *const bad[] = {
        "",
        "not json",
        "{\"op\":\"config_set\",\"key\":\"voters\",\"value\":\"1\"", /* cut */
        "[]",
        "\"bootstrap\"",
        "{}",
        "{\"op\":1}",
        "{\"op\":null}",
        "{\"op\":\"frobnicate\"}",
        "{\"op\":\"BOOTSTRAP\"}",
        "{\"op\":\"bootstrap\"}",
        "{\"op\":\"config_set\",\"key\":\"voters\"}",
        "{\"op\":\"config_set\",\"key\":\"voters\",\"value\":3}",
        "{\"op\":\"token_add\",\"id\":\"t1\"}",
        "{\"op\":\"token_add\",\"id\":\"t1\",\"verifier\":\"00\","
        "\"expires\":9,\"uses\":1}",
        "{\"op\":\"member_report\",\"id\":1}",
        "{\"op\":\"member_leave\"}",
        "{\"op\":\"member_leave\",\"id\":\"1\"}",
    };
    struct fixture *fx = *state;
    uint64_t index = 1;

    apply_op(fx, index++, bootstrap_op());
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct fsm_effects eff;
        snapshot(fx);
        eff = apply_json(fx, index++, bad[i]);
        free(fx->after);
        fx->after = dump_tables(fx->path);
        if (strcmp(fx->after, fx->before) != 0)
            fail_msg("entry '%s' changed the tables", bad[i]);
        if (strlen(eff.why) == 0)
            fail_msg("entry '%s' ignored without a reason", bad[i]);
        assert_false(eff.config_changed || eff.members_changed ||
                     eff.bootstrapped);
    }
}

static void test_token_add_invalid_ignored(void **state)
{
    struct fixture *fx = *state;
    struct fsm_effects eff;
    struct token t;
    err_t err = {{0}};

    apply_op(fx, 1, bootstrap_op());
    eff = apply_unchanged(fx, 2, token_add_op(TOKEN_ID, 9, T_EXPIRES, 0));
    assert_ignored(&eff);
    eff = apply_unchanged(fx, 3, token_add_op("a token", 9, T_EXPIRES, 1));
    assert_ignored(&eff);
    assert_int_equal(tokens_get(fx->s, TOKEN_ID, &t, &err), 0);
    /* and a good one is stored */
    apply_op(fx, 4, token_add_op(TOKEN_ID, 9, T_EXPIRES, 3));
    assert_int_equal(token_uses(fx->s, TOKEN_ID), 3);
}

/* A bootstrap whose secret is not hex is malformed: like every other
 * malformed entry it must change nothing, not leave the cluster half
 * configured (name, id, keys written before the secret was looked at).
 */
static void test_bootstrap_bad_secret_changes_nothing(void **state)
{
    struct fixture *fx = *state;
    json_t *o = bootstrap_op();
    struct fsm_effects eff;

    json_object_set_new(o, "join_key", json_string("not hex"));
    eff = apply_unchanged(fx, 1, o);
    assert_ignored(&eff);
    assert_config(fx->s, "cluster_name", NULL);
}

/* The cluster's first entry only: a second bootstrap (any member can
 * forward an application entry to the leader) must not replace the
 * cluster's id, keys and controller.
 */
static void test_second_bootstrap_refused(void **state)
{
    struct fixture *fx = *state;
    json_t *o = bootstrap_op();
    struct fsm_effects eff;

    apply_op(fx, 1, bootstrap_op());
    json_object_set_new(o, "cluster_id", json_string("another"));
    json_object_set_new(o, "member", member_json("intruder", 66));
    eff = apply_unchanged(fx, 2, o);
    assert_false(eff.bootstrapped);
    assert_config(fx->s, "cluster_id", CLUSTER_ID);
    assert_config(fx->s, "controller", "1");
}

/* Make every insert into members fail, as a full disk would. */
static void break_members(struct fixture *fx)
{
    sql_exec(fx->path, "CREATE TRIGGER fail_members BEFORE INSERT ON members "
                       "BEGIN SELECT RAISE(ABORT, 'injected failure'); END");
}

static void mend_members(struct fixture *fx)
{
    sql_exec(fx->path, "DROP TRIGGER fail_members");
}

/* fsm_apply must fail (-1, err) and leave tables and applied index. */
static void apply_fails(struct fixture *fx, uint64_t index, json_t *o)
{
    struct wire_entry e = {.term = 1, .index = index, .type = FSM_ENTRY};
    uint64_t applied = applied_index(fx->s);
    struct fsm_effects eff;
    err_t err = {{0}};

    free(fx->text);
    fx->text = fsm_payload(o);
    assert_non_null(fx->text);
    e.data = (unsigned char *)fx->text;
    e.len = (uint32_t)strlen(fx->text);
    snapshot(fx);
    assert_int_equal(fsm_apply(fx->s, &e, &eff, &err), -1);
    assert_true(strlen(err.text) > 0);
    assert_int_equal(applied_index(fx->s), applied);
    assert_unchanged(fx);
}

static void test_store_failure_rolls_back_bootstrap(void **state)
{
    struct fixture *fx = *state;
    struct fsm_effects eff;

    break_members(fx);
    /* config and blobs are written before the member, and undone */
    apply_fails(fx, 1, bootstrap_op());
    assert_config(fx->s, "cluster_name", NULL);
    mend_members(fx);
    /* the entry is retried and then applied */
    eff = apply_op(fx, 1, bootstrap_op());
    assert_true(eff.bootstrapped);
    assert_config(fx->s, "cluster_name", CLUSTER_NAME);
}

static void test_store_failure_rolls_back_member_add(void **state)
{
    struct fixture *fx = *state;
    struct fsm_effects eff;

    bootstrap_with_token(fx, 1);
    break_members(fx);
    /* the token's use is spent before the member is written, and undone */
    apply_fails(fx, 3, member_add_op("node-2", 2, TOKEN_ID, 500));
    assert_int_equal(token_uses(fx->s, TOKEN_ID), 1);
    mend_members(fx);
    eff = apply_op(fx, 3, member_add_op("node-2", 2, TOKEN_ID, 500));
    assert_int_equal(eff.admitted, 3);
    assert_int_equal(token_uses(fx->s, TOKEN_ID), 0);
}

static void test_payload_is_compact_json(void **state)
{
    char *text;
    json_t *o;

    (void)state;
    assert_null(fsm_payload(NULL));
    text = fsm_payload(json_pack("{s:s,s:i,s:[i,i]}", "op", "config_set", "n",
                                 1, "list", 1, 2));
    assert_non_null(text);
    assert_null(strpbrk(text, " \n\t"));
    assert_non_null(o = json_loads(text, 0, NULL));
    assert_string_equal(json_string_value(json_object_get(o, "op")),
                        "config_set");
    json_decref(o);
    free(text);
}

static json_t *secret_op(const char *name, const char *hex)
{
    return json_pack("{s:s,s:s,s:s}", "op", "secret_set", "name", name, "value",
                     hex);
}

/* The database password: set once, never replaced, only its name. */
static void test_secret_set_once(void **state)
{
    struct fixture *fx = *state;
    struct fsm_effects eff;
    void *blob = NULL;
    size_t len = 0;

    apply_op(fx, 1, bootstrap_op());
    eff = apply_op(fx, 2, secret_op(FSM_SECRET_DB_PASSWORD, "00ff10"));
    assert_true(eff.secret_changed);
    assert_int_equal(
        store_get_blob(fx->s, FSM_SECRET_DB_PASSWORD, &blob, &len, NULL), 1);
    assert_int_equal(len, 3);
    assert_memory_equal(blob, "\x00\xff\x10", 3);
    free(blob);
    blob = NULL;
    eff = apply_op(fx, 3, secret_op(FSM_SECRET_DB_PASSWORD, "aaaa"));
    assert_false(eff.secret_changed);
    assert_non_null(strstr(eff.why, "already set"));
    assert_int_equal(
        store_get_blob(fx->s, FSM_SECRET_DB_PASSWORD, &blob, &len, NULL), 1);
    assert_int_equal(len, 3); /* the first value stays */
    free(blob);
    /* other names (the munge key!) and non-hex values are ignored */
    eff = apply_op(fx, 4, secret_op("munge_key", "00"));
    assert_false(eff.secret_changed);
    assert_ignored(&eff);
    eff = apply_op(fx, 5, secret_op("other", "zz"));
    assert_ignored(&eff);
}

static json_t *storage_op(json_int_t storage, json_int_t replica,
                          json_int_t term)
{
    return json_pack("{s:s,s:I,s:I,s:I}", "op", "storage", "storage", storage,
                     "replica", replica, "term", term);
}

/* Storage placement: known active members, terms only grow. */
static void test_storage_placement(void **state)
{
    struct fixture *fx = *state;
    struct fsm_effects eff;

    bootstrap_with_token(fx, 2);
    apply_op(fx, 3, member_add_op("node-2", 2, TOKEN_ID, 500));
    eff = apply_op(fx, 4, storage_op(1, 0, 1));
    assert_true(eff.storage_changed);
    assert_config(fx->s, "storage", "1");
    assert_config(fx->s, "storage_replica", "0");
    assert_config(fx->s, "storage_term", "1");
    eff = apply_op(fx, 5, storage_op(3, 1, 2)); /* failed over to node-2 */
    assert_true(eff.storage_changed);
    assert_config(fx->s, "storage", "3");
    assert_config(fx->s, "storage_replica", "1");
    assert_config(fx->s, "storage_term", "2");
    /* a late entry of an older term, an unknown member, the same host
     * twice, malformed: ignored, nothing changes
     */
    eff = apply_op(fx, 6, storage_op(1, 0, 2));
    assert_false(eff.storage_changed);
    assert_non_null(strstr(eff.why, "term"));
    eff = apply_op(fx, 7, storage_op(99, 0, 3));
    assert_false(eff.storage_changed);
    eff = apply_op(fx, 8, storage_op(1, 99, 3));
    assert_false(eff.storage_changed);
    eff = apply_op(fx, 9, storage_op(1, 1, 3));
    assert_false(eff.storage_changed);
    eff = apply_op(fx, 10, storage_op(0, 0, 3));
    assert_false(eff.storage_changed);
    assert_config(fx->s, "storage", "3");
    assert_config(fx->s, "storage_term", "2");
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    // clang-format off
    const struct CMUnitTest tests[] = {
        T(test_bootstrap_sets_cluster),
        T(test_other_entry_types_record_applied),
        T(test_config_set_allowed_keys),
        T(test_config_set_bad_values_refused),
        T(test_config_set_refused),
        T(test_config_set_long_value_refused),
        T(test_config_key_ok),
        T(test_member_add_admits),
        T(test_used_up_token_refused),
        T(test_expired_token_refused),
        T(test_unknown_token_refused),
        T(test_admitted_key_refused),
        T(test_active_name_refused),
        T(test_left_name_admitted_old_renamed),
        T(test_left_long_name_keeps_old_row),
        T(test_member_add_malformed_refused),
        T(test_member_report_updates_hashes),
        T(test_member_report_unknown_ignored),
        T(test_member_leave),
        T(test_conf_entry_sets_voters),
        T(test_conf_entry_malformed_ignored),
        T(test_malformed_entries_are_noops),
        T(test_token_add_invalid_ignored),
        T(test_bootstrap_bad_secret_changes_nothing),
        T(test_second_bootstrap_refused),
        T(test_store_failure_rolls_back_bootstrap),
        T(test_store_failure_rolls_back_member_add),
        T(test_payload_is_compact_json),
        T(test_secret_set_once),
        T(test_storage_placement),
    };
    // clang-format on
    int failed;

    if (sodium_init() < 0)
        return 1;
    log_init("test_fsm", LOG_LEVEL_ERR, false); /* ignored entries warn */
    failed = cmocka_run_group_tests_name("fsm", tests, NULL, NULL);
    return failed;
}
