/* log.c - the one logging API of node/
 *
 * Thread-safe: each message is formatted into one buffer and written
 * with a single write(2), so lines from the health thread and the main
 * loop never interleave.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "node/log.h"

static const char *log_ident = "peerd";
static enum log_level log_level = LOG_LEVEL_INFO;
static bool log_to_syslog;

void log_init(const char *ident, enum log_level level, bool use_syslog)
{
    log_ident = ident;
    log_level = level;
    log_to_syslog = use_syslog;
    if (use_syslog)
        openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void log_set_level(enum log_level level)
{
    log_level = level;
}

static void log_emit(enum log_level level, int errnum, const char *fmt,
                     va_list ap)
{
    static const char *names[] = {"error", "warning", "info", "debug"};
    static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
    char msg[1024];
    char line[1200];
    struct timespec ts;
    struct tm tm;
    int n;

    if (level > log_level)
        return;
    n = vsnprintf(msg, sizeof(msg), fmt, ap);
    if (n < 0)
        return;
    if (errnum && (size_t)n < sizeof(msg))
        snprintf(msg + n, sizeof(msg) - n, ": %s", strerror(errnum));
    if (log_to_syslog) {
        syslog(prio[level], "%s", msg);
        return;
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    localtime_r(&ts.tv_sec, &tm);
    n = snprintf(line, sizeof(line),
                 "%04d-%02d-%02dT%02d:%02d:%02d.%03ld %s[%d]: %s: %s\n",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                 tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, log_ident,
                 (int)getpid(), names[level], msg);
    if (n >= (int)sizeof(line)) { /* cut: keep the newline */
        n = sizeof(line) - 1;
        line[n - 1] = '\n';
    }
    if (n > 0 && write(STDERR_FILENO, line, n) < 0) {
        /* nowhere left to report it */
    }
}

#define LOG_FN(name, level, use_errno)                                         \
    void name(const char *fmt, ...)                                            \
    {                                                                          \
        int saved = errno;                                                     \
        va_list ap;                                                            \
        va_start(ap, fmt);                                                     \
        log_emit(level, use_errno ? saved : 0, fmt, ap);                       \
        va_end(ap);                                                            \
        errno = saved;                                                         \
    }

LOG_FN(log_warn, LOG_LEVEL_WARN, 1)
LOG_FN(log_warnx, LOG_LEVEL_WARN, 0)
LOG_FN(log_info, LOG_LEVEL_INFO, 0)
LOG_FN(log_debug, LOG_LEVEL_DEBUG, 0)
