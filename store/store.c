/* store.c - the peer's SQLite database
 *
 * Invariant: after store_open() returns, the schema on disk is exactly
 * STORE_SCHEMA_VERSION and has passed PRAGMA quick_check.  Migrations run
 * each in its own transaction together with the version bump, so a crash
 * leaves the database at one version or the next, never between.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sqlite3.h>

#include "store/store.h"

#include "store/store_int.h"

/* migrations[i] brings the schema from version i to version i + 1. */
static const char *const migrations[STORE_SCHEMA_VERSION] = {
    "CREATE TABLE schema_version (version INTEGER NOT NULL);"
    "INSERT INTO schema_version (version) VALUES (0);"
    "CREATE TABLE config (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE local (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE secret (name TEXT PRIMARY KEY, value BLOB NOT NULL);",

    /* 2: Raft log and hard state; members and join tokens */
    "CREATE TABLE raft_state (key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
    "CREATE TABLE raft_log (idx INTEGER PRIMARY KEY, term INTEGER NOT NULL,"
    " type INTEGER NOT NULL, data BLOB NOT NULL);"
    "CREATE TABLE members (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
    " pubkey BLOB NOT NULL UNIQUE, address TEXT NOT NULL,"
    " cpus INTEGER NOT NULL, memory_mb INTEGER NOT NULL,"
    " voter INTEGER NOT NULL DEFAULT 0, state TEXT NOT NULL,"
    " config_hash TEXT NOT NULL DEFAULT '',"
    " munge_key_hash TEXT NOT NULL DEFAULT '', joined INTEGER NOT NULL);"
    "CREATE TABLE tokens (id TEXT PRIMARY KEY, verifier BLOB NOT NULL,"
    " expires INTEGER NOT NULL, uses_left INTEGER NOT NULL);",
};

static const char *table_name(enum store_table t)
{
    return t == STORE_CONFIG ? "config" : "local";
}

sqlite3 *store_db(store_t *s)
{
    return s->db;
}

bool is_corrupt(int rc)
{
    rc &= 0xff;
    return rc == SQLITE_NOTADB || rc == SQLITE_CORRUPT;
}

int sql_fail(store_t *s, err_t *err, const char *what, int rc)
{
    errno = is_corrupt(rc) ? EBADMSG : EIO;
    return errprintf(err, "%s: %s", what, sqlite3_errmsg(s->db));
}

static int exec(store_t *s, const char *sql, err_t *err)
{
    char *msg = NULL;
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, &msg);

    if (rc != SQLITE_OK) {
        errno = is_corrupt(rc) ? EBADMSG : EIO;
        errprintf(err, "database error: %s", msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

/* Returns the version, 0 for an empty database, -1 on error. */
static int read_version(store_t *s, err_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc, version = -1;

    rc = sqlite3_prepare_v2(s->db,
                            "SELECT count(*) FROM sqlite_master WHERE "
                            "type = 'table' AND name = 'schema_version'",
                            -1, &st, NULL);
    if (rc != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW) {
        rc = sqlite3_errcode(s->db);
        sqlite3_finalize(st);
        return sql_fail(s, err, "cannot read the database", rc);
    }
    if (sqlite3_column_int(st, 0) == 0) {
        sqlite3_finalize(st);
        return 0;
    }
    sqlite3_finalize(st);
    rc = sqlite3_prepare_v2(s->db, "SELECT version FROM schema_version", -1,
                            &st, NULL);
    if (rc != SQLITE_OK)
        return sql_fail(s, err, "cannot read the schema version", rc);
    if (sqlite3_step(st) == SQLITE_ROW &&
        sqlite3_column_type(st, 0) == SQLITE_INTEGER)
        version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (version < 0) {
        errno = EBADMSG;
        return errprintf(err, "the schema_version table is damaged");
    }
    return version;
}

static int quick_check(store_t *s, err_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc;
    bool ok = false;

    rc = sqlite3_prepare_v2(s->db, "PRAGMA quick_check", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return sql_fail(s, err, "cannot check the database", rc);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const unsigned char *t = sqlite3_column_text(st, 0);
        ok = t && strcmp((const char *)t, "ok") == 0;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW)
        return sql_fail(s, err, "cannot check the database", rc);
    if (!ok) {
        errno = EBADMSG;
        return errprintf(err, "the database failed its integrity check");
    }
    return 0;
}

static int migrate(store_t *s, err_t *err)
{
    char sql[128];

    while (s->version < STORE_SCHEMA_VERSION) {
        if (exec(s, "BEGIN IMMEDIATE", err) < 0)
            return -1;
        snprintf(sql, sizeof(sql), "UPDATE schema_version SET version = %d",
                 s->version + 1);
        if (exec(s, migrations[s->version], err) < 0 || exec(s, sql, err) < 0 ||
            exec(s, "COMMIT", err) < 0) {
            exec(s, "ROLLBACK", NULL);
            return -1;
        }
        s->version++;
    }
    return 0;
}

store_t *store_open(const char *path, bool create, err_t *err)
{
    store_t *s;
    struct stat st;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX;
    int rc;

    if (stat(path, &st) < 0) {
        if (errno != ENOENT || !create) {
            errprintf_errno(err, "cannot open database %s", path);
            return NULL;
        }
        flags |= SQLITE_OPEN_CREATE;
    }
    if (!(s = calloc(1, sizeof(*s)))) {
        errprintf_errno(err, "cannot open database %s", path);
        return NULL;
    }
    rc = sqlite3_open_v2(path, &s->db, flags, NULL);
    if (rc != SQLITE_OK) {
        errno = (rc & 0xff) == SQLITE_CANTOPEN ? EACCES : EIO;
        errprintf(err, "cannot open database %s: %s", path,
                  s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        goto fail;
    }
    sqlite3_busy_timeout(s->db, 5000);
    sqlite3_extended_result_codes(s->db, 1);
    if (exec(s, "PRAGMA journal_mode = WAL", err) < 0 ||
        exec(s, "PRAGMA synchronous = FULL", err) < 0 ||
        exec(s, "PRAGMA foreign_keys = ON", err) < 0)
        goto fail_path;
    if (quick_check(s, err) < 0)
        goto fail_path;
    if ((s->version = read_version(s, err)) < 0)
        goto fail_path;
    if (s->version > STORE_SCHEMA_VERSION) {
        errno = EPROTONOSUPPORT;
        errprintf(err,
                  "database %s has schema version %d; this peerd knows "
                  "only up to %d (written by a newer peerd?)",
                  path, s->version, STORE_SCHEMA_VERSION);
        goto fail;
    }
    if (migrate(s, err) < 0)
        goto fail_path;
    return s;
fail_path : {
    /* prefix the path so that the person knows which file */
    err_t e2;
    int saved = errno;
    if (err) {
        e2 = *err;
        errprintf(err, "%s: %s", path, e2.text);
    }
    errno = saved;
}
fail:
    store_destroy(&s);
    return NULL;
}

void store_destroy(store_t **sp)
{
    if (sp && *sp) {
        int saved = errno;
        sqlite3_close_v2((*sp)->db);
        free(*sp);
        *sp = NULL;
        errno = saved;
    }
}

int store_schema_version(store_t *s)
{
    return s->version;
}

int store_begin(store_t *s, err_t *err)
{
    return exec(s, "BEGIN IMMEDIATE", err);
}

int store_commit(store_t *s, err_t *err)
{
    return exec(s, "COMMIT", err);
}

void store_rollback(store_t *s)
{
    exec(s, "ROLLBACK", NULL);
}

static int get_column(store_t *s, const char *sql, const char *key, void **out,
                      size_t *len, bool text, err_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc, found = 0;

    *out = NULL;
    rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return sql_fail(s, err, "database read failed", rc);
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const void *p = text ? (const void *)sqlite3_column_text(st, 0)
                             : sqlite3_column_blob(st, 0);
        int n = sqlite3_column_bytes(st, 0);
        char *copy = malloc(n + 1);
        if (!copy) {
            sqlite3_finalize(st);
            return errprintf_errno(err, "database read failed");
        }
        if (n > 0)
            memcpy(copy, p, n);
        copy[n] = '\0';
        *out = copy;
        if (len)
            *len = n;
        found = 1;
    } else if (rc != SQLITE_DONE) {
        sqlite3_finalize(st);
        return sql_fail(s, err, "database read failed", rc);
    }
    sqlite3_finalize(st);
    return found;
}

int store_get(store_t *s, enum store_table t, const char *key, char **value,
              err_t *err)
{
    char sql[96];

    snprintf(sql, sizeof(sql), "SELECT value FROM %s WHERE key = ?1",
             table_name(t));
    return get_column(s, sql, key, (void **)value, NULL, true, err);
}

static int put(store_t *s, const char *sql, const char *key, const void *data,
               size_t len, bool text, err_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc;

    rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return sql_fail(s, err, "database write failed", rc);
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    if (text)
        sqlite3_bind_text(st, 2, data, (int)len, SQLITE_STATIC);
    else
        sqlite3_bind_blob(st, 2, data, (int)len, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return sql_fail(s, err, "database write failed", rc);
    return 0;
}

int store_set(store_t *s, enum store_table t, const char *key,
              const char *value, err_t *err)
{
    char sql[128];

    snprintf(sql, sizeof(sql),
             "INSERT OR REPLACE INTO %s (key, value) VALUES (?1, ?2)",
             table_name(t));
    return put(s, sql, key, value, strlen(value), true, err);
}

int store_get_blob(store_t *s, const char *name, void **data, size_t *len,
                   err_t *err)
{
    return get_column(s, "SELECT value FROM secret WHERE name = ?1", name, data,
                      len, false, err);
}

int store_put_blob(store_t *s, const char *name, const void *data, size_t len,
                   err_t *err)
{
    return put(s, "INSERT OR REPLACE INTO secret (name, value) VALUES (?1, ?2)",
               name, data, len, false, err);
}

int store_config_lines(store_t *s, const char *prefix, char ***linesp,
                       size_t *np, err_t *err)
{
    sqlite3_stmt *st = NULL;
    char **lines = NULL;
    size_t n = 0, plen = strlen(prefix);
    int rc;

    *linesp = NULL;
    *np = 0;
    rc = sqlite3_prepare_v2(s->db,
                            "SELECT key, value FROM config WHERE "
                            "substr(key, 1, ?2) = ?1 AND value != '' "
                            "ORDER BY key",
                            -1, &st, NULL);
    if (rc != SQLITE_OK)
        return sql_fail(s, err, "database read failed", rc);
    sqlite3_bind_text(st, 1, prefix, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, (int)plen);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *k = (const char *)sqlite3_column_text(st, 0);
        const char *v = (const char *)sqlite3_column_text(st, 1);
        char **p = realloc(lines, (n + 1) * sizeof(*p));
        size_t len;
        if (!p)
            goto oom;
        lines = p;
        len = strlen(k + plen) + strlen(v ? v : "") + 2;
        if (!(lines[n] = malloc(len)))
            goto oom;
        snprintf(lines[n], len, "%s=%s", k + plen, v ? v : "");
        n++;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        store_lines_free(lines, n);
        return sql_fail(s, err, "database read failed", rc);
    }
    *linesp = lines;
    *np = n;
    return 0;
oom:
    sqlite3_finalize(st);
    store_lines_free(lines, n);
    return errprintf_errno(err, "database read failed");
}

void store_lines_free(char **lines, size_t n)
{
    for (size_t i = 0; lines && i < n; i++)
        free(lines[i]);
    free(lines);
}
