/* place.c - where slurmctld runs (see place.h) */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/hostsfile.h"
#include "node/lease.h"
#include "node/log.h"
#include "node/peerd.h"
#include "node/place.h"
#include "node/storage.h"
#include "store/members.h"

#define HANDOVER_STOP_GRACE 10.0 /* slurmctld saving its state */
#define HANDOVER_TIMEOUT 20.0    /* give up and run it here again */
#define LEASE_LOSS_GRACE                                                       \
    2.0 /* SIGTERM, then SIGKILL (the fence                                    \
           kills at the lease end anyway) */

void place_load(struct peerd *p)
{
    struct member m;
    int port;

    p->controller_id = cluster_config_u64(&p->cluster, "controller");
    p->ctl_term = cluster_config_u64(&p->cluster, "controller_term");
    p->first_job_id = cluster_config_u64(&p->cluster, "first_job_id");
    p->ctl_name[0] = p->ctl_addr[0] = '\0';
    if (p->controller_id &&
        members_get(p->cluster.store, p->controller_id, &m, NULL) == 1) {
        snprintf(p->ctl_name, sizeof(p->ctl_name), "%s", m.name);
        if (transport_parse_addr(m.address, p->ctl_addr, sizeof(p->ctl_addr),
                                 &port, TRANSPORT_DEFAULT_PORT) < 0)
            p->ctl_addr[0] = '\0';
    }
}

/* Point SLURM_CTL_ALIAS at addr in this host's hosts file. */
static void point_alias(struct peerd *p, const char *addr)
{
    err_t err = {{0}};
    int rc;

    if (!addr[0])
        return;
    rc = hostsfile_point(p->hosts_file, SLURM_CTL_ALIAS, addr, &err);
    if (rc < 0)
        log_warnx("cannot point %s at %s: %s", SLURM_CTL_ALIAS, addr, err.text);
    else if (rc > 0)
        log_info("%s now means %s (%s) in %s", SLURM_CTL_ALIAS, addr,
                 p->ctl_name, p->hosts_file);
}

void place_applied(struct peerd *p, bool placement_changed, bool transfer,
                   uint64_t transfer_to)
{
    uint64_t before = p->controller_id, term_before = p->ctl_term;

    place_load(p);
    if (placement_changed) {
        if (before != p->controller_id || term_before != p->ctl_term)
            log_info("controller: %s (member %llu), term %llu, first job "
                     "id %llu",
                     p->ctl_name, (unsigned long long)p->controller_id,
                     (unsigned long long)p->ctl_term,
                     (unsigned long long)p->first_job_id);
        if (p->slurm_started)
            point_alias(p, p->ctl_addr);
    }
    if (transfer && agree_is_leader(p->agree) &&
        p->controller_id == p->cluster.node_id && !p->handover.active) {
        p->handover.active = true;
        p->handover.to = transfer_to;
        p->handover.started = peerd_now();
        p->handover.final_at = 0;
        p->handover.transferred = false;
        log_info("handing the controller over to %s",
                 transfer_to ? "the voter asked for" : "another voter");
    }
}

/* The first job id for a new term: above every id the last controller
 * may have handed out.  The state this host holds tells the highest id
 * saved; ids handed out after the last copy are covered by the gap.
 */
static uint64_t next_first_job_id(struct peerd *p)
{
    uint64_t base = p->first_job_id, seen = ship_seen_job_id(p);

    if (p->ctl_term == 0 && seen == 0)
        return base ? base : 1; /* a new cluster: nothing handed out */
    if (seen > base)
        base = seen;
    if (base < 1)
        base = 1;
    base += PLACE_JOB_ID_GAP;
    return base < FSM_MAX_JOB_ID ? base : FSM_MAX_JOB_ID;
}

static void placed(void *arg, bool ok, uint64_t index,
                   const struct fsm_effects *fx, const char *error)
{
    struct peerd *p = arg;

    (void)index;
    (void)fx;
    p->placing = false;
    if (!ok)
        log_warnx("placement not committed: %s", error);
}

static void propose_placement(struct peerd *p, double now)
{
    uint64_t term = agree_term(p->agree), first = next_first_job_id(p);

    if (agree_propose(p->agree,
                      json_pack("{s:s,s:I,s:I,s:I}", "op", "placement",
                                "controller", (json_int_t)p->cluster.node_id,
                                "term", (json_int_t)term, "first_job_id",
                                (json_int_t)first),
                      placed, p, now) == 0) {
        p->placing = true;
        log_info("leader of term %llu: placing the controller here (first "
                 "job id %llu)",
                 (unsigned long long)term, (unsigned long long)first);
    }
}

/* Start slurmctld here for this term: state, address, then the daemon. */
static void take_over(struct peerd *p, double now)
{
    uint64_t term = agree_term(p->agree);

    if (p->ctl_started_term != term) {
        ship_install(p);
        p->ctl_started_term = term;
    }
    if (!storage_ctl_may_start(p, now))
        return; /* slurmctld would exit: no TRES without slurmdbd */
    point_alias(p, p->host.address);
    supervisor_enable(p->sv, p->svc_slurmctld, now);
    log_info("this host is the controller (term %llu)",
             (unsigned long long)term);
}

static void handover_tick(struct peerd *p, double now)
{
    struct handover *h = &p->handover;

    if (!h->active)
        return;
    if (!agree_is_leader(p->agree) || p->controller_id != p->cluster.node_id) {
        h->active = false; /* done: someone else leads */
        return;
    }
    if (now - h->started > HANDOVER_TIMEOUT) {
        log_warnx("handover did not complete within %.0f s; the controller "
                  "stays here",
                  HANDOVER_TIMEOUT);
        h->active = false;
        return;
    }
    if (supervisor_pid(p->sv, p->svc_slurmctld) > 0 || h->transferred)
        return; /* slurmctld still saving its state */
    if (!ship_final(p, h->to, now))
        return; /* the last state is on its way */
    if (agree_transfer(p->agree, h->to) == 0) {
        h->transferred = true;
        log_info("slurmctld stopped and its state shipped; handing "
                 "leadership over");
    } else {
        log_warnx("cannot hand leadership over: %s", strerror(errno));
        h->active = false;
    }
}

void place_tick(struct peerd *p, double now)
{
    bool leader, may, want, on;
    uint64_t term;
    pid_t pid;

    if (!p->slurm_started || !p->sv)
        return;
    /* someone else may have edited the hosts file: put the name back */
    if (now >= p->alias_at) {
        p->alias_at = now + PLACE_ALIAS_RECHECK;
        point_alias(p, p->ctl_addr);
    }
    leader = agree_is_leader(p->agree);
    term = agree_term(p->agree);
    if (leader && !p->placing && !p->handover.active &&
        (p->controller_id != p->cluster.node_id || p->ctl_term != term))
        propose_placement(p, now);

    /* may: the lease allows a slurmctld here; want: and none is being
     * handed over (a handover stops it gracefully, under the lease)
     */
    may = leader && p->controller_id == p->cluster.node_id &&
          p->ctl_term == term && agree_lease_held(p->agree, now);
    want = may && !p->handover.active;
    on = supervisor_enabled(p->sv, p->svc_slurmctld);
    p->controller = want;
    if (want && !on) {
        take_over(p, now);
    } else if (!want && on) {
        log_info("stopping slurmctld: %s",
                 p->handover.active ? "handing the controller over"
                 : !leader          ? "no longer the leader"
                 : p->controller_id != p->cluster.node_id
                     ? "placed elsewhere"
                     : "the controller lease lapsed");
        supervisor_disable(
            p->sv, p->svc_slurmctld,
            p->handover.active ? HANDOVER_STOP_GRACE : LEASE_LOSS_GRACE, now);
    }
    /* the fence: a running slurmctld may live until the lease ends */
    pid = supervisor_pid(p->sv, p->svc_slurmctld);
    if (pid <= 0)
        p->fence_until = 0;
    else if (may)
        p->fence_until = agree_lease_until(p->agree, now);
    if (fence_set(p->fence, pid > 0 ? pid : 0, p->fence_until) < 0) {
        log_warnx("the lease fence is gone; starting a new one");
        fence_stop(&p->fence);
        if (!(p->fence = fence_start()))
            log_warn("cannot start the lease fence");
        if (pid > 0 && !p->fence)
            supervisor_disable(p->sv, p->svc_slurmctld, 0, now);
    }
    /* a slurmctld that cannot be kept running goes to another voter */
    if (want && !p->handover.active && now >= p->handover.retry_at &&
        supervisor_failures(p->sv, p->svc_slurmctld) >= PLACE_MAX_FAILURES) {
        char why[128];
        log_warnx("slurmctld failed %d times in a row here",
                  supervisor_failures(p->sv, p->svc_slurmctld));
        p->handover.retry_at = now + 30.0;
        if (place_request_transfer(p, 0, NULL, NULL, why, sizeof(why)) < 0)
            log_warnx("cannot hand the controller over: %s", why);
    }
    handover_tick(p, now);
}

/* Voters other than this host that are active members. */
static int other_voters(struct peerd *p)
{
    uint64_t ids[RAFT_MAX_PEERS];
    int n = agree_voters(p->agree, ids, RAFT_MAX_PEERS), others = 0;

    for (int i = 0; i < n; i++)
        others += ids[i] != p->cluster.node_id;
    return others;
}

int place_transfer_check(struct peerd *p, uint64_t to, char *why, size_t cap)
{
    struct member m;

    if (to && to == p->controller_id) {
        snprintf(why, cap, "%s is the controller already", p->ctl_name);
        return -1;
    }
    if (to) {
        if (members_get(p->cluster.store, to, &m, NULL) != 1 || !m.voter ||
            strcmp(m.state, "active") != 0) {
            snprintf(why, cap, "member %llu is not an active voter",
                     (unsigned long long)to);
            return -1;
        }
    } else if (other_voters(p) == 0) {
        snprintf(why, cap,
                 "there is no other voter to move the controller "
                 "to");
        return -1;
    }
    return 0;
}

int place_request_transfer(struct peerd *p, uint64_t to, agree_done_fn cb,
                           void *arg, char *why, size_t cap)
{
    if (place_transfer_check(p, to, why, cap) < 0)
        return -1;
    if (agree_propose(
            p->agree,
            json_pack("{s:s,s:I}", "op", "transfer", "to", (json_int_t)to), cb,
            arg, peerd_now()) < 0) {
        snprintf(why, cap, "out of memory");
        return -1;
    }
    return 0;
}

json_t *place_status_json(struct peerd *p, double now)
{
    uint64_t ids[RAFT_MAX_PEERS];
    int nv = agree_voters(p->agree, ids, RAFT_MAX_PEERS);
    bool quorum = agree_leader(p->agree) != 0;
    const char *why = NULL;
    json_t *o;

    if (nv < 3)
        why = "fewer than 3 voters: if the controller host dies, no other "
              "host can take over";
    else if (!quorum)
        why = "no quorum of voters: no leader, no controller can be placed";
    o = json_pack(
        "{s:o,s:I,s:I,s:I,s:b,s:b,s:o,s:b,s:o}", "host",
        p->ctl_name[0] ? json_string(p->ctl_name) : json_null(), "id",
        (json_int_t)p->controller_id, "term", (json_int_t)p->ctl_term,
        "first_job_id", (json_int_t)p->first_job_id, "here", p->controller,
        "lease", agree_lease_held(p->agree, now), "lease_left",
        agree_is_leader(p->agree) && agree_lease_until(p->agree, now) > now
            ? json_real(agree_lease_until(p->agree, now) - now)
            : json_null(),
        "can_fail_over", why == NULL, "cannot_fail_over_because",
        why ? json_string(why) : json_null());
    json_object_set_new(o, "handover", json_boolean(p->handover.active));
    json_object_set_new(o, "state", ship_status_json(p, now));
    return o;
}
