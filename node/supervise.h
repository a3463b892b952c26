/* supervise.h - start, watch and restart the Slurm and munge daemons
 *
 * Each service runs in the foreground as a child of peerd, in its own
 * process group, with stdout and stderr appended to its log file.  A
 * service may depend on the one before it: it is started only once that
 * one is healthy (munged -> slurmctld -> slurmd).  A service that exits,
 * or does not become healthy within its start timeout, or stays unhealthy
 * for its hang timeout, is restarted after a capped exponential backoff
 * (1 s, 2 s, 4 s ... 60 s).  Children get SIGKILL if peerd dies
 * (PR_SET_PDEATHSIG), so none outlives it.
 *
 * The supervisor does no health checks itself; the caller feeds results in
 * with supervisor_health().  Times are CLOCK_MONOTONIC seconds.
 */
#ifndef PEERD_SUPERVISE_H
#define PEERD_SUPERVISE_H

#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>

#include <jansson.h>

typedef struct supervisor supervisor_t;

enum svc_state {
    SVC_WAITING,  /* for the service it depends on */
    SVC_STARTING, /* spawned, not yet healthy */
    SVC_RUNNING,  /* healthy at least once since spawn */
    SVC_BACKOFF,  /* exited; waiting to restart */
    SVC_FAILED,   /* could not be spawned (binary missing ...) */
    SVC_STOPPED,
};

struct svc_spec {
    const char *name;
    const char *const *argv; /* argv[0] = binary (path or name) */
    const char *log_path;
    uid_t uid; /* run as; (uid_t)-1 = as peerd */
    gid_t gid;
    int depends_on;       /* index of another service, or -1 */
    double start_timeout; /* seconds to become healthy */
    double hang_timeout;  /* seconds unhealthy while running */
    bool disabled;        /* added STOPPED: supervisor_enable() starts it */
};

/* An argv built in place for svc_spec: argv points into buf.  Use it
 * where it is; do not copy the struct.
 */
#define SVC_ARGV_MAX 24
struct svc_argv {
    const char *argv[SVC_ARGV_MAX + 1];
    char buf[8 * PATH_MAX];
    size_t used;
};

/* Format one argument into a->buf and return it; on overflow set *bad
 * and return "".
 */
const char *svc_arg(struct svc_argv *a, int *bad, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Find a binary: a path is taken as it is; a bare name is looked up in
 * PATH, then /usr/sbin and /usr/bin.  0 with out filled, or -1 (errno).
 */
int supervisor_resolve_binary(const char *name, char *out, size_t outlen);

supervisor_t *supervisor_new(void);
void supervisor_destroy(supervisor_t **svp);

/* Add a service (the spec is copied).  Returns its index or -1. */
int supervisor_add(supervisor_t *sv, const struct svc_spec *spec);

/* Index of a service by name, or -1. */
int supervisor_find(supervisor_t *sv, const char *name);

/* Run the state machine: spawn what is due, time out what is late.
 * Returns the number of seconds until it next needs to run.
 */
double supervisor_tick(supervisor_t *sv, double now);

/* Reap exited children (call on SIGCHLD).  Children that are not
 * services (orphans reparented to us as subreaper) are reaped silently.
 */
void supervisor_reap(supervisor_t *sv, double now);

/* A health result for service idx from a check that started at
 * checked_at.  Results older than the current process are ignored.
 * detail may be NULL.
 */
void supervisor_health(supervisor_t *sv, int idx, bool ok, double checked_at,
                       const char *detail, double now);

/* Pid of a service; 0 when it has no process. */
pid_t supervisor_pid(supervisor_t *sv, int idx);

/* True if some service is spawned but not yet healthy. */
bool supervisor_starting(supervisor_t *sv);

/* True if every service not stopped is running and healthy. */
bool supervisor_healthy(supervisor_t *sv);

/* Let a stopped service start again (as soon as what it depends on
 * is healthy); no-op for a service that is not stopped.
 */
void supervisor_enable(supervisor_t *sv, int idx, double now);

/* Stop a service without waiting: SIGTERM to its process group now,
 * SIGKILL if it is still there grace seconds later (from
 * supervisor_tick); it is not restarted until supervisor_enable().
 */
void supervisor_disable(supervisor_t *sv, int idx, double grace, double now);

/* Restart a running service now (SIGTERM; started again after the
 * shortest backoff), for why (logged, kept as its last error).
 */
void supervisor_restart(supervisor_t *sv, int idx, const char *why);

/* Is the service enabled (not stopped)? */
bool supervisor_enabled(supervisor_t *sv, int idx);

/* Its consecutive failed starts and deaths (0 once it has run
 * healthily for a minute).
 */
int supervisor_failures(supervisor_t *sv, int idx);

/* Stop all services in reverse order: SIGTERM to the process group,
 * SIGKILL after grace seconds.  Blocks until they are gone.
 */
void supervisor_stop_all(supervisor_t *sv, double grace);

/* Stop one service (SIGTERM, SIGKILL after grace); it is not restarted. */
void supervisor_stop_one(supervisor_t *sv, int idx, double grace);

/* JSON array of services: name, state, pid, restarts, healthy,
 * last_error, since (seconds in the current state).  New reference.
 */
json_t *supervisor_json(supervisor_t *sv, double now);

const char *svc_state_name(enum svc_state st);

#endif
