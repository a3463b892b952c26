/* fence.c - the lease watchdog process (see fence.h)
 *
 * Between fork() and _exit() the child calls only async-signal-safe
 * functions (peerd has threads): read, poll, clock_gettime, kill, write,
 * close_range, prctl, getppid, _exit.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "node/fence.h"
#include "node/log.h"

struct order {
    int32_t pgid;
    int32_t pad;
    double until;
};

struct fence {
    pid_t pid;
    int fd; /* write end */
    struct order last;
};

static double mono(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void say(const char *msg)
{
    ssize_t n = write(2, msg, strlen(msg));
    (void)n;
}

static void __attribute__((noreturn)) fence_main(int fd, pid_t parent)
{
    struct order o = {0, 0, 0}, in;

    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(0);
    for (;;) {
        int timeout = -1;
        double now = mono();
        if (o.pgid > 0) {
            double left = o.until - now;
            timeout = left <= 0 ? 0 : (int)(left * 1000) + 1;
        }
        struct pollfd p = {fd, POLLIN, 0};
        int r = poll(&p, 1, timeout);
        if (r > 0) {
            ssize_t n = read(fd, &in, sizeof(in));
            if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
                if (o.pgid > 0)
                    kill(-o.pgid, SIGKILL);
                _exit(0);
            }
            if (n == (ssize_t)sizeof(in))
                o = in;
        }
        if (o.pgid > 0 && mono() >= o.until) {
            say("peerd fence: the controller lease ended; killing "
                "slurmctld\n");
            kill(-o.pgid, SIGKILL);
            o.pgid = 0;
        }
    }
}

fence_t *fence_start(void)
{
    fence_t *f = calloc(1, sizeof(*f));
    int fds[2];
    pid_t parent = getpid();

    if (!f)
        return NULL;
    if (pipe2(fds, O_CLOEXEC) < 0) {
        free(f);
        return NULL;
    }
    f->pid = fork();
    if (f->pid < 0) {
        int e = errno;
        close(fds[0]);
        close(fds[1]);
        free(f);
        errno = e;
        return NULL;
    }
    if (f->pid == 0) {
        /* keep only stdio and the read end: the fence must not hold
         * peerd's lock file or sockets
         */
        if (fds[0] != 3) {
            if (dup2(fds[0], 3) < 0)
                _exit(1);
        }
        close_range(4, ~0U, 0);
        fence_main(3, parent);
    }
    close(fds[0]);
    f->fd = fds[1];
    /* a stopped fence must not stop peerd: a full pipe drops an order */
    fcntl(f->fd, F_SETFL, O_NONBLOCK);
    return f;
}

int fence_set(fence_t *f, pid_t pgid, double until)
{
    struct order o = {(int32_t)pgid, 0, pgid > 0 ? until : 0};

    if (!f || f->fd < 0)
        return -1;
    if (o.pgid == f->last.pgid && o.until == f->last.until)
        return 0;
    if (write(f->fd, &o, sizeof(o)) != (ssize_t)sizeof(o)) {
        if (errno == EAGAIN)
            return 0;
        log_warn("cannot reach the lease fence");
        return -1;
    }
    f->last = o;
    return 0;
}

pid_t fence_pid(fence_t *f)
{
    return f ? f->pid : 0;
}

void fence_stop(fence_t **fp)
{
    fence_t *f = fp ? *fp : NULL;

    if (!f)
        return;
    close(f->fd); /* the fence kills what it guards and exits */
    waitpid(f->pid, NULL, 0);
    free(f);
    *fp = NULL;
}
