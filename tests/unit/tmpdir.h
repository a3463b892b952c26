/* tmpdir.h - a scratch directory for each unit test, removed afterwards
 *
 * Header-only, for the test programs: tmpdir_make() creates
 * /tmp/<name>.XXXXXX, tmpdir_remove() deletes a tree (making directories
 * writable on the way, for tests that take permissions away).
 */
#ifndef PEERD_TEST_TMPDIR_H
#define PEERD_TEST_TMPDIR_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static inline int tmpdir_make(char *dir, size_t cap, const char *name)
{
    snprintf(dir, cap, "/tmp/%s.XXXXXX", name);
    return mkdtemp(dir) ? 0 : -1;
}

static inline void tmpdir_remove(const char *path)
{
    struct stat st;
    struct dirent *de;
    char sub[1024];
    DIR *d;

    if (lstat(path, &st) < 0)
        return;
    if (!S_ISDIR(st.st_mode)) {
        unlink(path);
        return;
    }
    chmod(path, 0700);
    if ((d = opendir(path))) {
        while ((de = readdir(d)))
            if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
                snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
                tmpdir_remove(sub);
            }
        closedir(d);
    }
    rmdir(path);
}

#endif
