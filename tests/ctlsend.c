/* ctlsend.c - test helper: throw bytes at a peer's control socket
 *
 *   ctlsend zmq PATH     send stdin as one ZeroMQ frame (DEALER), print
 *                        the reply frame to stdout (exit 1 on no reply)
 *   ctlsend raw PATH     write stdin to the socket file as plain bytes,
 *                        with no ZeroMQ handshake at all
 * Used by the integration tests to check that garbage is refused and the
 * peer keeps running.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <zmq.h>

static size_t slurp(unsigned char *buf, size_t cap)
{
    size_t n = 0;
    ssize_t r;

    while (n < cap && (r = read(0, buf + n, cap - n)) > 0)
        n += r;
    return n;
}

int main(int argc, char **argv)
{
    static unsigned char buf[4 << 20];
    size_t len;

    if (argc != 3) {
        fprintf(stderr, "usage: ctlsend zmq|raw SOCKET-PATH < bytes\n");
        return 64;
    }
    len = slurp(buf, sizeof(buf));
    if (strcmp(argv[1], "raw") == 0) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", argv[2]);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
            perror("ctlsend: connect");
            return 1;
        }
        if (write(fd, buf, len) < 0)
            perror("ctlsend: write");
        usleep(200 * 1000);
        close(fd);
        return 0;
    }
    char endpoint[200];
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    int linger = 0, rc = 1;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof(linger));
    snprintf(endpoint, sizeof(endpoint), "ipc://%s", argv[2]);
    if (zmq_connect(s, endpoint) == 0 && zmq_send(s, buf, len, 0) >= 0) {
        zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 5000) == 1) {
            int n = zmq_recv(s, buf, sizeof(buf), 0);
            if (n >= 0) {
                fwrite(buf, 1,
                       (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf),
                       stdout);
                putchar('\n');
                rc = 0;
            }
        }
    }
    zmq_close(s);
    zmq_ctx_term(ctx);
    return rc;
}
