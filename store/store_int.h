/* store_int.h - what the store/ files share, not for other layers */
#ifndef PEERD_STORE_INT_H
#define PEERD_STORE_INT_H

#include <stdbool.h>

#include <sqlite3.h>

#include "store/store.h"

struct store {
    sqlite3 *db;
    int version;
};

sqlite3 *store_db(store_t *s);

/* errno EBADMSG for corruption, EIO otherwise; err gets what + the
 * SQLite message.  Returns -1.
 */
int sql_fail(store_t *s, err_t *err, const char *what, int rc);
bool is_corrupt(int rc);

#endif
