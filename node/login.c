/* login.c - the login role: a Jupyter server run by peerd (see login.h) */
#include "config.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "node/jupyter.h"
#include "node/log.h"
#include "node/login.h"
#include "node/peerd.h"

struct login {
    struct jupyter_addr addr;
    struct jupyter_layout layout;
    char token[JUPYTER_TOKEN_LEN + 1];
    char url_host[INET6_ADDRSTRLEN]; /* what people reach */
    int svc;
    pthread_t thread;
    bool running;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool quit;
    pid_t pid;         /* the service's process, set by the main loop */
    double at;         /* last check (monotonic start), 0: never */
    pid_t checked_pid; /* the process that check was about */
    bool ok;
    char detail[200];
    struct jupyter_status st;
    double fed_at;
};

int login_check_option(const char *addr, err_t *err)
{
    struct jupyter_addr a;

    return jupyter_addr_parse(addr, &a, err);
}

static void *checker(void *arg)
{
    struct login *l = arg;

    pthread_mutex_lock(&l->mu);
    while (!l->quit) {
        pid_t pid = l->pid;
        pthread_mutex_unlock(&l->mu);
        if (pid > 0) {
            struct jupyter_status st = {0};
            err_t err = {{0}};
            double at = peerd_now();
            bool ok = jupyter_ping(l->addr.host, l->addr.port, l->token, 2.0,
                                   &st, &err) == 0;
            pthread_mutex_lock(&l->mu);
            l->at = at;
            l->checked_pid = pid;
            l->ok = ok;
            l->st = st;
            snprintf(l->detail, sizeof(l->detail), "%s", ok ? "" : err.text);
            pthread_mutex_unlock(&l->mu);
        }
        pthread_mutex_lock(&l->mu);
        if (!l->quit) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += (time_t)LOGIN_CHECK_EVERY;
            pthread_cond_timedwait(&l->cv, &l->mu, &until);
        }
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

int login_start(struct peerd *p, const char *addr, const char *user, err_t *err)
{
    struct login *l = calloc(1, sizeof(*l));

    if (!l)
        return errprintf_errno(err, "login: cannot set up");
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    p->login = l;
    if (jupyter_addr_parse(addr, &l->addr, err) < 0 ||
        jupyter_prepare(p->data_dir, user, &l->layout, l->token, err) < 0)
        return -1;
    /* a server bound to every address is reached at the host's */
    if (strcmp(l->addr.host, "0.0.0.0") == 0 || strcmp(l->addr.host, "::") == 0)
        snprintf(l->url_host, sizeof(l->url_host), "%s", p->host.address);
    else
        snprintf(l->url_host, sizeof(l->url_host), "%s", l->addr.host);
    l->svc =
        jupyter_add_service(p->sv, &l->layout, NULL, &l->addr,
                            p->layout.slurm_conf, true, p->svc_munged, err);
    if (l->svc < 0)
        return -1;
    if (pthread_create(&l->thread, NULL, checker, l) != 0)
        return errprintf(err, "login: cannot start the Jupyter checks");
    l->running = true;
    log_info("login: Jupyter (%s) as %s on %s:%d", l->layout.work,
             l->layout.user, l->addr.host, l->addr.port);
    return 0;
}

void login_stop(struct peerd *p)
{
    struct login *l = p->login;

    if (!l)
        return;
    if (l->running) {
        pthread_mutex_lock(&l->mu);
        l->quit = true;
        pthread_cond_signal(&l->cv);
        pthread_mutex_unlock(&l->mu);
        pthread_join(l->thread, NULL);
    }
    sodium_memzero(l->token, sizeof(l->token));
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    free(l);
    p->login = NULL;
}

void login_tick(struct peerd *p, double now)
{
    struct login *l = p->login;
    double at;
    pid_t checked, pid;
    bool ok;
    char detail[200];

    if (!l || !l->running || !p->sv)
        return;
    pid = supervisor_pid(p->sv, l->svc);
    pthread_mutex_lock(&l->mu);
    if (pid > 0 && l->pid != pid)
        pthread_cond_signal(&l->cv); /* a new process: check it soon */
    l->pid = pid;
    at = l->at;
    checked = l->checked_pid;
    ok = l->ok;
    snprintf(detail, sizeof(detail), "%s", l->detail);
    pthread_mutex_unlock(&l->mu);
    if (at > l->fed_at && checked > 0 && checked == pid) {
        l->fed_at = at;
        supervisor_health(p->sv, l->svc, ok, at, detail[0] ? detail : NULL,
                          now);
    }
}

json_t *login_status_json(struct peerd *p, double now)
{
    struct login *l = p->login;
    char url[256] = "";
    json_t *o;

    if (!l)
        return json_null();
    /* the status is for root only (the control socket is 0600), as the
     * token file is
     */
    if (l->token[0] &&
        jupyter_url(l->url_host, l->addr.port, l->token, url, sizeof(url)) < 0)
        url[0] = '\0';
    pthread_mutex_lock(&l->mu);
    o = json_pack(
        "{s:s,s:s,s:i,s:s,s:s,s:s,s:o}", "user", l->layout.user, "address",
        l->addr.host, "port", l->addr.port, "url", url, "token_file",
        l->layout.token, "work_dir", l->layout.work, "check",
        l->at > 0 ? json_pack("{s:b,s:s,s:f,s:i,s:i}", "ok", l->ok, "detail",
                              l->detail, "age", now - l->at, "kernels",
                              l->st.kernels, "connections", l->st.connections)
                  : json_null());
    pthread_mutex_unlock(&l->mu);
    return o;
}
