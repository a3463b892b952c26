/* test_store.c - the peer's SQLite database (store/store.c)
 *
 * Each test gets a fresh mkdtemp directory.  Values are read back through
 * the store; the on-disk facts (journal mode, schema version, corruption)
 * are set up or checked with the sqlite3 C API directly.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <setjmp.h>

#include <cmocka.h>

#include "tests/unit/dbfile.h"
#include "tests/unit/tmpdir.h"
#include <sqlite3.h>

#include "store/store.h"

struct fixture {
    char dir[64];
    char path[128];
    store_t *s;
};

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));

    if (!fx)
        return -1;
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/test_store.XXXXXX");
    if (!mkdtemp(fx->dir)) {
        free(fx);
        return -1;
    }
    snprintf(fx->path, sizeof(fx->path), "%s/peerd.db", fx->dir);
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

static store_t *open_ok(struct fixture *fx)
{
    err_t err = {{0}};
    store_t *s = store_open(fx->path, true, &err);

    if (!s)
        fail_msg("store_open: %s", err.text);
    return s;
}

static void reopen(struct fixture *fx)
{
    store_destroy(&fx->s);
    fx->s = open_ok(fx);
}

static void set_ok(store_t *s, enum store_table t, const char *key,
                   const char *value)
{
    err_t err = {{0}};

    if (store_set(s, t, key, value, &err) < 0)
        fail_msg("store_set %s: %s", key, err.text);
}

/* Assert that key holds value (or is absent when value is NULL). */
static void assert_value(store_t *s, enum store_table t, const char *key,
                         const char *value)
{
    err_t err = {{0}};
    char *got = (char *)"sentinel";
    int rc = store_get(s, t, key, &got, &err);

    if (!value) {
        assert_int_equal(rc, 0);
        assert_null(got);
        return;
    }
    assert_int_equal(rc, 1);
    assert_non_null(got);
    assert_string_equal(got, value);
    free(got);
}

/* Check that opening fx->path without create fails with errno e. */
static void assert_open_fails(struct fixture *fx, int e)
{
    err_t err = {{0}};
    store_t *s;

    errno = 0;
    s = store_open(fx->path, false, &err);
    if (s) {
        store_destroy(&s);
        fail_msg("store_open accepted %s", fx->path);
    }
    assert_int_equal(errno, e);
    assert_true(strlen(err.text) > 0);
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");

    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void fill_random(unsigned char *buf, size_t len, unsigned seed)
{
    srand(seed);
    for (size_t i = 0; i < len; i++)
        buf[i] = (unsigned char)rand();
}

static void test_create_new_db(void **state)
{
    struct fixture *fx = *state;
    struct stat st;

    assert_int_equal(stat(fx->path, &st), -1);
    fx->s = open_ok(fx);
    assert_int_equal(stat(fx->path, &st), 0);
    assert_int_equal(store_schema_version(fx->s), STORE_SCHEMA_VERSION);
}

static void test_set_get_both_tables(void **state)
{
    struct fixture *fx = *state;

    fx->s = open_ok(fx);
    set_ok(fx->s, STORE_CONFIG, "cluster_name", "alpha");
    set_ok(fx->s, STORE_LOCAL, "node_name", "node-1");
    assert_value(fx->s, STORE_CONFIG, "cluster_name", "alpha");
    assert_value(fx->s, STORE_LOCAL, "node_name", "node-1");
}

static void test_tables_are_separate(void **state)
{
    struct fixture *fx = *state;

    fx->s = open_ok(fx);
    set_ok(fx->s, STORE_CONFIG, "only_config", "c");
    set_ok(fx->s, STORE_LOCAL, "only_local", "l");
    set_ok(fx->s, STORE_CONFIG, "both", "in-config");
    set_ok(fx->s, STORE_LOCAL, "both", "in-local");
    assert_value(fx->s, STORE_LOCAL, "only_config", NULL);
    assert_value(fx->s, STORE_CONFIG, "only_local", NULL);
    assert_value(fx->s, STORE_CONFIG, "both", "in-config");
    assert_value(fx->s, STORE_LOCAL, "both", "in-local");
}

static void test_set_replaces_value(void **state)
{
    struct fixture *fx = *state;

    fx->s = open_ok(fx);
    set_ok(fx->s, STORE_CONFIG, "tier", "1");
    set_ok(fx->s, STORE_CONFIG, "tier", "2");
    assert_value(fx->s, STORE_CONFIG, "tier", "2");
}

static void test_get_missing_key(void **state)
{
    struct fixture *fx = *state;

    fx->s = open_ok(fx);
    assert_value(fx->s, STORE_CONFIG, "nope", NULL);
    assert_value(fx->s, STORE_LOCAL, "nope", NULL);
}

static void test_blob_round_trip(void **state)
{
    struct fixture *fx = *state;
    static const unsigned char blob[] = {0x00, 0x01, 0x00, 0xff, 'a',
                                         0x00, 0x00, 0x7f, 0x00};
    err_t err = {{0}};
    void *got = NULL;
    size_t len = 0;

    fx->s = open_ok(fx);
    assert_int_equal(
        store_put_blob(fx->s, "munge.key", blob, sizeof(blob), &err), 0);
    assert_int_equal(store_get_blob(fx->s, "munge.key", &got, &len, &err), 1);
    assert_int_equal(len, sizeof(blob));
    assert_memory_equal(got, blob, sizeof(blob));
    free(got);
}

static void test_get_missing_blob(void **state)
{
    struct fixture *fx = *state;
    err_t err = {{0}};
    void *got = &err;
    size_t len = 99;

    fx->s = open_ok(fx);
    assert_int_equal(store_get_blob(fx->s, "nope", &got, &len, &err), 0);
    assert_null(got);
}

static void test_rollback_discards(void **state)
{
    struct fixture *fx = *state;
    err_t err = {{0}};

    fx->s = open_ok(fx);
    set_ok(fx->s, STORE_CONFIG, "k", "old");
    assert_int_equal(store_begin(fx->s, &err), 0);
    set_ok(fx->s, STORE_CONFIG, "k", "new");
    set_ok(fx->s, STORE_LOCAL, "k2", "v2");
    assert_int_equal(store_put_blob(fx->s, "b", "x", 1, &err), 0);
    assert_value(fx->s, STORE_CONFIG, "k", "new");
    store_rollback(fx->s);
    assert_value(fx->s, STORE_CONFIG, "k", "old");
    assert_value(fx->s, STORE_LOCAL, "k2", NULL);
    reopen(fx);
    assert_value(fx->s, STORE_CONFIG, "k", "old");
    assert_value(fx->s, STORE_LOCAL, "k2", NULL);
}

static void test_commit_keeps(void **state)
{
    struct fixture *fx = *state;
    err_t err = {{0}};

    fx->s = open_ok(fx);
    assert_int_equal(store_begin(fx->s, &err), 0);
    set_ok(fx->s, STORE_CONFIG, "a", "1");
    set_ok(fx->s, STORE_LOCAL, "b", "2");
    assert_int_equal(store_commit(fx->s, &err), 0);
    reopen(fx);
    assert_value(fx->s, STORE_CONFIG, "a", "1");
    assert_value(fx->s, STORE_LOCAL, "b", "2");
}

static void test_reopen_keeps_values(void **state)
{
    struct fixture *fx = *state;
    err_t err = {{0}};
    void *got = NULL;
    size_t len = 0;

    fx->s = open_ok(fx);
    set_ok(fx->s, STORE_CONFIG, "cluster_id", "c-42");
    set_ok(fx->s, STORE_LOCAL, "node_name", "node-1");
    assert_int_equal(store_put_blob(fx->s, "k", "\0z", 2, &err), 0);
    reopen(fx);
    assert_int_equal(store_schema_version(fx->s), STORE_SCHEMA_VERSION);
    assert_value(fx->s, STORE_CONFIG, "cluster_id", "c-42");
    assert_value(fx->s, STORE_LOCAL, "node_name", "node-1");
    assert_int_equal(store_get_blob(fx->s, "k", &got, &len, &err), 1);
    assert_int_equal(len, 2);
    assert_memory_equal(got, "\0z", 2);
    free(got);
}

static void test_open_missing_without_create(void **state)
{
    struct fixture *fx = *state;
    struct stat st;

    assert_open_fails(fx, ENOENT);
    assert_int_equal(stat(fx->path, &st), -1);
}

static void test_garbage_file_refused(void **state)
{
    struct fixture *fx = *state;
    unsigned char garbage[8192];

    unsigned char after[sizeof(garbage) + 1];
    FILE *f;

    fill_random(garbage, sizeof(garbage), 7);
    write_file(fx->path, garbage, sizeof(garbage));
    assert_open_fails(fx, EBADMSG);
    /* refused, not repaired or overwritten */
    assert_non_null(f = fopen(fx->path, "rb"));
    assert_int_equal(fread(after, 1, sizeof(after), f), sizeof(garbage));
    fclose(f);
    assert_memory_equal(after, garbage, sizeof(garbage));
}

static void test_newer_schema_refused(void **state)
{
    struct fixture *fx = *state;
    char sql[96];

    fx->s = open_ok(fx);
    store_destroy(&fx->s);
    snprintf(sql, sizeof(sql), "UPDATE schema_version SET version = %d",
             STORE_SCHEMA_VERSION + 1);
    sql_exec(fx->path, sql);
    assert_open_fails(fx, EPROTONOSUPPORT);
}

static long page_size_of(const char *path)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    long n;

    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA page_size", -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

/* Overwrite pages [first, last) of the file with random bytes. */
static void smash_pages(const char *path, long psize, long first, long last)
{
    unsigned char *junk = malloc(psize);
    int fd = open(path, O_WRONLY);

    assert_non_null(junk);
    assert_true(fd >= 0);
    for (long pg = first; pg < last; pg++) {
        fill_random(junk, psize, (unsigned)pg);
        assert_int_equal(pwrite(fd, junk, psize, pg * psize), psize);
    }
    assert_int_equal(close(fd), 0);
    free(junk);
}

static void test_corrupt_pages_refused(void **state)
{
    struct fixture *fx = *state;
    char key[32], value[1024], wal[160];
    struct stat st;
    long psize, pages;
    err_t err = {{0}};

    fx->s = open_ok(fx);
    memset(value, 'v', sizeof(value) - 1);
    value[sizeof(value) - 1] = '\0';
    assert_int_equal(store_begin(fx->s, &err), 0);
    for (int i = 0; i < 200; i++) {
        snprintf(key, sizeof(key), "key-%04d", i);
        set_ok(fx->s, STORE_CONFIG, key, value);
    }
    assert_int_equal(store_commit(fx->s, &err), 0);
    store_destroy(&fx->s);

    /* closing the last connection checkpointed the WAL into the file */
    snprintf(wal, sizeof(wal), "%s-wal", fx->path);
    assert_int_equal(stat(wal, &st), -1);
    assert_int_equal(stat(fx->path, &st), 0);
    psize = page_size_of(fx->path);
    pages = st.st_size / psize;
    assert_true(pages >= 20);
    smash_pages(fx->path, psize, pages / 3, 2 * pages / 3);
    assert_open_fails(fx, EBADMSG);
}

static void test_journal_mode_is_wal(void **state)
{
    struct fixture *fx = *state;
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;

    fx->s = open_ok(fx);
    assert_int_equal(sqlite3_open(fx->path, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL),
        SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    sqlite3_close(db);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    // clang-format off
    const struct CMUnitTest tests[] = {
        T(test_create_new_db),
        T(test_set_get_both_tables),
        T(test_tables_are_separate),
        T(test_set_replaces_value),
        T(test_get_missing_key),
        T(test_blob_round_trip),
        T(test_get_missing_blob),
        T(test_rollback_discards),
        T(test_commit_keeps),
        T(test_reopen_keeps_values),
        T(test_open_missing_without_create),
        T(test_garbage_file_refused),
        T(test_newer_schema_refused),
        T(test_corrupt_pages_refused),
        T(test_journal_mode_is_wal),
    };
    // clang-format on

    return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
