/* jupyter.h - the login role: a Jupyter server run by peerd's supervisor
 *
 * A host with the login role runs JupyterLab (jupyter-lab) where it is
 * installed, else Debian's Jupyter Notebook 6 (jupyter-notebook), bound
 * to the address and port the admin gave, as one user.  People open it
 * with a token and run Slurm's commands from its terminals.
 *
 * Layout, in the peer's data dir:
 *   DATA/jupyter/              0755 root  peerd writes here, nobody else
 *   DATA/jupyter/token         0600 root  the token, 48 hex digits; kept
 *                                         across restarts
 *   DATA/jupyter/config.json   0600 user  token and notebook dir, read by
 *                                         Jupyter (the token never goes on
 *                                         a command line, where ps shows it)
 *   DATA/jupyter/runtime/      0700 user  JUPYTER_RUNTIME_DIR: cookie
 *                                         secret, nbserver-PID.json (which
 *                                         holds the token, mode 0644)
 *   DATA/jupyter/work/         0700 user  the notebook dir and HOME, when
 *                                         the user has no writable home
 *   DATA/log/jupyter.log       0600 root  the server's output (supervisor)
 * DATA/jupyter is root's so that peerd, as root, never writes into a
 * directory the user could fill with symbolic links; Jupyter loads every
 * config.py and config.json beside the file it is given, so nobody but
 * root may add one there.
 *
 * The supervisor passes peerd's environment on and cannot set one, and
 * Jupyter needs a HOME its user can write (it creates its runtime dir
 * under HOME before it reads any config; the runtime dir is settable
 * only from the environment).  The service therefore runs
 *   /usr/bin/env -i --chdir=WORK HOME=... USER=... LOGNAME=... SHELL=...
 *       PATH=... LANG=C.UTF-8 JUPYTER_RUNTIME_DIR=... [SLURM_CONF=...]
 *       BIN --config=DATA/jupyter/config.json --no-browser --ip=ADDR
 *       --port=PORT --port-retries=0 [--allow-root]
 * (env execs, so the supervised pid is Jupyter's).  Nothing secret is in
 * that environment.  Terminals are login shells (bash -l) in WORK.
 *
 * Addresses are numeric (IPv4, or IPv6 in brackets): a name could
 * resolve to several addresses or change, and the health check must not
 * wait on DNS.  0.0.0.0 binds every IPv4 address, [::] every IPv6
 * address only (Tornado sets IPV6_V6ONLY).
 */
#ifndef PEERD_JUPYTER_H
#define PEERD_JUPYTER_H

#include <limits.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "node/supervise.h"
#include "proto/err.h"

#define JUPYTER_TOKEN_LEN 48 /* hex digits: 24 random bytes */
#define JUPYTER_SERVICE "jupyter"

enum jupyter_kind {
    JUPYTER_LAB,      /* jupyter-lab (jupyter_server) */
    JUPYTER_NOTEBOOK, /* jupyter-notebook 6 (Debian 12) */
};

/* "ADDR:PORT", parsed. */
struct jupyter_addr {
    int family;                  /* AF_INET or AF_INET6 */
    char host[INET6_ADDRSTRLEN]; /* canonical, numeric, no brackets */
    int port;                    /* 1-65535 */
};

struct jupyter_layout {
    char dir[PATH_MAX];     /* DATA/jupyter */
    char token[PATH_MAX];   /* DATA/jupyter/token */
    char config[PATH_MAX];  /* DATA/jupyter/config.json */
    char runtime[PATH_MAX]; /* DATA/jupyter/runtime */
    char work[PATH_MAX];    /* notebook dir, HOME and terminals' cwd */
    char log_dir[PATH_MAX]; /* DATA/log */
    char log[PATH_MAX];     /* DATA/log/jupyter.log */
    char user[64];
    char shell[PATH_MAX]; /* SHELL: the user's, if /etc/shells lists it */
    uid_t uid;
    gid_t gid;
    bool work_is_home; /* work is the user's own home */
};

/* What GET /api/status said. */
struct jupyter_status {
    int kernels;     /* running kernels */
    int connections; /* open kernel connections (browsers) */
};

/* Parse "ADDR:PORT" or "[IPV6]:PORT" (numeric addresses only, port 1 to
 * 65535, nothing else: no names, spaces or zone ids).  Returns 0, or -1
 * with err saying what is wrong.
 */
int jupyter_addr_parse(const char *text, struct jupyter_addr *a, err_t *err);

/* Fill l with the paths under data_dir and user's ids and shell.  The
 * work dir is the user's home if it is a directory the user can reach
 * and write, else DATA/jupyter/work.  Creates nothing.  Returns 0, or -1
 * with err (no such user, a path too long).
 */
int jupyter_layout_init(const char *data_dir, const char *user,
                        struct jupyter_layout *l, err_t *err);

/* jupyter_layout_init, then create the directories with their modes and
 * owners (forced at every call), check that the user can reach them,
 * load or make the token into token (JUPYTER_TOKEN_LEN + NUL) and
 * write the config file.  Must run as root unless user is the caller.
 * Returns 0, or -1 with err.
 */
int jupyter_prepare(const char *data_dir, const char *user,
                    struct jupyter_layout *l, char *token, err_t *err);

/* Is t JUPYTER_TOKEN_LEN lowercase hex digits? */
bool jupyter_token_ok(const char *t);

/* Read the token in path into token (JUPYTER_TOKEN_LEN + NUL), or, if
 * there is no such file, make one (libsodium's randombytes_buf;
 * sodium_init() must have been called) and write it, 0600.  A file that
 * holds anything but the token and an optional newline is refused
 * (errno EBADMSG), never replaced: a token people use must not change
 * behind their back.  Returns 0 or -1 with err.
 */
int jupyter_token_load_or_create(const char *path, char *token, err_t *err);

/* The config file's text (JSON): the token and the notebook dir for
 * both NotebookApp (notebook 6) and ServerApp (jupyter_server, that is
 * JupyterLab), without the quit button.  Returns a malloc'd string (the
 * caller wipes and frees it) or NULL with err (a bad token, a work dir
 * that is not UTF-8).
 */
char *jupyter_render_config(const struct jupyter_layout *l, const char *token,
                            err_t *err);

/* Write l->config (0600, owned by the user), atomically.  Returns 0 or
 * -1 with err.
 */
int jupyter_write_config(const struct jupyter_layout *l, const char *token,
                         err_t *err);

/* Pick the server: lab (NULL: "jupyter-lab") if it resolves, else
 * notebook (NULL: "jupyter-notebook"); names are looked up as the
 * supervisor does (PATH, /usr/sbin, /usr/bin).  Fills out with the path
 * and *kind.  Returns 0, or -1 with err when neither is installed.
 */
int jupyter_find(const char *lab, const char *notebook, char *out,
                 size_t outlen, enum jupyter_kind *kind, err_t *err);

/* The command line (see above).  bin: the server's path (from
 * jupyter_find); slurm_conf: SLURM_CONF for the terminals and kernels,
 * or NULL for Slurm's default.  --allow-root only when the user is root.
 * Returns 0 or -1 with err (a path with '=' would be read by env as a
 * variable; too long).
 */
int jupyter_argv(struct svc_argv *a, const struct jupyter_layout *l,
                 const char *bin, const struct jupyter_addr *addr,
                 const char *slurm_conf, err_t *err);

/* Register the service "jupyter" (run as l's user, log l->log), enabled
 * or not (supervisor_enable() starts a disabled one), depending on
 * depends_on (a service's index, or -1).  bin NULL: jupyter_find().
 * Returns the service's index, or -1 with err.
 */
int jupyter_add_service(supervisor_t *sv, const struct jupyter_layout *l,
                        const char *bin, const struct jupyter_addr *addr,
                        const char *slurm_conf, bool enabled, int depends_on,
                        err_t *err);

/* Health: GET /api/status over HTTP/1.1 with "Authorization: token T"
 * on a TCP connection to addr (numeric; brackets optional; 0.0.0.0 and
 * :: mean the loopback address), port, all within timeout seconds.  OK
 * is a 200 with a JSON object; st (may be NULL) gets its counts.
 * Returns 0, or -1 with err: refused, no answer within the timeout, the
 * token refused (403), another status, or an answer that is not
 * Jupyter's.  No child process, no signal, no shared state: safe from
 * any thread.
 */
int jupyter_ping(const char *addr, int port, const char *token, double timeout,
                 struct jupyter_status *st, err_t *err);

/* "http://ADDR:PORT/?token=TOKEN" ("[ADDR]" for IPv6) into out.  addr
 * is what people reach, so not a wildcard: give the host's address for
 * a server bound to 0.0.0.0.  Returns 0, or -1 with errno EINVAL (not a
 * numeric address, a bad port or token) or ENOSPC (out too small).
 */
int jupyter_url(const char *addr, int port, const char *token, char *out,
                size_t cap);

#endif
