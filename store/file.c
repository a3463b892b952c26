/* file.c - careful file helpers: atomic replace, bounded read, hashing */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "store/file.h"

/* mkdir with exactly mode (not mode & ~umask) for a directory we create;
 * an existing one is left alone.
 */
static int make_dir(const char *dir, mode_t mode, err_t *err)
{
    struct stat st;

    if (mkdir(dir, mode) < 0) {
        if (errno == EEXIST && stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
            return 0;
        if (errno == EEXIST)
            return errprintf(err, "%s exists and is not a directory", dir);
        return errprintf_errno(err, "cannot create directory %s", dir);
    }
    if (chmod(dir, mode) < 0)
        return errprintf_errno(err, "cannot chmod %s", dir);
    return 0;
}

int file_mkdir_p(const char *dir, mode_t mode, err_t *err)
{
    char buf[PATH_MAX];
    size_t len = strlen(dir);

    if (len == 0 || len >= sizeof(buf))
        return errprintf(err, "bad directory name '%s'", dir);
    memcpy(buf, dir, len + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (make_dir(buf, mode, err) < 0)
            return -1;
        *p = '/';
    }
    return make_dir(buf, mode, err);
}

int file_ensure_dir(const char *dir, mode_t mode, uid_t uid, gid_t gid,
                    err_t *err)
{
    struct stat st;

    if (file_mkdir_p(dir, mode, err) < 0)
        return -1;
    if (stat(dir, &st) < 0)
        return errprintf_errno(err, "cannot stat %s", dir);
    if (!S_ISDIR(st.st_mode))
        return errprintf(err, "%s exists and is not a directory", dir);
    if ((st.st_mode & 07777) != mode && chmod(dir, mode) < 0)
        return errprintf_errno(err, "cannot chmod %s", dir);
    if ((uid != (uid_t)-1 && st.st_uid != uid) ||
        (gid != (gid_t)-1 && st.st_gid != gid)) {
        if (chown(dir, uid, gid) < 0)
            return errprintf_errno(err, "cannot chown %s", dir);
    }
    return 0;
}

static int fsync_dir_of(const char *path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    size_t len;
    int fd, rc;

    if (!slash) {
        strcpy(dir, ".");
    } else {
        len = slash == path ? 1 : (size_t)(slash - path);
        if (len >= sizeof(dir))
            return -1;
        memcpy(dir, path, len);
        dir[len] = '\0';
    }
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    rc = fsync(fd);
    close(fd);
    return rc;
}

int file_write_atomic(const char *path, const void *data, size_t len,
                      mode_t mode, uid_t uid, gid_t gid, err_t *err)
{
    char tmp[PATH_MAX];
    const char *p = data;
    size_t done = 0;
    int fd = -1;
    int rc = -1;

    if (snprintf(tmp, sizeof(tmp), "%s.tmpXXXXXX", path) >= (int)sizeof(tmp))
        return errprintf(err, "path too long: %s", path);
    fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return errprintf_errno(err, "cannot create a temporary file for %s",
                               path);
    while (done < len) {
        ssize_t n = write(fd, p + done, len - done);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            errprintf_errno(err, "cannot write %s", tmp);
            goto out;
        }
        done += n;
    }
    if (fchmod(fd, mode) < 0) {
        errprintf_errno(err, "cannot chmod %s", tmp);
        goto out;
    }
    if ((uid != (uid_t)-1 || gid != (gid_t)-1) && fchown(fd, uid, gid) < 0) {
        errprintf_errno(err, "cannot chown %s", tmp);
        goto out;
    }
    if (fsync(fd) < 0) {
        errprintf_errno(err, "cannot fsync %s", tmp);
        goto out;
    }
    if (close(fd) < 0) {
        fd = -1;
        errprintf_errno(err, "cannot close %s", tmp);
        goto out;
    }
    fd = -1;
    if (rename(tmp, path) < 0) {
        errprintf_errno(err, "cannot rename %s to %s", tmp, path);
        goto out;
    }
    if (fsync_dir_of(path) < 0) {
        errprintf_errno(err, "cannot fsync the directory of %s", path);
        goto out_renamed;
    }
    return 0;
out:
    unlink(tmp);
out_renamed:
    if (fd >= 0)
        close(fd);
    return rc;
}

char *file_read(const char *path, size_t maxlen, size_t *lenp, err_t *err)
{
    struct stat st;
    char *buf = NULL;
    size_t done = 0;
    int fd;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        errprintf_errno(err, "cannot open %s", path);
        return NULL;
    }
    if (fstat(fd, &st) < 0) {
        errprintf_errno(err, "cannot stat %s", path);
        goto fail;
    }
    if ((size_t)st.st_size > maxlen) {
        errno = EFBIG;
        errprintf(err, "%s is too large (%lld bytes, at most %zu)", path,
                  (long long)st.st_size, maxlen);
        goto fail;
    }
    buf = malloc(maxlen + 1);
    if (!buf) {
        errprintf_errno(err, "cannot read %s", path);
        goto fail;
    }
    for (;;) {
        ssize_t n = read(fd, buf + done, maxlen + 1 - done);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            errprintf_errno(err, "cannot read %s", path);
            goto fail;
        }
        if (n == 0)
            break;
        done += n;
        if (done > maxlen) {
            errno = EFBIG;
            errprintf(err, "%s is too large (at most %zu bytes)", path, maxlen);
            goto fail;
        }
    }
    close(fd);
    buf[done] = '\0';
    if (lenp)
        *lenp = done;
    return buf;
fail:
    free(buf);
    close(fd);
    return NULL;
}

void file_sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char h[crypto_hash_sha256_BYTES];

    crypto_hash_sha256(h, data, len);
    sodium_bin2hex(out, 65, h, sizeof(h));
}
