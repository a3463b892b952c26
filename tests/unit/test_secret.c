/* test_secret.c - keys and sealed secrets (store/secret.c)
 *
 * The node key file (create, reload, tamper), sealing the data key to a
 * node, and authenticated encryption of named secrets: every way a
 * ciphertext can be wrong must fail with EBADMSG.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <setjmp.h>

#include <cmocka.h>

#include "store/file.h"
#include "store/secret.h"

struct fixture {
    char dir[64];
    char path[128]; /* node key file */
    char other[128];
};

static int group_setup(void **state)
{
    return secret_init(NULL);
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));

    if (!fx)
        return -1;
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/test_secret.XXXXXX");
    if (!mkdtemp(fx->dir)) {
        free(fx);
        return -1;
    }
    snprintf(fx->path, sizeof(fx->path), "%s/node.key", fx->dir);
    snprintf(fx->other, sizeof(fx->other), "%s/other.key", fx->dir);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;

    unlink(fx->path);
    unlink(fx->other);
    rmdir(fx->dir);
    free(fx);
    return 0;
}

static void load_ok(const char *path, int create, node_key_t *key)
{
    err_t err = {{0}};

    if (node_key_load(path, create, key, &err) < 0)
        fail_msg("node_key_load %s: %s", path, err.text);
    assert_non_null(key->sec);
    assert_int_equal(key->sec->len, SECRET_KEY_BYTES);
}

static void load_fails(const char *path, int create, int e)
{
    node_key_t key;
    err_t err = {{0}};

    errno = 0;
    assert_int_equal(node_key_load(path, create, &key, &err), -1);
    assert_int_equal(errno, e);
    assert_true(strlen(err.text) > 0);
    assert_null(key.sec);
}

static secret_t *secret_of(const void *data, size_t len)
{
    secret_t *s = secret_new(len);

    assert_non_null(s);
    memcpy(s->data, data, len);
    return s;
}

static void assert_same_secret(const secret_t *a, const secret_t *b)
{
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(a->len, b->len);
    assert_memory_equal(a->data, b->data, a->len);
}

static void decrypt_fails(const secret_t *dkey, const char *name,
                          const unsigned char *in, size_t inlen)
{
    err_t err = {{0}};
    secret_t *s;

    errno = 0;
    s = secret_decrypt(dkey, name, in, inlen, &err);
    if (s) {
        secret_destroy(&s);
        fail_msg("decrypted %zu bytes as '%s'", inlen, name);
    }
    assert_int_equal(errno, EBADMSG);
    assert_true(strlen(err.text) > 0);
}

/* A ciphertext of a munge-key-like secret under a fresh data key. */
struct sealed {
    secret_t *dkey, *plain;
    unsigned char *ct;
    size_t ctlen;
};

static void encrypt_sample(struct sealed *x, const char *name)
{
    static const unsigned char key[] = "munge\0key\0bytes\x01\xff";
    err_t err = {{0}};

    x->dkey = secret_random(SECRET_DATA_KEY_BYTES);
    x->plain = secret_of(key, sizeof(key));
    assert_non_null(x->dkey);
    assert_int_equal(
        secret_encrypt(x->dkey, name, x->plain, &x->ct, &x->ctlen, &err), 0);
    assert_true(x->ctlen > x->plain->len);
}

static void sealed_fini(struct sealed *x)
{
    secret_destroy(&x->dkey);
    secret_destroy(&x->plain);
    free(x->ct);
}

static void test_init(void **state)
{
    err_t err = {{0}};

    assert_int_equal(secret_init(&err), 0);
    assert_int_equal(secret_init(&err), 0);
}

static void test_node_key_created_0600(void **state)
{
    struct fixture *fx = *state;
    node_key_t key;
    struct stat st;

    load_ok(fx->path, 1, &key);
    assert_int_equal(stat(fx->path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0600);
    node_key_fini(&key);
    assert_null(key.sec);
}

static void test_node_key_reload_same(void **state)
{
    struct fixture *fx = *state;
    node_key_t a, b;

    load_ok(fx->path, 1, &a);
    load_ok(fx->path, 0, &b);
    assert_memory_equal(a.pub, b.pub, SECRET_KEY_BYTES);
    assert_same_secret(a.sec, b.sec);
    node_key_fini(&a);
    /* create=1 on an existing file loads it, does not replace it */
    load_ok(fx->path, 1, &a);
    assert_memory_equal(a.pub, b.pub, SECRET_KEY_BYTES);
    node_key_fini(&a);
    node_key_fini(&b);
}

static void test_node_keys_differ(void **state)
{
    struct fixture *fx = *state;
    node_key_t a, b;

    load_ok(fx->path, 1, &a);
    load_ok(fx->other, 1, &b);
    assert_memory_not_equal(a.pub, b.pub, SECRET_KEY_BYTES);
    node_key_fini(&a);
    node_key_fini(&b);
}

static void test_node_key_missing(void **state)
{
    struct fixture *fx = *state;
    struct stat st;

    load_fails(fx->path, 0, ENOENT);
    assert_int_equal(stat(fx->path, &st), -1);
}

static void test_node_key_tampered(void **state)
{
    struct fixture *fx = *state;
    node_key_t key;
    err_t err = {{0}};
    size_t len;
    char *text, *sec;

    load_ok(fx->path, 1, &key);
    node_key_fini(&key);
    text = file_read(fx->path, 4096, &len, &err);
    assert_non_null(text);
    sec = strstr(text, "secret = ");
    assert_non_null(sec);
    /* byte 5 of the secret: no clamping bit, so the public key changes */
    sec += strlen("secret = ") + 10;
    *sec = *sec == '0' ? '1' : '0';
    assert_int_equal(file_write_atomic(fx->path, text, len, 0600, (uid_t)-1,
                                       (gid_t)-1, &err),
                     0);
    free(text);
    load_fails(fx->path, 0, EBADMSG);
}

static void test_node_key_not_a_key_file(void **state)
{
    struct fixture *fx = *state;
    err_t err = {{0}};
    const char *text = "public = 1234\nsecret = zz\n";

    assert_int_equal(file_write_atomic(fx->path, text, strlen(text), 0600,
                                       (uid_t)-1, (gid_t)-1, &err),
                     0);
    load_fails(fx->path, 0, EBADMSG);
}

static void test_seal_unseal_round_trip(void **state)
{
    struct fixture *fx = *state;
    node_key_t key;
    secret_t *dkey = secret_random(SECRET_DATA_KEY_BYTES), *back;
    unsigned char *sealed = NULL;
    size_t n = 0;
    err_t err = {{0}};

    load_ok(fx->path, 1, &key);
    assert_int_equal(secret_seal(key.pub, dkey, &sealed, &n, &err), 0);
    assert_true(n > dkey->len);
    back = secret_unseal(&key, sealed, n, &err);
    assert_same_secret(back, dkey);
    secret_destroy(&back);
    secret_destroy(&dkey);
    free(sealed);
    node_key_fini(&key);
}

static void test_unseal_other_key_fails(void **state)
{
    struct fixture *fx = *state;
    node_key_t mine, other;
    secret_t *dkey = secret_random(SECRET_DATA_KEY_BYTES), *back;
    unsigned char *sealed = NULL;
    size_t n = 0;
    err_t err = {{0}};

    load_ok(fx->path, 1, &mine);
    load_ok(fx->other, 1, &other);
    assert_int_equal(secret_seal(mine.pub, dkey, &sealed, &n, &err), 0);
    errno = 0;
    back = secret_unseal(&other, sealed, n, &err);
    assert_null(back);
    assert_int_equal(errno, EBADMSG);
    /* and a truncated seal does not open with the right key */
    errno = 0;
    assert_null(secret_unseal(&mine, sealed, n - 1, &err));
    assert_int_equal(errno, EBADMSG);
    secret_destroy(&dkey);
    free(sealed);
    node_key_fini(&mine);
    node_key_fini(&other);
}

static void test_encrypt_decrypt_round_trip(void **state)
{
    struct sealed x = {0};
    err_t err = {{0}};
    secret_t *back;

    encrypt_sample(&x, "munge.key");
    back = secret_decrypt(x.dkey, "munge.key", x.ct, x.ctlen, &err);
    assert_same_secret(back, x.plain);
    secret_destroy(&back);
    sealed_fini(&x);
}

static void test_encrypt_uses_fresh_nonce(void **state)
{
    struct sealed x = {0};
    unsigned char *ct2 = NULL;
    size_t len2 = 0;
    err_t err = {{0}};

    encrypt_sample(&x, "munge.key");
    assert_int_equal(
        secret_encrypt(x.dkey, "munge.key", x.plain, &ct2, &len2, &err), 0);
    assert_int_equal(len2, x.ctlen);
    assert_memory_not_equal(ct2, x.ct, len2);
    free(ct2);
    sealed_fini(&x);
}

static void test_decrypt_wrong_name_fails(void **state)
{
    struct sealed x = {0};

    encrypt_sample(&x, "munge.key");
    decrypt_fails(x.dkey, "slurm.key", x.ct, x.ctlen);
    decrypt_fails(x.dkey, "munge.ke", x.ct, x.ctlen);
    decrypt_fails(x.dkey, "", x.ct, x.ctlen);
    sealed_fini(&x);
}

static void test_decrypt_wrong_key_fails(void **state)
{
    struct sealed x = {0};
    secret_t *other = secret_random(SECRET_DATA_KEY_BYTES);
    secret_t *short_key = secret_random(SECRET_DATA_KEY_BYTES - 1);

    encrypt_sample(&x, "munge.key");
    decrypt_fails(other, "munge.key", x.ct, x.ctlen);
    decrypt_fails(short_key, "munge.key", x.ct, x.ctlen);
    secret_destroy(&other);
    secret_destroy(&short_key);
    sealed_fini(&x);
}

static void test_decrypt_flipped_bit_fails(void **state)
{
    struct sealed x = {0};

    encrypt_sample(&x, "munge.key");
    for (size_t bit = 0; bit < x.ctlen * 8; bit++) {
        x.ct[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        decrypt_fails(x.dkey, "munge.key", x.ct, x.ctlen);
        x.ct[bit / 8] ^= (unsigned char)(1u << (bit % 8));
    }
    sealed_fini(&x);
}

static void test_decrypt_truncated_fails(void **state)
{
    struct sealed x = {0};

    encrypt_sample(&x, "munge.key");
    for (size_t n = 0; n < x.ctlen; n++) {
        /* an exactly sized copy, so that a read past n is caught */
        unsigned char *copy = malloc(n ? n : 1);
        assert_non_null(copy);
        memcpy(copy, x.ct, n);
        decrypt_fails(x.dkey, "munge.key", copy, n);
        free(copy);
    }
    sealed_fini(&x);
}

static void test_random_differs(void **state)
{
    secret_t *a = secret_random(32), *b = secret_random(32);

    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(a->len, 32);
    assert_int_equal(b->len, 32);
    assert_memory_not_equal(a->data, b->data, 32);
    secret_destroy(&a);
    secret_destroy(&b);
    assert_null(a);
}

static void test_hash_hex_is_sha256(void **state)
{
    static const char abc_sha256[] =
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    secret_t *s = secret_of("abc", 3);
    secret_t *r = secret_random(100);
    char hex[65], want[65];

    secret_hash_hex(s, hex);
    assert_int_equal(strlen(hex), 64);
    assert_string_equal(hex, abc_sha256);
    secret_hash_hex(r, hex);
    file_sha256_hex(r->data, r->len, want);
    assert_string_equal(hex, want);
    for (int i = 0; i < 64; i++)
        assert_true(isxdigit((unsigned char)hex[i]) && !isupper(hex[i]));
    secret_destroy(&s);
    secret_destroy(&r);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    // clang-format off
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init),
        T(test_node_key_created_0600),
        T(test_node_key_reload_same),
        T(test_node_keys_differ),
        T(test_node_key_missing),
        T(test_node_key_tampered),
        T(test_node_key_not_a_key_file),
        T(test_seal_unseal_round_trip),
        T(test_unseal_other_key_fails),
        cmocka_unit_test(test_encrypt_decrypt_round_trip),
        cmocka_unit_test(test_encrypt_uses_fresh_nonce),
        cmocka_unit_test(test_decrypt_wrong_name_fails),
        cmocka_unit_test(test_decrypt_wrong_key_fails),
        cmocka_unit_test(test_decrypt_flipped_bit_fails),
        cmocka_unit_test(test_decrypt_truncated_fails),
        cmocka_unit_test(test_random_differs),
        cmocka_unit_test(test_hash_hex_is_sha256),
    };
    // clang-format on

    return cmocka_run_group_tests_name("secret", tests, group_setup, NULL);
}
