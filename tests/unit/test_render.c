/* test_render.c - slurm.conf rendering (node/render.c)
 *
 * A full parameter set renders the settings peerd's cluster depends on,
 * the same bytes every time; a value Slurm would misparse, or a missing
 * one, is refused with a message instead of written.
 */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>

#include <cmocka.h>

#include "node/render.h"

static struct slurm_params valid_params(void)
{
    return (struct slurm_params){
        .cluster_name = "alpha",
        .ctl_host = "node-1",
        .ctl_addr = "10.0.0.1",
        .munge_socket = "/run/peerd/munge/munge.socket.2",
        .state_dir = "/var/lib/peerd/slurmctld",
        .spool_dir = "/var/lib/peerd/slurmd",
        .run_dir = "/run/peerd",
        .node_name = "node-1",
        .node_addr = "10.0.0.1",
        .node_cpus = 4,
        .node_memory_mb = 7900,
        .max_nodes = 64,
    };
}

static char *render_ok(const struct slurm_params *p)
{
    err_t err = {{0}};
    char *conf = render_slurm_conf(p, &err);

    if (!conf)
        fail_msg("render_slurm_conf: %s", err.text);
    return conf;
}

static void render_refused(const struct slurm_params *p, const char *what)
{
    err_t err = {{0}};
    char *conf = render_slurm_conf(p, &err);

    if (conf) {
        free(conf);
        fail_msg("rendered with %s", what);
    }
    if (strlen(err.text) == 0)
        fail_msg("no error text for %s", what);
}

/* The line of conf that starts with prefix, copied into line. */
static void find_line(const char *conf, const char *prefix, char *line,
                      size_t size)
{
    for (const char *p = conf; *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        if (strncmp(p, prefix, strlen(prefix)) == 0) {
            assert_true(n < size);
            memcpy(line, p, n);
            line[n] = '\0';
            return;
        }
        p += n + (nl != NULL);
    }
    fail_msg("no line starting with '%s'", prefix);
}

static void assert_contains(const char *haystack, const char *needle)
{
    if (!strstr(haystack, needle))
        fail_msg("'%s' not found in:\n%s", needle, haystack);
}

static void test_starts_with_marker(void **state)
{
    struct slurm_params p = valid_params();
    char *conf = render_ok(&p);

    assert_int_equal(strncmp(conf, RENDER_MARKER, strlen(RENDER_MARKER)), 0);
    free(conf);
}

static void test_has_required_settings(void **state)
{
    static const char *const lines[] = {
        "\nClusterName=alpha\n",
        "\nSlurmctldHost=node-1(10.0.0.1)\n",
        "\nAuthInfo=socket=/run/peerd/munge/munge.socket.2\n",
        "\nSlurmctldParameters=enable_configless\n",
        "\nSelectType=select/cons_tres\n",
        "\nMaxNodeCount=64\n",
        "\nTreeWidth=",
        "\nStateSaveLocation=/var/lib/peerd/slurmctld\n",
        "\nSlurmdSpoolDir=/var/lib/peerd/slurmd\n",
    };
    struct slurm_params p = valid_params();
    char *conf = render_ok(&p);

    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
        assert_contains(conf, lines[i]);
    assert_int_equal(conf[strlen(conf) - 1], '\n');
    free(conf);
}

static void test_node_line(void **state)
{
    struct slurm_params p = valid_params();
    char *conf = render_ok(&p);
    char line[256];

    find_line(conf, "NodeName=", line, sizeof(line));
    assert_contains(line, "NodeName=node-1 ");
    assert_contains(line, " NodeAddr=10.0.0.1");
    assert_contains(line, " CPUs=4");
    assert_contains(line, " RealMemory=7900");
    free(conf);
}

static void test_partition_line(void **state)
{
    struct slurm_params p = valid_params();
    char *conf = render_ok(&p);
    char line[256];

    find_line(conf, "PartitionName=", line, sizeof(line));
    assert_contains(line, " Default=YES");
    assert_contains(line, " Nodes=");
    free(conf);
}

static void test_deterministic(void **state)
{
    struct slurm_params p = valid_params();
    char *a = render_ok(&p);
    char *b = render_ok(&p);

    assert_string_equal(a, b);
    free(a);
    free(b);
}

/* The i-th string parameter of p, or NULL past the last one. */
static const char **string_param(struct slurm_params *p, size_t i)
{
    const char **params[] = {
        &p->cluster_name, &p->ctl_host,  &p->ctl_addr,
        &p->munge_socket, &p->state_dir, &p->spool_dir,
        &p->run_dir,      &p->node_name, &p->node_addr,
    };

    return i < sizeof(params) / sizeof(params[0]) ? params[i] : NULL;
}

static void test_refuses_bad_values(void **state)
{
    static const char *const bad[] = {
        "a b", "a#b", "a=b", "a\nb", "a\tb", "a\rb", "", "a\x7f", NULL,
    };
    char what[64];

    for (size_t i = 0;; i++) {
        struct slurm_params p = valid_params();
        const char **param = string_param(&p, i);
        if (!param)
            break;
        for (size_t v = 0; v < sizeof(bad) / sizeof(bad[0]); v++) {
            *param = bad[v];
            snprintf(what, sizeof(what), "parameter %zu = bad value %zu", i, v);
            render_refused(&p, what);
        }
    }
}

static void test_refuses_zero_cpus(void **state)
{
    struct slurm_params p = valid_params();

    p.node_cpus = 0;
    render_refused(&p, "0 CPUs");
    p.node_cpus = -1;
    render_refused(&p, "-1 CPUs");
}

static void test_refuses_zero_memory_or_nodes(void **state)
{
    struct slurm_params p = valid_params();

    p.node_memory_mb = 0;
    render_refused(&p, "0 MB");
    p = valid_params();
    p.max_nodes = 0;
    render_refused(&p, "MaxNodeCount 0");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_starts_with_marker),
        cmocka_unit_test(test_has_required_settings),
        cmocka_unit_test(test_node_line),
        cmocka_unit_test(test_partition_line),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_refuses_bad_values),
        cmocka_unit_test(test_refuses_zero_cpus),
        cmocka_unit_test(test_refuses_zero_memory_or_nodes),
    };

    return cmocka_run_group_tests_name("render", tests, NULL, NULL);
}
