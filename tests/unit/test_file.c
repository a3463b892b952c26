/* test_file.c - careful file helpers (store/file.c)
 *
 * Atomic replace (mode, new inode, no temp files left, clean failure),
 * bounded reads, mkdir -p, forcing a directory's mode, and SHA-256.
 * Each test works in its own mkdtemp directory.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
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

#include "tests/unit/tmpdir.h"

#include "store/file.h"

/* uid, gid arguments that leave the owner as it is */
#define KEEP_OWNER ((uid_t)-1), ((gid_t)-1)

struct fixture {
    char dir[64];
};

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));

    if (!fx)
        return -1;
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/test_file.XXXXXX");
    if (!mkdtemp(fx->dir)) {
        free(fx);
        return -1;
    }
    *state = fx;
    return 0;
}

/* rm -r of a directory tree the tests made (no symlinks in it). */
static int teardown(void **state)
{
    struct fixture *fx = *state;

    tmpdir_remove(fx->dir);
    free(fx);
    return 0;
}

/* fx->dir + "/" + name, written into buf. */
static const char *in_dir(struct fixture *fx, const char *name, char *buf,
                          size_t size)
{
    snprintf(buf, size, "%s/%s", fx->dir, name);
    return buf;
}

static void write_ok(const char *path, const char *text, mode_t mode)
{
    err_t err = {{0}};

    if (file_write_atomic(path, text, strlen(text), mode, KEEP_OWNER, &err))
        fail_msg("file_write_atomic %s: %s", path, err.text);
}

static void assert_content(const char *path, const void *want, size_t len)
{
    err_t err = {{0}};
    size_t got_len = 0;
    char *got = file_read(path, 1 << 20, &got_len, &err);

    if (!got)
        fail_msg("file_read %s: %s", path, err.text);
    assert_int_equal(got_len, len);
    assert_memory_equal(got, want, len);
    assert_int_equal(got[len], '\0');
    free(got);
}

static mode_t mode_of(const char *path)
{
    struct stat st;

    assert_int_equal(stat(path, &st), 0);
    return st.st_mode & 07777;
}

static bool is_dir(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Number of entries in dir whose name contains needle. */
static int count_entries(const char *dir, const char *needle)
{
    struct dirent *de;
    int n = 0;
    DIR *d = opendir(dir);

    assert_non_null(d);
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            n += strstr(de->d_name, needle) != NULL;
    closedir(d);
    return n;
}

static void test_write_creates_with_mode(void **state)
{
    char p1[128], p2[128];
    struct fixture *fx = *state;

    write_ok(in_dir(fx, "a.conf", p1, sizeof(p1)), "hello\n", 0640);
    assert_int_equal(mode_of(p1), 0640);
    assert_content(p1, "hello\n", 6);
    write_ok(in_dir(fx, "munge.key", p2, sizeof(p2)), "k", 0400);
    assert_int_equal(mode_of(p2), 0400);
}

static void test_write_mode_ignores_umask(void **state)
{
    struct fixture *fx = *state;
    char p[128];
    mode_t old = umask(0077);

    write_ok(in_dir(fx, "slurm.conf", p, sizeof(p)), "x", 0644);
    umask(old);
    assert_int_equal(mode_of(p), 0644);
}

static void test_write_replaces_file(void **state)
{
    struct fixture *fx = *state;
    char p[128];
    struct stat before, after;

    write_ok(in_dir(fx, "f", p, sizeof(p)), "old content", 0600);
    assert_int_equal(stat(p, &before), 0);
    write_ok(p, "new", 0644);
    assert_int_equal(stat(p, &after), 0);
    assert_true(before.st_ino != after.st_ino);
    assert_int_equal(after.st_mode & 07777, 0644);
    assert_content(p, "new", 3);
}

static void test_write_leaves_no_temp_files(void **state)
{
    struct fixture *fx = *state;
    char p[128], bad[128];
    err_t err = {{0}};

    write_ok(in_dir(fx, "f", p, sizeof(p)), "one", 0600);
    write_ok(p, "two", 0600);
    /* a failing write (the target is a directory) cleans up as well */
    assert_int_equal(mkdir(in_dir(fx, "d", bad, sizeof(bad)), 0700), 0);
    assert_int_equal(file_write_atomic(bad, "x", 1, 0600, KEEP_OWNER, &err),
                     -1);
    assert_int_equal(count_entries(fx->dir, ".tmp"), 0);
    assert_int_equal(count_entries(fx->dir, ""), 2);
}

static void test_write_empty_file(void **state)
{
    struct fixture *fx = *state;
    char p[128];

    write_ok(in_dir(fx, "empty", p, sizeof(p)), "", 0600);
    assert_content(p, "", 0);
}

static void test_write_fails_in_missing_dir(void **state)
{
    struct fixture *fx = *state;
    char p[128];
    err_t err = {{0}};

    in_dir(fx, "no/such/dir/f", p, sizeof(p));
    assert_int_equal(file_write_atomic(p, "x", 1, 0600, KEEP_OWNER, &err), -1);
    assert_true(strlen(err.text) > 0);
    assert_int_equal(count_entries(fx->dir, ""), 0);
}

static void test_read_content_and_length(void **state)
{
    struct fixture *fx = *state;
    static const char data[] = "line 1\n\0binary\xff";
    char p[128];
    err_t err = {{0}};

    in_dir(fx, "f", p, sizeof(p));
    assert_int_equal(
        file_write_atomic(p, data, sizeof(data) - 1, 0600, KEEP_OWNER, &err),
        0);
    assert_content(p, data, sizeof(data) - 1);
}

static void test_read_missing(void **state)
{
    struct fixture *fx = *state;
    char p[128];
    err_t err = {{0}};
    size_t len = 0;

    errno = 0;
    assert_null(file_read(in_dir(fx, "nope", p, sizeof(p)), 100, &len, &err));
    assert_int_equal(errno, ENOENT);
    assert_true(strlen(err.text) > 0);
}

static void test_read_too_large(void **state)
{
    struct fixture *fx = *state;
    char p[128], data[101];
    err_t err = {{0}};
    size_t len = 0;
    char *got;

    memset(data, 'x', 100);
    data[100] = '\0';
    write_ok(in_dir(fx, "big", p, sizeof(p)), data, 0600);
    errno = 0;
    assert_null(file_read(p, 99, &len, &err));
    assert_int_equal(errno, EFBIG);
    assert_true(strlen(err.text) > 0);
    /* exactly maxlen is fine */
    got = file_read(p, 100, &len, &err);
    assert_non_null(got);
    assert_int_equal(len, 100);
    free(got);
}

static void test_mkdir_p_nested(void **state)
{
    struct fixture *fx = *state;
    char p[128], q[128];
    err_t err = {{0}};

    assert_int_equal(
        file_mkdir_p(in_dir(fx, "a/b/c", p, sizeof(p)), 0755, &err), 0);
    assert_true(is_dir(in_dir(fx, "a", q, sizeof(q))));
    assert_true(is_dir(in_dir(fx, "a/b", q, sizeof(q))));
    assert_true(is_dir(p));
}

static void test_mkdir_p_idempotent(void **state)
{
    struct fixture *fx = *state;
    char p[128];
    err_t err = {{0}};

    in_dir(fx, "x/y/", p, sizeof(p));
    assert_int_equal(file_mkdir_p(p, 0755, &err), 0);
    assert_int_equal(file_mkdir_p(p, 0755, &err), 0);
    assert_int_equal(file_mkdir_p(fx->dir, 0755, &err), 0);
    assert_true(is_dir(p));
}

static void test_mkdir_p_fails_under_file(void **state)
{
    struct fixture *fx = *state;
    char p[128], q[128];
    err_t err = {{0}};

    write_ok(in_dir(fx, "file", p, sizeof(p)), "x", 0600);
    assert_int_equal(
        file_mkdir_p(in_dir(fx, "file/sub", q, sizeof(q)), 0755, &err), -1);
    assert_true(strlen(err.text) > 0);
}

static void test_ensure_dir_fixes_mode(void **state)
{
    struct fixture *fx = *state;
    char p[128];
    err_t err = {{0}};

    assert_int_equal(mkdir(in_dir(fx, "spool", p, sizeof(p)), 0700), 0);
    assert_int_equal(mode_of(p), 0700);
    assert_int_equal(file_ensure_dir(p, 0755, KEEP_OWNER, &err), 0);
    assert_int_equal(mode_of(p), 0755);
}

static void test_ensure_dir_creates_with_mode(void **state)
{
    struct fixture *fx = *state;
    char p[128];
    err_t err = {{0}};
    mode_t old = umask(0077);
    int rc = file_ensure_dir(in_dir(fx, "state", p, sizeof(p)), 0755,
                             KEEP_OWNER, &err);

    umask(old);
    assert_int_equal(rc, 0);
    assert_true(is_dir(p));
    assert_int_equal(mode_of(p), 0755);
}

static void test_ensure_dir_refuses_file(void **state)
{
    struct fixture *fx = *state;
    char p[128];
    err_t err = {{0}};

    write_ok(in_dir(fx, "file", p, sizeof(p)), "x", 0600);
    assert_int_equal(file_ensure_dir(p, 0755, KEEP_OWNER, &err), -1);
    assert_true(strlen(err.text) > 0);
    assert_int_equal(mode_of(p), 0600);
}

static void test_sha256_hex(void **state)
{
    char hex[65];

    file_sha256_hex("abc", 3, hex);
    assert_string_equal(
        hex,
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    file_sha256_hex("", 0, hex);
    assert_string_equal(
        hex,
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    // clang-format off
    const struct CMUnitTest tests[] = {
        T(test_write_creates_with_mode),
        T(test_write_mode_ignores_umask),
        T(test_write_replaces_file),
        T(test_write_leaves_no_temp_files),
        T(test_write_empty_file),
        T(test_write_fails_in_missing_dir),
        T(test_read_content_and_length),
        T(test_read_missing),
        T(test_read_too_large),
        T(test_mkdir_p_nested),
        T(test_mkdir_p_idempotent),
        T(test_mkdir_p_fails_under_file),
        T(test_ensure_dir_fixes_mode),
        T(test_ensure_dir_creates_with_mode),
        T(test_ensure_dir_refuses_file),
        cmocka_unit_test(test_sha256_hex),
    };
    // clang-format on

    return cmocka_run_group_tests_name("file", tests, NULL, NULL);
}
