/* hostsfile.h - the managed controller entry in the hosts file
 *
 * Slurm's daemons, job steps and commands reach the controller by one
 * name (SLURM_CTL_ALIAS) that every host resolves from its hosts file;
 * peerd points that name at the current controller.  Only lines that map
 * the name are replaced; the rest of the file stays as it is.
 */
#ifndef PEERD_HOSTSFILE_H
#define PEERD_HOSTSFILE_H

#include "proto/err.h"

/* Make `path` map name to addr (one line "addr name # kept by peerd").  The
 * file is replaced atomically (temp file, fsync, rename); where it is a
 * mount point (bind-mounted, rename gives EBUSY) it is rewritten in
 * place.  Returns 1 changed, 0 already so, -1 with err.
 */
int hostsfile_point(const char *path, const char *name, const char *addr,
                    err_t *err);

/* The address name maps to in path: 1 found (addr filled), 0 none, -1. */
int hostsfile_lookup(const char *path, const char *name, char *addr, size_t cap,
                     err_t *err);

#endif
