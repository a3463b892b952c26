/* transport.h - peer sockets: ZeroMQ with CURVE, admission by key
 *
 * Each peer binds one ROUTER socket for peer traffic (CURVE server with
 * the node key) and, when it holds the cluster's join key, one ROUTER for
 * joiners (CURVE server with the join key).  It talks to each other peer
 * through a DEALER (CURVE client, the peer's public key pinned), opened
 * lazily and capped in number; sends never block (ZMQ_IMMEDIATE, small
 * high-water marks, ZMQ_DONTWAIT): a message to a dead peer is dropped
 * and counted, which Raft tolerates.
 *
 * A ZAP handler (polled by the event loop like any socket) admits on the
 * peer socket only public keys registered with transport_set_peer() (the
 * committed member table), and on the join socket any key (the joiner
 * proves a token instead).  A message is accepted only if the sender id
 * in its header is the member id of the key that authenticated the
 * connection.  Everything refused is counted (transport_stats).
 */
#ifndef PEERD_TRANSPORT_H
#define PEERD_TRANSPORT_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>
#include <zmq.h>

#include "proto/err.h"
#include "proto/wire.h"
#include "store/secret.h"

typedef struct transport transport_t;

#define TRANSPORT_DEFAULT_PORT 7050 /* peer port; joins on port + 1 */
#define TRANSPORT_MAX_PEERS 256
#define TRANSPORT_MAX_POLL 6

struct transport_stats {
    uint64_t received;           /* messages accepted */
    uint64_t sent;               /* messages handed to ZeroMQ */
    uint64_t send_dropped;       /* not sent: peer unreachable/queue full */
    uint64_t malformed;          /* frames that did not decode */
    uint64_t spoofed;            /* sender id not the authenticated key's */
    uint64_t refused_keys;       /* ZAP: key not admitted */
    uint64_t handshake_failures; /* garbage, wrong protocol, bad CURVE */
    uint64_t disconnects;        /* connections dropped (e.g. oversized) */
};

/* bind: address to listen on (IPv4 or "*"), port: peer port (join port is
 * port + 1 when join_sec is given).  Returns NULL with err.
 */
transport_t *transport_new(void *zctx, const node_key_t *key, const char *bind,
                           int port, const unsigned char *join_pub,
                           const secret_t *join_sec, err_t *err);
void transport_destroy(transport_t **tp);

/* Start serving joins (when the join key becomes known after start). */
int transport_listen_join(transport_t *t, const unsigned char *join_pub,
                          const secret_t *join_sec, err_t *err);

/* Register (or update) a peer: its member id, key and peer address
 * "host:port".  Registered keys are admitted on the peer socket.
 */
int transport_set_peer(transport_t *t, uint64_t id, const unsigned char *pub,
                       const char *address);
/* Forget a peer: its connection is closed and its key refused. */
void transport_remove_peer(transport_t *t, uint64_t id);

/* Send to a registered peer.  0 sent, -1 dropped (counted). */
int transport_send(transport_t *t, uint64_t to, const struct wire_msg *m);

/* Poll items for the event loop (up to TRANSPORT_MAX_POLL). */
int transport_poll_items(transport_t *t, zmq_pollitem_t *items);

/* Serve ZAP requests and monitor events that are waiting. */
void transport_service(transport_t *t);

/* Next accepted message from a peer: 1 (m filled, caller owns it),
 * 0 nothing waiting.
 */
int transport_recv(transport_t *t, struct wire_msg *m);

/* Next join request: 1 (m filled, the joiner's CURVE key in pub, an opaque
 * routing id in rid[*ridlen] for the reply), 0 nothing waiting.
 */
int transport_recv_join(transport_t *t, struct wire_msg *m,
                        unsigned char pub[32], unsigned char *rid,
                        size_t *ridlen);
int transport_reply_join(transport_t *t, const unsigned char *rid,
                         size_t ridlen, const struct wire_msg *m);

/* Seconds since a message from peer id was accepted (-1: never). */
double transport_last_heard(transport_t *t, uint64_t id, double now);

const struct transport_stats *transport_stats(transport_t *t);
json_t *transport_stats_json(transport_t *t);

/* Parse "host[:port]" into host (cap bytes) and *port (default when
 * missing).  Returns 0 or -1.
 */
int transport_parse_addr(const char *s, char *host, size_t cap, int *port,
                         int default_port);

#endif
