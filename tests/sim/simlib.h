/* simlib.h - what the simulations share: a seeded PRNG and TAP output
 *
 * Header-only, one simulation program per translation unit.  The PRNG is
 * splitmix64: a seed replays a run exactly.
 */
#ifndef PEERD_SIMLIB_H
#define PEERD_SIMLIB_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct rng {
    uint64_t s;
};

static inline uint64_t rng_next(struct rng *g)
{
    uint64_t z = (g->s += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint64_t rng_below(struct rng *g, uint64_t n)
{
    return n ? rng_next(g) % n : 0;
}

static inline bool rng_pct(struct rng *g, unsigned pct)
{
    return rng_below(g, 100) < pct;
}

/* The randomness a state machine under test is given. */
static inline uint64_t node_rand(void *arg)
{
    return rng_next(arg);
}

static int n_tests, n_failed;

static inline void tap(bool ok, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static inline void tap(bool ok, const char *fmt, ...)
{
    va_list ap;

    printf("%sok %d - ", ok ? "" : "not ", ++n_tests);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
    if (!ok)
        n_failed++;
}

/* Checks inside one TAP point: the first failure is printed. */
static inline bool expect(bool *ok, bool cond, const char *what)
{
    if (!cond && *ok)
        printf("# failed: %s\n", what);
    if (!cond)
        *ok = false;
    return cond;
}

#endif
