/* test_join.c - join tokens and the admission MAC (node/join.c)
 *
 * Tokens round-trip through their text form and every malformed text is
 * refused; the verifier and the MAC are checked against the construction
 * join.h documents, computed here independently with libsodium, and the
 * MAC check is shown to depend on every input.  join_request() needs a
 * cluster to talk to and is covered by the integration tests.
 */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "node/join.h"

/* A token's text: "pdt1." 16 hex "." 32 hex "." 64 hex. */
#define TOKEN_TEXT_LEN (5 + 16 + 1 + 32 + 1 + 64)

/* The parts of a good token, and shorter ones, to build bad texts. */
#define ID "0123456789abcdef"
#define ID15 "0123456789abcde"
#define SEC "00112233445566778899aabbccddeeff"
#define SEC15 "00112233445566778899aabbccddee"
#define SEC31 "00112233445566778899aabbccddeef"
#define PUB32 "ffeeddccbbaa99887766554433221100"
#define PUB PUB32 PUB32
#define PUB62 PUB32 "ffeeddccbbaa998877665544332211"
#define PUB63 PUB62 "0"
#define GOOD "pdt1." ID "." SEC "." PUB

static void fill(unsigned char *buf, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (unsigned char)(seed * 37 + i * 11);
}

static int setup_sodium(void **state)
{
    (void)state;
    return sodium_init() < 0 ? -1 : 0;
}

static void parse_ok(const char *text, struct join_token *t)
{
    err_t err = {{0}};

    if (token_parse(text, t, &err) < 0)
        fail_msg("token_parse '%s': %s", text, err.text);
}

static void test_token_round_trip(void **state)
{
    struct join_token a, b;
    unsigned char pub[32];
    char text[TOKEN_TEXT_MAX];

    (void)state;
    fill(pub, sizeof(pub), 1);
    pub[3] = 0;
    token_new(&a, pub);
    assert_memory_equal(a.join_pub, pub, 32);
    assert_int_equal(strlen(a.id), 2 * TOKEN_ID_BYTES);
    token_format(&a, text);
    assert_int_equal(strlen(text), TOKEN_TEXT_LEN);
    assert_memory_equal(text, "pdt1.", 5);
    memset(&b, 0xa5, sizeof(b));
    parse_ok(text, &b);
    assert_string_equal(b.id, a.id);
    assert_memory_equal(b.secret, a.secret, TOKEN_SECRET_BYTES);
    assert_memory_equal(b.join_pub, a.join_pub, 32);
}

static void test_token_parse_known_text(void **state)
{
    char again[TOKEN_TEXT_MAX];
    struct join_token t;
    unsigned char secret[TOKEN_SECRET_BYTES], pub[32];

    (void)state;
    parse_ok(GOOD, &t);
    assert_string_equal(t.id, ID);
    for (int i = 0; i < TOKEN_SECRET_BYTES; i++)
        secret[i] = (unsigned char)(i * 0x11);
    for (int i = 0; i < 32; i++)
        pub[i] = (unsigned char)(0xff - (i % 16) * 0x11);
    assert_memory_equal(t.secret, secret, TOKEN_SECRET_BYTES);
    assert_memory_equal(t.join_pub, pub, 32);
    token_format(&t, again);
    assert_string_equal(again, GOOD);
}

static void test_token_new_is_random(void **state)
{
    struct join_token a, b;
    unsigned char pub[32] = {0};

    (void)state;
    token_new(&a, pub);
    token_new(&b, pub);
    assert_string_not_equal(a.id, b.id);
    assert_memory_not_equal(a.secret, b.secret, TOKEN_SECRET_BYTES);
}

static void test_token_parse_rejects(void **state)
{
    /* each is the good token with one thing wrong */
    static const struct {
        const char *what, *text;
    } bad[] = {
        {"empty string", ""},
        {"prefix only", "pdt1"},
        {"wrong prefix", "pdt2." ID "." SEC "." PUB},
        {"upper-case prefix", "PDT1." ID "." SEC "." PUB},
        {"longer prefix", "pdt10." ID "." SEC "." PUB},
        {"no prefix", ID "." SEC "." PUB},
        {"missing key", "pdt1." ID "." SEC},
        {"missing key, trailing dot", "pdt1." ID "." SEC "."},
        {"extra part", GOOD ".00"},
        {"trailing dot", GOOD "."},
        {"empty id", "pdt1.." SEC "." PUB},
        {"leading space", " " GOOD},
        {"trailing newline", GOOD "\n"},
        {"id one hex digit short", "pdt1." ID15 "." SEC "." PUB},
        {"id one hex digit long", "pdt1." ID "0." SEC "." PUB},
        {"id not hex", "pdt1." ID15 "g." SEC "." PUB},
        {"secret one byte short", "pdt1." ID "." SEC15 "." PUB},
        {"secret one byte long", "pdt1." ID "." SEC "00." PUB},
        {"secret not hex", "pdt1." ID "." SEC31 "z." PUB},
        {"key one byte short", "pdt1." ID "." SEC "." PUB62},
        {"key one digit short", "pdt1." ID "." SEC "." PUB63},
        {"key one byte long", GOOD "00"},
        {"key not hex", "pdt1." ID "." SEC "." PUB63 "-"},
        {"key with a space", "pdt1." ID "." SEC "." PUB32 " " SEC31},
        {"parts swapped", "pdt1." SEC "." ID "." PUB},
    };

    (void)state;
    parse_ok(GOOD, &(struct join_token){0}); /* the base case is good */
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct join_token t, zero;
        err_t err = {{0}};

        memset(&zero, 0, sizeof(zero));
        memset(&t, 0xa5, sizeof(t));
        if (token_parse(bad[i].text, &t, &err) != -1)
            fail_msg("token_parse accepted %s: '%s'", bad[i].what, bad[i].text);
        if (strlen(err.text) == 0)
            fail_msg("no error text for %s", bad[i].what);
        /* nothing half-parsed (no secret) is left behind */
        assert_memory_equal(&t, &zero, sizeof(t));
    }
}

static void test_token_parse_null_err(void **state)
{
    struct join_token t;

    (void)state;
    assert_int_equal(token_parse("pdt1.x.y.z", &t, NULL), -1);
}

static void test_verifier_is_keyed_blake2b(void **state)
{
    unsigned char secret[TOKEN_SECRET_BYTES], v1[32], v2[32], want[32];

    (void)state;
    fill(secret, sizeof(secret), 4);
    token_verifier(secret, v1);
    token_verifier(secret, v2);
    assert_memory_equal(v1, v2, 32); /* deterministic */
    /* keyed: not the plain hash of the secret */
    crypto_generichash(want, 32, secret, sizeof(secret), NULL, 0);
    assert_memory_not_equal(v1, want, 32);
    /* the key join.c uses for domain separation */
    crypto_generichash(want, 32, secret, sizeof(secret),
                       (const unsigned char *)"peerd-token-v1", 14);
    assert_memory_equal(v1, want, 32);
}

static void test_verifier_differs_per_secret(void **state)
{
    unsigned char secret[TOKEN_SECRET_BYTES], v1[32], v2[32];

    (void)state;
    fill(secret, sizeof(secret), 4);
    token_verifier(secret, v1);
    for (size_t bit = 0; bit < 8 * sizeof(secret); bit++) {
        secret[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        token_verifier(secret, v2);
        secret[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        if (memcmp(v1, v2, 32) == 0)
            fail_msg("same verifier with bit %zu of the secret flipped", bit);
    }
}

/* The inputs of one MAC. */
struct mac_case {
    unsigned char verifier[32], join_pub[32], joiner_pub[32];
    char name[64];
};

static struct mac_case mac_case(void)
{
    struct mac_case c;

    fill(c.verifier, 32, 1);
    fill(c.join_pub, 32, 2);
    fill(c.joiner_pub, 32, 3);
    snprintf(c.name, sizeof(c.name), "node-1");
    return c;
}

static void mac_of(const struct mac_case *c, unsigned char mac[32])
{
    join_mac(c->verifier, c->join_pub, c->joiner_pub, c->name, mac);
}

static bool mac_ok(const struct mac_case *c, const unsigned char mac[32])
{
    return join_mac_ok(c->verifier, c->join_pub, c->joiner_pub, c->name, mac);
}

static void test_mac_is_documented_hmac(void **state)
{
    struct mac_case c = mac_case();
    unsigned char msg[10 + 32 + 32 + 6], mac[32], want[32];

    (void)state;
    memcpy(msg, "peerd-join", 10);
    memcpy(msg + 10, c.join_pub, 32);
    memcpy(msg + 42, c.joiner_pub, 32);
    memcpy(msg + 74, "node-1", 6);
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, c.verifier, 32);
    crypto_auth_hmacsha256_update(&st, msg, sizeof(msg));
    crypto_auth_hmacsha256_final(&st, want);
    mac_of(&c, mac);
    assert_memory_equal(mac, want, 32);
}

static void test_mac_ok_accepts_right_mac(void **state)
{
    struct mac_case c = mac_case();
    unsigned char mac[32];

    (void)state;
    mac_of(&c, mac);
    assert_true(mac_ok(&c, mac));
}

/* A MAC made with one input changed must not pass for the original. */
static void test_mac_ok_rejects_other_inputs(void **state)
{
    const struct mac_case c = mac_case();
    struct mac_case other;
    unsigned char mac[32];

    (void)state;
    other = c;
    other.verifier[31] ^= 1;
    mac_of(&other, mac);
    assert_false(mac_ok(&c, mac));

    other = c;
    other.join_pub[0] ^= 0x80;
    mac_of(&other, mac);
    assert_false(mac_ok(&c, mac));

    other = c;
    other.joiner_pub[16] ^= 4;
    mac_of(&other, mac);
    assert_false(mac_ok(&c, mac));

    other = c;
    snprintf(other.name, sizeof(other.name), "node-2");
    mac_of(&other, mac);
    assert_false(mac_ok(&c, mac));

    other = c;
    snprintf(other.name, sizeof(other.name), "node-10"); /* name extended */
    mac_of(&other, mac);
    assert_false(mac_ok(&c, mac));

    other = c;
    snprintf(other.name, sizeof(other.name), "node-"); /* name cut */
    mac_of(&other, mac);
    assert_false(mac_ok(&c, mac));

    /* swapping the two keys is another message */
    other = c;
    memcpy(other.join_pub, c.joiner_pub, 32);
    memcpy(other.joiner_pub, c.join_pub, 32);
    mac_of(&other, mac);
    assert_false(mac_ok(&c, mac));
}

static void test_mac_ok_rejects_flipped_bit(void **state)
{
    struct mac_case c = mac_case();
    unsigned char mac[32];

    (void)state;
    mac_of(&c, mac);
    for (size_t bit = 0; bit < 8 * sizeof(mac); bit++) {
        mac[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        if (mac_ok(&c, mac))
            fail_msg("MAC with bit %zu flipped accepted", bit);
        mac[bit / 8] ^= (unsigned char)(1u << (bit % 8));
    }
    assert_true(mac_ok(&c, mac)); /* restored: accepted again */
}

static void test_mac_ok_rejects_zero_mac(void **state)
{
    struct mac_case c = mac_case();
    unsigned char zero[32] = {0};

    (void)state;
    assert_false(mac_ok(&c, zero));
}

int main(void)
{
    // clang-format off
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token_round_trip),
        cmocka_unit_test(test_token_parse_known_text),
        cmocka_unit_test(test_token_new_is_random),
        cmocka_unit_test(test_token_parse_rejects),
        cmocka_unit_test(test_token_parse_null_err),
        cmocka_unit_test(test_verifier_is_keyed_blake2b),
        cmocka_unit_test(test_verifier_differs_per_secret),
        cmocka_unit_test(test_mac_is_documented_hmac),
        cmocka_unit_test(test_mac_ok_accepts_right_mac),
        cmocka_unit_test(test_mac_ok_rejects_other_inputs),
        cmocka_unit_test(test_mac_ok_rejects_flipped_bit),
        cmocka_unit_test(test_mac_ok_rejects_zero_mac),
    };
    // clang-format on
    return cmocka_run_group_tests_name("join", tests, setup_sodium, NULL);
}
