package sqlscan

import (
	"strings"
	"testing"
)

const (
	P = RoutePrimary
	R = RouteReplicaOK
)

// tcase is one statement and its expected classification.
//
// tables: space-separated names in order of appearance; a leading '+' marks
// Write, a leading '!' marks System ("!+pg_catalog.x" is not used).
// flags: letters for the bool fields that must be set (all others clear):
// W Write, V Volatile, U Unsure, B BeginsTx, E EndsTx, O ReadOnlyTx.
type tcase struct {
	sql    string
	kind   Kind
	route  Route
	tables string
	flags  string
}

var cases = []tcase{
	// plain reads
	{"SELECT 1", KindSelect, R, "", ""},
	{"select * from t", KindSelect, R, "t", ""},
	{"SELECT a, b FROM public.accounts WHERE id = $1", KindSelect, R, "public.accounts", ""},
	{"SELECT * FROM Foo JOIN \"Bar\" b ON b.id = foo.id", KindSelect, R, "foo Bar", ""},
	{`SELECT * FROM "a""b"`, KindSelect, R, `a"b`, ""},
	{`SELECT * FROM "select"`, KindSelect, R, "select", ""},
	{`SELECT "insert" FROM "delete" WHERE "update" = 1`, KindSelect, R, "delete", ""},
	{"SELECT * FROM db.sch.tbl", KindSelect, R, "sch.tbl", ""},
	{"SELECT * FROM a, b, c WHERE a.x = b.x", KindSelect, R, "a b c", ""},
	{"SELECT * FROM a LEFT OUTER JOIN b USING (id) NATURAL JOIN c CROSS JOIN d", KindSelect, R, "a b c d", ""},
	{"SELECT * FROM a JOIN b ON a.id = b.id, c", KindSelect, R, "a b c", ""},
	{"SELECT * FROM (a JOIN b ON a.x = b.x) JOIN c ON true", KindSelect, R, "a b c", ""},
	{"SELECT * FROM (SELECT * FROM inner_t) AS s, other", KindSelect, R, "inner_t other", ""},
	{"SELECT * FROM ONLY parent", KindSelect, R, "parent", ""},
	{"SELECT * FROM parent * WHERE x", KindSelect, R, "parent", ""},
	{"SELECT * FROM t AS x(a, b), u", KindSelect, R, "t u", ""},
	{"SELECT * FROM t x(a, b) JOIN u ON true", KindSelect, R, "t u", ""},
	{"SELECT * FROM t TABLESAMPLE BERNOULLI (10) REPEATABLE (1)", KindSelect, R, "t", "V"}, // a sample: never cached (conservative even with REPEATABLE)
	{"SELECT * FROM generate_series(1, 10) AS g(i)", KindSelect, R, "", ""},
	{"SELECT * FROM pg_catalog.generate_series(1, 3) WITH ORDINALITY AS t(x, n)", KindSelect, R, "", ""},
	{"SELECT * FROM ROWS FROM (generate_series(1,2), unnest(ARRAY[1])) AS r", KindSelect, R, "", ""},
	{"SELECT * FROM a, LATERAL (SELECT * FROM b WHERE b.x = a.x) s", KindSelect, R, "a b", ""},
	{"SELECT * FROM a, LATERAL unnest(a.arr) u", KindSelect, R, "a", ""},
	{"SELECT * FROM t WHERE x IN (SELECT y FROM u) AND EXISTS (SELECT 1 FROM v)", KindSelect, R, "t u v", ""},
	{"SELECT (SELECT max(x) FROM u), ARRAY(SELECT y FROM w) FROM t", KindSelect, R, "u w t", ""},
	{"SELECT extract(year FROM created_at) FROM orders", KindSelect, R, "orders", "V"},
	{"SELECT substring(name FROM 2 FOR 3), trim(both 'x' FROM name), overlay(name placing 'a' from 1 for 2) FROM users", KindSelect, R, "users", ""},
	{"SELECT position('a' IN name) FROM users", KindSelect, R, "users", ""},
	{"SELECT * FROM t WHERE a IS DISTINCT FROM b AND c IS NOT DISTINCT FROM d", KindSelect, R, "t", ""},
	{"SELECT count(*) FILTER (WHERE x > 0), percentile_cont(0.5) WITHIN GROUP (ORDER BY y) FROM t", KindSelect, R, "t", ""},
	{"SELECT row_number() OVER (PARTITION BY a ORDER BY b ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) FROM t", KindSelect, R, "t", ""},
	{"SELECT sum(x) OVER w FROM t WINDOW w AS (PARTITION BY y)", KindSelect, R, "t", ""},
	{"SELECT x::numeric(10,2), CAST(y AS varchar(3)), z::character varying(5), w::pg_catalog.numeric(4) FROM t", KindSelect, R, "t", ""},
	{"SELECT x::geometry(Point, 4326) FROM t", KindSelect, R, "t", ""},
	{"SELECT coalesce(a, b), nullif(a, 0), greatest(a, b), least(a, b) FROM t", KindSelect, R, "t", ""},
	{"SELECT a FROM t GROUP BY GROUPING SETS ((a), (b)), CUBE (a, b), ROLLUP (c)", KindSelect, R, "t", ""},
	{"SELECT DISTINCT ON (a) a, b FROM t ORDER BY a, b DESC NULLS LAST LIMIT 10 OFFSET 5", KindSelect, R, "t", ""},
	{"SELECT * FROM t FETCH FIRST 5 ROWS WITH TIES", KindSelect, R, "t", ""},
	{"SELECT * FROM t FETCH FIRST (5) ROWS ONLY", KindSelect, R, "t", ""},
	{"SELECT * FROM a UNION ALL SELECT * FROM b INTERSECT SELECT * FROM c EXCEPT SELECT * FROM d", KindSelect, R, "a b c d", ""},
	{"(SELECT * FROM a) UNION (SELECT * FROM b) ORDER BY 1", KindSelect, R, "a b", ""},
	{"((SELECT 1))", KindSelect, R, "", ""},
	{"SELECT * FROM ((SELECT * FROM a) UNION (SELECT * FROM b)) x", KindSelect, R, "a b", ""},
	{"SELECT * FROM t WHERE x = ANY($1) AND y = ANY (ARRAY[1,2]) AND z LIKE ANY ('{a,b}')", KindSelect, R, "t", ""},
	{"SELECT * FROM t WHERE ts AT TIME ZONE ('UTC') > $1", KindSelect, R, "t", ""},
	{"SELECT (a, b) OVERLAPS (c, d) FROM t", KindSelect, R, "t", ""},
	{"SELECT ROW(1, 2), ARRAY[1, 2][1], '{1}'::int[] FROM t", KindSelect, R, "t", ""},
	{"SELECT jsonb_build_object('a', 1) -> 'a', data->>'x', data #> '{a,b}' FROM docs", KindSelect, R, "docs", ""},
	{"SELECT xmlelement(name foo, 'bar')", KindSelect, R, "", ""},
	{"SELECT * FROM t WHERE CASE WHEN a THEN b ELSE (c) END", KindSelect, R, "t", ""},
	{"SELECT x FROM t WHERE y BETWEEN SYMMETRIC 1 AND 2 AND z SIMILAR TO 'a%' ESCAPE '#'", KindSelect, R, "t", ""},
	{"SELECT 1 AS update, 2 AS delete, t.insert, t.merge FROM t", KindSelect, R, "t", ""},
	{"SELECT t.into FROM t", KindSelect, R, "t", ""},
	{"select * from t for read only", KindSelect, R, "t", ""},
	{"SELECT lower(x), upper(x), length(x), abs(-1), round(1.5), date_trunc('day', ts), to_char(ts, 'YYYY') FROM t", KindSelect, R, "t", "V"},
	{"SELECT pg_catalog.lower('A')", KindSelect, R, "", ""},
	{"SELECT current_setting('work_mem'), version(), inet_server_port()", KindSelect, R, "", "V"},
	{"SELECT pg_last_wal_replay_lsn()", KindSelect, R, "", "V"},

	// volatile but read-only
	{"SELECT now()", KindSelect, R, "", "V"},
	{"SELECT random(), clock_timestamp()", KindSelect, R, "", "V"},
	{"SELECT current_timestamp, current_user, session_user", KindSelect, R, "", "V"},
	{"SELECT CURRENT_TIME(3), LOCALTIMESTAMP(2)", KindSelect, R, "", "V"},
	{"SELECT 'now'::timestamptz", KindSelect, R, "", "V"},
	{"SELECT * FROM t WHERE d > 'today'", KindSelect, R, "t", "V"},
	{"SELECT gen_random_uuid()", KindSelect, R, "", "V"},

	// system catalogs
	{"SELECT * FROM pg_catalog.pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace", KindSelect, R, "!pg_catalog.pg_class !pg_namespace", "V"},
	{"SELECT * FROM information_schema.tables", KindSelect, R, "!information_schema.tables", "V"},
	{"SELECT * FROM pg_stat_activity", KindSelect, P, "!pg_stat_activity", "V"},
	{"SELECT * FROM pg_locks", KindSelect, P, "!pg_locks", "V"},

	// tricky lexing
	{"SELECT 'insert into x'", KindSelect, R, "", ""},
	{"SELECT 'it''s; delete from t'", KindSelect, R, "", ""},
	{"SELECT E'it\\'s; delete from t'", KindSelect, R, "", ""},
	{"SELECT e'\\\\'", KindSelect, R, "", ""},
	{"SELECT $$ DELETE $$", KindSelect, R, "", ""},
	{"SELECT $tag$ DELETE FROM t; $$ $tag$ FROM x", KindSelect, R, "x", ""},
	{"SELECT $a$b$c$a$", KindSelect, R, "", ""},
	{"SELECT U&'d\\0061t\\+000061', B'0101', X'1F', N'abc'", KindSelect, R, "", ""},
	{"SELECT * FROM U&\"d\\0061t\\+000061\"", KindSelect, R, "data", ""},
	{"SELECT * FROM U&\"d!0061t!+000061\" UESCAPE '!'", KindSelect, R, "data", ""},
	{"SELECT 1 -- ; delete from t", KindSelect, R, "", ""},
	{"SELECT /* delete from t; /* nested; */ insert */ 1", KindSelect, R, "", ""},
	{"/* delete */ -- update\n SELECT 1", KindSelect, R, "", ""},
	{"SELECT 1+--comment\n2", KindSelect, R, "", ""},
	{"SELECT 1 */* c */2", KindSelect, R, "", ""},
	{"SELECT $1::int, $2 FROM t WHERE a=$3", KindSelect, R, "t", ""},
	{"SELECT a$b, x$1 FROM t$1", KindSelect, R, "t$1", ""},
	{"SELECT 1.5e+10, .5, 1e-3, 0x1F, 1_000", KindSelect, R, "", ""},
	{"SELECT * FROM tablé JOIN ÜBER ON true", KindSelect, R, "tablé Über", ""},
	{"SELECT * FROM " + strings.Repeat("x", 70), KindSelect, R, strings.Repeat("x", 63), ""},
	{"SeLeCt * FrOm MiXeD", KindSelect, R, "mixed", ""},

	// unknown functions
	{"SELECT myfunc(1)", KindSelect, P, "", "WVU"},
	{"SELECT * FROM t WHERE app.check_access(t.id)", KindSelect, P, "t", "WVU"},
	{"SELECT * FROM my_srf(1)", KindSelect, P, "", "WVU"},
	{"SELECT set('t')", KindSelect, P, "", "WVU"},
	{"SELECT by(1), at(2)", KindSelect, P, "", "WVU"},
	{"SELECT filter(1)", KindSelect, P, "", "WVU"},
	{"SELECT * FROM t WHERE x LIKE ('a%') AND y ILIKE ($1) AND (a, b) OVERLAPS (c, d)", KindSelect, R, "t", ""},
	{"SELECT * FROM t a JOIN (u JOIN v ON true) ON true", KindSelect, R, "t u v", ""},
	{"SELECT * FROM t ORDER BY (a) FETCH NEXT (2) ROWS ONLY", KindSelect, R, "t", ""},
	{`SELECT "lower"('A')`, KindSelect, R, "", ""},
	{`SELECT "LOWER"('A')`, KindSelect, P, "", "WVU"},
	{"SELECT public.lower('A')", KindSelect, P, "", "WVU"},

	// write functions
	{"SELECT nextval('s')", KindSelect, P, "", "WV"},
	{"SELECT pg_catalog.setval('s', 1)", KindSelect, P, "", "WV"},
	{"SELECT currval('s')", KindSelect, P, "", "WV"},
	{"SELECT pg_advisory_lock(1)", KindSelect, P, "", "WV"},
	{"SELECT pg_try_advisory_xact_lock(1)", KindSelect, P, "", "WV"},
	{"SELECT pg_advisory_unlock_all()", KindSelect, P, "", "WV"},
	{"SELECT set_config('a.b', 'c', false)", KindSelect, P, "", "WV"},
	{"SELECT lo_create(0), lo_import('/x')", KindSelect, P, "", "WV"},
	{"SELECT pg_notify('c', 'p')", KindSelect, P, "", "WV"},
	{"SELECT txid_current()", KindSelect, P, "", "WV"},
	{"SELECT pg_stat_reset_shared('bgwriter')", KindSelect, P, "", "WV"},
	{"SELECT pg_is_in_recovery()", KindSelect, P, "", "WV"},
	{"SELECT x FROM t WHERE id = (SELECT nextval('s'))", KindSelect, P, "t", "WV"},
	{"SELECT myschema.nextval('s')", KindSelect, P, "", "WV"},

	// locking
	{"select * from t for update", KindSelect, P, "t", ""},
	{"SELECT * FROM t FOR NO KEY UPDATE OF t SKIP LOCKED", KindSelect, P, "t", ""},
	{"SELECT * FROM t FOR SHARE NOWAIT", KindSelect, P, "t", ""},
	{"SELECT * FROM t FOR KEY SHARE", KindSelect, P, "t", ""},
	{"SELECT * FROM (SELECT * FROM t FOR UPDATE) s", KindSelect, P, "t", ""},

	// SELECT INTO
	{"SELECT * INTO new_t FROM t", KindSelect, P, "+new_t t", "W"},
	{"SELECT * INTO TEMP TABLE tmp FROM t", KindSelect, P, "+tmp t", "W"},
	{"SELECT * INTO UNLOGGED s.x FROM t", KindSelect, P, "+s.x t", "W"},

	// CTEs
	{"WITH x AS (SELECT * FROM t) SELECT * FROM x", KindSelect, R, "t", ""},
	{"WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x", KindSelect, P, "+t", "W"},
	{"WITH a AS (SELECT 1), b AS (UPDATE t SET x = 1 RETURNING *) SELECT * FROM a, b", KindSelect, P, "+t", "W"},
	{"WITH a AS MATERIALIZED (SELECT * FROM t), b AS NOT MATERIALIZED (SELECT * FROM a) SELECT * FROM b", KindSelect, R, "t", ""},
	{"WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM r WHERE n < 10) SELECT * FROM r", KindSelect, R, "", ""},
	{"WITH RECURSIVE r AS (SELECT id FROM tree UNION ALL SELECT t.id FROM tree t JOIN r ON t.parent = r.id) SEARCH DEPTH FIRST BY id SET ord CYCLE id SET is_cycle USING path SELECT * FROM r", KindSelect, R, "tree", ""},
	{"WITH t AS (SELECT * FROM t) SELECT * FROM t", KindSelect, R, "t", ""},
	{"WITH x AS (SELECT 1) SELECT * FROM (WITH y AS (SELECT 2) SELECT * FROM y) s, y", KindSelect, R, "y", ""},
	{"WITH x AS (SELECT 1) (SELECT * FROM x)", KindSelect, R, "", ""},
	{"WITH x AS (INSERT INTO log VALUES (1) RETURNING id) INSERT INTO t SELECT id FROM x", KindInsert, P, "+log +t", "W"},
	{"WITH x AS (SELECT 1) DELETE FROM x", KindDelete, P, "+x", "W"},
	{"WITH m AS (MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE) SELECT 1", KindSelect, P, "+t s", "W"},

	// VALUES / TABLE
	{"VALUES (1, 2), (3, 4)", KindValues, R, "", ""},
	{"TABLE t", KindTable, R, "t", ""},
	{"TABLE s.t ORDER BY 1", KindTable, R, "s.t", ""},
	{"SELECT * FROM (VALUES (1), (2)) v(x)", KindSelect, R, "", ""},
	{"SELECT * FROM a UNION TABLE b", KindSelect, R, "a b", ""},

	// DML
	{"INSERT INTO t VALUES (1)", KindInsert, P, "+t", "W"},
	{"insert into s.t (a, b) select a, b from u where c", KindInsert, P, "+s.t u", "W"},
	{"INSERT INTO t AS x (a) VALUES (1) ON CONFLICT (a) DO UPDATE SET a = excluded.a WHERE x.a > 0 RETURNING *", KindInsert, P, "+t", "W"},
	{"INSERT INTO t DEFAULT VALUES", KindInsert, P, "+t", "W"},
	{"INSERT INTO t SELECT * FROM u ON CONFLICT (id) DO UPDATE SET (a, b) = (excluded.a, excluded.b)", KindInsert, P, "+t u", "W"},
	{"SELECT * FROM t TABLESAMPLE nextval (1)", KindSelect, P, "t", "WV"},
	{"INSERT INTO t OVERRIDING SYSTEM VALUE SELECT * FROM u", KindInsert, P, "+t u", "W"},
	{"INSERT INTO t TABLE u", KindInsert, P, "+t u", "W"},
	{"INSERT INTO t VALUES (nextval('s'))", KindInsert, P, "+t", "WV"},
	{"UPDATE t SET a = 1 WHERE id = 2", KindUpdate, P, "+t", "W"},
	{"UPDATE ONLY t AS x SET a = u.a FROM u, v WHERE x.id = u.id", KindUpdate, P, "+t u v", "W"},
	{"UPDATE t SET (a, b) = (SELECT a, b FROM u WHERE u.id = t.id)", KindUpdate, P, "+t u", "W"},
	{"UPDATE t SET a = 1 WHERE CURRENT OF c", KindUpdate, P, "+t", "W"},
	{"DELETE FROM t WHERE id IN (SELECT id FROM u)", KindDelete, P, "+t u", "W"},
	{"DELETE FROM ONLY t x USING u, v WHERE x.id = u.id RETURNING x.*", KindDelete, P, "+t u v", "W"},
	{"delete from t", KindDelete, P, "+t", "W"},
	{"MERGE INTO t USING s ON t.id = s.id WHEN MATCHED AND s.x > 0 THEN UPDATE SET x = s.x WHEN NOT MATCHED THEN INSERT (id, x) VALUES (s.id, s.x) WHEN MATCHED THEN DELETE", KindMerge, P, "+t s", "W"},
	{"MERGE INTO t AS d USING (SELECT * FROM a JOIN b ON a.x = b.x) AS src ON d.id = src.id WHEN NOT MATCHED THEN DO NOTHING", KindMerge, P, "+t a b", "W"},
	{"UPDATE t SET a = 1 FROM t WHERE true", KindUpdate, P, "+t", "W"},

	// COPY
	{"COPY t FROM STDIN", KindCopyFrom, P, "+t", "W"},
	{"COPY s.t (a, b) FROM '/tmp/x' WITH (FORMAT csv)", KindCopyFrom, P, "+s.t", "W"},
	{"COPY BINARY t FROM stdin", KindCopyFrom, P, "+t", "W"},
	{"COPY t TO STDOUT", KindCopyTo, R, "t", ""},
	{"COPY t (a) TO STDOUT WITH (FORMAT binary)", KindCopyTo, R, "t", ""},
	{"COPY t TO '/tmp/file'", KindCopyTo, P, "t", ""},
	{"COPY t TO PROGRAM 'gzip > x'", KindCopyTo, P, "t", ""},
	{"COPY (SELECT * FROM t JOIN u USING (id)) TO STDOUT", KindCopyTo, R, "t u", ""},
	{"COPY (DELETE FROM t RETURNING *) TO STDOUT", KindCopyTo, P, "+t", "W"},

	// DDL
	{"CREATE TABLE t (id int primary key, x text default 'a')", KindDDL, P, "+t", "W"},
	{"CREATE TEMP TABLE IF NOT EXISTS t (id int)", KindDDL, P, "+t", "W"},
	{"CREATE UNLOGGED TABLE s.t AS SELECT * FROM u WITH NO DATA", KindDDL, P, "+s.t u", "W"},
	{"CREATE TABLE t2 PARTITION OF t FOR VALUES IN (1)", KindDDL, P, "+t2 +t", "W"},
	{"CREATE OR REPLACE VIEW v AS SELECT * FROM t JOIN u ON true", KindDDL, P, "+v t u", "W"},
	{"CREATE MATERIALIZED VIEW IF NOT EXISTS mv AS SELECT count(*) FROM t", KindDDL, P, "+mv t", "W"},
	{"CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS i ON ONLY t (a)", KindDDL, P, "+t", "W"},
	{"CREATE INDEX ON s.t USING gin (doc)", KindDDL, P, "+s.t", "W"},
	{"CREATE TRIGGER tr BEFORE INSERT OR UPDATE ON t FOR EACH ROW EXECUTE FUNCTION f()", KindDDL, P, "+t", "W"},
	{"CREATE FOREIGN TABLE ft (a int) SERVER s", KindDDL, P, "+ft", "W"},
	{"CREATE SEQUENCE s", KindDDL, P, "", "W"},
	{"CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql", KindDDL, P, "", "W"},
	{"ALTER TABLE IF EXISTS ONLY t ADD COLUMN x int", KindDDL, P, "+t", "W"},
	{"ALTER MATERIALIZED VIEW mv RENAME TO mv2", KindDDL, P, "+mv", "W"},
	{"ALTER TABLE ALL IN TABLESPACE a SET TABLESPACE b", KindDDL, P, "", "W"},
	{"DROP TABLE IF EXISTS a, s.b CASCADE", KindDDL, P, "+a +s.b", "W"},
	{"DROP VIEW v", KindDDL, P, "+v", "W"},
	{"DROP INDEX i", KindDDL, P, "", "W"},
	{"TRUNCATE a, ONLY b, c * RESTART IDENTITY", KindDDL, P, "+a +b +c", "W"},
	{"TRUNCATE TABLE t", KindDDL, P, "+t", "W"},
	{"COMMENT ON TABLE t IS 'x'", KindDDL, P, "", "W"},
	{"REINDEX TABLE t", KindDDL, P, "", "W"},
	{"CLUSTER t USING i", KindDDL, P, "", "W"},
	{"REFRESH MATERIALIZED VIEW CONCURRENTLY mv", KindDDL, P, "+mv", "W"},
	{"SECURITY LABEL ON TABLE t IS 'x'", KindDDL, P, "", "W"},
	{"GRANT SELECT, INSERT ON t TO bob", KindDDL, P, "", "W"},
	{"REVOKE ALL ON t FROM bob", KindDDL, P, "", "W"},
	{"IMPORT FOREIGN SCHEMA s FROM SERVER x INTO y", KindDDL, P, "", "W"},

	// maintenance, locks, procedures
	{"VACUUM ANALYZE t", KindVacuum, P, "", ""},
	{"VACUUM (VERBOSE, ANALYZE) t", KindVacuum, P, "", ""},
	{"ANALYZE t", KindVacuum, P, "", ""},
	{"LOCK TABLE a, ONLY b IN ACCESS EXCLUSIVE MODE NOWAIT", KindLock, P, "+a +b", ""},
	{"LOCK t", KindLock, P, "+t", ""},
	{"CALL proc(1, 2)", KindCall, P, "", "W"},
	{"DO $$ BEGIN PERFORM 1; END $$", KindDo, P, "", "W"},
	{"DO LANGUAGE plpgsql 'BEGIN NULL; END'", KindDo, P, "", "W"},
	{"CHECKPOINT", KindOther, P, "", ""},
	{"LOAD 'auto_explain'", KindOther, P, "", ""},

	// EXPLAIN
	{"EXPLAIN SELECT * FROM t", KindExplain, R, "t", ""},
	{"EXPLAIN (ANALYZE, BUFFERS) SELECT * FROM t", KindExplain, R, "t", ""},
	{"EXPLAIN ANALYZE VERBOSE SELECT * FROM t", KindExplain, R, "t", ""},
	{"EXPLAIN ANALYZE DELETE FROM t", KindExplain, P, "+t", "W"},
	{"EXPLAIN (ANALYZE true, FORMAT json) INSERT INTO t VALUES (1)", KindExplain, P, "+t", "W"},
	{"EXPLAIN (ANALYZE off) INSERT INTO t VALUES (1)", KindExplain, P, "+t", ""},
	{"EXPLAIN DELETE FROM t", KindExplain, P, "+t", ""},
	{"EXPLAIN SELECT nextval('s')", KindExplain, P, "", "V"},
	{"EXPLAIN ANALYZE SELECT * FROM t FOR UPDATE", KindExplain, P, "t", ""},

	// transactions
	{"BEGIN", KindBegin, P, "", "B"},
	{"begin work", KindBegin, P, "", "B"},
	{"BEGIN TRANSACTION READ ONLY", KindBegin, R, "", "BO"},
	{"BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", KindBegin, R, "", "BO"},
	{"BEGIN ISOLATION LEVEL SERIALIZABLE, READ ONLY, DEFERRABLE", KindBegin, P, "", "BO"},
	{"BEGIN READ ONLY, READ WRITE", KindBegin, P, "", "B"},
	{"START TRANSACTION ISOLATION LEVEL READ COMMITTED", KindBegin, P, "", "B"},
	{"START TRANSACTION READ ONLY", KindBegin, R, "", "BO"},
	{"COMMIT", KindCommit, R, "", "E"},
	{"END", KindCommit, R, "", "E"},
	{"COMMIT AND CHAIN", KindCommit, R, "", "BE"},
	{"COMMIT WORK AND NO CHAIN", KindCommit, R, "", "E"},
	{"ROLLBACK", KindRollback, R, "", "E"},
	{"ABORT", KindRollback, R, "", "E"},
	{"ROLLBACK TRANSACTION AND CHAIN", KindRollback, R, "", "BE"},
	{"ROLLBACK TO SAVEPOINT sp", KindSavepoint, R, "", ""},
	{"ROLLBACK WORK TO sp", KindSavepoint, R, "", ""},
	{"SAVEPOINT sp", KindSavepoint, R, "", ""},
	{"RELEASE SAVEPOINT sp", KindSavepoint, R, "", ""},
	{"PREPARE TRANSACTION 'x'", KindTwoPhase, P, "", "E"},
	{"COMMIT PREPARED 'x'", KindTwoPhase, P, "", "W"},
	{"ROLLBACK PREPARED 'x'", KindTwoPhase, P, "", "W"},
	{"SET TRANSACTION READ ONLY", KindSet, P, "", "O"},
	{"SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", KindSet, P, "", ""},
	{"SET transaction_read_only = on", KindSet, P, "", "O"},
	{"SET LOCAL transaction_read_only TO 'true'", KindSet, P, "", "O"},

	// session
	{"SET search_path = a, b", KindSet, P, "", ""},
	{"SET LOCAL statement_timeout TO 5", KindSet, P, "", ""},
	{"SET SESSION AUTHORIZATION bob", KindSet, P, "", ""},
	{"RESET search_path", KindSet, P, "", ""},
	{"SHOW transaction_read_only", KindShow, P, "", ""},
	{"SHOW ALL", KindShow, P, "", ""},
	{"PREPARE p (int) AS SELECT * FROM t WHERE id = $1", KindPrepare, P, "t", ""},
	{"PREPARE p AS INSERT INTO t VALUES ($1)", KindPrepare, P, "+t", ""},
	{"EXECUTE p (1)", KindExecute, P, "", "WU"},
	{"DEALLOCATE ALL", KindDeallocate, P, "", ""},
	{"DEALLOCATE PREPARE p", KindDeallocate, P, "", ""},
	{"DISCARD TEMP", KindDiscard, P, "", ""},
	{"LISTEN chan", KindListen, P, "", ""},
	{"NOTIFY chan, 'x'", KindNotify, P, "", ""},
	{"UNLISTEN *", KindUnlisten, P, "", ""},
	{"DECLARE c CURSOR FOR SELECT * FROM t", KindCursor, R, "t", ""},
	{"DECLARE c BINARY NO SCROLL CURSOR WITHOUT HOLD FOR SELECT * FROM t", KindCursor, R, "t", ""},
	{"DECLARE c CURSOR WITH HOLD FOR SELECT * FROM t", KindCursor, P, "t", ""},
	{"DECLARE c CURSOR FOR SELECT * FROM t FOR UPDATE", KindCursor, P, "t", ""},
	{"FETCH NEXT FROM c", KindCursor, P, "", ""},
	{"MOVE 5 IN c", KindCursor, P, "", ""},
	{"CLOSE c", KindCursor, P, "", ""},

	// unknown / malformed
	{"FOO BAR", KindOther, P, "", "U"},
	{"42", KindOther, P, "", "U"},
	{"SELECT 'unterminated", KindSelect, P, "", "U"},
	{"SELECT $$ unterminated", KindSelect, P, "", "U"},
	{"SELECT 1 /* unterminated", KindSelect, P, "", "U"},
	{`SELECT "unterminated`, KindSelect, P, "", "U"},
	{"SELECT 'a\\'', 1; DELETE FROM t; -- '", KindSelect, P, "", "U"},
	{"SELECT 'C:\\'", KindSelect, P, "", "U"},
	{"SELECT update FROM t", KindSelect, P, "t", "W"},
	{"(1)", KindOther, P, "", "U"},
	{"EXPLAIN", KindExplain, P, "", "U"},
}

func flagString(st *Statement) string {
	var b []byte
	for _, f := range []struct {
		on bool
		c  byte
	}{{st.Write, 'W'}, {st.Volatile, 'V'}, {st.Unsure, 'U'}, {st.BeginsTx, 'B'}, {st.EndsTx, 'E'}, {st.ReadOnlyTx, 'O'}} {
		if f.on {
			b = append(b, f.c)
		}
	}
	return string(b)
}

func sortFlags(s string) string {
	var b []byte
	for _, c := range []byte("WVUBEO") {
		if strings.IndexByte(s, c) >= 0 {
			b = append(b, c)
		}
	}
	return string(b)
}

func tableString(st *Statement) string {
	var parts []string
	for _, t := range st.Tables {
		p := ""
		if t.System {
			p += "!"
		}
		if t.Write {
			p += "+"
		}
		if t.Schema != nil {
			p += string(t.Schema) + "."
		}
		parts = append(parts, p+string(t.Name))
	}
	return strings.Join(parts, " ")
}

func TestClassifyTable(t *testing.T) {
	var s Scanner
	for _, c := range cases {
		st := s.ClassifyOne([]byte(c.sql))
		got := tableString(&st)
		if st.Kind != c.kind || st.Route != c.route || got != c.tables || flagString(&st) != sortFlags(c.flags) {
			t.Errorf("%q:\n got  %v %v tables=%q flags=%q\n want %v %v tables=%q flags=%q",
				c.sql, st.Kind, st.Route, got, flagString(&st), c.kind, c.route, c.tables, sortFlags(c.flags))
		}
		// The invariant the fuzz test checks too.
		if st.Route == RouteReplicaOK && (st.Write || st.Unsure) {
			t.Errorf("%q: replica-ok with Write/Unsure", c.sql)
		}
	}
}

func TestMultiStatement(t *testing.T) {
	var s Scanner
	type want struct {
		kind  Kind
		route Route
		text  string
	}
	for _, c := range []struct {
		sql  string
		want []want
	}{
		{"select 1; delete from t", []want{{KindSelect, R, "select 1"}, {KindDelete, P, "delete from t"}}},
		{"BEGIN; SELECT 1; COMMIT;", []want{{KindBegin, P, "BEGIN"}, {KindSelect, R, "SELECT 1"}, {KindCommit, R, "COMMIT"}}},
		{";;; SELECT 1 ;; ", []want{{KindSelect, R, "SELECT 1"}}},
		{"", []want{{KindEmpty, R, ""}}},
		{" ; -- nothing\n ; /* x */", []want{{KindEmpty, R, ""}}},
		{"SELECT ';' ; SELECT $$;$$; SELECT \";\"", []want{{KindSelect, R, "SELECT ';'"}, {KindSelect, R, "SELECT $$;$$"}, {KindSelect, R, `SELECT ";"`}}},
		{"SELECT (1; DELETE FROM t)", []want{{KindSelect, P, "SELECT (1; DELETE FROM t)"}}},
		{"CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT CASE WHEN true THEN 2 END; END; SELECT 3",
			[]want{{KindDDL, P, "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT CASE WHEN true THEN 2 END; END"}, {KindSelect, R, "SELECT 3"}}},
		{"CREATE OR REPLACE PROCEDURE p() BEGIN ATOMIC INSERT INTO t VALUES (1); END; END",
			[]want{{KindDDL, P, "CREATE OR REPLACE PROCEDURE p() BEGIN ATOMIC INSERT INTO t VALUES (1); END"}, {KindCommit, R, "END"}}},
		{"BEGIN; END", []want{{KindBegin, P, "BEGIN"}, {KindCommit, R, "END"}}},
		{"SELECT a.; update t set x = 1", []want{{KindSelect, R, "SELECT a."}, {KindUpdate, P, "update t set x = 1"}}},
		{"SELECT 1 AS; delete from t", []want{{KindSelect, R, "SELECT 1 AS"}, {KindDelete, P, "delete from t"}}},
		{"/* poolmgr:replica */ SELECT 1; /* poolmgr:primary */ SELECT 2", []want{{KindSelect, R, "SELECT 1"}, {KindSelect, R, "SELECT 2"}}},
	} {
		got := s.Classify([]byte(c.sql))
		if len(got) != len(c.want) {
			t.Errorf("%q: %d statements, want %d", c.sql, len(got), len(c.want))
			continue
		}
		for i, w := range c.want {
			if got[i].Kind != w.kind || got[i].Route != w.route || string(got[i].Text) != w.text {
				t.Errorf("%q #%d: got %v %v %q, want %v %v %q", c.sql, i, got[i].Kind, got[i].Route, got[i].Text, w.kind, w.route, w.text)
			}
		}
	}
	// ClassifyOne with several statements: primary and unsure.
	st := s.ClassifyOne([]byte("SELECT 1; SELECT 2"))
	if st.Route != RoutePrimary || !st.Unsure {
		t.Errorf("ClassifyOne of two statements: %v unsure=%v", st.Route, st.Unsure)
	}
}

func TestHints(t *testing.T) {
	var s Scanner
	for _, c := range []struct {
		sql  string
		hint Hint
	}{
		{"/* poolmgr:primary */ SELECT 1", HintPrimary},
		{"/*poolmgr:replica*/SELECT 1", HintReplica},
		{"-- poolmgr:replica,cache\nSELECT 1", HintReplica | HintCache},
		{"/* app=x poolmgr:nocache */ SELECT 1", HintNoCache},
		{"/* POOLMGR:Primary poolmgr:replica */ SELECT 1", HintPrimary},
		{"/* poolmgr:cache */ /* poolmgr:nocache */ SELECT 1", HintNoCache},
		{"SELECT 1 /* poolmgr:replica */", HintReplica},
		{"SELECT '/* poolmgr:replica */'", 0},
		{"SELECT $$ -- poolmgr:replica $$", 0},
		{"/* poolmgr:bogus */ SELECT 1", 0},
		{"/* poolmgr:primary */", HintPrimary},
	} {
		if got := s.ClassifyOne([]byte(c.sql)).Hint; got != c.hint {
			t.Errorf("%q: hint %v, want %v", c.sql, got, c.hint)
		}
	}
}

func TestDefaultAccess(t *testing.T) {
	var s Scanner
	for _, c := range []struct {
		sql string
		a   Access
	}{
		{"SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", AccessReadOnly},
		{"SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ WRITE", AccessReadWrite},
		{"SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE", AccessUnchanged},
		{"SET default_transaction_read_only = on", AccessReadOnly},
		{"set default_transaction_read_only to 'off'", AccessReadWrite},
		{"SET SESSION default_transaction_read_only = true", AccessReadOnly},
		{"SET default_transaction_read_only = 1", AccessReadOnly},
		{"SET default_transaction_read_only TO DEFAULT", AccessReset},
		{"SET LOCAL default_transaction_read_only = on", AccessUnchanged},
		{"SET \"default_transaction_read_only\" = on", AccessReadOnly},
		{"SET default_transaction_read_only = maybe", AccessUnchanged},
		{"RESET default_transaction_read_only", AccessReset},
		{"RESET ALL", AccessReset},
		{"DISCARD ALL", AccessReset},
		{"SET search_path = x", AccessUnchanged},
	} {
		if got := s.ClassifyOne([]byte(c.sql)).DefaultAccess; got != c.a {
			t.Errorf("%q: DefaultAccess %v, want %v", c.sql, got, c.a)
		}
	}
}

func TestOptions(t *testing.T) {
	q := []byte("SELECT st_distance(a, b), lower(x) FROM t")
	def := NewScanner(nil).ClassifyOne(q)
	if def.Route != RoutePrimary || !def.Unsure {
		t.Errorf("default: unknown function should go to the primary: %+v", def)
	}
	s := NewScanner(&Options{ReadOnlyFunctions: []string{"ST_Distance"}})
	if st := s.ClassifyOne(q); st.Route != RouteReplicaOK || !st.Volatile || st.Unsure {
		t.Errorf("ReadOnlyFunctions: %+v", st)
	}
	s = NewScanner(&Options{AssumeFunctionsReadOnly: true})
	if st := s.ClassifyOne(q); st.Route != RouteReplicaOK || !st.Volatile {
		t.Errorf("AssumeFunctionsReadOnly: %+v", st)
	}
	if st := s.ClassifyOne([]byte("SELECT nextval('s')")); st.Route != RoutePrimary {
		t.Errorf("AssumeFunctionsReadOnly must keep write functions: %+v", st)
	}
	s = NewScanner(&Options{WriteFunctions: append(DefaultWriteFunctions(), "audit_*", "lower")})
	for _, sql := range []string{"SELECT audit_log(1)", "SELECT lower('x')", "SELECT nextval('s')"} {
		if st := s.ClassifyOne([]byte(sql)); st.Route != RoutePrimary || !st.Write || st.Unsure {
			t.Errorf("WriteFunctions %q: %+v", sql, st)
		}
	}
	s = NewScanner(&Options{WriteFunctions: []string{}, AssumeFunctionsReadOnly: true})
	if st := s.ClassifyOne([]byte("SELECT nextval('s')")); st.Route != RouteReplicaOK {
		t.Errorf("empty WriteFunctions replaces the defaults: %+v", st)
	}
}

func TestResultsReuse(t *testing.T) {
	var s Scanner
	a := s.Classify([]byte("SELECT * FROM Alpha; SELECT * FROM beta JOIN Gamma ON true"))
	if len(a) != 2 || tableString(&a[0]) != "alpha" || tableString(&a[1]) != "beta gamma" {
		t.Fatalf("got %q %q", tableString(&a[0]), tableString(&a[1]))
	}
	// Appending to a result's Tables must not clobber the next statement's.
	_ = append(a[0].Tables, TableRef{Name: []byte("x")})
	if tableString(&a[1]) != "beta gamma" {
		t.Fatalf("tables clobbered: %q", tableString(&a[1]))
	}
}

func TestKindStrings(t *testing.T) {
	for k := Kind(0); k < numKinds; k++ {
		if k.String() == "" {
			t.Errorf("kind %d has no name", k)
		}
	}
	if RouteReplicaOK.String() != "replica-ok" || RoutePrimary.String() != "primary" {
		t.Error("route names")
	}
	if (HintPrimary | HintNoCache).String() != "primary,nocache" {
		t.Error("hint names")
	}
}
