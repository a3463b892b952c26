/* ctl.c - the control protocol between peerctl and its local peer
 *
 * The decoder trusts nothing: length, signature, version and kind are
 * checked before the body is parsed, the body must be valid UTF-8 JSON
 * without NUL bytes, and its shape is validated.  Every failure leaves
 * through the single malformed: exit.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/ctl.h"

int ctl_encode(enum ctl_kind kind, const json_t *body, unsigned char **out,
               size_t *len, err_t *err)
{
    char *text;
    size_t n;
    unsigned char *buf;

    if (!json_is_object(body))
        return errprintf(err, "control message body must be an object");
    text = json_dumps(body, JSON_COMPACT);
    if (!text)
        return errprintf(err, "cannot encode control message");
    n = strlen(text);
    if (n > CTL_MAX_BODY) {
        free(text);
        return errprintf(err, "control message too large (%zu bytes)", n);
    }
    buf = malloc(CTL_HEADER_LEN + n);
    if (!buf) {
        free(text);
        return errprintf_errno(err, "cannot encode control message");
    }
    memcpy(buf, CTL_SIGNATURE, 4);
    buf[4] = CTL_VERSION;
    buf[5] = (unsigned char)kind;
    memcpy(buf + CTL_HEADER_LEN, text, n);
    free(text);
    *out = buf;
    *len = CTL_HEADER_LEN + n;
    return 0;
}

json_t *ctl_decode(const void *buf, size_t len, enum ctl_kind expect,
                   err_t *err)
{
    const unsigned char *p = buf;
    json_error_t jerr;
    json_t *body = NULL;
    json_t *v;
    const char *why;

    if (len < CTL_HEADER_LEN) {
        why = "frame shorter than its header";
        goto malformed;
    }
    if (memcmp(p, CTL_SIGNATURE, 4) != 0) {
        why = "bad signature";
        goto malformed;
    }
    if (p[4] != CTL_VERSION) {
        why = "unsupported version";
        goto malformed;
    }
    if (p[5] != (unsigned char)expect) {
        why = "unexpected message kind";
        goto malformed;
    }
    if (len - CTL_HEADER_LEN > CTL_MAX_BODY) {
        why = "body too large";
        goto malformed;
    }
    if (memchr(p + CTL_HEADER_LEN, '\0', len - CTL_HEADER_LEN)) {
        why = "NUL byte in body";
        goto malformed;
    }
    body = json_loadb((const char *)p + CTL_HEADER_LEN, len - CTL_HEADER_LEN,
                      JSON_REJECT_DUPLICATES, &jerr);
    if (!body) {
        why = "body is not JSON";
        goto malformed;
    }
    if (!json_is_object(body)) {
        why = "body is not a JSON object";
        goto malformed;
    }
    if (expect == CTL_REQUEST) {
        v = json_object_get(body, "cmd");
        if (!json_is_string(v) || json_string_length(v) == 0) {
            why = "request has no \"cmd\" string";
            goto malformed;
        }
        v = json_object_get(body, "args");
        if (v && !json_is_object(v)) {
            why = "request \"args\" is not an object";
            goto malformed;
        }
    } else {
        v = json_object_get(body, "ok");
        if (!json_is_boolean(v)) {
            why = "reply has no \"ok\" boolean";
            goto malformed;
        }
        if (json_is_false(v) &&
            !json_is_string(json_object_get(body, "error"))) {
            why = "error reply has no \"error\" string";
            goto malformed;
        }
        if (json_is_true(v) && !json_object_get(body, "result")) {
            why = "reply has no \"result\"";
            goto malformed;
        }
    }
    return body;
malformed:
    json_decref(body);
    errno = EPROTO;
    errprintf(err, "malformed control message: %s", why);
    return NULL;
}

json_t *ctl_request(const char *cmd, json_t *args_stolen)
{
    json_t *o = json_pack("{s:s}", "cmd", cmd);

    if (o && args_stolen)
        json_object_set_new(o, "args", args_stolen);
    else
        json_decref(args_stolen);
    return o;
}

json_t *ctl_reply_ok(json_t *result_stolen)
{
    json_t *o = json_object();

    json_object_set_new(o, "ok", json_true());
    json_object_set_new(o, "result",
                        result_stolen ? result_stolen : json_object());
    return o;
}

/* Make text valid UTF-8 in place: bytes that do not form a complete,
 * well-formed sequence (a message cut in the middle of a character, or
 * bytes from a client that are not UTF-8 at all) become '?'.
 */
static void utf8_scrub(char *text)
{
    unsigned char *p = (unsigned char *)text;

    while (*p) {
        int n = *p < 0x80             ? 1
                : (*p & 0xe0) == 0xc0 ? 2
                : (*p & 0xf0) == 0xe0 ? 3
                : (*p & 0xf8) == 0xf0 ? 4
                                      : 0;
        int i = 1;
        while (n > 1 && i < n && (p[i] & 0xc0) == 0x80)
            i++;
        if (n == 0 || i < n) {
            *p++ = '?';
            continue;
        }
        p += n;
    }
}

json_t *ctl_reply_error(const char *fmt, ...)
{
    char text[512];
    va_list ap;
    json_t *o;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    if ((o = json_pack("{s:b,s:s}", "ok", 0, "error", text)))
        return o;
    utf8_scrub(text);
    return json_pack("{s:b,s:s}", "ok", 0, "error", text);
}
