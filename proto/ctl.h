/* ctl.h - the control protocol between peerctl and its local peer
 *
 * One ZeroMQ frame per message (spec: doc/protocol.md):
 *   frame   = signature version kind body
 *   signature = "PDCT"  (4 octets)
 *   version   = %x01    (1 octet)
 *   kind      = %x01 request / %x02 reply (1 octet)
 *   body      = a JSON object, UTF-8, at most CTL_MAX_BODY octets
 * A request body is {"cmd": STRING, "args": OBJECT?}; a reply body is
 * {"ok": true, "result": VALUE} or {"ok": false, "error": STRING}.
 * ctl_decode() checks all of that; anything else is malformed.
 */
#ifndef PEERD_CTL_H
#define PEERD_CTL_H

#include <stddef.h>

#include <jansson.h>

#include "proto/err.h"

#define CTL_SIGNATURE "PDCT"
#define CTL_VERSION 1
#define CTL_HEADER_LEN 6
#define CTL_MAX_BODY (1024 * 1024)

enum ctl_kind {
    CTL_REQUEST = 1,
    CTL_REPLY = 2,
};

/* Encode body (a JSON object) as a frame of the given kind.  *out is
 * malloc'd, *len bytes.  Returns 0 or -1 with err filled.
 */
int ctl_encode(enum ctl_kind kind, const json_t *body, unsigned char **out,
               size_t *len, err_t *err);

/* Decode a frame; it must be of kind expect.  Returns a new reference to
 * the validated body, or NULL with err filled (errno EPROTO).
 */
json_t *ctl_decode(const void *buf, size_t len, enum ctl_kind expect,
                   err_t *err);

/* Convenience: build request / reply bodies (new references). */
json_t *ctl_request(const char *cmd, json_t *args_stolen);
json_t *ctl_reply_ok(json_t *result_stolen);
json_t *ctl_reply_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

#endif
