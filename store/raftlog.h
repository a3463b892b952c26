/* raftlog.h - Raft's persistent state in the store
 *
 * The hard state (term, vote), the applied index and the log entries.
 * Writes are synchronous (synchronous=FULL): when raftlog_save() returns,
 * the entries are on disk, which is what lets a peer acknowledge them.
 * The applied index is written by the caller inside the transaction that
 * applies an entry (raftlog_set_applied), so state and index never
 * disagree after a crash.
 */
#ifndef PEERD_RAFTLOG_H
#define PEERD_RAFTLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/err.h"
#include "proto/wire.h"
#include "store/store.h"

struct raftlog_state {
    uint64_t term;
    uint64_t vote;
    uint64_t applied;
};

/* Load the hard state and the whole log (entries 1..n, in order, each
 * owning its data; free with raftlog_free).  EBADMSG if the stored log
 * has a gap.
 */
int raftlog_load(store_t *s, struct raftlog_state *st, struct wire_entry **log,
                 size_t *n, err_t *err);
void raftlog_free(struct wire_entry *log, size_t n);

/* In one transaction: the hard state (if hs), then entries — the stored
 * log is cut after entries[0].index - 1 before they are written.
 */
int raftlog_save(store_t *s, const uint64_t *term, const uint64_t *vote,
                 const struct wire_entry *entries, size_t n, err_t *err);

/* Inside the caller's transaction. */
int raftlog_set_applied(store_t *s, uint64_t index, err_t *err);

#endif
