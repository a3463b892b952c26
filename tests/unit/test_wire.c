/* test_wire.c - the peer protocol codec (proto/wire.c)
 *
 * Golden frames written out byte by byte (a round trip alone cannot see
 * two symmetric mistakes), a round trip of every message type, every
 * truncation, every one-byte change of the header, trailing bytes, each
 * limit on both sides of its edge, and seeded random frames.  A frame the
 * decoder accepts must re-encode to the very same bytes.  Frames under
 * test are decoded from heap copies of exactly their length, so
 * AddressSanitizer catches a read past the end; LeakSanitizer checks that
 * failed decodes free what they allocated.
 */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "proto/wire.h"

/* Random frames replay exactly from this seed (splitmix64 below). */
enum { FUZZ_SEED = 20240611, FUZZ_ROUNDS = 100000, FUZZ_MAXLEN = 160 };

/* Offsets in a Raft frame: header, six u64, then reject and n_entries. */
enum {
    OFF_TYPE = 4,
    OFF_SENDER = 5,
    OFF_REJECT = WIRE_HEADER_LEN + 6 * 8,
    OFF_N_ENTRIES = OFF_REJECT + 1,
    RAFT_FIXED_LEN = OFF_N_ENTRIES + 4,
    ENTRY_FIXED_LEN = 8 + 8 + 1 + 4,
};

/* Message shapes under test; several per type where the body varies. */
enum case_id {
    C_PREVOTE,
    C_PREVOTE_RESP,
    C_VOTE,
    C_VOTE_RESP,
    C_APPEND,
    C_APPEND_HEARTBEAT,
    C_APPEND_RESP,
    C_TIMEOUT_NOW,
    C_JOIN_REQ,
    C_JOIN_REQ_EDGE_TEXT,
    C_JOIN_RESP_OK,
    C_JOIN_RESP_REFUSED,
    C_PROPOSE,
    C_PROPOSE_EMPTY,
    C_PROPOSE_RESP_OK,
    C_PROPOSE_RESP_ERROR,
    C_SWIM_PING,
    C_SWIM_SYNC,
    C_SWIM_GOSSIP_EMPTY,
    C_STATE_CHUNK,
    C_STATE_CHUNK_EMPTY,
    C_STATE_ACK_OK,
    C_STATE_ACK_ERROR,
    N_CASES
};

struct wcase {
    enum case_id id;
    enum wire_type type;
};

static struct wcase cases[N_CASES] = {
    {C_PREVOTE, WIRE_PREVOTE},
    {C_PREVOTE_RESP, WIRE_PREVOTE_RESP},
    {C_VOTE, WIRE_VOTE},
    {C_VOTE_RESP, WIRE_VOTE_RESP},
    {C_APPEND, WIRE_APPEND},
    {C_APPEND_HEARTBEAT, WIRE_APPEND},
    {C_APPEND_RESP, WIRE_APPEND_RESP},
    {C_TIMEOUT_NOW, WIRE_TIMEOUT_NOW},
    {C_JOIN_REQ, WIRE_JOIN_REQ},
    {C_JOIN_REQ_EDGE_TEXT, WIRE_JOIN_REQ},
    {C_JOIN_RESP_OK, WIRE_JOIN_RESP},
    {C_JOIN_RESP_REFUSED, WIRE_JOIN_RESP},
    {C_PROPOSE, WIRE_PROPOSE},
    {C_PROPOSE_EMPTY, WIRE_PROPOSE},
    {C_PROPOSE_RESP_OK, WIRE_PROPOSE_RESP},
    {C_PROPOSE_RESP_ERROR, WIRE_PROPOSE_RESP},
    {C_SWIM_PING, WIRE_SWIM},
    {C_SWIM_SYNC, WIRE_SWIM},
    {C_SWIM_GOSSIP_EMPTY, WIRE_SWIM},
    {C_STATE_CHUNK, WIRE_STATE_CHUNK},
    {C_STATE_CHUNK_EMPTY, WIRE_STATE_CHUNK},
    {C_STATE_ACK_OK, WIRE_STATE_ACK},
    {C_STATE_ACK_ERROR, WIRE_STATE_ACK},
};

static const enum wire_type all_types[] = {
    WIRE_PREVOTE,     WIRE_PREVOTE_RESP, WIRE_VOTE,         WIRE_VOTE_RESP,
    WIRE_APPEND,      WIRE_APPEND_RESP,  WIRE_TIMEOUT_NOW,  WIRE_JOIN_REQ,
    WIRE_JOIN_RESP,   WIRE_PROPOSE,      WIRE_PROPOSE_RESP, WIRE_SWIM,
    WIRE_STATE_CHUNK, WIRE_STATE_ACK,
};

struct frame {
    unsigned char *data;
    size_t len;
};

static uint64_t rng_state;

static uint64_t rng(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);

    assert_non_null(p);
    return p;
}

/* n bytes of a pattern that includes NUL and 0xff. */
static unsigned char *pattern(size_t n, unsigned seed)
{
    unsigned char *p = xmalloc(n);

    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(i * 37 + seed);
    return p;
}

static void fill_text(char *dst, char c, size_t n)
{
    memset(dst, c, n);
    dst[n] = '\0';
}

/* Hand-built frames, independent of wire.c. */

struct bytes {
    unsigned char *d;
    size_t n, cap;
};

static void b_mem(struct bytes *b, const void *p, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2;
        b->d = realloc(b->d, b->cap);
        assert_non_null(b->d);
    }
    if (n)
        memcpy(b->d + b->n, p, n);
    b->n += n;
}

static void b_u8(struct bytes *b, uint8_t v)
{
    b_mem(b, &v, 1);
}

static void b_u32(struct bytes *b, uint32_t v)
{
    for (int s = 24; s >= 0; s -= 8)
        b_u8(b, (uint8_t)(v >> s));
}

static void b_u64(struct bytes *b, uint64_t v)
{
    for (int s = 56; s >= 0; s -= 8)
        b_u8(b, (uint8_t)(v >> s));
}

static void b_header(struct bytes *b, uint8_t type, uint64_t from)
{
    b_mem(b, "PDW", 3);
    b_u8(b, 1);
    b_u8(b, type);
    b_u64(b, from);
}

/* The fixed part of a Raft body with n_entries = n. */
static void b_raft(struct bytes *b, uint8_t type, uint32_t n)
{
    b_header(b, type, 1);
    for (int i = 0; i < 6; i++)
        b_u64(b, (uint64_t)i + 10);
    b_u8(b, 0);
    b_u32(b, n);
}

static void b_entry(struct bytes *b, uint64_t index, uint32_t len)
{
    b_u64(b, 3);
    b_u64(b, index);
    b_u8(b, 16);
    b_u32(b, len);
    for (uint32_t i = 0; i < len; i++)
        b_u8(b, (uint8_t)i);
}

static void b_swim_update(struct bytes *b, uint64_t id, uint8_t state)
{
    b_u64(b, id);
    b_u64(b, 7); /* incarnation */
    b_u8(b, state);
    b_u64(b, state == WIRE_SWIM_SUSPECT ? 3 : 0);
}

/* A SWIM frame; the state of the last update and of the last sync
 * entry is `last_state`, the others are ALIVE.
 */
static void b_swim(struct bytes *b, uint8_t type, uint8_t reply,
                   uint8_t n_updates, uint32_t n_sync, uint8_t last_state)
{
    b_header(b, WIRE_SWIM, 1);
    b_u8(b, type);
    b_u64(b, 2);  /* to */
    b_u32(b, 99); /* seq */
    b_u64(b, 2);  /* target */
    b_u8(b, reply);
    b_u8(b, n_updates);
    for (uint32_t i = 0; i < n_updates; i++)
        b_swim_update(b, 10 + i, i + 1 == n_updates ? last_state : 0);
    b_u32(b, n_sync);
    for (uint32_t i = 0; i < n_sync; i++)
        b_swim_update(b, 100 + i, i + 1 == n_sync ? last_state : 0);
}

/* A state chunk whose data is len zero octets. */
static void b_chunk(struct bytes *b, uint64_t total, uint64_t offset,
                    uint32_t len)
{
    static const unsigned char digest[WIRE_DIGEST_BYTES] = {0xd1, 0xd2};

    b_header(b, WIRE_STATE_CHUNK, 1);
    b_u64(b, 5); /* gen */
    b_u64(b, total);
    b_u64(b, offset);
    b_mem(b, digest, sizeof(digest));
    b_u32(b, len);
    for (uint32_t i = 0; i < len; i++)
        b_u8(b, 0);
}

/* Representative messages; pointers are owned, as wire_msg_fini wants. */

static void build_swim(struct wire_msg *m, enum case_id id)
{
    struct wire_swim *w = &m->u.swim;

    m->from = 0x1000 + id;
    w->to = UINT64_MAX - 1;
    w->seq = 0xfedcba98u;
    w->target = 0x8000000000000001ull;
    switch (id) {
    case C_SWIM_PING:
        w->type = WIRE_SWIM_PING;
        w->n_updates = 4;
        for (uint8_t i = 0; i < 4; i++)
            w->updates[i] = (struct wire_swim_update){
                .id = i + 1, .incarnation = UINT64_MAX - i, .state = i};
        w->updates[1].from = 9; /* the accuser of a SUSPECT */
        break;
    case C_SWIM_SYNC:
        w->type = WIRE_SWIM_SYNC;
        w->reply = true;
        w->n_updates = WIRE_MAX_PIGGYBACK;
        for (uint8_t i = 0; i < WIRE_MAX_PIGGYBACK; i++)
            w->updates[i] =
                (struct wire_swim_update){.id = 0x0101010101010101ull * i,
                                          .incarnation = i,
                                          .state = i % 4,
                                          .from = i};
        w->n_sync = 6;
        w->sync = calloc(6, sizeof(*w->sync));
        assert_non_null(w->sync);
        for (uint32_t i = 0; i < 6; i++)
            w->sync[i] = (struct wire_swim_update){
                .id = 40 + i,
                .incarnation = i * 1000,
                .state = i % 4,
                .from = i % 4 == WIRE_SWIM_SUSPECT ? 41 : 0};
        break;
    default: /* a GOSSIP with nothing: every field zero */
        m->from = 1;
        *w = (struct wire_swim){.type = WIRE_SWIM_GOSSIP};
        break;
    }
}

static void build_state(struct wire_msg *m, enum case_id id)
{
    struct wire_state_chunk *c = &m->u.state_chunk;

    m->from = 1;
    switch (id) {
    case C_STATE_CHUNK:
        c->gen = 0x0123456789abcdefull;
        c->total = 5000;
        c->offset = 4700;
        for (int i = 0; i < WIRE_DIGEST_BYTES; i++)
            c->digest[i] = (unsigned char)(0x80 + i);
        c->len = 300; /* the last chunk: offset + len == total */
        c->data = pattern(300, 5);
        break;
    case C_STATE_CHUNK_EMPTY:
        c->gen = 1; /* an empty archive: total 0, no data */
        memset(c->digest, 0xee, WIRE_DIGEST_BYTES);
        break;
    case C_STATE_ACK_OK:
        m->u.state_ack.gen = 12;
        m->u.state_ack.installed = true;
        break;
    default:
        m->u.state_ack.gen = 11;
        strcpy(m->u.state_ack.error, "digest mismatch");
        break;
    }
}

static void build_raft(struct wire_msg *m, enum case_id id)
{
    struct wire_raft *r = &m->u.raft;

    m->from = 0x0102030405060708ull + id;
    r->to = 2;
    r->term = UINT64_MAX - id;
    r->index = 41;
    r->log_term = 0x8000000000000000ull;
    r->commit = 40;
    r->hint = id;
    r->reject = id % 2 == 1;
    if (id != C_APPEND)
        return;
    /* binary data, empty data (NULL and not), a large one, one NUL */
    r->n_entries = 5;
    r->entries = calloc(5, sizeof(*r->entries));
    assert_non_null(r->entries);
    for (uint32_t i = 0; i < 5; i++) {
        r->entries[i].index = 42 + i;
        r->entries[i].term = i < 2 ? 3 : UINT64_MAX;
    }
    r->entries[0].type = 2;
    r->entries[1].type = 16;
    r->entries[1].len = 7;
    r->entries[1].data = xmalloc(7);
    memcpy(r->entries[1].data, "\0\1\2\xff\0\x80\n", 7);
    r->entries[2].type = 1;
    r->entries[2].data = xmalloc(1); /* zero length, still owned */
    r->entries[3].type = 255;
    r->entries[3].len = 1000;
    r->entries[3].data = pattern(1000, 3);
    r->entries[4].len = 1;
    r->entries[4].data = xmalloc(1);
    r->entries[4].data[0] = 0;
}

static void build(struct wire_msg *m, enum case_id id)
{
    struct wire_join_req *jq = &m->u.join_req;
    struct wire_join_resp *js = &m->u.join_resp;

    memset(m, 0, sizeof(*m));
    m->type = cases[id].type;
    switch (id) {
    case C_JOIN_REQ:
        m->from = 0; /* a joiner has no id yet */
        strcpy(jq->token_id, "tok-0123abcd");
        for (int i = 0; i < WIRE_KEY_BYTES; i++)
            jq->pubkey[i] = (unsigned char)i;
        for (int i = 0; i < WIRE_MAC_BYTES; i++)
            jq->mac[i] = (unsigned char)(0xff - i);
        strcpy(jq->name, "node-17.example.org");
        strcpy(jq->address, "10.1.2.3:7946");
        jq->cpus = 128;
        jq->memory_mb = 1ull << 40;
        break;
    case C_JOIN_REQ_EDGE_TEXT:
        fill_text(jq->token_id, 't', WIRE_MAX_TEXT);
        fill_text(jq->name, 'n', WIRE_MAX_TEXT);
        jq->address[0] = '\0';
        jq->cpus = UINT32_MAX;
        jq->memory_mb = UINT64_MAX;
        break;
    case C_JOIN_RESP_OK:
        m->from = 1;
        js->ok = true;
        js->node_id = 17;
        js->sealed_len = 80;
        js->sealed = pattern(80, 9);
        strcpy(js->leader_address, "[fd00::1]:7946");
        memset(js->leader_pubkey, 0xa5, WIRE_KEY_BYTES);
        js->leader_id = 1;
        break;
    case C_JOIN_RESP_REFUSED:
        m->from = 1;
        strcpy(js->error, "token expired");
        break;
    case C_PROPOSE:
        m->from = 3;
        m->u.propose.request_id = 0xdeadbeefcafef00dull;
        m->u.propose.type = 16;
        m->u.propose.len = 300;
        m->u.propose.data = pattern(300, 1);
        break;
    case C_PROPOSE_EMPTY:
        m->from = 3;
        m->u.propose.request_id = 1;
        m->u.propose.type = 17;
        break;
    case C_PROPOSE_RESP_OK:
        m->from = 1;
        m->u.propose_resp.request_id = 0xdeadbeefcafef00dull;
        m->u.propose_resp.ok = true;
        m->u.propose_resp.index = 4242;
        break;
    case C_PROPOSE_RESP_ERROR:
        m->from = 1;
        m->u.propose_resp.request_id = 2;
        strcpy(m->u.propose_resp.error, "not the leader");
        break;
    case C_SWIM_PING:
    case C_SWIM_SYNC:
    case C_SWIM_GOSSIP_EMPTY:
        build_swim(m, id);
        break;
    case C_STATE_CHUNK:
    case C_STATE_CHUNK_EMPTY:
    case C_STATE_ACK_OK:
    case C_STATE_ACK_ERROR:
        build_state(m, id);
        break;
    default:
        build_raft(m, id);
        break;
    }
}

static void assert_entry_equal(const struct wire_entry *a,
                               const struct wire_entry *b)
{
    assert_true(a->term == b->term);
    assert_true(a->index == b->index);
    assert_int_equal(a->type, b->type);
    assert_int_equal(a->len, b->len);
    if (a->len)
        assert_memory_equal(a->data, b->data, a->len);
}

static void assert_raft_equal(const struct wire_raft *a,
                              const struct wire_raft *b)
{
    assert_true(a->to == b->to);
    assert_true(a->term == b->term);
    assert_true(a->index == b->index);
    assert_true(a->log_term == b->log_term);
    assert_true(a->commit == b->commit);
    assert_true(a->hint == b->hint);
    assert_int_equal(a->reject, b->reject);
    assert_int_equal(a->n_entries, b->n_entries);
    for (uint32_t i = 0; i < a->n_entries; i++)
        assert_entry_equal(&a->entries[i], &b->entries[i]);
}

static void assert_join_resp_equal(const struct wire_join_resp *a,
                                   const struct wire_join_resp *b)
{
    assert_int_equal(a->ok, b->ok);
    if (!a->ok) {
        assert_string_equal(a->error, b->error);
        return;
    }
    assert_true(a->node_id == b->node_id);
    assert_int_equal(a->sealed_len, b->sealed_len);
    if (a->sealed_len)
        assert_memory_equal(a->sealed, b->sealed, a->sealed_len);
    assert_string_equal(a->leader_address, b->leader_address);
    assert_memory_equal(a->leader_pubkey, b->leader_pubkey, WIRE_KEY_BYTES);
    assert_true(a->leader_id == b->leader_id);
}

static void assert_swim_update_equal(const struct wire_swim_update *a,
                                     const struct wire_swim_update *b)
{
    assert_true(a->id == b->id);
    assert_true(a->incarnation == b->incarnation);
    assert_int_equal(a->state, b->state);
    assert_true(a->from == b->from);
}

static void assert_swim_equal(const struct wire_swim *a,
                              const struct wire_swim *b)
{
    assert_int_equal(a->type, b->type);
    assert_true(a->to == b->to);
    assert_int_equal(a->seq, b->seq);
    assert_true(a->target == b->target);
    assert_int_equal(a->reply, b->reply);
    assert_int_equal(a->n_updates, b->n_updates);
    for (uint8_t i = 0; i < a->n_updates; i++)
        assert_swim_update_equal(&a->updates[i], &b->updates[i]);
    assert_int_equal(a->n_sync, b->n_sync);
    for (uint32_t i = 0; i < a->n_sync; i++)
        assert_swim_update_equal(&a->sync[i], &b->sync[i]);
}

static void assert_chunk_equal(const struct wire_state_chunk *a,
                               const struct wire_state_chunk *b)
{
    assert_true(a->gen == b->gen);
    assert_true(a->total == b->total);
    assert_true(a->offset == b->offset);
    assert_memory_equal(a->digest, b->digest, WIRE_DIGEST_BYTES);
    assert_int_equal(a->len, b->len);
    if (a->len)
        assert_memory_equal(a->data, b->data, a->len);
}

static void assert_msg_equal(const struct wire_msg *a, const struct wire_msg *b)
{
    const struct wire_join_req *qa = &a->u.join_req, *qb = &b->u.join_req;

    assert_int_equal(a->type, b->type);
    assert_true(a->from == b->from);
    switch (a->type) {
    case WIRE_JOIN_REQ:
        assert_string_equal(qa->token_id, qb->token_id);
        assert_memory_equal(qa->pubkey, qb->pubkey, WIRE_KEY_BYTES);
        assert_memory_equal(qa->mac, qb->mac, WIRE_MAC_BYTES);
        assert_string_equal(qa->name, qb->name);
        assert_string_equal(qa->address, qb->address);
        assert_int_equal(qa->cpus, qb->cpus);
        assert_true(qa->memory_mb == qb->memory_mb);
        break;
    case WIRE_JOIN_RESP:
        assert_join_resp_equal(&a->u.join_resp, &b->u.join_resp);
        break;
    case WIRE_PROPOSE:
        assert_true(a->u.propose.request_id == b->u.propose.request_id);
        assert_int_equal(a->u.propose.type, b->u.propose.type);
        assert_int_equal(a->u.propose.len, b->u.propose.len);
        if (a->u.propose.len)
            assert_memory_equal(a->u.propose.data, b->u.propose.data,
                                a->u.propose.len);
        break;
    case WIRE_PROPOSE_RESP:
        assert_true(a->u.propose_resp.request_id ==
                    b->u.propose_resp.request_id);
        assert_int_equal(a->u.propose_resp.ok, b->u.propose_resp.ok);
        assert_true(a->u.propose_resp.index == b->u.propose_resp.index);
        assert_string_equal(a->u.propose_resp.error, b->u.propose_resp.error);
        break;
    case WIRE_SWIM:
        assert_swim_equal(&a->u.swim, &b->u.swim);
        break;
    case WIRE_STATE_CHUNK:
        assert_chunk_equal(&a->u.state_chunk, &b->u.state_chunk);
        break;
    case WIRE_STATE_ACK:
        assert_true(a->u.state_ack.gen == b->u.state_ack.gen);
        assert_int_equal(a->u.state_ack.installed, b->u.state_ack.installed);
        assert_string_equal(a->u.state_ack.error, b->u.state_ack.error);
        break;
    default:
        assert_raft_equal(&a->u.raft, &b->u.raft);
        break;
    }
}

static struct frame encode_ok(const struct wire_msg *m)
{
    struct frame f = {0};
    err_t err = {{0}};

    if (wire_encode(m, &f.data, &f.len, &err) < 0)
        fail_msg("encode %s: %s", wire_type_name(m->type), err.text);
    assert_non_null(f.data);
    return f;
}

static struct frame encode_case(enum case_id id)
{
    struct wire_msg m;
    struct frame f;

    build(&m, id);
    f = encode_ok(&m);
    wire_msg_fini(&m);
    return f;
}

static void frame_free(struct frame *f)
{
    free(f->data);
    f->data = NULL;
}

static void assert_encodes(const struct wire_msg *m)
{
    struct frame f = encode_ok(m);

    frame_free(&f);
}

/* Decode from an exactly sized copy into a message full of garbage:
 * wire_decode must neither read past the end nor trust what *m held.
 */
static int decode_copy(const void *buf, size_t len, struct wire_msg *m,
                       err_t *err)
{
    unsigned char *copy = xmalloc(len);
    int rc, saved;

    if (len)
        memcpy(copy, buf, len);
    memset(m, 0x5a, sizeof(*m));
    errno = 0;
    rc = wire_decode(copy, len, m, err);
    saved = errno;
    free(copy);
    errno = saved;
    return rc;
}

static bool is_zeroed(const struct wire_msg *m)
{
    static const struct wire_msg zero;

    return memcmp(m, &zero, sizeof(zero)) == 0;
}

static void assert_rejected(const void *buf, size_t len)
{
    struct wire_msg m;
    err_t err = {{0}};

    errno = 0;
    if (decode_copy(buf, len, &m, &err) == 0) {
        wire_msg_fini(&m);
        fail_msg("frame of %zu bytes accepted", len);
    }
    assert_int_equal(errno, EPROTO);
    assert_true(is_zeroed(&m));
    assert_true(strncmp(err.text, "malformed ", 10) == 0);
}

static void assert_bytes_rejected(struct bytes *b)
{
    assert_rejected(b->d, b->n);
    free(b->d);
    memset(b, 0, sizeof(*b));
}

/* Accepted frames must re-encode to the same bytes.  Returns 1 if
 * accepted, 0 if rejected (which must leave *m zeroed).
 */
static int decode_canonical(const void *buf, size_t len)
{
    struct wire_msg m;
    struct frame f;
    err_t err = {{0}};

    if (decode_copy(buf, len, &m, &err) < 0) {
        assert_int_equal(errno, EPROTO);
        assert_true(is_zeroed(&m));
        return 0;
    }
    f = encode_ok(&m);
    assert_int_equal(f.len, len);
    assert_memory_equal(f.data, buf, len);
    frame_free(&f);
    wire_msg_fini(&m);
    assert_true(is_zeroed(&m));
    return 1;
}

static void assert_bytes_accepted(struct bytes *b)
{
    assert_int_equal(decode_canonical(b->d, b->n), 1);
    free(b->d);
    memset(b, 0, sizeof(*b));
}

/* Encode must fail without handing out a buffer. */
static void assert_encode_refused(const struct wire_msg *m)
{
    unsigned char *out = NULL;
    size_t len = 0;
    err_t err = {{0}};

    assert_int_equal(wire_encode(m, &out, &len, &err), -1);
    assert_null(out);
    assert_true(strncmp(err.text, "cannot encode ", 14) == 0);
}

/* Where text s starts in f, just after its length octet. */
static size_t text_offset(const struct frame *f, const char *s)
{
    size_t n = strlen(s);

    for (size_t i = 1; i + n <= f->len; i++)
        if (f->data[i - 1] == n && memcmp(f->data + i, s, n) == 0)
            return i;
    fail_msg("text '%s' not in frame", s);
    return 0;
}

/* Golden frames */

static void test_golden_propose_resp(void **state)
{
    static const unsigned char want[] = {
        'P', 'D', 'W',  1,    19,   1,    2,    3,    4,    5,    6,
        7,   8,   0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0,
        0,   0,   0,    0,    0,    0,    1,    9,    2,    'n',  'o',
    };
    struct wire_msg m = {.type = WIRE_PROPOSE_RESP,
                         .from = 0x0102030405060708ull};
    struct frame f;

    m.u.propose_resp.request_id = 0x1122334455667788ull;
    m.u.propose_resp.index = 0x109;
    strcpy(m.u.propose_resp.error, "no");
    f = encode_ok(&m);
    assert_int_equal(f.len, sizeof(want));
    assert_memory_equal(f.data, want, sizeof(want));
    frame_free(&f);
}

static void test_golden_append(void **state)
{
    /* clang-format off */
    static const unsigned char want[] = {
        'P', 'D', 'W', 1, 5, 0, 0, 0, 0, 0, 0, 0, 1, /* header, from 1 */
        0, 0, 0, 0, 0, 0, 0, 2,                      /* to */
        0, 0, 0, 0, 0, 0, 0, 3,                      /* term */
        0, 0, 0, 0, 0, 0, 0, 4,                      /* prev index */
        0, 0, 0, 0, 0, 0, 0, 5,                      /* log_term */
        0, 0, 0, 0, 0, 0, 0, 6,                      /* commit */
        0, 0, 0, 0, 0, 0, 0, 7,                      /* hint */
        0,                                           /* reject */
        0, 0, 0, 1,                                  /* n_entries */
        0, 0, 0, 0, 0, 0, 0, 3,                      /* entry term */
        0, 0, 0, 0, 0, 0, 0, 5,                      /* entry index */
        16,                                          /* entry type */
        0, 0, 0, 2, 0xab, 0xcd,                      /* len, data */
    };
    /* clang-format on */
    unsigned char data[2] = {0xab, 0xcd};
    struct wire_entry e = {
        .term = 3, .index = 5, .type = 16, .len = 2, .data = data};
    struct wire_msg m = {.type = WIRE_APPEND, .from = 1};
    struct wire_msg got;
    struct frame f;
    err_t err = {{0}};

    m.u.raft = (struct wire_raft){.to = 2,
                                  .term = 3,
                                  .index = 4,
                                  .log_term = 5,
                                  .commit = 6,
                                  .hint = 7,
                                  .n_entries = 1,
                                  .entries = &e};
    f = encode_ok(&m); /* m's pointers are borrowed: no fini */
    assert_int_equal(f.len, sizeof(want));
    assert_memory_equal(f.data, want, sizeof(want));
    assert_int_equal(wire_decode(want, sizeof(want), &got, &err), 0);
    assert_msg_equal(&m, &got);
    wire_msg_fini(&got);
    frame_free(&f);
}

static void test_golden_join(void **state)
{
    static const unsigned char refused[] = {
        'P', 'D', 'W', 1, 17, 0, 0, 0, 0, 0, 0, 0, 1, 0, 3, 'b', 'a', 'd',
    };
    struct bytes b = {0};
    struct wire_msg m;
    err_t err = {{0}};
    unsigned char key[WIRE_KEY_BYTES];

    assert_int_equal(wire_decode(refused, sizeof(refused), &m, &err), 0);
    assert_int_equal(m.type, WIRE_JOIN_RESP);
    assert_false(m.u.join_resp.ok);
    assert_string_equal(m.u.join_resp.error, "bad");
    wire_msg_fini(&m);

    memset(key, 0x01, sizeof(key));
    b_header(&b, WIRE_JOIN_REQ, 0);
    b_u8(&b, 1);
    b_mem(&b, "t", 1);
    b_mem(&b, key, sizeof(key)); /* pubkey */
    memset(key, 0x02, sizeof(key));
    b_mem(&b, key, sizeof(key)); /* mac */
    b_u8(&b, 1);
    b_mem(&b, "n", 1);
    b_u8(&b, 3);
    b_mem(&b, "a:1", 3);
    b_u32(&b, 4);
    b_u64(&b, 8192);
    assert_int_equal(wire_decode(b.d, b.n, &m, &err), 0);
    assert_string_equal(m.u.join_req.token_id, "t");
    assert_int_equal(m.u.join_req.pubkey[31], 1);
    assert_int_equal(m.u.join_req.mac[0], 2);
    assert_string_equal(m.u.join_req.name, "n");
    assert_string_equal(m.u.join_req.address, "a:1");
    assert_int_equal(m.u.join_req.cpus, 4);
    assert_true(m.u.join_req.memory_mb == 8192);
    wire_msg_fini(&m);
    free(b.d);
}

static void test_golden_swim(void **state)
{
    /* clang-format off */
    static const unsigned char want[] = {
        'P', 'D', 'W', 1, 20, 0, 0, 0, 0, 0, 0, 0, 1, /* header, from 1 */
        1,                                            /* ping */
        0, 0, 0, 0, 0, 0, 0, 2,                       /* to */
        0, 0, 0, 7,                                   /* seq */
        0, 0, 0, 0, 0, 0, 0, 2,                       /* target */
        0,                                            /* reply */
        1,                                            /* n_updates */
        0, 0, 0, 0, 0, 0, 0, 3,                       /* id */
        0, 0, 0, 0, 0, 0, 0, 4,                       /* incarnation */
        1,                                            /* suspect */
        0, 0, 0, 0, 0, 0, 0, 1,                       /* from (accuser) */
        0, 0, 0, 0,                                   /* n_sync */
    };
    /* clang-format on */
    struct wire_msg m = {.type = WIRE_SWIM, .from = 1}, got;
    struct frame f;
    err_t err = {{0}};

    m.u.swim = (struct wire_swim){
        .type = WIRE_SWIM_PING, .to = 2, .seq = 7, .target = 2, .n_updates = 1};
    m.u.swim.updates[0] = (struct wire_swim_update){
        .id = 3, .incarnation = 4, .state = WIRE_SWIM_SUSPECT, .from = 1};
    f = encode_ok(&m);
    assert_int_equal(f.len, sizeof(want));
    assert_memory_equal(f.data, want, sizeof(want));
    assert_int_equal(wire_size(&m), sizeof(want));
    assert_int_equal(wire_decode(want, sizeof(want), &got, &err), 0);
    assert_msg_equal(&m, &got);
    assert_null(got.u.swim.sync);
    wire_msg_fini(&got);
    frame_free(&f);
}

static void test_golden_state(void **state)
{
    /* clang-format off */
    static const unsigned char chunk[] = {
        'P', 'D', 'W', 1, 21, 0, 0, 0, 0, 0, 0, 0, 1, /* header, from 1 */
        0, 0, 0, 0, 0, 0, 0, 2,                       /* gen */
        0, 0, 0, 0, 0, 0, 0, 10,                      /* total */
        0, 0, 0, 0, 0, 0, 0, 8,                       /* offset */
        0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa,
        0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa,
        0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa,
        0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, /* digest */
        0, 0, 0, 2, 'h', 'i',                         /* data */
    };
    static const unsigned char ack[] = {
        'P', 'D', 'W', 1, 22, 0, 0, 0, 0, 0, 0, 0, 6, /* header, from 6 */
        0, 0, 0, 0, 0, 0, 0, 3,                       /* gen */
        0,                                            /* not installed */
        2, 'n', 'o',                                  /* error */
    };
    /* clang-format on */
    unsigned char data[2] = {'h', 'i'};
    struct wire_msg m = {.type = WIRE_STATE_CHUNK, .from = 1}, got;
    struct frame f;
    err_t err = {{0}};

    m.u.state_chunk = (struct wire_state_chunk){
        .gen = 2, .total = 10, .offset = 8, .len = 2, .data = data};
    memset(m.u.state_chunk.digest, 0xaa, WIRE_DIGEST_BYTES);
    f = encode_ok(&m); /* data is borrowed: no fini */
    assert_int_equal(f.len, sizeof(chunk));
    assert_memory_equal(f.data, chunk, sizeof(chunk));
    assert_int_equal(wire_decode(chunk, sizeof(chunk), &got, &err), 0);
    assert_msg_equal(&m, &got);
    wire_msg_fini(&got);
    frame_free(&f);

    m = (struct wire_msg){.type = WIRE_STATE_ACK, .from = 6};
    m.u.state_ack.gen = 3;
    strcpy(m.u.state_ack.error, "no");
    f = encode_ok(&m);
    assert_int_equal(f.len, sizeof(ack));
    assert_memory_equal(f.data, ack, sizeof(ack));
    assert_int_equal(wire_decode(ack, sizeof(ack), &got, &err), 0);
    assert_msg_equal(&m, &got);
    wire_msg_fini(&got);
    frame_free(&f);
}

/* Round trips */

static void test_round_trip(void **state)
{
    const struct wcase *c = *state;
    struct wire_msg m, got;
    struct frame f, again;
    err_t err = {{0}};

    build(&m, c->id);
    f = encode_ok(&m);
    assert_memory_equal(f.data, WIRE_SIGNATURE, 3);
    assert_int_equal(f.data[3], WIRE_VERSION);
    assert_int_equal(f.data[OFF_TYPE], c->type);
    for (int i = 0; i < 8; i++)
        assert_int_equal(f.data[OFF_SENDER + i],
                         (uint8_t)(m.from >> (56 - 8 * i)));
    assert_int_equal(decode_copy(f.data, f.len, &got, &err), 0);
    assert_msg_equal(&m, &got);
    again = encode_ok(&got);
    assert_int_equal(again.len, f.len);
    assert_memory_equal(again.data, f.data, f.len);
    wire_msg_fini(&got);
    wire_msg_fini(&m);
    frame_free(&again);
    frame_free(&f);
}

/* A refusal carries only the error; the rest decodes as zero. */
static void test_join_resp_refused_carries_only_error(void **state)
{
    struct wire_msg m, got;
    struct frame f;
    err_t err = {{0}};

    build(&m, C_JOIN_RESP_REFUSED);
    m.u.join_resp.node_id = 99;
    m.u.join_resp.leader_id = 98;
    f = encode_ok(&m);
    assert_int_equal(f.len, WIRE_HEADER_LEN + 1 + 1 + strlen("token expired"));
    assert_int_equal(wire_decode(f.data, f.len, &got, &err), 0);
    assert_string_equal(got.u.join_resp.error, "token expired");
    assert_true(got.u.join_resp.node_id == 0);
    assert_true(got.u.join_resp.leader_id == 0);
    assert_null(got.u.join_resp.sealed);
    wire_msg_fini(&got);
    wire_msg_fini(&m);
    frame_free(&f);
}

/* Malformed frames */

static void test_every_truncation_rejected(void **state)
{
    for (int id = 0; id < N_CASES; id++) {
        struct frame f = encode_case(id);
        for (size_t n = 0; n < f.len; n++)
            assert_rejected(f.data, n);
        frame_free(&f);
    }
}

static void test_header_mutations(void **state)
{
    int accepted = 0;

    for (int id = 0; id < N_CASES; id++) {
        struct frame f = encode_case(id);
        unsigned char *buf = xmalloc(f.len);
        for (size_t pos = 0; pos < WIRE_HEADER_LEN; pos++) {
            for (int v = 0; v < 256; v++) {
                int ok;
                if (v == f.data[pos])
                    continue;
                memcpy(buf, f.data, f.len);
                buf[pos] = (unsigned char)v;
                ok = decode_canonical(buf, f.len);
                accepted += ok;
                if (pos < OFF_TYPE) /* signature, version */
                    assert_int_equal(ok, 0);
                else if (pos == OFF_TYPE && !strcmp(wire_type_name(v), "?"))
                    assert_int_equal(ok, 0);
                else if (pos >= OFF_SENDER) /* any sender decodes */
                    assert_int_equal(ok, 1);
            }
        }
        free(buf);
        frame_free(&f);
    }
    assert_true(accepted > 0);
}

/* Beyond the header: one changed byte anywhere never breaks the rules. */
static void test_body_mutations(void **state)
{
    static const unsigned char values[] = {0, 1, 2, 0x7f, 0x80, 0xfe, 0xff};
    int accepted = 0, rejected = 0;

    for (int id = 0; id < N_CASES; id++) {
        struct frame f = encode_case(id);
        unsigned char *buf = xmalloc(f.len);
        for (size_t pos = WIRE_HEADER_LEN; pos < f.len; pos++) {
            for (size_t v = 0; v < sizeof(values) + 1; v++) {
                memcpy(buf, f.data, f.len);
                buf[pos] = v < sizeof(values) ? values[v] : buf[pos] ^ 1;
                if (decode_canonical(buf, f.len))
                    accepted++;
                else
                    rejected++;
            }
        }
        free(buf);
        frame_free(&f);
    }
    assert_true(accepted > 0);
    assert_true(rejected > 0);
}

static void test_trailing_bytes_rejected(void **state)
{
    for (int id = 0; id < N_CASES; id++) {
        struct frame f = encode_case(id);
        unsigned char *buf = xmalloc(f.len + 8);
        memcpy(buf, f.data, f.len);
        memset(buf + f.len, 0, 8);
        assert_rejected(buf, f.len + 1);
        assert_rejected(buf, f.len + 8);
        free(buf);
        frame_free(&f);
    }
}

static void test_bad_header_rejected(void **state)
{
    struct frame f = encode_case(C_VOTE);

    f.data[0] = 'X';
    assert_rejected(f.data, f.len);
    f.data[0] = 'P';
    f.data[3] = 2;
    assert_rejected(f.data, f.len);
    f.data[3] = 0;
    assert_rejected(f.data, f.len);
    f.data[3] = 1;
    for (int t = 0; t < 256; t++) {
        f.data[OFF_TYPE] = (unsigned char)t;
        if (!strcmp(wire_type_name(t), "?"))
            assert_rejected(f.data, f.len);
    }
    frame_free(&f);
}

static void test_bad_booleans_rejected(void **state)
{
    static const unsigned char bad[] = {2, 0x7f, 0xff};
    struct frame raft = encode_case(C_VOTE_RESP);
    struct frame join = encode_case(C_JOIN_RESP_OK);
    struct frame prop = encode_case(C_PROPOSE_RESP_OK);
    struct frame swim = encode_case(C_SWIM_SYNC);
    struct frame ack = encode_case(C_STATE_ACK_OK);
    size_t reply_at = WIRE_HEADER_LEN + 1 + 8 + 4 + 8;

    assert_int_equal(swim.data[reply_at], 1);
    assert_int_equal(ack.data[WIRE_HEADER_LEN + 8], 1);
    for (size_t i = 0; i < sizeof(bad); i++) {
        swim.data[reply_at] = bad[i];
        assert_rejected(swim.data, swim.len);
        ack.data[WIRE_HEADER_LEN + 8] = bad[i];
        assert_rejected(ack.data, ack.len);
        raft.data[OFF_REJECT] = bad[i];
        assert_rejected(raft.data, raft.len);
        join.data[WIRE_HEADER_LEN] = bad[i];
        assert_rejected(join.data, join.len);
        prop.data[WIRE_HEADER_LEN + 8] = bad[i];
        assert_rejected(prop.data, prop.len);
    }
    /* the offsets are right: 0 and 1 decode */
    raft.data[OFF_REJECT] = 0;
    assert_int_equal(decode_canonical(raft.data, raft.len), 1);
    raft.data[OFF_REJECT] = 1;
    assert_int_equal(decode_canonical(raft.data, raft.len), 1);
    prop.data[WIRE_HEADER_LEN + 8] = 0;
    assert_int_equal(decode_canonical(prop.data, prop.len), 1);
    swim.data[reply_at] = 0;
    assert_int_equal(decode_canonical(swim.data, swim.len), 1);
    ack.data[WIRE_HEADER_LEN + 8] = 0;
    assert_int_equal(decode_canonical(ack.data, ack.len), 1);
    frame_free(&raft);
    frame_free(&join);
    frame_free(&prop);
    frame_free(&swim);
    frame_free(&ack);
}

static void check_nul_rejected(enum case_id id, const char *text)
{
    struct frame f = encode_case(id);
    size_t at = text_offset(&f, text) + strlen(text) / 2;

    f.data[at] = 0x01; /* any other octet is fine */
    assert_int_equal(decode_canonical(f.data, f.len), 1);
    f.data[at] = 0;
    assert_rejected(f.data, f.len);
    frame_free(&f);
}

static void test_nul_in_text_rejected(void **state)
{
    check_nul_rejected(C_JOIN_REQ, "tok-0123abcd");
    check_nul_rejected(C_JOIN_REQ, "node-17.example.org");
    check_nul_rejected(C_JOIN_REQ, "10.1.2.3:7946");
    check_nul_rejected(C_JOIN_RESP_OK, "[fd00::1]:7946");
    check_nul_rejected(C_JOIN_RESP_REFUSED, "token expired");
    check_nul_rejected(C_PROPOSE_RESP_ERROR, "not the leader");
    check_nul_rejected(C_STATE_ACK_ERROR, "digest mismatch");
}

/* A u8 length cannot say more than 255, so "too long" on the wire is a
 * length past the end of the frame.
 */
static void test_text_length_past_end_rejected(void **state)
{
    struct frame f = encode_case(C_PROPOSE_RESP_ERROR);
    size_t at = text_offset(&f, "not the leader") - 1;

    f.data[at] = WIRE_MAX_TEXT;
    assert_rejected(f.data, f.len);
    f.data[at] = (unsigned char)(strlen("not the leader") + 1);
    assert_rejected(f.data, f.len);
    frame_free(&f);
}

static void test_too_many_entries_rejected(void **state)
{
    struct bytes b = {0};

    /* exactly the limit, then one more, both otherwise well formed */
    b_raft(&b, WIRE_APPEND, WIRE_MAX_ENTRIES);
    for (uint32_t i = 0; i < WIRE_MAX_ENTRIES; i++)
        b_entry(&b, 100 + i, 0);
    assert_bytes_accepted(&b);
    b_raft(&b, WIRE_APPEND, WIRE_MAX_ENTRIES + 1);
    for (uint32_t i = 0; i < WIRE_MAX_ENTRIES + 1; i++)
        b_entry(&b, 100 + i, 0);
    assert_bytes_rejected(&b);
    /* a huge count on a short frame */
    b_raft(&b, WIRE_APPEND, UINT32_MAX);
    b_entry(&b, 1, 0);
    assert_bytes_rejected(&b);
    /* more entries claimed than the frame holds */
    b_raft(&b, WIRE_APPEND, 3);
    b_entry(&b, 1, 0);
    b_entry(&b, 2, 0);
    assert_bytes_rejected(&b);
}

static void test_entries_outside_append_rejected(void **state)
{
    for (size_t i = 0; i < sizeof(all_types) / sizeof(all_types[0]); i++) {
        struct bytes b = {0};
        if (all_types[i] > WIRE_TIMEOUT_NOW)
            continue;
        b_raft(&b, all_types[i], 1);
        b_entry(&b, 7, 3);
        if (all_types[i] == WIRE_APPEND)
            assert_bytes_accepted(&b);
        else
            assert_bytes_rejected(&b);
    }
}

static void test_non_consecutive_indexes_rejected(void **state)
{
    static const uint64_t bad[][2] = {
        {5, 7}, {5, 5}, {5, 4}, {UINT64_MAX, 0}, {0, UINT64_MAX}};
    struct bytes b = {0};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        b_raft(&b, WIRE_APPEND, 2);
        b_entry(&b, bad[i][0], 1);
        b_entry(&b, bad[i][1], 1);
        assert_bytes_rejected(&b);
    }
    /* a gap further down, after data was allocated */
    b_raft(&b, WIRE_APPEND, 4);
    b_entry(&b, 1, 10);
    b_entry(&b, 2, 10);
    b_entry(&b, 3, 10);
    b_entry(&b, 5, 10);
    assert_bytes_rejected(&b);
    b_raft(&b, WIRE_APPEND, 2);
    b_entry(&b, UINT64_MAX - 1, 1);
    b_entry(&b, UINT64_MAX, 1);
    assert_bytes_accepted(&b);
}

static void test_lengths_past_end_rejected(void **state)
{
    struct frame f = encode_case(C_PROPOSE);
    size_t at = WIRE_HEADER_LEN + 8 + 1; /* data length */
    struct bytes b = {0};

    assert_int_equal(f.data[at + 2], 300 >> 8);
    f.data[at + 3]++; /* 301 */
    assert_rejected(f.data, f.len);
    memset(f.data + at, 0xff, 4);
    assert_rejected(f.data, f.len);
    frame_free(&f);

    /* an entry's data length past the end */
    b_raft(&b, WIRE_APPEND, 1);
    b_entry(&b, 1, 4);
    b.d[b.n - 5]++;
    assert_bytes_rejected(&b);
}

static void test_sealed_limit(void **state)
{
    struct wire_msg m;
    struct frame f;
    struct bytes b = {0};
    unsigned char zero[4097] = {0};

    build(&m, C_JOIN_RESP_OK);
    free(m.u.join_resp.sealed);
    m.u.join_resp.sealed = pattern(4097, 0);
    m.u.join_resp.sealed_len = 4096;
    f = encode_ok(&m);
    assert_int_equal(decode_canonical(f.data, f.len), 1);
    frame_free(&f);
    m.u.join_resp.sealed_len = 4097;
    assert_encode_refused(&m);
    wire_msg_fini(&m);

    /* the same on the wire, the frame otherwise well formed */
    for (uint32_t n = 4096; n <= 4097; n++) {
        b_header(&b, WIRE_JOIN_RESP, 1);
        b_u8(&b, 1);
        b_u64(&b, 17);
        b_u32(&b, n);
        b_mem(&b, zero, n);
        b_u8(&b, 0); /* leader_address "" */
        b_mem(&b, zero, WIRE_KEY_BYTES);
        b_u64(&b, 1);
        if (n == 4096)
            assert_bytes_accepted(&b);
        else
            assert_bytes_rejected(&b);
    }
}

static void test_frame_size_limit(void **state)
{
    size_t room = WIRE_MAX_FRAME - WIRE_HEADER_LEN - (8 + 1 + 4);
    struct wire_msg m = {.type = WIRE_PROPOSE, .from = 1};
    struct frame f;
    struct bytes b = {0};
    unsigned char *zero = calloc(1, room + 1);

    m.u.propose.len = (uint32_t)room + 1;
    m.u.propose.data = calloc(1, room + 1);
    assert_non_null(m.u.propose.data);
    assert_encode_refused(&m);
    m.u.propose.len = (uint32_t)room;
    f = encode_ok(&m);
    assert_int_equal(f.len, WIRE_MAX_FRAME);
    assert_int_equal(decode_canonical(f.data, f.len), 1);
    frame_free(&f);
    wire_msg_fini(&m);

    /* one byte more on the wire, with lengths that add up */
    assert_non_null(zero);
    b_header(&b, WIRE_PROPOSE, 1);
    b_u64(&b, 1);
    b_u8(&b, 16);
    b_u32(&b, (uint32_t)room + 1);
    b_mem(&b, zero, room + 1);
    assert_int_equal(b.n, WIRE_MAX_FRAME + 1);
    assert_bytes_rejected(&b);
    free(zero);
}

static void test_swim_bounds(void **state)
{
    static const uint8_t bad_types[] = {0, 7, 20, 0xff};
    struct bytes b = {0};

    /* the edges that hold */
    for (uint8_t t = WIRE_SWIM_PING; t <= WIRE_SWIM_GOSSIP; t++) {
        b_swim(&b, t, 1, 2, 0, WIRE_SWIM_LEFT);
        assert_bytes_accepted(&b);
    }
    b_swim(&b, WIRE_SWIM_SYNC, 0, WIRE_MAX_PIGGYBACK, 3, WIRE_SWIM_LEFT);
    assert_bytes_accepted(&b);
    /* swim type */
    for (size_t i = 0; i < sizeof(bad_types); i++) {
        b_swim(&b, bad_types[i], 0, 1, 0, 0);
        assert_bytes_rejected(&b);
    }
    /* reply is a boolean */
    b_swim(&b, WIRE_SWIM_SYNC, 2, 1, 1, 0);
    assert_bytes_rejected(&b);
    b_swim(&b, WIRE_SWIM_SYNC, 0xff, 1, 1, 0);
    assert_bytes_rejected(&b);
    /* one update too many, and an absurd count */
    b_swim(&b, WIRE_SWIM_PING, 0, WIRE_MAX_PIGGYBACK + 1, 0, 0);
    assert_bytes_rejected(&b);
    b_swim(&b, WIRE_SWIM_PING, 0, 0xff, 0, 0);
    assert_bytes_rejected(&b);
    /* a state past LEFT, in an update and in the sync table */
    b_swim(&b, WIRE_SWIM_PING, 0, 3, 0, WIRE_SWIM_LEFT + 1);
    assert_bytes_rejected(&b);
    b_swim(&b, WIRE_SWIM_SYNC, 0, 0, 3, WIRE_SWIM_LEFT + 1);
    assert_bytes_rejected(&b);
    b_swim(&b, WIRE_SWIM_SYNC, 0, 0, 3, 0xff);
    assert_bytes_rejected(&b);
    /* a sync table in anything but a SYNC */
    b_swim(&b, WIRE_SWIM_GOSSIP, 0, 0, 1, 0);
    assert_bytes_rejected(&b);
    b_swim(&b, WIRE_SWIM_SYNC, 0, 0, 1, 0);
    assert_bytes_accepted(&b);
}

static void test_swim_sync_limit(void **state)
{
    struct bytes b = {0};

    b_swim(&b, WIRE_SWIM_SYNC, 1, 0, WIRE_MAX_SYNC, 0);
    assert_bytes_accepted(&b);
    b_swim(&b, WIRE_SWIM_SYNC, 1, 0, WIRE_MAX_SYNC + 1, 0);
    assert_bytes_rejected(&b);
    /* the largest count on a short frame, and one entry short */
    b_swim(&b, WIRE_SWIM_SYNC, 1, 0, 1, 0);
    b.d[b.n - 25 - 2] = WIRE_MAX_SYNC >> 8;
    assert_bytes_rejected(&b);
    b_swim(&b, WIRE_SWIM_SYNC, 1, 0, 3, 0);
    b.n -= 25;
    assert_bytes_rejected(&b);
}

static void test_state_chunk_bounds(void **state)
{
    const uint64_t max = WIRE_MAX_STATE;
    struct bytes b = {0};

    /* the edges that hold */
    b_chunk(&b, 0, 0, 0); /* an empty archive */
    assert_bytes_accepted(&b);
    b_chunk(&b, 10, 0, 10);
    assert_bytes_accepted(&b);
    b_chunk(&b, 10, 9, 1);
    assert_bytes_accepted(&b);
    b_chunk(&b, max, max - 1, 1);
    assert_bytes_accepted(&b);
    b_chunk(&b, max, 0, WIRE_STATE_CHUNK_MAX);
    assert_bytes_accepted(&b);
    /* past the end of the archive */
    b_chunk(&b, 10, 9, 2);
    assert_bytes_rejected(&b);
    b_chunk(&b, 10, 10, 1);
    assert_bytes_rejected(&b);
    b_chunk(&b, 10, 11, 0);
    assert_bytes_rejected(&b);
    b_chunk(&b, 10, UINT64_MAX, 2); /* offset + len wraps */
    assert_bytes_rejected(&b);
    b_chunk(&b, 0, 1, 0);
    assert_bytes_rejected(&b);
    /* no data in a non-empty archive */
    b_chunk(&b, 10, 0, 0);
    assert_bytes_rejected(&b);
    b_chunk(&b, 10, 10, 0);
    assert_bytes_rejected(&b);
    /* a chunk larger than the maximum */
    b_chunk(&b, max, 0, WIRE_STATE_CHUNK_MAX + 1);
    assert_bytes_rejected(&b);
    /* an archive larger than the maximum */
    b_chunk(&b, max + 1, 0, 1);
    assert_bytes_rejected(&b);
    b_chunk(&b, UINT64_MAX, 0, 1);
    assert_bytes_rejected(&b);
}

/* Encoder limits */

static void test_encode_refuses_long_text(void **state)
{
    struct wire_msg m;

    build(&m, C_JOIN_REQ);
    memset(m.u.join_req.token_id, 'a', sizeof(m.u.join_req.token_id));
    assert_encode_refused(&m);
    build(&m, C_JOIN_REQ);
    memset(m.u.join_req.name, 'a', sizeof(m.u.join_req.name));
    assert_encode_refused(&m);
    build(&m, C_JOIN_REQ);
    memset(m.u.join_req.address, 'a', sizeof(m.u.join_req.address));
    assert_encode_refused(&m);

    build(&m, C_JOIN_RESP_REFUSED);
    memset(m.u.join_resp.error, 'a', sizeof(m.u.join_resp.error));
    assert_encode_refused(&m);
    build(&m, C_JOIN_RESP_OK);
    memset(m.u.join_resp.leader_address, 'a',
           sizeof(m.u.join_resp.leader_address));
    assert_encode_refused(&m);
    wire_msg_fini(&m);

    build(&m, C_PROPOSE_RESP_ERROR);
    memset(m.u.propose_resp.error, 'a', sizeof(m.u.propose_resp.error));
    assert_encode_refused(&m);
    /* and 255 is fine */
    m.u.propose_resp.error[WIRE_MAX_TEXT] = '\0';
    assert_encodes(&m);
}

static void test_encode_refuses_bad_raft(void **state)
{
    struct wire_msg m;
    struct wire_entry *e;

    build(&m, C_APPEND_HEARTBEAT);
    m.u.raft.n_entries = WIRE_MAX_ENTRIES + 1;
    m.u.raft.entries = e = calloc(WIRE_MAX_ENTRIES + 1, sizeof(*e));
    assert_non_null(e);
    for (uint32_t i = 0; i < WIRE_MAX_ENTRIES + 1; i++)
        e[i].index = i + 1;
    assert_encode_refused(&m);
    m.u.raft.n_entries = WIRE_MAX_ENTRIES;
    assert_encodes(&m);

    m.u.raft.n_entries = 3;
    e[1].index = 5; /* 1, 5, 3 */
    assert_encode_refused(&m);
    e[1].index = 2;
    e[1].len = 4; /* length without data */
    assert_encode_refused(&m);
    e[1].len = 0;
    m.type = WIRE_VOTE; /* entries outside an append */
    assert_encode_refused(&m);
    m.type = WIRE_APPEND;
    m.u.raft.n_entries = 1;
    m.u.raft.entries = NULL; /* count without array */
    assert_encode_refused(&m);
    m.u.raft.entries = e;
    m.u.raft.n_entries = 2;
    e[0].index = UINT64_MAX;
    e[1].index = 0;
    assert_encode_refused(&m);
    wire_msg_fini(&m);
}

static void test_encode_refuses_other(void **state)
{
    struct wire_msg m = {0};

    assert_encode_refused(&m); /* type 0 */
    m.type = (enum wire_type)8;
    assert_encode_refused(&m);
    m.type = WIRE_PROPOSE;
    m.u.propose.len = 1; /* no data */
    assert_encode_refused(&m);
    m = (struct wire_msg){.type = WIRE_JOIN_RESP};
    m.u.join_resp.ok = true;
    m.u.join_resp.sealed_len = 80; /* no data */
    assert_encode_refused(&m);
}

static void test_encode_refuses_bad_swim(void **state)
{
    struct wire_msg m;

    build(&m, C_SWIM_SYNC);
    assert_encodes(&m);
    m.u.swim.type = 0;
    assert_encode_refused(&m);
    m.u.swim.type = WIRE_SWIM_GOSSIP + 1;
    assert_encode_refused(&m);
    m.u.swim.type = WIRE_SWIM_GOSSIP; /* a table outside a SYNC */
    assert_encode_refused(&m);
    m.u.swim.type = WIRE_SWIM_SYNC;
    m.u.swim.n_updates = WIRE_MAX_PIGGYBACK + 1;
    assert_encode_refused(&m);
    m.u.swim.n_updates = WIRE_MAX_PIGGYBACK;
    m.u.swim.updates[3].state = WIRE_SWIM_LEFT + 1;
    assert_encode_refused(&m);
    m.u.swim.updates[3].state = WIRE_SWIM_LEFT;
    m.u.swim.sync[5].state = WIRE_SWIM_LEFT + 1;
    assert_encode_refused(&m);
    assert_int_equal(wire_size(&m), 0);
    assert_int_equal(errno, EINVAL);
    m.u.swim.sync[5].state = WIRE_SWIM_DEAD;
    m.u.swim.n_sync = WIRE_MAX_SYNC + 1;
    assert_encode_refused(&m);
    m.u.swim.n_sync = 6;
    assert_encodes(&m);
    wire_msg_fini(&m);
    m = (struct wire_msg){.type = WIRE_SWIM};
    m.u.swim.type = WIRE_SWIM_SYNC;
    m.u.swim.n_sync = 1; /* count without array */
    assert_encode_refused(&m);
}

static void test_encode_refuses_bad_state(void **state)
{
    struct wire_msg m;
    struct wire_state_chunk *c = &m.u.state_chunk;

    build(&m, C_STATE_CHUNK);
    c->total = c->offset + c->len - 1;
    assert_encode_refused(&m);
    c->total = WIRE_MAX_STATE + 1;
    assert_encode_refused(&m);
    c->total = WIRE_MAX_STATE;
    c->offset = UINT64_MAX; /* offset + len wraps */
    assert_encode_refused(&m);
    c->offset = 0;
    assert_encodes(&m);
    c->len = WIRE_STATE_CHUNK_MAX + 1; /* checked before the data is read */
    assert_encode_refused(&m);
    c->len = 0; /* nothing in a non-empty archive */
    assert_encode_refused(&m);
    wire_msg_fini(&m);
    m = (struct wire_msg){.type = WIRE_STATE_CHUNK};
    m.u.state_chunk.total = 4;
    m.u.state_chunk.len = 4; /* length without data */
    assert_encode_refused(&m);

    build(&m, C_STATE_ACK_ERROR);
    memset(m.u.state_ack.error, 'a', sizeof(m.u.state_ack.error));
    assert_encode_refused(&m);
    m.u.state_ack.error[WIRE_MAX_TEXT] = '\0';
    assert_encodes(&m);
}

static void test_wire_size(void **state)
{
    for (int id = 0; id < N_CASES; id++) {
        struct wire_msg m;
        struct frame f;

        build(&m, id);
        f = encode_ok(&m);
        assert_int_equal(wire_size(&m), f.len);
        frame_free(&f);
        wire_msg_fini(&m);
    }
}

/* Random input */

static void test_random_buffers(void **state)
{
    unsigned char buf[FUZZ_MAXLEN];
    int accepted = 0;

    rng_state = FUZZ_SEED;
    for (int round = 0; round < FUZZ_ROUNDS; round++) {
        size_t len = rng() % (FUZZ_MAXLEN + 1);
        for (size_t i = 0; i < len; i++)
            buf[i] = (unsigned char)rng();
        /* most buffers get a valid header, so that bodies get parsed,
         * and many the fixed body of a Raft message without entries */
        if (round % 4 != 0 && len >= WIRE_HEADER_LEN) {
            memcpy(buf, "PDW\1", 4);
            buf[OFF_TYPE] =
                all_types[rng() % (sizeof(all_types) / sizeof(all_types[0]))];
        }
        if (round % 4 == 2 && len >= RAFT_FIXED_LEN &&
            buf[OFF_TYPE] <= WIRE_TIMEOUT_NOW) {
            len = RAFT_FIXED_LEN;
            buf[OFF_REJECT] &= 1;
            memset(buf + OFF_N_ENTRIES, 0, 4);
        }
        accepted += decode_canonical(buf, len);
    }
    assert_true(accepted > 0);
}

static void test_random_mutations(void **state)
{
    int accepted = 0;

    rng_state = FUZZ_SEED + 1;
    for (int id = 0; id < N_CASES; id++) {
        struct frame f = encode_case(id);
        unsigned char *buf = xmalloc(f.len);
        for (int round = 0; round < 2000; round++) {
            memcpy(buf, f.data, f.len);
            for (int n = 1 + (int)(rng() % 4); n > 0; n--)
                buf[rng() % f.len] = (unsigned char)rng();
            accepted +=
                decode_canonical(buf, rng() % 2 ? f.len : rng() % f.len);
        }
        free(buf);
        frame_free(&f);
    }
    assert_true(accepted > 0);
}

/* Names and ownership */

static void test_type_name(void **state)
{
    static const struct {
        int type;
        const char *name;
    } names[] = {
        {1, "prevote"},      {2, "prevote_resp"},  {3, "vote"},
        {4, "vote_resp"},    {5, "append"},        {6, "append_resp"},
        {7, "timeout_now"},  {16, "join_req"},     {17, "join_resp"},
        {18, "propose"},     {19, "propose_resp"}, {20, "swim"},
        {21, "state_chunk"}, {22, "state_ack"},
    };
    static const int unknown[] = {-1, 0, 8, 15, 23, 255, 256, 1 << 20};

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        assert_string_equal(wire_type_name(names[i].type), names[i].name);
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++)
        assert_string_equal(wire_type_name(unknown[i]), "?");
}

static void test_fini(void **state)
{
    struct wire_msg m = {0};

    wire_msg_fini(&m); /* zeroed */
    assert_true(is_zeroed(&m));
    for (int id = 0; id < N_CASES; id++) {
        build(&m, id); /* caller-built, owned pointers */
        wire_msg_fini(&m);
        assert_true(is_zeroed(&m));
        wire_msg_fini(&m); /* twice */
        assert_true(is_zeroed(&m));
    }
}

#define ROUND_TRIP(id, label)                                                  \
    {                                                                          \
        "round_trip_" label, test_round_trip, NULL, NULL, &cases[id]           \
    }

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_propose_resp),
        cmocka_unit_test(test_golden_append),
        cmocka_unit_test(test_golden_join),
        cmocka_unit_test(test_golden_swim),
        cmocka_unit_test(test_golden_state),
        ROUND_TRIP(C_PREVOTE, "prevote"),
        ROUND_TRIP(C_PREVOTE_RESP, "prevote_resp"),
        ROUND_TRIP(C_VOTE, "vote"),
        ROUND_TRIP(C_VOTE_RESP, "vote_resp"),
        ROUND_TRIP(C_APPEND, "append"),
        ROUND_TRIP(C_APPEND_HEARTBEAT, "append_heartbeat"),
        ROUND_TRIP(C_APPEND_RESP, "append_resp"),
        ROUND_TRIP(C_TIMEOUT_NOW, "timeout_now"),
        ROUND_TRIP(C_JOIN_REQ, "join_req"),
        ROUND_TRIP(C_JOIN_REQ_EDGE_TEXT, "join_req_edge_text"),
        ROUND_TRIP(C_JOIN_RESP_OK, "join_resp_ok"),
        ROUND_TRIP(C_JOIN_RESP_REFUSED, "join_resp_refused"),
        ROUND_TRIP(C_PROPOSE, "propose"),
        ROUND_TRIP(C_PROPOSE_EMPTY, "propose_empty"),
        ROUND_TRIP(C_PROPOSE_RESP_OK, "propose_resp_ok"),
        ROUND_TRIP(C_PROPOSE_RESP_ERROR, "propose_resp_error"),
        ROUND_TRIP(C_SWIM_PING, "swim_ping"),
        ROUND_TRIP(C_SWIM_SYNC, "swim_sync"),
        ROUND_TRIP(C_SWIM_GOSSIP_EMPTY, "swim_gossip_empty"),
        ROUND_TRIP(C_STATE_CHUNK, "state_chunk"),
        ROUND_TRIP(C_STATE_CHUNK_EMPTY, "state_chunk_empty"),
        ROUND_TRIP(C_STATE_ACK_OK, "state_ack_ok"),
        ROUND_TRIP(C_STATE_ACK_ERROR, "state_ack_error"),
        cmocka_unit_test(test_join_resp_refused_carries_only_error),
        cmocka_unit_test(test_every_truncation_rejected),
        cmocka_unit_test(test_header_mutations),
        cmocka_unit_test(test_body_mutations),
        cmocka_unit_test(test_trailing_bytes_rejected),
        cmocka_unit_test(test_bad_header_rejected),
        cmocka_unit_test(test_bad_booleans_rejected),
        cmocka_unit_test(test_nul_in_text_rejected),
        cmocka_unit_test(test_text_length_past_end_rejected),
        cmocka_unit_test(test_too_many_entries_rejected),
        cmocka_unit_test(test_entries_outside_append_rejected),
        cmocka_unit_test(test_non_consecutive_indexes_rejected),
        cmocka_unit_test(test_lengths_past_end_rejected),
        cmocka_unit_test(test_sealed_limit),
        cmocka_unit_test(test_frame_size_limit),
        cmocka_unit_test(test_swim_bounds),
        cmocka_unit_test(test_swim_sync_limit),
        cmocka_unit_test(test_state_chunk_bounds),
        cmocka_unit_test(test_encode_refuses_long_text),
        cmocka_unit_test(test_encode_refuses_bad_raft),
        cmocka_unit_test(test_encode_refuses_other),
        cmocka_unit_test(test_encode_refuses_bad_swim),
        cmocka_unit_test(test_encode_refuses_bad_state),
        cmocka_unit_test(test_wire_size),
        cmocka_unit_test(test_random_buffers),
        cmocka_unit_test(test_random_mutations),
        cmocka_unit_test(test_type_name),
        cmocka_unit_test(test_fini),
    };

    return cmocka_run_group_tests_name("wire", tests, NULL, NULL);
}
