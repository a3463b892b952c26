/* fsm.h - the cluster state machine: committed Raft entries -> SQLite
 *
 * Every committed entry is applied in one store transaction together with
 * the new applied index, so after a crash the tables and the index agree.
 * Application entries (type FSM_ENTRY) carry a JSON object {"op": ...};
 * see doc/protocol-peer.md for the operations.  Applying is deterministic:
 * it depends only on the entry and the tables (an entry's own "time"
 * field stands in for the clock), so every peer ends with the same rows.
 * An entry that is malformed or not valid in the current state (a used up
 * token, say) changes nothing but the applied index, the same on every
 * peer.
 */
#ifndef PEERD_FSM_H
#define PEERD_FSM_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "node/raft.h"
#include "proto/err.h"
#include "store/store.h"

#define FSM_ENTRY RAFT_ENTRY_USER
#define FSM_MAX_JOB_ID 0x03ff0000 /* Slurm's default MaxJobId */

/* What applying an entry changed, for the caller to act on. */
struct fsm_effects {
    bool bootstrapped;      /* the cluster's first entry */
    bool config_changed;    /* re-render slurm.conf */
    bool members_changed;   /* peers, voters, admission keys */
    uint64_t admitted;      /* member id admitted by this entry, or 0 */
    bool refused;           /* a member_add that was not valid */
    bool placement_changed; /* controller / term / first job id */
    bool transfer;          /* peerctl transfer: the leader hands over */
    uint64_t transfer_to;   /* to this voter, 0 = any */
    bool secret_changed;    /* a secret_set was applied */
    bool storage_changed;   /* storage host / replica / term */
    char why[160];          /* why it was refused / ignored */
};

/* The accounting database password's name in the secret table. */
#define FSM_SECRET_DB_PASSWORD "db_password"

/* Apply one committed entry.  Returns 0, or -1 with err if the store
 * failed (the entry is then not applied and must be retried).
 */
int fsm_apply(store_t *s, const struct wire_entry *e, struct fsm_effects *fx,
              err_t *err);

/* May an administrator set this config key?  "voters", "description",
 * and "slurm.<Param>" (a line added to slurm.conf).
 */
bool fsm_config_key_ok(const char *key);

/* Is value acceptable for key?  If not, why says so. */
bool fsm_config_value_ok(const char *key, const char *value, char *why,
                         size_t cap);

/* Build an application entry payload: a malloc'd compact JSON string
 * (steals o).  NULL on failure.
 */
char *fsm_payload(json_t *o);

#endif
