/* join.h - join tokens and the joiner's side of admission
 *
 * A token is "pdt1.<id>.<secret>.<join public key>" (hex): the id names
 * the token in the cluster, the secret proves the holder may join, the
 * join key pins the cluster, so that a joiner talks CURVE to the real
 * cluster and no one in the middle.  The cluster stores only the token's
 * verifier, a keyed BLAKE2b hash of the secret.  The joiner never sends
 * the secret: it sends HMAC-SHA-256(verifier, "peerd-join" || join key ||
 * its own public key || its name), bound to the CURVE key it connects
 * with, so a captured request is useless to anyone else.
 */
#ifndef PEERD_JOIN_H
#define PEERD_JOIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/err.h"
#include "store/secret.h"

#define TOKEN_ID_BYTES 8
#define TOKEN_SECRET_BYTES 16
#define TOKEN_TEXT_MAX 160

struct join_token {
    char id[2 * TOKEN_ID_BYTES + 1];
    unsigned char secret[TOKEN_SECRET_BYTES];
    unsigned char join_pub[32];
};

/* A new random token for this cluster's join key. */
void token_new(struct join_token *t, const unsigned char join_pub[32]);
int token_parse(const char *text, struct join_token *t, err_t *err);
void token_format(const struct join_token *t, char out[TOKEN_TEXT_MAX]);
void token_verifier(const unsigned char secret[TOKEN_SECRET_BYTES],
                    unsigned char out[32]);
void join_mac(const unsigned char verifier[32],
              const unsigned char join_pub[32],
              const unsigned char joiner_pub[32], const char *name,
              unsigned char mac[32]);
bool join_mac_ok(const unsigned char verifier[32],
                 const unsigned char join_pub[32],
                 const unsigned char joiner_pub[32], const char *name,
                 const unsigned char mac[32]);

struct join_result {
    uint64_t node_id;
    unsigned char sealed[256]; /* data key sealed to our key */
    size_t sealed_len;
    uint64_t leader_id;
    char leader_address[256];
    unsigned char leader_pub[32];
};

/* Ask the cluster at target ("host[:port]", the peer port; the join
 * socket is port + 1) to admit this host.  Waits up to timeout seconds.
 * Returns 0, or a sysexits.h code with err: EX_NOPERM refused (wrong,
 * expired or used-up token; the text says which), EX_UNAVAILABLE no
 * answer, EX_USAGE a bad target.
 */
int join_request(void *zctx, const node_key_t *key, const char *target,
                 const struct join_token *tok, const char *name,
                 const char *address, int cpus, long memory_mb, double timeout,
                 struct join_result *out, err_t *err);

#endif
