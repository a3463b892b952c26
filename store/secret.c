/* secret.c - keys and sealed secrets */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "store/file.h"
#include "store/secret.h"

int secret_init(err_t *err)
{
    if (sodium_init() < 0)
        return errprintf(err, "libsodium failed to initialise");
    return 0;
}

secret_t *secret_new(size_t len)
{
    secret_t *s = calloc(1, sizeof(*s));

    if (!s)
        return NULL;
    s->data = sodium_malloc(len ? len : 1);
    if (!s->data) {
        free(s);
        errno = ENOMEM;
        return NULL;
    }
    sodium_memzero(s->data, len ? len : 1);
    s->len = len;
    return s;
}

secret_t *secret_random(size_t len)
{
    secret_t *s = secret_new(len);

    if (s)
        randombytes_buf(s->data, len);
    return s;
}

void secret_destroy(secret_t **sp)
{
    if (sp && *sp) {
        sodium_free((*sp)->data); /* wipes */
        free(*sp);
        *sp = NULL;
    }
}

void node_key_fini(node_key_t *key)
{
    secret_destroy(&key->sec);
}

static int hex_field(const char *text, const char *name, unsigned char *out,
                     size_t outlen)
{
    const char *p = strstr(text, name);
    size_t binlen = 0;
    const char *end;

    if (!p)
        return -1;
    p += strlen(name);
    if (sodium_hex2bin(out, outlen, p, strlen(p), NULL, &binlen, &end) < 0 ||
        binlen != outlen)
        return -1;
    return 0;
}

int node_key_generate(node_key_t *key, err_t *err)
{
    memset(key, 0, sizeof(*key));
    if (!(key->sec = secret_new(SECRET_KEY_BYTES)))
        return errprintf_errno(err, "cannot create the node key");
    crypto_box_keypair(key->pub, key->sec->data);
    return 0;
}

int node_key_save(const char *path, const node_key_t *key, err_t *err)
{
    char pubhex[2 * SECRET_KEY_BYTES + 1];
    char *sechex = NULL;
    char *text = NULL;
    size_t textlen = 512;
    int rc = -1;

    sechex = sodium_malloc(2 * SECRET_KEY_BYTES + 1);
    text = sodium_malloc(textlen);
    if (!sechex || !text) {
        errprintf_errno(err, "cannot write the node key");
        goto out;
    }
    sodium_bin2hex(pubhex, sizeof(pubhex), key->pub, SECRET_KEY_BYTES);
    sodium_bin2hex(sechex, 2 * SECRET_KEY_BYTES + 1, key->sec->data,
                   SECRET_KEY_BYTES);
    textlen = snprintf(text, textlen,
                       "# peerd node key (Curve25519). Keep it secret.\n"
                       "public = %s\nsecret = %s\n",
                       pubhex, sechex);
    rc =
        file_write_atomic(path, text, textlen, 0600, (uid_t)-1, (gid_t)-1, err);
out:
    if (sechex)
        sodium_free(sechex);
    if (text)
        sodium_free(text);
    return rc;
}

static int node_key_create(const char *path, node_key_t *key, err_t *err)
{
    if (node_key_generate(key, err) < 0)
        return -1;
    if (node_key_save(path, key, err) < 0) {
        node_key_fini(key);
        return -1;
    }
    return 0;
}

int node_key_load(const char *path, int create, node_key_t *key, err_t *err)
{
    unsigned char check[SECRET_KEY_BYTES];
    char *text;
    size_t len;
    int rc = -1;

    memset(key, 0, sizeof(*key));
    text = file_read(path, 4096, &len, err);
    if (!text) {
        if (errno == ENOENT && create)
            return node_key_create(path, key, err);
        return -1;
    }
    key->sec = secret_new(SECRET_KEY_BYTES);
    if (!key->sec) {
        errprintf_errno(err, "cannot load the node key");
        goto out;
    }
    if (hex_field(text, "public = ", key->pub, SECRET_KEY_BYTES) < 0 ||
        hex_field(text, "secret = ", key->sec->data, SECRET_KEY_BYTES) < 0) {
        errno = EBADMSG;
        errprintf(err, "%s is not a peerd node key file", path);
        goto out;
    }
    crypto_scalarmult_base(check, key->sec->data);
    if (sodium_memcmp(check, key->pub, SECRET_KEY_BYTES) != 0) {
        errno = EBADMSG;
        errprintf(err, "%s: public key does not match secret key", path);
        goto out;
    }
    rc = 0;
out:
    sodium_memzero(text, len);
    free(text);
    if (rc < 0)
        node_key_fini(key);
    return rc;
}

int secret_seal(const unsigned char pub[SECRET_KEY_BYTES], const secret_t *s,
                unsigned char **out, size_t *outlen, err_t *err)
{
    size_t n = s->len + crypto_box_SEALBYTES;
    unsigned char *buf = malloc(n);

    if (!buf)
        return errprintf_errno(err, "cannot seal a secret");
    if (crypto_box_seal(buf, s->data, s->len, pub) != 0) {
        free(buf);
        return errprintf(err, "cannot seal a secret");
    }
    *out = buf;
    *outlen = n;
    return 0;
}

secret_t *secret_unseal(const node_key_t *key, const unsigned char *in,
                        size_t inlen, err_t *err)
{
    secret_t *s;

    if (inlen < crypto_box_SEALBYTES) {
        errno = EBADMSG;
        errprintf(err, "sealed secret is too short");
        return NULL;
    }
    if (!(s = secret_new(inlen - crypto_box_SEALBYTES))) {
        errprintf_errno(err, "cannot open a sealed secret");
        return NULL;
    }
    if (crypto_box_seal_open(s->data, in, inlen, key->pub, key->sec->data) !=
        0) {
        secret_destroy(&s);
        errno = EBADMSG;
        errprintf(err, "sealed secret does not open with this node's key");
        return NULL;
    }
    return s;
}

int secret_encrypt(const secret_t *dkey, const char *name,
                   const secret_t *plain, unsigned char **out, size_t *outlen,
                   err_t *err)
{
    const size_t nb = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
    size_t n = nb + plain->len + crypto_aead_xchacha20poly1305_ietf_ABYTES;
    unsigned long long clen = 0;
    unsigned char *buf;

    if (dkey->len != crypto_aead_xchacha20poly1305_ietf_KEYBYTES)
        return errprintf(err, "data key has the wrong length");
    if (!(buf = malloc(n)))
        return errprintf_errno(err, "cannot encrypt %s", name);
    randombytes_buf(buf, nb);
    crypto_aead_xchacha20poly1305_ietf_encrypt(
        buf + nb, &clen, plain->data, plain->len, (const unsigned char *)name,
        strlen(name), NULL, buf, dkey->data);
    *out = buf;
    *outlen = nb + clen;
    return 0;
}

secret_t *secret_decrypt(const secret_t *dkey, const char *name,
                         const unsigned char *in, size_t inlen, err_t *err)
{
    const size_t nb = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
    const size_t ab = crypto_aead_xchacha20poly1305_ietf_ABYTES;
    unsigned long long plen = 0;
    secret_t *s;

    if (dkey->len != crypto_aead_xchacha20poly1305_ietf_KEYBYTES ||
        inlen < nb + ab) {
        errno = EBADMSG;
        errprintf(err, "encrypted %s is malformed", name);
        return NULL;
    }
    if (!(s = secret_new(inlen - nb - ab))) {
        errprintf_errno(err, "cannot decrypt %s", name);
        return NULL;
    }
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(
            s->data, &plen, NULL, in + nb, inlen - nb,
            (const unsigned char *)name, strlen(name), in, dkey->data) != 0) {
        secret_destroy(&s);
        errno = EBADMSG;
        errprintf(err, "encrypted %s does not authenticate with the data key",
                  name);
        return NULL;
    }
    return s;
}

void secret_hash_hex(const secret_t *s, char out[65])
{
    file_sha256_hex(s->data, s->len, out);
}
