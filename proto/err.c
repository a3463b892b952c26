/* err.c - error text for a person, passed down by the caller */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "proto/err.h"

int errprintf(err_t *err, const char *fmt, ...)
{
    int saved = errno;
    va_list ap;

    if (err) {
        va_start(ap, fmt);
        vsnprintf(err->text, sizeof(err->text), fmt, ap);
        va_end(ap);
    }
    errno = saved;
    return -1;
}

int errprintf_errno(err_t *err, const char *fmt, ...)
{
    int saved = errno;
    va_list ap;
    int n;

    if (err) {
        va_start(ap, fmt);
        n = vsnprintf(err->text, sizeof(err->text), fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < sizeof(err->text))
            snprintf(err->text + n, sizeof(err->text) - n, ": %s",
                     strerror(saved));
    }
    errno = saved;
    return -1;
}
