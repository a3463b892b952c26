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
#define WIRE_MAX_TEXT 255     /* names, addresses, error text */
#define WIRE_MAX_SEALED 4096  /* sealed secret in a JOIN_RESP */
#define WIRE_MAX_PIGGYBACK 16 /* SWIM updates in one message (node/swim.h) */
#define WIRE_MAX_SYNC 4096    /* SWIM updates in one SYNC table */
#define WIRE_DIGEST_BYTES 32  /* BLAKE2b-256 */
#define WIRE_MAX_STATE (1024ull * 1024 * 1024) /* state archive, 1 GiB */
#define WIRE_STATE_CHUNK_MAX (1024u * 1024)    /* data in one chunk */

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
    /* membership gossip (node/gossip.c) */
    WIRE_SWIM = 20,
    /* controller state, active -> standby */
    WIRE_STATE_CHUNK = 21,
    WIRE_STATE_ACK = 22,
};

/* The kinds of SWIM message, numbered as node/swim.h's enum
 * swim_msg_type (proto/ does not include node/ headers).
 */
enum wire_swim_type {
    WIRE_SWIM_PING = 1,
    WIRE_SWIM_ACK = 2,
    WIRE_SWIM_PING_REQ = 3,
    WIRE_SWIM_NACK = 4,
    WIRE_SWIM_SYNC = 5,
    WIRE_SWIM_GOSSIP = 6,
};

/* A member's state in a SWIM update, numbered as enum swim_state. */
enum wire_swim_state {
    WIRE_SWIM_ALIVE = 0,
    WIRE_SWIM_SUSPECT = 1,
    WIRE_SWIM_DEAD = 2,
    WIRE_SWIM_LEFT = 3,
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

/* One member's state as gossiped; from = the accuser of a SUSPECT, or 0. */
struct wire_swim_update {
    uint64_t id;
    uint64_t incarnation;
    uint8_t state; /* enum wire_swim_state */
    uint64_t from;
};

/* One SWIM message (node/swim.h struct swim_msg).  Its sender is the
 * frame's sender.  Only a SYNC carries a sync table; reply is meant for
 * a SYNC but round trips as sent in any type, like seq and target.
 */
struct wire_swim {
    uint8_t type; /* enum wire_swim_type */
    uint64_t to;
    uint32_t seq;
    uint64_t target;
    bool reply;
    uint8_t n_updates; /* <= WIRE_MAX_PIGGYBACK */
    struct wire_swim_update updates[WIRE_MAX_PIGGYBACK];
    uint32_t n_sync;               /* <= WIRE_MAX_SYNC; 0 unless SYNC */
    struct wire_swim_update *sync; /* owned */
};

/* One piece of a generation of the controller's state: bytes [offset,
 * offset + len) of an archive of total bytes whose BLAKE2b-256 is digest
 * (opaque here).  len >= 1 unless total is 0, offset + len <= total.
 */
struct wire_state_chunk {
    uint64_t gen;
    uint64_t total; /* <= WIRE_MAX_STATE */
    uint64_t offset;
    unsigned char digest[WIRE_DIGEST_BYTES];
    uint32_t len;        /* <= WIRE_STATE_CHUNK_MAX */
    unsigned char *data; /* owned */
};

/* The standby's answer: the newest generation it holds installed, or
 * why it refused or failed one.
 */
struct wire_state_ack {
    uint64_t gen;
    bool installed;
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
        struct wire_swim swim;
        struct wire_state_chunk state_chunk;
        struct wire_state_ack state_ack;
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

/* The size of m's frame as wire_encode would write it, without writing
 * it; 0 with errno EINVAL or EMSGSIZE for a message wire_encode refuses.
 */
size_t wire_size(const struct wire_msg *m);

/* Free what a decoded or caller-built message owns; safe on a zeroed one. */
void wire_msg_fini(struct wire_msg *m);

/* Name of a message type for logs ("append", ...), "?" if unknown. */
const char *wire_type_name(int type);

#endif
