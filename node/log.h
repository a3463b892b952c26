/* log.h - the one logging API of node/
 *
 * To stderr (with a timestamp) by default, to syslog after log_syslog().
 * log_warn appends strerror(errno).  Only node/ logs; proto/ and store/
 * return errors instead.
 */
#ifndef PEERD_LOG_H
#define PEERD_LOG_H

#include <stdbool.h>

enum log_level {
    LOG_LEVEL_ERR = 0,
    LOG_LEVEL_WARN,
    LOG_LEVEL_INFO,
    LOG_LEVEL_DEBUG,
};

void log_init(const char *ident, enum log_level level, bool use_syslog);
void log_set_level(enum log_level level);

void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
