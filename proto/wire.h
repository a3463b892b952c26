/* wire.h - the peer protocol: messages between peerd processes
 *
 * Every peer message is one ZeroMQ frame (spec: doc/protocol-peer.md):
 *   frame     = signature version type sender body
 *   signature = "PDW"        3 octets
 *   version   = %x01         1 octet
 *   type      = 1 octet      (enum wire_type)
 *   sender    = 8 octets     sender's node id, big-endian (0 = joiner)
 *   body      = per type, big-endian integers, byte strings as
 *               u32 length + bytes, texts as u8 length + bytes (no NUL,
 *               at most WIRE_MAX_TEXT), at most WIRE_MAX_FRAME in all
 * The codec is hand-written: bounds-checked get/put helpers, one
 * malformed: exit.  The decoder copies everything it keeps; a decoded
 * message owns its memory (wire_msg_fini frees it).
 */
#ifndef PEERD_WIRE_H
#define PEERD_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/err.h"

#define WIRE_SIGNATURE "PDW"
#define WIRE_VERSION 1
#define WIRE_HEADER_LEN 13
#define WIRE_MAX_FRAME (4u * 1024 * 1024)
#define WIRE_MAX_ENTRIES 1024
#define WIRE_KEY_BYTES 32
#define WIRE_MAC_BYTES 32
#define WIRE_MAX_TEXT 255    /* names, addresses, error text */
#define WIRE_MAX_SEALED 4096 /* sealed secret in a JOIN_RESP */

enum wire_type {
    /* Raft (node/raft.c) */
    WIRE_PREVOTE = 1,
    WIRE_PREVOTE_RESP = 2,
    WIRE_VOTE = 3,
    WIRE_VOTE_RESP = 4,
    WIRE_APPEND = 5,
    WIRE_APPEND_RESP = 6,
    WIRE_TIMEOUT_NOW = 7,
    /* admission, on the join socket */
    WIRE_JOIN_REQ = 16,
    WIRE_JOIN_RESP = 17,
    /* a learner or follower forwards a write to the leader */
    WIRE_PROPOSE = 18,
    WIRE_PROPOSE_RESP = 19,
};

/* One Raft log entry.  type is opaque to Raft except RAFT_ENTRY_CONF. */
struct wire_entry {
    uint64_t term;
    uint64_t index;
    uint8_t type;
    uint32_t len;
    unsigned char *data; /* len bytes, owned */
};

/* Raft messages share one shape (as etcd's raftpb.Message):
 *   PREVOTE/VOTE:         term, index = last log index, log_term = its term
 *   PREVOTE_RESP/VOTE_RESP: term, reject
 *   APPEND:               term, index = prev log index, log_term = its
 *                         term, commit, entries
 *   APPEND_RESP:          term, reject, index = match index on success,
 *                         on reject index = the rejected prev index and
 *                         hint = where the leader should try next
 *   TIMEOUT_NOW:          term
 */
struct wire_raft {
    uint64_t to;
    uint64_t term;
    uint64_t index;
    uint64_t log_term;
    uint64_t commit;
    uint64_t hint;
    bool reject;
    uint32_t n_entries;
    struct wire_entry *entries; /* owned */
};

/* A new host asks to be admitted (join socket, CURVE with the cluster's
 * join key pinned by the token).  mac = HMAC-SHA-256 keyed with the
 * token's verifier over "peerd-join" || the cluster's join public key || pubkey
 * || name.
 */
struct wire_join_req {
    char token_id[WIRE_MAX_TEXT + 1];
    unsigned char pubkey[WIRE_KEY_BYTES];
    unsigned char mac[WIRE_MAC_BYTES];
    char name[WIRE_MAX_TEXT + 1];
    char address[WIRE_MAX_TEXT + 1]; /* host:port it listens on */
    uint32_t cpus;
    uint64_t memory_mb;
};

struct wire_join_resp {
    bool ok;
    char error[WIRE_MAX_TEXT + 1]; /* when !ok */
    uint64_t node_id;              /* assigned to the joiner */
    uint32_t sealed_len;
    unsigned char *sealed; /* data key sealed to the joiner, owned */
    char leader_address[WIRE_MAX_TEXT + 1];
    unsigned char leader_pubkey[WIRE_KEY_BYTES];
    uint64_t leader_id;
};

/* A write forwarded to the leader; the answer comes as soon as the leader
 * has appended it (or refused it), with the index it was appended at.
 */
struct wire_propose {
    uint64_t request_id;
    uint8_t type;
    uint32_t len;
    unsigned char *data; /* owned */
};

struct wire_propose_resp {
    uint64_t request_id;
    bool ok;
    uint64_t index; /* appended at */
    char error[WIRE_MAX_TEXT + 1];
};

struct wire_msg {
    enum wire_type type;
    uint64_t from;
    union {
        struct wire_raft raft;
        struct wire_join_req join_req;
        struct wire_join_resp join_resp;
        struct wire_propose propose;
        struct wire_propose_resp propose_resp;
    } u;
};

/* Encode m into a malloc'd frame.  Returns 0 or -1 with err and errno
 * EINVAL (a message that breaks a limit: too many entries, text too long)
 * or EMSGSIZE (frame larger than WIRE_MAX_FRAME).
 */
int wire_encode(const struct wire_msg *m, unsigned char **out, size_t *len,
                err_t *err);

/* Decode a frame into *m (which the caller then owns: wire_msg_fini).
 * *m is overwritten, not freed first.  A zero-length byte string decodes
 * to a NULL pointer.  Returns 0, or -1 with err and errno EPROTO (the
 * frame is malformed) or ENOMEM (out of memory here, not the sender's
 * fault), leaving *m zeroed.
 */
int wire_decode(const void *buf, size_t len, struct wire_msg *m, err_t *err);

/* Free what a decoded or caller-built message owns; safe on a zeroed one. */
void wire_msg_fini(struct wire_msg *m);

/* Name of a message type for logs ("append", ...), "?" if unknown. */
const char *wire_type_name(int type);

#endif
