/* wire.c - the peer protocol codec (spec: doc/protocol-peer.md)
 *
 * Written by hand, both ways, on small bounds-checked helpers: a reader
 * that never reads past the end of the frame and a writer that never
 * writes past the end of its buffer.  Invariants:
 *  - The encoding is canonical.  Booleans are 0 or 1, a text carries its
 *    exact length, nothing may follow the body, and no field can be
 *    written in two ways, so a frame the decoder accepts re-encodes to the
 *    same bytes.  The tests and the fuzz target check that.
 *  - wire_encode refuses every message that wire_decode would refuse. A
 *    peer therefore never sends what another peer would drop.
 *  - The decoder checks each length against the bytes that remain before
 *    it allocates, so a frame cannot make it allocate much more than the
 *    size of the frame itself.
 *  - When wire_decode fails, *m is zeroed and owns nothing.  Partial
 *    results are freed by wire_msg_fini at the one malformed: exit.
 * Nothing here logs: the caller gets the reason in its err_t.
 */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/wire.h"

enum {
    /* crypto_box_seal of a 32-byte key is 80 bytes; room to change it */
    MAX_SEALED = WIRE_MAX_SEALED,
    /* an entry with no data: term, index, type, len */
    ENTRY_MIN_LEN = 8 + 8 + 1 + 4,
    /* a SWIM update: id, incarnation, state, from */
    SWIM_UPDATE_LEN = 8 + 8 + 1 + 8,
    /* type, to, seq, target, reply, n_updates, n_sync */
    SWIM_FIXED_LEN = 1 + 8 + 4 + 8 + 1 + 1 + 4,
    /* gen, total, offset, digest, data length */
    CHUNK_FIXED_LEN = 8 + 8 + 8 + WIRE_DIGEST_BYTES + 4,
};

_Static_assert(WIRE_MAX_TEXT <= 255, "a text's length travels in one octet");
_Static_assert(WIRE_MAX_PIGGYBACK <= 255, "n_updates travels in one octet");
_Static_assert(WIRE_MAX_FRAME >=
                   WIRE_HEADER_LEN + CHUNK_FIXED_LEN + WIRE_STATE_CHUNK_MAX,
               "a full state chunk fits in a frame");
_Static_assert(WIRE_MAX_FRAME >=
                   WIRE_HEADER_LEN + SWIM_FIXED_LEN +
                       SWIM_UPDATE_LEN * (WIRE_MAX_PIGGYBACK + WIRE_MAX_SYNC),
               "a full SYNC fits in a frame");
_Static_assert(WIRE_HEADER_LEN == 3 + 1 + 1 + 8, "signature version type "
                                                 "sender");

static const char *const type_names[] = {
    [WIRE_PREVOTE] = "prevote",
    [WIRE_PREVOTE_RESP] = "prevote_resp",
    [WIRE_VOTE] = "vote",
    [WIRE_VOTE_RESP] = "vote_resp",
    [WIRE_APPEND] = "append",
    [WIRE_APPEND_RESP] = "append_resp",
    [WIRE_TIMEOUT_NOW] = "timeout_now",
    [WIRE_JOIN_REQ] = "join_req",
    [WIRE_JOIN_RESP] = "join_resp",
    [WIRE_PROPOSE] = "propose",
    [WIRE_PROPOSE_RESP] = "propose_resp",
    [WIRE_SWIM] = "swim",
    [WIRE_STATE_CHUNK] = "state_chunk",
    [WIRE_STATE_ACK] = "state_ack",
};

static bool type_known(int type)
{
    return type >= 0 &&
           (size_t)type < sizeof(type_names) / sizeof(type_names[0]) &&
           type_names[type] != NULL;
}

static bool type_is_raft(int type)
{
    return type >= WIRE_PREVOTE && type <= WIRE_TIMEOUT_NOW;
}

static bool swim_type_known(unsigned type)
{
    return type >= WIRE_SWIM_PING && type <= WIRE_SWIM_GOSSIP;
}

/* offset + len <= total without overflow; data only where total > 0. */
static bool chunk_fits(const struct wire_state_chunk *c)
{
    return c->offset <= c->total && c->len <= c->total - c->offset &&
           (c->len > 0 || c->total == 0);
}

/* Raft's indexes never wrap: UINT64_MAX has no successor. */
static bool consecutive(uint64_t prev, uint64_t next)
{
    return prev != UINT64_MAX && next == prev + 1;
}

const char *wire_type_name(int type)
{
    return type_known(type) ? type_names[type] : "?";
}

void wire_msg_fini(struct wire_msg *m)
{
    if (!m)
        return;
    if (type_is_raft(m->type)) {
        /* entries may be NULL with n_entries set if calloc failed */
        for (uint32_t i = 0; m->u.raft.entries && i < m->u.raft.n_entries; i++)
            free(m->u.raft.entries[i].data);
        free(m->u.raft.entries);
    } else if (m->type == WIRE_JOIN_RESP) {
        free(m->u.join_resp.sealed);
    } else if (m->type == WIRE_PROPOSE) {
        free(m->u.propose.data);
    } else if (m->type == WIRE_SWIM) {
        free(m->u.swim.sync);
    } else if (m->type == WIRE_STATE_CHUNK) {
        free(m->u.state_chunk.data);
    }
    memset(m, 0, sizeof(*m));
}

/* Decoding */

struct reader {
    const unsigned char *p;
    size_t left;
    const char *field; /* what was being read when it failed */
    const char *why;
    int errnum; /* EPROTO, or ENOMEM when we failed, not the peer */
};

static int fail(struct reader *r, const char *field, const char *why)
{
    r->field = field;
    r->why = why;
    r->errnum = EPROTO;
    return -1;
}

static int fail_nomem(struct reader *r, const char *field)
{
    fail(r, field, "out of memory");
    r->errnum = ENOMEM;
    return -1;
}

static int get_raw(struct reader *r, void *dst, size_t n, const char *field)
{
    if (n > r->left)
        return fail(r, field, "truncated");
    memcpy(dst, r->p, n);
    r->p += n;
    r->left -= n;
    return 0;
}

static int get_u8(struct reader *r, uint8_t *v, const char *field)
{
    return get_raw(r, v, 1, field);
}

static int get_u32(struct reader *r, uint32_t *v, const char *field)
{
    unsigned char b[4];

    if (get_raw(r, b, sizeof(b), field) < 0)
        return -1;
    *v = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 |
         b[3];
    return 0;
}

static int get_u64(struct reader *r, uint64_t *v, const char *field)
{
    unsigned char b[8];
    uint64_t x = 0;

    if (get_raw(r, b, sizeof(b), field) < 0)
        return -1;
    for (size_t i = 0; i < sizeof(b); i++)
        x = x << 8 | b[i];
    *v = x;
    return 0;
}

/* Only 0 and 1, so that a decoded frame re-encodes to the same bytes. */
static int get_bool(struct reader *r, bool *v, const char *field)
{
    uint8_t b;

    if (get_u8(r, &b, field) < 0)
        return -1;
    if (b > 1)
        return fail(r, field, "boolean neither 0 nor 1");
    *v = b;
    return 0;
}

/* u32 length + bytes, at most max, copied to *dst (NULL when empty).
 * *dst is set before the copy so that a failure leaves nothing unowned.
 */
static int get_bytes(struct reader *r, unsigned char **dst, uint32_t *len,
                     uint32_t max, const char *field)
{
    uint32_t n;

    if (get_u32(r, &n, field) < 0)
        return -1;
    if (n > max)
        return fail(r, field, "too long");
    if (n > r->left)
        return fail(r, field, "length beyond the end of the frame");
    if (n == 0)
        return 0;
    *dst = malloc(n);
    if (!*dst)
        return fail_nomem(r, field);
    *len = n;
    return get_raw(r, *dst, n, field);
}

/* u8 length + bytes without NUL, into a WIRE_MAX_TEXT + 1 array. */
static int get_text(struct reader *r, char *dst, const char *field)
{
    uint8_t n8;
    size_t n;

    if (get_u8(r, &n8, field) < 0)
        return -1;
    n = n8;
    if (n > WIRE_MAX_TEXT)
        return fail(r, field, "text too long");
    if (n > r->left)
        return fail(r, field, "truncated");
    /* a NUL would cut the C string short and break the round trip */
    if (memchr(r->p, '\0', n))
        return fail(r, field, "NUL in text");
    dst[n] = '\0';
    return get_raw(r, dst, n, field);
}

static int get_entry(struct reader *r, struct wire_entry *e,
                     const struct wire_entry *prev)
{
    if (get_u64(r, &e->term, "entry term") < 0 ||
        get_u64(r, &e->index, "entry index") < 0)
        return -1;
    if (prev && !consecutive(prev->index, e->index))
        return fail(r, "entry index", "not consecutive");
    if (get_u8(r, &e->type, "entry type") < 0 ||
        get_bytes(r, &e->data, &e->len, UINT32_MAX, "entry data") < 0)
        return -1;
    return 0;
}

static int get_raft(struct reader *r, enum wire_type type,
                    struct wire_raft *raft)
{
    uint32_t n;

    if (get_u64(r, &raft->to, "to") < 0 ||
        get_u64(r, &raft->term, "term") < 0 ||
        get_u64(r, &raft->index, "index") < 0 ||
        get_u64(r, &raft->log_term, "log_term") < 0 ||
        get_u64(r, &raft->commit, "commit") < 0 ||
        get_u64(r, &raft->hint, "hint") < 0 ||
        get_bool(r, &raft->reject, "reject") < 0 ||
        get_u32(r, &n, "n_entries") < 0)
        return -1;
    if (n > WIRE_MAX_ENTRIES)
        return fail(r, "n_entries", "too many entries");
    if (n > 0 && type != WIRE_APPEND)
        return fail(r, "n_entries", "entries outside an append");
    /* before calloc, so a short frame cannot claim a large array */
    if (n > r->left / ENTRY_MIN_LEN)
        return fail(r, "entries", "truncated");
    if (n == 0)
        return 0;
    raft->entries = calloc(n, sizeof(*raft->entries));
    if (!raft->entries)
        return fail_nomem(r, "entries");
    raft->n_entries = n;
    for (uint32_t i = 0; i < n; i++) {
        if (get_entry(r, &raft->entries[i],
                      i > 0 ? &raft->entries[i - 1] : NULL) < 0)
            return -1;
    }
    return 0;
}

static int get_join_req(struct reader *r, struct wire_join_req *j)
{
    if (get_text(r, j->token_id, "token_id") < 0 ||
        get_raw(r, j->pubkey, WIRE_KEY_BYTES, "pubkey") < 0 ||
        get_raw(r, j->mac, WIRE_MAC_BYTES, "mac") < 0 ||
        get_text(r, j->name, "name") < 0 ||
        get_text(r, j->address, "address") < 0 ||
        get_u32(r, &j->cpus, "cpus") < 0 ||
        get_u64(r, &j->memory_mb, "memory_mb") < 0)
        return -1;
    return 0;
}

static int get_join_resp(struct reader *r, struct wire_join_resp *j)
{
    if (get_bool(r, &j->ok, "ok") < 0)
        return -1;
    if (!j->ok)
        return get_text(r, j->error, "error");
    if (get_u64(r, &j->node_id, "node_id") < 0 ||
        get_bytes(r, &j->sealed, &j->sealed_len, MAX_SEALED, "sealed") < 0 ||
        get_text(r, j->leader_address, "leader_address") < 0 ||
        get_raw(r, j->leader_pubkey, WIRE_KEY_BYTES, "leader_pubkey") < 0 ||
        get_u64(r, &j->leader_id, "leader_id") < 0)
        return -1;
    return 0;
}

static int get_propose(struct reader *r, struct wire_propose *p)
{
    if (get_u64(r, &p->request_id, "request_id") < 0 ||
        get_u8(r, &p->type, "type") < 0 ||
        get_bytes(r, &p->data, &p->len, UINT32_MAX, "data") < 0)
        return -1;
    return 0;
}

static int get_propose_resp(struct reader *r, struct wire_propose_resp *p)
{
    if (get_u64(r, &p->request_id, "request_id") < 0 ||
        get_bool(r, &p->ok, "ok") < 0 || get_u64(r, &p->index, "index") < 0 ||
        get_text(r, p->error, "error") < 0)
        return -1;
    return 0;
}

static int get_swim_update(struct reader *r, struct wire_swim_update *u,
                           const char *state_field)
{
    if (get_u64(r, &u->id, "update id") < 0 ||
        get_u64(r, &u->incarnation, "update incarnation") < 0 ||
        get_u8(r, &u->state, state_field) < 0)
        return -1;
    if (u->state > WIRE_SWIM_LEFT)
        return fail(r, state_field, "unknown state");
    return get_u64(r, &u->from, "update from");
}

static int get_swim(struct reader *r, struct wire_swim *w)
{
    uint32_t n;

    if (get_u8(r, &w->type, "swim type") < 0)
        return -1;
    if (!swim_type_known(w->type))
        return fail(r, "swim type", "unknown swim message type");
    if (get_u64(r, &w->to, "to") < 0 || get_u32(r, &w->seq, "seq") < 0 ||
        get_u64(r, &w->target, "target") < 0 ||
        get_bool(r, &w->reply, "reply") < 0 ||
        get_u8(r, &w->n_updates, "n_updates") < 0)
        return -1;
    if (w->n_updates > WIRE_MAX_PIGGYBACK)
        return fail(r, "n_updates", "too many updates");
    for (uint8_t i = 0; i < w->n_updates; i++)
        if (get_swim_update(r, &w->updates[i], "update state") < 0)
            return -1;
    if (get_u32(r, &n, "n_sync") < 0)
        return -1;
    if (n > WIRE_MAX_SYNC)
        return fail(r, "n_sync", "too many updates");
    if (n > 0 && w->type != WIRE_SWIM_SYNC)
        return fail(r, "n_sync", "sync table outside a sync");
    /* before calloc, so a short frame cannot claim a large array */
    if (n > r->left / SWIM_UPDATE_LEN)
        return fail(r, "sync", "truncated");
    if (n == 0)
        return 0;
    w->sync = calloc(n, sizeof(*w->sync));
    if (!w->sync)
        return fail_nomem(r, "sync");
    w->n_sync = n;
    for (uint32_t i = 0; i < n; i++)
        if (get_swim_update(r, &w->sync[i], "sync state") < 0)
            return -1;
    return 0;
}

static int get_state_chunk(struct reader *r, struct wire_state_chunk *c)
{
    if (get_u64(r, &c->gen, "gen") < 0 || get_u64(r, &c->total, "total") < 0)
        return -1;
    if (c->total > WIRE_MAX_STATE)
        return fail(r, "total", "larger than the maximum state");
    if (get_u64(r, &c->offset, "offset") < 0 ||
        get_raw(r, c->digest, WIRE_DIGEST_BYTES, "digest") < 0 ||
        get_bytes(r, &c->data, &c->len, WIRE_STATE_CHUNK_MAX, "data") < 0)
        return -1;
    if (!chunk_fits(c))
        return fail(r, "data", "outside the state");
    return 0;
}

static int get_state_ack(struct reader *r, struct wire_state_ack *a)
{
    if (get_u64(r, &a->gen, "gen") < 0 ||
        get_bool(r, &a->installed, "installed") < 0 ||
        get_text(r, a->error, "error") < 0)
        return -1;
    return 0;
}

static int get_body(struct reader *r, struct wire_msg *m)
{
    if (type_is_raft(m->type))
        return get_raft(r, m->type, &m->u.raft);
    switch (m->type) {
    case WIRE_JOIN_REQ:
        return get_join_req(r, &m->u.join_req);
    case WIRE_JOIN_RESP:
        return get_join_resp(r, &m->u.join_resp);
    case WIRE_PROPOSE:
        return get_propose(r, &m->u.propose);
    case WIRE_PROPOSE_RESP:
        return get_propose_resp(r, &m->u.propose_resp);
    case WIRE_SWIM:
        return get_swim(r, &m->u.swim);
    case WIRE_STATE_CHUNK:
        return get_state_chunk(r, &m->u.state_chunk);
    case WIRE_STATE_ACK:
        return get_state_ack(r, &m->u.state_ack);
    default:
        return fail(r, "type", "unknown message type");
    }
}

int wire_decode(const void *buf, size_t len, struct wire_msg *m, err_t *err)
{
    struct reader r = {.p = buf, .left = len};
    unsigned char sig[3];
    uint8_t version, type;
    const char *name = "peer";

    memset(m, 0, sizeof(*m));
    if (len > WIRE_MAX_FRAME) {
        fail(&r, "frame", "larger than the maximum frame");
        goto malformed;
    }
    if (len < WIRE_HEADER_LEN) {
        fail(&r, "frame", "shorter than its header");
        goto malformed;
    }
    if (get_raw(&r, sig, sizeof(sig), "signature") < 0)
        goto malformed;
    if (memcmp(sig, WIRE_SIGNATURE, sizeof(sig)) != 0) {
        fail(&r, "signature", "not " WIRE_SIGNATURE);
        goto malformed;
    }
    if (get_u8(&r, &version, "version") < 0)
        goto malformed;
    if (version != WIRE_VERSION) {
        fail(&r, "version", "unsupported");
        goto malformed;
    }
    if (get_u8(&r, &type, "type") < 0)
        goto malformed;
    if (!type_known(type)) {
        fail(&r, "type", "unknown message type");
        goto malformed;
    }
    /* from here on wire_msg_fini knows which union member to free */
    m->type = type;
    name = wire_type_name(type);
    if (get_u64(&r, &m->from, "sender") < 0 || get_body(&r, m) < 0)
        goto malformed;
    if (r.left > 0) {
        fail(&r, "frame", "trailing bytes after the body");
        goto malformed;
    }
    return 0;
malformed:
    wire_msg_fini(m);
    errno = r.errnum;
    return errprintf(err, "malformed %s message: %s: %s", name, r.field, r.why);
}

/* Encoding */

/* Without a buffer the writer only measures.  Either way it stops at cap:
 * WIRE_MAX_FRAME when measuring, the measured size when writing.
 */
struct writer {
    unsigned char *buf;
    size_t len;
    size_t cap;
    bool full;
};

static void put_raw(struct writer *w, const void *src, size_t n)
{
    if (w->full || n > w->cap - w->len) {
        w->full = true;
        return;
    }
    if (w->buf && n > 0)
        memcpy(w->buf + w->len, src, n);
    w->len += n;
}

static void put_u8(struct writer *w, uint8_t v)
{
    put_raw(w, &v, 1);
}

static void put_u32(struct writer *w, uint32_t v)
{
    unsigned char b[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 8), (unsigned char)v};

    put_raw(w, b, sizeof(b));
}

static void put_u64(struct writer *w, uint64_t v)
{
    unsigned char b[8];

    for (size_t i = 0; i < sizeof(b); i++)
        b[i] = (unsigned char)(v >> (56 - 8 * i));
    put_raw(w, b, sizeof(b));
}

static void put_bytes(struct writer *w, const void *data, uint32_t len)
{
    put_u32(w, len);
    put_raw(w, data, len);
}

/* s has been checked by check_text. */
static void put_text(struct writer *w, const char *s)
{
    size_t n = strlen(s);

    put_u8(w, (uint8_t)n);
    put_raw(w, s, n);
}

static void put_raft(struct writer *w, const struct wire_raft *raft)
{
    put_u64(w, raft->to);
    put_u64(w, raft->term);
    put_u64(w, raft->index);
    put_u64(w, raft->log_term);
    put_u64(w, raft->commit);
    put_u64(w, raft->hint);
    put_u8(w, raft->reject ? 1 : 0);
    put_u32(w, raft->n_entries);
    for (uint32_t i = 0; i < raft->n_entries; i++) {
        const struct wire_entry *e = &raft->entries[i];
        put_u64(w, e->term);
        put_u64(w, e->index);
        put_u8(w, e->type);
        put_bytes(w, e->data, e->len);
    }
}

static void put_join_req(struct writer *w, const struct wire_join_req *j)
{
    put_text(w, j->token_id);
    put_raw(w, j->pubkey, WIRE_KEY_BYTES);
    put_raw(w, j->mac, WIRE_MAC_BYTES);
    put_text(w, j->name);
    put_text(w, j->address);
    put_u32(w, j->cpus);
    put_u64(w, j->memory_mb);
}

static void put_join_resp(struct writer *w, const struct wire_join_resp *j)
{
    put_u8(w, j->ok ? 1 : 0);
    if (!j->ok) {
        put_text(w, j->error);
        return;
    }
    put_u64(w, j->node_id);
    put_bytes(w, j->sealed, j->sealed_len);
    put_text(w, j->leader_address);
    put_raw(w, j->leader_pubkey, WIRE_KEY_BYTES);
    put_u64(w, j->leader_id);
}

static void put_swim_update(struct writer *w, const struct wire_swim_update *u)
{
    put_u64(w, u->id);
    put_u64(w, u->incarnation);
    put_u8(w, u->state);
    put_u64(w, u->from);
}

static void put_swim(struct writer *w, const struct wire_swim *s)
{
    put_u8(w, s->type);
    put_u64(w, s->to);
    put_u32(w, s->seq);
    put_u64(w, s->target);
    put_u8(w, s->reply ? 1 : 0);
    put_u8(w, s->n_updates);
    for (uint8_t i = 0; i < s->n_updates; i++)
        put_swim_update(w, &s->updates[i]);
    put_u32(w, s->n_sync);
    for (uint32_t i = 0; i < s->n_sync; i++)
        put_swim_update(w, &s->sync[i]);
}

static void put_state_chunk(struct writer *w, const struct wire_state_chunk *c)
{
    put_u64(w, c->gen);
    put_u64(w, c->total);
    put_u64(w, c->offset);
    put_raw(w, c->digest, WIRE_DIGEST_BYTES);
    put_bytes(w, c->data, c->len);
}

static void put_msg(struct writer *w, const struct wire_msg *m)
{
    put_raw(w, WIRE_SIGNATURE, 3);
    put_u8(w, WIRE_VERSION);
    put_u8(w, (uint8_t)m->type);
    put_u64(w, m->from);
    if (type_is_raft(m->type)) {
        put_raft(w, &m->u.raft);
    } else if (m->type == WIRE_JOIN_REQ) {
        put_join_req(w, &m->u.join_req);
    } else if (m->type == WIRE_JOIN_RESP) {
        put_join_resp(w, &m->u.join_resp);
    } else if (m->type == WIRE_PROPOSE) {
        put_u64(w, m->u.propose.request_id);
        put_u8(w, m->u.propose.type);
        put_bytes(w, m->u.propose.data, m->u.propose.len);
    } else if (m->type == WIRE_PROPOSE_RESP) {
        put_u64(w, m->u.propose_resp.request_id);
        put_u8(w, m->u.propose_resp.ok ? 1 : 0);
        put_u64(w, m->u.propose_resp.index);
        put_text(w, m->u.propose_resp.error);
    } else if (m->type == WIRE_SWIM) {
        put_swim(w, &m->u.swim);
    } else if (m->type == WIRE_STATE_CHUNK) {
        put_state_chunk(w, &m->u.state_chunk);
    } else if (m->type == WIRE_STATE_ACK) {
        put_u64(w, m->u.state_ack.gen);
        put_u8(w, m->u.state_ack.installed ? 1 : 0);
        put_text(w, m->u.state_ack.error);
    }
}

/* Fill err for a message that must not be sent. */
static int refuse(err_t *err, int errnum, const char *name, const char *fmt,
                  ...) __attribute__((format(printf, 4, 5)));

static int refuse(err_t *err, int errnum, const char *name, const char *fmt,
                  ...)
{
    char why[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    errno = errnum;
    return errprintf(err, "cannot encode %s message: %s", name, why);
}

/* The checks wire_decode makes, made before anything is written.
 * strnlen, not strlen: a full array without a NUL is 256 bytes of text.
 */
static int check_text(const char *s, const char *name, const char *field,
                      err_t *err)
{
    if (strnlen(s, WIRE_MAX_TEXT + 1) > WIRE_MAX_TEXT)
        return refuse(err, EINVAL, name, "%s longer than %d bytes", field,
                      WIRE_MAX_TEXT);
    return 0;
}

static int check_data(const void *data, uint32_t len, const char *name,
                      const char *field, err_t *err)
{
    if (len > 0 && !data)
        return refuse(err, EINVAL, name, "%s has length %u but no data", field,
                      (unsigned)len);
    return 0;
}

static int check_raft(const struct wire_msg *m, const char *name, err_t *err)
{
    const struct wire_raft *raft = &m->u.raft;

    if (raft->n_entries > WIRE_MAX_ENTRIES)
        return refuse(err, EINVAL, name, "%u entries, more than %d",
                      (unsigned)raft->n_entries, WIRE_MAX_ENTRIES);
    if (raft->n_entries > 0 && m->type != WIRE_APPEND)
        return refuse(err, EINVAL, name, "only append carries entries");
    if (raft->n_entries > 0 && !raft->entries)
        return refuse(err, EINVAL, name, "%u entries but no array",
                      (unsigned)raft->n_entries);
    for (uint32_t i = 0; i < raft->n_entries; i++) {
        const struct wire_entry *e = &raft->entries[i];
        if (i > 0 && !consecutive(e[-1].index, e->index))
            return refuse(
                err, EINVAL, name, "entry index %llu does not follow %llu",
                (unsigned long long)e->index, (unsigned long long)e[-1].index);
        if (check_data(e->data, e->len, name, "entry data", err) < 0)
            return -1;
    }
    return 0;
}

static int check_swim_update(const struct wire_swim_update *u, const char *name,
                             err_t *err)
{
    if (u->state > WIRE_SWIM_LEFT)
        return refuse(err, EINVAL, name, "update of member %llu in state %u",
                      (unsigned long long)u->id, (unsigned)u->state);
    return 0;
}

static int check_swim(const struct wire_swim *s, const char *name, err_t *err)
{
    if (!swim_type_known(s->type))
        return refuse(err, EINVAL, name, "unknown swim type %u",
                      (unsigned)s->type);
    if (s->n_updates > WIRE_MAX_PIGGYBACK)
        return refuse(err, EINVAL, name, "%u updates, more than %d",
                      (unsigned)s->n_updates, WIRE_MAX_PIGGYBACK);
    if (s->n_sync > WIRE_MAX_SYNC)
        return refuse(err, EINVAL, name, "sync table of %u, more than %d",
                      (unsigned)s->n_sync, WIRE_MAX_SYNC);
    if (s->n_sync > 0 && s->type != WIRE_SWIM_SYNC)
        return refuse(err, EINVAL, name, "only a sync carries a table");
    if (s->n_sync > 0 && !s->sync)
        return refuse(err, EINVAL, name, "sync table of %u but no array",
                      (unsigned)s->n_sync);
    for (uint8_t i = 0; i < s->n_updates; i++)
        if (check_swim_update(&s->updates[i], name, err) < 0)
            return -1;
    for (uint32_t i = 0; i < s->n_sync; i++)
        if (check_swim_update(&s->sync[i], name, err) < 0)
            return -1;
    return 0;
}

static int check_state_chunk(const struct wire_state_chunk *c, const char *name,
                             err_t *err)
{
    if (c->total > WIRE_MAX_STATE)
        return refuse(err, EINVAL, name, "state of %llu bytes, more than %llu",
                      (unsigned long long)c->total,
                      (unsigned long long)WIRE_MAX_STATE);
    if (c->len > WIRE_STATE_CHUNK_MAX)
        return refuse(err, EINVAL, name, "chunk of %u bytes, more than %u",
                      (unsigned)c->len, WIRE_STATE_CHUNK_MAX);
    if (!chunk_fits(c))
        return refuse(err, EINVAL, name,
                      "%u bytes at %llu do not fit a state of %llu",
                      (unsigned)c->len, (unsigned long long)c->offset,
                      (unsigned long long)c->total);
    return check_data(c->data, c->len, name, "data", err);
}

static int check_msg(const struct wire_msg *m, err_t *err)
{
    const char *name = wire_type_name(m->type);
    const struct wire_join_req *jq = &m->u.join_req;
    const struct wire_join_resp *js = &m->u.join_resp;

    if (!type_known(m->type))
        return refuse(err, EINVAL, name, "unknown type %d", (int)m->type);
    if (type_is_raft(m->type))
        return check_raft(m, name, err);
    switch (m->type) {
    case WIRE_JOIN_REQ:
        if (check_text(jq->token_id, name, "token_id", err) < 0 ||
            check_text(jq->name, name, "name", err) < 0 ||
            check_text(jq->address, name, "address", err) < 0)
            return -1;
        return 0;
    case WIRE_JOIN_RESP:
        if (!js->ok)
            return check_text(js->error, name, "error", err);
        if (js->sealed_len > MAX_SEALED)
            return refuse(err, EINVAL, name,
                          "sealed key of %u bytes, more "
                          "than %d",
                          (unsigned)js->sealed_len, MAX_SEALED);
        if (check_data(js->sealed, js->sealed_len, name, "sealed", err) < 0 ||
            check_text(js->leader_address, name, "leader_address", err) < 0)
            return -1;
        return 0;
    case WIRE_PROPOSE:
        return check_data(m->u.propose.data, m->u.propose.len, name, "data",
                          err);
    case WIRE_PROPOSE_RESP:
        return check_text(m->u.propose_resp.error, name, "error", err);
    case WIRE_SWIM:
        return check_swim(&m->u.swim, name, err);
    case WIRE_STATE_CHUNK:
        return check_state_chunk(&m->u.state_chunk, name, err);
    case WIRE_STATE_ACK:
        return check_text(m->u.state_ack.error, name, "error", err);
    default:
        return 0;
    }
}

size_t wire_size(const struct wire_msg *m)
{
    struct writer w = {.cap = WIRE_MAX_FRAME};
    err_t err;

    if (check_msg(m, &err) < 0)
        return 0;
    put_msg(&w, m);
    if (w.full) {
        errno = EMSGSIZE;
        return 0;
    }
    return w.len;
}

int wire_encode(const struct wire_msg *m, unsigned char **out, size_t *len,
                err_t *err)
{
    struct writer w = {.cap = WIRE_MAX_FRAME};
    unsigned char *buf;

    if (check_msg(m, err) < 0)
        return -1;
    put_msg(&w, m);
    if (w.full)
        return refuse(err, EMSGSIZE, wire_type_name(m->type),
                      "larger than %u bytes", WIRE_MAX_FRAME);
    buf = malloc(w.len);
    if (!buf)
        return errprintf_errno(err, "cannot encode %s message",
                               wire_type_name(m->type));
    w = (struct writer){.buf = buf, .cap = w.len};
    put_msg(&w, m);
    /* both passes run the same code on the same message */
    assert(!w.full && w.len == w.cap);
    *out = buf;
    *len = w.len;
    return 0;
}
