/* netdelay.c - test helper: delay and drop the packets of one NFQUEUE queue
 *
 *   netdelay QUEUE_NUM DELAY_MS LOSS_FRACTION
 *
 * Stands in for `tc qdisc add dev eth0 root netem delay D loss L` on kernels
 * built without sch_netem: scripts/testhost.sh (th_netem) has iptables send
 * what a test host puts on eth0 to queue QUEUE_NUM, and netdelay gives every
 * packet of that queue a verdict: NF_DROP with probability LOSS_FRACTION,
 * otherwise NF_ACCEPT DELAY_MS after it arrived.  Only packet ids are read
 * (NFQNL_COPY_META); the kernel keeps the packets meanwhile.  It prints
 * "netdelay: queue N bound" once the queue is bound, runs until SIGTERM or
 * SIGINT, then prints its counters and exits 0.  Bad arguments exit 2, a
 * queue that cannot be bound (no CAP_NET_ADMIN, already taken) exits 1.
 *
 * Invariants: held packets leave in arrival order, and as every packet is
 * held equally long, the FIFO is also ordered by due time: only its head
 * needs a timer.  Nothing is ever blackholed on purpose: the kernel queue is
 * fail-open (when full, packets pass), a full FIFO accepts at once, and on
 * exit everything still held is accepted.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>

#include <linux/netfilter.h>
#include <libnetfilter_queue/libnetfilter_queue.h>

enum {
    FIFO_CAP = 1 << 15,   /* packets held at once; above QUEUE_MAXLEN */
    QUEUE_MAXLEN = 20000, /* kernel queue length */
    RCVBUF = 8 << 20,     /* netlink receive buffer, bytes */
    DRAIN_MAX = 64,       /* messages read before releasing due packets */
    DELAY_MS_MAX = 600000,
    QUEUE_NUM_MAX = 65535,
};

struct held {
    uint32_t id;
    uint64_t due; /* CLOCK_MONOTONIC, ns */
};

struct delayer {
    struct nfq_q_handle *qh;
    uint64_t delay_ns;
    double loss;
    uint64_t rng; /* splitmix64 state */
    struct held fifo[FIFO_CAP];
    size_t head, len;
    unsigned long seen, dropped, overflow, lost, verdict_errors;
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* uniform: a double in [0, 1) from splitmix64. */
static double uniform(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15u);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    z ^= z >> 31;
    return (double)(z >> 11) * 0x1.0p-53;
}

static void verdict(struct delayer *d, uint32_t id, uint32_t v)
{
    if (nfq_set_verdict(d->qh, id, v, 0, NULL) < 0)
        d->verdict_errors++;
}

static int on_packet(struct nfq_q_handle *qh, struct nfgenmsg *msg,
                     struct nfq_data *nfa, void *arg)
{
    struct delayer *d = arg;
    struct nfqnl_msg_packet_hdr *ph = nfq_get_msg_packet_hdr(nfa);
    uint32_t id;

    (void)qh;
    (void)msg;
    if (!ph)
        return 0; /* no id, so no verdict possible: the kernel drops it */
    id = ntohl(ph->packet_id);
    d->seen++;
    if (d->loss > 0 && uniform(&d->rng) < d->loss) {
        d->dropped++;
        verdict(d, id, NF_DROP);
    } else if (d->len == FIFO_CAP) {
        d->overflow++;
        verdict(d, id, NF_ACCEPT);
    } else {
        d->fifo[(d->head + d->len) % FIFO_CAP] =
            (struct held){.id = id, .due = now_ns() + d->delay_ns};
        d->len++;
    }
    return 0;
}

/* release: accept the held packets due by NOW (UINT64_MAX: all of them). */
static void release(struct delayer *d, uint64_t now)
{
    while (d->len > 0 && d->fifo[d->head].due <= now) {
        verdict(d, d->fifo[d->head].id, NF_ACCEPT);
        d->head = (d->head + 1) % FIFO_CAP;
        d->len--;
    }
}

/* drain: read and handle up to DRAIN_MAX queued messages without blocking.
 * Returns 0, or -1 (errno set) if the socket failed. */
static int drain(struct delayer *d, struct nfq_handle *h, int fd)
{
    char buf[65536] __attribute__((aligned));
    ssize_t r;

    for (int i = 0; i < DRAIN_MAX; i++) {
        r = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (r > 0) {
            nfq_handle_packet(h, buf, (int)r);
        } else if (r < 0 && errno == ENOBUFS) {
            /* the socket overflowed: some packets were queued but never
             * reported; the kernel drops them when the queue is unbound */
            d->lost++;
        } else if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return 0;
        } else if (r < 0 && errno == EINTR) {
            return 0;
        } else {
            if (r == 0)
                errno = ECONNRESET;
            return -1;
        }
    }
    return 0;
}

static int parse_ulong(const char *s, unsigned long max, unsigned long *out)
{
    char *end;

    if (*s < '0' || *s > '9')
        return -1;
    errno = 0;
    *out = strtoul(s, &end, 10);
    if (errno != 0 || *end != '\0' || *out > max)
        return -1;
    return 0;
}

static int parse_fraction(const char *s, double *out)
{
    char *end;

    if ((*s < '0' || *s > '9') && *s != '.')
        return -1;
    errno = 0;
    *out = strtod(s, &end);
    if (errno != 0 || *end != '\0' || !isfinite(*out) || *out < 0 || *out > 1)
        return -1;
    return 0;
}

static int usage(void)
{
    fprintf(stderr,
            "usage: netdelay QUEUE_NUM DELAY_MS LOSS_FRACTION\n"
            "  QUEUE_NUM      NFQUEUE queue number, 0..%d\n"
            "  DELAY_MS       delay of every accepted packet, 0..%d\n"
            "  LOSS_FRACTION  share of packets dropped, 0..1 (0.10 = 10 %%)\n",
            QUEUE_NUM_MAX, DELAY_MS_MAX);
    return 2;
}

static struct delayer dl;

int main(int argc, char **argv)
{
    struct delayer *d = &dl;
    struct nfq_handle *h = NULL;
    unsigned long qnum, delay_ms;
    struct sigaction sa;
    sigset_t block, unblocked;
    int fd, rcvbuf = RCVBUF, rc = 1;

    if (argc != 4)
        return usage();
    if (parse_ulong(argv[1], QUEUE_NUM_MAX, &qnum) < 0) {
        fprintf(stderr, "netdelay: bad QUEUE_NUM '%s'\n", argv[1]);
        return usage();
    }
    if (parse_ulong(argv[2], DELAY_MS_MAX, &delay_ms) < 0) {
        fprintf(stderr, "netdelay: bad DELAY_MS '%s'\n", argv[2]);
        return usage();
    }
    if (parse_fraction(argv[3], &d->loss) < 0) {
        fprintf(stderr, "netdelay: bad LOSS_FRACTION '%s'\n", argv[3]);
        return usage();
    }
    d->delay_ns = (uint64_t)delay_ms * 1000000u;
    if (getrandom(&d->rng, sizeof d->rng, 0) != sizeof d->rng) {
        fprintf(stderr, "netdelay: getrandom: %s\n", strerror(errno));
        return 1;
    }

    /* TERM and INT only arrive inside ppoll, so none is lost between the
     * check of `stop` and the wait */
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    if (sigprocmask(SIG_BLOCK, &block, &unblocked) < 0 ||
        sigaction(SIGTERM, &sa, NULL) < 0 || sigaction(SIGINT, &sa, NULL) < 0) {
        fprintf(stderr, "netdelay: signals: %s\n", strerror(errno));
        return 1;
    }
    sigdelset(&unblocked, SIGTERM);
    sigdelset(&unblocked, SIGINT);

    /* no nfq_bind_pf: since Linux 3.8 queues need no per-family binding */
    h = nfq_open();
    if (!h) {
        fprintf(stderr, "netdelay: nfq_open: %s\n", strerror(errno));
        goto out;
    }
    d->qh = nfq_create_queue(h, (uint16_t)qnum, on_packet, d);
    if (!d->qh) {
        fprintf(stderr,
                "netdelay: cannot bind queue %lu: %s (needs CAP_NET_ADMIN; "
                "one process per queue)\n",
                qnum, strerror(errno));
        goto out;
    }
    if (nfq_set_mode(d->qh, NFQNL_COPY_META, 0) < 0) {
        fprintf(stderr, "netdelay: queue %lu: copy mode: %s\n", qnum,
                strerror(errno));
        goto out;
    }
    if (nfq_set_queue_maxlen(d->qh, QUEUE_MAXLEN) < 0)
        fprintf(stderr, "netdelay: queue %lu: max length: %s (ignored)\n", qnum,
                strerror(errno));
#ifdef NFQA_CFG_F_FAIL_OPEN
    if (nfq_set_queue_flags(d->qh, NFQA_CFG_F_FAIL_OPEN, NFQA_CFG_F_FAIL_OPEN) <
        0)
        fprintf(stderr, "netdelay: queue %lu: fail-open: %s (ignored)\n", qnum,
                strerror(errno));
#endif
    fd = nfq_fd(h);
    /* FORCE needs CAP_NET_ADMIN, which binding the queue needed too */
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) < 0)
        fprintf(stderr, "netdelay: receive buffer: %s (ignored)\n",
                strerror(errno));
    printf("netdelay: queue %lu bound: delay %lu ms, loss %g\n", qnum, delay_ms,
           d->loss);
    fflush(stdout);

    while (!stop) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        struct timespec ts, *tsp = NULL;
        uint64_t now = now_ns();

        release(d, now);
        if (d->len > 0) {
            uint64_t wait = d->fifo[d->head].due - now;

            ts.tv_sec = (time_t)(wait / 1000000000u);
            ts.tv_nsec = (long)(wait % 1000000000u);
            tsp = &ts;
        }
        if (ppoll(&pfd, 1, tsp, &unblocked) < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "netdelay: poll: %s\n", strerror(errno));
            goto out;
        }
        if ((pfd.revents & (POLLIN | POLLERR)) && drain(d, h, fd) < 0) {
            fprintf(stderr, "netdelay: recv: %s\n", strerror(errno));
            goto out;
        }
    }
    rc = 0;
out:
    if (d->qh)
        release(d, UINT64_MAX);
    if (d->seen > 0 || rc == 0)
        printf("netdelay: %lu packets, %lu dropped, %lu passed at once "
               "(FIFO full), %lu reports lost, %lu verdict errors\n",
               d->seen, d->dropped, d->overflow, d->lost, d->verdict_errors);
    if (d->qh)
        nfq_destroy_queue(d->qh);
    if (h)
        nfq_close(h);
    return rc;
}
