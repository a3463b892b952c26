/* store.h - the peer's SQLite database
 *
 * One database per peer (DATA/peerd.db), WAL mode, synchronous=FULL,
 * foreign keys on, schema versioned by a one-row table and migrated
 * forward only.  Two key/value tables:
 *   config  - cluster state (name, id, tier, ...), applied from Raft
 *   local   - this peer's own facts (node_id, leader_* after a join)
 * and one table of opaque blobs:
 *   secret  - "data_key.sealed": the data key sealed to the node key
 *             (local); "munge_key", "join_key": encrypted with the data
 *             key (applied from Raft)
 * Schema 2 adds raft_state, raft_log (store/raftlog.h), members and
 * tokens (store/members.h).
 * The store never logs and never guesses: a file that is not a database,
 * fails its integrity check, or comes from a newer peerd is refused.
 */
#ifndef PEERD_STORE_H
#define PEERD_STORE_H

#include <stdbool.h>
#include <stddef.h>

#include "proto/err.h"

typedef struct store store_t;

enum store_table {
    STORE_CONFIG,
    STORE_LOCAL,
};

/* The schema version this build writes. */
#define STORE_SCHEMA_VERSION 2

/* Open (and, if create, create) the database at path and migrate it to
 * STORE_SCHEMA_VERSION.  Returns NULL with err filled and errno:
 *   ENOENT          - no database and create is false
 *   EBADMSG         - not a database, or it failed its integrity check
 *   EPROTONOSUPPORT - written by a newer peerd (schema version too high)
 *   anything else   - the file could not be opened or written
 */
store_t *store_open(const char *path, bool create, err_t *err);
void store_destroy(store_t **sp);

/* Schema version found on disk (after migration = STORE_SCHEMA_VERSION). */
int store_schema_version(store_t *s);

/* Transactions: store_begin() ... store_commit() or store_rollback().
 * Writes outside a transaction commit one by one.
 */
int store_begin(store_t *s, err_t *err);
int store_commit(store_t *s, err_t *err);
void store_rollback(store_t *s);

/* Get a text value: returns 1 and a malloc'd copy in *value if found,
 * 0 with *value = NULL if absent, -1 on error.
 */
int store_get(store_t *s, enum store_table t, const char *key, char **value,
              err_t *err);
int store_set(store_t *s, enum store_table t, const char *key,
              const char *value, err_t *err);

/* All config keys that start with prefix and have a value, as malloc'd
 * "Rest=Value" lines (prefix stripped), ordered by key.  Free with
 * store_lines_free.
 */
int store_config_lines(store_t *s, const char *prefix, char ***lines, size_t *n,
                       err_t *err);
void store_lines_free(char **lines, size_t n);

/* Blobs in the secret table.  store_get_blob returns 1 with a malloc'd
 * copy (*len bytes), 0 if absent, -1 on error.
 */
int store_get_blob(store_t *s, const char *name, void **data, size_t *len,
                   err_t *err);
int store_put_blob(store_t *s, const char *name, const void *data, size_t len,
                   err_t *err);

#endif
