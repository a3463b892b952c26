/* fence.h - a watchdog process that kills slurmctld when the lease ends
 *
 * peerd may stop (SIGSTOP, a stalled disk, a long page fault) while the
 * slurmctld it started keeps serving; the lease must bind slurmctld even
 * then.  So a small process forked from peerd holds the deadline: peerd
 * tells it, on every renewal, the process group to kill and until when
 * (CLOCK_MONOTONIC) it may live; at that moment, or when peerd's end of
 * the pipe closes, the fence sends SIGKILL to the group.  The fence does
 * nothing else, so nothing else can hold it up.
 */
#ifndef PEERD_FENCE_H
#define PEERD_FENCE_H

#include <stdbool.h>
#include <sys/types.h>

typedef struct fence fence_t;

/* Fork the fence.  NULL with errno on failure. */
fence_t *fence_start(void);

/* Let process group pgid (0: none) live until `until` (monotonic
 * seconds).  Cheap: writes only when something changed.  Returns 0, -1
 * if the fence is gone (then the caller must not run slurmctld).
 */
int fence_set(fence_t *f, pid_t pgid, double until);

/* The fence's pid (for status). */
pid_t fence_pid(fence_t *f);

/* Stop the fence (it kills what it guards first). */
void fence_stop(fence_t **fp);

#endif
