/* peersend.c - test helper: throw bytes at a peer's network sockets
 *
 *   peersend raw HOST PORT            stdin as plain TCP bytes (no ZMTP)
 *   peersend curve HOST PORT KEYHEX [COUNT]
 *                                     stdin as one ZeroMQ frame over CURVE
 *                                     to a server with public key KEYHEX,
 *                                     with a fresh random client key; sent
 *                                     COUNT times (default 1)
 * Exit 0 once sent; the peer's answer, if any, is not waited for.  Used
 * by the integration tests to check that strangers and garbage are
 * refused, counted, and change nothing.
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sodium.h>
#include <zmq.h>

static unsigned char *slurp(size_t *len)
{
    size_t cap = 1 << 16, n = 0;
    unsigned char *buf = malloc(cap);
    ssize_t r;

    while (buf && (r = read(0, buf + n, cap - n)) > 0) {
        n += r;
        if (n == cap) {
            unsigned char *p = realloc(buf, cap *= 2);
            if (!p) {
                free(buf);
                return NULL;
            }
            buf = p;
        }
    }
    *len = n;
    return buf;
}

static int send_raw(const char *host, int port, const unsigned char *buf,
                    size_t len)
{
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    if (fd < 0 || inet_pton(AF_INET, host, &sa.sin_addr) != 1 ||
        connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        perror("peersend: connect");
        return 1;
    }
    if (write(fd, buf, len) < 0)
        perror("peersend: write");
    usleep(300 * 1000);
    close(fd);
    return 0;
}

static int send_curve(const char *host, int port, const char *keyhex, int count,
                      const unsigned char *buf, size_t len)
{
    unsigned char server[32], pub[32], sec[32];
    size_t got = 0;
    char ep[128];
    int linger = 200, rc = 0;
    void *ctx, *s;

    if (sodium_hex2bin(server, 32, keyhex, strlen(keyhex), NULL, &got, NULL) <
            0 ||
        got != 32) {
        fprintf(stderr, "peersend: bad key\n");
        return 64;
    }
    crypto_box_keypair(pub, sec);
    ctx = zmq_ctx_new();
    s = zmq_socket(ctx, ZMQ_DEALER);
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof(linger));
    zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, server, 32);
    zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, pub, 32);
    zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, sec, 32);
    snprintf(ep, sizeof(ep), "tcp://%s:%d", host, port);
    if (zmq_connect(s, ep) < 0) {
        fprintf(stderr, "peersend: %s\n", zmq_strerror(zmq_errno()));
        rc = 1;
    }
    for (int i = 0; rc == 0 && i < count; i++)
        if (zmq_send(s, buf, len, 0) < 0)
            rc = 1;
    usleep(500 * 1000); /* let it go out before the socket closes */
    zmq_close(s);
    zmq_ctx_term(ctx);
    return rc;
}

int main(int argc, char **argv)
{
    unsigned char *buf;
    size_t len = 0;
    int rc;

    if (argc < 4 || (strcmp(argv[1], "raw") && strcmp(argv[1], "curve")) ||
        (strcmp(argv[1], "curve") == 0 && argc < 5)) {
        fprintf(stderr, "usage: peersend raw HOST PORT < bytes\n"
                        "       peersend curve HOST PORT KEYHEX [COUNT] "
                        "< bytes\n");
        return 64;
    }
    if (sodium_init() < 0 || !(buf = slurp(&len)))
        return 1;
    if (strcmp(argv[1], "raw") == 0)
        rc = send_raw(argv[2], atoi(argv[3]), buf, len);
    else
        rc = send_curve(argv[2], atoi(argv[3]), argv[4],
                        argc > 5 ? atoi(argv[5]) : 1, buf, len);
    free(buf);
    return rc;
}
