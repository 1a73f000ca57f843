package e2e

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/poolmgr/poolmgr/internal/testutil"
)

// Protocol-level prepared statements in transaction pooling mode (issue
// "Protocol-level prepared statements work in transaction pooling mode").
//
// Every test here also runs against PostgreSQL itself with
// POOLMGR_E2E_DIRECT=1 (no proxy): the expectations are PostgreSQL's
// behaviour for a private session; checks that only make sense through the
// pool (server changes, shared server connections) are skipped there.

// ---------------------------------------------------------------------------
// pgbench -M prepared

// pgbench -M prepared -c 50 -j 2 through poolmgr in transaction mode with
// max_server_connections = 5: exit status 0, no failed transaction, and never
// more than 5 server connections (sampled every 100 ms). Like testPgbench
// (pgbench_test.go), with query_wait_timeout lowered to 30 s so that a stall
// fails in ~40 s rather than 2 minutes, and a pg_stat_activity snapshot
// logged if pgbench is still running 5 s after its -T duration.
func TestPreparedPgbench(t *testing.T) { testPreparedPgbench(t, false) }

func TestPreparedPgbenchSelectOnly(t *testing.T) { testPreparedPgbench(t, true) }

func testPreparedPgbench(t *testing.T, selectOnly bool) {
	const (
		maxServer = 5
		seconds   = 8
	)
	testutil.RequireBinary(t, "pgbench")
	p := startProxy(t, testutil.Config{PoolMode: "transaction", MaxServerConnections: maxServer,
		Extra: "query_wait_timeout = 30"})
	testutil.RequireProcess(t)
	ctx := testCtx(t, 120*time.Second)
	admin := testutil.AdminConn(t, testutil.AppDB)
	var ok bool
	if err := admin.QueryRow(ctx, "SELECT to_regclass('public.pgbench_accounts') IS NOT NULL").Scan(&ok); err != nil || !ok {
		t.Fatalf("pgbench tables missing in database app (scripts/pgcluster should run pgbench -i): %v", err)
	}

	sampler := sampleServerConns(ctx, p)
	done := make(chan struct{})
	var snap string
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-done:
			return
		case <-time.After((seconds + 5) * time.Second):
		}
		c, err := pgx.Connect(ctx, testutil.AdminConnString("postgres"))
		if err != nil {
			snap = err.Error()
			return
		}
		defer c.Close(context.Background())
		ports := []int32{}
		for _, port := range p.ServerPorts() {
			ports = append(ports, int32(port))
		}
		rows, err := c.Query(ctx, `SELECT pid, state, coalesce(wait_event, ''), left(query, 40)
		     FROM pg_stat_activity WHERE usename = 'app' AND datname = 'app' AND client_port = ANY($1)
		     ORDER BY pid`, ports)
		if err != nil {
			snap = err.Error()
			return
		}
		for rows.Next() {
			var pid int32
			var st, we, q string
			if rows.Scan(&pid, &st, &we, &q) == nil {
				snap += fmt.Sprintf("\n  backend %d: %s (%s) %q", pid, st, we, q)
			}
		}
		rows.Close()
	}()

	args := []string{"-n", "-M", "prepared", "-c", "50", "-j", "2", "-T", itoa(seconds),
		"-h", "127.0.0.1", "-p", itoa(p.Port), "-U", testutil.AppUser}
	if selectOnly {
		args = append(args, "-S")
	}
	args = append(args, testutil.AppDB)
	start := time.Now()
	res := testutil.PgbenchRun(t, args...)
	close(done)
	wg.Wait()
	sampler.check(t, maxServer)
	t.Logf("pgbench %v: %v, tps=%.0f processed=%d failed=%d exit=%d", args, time.Since(start).Round(time.Second),
		res.TPS, res.Processed, res.Failed, res.ExitCode)
	if snap != "" {
		t.Logf("pgbench still running %d s after -T %d; app backends:%s", 5, seconds, snap)
	}
	if res.ExitCode != 0 || res.Failed != 0 || res.Processed <= 0 {
		t.Errorf("pgbench: exit %d, %d failed, %d processed; output:\n%s", res.ExitCode, res.Failed, res.Processed, res.Output)
	}
	if sampler.samples < 3 { // a floor, not a rate: see pgbench_test.go
		t.Errorf("only %d samples of pg_stat_activity in %d s", sampler.samples, seconds)
	}
	if sampler.maxSeen == 0 {
		t.Errorf("never saw a server connection of the proxy (sampling broken?)")
	}
}

// ---------------------------------------------------------------------------
// helpers

// singleServer is a proxy config where every client shares one server
// connection (one event loop, pool_size 1): what one client prepares is on
// the server the next client gets.
func singleServer() testutil.Config {
	return testutil.Config{PoolMode: "transaction", PoolSize: 1, Extra: "workers = 1"}
}

// connSampler samples the proxy's server connections every 100 ms until
// stopped.
type connSampler struct {
	stop             func()
	wg               sync.WaitGroup
	maxSeen, samples int
	err              error
}

func sampleServerConns(ctx context.Context, p *testutil.Proxy) *connSampler {
	s := &connSampler{}
	if p.Direct {
		s.stop = func() {}
		return s
	}
	sctx, stop := context.WithCancel(ctx)
	s.stop = stop
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			n, err := p.CountServerConns(sctx, testutil.AppDB, testutil.AppUser)
			if err != nil {
				if sctx.Err() == nil {
					s.err = err
				}
				return
			}
			s.samples++
			s.maxSeen = max(s.maxSeen, n)
			select {
			case <-sctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

// check stops sampling and fails the test if more than limit server
// connections were seen.
func (s *connSampler) check(t *testing.T, limit int) {
	t.Helper()
	s.stop()
	s.wg.Wait()
	if s.err != nil {
		t.Errorf("sampling pg_stat_activity: %v", s.err)
	}
	t.Logf("server connections: max %d over %d samples (limit %d)", s.maxSeen, s.samples, limit)
	if s.maxSeen > limit {
		t.Errorf("saw %d server connections, limit %d", s.maxSeen, limit)
	}
}

// errorSink collects the first errors of concurrent workers.
type errorSink struct {
	mu    sync.Mutex
	n     int
	first []string
}

func (e *errorSink) add(format string, args ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.n++
	if len(e.first) < 15 {
		e.first = append(e.first, fmt.Sprintf(format, args...))
	}
}

func (e *errorSink) report(t *testing.T, ops int64) {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.n > 0 {
		t.Errorf("%d of %d operations failed; first errors:\n  %s", e.n, ops, strings.Join(e.first, "\n  "))
	}
}

// pgconn helpers (text format).

func textParams(params ...string) [][]byte {
	out := make([][]byte, len(params))
	for i, p := range params {
		out[i] = []byte(p)
	}
	return out
}

// execPrepared runs a named (or the unnamed) statement with text
// parameters: Bind/Execute/Sync, no Parse.
func execPrepared(ctx context.Context, pc *pgconn.PgConn, name string, params ...string) *pgconn.Result {
	return pc.ExecPrepared(ctx, name, textParams(params...), nil, nil).Read()
}

// cell returns the text of row r, column c of res, or a description of why
// it is missing.
func cell(res *pgconn.Result, r, c int) string {
	if res.Err != nil {
		return "error: " + res.Err.Error()
	}
	if r >= len(res.Rows) || c >= len(res.Rows[r]) {
		return fmt.Sprintf("<no cell %d,%d in %d rows>", r, c, len(res.Rows))
	}
	return string(res.Rows[r][c])
}

func mustPrepare(t *testing.T, ctx context.Context, pc *pgconn.PgConn, name, sql string) *pgconn.StatementDescription {
	t.Helper()
	sd, err := pc.Prepare(ctx, name, sql, nil)
	if err != nil {
		t.Fatalf("prepare %q as %q: %v", sql, name, err)
	}
	return sd
}

// wantCell runs execPrepared and checks the first cell.
func wantCell(t *testing.T, ctx context.Context, pc *pgconn.PgConn, name, want string, params ...string) {
	t.Helper()
	res := execPrepared(ctx, pc, name, params...)
	if res.Err != nil {
		t.Fatalf("execute %q: %v", name, res.Err)
	}
	if got := cell(res, 0, 0); got != want {
		t.Fatalf("execute %q: got %q, want %q", name, got, want)
	}
}

// simpleQuery runs sql with the simple query protocol.
func simpleQuery(ctx context.Context, pc *pgconn.PgConn, sql string) ([]*pgconn.Result, error) {
	return pc.Exec(ctx, sql).ReadAll()
}

// ---------------------------------------------------------------------------
// raw protocol client (pgproto3 over a connection logged in by pgconn)

type rawConn struct {
	conn net.Conn
	fe   *pgproto3.Frontend
	errs []map[byte]string // fields of the ErrorResponses of the last round trip
}

// rawConnect logs in to addr (the proxy) as app and hands back the raw
// connection.
func rawConnect(t *testing.T, ctx context.Context, p *testutil.Proxy) *rawConn {
	t.Helper()
	pc, err := pgconn.Connect(ctx, p.ConnString(testutil.AppUser, testutil.AppPassword, testutil.AppDB))
	if err != nil {
		t.Fatalf("connect to %s: %v", p.Addr, err)
	}
	hc, err := pc.Hijack()
	if err != nil {
		t.Fatalf("hijack: %v", err)
	}
	r := &rawConn{conn: hc.Conn, fe: hc.Frontend}
	t.Cleanup(func() {
		r.fe.Send(&pgproto3.Terminate{})
		_ = r.fe.Flush()
		r.conn.Close()
	})
	return r
}

// summarize renders a backend message for comparison; "" for messages that
// are ignored (ParameterStatus, NoticeResponse).
func (r *rawConn) summarize(m pgproto3.BackendMessage) string {
	switch m := m.(type) {
	case *pgproto3.ParseComplete:
		return "ParseComplete"
	case *pgproto3.BindComplete:
		return "BindComplete"
	case *pgproto3.CloseComplete:
		return "CloseComplete"
	case *pgproto3.NoData:
		return "NoData"
	case *pgproto3.EmptyQueryResponse:
		return "EmptyQueryResponse"
	case *pgproto3.PortalSuspended:
		return "PortalSuspended"
	case *pgproto3.ParameterDescription:
		oids := make([]string, len(m.ParameterOIDs))
		for i, o := range m.ParameterOIDs {
			oids[i] = strconv.Itoa(int(o))
		}
		return "ParameterDescription(" + strings.Join(oids, ",") + ")"
	case *pgproto3.RowDescription:
		names := make([]string, len(m.Fields))
		for i, f := range m.Fields {
			names[i] = string(f.Name)
		}
		return "RowDescription(" + strings.Join(names, ",") + ")"
	case *pgproto3.DataRow:
		vals := make([]string, len(m.Values))
		for i, v := range m.Values {
			if v == nil {
				vals[i] = "NULL"
			} else {
				vals[i] = string(v)
			}
		}
		return "DataRow(" + strings.Join(vals, ",") + ")"
	case *pgproto3.CommandComplete:
		return "CommandComplete(" + string(m.CommandTag) + ")"
	case *pgproto3.ErrorResponse:
		r.errs = append(r.errs, map[byte]string{'C': m.Code, 'M': m.Message, 'S': m.Severity})
		return "ErrorResponse(" + m.Code + ")"
	case *pgproto3.ReadyForQuery:
		return "ReadyForQuery(" + string(m.TxStatus) + ")"
	case *pgproto3.ParameterStatus, *pgproto3.NoticeResponse:
		return ""
	default:
		return fmt.Sprintf("%T", m)
	}
}

// roundTrip sends msgs and reads the answers up to one ReadyForQuery per
// Sync or Query sent; it returns their summaries.
func (r *rawConn) roundTrip(t *testing.T, msgs ...pgproto3.FrontendMessage) []string {
	t.Helper()
	syncs := 0
	for _, m := range msgs {
		switch m.(type) {
		case *pgproto3.Sync, *pgproto3.Query:
			syncs++
		}
		r.fe.Send(m)
	}
	if err := r.fe.Flush(); err != nil {
		t.Fatalf("send: %v", err)
	}
	r.errs = nil
	var got []string
	_ = r.conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	defer r.conn.SetReadDeadline(time.Time{})
	for syncs > 0 {
		m, err := r.fe.Receive()
		if err != nil {
			t.Fatalf("receive after %q: %v", got, err)
		}
		s := r.summarize(m)
		if s == "" {
			continue
		}
		got = append(got, s)
		if _, ok := m.(*pgproto3.ReadyForQuery); ok {
			syncs--
		}
		if e, ok := m.(*pgproto3.ErrorResponse); ok && e.Severity == "FATAL" {
			t.Fatalf("FATAL error after %q: %s %s", got, e.Code, e.Message)
		}
	}
	return got
}

// expectSeq runs a round trip and compares the answers with want.
func (r *rawConn) expectSeq(t *testing.T, what string, want []string, msgs ...pgproto3.FrontendMessage) []string {
	t.Helper()
	got := r.roundTrip(t, msgs...)
	if !matchSeq(got, want) {
		t.Errorf("%s:\n   got  %s\n   want %s\n   errors: %v", what, strings.Join(got, " "), strings.Join(want, " "), r.errs)
	}
	return got
}

func bindText(stmt string, params ...string) *pgproto3.Bind {
	return &pgproto3.Bind{PreparedStatement: stmt, Parameters: textParams(params...)}
}

// ---------------------------------------------------------------------------
// pgx under load

// pgx's default mode (statement cache: named statements stmtcache_*) and
// QueryExecModeDescribeExec (unnamed statement, Describe and Execute in two
// transactions), 40 connections over pool_size 3 for a few seconds, with a
// mix of parameterized queries whose results are all checked.
func TestPreparedPgxCacheStatementConcurrent(t *testing.T) {
	testPreparedPgxConcurrent(t, pgx.QueryExecModeCacheStatement)
}

func TestPreparedPgxDescribeExecConcurrent(t *testing.T) {
	testPreparedPgxConcurrent(t, pgx.QueryExecModeDescribeExec)
}

func testPreparedPgxConcurrent(t *testing.T, mode pgx.QueryExecMode) {
	const (
		workers  = 40
		poolSize = 3
		duration = 4 * time.Second
	)
	p := startProxy(t, testutil.Config{PoolMode: "transaction", PoolSize: poolSize})
	ctx := testCtx(t, 90*time.Second)
	table := testutil.NewTable(t, "CREATE TABLE %s (worker int, seq int, v text)")

	conns := make([]*pgx.Conn, workers)
	for i := range conns {
		conns[i] = connect(t, ctx, p, withMode(mode))
	}
	sampler := sampleServerConns(ctx, p)

	var (
		errs     errorSink
		ops      atomic.Int64
		inserted [workers]int64
		wg       sync.WaitGroup
	)
	deadline := time.Now().Add(duration)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			c := conns[w]
			tag := fmt.Sprintf("w%02d", w)
			for it := 0; time.Now().Before(deadline); it++ {
				ops.Add(1)
				op := (it + w) % 8
				if err := pgxOp(ctx, c, table, w, it, op, tag, &inserted[w]); err != nil {
					errs.add("worker %d iteration %d op %d: %v", w, it, op, err)
					if c.IsClosed() {
						return
					}
				}
			}
		}(w)
	}
	wg.Wait()
	sampler.check(t, poolSize)
	errs.report(t, ops.Load())
	t.Logf("%d operations by %d connections in %v (mode %v)", ops.Load(), workers, duration, mode)

	// Every insert is there exactly once.
	admin := testutil.AdminConn(t, testutil.AppDB)
	var total int64
	for _, n := range inserted {
		total += n
	}
	var got int64
	if err := admin.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != total {
		t.Errorf("table has %d rows, workers inserted %d", got, total)
	}
}

// pgxOp runs one operation of the mix and checks its result.
func pgxOp(ctx context.Context, c *pgx.Conn, table string, w, it, op int, tag string, inserted *int64) error {
	switch op {
	case 0: // arithmetic with two parameters
		var s int64
		if err := c.QueryRow(ctx, "SELECT $1::int8 + $2::int8", int64(w)*1000, int64(it)).Scan(&s); err != nil {
			return err
		}
		if s != int64(w)*1000+int64(it) {
			return fmt.Errorf("sum: got %d", s)
		}
	case 1: // text parameters
		var s string
		if err := c.QueryRow(ctx, "SELECT $1::text || '-' || $2::text", tag, strconv.Itoa(it)).Scan(&s); err != nil {
			return err
		}
		if want := tag + "-" + strconv.Itoa(it); s != want {
			return fmt.Errorf("concat: got %q want %q", s, want)
		}
	case 2: // several rows
		n := 1 + (it % 20)
		rows, err := c.Query(ctx, "SELECT g, g * $2::int FROM generate_series(1, $1::int) g", n, w)
		if err != nil {
			return err
		}
		i := 0
		for rows.Next() {
			var g, gw int32
			if err := rows.Scan(&g, &gw); err != nil {
				rows.Close()
				return err
			}
			i++
			if int(g) != i || int(gw) != i*w {
				rows.Close()
				return fmt.Errorf("row %d: %d %d", i, g, gw)
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if i != n {
			return fmt.Errorf("got %d rows, want %d", i, n)
		}
	case 3: // insert
		if _, err := c.Exec(ctx, "INSERT INTO "+table+" (worker, seq, v) VALUES ($1, $2, $3)", w, it, tag); err != nil {
			return err
		}
		*inserted++
	case 4: // transaction (BEGIN/COMMIT are simple queries)
		tx, err := c.Begin(ctx)
		if err != nil {
			return err
		}
		var x int32
		if err := tx.QueryRow(ctx, "SELECT $1::int4 * 3", int32(it)).Scan(&x); err != nil {
			tx.Rollback(ctx)
			return err
		}
		if x != int32(it)*3 {
			tx.Rollback(ctx)
			return fmt.Errorf("in tx: got %d", x)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO "+table+" (worker, seq, v) VALUES ($1, $2, $3)", w, it, "tx"); err != nil {
			tx.Rollback(ctx)
			return err
		}
		if err := tx.Commit(ctx); err != nil {
			return err
		}
		*inserted++
	case 5: // read own writes
		var n int64
		if err := c.QueryRow(ctx, "SELECT count(*) FROM "+table+" WHERE worker = $1", w).Scan(&n); err != nil {
			return err
		}
		if n != *inserted {
			return fmt.Errorf("worker %d sees %d of its rows, inserted %d", w, n, *inserted)
		}
	case 6: // no arguments: pgx sends a simple query
		tagc, err := c.Exec(ctx, "SELECT 1")
		if err != nil {
			return err
		}
		if tagc.String() != "SELECT 1" {
			return fmt.Errorf("simple query tag %q", tagc.String())
		}
	case 7: // a statement only this worker uses
		var a int32
		var b string
		if err := c.QueryRow(ctx, "SELECT $1::int4 + 1, '"+tag+"'::text", int32(it)).Scan(&a, &b); err != nil {
			return err
		}
		if a != int32(it)+1 || b != tag {
			return fmt.Errorf("private statement: got %d %q", a, b)
		}
	}
	return nil
}

// ---------------------------------------------------------------------------
// pgx batches

// A pgx batch (default statement-cache mode) mixing an INSERT, an UPDATE and
// SELECTs, sent several times (prepared the first time, cached after) by two
// clients sharing servers, then the rows checked.
func TestPreparedPgxBatchMixed(t *testing.T) {
	p := startProxy(t, testutil.Config{PoolMode: "transaction", PoolSize: 2})
	ctx := testCtx(t, 60*time.Second)
	table := testutil.NewTable(t, "CREATE TABLE %s (id int PRIMARY KEY, v text, n int)")

	for ci := 0; ci < 2; ci++ {
		c := connect(t, ctx, p, withMode(pgx.QueryExecModeCacheStatement))
		for round := 0; round < 3; round++ {
			id := ci*100 + round
			b := &pgx.Batch{}
			b.Queue("INSERT INTO "+table+" (id, v, n) VALUES ($1, $2, $3)", id, fmt.Sprintf("c%d-r%d", ci, round), 1)
			b.Queue("SELECT v FROM "+table+" WHERE id = $1", id)
			b.Queue("UPDATE "+table+" SET n = n + $2 WHERE id = $1", id, 10)
			b.Queue("SELECT n, v FROM "+table+" WHERE id = $1", id)
			b.Queue("SELECT $1::int4 * $2::int4", 6, 7)
			b.Queue("SELECT count(*) FROM " + table)
			br := c.SendBatch(ctx, b)
			ct, err := br.Exec()
			if err != nil || ct.String() != "INSERT 0 1" {
				t.Fatalf("client %d round %d: insert: %v %q", ci, round, err, ct)
			}
			var v string
			if err := br.QueryRow().Scan(&v); err != nil || v != fmt.Sprintf("c%d-r%d", ci, round) {
				t.Fatalf("client %d round %d: select v: %v %q", ci, round, err, v)
			}
			ct, err = br.Exec()
			if err != nil || ct.String() != "UPDATE 1" {
				t.Fatalf("client %d round %d: update: %v %q", ci, round, err, ct)
			}
			var n int
			if err := br.QueryRow().Scan(&n, &v); err != nil || n != 11 {
				t.Fatalf("client %d round %d: select n: %v %d", ci, round, err, n)
			}
			var prod int32
			if err := br.QueryRow().Scan(&prod); err != nil || prod != 42 {
				t.Fatalf("client %d round %d: product: %v %d", ci, round, err, prod)
			}
			var cnt int64
			if err := br.QueryRow().Scan(&cnt); err != nil || cnt != int64(ci*3+round+1) {
				t.Fatalf("client %d round %d: count: %v %d, want %d", ci, round, err, cnt, ci*3+round+1)
			}
			if err := br.Close(); err != nil {
				t.Fatalf("client %d round %d: close batch: %v", ci, round, err)
			}
		}
		if got := queryInt(t, ctx, c, "SELECT count(*) FROM "+table+" WHERE n = 11"); got != int64(3*(ci+1)) {
			t.Fatalf("after client %d: %d updated rows", ci, got)
		}
	}
}

// pgx batches of 200 queued queries in one pipeline (default mode): 40
// distinct statements repeated, then 250 distinct statements (more than the
// per-server max_prepared_statements default of 200, so the proxy evicts
// while the pipeline runs), each by two clients.
func TestPreparedPgxBatch200(t *testing.T) {
	p := startProxy(t, testutil.Config{PoolMode: "transaction", PoolSize: 2})
	ctx := testCtx(t, 90*time.Second)
	nonce := testutil.Nonce()
	run := func(t *testing.T, c *pgx.Conn, n, distinct int) {
		b := &pgx.Batch{}
		for i := 0; i < n; i++ {
			k := i % distinct
			b.Queue(fmt.Sprintf("SELECT $1::int8 + %d, '%s'::text /* %d */", k, nonce, k), int64(i))
		}
		br := c.SendBatch(ctx, b)
		for i := 0; i < n; i++ {
			var got int64
			var s string
			if err := br.QueryRow().Scan(&got, &s); err != nil {
				br.Close()
				t.Fatalf("query %d of %d: %v", i, n, err)
			}
			if want := int64(i + i%distinct); got != want || s != nonce {
				br.Close()
				t.Fatalf("query %d of %d: got %d %q, want %d", i, n, got, s, want)
			}
		}
		if err := br.Close(); err != nil {
			t.Fatal(err)
		}
		if got := queryInt(t, ctx, c, "SELECT $1::int8", 5); got != 5 {
			t.Fatalf("after the batch: %d", got)
		}
	}
	for _, tc := range []struct{ n, distinct int }{{200, 40}, {200, 200}, {250, 250}} {
		t.Run(fmt.Sprintf("%dqueries%ddistinct", tc.n, tc.distinct), func(t *testing.T) {
			a := connect(t, ctx, p, withMode(pgx.QueryExecModeCacheStatement))
			b := connect(t, ctx, p, withMode(pgx.QueryExecModeCacheStatement))
			run(t, a, tc.n, tc.distinct)
			run(t, b, tc.n, tc.distinct)
			run(t, a, tc.n, tc.distinct) // cached this time
		})
	}
}

// ---------------------------------------------------------------------------
// isolation

// A statement prepared by client A is never visible by name to client B,
// even when both use the same server connection.
func TestPreparedIsolation(t *testing.T) {
	p := startProxy(t, singleServer())
	ctx := testCtx(t, 30*time.Second)
	a := connect(t, ctx, p)
	b := connect(t, ctx, p)
	secret := "secret-" + testutil.Nonce()
	if _, err := a.Prepare(ctx, "s1", "select 1"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Prepare(ctx, "s2", "select '"+secret+"'::text"); err != nil {
		t.Fatal(err)
	}
	wantCell(t, ctx, a.PgConn(), "s1", "1")

	t.Run("ClientName", func(t *testing.T) {
		res := execPrepared(ctx, b.PgConn(), "s1")
		pe := requirePgCode(t, res.Err, "26000")
		if pe.Message != `prepared statement "s1" does not exist` {
			t.Errorf("message %q", pe.Message)
		}
		_, err := b.PgConn().Prepare(ctx, "", "select 2", nil) // B still works
		if err != nil {
			t.Fatal(err)
		}
	})

	// The unnamed statement of another client neither: a client that never
	// parsed one gets 26000 on Describe or Bind of "".
	t.Run("Unnamed", func(t *testing.T) {
		if _, err := a.PgConn().Prepare(ctx, "", "select 'unnamed-"+secret+"'::text", nil); err != nil {
			t.Fatal(err)
		}
		c := rawConnect(t, ctx, p)
		c.expectSeq(t, "Describe S \"\" by a client without an unnamed statement",
			[]string{"ErrorResponse(26000)", "ReadyForQuery(I)"},
			&pgproto3.Describe{ObjectType: 'S'}, &pgproto3.Sync{})
		c.expectSeq(t, "Bind \"\" by a client without an unnamed statement",
			[]string{"ErrorResponse(26000)", "ReadyForQuery(I)"},
			&pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
	})

	// The names the proxy gives statements on the server (pm_1, pm_2, …)
	// must not be usable by another client either: for B they do not exist.
	t.Run("ServerNames", func(t *testing.T) {
		for i := 1; i <= 4; i++ {
			name := "pm_" + strconv.FormatInt(int64(i), 36)
			res := execPrepared(ctx, b.PgConn(), name)
			if res.Err == nil {
				t.Errorf("client B executed %q (not prepared by B): rows %q", name, res.Rows)
				continue
			}
			requirePgCode(t, res.Err, "26000")
		}
		// SQL-level EXECUTE / DEALLOCATE of those names neither.
		for i := 1; i <= 2; i++ {
			name := "pm_" + strconv.FormatInt(int64(i), 36)
			res, err := simpleQuery(ctx, b.PgConn(), "EXECUTE "+name)
			if err == nil {
				t.Errorf("client B ran EXECUTE %s: %d results, rows %q", name, len(res), res[0].Rows)
			} else {
				requirePgCode(t, err, "26000")
			}
			_, err = simpleQuery(ctx, b.PgConn(), "DEALLOCATE "+name)
			if err == nil {
				t.Errorf("client B ran DEALLOCATE %s", name)
			} else {
				requirePgCode(t, err, "26000")
			}
		}
		// A's statements still work whatever B did.
		wantCell(t, ctx, a.PgConn(), "s1", "1")
		wantCell(t, ctx, a.PgConn(), "s2", secret)
	})
}

// ---------------------------------------------------------------------------
// DDL between executions

// prepare `select * from t`, execute, ALTER TABLE t ADD COLUMN from another
// connection, execute again: it either works, or fails once with 0A000
// "cached plan must not change result type" and then works with the new
// column.
func TestPreparedDDLBetweenExecutions(t *testing.T) {
	p := startProxy(t, singleServer())
	ctx := testCtx(t, 30*time.Second)

	// Protocol level (pgconn): the client does not re-prepare.
	t.Run("pgconn", func(t *testing.T) {
		table := testutil.NewTable(t, "CREATE TABLE %s (id int, v text)")
		testutil.AdminExec(t, testutil.AppDB, "INSERT INTO "+table+" VALUES (1, 'one')")
		c := connect(t, ctx, p)
		pc := c.PgConn()
		mustPrepare(t, ctx, pc, "s", "select * from "+table)
		res := execPrepared(ctx, pc, "s")
		if res.Err != nil || len(res.Rows) != 1 || len(res.Rows[0]) != 2 {
			t.Fatalf("before ALTER: %v %q", res.Err, res.Rows)
		}
		testutil.AdminExec(t, testutil.AppDB, "ALTER TABLE "+table+" ADD COLUMN extra int DEFAULT 7")
		res = execPrepared(ctx, pc, "s")
		if res.Err != nil {
			pe := requirePgCode(t, res.Err, "0A000")
			if pe.Message != "cached plan must not change result type" {
				t.Fatalf("message %q", pe.Message)
			}
			t.Logf("first execution after ALTER: %s %s", pe.Code, pe.Message)
			if p.Direct {
				t.Skip("PostgreSQL keeps failing this statement until the client re-prepares it")
			}
			res = execPrepared(ctx, pc, "s")
		}
		if res.Err != nil {
			t.Fatalf("execution after ALTER still fails: %v", res.Err)
		}
		if len(res.Rows) != 1 || len(res.Rows[0]) != 3 || string(res.Rows[0][2]) != "7" {
			t.Fatalf("after ALTER: got rows %q, want one row with 3 columns (1, one, 7)", res.Rows)
		}
		// Stable afterwards.
		res = execPrepared(ctx, pc, "s")
		if res.Err != nil || len(res.Rows) != 1 || len(res.Rows[0]) != 3 {
			t.Fatalf("next execution: %v %q", res.Err, res.Rows)
		}
	})

	// pgx's default mode: pgx invalidates its cache entry on the error and
	// re-prepares.
	t.Run("pgxCache", func(t *testing.T) {
		table := testutil.NewTable(t, "CREATE TABLE %s (id int, v text)")
		testutil.AdminExec(t, testutil.AppDB, "INSERT INTO "+table+" VALUES (1, 'one')")
		c := connect(t, ctx, p, withMode(pgx.QueryExecModeCacheStatement))
		other := connect(t, ctx, p, withMode(pgx.QueryExecModeCacheStatement)) // same statement, same server
		sql := "select * from " + table
		cols := func(c *pgx.Conn) (int, error) {
			rows, err := c.Query(ctx, sql)
			if err != nil {
				return 0, err
			}
			defer rows.Close()
			n := 0
			for rows.Next() {
				vals, err := rows.Values()
				if err != nil {
					return 0, err
				}
				n = len(vals)
			}
			return n, rows.Err()
		}
		for _, cc := range []*pgx.Conn{c, other} {
			if n, err := cols(cc); err != nil || n != 2 {
				t.Fatalf("before ALTER: %d columns, %v", n, err)
			}
		}
		testutil.AdminExec(t, testutil.AppDB, "ALTER TABLE "+table+" ADD COLUMN extra int DEFAULT 7")
		for i, cc := range []*pgx.Conn{c, other} {
			name := []string{"first", "second"}[i]
			n, err := cols(cc)
			if err != nil {
				pe := requirePgCode(t, err, "0A000")
				t.Logf("%s client, first execution after ALTER: %s %s", name, pe.Code, pe.Message)
				n, err = cols(cc)
			}
			if err != nil || n != 3 {
				t.Fatalf("%s client after ALTER: %d columns, %v", name, n, err)
			}
		}
	})

	// A column type changes under a statement two pgx clients cached (with
	// binary result formats): each client gets 0A000 once (PostgreSQL) or
	// correct values, never values decoded with the old type.
	t.Run("pgxCacheTypeChange", func(t *testing.T) {
		table := testutil.NewTable(t, "CREATE TABLE %s (id int8, n int8)")
		testutil.AdminExec(t, testutil.AppDB, "INSERT INTO "+table+" VALUES (1, 42)")
		sql := "select id, n from " + table
		a := connect(t, ctx, p, withMode(pgx.QueryExecModeCacheStatement))
		b := connect(t, ctx, p, withMode(pgx.QueryExecModeCacheStatement))
		for _, cc := range []*pgx.Conn{a, b} {
			var id, n int64
			if err := cc.QueryRow(ctx, sql).Scan(&id, &n); err != nil || n != 42 {
				t.Fatalf("before ALTER: %d %v", n, err)
			}
		}
		testutil.AdminExec(t, testutil.AppDB, "ALTER TABLE "+table+" ALTER COLUMN n TYPE float8")
		for i, cc := range []*pgx.Conn{a, b} {
			name := []string{"first", "second"}[i]
			var id int64
			var n any
			err := cc.QueryRow(ctx, sql).Scan(&id, &n)
			if err != nil {
				pe := requirePgCode(t, err, "0A000")
				t.Logf("%s client, first execution after ALTER: %s %s", name, pe.Code, pe.Message)
				err = cc.QueryRow(ctx, sql).Scan(&id, &n)
			} else {
				t.Logf("%s client, first execution after ALTER: %T %v", name, n, n)
			}
			if err != nil {
				t.Errorf("%s client after ALTER: %v", name, err)
				continue
			}
			if f, ok := n.(float64); !ok || f != 42 {
				t.Errorf("%s client after ALTER: n = %T %v, want float64 42", name, n, n)
			}
		}
	})
}

// ---------------------------------------------------------------------------
// raw protocol sequences

// Parse "s" + Sync; later, on another server connection (the first one is
// held by another client), Describe 'S' "s" + Sync without a Parse:
// ParameterDescription and RowDescription come back (the proxy's injected
// Parse is invisible), and Bind/Execute work there.
func TestPreparedDescribeBeforeParse(t *testing.T) {
	p := startProxy(t, testutil.Config{PoolMode: "transaction", PoolSize: 3, Extra: "workers = 1"})
	ctx := testCtx(t, 30*time.Second)
	r := rawConnect(t, ctx, p)
	sql := "select $1::int4 + 1 as x, pg_backend_pid() as pid /* " + testutil.Nonce() + " */"

	// Same transaction: Parse "s", and the pid of the server it ran on.
	got := r.expectSeq(t, "Parse s + pid",
		[]string{"ParseComplete", "ParseComplete", "BindComplete", "DataRow(*)", "CommandComplete(SELECT 1)", "ReadyForQuery(I)"},
		&pgproto3.Parse{Name: "s", Query: sql},
		&pgproto3.Parse{Query: "select pg_backend_pid()"},
		&pgproto3.Bind{},
		&pgproto3.Execute{},
		&pgproto3.Sync{})
	var pidA string
	if len(got) >= 4 && strings.HasPrefix(got[3], "DataRow(") {
		pidA = strings.TrimSuffix(strings.TrimPrefix(got[3], "DataRow("), ")")
	}

	// Hold that server with other clients (each in a transaction).
	if !p.Direct {
		found := false
		for i := 0; i < 2 && !found; i++ {
			h := connect(t, ctx, p)
			mustExec(t, ctx, h, "BEGIN")
			pid := strconv.FormatInt(queryInt(t, ctx, h, "SELECT pg_backend_pid()"), 10)
			found = pid == pidA
			t.Cleanup(func() { h.Exec(context.Background(), "ROLLBACK") })
		}
		if !found {
			t.Fatalf("could not hold server %s with another client", pidA)
		}
	}

	r.expectSeq(t, "Describe S s without Parse",
		[]string{"ParameterDescription(23)", "RowDescription(x,pid)", "ReadyForQuery(I)"},
		&pgproto3.Describe{ObjectType: 'S', Name: "s"},
		&pgproto3.Sync{})
	got = r.roundTrip(t, bindText("s", "41"), &pgproto3.Execute{}, &pgproto3.Sync{})
	if len(got) != 4 || got[0] != "BindComplete" || !strings.HasPrefix(got[1], "DataRow(42,") ||
		got[2] != "CommandComplete(SELECT 1)" || got[3] != "ReadyForQuery(I)" {
		t.Fatalf("Bind/Execute s: got %s, errors %v", strings.Join(got, " "), r.errs)
	}
	pidB := strings.TrimSuffix(strings.TrimPrefix(got[1], "DataRow(42,"), ")")
	t.Logf("s parsed on backend %s, described and executed on %s", pidA, pidB)
	if !p.Direct && pidB == pidA {
		t.Errorf("statement ran on the held server %s", pidA)
	}

	// Describe + Bind + Execute in one pipeline.
	r.expectSeq(t, "Describe S s pipelined with Bind/Execute",
		[]string{"ParameterDescription(23)", "RowDescription(x,pid)", "BindComplete", "DataRow(*)", "CommandComplete(SELECT 1)", "ReadyForQuery(I)"},
		&pgproto3.Describe{ObjectType: 'S', Name: "s"},
		bindText("s", "1"), &pgproto3.Execute{}, &pgproto3.Sync{})
}

// matchSeq compares message summaries; a wanted "X(*)" matches any X(...).
func matchSeq(got, want []string) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if strings.HasSuffix(want[i], "(*)") {
			if !strings.HasPrefix(got[i], strings.TrimSuffix(want[i], "*)")) {
				return false
			}
			continue
		}
		if got[i] != want[i] {
			return false
		}
	}
	return true
}

// An error in the middle of a pipeline: Parse/Bind/Execute good, Parse of bad
// SQL, Bind/Execute (skipped), Sync: exactly ParseComplete, BindComplete,
// DataRow, CommandComplete, ErrorResponse, ReadyForQuery; the connection
// works afterwards. Run twice: the second time the good statement already
// exists on the server (the proxy answers its Parse itself).
func TestPreparedPipelineError(t *testing.T) {
	p := startProxy(t, singleServer())
	ctx := testCtx(t, 30*time.Second)
	good := "select $1::int4 * 2 /* " + testutil.Nonce() + " */"
	for round := 1; round <= 2; round++ {
		t.Run(fmt.Sprintf("Round%d", round), func(t *testing.T) {
			r := rawConnect(t, ctx, p)
			gname, bname := fmt.Sprintf("good%d", round), fmt.Sprintf("bad%d", round)
			r.expectSeq(t, "pipeline with a bad Parse",
				[]string{"ParseComplete", "BindComplete", "DataRow(42)", "CommandComplete(SELECT 1)", "ErrorResponse(42601)", "ReadyForQuery(I)"},
				&pgproto3.Parse{Name: gname, Query: good},
				bindText(gname, "21"), &pgproto3.Execute{},
				&pgproto3.Parse{Name: bname, Query: "selec broken syntax"},
				bindText(bname), &pgproto3.Execute{},
				&pgproto3.Sync{})
			r.expectSeq(t, "good statement after the error",
				[]string{"BindComplete", "DataRow(10)", "CommandComplete(SELECT 1)", "ReadyForQuery(I)"},
				bindText(gname, "5"), &pgproto3.Execute{}, &pgproto3.Sync{})
			r.expectSeq(t, "simple query after the error",
				[]string{"RowDescription(?column?)", "DataRow(1)", "CommandComplete(SELECT 1)", "ReadyForQuery(I)"},
				&pgproto3.Query{String: "select 1"})
			// The failed Parse created nothing (PostgreSQL: 26000).
			t.Run("FailedParseCreatesNothing", func(t *testing.T) {
				r.expectSeq(t, "Bind of the statement whose Parse failed",
					[]string{"ErrorResponse(26000)", "ReadyForQuery(I)"},
					bindText(bname), &pgproto3.Execute{}, &pgproto3.Sync{})
			})
			r.expectSeq(t, "good statement at the end",
				[]string{"BindComplete", "DataRow(2)", "CommandComplete(SELECT 1)", "ReadyForQuery(I)"},
				bindText(gname, "1"), &pgproto3.Execute{}, &pgproto3.Sync{})
		})
	}

	// An Execute error before a Parse/Close in the same pipeline: PostgreSQL
	// skips them, so the Parse creates nothing and the Close closes nothing.
	t.Run("SkippedParseAndClose", func(t *testing.T) {
		r := rawConnect(t, ctx, p)
		r.expectSeq(t, "prepare kept",
			[]string{"ParseComplete", "ReadyForQuery(I)"},
			&pgproto3.Parse{Name: "kept", Query: "select 'kept'::text"}, &pgproto3.Sync{})
		r.expectSeq(t, "pipeline with an Execute error",
			[]string{"ParseComplete", "BindComplete", "ErrorResponse(22012)", "ReadyForQuery(I)"},
			&pgproto3.Parse{Name: "div", Query: "select 1 / g from generate_series($1::int4, $1::int4) g"},
			bindText("div", "0"), &pgproto3.Execute{},
			&pgproto3.Parse{Name: "skipped", Query: "select 'skipped'::text"},
			&pgproto3.Close{ObjectType: 'S', Name: "kept"},
			&pgproto3.Sync{})
		r.expectSeq(t, "Bind of the skipped Parse",
			[]string{"ErrorResponse(26000)", "ReadyForQuery(I)"},
			bindText("skipped"), &pgproto3.Execute{}, &pgproto3.Sync{})
		r.expectSeq(t, "Bind of the statement whose Close was skipped",
			[]string{"BindComplete", "DataRow(kept)", "CommandComplete(SELECT 1)", "ReadyForQuery(I)"},
			bindText("kept"), &pgproto3.Execute{}, &pgproto3.Sync{})
	})
}

// Close a statement, then Parse the same name with different SQL; also
// Parse of a name that exists without Close (42P05 in PostgreSQL).
func TestPreparedCloseReparse(t *testing.T) {
	p := startProxy(t, singleServer())
	ctx := testCtx(t, 30*time.Second)
	n := testutil.Nonce()
	r := rawConnect(t, ctx, p)
	other := rawConnect(t, ctx, p) // same SQL under the same name, same server
	for _, c := range []*rawConn{r, other} {
		c.expectSeq(t, "Parse s + execute",
			[]string{"ParseComplete", "BindComplete", "DataRow(one)", "CommandComplete(SELECT 1)", "ReadyForQuery(I)"},
			&pgproto3.Parse{Name: "s", Query: "select 'one'::text /* " + n + " */"},
			bindText("s"), &pgproto3.Execute{}, &pgproto3.Sync{})
	}
	r.expectSeq(t, "Close s",
		[]string{"CloseComplete", "ReadyForQuery(I)"},
		&pgproto3.Close{ObjectType: 'S', Name: "s"}, &pgproto3.Sync{})
	r.expectSeq(t, "Bind closed s",
		[]string{"ErrorResponse(26000)", "ReadyForQuery(I)"},
		bindText("s"), &pgproto3.Execute{}, &pgproto3.Sync{})
	r.expectSeq(t, "re-Parse s with different SQL",
		[]string{"ParseComplete", "BindComplete", "DataRow(two)", "CommandComplete(SELECT 1)", "ReadyForQuery(I)"},
		&pgproto3.Parse{Name: "s", Query: "select 'two'::text /* " + n + " */"},
		bindText("s"), &pgproto3.Execute{}, &pgproto3.Sync{})
	// Close and re-Parse in one pipeline.
	r.expectSeq(t, "Close + re-Parse s in one pipeline",
		[]string{"CloseComplete", "ParseComplete", "BindComplete", "DataRow(three)", "CommandComplete(SELECT 1)", "ReadyForQuery(I)"},
		&pgproto3.Close{ObjectType: 'S', Name: "s"},
		&pgproto3.Parse{Name: "s", Query: "select 'three'::text /* " + n + " */"},
		bindText("s"), &pgproto3.Execute{}, &pgproto3.Sync{})
	// Close of an unknown statement succeeds (as in PostgreSQL).
	r.expectSeq(t, "Close unknown",
		[]string{"CloseComplete", "ReadyForQuery(I)"},
		&pgproto3.Close{ObjectType: 'S', Name: "nosuch"}, &pgproto3.Sync{})
	// The other client's "s" is untouched.
	other.expectSeq(t, "other client's s",
		[]string{"BindComplete", "DataRow(one)", "CommandComplete(SELECT 1)", "ReadyForQuery(I)"},
		bindText("s"), &pgproto3.Execute{}, &pgproto3.Sync{})

	t.Run("DuplicateName", func(t *testing.T) {
		r.expectSeq(t, "Parse of an existing name without Close",
			[]string{"ErrorResponse(42P05)", "ReadyForQuery(I)"},
			&pgproto3.Parse{Name: "s", Query: "select 'four'::text"}, &pgproto3.Sync{})
		r.expectSeq(t, "s after the refused Parse",
			[]string{"BindComplete", "DataRow(three)", "CommandComplete(SELECT 1)", "ReadyForQuery(I)"},
			bindText("s"), &pgproto3.Execute{}, &pgproto3.Sync{})
	})
}

// ---------------------------------------------------------------------------
// DEALLOCATE and DISCARD ALL

// DEALLOCATE name / DEALLOCATE ALL via simple query act on the client's own
// statements, as in PostgreSQL.
func TestPreparedDeallocate(t *testing.T) {
	p := startProxy(t, singleServer())
	ctx := testCtx(t, 30*time.Second)
	c := connect(t, ctx, p)
	pc := c.PgConn()
	other := connect(t, ctx, p) // shares the server connection
	mustPrepare(t, ctx, other.PgConn(), "o", "select 'other'::text")

	tagOf := func(res []*pgconn.Result, err error) string {
		if err != nil {
			return "error: " + err.Error()
		}
		var tags []string
		for _, r := range res {
			tags = append(tags, r.CommandTag.String())
		}
		return strings.Join(tags, ";")
	}

	t.Run("Name", func(t *testing.T) {
		mustPrepare(t, ctx, pc, "s", "select 1")
		wantCell(t, ctx, pc, "s", "1")
		if got := tagOf(simpleQuery(ctx, pc, "DEALLOCATE s")); got != "DEALLOCATE" {
			t.Fatalf("DEALLOCATE s: %s", got)
		}
		requirePgCode(t, execPrepared(ctx, pc, "s").Err, "26000")
		// The name can be used again.
		mustPrepare(t, ctx, pc, "s", "select 2")
		wantCell(t, ctx, pc, "s", "2")
		if got := tagOf(simpleQuery(ctx, pc, "deallocate prepare S;")); got != "DEALLOCATE" {
			t.Fatalf("deallocate prepare S: %s", got)
		}
		requirePgCode(t, execPrepared(ctx, pc, "s").Err, "26000")
		mustPrepare(t, ctx, pc, "MiXed", "select 3")
		if got := tagOf(simpleQuery(ctx, pc, `DEALLOCATE "MiXed"`)); got != "DEALLOCATE" {
			t.Fatalf(`DEALLOCATE "MiXed": %s`, got)
		}
		requirePgCode(t, execPrepared(ctx, pc, "MiXed").Err, "26000")
	})

	t.Run("Unknown", func(t *testing.T) {
		_, err := simpleQuery(ctx, pc, "DEALLOCATE nosuch")
		pe := requirePgCode(t, err, "26000")
		if pe.Message != `prepared statement "nosuch" does not exist` {
			t.Errorf("message %q", pe.Message)
		}
		// Closed twice.
		mustPrepare(t, ctx, pc, "twice", "select 1")
		if got := tagOf(simpleQuery(ctx, pc, "DEALLOCATE twice")); got != "DEALLOCATE" {
			t.Fatalf("DEALLOCATE twice: %s", got)
		}
		_, err = simpleQuery(ctx, pc, "DEALLOCATE twice")
		requirePgCode(t, err, "26000")
	})

	t.Run("All", func(t *testing.T) {
		mustPrepare(t, ctx, pc, "a", "select 'a'::text")
		mustPrepare(t, ctx, pc, "b", "select 'b'::text")
		if got := tagOf(simpleQuery(ctx, pc, "DEALLOCATE ALL")); got != "DEALLOCATE ALL" {
			t.Fatalf("DEALLOCATE ALL: %s", got)
		}
		requirePgCode(t, execPrepared(ctx, pc, "a").Err, "26000")
		requirePgCode(t, execPrepared(ctx, pc, "b").Err, "26000")
		mustPrepare(t, ctx, pc, "a", "select 'a2'::text")
		wantCell(t, ctx, pc, "a", "a2")
		// Another client's statement is not affected.
		wantCell(t, ctx, other.PgConn(), "o", "other")
	})

	t.Run("InTransaction", func(t *testing.T) {
		mustPrepare(t, ctx, pc, "tx", "select 1")
		mustPrepare(t, ctx, pc, "tx2", "select 2")
		if _, err := simpleQuery(ctx, pc, "BEGIN"); err != nil {
			t.Fatal(err)
		}
		if got := tagOf(simpleQuery(ctx, pc, "DEALLOCATE tx")); got != "DEALLOCATE" {
			t.Fatalf("DEALLOCATE tx in a transaction: %s", got)
		}
		if pc.TxStatus() != 'T' {
			t.Fatalf("TxStatus %c after DEALLOCATE in a transaction", pc.TxStatus())
		}
		requirePgCode(t, execPrepared(ctx, pc, "tx").Err, "26000") // aborts the transaction
		// In an aborted transaction DEALLOCATE fails (and deallocates nothing).
		_, err := simpleQuery(ctx, pc, "DEALLOCATE tx2")
		if err == nil {
			t.Errorf("DEALLOCATE tx2 in an aborted transaction succeeded (PostgreSQL: 25P02)")
		} else {
			requirePgCode(t, err, "25P02")
		}
		if _, err := simpleQuery(ctx, pc, "ROLLBACK"); err != nil {
			t.Fatal(err)
		}
		// Prepared statements are not transactional: tx is still gone, tx2
		// still there.
		requirePgCode(t, execPrepared(ctx, pc, "tx").Err, "26000")
		res := execPrepared(ctx, pc, "tx2")
		if res.Err != nil || cell(res, 0, 0) != "2" {
			t.Errorf("tx2 after a DEALLOCATE refused in an aborted transaction: %s", cell(res, 0, 0))
		}
	})

	// DEALLOCATE in a multi-statement query: every statement runs.
	t.Run("MultiStatement", func(t *testing.T) {
		mustPrepare(t, ctx, pc, "m", "select 1")
		res, err := simpleQuery(ctx, pc, "DEALLOCATE m; SELECT 42")
		if got := tagOf(res, err); got != "DEALLOCATE;SELECT 1" {
			t.Errorf("DEALLOCATE m; SELECT 42: got %q, want %q", got, "DEALLOCATE;SELECT 1")
		}
		res, err = simpleQuery(ctx, pc, "DEALLOCATE ALL; SELECT 42")
		if got := tagOf(res, err); got != "DEALLOCATE ALL;SELECT 1" {
			t.Errorf("DEALLOCATE ALL; SELECT 42: got %q, want %q", got, "DEALLOCATE ALL;SELECT 1")
		}
		// Known limitation (docs/prepared.md): a DEALLOCATE of a
		// protocol-level statement that is not the first statement of a
		// simple query reaches the server, which does not know the
		// client's name (26000). Only the leading form is handled.
		mustPrepare(t, ctx, pc, "m2", "select 1")
		res, err = simpleQuery(ctx, pc, "SELECT 42; DEALLOCATE m2")
		if got := tagOf(res, err); got != "SELECT 1;DEALLOCATE" && !strings.Contains(got, "26000") {
			t.Errorf("SELECT 42; DEALLOCATE m2: got %q", got)
		}
		if got := queryInt(t, ctx, c, "SELECT 7"); got != 7 {
			t.Fatalf("after: %d", got)
		}
	})

	// Another client's DEALLOCATE ALL in any form (multi-statement simple
	// query, extended protocol) does not remove this client's statements:
	// in PostgreSQL they are in different sessions.
	t.Run("OtherClientDeallocateAll", func(t *testing.T) {
		mustPrepare(t, ctx, pc, "mine", "select 'mine'::text")
		wantCell(t, ctx, pc, "mine", "mine")
		wantCell(t, ctx, other.PgConn(), "o", "other")
		for _, how := range []string{"simple multi-statement", "extended protocol"} {
			var err error
			if how == "extended protocol" {
				err = other.PgConn().ExecParams(ctx, "DEALLOCATE ALL", nil, nil, nil, nil).Read().Err
			} else {
				_, err = simpleQuery(ctx, other.PgConn(), "SELECT 1; DEALLOCATE ALL")
			}
			if err != nil {
				t.Fatalf("%s DEALLOCATE ALL by the other client: %v", how, err)
			}
			res := execPrepared(ctx, pc, "mine")
			if res.Err != nil || cell(res, 0, 0) != "mine" {
				t.Errorf("after another client's %s DEALLOCATE ALL: %s", how, cell(res, 0, 0))
			}
			// And the other client's own statement is gone for it.
			requirePgCode(t, execPrepared(ctx, other.PgConn(), "o").Err, "26000")
			mustPrepare(t, ctx, other.PgConn(), "o", "select 'other'::text")
		}
	})
}

// DISCARD ALL clears the client's statements (named and unnamed), not
// another client's.
func TestPreparedDiscardAll(t *testing.T) {
	p := startProxy(t, singleServer())
	ctx := testCtx(t, 30*time.Second)
	c := connect(t, ctx, p)
	pc := c.PgConn()
	other := connect(t, ctx, p)
	mustPrepare(t, ctx, other.PgConn(), "o", "select 'other'::text")

	mustPrepare(t, ctx, pc, "s1", "select 1")
	mustPrepare(t, ctx, pc, "s2", "select 'other'::text") // same SQL as the other client's
	mustPrepare(t, ctx, pc, "", "select 'unnamed'::text")
	wantCell(t, ctx, pc, "s1", "1")
	res, err := simpleQuery(ctx, pc, "DISCARD ALL")
	if err != nil || len(res) != 1 || res[0].CommandTag.String() != "DISCARD ALL" {
		t.Fatalf("DISCARD ALL: %v", err)
	}
	requirePgCode(t, execPrepared(ctx, pc, "s1").Err, "26000")
	requirePgCode(t, execPrepared(ctx, pc, "s2").Err, "26000")
	requirePgCode(t, execPrepared(ctx, pc, "").Err, "26000")
	mustPrepare(t, ctx, pc, "s1", "select 'again'::text")
	wantCell(t, ctx, pc, "s1", "again")
	wantCell(t, ctx, other.PgConn(), "o", "other")

	// Inside a transaction block DISCARD ALL fails and discards nothing.
	t.Run("InTransaction", func(t *testing.T) {
		_, err := simpleQuery(ctx, pc, "BEGIN")
		if err != nil {
			t.Fatal(err)
		}
		_, err = simpleQuery(ctx, pc, "DISCARD ALL")
		requirePgCode(t, err, "25001")
		if _, err := simpleQuery(ctx, pc, "ROLLBACK"); err != nil {
			t.Fatal(err)
		}
		wantCell(t, ctx, pc, "s1", "again")
	})

	// Another client's DISCARD ALL sent with the extended protocol does not
	// touch this client's statements.
	t.Run("OtherClientExtended", func(t *testing.T) {
		mustPrepare(t, ctx, pc, "s3", "select 's3'::text")
		wantCell(t, ctx, pc, "s3", "s3")
		err := other.PgConn().ExecParams(ctx, "DISCARD ALL", nil, nil, nil, nil).Read().Err
		if err != nil {
			t.Fatalf("extended DISCARD ALL: %v", err)
		}
		res := execPrepared(ctx, pc, "s3")
		if res.Err != nil || cell(res, 0, 0) != "s3" {
			t.Errorf("after another client's extended-protocol DISCARD ALL: %s", cell(res, 0, 0))
		}
	})
}

// ---------------------------------------------------------------------------
// the unnamed statement

// The unnamed statement of client A survives simple queries of other clients
// on the same server connection between A's Parse and A's Bind (PostgreSQL:
// they are other sessions; a simple Query drops the server's unnamed
// statement).
func TestPreparedUnnamedAfterOtherClientSimpleQuery(t *testing.T) {
	p := startProxy(t, singleServer())
	ctx := testCtx(t, 30*time.Second)
	a := connect(t, ctx, p)
	b := connect(t, ctx, p)
	if _, err := a.PgConn().Prepare(ctx, "", "select $1::int4 + 1", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := simpleQuery(ctx, b.PgConn(), "select 1"); err != nil {
		t.Fatal(err)
	}
	res := execPrepared(ctx, a.PgConn(), "", "41")
	if res.Err != nil || cell(res, 0, 0) != "42" {
		t.Errorf("A's unnamed statement after B's simple query: %s", cell(res, 0, 0))
	}
	// (pgx QueryExecModeDescribeExec does Parse/Describe/Sync then
	// Bind/Execute/Sync: another client's simple query may come between.)

	// Another client's Close of its own unnamed statement neither.
	t.Run("OtherClientCloseUnnamed", func(t *testing.T) {
		if _, err := a.PgConn().Prepare(ctx, "", "select $1::int4 + 2", nil); err != nil {
			t.Fatal(err)
		}
		if err := b.PgConn().Deallocate(ctx, ""); err != nil { // Close 'S' "" + Sync
			t.Fatal(err)
		}
		res := execPrepared(ctx, a.PgConn(), "", "40")
		if res.Err != nil || cell(res, 0, 0) != "42" {
			t.Errorf("A's unnamed statement after B closed its unnamed statement: %s", cell(res, 0, 0))
		}
	})
}

// Parse in an aborted transaction fails with 25P02 in PostgreSQL (and
// creates nothing), even when the same SQL is already prepared on the server
// connection by another client.
func TestPreparedParseInAbortedTransaction(t *testing.T) {
	p := startProxy(t, singleServer())
	ctx := testCtx(t, 30*time.Second)
	sql := "select 'x'::text /* " + testutil.Nonce() + " */"
	other := rawConnect(t, ctx, p)
	other.expectSeq(t, "other client prepares the SQL",
		[]string{"ParseComplete", "ReadyForQuery(I)"},
		&pgproto3.Parse{Name: "o", Query: sql}, &pgproto3.Sync{})
	r := rawConnect(t, ctx, p)
	r.expectSeq(t, "BEGIN + error",
		[]string{"CommandComplete(BEGIN)", "ReadyForQuery(T)", "ErrorResponse(22012)", "ReadyForQuery(E)"},
		&pgproto3.Query{String: "BEGIN"}, &pgproto3.Query{String: "select 1/0"})
	r.expectSeq(t, "Parse in the aborted transaction",
		[]string{"ErrorResponse(25P02)", "ReadyForQuery(E)"},
		&pgproto3.Parse{Name: "x", Query: sql}, &pgproto3.Sync{})
	r.expectSeq(t, "ROLLBACK",
		[]string{"CommandComplete(ROLLBACK)", "ReadyForQuery(I)"},
		&pgproto3.Query{String: "ROLLBACK"})
	r.expectSeq(t, "Bind x after ROLLBACK",
		[]string{"ErrorResponse(26000)", "ReadyForQuery(I)"},
		bindText("x"), &pgproto3.Execute{}, &pgproto3.Sync{})
}
