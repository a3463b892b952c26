/* test_jupyter.c - the login role's Jupyter server (node/jupyter.c)
 *
 * The pure parts: ADDR:PORT parsing, the URL, the config file's text,
 * the command line (no token in it, --allow-root only for root) and the
 * service as the supervisor gets it.  The token file: made once, kept,
 * corrupt ones refused and left alone.  The layout and jupyter_prepare
 * in a scratch data dir (as the caller, and as nobody when run as root).
 * jupyter_ping against a small HTTP server in a thread that answers as
 * each test tells it: Jupyter's 200, 403, other statuses, garbage,
 * nothing at all (the timeout must hold), or nobody listening.  Nothing
 * here needs Jupyter.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>

#include <cmocka.h>
#include <jansson.h>
#include <sodium.h>

#include "node/jupyter.h"
#include "node/supervise.h"
#include "tests/unit/tmpdir.h"

#define TOKEN "0123456789abcdef0123456789abcdef0123456789abcdef"

static double mono_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void assert_contains(const char *haystack, const char *needle)
{
    if (!strstr(haystack, needle))
        fail_msg("'%s' not found in:\n%s", needle, haystack);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
}

static char *read_all(const char *path)
{
    static char buf[8192];
    int fd = open(path, O_RDONLY);
    ssize_t n;

    assert_true(fd >= 0);
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    assert_true(n >= 0);
    buf[n] = '\0';
    return buf;
}

/* A scratch data dir per test (state). */
static int dir_setup(void **state)
{
    char *dir = malloc(256);

    if (!dir || tmpdir_make(dir, 256, "test_jupyter") < 0)
        return -1;
    /* searchable by nobody, as a data dir is (mkdtemp makes 0700) */
    chmod(dir, 0755);
    *state = dir;
    return 0;
}

static int dir_teardown(void **state)
{
    tmpdir_remove(*state);
    free(*state);
    return 0;
}

static const char *me(void)
{
    struct passwd *pw = getpwuid(getuid());

    assert_non_null(pw);
    return pw->pw_name;
}

/* ---- addresses and URL ------------------------------------------------ */

static void test_addr_parse_good(void **state)
{
    const struct {
        const char *in, *host;
        int family, port;
    } cases[] = {
        {"127.0.0.1:8888", "127.0.0.1", AF_INET, 8888},
        {"0.0.0.0:1", "0.0.0.0", AF_INET, 1},
        {"10.1.2.3:65535", "10.1.2.3", AF_INET, 65535},
        {"[::1]:8888", "::1", AF_INET6, 8888},
        {"[::]:443", "::", AF_INET6, 443},
        {"[0:0:0:0:0:0:0:1]:80", "::1", AF_INET6, 80}, /* canonical */
        {"[2001:DB8::5]:9000", "2001:db8::5", AF_INET6, 9000},
    };
    struct jupyter_addr a;
    err_t err = {{0}};

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (jupyter_addr_parse(cases[i].in, &a, &err) < 0)
            fail_msg("%s refused: %s", cases[i].in, err.text);
        assert_string_equal(a.host, cases[i].host);
        assert_int_equal(a.family, cases[i].family);
        assert_int_equal(a.port, cases[i].port);
    }
}

static void test_addr_parse_refuses(void **state)
{
    const struct {
        const char *in, *says;
    } cases[] = {
        {"", "no address"},
        {"127.0.0.1", "no port"},
        {"127.0.0.1:", "1 to 65535"},
        {"127.0.0.1:0", "1 to 65535"},
        {"127.0.0.1:65536", "1 to 65535"},
        {"127.0.0.1:123456", "1 to 65535"},
        {"127.0.0.1:-1", "1 to 65535"},
        {"127.0.0.1:+80", "1 to 65535"},
        {"127.0.0.1:80x", "1 to 65535"},
        {":8888", "no address"},
        {"::1:8888", "[ADDR]:PORT"},
        {"[::1]8888", "[ADDR]:PORT"},
        {"[::1", "[ADDR]:PORT"},
        {"[127.0.0.1]:80", "brackets are for IPv6"},
        {"login node:80", "space"},
        {"127.0.0.1 :80", "space"},
        {"127.0.0.1:80\n", "space"},
        {"127.0.0.1:80;reboot", "1 to 65535"},
        {"login.example:80", "not a numeric"},
        {"localhost:8888", "not a numeric"},
        {"1.2.3:80", "not a numeric"},
        {"[fe80::1%eth0]:80", "not a numeric"},
        {"caf\xc3\xa9:80", "printable ASCII"},
    };
    struct jupyter_addr a;
    err_t err = {{0}};

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        err.text[0] = '\0';
        if (jupyter_addr_parse(cases[i].in, &a, &err) == 0)
            fail_msg("'%s' accepted", cases[i].in);
        assert_contains(err.text, cases[i].says);
    }
    assert_int_equal(jupyter_addr_parse(NULL, &a, &err), -1);
}

static void test_url(void **state)
{
    char out[128];

    (void)state;
    assert_int_equal(jupyter_url("10.0.0.5", 8888, TOKEN, out, sizeof(out)), 0);
    assert_string_equal(out, "http://10.0.0.5:8888/?token=" TOKEN);
    assert_int_equal(jupyter_url("::1", 9000, TOKEN, out, sizeof(out)), 0);
    assert_string_equal(out, "http://[::1]:9000/?token=" TOKEN);
    assert_int_equal(jupyter_url("[2001:db8::5]", 80, TOKEN, out, sizeof(out)),
                     0);
    assert_string_equal(out, "http://[2001:db8::5]:80/?token=" TOKEN);

    /* exactly as long as the buffer: fits; one byte less: ENOSPC */
    size_t need = strlen("http://10.0.0.5:8888/?token=" TOKEN) + 1;
    assert_int_equal(jupyter_url("10.0.0.5", 8888, TOKEN, out, need), 0);
    errno = 0;
    assert_int_equal(jupyter_url("10.0.0.5", 8888, TOKEN, out, need - 1), -1);
    assert_int_equal(errno, ENOSPC);
    assert_string_equal(out, "");

    const struct {
        const char *addr, *token;
        int port;
    } bad[] = {
        {"0.0.0.0", TOKEN, 8888}, /* nobody can open a wildcard */
        {"::", TOKEN, 8888},
        {"login.example", TOKEN, 8888},
        {"10.0.0.5", TOKEN, 0},
        {"10.0.0.5", TOKEN, 70000},
        {"10.0.0.5", "short", 8888},
        {"10.0.0.5", "0123456789ABCDEF0123456789abcdef0123456789abcdef", 8888},
        {NULL, TOKEN, 8888},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        errno = 0;
        assert_int_equal(
            jupyter_url(bad[i].addr, bad[i].port, bad[i].token, out, 128), -1);
        assert_int_equal(errno, EINVAL);
    }
}

/* ---- token ------------------------------------------------------------ */

static void test_token_create_and_reuse(void **state)
{
    char path[512], first[JUPYTER_TOKEN_LEN + 1], again[JUPYTER_TOKEN_LEN + 1];
    char other[512], third[JUPYTER_TOKEN_LEN + 1];
    err_t err = {{0}};
    struct stat st;

    snprintf(path, sizeof(path), "%s/token", (char *)*state);
    if (jupyter_token_load_or_create(path, first, &err) < 0)
        fail_msg("create: %s", err.text);
    assert_true(jupyter_token_ok(first));
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    char want[JUPYTER_TOKEN_LEN + 2];
    snprintf(want, sizeof(want), "%s\n", first);
    assert_string_equal(read_all(path), want);

    /* a restart finds the same token */
    assert_int_equal(jupyter_token_load_or_create(path, again, &err), 0);
    assert_string_equal(again, first);
    /* without the newline too (written by hand) */
    write_file(path, first, 0600);
    assert_int_equal(jupyter_token_load_or_create(path, again, &err), 0);
    assert_string_equal(again, first);

    /* a loose mode is tightened, the token kept */
    assert_int_equal(chmod(path, 0644), 0);
    assert_int_equal(jupyter_token_load_or_create(path, again, &err), 0);
    assert_string_equal(again, first);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);

    /* another file: another token */
    snprintf(other, sizeof(other), "%s/token2", (char *)*state);
    assert_int_equal(jupyter_token_load_or_create(other, third, &err), 0);
    assert_string_not_equal(third, first);
}

static void test_token_corrupt_refused(void **state)
{
    const char *bad[] = {
        "",
        "\n",
        "0123456789abcdef\n",                                    /* short */
        TOKEN "0\n",                                             /* long */
        "0123456789ABCDEF0123456789abcdef0123456789abcdef\n",    /* upper */
        "0123456789abcdef0123456789abcdef0123456789abcdeg\n",    /* not hex */
        " 0123456789abcdef0123456789abcdef0123456789abcdef\n",   /* space */
        TOKEN "\n\n",                                            /* 2 lines */
        "password = 0123456789abcdef0123456789abcdef01234567\n", /* other */
    };
    char path[512], token[JUPYTER_TOKEN_LEN + 1];
    err_t err = {{0}};

    snprintf(path, sizeof(path), "%s/token", (char *)*state);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        write_file(path, bad[i], 0600);
        err.text[0] = '\0';
        errno = 0;
        if (jupyter_token_load_or_create(path, token, &err) == 0)
            fail_msg("corrupt token file %zu accepted", i);
        assert_int_equal(errno, EBADMSG);
        assert_contains(err.text, "corrupt");
        assert_contains(err.text, path);
        assert_string_equal(token, "");
        /* left as it was, for a person to look at */
        assert_string_equal(read_all(path), bad[i]);
    }

    /* a NUL inside */
    int fd = open(path, O_WRONLY | O_TRUNC);
    char bin[JUPYTER_TOKEN_LEN];
    memset(bin, 'a', sizeof(bin));
    bin[10] = '\0';
    assert_int_equal(write(fd, bin, sizeof(bin)), (ssize_t)sizeof(bin));
    close(fd);
    assert_int_equal(jupyter_token_load_or_create(path, token, &err), -1);
    assert_int_equal(errno, EBADMSG);

    /* far too long */
    char *big = malloc(10000);
    assert_non_null(big);
    memset(big, 'a', 9999);
    big[9999] = '\0';
    write_file(path, big, 0600);
    free(big);
    assert_int_equal(jupyter_token_load_or_create(path, token, &err), -1);
    assert_int_equal(errno, EBADMSG);
    assert_contains(err.text, "corrupt");

    /* not a file */
    unlink(path);
    assert_int_equal(mkdir(path, 0700), 0);
    assert_int_equal(jupyter_token_load_or_create(path, token, &err), -1);
    assert_true(errno != ENOENT);
}

static void test_token_rule(void **state)
{
    (void)state;
    assert_true(jupyter_token_ok(TOKEN));
    assert_false(jupyter_token_ok(NULL));
    assert_false(jupyter_token_ok(""));
    assert_false(jupyter_token_ok(TOKEN "0"));
    assert_false(jupyter_token_ok(TOKEN + 1));
    assert_false(
        jupyter_token_ok("0123456789abcdef0123456789abcdef0123456789abcdeF"));
    assert_false(
        jupyter_token_ok("0123456789abcdef0123456789abcdef0123456789abcde\n"));
}

/* ---- layout, config, prepare ------------------------------------------ */

static void test_layout_nobody(void **state)
{
    struct jupyter_layout l;
    char want[512];
    err_t err = {{0}};

    if (jupyter_layout_init(*state, "nobody", &l, &err) < 0)
        fail_msg("%s", err.text);
    snprintf(want, sizeof(want), "%s/jupyter", (char *)*state);
    assert_string_equal(l.dir, want);
    snprintf(want, sizeof(want), "%s/jupyter/token", (char *)*state);
    assert_string_equal(l.token, want);
    snprintf(want, sizeof(want), "%s/jupyter/config.json", (char *)*state);
    assert_string_equal(l.config, want);
    snprintf(want, sizeof(want), "%s/jupyter/runtime", (char *)*state);
    assert_string_equal(l.runtime, want);
    snprintf(want, sizeof(want), "%s/log/jupyter.log", (char *)*state);
    assert_string_equal(l.log, want);
    /* /nonexistent is no home: the work dir is in the data dir */
    snprintf(want, sizeof(want), "%s/jupyter/work", (char *)*state);
    assert_string_equal(l.work, want);
    assert_false(l.work_is_home);
    assert_string_equal(l.user, "nobody");
    assert_int_equal(l.uid, getpwnam("nobody")->pw_uid);
    /* nologin is not in /etc/shells: a terminal gets a real shell */
    assert_true(strcmp(l.shell, "/bin/bash") == 0 ||
                strcmp(l.shell, "/bin/sh") == 0);
    /* nothing was created */
    assert_int_equal(access(l.dir, F_OK), -1);
}

static void test_layout_home_and_refusals(void **state)
{
    struct jupyter_layout l;
    struct passwd *pw = getpwuid(getuid());
    struct stat st;
    char longdir[PATH_MAX + 16];
    err_t err = {{0}};

    assert_non_null(pw);
    assert_int_equal(jupyter_layout_init(*state, pw->pw_name, &l, &err), 0);
    if (stat(pw->pw_dir, &st) == 0 && S_ISDIR(st.st_mode) &&
        access(pw->pw_dir, W_OK) == 0 && strcmp(pw->pw_dir, "/") != 0) {
        assert_true(l.work_is_home);
        assert_string_equal(l.work, pw->pw_dir);
    }

    assert_int_equal(
        jupyter_layout_init(*state, "no-such-user-peerd", &l, &err), -1);
    assert_contains(err.text, "no user 'no-such-user-peerd'");
    assert_int_equal(jupyter_layout_init(*state, "", &l, &err), -1);
    memset(longdir, 'd', sizeof(longdir) - 1);
    longdir[0] = '/';
    longdir[sizeof(longdir) - 1] = '\0';
    assert_int_equal(jupyter_layout_init(longdir, "nobody", &l, &err), -1);
    assert_contains(err.text, "too long");
}

static struct jupyter_layout layout_for(const char *data_dir, const char *user)
{
    struct jupyter_layout l;
    err_t err = {{0}};

    if (jupyter_layout_init(data_dir, user, &l, &err) < 0)
        fail_msg("jupyter_layout_init: %s", err.text);
    return l;
}

static void test_render_config(void **state)
{
    struct jupyter_layout l = layout_for(*state, "nobody");
    json_error_t jerr;
    err_t err = {{0}};
    char *text = jupyter_render_config(&l, TOKEN, &err);
    json_t *doc;

    assert_non_null(text);
    doc = json_loads(text, 0, &jerr);
    if (!doc)
        fail_msg("not JSON (%s):\n%s", jerr.text, text);
    const char *sections[] = {"NotebookApp", "ServerApp"};
    for (int i = 0; i < 2; i++) {
        json_t *s = json_object_get(doc, sections[i]);
        assert_true(json_is_object(s));
        assert_string_equal(json_string_value(json_object_get(s, "token")),
                            TOKEN);
        assert_true(json_is_false(json_object_get(s, "quit_button")));
    }
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(doc, "NotebookApp"),
                                          "notebook_dir")),
        l.work);
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(doc, "ServerApp"), "root_dir")),
                        l.work);
    /* nothing the command line says: address and port stay visible there */
    assert_null(json_object_get(json_object_get(doc, "NotebookApp"), "ip"));
    json_decref(doc);
    free(text);

    /* a quote in a path is escaped, not a way out of the string */
    snprintf(l.work, sizeof(l.work), "/home/a\"b\\c");
    text = jupyter_render_config(&l, TOKEN, &err);
    assert_non_null(text);
    doc = json_loads(text, 0, &jerr);
    assert_non_null(doc);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(doc, "NotebookApp"),
                                          "notebook_dir")),
        "/home/a\"b\\c");
    json_decref(doc);
    free(text);

    assert_null(jupyter_render_config(&l, "not-a-token", &err));
    assert_contains(err.text, "token");
    snprintf(l.work, sizeof(l.work), "/home/\xff");
    assert_null(jupyter_render_config(&l, TOKEN, &err));
    assert_contains(err.text, "UTF-8");
}

static void check_dir(const char *path, mode_t mode, uid_t uid)
{
    struct stat st;

    if (lstat(path, &st) < 0)
        fail_msg("%s: %s", path, strerror(errno));
    assert_true(S_ISDIR(st.st_mode));
    if ((st.st_mode & 07777) != mode || st.st_uid != uid)
        fail_msg("%s: mode %04o owner %d, want %04o owner %d", path,
                 (int)(st.st_mode & 07777), (int)st.st_uid, (int)mode,
                 (int)uid);
}

static void check_file(const char *path, mode_t mode, uid_t uid)
{
    struct stat st;

    if (lstat(path, &st) < 0)
        fail_msg("%s: %s", path, strerror(errno));
    assert_true(S_ISREG(st.st_mode));
    if ((st.st_mode & 07777) != mode || st.st_uid != uid)
        fail_msg("%s: mode %04o owner %d, want %04o owner %d", path,
                 (int)(st.st_mode & 07777), (int)st.st_uid, (int)mode,
                 (int)uid);
}

static void prepare_as(const char *data_dir, const char *user)
{
    struct jupyter_layout l;
    char token[JUPYTER_TOKEN_LEN + 1], again[JUPYTER_TOKEN_LEN + 1];
    err_t err = {{0}};
    json_t *doc;

    if (jupyter_prepare(data_dir, user, &l, token, &err) < 0)
        fail_msg("jupyter_prepare(%s): %s", user, err.text);
    assert_true(jupyter_token_ok(token));
    check_dir(l.log_dir, 0755, getuid()); /* peerd's: root */
    check_dir(l.dir, 0755, getuid());
    check_dir(l.runtime, 0700, l.uid);
    if (!l.work_is_home)
        check_dir(l.work, 0700, l.uid);
    check_file(l.token, 0600, getuid());
    check_file(l.config, 0600, l.uid);
    doc = json_load_file(l.config, 0, NULL);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(doc, "NotebookApp"), "token")),
                        token);
    json_decref(doc);

    /* again (a restart): the same token, modes forced back */
    assert_int_equal(chmod(l.runtime, 0755), 0);
    if (jupyter_prepare(data_dir, user, &l, again, &err) < 0)
        fail_msg("jupyter_prepare again: %s", err.text);
    assert_string_equal(again, token);
    check_dir(l.runtime, 0700, l.uid);
}

static void test_prepare_as_caller(void **state)
{
    /* as root with the default layout, the work dir is /root: use a
     * user without a home instead when we can chown to it
     */
    prepare_as(*state, getuid() == 0 ? "nobody" : me());
}

static void test_prepare_refuses_unreachable(void **state)
{
    char data[512];
    struct jupyter_layout l;
    char token[JUPYTER_TOKEN_LEN + 1];
    err_t err = {{0}};

    if (getuid() != 0)
        skip(); /* only root can make a dir nobody cannot enter */
    snprintf(data, sizeof(data), "%s/private", (char *)*state);
    assert_int_equal(mkdir(data, 0700), 0);
    snprintf(data, sizeof(data), "%s/private/data", (char *)*state);
    assert_int_equal(mkdir(data, 0755), 0);
    assert_int_equal(jupyter_prepare(data, "nobody", &l, token, &err), -1);
    assert_contains(err.text, "user nobody cannot reach");
    assert_contains(err.text, "private");
}

static void test_prepare_corrupt_token(void **state)
{
    char path[512];
    struct jupyter_layout l;
    char token[JUPYTER_TOKEN_LEN + 1];
    err_t err = {{0}};

    snprintf(path, sizeof(path), "%s/jupyter", (char *)*state);
    assert_int_equal(mkdir(path, 0755), 0);
    snprintf(path, sizeof(path), "%s/jupyter/token", (char *)*state);
    write_file(path, "garbage\n", 0600);
    assert_int_equal(jupyter_prepare(*state, getuid() == 0 ? "nobody" : me(),
                                     &l, token, &err),
                     -1);
    assert_contains(err.text, "corrupt");
    assert_int_equal(access(l.config, F_OK), -1); /* no config without it */
}

/* ---- command line and service ----------------------------------------- */

static int argv_count(const char *const *argv, const char *prefix)
{
    int n = 0;

    for (int i = 0; argv[i]; i++)
        n += strncmp(argv[i], prefix, strlen(prefix)) == 0;
    return n;
}

static const char *argv_value(const char *const *argv, const char *prefix)
{
    for (int i = 0; argv[i]; i++)
        if (strncmp(argv[i], prefix, strlen(prefix)) == 0)
            return argv[i] + strlen(prefix);
    return NULL;
}

static void test_argv_user(void **state)
{
    struct jupyter_layout l = layout_for(*state, "nobody");
    struct jupyter_addr addr;
    struct svc_argv *a = malloc(sizeof(*a));
    err_t err = {{0}};
    char want[600];
    int i = 0;

    assert_non_null(a);
    assert_int_equal(jupyter_addr_parse("10.0.0.5:8888", &addr, &err), 0);
    if (jupyter_argv(a, &l, "/usr/bin/jupyter-notebook", &addr, NULL, &err) < 0)
        fail_msg("%s", err.text);
    assert_string_equal(a->argv[i++], "/usr/bin/env");
    assert_string_equal(a->argv[i++], "-i");
    snprintf(want, sizeof(want), "--chdir=%s", l.work);
    assert_string_equal(a->argv[i++], want);
    assert_string_equal(argv_value(a->argv, "HOME="), l.work);
    assert_string_equal(argv_value(a->argv, "USER="), "nobody");
    assert_string_equal(argv_value(a->argv, "LOGNAME="), "nobody");
    assert_string_equal(argv_value(a->argv, "SHELL="), l.shell);
    assert_string_equal(argv_value(a->argv, "JUPYTER_RUNTIME_DIR="), l.runtime);
    assert_string_equal(argv_value(a->argv, "LANG="), "C.UTF-8");
    assert_null(strstr(argv_value(a->argv, "PATH="), "sbin"));
    assert_null(argv_value(a->argv, "SLURM_CONF="));
    /* the server, then its options */
    int bin = -1;
    for (int k = 0; a->argv[k]; k++)
        if (strcmp(a->argv[k], "/usr/bin/jupyter-notebook") == 0)
            bin = k;
    assert_true(bin > 0);
    for (int k = 1; k < bin; k++) /* env's part: options and variables */
        assert_true(a->argv[k][0] == '-' || strchr(a->argv[k], '='));
    assert_string_equal(argv_value(a->argv + bin, "--config="), l.config);
    assert_int_equal(argv_count(a->argv, "--no-browser"), 1);
    assert_string_equal(argv_value(a->argv + bin, "--ip="), "10.0.0.5");
    assert_string_equal(argv_value(a->argv + bin, "--port="), "8888");
    assert_string_equal(argv_value(a->argv + bin, "--port-retries="), "0");
    assert_int_equal(argv_count(a->argv, "--allow-root"), 0);
    /* no token anywhere: ps shows the command line to every user */
    for (int k = 0; a->argv[k]; k++) {
        assert_null(strstr(a->argv[k], "token"));
        assert_null(strstr(a->argv[k], "TOKEN"));
    }
    free(a);
}

static void test_argv_root_v6_slurm_conf(void **state)
{
    struct jupyter_layout l = layout_for(*state, "root");
    struct jupyter_addr addr;
    struct svc_argv *a = malloc(sizeof(*a));
    err_t err = {{0}};

    assert_non_null(a);
    assert_int_equal(jupyter_addr_parse("[::1]:9999", &addr, &err), 0);
    if (jupyter_argv(a, &l, "/opt/lab/bin/jupyter-lab", &addr,
                     "/var/lib/peerd/slurm.conf", &err) < 0)
        fail_msg("%s", err.text);
    assert_int_equal(argv_count(a->argv, "--allow-root"), 1);
    assert_string_equal(argv_value(a->argv, "--ip="), "::1"); /* no [] */
    assert_string_equal(argv_value(a->argv, "SLURM_CONF="),
                        "/var/lib/peerd/slurm.conf");
    assert_string_equal(argv_value(a->argv, "USER="), "root");
    assert_non_null(strstr(argv_value(a->argv, "PATH="), "/usr/sbin"));
    assert_int_equal(argv_count(a->argv, "/opt/lab/bin/jupyter-lab"), 1);
    free(a);
}

static void test_argv_refuses(void **state)
{
    struct jupyter_layout l = layout_for(*state, "nobody");
    struct jupyter_addr addr, none = {0};
    struct svc_argv *a = malloc(sizeof(*a));
    err_t err = {{0}};

    assert_non_null(a);
    assert_int_equal(jupyter_addr_parse("127.0.0.1:8888", &addr, &err), 0);
    /* env would take it for a variable and run the next word */
    assert_int_equal(
        jupyter_argv(a, &l, "/opt/a=b/jupyter-lab", &addr, NULL, &err), -1);
    assert_contains(err.text, "'='");
    assert_int_equal(jupyter_argv(a, &l, "jupyter-lab", &addr, NULL, &err), -1);
    assert_contains(err.text, "absolute");
    assert_int_equal(jupyter_argv(a, &l, NULL, &addr, NULL, &err), -1);
    assert_int_equal(
        jupyter_argv(a, &l, "/usr/bin/jupyter-notebook", &none, NULL, &err),
        -1);
    assert_int_equal(
        jupyter_argv(a, &l, "/usr/bin/jupyter-notebook", &addr, "", &err), -1);
    free(a);
}

static void make_exe(const char *path)
{
    write_file(path, "#!/bin/sh\nexit 0\n", 0755);
}

static void test_find(void **state)
{
    char lab[512], nb[512], missing[512], out[PATH_MAX], *old;
    enum jupyter_kind kind;
    err_t err = {{0}};

    snprintf(lab, sizeof(lab), "%s/jupyter-lab", (char *)*state);
    snprintf(nb, sizeof(nb), "%s/jupyter-notebook", (char *)*state);
    snprintf(missing, sizeof(missing), "%s/none/jupyter-lab", (char *)*state);
    make_exe(lab);
    make_exe(nb);
    assert_int_equal(jupyter_find(lab, nb, out, sizeof(out), &kind, &err), 0);
    assert_string_equal(out, lab);
    assert_int_equal(kind, JUPYTER_LAB);
    assert_int_equal(jupyter_find(missing, nb, out, sizeof(out), &kind, &err),
                     0);
    assert_string_equal(out, nb);
    assert_int_equal(kind, JUPYTER_NOTEBOOK);
    assert_int_equal(
        jupyter_find(missing, missing, out, sizeof(out), &kind, &err), -1);
    assert_contains(err.text, "apt-get install jupyter-notebook");

    /* default names, through PATH: lab comes first */
    old = getenv("PATH") ? strdup(getenv("PATH")) : NULL;
    setenv("PATH", *state, 1);
    assert_int_equal(jupyter_find(NULL, NULL, out, sizeof(out), &kind, &err),
                     0);
    assert_string_equal(out, lab);
    assert_int_equal(kind, JUPYTER_LAB);
    if (old) {
        setenv("PATH", old, 1);
        free(old);
    } else {
        unsetenv("PATH");
    }
}

static void test_add_service(void **state)
{
    struct jupyter_layout l = layout_for(*state, "nobody");
    supervisor_t *sv = supervisor_new();
    struct jupyter_addr addr;
    err_t err = {{0}};
    int idx;

    assert_non_null(sv);
    assert_int_equal(jupyter_addr_parse("127.0.0.1:8888", &addr, &err), 0);
    idx = jupyter_add_service(sv, &l, "/usr/bin/jupyter-notebook", &addr, NULL,
                              false, -1, &err);
    if (idx < 0)
        fail_msg("%s", err.text);
    assert_int_equal(supervisor_find(sv, JUPYTER_SERVICE), idx);
    assert_false(supervisor_enabled(sv, idx));
    assert_int_equal(supervisor_pid(sv, idx), 0);
    json_t *all = supervisor_json(sv, 0);
    json_t *s = json_array_get(all, (size_t)idx);
    assert_string_equal(json_string_value(json_object_get(s, "name")),
                        "jupyter");
    assert_string_equal(json_string_value(json_object_get(s, "state")),
                        "stopped");
    json_decref(all);
    supervisor_destroy(&sv);
    assert_null(sv);

    sv = supervisor_new();
    idx = jupyter_add_service(sv, &l, "/usr/bin/jupyter-notebook", &addr, NULL,
                              true, -1, &err);
    assert_true(idx >= 0);
    assert_true(supervisor_enabled(sv, idx));
    /* a bad command line registers nothing */
    assert_int_equal(
        jupyter_add_service(sv, &l, "relative", &addr, NULL, true, -1, &err),
        -1);
    supervisor_destroy(&sv);
}

/* ---- jupyter_ping against a fake server ------------------------------- */

enum fake_mode {
    FAKE_OK,           /* Jupyter's 200 with its JSON */
    FAKE_OK_PIECES,    /* the same in three writes, 50 ms apart */
    FAKE_OK_NO_LENGTH, /* no Content-Length: the body ends at close */
    FAKE_FORBIDDEN,    /* 403, as for a wrong token */
    FAKE_ERROR,        /* 500 */
    FAKE_GARBAGE,      /* an SSH server's greeting */
    FAKE_NOT_JSON,     /* 200 with HTML */
    FAKE_JSON_ARRAY,   /* 200 with JSON that is not the status */
    FAKE_SILENT,       /* accepts, reads, never answers */
    FAKE_CLOSE,        /* accepts, reads, closes */
    FAKE_ENDLESS,      /* headers that never end */
    FAKE_CHUNKED,      /* Transfer-Encoding: chunked */
};

struct fake {
    int lfd;
    int port;
    enum fake_mode mode;
    int conns; /* connections to serve */
    char req[2048];
    pthread_t thread;
};

static const char status_body[] =
    "{\"connections\": 1, \"kernels\": 2, \"last_activity\": "
    "\"2026-01-01T00:00:00.000000Z\", \"started\": "
    "\"2026-01-01T00:00:00.000000Z\"}";

static const char forbidden_body[] =
    "{\"message\": \"Forbidden\", \"reason\": null}";

static void send_all(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t k = send(fd, s, n, MSG_NOSIGNAL);
        if (k <= 0)
            return;
        s += k;
        n -= (size_t)k;
    }
}

static void sendf(int fd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void sendf(int fd, const char *fmt, ...)
{
    char buf[4096];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    send_all(fd, buf, (size_t)n);
}

/* Wait up to ms for fd to be readable; then read what is there. */
static ssize_t recv_wait(int fd, char *buf, size_t cap, int ms)
{
    struct pollfd p = {fd, POLLIN, 0};

    if (poll(&p, 1, ms) <= 0)
        return -1;
    return recv(fd, buf, cap, 0);
}

static void serve_one(struct fake *f, int c, bool keep)
{
    char req[2048];
    size_t got = 0;
    ssize_t n;

    while (got < sizeof(req) - 1 &&
           (n = recv_wait(c, req + got, sizeof(req) - 1 - got, 2000)) > 0) {
        got += (size_t)n;
        req[got] = '\0';
        if (strstr(req, "\r\n\r\n"))
            break;
    }
    req[got] = '\0';
    if (keep)
        memcpy(f->req, req, got + 1);
    switch (f->mode) {
    case FAKE_OK:
        sendf(c,
              "HTTP/1.1 200 OK\r\nServer: TornadoServer/6.2\r\n"
              "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
              strlen(status_body), status_body);
        break;
    case FAKE_OK_PIECES: {
        char all[1024];
        int n2 = snprintf(all, sizeof(all),
                          "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n%s",
                          strlen(status_body), status_body);
        int cut[] = {0, 7, 30, n2};
        for (int i = 0; i < 3; i++) {
            send_all(c, all + cut[i], (size_t)(cut[i + 1] - cut[i]));
            usleep(50 * 1000);
        }
        break;
    }
    case FAKE_OK_NO_LENGTH:
        sendf(c, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n%s", status_body);
        break;
    case FAKE_FORBIDDEN:
        sendf(c,
              "HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\n"
              "Content-Length: %zu\r\n\r\n%s",
              strlen(forbidden_body), forbidden_body);
        break;
    case FAKE_ERROR:
        sendf(c, "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n"
                 "\r\n");
        break;
    case FAKE_GARBAGE:
        sendf(c, "SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n");
        break;
    case FAKE_NOT_JSON:
        sendf(c, "HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n<html></html>");
        break;
    case FAKE_JSON_ARRAY:
        sendf(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]");
        break;
    case FAKE_SILENT:
        /* until the client gives up */
        while (recv_wait(c, req, sizeof(req), 3000) > 0)
            ;
        break;
    case FAKE_CLOSE:
        break;
    case FAKE_ENDLESS:
        sendf(c, "HTTP/1.1 200 OK\r\n");
        for (int i = 0; i < 2000; i++)
            sendf(c, "X-Filler-%d: aaaaaaaaaaaaaaaaaaaa\r\n", i);
        break;
    case FAKE_CHUNKED:
        sendf(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "2\r\n{}\r\n0\r\n\r\n");
        break;
    }
}

static void *serve(void *arg)
{
    struct fake *f = arg;

    for (int i = 0; i < f->conns; i++) {
        struct pollfd p = {f->lfd, POLLIN, 0};
        if (poll(&p, 1, 5000) <= 0)
            break;
        int c = accept(f->lfd, NULL, NULL);
        if (c < 0)
            break;
        serve_one(f, c, i == 0);
        close(c);
    }
    return NULL;
}

/* A listening socket on the loopback address of family (port 0: any). */
static int listen_on(int family, int *port)
{
    struct sockaddr_storage ss = {0};
    socklen_t len;
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (family == AF_INET) {
        struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
        v4->sin_family = AF_INET;
        v4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof(*v4);
    } else {
        struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
        v6->sin6_family = AF_INET6;
        v6->sin6_addr = in6addr_loopback;
        len = sizeof(*v6);
    }
    if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 16) < 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
        close(fd);
        return -1;
    }
    *port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                    : ((struct sockaddr_in6 *)&ss)->sin6_port);
    return fd;
}

static void fake_start(struct fake *f, int family, enum fake_mode mode,
                       int conns)
{
    memset(f, 0, sizeof(*f));
    f->mode = mode;
    f->conns = conns;
    f->lfd = listen_on(family, &f->port);
    assert_true(f->lfd >= 0);
    assert_int_equal(pthread_create(&f->thread, NULL, serve, f), 0);
}

static void fake_stop(struct fake *f)
{
    pthread_join(f->thread, NULL);
    close(f->lfd);
}

/* Ping a fake server in mode; returns jupyter_ping's result. */
static int ping_mode(enum fake_mode mode, double timeout, err_t *err,
                     struct jupyter_status *st, double *took)
{
    struct fake f;
    double t0;
    int rc;

    fake_start(&f, AF_INET, mode, 1);
    t0 = mono_now();
    rc = jupyter_ping("127.0.0.1", f.port, TOKEN, timeout, st, err);
    if (took)
        *took = mono_now() - t0;
    fake_stop(&f);
    return rc;
}

static void test_ping_ok(void **state)
{
    struct jupyter_status st;
    struct fake f;
    err_t err = {{0}};
    char host[64];

    (void)state;
    fake_start(&f, AF_INET, FAKE_OK, 1);
    if (jupyter_ping("127.0.0.1", f.port, TOKEN, 2.0, &st, &err) < 0)
        fail_msg("%s", err.text);
    fake_stop(&f);
    assert_int_equal(st.kernels, 2);
    assert_int_equal(st.connections, 1);
    /* what went over the wire */
    assert_true(strncmp(f.req, "GET /api/status HTTP/1.1\r\n", 26) == 0);
    assert_contains(f.req, "\r\nAuthorization: token " TOKEN "\r\n");
    snprintf(host, sizeof(host), "\r\nHost: 127.0.0.1:%d\r\n", f.port);
    assert_contains(f.req, host);
    assert_contains(f.req, "\r\nConnection: close\r\n");

    assert_int_equal(ping_mode(FAKE_OK_PIECES, 2.0, &err, &st, NULL), 0);
    assert_int_equal(st.kernels, 2);
    assert_int_equal(ping_mode(FAKE_OK_NO_LENGTH, 2.0, &err, NULL, NULL), 0);
}

static void test_ping_wildcard_goes_to_loopback(void **state)
{
    struct fake f;
    err_t err = {{0}};

    (void)state;
    fake_start(&f, AF_INET, FAKE_OK, 1);
    if (jupyter_ping("0.0.0.0", f.port, TOKEN, 2.0, NULL, &err) < 0)
        fail_msg("%s", err.text);
    fake_stop(&f);
    assert_contains(f.req, "Host: 127.0.0.1:");
}

static void test_ping_ipv6(void **state)
{
    struct fake f;
    err_t err = {{0}};
    int port, fd = listen_on(AF_INET6, &port);

    (void)state;
    if (fd < 0)
        skip(); /* no IPv6 loopback here */
    close(fd);
    fake_start(&f, AF_INET6, FAKE_OK, 2);
    if (jupyter_ping("::1", f.port, TOKEN, 2.0, NULL, &err) < 0)
        fail_msg("%s", err.text);
    if (jupyter_ping("[::1]", f.port, TOKEN, 2.0, NULL, &err) < 0)
        fail_msg("%s", err.text);
    fake_stop(&f);
    assert_contains(f.req, "Host: [::1]:");
}

static void test_ping_refusals(void **state)
{
    const struct {
        enum fake_mode mode;
        const char *says;
    } cases[] = {
        {FAKE_FORBIDDEN, "refused the token (403 Forbidden)"},
        {FAKE_ERROR, "answered 500 Internal Server Error"},
        {FAKE_GARBAGE, "not HTTP"},
        {FAKE_NOT_JSON, "not with Jupyter's status"},
        {FAKE_JSON_ARRAY, "not with Jupyter's status"},
        {FAKE_CLOSE, "closed the connection before a complete answer"},
        {FAKE_ENDLESS, "not HTTP"},
        {FAKE_CHUNKED, "chunks"},
    };
    err_t err = {{0}};

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        err.text[0] = '\0';
        if (ping_mode(cases[i].mode, 2.0, &err, NULL, NULL) == 0)
            fail_msg("mode %d accepted", (int)cases[i].mode);
        assert_contains(err.text, cases[i].says);
        assert_contains(err.text, "127.0.0.1:");
    }
}

static void test_ping_timeout_bounded(void **state)
{
    err_t err = {{0}};
    double took;

    (void)state;
    assert_int_equal(ping_mode(FAKE_SILENT, 0.3, &err, NULL, &took), -1);
    assert_contains(err.text, "no answer within 0.3 s");
    if (took < 0.29 || took > 0.8)
        fail_msg("a 0.3 s check took %.3f s", took);
}

static void test_ping_refused(void **state)
{
    err_t err = {{0}};
    int port, fd = listen_on(AF_INET, &port);
    double t0;

    (void)state;
    assert_true(fd >= 0);
    close(fd); /* nobody listens there now */
    t0 = mono_now();
    assert_int_equal(jupyter_ping("127.0.0.1", port, TOKEN, 2.0, NULL, &err),
                     -1);
    assert_true(mono_now() - t0 < 1.0);
    assert_contains(err.text, "cannot connect");
    assert_contains(err.text, "refused");
}

static void test_ping_bad_arguments(void **state)
{
    err_t err = {{0}};

    (void)state;
    assert_int_equal(jupyter_ping("login", 8888, TOKEN, 1.0, NULL, &err), -1);
    assert_contains(err.text, "not a numeric address");
    assert_int_equal(jupyter_ping("127.0.0.1", 0, TOKEN, 1.0, NULL, &err), -1);
    assert_int_equal(jupyter_ping(NULL, 8888, TOKEN, 1.0, NULL, &err), -1);
    /* a token with CR LF would add headers */
    assert_int_equal(jupyter_ping("127.0.0.1", 8888,
                                  "0123456789abcdef0123456789abcdef\r\nX: y",
                                  1.0, NULL, &err),
                     -1);
    assert_contains(err.text, "token");
}

struct pinger {
    int port;
    int rc;
    err_t err;
};

static void *ping_thread(void *arg)
{
    struct pinger *p = arg;

    p->rc = jupyter_ping("127.0.0.1", p->port, TOKEN, 5.0, NULL, &p->err);
    return NULL;
}

static void test_ping_from_threads(void **state)
{
    enum { N = 4 };
    struct pinger p[N];
    pthread_t t[N];
    struct fake f;

    (void)state;
    fake_start(&f, AF_INET, FAKE_OK, N);
    for (int i = 0; i < N; i++) {
        memset(&p[i], 0, sizeof(p[i]));
        p[i].port = f.port;
        assert_int_equal(pthread_create(&t[i], NULL, ping_thread, &p[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        if (p[i].rc != 0)
            fail_msg("thread %d: %s", i, p[i].err.text);
    }
    fake_stop(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_addr_parse_good),
        cmocka_unit_test(test_addr_parse_refuses),
        cmocka_unit_test(test_url),
        cmocka_unit_test(test_token_rule),
        cmocka_unit_test_setup_teardown(test_token_create_and_reuse, dir_setup,
                                        dir_teardown),
        cmocka_unit_test_setup_teardown(test_token_corrupt_refused, dir_setup,
                                        dir_teardown),
        cmocka_unit_test_setup_teardown(test_layout_nobody, dir_setup,
                                        dir_teardown),
        cmocka_unit_test_setup_teardown(test_layout_home_and_refusals,
                                        dir_setup, dir_teardown),
        cmocka_unit_test_setup_teardown(test_render_config, dir_setup,
                                        dir_teardown),
        cmocka_unit_test_setup_teardown(test_prepare_as_caller, dir_setup,
                                        dir_teardown),
        cmocka_unit_test_setup_teardown(test_prepare_refuses_unreachable,
                                        dir_setup, dir_teardown),
        cmocka_unit_test_setup_teardown(test_prepare_corrupt_token, dir_setup,
                                        dir_teardown),
        cmocka_unit_test_setup_teardown(test_argv_user, dir_setup,
                                        dir_teardown),
        cmocka_unit_test_setup_teardown(test_argv_root_v6_slurm_conf, dir_setup,
                                        dir_teardown),
        cmocka_unit_test_setup_teardown(test_argv_refuses, dir_setup,
                                        dir_teardown),
        cmocka_unit_test_setup_teardown(test_find, dir_setup, dir_teardown),
        cmocka_unit_test_setup_teardown(test_add_service, dir_setup,
                                        dir_teardown),
        cmocka_unit_test(test_ping_ok),
        cmocka_unit_test(test_ping_wildcard_goes_to_loopback),
        cmocka_unit_test(test_ping_ipv6),
        cmocka_unit_test(test_ping_refusals),
        cmocka_unit_test(test_ping_timeout_bounded),
        cmocka_unit_test(test_ping_refused),
        cmocka_unit_test(test_ping_bad_arguments),
        cmocka_unit_test(test_ping_from_threads),
    };

    if (sodium_init() < 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
