/* members.c - the member table and the join tokens, as applied from Raft
 *
 * Text columns are copied into fixed buffers; a row whose text does not
 * fit, or whose key is not 32 bytes, is reported as damaged rather than
 * cut short.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/members.h"
#include "store/store_int.h"

#define MEMBER_COLUMNS                                                         \
    "id, name, pubkey, address, cpus, memory_mb, voter, state, config_hash, "  \
    "munge_key_hash, joined"

int members_put(store_t *s, const struct member *m, err_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc;

    /* not INSERT OR REPLACE: that would silently delete another row that
     * shares the name or key (UNIQUE); a clash must fail instead
     */
    rc = sqlite3_prepare_v2(
        store_db(s),
        "INSERT INTO members (" MEMBER_COLUMNS
        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) "
        "ON CONFLICT(id) DO UPDATE SET name = excluded.name, "
        "pubkey = excluded.pubkey, address = excluded.address, "
        "cpus = excluded.cpus, memory_mb = excluded.memory_mb, "
        "voter = excluded.voter, state = excluded.state, "
        "config_hash = excluded.config_hash, "
        "munge_key_hash = excluded.munge_key_hash, joined = excluded.joined",
        -1, &st, NULL);
    if (rc != SQLITE_OK)
        return sql_fail(s, err, "cannot write a member", rc);
    sqlite3_bind_int64(st, 1, (sqlite3_int64)m->id);
    sqlite3_bind_text(st, 2, m->name, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 3, m->pubkey, MEMBER_KEY_BYTES, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, m->address, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 5, m->cpus);
    sqlite3_bind_int64(st, 6, m->memory_mb);
    sqlite3_bind_int(st, 7, m->voter ? 1 : 0);
    sqlite3_bind_text(st, 8, m->state, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 9, m->config_hash, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 10, m->munge_key_hash, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 11, (sqlite3_int64)m->joined);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return sql_fail(s, err, "cannot write a member", rc);
    return 0;
}

static int copy_text(sqlite3_stmt *st, int col, char *out, size_t cap)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    size_t n = t ? strlen((const char *)t) : 0;

    if (n >= cap)
        return -1;
    memcpy(out, t ? (const char *)t : "", n + 1);
    return 0;
}

static int row_to_member(sqlite3_stmt *st, struct member *m)
{
    memset(m, 0, sizeof(*m));
    m->id = (uint64_t)sqlite3_column_int64(st, 0);
    if (copy_text(st, 1, m->name, sizeof(m->name)) < 0 ||
        sqlite3_column_bytes(st, 2) != MEMBER_KEY_BYTES ||
        copy_text(st, 3, m->address, sizeof(m->address)) < 0 ||
        copy_text(st, 7, m->state, sizeof(m->state)) < 0 ||
        copy_text(st, 8, m->config_hash, sizeof(m->config_hash)) < 0 ||
        copy_text(st, 9, m->munge_key_hash, sizeof(m->munge_key_hash)) < 0)
        return -1;
    memcpy(m->pubkey, sqlite3_column_blob(st, 2), MEMBER_KEY_BYTES);
    m->cpus = sqlite3_column_int(st, 4);
    m->memory_mb = (long)sqlite3_column_int64(st, 5);
    m->voter = sqlite3_column_int(st, 6) != 0;
    m->joined = (uint64_t)sqlite3_column_int64(st, 10);
    return 0;
}

int members_list(store_t *s, struct member **out, size_t *np, err_t *err)
{
    sqlite3_stmt *st = NULL;
    struct member *v = NULL;
    size_t n = 0, cap = 0;
    int rc;

    *out = NULL;
    *np = 0;
    rc = sqlite3_prepare_v2(
        store_db(s), "SELECT " MEMBER_COLUMNS " FROM members ORDER BY id", -1,
        &st, NULL);
    if (rc != SQLITE_OK)
        return sql_fail(s, err, "cannot read members", rc);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            struct member *p = realloc(v, ncap * sizeof(*p));
            if (!p) {
                errprintf_errno(err, "cannot read members");
                goto fail;
            }
            v = p;
            cap = ncap;
        }
        if (row_to_member(st, &v[n]) < 0) {
            errno = EBADMSG;
            errprintf(err, "member row %lld is damaged",
                      (long long)sqlite3_column_int64(st, 0));
            goto fail;
        }
        n++;
    }
    if (rc != SQLITE_DONE) {
        sql_fail(s, err, "cannot read members", rc);
        goto fail;
    }
    sqlite3_finalize(st);
    *out = v;
    *np = n;
    return 0;
fail:
    sqlite3_finalize(st);
    free(v);
    return -1;
}

/* One member by a column: kind 0 id, 1 pubkey, 2 name. */
static int get_one(store_t *s, int kind, uint64_t id, const void *key,
                   struct member *m, err_t *err)
{
    static const char *const sql[] = {
        "SELECT " MEMBER_COLUMNS " FROM members WHERE id = ?1",
        "SELECT " MEMBER_COLUMNS " FROM members WHERE pubkey = ?1",
        "SELECT " MEMBER_COLUMNS " FROM members WHERE name = ?1",
    };
    sqlite3_stmt *st = NULL;
    int rc, found = 0;

    rc = sqlite3_prepare_v2(store_db(s), sql[kind], -1, &st, NULL);
    if (rc != SQLITE_OK)
        return sql_fail(s, err, "cannot read a member", rc);
    if (kind == 0)
        sqlite3_bind_int64(st, 1, (sqlite3_int64)id);
    else if (kind == 1)
        sqlite3_bind_blob(st, 1, key, MEMBER_KEY_BYTES, SQLITE_STATIC);
    else
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        if (row_to_member(st, m) < 0) {
            sqlite3_finalize(st);
            errno = EBADMSG;
            return errprintf(err, "a member row is damaged");
        }
        found = 1;
    } else if (rc != SQLITE_DONE) {
        sqlite3_finalize(st);
        return sql_fail(s, err, "cannot read a member", rc);
    }
    sqlite3_finalize(st);
    return found;
}

int members_get(store_t *s, uint64_t id, struct member *m, err_t *err)
{
    return get_one(s, 0, id, NULL, m, err);
}

int members_by_key(store_t *s, const unsigned char *pubkey, struct member *m,
                   err_t *err)
{
    return get_one(s, 1, 0, pubkey, m, err);
}

int members_by_name(store_t *s, const char *name, struct member *m, err_t *err)
{
    return get_one(s, 2, 0, name, m, err);
}

int tokens_put(store_t *s, const struct token *t, err_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc;

    rc = sqlite3_prepare_v2(store_db(s),
                            "INSERT OR REPLACE INTO tokens (id, verifier, "
                            "expires, uses_left) VALUES (?1, ?2, ?3, ?4)",
                            -1, &st, NULL);
    if (rc != SQLITE_OK)
        return sql_fail(s, err, "cannot write a token", rc);
    sqlite3_bind_text(st, 1, t->id, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, t->verifier, TOKEN_VERIFIER_BYTES, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, t->expires);
    sqlite3_bind_int(st, 4, t->uses_left);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return sql_fail(s, err, "cannot write a token", rc);
    return 0;
}

int tokens_get(store_t *s, const char *id, struct token *t, err_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc, found = 0;

    rc = sqlite3_prepare_v2(store_db(s),
                            "SELECT id, verifier, expires, uses_left FROM "
                            "tokens WHERE id = ?1",
                            -1, &st, NULL);
    if (rc != SQLITE_OK)
        return sql_fail(s, err, "cannot read a token", rc);
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        memset(t, 0, sizeof(*t));
        if (copy_text(st, 0, t->id, sizeof(t->id)) < 0 ||
            sqlite3_column_bytes(st, 1) != TOKEN_VERIFIER_BYTES) {
            sqlite3_finalize(st);
            errno = EBADMSG;
            return errprintf(err, "a token row is damaged");
        }
        memcpy(t->verifier, sqlite3_column_blob(st, 1), TOKEN_VERIFIER_BYTES);
        t->expires = sqlite3_column_int64(st, 2);
        t->uses_left = sqlite3_column_int(st, 3);
        found = 1;
    } else if (rc != SQLITE_DONE) {
        sqlite3_finalize(st);
        return sql_fail(s, err, "cannot read a token", rc);
    }
    sqlite3_finalize(st);
    return found;
}
