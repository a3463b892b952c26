/* raftlog.c - Raft's persistent state in the store
 *
 * raft_state holds "term", "vote" and "applied"; raft_log one row per
 * entry.  Indexes are stored as SQLite integers (signed 64-bit): an index
 * above INT64_MAX is refused, which no real log reaches.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/raftlog.h"
#include "store/store_int.h"

static int get_state(store_t *s, const char *key, uint64_t *out, err_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc;

    *out = 0;
    rc = sqlite3_prepare_v2(store_db(s),
                            "SELECT value FROM raft_state WHERE key = ?1", -1,
                            &st, NULL);
    if (rc != SQLITE_OK)
        return sql_fail(s, err, "cannot read Raft state", rc);
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        sqlite3_int64 v = sqlite3_column_int64(st, 0);
        if (v < 0) {
            sqlite3_finalize(st);
            errno = EBADMSG;
            return errprintf(err, "Raft state %s is negative", key);
        }
        *out = (uint64_t)v;
    } else if (rc != SQLITE_DONE) {
        sqlite3_finalize(st);
        return sql_fail(s, err, "cannot read Raft state", rc);
    }
    sqlite3_finalize(st);
    return 0;
}

static int put_state(store_t *s, const char *key, uint64_t v, err_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc;

    if (v > INT64_MAX) {
        errno = ERANGE;
        return errprintf(err, "Raft %s out of range", key);
    }
    rc = sqlite3_prepare_v2(
        store_db(s),
        "INSERT OR REPLACE INTO raft_state (key, value) VALUES (?1, ?2)", -1,
        &st, NULL);
    if (rc != SQLITE_OK)
        return sql_fail(s, err, "cannot write Raft state", rc);
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)v);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return sql_fail(s, err, "cannot write Raft state", rc);
    return 0;
}

void raftlog_free(struct wire_entry *log, size_t n)
{
    for (size_t i = 0; log && i < n; i++)
        free(log[i].data);
    free(log);
}

int raftlog_load(store_t *s, struct raftlog_state *rs, struct wire_entry **logp,
                 size_t *np, err_t *err)
{
    sqlite3_stmt *st = NULL;
    struct wire_entry *log = NULL;
    size_t n = 0, cap = 0;
    int rc;

    *logp = NULL;
    *np = 0;
    if (get_state(s, "term", &rs->term, err) < 0 ||
        get_state(s, "vote", &rs->vote, err) < 0 ||
        get_state(s, "applied", &rs->applied, err) < 0)
        return -1;
    rc = sqlite3_prepare_v2(store_db(s),
                            "SELECT idx, term, type, data FROM raft_log "
                            "ORDER BY idx",
                            -1, &st, NULL);
    if (rc != SQLITE_OK)
        return sql_fail(s, err, "cannot read the Raft log", rc);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct wire_entry *e;
        int len = sqlite3_column_bytes(st, 3);
        if (sqlite3_column_int64(st, 0) != (sqlite3_int64)(n + 1) ||
            sqlite3_column_int64(st, 1) < 0 || sqlite3_column_int(st, 2) < 0 ||
            sqlite3_column_int(st, 2) > 255) {
            errno = EBADMSG;
            errprintf(err, "the Raft log is damaged at entry %zu", n + 1);
            goto fail;
        }
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            struct wire_entry *p = realloc(log, ncap * sizeof(*p));
            if (!p) {
                errprintf_errno(err, "cannot read the Raft log");
                goto fail;
            }
            log = p;
            cap = ncap;
        }
        e = &log[n];
        memset(e, 0, sizeof(*e));
        e->index = n + 1;
        e->term = (uint64_t)sqlite3_column_int64(st, 1);
        e->type = (uint8_t)sqlite3_column_int(st, 2);
        e->len = (uint32_t)len;
        if (!(e->data = malloc(len ? len : 1))) {
            errprintf_errno(err, "cannot read the Raft log");
            goto fail;
        }
        if (len)
            memcpy(e->data, sqlite3_column_blob(st, 3), len);
        n++;
    }
    if (rc != SQLITE_DONE) {
        sql_fail(s, err, "cannot read the Raft log", rc);
        goto fail;
    }
    sqlite3_finalize(st);
    *logp = log;
    *np = n;
    return 0;
fail:
    sqlite3_finalize(st);
    raftlog_free(log, n);
    return -1;
}

static int exec1(store_t *s, const char *sql, err_t *err)
{
    int rc = sqlite3_exec(store_db(s), sql, NULL, NULL, NULL);

    return rc == SQLITE_OK ? 0 : sql_fail(s, err, "database error", rc);
}

int raftlog_save(store_t *s, const uint64_t *term, const uint64_t *vote,
                 const struct wire_entry *entries, size_t n, err_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc;

    if (exec1(s, "BEGIN IMMEDIATE", err) < 0)
        return -1;
    if ((term && put_state(s, "term", *term, err) < 0) ||
        (vote && put_state(s, "vote", *vote, err) < 0))
        goto fail;
    if (n > 0) {
        if (entries[0].index == 0 || entries[0].index > INT64_MAX) {
            errno = ERANGE;
            errprintf(err, "Raft entry index out of range");
            goto fail;
        }
        rc = sqlite3_prepare_v2(
            store_db(s), "DELETE FROM raft_log WHERE idx >= ?1", -1, &st, NULL);
        if (rc == SQLITE_OK) {
            sqlite3_bind_int64(st, 1, (sqlite3_int64)entries[0].index);
            rc = sqlite3_step(st);
        }
        sqlite3_finalize(st);
        st = NULL;
        if (rc != SQLITE_DONE) {
            sql_fail(s, err, "cannot cut the Raft log", rc);
            goto fail;
        }
        rc = sqlite3_prepare_v2(store_db(s),
                                "INSERT INTO raft_log (idx, term, type, data) "
                                "VALUES (?1, ?2, ?3, ?4)",
                                -1, &st, NULL);
        if (rc != SQLITE_OK) {
            sql_fail(s, err, "cannot write the Raft log", rc);
            goto fail;
        }
        for (size_t i = 0; i < n; i++) {
            sqlite3_reset(st);
            sqlite3_bind_int64(st, 1, (sqlite3_int64)entries[i].index);
            sqlite3_bind_int64(st, 2, (sqlite3_int64)entries[i].term);
            sqlite3_bind_int(st, 3, entries[i].type);
            sqlite3_bind_blob(st, 4,
                              entries[i].len ? (const void *)entries[i].data
                                             : (const void *)"",
                              (int)entries[i].len, SQLITE_STATIC);
            if ((rc = sqlite3_step(st)) != SQLITE_DONE) {
                sql_fail(s, err, "cannot write the Raft log", rc);
                goto fail;
            }
        }
        sqlite3_finalize(st);
        st = NULL;
    }
    if (exec1(s, "COMMIT", err) < 0)
        goto fail;
    return 0;
fail:
    sqlite3_finalize(st);
    sqlite3_exec(store_db(s), "ROLLBACK", NULL, NULL, NULL);
    return -1;
}

int raftlog_set_applied(store_t *s, uint64_t index, err_t *err)
{
    return put_state(s, "applied", index, err);
}
