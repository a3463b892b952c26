/* hostinfo.c - what this host is: name, address, CPUs, memory */
#include "config.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "node/hostinfo.h"

static int detect_address(char *out, size_t outlen)
{
    struct ifaddrs *ifa_list, *ifa;
    int found = 0;

    if (getifaddrs(&ifa_list) < 0)
        return -1;
    for (ifa = ifa_list; ifa && !found; ifa = ifa->ifa_next) {
        const struct sockaddr_in *sin;
        if (!ifa->ifa_addr || ifa->ifa_addr->sa_family != AF_INET)
            continue;
        if (!(ifa->ifa_flags & IFF_UP) || (ifa->ifa_flags & IFF_LOOPBACK))
            continue;
        sin = (const struct sockaddr_in *)ifa->ifa_addr;
        if (inet_ntop(AF_INET, &sin->sin_addr, out, outlen))
            found = 1;
    }
    freeifaddrs(ifa_list);
    return found ? 0 : -1;
}

int hostinfo_detect(struct hostinfo *hi, const char *want_addr, err_t *err)
{
    struct in_addr in;
    char *dot;
    long pages, pagesize;

    memset(hi, 0, sizeof(*hi));
    if (gethostname(hi->name, sizeof(hi->name) - 1) < 0)
        return errprintf_errno(err, "cannot read the host name");
    if ((dot = strchr(hi->name, '.')))
        *dot = '\0';
    if (hi->name[0] == '\0')
        return errprintf(err, "this host has no host name");

    if (want_addr) {
        if (inet_pton(AF_INET, want_addr, &in) != 1)
            return errprintf(err, "'%s' is not an IPv4 address", want_addr);
        snprintf(hi->address, sizeof(hi->address), "%s", want_addr);
    } else if (detect_address(hi->address, sizeof(hi->address)) < 0) {
        snprintf(hi->address, sizeof(hi->address), "127.0.0.1");
    }

    hi->cpus = (int)sysconf(_SC_NPROCESSORS_ONLN);
    pages = sysconf(_SC_PHYS_PAGES);
    pagesize = sysconf(_SC_PAGE_SIZE);
    if (hi->cpus < 1 || pages < 1 || pagesize < 1)
        return errprintf(err, "cannot detect this host's CPUs and memory");
    hi->memory_mb = (long)(((unsigned long long)pages * pagesize) >> 20);
    return 0;
}
