/* health.c - real health checks, run in a thread of their own
 *
 * Only this thread calls into libslurm and libmunge.  The report is
 * handed over under a mutex; the JSON snapshot changes owner (the thread
 * never touches it after hand-over), so no JSON object is shared.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <munge.h>
#include <slurm/slurm.h>
#include <slurm/slurm_errno.h>

#include "node/health.h"

struct health {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop;
    bool poked;
    bool ready;
    struct health_report latest;
    int efd;
    char *munge_socket;
    char *slurm_conf;
    double interval;
    bool active[3]; /* munged, slurmctld, slurmd */
    bool reconfigure;
};

static double mono_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void check_munge(health_t *h, struct health_check *c)
{
    const char payload[] = "peerd-health";
    munge_ctx_t ctx = munge_ctx_create();
    char *cred = NULL;
    void *out = NULL;
    int outlen = 0;
    munge_err_t e;

    c->ok = false;
    if (!ctx) {
        snprintf(c->detail, sizeof(c->detail), "cannot create munge ctx");
        return;
    }
    e = munge_ctx_set(ctx, MUNGE_OPT_SOCKET, h->munge_socket);
    if (e == EMUNGE_SUCCESS)
        e = munge_encode(&cred, ctx, payload, sizeof(payload));
    if (e == EMUNGE_SUCCESS)
        e = munge_decode(cred, ctx, &out, &outlen, NULL, NULL);
    if (e != EMUNGE_SUCCESS) {
        snprintf(c->detail, sizeof(c->detail), "munge round trip: %s",
                 munge_ctx_strerror(ctx));
    } else if (outlen != (int)sizeof(payload) ||
               memcmp(out, payload, outlen) != 0) {
        snprintf(c->detail, sizeof(c->detail),
                 "munge round trip returned other bytes");
    } else {
        c->ok = true;
        c->detail[0] = '\0';
    }
    free(cred);
    free(out);
    munge_ctx_destroy(ctx);
}

static void not_running(struct health_check *c)
{
    c->ok = false;
    snprintf(c->detail, sizeof(c->detail), "not running");
}

static void check_slurmctld(struct health_check *c)
{
    if (slurm_ping(0) == SLURM_SUCCESS) {
        c->ok = true;
        c->detail[0] = '\0';
    } else {
        c->ok = false;
        snprintf(c->detail, sizeof(c->detail), "slurm_ping: %s",
                 slurm_strerror(slurm_get_errno()));
    }
}

static void check_slurmd(struct health_check *c, pid_t *pid)
{
    slurmd_status_t *st = NULL;

    *pid = 0;
    if (slurm_load_slurmd_status(&st) == SLURM_SUCCESS && st) {
        c->ok = true;
        c->detail[0] = '\0';
        *pid = (pid_t)st->pid;
        slurm_free_slurmd_status(st);
    } else {
        c->ok = false;
        snprintf(c->detail, sizeof(c->detail), "slurmd status: %s",
                 slurm_strerror(slurm_get_errno()));
    }
}

static const char *node_state_name(uint32_t state)
{
    static const char *names[] = {"unknown", "down",  "idle",  "allocated",
                                  "error",   "mixed", "future"};
    uint32_t base = state & NODE_STATE_BASE;

    return base < sizeof(names) / sizeof(names[0]) ? names[base] : "?";
}

static json_t *snapshot(void)
{
    node_info_msg_t *nodes = NULL;
    job_info_msg_t *jobs = NULL;
    json_t *o = json_object();
    json_t *na = json_array();
    json_t *jobsum = json_null();
    int pending = 0, running = 0;

    if (slurm_load_node(0, &nodes, SHOW_ALL) == SLURM_SUCCESS) {
        for (uint32_t i = 0; i < nodes->record_count; i++) {
            node_info_t *n = &nodes->node_array[i];
            char state[64];
            if (!n->name)
                continue;
            snprintf(state, sizeof(state), "%s%s%s",
                     node_state_name(n->node_state),
                     (n->node_state & NODE_STATE_DRAIN) ? "+drain" : "",
                     (n->node_state & NODE_STATE_NO_RESPOND) ? "*" : "");
            json_t *no = json_pack("{s:s,s:s,s:i,s:I}", "name", n->name,
                                   "state", state, "cpus", (int)n->cpus,
                                   "memory_mb", (json_int_t)n->real_memory);
            json_object_set_new(
                no, "reason", n->reason ? json_string(n->reason) : json_null());
            json_array_append_new(na, no);
        }
        slurm_free_node_info_msg(nodes);
    }
    if (slurm_load_jobs(0, &jobs, SHOW_ALL) == SLURM_SUCCESS) {
        for (uint32_t i = 0; i < jobs->record_count; i++) {
            uint32_t st = jobs->job_array[i].job_state & JOB_STATE_BASE;
            if (st == JOB_PENDING)
                pending++;
            else if (st == JOB_RUNNING)
                running++;
        }
        slurm_free_job_info_msg(jobs);
        jobsum = json_pack("{s:i,s:i}", "pending", pending, "running", running);
    }
    json_object_set_new(o, "nodes", na);
    json_object_set_new(o, "jobs", jobsum); /* null: could not load */
    return o;
}

static void *run(void *arg)
{
    health_t *h = arg;
    struct health_report r;
    uint64_t one = 1;
    bool active[3];
    bool reconf;

    slurm_init(h->slurm_conf);
    pthread_mutex_lock(&h->lock);
    while (!h->stop) {
        pthread_mutex_unlock(&h->lock);

        memset(&r, 0, sizeof(r));
        r.started = mono_now();
        pthread_mutex_lock(&h->lock);
        memcpy(active, h->active, sizeof(active));
        reconf = h->reconfigure;
        h->reconfigure = false;
        pthread_mutex_unlock(&h->lock);
        if (reconf && slurm_reconfigure() != SLURM_SUCCESS) {
            pthread_mutex_lock(&h->lock);
            h->reconfigure = true; /* again next round */
            pthread_mutex_unlock(&h->lock);
        }
        if (active[0])
            check_munge(h, &r.munge);
        else
            not_running(&r.munge);
        if (active[1])
            check_slurmctld(&r.slurmctld);
        else
            not_running(&r.slurmctld);
        if (active[2])
            check_slurmd(&r.slurmd, &r.slurmd_pid);
        else
            not_running(&r.slurmd);
        r.slurm = r.slurmctld.ok ? snapshot() : NULL;

        pthread_mutex_lock(&h->lock);
        json_decref(h->latest.slurm); /* not taken: replace */
        h->latest = r;
        h->ready = true;
        if (write(h->efd, &one, sizeof(one)) < 0) {
            /* counter full: the reader is awake anyway */
        }
        if (!h->stop && !h->poked) {
            struct timespec until;
            double t = h->interval;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += (time_t)t;
            until.tv_nsec += (long)((t - (time_t)t) * 1e9);
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&h->cond, &h->lock, &until);
        }
        h->poked = false;
    }
    pthread_mutex_unlock(&h->lock);
    slurm_fini();
    return NULL;
}

health_t *health_start(const char *munge_socket, const char *slurm_conf,
                       double interval)
{
    health_t *h = calloc(1, sizeof(*h));
    int e;

    if (!h)
        return NULL;
    h->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    h->munge_socket = strdup(munge_socket);
    h->slurm_conf = strdup(slurm_conf);
    h->interval = interval;
    if (h->efd < 0 || !h->munge_socket || !h->slurm_conf)
        goto fail;
    pthread_mutex_init(&h->lock, NULL);
    pthread_cond_init(&h->cond, NULL);
    if ((e = pthread_create(&h->thread, NULL, run, h)) != 0) {
        errno = e;
        goto fail;
    }
    return h;
fail:
    e = errno;
    if (h->efd >= 0)
        close(h->efd);
    free(h->munge_socket);
    free(h->slurm_conf);
    free(h);
    errno = e;
    return NULL;
}

void health_stop(health_t **hp)
{
    health_t *h;

    if (!hp || !*hp)
        return;
    h = *hp;
    pthread_mutex_lock(&h->lock);
    h->stop = true;
    pthread_cond_signal(&h->cond);
    pthread_mutex_unlock(&h->lock);
    /* A libslurm RPC in flight can take MessageTimeout to fail; do not
     * hold up shutdown for it.  The process is about to exit anyway.
     */
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 2;
    if (pthread_timedjoin_np(h->thread, NULL, &until) != 0) {
        *hp = NULL;
        return;
    }
    json_decref(h->latest.slurm);
    close(h->efd);
    free(h->munge_socket);
    free(h->slurm_conf);
    pthread_mutex_destroy(&h->lock);
    pthread_cond_destroy(&h->cond);
    free(h);
    *hp = NULL;
}

int health_fd(health_t *h)
{
    return h->efd;
}

bool health_take(health_t *h, struct health_report *r)
{
    uint64_t count;
    bool ready;

    if (read(h->efd, &count, sizeof(count)) < 0) {
        /* EAGAIN: nothing new */
    }
    pthread_mutex_lock(&h->lock);
    ready = h->ready;
    if (ready) {
        *r = h->latest;
        h->latest.slurm = NULL;
        h->ready = false;
    }
    pthread_mutex_unlock(&h->lock);
    return ready;
}

void health_set_active(health_t *h, bool munged, bool slurmctld, bool slurmd)
{
    pthread_mutex_lock(&h->lock);
    h->active[0] = munged;
    h->active[1] = slurmctld;
    h->active[2] = slurmd;
    pthread_mutex_unlock(&h->lock);
}

void health_reconfigure(health_t *h)
{
    pthread_mutex_lock(&h->lock);
    h->reconfigure = true;
    h->poked = true;
    pthread_cond_signal(&h->cond);
    pthread_mutex_unlock(&h->lock);
}

void health_poke(health_t *h)
{
    pthread_mutex_lock(&h->lock);
    h->poked = true;
    pthread_cond_signal(&h->cond);
    pthread_mutex_unlock(&h->lock);
}
