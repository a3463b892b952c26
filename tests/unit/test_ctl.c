/* test_ctl.c - the control protocol codec (proto/ctl.c)
 *
 * Round trips of requests and replies, one test per way a frame can be
 * malformed, every truncation of a valid frame, and a seeded fuzz run.
 * Frames under test are copied into buffers of exactly their length, so
 * AddressSanitizer catches any read past the end.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>

#include <cmocka.h>

#include "proto/ctl.h"

enum { FUZZ_SEED = 20240601, FUZZ_ROUNDS = 10000, FUZZ_MAXLEN = 256 };

struct frame {
    unsigned char *data;
    size_t len;
};

/* Encode body (a reference we own) and drop it. */
static struct frame encode(enum ctl_kind kind, json_t *body)
{
    struct frame f = {0};
    err_t err = {{0}};

    assert_non_null(body);
    assert_int_equal(ctl_encode(kind, body, &f.data, &f.len, &err), 0);
    json_decref(body);
    return f;
}

/* A frame with a valid header and body bytes taken as they are. */
static struct frame raw(enum ctl_kind kind, const void *body, size_t n)
{
    struct frame f = {malloc(CTL_HEADER_LEN + n), CTL_HEADER_LEN + n};

    assert_non_null(f.data);
    memcpy(f.data, CTL_SIGNATURE, 4);
    f.data[4] = CTL_VERSION;
    f.data[5] = (unsigned char)kind;
    if (n)
        memcpy(f.data + CTL_HEADER_LEN, body, n);
    return f;
}

static struct frame raw_text(enum ctl_kind kind, const char *text)
{
    return raw(kind, text, strlen(text));
}

static void frame_free(struct frame *f)
{
    free(f->data);
    f->data = NULL;
}

/* Decode the first len bytes of buf from an exactly sized copy. */
static json_t *decode_copy(const void *buf, size_t len, enum ctl_kind kind,
                           err_t *err)
{
    unsigned char *copy = malloc(len ? len : 1);
    json_t *body;

    assert_non_null(copy);
    if (len)
        memcpy(copy, buf, len);
    body = ctl_decode(copy, len, kind, err);
    free(copy);
    return body;
}

static void assert_rejected(const void *buf, size_t len, enum ctl_kind kind)
{
    err_t err = {{0}};
    json_t *body;

    errno = 0;
    body = decode_copy(buf, len, kind, &err);
    if (body) {
        char *s = json_dumps(body, JSON_COMPACT);
        char text[256];

        snprintf(text, sizeof(text), "%s", s ? s : "?");
        free(s);
        json_decref(body);
        fail_msg("frame of %zu bytes accepted as %s", len, text);
    }
    assert_int_equal(errno, EPROTO);
    assert_true(strlen(err.text) > 0);
}

/* Free f after checking that it is rejected as kind. */
static void assert_frame_rejected(struct frame f, enum ctl_kind kind)
{
    assert_rejected(f.data, f.len, kind);
    frame_free(&f);
}

/* The validation ctl.h promises, checked independently of ctl.c. */
static bool is_valid_body(const json_t *body, enum ctl_kind kind)
{
    const json_t *v;

    if (!json_is_object(body))
        return false;
    if (kind == CTL_REQUEST) {
        v = json_object_get(body, "cmd");
        if (!json_is_string(v) || json_string_length(v) == 0)
            return false;
        v = json_object_get(body, "args");
        return !v || json_is_object(v);
    }
    v = json_object_get(body, "ok");
    if (json_is_true(v))
        return json_object_get(body, "result") != NULL;
    return json_is_false(v) && json_is_string(json_object_get(body, "error"));
}

/* Decode as both kinds: each result is NULL or a validated body. */
static int decode_both_ways(const unsigned char *buf, size_t len)
{
    static const enum ctl_kind kinds[] = {CTL_REQUEST, CTL_REPLY};
    int accepted = 0;

    for (size_t i = 0; i < 2; i++) {
        err_t err = {{0}};
        json_t *body = decode_copy(buf, len, kinds[i], &err);
        if (body) {
            assert_true(is_valid_body(body, kinds[i]));
            json_decref(body);
            accepted++;
        } else {
            assert_true(strlen(err.text) > 0);
        }
    }
    return accepted;
}

static void test_request_round_trip(void **state)
{
    json_t *args = json_pack("{s:s,s:i}", "name", "node-1", "cpus", 8);
    struct frame f = encode(CTL_REQUEST, ctl_request("join", args));
    err_t err = {{0}};
    json_t *body;

    assert_true(f.len > CTL_HEADER_LEN);
    assert_memory_equal(f.data, CTL_SIGNATURE, 4);
    assert_int_equal(f.data[4], CTL_VERSION);
    assert_int_equal(f.data[5], CTL_REQUEST);
    body = ctl_decode(f.data, f.len, CTL_REQUEST, &err);
    assert_non_null(body);
    assert_string_equal(json_string_value(json_object_get(body, "cmd")),
                        "join");
    args = json_object_get(body, "args");
    assert_string_equal(json_string_value(json_object_get(args, "name")),
                        "node-1");
    assert_int_equal(json_integer_value(json_object_get(args, "cpus")), 8);
    json_decref(body);
    frame_free(&f);
}

static void test_request_without_args_round_trip(void **state)
{
    struct frame f = encode(CTL_REQUEST, ctl_request("status", NULL));
    err_t err = {{0}};
    json_t *body = ctl_decode(f.data, f.len, CTL_REQUEST, &err);

    assert_non_null(body);
    assert_string_equal(json_string_value(json_object_get(body, "cmd")),
                        "status");
    assert_null(json_object_get(body, "args"));
    json_decref(body);
    frame_free(&f);
}

static void test_reply_ok_round_trip(void **state)
{
    json_t *result = json_pack("{s:[i,i,i]}", "nodes", 1, 2, 3);
    struct frame f = encode(CTL_REPLY, ctl_reply_ok(result));
    err_t err = {{0}};
    json_t *body, *nodes;

    assert_int_equal(f.data[5], CTL_REPLY);
    body = ctl_decode(f.data, f.len, CTL_REPLY, &err);
    assert_non_null(body);
    assert_true(json_is_true(json_object_get(body, "ok")));
    nodes = json_object_get(json_object_get(body, "result"), "nodes");
    assert_int_equal(json_array_size(nodes), 3);
    assert_int_equal(json_integer_value(json_array_get(nodes, 2)), 3);
    json_decref(body);
    frame_free(&f);
}

static void test_reply_ok_without_result_round_trip(void **state)
{
    struct frame f = encode(CTL_REPLY, ctl_reply_ok(NULL));
    err_t err = {{0}};
    json_t *body = ctl_decode(f.data, f.len, CTL_REPLY, &err);

    assert_non_null(body);
    assert_true(json_is_true(json_object_get(body, "ok")));
    assert_non_null(json_object_get(body, "result"));
    json_decref(body);
    frame_free(&f);
}

static void test_reply_error_round_trip(void **state)
{
    struct frame f =
        encode(CTL_REPLY, ctl_reply_error("no such node '%s' (%d)", "n7", 7));
    err_t err = {{0}};
    json_t *body = ctl_decode(f.data, f.len, CTL_REPLY, &err);

    assert_non_null(body);
    assert_true(json_is_false(json_object_get(body, "ok")));
    assert_string_equal(json_string_value(json_object_get(body, "error")),
                        "no such node 'n7' (7)");
    json_decref(body);
    frame_free(&f);
}

/* An error text longer than ctl_reply_error's buffer, made of two-byte
 * UTF-8 characters, so that a cut at a fixed byte count can split one.
 */
static void test_reply_error_long_utf8_message(void **state)
{
    char msg[1201];
    json_t *body;

    for (size_t i = 0; i < 600; i++)
        memcpy(msg + 2 * i, "\xc3\xa9", 2); /* U+00E9 */
    msg[1200] = '\0';
    for (int shift = 0; shift < 2; shift++) {
        body = ctl_reply_error("%.*s%s", shift, "x", msg);
        assert_non_null(body);
        assert_true(json_is_false(json_object_get(body, "ok")));
        assert_true(json_is_string(json_object_get(body, "error")));
        json_decref(body);
    }
}

static void test_encode_rejects_non_object(void **state)
{
    json_t *a = json_array();
    unsigned char *out = NULL;
    size_t len = 0;
    err_t err = {{0}};

    assert_int_equal(ctl_encode(CTL_REQUEST, a, &out, &len, &err), -1);
    assert_null(out);
    assert_true(strlen(err.text) > 0);
    json_decref(a);
}

static void test_encode_rejects_body_too_large(void **state)
{
    char *pad = malloc(CTL_MAX_BODY + 1);
    json_t *body;
    unsigned char *out = NULL;
    size_t len = 0;
    err_t err = {{0}};

    assert_non_null(pad);
    memset(pad, 'a', CTL_MAX_BODY);
    pad[CTL_MAX_BODY] = '\0';
    body = json_pack("{s:s,s:s}", "cmd", "x", "pad", pad);
    assert_int_equal(ctl_encode(CTL_REQUEST, body, &out, &len, &err), -1);
    assert_null(out);
    assert_true(strlen(err.text) > 0);
    json_decref(body);
    free(pad);
}

static void check_every_truncation(struct frame f, enum ctl_kind kind)
{
    for (size_t n = 0; n < f.len; n++)
        assert_rejected(f.data, n, kind);
    frame_free(&f);
}

static void test_every_truncation_rejected(void **state)
{
    check_every_truncation(
        encode(CTL_REQUEST,
               ctl_request("drain", json_pack("{s:s}", "node", "n1"))),
        CTL_REQUEST);
    check_every_truncation(encode(CTL_REPLY, ctl_reply_ok(json_integer(42))),
                           CTL_REPLY);
    check_every_truncation(encode(CTL_REPLY, ctl_reply_error("boom")),
                           CTL_REPLY);
}

static void test_bad_signature_rejected(void **state)
{
    struct frame f = raw_text(CTL_REQUEST, "{\"cmd\":\"status\"}");

    f.data[0] = 'X';
    assert_frame_rejected(f, CTL_REQUEST);
}

static void test_bad_version_rejected(void **state)
{
    static const unsigned char versions[] = {0, CTL_VERSION + 1, 0xff};

    for (size_t i = 0; i < sizeof(versions); i++) {
        struct frame f = raw_text(CTL_REQUEST, "{\"cmd\":\"status\"}");
        f.data[4] = versions[i];
        assert_frame_rejected(f, CTL_REQUEST);
    }
}

static void test_wrong_kind_rejected(void **state)
{
    assert_frame_rejected(raw_text(CTL_REPLY, "{\"cmd\":\"status\"}"),
                          CTL_REQUEST);
    assert_frame_rejected(raw_text(CTL_REQUEST, "{\"ok\":true,\"result\":{}}"),
                          CTL_REPLY);
    assert_frame_rejected(raw_text(0, "{\"cmd\":\"status\"}"), CTL_REQUEST);
    assert_frame_rejected(raw_text(3, "{\"cmd\":\"status\"}"), CTL_REQUEST);
}

static void test_body_not_json_rejected(void **state)
{
    assert_frame_rejected(raw_text(CTL_REQUEST, "cmd=status"), CTL_REQUEST);
    assert_frame_rejected(raw_text(CTL_REQUEST, "{\"cmd\":\"status\""),
                          CTL_REQUEST);
    assert_frame_rejected(raw_text(CTL_REQUEST, ""), CTL_REQUEST);
    /* two objects back to back */
    assert_frame_rejected(raw_text(CTL_REQUEST, "{\"cmd\":\"a\"}{}"),
                          CTL_REQUEST);
}

static void test_body_array_rejected(void **state)
{
    assert_frame_rejected(raw_text(CTL_REQUEST, "[{\"cmd\":\"status\"}]"),
                          CTL_REQUEST);
    assert_frame_rejected(raw_text(CTL_REPLY, "[true]"), CTL_REPLY);
}

static void test_request_without_cmd_rejected(void **state)
{
    assert_frame_rejected(raw_text(CTL_REQUEST, "{\"args\":{}}"), CTL_REQUEST);
    assert_frame_rejected(raw_text(CTL_REQUEST, "{}"), CTL_REQUEST);
}

static void test_request_cmd_empty_rejected(void **state)
{
    assert_frame_rejected(raw_text(CTL_REQUEST, "{\"cmd\":\"\"}"), CTL_REQUEST);
}

static void test_request_cmd_not_string_rejected(void **state)
{
    assert_frame_rejected(raw_text(CTL_REQUEST, "{\"cmd\":7}"), CTL_REQUEST);
    assert_frame_rejected(raw_text(CTL_REQUEST, "{\"cmd\":null}"), CTL_REQUEST);
}

static void test_request_args_not_object_rejected(void **state)
{
    assert_frame_rejected(raw_text(CTL_REQUEST, "{\"cmd\":\"a\",\"args\":[]}"),
                          CTL_REQUEST);
    assert_frame_rejected(
        raw_text(CTL_REQUEST, "{\"cmd\":\"a\",\"args\":\"x\"}"), CTL_REQUEST);
    assert_frame_rejected(
        raw_text(CTL_REQUEST, "{\"cmd\":\"a\",\"args\":null}"), CTL_REQUEST);
}

static void test_reply_without_ok_rejected(void **state)
{
    assert_frame_rejected(raw_text(CTL_REPLY, "{\"result\":{}}"), CTL_REPLY);
    assert_frame_rejected(raw_text(CTL_REPLY, "{\"ok\":1,\"result\":{}}"),
                          CTL_REPLY);
}

static void test_error_reply_without_error_rejected(void **state)
{
    assert_frame_rejected(raw_text(CTL_REPLY, "{\"ok\":false}"), CTL_REPLY);
    assert_frame_rejected(raw_text(CTL_REPLY, "{\"ok\":false,\"error\":5}"),
                          CTL_REPLY);
}

static void test_ok_reply_without_result_rejected(void **state)
{
    assert_frame_rejected(raw_text(CTL_REPLY, "{\"ok\":true}"), CTL_REPLY);
}

static void test_nul_in_body_rejected(void **state)
{
    static const char body[] = "{\"cmd\":\"st\0atus\"}";

    /* sizeof - 1: the NUL inside the string, not the terminator */
    assert_frame_rejected(raw(CTL_REQUEST, body, sizeof(body) - 1),
                          CTL_REQUEST);
    /* a NUL after a complete object */
    assert_frame_rejected(raw(CTL_REQUEST, "{\"cmd\":\"a\"}", 12), CTL_REQUEST);
    /* and one smuggled in as an escape */
    assert_frame_rejected(raw_text(CTL_REQUEST, "{\"cmd\":\"a\\u0000b\"}"),
                          CTL_REQUEST);
}

static void test_invalid_utf8_rejected(void **state)
{
    assert_frame_rejected(raw_text(CTL_REQUEST, "{\"cmd\":\"\xff\"}"),
                          CTL_REQUEST);
    assert_frame_rejected(raw_text(CTL_REQUEST, "{\"cmd\":\"\xc3\"}"),
                          CTL_REQUEST);
}

/* A request body of exactly n bytes: {"cmd":"x","pad":"aaa..."} */
static struct frame request_of_size(size_t n)
{
    static const char head[] = "{\"cmd\":\"x\",\"pad\":\"";
    static const char tail[] = "\"}";
    size_t fixed = strlen(head) + strlen(tail);
    char *text = malloc(n);
    struct frame f;

    assert_non_null(text);
    assert_true(n > fixed);
    memcpy(text, head, strlen(head));
    memset(text + strlen(head), 'a', n - fixed);
    memcpy(text + n - strlen(tail), tail, strlen(tail));
    f = raw(CTL_REQUEST, text, n);
    free(text);
    return f;
}

static void test_body_at_max_accepted(void **state)
{
    struct frame f = request_of_size(CTL_MAX_BODY);
    err_t err = {{0}};
    json_t *body = ctl_decode(f.data, f.len, CTL_REQUEST, &err);

    assert_non_null(body);
    json_decref(body);
    frame_free(&f);
}

static void test_body_too_large_rejected(void **state)
{
    assert_frame_rejected(request_of_size(CTL_MAX_BODY + 1), CTL_REQUEST);
}

static void test_fuzz_random_buffers(void **state)
{
    unsigned char buf[FUZZ_MAXLEN];

    srand(FUZZ_SEED);
    for (int round = 0; round < FUZZ_ROUNDS; round++) {
        size_t len = (size_t)rand() % (FUZZ_MAXLEN + 1);
        for (size_t i = 0; i < len; i++)
            buf[i] = (unsigned char)rand();
        /* every other buffer gets a valid header to reach the body parser */
        if (round % 2 && len >= CTL_HEADER_LEN) {
            memcpy(buf, CTL_SIGNATURE, 4);
            buf[4] = CTL_VERSION;
            buf[5] = (unsigned char)(1 + rand() % 2);
        }
        decode_both_ways(buf, len);
    }
}

/* Replace, insert or delete one byte, biased towards JSON punctuation. */
static size_t mutate(unsigned char *buf, size_t len, size_t cap)
{
    static const char alphabet[] = "{}[]\":,\\ 0-1e.tfnul\x01\x80\xff";
    size_t pos = len ? (size_t)rand() % len : 0;
    unsigned char c = (unsigned char)alphabet[rand() % (sizeof(alphabet) - 1)];

    if (rand() % 2)
        c = (unsigned char)rand();

    switch (rand() % 4) {
    case 0: /* insert */
        if (len < cap) {
            memmove(buf + pos + 1, buf + pos, len - pos);
            buf[pos] = c;
            return len + 1;
        }
        return len;
    case 1: /* delete */
        if (len) {
            memmove(buf + pos, buf + pos + 1, len - pos - 1);
            return len - 1;
        }
        return len;
    case 2: /* flip a bit */
        if (len)
            buf[pos] ^= (unsigned char)(1u << (rand() % 8));
        return len;
    default: /* replace */
        if (len)
            buf[pos] = c;
        return len;
    }
}

static void fuzz_mutations(struct frame f, int *accepted)
{
    unsigned char buf[FUZZ_MAXLEN * 2];

    assert_true(f.len <= FUZZ_MAXLEN);
    for (int round = 0; round < FUZZ_ROUNDS; round++) {
        size_t len = f.len;
        int n = 1 + rand() % 4;
        memcpy(buf, f.data, f.len);
        while (n--)
            len = mutate(buf, len, sizeof(buf));
        *accepted += decode_both_ways(buf, len);
    }
    frame_free(&f);
}

static void test_fuzz_mutated_frames(void **state)
{
    int accepted = 0;

    srand(FUZZ_SEED + 1);
    fuzz_mutations(
        encode(CTL_REQUEST,
               ctl_request("join", json_pack("{s:s,s:[i,b],s:n}", "name",
                                             "node-1", "v", 1, 1, "z"))),
        &accepted);
    fuzz_mutations(encode(CTL_REPLY, ctl_reply_ok(json_pack("{s:f,s:s}", "x",
                                                            1.5, "y", "é"))),
                   &accepted);
    fuzz_mutations(encode(CTL_REPLY, ctl_reply_error("no quorum")), &accepted);
    /* the mutations must reach past the parser, not only fail early */
    assert_true(accepted > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_round_trip),
        cmocka_unit_test(test_request_without_args_round_trip),
        cmocka_unit_test(test_reply_ok_round_trip),
        cmocka_unit_test(test_reply_ok_without_result_round_trip),
        cmocka_unit_test(test_reply_error_round_trip),
        cmocka_unit_test(test_reply_error_long_utf8_message),
        cmocka_unit_test(test_encode_rejects_non_object),
        cmocka_unit_test(test_encode_rejects_body_too_large),
        cmocka_unit_test(test_every_truncation_rejected),
        cmocka_unit_test(test_bad_signature_rejected),
        cmocka_unit_test(test_bad_version_rejected),
        cmocka_unit_test(test_wrong_kind_rejected),
        cmocka_unit_test(test_body_not_json_rejected),
        cmocka_unit_test(test_body_array_rejected),
        cmocka_unit_test(test_request_without_cmd_rejected),
        cmocka_unit_test(test_request_cmd_empty_rejected),
        cmocka_unit_test(test_request_cmd_not_string_rejected),
        cmocka_unit_test(test_request_args_not_object_rejected),
        cmocka_unit_test(test_reply_without_ok_rejected),
        cmocka_unit_test(test_error_reply_without_error_rejected),
        cmocka_unit_test(test_ok_reply_without_result_rejected),
        cmocka_unit_test(test_nul_in_body_rejected),
        cmocka_unit_test(test_invalid_utf8_rejected),
        cmocka_unit_test(test_body_at_max_accepted),
        cmocka_unit_test(test_body_too_large_rejected),
        cmocka_unit_test(test_fuzz_random_buffers),
        cmocka_unit_test(test_fuzz_mutated_frames),
    };

    return cmocka_run_group_tests_name("ctl", tests, NULL, NULL);
}
