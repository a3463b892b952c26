/* jupyter.c - the login role: a Jupyter server run by peerd's supervisor
 *
 * Pure parts (addresses, URL, config text, command line) and three that
 * touch the system: jupyter_prepare (directories, token, config file),
 * jupyter_find (which server is installed) and jupyter_ping (one HTTP
 * request over a socket, bounded by a deadline).  jupyter_ping starts no
 * process and keeps no state, so the health thread can call it.
 *
 * The token is a secret: buffers that held it are wiped, and it goes
 * only into files of mode 0600, never into an argv or a log line.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "node/jupyter.h"
#include "store/file.h"

#define PING_MAX 16384 /* an answer to /api/status is under 1 KiB */
#define TOKEN_FILE_MAX 4096
#define START_TIMEOUT 60.0 /* 1 s here; a loaded host takes longer */
#define HANG_TIMEOUT 120.0
#define PATH_USER "/usr/local/bin:/usr/bin:/bin"
#define PATH_ROOT "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#define PATHF(dst, ...)                                                        \
    (snprintf(dst, sizeof(dst), __VA_ARGS__) >= (int)sizeof(dst))

static double mono_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- addresses -------------------------------------------------------- */

/* A numeric address, with or without brackets for IPv6, into *ss. */
static int to_sockaddr(const char *addr, int port, struct sockaddr_storage *ss,
                       socklen_t *len)
{
    char host[INET6_ADDRSTRLEN];
    size_t n = addr ? strlen(addr) : 0;
    struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;

    if (n >= 2 && addr[0] == '[' && addr[n - 1] == ']') {
        addr++;
        n -= 2;
    }
    if (n == 0 || n >= sizeof(host) || port < 1 || port > 65535)
        return -1;
    memcpy(host, addr, n);
    host[n] = '\0';
    memset(ss, 0, sizeof(*ss));
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        *len = sizeof(*v4);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        *len = sizeof(*v6);
        return 0;
    }
    return -1;
}

static bool wildcard(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ((const struct sockaddr_in *)ss)->sin_addr.s_addr ==
               htonl(INADDR_ANY);
    return IN6_IS_ADDR_UNSPECIFIED(
        &((const struct sockaddr_in6 *)ss)->sin6_addr);
}

/* Canonical text of the address in ss, without brackets. */
static void host_text(const struct sockaddr_storage *ss, char *out, size_t cap)
{
    const void *a =
        ss->ss_family == AF_INET
            ? (const void *)&((const struct sockaddr_in *)ss)->sin_addr
            : (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr;

    if (!inet_ntop(ss->ss_family, a, out, (socklen_t)cap))
        snprintf(out, cap, "?");
}

/* "1" to "65535", digits only. */
static int parse_port(const char *s)
{
    long v = 0;

    if (!*s || strlen(s) > 5)
        return -1;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        v = v * 10 + (*p - '0');
    }
    return v >= 1 && v <= 65535 ? (int)v : -1;
}

int jupyter_addr_parse(const char *text, struct jupyter_addr *a, err_t *err)
{
    char host[INET6_ADDRSTRLEN + 2];
    const char *colon, *port_text;
    struct sockaddr_storage ss;
    socklen_t len;
    size_t n;

    memset(a, 0, sizeof(*a));
    if (!text || !*text)
        return errprintf(err, "no address: give ADDR:PORT");
    for (const unsigned char *p = (const unsigned char *)text; *p; p++)
        if (*p <= ' ' || *p >= 0x7f)
            return errprintf(err,
                             "'%s' has a space or a character that is not "
                             "printable ASCII: give ADDR:PORT",
                             text);
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (!close || close[1] != ':')
            return errprintf(err,
                             "'%s': an IPv6 address is written "
                             "[ADDR]:PORT",
                             text);
        colon = close + 1;
    } else {
        colon = strrchr(text, ':');
        if (!colon)
            return errprintf(err, "'%s' has no port: give ADDR:PORT", text);
        if (memchr(text, ':', (size_t)(colon - text)))
            return errprintf(err,
                             "'%s': an IPv6 address is written "
                             "[ADDR]:PORT",
                             text);
    }
    port_text = colon + 1;
    if ((a->port = parse_port(port_text)) < 0)
        return errprintf(err, "'%s': the port must be a number from 1 to 65535",
                         text);
    n = (size_t)(colon - text);
    if (n == 0 || n >= sizeof(host))
        return errprintf(err, "'%s': no address before the port", text);
    memcpy(host, text, n);
    host[n] = '\0';
    if (to_sockaddr(host, a->port, &ss, &len) < 0)
        return errprintf(err,
                         "'%s' is not a numeric IPv4 or [IPv6] address "
                         "(names are not taken: give the address to bind)",
                         host);
    if (text[0] != '[' && ss.ss_family == AF_INET6)
        return errprintf(err, "'%s': an IPv6 address is written [ADDR]:PORT",
                         text);
    if (text[0] == '[' && ss.ss_family == AF_INET)
        return errprintf(err, "'%s': brackets are for IPv6 addresses", text);
    a->family = ss.ss_family;
    host_text(&ss, a->host, sizeof(a->host));
    return 0;
}

bool jupyter_token_ok(const char *t)
{
    if (!t || strlen(t) != JUPYTER_TOKEN_LEN)
        return false;
    for (const char *p = t; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

int jupyter_url(const char *addr, int port, const char *token, char *out,
                size_t cap)
{
    struct sockaddr_storage ss;
    char host[INET6_ADDRSTRLEN];
    socklen_t len;
    int n;

    if (to_sockaddr(addr, port, &ss, &len) < 0 || wildcard(&ss) ||
        !jupyter_token_ok(token)) {
        errno = EINVAL;
        return -1;
    }
    host_text(&ss, host, sizeof(host));
    n = snprintf(out, cap,
                 ss.ss_family == AF_INET6 ? "http://[%s]:%d/?token=%s"
                                          : "http://%s:%d/?token=%s",
                 host, port, token);
    if (n < 0 || (size_t)n >= cap) {
        if (cap)
            out[0] = '\0';
        errno = ENOSPC;
        return -1;
    }
    return 0;
}

/* ---- layout ----------------------------------------------------------- */

/* A shell /etc/shells lists, so not nologin or false. */
static bool listed_shell(const char *shell)
{
    char line[PATH_MAX];
    bool found = false;
    FILE *f;

    if (!shell || shell[0] != '/' || !(f = fopen("/etc/shells", "re")))
        return false;
    while (!found && fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = '\0';
        found = strcmp(line, shell) == 0;
    }
    fclose(f);
    return found;
}

/* May uid/gid use dir with these permission bits (the owner's)?
 * Supplementary groups do not count: the supervisor drops them.
 */
static bool may(const struct stat *st, uid_t uid, gid_t gid, mode_t user_bits)
{
    if (uid == 0)
        return true;
    if (st->st_uid == uid)
        return (st->st_mode & user_bits) == user_bits;
    if (st->st_gid == gid)
        return (st->st_mode & (user_bits >> 3)) == (user_bits >> 3);
    return (st->st_mode & (user_bits >> 6)) == (user_bits >> 6);
}

/* Can uid/gid search every directory from / down to dir?  A 0700 dir
 * above the data dir would stop Jupyter with a traceback; say so plainly.
 */
static int reachable(const char *dir, uid_t uid, gid_t gid, const char *user,
                     err_t *err)
{
    char prefix[PATH_MAX];
    size_t n = strlen(dir);
    struct stat st;

    if (n >= sizeof(prefix))
        return errprintf(err, "path too long: %s", dir);
    for (size_t i = 0; i <= n; i++) {
        if (i < n && dir[i] != '/')
            continue;
        snprintf(prefix, sizeof(prefix), "%.*s", i ? (int)i : 1, dir);
        if (stat(prefix, &st) < 0)
            return errprintf_errno(err, "cannot stat %s", prefix);
        if (!may(&st, uid, gid, S_IXUSR))
            return errprintf(err,
                             "user %s cannot reach %s: %s has mode %04o "
                             "(owner %d); make it searchable (chmod o+x)",
                             user, dir, prefix, (int)(st.st_mode & 07777),
                             (int)st.st_uid);
    }
    return 0;
}

static bool usable_home(const char *home, uid_t uid, gid_t gid)
{
    struct stat st;

    if (!home || home[0] != '/' || strcmp(home, "/") == 0 ||
        stat(home, &st) < 0 || !S_ISDIR(st.st_mode) ||
        !may(&st, uid, gid, S_IWUSR | S_IXUSR))
        return false;
    return reachable(home, uid, gid, "", NULL) == 0;
}

int jupyter_layout_init(const char *data_dir, const char *user,
                        struct jupyter_layout *l, err_t *err)
{
    struct passwd pw, *found = NULL;
    char pwbuf[4096];
    int e;

    memset(l, 0, sizeof(*l));
    if (!user || !*user)
        return errprintf(err, "Jupyter: no user to run as");
    e = getpwnam_r(user, &pw, pwbuf, sizeof(pwbuf), &found);
    if (!found) {
        errno = e ? e : ENOENT;
        return errprintf(err, "Jupyter: there is no user '%s'", user);
    }
    if (PATHF(l->user, "%s", pw.pw_name))
        return errprintf(err, "Jupyter: user name too long: %s", user);
    if (PATHF(l->dir, "%s/jupyter", data_dir) ||
        PATHF(l->token, "%s/jupyter/token", data_dir) ||
        PATHF(l->config, "%s/jupyter/config.json", data_dir) ||
        PATHF(l->runtime, "%s/jupyter/runtime", data_dir) ||
        PATHF(l->log_dir, "%s/log", data_dir) ||
        PATHF(l->log, "%s/log/jupyter.log", data_dir))
        return errprintf(err, "data dir path too long: %s", data_dir);
    l->uid = pw.pw_uid;
    l->gid = pw.pw_gid;
    if (usable_home(pw.pw_dir, l->uid, l->gid) &&
        !PATHF(l->work, "%s", pw.pw_dir))
        l->work_is_home = true;
    else if (PATHF(l->work, "%s/jupyter/work", data_dir))
        return errprintf(err, "data dir path too long: %s", data_dir);
    if (listed_shell(pw.pw_shell))
        snprintf(l->shell, sizeof(l->shell), "%s", pw.pw_shell);
    else
        snprintf(l->shell, sizeof(l->shell), "%s",
                 access("/bin/bash", X_OK) == 0 ? "/bin/bash" : "/bin/sh");
    return 0;
}

int jupyter_prepare(const char *data_dir, const char *user,
                    struct jupyter_layout *l, char *token, err_t *err)
{
    if (jupyter_layout_init(data_dir, user, l, err) < 0)
        return -1;
    /* peerd's own (root's): geteuid() lets the tests run as anybody */
    if (file_ensure_dir(l->log_dir, 0755, geteuid(), (gid_t)-1, err) < 0 ||
        file_ensure_dir(l->dir, 0755, geteuid(), (gid_t)-1, err) < 0 ||
        file_ensure_dir(l->runtime, 0700, l->uid, l->gid, err) < 0)
        return -1;
    if (!l->work_is_home &&
        file_ensure_dir(l->work, 0700, l->uid, l->gid, err) < 0)
        return -1;
    if (reachable(l->runtime, l->uid, l->gid, l->user, err) < 0 ||
        reachable(l->work, l->uid, l->gid, l->user, err) < 0)
        return -1;
    if (jupyter_token_load_or_create(l->token, token, err) < 0)
        return -1;
    return jupyter_write_config(l, token, err);
}

/* ---- token and config ------------------------------------------------- */

int jupyter_token_load_or_create(const char *path, char *token, err_t *err)
{
    unsigned char raw[JUPYTER_TOKEN_LEN / 2];
    char line[JUPYTER_TOKEN_LEN + 2];
    err_t why = {{0}};
    size_t len = 0;
    char *text;
    int rc;

    token[0] = '\0';
    text = file_read(path, TOKEN_FILE_MAX, &len, &why);
    if (text) {
        size_t n = len && text[len - 1] == '\n' ? len - 1 : len;
        bool ok = n == JUPYTER_TOKEN_LEN && memchr(text, '\0', n) == NULL;
        if (ok) {
            memcpy(token, text, n);
            token[n] = '\0';
            ok = jupyter_token_ok(token);
        }
        sodium_memzero(text, len);
        free(text);
        if (!ok) {
            sodium_memzero(token, JUPYTER_TOKEN_LEN + 1);
            token[0] = '\0';
            errno = EBADMSG;
            return errprintf(err,
                             "%s is corrupt (not %d lowercase hex digits): "
                             "remove it, and a new token is made",
                             path, JUPYTER_TOKEN_LEN);
        }
        /* forced like the directories' modes: the token is a password */
        if (chmod(path, 0600) < 0)
            return errprintf_errno(err, "cannot chmod %s", path);
        return 0;
    }
    if (errno == EFBIG) {
        errno = EBADMSG;
        return errprintf(err,
                         "%s is corrupt (far longer than a token): remove "
                         "it, and a new token is made",
                         path);
    }
    if (errno != ENOENT)
        return errprintf(err, "%s", why.text);
    randombytes_buf(raw, sizeof(raw));
    sodium_bin2hex(token, JUPYTER_TOKEN_LEN + 1, raw, sizeof(raw));
    sodium_memzero(raw, sizeof(raw));
    snprintf(line, sizeof(line), "%s\n", token);
    rc = file_write_atomic(path, line, strlen(line), 0600, (uid_t)-1, (gid_t)-1,
                           err);
    sodium_memzero(line, sizeof(line));
    if (rc < 0) {
        sodium_memzero(token, JUPYTER_TOKEN_LEN + 1);
        token[0] = '\0';
    }
    return rc;
}

char *jupyter_render_config(const struct jupyter_layout *l, const char *token,
                            err_t *err)
{
    json_t *doc;
    char *text;

    if (!jupyter_token_ok(token)) {
        errprintf(err, "Jupyter: the token is not %d lowercase hex digits",
                  JUPYTER_TOKEN_LEN);
        return NULL;
    }
    /* Notebook 6 reads NotebookApp and ignores ServerApp; jupyter_server
     * (JupyterLab) the other way round.  The quit button would stop the
     * server for everyone until the supervisor restarts it.
     */
    doc = json_pack("{s:{s:s, s:s, s:b}, s:{s:s, s:s, s:b}}", "NotebookApp",
                    "token", token, "notebook_dir", l->work, "quit_button", 0,
                    "ServerApp", "token", token, "root_dir", l->work,
                    "quit_button", 0);
    if (!doc) {
        errprintf(err,
                  "Jupyter: cannot write the config: the work dir '%s' "
                  "is not UTF-8",
                  l->work);
        return NULL;
    }
    text = json_dumps(doc, JSON_INDENT(2));
    json_decref(doc); /* frees jansson's copy of the token unwiped */
    if (!text)
        errprintf(err, "Jupyter: cannot write the config: out of memory");
    return text;
}

int jupyter_write_config(const struct jupyter_layout *l, const char *token,
                         err_t *err)
{
    char *text = jupyter_render_config(l, token, err);
    size_t len;
    int rc;

    if (!text)
        return -1;
    len = strlen(text);
    rc = file_write_atomic(l->config, text, len, 0600, l->uid, l->gid, err);
    sodium_memzero(text, len);
    free(text);
    return rc;
}

/* ---- command line and service ----------------------------------------- */

int jupyter_find(const char *lab, const char *notebook, char *out,
                 size_t outlen, enum jupyter_kind *kind, err_t *err)
{
    if (!lab)
        lab = "jupyter-lab";
    if (!notebook)
        notebook = "jupyter-notebook";
    if (supervisor_resolve_binary(lab, out, outlen) == 0) {
        *kind = JUPYTER_LAB;
        return 0;
    }
    if (supervisor_resolve_binary(notebook, out, outlen) == 0) {
        *kind = JUPYTER_NOTEBOOK;
        return 0;
    }
    out[0] = '\0';
    return errprintf(err,
                     "neither %s nor %s is installed (looked in PATH, "
                     "/usr/sbin and /usr/bin): apt-get install "
                     "jupyter-notebook",
                     lab, notebook);
}

int jupyter_argv(struct svc_argv *a, const struct jupyter_layout *l,
                 const char *bin, const struct jupyter_addr *addr,
                 const char *slurm_conf, err_t *err)
{
    bool root = l->uid == 0;
    int bad = 0, n = 0;

    memset(a, 0, sizeof(*a));
    if (!bin || bin[0] != '/')
        return errprintf(err, "Jupyter: the server's path must be absolute");
    /* env takes its first argument with '=' for a variable, not the
     * command, and a value cannot hold a newline in any useful way
     */
    if (strchr(bin, '=') || strchr(l->work, '\n') ||
        (slurm_conf && (!*slurm_conf || strchr(slurm_conf, '\n'))))
        return errprintf(err, "Jupyter: a path has '=' or a newline in it");
    if (addr->port < 1 || addr->port > 65535 || !addr->host[0])
        return errprintf(err, "Jupyter: no address to bind");
    const char *v[] = {
        "/usr/bin/env",
        "-i", /* nothing of peerd's environment: the user's own */
        svc_arg(a, &bad, "--chdir=%s", l->work), /* the terminals' cwd */
        svc_arg(a, &bad, "HOME=%s", l->work),
        svc_arg(a, &bad, "USER=%s", l->user),
        svc_arg(a, &bad, "LOGNAME=%s", l->user),
        svc_arg(a, &bad, "SHELL=%s", l->shell),
        root ? "PATH=" PATH_ROOT : "PATH=" PATH_USER,
        "LANG=C.UTF-8",
        svc_arg(a, &bad, "JUPYTER_RUNTIME_DIR=%s", l->runtime),
        slurm_conf ? svc_arg(a, &bad, "SLURM_CONF=%s", slurm_conf) : NULL,
        svc_arg(a, &bad, "%s", bin),
        svc_arg(a, &bad, "--config=%s", l->config),
        "--no-browser",
        svc_arg(a, &bad, "--ip=%s", addr->host),
        svc_arg(a, &bad, "--port=%d", addr->port),
        "--port-retries=0", /* a taken port is an error, not port + 1 */
        root ? "--allow-root" : NULL,
    };
    if (bad)
        return errprintf(err, "Jupyter: command line too long");
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
        if (v[i])
            a->argv[n++] = v[i];
    a->argv[n] = NULL;
    return 0;
}

int jupyter_add_service(supervisor_t *sv, const struct jupyter_layout *l,
                        const char *bin, const struct jupyter_addr *addr,
                        const char *slurm_conf, bool enabled, int depends_on,
                        err_t *err)
{
    struct svc_argv *a = malloc(sizeof(*a));
    enum jupyter_kind kind;
    char path[PATH_MAX];
    int idx = -1;

    if (!a)
        return errprintf_errno(err, "cannot add the jupyter service");
    if (!bin) {
        if (jupyter_find(NULL, NULL, path, sizeof(path), &kind, err) < 0)
            goto out;
        bin = path;
    }
    if (jupyter_argv(a, l, bin, addr, slurm_conf, err) < 0)
        goto out;
    struct svc_spec spec = {
        .name = JUPYTER_SERVICE,
        .argv = a->argv,
        .log_path = l->log,
        .uid = l->uid,
        .gid = l->gid,
        .depends_on = depends_on,
        .start_timeout = START_TIMEOUT,
        .hang_timeout = HANG_TIMEOUT,
        .disabled = !enabled,
    };
    if ((idx = supervisor_add(sv, &spec)) < 0)
        errprintf_errno(err, "cannot add the jupyter service");
out:
    free(a);
    return idx;
}

/* ---- health ----------------------------------------------------------- */

/* What the server answered, parsed from buf (NUL-terminated). */
struct answer {
    int status;
    char reason[64];
    size_t head; /* bytes of the status line and headers, blank line too */
    long length; /* Content-Length, or -1 */
    bool chunked;
};

/* The header named name (with its ':') in the header block, or NULL. */
static const char *header(const char *buf, size_t head, const char *name)
{
    size_t n = strlen(name);

    for (const char *p = strstr(buf, "\r\n"); p && (size_t)(p - buf) < head;
         p = strstr(p + 2, "\r\n"))
        if (strncasecmp(p + 2, name, n) == 0)
            return p + 2 + n;
    return NULL;
}

/* 1 when the status line and headers are all in, 0 when more is needed,
 * -1 when they are not HTTP.
 */
static int parse_head(const char *buf, size_t got, struct answer *an)
{
    const char *end = strstr(buf, "\r\n\r\n"), *v;
    size_t k = 0;

    if (got >= 5 && strncmp(buf, "HTTP/", 5) != 0)
        return -1;
    if (!end)
        return got > PING_MAX / 2 ? -1 : 0;
    an->head = (size_t)(end - buf) + 4;
    if (strncmp(buf, "HTTP/1.", 7) != 0 || buf[7] < '0' || buf[7] > '9' ||
        buf[8] != ' ')
        return -1;
    an->status = 0;
    for (int i = 9; i < 12; i++) {
        if (buf[i] < '0' || buf[i] > '9')
            return -1;
        an->status = an->status * 10 + (buf[i] - '0');
    }
    if (buf[12] != ' ' && buf[12] != '\r')
        return -1;
    for (const char *p = buf + 13;
         buf[12] == ' ' && *p != '\r' && k < sizeof(an->reason) - 1; p++)
        an->reason[k++] = *p >= ' ' && *p < 0x7f ? *p : '?';
    an->reason[k] = '\0';
    an->length = -1;
    if ((v = header(buf, an->head, "Content-Length:"))) {
        char *stop;
        v += strspn(v, " \t");
        if (*v < '0' || *v > '9')
            return -1;
        errno = 0;
        an->length = strtol(v, &stop, 10);
        if (errno || (*stop != '\r' && *stop != ' ' && *stop != '\t'))
            return -1;
    }
    if ((v = header(buf, an->head, "Transfer-Encoding:")))
        an->chunked = strncasecmp(v + strspn(v, " \t"), "chunked", 7) == 0;
    return 1;
}

/* Wait for fd to be ready for events before the deadline: 1 ready, 0
 * deadline passed, -1 error.
 */
static int wait_fd(int fd, short events, double deadline)
{
    for (;;) {
        double left = deadline - mono_now();
        struct pollfd p = {fd, events, 0};
        int r;

        if (left <= 0)
            return 0;
        r = poll(&p, 1, (int)(left * 1000) + 1);
        if (r > 0)
            return 1;
        if (r < 0 && errno != EINTR)
            return -1;
    }
}

/* Judge a complete answer. */
static int judge(const char *where, const char *buf, size_t got,
                 const struct answer *an, struct jupyter_status *st, err_t *err)
{
    json_error_t jerr;
    json_t *doc, *v;

    if (an->status == 403)
        return errprintf(err,
                         "Jupyter at %s refused the token (403 %s): another "
                         "server on that port, or another token",
                         where, an->reason);
    if (an->status != 200)
        return errprintf(err, "Jupyter at %s answered %d %s", where, an->status,
                         an->reason);
    doc = json_loadb(buf + an->head, got - an->head, 0, &jerr);
    if (!doc || !json_is_object(doc) || !json_object_get(doc, "started")) {
        json_decref(doc);
        return errprintf(err,
                         "%s answered 200 but not with Jupyter's status "
                         "(a JSON object with \"started\")",
                         where);
    }
    if (st) {
        v = json_object_get(doc, "kernels");
        st->kernels = json_is_integer(v) ? (int)json_integer_value(v) : 0;
        v = json_object_get(doc, "connections");
        st->connections = json_is_integer(v) ? (int)json_integer_value(v) : 0;
    }
    json_decref(doc);
    return 0;
}

int jupyter_ping(const char *addr, int port, const char *token, double timeout,
                 struct jupyter_status *st, err_t *err)
{
    struct sockaddr_storage ss;
    struct answer an = {0};
    char host[INET6_ADDRSTRLEN], where[INET6_ADDRSTRLEN + 16], req[512];
    char *buf = NULL;
    double deadline = mono_now() + timeout;
    size_t got = 0, sent = 0, reqlen;
    socklen_t sslen;
    int fd = -1, rc = -1, r, e;
    bool have_head = false;

    if (st)
        memset(st, 0, sizeof(*st));
    if (to_sockaddr(addr, port, &ss, &sslen) < 0)
        return errprintf(err,
                         "Jupyter: '%s' port %d is not a numeric address "
                         "and port",
                         addr ? addr : "", port);
    if (!jupyter_token_ok(token))
        return errprintf(err,
                         "Jupyter: the token is not %d lowercase hex "
                         "digits",
                         JUPYTER_TOKEN_LEN);
    if (wildcard(&ss)) { /* bound to all addresses: ask the loopback one */
        if (ss.ss_family == AF_INET)
            ((struct sockaddr_in *)&ss)->sin_addr.s_addr =
                htonl(INADDR_LOOPBACK);
        else
            ((struct sockaddr_in6 *)&ss)->sin6_addr = in6addr_loopback;
    }
    host_text(&ss, host, sizeof(host));
    snprintf(where, sizeof(where),
             ss.ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d", host, port);
    /* The Host header must be an address: Jupyter bound to a loopback
     * address refuses other names (DNS rebinding protection).
     */
    reqlen = (size_t)snprintf(req, sizeof(req),
                              "GET /api/status HTTP/1.1\r\n"
                              "Host: %s\r\n"
                              "Authorization: token %s\r\n"
                              "User-Agent: peerd\r\n"
                              "Accept: application/json\r\n"
                              "Connection: close\r\n\r\n",
                              where, token);
    if (!(buf = malloc(PING_MAX + 1))) {
        errprintf_errno(err, "Jupyter check");
        goto out;
    }
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        errprintf_errno(err, "Jupyter check: socket");
        goto out;
    }
    if (connect(fd, (struct sockaddr *)&ss, sslen) < 0) {
        if (errno != EINPROGRESS) {
            errprintf_errno(err, "Jupyter at %s: cannot connect", where);
            goto out;
        }
        if ((r = wait_fd(fd, POLLOUT, deadline)) <= 0) {
            if (r == 0)
                errprintf(err, "Jupyter at %s: no connection within %.1f s",
                          where, timeout);
            else
                errprintf_errno(err, "Jupyter at %s: poll", where);
            goto out;
        }
        socklen_t elen = sizeof(e);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &elen) < 0)
            e = errno;
        if (e) {
            errno = e;
            errprintf_errno(err, "Jupyter at %s: cannot connect", where);
            goto out;
        }
    }
    while (sent < reqlen) {
        ssize_t n = send(fd, req + sent, reqlen - sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            if ((r = wait_fd(fd, POLLOUT, deadline)) <= 0) {
                errprintf(err, "Jupyter at %s: no answer within %.1f s", where,
                          timeout);
                goto out;
            }
            continue;
        }
        if (n < 0) {
            errprintf_errno(err, "Jupyter at %s: send", where);
            goto out;
        }
        sent += (size_t)n;
    }
    for (;;) {
        if ((r = wait_fd(fd, POLLIN, deadline)) <= 0) {
            if (r == 0)
                errprintf(err, "Jupyter at %s: no answer within %.1f s", where,
                          timeout);
            else
                errprintf_errno(err, "Jupyter at %s: poll", where);
            goto out;
        }
        ssize_t n = recv(fd, buf + got, PING_MAX - got, 0);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n < 0) {
            errprintf_errno(err, "Jupyter at %s: the connection failed", where);
            goto out;
        }
        got += (size_t)n;
        buf[got] = '\0';
        if (!have_head) {
            if (n > 0 && memchr(buf + got - n, '\0', (size_t)n)) {
                errprintf(err, "%s answered something that is not HTTP", where);
                goto out;
            }
            if ((r = parse_head(buf, got, &an)) < 0) {
                errprintf(err, "%s answered something that is not HTTP", where);
                goto out;
            }
            have_head = r == 1;
            if (have_head && an.chunked) {
                errprintf(err, "%s answered in chunks, which Jupyter does not",
                          where);
                goto out;
            }
        }
        if (have_head && an.length >= 0 && got - an.head >= (size_t)an.length) {
            got = an.head + (size_t)an.length; /* ignore anything after */
            break;
        }
        if (n == 0) {
            if (have_head && an.length < 0)
                break; /* the body ends with the connection */
            errprintf(err, "%s closed the connection before a complete answer",
                      where);
            goto out;
        }
        if (got == PING_MAX) {
            errprintf(err, "%s answered more than %d bytes", where, PING_MAX);
            goto out;
        }
    }
    rc = judge(where, buf, got, &an, st, err);
out:
    if (fd >= 0)
        close(fd);
    free(buf);
    sodium_memzero(req, sizeof(req));
    return rc;
}
