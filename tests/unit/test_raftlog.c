/* test_raftlog.c - Raft's state and the member tables (store/raftlog.c,
 * store/members.c)
 *
 * Each test gets a fresh mkdtemp directory and a schema 2 store.  What
 * is written through the API is read back through it, after reopening
 * the database where durability matters; damage (a gap in the log, a key
 * of the wrong length) is made with the sqlite3 C API on the file.
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

#include <sqlite3.h>

#include "store/members.h"
#include "store/raftlog.h"
#include "store/store.h"

struct fixture {
    char dir[64];
    char path[128];
    store_t *s;
};

static store_t *open_ok(const char *path)
{
    err_t err = {{0}};
    store_t *s = store_open(path, true, &err);

    if (!s)
        fail_msg("store_open: %s", err.text);
    return s;
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));

    if (!fx)
        return -1;
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/test_raftlog.XXXXXX");
    if (!mkdtemp(fx->dir)) {
        free(fx);
        return -1;
    }
    snprintf(fx->path, sizeof(fx->path), "%s/peerd.db", fx->dir);
    fx->s = open_ok(fx->path);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;

    store_destroy(&fx->s);
    tmpdir_remove(fx->dir);
    free(fx);
    return 0;
}

static void reopen(struct fixture *fx)
{
    store_destroy(&fx->s);
    fx->s = open_ok(fx->path);
}

/* ---- Raft log ---------------------------------------------------------- */

/* Three entries: binary data with zero bytes, an empty one, a long one. */
static unsigned char data1[] = {'a', 0, 'b', 0, 0, 0xff};
static unsigned char data3[300];

static void three_entries(struct wire_entry e[3])
{
    for (size_t i = 0; i < sizeof(data3); i++)
        data3[i] = (unsigned char)(i * 7); /* every 256th is 0 */
    e[0] = (struct wire_entry){
        .index = 1, .term = 1, .type = 16, .len = sizeof(data1), .data = data1};
    e[1] = (struct wire_entry){
        .index = 2, .term = 2, .type = 1, .len = 0, .data = NULL};
    e[2] = (struct wire_entry){.index = 3,
                               .term = 2,
                               .type = 255,
                               .len = sizeof(data3),
                               .data = data3};
}

static void save_ok(store_t *s, const uint64_t *term, const uint64_t *vote,
                    const struct wire_entry *e, size_t n)
{
    err_t err = {{0}};

    if (raftlog_save(s, term, vote, e, n, &err) < 0)
        fail_msg("raftlog_save: %s", err.text);
}

static void load_ok(store_t *s, struct raftlog_state *st,
                    struct wire_entry **log, size_t *n)
{
    err_t err = {{0}};

    memset(st, 0xa5, sizeof(*st)); /* must all be written */
    if (raftlog_load(s, st, log, n, &err) < 0)
        fail_msg("raftlog_load: %s", err.text);
}

static void assert_entry(const struct wire_entry *got,
                         const struct wire_entry *want)
{
    assert_int_equal(got->index, want->index);
    assert_int_equal(got->term, want->term);
    assert_int_equal(got->type, want->type);
    assert_int_equal(got->len, want->len);
    if (want->len)
        assert_memory_equal(got->data, want->data, want->len);
}

static void test_fresh_store_is_empty(void **state)
{
    struct fixture *fx = *state;
    struct raftlog_state st;
    struct wire_entry *log = (struct wire_entry *)&st;
    size_t n = 99;

    load_ok(fx->s, &st, &log, &n);
    assert_int_equal(st.term, 0);
    assert_int_equal(st.vote, 0);
    assert_int_equal(st.applied, 0);
    assert_int_equal(n, 0);
    raftlog_free(log, n);
}

static void test_save_load_round_trip(void **state)
{
    struct fixture *fx = *state;
    struct wire_entry e[3], *log = NULL;
    struct raftlog_state st;
    uint64_t term = 7, vote = 3;
    size_t n = 0;

    three_entries(e);
    save_ok(fx->s, &term, &vote, e, 3);
    reopen(fx); /* what was saved is on disk, not only in a cache */
    load_ok(fx->s, &st, &log, &n);
    assert_int_equal(st.term, 7);
    assert_int_equal(st.vote, 3);
    assert_int_equal(st.applied, 0);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < 3; i++)
        assert_entry(&log[i], &e[i]);
    assert_non_null(log[1].data); /* owned even when empty: free is safe */
    raftlog_free(log, n);
}

static void test_save_appends_after_last(void **state)
{
    struct fixture *fx = *state;
    struct wire_entry e[3], *log = NULL;
    struct raftlog_state st;
    size_t n = 0;

    three_entries(e);
    save_ok(fx->s, NULL, NULL, e, 1);
    save_ok(fx->s, NULL, NULL, e + 1, 2);
    load_ok(fx->s, &st, &log, &n);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < 3; i++)
        assert_entry(&log[i], &e[i]);
    raftlog_free(log, n);
}

static void test_save_from_middle_replaces_conflict(void **state)
{
    struct fixture *fx = *state;
    struct wire_entry e[3], *log = NULL;
    struct raftlog_state st;
    unsigned char d[] = {0, 9, 0};
    struct wire_entry repl = {
        .index = 2, .term = 5, .type = 16, .len = sizeof(d), .data = d};
    size_t n = 0;

    three_entries(e);
    save_ok(fx->s, NULL, NULL, e, 3);
    save_ok(fx->s, NULL, NULL, &repl, 1);
    load_ok(fx->s, &st, &log, &n);
    assert_int_equal(n, 2); /* old entry 3 is gone with old entry 2 */
    assert_entry(&log[0], &e[0]);
    assert_entry(&log[1], &repl);
    raftlog_free(log, n);
}

static void test_save_term_only_keeps_vote(void **state)
{
    struct fixture *fx = *state;
    struct wire_entry e[3], *log = NULL;
    struct raftlog_state st;
    uint64_t term = 4, vote = 2, term2 = 5;
    size_t n = 0;

    three_entries(e);
    save_ok(fx->s, &term, &vote, e, 3);
    save_ok(fx->s, &term2, NULL, NULL, 0);
    load_ok(fx->s, &st, &log, &n);
    assert_int_equal(st.term, 5);
    assert_int_equal(st.vote, 2);
    assert_int_equal(n, 3); /* no entries given: the log is not cut */
    raftlog_free(log, n);
}

static void test_applied_commit_kept(void **state)
{
    struct fixture *fx = *state;
    struct wire_entry *log = NULL;
    struct raftlog_state st;
    err_t err = {{0}};
    size_t n = 0;

    assert_int_equal(store_begin(fx->s, &err), 0);
    assert_int_equal(raftlog_set_applied(fx->s, 42, &err), 0);
    assert_int_equal(store_commit(fx->s, &err), 0);
    reopen(fx);
    load_ok(fx->s, &st, &log, &n);
    assert_int_equal(st.applied, 42);
    raftlog_free(log, n);
}

static void test_applied_rollback_discarded(void **state)
{
    struct fixture *fx = *state;
    struct wire_entry *log = NULL;
    struct raftlog_state st;
    err_t err = {{0}};
    size_t n = 0;

    assert_int_equal(store_begin(fx->s, &err), 0);
    assert_int_equal(raftlog_set_applied(fx->s, 5, &err), 0);
    assert_int_equal(store_commit(fx->s, &err), 0);
    assert_int_equal(store_begin(fx->s, &err), 0);
    assert_int_equal(raftlog_set_applied(fx->s, 6, &err), 0);
    store_rollback(fx->s);
    load_ok(fx->s, &st, &log, &n);
    assert_int_equal(st.applied, 5);
    raftlog_free(log, n);
}

/* Load must fail with EBADMSG, leaving no log to free. */
static void assert_load_damaged(store_t *s)
{
    struct raftlog_state st;
    struct wire_entry *log = (struct wire_entry *)&st;
    err_t err = {{0}};
    size_t n = 99;

    errno = 0;
    assert_int_equal(raftlog_load(s, &st, &log, &n, &err), -1);
    assert_int_equal(errno, EBADMSG);
    assert_null(log);
    assert_int_equal(n, 0);
    assert_true(strlen(err.text) > 0);
}

static void test_gap_in_log_is_ebadmsg(void **state)
{
    struct fixture *fx = *state;
    struct wire_entry e[3];

    three_entries(e);
    save_ok(fx->s, NULL, NULL, e, 3);
    store_destroy(&fx->s);
    sql_exec(fx->path, "DELETE FROM raft_log WHERE idx = 2");
    fx->s = open_ok(fx->path);
    assert_load_damaged(fx->s);
}

static void test_log_not_from_1_is_ebadmsg(void **state)
{
    struct fixture *fx = *state;
    struct wire_entry e[3];

    three_entries(e);
    save_ok(fx->s, NULL, NULL, e, 3);
    store_destroy(&fx->s);
    sql_exec(fx->path, "DELETE FROM raft_log WHERE idx = 1");
    fx->s = open_ok(fx->path);
    assert_load_damaged(fx->s);
}

static void test_index_zero_refused(void **state)
{
    struct fixture *fx = *state;
    struct wire_entry e[3], *log = NULL;
    struct raftlog_state st;
    uint64_t term = 9;
    err_t err = {{0}};
    size_t n = 0;

    three_entries(e);
    save_ok(fx->s, NULL, NULL, e, 3);
    e[0].index = 0;
    assert_int_equal(raftlog_save(fx->s, &term, NULL, e, 1, &err), -1);
    assert_true(strlen(err.text) > 0);
    /* one transaction: the term given with the bad entry is not kept */
    load_ok(fx->s, &st, &log, &n);
    assert_int_equal(st.term, 0);
    assert_int_equal(n, 3);
    raftlog_free(log, n);
}

/* ---- members ----------------------------------------------------------- */

static struct member member_of(uint64_t id, const char *name, int keyseed)
{
    struct member m = {0};

    m.id = id;
    snprintf(m.name, sizeof(m.name), "%s", name);
    for (int i = 0; i < MEMBER_KEY_BYTES; i++)
        m.pubkey[i] = (unsigned char)(keyseed * 31 + i);
    m.pubkey[5] = 0; /* a zero byte inside the key */
    snprintf(m.address, sizeof(m.address), "10.0.0.%d:7817", (int)id);
    m.cpus = 4 + (int)id;
    m.memory_mb = 8000L + (long)id;
    m.voter = id % 2;
    snprintf(m.state, sizeof(m.state), "active");
    memset(m.config_hash, 'c', 64);
    memset(m.munge_key_hash, 'd', 64);
    m.joined = id + 100;
    return m;
}

static void put_ok(store_t *s, const struct member *m)
{
    err_t err = {{0}};

    if (members_put(s, m, &err) < 0)
        fail_msg("members_put %s: %s", m->name, err.text);
}

static void assert_member(const struct member *got, const struct member *want)
{
    assert_int_equal(got->id, want->id);
    assert_string_equal(got->name, want->name);
    assert_memory_equal(got->pubkey, want->pubkey, MEMBER_KEY_BYTES);
    assert_string_equal(got->address, want->address);
    assert_int_equal(got->cpus, want->cpus);
    assert_int_equal(got->memory_mb, want->memory_mb);
    assert_int_equal(got->voter, want->voter);
    assert_string_equal(got->state, want->state);
    assert_string_equal(got->config_hash, want->config_hash);
    assert_string_equal(got->munge_key_hash, want->munge_key_hash);
    assert_int_equal(got->joined, want->joined);
}

static void test_member_round_trip(void **state)
{
    struct fixture *fx = *state;
    struct member a = member_of(3, "node-a", 1), got;
    err_t err = {{0}};

    put_ok(fx->s, &a);
    reopen(fx);
    memset(&got, 0xa5, sizeof(got));
    assert_int_equal(members_get(fx->s, 3, &got, &err), 1);
    assert_member(&got, &a);
    memset(&got, 0xa5, sizeof(got));
    assert_int_equal(members_by_key(fx->s, a.pubkey, &got, &err), 1);
    assert_member(&got, &a);
    memset(&got, 0xa5, sizeof(got));
    assert_int_equal(members_by_name(fx->s, "node-a", &got, &err), 1);
    assert_member(&got, &a);
}

static void test_member_missing_returns_0(void **state)
{
    struct fixture *fx = *state;
    struct member a = member_of(3, "node-a", 1), b = member_of(4, "b", 2);
    struct member got;
    err_t err = {{0}};

    put_ok(fx->s, &a);
    assert_int_equal(members_get(fx->s, 4, &got, &err), 0);
    assert_int_equal(members_by_key(fx->s, b.pubkey, &got, &err), 0);
    assert_int_equal(members_by_name(fx->s, "node-", &got, &err), 0);
    assert_int_equal(members_by_name(fx->s, "NODE-A", &got, &err), 0);
}

static void test_members_list_ordered_by_id(void **state)
{
    struct fixture *fx = *state;
    struct member m[3] = {member_of(7, "seven", 7), member_of(2, "two", 2),
                          member_of(5, "five", 5)};
    struct member *v = NULL;
    err_t err = {{0}};
    size_t n = 0;

    for (int i = 0; i < 3; i++)
        put_ok(fx->s, &m[i]);
    assert_int_equal(members_list(fx->s, &v, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_member(&v[0], &m[1]);
    assert_member(&v[1], &m[2]);
    assert_member(&v[2], &m[0]);
    free(v);
}

static void test_members_list_empty(void **state)
{
    struct fixture *fx = *state;
    struct member *v = (struct member *)fx;
    err_t err = {{0}};
    size_t n = 99;

    assert_int_equal(members_list(fx->s, &v, &n, &err), 0);
    assert_int_equal(n, 0);
    free(v);
}

static void test_member_put_replaces_by_id(void **state)
{
    struct fixture *fx = *state;
    struct member a = member_of(3, "node-a", 1), b = member_of(3, "new", 9);
    struct member *v = NULL, got;
    err_t err = {{0}};
    size_t n = 0;

    put_ok(fx->s, &a);
    snprintf(b.state, sizeof(b.state), "left");
    b.voter = !a.voter;
    put_ok(fx->s, &b);
    assert_int_equal(members_list(fx->s, &v, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_member(&v[0], &b);
    free(v);
    /* the old name and key no longer find anything */
    assert_int_equal(members_by_name(fx->s, "node-a", &got, &err), 0);
    assert_int_equal(members_by_key(fx->s, a.pubkey, &got, &err), 0);
}

/* "Insert or replace the member with m->id": writing member 4 must not
 * remove member 3.  members_put is INSERT OR REPLACE, and REPLACE also
 * deletes every other row that clashes on a UNIQUE column (name, pubkey).
 */
static void test_member_put_keeps_other_id(void **state)
{
    struct fixture *fx = *state;
    struct member a = member_of(3, "node-a", 1), b = member_of(4, "node-a", 2);
    struct member got;
    err_t err = {{0}};
    int rc;

    put_ok(fx->s, &a);
    rc = members_put(fx->s, &b, &err); /* may be refused: the name is taken */
    (void)rc;
    assert_int_equal(members_get(fx->s, 3, &got, &err), 1);
    assert_member(&got, &a);
}

static void test_member_bad_key_length_ebadmsg(void **state)
{
    struct fixture *fx = *state;
    struct member a = member_of(3, "node-a", 1), got;
    struct member *v = (struct member *)fx;
    err_t err = {{0}};
    size_t n = 99;

    put_ok(fx->s, &a);
    store_destroy(&fx->s);
    sql_exec(fx->path, "INSERT INTO members (id, name, pubkey, address, cpus, "
                       "memory_mb, voter, state, joined) VALUES (9, 'short', "
                       "zeroblob(31), 'h:1', 1, 1, 0, 'active', 9)");
    fx->s = open_ok(fx->path);
    errno = 0;
    assert_int_equal(members_list(fx->s, &v, &n, &err), -1);
    assert_int_equal(errno, EBADMSG);
    assert_null(v);
    assert_int_equal(n, 0);
    assert_true(strlen(err.text) > 0);
    errno = 0;
    assert_int_equal(members_get(fx->s, 9, &got, &err), -1);
    assert_int_equal(errno, EBADMSG);
    /* the good row is still readable on its own */
    assert_int_equal(members_get(fx->s, 3, &got, &err), 1);
}

static void test_member_long_text_ebadmsg(void **state)
{
    struct fixture *fx = *state;
    struct member *v = NULL;
    err_t err = {{0}};
    size_t n = 0;

    /* a 64-character name does not fit name[64]: damaged, not cut */
    sql_exec(fx->path, "INSERT INTO members (id, name, pubkey, address, cpus, "
                       "memory_mb, voter, state, joined) VALUES (9, "
                       "printf('%.64c', 'x'), zeroblob(32), 'h:1', 1, 1, 0, "
                       "'active', 9)");
    errno = 0;
    assert_int_equal(members_list(fx->s, &v, &n, &err), -1);
    assert_int_equal(errno, EBADMSG);
    assert_null(v);
}

/* ---- tokens ------------------------------------------------------------ */

static struct token token_of(const char *id, int seed)
{
    struct token t = {0};

    snprintf(t.id, sizeof(t.id), "%s", id);
    for (int i = 0; i < TOKEN_VERIFIER_BYTES; i++)
        t.verifier[i] = (unsigned char)(seed + i * 3);
    t.verifier[0] = 0;
    t.expires = 1700000000 + seed;
    t.uses_left = seed;
    return t;
}

static void assert_token(const struct token *got, const struct token *want)
{
    assert_string_equal(got->id, want->id);
    assert_memory_equal(got->verifier, want->verifier, TOKEN_VERIFIER_BYTES);
    assert_int_equal(got->expires, want->expires);
    assert_int_equal(got->uses_left, want->uses_left);
}

static void test_token_round_trip(void **state)
{
    struct fixture *fx = *state;
    struct token a = token_of("0011223344556677", 3);
    struct token b = token_of("8899aabbccddeeff", 5), got;
    err_t err = {{0}};

    assert_int_equal(tokens_put(fx->s, &a, &err), 0);
    assert_int_equal(tokens_put(fx->s, &b, &err), 0);
    reopen(fx);
    memset(&got, 0xa5, sizeof(got));
    assert_int_equal(tokens_get(fx->s, a.id, &got, &err), 1);
    assert_token(&got, &a);
    memset(&got, 0xa5, sizeof(got));
    assert_int_equal(tokens_get(fx->s, b.id, &got, &err), 1);
    assert_token(&got, &b);
}

static void test_token_put_replaces(void **state)
{
    struct fixture *fx = *state;
    struct token a = token_of("0011223344556677", 3), got;
    err_t err = {{0}};

    assert_int_equal(tokens_put(fx->s, &a, &err), 0);
    a.uses_left = 0;
    assert_int_equal(tokens_put(fx->s, &a, &err), 0);
    assert_int_equal(tokens_get(fx->s, a.id, &got, &err), 1);
    assert_int_equal(got.uses_left, 0);
}

static void test_token_missing_returns_0(void **state)
{
    struct fixture *fx = *state;
    struct token a = token_of("0011223344556677", 3), got;
    err_t err = {{0}};

    assert_int_equal(tokens_get(fx->s, a.id, &got, &err), 0);
    assert_int_equal(tokens_put(fx->s, &a, &err), 0);
    assert_int_equal(tokens_get(fx->s, "0011223344556678", &got, &err), 0);
    assert_int_equal(tokens_get(fx->s, "", &got, &err), 0);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    // clang-format off
    const struct CMUnitTest tests[] = {
        T(test_fresh_store_is_empty),
        T(test_save_load_round_trip),
        T(test_save_appends_after_last),
        T(test_save_from_middle_replaces_conflict),
        T(test_save_term_only_keeps_vote),
        T(test_applied_commit_kept),
        T(test_applied_rollback_discarded),
        T(test_gap_in_log_is_ebadmsg),
        T(test_log_not_from_1_is_ebadmsg),
        T(test_index_zero_refused),
        T(test_member_round_trip),
        T(test_member_missing_returns_0),
        T(test_members_list_ordered_by_id),
        T(test_members_list_empty),
        T(test_member_put_replaces_by_id),
        T(test_member_put_keeps_other_id),
        T(test_member_bad_key_length_ebadmsg),
        T(test_member_long_text_ebadmsg),
        T(test_token_round_trip),
        T(test_token_put_replaces),
        T(test_token_missing_returns_0),
    };
    // clang-format on
    return cmocka_run_group_tests_name("raftlog", tests, NULL, NULL);
}
