/* test_supervise.c - the service supervisor (node/supervise.c)
 *
 * Drives the supervisor with small real programs (/bin/sh, /bin/sleep,
 * /bin/grep) and real CLOCK_MONOTONIC time.  The supervisor reaps with
 * waitpid(-1), so every test leaves no child behind: the teardown stops
 * all services, and the one test that forks a helper itself reaps it
 * before the supervisor could.  Waiting is done by polling with a
 * deadline, never by a fixed sleep that would make a test flaky.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <setjmp.h>

#include <cmocka.h>

#include "node/log.h"
#include "node/supervise.h"

#define DEADLINE 5.0 /* seconds to wait for anything that should happen */

struct fixture {
    char dir[64];
    char log[128];
    supervisor_t *sv;
};

/* What supervisor_json says about one service. */
struct status {
    char state[16];
    pid_t pid;
    int restarts;
    bool healthy;
    char last_error[256];
};

static double mono_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void nap(void)
{
    struct timespec ts = {0, 10 * 1000 * 1000};

    nanosleep(&ts, NULL);
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));

    if (!fx)
        return -1;
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/test_supervise.XXXXXX");
    if (!mkdtemp(fx->dir) || !(fx->sv = supervisor_new())) {
        free(fx);
        return -1;
    }
    snprintf(fx->log, sizeof(fx->log), "%s/svc.log", fx->dir);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;

    supervisor_stop_all(fx->sv, 1.0);
    supervisor_destroy(&fx->sv);
    unlink(fx->log);
    rmdir(fx->dir);
    free(fx);
    return 0;
}

/* A spec for argv (NULL-terminated) logging to fx->log, with no
 * dependency and timeouts long enough not to matter.
 */
static struct svc_spec spec_of(struct fixture *fx, const char *name,
                               const char *const *argv)
{
    return (struct svc_spec){
        .name = name,
        .argv = argv,
        .log_path = fx->log,
        .uid = (uid_t)-1,
        .gid = (gid_t)-1,
        .depends_on = -1,
        .start_timeout = 30,
        .hang_timeout = 60,
    };
}

static int add_spec(struct fixture *fx, const struct svc_spec *spec)
{
    int idx = supervisor_add(fx->sv, spec);

    assert_true(idx >= 0);
    return idx;
}

static int add(struct fixture *fx, const char *name, const char *const *argv)
{
    struct svc_spec spec = spec_of(fx, name, argv);

    return add_spec(fx, &spec);
}

static const char *string_field(const json_t *o, const char *key)
{
    const char *v = json_string_value(json_object_get(o, key));

    return v ? v : "";
}

static void status_of(supervisor_t *sv, int idx, struct status *st)
{
    json_t *a = supervisor_json(sv, mono_now());
    json_t *o = json_array_get(a, idx);

    memset(st, 0, sizeof(*st));
    if (o) {
        snprintf(st->state, sizeof(st->state), "%s", string_field(o, "state"));
        st->pid = (pid_t)json_integer_value(json_object_get(o, "pid"));
        st->restarts = (int)json_integer_value(json_object_get(o, "restarts"));
        st->healthy = json_is_true(json_object_get(o, "healthy"));
        snprintf(st->last_error, sizeof(st->last_error), "%s",
                 string_field(o, "last_error"));
    }
    json_decref(a);
    if (!o)
        fail_msg("no service %d in supervisor_json", idx);
}

static void assert_state(supervisor_t *sv, int idx, const char *state)
{
    struct status st;

    status_of(sv, idx, &st);
    assert_string_equal(st.state, state);
}

/* Reap and tick until service idx is in state (or fail after DEADLINE).
 * Returns the time it got there.
 */
static double run_until(supervisor_t *sv, int idx, const char *state)
{
    double deadline = mono_now() + DEADLINE;
    struct status st;

    for (;;) {
        double now = mono_now();
        supervisor_reap(sv, now);
        supervisor_tick(sv, now);
        status_of(sv, idx, &st);
        if (strcmp(st.state, state) == 0)
            return now;
        if (now > deadline)
            fail_msg("service %d still '%s' (wanted '%s'), last error: %s", idx,
                     st.state, state, st.last_error);
        nap();
    }
}

static bool log_contains(struct fixture *fx, const char *needle)
{
    char buf[4096];
    size_t n = 0;
    FILE *f = fopen(fx->log, "r");

    if (f) {
        n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
    }
    buf[n] = '\0';
    return strstr(buf, needle) != NULL;
}

static void wait_for_log(struct fixture *fx, const char *needle)
{
    double deadline = mono_now() + DEADLINE;

    while (!log_contains(fx, needle)) {
        if (mono_now() > deadline)
            fail_msg("'%s' never appeared in %s", needle, fx->log);
        nap();
    }
}

static bool process_gone(pid_t pid)
{
    return kill(pid, 0) < 0 && errno == ESRCH;
}

static const char *const sleeper[] = {"/bin/sleep", "100", NULL};

static void test_spawns_on_first_tick(void **state)
{
    struct fixture *fx = *state;
    int i = add(fx, "sleeper", sleeper);
    struct status st;

    assert_int_equal(supervisor_pid(fx->sv, i), 0);
    supervisor_tick(fx->sv, mono_now());
    status_of(fx->sv, i, &st);
    assert_true(st.pid > 0);
    assert_int_equal(supervisor_pid(fx->sv, i), st.pid);
    assert_string_equal(st.state, "starting");
    assert_false(st.healthy);
    assert_int_equal(st.restarts, 0);
    assert_int_equal(kill(st.pid, 0), 0);
}

static void test_healthy_becomes_running(void **state)
{
    struct fixture *fx = *state;
    int i = add(fx, "sleeper", sleeper);
    double spawned = mono_now();
    struct status st;

    supervisor_tick(fx->sv, spawned);
    assert_false(supervisor_healthy(fx->sv));
    assert_true(supervisor_starting(fx->sv));
    supervisor_health(fx->sv, i, true, spawned, NULL, mono_now());
    status_of(fx->sv, i, &st);
    assert_string_equal(st.state, "running");
    assert_true(st.healthy);
    assert_true(supervisor_healthy(fx->sv));
    assert_false(supervisor_starting(fx->sv));
}

static void test_stale_health_ignored(void **state)
{
    struct fixture *fx = *state;
    int i = add(fx, "sleeper", sleeper);
    double spawned = mono_now();
    struct status st;

    supervisor_tick(fx->sv, spawned);
    supervisor_health(fx->sv, i, true, spawned - 0.5, NULL, mono_now());
    status_of(fx->sv, i, &st);
    assert_string_equal(st.state, "starting");
    assert_false(st.healthy);
    assert_false(supervisor_healthy(fx->sv));
    assert_true(supervisor_starting(fx->sv));
}

static void test_exit_backoff_restart(void **state)
{
    static const char *const argv[] = {"/bin/sh", "-c", "exit 3", NULL};
    struct fixture *fx = *state;
    int i = add(fx, "quitter", argv);
    double exited, respawned;
    struct status st;

    supervisor_tick(fx->sv, mono_now());
    exited = run_until(fx->sv, i, "backoff");
    status_of(fx->sv, i, &st);
    assert_int_equal(st.pid, 0);
    assert_non_null(strstr(st.last_error, "status 3"));
    respawned = run_until(fx->sv, i, "starting");
    status_of(fx->sv, i, &st);
    assert_true(st.pid > 0);
    assert_int_equal(st.restarts, 1);
    /* not before the first backoff delay of 1 s */
    assert_true(respawned - exited >= 0.99);
}

static void test_missing_binary_fails(void **state)
{
    static const char *const path[] = {"/nonexistent/bin", NULL};
    static const char *const bare[] = {"peerd-test-no-such-binary", NULL};
    struct fixture *fx = *state;
    int a = add(fx, "by-path", path);
    int b = add(fx, "by-name", bare);
    struct status st;

    supervisor_tick(fx->sv, mono_now());
    for (int i = a; i <= b; i++) {
        status_of(fx->sv, i, &st);
        assert_string_equal(st.state, "failed");
        assert_int_equal(st.pid, 0);
        assert_non_null(strstr(st.last_error, "not found"));
    }
}

static void test_dependent_waits_for_healthy(void **state)
{
    struct fixture *fx = *state;
    struct svc_spec spec = spec_of(fx, "slurmctld", sleeper);
    int first = add(fx, "munged", sleeper);
    int second;

    spec.depends_on = first;
    second = add_spec(fx, &spec);
    supervisor_tick(fx->sv, mono_now());
    assert_true(supervisor_pid(fx->sv, first) > 0);
    assert_int_equal(supervisor_pid(fx->sv, second), 0);
    assert_state(fx->sv, second, "waiting");
    /* spawned but not healthy: still waiting */
    supervisor_health(fx->sv, first, false, mono_now(), "no socket",
                      mono_now());
    supervisor_tick(fx->sv, mono_now());
    assert_int_equal(supervisor_pid(fx->sv, second), 0);
    assert_state(fx->sv, second, "waiting");
    supervisor_health(fx->sv, first, true, mono_now(), NULL, mono_now());
    supervisor_tick(fx->sv, mono_now());
    assert_true(supervisor_pid(fx->sv, second) > 0);
    assert_state(fx->sv, second, "starting");
}

static void test_start_timeout_kills(void **state)
{
    struct fixture *fx = *state;
    struct svc_spec spec = spec_of(fx, "slow", sleeper);
    double spawned;
    struct status st;
    pid_t pid;
    int i;

    spec.start_timeout = 0.3;
    i = add_spec(fx, &spec);
    spawned = mono_now();
    supervisor_tick(fx->sv, spawned);
    pid = supervisor_pid(fx->sv, i);
    assert_true(pid > 0);
    supervisor_tick(fx->sv, spawned + 0.1); /* not yet */
    assert_int_equal(kill(pid, 0), 0);
    assert_state(fx->sv, i, "starting");
    assert_true(run_until(fx->sv, i, "backoff") - spawned >= 0.3);
    status_of(fx->sv, i, &st);
    assert_non_null(strstr(st.last_error, "did not come up"));
    assert_true(process_gone(pid));
}

static void test_hang_timeout_kills(void **state)
{
    struct fixture *fx = *state;
    struct svc_spec spec = spec_of(fx, "hung", sleeper);
    double t0, failed;
    struct status st;
    pid_t pid;
    int i;

    spec.hang_timeout = 0.3;
    i = add_spec(fx, &spec);
    t0 = mono_now();
    supervisor_tick(fx->sv, t0);
    pid = supervisor_pid(fx->sv, i);
    supervisor_health(fx->sv, i, true, t0, NULL, mono_now());
    assert_state(fx->sv, i, "running");
    failed = mono_now();
    supervisor_health(fx->sv, i, false, failed, "no answer", failed);
    supervisor_tick(fx->sv, failed);
    assert_int_equal(kill(pid, 0), 0); /* not at once */
    assert_true(run_until(fx->sv, i, "backoff") - failed >= 0.3);
    status_of(fx->sv, i, &st);
    assert_non_null(strstr(st.last_error, "unhealthy for"));
    assert_true(process_gone(pid));
}

static void test_output_goes_to_log(void **state)
{
    static const char *const argv[] = {
        "/bin/sh", "-c", "echo hello-from-child; echo err-from-child >&2",
        NULL};
    struct fixture *fx = *state;
    int i = add(fx, "talker", argv);

    supervisor_tick(fx->sv, mono_now());
    run_until(fx->sv, i, "backoff");
    assert_true(log_contains(fx, "hello-from-child\n"));
    assert_true(log_contains(fx, "err-from-child\n"));
}

static void test_runs_as_uid(void **state)
{
    static const char *const argv[] = {"/bin/sh", "-c", "echo uid=$(id -u)",
                                       NULL};
    struct fixture *fx = *state;
    struct svc_spec spec = spec_of(fx, "nobody", argv);
    int i;

    if (geteuid() != 0)
        skip();
    spec.uid = 65534;
    spec.gid = 65534;
    i = add_spec(fx, &spec);
    supervisor_tick(fx->sv, mono_now());
    run_until(fx->sv, i, "backoff");
    assert_true(log_contains(fx, "uid=65534\n"));
}

/* peerd blocks SIGTERM and SIGCHLD for its signalfd; its children must
 * not inherit that mask, or a daemon would never see SIGTERM.
 */
static void test_child_signal_mask_cleared(void **state)
{
    /* grep itself, not a shell: sh would clear the mask on its own */
    static const char *const argv[] = {"/bin/grep",
                                       "^SigBlk:", "/proc/self/status", NULL};
    struct fixture *fx = *state;
    int i = add(fx, "masked", argv);
    sigset_t set, old;

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    assert_int_equal(sigprocmask(SIG_BLOCK, &set, &old), 0);
    supervisor_tick(fx->sv, mono_now());
    assert_int_equal(sigprocmask(SIG_SETMASK, &old, NULL), 0);
    run_until(fx->sv, i, "backoff");
    assert_true(log_contains(fx, "SigBlk:\t0000000000000000\n"));
}

static void test_own_process_group(void **state)
{
    struct fixture *fx = *state;
    int i = add(fx, "sleeper", sleeper);
    pid_t pid;

    supervisor_tick(fx->sv, mono_now());
    pid = supervisor_pid(fx->sv, i);
    assert_true(pid > 0);
    assert_int_equal(getpgid(pid), pid);
    assert_true(getpgid(pid) != getpgrp());
}

static void test_stop_all_terminates(void **state)
{
    struct fixture *fx = *state;
    int i = add(fx, "sleeper", sleeper);
    pid_t pid;

    supervisor_tick(fx->sv, mono_now());
    pid = supervisor_pid(fx->sv, i);
    assert_true(pid > 0);
    supervisor_stop_all(fx->sv, 2.0);
    assert_true(process_gone(pid));
    assert_int_equal(supervisor_pid(fx->sv, i), 0);
    assert_state(fx->sv, i, "stopped");
}

static void test_stop_all_kills_after_grace(void **state)
{
    static const char *const argv[] = {
        "/bin/sh", "-c", "trap '' TERM; echo ready; exec /bin/sleep 100", NULL};
    struct fixture *fx = *state;
    int i = add(fx, "stubborn", argv);
    double t0;
    pid_t pid;

    supervisor_tick(fx->sv, mono_now());
    pid = supervisor_pid(fx->sv, i);
    assert_true(pid > 0);
    wait_for_log(fx, "ready\n");
    t0 = mono_now();
    alarm(10); /* a stop_all that never sends SIGKILL fails, not hangs */
    supervisor_stop_all(fx->sv, 0.3);
    alarm(0);
    assert_true(mono_now() - t0 >= 0.3);
    assert_true(process_gone(pid));
}

/* Gone, or a zombie that its new parent has not reaped yet. */
static bool process_dead(pid_t pid)
{
    char path[64], buf[256];
    const char *paren;
    FILE *f;
    size_t n;

    if (process_gone(pid))
        return true;
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    if (!(f = fopen(path, "r")))
        return true;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    paren = strrchr(buf, ')');
    return paren && paren[1] == ' ' && paren[2] == 'Z';
}

/* The child side of test_children_die_with_peerd: a stand-in for peerd
 * that starts a service, reports its pid and exits without stopping it.
 * No cmocka asserts here: they would jump into the parent's test.
 */
static void __attribute__((noreturn)) fake_peerd(struct fixture *fx, int fd)
{
    supervisor_t *sv = supervisor_new();
    struct svc_spec spec = spec_of(fx, "orphan", sleeper);
    pid_t pid = 0;

    if (sv && supervisor_add(sv, &spec) == 0) {
        supervisor_tick(sv, mono_now());
        pid = supervisor_pid(sv, 0);
    }
    _exit(write(fd, &pid, sizeof(pid)) == sizeof(pid) ? 0 : 1);
}

static void test_children_die_with_peerd(void **state)
{
    struct fixture *fx = *state;
    double deadline;
    pid_t helper, pid = 0;
    int fds[2];

    assert_int_equal(pipe(fds), 0);
    helper = fork();
    assert_true(helper >= 0);
    if (helper == 0)
        fake_peerd(fx, fds[1]);
    close(fds[1]);
    assert_int_equal(read(fds[0], &pid, sizeof(pid)), sizeof(pid));
    close(fds[0]);
    assert_int_equal(waitpid(helper, NULL, 0), helper);
    assert_true(pid > 0);
    deadline = mono_now() + DEADLINE;
    while (!process_dead(pid)) {
        if (mono_now() > deadline)
            fail_msg("pid %d outlived its supervisor", (int)pid);
        nap();
    }
}

static void assert_service_json(const json_t *o, const char *name)
{
    const json_t *err = json_object_get(o, "last_error");
    const json_t *since = json_object_get(o, "since");

    assert_true(json_is_object(o));
    assert_string_equal(string_field(o, "name"), name);
    assert_true(json_is_string(json_object_get(o, "state")));
    assert_true(json_is_integer(json_object_get(o, "pid")));
    assert_true(json_is_integer(json_object_get(o, "restarts")));
    assert_true(json_is_boolean(json_object_get(o, "healthy")));
    assert_true(json_is_null(err) || json_is_string(err));
    assert_true(json_is_number(since) && json_number_value(since) >= 0);
}

static void test_json_fields(void **state)
{
    struct fixture *fx = *state;
    struct svc_spec spec = spec_of(fx, "slurmctld", sleeper);
    json_t *a;

    add(fx, "munged", sleeper);
    spec.depends_on = 0;
    add_spec(fx, &spec);
    supervisor_tick(fx->sv, mono_now());
    a = supervisor_json(fx->sv, mono_now());
    assert_true(json_is_array(a));
    assert_int_equal(json_array_size(a), 2);
    assert_service_json(json_array_get(a, 0), "munged");
    assert_service_json(json_array_get(a, 1), "slurmctld");
    assert_string_equal(string_field(json_array_get(a, 0), "state"),
                        "starting");
    assert_string_equal(string_field(json_array_get(a, 1), "state"), "waiting");
    json_decref(a);
}

static void test_find_by_name(void **state)
{
    struct fixture *fx = *state;

    add(fx, "munged", sleeper);
    add(fx, "slurmd", sleeper);
    assert_int_equal(supervisor_find(fx->sv, "munged"), 0);
    assert_int_equal(supervisor_find(fx->sv, "slurmd"), 1);
    assert_int_equal(supervisor_find(fx->sv, "slurmctld"), -1);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    // clang-format off
    const struct CMUnitTest tests[] = {
        T(test_spawns_on_first_tick),
        T(test_healthy_becomes_running),
        T(test_stale_health_ignored),
        T(test_exit_backoff_restart),
        T(test_missing_binary_fails),
        T(test_dependent_waits_for_healthy),
        T(test_start_timeout_kills),
        T(test_hang_timeout_kills),
        T(test_output_goes_to_log),
        T(test_runs_as_uid),
        T(test_child_signal_mask_cleared),
        T(test_own_process_group),
        T(test_stop_all_terminates),
        T(test_stop_all_kills_after_grace),
        T(test_children_die_with_peerd),
        T(test_json_fields),
        T(test_find_by_name),
    };
    // clang-format on

    log_init("test_supervise", LOG_LEVEL_DEBUG, false);
    return cmocka_run_group_tests_name("supervise", tests, NULL, NULL);
}
