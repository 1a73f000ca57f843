// Package sqlscan classifies SQL text for the proxy's per-query decisions:
// the kind of each statement, whether a hot standby may run it, the
// transaction boundaries it crosses, the relations it names, and the
// poolmgr hints in its comments.
//
// It is a byte-level lexer plus a one-pass scan of the tokens, never a full
// parse, and it allocates nothing once a Scanner's scratch buffers have
// grown. It is used on the hot path.
//
// # API
//
//	s := sqlscan.NewScanner(nil)        // or &sqlscan.Options{...}; the zero Scanner works too
//	for _, st := range s.Classify(sql) { // simple Query: one entry per statement
//		if st.Route == sqlscan.RoutePrimary { ... } // route to the primary if any entry says so
//	}
//	st := s.ClassifyOne(sql)             // extended protocol Parse: one statement
//
// Results (Statement.Tables and its names) point into the Scanner's
// scratch space and into sql; they are valid until the next call. A
// Scanner is not safe for concurrent use: keep one per event loop.
//
// # Lexing
//
// The lexer follows PostgreSQL's scanner: -- and nested /* */ comments,
// "quoted" identifiers with "" escapes, U&"..." identifiers (with
// UESCAPE), '...' strings (a quote is escaped by doubling it), E'...' with
// backslash escapes, U&'...', B'...', X'...', N'...', dollar quotes
// ($$...$$, $tag$...$tag$), numbers, $1 parameters, :: casts, operators
// (which end before an embedded comment start), and UTF-8 identifiers. Keywords are matched without
// regard to case, only when unquoted: "select" is a name. Unquoted names
// are folded to lower case (ASCII only) and all names are cut to 63 bytes,
// as the server does.
//
// Statements are split on ';' outside literals, comments and parentheses,
// and, like psql, not inside the BEGIN ATOMIC ... END body of CREATE
// FUNCTION/PROCEDURE. Empty statements are dropped.
//
// The lexer assumes standard_conforming_strings = on (the default since
// PostgreSQL 9.1). A '...' literal containing \' ends elsewhere when it is
// off; such a statement is Unsure and goes to the primary. A write sent to
// a standby by mistake fails there ("read-only transaction"); it never
// corrupts data.
//
// # Routing policy
//
// Route is RouteReplicaOK only for statements that are provably read-only:
//
//   - SELECT, VALUES, TABLE, WITH ... SELECT, and EXPLAIN, COPY (query) TO
//     STDOUT, COPY table TO STDOUT and DECLARE ... CURSOR (not WITH HOLD) of
//     those, when they contain no data-modifying statement anywhere (a
//     CTE's INSERT/UPDATE/DELETE/MERGE), no SELECT INTO, no FOR UPDATE/
//     SHARE/NO KEY UPDATE/KEY SHARE, and call only known read-only
//     functions;
//   - BEGIN/START TRANSACTION ... READ ONLY (not SERIALIZABLE, which a
//     standby refuses): the caller may run that transaction on a replica;
//   - COMMIT, END, ROLLBACK, ABORT, SAVEPOINT, RELEASE, ROLLBACK TO: they
//     run wherever their transaction runs;
//   - an empty statement.
//
// Everything else is RoutePrimary: DML, COPY FROM, DDL (CREATE, ALTER,
// DROP, TRUNCATE, COMMENT, REINDEX, CLUSTER, REFRESH MATERIALIZED VIEW,
// SECURITY LABEL, GRANT, REVOKE, IMPORT FOREIGN SCHEMA, REASSIGN OWNED),
// VACUUM, ANALYZE, LOCK, CALL, DO, two-phase commit, plain BEGIN (the
// transaction may write), SET/RESET, SHOW (session state; drivers probe
// writability with SHOW transaction_read_only), PREPARE, EXECUTE (unknown
// statement: Unsure), DEALLOCATE, DISCARD, LISTEN/NOTIFY/UNLISTEN, FETCH/
// MOVE/CLOSE, CHECKPOINT, LOAD, and anything not recognised (Unsure).
// EXPLAIN takes the route of the statement it explains, even without
// ANALYZE. Reads of server-local catalog views (pg_stat_*, pg_statio_*,
// pg_locks, pg_settings, pg_prepared_xacts, pg_replication_slots,
// pg_prepared_statements, pg_cursors, ...) go to the primary so that
// monitoring through the pooler sees the primary.
//
// The check is conservative: a write keyword anywhere counts (a column
// named update, unquoted, sends a SELECT to the primary), and so does any
// call of a function that is not known read-only.
//
// Hints (poolmgr:primary, poolmgr:replica, poolmgr:cache, poolmgr:nocache,
// in any comment of the statement, several separated by commas) are
// reported in Statement.Hint and do not change Route: the caller decides.
//
// # Functions
//
// A name followed by '(' is a function call (except syntax such as IN (...),
// OVER (...), type modifiers like numeric(10,2), and alias column lists).
// Calls are judged by name:
//
//   - Options.WriteFunctions (default DefaultWriteFunctions: nextval,
//     setval, currval, lastval, advisory locks, set_config, lo_*,
//     pg_notify, txid_current, WAL and backend control, pg_stat_reset*,
//     dblink, pg_is_in_recovery, ...; an entry ending in '*' is a prefix)
//     force RoutePrimary and Write, in any schema;
//   - a built-in list of read-only functions (aggregates, math, string,
//     date/time, json, arrays, text search, catalog information ...) is
//     safe when unqualified or pg_catalog-qualified; those that depend on
//     the clock, the session or the server (now(), random(),
//     current_setting(), pg_backend_pid() ...) set Volatile;
//   - Options.ReadOnlyFunctions adds names (any schema) that are safe;
//   - any other function is unknown: user-defined functions may write, so
//     by default the statement goes to the primary with Write and Unsure
//     set. Options.AssumeFunctionsReadOnly trusts unknown functions (as
//     PgCat and pgpool do when no list is given). Unknown functions always
//     set Volatile.
//
// Functions called through operators, views, rules or triggers cannot be
// seen in the text: a SELECT from a view whose definition calls a writing
// function is classified as a read.
//
// # Tables
//
// Statement.Tables lists the relations after FROM, JOIN, USING (DELETE,
// MERGE), TABLE, and the targets of INSERT INTO, UPDATE, DELETE FROM, MERGE
// INTO, SELECT INTO, COPY, TRUNCATE, LOCK, CREATE/ALTER/DROP TABLE, VIEW,
// MATERIALIZED VIEW, FOREIGN TABLE, CREATE INDEX/TRIGGER ... ON, REFRESH
// MATERIALIZED VIEW, in subqueries and CTE bodies too, without references
// to CTE names (scoped as in PostgreSQL, except that a forward reference
// inside WITH RECURSIVE is taken for a table). TableRef.Write marks the
// targets; TableRef.System marks system catalogs. Temporary tables cannot
// be told apart from others.
//
// # Checks
//
// classify_test.go holds a table of statements with their expected
// classification; FuzzClassify checks invariants (never RouteReplicaOK with
// a write keyword, leading comments change nothing, tokens cover the
// input); oracle_test.go (build tag oracle, cgo) compares the classifier
// with PostgreSQL's parser through pg_query_go on several thousand
// statements and fails if any statement it sends to a replica is not
// read-only in the parse tree.
package sqlscan
