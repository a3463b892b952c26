/* members.h - the member table and the join tokens, as applied from Raft
 *
 * Rows change only when a committed Raft entry is applied (node/fsm.c),
 * so every peer holds the same rows at the same applied index.  A token
 * row keeps a verifier (a keyed hash of the token's secret), never the
 * secret itself.
 */
#ifndef PEERD_MEMBERS_H
#define PEERD_MEMBERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/err.h"
#include "store/store.h"

#define MEMBER_KEY_BYTES 32

struct member {
    uint64_t id; /* the index of the entry that admitted it */
    char name[64];
    unsigned char pubkey[MEMBER_KEY_BYTES];
    char address[128]; /* where its peer socket listens, host:port */
    int cpus;
    long memory_mb;
    bool voter;
    char state[16]; /* "active" or "left" */
    char config_hash[65];
    char munge_key_hash[65];
    uint64_t joined;
};

/* Insert or replace the member with m->id. */
int members_put(store_t *s, const struct member *m, err_t *err);

/* All members ordered by id; *out malloc'd (free it), *n rows. */
int members_list(store_t *s, struct member **out, size_t *n, err_t *err);

/* 1 and *m if a member has this id (or key, or name), 0 if none, -1. */
int members_get(store_t *s, uint64_t id, struct member *m, err_t *err);
int members_by_key(store_t *s, const unsigned char *pubkey, struct member *m,
                   err_t *err);
int members_by_name(store_t *s, const char *name, struct member *m, err_t *err);

#define TOKEN_VERIFIER_BYTES 32

struct token {
    char id[32];
    unsigned char verifier[TOKEN_VERIFIER_BYTES];
    int64_t expires; /* unix seconds */
    int uses_left;
};

int tokens_put(store_t *s, const struct token *t, err_t *err);
/* 1 and *t if found, 0 if not, -1. */
int tokens_get(store_t *s, const char *id, struct token *t, err_t *err);

#endif
