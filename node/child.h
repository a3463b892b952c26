/* child.h - a short command run to its end, bounded, output captured
 *
 * For the setup and check steps of accounting (node/acct.c,
 * node/replica.c): fork + execve with a fixed environment, in its own
 * process group, empty signal mask, SIGPIPE at default, all other
 * descriptors closed, PR_SET_PDEATHSIG(SIGKILL) (it dies with the thread
 * that started it).  stdin from a string (over a socketpair, so that a
 * child that stops reading gives EPIPE, not SIGPIPE), from a descriptor,
 * or /dev/null; stdout captured or to a descriptor; stderr captured.
 * At the timeout the whole group is SIGKILLed.
 *
 * peerd's main loop reaps every child with waitpid(-1), so a command run
 * from another thread may be reaped there: its status is then unknown
 * (-1), and callers decide success from the output too.
 */
#ifndef PEERD_CHILD_H
#define PEERD_CHILD_H

#include <stdbool.h>
#include <stddef.h>

#include "proto/err.h"

#define CHILD_CAPTURE 16384 /* bytes of each output stream kept */

struct child {
    /* in */
    const char *const *argv; /* argv[0]: a name (PATH, /usr/sbin, /usr/bin)
                                or a path */
    const char *const *envp;
    const char *input;    /* stdin, or NULL */
    int in_fd;            /* > 0: stdin from this descriptor (input NULL) */
    int out_fd;           /* > 0: stdout to this descriptor, not captured */
    const char *log_path; /* command line and output appended, or NULL */
    double timeout;       /* seconds */
    /* out */
    char out[CHILD_CAPTURE], err[CHILD_CAPTURE]; /* truncated */
    size_t out_len, err_len;
    int status; /* wait status; -1 when someone else reaped the child */
    bool timed_out;
};

/* Run c->argv to completion or c->timeout.  Returns 0 when the command
 * ran (look at c->status, c->timed_out and the output), -1 with err when
 * it could not be started.
 */
int child_run(struct child *c, err_t *err);

/* Exited 0, or was reaped elsewhere (the caller checks the output). */
bool child_ok(const struct child *c);

/* Why it failed, for a person: "what: exit 1: <last line of stderr>",
 * timeout or signal.  Returns -1.
 */
int child_failed(const struct child *c, const char *what, err_t *err);

#endif
