/* control.c - the control socket: peerctl's way into the peer
 *
 * A ROUTER socket on ipc://DATA/peerd.ctl, created with mode 0600 so that
 * the file mode decides who may ask.  Requests are served in the event
 * loop and answered at once from state the loop already holds, so a
 * request never waits on Slurm.  Malformed requests get an error reply
 * and are counted; they never stop the peer.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zmq.h>

#include "node/log.h"
#include "node/peerd.h"
#include "proto/ctl.h"

#define MAX_FRAMES 8

int control_open(struct peerd *p, err_t *err)
{
    char endpoint[PATH_MAX + 8];
    int64_t maxsize = CTL_HEADER_LEN + CTL_MAX_BODY;
    int linger = 0, hwm = 64;
    mode_t old;
    int rc;

    snprintf(p->ctl_path, sizeof(p->ctl_path), "%s/%s", p->data_dir,
             PEERD_CTL_NAME);
    snprintf(endpoint, sizeof(endpoint), "ipc://%s", p->ctl_path);
    if (!(p->ctl = zmq_socket(p->zctx, ZMQ_ROUTER)))
        return errprintf(err, "control socket: %s", zmq_strerror(errno));
    zmq_setsockopt(p->ctl, ZMQ_MAXMSGSIZE, &maxsize, sizeof(maxsize));
    zmq_setsockopt(p->ctl, ZMQ_LINGER, &linger, sizeof(linger));
    zmq_setsockopt(p->ctl, ZMQ_SNDHWM, &hwm, sizeof(hwm));
    zmq_setsockopt(p->ctl, ZMQ_RCVHWM, &hwm, sizeof(hwm));
    unlink(p->ctl_path); /* a stale socket from a peer that was killed */
    old = umask(0077);
    rc = zmq_bind(p->ctl, endpoint);
    umask(old);
    if (rc < 0)
        return errprintf(err, "cannot bind %s: %s", endpoint,
                         zmq_strerror(errno));
    /* created 0700 under our umask; 0600 says what it is: read-write
     * for root, nothing for anyone else
     */
    if (chmod(p->ctl_path, 0600) < 0)
        return errprintf_errno(err, "cannot chmod %s", p->ctl_path);
    return 0;
}

void control_close(struct peerd *p)
{
    if (p->ctl) {
        zmq_close(p->ctl);
        p->ctl = NULL;
        unlink(p->ctl_path);
    }
}

json_t *control_status(struct peerd *p)
{
    double now = peerd_now();
    json_t *o, *slurm;
    bool healthy = supervisor_healthy(p->sv);
    bool reachable = p->have_report && p->report.slurmctld.ok;

    o = json_pack("{s:s,s:s,s:s,s:s}", "cluster", p->cluster.name, "cluster_id",
                  p->cluster.id, "tier", p->cluster.tier, "controller",
                  p->host.name);
    json_object_set_new(o, "controller_address", json_string(p->host.address));
    json_object_set_new(o, "healthy", json_boolean(healthy && reachable));
    json_object_set_new(o, "host",
                        json_pack("{s:s,s:s,s:i,s:I}", "name", p->host.name,
                                  "address", p->host.address, "cpus",
                                  p->host.cpus, "memory_mb",
                                  (json_int_t)p->host.memory_mb));
    json_object_set_new(o, "config_hash", json_string(p->layout.config_hash));
    json_object_set_new(o, "slurm_conf", json_string(p->layout.slurm_conf));
    json_object_set_new(o, "munge_key_hash",
                        json_string(p->cluster.munge_key_hash));
    json_object_set_new(o, "munge_socket", json_string(p->layout.munge_socket));
    json_object_set_new(o, "services", supervisor_json(p->sv, now));

    slurm = json_object();
    json_object_set_new(slurm, "reachable", json_boolean(reachable));
    if (reachable && p->slurm_view) {
        json_object_set(slurm, "nodes",
                        json_object_get(p->slurm_view, "nodes"));
        json_object_set(slurm, "jobs", json_object_get(p->slurm_view, "jobs"));
    } else {
        json_object_set_new(slurm, "nodes", json_array());
        json_object_set_new(slurm, "jobs", json_null());
        if (p->have_report)
            json_object_set_new(slurm, "error",
                                json_string(p->report.slurmctld.detail));
    }
    json_object_set_new(o, "slurm", slurm);
    json_object_set_new(o, "peerd",
                        json_pack("{s:i,s:s,s:s,s:f,s:{s:I,s:I}}", "pid",
                                  (int)getpid(), "version", PACKAGE_VERSION,
                                  "data_dir", p->data_dir, "uptime",
                                  now - p->started, "control", "requests",
                                  (json_int_t)p->ctl_requests, "malformed",
                                  (json_int_t)p->ctl_malformed));
    return o;
}

static json_t *dispatch(struct peerd *p, const json_t *req)
{
    const char *cmd = json_string_value(json_object_get(req, "cmd"));

    if (strcmp(cmd, "status") == 0)
        return ctl_reply_ok(control_status(p));
    if (strcmp(cmd, "ping") == 0)
        return ctl_reply_ok(json_pack("{s:b}", "pong", 1));
    return ctl_reply_error("unknown command '%s'", cmd);
}

static void send_reply(struct peerd *p, zmq_msg_t *frames, int nframes,
                       json_t *reply)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    err_t err;

    if (ctl_encode(CTL_REPLY, reply, &buf, &len, &err) < 0) {
        log_warnx("control: %s", err.text);
        return;
    }
    /* routing envelope back: the identity, and the empty delimiter if
     * the client sent one (REQ); never frames of a malformed envelope
     */
    if (zmq_send(p->ctl, zmq_msg_data(&frames[0]), zmq_msg_size(&frames[0]),
                 ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
        goto out;
    if (nframes == 3 && zmq_msg_size(&frames[1]) == 0 &&
        zmq_send(p->ctl, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
        goto out;
    if (zmq_send(p->ctl, buf, len, ZMQ_DONTWAIT) < 0)
        log_debug("control: reply dropped: %s", zmq_strerror(errno));
out:
    free(buf);
}

static int recv_one(struct peerd *p)
{
    zmq_msg_t frames[MAX_FRAMES];
    int n = 0, more = 1;
    size_t moresz = sizeof(more);
    json_t *req = NULL, *reply;
    err_t err = {{0}};

    while (more) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, p->ctl, n == 0 ? ZMQ_DONTWAIT : 0) < 0) {
            zmq_msg_close(&part);
            if (n == 0)
                return errno == EAGAIN ? 0 : -1;
            break;
        }
        zmq_getsockopt(p->ctl, ZMQ_RCVMORE, &more, &moresz);
        if (n < MAX_FRAMES)
            frames[n++] = part;
        else
            zmq_msg_close(&part); /* too many frames: drop the rest */
    }
    p->ctl_requests++;
    /* identity, [empty delimiter,] body */
    if (n < 2 || n > 3 || (n == 3 && zmq_msg_size(&frames[1]) != 0)) {
        errprintf(&err, "malformed control message: %d frames", n);
        req = NULL;
    } else {
        req = ctl_decode(zmq_msg_data(&frames[n - 1]),
                         zmq_msg_size(&frames[n - 1]), CTL_REQUEST, &err);
    }
    if (!req) {
        p->ctl_malformed++;
        log_warnx("control: dropped request #%llu: %s",
                  (unsigned long long)p->ctl_requests, err.text);
        reply = ctl_reply_error("%s", err.text);
    } else {
        reply = dispatch(p, req);
    }
    if (n >= 2)
        send_reply(p, frames, n, reply);
    json_decref(reply);
    json_decref(req);
    for (int i = 0; i < n; i++)
        zmq_msg_close(&frames[i]);
    return 1;
}

void control_handle(struct peerd *p)
{
    /* bounded, so a flood cannot starve the supervisor */
    for (int i = 0; i < 64; i++)
        if (recv_one(p) <= 0)
            break;
}
