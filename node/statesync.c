/* statesync.c - slurmctld's state directory, shipped between hosts
 *
 * The tree walk opens every directory relative to its parent with
 * O_NOFOLLOW, so a symlink in the state directory is never followed, and
 * visits names in byte order, so the same tree packs to the same bytes.
 * An archive is checked whole before anything is written; the unpacking
 * then writes only into a directory it has just created, where no symlink
 * can exist, and removes that directory on any failure.  Renames are the
 * only steps visible to a reader: a generation or a state directory is
 * there complete and fsync'd, or not there.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "node/log.h"
#include "node/statesync.h"
#include "store/file.h"

enum { ARCHIVE_VERSION = 1 };

enum entry_type {
    ENTRY_END = 0,
    ENTRY_DIR = 1,
    ENTRY_FILE = 2,
};

/* Slurm's version string at the head of job_state, NUL included */
#define JOB_STATE_MAGIC "PROTOCOL_VERSION"

/* Big-endian encoding */

static void put16(unsigned char *p, uint16_t v)
{
    p[0] = v >> 8;
    p[1] = v;
}

static void put32(unsigned char *p, uint32_t v)
{
    put16(p, v >> 16);
    put16(p + 2, v);
}

static void put64(unsigned char *p, uint64_t v)
{
    put32(p, v >> 32);
    put32(p + 4, v);
}

/* Bounds-checked reading: each get returns -1 when the bytes run out. */
struct cursor {
    const unsigned char *p;
    size_t left;
};

static int get_bytes(struct cursor *c, size_t n, const unsigned char **out)
{
    if (c->left < n)
        return -1;
    *out = c->p;
    c->p += n;
    c->left -= n;
    return 0;
}

static int get_uint(struct cursor *c, size_t n, uint64_t *v)
{
    const unsigned char *p;

    if (get_bytes(c, n, &p) < 0)
        return -1;
    *v = 0;
    for (size_t i = 0; i < n; i++)
        *v = (*v << 8) | p[i];
    return 0;
}

/* A growing archive, never larger than STATESYNC_MAX_ARCHIVE. */
struct abuf {
    unsigned char *p;
    size_t len, cap;
};

static int abuf_reserve(struct abuf *b, size_t n, err_t *err)
{
    size_t cap;
    unsigned char *p;

    if (n > STATESYNC_MAX_ARCHIVE - b->len) {
        errno = EFBIG;
        return errprintf(err, "state archive would exceed %" PRIu64 " bytes",
                         (uint64_t)STATESYNC_MAX_ARCHIVE);
    }
    if (b->len + n <= b->cap)
        return 0;
    cap = b->cap ? b->cap : 65536;
    while (cap < b->len + n)
        cap *= 2;
    if (cap > STATESYNC_MAX_ARCHIVE)
        cap = STATESYNC_MAX_ARCHIVE;
    p = realloc(b->p, cap);
    if (!p)
        return errprintf_errno(err, "cannot grow the state archive");
    b->p = p;
    b->cap = cap;
    return 0;
}

/* Tree walk: directories and regular files, parents first */

struct walk {
    /* called for each directory and regular file; name is under parent */
    int (*visit)(struct walk *w, int parent, const char *name,
                 const struct stat *st, err_t *err);
    void *ctx;
    const char *root;
    char rel[STATESYNC_MAX_PATH + 1]; /* path of the entry below root */
    size_t rellen;
};

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names in d, without "." and "..", as a malloc'd array. */
static char **read_names(DIR *d, size_t *np)
{
    char **names = NULL, **grown;
    size_t n = 0, cap = 0;
    struct dirent *de;

    for (;;) {
        errno = 0;
        if (!(de = readdir(d)))
            break;
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 32;
            if (!(grown = realloc(names, cap * sizeof(*names))))
                goto fail;
            names = grown;
        }
        if (!(names[n] = strdup(de->d_name)))
            goto fail;
        n++;
    }
    if (errno)
        goto fail;
    if (n)
        qsort(names, n, sizeof(*names), cmp_names);
    *np = n;
    return names ? names : calloc(1, sizeof(*names));
fail:
    while (n > 0)
        free(names[--n]);
    free(names);
    return NULL;
}

/* Walk the directory open as fd (taken over), whose path is w->rel. */
static int walk_dir(struct walk *w, int fd, err_t *err)
{
    size_t base = w->rellen, n = 0;
    char **names = NULL;
    struct stat st;
    DIR *d;
    int rc = -1;

    if (!(d = fdopendir(fd))) {
        close(fd);
        return errprintf_errno(err, "cannot read %s/%s", w->root, w->rel);
    }
    if (!(names = read_names(d, &n))) {
        errprintf_errno(err, "cannot read %s/%s", w->root, w->rel);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        int len = snprintf(w->rel + base, sizeof(w->rel) - base, "%s%s",
                           base ? "/" : "", names[i]);

        if (len < 0 || (size_t)len >= sizeof(w->rel) - base) {
            errno = ENAMETOOLONG;
            errprintf(err, "path too long under %s: %s/%s", w->root, w->rel,
                      names[i]);
            goto out;
        }
        w->rellen = base + len;
        if (fstatat(dirfd(d), names[i], &st, AT_SYMLINK_NOFOLLOW) < 0) {
            if (errno == ENOENT) /* renamed away meanwhile */
                continue;
            errprintf_errno(err, "cannot stat %s/%s", w->root, w->rel);
            goto out;
        }
        if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
            continue;
        if (w->visit(w, dirfd(d), names[i], &st, err) < 0)
            goto out;
        if (S_ISDIR(st.st_mode)) {
            int sub = openat(dirfd(d), names[i],
                             O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

            if (sub < 0 && errno == ENOENT)
                continue;
            if (sub < 0) {
                errprintf_errno(err, "cannot open %s/%s", w->root, w->rel);
                goto out;
            }
            if (walk_dir(w, sub, err) < 0)
                goto out;
        }
    }
    rc = 0;
out:
    w->rellen = base;
    w->rel[base] = '\0';
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    closedir(d);
    return rc;
}

static int walk_tree(struct walk *w, const char *root, err_t *err)
{
    int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd < 0)
        return errprintf_errno(err, "cannot open %s", root);
    w->root = root;
    w->rel[0] = '\0';
    w->rellen = 0;
    return walk_dir(w, fd, err);
}

/* Signature */

static int scan_visit(struct walk *w, int parent, const char *name,
                      const struct stat *st, err_t *err)
{
    unsigned char rec[1 + 2 + 4 + 8 + 8 + 4 + 8];

    (void)parent;
    (void)name;
    (void)err;
    rec[0] = S_ISDIR(st->st_mode) ? ENTRY_DIR : ENTRY_FILE;
    put16(rec + 1, w->rellen);
    put32(rec + 3, st->st_mode & 07777);
    put64(rec + 7, st->st_size);
    put64(rec + 15, st->st_mtim.tv_sec);
    put32(rec + 23, st->st_mtim.tv_nsec);
    put64(rec + 27, st->st_ino);
    crypto_generichash_update(w->ctx, rec, sizeof(rec));
    crypto_generichash_update(w->ctx, (const unsigned char *)w->rel, w->rellen);
    return 0;
}

int statesync_scan(const char *dir, unsigned char sig[32], err_t *err)
{
    crypto_generichash_state h;
    struct walk w = {.visit = scan_visit, .ctx = &h};

    if (sodium_init() < 0)
        return errprintf(err, "cannot initialise libsodium");
    crypto_generichash_init(&h, NULL, 0, 32);
    if (walk_tree(&w, dir, err) < 0)
        return -1;
    crypto_generichash_final(&h, sig, 32);
    return 0;
}

/* Packing */

/* Append an entry's type, path and mode. */
static int put_head(struct abuf *b, enum entry_type type, const char *path,
                    size_t pathlen, mode_t mode, err_t *err)
{
    unsigned char *p;

    if (abuf_reserve(b, 1 + 2 + pathlen + 4, err) < 0)
        return -1;
    p = b->p + b->len;
    p[0] = type;
    put16(p + 1, pathlen);
    memcpy(p + 3, path, pathlen);
    put32(p + 3 + pathlen, mode & 0777);
    b->len += 1 + 2 + pathlen + 4;
    return 0;
}

/* Append the file name (under parent) with its content as read now. */
static int pack_file(struct walk *w, struct abuf *b, int parent,
                     const char *name, err_t *err)
{
    struct stat st;
    size_t start = b->len, sizepos;
    ssize_t n;
    int fd, rc = -1;

    /* O_NONBLOCK: a fifo swapped in since the stat must not block us */
    fd = openat(parent, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0 && (errno == ENOENT || errno == ELOOP))
        return 0; /* gone, or replaced by a symlink */
    if (fd < 0)
        return errprintf_errno(err, "cannot open %s/%s", w->root, w->rel);
    if (fstat(fd, &st) < 0) {
        errprintf_errno(err, "cannot stat %s/%s", w->root, w->rel);
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = 0;
        goto out;
    }
    if (put_head(b, ENTRY_FILE, w->rel, w->rellen, st.st_mode, err) < 0 ||
        abuf_reserve(b, 8 + (size_t)st.st_size + 1, err) < 0)
        goto fail;
    sizepos = b->len;
    b->len += 8;
    for (;;) {
        /* the file may grow while we read: read to its end */
        if (abuf_reserve(b, 1, err) < 0)
            goto fail;
        n = read(fd, b->p + b->len, b->cap - b->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            errprintf_errno(err, "cannot read %s/%s", w->root, w->rel);
            goto fail;
        }
        if (n == 0)
            break;
        b->len += n;
    }
    put64(b->p + sizepos, b->len - sizepos - 8);
    rc = 0;
    goto out;
fail:
    b->len = start;
out:
    close(fd);
    return rc;
}

static int pack_visit(struct walk *w, int parent, const char *name,
                      const struct stat *st, err_t *err)
{
    if (S_ISDIR(st->st_mode))
        return put_head(w->ctx, ENTRY_DIR, w->rel, w->rellen, st->st_mode, err);
    return pack_file(w, w->ctx, parent, name, err);
}

int statesync_pack(const char *dir, unsigned char **buf, size_t *len,
                   unsigned char digest[32], err_t *err)
{
    struct abuf b = {0};
    struct walk w = {.visit = pack_visit, .ctx = &b};

    if (sodium_init() < 0)
        return errprintf(err, "cannot initialise libsodium");
    if (abuf_reserve(&b, 5, err) < 0)
        return -1;
    memcpy(b.p, "PDSS", 4);
    b.p[4] = ARCHIVE_VERSION;
    b.len = 5;
    if (walk_tree(&w, dir, err) < 0 || abuf_reserve(&b, 1, err) < 0) {
        free(b.p);
        return -1;
    }
    b.p[b.len++] = ENTRY_END;
    crypto_generichash(digest, 32, b.p, b.len, NULL, 0);
    *buf = b.p;
    *len = b.len;
    return 0;
}

/* Receiving */

void statesync_rx_init(struct statesync_rx *rx)
{
    memset(rx, 0, sizeof(*rx));
}

void statesync_rx_reset(struct statesync_rx *rx)
{
    free(rx->buf);
    statesync_rx_init(rx);
}

int statesync_rx_chunk(struct statesync_rx *rx, uint64_t gen, uint64_t total,
                       uint64_t offset, const unsigned char digest[32],
                       const unsigned char *data, size_t len, err_t *err)
{
    unsigned char h[32];
    unsigned char *p;

    errno = EINVAL;
    if (gen == 0)
        return errprintf(err, "state generation 0 is not valid");
    if (total == 0 || total > STATESYNC_MAX_ARCHIVE)
        return errprintf(err, "state generation %" PRIu64 ": bad size %" PRIu64,
                         gen, total);
    if (len == 0 || offset > total || len > total - offset)
        return errprintf(err,
                         "state generation %" PRIu64 ": chunk of %zu "
                         "bytes at %" PRIu64 " outside %" PRIu64,
                         gen, len, offset, total);
    if (gen < rx->gen)
        return errprintf(err,
                         "state generation %" PRIu64 " is older than %" PRIu64,
                         gen, rx->gen);
    if (gen > rx->gen || !rx->buf) {
        if (offset != 0)
            return errprintf(err,
                             "state generation %" PRIu64 ": gap, first "
                             "chunk at %" PRIu64,
                             gen, offset);
        if (!(p = malloc(total)))
            return errprintf_errno(err, "state generation %" PRIu64, gen);
        free(rx->buf);
        rx->buf = p;
        rx->gen = gen;
        rx->total = total;
        rx->got = 0;
        memcpy(rx->digest, digest, 32);
    } else {
        if (total != rx->total || memcmp(digest, rx->digest, 32))
            return errprintf(err,
                             "state generation %" PRIu64 ": size or "
                             "digest changed",
                             gen);
        if (offset < rx->got)
            return errprintf(err,
                             "state generation %" PRIu64 ": overlap, "
                             "chunk at %" PRIu64 ", expected %" PRIu64,
                             gen, offset, rx->got);
        if (offset > rx->got)
            return errprintf(err,
                             "state generation %" PRIu64 ": gap, chunk "
                             "at %" PRIu64 ", expected %" PRIu64,
                             gen, offset, rx->got);
    }
    memcpy(rx->buf + offset, data, len);
    rx->got += len;
    if (rx->got < rx->total)
        return 0;
    if (sodium_init() < 0)
        return errprintf(err, "cannot initialise libsodium");
    crypto_generichash(h, sizeof(h), rx->buf, rx->total, NULL, 0);
    if (memcmp(h, rx->digest, sizeof(h))) {
        free(rx->buf);
        rx->buf = NULL;
        rx->total = rx->got = 0;
        errno = EBADMSG;
        return errprintf(err, "state generation %" PRIu64 ": digest mismatch",
                         gen);
    }
    return 1;
}

/* Archive parsing */

struct entry {
    enum entry_type type;
    const unsigned char *path;
    size_t pathlen;
    uint32_t mode;
    const unsigned char *data;
    size_t size;
};

typedef int (*entry_fn)(const struct entry *e, void *ctx, err_t *err);

/* Relative, no empty, "." or ".." component, no NUL. */
static bool path_ok(const unsigned char *p, size_t len)
{
    size_t start = 0;

    if (len == 0 || len > STATESYNC_MAX_PATH || memchr(p, '\0', len))
        return false;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && p[i] != '/')
            continue;
        if (i == start || i - start > NAME_MAX)
            return false;
        if (p[start] == '.' &&
            (i - start == 1 || (i - start == 2 && p[start + 1] == '.')))
            return false;
        start = i + 1;
    }
    return true;
}

/* Check the whole archive, calling fn (if not NULL) for each entry. */
static int parse_archive(const unsigned char *buf, size_t len, entry_fn fn,
                         void *ctx, err_t *err)
{
    struct cursor c = {buf, len};
    const unsigned char *magic;
    const char *why = "truncated";
    struct entry e;
    uint64_t v;

    if (get_bytes(&c, 4, &magic) < 0 || memcmp(magic, "PDSS", 4)) {
        why = "bad magic";
        goto malformed;
    }
    if (get_uint(&c, 1, &v) < 0 || v != ARCHIVE_VERSION) {
        why = "unknown version";
        goto malformed;
    }
    for (;;) {
        why = "truncated";
        if (get_uint(&c, 1, &v) < 0)
            goto malformed;
        if (v == ENTRY_END)
            break;
        if (v != ENTRY_DIR && v != ENTRY_FILE) {
            why = "unknown entry type";
            goto malformed;
        }
        e.type = v;
        if (get_uint(&c, 2, &v) < 0)
            goto malformed;
        e.pathlen = v;
        if (get_bytes(&c, e.pathlen, &e.path) < 0 || get_uint(&c, 4, &v) < 0)
            goto malformed;
        e.mode = v;
        if (!path_ok(e.path, e.pathlen)) {
            why = "bad path";
            goto malformed;
        }
        if (e.mode & ~0777u) {
            why = "bad mode";
            goto malformed;
        }
        e.data = NULL;
        e.size = 0;
        if (e.type == ENTRY_FILE) {
            if (get_uint(&c, 8, &v) < 0 || v > c.left)
                goto malformed;
            e.size = v;
            get_bytes(&c, e.size, &e.data);
        }
        if (fn && fn(&e, ctx, err) < 0)
            return -1;
    }
    if (c.left) {
        why = "bytes after the end";
        goto malformed;
    }
    return 0;
malformed:
    errno = EINVAL;
    return errprintf(err, "corrupt state archive: %s at byte %zu", why,
                     (size_t)(c.p - buf));
}

/* Removing trees */

/* Remove name under parent and everything below it, following no symlink.
 * A missing name is fine.
 */
static int remove_at(int parent, const char *name)
{
    struct dirent *de;
    struct stat st;
    DIR *d;
    int fd, rc = 0;

    if (fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(st.st_mode))
        return unlinkat(parent, name, 0) < 0 && errno != ENOENT ? -1 : 0;
    fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -1;
    if (!(d = fdopendir(fd))) {
        close(fd);
        return -1;
    }
    while (rc == 0 && (de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            rc = remove_at(dirfd(d), de->d_name);
    closedir(d);
    if (rc == 0 && unlinkat(parent, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
        rc = -1;
    return rc;
}

static int fsync_dir(int parent, const char *path)
{
    int fd = openat(parent, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc;

    if (fd < 0)
        return -1;
    rc = fsync(fd);
    close(fd);
    return rc;
}

/* Unpacking */

struct dir_mode {
    const unsigned char *path;
    size_t pathlen;
    uint32_t mode;
};

struct unpack {
    int rootfd;
    const char *root;
    struct dir_mode *dirs;
    size_t ndirs, cap;
};

static int write_all(int fd, const unsigned char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        p += n;
        len -= n;
    }
    return 0;
}

static int unpack_entry(const struct entry *e, void *ctx, err_t *err)
{
    struct unpack *u = ctx;
    char path[STATESYNC_MAX_PATH + 1];
    struct dir_mode *grown;
    int fd;

    memcpy(path, e->path, e->pathlen);
    path[e->pathlen] = '\0';
    if (e->type == ENTRY_DIR) {
        if (u->ndirs == u->cap) {
            u->cap = u->cap ? u->cap * 2 : 64;
            grown = realloc(u->dirs, u->cap * sizeof(*u->dirs));
            if (!grown)
                return errprintf_errno(err, "cannot unpack %s", path);
            u->dirs = grown;
        }
        /* writable until everything below it is in place */
        if (mkdirat(u->rootfd, path, 0700) < 0)
            goto fs_error;
        u->dirs[u->ndirs++] = (struct dir_mode){e->path, e->pathlen, e->mode};
        return 0;
    }
    fd = openat(u->rootfd, path,
                O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        goto fs_error;
    if (write_all(fd, e->data, e->size) < 0 || fchmod(fd, e->mode) < 0 ||
        fsync(fd) < 0) {
        errprintf_errno(err, "cannot write %s/%s", u->root, path);
        close(fd);
        return -1;
    }
    if (close(fd) < 0)
        return errprintf_errno(err, "cannot write %s/%s", u->root, path);
    return 0;
fs_error:
    if (errno == EEXIST) {
        errno = EINVAL;
        return errprintf(err, "corrupt state archive: %s twice", path);
    }
    if (errno == ENOENT || errno == ENOTDIR) {
        errno = EINVAL;
        return errprintf(err,
                         "corrupt state archive: %s before its "
                         "directory",
                         path);
    }
    return errprintf_errno(err, "cannot create %s/%s", u->root, path);
}

/* Unpack a checked archive into dir, made afresh with mode 0700, every
 * file and directory fsync'd.  On failure dir is removed.
 */
static int unpack_tree(const char *dir, const unsigned char *buf, size_t len,
                       err_t *err)
{
    struct unpack u = {.rootfd = -1, .root = dir};
    char path[STATESYNC_MAX_PATH + 1];
    int rc = -1;

    if (remove_at(AT_FDCWD, dir) < 0)
        return errprintf_errno(err, "cannot remove the leftover %s", dir);
    if (mkdir(dir, 0700) < 0 || chmod(dir, 0700) < 0)
        return errprintf_errno(err, "cannot create %s", dir);
    u.rootfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (u.rootfd < 0) {
        errprintf_errno(err, "cannot open %s", dir);
        goto out;
    }
    if (parse_archive(buf, len, unpack_entry, &u, err) < 0)
        goto out;
    /* children before parents, so a read-only parent comes last */
    for (size_t i = u.ndirs; i-- > 0;) {
        memcpy(path, u.dirs[i].path, u.dirs[i].pathlen);
        path[u.dirs[i].pathlen] = '\0';
        if (fchmodat(u.rootfd, path, u.dirs[i].mode, 0) < 0 ||
            fsync_dir(u.rootfd, path) < 0) {
            errprintf_errno(err, "cannot finish %s/%s", dir, path);
            goto out;
        }
    }
    if (fsync(u.rootfd) < 0) {
        errprintf_errno(err, "cannot fsync %s", dir);
        goto out;
    }
    rc = 0;
out:
    if (u.rootfd >= 0)
        close(u.rootfd);
    free(u.dirs);
    if (rc < 0) {
        int saved = errno;

        remove_at(AT_FDCWD, dir);
        errno = saved;
    }
    return rc;
}

/* Installed generations */

/* gen-<16 lowercase hex digits> */
static bool parse_gen_name(const char *name, uint64_t *gen)
{
    uint64_t v = 0;

    if (strncmp(name, "gen-", 4) || strlen(name) != 4 + 16)
        return false;
    for (const char *p = name + 4; *p; p++) {
        int d;

        if (*p >= '0' && *p <= '9')
            d = *p - '0';
        else if (*p >= 'a' && *p <= 'f')
            d = *p - 'a' + 10;
        else
            return false;
        v = (v << 4) | d;
    }
    *gen = v;
    return true;
}

static int gen_path(char *out, size_t cap, const char *gens_dir,
                    const char *prefix, uint64_t gen, err_t *err)
{
    int n = snprintf(out, cap, "%s/%s%016" PRIx64, gens_dir, prefix, gen);

    if (n < 0 || (size_t)n >= cap) {
        errno = ENAMETOOLONG;
        return errprintf(err, "path too long: %s", gens_dir);
    }
    return 0;
}

static int cmp_gen_desc(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? 1 : x > y ? -1 : 0;
}

/* Remove generations but the newest keep; failures are logged. */
static void prune(const char *gens_dir, int keep)
{
    uint64_t *gens = NULL, *grown, gen;
    size_t n = 0, cap = 0;
    struct dirent *de;
    char name[32];
    DIR *d;

    if (!(d = opendir(gens_dir))) {
        log_warn("cannot prune state generations in %s", gens_dir);
        return;
    }
    while ((de = readdir(d))) {
        if (!parse_gen_name(de->d_name, &gen))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            if (!(grown = realloc(gens, cap * sizeof(*gens)))) {
                log_warn("cannot prune state generations in %s", gens_dir);
                goto out;
            }
            gens = grown;
        }
        gens[n++] = gen;
    }
    if (n)
        qsort(gens, n, sizeof(*gens), cmp_gen_desc);
    for (size_t i = keep; i < n; i++) {
        snprintf(name, sizeof(name), "gen-%016" PRIx64, gens[i]);
        if (remove_at(dirfd(d), name) < 0)
            log_warn("cannot remove %s/%s", gens_dir, name);
    }
out:
    free(gens);
    closedir(d);
}

int statesync_install(const char *gens_dir, uint64_t gen,
                      const unsigned char *buf, size_t len, int keep,
                      err_t *err)
{
    char tmp[PATH_MAX], final[PATH_MAX];
    struct stat st;

    if (keep < 1) {
        errno = EINVAL;
        return errprintf(err, "must keep at least one state generation");
    }
    if (parse_archive(buf, len, NULL, NULL, err) < 0)
        return -1;
    if (gen_path(tmp, sizeof(tmp), gens_dir, ".tmp-", gen, err) < 0 ||
        gen_path(final, sizeof(final), gens_dir, "gen-", gen, err) < 0)
        return -1;
    if (file_mkdir_p(gens_dir, 0700, err) < 0)
        return -1;
    if (lstat(final, &st) == 0)
        return 0; /* installed already, and never changed */
    if (errno != ENOENT)
        return errprintf_errno(err, "cannot stat %s", final);
    if (unpack_tree(tmp, buf, len, err) < 0)
        return -1;
    if (rename(tmp, final) < 0) {
        errprintf_errno(err, "cannot rename %s to %s", tmp, final);
        remove_at(AT_FDCWD, tmp);
        return -1;
    }
    if (fsync_dir(AT_FDCWD, gens_dir) < 0)
        return errprintf_errno(err, "cannot fsync %s", gens_dir);
    prune(gens_dir, keep);
    return 0;
}

int statesync_newest(const char *gens_dir, uint64_t *gen, char *path,
                     size_t cap, err_t *err)
{
    struct dirent *de;
    struct stat st;
    uint64_t g, best = 0;
    bool found = false;
    DIR *d;

    if (!(d = opendir(gens_dir))) {
        if (errno == ENOENT)
            return 0;
        return errprintf_errno(err, "cannot read %s", gens_dir);
    }
    for (;;) {
        errno = 0;
        if (!(de = readdir(d)))
            break;
        if (!strncmp(de->d_name, ".tmp-", 5)) {
            if (remove_at(dirfd(d), de->d_name) < 0)
                log_warn("cannot remove %s/%s", gens_dir, de->d_name);
            continue;
        }
        if (!parse_gen_name(de->d_name, &g) || (found && g <= best))
            continue;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
            !S_ISDIR(st.st_mode))
            continue;
        best = g;
        found = true;
    }
    if (errno) {
        errprintf_errno(err, "cannot read %s", gens_dir);
        closedir(d);
        return -1;
    }
    closedir(d);
    if (!found)
        return 0;
    if (gen_path(path, cap, gens_dir, "gen-", best, err) < 0)
        return -1;
    *gen = best;
    return 1;
}

/* Promotion */

/* state_dir without trailing slashes into dir, its siblings .new and
 * .prev, and its parent directory.
 */
static int state_paths(const char *state_dir, char dir[PATH_MAX],
                       char next[PATH_MAX], char prev[PATH_MAX],
                       char parent[PATH_MAX], err_t *err)
{
    size_t len = strlen(state_dir);
    char *slash;

    while (len > 1 && state_dir[len - 1] == '/')
        len--;
    if (len == 0 || (len == 1 && state_dir[0] == '/')) {
        errno = EINVAL;
        return errprintf(err, "bad state directory '%s'", state_dir);
    }
    if (len + sizeof(".prev") > PATH_MAX) {
        errno = ENAMETOOLONG;
        return errprintf(err, "path too long: %s", state_dir);
    }
    memcpy(dir, state_dir, len);
    dir[len] = '\0';
    snprintf(next, PATH_MAX, "%s.new", dir);
    snprintf(prev, PATH_MAX, "%s.prev", dir);
    strcpy(parent, dir);
    if (!(slash = strrchr(parent, '/')))
        strcpy(parent, ".");
    else if (slash == parent)
        parent[1] = '\0';
    else
        *slash = '\0';
    return 0;
}

int statesync_promote(const char *gen_path, const char *state_dir, err_t *err)
{
    char dir[PATH_MAX], next[PATH_MAX], prev[PATH_MAX], parent[PATH_MAX];
    unsigned char digest[32];
    unsigned char *buf = NULL;
    struct stat st;
    bool moved = false;
    size_t len;
    int rc = -1;

    if (state_paths(state_dir, dir, next, prev, parent, err) < 0 ||
        statesync_pack(gen_path, &buf, &len, digest, err) < 0)
        return -1;
    if (file_mkdir_p(parent, 0755, err) < 0 ||
        unpack_tree(next, buf, len, err) < 0)
        goto out;
    if (lstat(dir, &st) == 0) {
        if (remove_at(AT_FDCWD, prev) < 0) {
            errprintf_errno(err, "cannot remove %s", prev);
            goto fail;
        }
        if (rename(dir, prev) < 0) {
            errprintf_errno(err, "cannot rename %s to %s", dir, prev);
            goto fail;
        }
        moved = true;
    } else if (errno != ENOENT) {
        errprintf_errno(err, "cannot stat %s", dir);
        goto fail;
    }
    if (rename(next, dir) < 0) {
        errprintf_errno(err, "cannot rename %s to %s", next, dir);
        if (moved && rename(prev, dir) < 0)
            log_warn("cannot move %s back to %s", prev, dir);
        goto fail;
    }
    if (fsync_dir(AT_FDCWD, parent) < 0) {
        errprintf_errno(err, "cannot fsync %s", parent);
        goto out;
    }
    rc = 0;
    goto out;
fail:
    remove_at(AT_FDCWD, next);
out:
    free(buf);
    return rc;
}

/* Slurm's job_state header */

/* The first bytes of path into buf: 1, 0 if it does not exist, or -1. */
static int read_head(const char *path, unsigned char *buf, size_t cap,
                     size_t *got, err_t *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    size_t done = 0;

    if (fd < 0 && errno == ENOENT)
        return 0;
    if (fd < 0)
        return errprintf_errno(err, "cannot open %s", path);
    while (done < cap) {
        ssize_t n = read(fd, buf + done, cap - done);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            errprintf_errno(err, "cannot read %s", path);
            close(fd);
            return -1;
        }
        if (n == 0)
            break;
        done += n;
    }
    close(fd);
    *got = done;
    return 1;
}

static int parse_job_state(const char *path, const unsigned char *buf,
                           size_t len, uint32_t *seq, err_t *err)
{
    struct cursor c = {buf, len};
    const unsigned char *magic;
    uint64_t v;

    if (get_uint(&c, 4, &v) < 0 || v != sizeof(JOB_STATE_MAGIC) ||
        get_bytes(&c, v, &magic) < 0 ||
        memcmp(magic, JOB_STATE_MAGIC, sizeof(JOB_STATE_MAGIC)))
        goto malformed;
    /* protocol version, time of the save */
    if (get_uint(&c, 2, &v) < 0 || get_uint(&c, 8, &v) < 0 ||
        get_uint(&c, 4, &v) < 0)
        goto malformed;
    *seq = v;
    return 1;
malformed:
    errno = EINVAL;
    return errprintf(err, "%s: not a Slurm job_state header", path);
}

int statesync_job_id_sequence(const char *state_dir, uint32_t *seq, err_t *err)
{
    static const char *const names[] = {"job_state", "job_state.old"};
    unsigned char head[64];
    char path[PATH_MAX];
    size_t got = 0;

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        int r;

        if (snprintf(path, sizeof(path), "%s/%s", state_dir, names[i]) >=
            (int)sizeof(path)) {
            errno = ENAMETOOLONG;
            return errprintf(err, "path too long: %s", state_dir);
        }
        r = read_head(path, head, sizeof(head), &got, err);
        if (r < 0)
            return -1;
        /* slurmctld falls back when it cannot map the file: missing or
         * empty
         */
        if (r == 0 || got == 0)
            continue;
        return parse_job_state(path, head, got, seq, err);
    }
    return 0;
}
