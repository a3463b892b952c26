/* ship.h - slurmctld's state, shipped from the controller to standbys
 *
 * There is no shared file system.  While slurmctld runs here, every
 * SHIP_INTERVAL the state dir is scanned (node/statesync.h, no content
 * read); when it changed, it is packed into a new generation
 * gen = term << 32 | counter and sent in chunks (WIRE_STATE_CHUNK) to every
 * other voter.  A standby takes chunks only from the placed controller,
 * installs a complete generation (temp dir, fsync, rename) and answers
 * WIRE_STATE_ACK with the newest generation it holds; a standby that has
 * not acknowledged the newest generation gets it again after
 * SHIP_RESEND.  Before a new term's slurmctld starts, the newest
 * generation is put in place unless this host's own state dir is newer.
 */
#ifndef PEERD_SHIP_H
#define PEERD_SHIP_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "node/statesync.h"
#include "proto/wire.h"

struct peerd;

#define SHIP_INTERVAL 0.5 /* seconds between scans of the state dir */
#define SHIP_RESEND 3.0   /* seconds before a generation is sent again */
#define SHIP_MAX_STANDBYS 8
#define SHIP_KEEP 2 /* generations kept by a standby */

struct ship_standby {
    uint64_t id;
    uint64_t acked;      /* newest generation it reported installed */
    double acked_at;     /* when */
    double behind_since; /* 0 when it holds our newest generation */
    uint64_t sent;       /* newest generation sent to it */
    double sent_at;
    char error[128]; /* its last refusal */
};

struct ship {
    char gens_dir[PATH_MAX];
    /* the controller side */
    unsigned char sig[32];
    bool have_sig;
    uint64_t gen; /* newest packed here */
    double gen_at;
    unsigned char *archive;
    size_t len;
    unsigned char digest[32];
    double next_scan;
    struct ship_standby sb[SHIP_MAX_STANDBYS];
    int n_sb;
    /* the standby side */
    struct statesync_rx rx;
    uint64_t installed; /* newest generation installed here */
    double installed_at;
    uint64_t own_gen; /* the generation this host's state dir holds */
    uint64_t refused; /* chunks not taken */
};

void ship_init(struct peerd *p);
void ship_fini(struct peerd *p);

/* Controller side, every loop round: pack and send what changed.  */
void ship_tick(struct peerd *p, double now);

/* Handover: ship the state slurmctld saved when it stopped to voter to
 * (0: every standby).  True once it holds it (or after a bounded wait).
 */
bool ship_final(struct peerd *p, uint64_t to, double now);

/* A WIRE_STATE_CHUNK or WIRE_STATE_ACK from a peer (m not consumed). */
void ship_recv(struct peerd *p, const struct wire_msg *m, double now);

/* Before slurmctld starts for a new term: promote the newest generation
 * if it is newer than the state dir.
 */
void ship_install(struct peerd *p);

/* The highest job id sequence in the state this host holds (its state
 * dir and the newest generation); 0 if none.
 */
uint64_t ship_seen_job_id(struct peerd *p);

/* {"generation","standbys":[...]} on the controller; {"installed",...}
 * on a standby (doc/json.md).
 */
json_t *ship_status_json(struct peerd *p, double now);

#endif
