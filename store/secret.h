/* secret.h - keys and sealed secrets
 *
 * Secret bytes live in sodium_malloc() memory (guard pages, mlock'd,
 * wiped on free) behind secret_t.  The node key pair is Curve25519 (the
 * same curve ZeroMQ's CURVE uses); its file is 0600 text with hex keys.
 * The cluster data key (32 bytes) is kept sealed to the node's public key
 * (crypto_box_seal); cluster secrets such as the munge key are kept
 * encrypted with the data key (XChaCha20-Poly1305, random 24-byte nonce,
 * the secret's name as associated data, so a ciphertext cannot be
 * swapped for another one).
 */
#ifndef PEERD_SECRET_H
#define PEERD_SECRET_H

#include <stddef.h>
#include <stdint.h>

#include "proto/err.h"

#define SECRET_KEY_BYTES 32
#define SECRET_DATA_KEY_BYTES 32

typedef struct secret {
    unsigned char *data; /* sodium_malloc'd */
    size_t len;
} secret_t;

/* Must be called once before anything else here (sodium_init). */
int secret_init(err_t *err);

/* A zeroed secret of len bytes, or NULL (errno set). */
secret_t *secret_new(size_t len);
/* A secret of len random bytes, or NULL. */
secret_t *secret_random(size_t len);
void secret_destroy(secret_t **sp);

typedef struct {
    unsigned char pub[SECRET_KEY_BYTES];
    secret_t *sec; /* SECRET_KEY_BYTES */
} node_key_t;

/* Load the node key pair from path; if the file does not exist and create
 * is set, make a new pair and write it (mode 0600).  errno ENOENT when
 * missing and !create; EBADMSG when the file is malformed or its public
 * key does not match its secret key.
 */
int node_key_load(const char *path, int create, node_key_t *key, err_t *err);
void node_key_fini(node_key_t *key);

/* A new key pair in memory (not saved). */
int node_key_generate(node_key_t *key, err_t *err);
/* Write a key pair to path (mode 0600, atomically). */
int node_key_save(const char *path, const node_key_t *key, err_t *err);

/* Seal the data key to pub.  *out is malloc'd, *outlen bytes. */
int secret_seal(const unsigned char pub[SECRET_KEY_BYTES], const secret_t *s,
                unsigned char **out, size_t *outlen, err_t *err);
/* Open a sealed secret with the node key pair. */
secret_t *secret_unseal(const node_key_t *key, const unsigned char *in,
                        size_t inlen, err_t *err);

/* Encrypt plain with the data key; *out = nonce || ciphertext, malloc'd. */
int secret_encrypt(const secret_t *dkey, const char *name,
                   const secret_t *plain, unsigned char **out, size_t *outlen,
                   err_t *err);
/* Decrypt what secret_encrypt made; NULL + EBADMSG if it does not
 * authenticate (wrong key, wrong name, or tampered bytes).
 */
secret_t *secret_decrypt(const secret_t *dkey, const char *name,
                         const unsigned char *in, size_t inlen, err_t *err);

/* SHA-256 hex of a secret (for "same key?" comparisons in status). */
void secret_hash_hex(const secret_t *s, char out[65]);

#endif
