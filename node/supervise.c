/* supervise.c - start, watch and restart the Slurm and munge daemons
 *
 * Invariants: a service has pid > 0 exactly in the states STARTING and
 * RUNNING (and STOPPED while supervisor_stop_all waits for it); restarts
 * counts spawns after the first one.  Only async-signal-safe
 * calls happen between fork() and execve(): everything the child needs
 * is prepared in the parent.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "node/log.h"
#include "node/supervise.h"

#define BACKOFF_MAX 60.0
#define STABLE_AFTER 60.0 /* running this long resets the backoff */
#define MAX_ARGS 32

struct svc {
    char *name;
    char *argv[MAX_ARGS + 1];
    char *log_path;
    uid_t uid;
    gid_t gid;
    int depends_on;
    double start_timeout, hang_timeout;

    enum svc_state state;
    pid_t pid;
    double state_since; /* when the current state began */
    double spawned_at;
    double next_start; /* BACKOFF/FAILED: when to try again */
    double unhealthy_since;
    bool healthy;
    bool killing;   /* we sent a signal; the exit is expected */
    double kill_at; /* disabled with a process left: SIGKILL then */
    int failures;   /* consecutive, for the backoff */
    int restarts;
    int spawns;
    char last_error[256];
};

struct supervisor {
    struct svc *svc;
    int n;
};

const char *svc_state_name(enum svc_state st)
{
    static const char *names[] = {"waiting", "starting", "running",
                                  "backoff", "failed",   "stopped"};
    return (unsigned)st < sizeof(names) / sizeof(names[0]) ? names[st]
                                                           : "unknown";
}

static double mono_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

supervisor_t *supervisor_new(void)
{
    return calloc(1, sizeof(supervisor_t));
}

void supervisor_destroy(supervisor_t **svp)
{
    if (svp && *svp) {
        supervisor_t *sv = *svp;
        for (int i = 0; i < sv->n; i++) {
            free(sv->svc[i].name);
            free(sv->svc[i].log_path);
            for (int j = 0; sv->svc[i].argv[j]; j++)
                free(sv->svc[i].argv[j]);
        }
        free(sv->svc);
        free(sv);
        *svp = NULL;
    }
}

int supervisor_add(supervisor_t *sv, const struct svc_spec *spec)
{
    struct svc *p, *s;
    int argc = 0;

    while (spec->argv[argc])
        argc++;
    if (argc == 0 || argc > MAX_ARGS || spec->depends_on < -1 ||
        spec->depends_on >= sv->n) {
        errno = EINVAL;
        return -1;
    }
    p = realloc(sv->svc, (sv->n + 1) * sizeof(*p));
    if (!p)
        return -1;
    sv->svc = p;
    s = &sv->svc[sv->n];
    memset(s, 0, sizeof(*s));
    s->name = strdup(spec->name);
    s->log_path = strdup(spec->log_path);
    bool ok = s->name && s->log_path;
    for (int i = 0; ok && i < argc; i++)
        ok = (s->argv[i] = strdup(spec->argv[i])) != NULL;
    if (!ok) {
        free(s->name);
        free(s->log_path);
        for (int i = 0; i < argc; i++)
            free(s->argv[i]);
        errno = ENOMEM;
        return -1;
    }
    s->uid = spec->uid;
    s->gid = spec->gid;
    s->depends_on = spec->depends_on;
    s->start_timeout = spec->start_timeout;
    s->hang_timeout = spec->hang_timeout;
    s->state = spec->disabled ? SVC_STOPPED : SVC_WAITING;
    s->state_since = mono_now();
    return sv->n++;
}

int supervisor_find(supervisor_t *sv, const char *name)
{
    for (int i = 0; i < sv->n; i++)
        if (strcmp(sv->svc[i].name, name) == 0)
            return i;
    return -1;
}

static void set_state(struct svc *s, enum svc_state st, double now)
{
    if (s->state != st) {
        log_debug("%s: %s -> %s", s->name, svc_state_name(s->state),
                  svc_state_name(st));
        s->state = st;
        s->state_since = now;
    }
}

/* Find the binary: a path is taken as it is; a bare name is looked up in
 * PATH and then in /usr/sbin and /usr/bin (peerd may start with a PATH
 * that lacks sbin).
 */
int supervisor_resolve_binary(const char *name, char *out, size_t outlen)
{
    const char *path = getenv("PATH");
    char dirs[4096];
    char *save = NULL;

    if (strchr(name, '/')) {
        snprintf(out, outlen, "%s", name);
        return access(out, X_OK);
    }
    snprintf(dirs, sizeof(dirs), "%s:/usr/sbin:/usr/bin", path ? path : "");
    for (char *d = strtok_r(dirs, ":", &save); d;
         d = strtok_r(NULL, ":", &save)) {
        if (!*d)
            continue;
        snprintf(out, outlen, "%s/%s", d, name);
        if (access(out, X_OK) == 0)
            return 0;
    }
    errno = ENOENT;
    return -1;
}

static void backoff(struct svc *s, double now, enum svc_state st)
{
    double delay = 1.0;

    for (int i = 0; i < s->failures && delay < BACKOFF_MAX; i++)
        delay *= 2;
    if (delay > BACKOFF_MAX)
        delay = BACKOFF_MAX;
    s->failures++;
    s->next_start = now + delay;
    set_state(s, st, now);
}

/* The child side of spawn(): only async-signal-safe calls. */
static void __attribute__((noreturn))
child(const struct svc *s, const char *binary, int logfd, int errfd,
      pid_t parent)
{
    sigset_t none;
    int devnull, e;

    setpgid(0, 0);
    umask(022); /* peerd's own is 077 */
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    devnull = open("/dev/null", O_RDONLY);
    if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(logfd, 1) < 0 ||
        dup2(logfd, 2) < 0 || dup2(errfd, 3) < 0)
        goto fail;
    errfd = 3;
    /* dup2 cleared close-on-exec: set it again, so that a successful
     * execve closes the pipe and the parent reads end-of-file.
     */
    if (fcntl(errfd, F_SETFD, FD_CLOEXEC) < 0)
        goto fail;
    /* Everything else (sockets, the database) must not leak. */
    if (close_range(4, ~0U, 0) < 0)
        goto fail;
    if (s->gid != (gid_t)-1 && (setgroups(0, NULL) < 0 || setgid(s->gid) < 0))
        goto fail;
    if (s->uid != (uid_t)-1 && setuid(s->uid) < 0)
        goto fail;
    /* After setuid: a change of credentials clears the death signal. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
        goto fail;
    if (getppid() != parent)
        _exit(126);
    execv(binary, s->argv);
fail:
    e = errno;
    if (write(errfd, &e, sizeof(e)) < 0) {
        /* the parent sees a short read and reports it */
    }
    _exit(127);
}

static void spawn(struct svc *s, double now)
{
    char binary[PATH_MAX];
    int pipefd[2] = {-1, -1};
    int logfd = -1, e = 0;
    ssize_t n;
    pid_t pid;

    if (supervisor_resolve_binary(s->argv[0], binary, sizeof(binary)) < 0) {
        snprintf(s->last_error, sizeof(s->last_error), "cannot run %s: %s",
                 s->argv[0],
                 errno == ENOENT ? "binary not found (looked in PATH, "
                                   "/usr/sbin and /usr/bin)"
                                 : strerror(errno));
        goto failed;
    }
    logfd = open(s->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (logfd < 0) {
        snprintf(s->last_error, sizeof(s->last_error), "cannot open log %s: %s",
                 s->log_path, strerror(errno));
        goto failed;
    }
    if (pipe2(pipefd, O_CLOEXEC) < 0) {
        snprintf(s->last_error, sizeof(s->last_error), "pipe: %s",
                 strerror(errno));
        goto failed;
    }
    pid_t parent = getpid();
    pid = fork();
    if (pid < 0) {
        snprintf(s->last_error, sizeof(s->last_error), "fork: %s",
                 strerror(errno));
        goto failed;
    }
    if (pid == 0)
        child(s, binary, logfd, pipefd[1], parent);
    close(pipefd[1]);
    pipefd[1] = -1;
    setpgid(pid, pid); /* also in the parent: no race with killpg */
    do {
        n = read(pipefd[0], &e, sizeof(e));
    } while (n < 0 && errno == EINTR);
    close(pipefd[0]);
    close(logfd);
    if (n > 0) {
        waitpid(pid, NULL, 0);
        snprintf(s->last_error, sizeof(s->last_error), "cannot run %s: %s",
                 binary, strerror(e));
        logfd = -1;
        pipefd[0] = -1;
        goto failed;
    }
    if (s->spawns++ > 0)
        s->restarts++;
    s->pid = pid;
    s->spawned_at = now;
    s->healthy = false;
    s->killing = false;
    s->unhealthy_since = now;
    set_state(s, SVC_STARTING, now);
    log_info("%s: started %s (pid %d)%s", s->name, binary, (int)pid,
             s->restarts ? " again" : "");
    return;
failed:
    if (logfd >= 0)
        close(logfd);
    if (pipefd[0] >= 0)
        close(pipefd[0]);
    if (pipefd[1] >= 0)
        close(pipefd[1]);
    log_warnx("%s: %s", s->name, s->last_error);
    backoff(s, now, SVC_FAILED);
}

static void kill_service(struct svc *s, int sig)
{
    if (s->pid > 0) {
        s->killing = true;
        if (kill(-s->pid, sig) < 0 && errno == ESRCH)
            kill(s->pid, sig);
    }
}

double supervisor_tick(supervisor_t *sv, double now)
{
    double next = 1.0;

    for (int i = 0; i < sv->n; i++) {
        struct svc *s = &sv->svc[i];
        double due = -1;

        switch (s->state) {
        case SVC_WAITING:
            if (s->depends_on < 0 ||
                (sv->svc[s->depends_on].state == SVC_RUNNING &&
                 sv->svc[s->depends_on].healthy))
                spawn(s, now);
            break;
        case SVC_BACKOFF:
        case SVC_FAILED:
            if (s->pid == 0 && now >= s->next_start)
                spawn(s, now);
            else
                due = s->next_start;
            break;
        case SVC_STARTING:
            if (!s->killing && now - s->spawned_at >= s->start_timeout) {
                snprintf(s->last_error, sizeof(s->last_error),
                         "did not come up within %g s", s->start_timeout);
                log_warnx("%s: %s; restarting it", s->name, s->last_error);
                kill_service(s, SIGKILL);
            } else {
                due = s->spawned_at + s->start_timeout;
            }
            break;
        case SVC_RUNNING:
            if (!s->healthy && !s->killing &&
                now - s->unhealthy_since >= s->hang_timeout) {
                snprintf(s->last_error, sizeof(s->last_error),
                         "unhealthy for %g s", s->hang_timeout);
                log_warnx("%s: %s; restarting it", s->name, s->last_error);
                kill_service(s, SIGKILL);
            }
            if (s->healthy && s->failures &&
                now - s->spawned_at >= STABLE_AFTER)
                s->failures = 0;
            break;
        case SVC_STOPPED:
            if (s->pid > 0 && s->kill_at > 0) {
                if (now >= s->kill_at) {
                    log_warnx("%s: still running after SIGTERM; SIGKILL",
                              s->name);
                    kill_service(s, SIGKILL);
                    s->kill_at = 0;
                } else {
                    due = s->kill_at;
                }
            }
            break;
        }
        if (due > 0 && due - now < next)
            next = due - now;
    }
    return next > 0.01 ? next : 0.01;
}

static void describe_exit(struct svc *s, int status)
{
    if (WIFEXITED(status))
        snprintf(s->last_error, sizeof(s->last_error), "exited with status %d",
                 WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(s->last_error, sizeof(s->last_error),
                 "killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
}

static struct svc *by_pid(supervisor_t *sv, pid_t pid)
{
    for (int i = 0; i < sv->n; i++)
        if (sv->svc[i].pid == pid)
            return &sv->svc[i];
    return NULL;
}

static void exited(struct svc *s, int status, double now)
{
    /* When we killed it (start timeout, hang), keep the reason we had. */
    if (!s->killing)
        describe_exit(s, status);
    log_warnx("%s: pid %d %s", s->name, (int)s->pid, s->last_error);
    if (s->state == SVC_STOPPED)
        kill(-s->pid, SIGKILL); /* what is left of its process group */
    s->pid = 0;
    s->healthy = false;
    s->killing = false;
    s->kill_at = 0;
    if (s->state != SVC_STOPPED)
        backoff(s, now, SVC_BACKOFF);
}

void supervisor_reap(supervisor_t *sv, double now)
{
    int status;
    pid_t pid;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        struct svc *s = by_pid(sv, pid);
        if (s)
            exited(s, status, now);
        else
            log_debug("reaped orphan pid %d", (int)pid);
    }
}

void supervisor_health(supervisor_t *sv, int idx, bool ok, double checked_at,
                       const char *detail, double now)
{
    struct svc *s;

    if (idx < 0 || idx >= sv->n)
        return;
    s = &sv->svc[idx];
    if (s->pid == 0 || checked_at < s->spawned_at)
        return; /* about an earlier process */
    if (ok) {
        if (!s->healthy && s->state == SVC_STARTING)
            log_info("%s: up after %.1f s", s->name, now - s->spawned_at);
        else if (!s->healthy)
            log_info("%s: healthy again", s->name);
        s->healthy = true;
        if (s->state == SVC_STARTING)
            set_state(s, SVC_RUNNING, now);
    } else {
        if (s->healthy) {
            s->unhealthy_since = now;
            log_warnx("%s: health check failed: %s", s->name,
                      detail ? detail : "?");
        }
        s->healthy = false;
        if (detail && s->state == SVC_RUNNING)
            snprintf(s->last_error, sizeof(s->last_error), "health check: %s",
                     detail);
    }
}

pid_t supervisor_pid(supervisor_t *sv, int idx)
{
    return idx >= 0 && idx < sv->n ? sv->svc[idx].pid : 0;
}

bool supervisor_starting(supervisor_t *sv)
{
    for (int i = 0; i < sv->n; i++)
        if (sv->svc[i].state == SVC_STARTING)
            return true;
    return false;
}

bool supervisor_healthy(supervisor_t *sv)
{
    for (int i = 0; i < sv->n; i++)
        if (sv->svc[i].state != SVC_STOPPED &&
            (sv->svc[i].state != SVC_RUNNING || !sv->svc[i].healthy))
            return false;
    return sv->n > 0;
}

static void wait_gone(struct svc *s, double grace)
{
    double deadline = mono_now() + grace;
    struct timespec pause = {0, 20 * 1000 * 1000};
    int status;

    for (;;) {
        pid_t r = waitpid(s->pid, &status, WNOHANG);
        if (r == s->pid || (r < 0 && errno == ECHILD))
            break;
        if (mono_now() >= deadline) {
            log_warnx("%s: still running %g s after SIGTERM; SIGKILL", s->name,
                      grace);
            kill_service(s, SIGKILL);
            waitpid(s->pid, &status, 0);
            break;
        }
        nanosleep(&pause, NULL);
    }
    /* what is left of its process group (helpers it forked) */
    kill(-s->pid, SIGKILL);
    log_info("%s: stopped (pid %d)", s->name, (int)s->pid);
    s->pid = 0;
}

void supervisor_stop_one(supervisor_t *sv, int idx, double grace)
{
    struct svc *s;

    if (idx < 0 || idx >= sv->n)
        return;
    s = &sv->svc[idx];
    set_state(s, SVC_STOPPED, mono_now());
    if (s->pid > 0) {
        kill_service(s, SIGTERM);
        wait_gone(s, grace);
    }
}

void supervisor_enable(supervisor_t *sv, int idx, double now)
{
    struct svc *s;

    if (idx < 0 || idx >= sv->n || sv->svc[idx].state != SVC_STOPPED)
        return;
    s = &sv->svc[idx];
    /* a process still on its way out is reaped first; the backoff state
     * then starts the new one once it is gone
     */
    if (s->pid > 0) {
        s->next_start = now;
        set_state(s, SVC_BACKOFF, now);
    } else {
        set_state(s, SVC_WAITING, now);
    }
    s->failures = 0;
}

void supervisor_disable(supervisor_t *sv, int idx, double grace, double now)
{
    struct svc *s;

    if (idx < 0 || idx >= sv->n)
        return;
    s = &sv->svc[idx];
    if (s->state == SVC_STOPPED)
        return;
    set_state(s, SVC_STOPPED, now);
    if (s->pid > 0) {
        kill_service(s, SIGTERM);
        s->kill_at = now + grace;
    }
}

void supervisor_restart(supervisor_t *sv, int idx, const char *why)
{
    struct svc *s;

    if (idx < 0 || idx >= sv->n || sv->svc[idx].pid <= 0 ||
        sv->svc[idx].state == SVC_STOPPED)
        return;
    s = &sv->svc[idx];
    snprintf(s->last_error, sizeof(s->last_error), "restarted: %s", why);
    log_info("%s: restarting it: %s", s->name, why);
    s->failures = 0; /* asked for: the shortest backoff */
    kill_service(s, SIGTERM);
}

bool supervisor_enabled(supervisor_t *sv, int idx)
{
    return idx >= 0 && idx < sv->n && sv->svc[idx].state != SVC_STOPPED;
}

int supervisor_failures(supervisor_t *sv, int idx)
{
    return idx >= 0 && idx < sv->n ? sv->svc[idx].failures : 0;
}

void supervisor_stop_all(supervisor_t *sv, double grace)
{
    for (int i = sv->n - 1; i >= 0; i--)
        supervisor_stop_one(sv, i, grace);
}

json_t *supervisor_json(supervisor_t *sv, double now)
{
    json_t *a = json_array();

    for (int i = 0; i < sv->n; i++) {
        const struct svc *s = &sv->svc[i];
        json_t *o = json_pack("{s:s,s:s,s:i,s:i,s:b,s:f}", "name", s->name,
                              "state", svc_state_name(s->state), "pid",
                              (int)s->pid, "restarts", s->restarts, "healthy",
                              s->healthy, "since", now - s->state_since);
        json_object_set_new(o, "last_error",
                            s->last_error[0] ? json_string(s->last_error)
                                             : json_null());
        json_array_append_new(a, o);
    }
    return a;
}

const char *svc_arg(struct svc_argv *a, int *bad, const char *fmt, ...)
{
    size_t room = sizeof(a->buf) - a->used;
    char *at = a->buf + a->used;
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(at, room, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= room) {
        *bad = 1;
        return "";
    }
    a->used += n + 1;
    return at;
}
