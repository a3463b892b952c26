/* test_statesync.c - shipping slurmctld's state directory (node/statesync.c)
 *
 * Pack/install round trips compared byte for byte, the scan signature,
 * chunk assembly, refusal of corrupt archives (nothing left behind),
 * pruning, the newest generation, promotion, and Slurm's job id sequence
 * read from a job_state file that a real slurmctld 22.05.8 wrote
 * (tests/unit/fixtures).  Each test works in its own mkdtemp directory.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <setjmp.h>

#include <cmocka.h>
#include <sodium.h>

#include "tests/unit/tmpdir.h"

#include "node/statesync.h"

#ifndef FIXTURES
#define FIXTURES "tests/unit/fixtures"
#endif

struct fixture {
    char dir[64];
};

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));

    if (!fx || tmpdir_make(fx->dir, sizeof(fx->dir), "test_statesync") < 0) {
        free(fx);
        return -1;
    }
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;

    tmpdir_remove(fx->dir);
    free(fx);
    return 0;
}

/* fx->dir + "/" + printf(fmt, ...) into a static rotating buffer. */
static const char *at(struct fixture *fx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static const char *at(struct fixture *fx, const char *fmt, ...)
{
    static char bufs[8][512];
    static int next;
    char *b = bufs[next++ % 8];
    va_list ap;
    int n = snprintf(b, 512, "%s/", fx->dir);

    va_start(ap, fmt);
    vsnprintf(b + n, 512 - n, fmt, ap);
    va_end(ap);
    return b;
}

static void put_file(const char *path, const void *data, size_t len,
                     mode_t mode)
{
    FILE *f = fopen(path, "wb");

    if (!f)
        fail_msg("cannot create %s", path);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(path, mode), 0);
}

static void put_text(const char *path, const char *text)
{
    put_file(path, text, strlen(text), 0600);
}

static void put_dir(const char *path, mode_t mode)
{
    assert_int_equal(mkdir(path, mode), 0);
    assert_int_equal(chmod(path, mode), 0);
}

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf = NULL;
    size_t cap = 0, n;

    if (!f)
        fail_msg("cannot open %s", path);
    *len = 0;
    do {
        if (*len == cap) {
            cap = cap ? cap * 2 : 4096;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        n = fread(buf + *len, 1, cap - *len, f);
        *len += n;
    } while (n > 0);
    fclose(f);
    return buf;
}

static bool exists(const char *path)
{
    struct stat st;

    return lstat(path, &st) == 0;
}

static mode_t mode_of(const char *path)
{
    struct stat st;

    assert_int_equal(lstat(path, &st), 0);
    return st.st_mode & 07777;
}

/* Names in dir (sorted, without . and ..) joined by ' '. */
static void list_dir(const char *dir, char *out, size_t cap)
{
    struct dirent **names;
    int n = scandir(dir, &names, NULL, alphasort);
    size_t len = 0;

    out[0] = '\0';
    if (n < 0)
        fail_msg("cannot read %s", dir);
    for (int i = 0; i < n; i++) {
        if (strcmp(names[i]->d_name, ".") && strcmp(names[i]->d_name, ".."))
            len += snprintf(out + len, cap - len, "%s%s", len ? " " : "",
                            names[i]->d_name);
        free(names[i]);
    }
    free(names);
}

/* want (directories and regular files only) and got hold the same tree:
 * same names, types, permission bits and bytes.
 */
static void assert_same_tree(const char *want, const char *got)
{
    struct dirent **names;
    int n = scandir(want, &names, NULL, alphasort);
    int carried = 0;

    if (n < 0)
        fail_msg("cannot read %s", want);
    for (int i = 0; i < n; i++) {
        char a[1024], b[1024];
        struct stat sa, sb;

        if (!strcmp(names[i]->d_name, ".") || !strcmp(names[i]->d_name, ".."))
            goto next;
        snprintf(a, sizeof(a), "%s/%s", want, names[i]->d_name);
        snprintf(b, sizeof(b), "%s/%s", got, names[i]->d_name);
        assert_int_equal(lstat(a, &sa), 0);
        if (!S_ISDIR(sa.st_mode) && !S_ISREG(sa.st_mode)) {
            if (exists(b))
                fail_msg("%s should not have been carried", b);
            goto next;
        }
        carried++;
        if (lstat(b, &sb) < 0)
            fail_msg("%s is missing", b);
        assert_int_equal(sa.st_mode & S_IFMT, sb.st_mode & S_IFMT);
        if ((sa.st_mode & 0777) != (sb.st_mode & 07777))
            fail_msg("%s: mode %o, want %o", b, sb.st_mode & 07777,
                     sa.st_mode & 0777);
        if (S_ISDIR(sa.st_mode)) {
            assert_same_tree(a, b);
        } else {
            size_t la, lb;
            unsigned char *ca = slurp(a, &la), *cb = slurp(b, &lb);

            assert_int_equal(la, lb);
            if (la)
                assert_memory_equal(ca, cb, la);
            free(ca);
            free(cb);
        }
    next:
        free(names[i]);
    }
    free(names);
    /* nothing extra in got */
    n = scandir(got, &names, NULL, alphasort);
    assert_true(n >= 0);
    assert_int_equal(n - 2, carried);
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* A state directory like slurmctld's: nested directories with modes,
 * an empty file, a 1 MiB file, a symlink and a fifo (not carried).
 */
static void make_tree(struct fixture *fx, const char *root)
{
    unsigned char *big = malloc(1 << 20);

    assert_non_null(big);
    for (size_t i = 0; i < (1 << 20); i++)
        big[i] = (unsigned char)(i * 2654435761u >> 13);
    put_dir(at(fx, "%s", root), 0755);
    put_file(at(fx, "%s/job_state", root), big, 1 << 20, 0600);
    put_text(at(fx, "%s/job_state.old", root), "older");
    put_file(at(fx, "%s/empty", root), "", 0, 0644);
    put_file(at(fx, "%s/clustername", root), "t", 1, 0444);
    put_dir(at(fx, "%s/hash.3", root), 0700);
    put_dir(at(fx, "%s/hash.3/job.1003", root), 0750);
    put_file(at(fx, "%s/hash.3/job.1003/script", root), "#!/bin/sh\ntrue\n", 15,
             0755);
    put_text(at(fx, "%s/hash.3/job.1003/environment", root), "A=1");
    put_dir(at(fx, "%s/hash.3/job.1003/deeper", root), 0500);
    put_dir(at(fx, "%s/hash.0", root), 0700);
    assert_int_equal(symlink("/etc/passwd", at(fx, "%s/link", root)), 0);
    assert_int_equal(mkfifo(at(fx, "%s/fifo", root), 0600), 0);
    free(big);
}

static void pack_ok(const char *dir, unsigned char **buf, size_t *len,
                    unsigned char digest[32])
{
    err_t err = {{0}};

    if (statesync_pack(dir, buf, len, digest, &err) < 0)
        fail_msg("statesync_pack %s: %s", dir, err.text);
}

static void install_ok(const char *gens, uint64_t gen, const unsigned char *buf,
                       size_t len, int keep)
{
    err_t err = {{0}};

    if (statesync_install(gens, gen, buf, len, keep, &err) < 0)
        fail_msg("statesync_install %s: %s", gens, err.text);
}

static void test_pack_install_round_trip(void **state)
{
    struct fixture *fx = *state;
    unsigned char *buf, *again, digest[32], d2[32], want[32];
    size_t len, len2;
    char names[256];

    make_tree(fx, "src");
    pack_ok(at(fx, "src"), &buf, &len, digest);
    crypto_generichash(want, 32, buf, len, NULL, 0);
    assert_memory_equal(digest, want, 32);
    assert_memory_equal(buf, "PDSS\1", 5);
    assert_true(len > (1 << 20));

    /* the same tree packs to the same bytes */
    pack_ok(at(fx, "src"), &again, &len2, d2);
    assert_int_equal(len, len2);
    assert_memory_equal(buf, again, len);
    assert_memory_equal(digest, d2, 32);

    install_ok(at(fx, "gens"), 0x1234, buf, len, 2);
    list_dir(at(fx, "gens"), names, sizeof(names));
    assert_string_equal(names, "gen-0000000000001234");
    assert_int_equal(mode_of(at(fx, "gens/gen-0000000000001234")), 0700);
    assert_same_tree(at(fx, "src"), at(fx, "gens/gen-0000000000001234"));
    free(buf);
    free(again);
}

static void test_pack_missing_dir_fails(void **state)
{
    struct fixture *fx = *state;
    unsigned char *buf = NULL, digest[32];
    size_t len = 0;
    err_t err = {{0}};

    assert_int_equal(statesync_pack(at(fx, "nope"), &buf, &len, digest, &err),
                     -1);
    assert_non_null(strstr(err.text, "nope"));
    assert_null(buf);
}

static void test_pack_empty_dir(void **state)
{
    struct fixture *fx = *state;
    unsigned char *buf, digest[32];
    size_t len;

    put_dir(at(fx, "src"), 0700);
    pack_ok(at(fx, "src"), &buf, &len, digest);
    assert_int_equal(len, 6);
    assert_memory_equal(buf, "PDSS\1\0", 6);
    install_ok(at(fx, "gens"), 1, buf, len, 1);
    assert_same_tree(at(fx, "src"), at(fx, "gens/gen-0000000000000001"));
    free(buf);
}

static void scan_ok(const char *dir, unsigned char sig[32])
{
    err_t err = {{0}};

    if (statesync_scan(dir, sig, &err) < 0)
        fail_msg("statesync_scan %s: %s", dir, err.text);
}

/* Scan, expect the signature to differ from (or equal) *sig, keep it. */
#define rescan(dir, sig, changed) rescan_at(dir, sig, changed, __LINE__)

static void rescan_at(const char *dir, unsigned char sig[32], bool changed,
                      int line)
{
    unsigned char now[32];

    scan_ok(dir, now);
    if (changed != (memcmp(now, sig, 32) != 0))
        fail_msg("line %d: signature %s", line,
                 changed ? "did not change" : "changed");
    memcpy(sig, now, 32);
}

static void test_scan_signature(void **state)
{
    struct fixture *fx = *state;
    char src[128];
    struct timespec ts[2] = {{1000, 0}, {1000, 0}};
    struct timespec dir_ts[2] = {{2000, 0}, {2000, 0}};
    unsigned char sig[32];
    size_t len;

    make_tree(fx, "src");
    snprintf(src, sizeof(src), "%s", at(fx, "src"));
    scan_ok(src, sig);
    rescan(src, sig, false);
    free(slurp(at(fx, "src/job_state.old"), &len)); /* reading changes none */
    rescan(src, sig, false);

    /* rewritten in place, same size: the mtime tells */
    assert_int_equal(utimensat(AT_FDCWD, at(fx, "src/job_state.old"), ts, 0),
                     0);
    rescan(src, sig, true);
    put_text(at(fx, "src/job_state.old"), "OLDER");
    ts[1].tv_nsec = 1;
    assert_int_equal(utimensat(AT_FDCWD, at(fx, "src/job_state.old"), ts, 0),
                     0);
    rescan(src, sig, true);
    /* replaced by a new inode of the same size, mode and mtime (as
     * slurmctld's link of job_state.new does); the directory's mtime is
     * put back, so only the inode number differs
     */
    put_text(at(fx, "x.new"), "OLDER");
    assert_int_equal(utimensat(AT_FDCWD, at(fx, "x.new"), ts, 0), 0);
    assert_int_equal(utimensat(AT_FDCWD, src, dir_ts, 0), 0);
    rescan(src, sig, false); /* the root's own times are not part of it */
    assert_int_equal(rename(at(fx, "x.new"), at(fx, "src/job_state.old")), 0);
    assert_int_equal(utimensat(AT_FDCWD, src, dir_ts, 0), 0);
    rescan(src, sig, true);
    /* added, deep down */
    put_text(at(fx, "src/hash.0/new"), "x");
    rescan(src, sig, true);
    /* removed */
    assert_int_equal(unlink(at(fx, "src/hash.3/job.1003/environment")), 0);
    rescan(src, sig, true);
    /* mode */
    assert_int_equal(chmod(at(fx, "src/empty"), 0600), 0);
    rescan(src, sig, true);
    rescan(src, sig, false);
}

/* Chunk assembly */

static void make_archive(struct fixture *fx, unsigned char **buf, size_t *len,
                         unsigned char digest[32])
{
    put_dir(at(fx, "src"), 0700);
    put_text(at(fx, "src/job_state"), "some state, long enough for chunks");
    put_text(at(fx, "src/node_state"), "nodes");
    pack_ok(at(fx, "src"), buf, len, digest);
}

static int feed(struct statesync_rx *rx, uint64_t gen, const unsigned char *buf,
                size_t total, const unsigned char digest[32], size_t off,
                size_t n, err_t *err)
{
    return statesync_rx_chunk(rx, gen, total, off, digest, buf + off, n, err);
}

static void test_rx_in_order(void **state)
{
    struct fixture *fx = *state;
    struct statesync_rx rx;
    unsigned char *buf, digest[32];
    size_t len, off;
    err_t err = {{0}};
    int r = 0;

    make_archive(fx, &buf, &len, digest);
    statesync_rx_init(&rx);
    for (off = 0; off < len; off += 7) {
        size_t n = len - off < 7 ? len - off : 7;

        r = feed(&rx, 5, buf, len, digest, off, n, &err);
        if (off + n < len)
            assert_int_equal(r, 0);
    }
    if (r != 1)
        fail_msg("last chunk: %d %s", r, err.text);
    assert_int_equal(rx.gen, 5);
    assert_int_equal(rx.total, len);
    assert_memory_equal(rx.buf, buf, len);
    /* the assembled archive installs */
    install_ok(at(fx, "gens"), rx.gen, rx.buf, rx.total, 1);
    assert_same_tree(at(fx, "src"), at(fx, "gens/gen-0000000000000005"));
    /* a chunk of the complete generation is refused */
    assert_int_equal(feed(&rx, 5, buf, len, digest, 0, 7, &err), -1);
    assert_int_equal(rx.got, len);
    statesync_rx_reset(&rx);
    assert_null(rx.buf);
    assert_int_equal(rx.gen, 0);
    free(buf);
}

static void test_rx_digest_mismatch(void **state)
{
    struct fixture *fx = *state;
    struct statesync_rx rx;
    unsigned char *buf, digest[32], bad[32];
    size_t len;
    err_t err = {{0}};

    make_archive(fx, &buf, &len, digest);
    memcpy(bad, digest, 32);
    bad[31] ^= 1;
    statesync_rx_init(&rx);
    assert_int_equal(feed(&rx, 1, buf, len, bad, 0, 10, &err), 0);
    assert_int_equal(feed(&rx, 1, buf, len, bad, 10, len - 10, &err), -1);
    assert_non_null(strstr(err.text, "digest"));
    assert_null(rx.buf);
    /* a corrupted byte fails the same way */
    buf[len - 1] ^= 0x55;
    assert_int_equal(feed(&rx, 1, buf, len, digest, 0, len, &err), -1);
    buf[len - 1] ^= 0x55;
    /* the generation may be sent again from the start */
    assert_int_equal(feed(&rx, 1, buf, len, digest, 0, len, &err), 1);
    assert_memory_equal(rx.buf, buf, len);
    statesync_rx_reset(&rx);
    free(buf);
}

static void test_rx_refusals_keep_state(void **state)
{
    struct fixture *fx = *state;
    struct statesync_rx rx;
    unsigned char *buf, digest[32], other[32];
    size_t len;
    err_t err = {{0}};

    make_archive(fx, &buf, &len, digest);
    memset(other, 0xab, 32);
    statesync_rx_init(&rx);
    /* the first chunk of a generation must be at offset 0 */
    assert_int_equal(feed(&rx, 3, buf, len, digest, 10, 10, &err), -1);
    assert_non_null(strstr(err.text, "gap"));
    assert_null(rx.buf);
    assert_int_equal(feed(&rx, 3, buf, len, digest, 0, 10, &err), 0);
    /* gap */
    assert_int_equal(feed(&rx, 3, buf, len, digest, 11, 5, &err), -1);
    assert_non_null(strstr(err.text, "gap"));
    /* overlap */
    assert_int_equal(feed(&rx, 3, buf, len, digest, 5, 10, &err), -1);
    assert_non_null(strstr(err.text, "overlap"));
    assert_int_equal(feed(&rx, 3, buf, len, digest, 0, 10, &err), -1);
    /* digest or size changed within the generation */
    assert_int_equal(feed(&rx, 3, buf, len, other, 10, 5, &err), -1);
    assert_non_null(strstr(err.text, "digest"));
    assert_int_equal(
        statesync_rx_chunk(&rx, 3, len + 1, 10, digest, buf + 10, 5, &err), -1);
    /* older generation */
    assert_int_equal(feed(&rx, 2, buf, len, digest, 0, 10, &err), -1);
    assert_non_null(strstr(err.text, "older"));
    /* past the end, empty, generation 0, absurd size */
    assert_int_equal(
        statesync_rx_chunk(&rx, 3, len, len - 2, digest, buf, 5, &err), -1);
    assert_int_equal(feed(&rx, 3, buf, len, digest, 10, 0, &err), -1);
    assert_int_equal(feed(&rx, 0, buf, len, digest, 0, 10, &err), -1);
    assert_int_equal(statesync_rx_chunk(&rx, 4, STATESYNC_MAX_ARCHIVE + 1, 0,
                                        digest, buf, 10, &err),
                     -1);
    /* none of that disturbed the assembly */
    assert_int_equal(rx.gen, 3);
    assert_int_equal(rx.got, 10);
    assert_int_equal(feed(&rx, 3, buf, len, digest, 10, len - 10, &err), 1);
    assert_memory_equal(rx.buf, buf, len);
    statesync_rx_reset(&rx);
    free(buf);
}

static void test_rx_newer_generation_restarts(void **state)
{
    struct fixture *fx = *state;
    struct statesync_rx rx;
    unsigned char *buf, digest[32];
    size_t len;
    err_t err = {{0}};

    make_archive(fx, &buf, &len, digest);
    statesync_rx_init(&rx);
    assert_int_equal(feed(&rx, 1, buf, len, digest, 0, 10, &err), 0);
    /* not at offset 0: refused, generation 1 kept */
    assert_int_equal(feed(&rx, 2, buf, len, digest, 10, 10, &err), -1);
    assert_int_equal(rx.gen, 1);
    assert_int_equal(rx.got, 10);
    /* at offset 0: generation 1 dropped */
    assert_int_equal(feed(&rx, 2, buf, len, digest, 0, 4, &err), 0);
    assert_int_equal(rx.gen, 2);
    assert_int_equal(rx.got, 4);
    assert_int_equal(feed(&rx, 1, buf, len, digest, 10, 10, &err), -1);
    assert_int_equal(feed(&rx, 2, buf, len, digest, 4, len - 4, &err), 1);
    /* and a newer one replaces a complete one too */
    assert_int_equal(feed(&rx, 9, buf, len, digest, 0, len, &err), 1);
    assert_int_equal(rx.gen, 9);
    statesync_rx_reset(&rx);
    free(buf);
}

/* Hand-made archives */

struct ab {
    unsigned char b[512];
    size_t n;
};

static void ab_bytes(struct ab *a, const void *p, size_t n)
{
    assert_true(a->n + n <= sizeof(a->b));
    memcpy(a->b + a->n, p, n);
    a->n += n;
}

static void ab_uint(struct ab *a, uint64_t v, int bytes)
{
    while (bytes-- > 0) {
        unsigned char c = v >> (8 * bytes);

        ab_bytes(a, &c, 1);
    }
}

static void ab_start(struct ab *a)
{
    a->n = 0;
    ab_bytes(a, "PDSS\1", 5);
}

static void ab_entry(struct ab *a, int type, const char *path, uint32_t mode,
                     const char *data)
{
    ab_uint(a, type, 1);
    ab_uint(a, strlen(path), 2);
    ab_bytes(a, path, strlen(path));
    ab_uint(a, mode, 4);
    if (type == 2) {
        ab_uint(a, strlen(data), 8);
        ab_bytes(a, data, strlen(data));
    }
}

static void ab_end(struct ab *a)
{
    ab_uint(a, 0, 1);
}

/* gens must stay empty: install refuses a, with EINVAL. */
static void assert_refused(struct fixture *fx, const unsigned char *buf,
                           size_t len, const char *what)
{
    char names[256];
    err_t err = {{0}};

    errno = 0;
    if (statesync_install(at(fx, "gens"), 7, buf, len, 1, &err) != -1)
        fail_msg("%s: accepted", what);
    if (errno != EINVAL)
        fail_msg("%s: errno %d (%s)", what, errno, err.text);
    assert_true(strlen(err.text) > 0);
    list_dir(at(fx, "gens"), names, sizeof(names));
    if (names[0])
        fail_msg("%s: left %s", what, names);
}

static void test_install_refuses_bad_paths(void **state)
{
    static const char *const bad[] = {
        "..", "../evil", "a/../../evil", "/etc/evil", "",     "a//b",
        "a/", ".",       "./a",          "a/./b",     "a/..",
    };
    struct fixture *fx = *state;
    struct ab a;
    char path[300];

    put_dir(at(fx, "gens"), 0700);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ab_start(&a);
        ab_entry(&a, 1, "a", 0700, NULL);
        ab_entry(&a, 2, bad[i], 0600, "x");
        ab_end(&a);
        assert_refused(fx, a.b, a.n, bad[i]);
        ab_start(&a);
        ab_entry(&a, 1, bad[i], 0700, NULL);
        ab_end(&a);
        assert_refused(fx, a.b, a.n, bad[i]);
    }
    /* a NUL inside a path */
    ab_start(&a);
    ab_uint(&a, 2, 1);
    ab_uint(&a, 3, 2);
    ab_bytes(&a, "a\0b", 3);
    ab_uint(&a, 0600, 4);
    ab_uint(&a, 0, 8);
    ab_end(&a);
    assert_refused(fx, a.b, a.n, "NUL in path");
    /* a component longer than NAME_MAX */
    memset(path, 'n', 256);
    path[256] = '\0';
    ab_start(&a);
    ab_entry(&a, 2, path, 0600, "");
    ab_end(&a);
    assert_refused(fx, a.b, a.n, "long name");
    assert_false(exists(at(fx, "evil")));
    assert_false(exists("/etc/evil"));
}

static void test_install_refuses_corrupt(void **state)
{
    struct fixture *fx = *state;
    unsigned char *buf, digest[32], *bigger;
    size_t len;
    struct ab a;

    make_tree(fx, "src");
    pack_ok(at(fx, "src"), &buf, &len, digest);
    put_dir(at(fx, "gens"), 0700);
    /* every prefix up to the first file's data, then a few past it */
    for (size_t n = 0; n < 200; n++)
        assert_refused(fx, buf, n, "truncated");
    for (size_t n = len - 40; n < len; n++)
        assert_refused(fx, buf, n, "truncated");
    bigger = malloc(len + 1);
    assert_non_null(bigger);
    memcpy(bigger, buf, len);
    bigger[len] = 0;
    assert_refused(fx, bigger, len + 1, "trailing byte");

    /* the same path twice, as files, as directories, or mixed */
    ab_start(&a);
    ab_entry(&a, 2, "f", 0600, "1");
    ab_entry(&a, 2, "f", 0600, "2");
    ab_end(&a);
    assert_refused(fx, a.b, a.n, "duplicate file");
    ab_start(&a);
    ab_entry(&a, 1, "d", 0700, NULL);
    ab_entry(&a, 1, "d", 0700, NULL);
    ab_end(&a);
    assert_refused(fx, a.b, a.n, "duplicate dir");
    ab_start(&a);
    ab_entry(&a, 2, "d", 0600, "1");
    ab_entry(&a, 1, "d", 0700, NULL);
    ab_end(&a);
    assert_refused(fx, a.b, a.n, "file then dir");
    /* child before (or without) its directory; a file as a directory */
    ab_start(&a);
    ab_entry(&a, 2, "d/f", 0600, "1");
    ab_entry(&a, 1, "d", 0700, NULL);
    ab_end(&a);
    assert_refused(fx, a.b, a.n, "orphan");
    ab_start(&a);
    ab_entry(&a, 2, "f", 0600, "1");
    ab_entry(&a, 2, "f/g", 0600, "1");
    ab_end(&a);
    assert_refused(fx, a.b, a.n, "under a file");
    /* bad mode, type, magic, version; a size past the end */
    ab_start(&a);
    ab_entry(&a, 2, "f", 0104600, "1");
    ab_end(&a);
    assert_refused(fx, a.b, a.n, "mode");
    ab_start(&a);
    ab_entry(&a, 3, "f", 0600, NULL);
    ab_end(&a);
    assert_refused(fx, a.b, a.n, "type");
    ab_start(&a);
    a.b[0] = 'X';
    ab_end(&a);
    assert_refused(fx, a.b, a.n, "magic");
    ab_start(&a);
    a.b[4] = 2;
    ab_end(&a);
    assert_refused(fx, a.b, a.n, "version");
    ab_start(&a);
    ab_entry(&a, 2, "f", 0600, "abc");
    ab_end(&a);
    a.b[5 + 1 + 2 + 1 + 4 + 7] = 4; /* size 4, 3 bytes + end follow */
    assert_refused(fx, a.b, a.n, "size");

    /* and a good hand-made one installs */
    ab_start(&a);
    ab_entry(&a, 1, "d", 0750, NULL);
    ab_entry(&a, 2, "d/f", 0640, "abc");
    ab_end(&a);
    install_ok(at(fx, "gens"), 7, a.b, a.n, 1);
    assert_int_equal(mode_of(at(fx, "gens/gen-0000000000000007/d")), 0750);
    assert_int_equal(mode_of(at(fx, "gens/gen-0000000000000007/d/f")), 0640);
    free(bigger);
    free(buf);
}

static void test_install_keep_prunes(void **state)
{
    struct fixture *fx = *state;
    unsigned char *buf, digest[32];
    size_t len;
    char names[256];
    err_t err = {{0}};
    struct ab a;

    make_archive(fx, &buf, &len, digest);
    for (uint64_t g = 1; g <= 5; g++)
        install_ok(at(fx, "gens"), g, buf, len, 2);
    list_dir(at(fx, "gens"), names, sizeof(names));
    assert_string_equal(names, "gen-0000000000000004 gen-0000000000000005");
    /* an installed generation is never changed */
    ab_start(&a);
    ab_end(&a);
    install_ok(at(fx, "gens"), 5, a.b, a.n, 2);
    assert_same_tree(at(fx, "src"), at(fx, "gens/gen-0000000000000005"));
    /* keep 1 */
    install_ok(at(fx, "gens"), 0x10, buf, len, 1);
    list_dir(at(fx, "gens"), names, sizeof(names));
    assert_string_equal(names, "gen-0000000000000010");
    assert_int_equal(statesync_install(at(fx, "gens"), 0x11, buf, len, 0, &err),
                     -1);
    free(buf);
}

static void test_newest(void **state)
{
    struct fixture *fx = *state;
    char path[256], names[256];
    uint64_t gen = 0;
    err_t err = {{0}};

    assert_int_equal(
        statesync_newest(at(fx, "gens"), &gen, path, sizeof(path), &err), 0);
    put_dir(at(fx, "gens"), 0700);
    assert_int_equal(
        statesync_newest(at(fx, "gens"), &gen, path, sizeof(path), &err), 0);
    put_dir(at(fx, "gens/gen-0000000000000001"), 0700);
    put_dir(at(fx, "gens/gen-000000000000000a"), 0700);
    put_dir(at(fx, "gens/.tmp-000000000000000b"), 0700);
    put_text(at(fx, "gens/.tmp-000000000000000b/job_state"), "partial");
    put_dir(at(fx, "gens/gen-000000000000000B"), 0700); /* not ours */
    put_dir(at(fx, "gens/gen-00000000000000ff0"), 0700);
    put_text(at(fx, "gens/gen-00000000000000ff"), "a file");
    assert_int_equal(
        statesync_newest(at(fx, "gens"), &gen, path, sizeof(path), &err), 1);
    assert_int_equal(gen, 0xa);
    assert_string_equal(path, at(fx, "gens/gen-000000000000000a"));
    list_dir(at(fx, "gens"), names, sizeof(names));
    assert_null(strstr(names, ".tmp"));
    /* too small a buffer is an error, not a cut path */
    assert_int_equal(statesync_newest(at(fx, "gens"), &gen, path, 10, &err),
                     -1);
}

static void test_promote(void **state)
{
    struct fixture *fx = *state;
    unsigned char *buf, digest[32];
    size_t len;
    err_t err = {{0}};
    char names[256];

    make_tree(fx, "src");
    pack_ok(at(fx, "src"), &buf, &len, digest);
    install_ok(at(fx, "gens"), 1, buf, len, 2);
    free(buf);

    /* no state directory yet: none kept */
    if (statesync_promote(at(fx, "gens/gen-0000000000000001"),
                          at(fx, "var/slurm/state"), &err) < 0)
        fail_msg("promote: %s", err.text);
    assert_same_tree(at(fx, "src"), at(fx, "var/slurm/state"));
    assert_int_equal(mode_of(at(fx, "var/slurm/state")), 0700);
    list_dir(at(fx, "var/slurm"), names, sizeof(names));
    assert_string_equal(names, "state");

    /* a state directory that exists becomes .prev */
    put_dir(at(fx, "src2"), 0700);
    put_text(at(fx, "src2/job_state"), "two");
    pack_ok(at(fx, "src2"), &buf, &len, digest);
    install_ok(at(fx, "gens"), 2, buf, len, 2);
    free(buf);
    put_text(at(fx, "var/slurm/state/written_by_slurmctld"), "x");
    if (statesync_promote(at(fx, "gens/gen-0000000000000002"),
                          at(fx, "var/slurm/state"), &err) < 0)
        fail_msg("promote: %s", err.text);
    assert_same_tree(at(fx, "src2"), at(fx, "var/slurm/state"));
    assert_true(exists(at(fx, "var/slurm/state.prev/written_by_slurmctld")));
    assert_true(exists(at(fx, "var/slurm/state.prev/hash.3/job.1003/script")));

    /* again (a trailing slash is fine): the older .prev is replaced */
    if (statesync_promote(at(fx, "gens/gen-0000000000000001"),
                          at(fx, "var/slurm/state/"), &err) < 0)
        fail_msg("promote: %s", err.text);
    assert_same_tree(at(fx, "src"), at(fx, "var/slurm/state"));
    assert_same_tree(at(fx, "src2"), at(fx, "var/slurm/state.prev"));
    list_dir(at(fx, "var/slurm"), names, sizeof(names));
    assert_string_equal(names, "state state.prev");

    /* a missing generation: state untouched */
    assert_int_equal(statesync_promote(at(fx, "gens/gen-0000000000000009"),
                                       at(fx, "var/slurm/state"), &err),
                     -1);
    assert_same_tree(at(fx, "src"), at(fx, "var/slurm/state"));
    list_dir(at(fx, "var/slurm"), names, sizeof(names));
    assert_string_equal(names, "state state.prev");
}

/* Slurm's job_state */

static void copy_fixture(const char *name, const char *to)
{
    size_t len;
    unsigned char *data = slurp(name, &len);

    put_file(to, data, len, 0600);
    free(data);
}

static int job_seq(struct fixture *fx, uint32_t *seq, err_t *err)
{
    return statesync_job_id_sequence(at(fx, "state"), seq, err);
}

static void test_job_id_sequence_fixture(void **state)
{
    struct fixture *fx = *state;
    uint32_t seq = 0;
    err_t err = {{0}};

    put_dir(at(fx, "state"), 0700);
    assert_int_equal(job_seq(fx, &seq, &err), 0);
    copy_fixture(FIXTURES "/job_state.22.05", at(fx, "state/job_state"));
    if (job_seq(fx, &seq, &err) != 1)
        fail_msg("%s", err.text);
    /* FirstJobId=1000, jobs 1000..1003 ran: the next id is 1004 */
    assert_int_equal(seq, 1004);
    copy_fixture(FIXTURES "/job_state.22.05.nojobs", at(fx, "state/job_state"));
    assert_int_equal(job_seq(fx, &seq, &err), 1);
    assert_int_equal(seq, 0);
}

static void test_job_id_sequence_old(void **state)
{
    struct fixture *fx = *state;
    uint32_t seq = 0;
    err_t err = {{0}};

    put_dir(at(fx, "state"), 0700);
    copy_fixture(FIXTURES "/job_state.22.05", at(fx, "state/job_state.old"));
    assert_int_equal(job_seq(fx, &seq, &err), 1);
    assert_int_equal(seq, 1004);
    /* an empty job_state is passed over as slurmctld does */
    seq = 0;
    put_file(at(fx, "state/job_state"), "", 0, 0600);
    assert_int_equal(job_seq(fx, &seq, &err), 1);
    assert_int_equal(seq, 1004);
    /* a present job_state wins */
    copy_fixture(FIXTURES "/job_state.22.05.nojobs", at(fx, "state/job_state"));
    assert_int_equal(job_seq(fx, &seq, &err), 1);
    assert_int_equal(seq, 0);
}

static void test_job_id_sequence_corrupt(void **state)
{
    struct fixture *fx = *state;
    unsigned char *data;
    size_t len;
    uint32_t seq = 77;
    err_t err = {{0}};

    put_dir(at(fx, "state"), 0700);
    data = slurp(FIXTURES "/job_state.22.05", &len);
    /* truncated anywhere within the header (35 bytes) */
    for (size_t n = 1; n < 35; n++) {
        put_file(at(fx, "state/job_state"), data, n, 0600);
        err.text[0] = '\0';
        assert_int_equal(job_seq(fx, &seq, &err), -1);
        assert_non_null(strstr(err.text, "job_state"));
    }
    put_file(at(fx, "state/job_state"), data, 35, 0600);
    assert_int_equal(job_seq(fx, &seq, &err), 1);
    assert_int_equal(seq, 1004);
    /* a corrupt job_state is not passed over for job_state.old */
    copy_fixture(FIXTURES "/job_state.22.05", at(fx, "state/job_state.old"));
    data[3] = 18; /* string length */
    put_file(at(fx, "state/job_state"), data, len, 0600);
    assert_int_equal(job_seq(fx, &seq, &err), -1);
    data[3] = 17;
    data[4] = 'X'; /* version string */
    put_file(at(fx, "state/job_state"), data, len, 0600);
    assert_int_equal(job_seq(fx, &seq, &err), -1);
    data[4] = 'P';
    data[20] = '!'; /* its NUL */
    put_file(at(fx, "state/job_state"), data, len, 0600);
    assert_int_equal(job_seq(fx, &seq, &err), -1);
    free(data);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    // clang-format off
    const struct CMUnitTest tests[] = {
        T(test_pack_install_round_trip),
        T(test_pack_missing_dir_fails),
        T(test_pack_empty_dir),
        T(test_scan_signature),
        T(test_rx_in_order),
        T(test_rx_digest_mismatch),
        T(test_rx_refusals_keep_state),
        T(test_rx_newer_generation_restarts),
        T(test_install_refuses_bad_paths),
        T(test_install_refuses_corrupt),
        T(test_install_keep_prunes),
        T(test_newest),
        T(test_promote),
        T(test_job_id_sequence_fixture),
        T(test_job_id_sequence_old),
        T(test_job_id_sequence_corrupt),
    };
    // clang-format on

    if (sodium_init() < 0)
        return 1;
    return cmocka_run_group_tests_name("statesync", tests, NULL, NULL);
}
