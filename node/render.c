/* render.c - Slurm's configuration, rendered from the peer's state
 *
 * Values come from the store and the host; a value with white space, '#'
 * or a newline would change the meaning of slurm.conf, so it is refused
 * rather than written.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/render.h"

void textbuf_put(struct textbuf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (b->failed)
        return;
    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = 1;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += n;
            return;
        }
        size_t cap = b->cap * 2 + n;
        char *p = realloc(b->data, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->data = p;
        b->cap = cap;
    }
}

static int check_value(const char *name, const char *v, err_t *err)
{
    if (!v || !*v)
        return errprintf(err, "slurm.conf: %s is empty", name);
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (*p <= ' ' || *p == '#' || *p == '=' || *p >= 0x7f)
            return errprintf(err,
                             "slurm.conf: %s '%s' has a character "
                             "Slurm cannot take",
                             name, v);
    }
    return 0;
}

/* A value added by an administrator may hold '=' and ',' (Slurm's own
 * sub-options) but nothing that ends or comments out the line.
 */
static int check_extra(const char *v, err_t *err)
{
    if (!*v)
        return errprintf(err, "slurm.conf: an added setting is empty");
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if (*p <= ' ' || *p == '#' || *p >= 0x7f)
            return errprintf(err,
                             "slurm.conf: added value '%s' has a "
                             "character Slurm cannot take",
                             v);
    return 0;
}

char *render_slurm_conf(const struct slurm_params *p, err_t *err)
{
    struct textbuf b = {0};
    const struct {
        const char *name, *value;
    } checks[] = {
        {"ClusterName", p->cluster_name},
        {"controller host", p->ctl_host},
        {"controller address", p->ctl_addr},
        {"munge socket", p->munge_socket},
        {"StateSaveLocation", p->state_dir},
        {"SlurmdSpoolDir", p->spool_dir},
        {"run dir", p->run_dir},
        {"NodeName", p->node_name},
        {"NodeAddr", p->node_addr},
        {"AccountingStorageHost", p->acct_host ? p->acct_host : "none"},
    };

    for (size_t i = 0; i < sizeof(checks) / sizeof(checks[0]); i++)
        if (check_value(checks[i].name, checks[i].value, err) < 0)
            return NULL;
    if (p->acct_host && (p->acct_port < 1 || p->acct_port > 65535)) {
        errprintf(err, "slurm.conf: AccountingStoragePort %d out of range",
                  p->acct_port);
        return NULL;
    }
    if (p->node_cpus < 1 || p->node_memory_mb < 1 || p->max_nodes < 1) {
        errprintf(err, "slurm.conf: CPUs, memory and MaxNodeCount must be "
                       "positive");
        return NULL;
    }
    b.cap = 4096;
    if (!(b.data = malloc(b.cap))) {
        errprintf_errno(err, "cannot render slurm.conf");
        return NULL;
    }

    textbuf_put(&b, RENDER_MARKER " for cluster %s. Do not edit:\n",
                p->cluster_name);
    textbuf_put(&b,
                "# peerd rewrites this file; change settings with peerctl.\n");
    textbuf_put(&b, "ClusterName=%s\n", p->cluster_name);
    textbuf_put(&b, "SlurmctldHost=%s(%s)\n", p->ctl_host, p->ctl_addr);
    textbuf_put(&b, "SlurmctldParameters=enable_configless\n");
    textbuf_put(&b, "SlurmUser=root\nSlurmdUser=root\n");
    textbuf_put(&b, "AuthType=auth/munge\nCredType=cred/munge\n");
    textbuf_put(&b, "AuthInfo=socket=%s\n", p->munge_socket);
    textbuf_put(&b, "MailProg=/bin/true\n");
    textbuf_put(&b, "SlurmctldPort=6817\nSlurmdPort=6818\n");
    textbuf_put(&b, "StateSaveLocation=%s\n", p->state_dir);
    textbuf_put(&b, "SlurmdSpoolDir=%s\n", p->spool_dir);
    textbuf_put(&b, "SlurmctldPidFile=%s/slurmctld.pid\n", p->run_dir);
    textbuf_put(&b, "SlurmdPidFile=%s/slurmd.pid\n", p->run_dir);
    textbuf_put(&b, "SlurmctldDebug=info\nSlurmdDebug=info\n");
    textbuf_put(&b,
                "ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\n");
    textbuf_put(&b,
                "SelectType=select/cons_tres\nSelectTypeParameters=CR_Core\n");
    textbuf_put(&b, "JobAcctGatherType=jobacct_gather/none\n");
    if (p->acct_host) {
        /* slurmctld queues its records while slurmdbd is away */
        textbuf_put(&b, "AccountingStorageType=accounting_storage/slurmdbd\n");
        textbuf_put(&b, "AccountingStorageHost=%s\n", p->acct_host);
        textbuf_put(&b, "AccountingStoragePort=%d\n", p->acct_port);
    } else {
        textbuf_put(&b, "AccountingStorageType=accounting_storage/none\n");
    }
    textbuf_put(&b, "JobCompType=jobcomp/none\n");
    textbuf_put(&b, "MpiDefault=none\nSwitchType=switch/none\n");
    textbuf_put(&b, "ReturnToService=2\n");
    textbuf_put(&b, "SlurmctldTimeout=10\nSlurmdTimeout=30\n");
    textbuf_put(&b, "MaxNodeCount=%d\nTreeWidth=65533\n", p->max_nodes);
    if (p->first_job_id > 1)
        textbuf_put(&b, "FirstJobId=%lu\n", p->first_job_id);
    textbuf_put(
        &b, "NodeName=%s NodeAddr=%s CPUs=%d RealMemory=%ld State=UNKNOWN\n",
        p->node_name, p->node_addr, p->node_cpus, p->node_memory_mb);
    textbuf_put(&b, "PartitionName=main Nodes=ALL Default=YES MaxTime=INFINITE "
                    "State=UP\n");
    for (size_t i = 0; i < p->n_extra; i++) {
        const char *eq = strchr(p->extra[i], '=');
        if (!eq || eq == p->extra[i] || check_extra(eq + 1, err) < 0) {
            if (!eq || eq == p->extra[i])
                errprintf(err, "slurm.conf: '%s' is not Key=Value",
                          p->extra[i]);
            free(b.data);
            return NULL;
        }
        if (i == 0)
            textbuf_put(&b, "# added with peerctl config set slurm.<Key>:\n");
        textbuf_put(&b, "%s\n", p->extra[i]);
    }
    if (b.failed) {
        free(b.data);
        errprintf(err, "cannot render slurm.conf: out of memory");
        return NULL;
    }
    return b.data;
}
