/* admit.c - the cluster's side of a join: check the token, commit the
 * new member through Raft, hand it the data key
 *
 * Any peer that holds the join key serves joins.  The token is checked
 * against the applied state here first (so that garbage never reaches
 * the log), then again, deterministically, when the member_add entry is
 * applied on every peer (so that two joins racing for the last use of a
 * token cannot both win).  The answer is sent only after this peer has
 * applied the entry, i.e. after a majority has it on disk.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "node/join.h"
#include "node/log.h"
#include "node/peerd.h"
#include "store/members.h"

struct pending_join {
    struct peerd *p;
    unsigned char pub[32];
    unsigned char rid[256];
    size_t ridlen;
    char name[WIRE_MAX_TEXT + 1];
};

/* A name or address: printable ASCII, no white space. */
static bool plain(const char *s)
{
    if (!*s)
        return false;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p <= ' ' || *p >= 0x7f)
            return false;
    return true;
}

static void refuse(struct peerd *p, const unsigned char *rid, size_t ridlen,
                   const char *name, const char *why)
{
    struct wire_msg m = {.type = WIRE_JOIN_RESP, .from = p->cluster.node_id};

    snprintf(m.u.join_resp.error, sizeof(m.u.join_resp.error), "%s", why);
    p->joins_refused++;
    log_warnx("refused to admit '%s': %s", name, why);
    transport_reply_join(p->t, rid, ridlen, &m);
}

static void admitted(void *arg, bool ok, uint64_t index,
                     const struct fsm_effects *fx, const char *error)
{
    struct pending_join *j = arg;
    struct peerd *p = j->p;
    struct wire_msg m = {.type = WIRE_JOIN_RESP, .from = p->cluster.node_id};
    struct wire_join_resp *r = &m.u.join_resp;
    struct member leader;
    unsigned char *sealed = NULL;
    size_t len = 0;
    err_t err;

    if (!ok || p->stopping) {
        refuse(p, j->rid, j->ridlen, j->name,
               error ? error : "peerd is stopping");
        goto out;
    }
    if (fx->refused || fx->admitted != index) {
        refuse(p, j->rid, j->ridlen, j->name, fx->why);
        goto out;
    }
    if (secret_seal(j->pub, p->cluster.data_key, &sealed, &len, &err) < 0 ||
        len > WIRE_MAX_SEALED) {
        refuse(p, j->rid, j->ridlen, j->name, "cannot seal the data key");
        goto out;
    }
    /* the joiner learns the log from the leader; tell it who that is,
     * or this peer if it does not know
     */
    uint64_t lid = agree_leader(p->agree);
    if (!lid || members_get(p->cluster.store, lid, &leader, NULL) != 1)
        lid = p->cluster.node_id;
    if (members_get(p->cluster.store, lid, &leader, NULL) != 1) {
        refuse(p, j->rid, j->ridlen, j->name, "no leader known");
        goto out;
    }
    r->ok = true;
    r->node_id = index;
    r->sealed = sealed;
    r->sealed_len = (uint32_t)len;
    r->leader_id = lid;
    snprintf(r->leader_address, sizeof(r->leader_address), "%s",
             leader.address);
    memcpy(r->leader_pubkey, leader.pubkey, 32);
    p->joins_admitted++;
    log_info("admitted '%s' as member %llu", j->name,
             (unsigned long long)index);
    transport_reply_join(p->t, j->rid, j->ridlen, &m);
out:
    free(sealed);
    free(j);
}

void peerd_join_request(struct peerd *p, struct wire_msg *m,
                        const unsigned char pub[32], const unsigned char *rid,
                        size_t ridlen)
{
    const struct wire_join_req *q = &m->u.join_req;
    struct pending_join *j;
    struct token t;
    char pubhex[65];
    int rc;

    if (!plain(q->name) || !plain(q->address)) {
        /* not logged as sent: it could hold control characters */
        refuse(p, rid, ridlen, "?", "bad host name or address");
        return;
    }
    if (!p->cluster.have_state) {
        refuse(p, rid, ridlen, q->name, "this peer has no cluster state yet");
        return;
    }
    if (sodium_memcmp(q->pubkey, pub, 32) != 0) {
        refuse(p, rid, ridlen, q->name,
               "the key in the request is not the connection's key");
        return;
    }
    rc = tokens_get(p->cluster.store, q->token_id, &t, NULL);
    if (rc != 1) {
        refuse(p, rid, ridlen, q->name,
               rc < 0 ? "cannot read tokens" : "unknown token");
        return;
    }
    if (!join_mac_ok(t.verifier, p->cluster.join_pub, pub, q->name, q->mac)) {
        refuse(p, rid, ridlen, q->name, "wrong token secret");
        return;
    }
    if (t.expires <= (int64_t)time(NULL)) {
        refuse(p, rid, ridlen, q->name, "token expired");
        return;
    }
    if (t.uses_left < 1) {
        refuse(p, rid, ridlen, q->name, "token used up");
        return;
    }
    if (!(j = calloc(1, sizeof(*j))) || ridlen > sizeof(j->rid)) {
        free(j);
        refuse(p, rid, ridlen, q->name, "out of memory");
        return;
    }
    j->p = p;
    memcpy(j->pub, pub, 32);
    memcpy(j->rid, rid, ridlen);
    j->ridlen = ridlen;
    snprintf(j->name, sizeof(j->name), "%s", q->name);
    sodium_bin2hex(pubhex, sizeof(pubhex), pub, 32);
    if (agree_propose(p->agree,
                      json_pack("{s:s,s:s,s:s,s:s,s:i,s:I,s:s,s:I}", "op",
                                "member_add", "name", q->name, "pubkey", pubhex,
                                "address", q->address, "cpus", (int)q->cpus,
                                "memory_mb", (json_int_t)q->memory_mb, "token",
                                q->token_id, "time", (json_int_t)time(NULL)),
                      admitted, j, peerd_now()) < 0) {
        free(j);
        refuse(p, rid, ridlen, q->name, "out of memory");
    }
}
