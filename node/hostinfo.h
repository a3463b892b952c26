/* hostinfo.h - what this host is: name, address, CPUs, memory
 *
 * Memory is computed the way slurmd computes RealMemory (physical pages
 * times page size, in MiB), so the node we declare never has more memory
 * than slurmd finds and is never drained for "Low RealMemory".
 */
#ifndef PEERD_HOSTINFO_H
#define PEERD_HOSTINFO_H

#include <stddef.h>

#include "proto/err.h"

struct hostinfo {
    char name[64];    /* short host name, as slurmd sees it */
    char address[64]; /* IPv4 address other hosts reach us at */
    int cpus;
    long memory_mb;
};

/* Fill hi.  address: use want_addr if given (checked to be an IPv4
 * address), else the first non-loopback IPv4 address of an interface
 * that is up, else 127.0.0.1.  Returns 0 or -1 with err filled.
 */
int hostinfo_detect(struct hostinfo *hi, const char *want_addr, err_t *err);

#endif
