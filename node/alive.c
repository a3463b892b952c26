/* alive.c - which hosts answer (see alive.h) */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <slurm/slurm.h>
#include <slurm/slurm_errno.h>

#include "node/alive.h"
#include "node/log.h"
#include "node/peerd.h"
#include "store/members.h"

#define NODE_ACTION_SPACING 5.0 /* seconds between two changes of a node */

int alive_start(struct peerd *p)
{
    err_t err = {{0}};

    p->gossip =
        gossip_new(p->cluster.node_id, gossip_send_transport, p->t, &err);
    if (!p->gossip) {
        log_warnx("cannot start SWIM: %s", err.text);
        return -1;
    }
    alive_members(p);
    return 0;
}

void alive_stop(struct peerd *p)
{
    gossip_destroy(&p->gossip);
}

void alive_members(struct peerd *p)
{
    struct member *v = NULL;
    uint64_t *ids;
    size_t n = 0, k = 0;

    if (!p->gossip || members_list(p->cluster.store, &v, &n, NULL) < 0)
        return;
    ids = calloc(n ? n : 1, sizeof(*ids));
    for (size_t i = 0; ids && i < n; i++)
        if (strcmp(v[i].state, "active") == 0)
            ids[k++] = v[i].id;
    if (ids && gossip_set_members(p->gossip, ids, k) < 0)
        log_warnx("SWIM: out of memory for the member table");
    free(ids);
    free(v);
}

/* A node update in a thread of its own: the call may wait for the
 * controller's answer, the loop may not.
 */
struct node_call {
    char name[64];
    bool down;
};

static void *node_call_run(void *arg)
{
    struct node_call *c = arg;
    update_node_msg_t u;

    slurm_init_update_node_msg(&u);
    u.node_names = c->name;
    u.node_state = c->down ? NODE_STATE_DOWN : NODE_RESUME;
    u.reason = c->down ? ALIVE_REASON " (SWIM)" : NULL;
    if (slurm_update_node(&u) != SLURM_SUCCESS)
        log_warnx("cannot set node %s %s: %s", c->name,
                  c->down ? "down" : "back up",
                  slurm_strerror(slurm_get_errno()));
    else
        log_info("node %s set %s", c->name,
                 c->down ? "DOWN (its host does not answer)" : "back up");
    free(c);
    return NULL;
}

static void node_call(const char *name, bool down)
{
    struct node_call *c = calloc(1, sizeof(*c));
    pthread_t th;

    if (!c)
        return;
    snprintf(c->name, sizeof(c->name), "%s", name);
    c->down = down;
    if (pthread_create(&th, NULL, node_call_run, c) != 0) {
        free(c);
        return;
    }
    pthread_detach(th);
}

/* The last change made to each node, so as not to repeat it at once. */
static struct acted {
    char name[64];
    double at;
} acted[64];

static bool may_act(const char *name, double now)
{
    size_t free_slot = 0, oldest = 0;

    for (size_t i = 0; i < sizeof(acted) / sizeof(acted[0]); i++) {
        if (strcmp(acted[i].name, name) == 0) {
            if (now - acted[i].at < NODE_ACTION_SPACING)
                return false;
            acted[i].at = now;
            return true;
        }
        if (!acted[i].name[0])
            free_slot = i;
        if (acted[i].at < acted[oldest].at)
            oldest = i;
    }
    size_t i = acted[free_slot].name[0] ? oldest : free_slot;
    snprintf(acted[i].name, sizeof(acted[i].name), "%s", name);
    acted[i].at = now;
    return true;
}

const char *alive_state(struct peerd *p, uint64_t id)
{
    enum swim_state st;

    if (id == p->cluster.node_id)
        return "alive";
    if (!p->gossip || gossip_state(p->gossip, id, &st) < 0)
        return NULL;
    return swim_state_name(st);
}

/* The controller: compare SWIM with what Slurm shows. */
static void reconcile(struct peerd *p, double now)
{
    json_t *nodes = json_object_get(p->slurm_view, "nodes"), *n;
    size_t i;
    struct member m;

    json_array_foreach(nodes, i, n)
    {
        const char *name = json_string_value(json_object_get(n, "name"));
        const char *state = json_string_value(json_object_get(n, "state"));
        const char *reason = json_string_value(json_object_get(n, "reason"));
        const char *live;
        if (!name || !state ||
            members_by_name(p->cluster.store, name, &m, NULL) != 1 ||
            strcmp(m.state, "active") != 0 || !(live = alive_state(p, m.id)))
            continue;
        bool down = strncmp(state, "down", 4) == 0;
        bool ours =
            reason && strncmp(reason, ALIVE_REASON, strlen(ALIVE_REASON)) == 0;
        if (strcmp(live, "dead") == 0 && !down && may_act(name, now))
            node_call(name, true);
        else if (strcmp(live, "alive") == 0 && down && ours &&
                 may_act(name, now))
            node_call(name, false);
    }
}

void alive_tick(struct peerd *p, double now)
{
    struct swim_event ev[32];
    struct member m;
    size_t n;

    if (!p->gossip)
        return;
    gossip_tick(p->gossip, now);
    while ((n = gossip_events(p->gossip, ev, 32)) > 0)
        for (size_t i = 0; i < n; i++) {
            bool known = members_get(p->cluster.store, ev[i].id, &m, NULL) == 1;
            log_info("SWIM: member %llu (%s) is %s (incarnation %llu)",
                     (unsigned long long)ev[i].id, known ? m.name : "?",
                     swim_state_name(ev[i].state),
                     (unsigned long long)ev[i].incarnation);
            if (p->controller && known && ev[i].state == SWIM_DEAD &&
                may_act(m.name, now))
                node_call(m.name, true);
        }
    if (p->controller && p->slurm_view && now >= p->alive_next) {
        p->alive_next = now + ALIVE_RECONCILE;
        reconcile(p, now);
    }
}

void alive_recv(struct peerd *p, const struct wire_msg *m, double now)
{
    if (p->gossip)
        gossip_step(p->gossip, m, now);
}

void alive_leave(struct peerd *p)
{
    if (p->gossip)
        gossip_leave(p->gossip);
}

json_t *alive_status_json(struct peerd *p)
{
    return p->gossip ? gossip_json(p->gossip) : json_null();
}
