/* dbfile.h - run SQL on a database file behind the store's back
 *
 * Header-only, for the unit tests that damage or inspect peerd.db with
 * the sqlite3 C API.  Include after <cmocka.h>.
 */
#ifndef PEERD_TEST_DBFILE_H
#define PEERD_TEST_DBFILE_H

#include <stdio.h>

#include <sqlite3.h>

static inline void sql_exec(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    char *msg = NULL;

    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        char copy[256];
        snprintf(copy, sizeof(copy), "%s", msg ? msg : "?");
        sqlite3_free(msg);
        sqlite3_close(db);
        fail_msg("%s: %s", sql, copy);
    }
    sqlite3_close(db);
}

#endif
