/* err.h - error text for a person, passed down by the caller
 *
 * Functions that can fail in a way a person must understand take an
 * err_t * and fill it with one line of text (no trailing newline).  The
 * shape follows flux-core's flux_error_t: the callee writes, the caller
 * decides whether to log it, print it or send it back over a socket.
 */
#ifndef PEERD_ERR_H
#define PEERD_ERR_H

#include <stddef.h>

typedef struct {
    char text[512];
} err_t;

/* Format into err (which may be NULL).  Always returns -1 so that
 * "return errprintf (err, ...);" reads naturally.  errno is preserved.
 */
int errprintf(err_t *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Like errprintf, but appends ": strerror(errno)". */
int errprintf_errno(err_t *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
