/* child.c - a short command run to its end, bounded (see child.h) */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "node/child.h"
#include "node/supervise.h"

static double mono_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The child side: only async-signal-safe calls. */
static void __attribute__((noreturn))
child_exec(const char *binary, const struct child *r, int in, int out, int errw,
           int report, pid_t parent)
{
    sigset_t none;
    int e;

    setpgid(0, 0);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(errw, 2) < 0 ||
        dup2(report, 3) < 0 || fcntl(3, F_SETFD, FD_CLOEXEC) < 0 ||
        close_range(4, ~0U, 0) < 0)
        goto fail;
    /* Dies with the thread that started it (peerd's, or the health
     * thread), so a step never outlives its caller.
     */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
        goto fail;
    if (getppid() != parent)
        _exit(126);
    execve(binary, (char *const *)r->argv, (char *const *)r->envp);
fail:
    e = errno;
    if (write(3, &e, sizeof(e)) < 0) {
        /* the parent sees a short read */
    }
    _exit(127);
}

static void keep(char *buf, size_t *len, const char *data, size_t n)
{
    size_t room = CHILD_CAPTURE - 1 - *len;

    if (n > room)
        n = room;
    memcpy(buf + *len, data, n);
    *len += n;
    buf[*len] = '\0';
}

/* Wait for pid until deadline; kill its group at the deadline.  Sets
 * r->status (-1 if it was reaped elsewhere).
 */
static void child_reap(struct child *r, pid_t pid, double deadline)
{
    int st;

    for (;;) {
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid) {
            r->status = st;
            return;
        }
        if (w < 0 && errno != EINTR) {
            r->status = -1; /* ECHILD: reaped by the main loop */
            return;
        }
        if (w == 0 && mono_now() >= deadline) {
            r->timed_out = true;
            killpg(pid, SIGKILL);
            if (waitpid(pid, &st, 0) == pid)
                r->status = st;
            else
                r->status = -1;
            return;
        }
        if (w == 0) {
            struct timespec ts = {0, 20 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
}

int child_run(struct child *r, err_t *err)
{
    char binary[PATH_MAX];
    int in[2] = {-1, -1}, out[2] = {-1, -1}, errp[2] = {-1, -1};
    int report[2] = {-1, -1};
    int logfd = -1, e = 0, rc = -1;
    size_t sent = 0, input_len = r->input ? strlen(r->input) : 0;
    double deadline = mono_now() + r->timeout;
    ssize_t n;
    pid_t pid;

    r->out_len = r->err_len = 0;
    r->out[0] = r->err[0] = '\0';
    r->status = -1;
    r->timed_out = false;
    if (supervisor_resolve_binary(r->argv[0], binary, sizeof(binary)) < 0)
        return errprintf(err, "cannot run %s: %s", r->argv[0],
                         errno == ENOENT ? "not found (looked in PATH, "
                                           "/usr/sbin and /usr/bin)"
                                         : strerror(errno));
    /* The log is a copy for a person; what matters is captured. */
    if (r->log_path)
        logfd =
            open(r->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    /* stdin is a socket so that writing to a child that went away gives
     * EPIPE (MSG_NOSIGNAL), not SIGPIPE, whatever the caller ignores.
     */
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in) < 0 ||
        pipe2(out, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0 ||
        pipe2(report, O_CLOEXEC) < 0) {
        errprintf_errno(err, "cannot run %s", binary);
        goto out;
    }
    if (!r->input)
        shutdown(in[0], SHUT_WR); /* the child reads end-of-file at once */
    if (logfd >= 0) {
        char head[512];
        int k = snprintf(head, sizeof(head), "--- %s", binary);
        for (int i = 1; r->argv[i] && k < (int)sizeof(head) - 2; i++)
            k += snprintf(head + k, sizeof(head) - k, " %s", r->argv[i]);
        if (k > (int)sizeof(head) - 2)
            k = (int)sizeof(head) - 2;
        head[k++] = '\n';
        if (write(logfd, head, k) < 0) {
            /* the log is best effort */
        }
    }
    pid_t parent = getpid();
    pid = fork();
    if (pid < 0) {
        errprintf_errno(err, "cannot run %s: fork", binary);
        goto out;
    }
    if (pid == 0)
        child_exec(binary, r, r->in_fd > 0 && !r->input ? r->in_fd : in[1],
                   r->out_fd > 0 ? r->out_fd : out[1], errp[1], report[1],
                   parent);
    setpgid(pid, pid); /* also here: no race with killpg */
    close(in[1]);
    close(out[1]);
    close(errp[1]);
    close(report[1]);
    in[1] = out[1] = errp[1] = report[1] = -1;
    do {
        n = read(report[0], &e, sizeof(e));
    } while (n < 0 && errno == EINTR);
    if (n > 0) {
        child_reap(r, pid, deadline);
        errno = e;
        errprintf_errno(err, "cannot run %s", binary);
        goto out;
    }
    if (!r->input) {
        close(in[0]);
        in[0] = -1;
    }
    if (r->out_fd > 0) { /* stdout goes elsewhere: nothing to read */
        close(out[0]);
        out[0] = -1;
    }

    while (out[0] >= 0 || errp[0] >= 0) {
        struct pollfd pfd[3];
        int nfd = 0, ms;
        double left = deadline - mono_now();

        if (left <= 0)
            break;
        ms = (int)(left * 1000) + 1;
        int io = -1, oo = -1, eo = -1;
        if (in[0] >= 0) {
            io = nfd;
            pfd[nfd++] = (struct pollfd){in[0], POLLOUT, 0};
        }
        if (out[0] >= 0) {
            oo = nfd;
            pfd[nfd++] = (struct pollfd){out[0], POLLIN, 0};
        }
        if (errp[0] >= 0) {
            eo = nfd;
            pfd[nfd++] = (struct pollfd){errp[0], POLLIN, 0};
        }
        if (poll(pfd, nfd, ms) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (io >= 0 && pfd[io].revents) {
            n = send(in[0], r->input + sent, input_len - sent,
                     MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n > 0)
                sent += n;
            if ((n < 0 && errno != EAGAIN && errno != EINTR) ||
                sent == input_len) {
                close(in[0]); /* end of input, or the child stopped
                                 reading: its output will say why */
                in[0] = -1;
            }
        }
        for (int k = 0; k < 2; k++) {
            int at = k ? eo : oo;
            int *fd = k ? &errp[0] : &out[0];
            char chunk[4096];
            if (at < 0 || !pfd[at].revents)
                continue;
            n = read(*fd, chunk, sizeof(chunk));
            if (n < 0 && (errno == EINTR || errno == EAGAIN))
                continue;
            if (n <= 0) {
                close(*fd);
                *fd = -1;
                continue;
            }
            if (k)
                keep(r->err, &r->err_len, chunk, n);
            else
                keep(r->out, &r->out_len, chunk, n);
            if (logfd >= 0 && write(logfd, chunk, n) < 0) {
                /* best effort */
            }
        }
    }
    child_reap(r, pid, deadline);
    rc = 0;
out:
    for (int i = 0; i < 2; i++) {
        if (in[i] >= 0)
            close(in[i]);
        if (out[i] >= 0)
            close(out[i]);
        if (errp[i] >= 0)
            close(errp[i]);
        if (report[i] >= 0)
            close(report[i]);
    }
    if (logfd >= 0)
        close(logfd);
    return rc;
}

/* The last non-empty line of text (for an error message), copied. */
static const char *last_line(const char *text, char *buf, size_t size)
{
    const char *end = text + strlen(text), *start;

    while (end > text && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' '))
        end--;
    start = end;
    while (start > text && start[-1] != '\n')
        start--;
    snprintf(buf, size, "%.*s", (int)(end - start), start);
    return buf;
}

int child_failed(const struct child *r, const char *what, err_t *err)
{
    char line[256];
    const char *said =
        last_line(r->err_len ? r->err : r->out, line, sizeof(line));

    if (r->timed_out)
        return errprintf(err, "%s: no answer within %.0f s (killed)%s%s", what,
                         r->timeout, *said ? ": " : "", said);
    if (r->status != -1 && WIFSIGNALED(r->status))
        return errprintf(err, "%s: killed by signal %d%s%s", what,
                         WTERMSIG(r->status), *said ? ": " : "", said);
    if (r->status != -1 && WIFEXITED(r->status) && WEXITSTATUS(r->status))
        return errprintf(err, "%s: exit %d%s%s", what, WEXITSTATUS(r->status),
                         *said ? ": " : "", said);
    return errprintf(err, "%s failed%s%s", what, *said ? ": " : "", said);
}

bool child_ok(const struct child *r)
{
    if (r->timed_out)
        return false;
    if (r->status == -1)
        return true;
    return WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0;
}
