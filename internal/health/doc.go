// Package health checks the backends of a proxy and records what it finds on
// each proxy.Backend (Backend.ReportHealth, Backend.Pin), where routing reads
// it: Healthy, Role, Lag, ReplayLSN.
//
// # Checker
//
// A Checker runs a round every pool.health_check_interval. Each round re-reads
// the backend list (proxy.Shared.Backends, so a SIGHUP that changes
// pool.backends applies at the next round), pins the roles of
// pool.pinned_roles, and probes every backend in its own goroutine, bounded by
// pool.health_check_timeout (connect included). A backend whose previous probe
// is still running is skipped for that round, so a hanging backend costs one
// goroutine, never more. pool.health_check_failures consecutive failures mark a
// backend unhealthy; one success marks it healthy again and sets its detected
// role (primary or standby) — that is how a promotion is discovered.
//
// A probe (PgxProber) keeps one connection per backend open between rounds
// (reconnecting when it breaks) and runs one query (Query), which needs no
// privilege:
//
//	pg_is_in_recovery(), the replay LSN (standby) or current WAL LSN (primary),
//	pg_last_wal_receive_lsn(), whether a WAL receiver runs, the primary's
//	timeline, and now() - pg_last_xact_replay_timestamp()
//
// Replication lag (Sample.Lag) is 0 on a primary. On a standby it is 0 when
// the standby has replayed all the WAL it received (replay LSN >= receive
// LSN), else the age of the last replayed transaction. The age alone would be
// misleading: on an idle primary no transaction commits, so the age of the
// last replayed one grows although the standby is up to date. One exception
// (StandbyLag): a standby with no WAL receiver running while a live primary
// is ahead of it (e.g. still following the old primary after a failover) is
// cut off, and its lag is the age of its last replayed transaction.
//
// Stale primaries: a backend that is not in recovery but on an older
// timeline (from the name of its current WAL file) than another backend last
// seen as a primary is the old primary of a failover that came back without
// being rebuilt. It is marked unhealthy at once ("health: stale primary"),
// so that writes do not go to a diverged server, and stays so while the newer
// primary is listed as a primary (even when that one is down). A backend
// pinned as primary is exempt.
//
// Errors that say the check itself is misconfigured rather than the backend
// down (SQLSTATE class 28 invalid authorization, 3D000 unknown database,
// 42501 insufficient privilege) are logged and not counted as failures: a
// wrong health-check password must not take every backend out of routing.
//
// Credentials: user pool.health_check_user (default auth.auth_user, else
// "postgres"), database pool.health_check_dbname (default "postgres"),
// password from the auth.auth_file entry of that user. The probe needs the
// plaintext password (SCRAM and md5 logins cannot be done with a stored
// secret): when the entry is missing or holds only an md5 or SCRAM secret, the
// Checker logs one warning and does no checks — backends then stay healthy
// with roles unknown until their server logins detect them, as without a
// checker. pool.health_check_interval = 0 turns checks off the same way.
// Pinned roles are applied either way.
//
// Log messages (stable; tests look for them):
//
//	health: backend role       INFO  first successful check of a backend (backend, role)
//	health: backend down       WARN  marked unhealthy (backend, failures, err)
//	health: backend up         INFO  healthy again after being down (backend, role)
//	health: role changed       WARN  detected role changed, e.g. a promotion (backend, from, to)
//	health: check failed       INFO  first failure of a streak, still healthy (backend, err)
//	health: check misconfigured ERROR auth/database/privilege error (backend, err); not a failure
//	health: pinned role differs WARN  pinned role contradicts pg_is_in_recovery() (backend, pinned, detected)
//	health: several primaries  WARN  more than one healthy backend reports being a primary (backends)
//	health: replica lagging    WARN  standby lag above pool.max_replica_lag_ms (backend, lag)
//	health: replica caught up  INFO  lag back within pool.max_replica_lag_ms (backend, lag)
//	health: replica cut off    WARN  no WAL receiver while a live primary is ahead (backend, replay_lsn, lag)
//	health: replica streaming again INFO
//	health: stale primary      WARN  primary on an older timeline than another; marked down (backend, timeline, newer, newer_timeline)
//	health: checks disabled    WARN  no usable credentials (reason); INFO when health_check_interval = 0
//	health: checks enabled     INFO  (user, dbname, interval, timeout, failures)
//
// # Discovery sources
//
// Source is the seam for backend discovery: something that returns the
// current backend addresses. ConfigSource returns pool.backends of the
// loaded config (replaced by Update on reload). Sync installs a Source's
// list on the proxy (SetBackends, which keeps the state of addresses that
// stay). A discovery source such as Patroni's REST API (GET /cluster) would
// implement Source and be polled with Sync; roles still come from the
// Checker, so a source only needs to list members.
package health
