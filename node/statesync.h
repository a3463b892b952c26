/* statesync.h - slurmctld's state directory, shipped between hosts
 *
 * There is no shared file system, so the controller host packs its
 * StateSaveLocation into a "generation" (one archive in memory) and the
 * caller sends it in chunks to the standby hosts.  A standby assembles the
 * chunks (struct statesync_rx), checks the digest, and installs the
 * generation as gens_dir/gen-<gen in 16 hex digits>.  A host about to run
 * slurmctld promotes the newest installed generation to be its
 * StateSaveLocation.  Nothing here touches the network.
 *
 * Archive format (version 1), all integers big-endian:
 *
 *   archive = "PDSS" version:u8 *entry end:u8(0)
 *   entry   = dir / file
 *   dir     = type:u8(1) path mode:u32
 *   file    = type:u8(2) path mode:u32 size:u64 size*byte
 *   path    = len:u16 len*byte
 *
 * A path is relative to the archived directory, '/'-separated, at most
 * STATESYNC_MAX_PATH bytes, with no empty, "." or ".." component and no
 * NUL.  mode holds permission bits only (& 0777).  A directory comes
 * before anything under it; entries are in byte order of their names
 * within a directory, so one tree always packs to the same bytes.  Nothing
 * may follow the end marker.  Only directories and regular files are
 * carried: symlinks, sockets, fifos and devices are skipped.  Owners are
 * not carried (peerd and slurmctld run as root).
 *
 * Slurm's job_state (22.05, written by dump_all_job_state() in
 * src/slurmctld/job_mgr.c, read back by load_all_job_state()) starts with
 * this header, big-endian as in Slurm's pack.c:
 *
 *   u32 17, "PROTOCOL_VERSION\0"    packstr(): length counts the NUL
 *   u16 protocol version            0x2600 for 22.05 ((38 << 8) | 0)
 *   u64 time of the save            pack_time()
 *   u32 job_id_sequence
 *   u64 bf_when_last_cycle          (protocol >= 21.08), then the jobs
 *
 * job_id_sequence is the candidate for the next job id, not the last one
 * handed out: a real slurmctld 22.05.8 with FirstJobId=1000 that ran jobs
 * 1000..1003 saved 1004 (tests/unit/fixtures/job_state.22.05).  A
 * controller that never handed out an id saves 0, not FirstJobId
 * (fixtures/job_state.22.05.nojobs).  On start slurmctld takes
 * MAX(saved, FirstJobId) (ignoring a saved value above MaxJobId) and skips
 * ids still in use: restarted with FirstJobId=5000 it gave 5000, then with
 * FirstJobId=10 it went on at 5001.  job_state.old is the previous save;
 * slurmctld reads it only when job_state cannot be opened or is empty.
 */
#ifndef PEERD_STATESYNC_H
#define PEERD_STATESYNC_H

#include <stddef.h>
#include <stdint.h>

#include "proto/err.h"

/* Largest archive packed or accepted: bounds what a peer can make us
 * allocate.
 */
#define STATESYNC_MAX_ARCHIVE ((uint64_t)1 << 30)
/* Longest relative path in an archive. */
#define STATESYNC_MAX_PATH 1024

/* Sender side */

/* Cheap signature of the tree under dir: relative paths, types, sizes,
 * modes, mtimes (ns) and inode numbers of its directories and regular
 * files, hashed with BLAKE2b-256; no file content is read.  The same tree
 * gives the same signature; a file written, added, removed or replaced
 * (slurmctld links a new inode in) changes it.  Returns 0 or -1 with err.
 */
int statesync_scan(const char *dir, unsigned char sig[32], err_t *err);

/* Pack the tree under dir into a malloc'd archive (*buf, *len; the caller
 * frees *buf) and its BLAKE2b-256 digest.  Files or directories that
 * vanish while being read are left out: slurmctld renames its files while
 * it saves.  Returns 0 or -1 with err (EFBIG beyond STATESYNC_MAX_ARCHIVE).
 */
int statesync_pack(const char *dir, unsigned char **buf, size_t *len,
                   unsigned char digest[32], err_t *err);

/* Receiver side: assembles one generation from in-order chunks.  Fields
 * are read-only to the caller; buf (total bytes) is valid once
 * statesync_rx_chunk() returned 1, and owned by rx.  gen is the generation
 * being (or last) assembled; buf is NULL when there is none.
 */
struct statesync_rx {
    uint64_t gen;
    uint64_t total, got;
    unsigned char digest[32];
    unsigned char *buf;
};

void statesync_rx_init(struct statesync_rx *rx);

/* Free the buffer and forget everything (the _fini of rx). */
void statesync_rx_reset(struct statesync_rx *rx);

/* Feed one chunk: len bytes at offset of generation gen (gen >= 1), whose
 * archive is total bytes with BLAKE2b-256 digest.  Offset 0 of a newer
 * generation starts over, dropping an incomplete older one.  Refused (-1,
 * err says why, rx unchanged): a chunk of an older generation, a gap, an
 * overlap, a total or digest differing from the generation's first chunk,
 * total above STATESYNC_MAX_ARCHIVE, an empty chunk.  When the last byte
 * arrives the digest is checked: 1 if it matches (rx->buf, rx->total hold
 * the archive), else -1 and the buffer is dropped (offset 0 of the same
 * generation may then start again).  Returns 0 while more is needed.
 */
int statesync_rx_chunk(struct statesync_rx *rx, uint64_t gen, uint64_t total,
                       uint64_t offset, const unsigned char digest[32],
                       const unsigned char *data, size_t len, err_t *err);

/* Install a complete archive as gens_dir/gen-<gen as 16 hex digits>:
 * unpack into gens_dir/.tmp-<same> (made afresh), fsync every file and
 * directory, rename into place, fsync gens_dir (created 0700 if missing).
 * Then remove older generations so that only the newest keep (>= 1)
 * remain; a removal that fails is logged and retried next time.  An
 * installed generation never changes: installing it again returns 0 and
 * leaves it as it is.  A corrupt archive is refused (errno EINVAL) and
 * leaves nothing behind.  The generation directory gets mode 0700, what
 * is in it the archive's modes; owners are the caller's.  Not safe against
 * a concurrent statesync_install/newest on the same gens_dir.
 * Returns 0 or -1 with err.
 */
int statesync_install(const char *gens_dir, uint64_t gen,
                      const unsigned char *buf, size_t len, int keep,
                      err_t *err);

/* Newest installed generation in gens_dir: returns 1 with *gen and its
 * directory in path (cap bytes), 0 if there is none (or no gens_dir), -1
 * with err.  .tmp-* leftovers of an interrupted install are removed.
 */
int statesync_newest(const char *gens_dir, uint64_t *gen, char *path,
                     size_t cap, err_t *err);

/* Make state_dir (mode 0700) a copy of the generation directory gen_path:
 * build state_dir.new, fsync it, move an existing state_dir to
 * state_dir.prev (replacing an older one), rename state_dir.new to
 * state_dir, fsync the parent.  On failure state_dir is as it was.  A
 * crash between the two renames leaves state_dir.prev and no state_dir;
 * calling statesync_promote again repairs that.  Returns 0 or -1 with err.
 */
int statesync_promote(const char *gen_path, const char *state_dir, err_t *err);

/* The job_id_sequence saved in state_dir/job_state, or job_state.old when
 * job_state is missing or empty (as slurmctld does): the next job id
 * slurmctld would consider, before its MAX with FirstJobId (0: no id was
 * ever handed out).  Returns 1 with *seq, 0 if neither file exists, -1
 * with err if the file is unreadable or its header is not Slurm's.
 */
int statesync_job_id_sequence(const char *state_dir, uint32_t *seq, err_t *err);

#endif
