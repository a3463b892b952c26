/* file.h - careful file helpers: atomic replace, bounded read, hashing
 *
 * Everything a peer writes outside SQLite (the munge key file, slurm.conf,
 * the node key) goes through file_write_atomic(): temp file in the same
 * directory, fsync, chmod/chown, rename, fsync of the directory.  A reader
 * therefore sees the old content or the new one, never a torn file.
 */
#ifndef PEERD_FILE_H
#define PEERD_FILE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto/err.h"

/* Create dir and its missing parents (like mkdir -p) with exactly mode,
 * whatever the umask.  Existing dirs are
 * left as they are.  Returns 0 or -1 with err filled.
 */
int file_mkdir_p(const char *dir, mode_t mode, err_t *err);

/* Create dir if missing, then force its mode and owner (uid/gid -1 keep).
 */
int file_ensure_dir(const char *dir, mode_t mode, uid_t uid, gid_t gid,
                    err_t *err);

/* Replace path atomically with len bytes of data, final mode and owner
 * (uid/gid (uid_t)-1 = unchanged).  Returns 0 or -1 with err filled.
 */
int file_write_atomic(const char *path, const void *data, size_t len,
                      mode_t mode, uid_t uid, gid_t gid, err_t *err);

/* Read a whole file of at most maxlen bytes into a malloc'd buffer (NUL
 * terminated for convenience; *lenp excludes the NUL).  Caller frees.
 * Returns NULL with err filled; errno ENOENT if the file does not exist,
 * EFBIG if it is larger than maxlen.
 */
char *file_read(const char *path, size_t maxlen, size_t *lenp, err_t *err);

/* SHA-256 of data as 64 lowercase hex chars + NUL into out[65]. */
void file_sha256_hex(const void *data, size_t len, char out[65]);

#endif
