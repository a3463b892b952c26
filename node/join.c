/* join.c - join tokens and the joiner's side of admission */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include <sodium.h>
#include <zmq.h>

#include "node/join.h"
#include "node/transport.h"
#include "proto/wire.h"

#define VERIFIER_KEY "peerd-token-v1" /* BLAKE2b key: domain separation */

void token_new(struct join_token *t, const unsigned char join_pub[32])
{
    unsigned char id[TOKEN_ID_BYTES];

    randombytes_buf(id, sizeof(id));
    sodium_bin2hex(t->id, sizeof(t->id), id, sizeof(id));
    randombytes_buf(t->secret, sizeof(t->secret));
    memcpy(t->join_pub, join_pub, 32);
}

void token_format(const struct join_token *t, char out[TOKEN_TEXT_MAX])
{
    char sec[2 * TOKEN_SECRET_BYTES + 1], pub[65];

    sodium_bin2hex(sec, sizeof(sec), t->secret, sizeof(t->secret));
    sodium_bin2hex(pub, sizeof(pub), t->join_pub, 32);
    snprintf(out, TOKEN_TEXT_MAX, "pdt1.%s.%s.%s", t->id, sec, pub);
    sodium_memzero(sec, sizeof(sec));
}

static int hex_part(const char *p, size_t len, unsigned char *out,
                    size_t outlen)
{
    size_t got = 0;

    if (len != 2 * outlen)
        return -1;
    return sodium_hex2bin(out, outlen, p, len, NULL, &got, NULL) == 0 &&
                   got == outlen
               ? 0
               : -1;
}

int token_parse(const char *text, struct join_token *t, err_t *err)
{
    const char *p[4];
    size_t len[4];
    const char *s = text;
    unsigned char id[TOKEN_ID_BYTES];

    memset(t, 0, sizeof(*t));
    for (int i = 0; i < 4; i++) {
        const char *dot = strchr(s, '.');
        p[i] = s;
        len[i] = dot ? (size_t)(dot - s) : strlen(s);
        if ((i < 3 && !dot) || (i == 3 && dot))
            goto bad;
        s = dot ? dot + 1 : s + len[i];
    }
    if (len[0] != 4 || memcmp(p[0], "pdt1", 4) != 0 ||
        hex_part(p[1], len[1], id, sizeof(id)) < 0 ||
        hex_part(p[2], len[2], t->secret, sizeof(t->secret)) < 0 ||
        hex_part(p[3], len[3], t->join_pub, 32) < 0)
        goto bad;
    /* ids are stored in lower case; accept a token typed in upper case */
    sodium_bin2hex(t->id, sizeof(t->id), id, sizeof(id));
    return 0;
bad:
    sodium_memzero(t, sizeof(*t));
    return errprintf(err, "not a peerd join token (expected "
                          "pdt1.<id>.<secret>.<key>, as printed by "
                          "'peerctl token create')");
}

void token_verifier(const unsigned char secret[TOKEN_SECRET_BYTES],
                    unsigned char out[32])
{
    crypto_generichash(out, 32, secret, TOKEN_SECRET_BYTES,
                       (const unsigned char *)VERIFIER_KEY,
                       strlen(VERIFIER_KEY));
}

void join_mac(const unsigned char verifier[32],
              const unsigned char join_pub[32],
              const unsigned char joiner_pub[32], const char *name,
              unsigned char mac[32])
{
    crypto_auth_hmacsha256_state st;

    crypto_auth_hmacsha256_init(&st, verifier, 32);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)"peerd-join", 10);
    crypto_auth_hmacsha256_update(&st, join_pub, 32);
    crypto_auth_hmacsha256_update(&st, joiner_pub, 32);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)name,
                                  strlen(name));
    crypto_auth_hmacsha256_final(&st, mac);
}

bool join_mac_ok(const unsigned char verifier[32],
                 const unsigned char join_pub[32],
                 const unsigned char joiner_pub[32], const char *name,
                 const unsigned char mac[32])
{
    unsigned char want[32];
    bool ok;

    join_mac(verifier, join_pub, joiner_pub, name, want);
    ok = sodium_memcmp(want, mac, 32) == 0;
    sodium_memzero(want, sizeof(want));
    return ok;
}

int join_request(void *zctx, const node_key_t *key, const char *target,
                 const struct join_token *tok, const char *name,
                 const char *address, int cpus, long memory_mb, double timeout,
                 struct join_result *out, err_t *err)
{
    struct wire_msg req = {.type = WIRE_JOIN_REQ, .from = 0}, resp;
    struct wire_join_req *j = &req.u.join_req;
    unsigned char verifier[32], *buf = NULL;
    char host[128], ep[160];
    size_t len = 0;
    int port, linger = 0, rc = EX_UNAVAILABLE, n;
    void *s = NULL;
    zmq_msg_t msg;

    memset(out, 0, sizeof(*out));
    memset(&resp, 0, sizeof(resp));
    zmq_msg_init(&msg);
    if (transport_parse_addr(target, host, sizeof(host), &port,
                             TRANSPORT_DEFAULT_PORT) < 0) {
        errprintf(err, "bad --join address '%s' (HOST or HOST:PORT)", target);
        return EX_USAGE;
    }
    snprintf(j->token_id, sizeof(j->token_id), "%s", tok->id);
    memcpy(j->pubkey, key->pub, 32);
    snprintf(j->name, sizeof(j->name), "%s", name);
    snprintf(j->address, sizeof(j->address), "%s", address);
    j->cpus = (uint32_t)cpus;
    j->memory_mb = (uint64_t)memory_mb;
    token_verifier(tok->secret, verifier);
    join_mac(verifier, tok->join_pub, key->pub, name, j->mac);
    sodium_memzero(verifier, sizeof(verifier));
    if (wire_encode(&req, &buf, &len, err) < 0)
        return EX_SOFTWARE;

    snprintf(ep, sizeof(ep), "tcp://%s:%d", host, port + 1);
    if (!(s = zmq_socket(zctx, ZMQ_DEALER))) {
        errprintf(err, "socket: %s", zmq_strerror(errno));
        goto out;
    }
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof(linger));
    zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, tok->join_pub, 32);
    zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, key->pub, 32);
    zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, key->sec->data, 32);
    if (zmq_connect(s, ep) < 0 || zmq_send(s, buf, len, 0) < 0) {
        errprintf(err, "cannot reach %s: %s", ep, zmq_strerror(errno));
        goto out;
    }
    zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
    n = zmq_poll(&it, 1, (long)(timeout * 1000));
    if (n <= 0) {
        errprintf(err,
                  "no answer from %s within %.0f s (wrong address or "
                  "port, a token for another cluster, or the cluster "
                  "has no leader)",
                  ep, timeout);
        goto out;
    }
    if (zmq_msg_recv(&msg, s, 0) < 0 ||
        wire_decode(zmq_msg_data(&msg), zmq_msg_size(&msg), &resp, err) < 0 ||
        resp.type != WIRE_JOIN_RESP) {
        errprintf(err, "bad answer from %s", ep);
        rc = EX_PROTOCOL;
        goto out;
    }
    if (!resp.u.join_resp.ok) {
        errprintf(err, "the cluster refused to admit this host: %s",
                  resp.u.join_resp.error);
        rc = EX_NOPERM;
        goto out;
    }
    if (resp.u.join_resp.sealed_len > sizeof(out->sealed) ||
        resp.u.join_resp.node_id == 0) {
        errprintf(err, "bad answer from %s", ep);
        rc = EX_PROTOCOL;
        goto out;
    }
    out->node_id = resp.u.join_resp.node_id;
    out->sealed_len = resp.u.join_resp.sealed_len;
    memcpy(out->sealed, resp.u.join_resp.sealed, out->sealed_len);
    out->leader_id = resp.u.join_resp.leader_id;
    snprintf(out->leader_address, sizeof(out->leader_address), "%s",
             resp.u.join_resp.leader_address);
    memcpy(out->leader_pub, resp.u.join_resp.leader_pubkey, 32);
    rc = 0;
out:
    wire_msg_fini(&resp);
    zmq_msg_close(&msg);
    if (s)
        zmq_close(s);
    free(buf);
    return rc;
}
