// Package cache is poolmgr's query result cache: it keeps the wire bytes of
// read responses and serves them again, and it is built never to serve a
// response that a write made through poolmgr has made wrong.
//
// # API
//
//	c := cache.New(cache.ConfigFrom(&cfg.Pool), log)
//	c.StartCatalog(ctx, connString)          // required for caching reads of tables
//	c.StartBus(ctx, connString, instanceID)  // with cache_bus = true
//	defer c.Close()
//
//	// a read (per event loop: one KeyBuilder; per request: one Snapshot)
//	if c.Enabled(db, user) && cache.Cacheable(&st) {
//		kb.Reset(); kb.AddString(db); kb.AddString(user); kb.AddString(settingsID)
//		kb.AddUint(shape); kb.AddBytes(query); ...params, formats...
//		key := kb.Sum()
//		if resp, ok := c.Get(key, now); ok { send resp; return }
//		snap := c.SnapshotRefs(db, st.Tables)   // BEFORE the query is sent
//		... run it; on a complete, error-free response:
//		c.Put(key, &snap, resp, now)
//	}
//	// a write that committed (autocommit statement):
//	c.InvalidateStatement(db, &st)
//	// inside a transaction block: w.Add(&st) per statement, then at COMMIT
//	c.InvalidateWrites(db, &w); w.Reset()   // ROLLBACK: w.Reset() only
//
// Get, Snapshot/SnapshotRefs (up to 6 tables) and KeyBuilder allocate
// nothing; Put copies the response (2 allocations plus otter's node).
//
// # Keys
//
// Key is 128 bits: two 64-bit maphash sums, with two random per-process
// seeds, of the parts fed to a KeyBuilder, each stored length-prefixed (so
// "ab","c" and "a","bc" differ, and AddNull differs from AddString("")).
// A collision among n live keys has probability about n²/2^129; the seeds
// are secret, so nobody can aim for one. SHA-256 was measured as the
// alternative (BenchmarkKeySHA256): about 4 times slower for the same
// input. The caller feeds everything the response depends on, in a fixed
// order: database, user, an identity of the session's settings (anything
// SET that can change a result: search_path, role, TimeZone, DateStyle,
// custom GUCs ...), the request shape (message types), the query text,
// parameter formats and values, result formats.
//
// # Versions and invalidation
//
// Every database has an epoch and every relation name of its catalog a
// version counter; the cache has a global epoch. Snapshot captures them
// (pointers and values) before a read is sent; Put stores the entry with
// them, and refuses when any has moved already; Get serves an entry only
// while all of them are unchanged and the TTL has not passed. Invalidate
// bumps counters: O(number of tables it reaches), whatever the number of
// entries. Invalidation is therefore lazy: stale entries are never served,
// and their memory is reclaimed by the Get that finds them, by the sweeper
// (every TTL, between 1 s and 10 s), or by eviction. Because entries carry
// their versions, no ordering between Put and Invalidate can store a
// response read before a write and serve it after the write's invalidation:
// a read that started before a write committed is either refused by Put or
// never served.
//
// Writes reach further than the tables they name, and the catalog (below)
// tells how far: a write to T bumps T, every relation it changes too
// (tables referencing it by foreign key — cascades, TRUNCATE CASCADE —,
// inheritance children and partitions), and every relation reading any of
// those (views, views over views, inheritance parents). A write to a
// relation with user triggers or rules, to a view, to a table whose column
// defaults or checks call volatile user functions, to a relation the
// catalog does not know, or reaching more than 1024 relations, invalidates
// the whole database. Statements of unknown reach (DDL, DO, CALL, EXECUTE,
// two-phase commits, calls of unknown functions) invalidate the whole
// database and mark its catalog stale: nothing of that database is cached
// until the catalog has been reloaded (immediately, in the background).
// Known write functions in a SELECT (nextval, lo_*, dblink ...) invalidate
// the whole database's data but keep the catalog.
//
// # Table names
//
// Unqualified names depend on search_path, so versions are kept per bare
// relation name, whatever the schema: public.t, s.t and t share one
// counter (and a view named v in one schema and a table v in another share
// the union of their dependencies and restrictions). This over-invalidates
// when two schemas use the same name and never under-invalidates. Names of
// system relations (pg_catalog, information_schema, pg_toast, pg_temp*,
// unqualified pg_*) are never cached.
//
// # Catalog
//
// Without a Resolver nothing that reads a table is cached: the cache cannot
// know which names are views, temporary tables, or tables with triggers.
// StartCatalog runs a PgxResolver, which reads pg_class, pg_depend of view
// rules, pg_inherits, pg_constraint (foreign keys), pg_trigger, pg_rewrite
// and pg_attrdef of each database in use, on the primary, with the given
// credentials (any user that can connect). It classifies each view's
// definition (pg_get_viewdef) with sqlscan: a view calling a volatile,
// stable or unknown function is not cached, nor is any view over it.
// Temporary tables (of any session), tables with row-level security,
// foreign tables and sequences are not cached. A database's catalog is
// loaded when first used, reloaded every Config.CatalogRefresh (30 s) while
// in use, at once after a schema change made through poolmgr (or announced
// on the bus), and soon (at most once a second) after a Snapshot or an
// Invalidate names a relation it does not know (such reads are not cached
// and such writes invalidate the database meanwhile). A reload bumps the
// relations whose definition or restrictions changed and those dropped.
// Until the first load succeeds, nothing of that database is cached.
//
// # Bus
//
// Several poolmgr instances in front of one primary share invalidations
// through LISTEN/NOTIFY on channel poolmgr_cache, over two dedicated
// connections to the primary. Local invalidations are collected for
// Config.BusCoalesce (2 ms), merged per database (more than 256 names
// become "*"), and published in one round trip as payloads of at most 7999
// bytes (NOTIFY's limit is 8000):
//
//	<instance>|<db>|<name>,<name>,...   tables (a name may be schema.name; the schema is ignored)
//	<instance>|<db>|*                   every table of db
//	<instance>|<db>|!                   every table of db, and its catalog must be reloaded
//
// Fields are percent-escaped (% | , . * ! and control bytes). The listener
// ignores its own instance's payloads and applies the others' like local
// writes (without republishing); a payload it cannot parse clears the
// cache. Measured delay from Invalidate on one instance to a miss on the
// other through the test cluster: about 4 ms (BusCoalesce included).
//
// While the LISTEN connection is down (not yet up, broken, or not answering
// a ping after 1 s of silence within 2 s), the instance cannot hear other
// instances' writes: Get misses and Put refuses, and each time it comes
// back the whole cache is cleared (notifications sent meanwhile are lost).
// Reconnection uses backoff from 100 ms to 5 s. A publish that fails is
// kept and retried (backoff, new connection) until it succeeds; meanwhile
// the other instances may serve entries that the unpublished writes made
// stale — a failure this instance cannot repair for them, logged as
// "cache: bus publish failed". When the primary itself goes away, every
// instance's LISTEN connection breaks and every cache is cleared.
//
// # Standbys
//
// A response read from a hot standby reflects the standby's replay
// position, which may predate a write whose invalidation has already been
// applied: stored with the current versions, it would be served stale until
// the next write or the TTL. So: store a standby's response only if that
// standby had replayed, when the read started, a primary WAL position
// sampled after Snapshot.LastWrite() — the time of the latest invalidation
// of anything the read depends on (databases and caches first seen count as
// written when first seen; remote writes count when received). The core's
// read-your-writes machinery (primary WAL samples of the health checker,
// Backend.ReplayLSN) answers exactly that; otherwise store only responses
// read on the primary.
//
// # Caller contract
//
//   - Cache only a statement that runs in its own implicit transaction: a
//     simple Query holding that one statement, or an extended-protocol
//     Parse/Bind/Execute ended by Sync, outside any transaction block. A
//     statement inside BEGIN ... COMMIT may see the transaction's own writes
//     or an older snapshot than its Snapshot.
//   - Take the Snapshot before the request is sent to a server.
//   - Put only a complete response without ErrorResponse (the messages up
//     to, not including, ReadyForQuery), and only from the primary or a
//     standby satisfying the rule above.
//   - Invalidate once the server has confirmed the commit (CommandComplete
//     of the autocommit statement or of COMMIT), and before that confirmation
//     is forwarded to the client, so that the client cannot read the old
//     result after seeing its write succeed. When the outcome of a commit is
//     unknown (connection lost), invalidate as if it had committed. COMMIT
//     PREPARED invalidates the whole database (KindTwoPhase).
//
// # Limits of "never wrong"
//
// Writes that do not pass through any poolmgr instance of the bus (direct
// connections, cron jobs, logical replication into this database, foreign
// data) are invisible: the TTL bounds how long their effect may be missed.
// DDL that does not pass through poolmgr (a view redefined directly) is
// noticed at the next catalog reload (30 s). Other instances learn of a
// write a few milliseconds after it committed (the bus delay). Functions
// hidden behind operators or casts in a cached query are not seen by the
// classifier.
//
// # Storage
//
// Entries live in an otter v2 cache (W-TinyLFU admission and eviction)
// bounded by Config.MaxBytes, each weighing its response length plus 256
// bytes; responses over MaxEntryBytes are not stored. Eviction runs on the
// writing goroutine (a synchronous executor), so the weighted size never
// exceeds MaxBytes by more than the entries being written at that moment
// (one, for a single writer). Otter's own expiry is not used: it costs a
// clock read and timer work on every Get (about 40% of a hit); Get checks
// the TTL against the caller's clock.
//
// # Concurrency
//
// Everything is safe for concurrent use. Snapshot takes a read lock on the
// database's relation map (written only by catalog reloads, briefly); Get
// and the version checks are atomic loads. The catalog loader, the sweeper
// and the bus run in goroutines of their own, stopped by Close.
package cache
