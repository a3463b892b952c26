/* hostsfile.c - the managed controller entry in the hosts file */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "node/hostsfile.h"
#include "store/file.h"

#define HOSTS_MAX (1024 * 1024)

static char *slurp(const char *path, size_t *len, err_t *err)
{
    char *buf = file_read(path, HOSTS_MAX, len, err);

    if (!buf && errno == ENOENT) {
        *len = 0;
        return calloc(1, 1);
    }
    return buf;
}

/* Does this line (up to its end) map name?  addr gets its address. */
static int line_maps(const char *line, size_t n, const char *name, char *addr,
                     size_t cap)
{
    char copy[1024], *save = NULL, *tok, *first;

    if (n >= sizeof(copy))
        return 0;
    memcpy(copy, line, n);
    copy[n] = '\0';
    copy[strcspn(copy, "#")] = '\0';
    if (!(first = strtok_r(copy, " \t", &save)))
        return 0;
    while ((tok = strtok_r(NULL, " \t", &save)))
        if (strcmp(tok, name) == 0) {
            if (addr)
                snprintf(addr, cap, "%s", first);
            return 1;
        }
    return 0;
}

int hostsfile_lookup(const char *path, const char *name, char *addr, size_t cap,
                     err_t *err)
{
    size_t len;
    char *buf = slurp(path, &len, err);
    int found = 0;

    if (!buf)
        return -1;
    for (char *p = buf; *p && !found;) {
        size_t n = strcspn(p, "\n");
        found = line_maps(p, n, name, addr, cap);
        p += n + (p[n] == '\n');
    }
    free(buf);
    return found;
}

static int write_in_place(const char *path, const char *data, size_t len,
                          err_t *err)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);

    if (fd < 0)
        return errprintf_errno(err, "cannot open %s", path);
    if (pwrite(fd, data, len, 0) != (ssize_t)len || ftruncate(fd, len) < 0 ||
        fsync(fd) < 0) {
        errprintf_errno(err, "cannot rewrite %s", path);
        close(fd);
        return -1;
    }
    close(fd);
    return 0;
}

int hostsfile_point(const char *path, const char *name, const char *addr,
                    err_t *err)
{
    size_t len, out_len = 0;
    char *buf = slurp(path, &len, err), *out, mine[512];
    bool have_mine = false;
    struct stat st;
    int rc = 1;

    if (!buf)
        return -1;
    snprintf(mine, sizeof(mine), "%s\t%s\t# kept by peerd\n", addr, name);
    out = malloc(len + strlen(mine) + 2);
    if (!out) {
        free(buf);
        return errprintf(err, "cannot rewrite %s: out of memory", path);
    }
    for (char *p = buf; *p;) {
        size_t n = strcspn(p, "\n");
        if (!line_maps(p, n, name, NULL, 0)) {
            memcpy(out + out_len, p, n);
            out_len += n;
            out[out_len++] = '\n';
        } else if (!have_mine && strncmp(p, mine, n) == 0 && mine[n] == '\n') {
            have_mine = true; /* keep our line where it is */
            memcpy(out + out_len, mine, n + 1);
            out_len += n + 1;
        }
        p += n + (p[n] == '\n');
    }
    if (!have_mine) {
        memcpy(out + out_len, mine, strlen(mine));
        out_len += strlen(mine);
    }
    if (out_len == len && memcmp(out, buf, len) == 0) {
        rc = 0;
    } else {
        mode_t mode = stat(path, &st) == 0 ? st.st_mode & 0777 : 0644;
        err_t e2 = {{0}};
        if (file_write_atomic(path, out, out_len, mode, (uid_t)-1, (gid_t)-1,
                              &e2) < 0) {
            /* a bind-mounted file cannot be renamed over: EBUSY */
            if (write_in_place(path, out, out_len, err) < 0)
                rc = -1;
        }
    }
    free(out);
    free(buf);
    return rc;
}
