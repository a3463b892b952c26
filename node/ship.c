/* ship.c - slurmctld's state, shipped from the controller to standbys
 * (see ship.h)
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "node/log.h"
#include "node/peerd.h"
#include "node/ship.h"
#include "store/members.h"

#define FINAL_WAIT 5.0 /* a handover waits this long for the last ack */

static void save_own_gen(struct peerd *p)
{
    char text[32];
    err_t err = {{0}};

    snprintf(text, sizeof(text), "%llu", (unsigned long long)p->ship.own_gen);
    if (store_set(p->cluster.store, STORE_LOCAL, "state_generation", text,
                  &err) < 0)
        log_warnx("cannot record the state generation: %s", err.text);
}

void ship_init(struct peerd *p)
{
    struct ship *s = &p->ship;
    char *v = NULL, path[PATH_MAX];
    err_t err = {{0}};

    memset(s, 0, sizeof(*s));
    snprintf(s->gens_dir, sizeof(s->gens_dir), "%s/ctlstate", p->data_dir);
    statesync_rx_init(&s->rx);
    if (store_get(p->cluster.store, STORE_LOCAL, "state_generation", &v,
                  NULL) == 1 &&
        v)
        s->own_gen = strtoull(v, NULL, 10);
    free(v);
    if (statesync_newest(s->gens_dir, &s->installed, path, sizeof(path), &err) <
        0)
        log_warnx("%s", err.text);
}

void ship_fini(struct peerd *p)
{
    statesync_rx_reset(&p->ship.rx);
    free(p->ship.archive);
    p->ship.archive = NULL;
}

static struct ship_standby *standby(struct ship *s, uint64_t id)
{
    for (int i = 0; i < s->n_sb; i++)
        if (s->sb[i].id == id)
            return &s->sb[i];
    if (s->n_sb == SHIP_MAX_STANDBYS)
        return NULL;
    memset(&s->sb[s->n_sb], 0, sizeof(s->sb[0]));
    s->sb[s->n_sb].id = id;
    return &s->sb[s->n_sb++];
}

/* Keep the standby list equal to the other voters. */
static void sync_standbys(struct peerd *p)
{
    struct ship *s = &p->ship;
    uint64_t ids[SHIP_MAX_STANDBYS + 1];
    int n = agree_voters(p->agree, ids, SHIP_MAX_STANDBYS + 1);

    for (int i = 0; i < s->n_sb;) {
        bool keep = false;
        for (int j = 0; j < n; j++)
            keep |= ids[j] == s->sb[i].id;
        if (!keep)
            s->sb[i] = s->sb[--s->n_sb];
        else
            i++;
    }
    for (int j = 0; j < n; j++)
        if (ids[j] != p->cluster.node_id)
            standby(s, ids[j]);
}

static void send_generation(struct peerd *p, struct ship_standby *b, double now)
{
    struct ship *s = &p->ship;
    struct wire_msg m = {.type = WIRE_STATE_CHUNK, .from = p->cluster.node_id};
    size_t off = 0;

    do {
        size_t n = s->len - off;
        if (n > WIRE_STATE_CHUNK_MAX)
            n = WIRE_STATE_CHUNK_MAX;
        m.u.state_chunk.gen = s->gen;
        m.u.state_chunk.total = s->len;
        m.u.state_chunk.offset = off;
        memcpy(m.u.state_chunk.digest, s->digest, sizeof(s->digest));
        m.u.state_chunk.len = (uint32_t)n;
        m.u.state_chunk.data = s->archive + off;
        if (transport_send(p->t, b->id, &m) < 0)
            break; /* tried again after SHIP_RESEND */
        off += n;
    } while (off < s->len);
    b->sent = s->gen;
    b->sent_at = now;
}

/* Scan the state dir; pack a new generation if it changed. */
static void maybe_pack(struct peerd *p, double now)
{
    struct ship *s = &p->ship;
    unsigned char sig[32], *buf = NULL, digest[32];
    uint64_t term = agree_term(p->agree), gen;
    size_t len = 0;
    err_t err = {{0}};

    if (statesync_scan(p->layout.state_dir, sig, &err) < 0) {
        log_warnx("cannot scan the controller state: %s", err.text);
        return;
    }
    if (s->have_sig && memcmp(sig, s->sig, sizeof(sig)) == 0)
        return;
    if (statesync_pack(p->layout.state_dir, &buf, &len, digest, &err) < 0) {
        log_warnx("cannot pack the controller state: %s", err.text);
        return;
    }
    gen = term << 32;
    if (s->gen >> 32 == term)
        gen = s->gen + 1;
    else
        gen |= 1;
    free(s->archive);
    s->archive = buf;
    s->len = len;
    memcpy(s->digest, digest, sizeof(digest));
    memcpy(s->sig, sig, sizeof(sig));
    s->have_sig = true;
    s->gen = gen;
    s->gen_at = now;
    s->own_gen = gen;
    save_own_gen(p);
    for (int i = 0; i < s->n_sb; i++)
        if (s->sb[i].behind_since == 0)
            s->sb[i].behind_since = now;
    log_debug("state generation %llu.%llu: %zu bytes",
              (unsigned long long)(gen >> 32),
              (unsigned long long)(gen & 0xffffffffu), len);
}

static void send_due(struct peerd *p, uint64_t only, double now)
{
    struct ship *s = &p->ship;

    if (!s->archive && s->len == 0)
        return;
    for (int i = 0; i < s->n_sb; i++) {
        struct ship_standby *b = &s->sb[i];
        if ((only && b->id != only) || b->acked >= s->gen)
            continue;
        if (b->sent < s->gen || now - b->sent_at >= SHIP_RESEND)
            send_generation(p, b, now);
    }
}

/* Is this host the controller of the current term, with state to ship? */
static bool shipping(struct peerd *p)
{
    return p->controller_id == p->cluster.node_id &&
           p->ctl_term == agree_term(p->agree) &&
           p->ctl_started_term == p->ctl_term;
}

void ship_tick(struct peerd *p, double now)
{
    struct ship *s = &p->ship;

    if (!shipping(p) || now < s->next_scan)
        return;
    s->next_scan = now + SHIP_INTERVAL;
    sync_standbys(p);
    /* only what a running (or just stopped) slurmctld wrote */
    if (supervisor_pid(p->sv, p->svc_slurmctld) > 0 || p->handover.active)
        maybe_pack(p, now);
    send_due(p, 0, now);
}

bool ship_final(struct peerd *p, uint64_t to, double now)
{
    struct ship *s = &p->ship;
    bool all = true;

    if (p->handover.final_at == 0) {
        p->handover.final_at = now;
        s->next_scan = 0;
        sync_standbys(p);
        maybe_pack(p, now);
    }
    send_due(p, to, now);
    for (int i = 0; i < s->n_sb; i++)
        if ((!to || s->sb[i].id == to) && s->sb[i].acked < s->gen)
            all = false;
    if (all)
        return true;
    if (now - p->handover.final_at >= FINAL_WAIT) {
        log_warnx("a standby did not confirm the last state within %.0f s; "
                  "handing over anyway",
                  FINAL_WAIT);
        return true;
    }
    return false;
}

static void ack(struct peerd *p, uint64_t to, bool ok, const char *error)
{
    struct wire_msg m = {.type = WIRE_STATE_ACK, .from = p->cluster.node_id};

    m.u.state_ack.gen = ok ? p->ship.installed : p->ship.rx.gen;
    m.u.state_ack.installed = ok;
    snprintf(m.u.state_ack.error, sizeof(m.u.state_ack.error), "%s",
             error ? error : "");
    transport_send(p->t, to, &m);
}

static void take_chunk(struct peerd *p, const struct wire_msg *m, double now)
{
    struct ship *s = &p->ship;
    const struct wire_state_chunk *c = &m->u.state_chunk;
    err_t err = {{0}};
    int rc;

    if (m->from != p->controller_id || m->from == p->cluster.node_id) {
        s->refused++;
        log_debug("state chunk from member %llu, not the controller",
                  (unsigned long long)m->from);
        return;
    }
    if (c->gen <= s->installed) {
        ack(p, m->from, true, NULL); /* have it: say so again */
        return;
    }
    rc = statesync_rx_chunk(&s->rx, c->gen, c->total, c->offset, c->digest,
                            c->data, c->len, &err);
    if (rc < 0) {
        s->refused++;
        log_warnx("state generation from %llu refused: %s",
                  (unsigned long long)m->from, err.text);
        ack(p, m->from, false, err.text);
        return;
    }
    if (rc == 0)
        return;
    if (statesync_install(s->gens_dir, c->gen, s->rx.buf, s->rx.total,
                          SHIP_KEEP, &err) < 0) {
        log_warnx("cannot install state generation: %s", err.text);
        statesync_rx_reset(&s->rx);
        ack(p, m->from, false, err.text);
        return;
    }
    s->installed = c->gen;
    s->installed_at = now;
    statesync_rx_reset(&s->rx);
    statesync_rx_init(&s->rx);
    s->rx.gen = c->gen;
    ack(p, m->from, true, NULL);
}

void ship_recv(struct peerd *p, const struct wire_msg *m, double now)
{
    struct ship_standby *b;

    if (m->type == WIRE_STATE_CHUNK) {
        take_chunk(p, m, now);
        return;
    }
    if (m->type != WIRE_STATE_ACK)
        return;
    for (int i = 0; i < p->ship.n_sb; i++) {
        b = &p->ship.sb[i];
        if (b->id != m->from)
            continue;
        if (m->u.state_ack.installed) {
            if (m->u.state_ack.gen > b->acked) {
                b->acked = m->u.state_ack.gen;
                b->acked_at = now;
            }
            if (b->acked >= p->ship.gen)
                b->behind_since = 0;
            b->error[0] = '\0';
        } else {
            snprintf(b->error, sizeof(b->error), "%s", m->u.state_ack.error);
        }
    }
}

void ship_install(struct peerd *p)
{
    struct ship *s = &p->ship;
    char path[PATH_MAX];
    uint64_t gen = 0;
    err_t err = {{0}};
    int rc = statesync_newest(s->gens_dir, &gen, path, sizeof(path), &err);

    if (rc < 0) {
        log_warnx("%s", err.text);
        return;
    }
    if (rc == 0 || gen <= s->own_gen) {
        log_info("slurmctld starts on this host's own state (generation "
                 "%llu.%llu)",
                 (unsigned long long)(s->own_gen >> 32),
                 (unsigned long long)(s->own_gen & 0xffffffffu));
        return;
    }
    if (statesync_promote(path, p->layout.state_dir, &err) < 0) {
        log_warnx("cannot put state generation in place: %s", err.text);
        return;
    }
    s->own_gen = gen;
    save_own_gen(p);
    log_info("slurmctld starts on state generation %llu.%llu shipped from "
             "the last controller",
             (unsigned long long)(gen >> 32),
             (unsigned long long)(gen & 0xffffffffu));
}

uint64_t ship_seen_job_id(struct peerd *p)
{
    char path[PATH_MAX];
    uint64_t gen;
    uint32_t seq = 0, best = 0;
    err_t err = {{0}};

    if (statesync_job_id_sequence(p->layout.state_dir, &seq, &err) == 1)
        best = seq;
    if (statesync_newest(p->ship.gens_dir, &gen, path, sizeof(path), &err) ==
            1 &&
        statesync_job_id_sequence(path, &seq, &err) == 1 && seq > best)
        best = seq;
    return best;
}

static json_t *gen_json(uint64_t gen)
{
    char text[48];

    if (gen == 0)
        return json_null();
    snprintf(text, sizeof(text), "%llu.%llu", (unsigned long long)(gen >> 32),
             (unsigned long long)(gen & 0xffffffffu));
    return json_string(text);
}

json_t *ship_status_json(struct peerd *p, double now)
{
    struct ship *s = &p->ship;
    json_t *o = json_object(), *a = json_array();
    struct member m;

    json_object_set_new(o, "generation", gen_json(s->own_gen));
    json_object_set_new(o, "installed", gen_json(s->installed));
    json_object_set_new(o, "installed_age",
                        s->installed_at > 0 ? json_real(now - s->installed_at)
                                            : json_null());
    json_object_set_new(o, "refused_chunks",
                        json_integer((json_int_t)s->refused));
    if (shipping(p)) {
        json_object_set_new(o, "bytes", json_integer((json_int_t)s->len));
        for (int i = 0; i < s->n_sb; i++) {
            struct ship_standby *b = &s->sb[i];
            uint64_t behind = 0;
            if (b->acked < s->gen)
                behind = b->acked >> 32 == s->gen >> 32
                             ? s->gen - b->acked
                             : (s->gen & 0xffffffffu);
            json_t *e = json_pack(
                "{s:I,s:s,s:o,s:I,s:f}", "id", (json_int_t)b->id, "host",
                members_get(p->cluster.store, b->id, &m, NULL) == 1 ? m.name
                                                                    : "?",
                "generation", gen_json(b->acked), "lag_generations",
                (json_int_t)behind, "lag_seconds",
                b->behind_since > 0 ? now - b->behind_since : 0.0);
            json_object_set_new(
                e, "error", b->error[0] ? json_string(b->error) : json_null());
            json_array_append_new(a, e);
        }
    }
    json_object_set_new(o, "standbys", a);
    return o;
}
