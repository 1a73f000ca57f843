// Package admin is poolmgr's admin console: clients that connect to the
// virtual database "poolmgr" (or "pgbouncer") as a user of admin_users or
// stats_users get a PgBouncer-style console over the simple query protocol.
//
// SHOW POOLS, CLIENTS, SERVERS, STATS (and STATS_TOTALS, STATS_AVERAGES,
// TOTALS), DATABASES, CONFIG, VERSION, LISTS and STATE keep PgBouncer's
// column names and meanings (pgbouncer_exporter works against it); SHOW
// BACKENDS, CACHE and ENGINE are poolmgr's. PAUSE, RESUME, RELOAD, SHUTDOWN,
// KILL, RECONNECT (and DRAIN/UNDRAIN, not available yet) need admin_users;
// stats_users get SQLSTATE 42501 for them.
//
// Files: parse.go (statements and words), rows.go (RowDescription/DataRow
// encoding), handler.go (dispatch, permissions, commands), show.go (SHOW).
package admin
