/* fuzz_wire.c - libFuzzer target for the peer protocol codec (proto/wire.c)
 *
 * Any input either fails to decode, leaving the message zeroed, or
 * decodes to a message that encodes back to the very same bytes (the
 * encoding is canonical), and encode(decode(x)) is a fixed point.  Any
 * other outcome aborts, and so does anything the sanitizers see.
 *
 * Built with -DFUZZ_WIRE_SEEDS instead of -fsanitize=fuzzer, the file is a
 * small program that writes the seed corpus (one valid frame per message
 * shape) into the directory given as its argument.  See README.md.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void die(const char *what, const err_t *err)
{
    fprintf(stderr, "fuzz_wire: %s: %s\n", what, err ? err->text : "");
    abort();
}

static int is_zeroed(const struct wire_msg *m)
{
    static const struct wire_msg zero;

    return memcmp(m, &zero, sizeof(zero)) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct wire_msg m, again;
    unsigned char *out = NULL, *out2 = NULL;
    size_t len = 0, len2 = 0;
    err_t err = {{0}};

    if (wire_decode(data, size, &m, &err) < 0) {
        if (errno != EPROTO && errno != ENOMEM)
            die("decode failed with an unexpected errno", &err);
        if (!is_zeroed(&m))
            die("failed decode left the message set", &err);
        return 0;
    }
    if (wire_encode(&m, &out, &len, &err) < 0)
        die("decoded message does not encode", &err);
    if (len != size || memcmp(out, data, size) != 0)
        die("re-encoding differs from the input", NULL);
    if (wire_decode(out, len, &again, &err) < 0)
        die("re-encoded frame does not decode", &err);
    if (wire_encode(&again, &out2, &len2, &err) < 0)
        die("second decode does not encode", &err);
    if (len2 != len || memcmp(out2, out, len) != 0)
        die("encode(decode(x)) is not a fixed point", NULL);
    free(out2);
    free(out);
    wire_msg_fini(&again);
    wire_msg_fini(&m);
    if (!is_zeroed(&m))
        die("wire_msg_fini left the message set", NULL);
    return 0;
}

#ifdef FUZZ_WIRE_SEEDS
/* One small valid frame per message shape. */

static unsigned char *bytes(const char *s, size_t n)
{
    unsigned char *p = malloc(n ? n : 1);

    if (!p)
        die("out of memory", NULL);
    memcpy(p, s, n);
    return p;
}

static void write_seed(const char *dir, const char *name,
                       const struct wire_msg *m)
{
    unsigned char *buf;
    size_t len;
    err_t err;
    char path[4096];
    FILE *f;

    if (wire_encode(m, &buf, &len, &err) < 0)
        die(name, &err);
    LLVMFuzzerTestOneInput(buf, len);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "wb");
    if (!f || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
    printf("%s %zu bytes\n", path, len);
    free(buf);
}

static void raft_seeds(const char *dir)
{
    static const struct {
        const char *name;
        enum wire_type type;
    } plain[] = {
        {"prevote", WIRE_PREVOTE},
        {"prevote_resp", WIRE_PREVOTE_RESP},
        {"vote", WIRE_VOTE},
        {"vote_resp", WIRE_VOTE_RESP},
        {"append_heartbeat", WIRE_APPEND},
        {"append_resp", WIRE_APPEND_RESP},
        {"timeout_now", WIRE_TIMEOUT_NOW},
    };
    struct wire_msg m;
    struct wire_entry *e;

    for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
        m = (struct wire_msg){.type = plain[i].type, .from = 1};
        m.u.raft = (struct wire_raft){.to = 2,
                                      .term = 5,
                                      .index = 41,
                                      .log_term = 4,
                                      .commit = 40,
                                      .hint = 39,
                                      .reject = i % 2};
        write_seed(dir, plain[i].name, &m);
    }
    m = (struct wire_msg){.type = WIRE_APPEND, .from = 1};
    m.u.raft = (struct wire_raft){
        .to = 2, .term = 5, .index = 41, .log_term = 4, .commit = 40};
    m.u.raft.n_entries = 3;
    m.u.raft.entries = e = calloc(3, sizeof(*e));
    if (!e)
        die("out of memory", NULL);
    for (uint32_t i = 0; i < 3; i++)
        e[i] = (struct wire_entry){.term = 5, .index = 42 + i, .type = 16};
    e[0].type = 2; /* a new leader's no-op, no data */
    e[1].len = 5;
    e[1].data = bytes("a\0b\xff\n", 5);
    e[2].type = 1;
    e[2].len = 12;
    e[2].data = bytes("\0\0\0\2\0\0\0\0\0\0\0\1", 12);
    write_seed(dir, "append", &m);
    wire_msg_fini(&m);
}

static void other_seeds(const char *dir)
{
    struct wire_msg m;

    m = (struct wire_msg){.type = WIRE_JOIN_REQ, .from = 0};
    strcpy(m.u.join_req.token_id, "tok-1");
    memset(m.u.join_req.pubkey, 0x11, WIRE_KEY_BYTES);
    memset(m.u.join_req.mac, 0x22, WIRE_MAC_BYTES);
    strcpy(m.u.join_req.name, "node-2");
    strcpy(m.u.join_req.address, "10.0.0.2:7946");
    m.u.join_req.cpus = 8;
    m.u.join_req.memory_mb = 16384;
    write_seed(dir, "join_req", &m);

    m = (struct wire_msg){.type = WIRE_JOIN_RESP, .from = 1};
    m.u.join_resp.ok = true;
    m.u.join_resp.node_id = 2;
    m.u.join_resp.sealed_len = 80;
    m.u.join_resp.sealed = calloc(1, 80);
    strcpy(m.u.join_resp.leader_address, "10.0.0.1:7946");
    memset(m.u.join_resp.leader_pubkey, 0x33, WIRE_KEY_BYTES);
    m.u.join_resp.leader_id = 1;
    write_seed(dir, "join_resp_ok", &m);
    wire_msg_fini(&m);

    m = (struct wire_msg){.type = WIRE_JOIN_RESP, .from = 1};
    strcpy(m.u.join_resp.error, "token expired");
    write_seed(dir, "join_resp_refused", &m);

    m = (struct wire_msg){.type = WIRE_PROPOSE, .from = 2};
    m.u.propose.request_id = 7;
    m.u.propose.type = 16;
    m.u.propose.len = 6;
    m.u.propose.data = bytes("set\0x\1", 6);
    write_seed(dir, "propose", &m);
    wire_msg_fini(&m);

    m = (struct wire_msg){.type = WIRE_PROPOSE_RESP, .from = 1};
    m.u.propose_resp.request_id = 7;
    m.u.propose_resp.ok = true;
    m.u.propose_resp.index = 44;
    write_seed(dir, "propose_resp_ok", &m);

    m = (struct wire_msg){.type = WIRE_PROPOSE_RESP, .from = 1};
    m.u.propose_resp.request_id = 8;
    strcpy(m.u.propose_resp.error, "not the leader");
    write_seed(dir, "propose_resp_error", &m);
}

static void swim_state_seeds(const char *dir)
{
    struct wire_msg m;
    struct wire_swim *w;

    m = (struct wire_msg){.type = WIRE_SWIM, .from = 1};
    w = &m.u.swim;
    *w = (struct wire_swim){
        .type = WIRE_SWIM_PING, .to = 2, .seq = 7, .target = 2, .n_updates = 2};
    w->updates[0] = (struct wire_swim_update){.id = 1, .incarnation = 1};
    w->updates[1] = (struct wire_swim_update){
        .id = 3, .incarnation = 0, .state = WIRE_SWIM_SUSPECT, .from = 1};
    write_seed(dir, "swim_ping", &m);

    m = (struct wire_msg){.type = WIRE_SWIM, .from = 2};
    w = &m.u.swim;
    *w = (struct wire_swim){.type = WIRE_SWIM_SYNC, .to = 1, .reply = 1};
    w->n_updates = 1;
    w->updates[0] = (struct wire_swim_update){
        .id = 4, .incarnation = 2, .state = WIRE_SWIM_DEAD};
    w->n_sync = 3;
    w->sync = calloc(3, sizeof(*w->sync));
    if (!w->sync)
        die("out of memory", NULL);
    for (uint32_t i = 0; i < 3; i++)
        w->sync[i] = (struct wire_swim_update){
            .id = i + 1, .incarnation = i, .state = (uint8_t)i};
    w->sync[1].from = 3;
    write_seed(dir, "swim_sync", &m);
    wire_msg_fini(&m);

    m = (struct wire_msg){.type = WIRE_STATE_CHUNK, .from = 1};
    m.u.state_chunk.gen = 3;
    m.u.state_chunk.total = 20;
    m.u.state_chunk.offset = 12;
    memset(m.u.state_chunk.digest, 0x44, WIRE_DIGEST_BYTES);
    m.u.state_chunk.len = 8;
    m.u.state_chunk.data = bytes("tar\0\1\2\3\xff", 8);
    write_seed(dir, "state_chunk", &m);
    wire_msg_fini(&m);

    m = (struct wire_msg){.type = WIRE_STATE_ACK, .from = 2};
    m.u.state_ack.gen = 3;
    strcpy(m.u.state_ack.error, "digest mismatch");
    write_seed(dir, "state_ack", &m);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    raft_seeds(argv[1]);
    other_seeds(argv[1]);
    swim_state_seeds(argv[1]);
    return 0;
}
#endif
