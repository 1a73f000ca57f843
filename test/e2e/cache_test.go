package e2e

// End-to-end tests of the query result cache (internal/cache, wired by
// internal/proxy/cache.go): "a transparent query result cache that is never
// wrong". Hits are observed with SHOW CACHE on the admin console (and
// /metrics in TestCacheHits).
//
// Reads that must be fresh and are made by a client other than the writer use
// the hint /* poolmgr:primary */ (hints do not change cache.Cacheable: such a
// read is cached like any other, its miss just runs on the primary). Without
// it a miss of a client that has not written may run on a hot standby, which
// may legitimately lag (docs/routing.md: read-your-writes is per client);
// the tests that exercise that path say so.
//
// Every helper of this file is prefixed qc.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/poolmgr/poolmgr/internal/testutil"
)

// qcPrimaryHint routes a read's miss to the primary (see the file comment).
const qcPrimaryHint = "/* poolmgr:primary */ "

// qcConf configures qcStart.
type qcConf struct {
	ttlMs    int      // cache_ttl_ms; default 60000
	backends []string // default: primary and both standbys
	extra    []string // more [pool] keys
	metrics  bool     // metrics_bind on a free port
	opts     []testutil.Option
}

// qcProxy is a poolmgr with the cache on, and a console connection.
type qcProxy struct {
	*testutil.Proxy
	adm     *pgx.Conn
	metrics string // http://host:port, or ""
}

// qcStart starts poolmgr with the cache on and waits until roles are known,
// the cache is enabled and its bus is up.
func qcStart(t *testing.T, ctx context.Context, c qcConf) *qcProxy {
	t.Helper()
	testutil.RequireProcess(t)
	testutil.RequireCluster(t)
	if c.ttlMs == 0 {
		c.ttlMs = 60000
	}
	if c.backends == nil {
		c.backends = testutil.ClusterAddrs
	}
	keys := append([]string{
		fmt.Sprintf("cache_ttl_ms = %d", c.ttlMs),
		`health_check_interval = "0.2s"`,
	}, c.extra...)
	sections := "[admin]\nadmin_users = [\"postgres\"]\n"
	var base string
	if c.metrics {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		sections += fmt.Sprintf("metrics_bind = %q\n", addr)
		base = "http://" + addr
	}
	p := testutil.StartPoolmgr(t, testutil.Config{
		Backends: c.backends,
		Extra:    strings.Join(keys, "\n"),
		Sections: sections,
	}.TOML(), c.opts...)
	adm := mustAdminConn(t, ctx, p)
	qp := &qcProxy{Proxy: p, adm: adm, metrics: base}
	want := map[string]string{testutil.PrimaryAddr: "primary", testutil.Standby1Addr: "standby", testutil.Standby2Addr: "standby"}
	testutil.CheckFor(t, 15*time.Second, 20*time.Millisecond, func() error {
		cols, rows := showRows(t, ctx, adm, "SHOW BACKENDS")
		ri, hi := colIndex(cols, "role"), colIndex(cols, "health")
		ok := 0
		for _, r := range rows {
			if w, found := want[r[0]]; found && r[ri] == w && r[hi] == "up" {
				ok++
			}
		}
		if ok != len(c.backends) {
			return fmt.Errorf("SHOW BACKENDS: %v", rows)
		}
		st := qp.stats(t)
		if st.Status != "enabled" || st.Note["bus_up"] != "true" {
			return fmt.Errorf("SHOW CACHE: status %s, note %s", st.Status, st.Raw)
		}
		return nil
	})
	return qp
}

// qcStats is a row of SHOW CACHE.
type qcStats struct {
	Status                       string
	Entries, Bytes, Hits, Misses int64
	Note                         map[string]string
	Raw                          string
}

func (s qcStats) noteInt(k string) int64 {
	n, _ := strconv.ParseInt(s.Note[k], 10, 64)
	return n
}

func (s qcStats) String() string {
	return fmt.Sprintf("entries=%d bytes=%d hits=%d misses=%d %s", s.Entries, s.Bytes, s.Hits, s.Misses, s.Raw)
}

func (p *qcProxy) stats(t *testing.T) qcStats {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cols, rows := showRows(t, ctx, p.adm, "SHOW CACHE")
	if len(rows) != 1 {
		t.Fatalf("SHOW CACHE: %d rows", len(rows))
	}
	r := rows[0]
	get := func(name string) string {
		i := colIndex(cols, name)
		if i < 0 {
			t.Fatalf("SHOW CACHE has no column %q (%v)", name, cols)
		}
		return r[i]
	}
	num := func(name string) int64 {
		n, err := strconv.ParseInt(get(name), 10, 64)
		if err != nil {
			t.Fatalf("SHOW CACHE %s = %q", name, get(name))
		}
		return n
	}
	st := qcStats{Status: get("status"), Entries: num("entries"), Bytes: num("bytes"), Hits: num("hits"),
		Misses: num("misses"), Raw: get("note"), Note: map[string]string{}}
	for _, f := range strings.Fields(st.Raw) {
		if k, v, ok := strings.Cut(f, "="); ok {
			st.Note[k] = v
		}
	}
	return st
}

func (p *qcProxy) hits(t *testing.T) int64 { t.Helper(); return p.stats(t).Hits }

// qcRead is a read returning a canonical rendering of its rows.
type qcRead func() (string, error)

// qcRows renders every row of a query (raw bytes, quoted) in one string.
func qcRows(ctx context.Context, c *pgx.Conn, sql string, args ...any) (string, error) {
	rows, err := c.Query(ctx, sql, args...)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		for i, v := range rows.RawValues() {
			if i > 0 {
				b.WriteByte('|')
			}
			if v == nil {
				b.WriteString("NULL")
			} else {
				b.WriteString(strconv.Quote(string(v)))
			}
		}
		b.WriteByte('\n')
	}
	return b.String(), rows.Err()
}

func qcInt(ctx context.Context, c *pgx.Conn, sql string, args ...any) (int64, error) {
	var v int64
	err := c.QueryRow(ctx, sql, args...).Scan(&v)
	return v, err
}

func qcMustInt(t *testing.T, ctx context.Context, c *pgx.Conn, sql string, args ...any) int64 {
	t.Helper()
	v, err := qcInt(ctx, c, sql, args...)
	if err != nil {
		t.Fatalf("%s %v: %v", sql, args, err)
	}
	return v
}

// warm repeats read until it is served from the cache (the catalog of the
// database is loaded, the bus is up): until then nothing naming a table is
// cached.
func (p *qcProxy) warm(t *testing.T, read qcRead) {
	t.Helper()
	testutil.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		h := p.hits(t)
		for i := 0; i < 2; i++ {
			if _, err := read(); err != nil {
				return err
			}
		}
		if st := p.stats(t); st.Hits == h {
			return fmt.Errorf("warm-up read not served from the cache yet: %s", st)
		}
		return nil
	})
}

// hitDuring runs read and returns its result and how many hits it made.
func (p *qcProxy) hitDuring(t *testing.T, read qcRead) (string, int64, error) {
	t.Helper()
	before := p.hits(t)
	r, err := read()
	return r, p.hits(t) - before, err
}

// twiceHit runs read twice: the second run must be a hit returning the same
// bytes. An invalidation received meanwhile from another poolmgr instance
// on the bus (other engineers' proxies may share the cluster) causes a retry.
func (p *qcProxy) twiceHit(t *testing.T, what string, read qcRead) string {
	t.Helper()
	var last string
	for attempt := 0; attempt < 3; attempt++ {
		first, err := read()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		b := p.stats(t)
		second, n, err := p.hitDuring(t, read)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		a := p.stats(t)
		if n == 1 && first == second {
			return second
		}
		last = fmt.Sprintf("second run: %d hits (want 1); first %q, second %q; SHOW CACHE %s", n, first, second, a)
		if a.noteInt("remote") != b.noteInt("remote") {
			t.Logf("%s: remote invalidation meanwhile, retrying (%s)", what, last)
			p.warm(t, read) // a remote schema change reloads the catalog first
			continue
		}
		break
	}
	t.Errorf("%s: %s", what, last)
	return ""
}

// neverHit runs read n times and fails if any run was a hit.
func (p *qcProxy) neverHit(t *testing.T, what string, n int, read qcRead) []string {
	t.Helper()
	before := p.hits(t)
	var res []string
	for i := 0; i < n; i++ {
		r, err := read()
		if err != nil {
			t.Errorf("%s: %v", what, err)
			return res
		}
		res = append(res, r)
	}
	if h := p.hits(t) - before; h != 0 {
		t.Errorf("%s: %d cache hits in %d runs, want none (results %q)", what, h, n, res)
	}
	return res
}

// qcObjects creates database objects in app as the superuser. Statements
// use {p} for a unique name prefix (returned) and {app} for the app role;
// drops (same placeholders) run when the test ends.
func qcObjects(t *testing.T, drops []string, stmts ...string) string {
	t.Helper()
	pfx := "qc_" + testutil.Nonce()
	sub := strings.NewReplacer("{p}", pfx, "{app}", testutil.AppUser)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, testutil.AdminConnString(testutil.AppDB))
		if err != nil {
			t.Logf("cleanup: %v", err)
			return
		}
		defer c.Close(context.Background())
		for _, d := range drops {
			if _, err := c.Exec(ctx, sub.Replace(d)); err != nil {
				t.Logf("cleanup %q: %v", sub.Replace(d), err)
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, testutil.AdminConnString(testutil.AppDB))
	if err != nil {
		t.Fatalf("connect as %s: %v", testutil.SuperUser, err)
	}
	defer c.Close(context.Background())
	for _, s := range stmts {
		if _, err := c.Exec(ctx, sub.Replace(s)); err != nil {
			t.Fatalf("setup %q: %v", sub.Replace(s), err)
		}
	}
	// Reads of clients that have not written run on the standbys: they must
	// know the objects first.
	qcWaitReplayed(t, ctx)
	return pfx
}

// qcDirect connects straight to a cluster member as the superuser.
func qcDirect(t *testing.T, ctx context.Context, addr string) *pgx.Conn {
	t.Helper()
	c, err := connectTo(t, ctx, testutil.DirectConnString(addr, testutil.SuperUser, testutil.SuperPassword, testutil.AppDB))
	if err != nil {
		t.Fatalf("connect to %s: %v", addr, err)
	}
	return c
}

// qcWaitReplayed waits until both standbys have replayed the primary's
// current WAL position.
func qcWaitReplayed(t *testing.T, ctx context.Context) {
	t.Helper()
	start := time.Now()
	defer func() {
		if d := time.Since(start); d > 200*time.Millisecond {
			t.Logf("note: standbys took %v to replay", d)
		}
	}()
	prim := qcDirect(t, ctx, testutil.PrimaryAddr)
	var lsn string
	if err := prim.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&lsn); err != nil {
		t.Fatal(err)
	}
	for _, addr := range []string{testutil.Standby1Addr, testutil.Standby2Addr} {
		sb := qcDirect(t, ctx, addr)
		testutil.CheckFor(t, 20*time.Second, 10*time.Millisecond, func() error {
			var ok bool
			if err := sb.QueryRow(ctx, "SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn", lsn).Scan(&ok); err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("%s has not replayed %s yet", addr, lsn)
			}
			return nil
		})
	}
}

// ---------------------------------------------------------------------------
// 1. Hits

func TestCacheHits(t *testing.T) {
	ctx := testCtx(t, 120*time.Second)
	pfx := qcObjects(t, []string{"DROP TABLE IF EXISTS {p}_t, {p}_ts CASCADE", "DROP SCHEMA IF EXISTS {p}_a, {p}_b CASCADE"},
		"CREATE TABLE {p}_t (id int PRIMARY KEY, v text NOT NULL, f float8, d date)",
		"INSERT INTO {p}_t SELECT g, 'row ' || g, 0.1::float8 + 0.2::float8, ('2024-03-0' || (g % 9 + 1))::date FROM generate_series(1, 20) g",
		"CREATE TABLE {p}_ts (id int PRIMARY KEY, ts timestamptz NOT NULL)",
		"INSERT INTO {p}_ts VALUES (1, '2024-01-01 12:00:00+00')",
		"CREATE SCHEMA {p}_a", "CREATE SCHEMA {p}_b",
		"CREATE TABLE {p}_a.{p}_sp (v text)", "CREATE TABLE {p}_b.{p}_sp (v text)",
		"INSERT INTO {p}_a.{p}_sp VALUES ('schema a')", "INSERT INTO {p}_b.{p}_sp VALUES ('schema b')",
		"GRANT ALL ON {p}_t, {p}_ts, {p}_a.{p}_sp, {p}_b.{p}_sp TO {app}",
		"GRANT USAGE ON SCHEMA {p}_a, {p}_b TO {app}")
	T := pfx + "_t"
	p := qcStart(t, ctx, qcConf{metrics: true})
	app := connect(t, ctx, p.Proxy)
	p.warm(t, func() (string, error) { return qcRows(ctx, app, "SELECT count(*) FROM "+T) })

	modes := []struct {
		name string
		mode pgx.QueryExecMode
	}{
		{"simple", pgx.QueryExecModeSimpleProtocol},
		{"exec", pgx.QueryExecModeExec},
		{"cache_statement", pgx.QueryExecModeCacheStatement},
		{"cache_describe", pgx.QueryExecModeCacheDescribe},
		{"describe_exec", pgx.QueryExecModeDescribeExec},
	}
	for mi, m := range modes {
		t.Run("Same read twice/"+m.name, func(t *testing.T) {
			c1 := connect(t, ctx, p.Proxy, withMode(m.mode))
			c2 := connect(t, ctx, p.Proxy, withMode(m.mode))
			sql := "SELECT id, v FROM " + T + " WHERE id <= $1 ORDER BY id"
			got := p.twiceHit(t, "same connection", func() (string, error) { return qcRows(ctx, c1, sql, 5) })
			if n := strings.Count(got, "\n"); got != "" && n != 5 {
				t.Errorf("got %d rows, want 5: %q", n, got)
			}
			// Another connection of the same user and settings shares the entry.
			r, n, err := p.hitDuring(t, func() (string, error) { return qcRows(ctx, c2, sql, 5) })
			if err != nil || n != 1 || r != got {
				t.Errorf("other connection: %d hits (want 1), rows %q (want %q), err %v", n, r, got, err)
			}
			// Another parameter value is another entry. (Not the same value in
			// every mode: modes sending the same messages share entries.)
			r, n, err = p.hitDuring(t, func() (string, error) { return qcRows(ctx, c1, sql, 10+mi) })
			if err != nil || n != 0 || strings.Count(r, "\n") != 10+mi {
				t.Errorf("other parameter: %d hits (want 0), rows %q, err %v", n, r, err)
			}
		})
	}

	// A hit on Parse(named) + Bind + Execute + Sync: the statement must then
	// exist for the client although no server saw the Parse.
	t.Run("Named Parse answered from the cache", func(t *testing.T) {
		sql := "SELECT v FROM " + T + " WHERE id = $1"
		msgs := func(arg string) []pgproto3.FrontendMessage {
			return []pgproto3.FrontendMessage{
				&pgproto3.Parse{Name: "qc_named", Query: sql, ParameterOIDs: []uint32{23}},
				&pgproto3.Bind{PreparedStatement: "qc_named", Parameters: [][]byte{[]byte(arg)}},
				&pgproto3.Describe{ObjectType: 'P'},
				&pgproto3.Execute{},
				&pgproto3.Sync{},
			}
		}
		c1 := connect(t, ctx, p.Proxy)
		c2 := connect(t, ctx, p.Proxy)
		r1, err := qcRaw(ctx, c1, msgs("7")...)
		if err != nil {
			t.Fatal(err)
		}
		r2, n, err := p.hitDuring(t, func() (string, error) { return qcRaw(ctx, c2, msgs("7")...) })
		if err != nil || n != 1 || r2 != r1 {
			t.Errorf("same Parse/Bind/Execute on another connection: %d hits (want 1), %q vs %q, err %v", n, r2, r1, err)
		}
		for _, arg := range []string{"8", "9", "7"} {
			res := c2.PgConn().ExecPrepared(ctx, "qc_named", [][]byte{[]byte(arg)}, nil, nil).Read()
			if res.Err != nil || len(res.Rows) != 1 || string(res.Rows[0][0]) != "row "+arg {
				t.Errorf("Bind of the statement parsed by a cache hit, arg %s: rows %q, err %v", arg, res.Rows, res.Err)
			}
		}
	})

	t.Run("Errors never cached", func(t *testing.T) {
		c := connect(t, ctx, p.Proxy, withMode(pgx.QueryExecModeSimpleProtocol))
		for _, q := range []string{"SELECT 1/0", "SELECT 10/(3-g) FROM generate_series(1, 5) g", "SELECT v FROM " + T + " WHERE id = 'x'"} {
			h := p.hits(t)
			for i := 0; i < 3; i++ {
				if _, err := qcRows(ctx, c, q); err == nil {
					t.Errorf("%s: no error on run %d", q, i+1)
				}
			}
			if n := p.hits(t) - h; n != 0 {
				t.Errorf("%s: %d hits", q, n)
			}
		}
	})

	t.Run("Volatile never", func(t *testing.T) {
		for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec} {
			c := connect(t, ctx, p.Proxy, withMode(mode))
			for _, q := range []string{
				"SELECT now()",
				"SELECT random()",
				"SELECT clock_timestamp()",
				"SELECT statement_timestamp()",
				"SELECT current_timestamp",
				"SELECT localtimestamp",
				"SELECT gen_random_uuid()",
				"SELECT 'now'::timestamptz",
				"SELECT timestamptz 'now'",
				"SELECT pg_backend_pid()",
				"SELECT current_user",
				"SELECT inet_server_port()",
				"SELECT id, v, now() FROM " + T + " WHERE id = 1",
				"SELECT id FROM " + T + " ORDER BY random() LIMIT 3",
			} {
				p.neverHit(t, fmt.Sprintf("%v %s", mode, q), 3, func() (string, error) { return qcRows(ctx, c, q) })
			}
		}
	})

	// Volatile reads the classifier may not see (literal 'now' in other
	// quoting, random sampling, server-dependent built-ins). Failures here are
	// reported as classifier gaps.
	t.Run("Volatile edge cases", func(t *testing.T) {
		c := connect(t, ctx, p.Proxy, withMode(pgx.QueryExecModeSimpleProtocol))
		for _, q := range []string{
			"SELECT $$now$$::timestamptz",
			"SELECT E'now'::timestamptz",
			"SELECT ' now'::timestamptz",
			"SELECT 'now '::timestamptz::text",
			"SELECT count(*) FROM " + T + " TABLESAMPLE BERNOULLI (50)",
			"SELECT pg_is_in_recovery()",
		} {
			p.neverHit(t, q, 3, func() (string, error) { return qcRows(ctx, c, q) })
		}
	})

	t.Run("nocache hint never", func(t *testing.T) {
		c := connect(t, ctx, p.Proxy, withMode(pgx.QueryExecModeExec))
		s := connect(t, ctx, p.Proxy, withMode(pgx.QueryExecModeSimpleProtocol))
		for _, q := range []string{
			"/* poolmgr:nocache */ SELECT id, v FROM " + T + " WHERE id = 2",
			"SELECT /* poolmgr:nocache */ id, v FROM " + T + " WHERE id = 2",
			"-- poolmgr:nocache\nSELECT id, v FROM " + T + " WHERE id = 2",
			"/* poolmgr:nocache */ SELECT 42",
		} {
			p.neverHit(t, "exec "+q, 3, func() (string, error) { return qcRows(ctx, c, q) })
			p.neverHit(t, "simple "+q, 3, func() (string, error) { return qcRows(ctx, s, q) })
		}
	})

	t.Run("Inside a transaction never", func(t *testing.T) {
		for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec, pgx.QueryExecModeCacheStatement} {
			c := connect(t, ctx, p.Proxy, withMode(mode))
			cached := "SELECT id, v FROM " + T + " WHERE id = 3"
			p.twiceHit(t, fmt.Sprintf("%v outside", mode), func() (string, error) { return qcRows(ctx, c, cached) })
			fresh := fmt.Sprintf("SELECT id, v FROM %s WHERE id = 4 /* %v */", T, mode)
			for _, begin := range []string{"BEGIN", "BEGIN READ ONLY", "BEGIN ISOLATION LEVEL REPEATABLE READ"} {
				if _, err := c.Exec(ctx, begin); err != nil {
					t.Fatal(err)
				}
				p.neverHit(t, fmt.Sprintf("%v %s; cached read", mode, begin), 2, func() (string, error) { return qcRows(ctx, c, cached) })
				p.neverHit(t, fmt.Sprintf("%v %s; fresh read", mode, begin), 2, func() (string, error) { return qcRows(ctx, c, fresh) })
				if _, err := c.Exec(ctx, "COMMIT"); err != nil {
					t.Fatal(err)
				}
			}
			// Nothing read inside the transactions was stored.
			p.neverHit(t, fmt.Sprintf("%v after COMMIT, first run of the fresh read", mode), 1, func() (string, error) { return qcRows(ctx, c, fresh) })
		}
		// A multi-statement simple query is one implicit transaction: not cached.
		s := connect(t, ctx, p.Proxy, withMode(pgx.QueryExecModeSimpleProtocol))
		p.neverHit(t, "multi-statement", 3, func() (string, error) {
			res := s.PgConn().Exec(ctx, "SELECT v FROM "+T+" WHERE id = 5; SELECT 2")
			_, err := res.ReadAll()
			return "", err
		})
	})

	// Everything a result depends on is in the key: startup settings
	// (TimeZone, extra_float_digits, search_path) and reported settings
	// changed with SET (DateStyle).
	t.Run("Settings are part of the key", func(t *testing.T) {
		type variant struct{ k, v, sql string }
		for _, pair := range [][2]variant{
			{{"TimeZone", "UTC", "SELECT ts FROM " + pfx + "_ts"}, {"TimeZone", "Asia/Tokyo", "SELECT ts FROM " + pfx + "_ts"}},
			{{"extra_float_digits", "0", "SELECT f FROM " + T + " WHERE id = 1"}, {"extra_float_digits", "1", "SELECT f FROM " + T + " WHERE id = 1"}},
			{{"search_path", pfx + "_a", "SELECT v FROM " + pfx + "_sp"}, {"search_path", pfx + "_b", "SELECT v FROM " + pfx + "_sp"}},
		} {
			var got [2]string
			for i, v := range pair {
				c := connect(t, ctx, p.Proxy, withMode(pgx.QueryExecModeSimpleProtocol), withParams(v.k, v.v))
				got[i] = p.twiceHit(t, v.k+"="+v.v, func() (string, error) { return qcRows(ctx, c, v.sql) })
			}
			if got[0] == got[1] {
				t.Errorf("%s=%s and %s=%s got the same result %q", pair[0].k, pair[0].v, pair[1].k, pair[1].v, got[0])
			}
		}
		c := connect(t, ctx, p.Proxy, withMode(pgx.QueryExecModeSimpleProtocol), withParams("DateStyle", "ISO, MDY"))
		q := "SELECT d FROM " + T + " WHERE id = 1"
		iso := p.twiceHit(t, "DateStyle ISO", func() (string, error) { return qcRows(ctx, c, q) })
		mustExec(t, ctx, c, "SET DateStyle = 'German'")
		ger, err := qcRows(ctx, c, q)
		if err != nil || ger == iso || !strings.Contains(ger, ".") {
			t.Errorf("after SET DateStyle = 'German': %q (ISO result was %q), err %v", ger, iso, err)
		}
	})

	t.Run("Metrics agree with SHOW CACHE", func(t *testing.T) {
		st := p.stats(t)
		code, body, err := httpGet(p.metrics + "/metrics")
		if err != nil || code != 200 {
			t.Fatalf("/metrics: %d %v", code, err)
		}
		h, m := metricValue(body, "poolmgr_cache_hits_total"), metricValue(body, "poolmgr_cache_misses_total")
		t.Logf("SHOW CACHE %s; /metrics hits %v misses %v", st, h, m)
		if h != float64(st.Hits) || m != float64(st.Misses) {
			t.Errorf("/metrics hits %v misses %v, SHOW CACHE hits %d misses %d", h, m, st.Hits, st.Misses)
		}
		if e := metricValue(body, "poolmgr_cache_enabled"); e != 1 {
			t.Errorf("poolmgr_cache_enabled = %v", e)
		}
		if st.Hits < 10 {
			t.Errorf("only %d hits in the whole test", st.Hits)
		}
	})
}

// ---------------------------------------------------------------------------
// 2. Write then read

func TestCacheWriteThenRead(t *testing.T) {
	ctx := testCtx(t, 120*time.Second)
	pfx := qcObjects(t, []string{"DROP TABLE IF EXISTS {p}_t"},
		"CREATE TABLE {p}_t (id int PRIMARY KEY, v int NOT NULL)",
		"INSERT INTO {p}_t VALUES (1, 0), (2, 0)",
		"GRANT ALL ON {p}_t TO {app}")
	T := pfx + "_t"
	p := qcStart(t, ctx, qcConf{})
	read := "SELECT v FROM " + T + " WHERE id = 1"
	hinted := qcPrimaryHint + read

	a := connect(t, ctx, p.Proxy, withMode(pgx.QueryExecModeExec)) // writer
	c := connect(t, ctx, p.Proxy, withMode(pgx.QueryExecModeExec))
	d := connect(t, ctx, p.Proxy, withMode(pgx.QueryExecModeSimpleProtocol))
	b := connect(t, ctx, p.Proxy, withMode(pgx.QueryExecModeExec)) // replica reader
	p.warm(t, func() (string, error) { return qcRows(ctx, c, hinted) })
	val := int64(0)

	write := func(t *testing.T, i int64) {
		t.Helper()
		var err error
		switch i % 5 {
		case 0:
			_, err = a.Exec(ctx, "UPDATE "+T+" SET v = $1 WHERE id = 1", i)
		case 1:
			_, err = a.Exec(ctx, "UPDATE "+T+" SET v = $1 WHERE id = 1", pgx.QueryExecModeSimpleProtocol, i)
		case 2:
			err = pgx.BeginFunc(ctx, a, func(tx pgx.Tx) error {
				_, err := tx.Exec(ctx, "UPDATE "+T+" SET v = $1 WHERE id = 1", i)
				return err
			})
		case 3:
			var got int64
			err = a.QueryRow(ctx, "WITH u AS (UPDATE "+T+" SET v = $1 WHERE id = 1 RETURNING v) SELECT v FROM u", i).Scan(&got)
		case 4:
			_, err = a.Exec(ctx, "INSERT INTO "+T+" VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET v = excluded.v", i)
		}
		if err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	check := func(t *testing.T, who string, c *pgx.Conn, sql string, want int64, bad *int) {
		t.Helper()
		got, err := qcInt(ctx, c, sql)
		if err != nil {
			t.Fatalf("%s: %v", who, err)
		}
		if got != want {
			*bad++
			if *bad <= 5 {
				t.Errorf("%s read %d after the write of %d was acknowledged (stale)", who, got, want)
			}
		}
	}
	run := func(t *testing.T, withReplicaReader bool) {
		h0 := p.hits(t)
		stale, replicaStale := 0, 0
		for i := 0; i < 100; i++ {
			val++
			write(t, val)
			if withReplicaReader {
				// b has not written: its miss may run on a standby that has not
				// replayed the write yet (allowed by routing); counted only.
				if got, err := qcInt(ctx, b, read); err != nil {
					t.Fatal(err)
				} else if got != val {
					replicaStale++
				}
			}
			check(t, "writer (same connection, extended)", a, read, val, &stale)
			check(t, "writer (same connection, simple)", a, read, val, &stale) // same text, other shape
			check(t, "other connection (extended)", c, hinted, val, &stale)
			check(t, "other connection (extended), again", c, hinted, val, &stale)
			check(t, "other connection (simple)", d, hinted, val, &stale)
			check(t, "writer (same connection, extended), again", a, read, val, &stale)
		}
		hits := p.hits(t) - h0
		t.Logf("100 writes: %d stale reads of writer/primary-routed readers, %d stale reads of the replica-routed reader; %d cache hits; SHOW CACHE %s",
			stale, replicaStale, hits, p.stats(t))
		if stale > 0 {
			t.Errorf("%d stale reads after acknowledged writes", stale)
		}
		if hits < 100 {
			t.Errorf("only %d hits: the test did not exercise the cache", hits)
		}
	}
	t.Run("Primary-routed readers", func(t *testing.T) { run(t, false) })
	t.Run("With a replica-routed reader sharing the writer's entry", func(t *testing.T) { run(t, true) })
}

// ---------------------------------------------------------------------------
// 3. Rollback keeps the entry, COMMIT invalidates

func TestCacheRollbackCommit(t *testing.T) {
	ctx := testCtx(t, 90*time.Second)
	pfx := qcObjects(t, []string{"DROP TABLE IF EXISTS {p}_t"},
		"CREATE TABLE {p}_t (id int PRIMARY KEY, v int NOT NULL)",
		"INSERT INTO {p}_t VALUES (1, 10)",
		"GRANT ALL ON {p}_t TO {app}")
	T := pfx + "_t"
	p := qcStart(t, ctx, qcConf{})
	a := connect(t, ctx, p.Proxy, withMode(pgx.QueryExecModeExec))
	r := connect(t, ctx, p.Proxy, withMode(pgx.QueryExecModeExec))
	rs := connect(t, ctx, p.Proxy, withMode(pgx.QueryExecModeSimpleProtocol))
	read := qcPrimaryHint + "SELECT v FROM " + T + " WHERE id = 1"
	readR := func() (string, error) { return qcRows(ctx, r, read) }
	readRS := func() (string, error) { return qcRows(ctx, rs, read) }
	p.warm(t, readR)
	p.warm(t, readRS)

	for _, rb := range []struct {
		name  string
		stmts []string
	}{
		{"ROLLBACK", []string{"BEGIN", "UPDATE " + T + " SET v = 11 WHERE id = 1", "ROLLBACK"}},
		{"ABORT", []string{"BEGIN", "UPDATE " + T + " SET v = 12 WHERE id = 1", "ABORT"}},
		{"failed transaction ended by COMMIT", []string{"BEGIN", "UPDATE " + T + " SET v = 13 WHERE id = 1", "SELECT 1/0", "COMMIT"}},
		{"failing autocommit write", []string{"UPDATE " + T + " SET v = 14 / 0 WHERE id = 1"}},
		{"ROLLBACK, extended protocol", []string{"BEGIN", "UPDATE " + T + " SET v = $1 WHERE id = 1", "ROLLBACK"}},
	} {
		t.Run("Rollback keeps the entry/"+rb.name, func(t *testing.T) {
			want := p.twiceHit(t, "cache the read", readR)
			for _, s := range rb.stmts {
				var err error
				if strings.Contains(s, "$1") {
					_, err = a.Exec(ctx, s, 15)
				} else {
					_, err = a.Exec(ctx, s, pgx.QueryExecModeSimpleProtocol)
				}
				if err != nil && !strings.Contains(s, "/") {
					t.Fatalf("%s: %v", s, err)
				}
			}
			got, n, err := p.hitDuring(t, readR)
			if err != nil || got != want || n != 1 {
				t.Errorf("after %s: rows %q (want %q), %d hits (want 1: the entry survives), err %v", rb.name, got, want, n, err)
			}
			if v := qcMustInt(t, ctx, a, "SELECT v FROM "+T+" WHERE id = 1"); v != 10 {
				t.Errorf("writer reads %d after %s, want 10", v, rb.name)
			}
		})
	}

	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec} {
		t.Run(fmt.Sprintf("COMMIT invalidates/%v", mode), func(t *testing.T) {
			old := qcMustInt(t, ctx, a, "SELECT v FROM "+T+" WHERE id = 1")
			p.twiceHit(t, "cache the read (extended)", readR)
			p.twiceHit(t, "cache the read (simple)", readRS)
			nv := old + 100
			tx, err := a.BeginTx(ctx, pgx.TxOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Exec(ctx, "UPDATE "+T+" SET v = $1 WHERE id = 1", mode, nv); err != nil {
				t.Fatal(err)
			}
			for _, c := range []*pgx.Conn{r, rs} {
				if v := qcMustInt(t, ctx, c, read); v != old {
					t.Errorf("other client between UPDATE and COMMIT reads %d, want the old %d", v, old)
				}
			}
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			for i, c := range []*pgx.Conn{r, rs, r, rs} {
				if v := qcMustInt(t, ctx, c, read); v != nv {
					t.Errorf("other client (read %d) after COMMIT reads %d, want %d", i, v, nv)
				}
			}
			if v := qcMustInt(t, ctx, a, "SELECT v FROM "+T+" WHERE id = 1"); v != nv {
				t.Errorf("writer after COMMIT reads %d, want %d", v, nv)
			}
			// and it is cached again
			p.twiceHit(t, "re-cached after COMMIT", readR)
		})
	}
}

// ---------------------------------------------------------------------------
// 3b. Writes whose commit the core might miss (bug hunt beyond the issue's
// list): every case commits a write; a cached read from another client must
// see it.

func TestCacheWriteEdgeCases(t *testing.T) {
	ctx := testCtx(t, 90*time.Second)
	pfx := qcObjects(t, []string{"DROP TABLE IF EXISTS {p}_t, {p}_c"},
		"CREATE TABLE {p}_t (id int PRIMARY KEY, v int NOT NULL)",
		"INSERT INTO {p}_t VALUES (1, 0)",
		"CREATE TABLE {p}_c (id int)",
		"GRANT ALL ON {p}_t, {p}_c TO {app}")
	T := pfx + "_t"
	p := qcStart(t, ctx, qcConf{})
	a := connect(t, ctx, p.Proxy, withMode(pgx.QueryExecModeExec))
	r := connect(t, ctx, p.Proxy, withMode(pgx.QueryExecModeExec))
	read := qcPrimaryHint + "SELECT v FROM " + T + " WHERE id = 1"
	readR := func() (string, error) { return qcRows(ctx, r, read) }
	p.warm(t, readR)
	val := int64(0)

	simple := func(sqls ...string) error {
		for _, s := range sqls {
			if _, err := a.Exec(ctx, s, pgx.QueryExecModeSimpleProtocol); err != nil {
				return fmt.Errorf("%s: %w", s, err)
			}
		}
		return nil
	}
	upd := func(v int64) string { return fmt.Sprintf("UPDATE %s SET v = %d WHERE id = 1", T, v) }

	for _, tc := range []struct {
		name  string
		write func(t *testing.T, v int64) error
	}{
		{"nested transaction (savepoint released)", func(t *testing.T, v int64) error {
			return simple("BEGIN", "SAVEPOINT s1", upd(v), "RELEASE SAVEPOINT s1", "COMMIT")
		}},
		{"ROLLBACK TO SAVEPOINT of another statement, then COMMIT", func(t *testing.T, v int64) error {
			return simple("BEGIN", upd(v), "SAVEPOINT s1", "UPDATE "+T+" SET v = -1 WHERE id = 1", "ROLLBACK TO SAVEPOINT s1", "COMMIT")
		}},
		{"error recovered with ROLLBACK TO SAVEPOINT, then COMMIT", func(t *testing.T, v int64) error {
			if err := simple("BEGIN", upd(v), "SAVEPOINT s1"); err != nil {
				return err
			}
			if err := simple("SELECT 1/0"); err == nil {
				return errors.New("1/0 did not fail")
			}
			return simple("ROLLBACK TO SAVEPOINT s1", "COMMIT")
		}},
		{"COMMIT AND CHAIN, then ROLLBACK of the chained transaction", func(t *testing.T, v int64) error {
			return simple("BEGIN", upd(v), "COMMIT AND CHAIN", "UPDATE "+T+" SET v = -1 WHERE id = 1", "ROLLBACK")
		}},
		{"pipelined autocommit write followed by a failing query", func(t *testing.T, v int64) error {
			return qcPipeline(ctx, a, upd(v), "SELECT 1/0")
		}},
		{"pipelined autocommit write followed by another transaction's ROLLBACK", func(t *testing.T, v int64) error {
			return qcPipeline(ctx, a, upd(v), "BEGIN", "SELECT 1", "ROLLBACK")
		}},
		{"unnamed prepared statement executed again (Bind without Parse)", func(t *testing.T, v int64) error {
			pc := a.PgConn()
			if _, err := pc.Prepare(ctx, "", "UPDATE "+T+" SET v = $1 WHERE id = 1", nil); err != nil {
				return err
			}
			// first execution: Bind "" + Execute + Sync, no Parse
			if _, err := pc.ExecPrepared(ctx, "", [][]byte{[]byte(strconv.FormatInt(v-1, 10))}, nil, nil).Close(); err != nil {
				return err
			}
			if got, err := qcInt(ctx, r, read); err != nil || got != v-1 {
				return fmt.Errorf("after the first Bind/Execute of the unnamed statement the reader sees %d (want %d), err %v", got, v-1, err)
			}
			p.twiceHit(t, "re-cache", readR)
			_, err := pc.ExecPrepared(ctx, "", [][]byte{[]byte(strconv.FormatInt(v, 10))}, nil, nil).Close()
			return err
		}},
		{"client disconnects while its autocommit write runs (outcome unknown to the client)", func(t *testing.T, v int64) error {
			c, err := connectTo(t, ctx, p.ConnString(testutil.AppUser, testutil.AppPassword, testutil.AppDB))
			if err != nil {
				return err
			}
			pc := c.PgConn()
			pc.Frontend().Send(&pgproto3.Query{String: fmt.Sprintf("UPDATE %s SET v = (SELECT %d FROM pg_sleep(0.3)) WHERE id = 1", T, v)})
			if err := pc.Frontend().Flush(); err != nil {
				return err
			}
			time.Sleep(50 * time.Millisecond)
			pc.Conn().Close() // e.g. a client-side timeout: PostgreSQL still commits the UPDATE
			time.Sleep(400 * time.Millisecond)
			return nil
		}},
		{"client disconnects while its autocommit write runs; another client reads before the write commits", func(t *testing.T, v int64) error {
			c, err := connectTo(t, ctx, p.ConnString(testutil.AppUser, testutil.AppPassword, testutil.AppDB))
			if err != nil {
				return err
			}
			pc := c.PgConn()
			pc.Frontend().Send(&pgproto3.Query{String: fmt.Sprintf("UPDATE %s SET v = (SELECT %d FROM pg_sleep(0.5)) WHERE id = 1", T, v)})
			if err := pc.Frontend().Flush(); err != nil {
				return err
			}
			time.Sleep(50 * time.Millisecond)
			pc.Conn().Close()
			time.Sleep(100 * time.Millisecond)
			// The UPDATE has not committed yet: reading (and caching) the old
			// value is right now, but it must not be served once it commits.
			for i := 0; i < 2; i++ {
				if _, err := qcInt(ctx, r, read); err != nil {
					return err
				}
			}
			time.Sleep(600 * time.Millisecond)
			return nil
		}},
		{"pipelined writes; another client reads between the first's commit and the second's", func(t *testing.T, v int64) error {
			done := make(chan error, 1)
			go func() {
				done <- qcPipeline(ctx, a, upd(v-5), fmt.Sprintf("UPDATE %s SET v = (SELECT %d FROM pg_sleep(0.4)) WHERE id = 1", T, v))
			}()
			time.Sleep(150 * time.Millisecond)
			var mid []int64
			for i := 0; i < 2; i++ {
				got, err := qcInt(ctx, r, read)
				if err != nil {
					return err
				}
				mid = append(mid, got)
			}
			t.Logf("reads while the second write runs: %v (the first wrote %d)", mid, v-5)
			return <-done
		}},
		{"one simple query: BEGIN; write; COMMIT; slow write; another client reads in between", func(t *testing.T, v int64) error {
			done := make(chan error, 1)
			go func() {
				_, err := a.Exec(ctx, fmt.Sprintf("BEGIN; %s; COMMIT; UPDATE %s SET v = (SELECT %d FROM pg_sleep(0.4)) WHERE id = 1", upd(v-3), T, v),
					pgx.QueryExecModeSimpleProtocol)
				done <- err
			}()
			time.Sleep(150 * time.Millisecond)
			for i := 0; i < 2; i++ {
				if _, err := qcInt(ctx, r, read); err != nil {
					return err
				}
			}
			return <-done
		}},
		{"backend terminated right after the COMMIT (outcome unknown)", func(t *testing.T, v int64) error {
			c, err := connectTo(t, ctx, p.ConnString(testutil.AppUser, testutil.AppPassword, testutil.AppDB))
			if err != nil {
				return err
			}
			res, err := c.PgConn().Exec(ctx, upd(v)+"; COMMIT; SELECT pg_terminate_backend(pg_backend_pid())").ReadAll()
			if err == nil {
				return fmt.Errorf("the backend was not terminated (%d results)", len(res))
			}
			return nil
		}},
		{"named prepared statement (pgx statement cache)", func(t *testing.T, v int64) error {
			_, err := a.Exec(ctx, "UPDATE "+T+" SET v = $1 WHERE id = 1", pgx.QueryExecModeCacheStatement, v)
			return err
		}},
		{"DO block", func(t *testing.T, v int64) error {
			return simple(fmt.Sprintf("DO $$BEGIN %s; END$$", upd(v)))
		}},
		{"multi-statement simple query", func(t *testing.T, v int64) error {
			return simple("SELECT 1; " + upd(v) + "; SELECT 2")
		}},
		{"TRUNCATE and INSERT in a transaction", func(t *testing.T, v int64) error {
			return simple("BEGIN", "TRUNCATE "+T, fmt.Sprintf("INSERT INTO %s VALUES (1, %d)", T, v), "COMMIT")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			val += 10
			// Start from a correct entry: an ordinary write (invalidates), then
			// the read is cached with its result.
			if _, err := a.Exec(ctx, upd(val-1)); err != nil {
				t.Fatal(err)
			}
			if v := qcMustInt(t, ctx, r, read); v != val-1 {
				t.Fatalf("after an ordinary autocommit write of %d the reader sees %d", val-1, v)
			}
			p.warm(t, readR) // after a DO block the catalog is reloaded first
			p.twiceHit(t, "cache the read", readR)
			if err := tc.write(t, val); err != nil {
				t.Fatalf("write: %v", err)
			}
			// the ground truth, straight from the primary
			prim := qcDirect(t, ctx, testutil.PrimaryAddr)
			testutil.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
				if v := qcMustInt(t, ctx, prim, "SELECT v FROM "+T+" WHERE id = 1"); v != val {
					return fmt.Errorf("primary has v = %d, want %d (the write did not commit: test bug)", v, val)
				}
				return nil
			})
			got, n, err := p.hitDuring(t, func() (string, error) {
				v, err := qcInt(ctx, r, read)
				return strconv.FormatInt(v, 10), err
			})
			if err != nil {
				t.Fatal(err)
			}
			if got != strconv.FormatInt(val, 10) {
				t.Errorf("the write committed v = %d, another client then reads %s from the cache (%d hit): stale", val, got, n)
			}
		})
	}

	t.Run("COPY FROM STDIN", func(t *testing.T) {
		cnt := qcPrimaryHint + "SELECT count(*) FROM " + pfx + "_c"
		p.twiceHit(t, "cache count", func() (string, error) { return qcRows(ctx, r, cnt) })
		if _, err := a.CopyFrom(ctx, pgx.Identifier{pfx + "_c"}, []string{"id"}, pgx.CopyFromRows([][]any{{1}, {2}, {3}})); err != nil {
			t.Fatal(err)
		}
		if v := qcMustInt(t, ctx, r, cnt); v != 3 {
			t.Errorf("after COPY of 3 rows another client counts %d", v)
		}
	})
}

// qcPipeline sends the simple queries in one write (a pipelining client)
// and reads every response; it returns the first error.
func qcPipeline(ctx context.Context, c *pgx.Conn, sqls ...string) error {
	pc := c.PgConn()
	fe := pc.Frontend()
	for _, s := range sqls {
		fe.Send(&pgproto3.Query{String: s})
	}
	if err := fe.Flush(); err != nil {
		return err
	}
	var firstErr error
	for ready := 0; ready < len(sqls); {
		if dl, ok := ctx.Deadline(); ok {
			pc.Conn().SetReadDeadline(dl)
		}
		m, err := fe.Receive()
		if err != nil {
			return err
		}
		switch m := m.(type) {
		case *pgproto3.ReadyForQuery:
			ready++
		case *pgproto3.ErrorResponse:
			if firstErr == nil && m.Code != "22012" { // division by zero is expected
				firstErr = fmt.Errorf("%s: %s", m.Code, m.Message)
			}
		}
	}
	pc.Conn().SetReadDeadline(time.Time{})
	return firstErr
}

// qcRaw sends protocol messages in one write and renders the DataRows up
// to ReadyForQuery (an ErrorResponse becomes the error).
func qcRaw(ctx context.Context, c *pgx.Conn, msgs ...pgproto3.FrontendMessage) (string, error) {
	pc := c.PgConn()
	fe := pc.Frontend()
	for _, m := range msgs {
		fe.Send(m)
	}
	if err := fe.Flush(); err != nil {
		return "", err
	}
	if dl, ok := ctx.Deadline(); ok {
		pc.Conn().SetReadDeadline(dl)
		defer pc.Conn().SetReadDeadline(time.Time{})
	}
	var b strings.Builder
	var rerr error
	for {
		m, err := fe.Receive()
		if err != nil {
			return "", err
		}
		switch m := m.(type) {
		case *pgproto3.DataRow:
			for i, v := range m.Values {
				if i > 0 {
					b.WriteByte('|')
				}
				b.WriteString(strconv.Quote(string(v)))
			}
			b.WriteByte('\n')
		case *pgproto3.ErrorResponse:
			rerr = fmt.Errorf("%s: %s", m.Code, m.Message)
		case *pgproto3.ReadyForQuery:
			return b.String(), rerr
		}
	}
}

// ---------------------------------------------------------------------------
// 4. Concurrent writer / readers with a linearizability-style checker

func TestCacheConcurrentStress(t *testing.T) {
	ctx := testCtx(t, 90*time.Second)
	pfx := qcObjects(t, []string{"DROP TABLE IF EXISTS {p}_t"},
		"CREATE TABLE {p}_t (id int PRIMARY KEY, v bigint NOT NULL)",
		"INSERT INTO {p}_t VALUES (1, 0)",
		"GRANT ALL ON {p}_t TO {app}")
	T := pfx + "_t"
	p := qcStart(t, ctx, qcConf{})
	t.Run("Writer in extended protocol, 5 s", func(t *testing.T) {
		qcStress(t, ctx, p, T, pgx.QueryExecModeExec, 5*time.Second)
	})
	// pgx's describe_exec mode: Parse ""/Describe/Sync, then Bind ""/Execute/Sync.
	t.Run("Writer in pgx describe_exec mode, 2 s", func(t *testing.T) {
		qcStress(t, ctx, p, T, pgx.QueryExecModeDescribeExec, 2*time.Second)
	})
}

// qcStress runs one writer incrementing T's counter (UPDATE ... RETURNING,
// writerMode) against readers in a loop for duration, then checks that no
// read that started after a write was acknowledged returned less.
func qcStress(t *testing.T, ctx context.Context, p *qcProxy, T string, writerMode pgx.QueryExecMode, duration time.Duration) {
	read := "SELECT v FROM " + T + " WHERE id = 1"
	hinted := qcPrimaryHint + read
	w := connect(t, ctx, p.Proxy, withMode(writerMode))
	p.warm(t, func() (string, error) { return qcRows(ctx, w, hinted) })

	type write struct {
		ack time.Time
		v   int64
	}
	type obs struct {
		start, end time.Time
		v          int64
	}
	var (
		writes []write // in acknowledgment order (one writer)
		wmu    sync.Mutex
		stop   atomic.Bool
		wg     sync.WaitGroup
		errs   = make(chan error, 16)
	)
	readerModes := []pgx.QueryExecMode{pgx.QueryExecModeExec, pgx.QueryExecModeExec, pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeCacheStatement}
	results := make([][]obs, len(readerModes)+1) // the last: a replica-routed reader (reported only)
	conns := make([]*pgx.Conn, len(readerModes)+1)
	for i := range conns {
		m := pgx.QueryExecModeExec
		if i < len(readerModes) {
			m = readerModes[i]
		}
		conns[i] = connect(t, ctx, p.Proxy, withMode(m))
	}
	h0 := p.stats(t)
	for i, c := range conns {
		q := hinted
		if i == len(readerModes) {
			q = read
		}
		wg.Add(1)
		go func(i int, c *pgx.Conn, q string) {
			defer wg.Done()
			for !stop.Load() {
				st := time.Now()
				v, err := qcInt(ctx, c, q)
				if err != nil {
					errs <- fmt.Errorf("reader %d: %w", i, err)
					return
				}
				results[i] = append(results[i], obs{st, time.Now(), v})
			}
		}(i, c, q)
	}
	var ownStale int
	deadline := time.Now().Add(duration)
	for n := 0; time.Now().Before(deadline); n++ {
		var v int64
		if err := w.QueryRow(ctx, "UPDATE "+T+" SET v = v + 1 WHERE id = 1 RETURNING v").Scan(&v); err != nil {
			t.Fatalf("writer: %v", err)
		}
		wmu.Lock()
		writes = append(writes, write{time.Now(), v})
		wmu.Unlock()
		if n%10 == 0 { // the writer reads its own write (read-your-writes, through the cache)
			if got, err := qcInt(ctx, w, read); err != nil {
				t.Fatal(err)
			} else if got < v {
				ownStale++
			}
		}
		// pauses let readers hit the cache between writes
		time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	h1 := p.stats(t)

	check := func(rs []obs) (n, bad int, worst string) {
		for _, o := range rs {
			// the last write acknowledged before the read started
			k := sort.Search(len(writes), func(i int) bool { return !writes[i].ack.Before(o.start) }) - 1
			n++
			if k >= 0 && o.v < writes[k].v {
				bad++
				if worst == "" {
					worst = fmt.Sprintf("read started %v after write %d was acknowledged and returned %d",
						o.start.Sub(writes[k].ack), writes[k].v, o.v)
				}
			}
		}
		return
	}
	total, violations := 0, 0
	for i := range readerModes {
		n, bad, worst := check(results[i])
		total += n
		violations += bad
		if bad > 0 {
			t.Errorf("reader %d (%v): %d of %d reads stale; first: %s", i, readerModes[i], bad, n, worst)
		}
	}
	rn, rbad, rworst := check(results[len(readerModes)])
	t.Logf("%v: %d writes, %d primary-routed reads (%d violations), writer's own reads stale: %d; cache hits %d, misses %d",
		duration, len(writes), total, violations, ownStale, h1.Hits-h0.Hits, h1.Misses-h0.Misses)
	t.Logf("replica-routed reader (not asserted: standbys may lag): %d reads, %d stale %s", rn, rbad, rworst)
	if ownStale > 0 {
		t.Errorf("the writer read an older value than its own acknowledged write %d times", ownStale)
	}
	if h1.Hits-h0.Hits < 100 {
		t.Errorf("only %d hits: the stress did not exercise the cache", h1.Hits-h0.Hits)
	}
	if len(writes) < 100 || total < 1000 {
		t.Errorf("too little traffic: %d writes, %d reads", len(writes), total)
	}
}

// ---------------------------------------------------------------------------
// 5. Two instances: the bus

func TestCacheTwoInstances(t *testing.T) {
	ctx := testCtx(t, 90*time.Second)
	// Tables whose names need escaping on the bus; a receiver that split
	// them would bump the known table {p}_k instead (and serve stale rows).
	weird := []string{"{p}_s.{p}_k", "{p}_k,{p}_k", "{p}_k%2c{p}_k", "{p}_k|{p}_k", "*", "!"}
	drops := []string{"DROP TABLE IF EXISTS {p}_t, {p}_k"}
	setup := []string{
		"CREATE TABLE {p}_t (id int PRIMARY KEY, v int NOT NULL)",
		"INSERT INTO {p}_t VALUES (1, 0)",
		"CREATE TABLE {p}_k (id int PRIMARY KEY, v int NOT NULL)",
		"GRANT ALL ON {p}_t, {p}_k TO {app}",
	}
	for i, w := range weird {
		if w == "*" || w == "!" {
			weird[i] = "{p}" + w // a name made of these alone would clash with other runs
			w = weird[i]
		}
		q := `"` + w + `"`
		drops = append(drops, "DROP TABLE IF EXISTS "+q)
		setup = append(setup, "CREATE TABLE "+q+" (id int PRIMARY KEY, v int NOT NULL)",
			"INSERT INTO "+q+" VALUES (1, 0)", "GRANT ALL ON "+q+" TO {app}")
	}
	pfx := qcObjects(t, drops, setup...)
	T := pfx + "_t"
	pa := qcStart(t, ctx, qcConf{})
	pb := qcStart(t, ctx, qcConf{})
	wa := connect(t, ctx, pa.Proxy, withMode(pgx.QueryExecModeExec))
	rb := connect(t, ctx, pb.Proxy, withMode(pgx.QueryExecModeExec))
	ra := connect(t, ctx, pa.Proxy, withMode(pgx.QueryExecModeExec))
	read := qcPrimaryHint + "SELECT v FROM " + T + " WHERE id = 1"
	readB := func() (string, error) { return qcRows(ctx, rb, read) }
	pb.warm(t, readB)
	pa.warm(t, func() (string, error) { return qcRows(ctx, ra, read) })
	remote0 := pb.stats(t).noteInt("remote")

	var delays []time.Duration
	for trial := int64(1); trial <= 8; trial++ {
		pb.twiceHit(t, fmt.Sprintf("trial %d: B caches the read", trial), readB)
		var err error
		if trial%2 == 0 {
			err = pgx.BeginFunc(ctx, wa, func(tx pgx.Tx) error {
				_, err := tx.Exec(ctx, "UPDATE "+T+" SET v = $1 WHERE id = 1", trial)
				return err
			})
		} else {
			_, err = wa.Exec(ctx, "UPDATE "+T+" SET v = $1 WHERE id = 1", trial)
		}
		if err != nil {
			t.Fatal(err)
		}
		ack := time.Now()
		oldReads := 0
		for {
			v, err := qcInt(ctx, rb, read)
			if err != nil {
				t.Fatal(err)
			}
			if v == trial {
				break
			}
			oldReads++
			if time.Since(ack) > 5*time.Second {
				t.Fatalf("trial %d: instance B still returns %d 5 s after the write through A (SHOW CACHE B: %s)", trial, v, pb.stats(t))
			}
		}
		d := time.Since(ack)
		delays = append(delays, d)
		t.Logf("trial %d (%s): B returned the new value %v after A acknowledged the write (%d old reads meanwhile)",
			trial, map[bool]string{true: "transaction", false: "autocommit"}[trial%2 == 0], d.Round(10*time.Microsecond), oldReads)
		// A itself is coherent at once
		if v := qcMustInt(t, ctx, ra, read); v != trial {
			t.Errorf("trial %d: instance A serves %d after its own write", trial, v)
		}
	}
	sort.Slice(delays, func(i, j int) bool { return delays[i] < delays[j] })
	t.Logf("bus delay (write ack on A -> new value on B): min %v, median %v, max %v; SHOW CACHE B: %s",
		delays[0], delays[len(delays)/2], delays[len(delays)-1], pb.stats(t))
	if pb.stats(t).noteInt("remote") == remote0 {
		t.Errorf("B counted no remote invalidation")
	}
	if worst := delays[len(delays)-1]; worst > 500*time.Millisecond {
		t.Errorf("bus delay %v > 500 ms (target 100 ms)", worst)
	} else if worst > 100*time.Millisecond {
		t.Logf("note: bus delay %v above the 100 ms target (loaded machine?)", worst)
	}

	t.Run("Table names that need escaping on the bus", func(t *testing.T) {
		for i, w := range weird {
			q := `"` + strings.ReplaceAll(w, "{p}", pfx) + `"`
			rd := qcPrimaryHint + "SELECT v FROM " + q + " WHERE id = 1"
			pb.twiceHit(t, "B caches "+q, func() (string, error) { return qcRows(ctx, rb, rd) })
			nv := int64(100 + i)
			if _, err := wa.Exec(ctx, "UPDATE "+q+" SET v = $1 WHERE id = 1", nv); err != nil {
				t.Fatal(err)
			}
			ack := time.Now()
			for {
				v, err := qcInt(ctx, rb, rd)
				if err != nil {
					t.Fatal(err)
				}
				if v == nv {
					break
				}
				if time.Since(ack) > 2*time.Second {
					t.Errorf("table %s: instance B still serves %d 2 s after the write of %d through A", q, v, nv)
					break
				}
			}
		}
	})
}

// ---------------------------------------------------------------------------
// 6. Row-level security and privileges: users never see each other's rows

func TestCacheRLSIsolation(t *testing.T) {
	ctx := testCtx(t, 90*time.Second)
	n := testutil.Nonce()
	u1, u2 := "qc_"+n+"_u1", "qc_"+n+"_u2"
	const pw1, pw2 = "qc-pw-1", "qc-pw-2"
	// Registered before the proxy starts: runs after it stopped.
	pfx := qcObjects(t, []string{
		"DROP TABLE IF EXISTS {p}_rls, {p}_priv",
		"DROP OWNED BY " + u1 + ", " + u2,
		"DROP ROLE IF EXISTS " + u1, "DROP ROLE IF EXISTS " + u2,
	},
		"CREATE ROLE "+u1+" LOGIN PASSWORD '"+pw1+"'",
		"CREATE ROLE "+u2+" LOGIN PASSWORD '"+pw2+"'",
		"CREATE TABLE {p}_rls (owner name NOT NULL, secret text NOT NULL)",
		"ALTER TABLE {p}_rls ENABLE ROW LEVEL SECURITY",
		"CREATE POLICY own ON {p}_rls USING (owner = current_user)",
		"INSERT INTO {p}_rls VALUES ('"+u1+"', 'u1-secret-a'), ('"+u1+"', 'u1-secret-b'), ('"+u2+"', 'u2-secret-a')",
		"GRANT SELECT ON {p}_rls TO "+u1+", "+u2,
		"CREATE TABLE {p}_priv (secret text)",
		"INSERT INTO {p}_priv VALUES ('only-u1-may-read')",
		"GRANT SELECT ON {p}_priv TO "+u1)
	p := qcStart(t, ctx, qcConf{opts: []testutil.Option{testutil.WithUser(u1, pw1), testutil.WithUser(u2, pw2)}})
	conn := func(user, pw string, mode pgx.QueryExecMode) *pgx.Conn {
		c, err := connectTo(t, ctx, p.ConnString(user, pw, testutil.AppDB), withMode(mode))
		if err != nil {
			t.Fatalf("connect as %s: %v", user, err)
		}
		return c
	}
	priv := "SELECT secret FROM " + pfx + "_priv"
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec, pgx.QueryExecModeCacheStatement} {
		t.Run(mode.String(), func(t *testing.T) {
			c1, c2 := conn(u1, pw1, mode), conn(u2, pw2, mode)
			for _, q := range []string{
				"SELECT owner, secret FROM " + pfx + "_rls ORDER BY secret",
				qcPrimaryHint + "SELECT owner, secret FROM " + pfx + "_rls ORDER BY secret",
				"SELECT secret FROM " + pfx + "_rls WHERE secret LIKE $1 ORDER BY secret",
			} {
				var args []any
				if strings.Contains(q, "$1") {
					args = []any{"%secret%"}
				}
				h0 := p.hits(t)
				for i := 0; i < 2; i++ {
					r, err := qcRows(ctx, c1, q, args...)
					if err != nil || !strings.Contains(r, "u1-secret-a") || strings.Contains(r, "u2-") {
						t.Errorf("u1 %q: %q, %v", q, r, err)
					}
				}
				for i := 0; i < 3; i++ {
					r, err := qcRows(ctx, c2, q, args...)
					if err != nil {
						t.Fatalf("u2 %q: %v", q, err)
					}
					if strings.Contains(r, "u1-") {
						t.Errorf("u2 got u1's rows for %q: %q", q, r)
					}
					if !strings.Contains(r, "u2-secret-a") {
						t.Errorf("u2 %q: %q, want its own row", q, r)
					}
				}
				if h := p.hits(t) - h0; h != 0 {
					// internal/cache: tables with row-level security are never cached.
					t.Errorf("%q: %d cache hits on a row-level-security table, want 0", q, h)
				}
			}
			// A table u2 may not read: u1's cached rows must not reach u2.
			p.twiceHit(t, "u1 reads the private table", func() (string, error) { return qcRows(ctx, c1, priv) })
			for i := 0; i < 2; i++ {
				r, err := qcRows(ctx, c2, priv)
				if pe := pgError(err); pe == nil || pe.Code != "42501" {
					t.Errorf("u2 reading the private table: rows %q, err %v; want SQLSTATE 42501", r, err)
				}
			}
		})
	}
}

// ---------------------------------------------------------------------------
// 7. TTL

func TestCacheTTLExpiry(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	pfx := qcObjects(t, []string{"DROP TABLE IF EXISTS {p}_t"},
		"CREATE TABLE {p}_t (id int PRIMARY KEY, v int NOT NULL)",
		"INSERT INTO {p}_t VALUES (1, 7)",
		"GRANT ALL ON {p}_t TO {app}")
	p := qcStart(t, ctx, qcConf{ttlMs: 300})
	c := connect(t, ctx, p.Proxy, withMode(pgx.QueryExecModeExec))
	p.warm(t, func() (string, error) { return qcRows(ctx, c, "SELECT count(*) FROM "+pfx+"_t") })
	for _, q := range []string{"SELECT v FROM " + pfx + "_t WHERE id = 1", "SELECT 12345"} {
		rd := func() (string, error) { return qcRows(ctx, c, q) }
		start := time.Now()
		p.twiceHit(t, q+": hit within the TTL", rd)
		if el := time.Since(start); el > 250*time.Millisecond {
			t.Logf("note: the two reads took %v (TTL 300 ms)", el)
		}
		time.Sleep(400 * time.Millisecond)
		p.neverHit(t, q+": 400 ms later (TTL 300 ms)", 1, rd)
		p.twiceHit(t, q+": stored again after expiry", func() (string, error) {
			return qcRows(ctx, c, q)
		})
	}
}

// ---------------------------------------------------------------------------
// 8. Memory bound

func TestCacheMemoryBound(t *testing.T) {
	ctx := testCtx(t, 90*time.Second)
	const maxBytes = 256 << 10
	const maxEntry = 4096
	p := qcStart(t, ctx, qcConf{extra: []string{
		fmt.Sprintf("cache_max_bytes = %d", maxBytes),
		fmt.Sprintf("cache_max_entry_bytes = %d", maxEntry),
	}})
	ce := connect(t, ctx, p.Proxy, withMode(pgx.QueryExecModeExec))
	cs := connect(t, ctx, p.Proxy, withMode(pgx.QueryExecModeSimpleProtocol))
	p.warm(t, func() (string, error) { return qcRows(ctx, ce, "SELECT 'before flood'") }) // catalog loaded
	// one entry is well under 1 KiB: ~210 bytes of DataRow, descriptions, tags + 256 of overhead
	const slack = 1024
	peak := int64(0)
	var last qcStats
	for i := 0; i < 5000; i++ {
		var err error
		if i%2 == 0 {
			_, err = qcRows(ctx, ce, "SELECT $1::int, repeat('x', 200)", i)
		} else {
			_, err = qcRows(ctx, cs, fmt.Sprintf("SELECT %d::int, repeat('x', 200)", i))
		}
		if err != nil {
			t.Fatal(err)
		}
		if i%50 == 49 {
			last = p.stats(t)
			peak = max(peak, last.Bytes)
			if last.Bytes > maxBytes+slack {
				t.Fatalf("after %d distinct queries SHOW CACHE bytes = %d > cache_max_bytes %d + one entry (%s)", i+1, last.Bytes, maxBytes, last)
			}
		}
	}
	t.Logf("5000 distinct queries: peak bytes %d (bound %d); final %s", peak, maxBytes, last)
	if last.noteInt("stores") < 1000 || last.noteInt("evictions") == 0 || last.Entries == 0 {
		t.Errorf("the flood did not fill and evict: %s", last)
	}
	// The cache still works after the flood: a repeated query gets admitted
	// (W-TinyLFU may reject a key seen once in favour of the flood's entries,
	// so it is read until it is served from the cache).
	p.warm(t, func() (string, error) { return qcRows(ctx, ce, "SELECT 'after flood'") })
	// a response over cache_max_entry_bytes is not stored
	p.neverHit(t, "response larger than cache_max_entry_bytes", 3, func() (string, error) {
		return qcRows(ctx, ce, "SELECT repeat('y', 10000)")
	})
}

// ---------------------------------------------------------------------------
// 9. Views and other dependencies from the catalog

func TestCacheViewsAndDependencies(t *testing.T) {
	ctx := testCtx(t, 90*time.Second)
	pfx := qcObjects(t, []string{
		"DROP TABLE IF EXISTS {p}_t, {p}_pt, {p}_parent, {p}_child, {p}_ta, {p}_tb CASCADE",
		"DROP FUNCTION IF EXISTS {p}_trg()",
	},
		"CREATE TABLE {p}_t (id int PRIMARY KEY, v int NOT NULL)",
		"INSERT INTO {p}_t VALUES (1, 1), (2, 2)",
		"CREATE VIEW {p}_v AS SELECT id, v FROM {p}_t WHERE v > 0",
		"CREATE VIEW {p}_vv AS SELECT id, v * 10 AS v10 FROM {p}_v",
		"CREATE VIEW {p}_vn AS SELECT id, v, now() AS ts FROM {p}_t",
		"CREATE MATERIALIZED VIEW {p}_mv AS SELECT sum(v) AS s FROM {p}_t",
		"ALTER MATERIALIZED VIEW {p}_mv OWNER TO {app}", // REFRESH needs the owner
		"CREATE TABLE {p}_pt (id int, v int) PARTITION BY RANGE (id)",
		"CREATE TABLE {p}_pt1 PARTITION OF {p}_pt FOR VALUES FROM (0) TO (100)",
		"CREATE TABLE {p}_pt2 PARTITION OF {p}_pt FOR VALUES FROM (100) TO (200)",
		"INSERT INTO {p}_pt VALUES (1, 1), (150, 150)",
		"CREATE TABLE {p}_parent (id int PRIMARY KEY)",
		"CREATE TABLE {p}_child (id int PRIMARY KEY, pid int REFERENCES {p}_parent ON DELETE CASCADE)",
		"INSERT INTO {p}_parent VALUES (1), (2)",
		"INSERT INTO {p}_child VALUES (1, 1), (2, 1), (3, 2)",
		"CREATE TABLE {p}_ta (id int)",
		"CREATE TABLE {p}_tb (id int)",
		"CREATE FUNCTION {p}_trg() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN INSERT INTO {p}_tb VALUES (NEW.id); RETURN NEW; END$$",
		"CREATE TRIGGER {p}_tr AFTER INSERT ON {p}_ta FOR EACH ROW EXECUTE FUNCTION {p}_trg()",
		"GRANT ALL ON {p}_t, {p}_v, {p}_vv, {p}_vn, {p}_mv, {p}_pt, {p}_pt1, {p}_pt2, {p}_parent, {p}_child, {p}_ta, {p}_tb TO {app}")
	P := func(s string) string { return strings.ReplaceAll(s, "{p}", pfx) }
	p := qcStart(t, ctx, qcConf{})
	a := connect(t, ctx, p.Proxy, withMode(pgx.QueryExecModeExec))
	r := connect(t, ctx, p.Proxy, withMode(pgx.QueryExecModeExec))
	rd := func(sql string) qcRead {
		return func() (string, error) { return qcRows(ctx, r, qcPrimaryHint+P(sql)) }
	}
	p.warm(t, rd("SELECT count(*) FROM {p}_t"))
	exec := func(t *testing.T, sql string) {
		t.Helper()
		if _, err := a.Exec(ctx, P(sql)); err != nil {
			t.Fatalf("%s: %v", P(sql), err)
		}
	}
	// fresh: the read must return want (and was cached before the write)
	fresh := func(t *testing.T, sql string, want int64) {
		t.Helper()
		v, err := qcInt(ctx, r, qcPrimaryHint+P(sql))
		if err != nil {
			t.Fatal(err)
		}
		if v != want {
			t.Errorf("%s after the write: %d, want %d (stale cached result)", P(sql), v, want)
		}
	}

	t.Run("View over T invalidated by a write to T", func(t *testing.T) {
		p.twiceHit(t, "view", rd("SELECT v FROM {p}_v WHERE id = 1"))
		p.twiceHit(t, "view over view", rd("SELECT v10 FROM {p}_vv WHERE id = 1"))
		exec(t, "UPDATE {p}_t SET v = 5 WHERE id = 1")
		fresh(t, "SELECT v FROM {p}_v WHERE id = 1", 5)
		fresh(t, "SELECT v10 FROM {p}_vv WHERE id = 1", 50)
		// and in a transaction
		p.twiceHit(t, "view again", rd("SELECT v FROM {p}_v WHERE id = 1"))
		exec(t, "BEGIN")
		exec(t, "UPDATE {p}_t SET v = 6 WHERE id = 1")
		exec(t, "COMMIT")
		fresh(t, "SELECT v FROM {p}_v WHERE id = 1", 6)
	})
	t.Run("Volatile view never", func(t *testing.T) {
		p.neverHit(t, "view calling now()", 3, rd("SELECT id, ts FROM {p}_vn WHERE id = 1"))
	})
	t.Run("Write through an updatable view", func(t *testing.T) {
		p.twiceHit(t, "table", rd("SELECT v FROM {p}_t WHERE id = 2"))
		p.twiceHit(t, "view", rd("SELECT v FROM {p}_v WHERE id = 2"))
		exec(t, "UPDATE {p}_v SET v = 7 WHERE id = 2")
		fresh(t, "SELECT v FROM {p}_t WHERE id = 2", 7)
		fresh(t, "SELECT v FROM {p}_v WHERE id = 2", 7)
	})
	t.Run("Materialized view changes at REFRESH", func(t *testing.T) {
		before := qcMustInt(t, ctx, r, qcPrimaryHint+P("SELECT s FROM {p}_mv"))
		p.twiceHit(t, "matview", rd("SELECT s FROM {p}_mv"))
		exec(t, "UPDATE {p}_t SET v = v + 100 WHERE id = 1")
		fresh(t, "SELECT s FROM {p}_mv", before) // unchanged in PostgreSQL too
		exec(t, "REFRESH MATERIALIZED VIEW {p}_mv")
		truth := qcMustInt(t, ctx, qcDirect(t, ctx, testutil.PrimaryAddr), P("SELECT s FROM {p}_mv"))
		fresh(t, "SELECT s FROM {p}_mv", truth)
	})
	t.Run("Partitions", func(t *testing.T) {
		p.twiceHit(t, "parent", rd("SELECT sum(v) FROM {p}_pt"))
		p.twiceHit(t, "partition", rd("SELECT sum(v) FROM {p}_pt2"))
		exec(t, "UPDATE {p}_pt1 SET v = 2 WHERE id = 1")
		fresh(t, "SELECT sum(v) FROM {p}_pt", 152)
		exec(t, "UPDATE {p}_pt SET v = 151 WHERE id = 150")
		fresh(t, "SELECT sum(v) FROM {p}_pt2", 151)
	})
	t.Run("Foreign key ON DELETE CASCADE", func(t *testing.T) {
		p.twiceHit(t, "child", rd("SELECT count(*) FROM {p}_child"))
		exec(t, "DELETE FROM {p}_parent WHERE id = 1")
		fresh(t, "SELECT count(*) FROM {p}_child", 1)
	})
	t.Run("Trigger writing another table", func(t *testing.T) {
		p.twiceHit(t, "trigger target", rd("SELECT count(*) FROM {p}_tb"))
		exec(t, "INSERT INTO {p}_ta VALUES (1)")
		fresh(t, "SELECT count(*) FROM {p}_tb", 1)
	})
}

// ---------------------------------------------------------------------------
// 10. Responses read on a standby that has not replayed a write (bug hunt:
// doc.go "Standbys"). Replay is paused on both standbys for well under a
// second.

func TestCacheStandbyReadAfterWrite(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	pfx := qcObjects(t, []string{"DROP TABLE IF EXISTS {p}_t"},
		"CREATE TABLE {p}_t (id int PRIMARY KEY, v int NOT NULL)",
		"INSERT INTO {p}_t VALUES (1, 0)",
		"GRANT ALL ON {p}_t TO {app}")
	T := pfx + "_t"
	p := qcStart(t, ctx, qcConf{})
	read := "SELECT v FROM " + T + " WHERE id = 1"
	a := connect(t, ctx, p.Proxy, withMode(pgx.QueryExecModeExec)) // writer
	b := connect(t, ctx, p.Proxy, withMode(pgx.QueryExecModeExec)) // has not written: reads on standbys
	p.warm(t, func() (string, error) { return qcRows(ctx, b, read) })
	qcWaitReplayed(t, ctx)
	for i := 0; i < 4; i++ {
		port := qcMustInt(t, ctx, b, "SELECT inet_server_port()")
		if port == testutil.PrimaryPort {
			t.Fatalf("client b's reads run on the primary (port %d): the scenario needs them on a standby", port)
		}
	}
	sb := []*pgx.Conn{qcDirect(t, ctx, testutil.Standby1Addr), qcDirect(t, ctx, testutil.Standby2Addr)}
	resume := func() {
		for _, c := range sb {
			rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if _, err := c.Exec(rctx, "SELECT pg_wal_replay_resume()"); err != nil {
				t.Logf("pg_wal_replay_resume: %v", err)
			}
			cancel()
		}
	}
	t.Cleanup(resume)
	p.twiceHit(t, "b caches the read", func() (string, error) { return qcRows(ctx, b, read) })

	for _, c := range sb {
		mustExec(t, ctx, c, "SELECT pg_wal_replay_pause()")
	}
	mustExec(t, ctx, a, "UPDATE "+T+" SET v = 1 WHERE id = 1")
	bv, bh, err := p.hitDuring(t, func() (string, error) {
		v, err := qcInt(ctx, b, read)
		return strconv.FormatInt(v, 10), err
	})
	if err != nil {
		t.Fatal(err)
	}
	av, ah, err := p.hitDuring(t, func() (string, error) {
		v, err := qcInt(ctx, a, read)
		return strconv.FormatInt(v, 10), err
	})
	if err != nil {
		t.Fatal(err)
	}
	st := p.stats(t)
	resume()
	t.Logf("replay paused; after the write of 1 through the writer: reader b got %s (%d hit; a standby that has not replayed may answer 0), writer got %s (%d hit); SHOW CACHE %s",
		bv, bh, av, ah, st)
	if av != "1" {
		t.Errorf("read-your-writes broken by the cache: the writer reads %s (cache hit: %v) after its committed write of 1; "+
			"client b's read ran on a standby that had not replayed the write and its response was stored", av, ah == 1)
	}
	qcWaitReplayed(t, ctx)
	bv2, bh2, err := p.hitDuring(t, func() (string, error) {
		v, err := qcInt(ctx, b, read)
		return strconv.FormatInt(v, 10), err
	})
	if err != nil {
		t.Fatal(err)
	}
	if bv2 != "1" {
		t.Errorf("both standbys have replayed the write, yet client b still reads %s (cache hit: %v): a standby's stale response is served until the TTL", bv2, bh2 == 1)
	}
}
