package e2e

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/poolmgr/poolmgr/internal/testutil"
)

// Session mode pins one server connection to the client for its whole
// session: pg_backend_pid() is stable across transactions, a temp table and a
// SET survive; after the client leaves, the server is reset (DISCARD ALL)
// before the next client gets it.
func TestSessionModePinsServer(t *testing.T) {
	p := startProxy(t, testutil.Config{PoolMode: "session", PoolSize: 1})
	ctx := testCtx(t, 30*time.Second)

	a := connect(t, ctx, p)
	pid := queryInt(t, ctx, a, "SELECT pg_backend_pid()")
	defaultTZ := queryString(t, ctx, a, "SHOW TimeZone")
	mustExec(t, ctx, a, "CREATE TEMP TABLE e2e_session_tmp (x int)")
	mustExec(t, ctx, a, "SET TimeZone = 'America/Lima'")
	for i := 0; i < 5; i++ {
		mustExec(t, ctx, a, "BEGIN")
		mustExec(t, ctx, a, "INSERT INTO e2e_session_tmp VALUES ($1)", i)
		if got := queryInt(t, ctx, a, "SELECT pg_backend_pid()"); got != pid {
			t.Fatalf("transaction %d ran on backend %d, session started on %d", i, got, pid)
		}
		mustExec(t, ctx, a, "COMMIT")
	}
	if n := queryInt(t, ctx, a, "SELECT count(*) FROM e2e_session_tmp"); n != 5 {
		t.Fatalf("temp table has %d rows, want 5", n)
	}
	if tz := queryString(t, ctx, a, "SHOW TimeZone"); tz != "America/Lima" {
		t.Fatalf("SET did not survive: TimeZone = %q", tz)
	}
	a.Close(ctx)

	// pool_size 1: the next client gets the same server (or a fresh one)
	// but never A's session state.
	b := connect(t, ctx, p)
	pidB := queryInt(t, ctx, b, "SELECT pg_backend_pid()")
	t.Logf("A ran on backend %d, B on %d", pid, pidB)
	var tmpVisible bool
	if err := b.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_class WHERE relname = 'e2e_session_tmp' AND relpersistence = 't' AND pg_table_is_visible(oid))").Scan(&tmpVisible); err != nil {
		t.Fatal(err)
	}
	if tmpVisible {
		t.Errorf("B sees A's temp table: server not reset between sessions")
	}
	if tz := queryString(t, ctx, b, "SHOW TimeZone"); tz != defaultTZ {
		t.Errorf("B sees TimeZone %q set by A (default %q): server not reset", tz, defaultTZ)
	}
}

// Statement mode: single statements (autocommit) work; a multi-statement
// transaction is refused with a clear error.
func TestStatementModeRefusesTransactions(t *testing.T) {
	p := startProxy(t, testutil.Config{PoolMode: "statement", PoolSize: 2})
	testutil.RequireProcess(t)
	ctx := testCtx(t, 30*time.Second)
	table := testutil.NewTable(t, "CREATE TABLE %s (id int)")

	c := connect(t, ctx, p)
	for i := 0; i < 3; i++ {
		if got := queryInt(t, ctx, c, "SELECT $1::int", i); got != int64(i) {
			t.Fatalf("SELECT %d = %d", i, got)
		}
		mustExec(t, ctx, c, "INSERT INTO "+table+" VALUES ($1)", i)
	}
	if n := queryInt(t, ctx, c, "SELECT count(*) FROM "+table); n != 3 {
		t.Fatalf("%d rows", n)
	}

	// BEGIN (or the statement after it) must fail.
	_, err := c.Exec(ctx, "BEGIN")
	if err == nil {
		_, err = c.Exec(ctx, "INSERT INTO "+table+" VALUES (100)")
	}
	if err == nil {
		c.Exec(ctx, "ROLLBACK")
		t.Fatalf("statement mode accepted a multi-statement transaction")
	}
	msg := err.Error()
	if pe := pgError(err); pe != nil {
		msg = pe.Message
		t.Logf("refused with %s %s: %s", pe.Severity, pe.Code, pe.Message)
	} else {
		t.Errorf("refused without an ErrorResponse (%v); want a clear error message", err)
	}
	if l := strings.ToLower(msg); !strings.Contains(l, "transaction") {
		t.Errorf("error %q does not say a transaction is not allowed", msg)
	}
	// The refused transaction left nothing behind; a new client works.
	d := connect(t, ctx, p)
	if n := queryInt(t, ctx, d, "SELECT count(*) FROM "+table); n != 3 {
		t.Errorf("after the refused transaction: %d rows, want 3", n)
	}
	if st := d.PgConn().TxStatus(); st != 'I' {
		t.Errorf("new client TxStatus %c", st)
	}
}

// Transaction mode with pool_size 1: two clients share one server
// connection, their transactions serialised.
func TestTransactionModeSerialisesClients(t *testing.T) {
	p := startProxy(t, testutil.Config{PoolMode: "transaction", PoolSize: 1})
	testutil.RequireProcess(t)
	ctx := testCtx(t, 30*time.Second)
	a := connect(t, ctx, p)
	b := connect(t, ctx, p)

	mustExec(t, ctx, a, "BEGIN")
	pidA := queryInt(t, ctx, a, "SELECT pg_backend_pid()")

	type result struct {
		pid int64
		err error
	}
	done := make(chan result, 1)
	go func() {
		var pid int64
		err := b.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid)
		done <- result{pid, err}
	}()
	// B must wait while A holds the only server in a transaction. This is a
	// negative check, so it needs a fixed window.
	select {
	case r := <-done:
		t.Fatalf("B ran (pid %d, err %v) while A held the only server in a transaction", r.pid, r.err)
	case <-time.After(300 * time.Millisecond):
	}
	mustExec(t, ctx, a, "COMMIT")
	var r result
	select {
	case r = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("B did not run within 5 s after A committed")
	}
	if r.err != nil {
		t.Fatalf("B: %v", r.err)
	}
	if r.pid != pidA {
		t.Errorf("B ran on backend %d, A on %d; pool_size 1 allows one server", r.pid, pidA)
	}
	// Alternating single-statement transactions.
	for i := 0; i < 10; i++ {
		c := a
		if i%2 == 1 {
			c = b
		}
		if got := queryInt(t, ctx, c, "SELECT pg_backend_pid()"); got != pidA {
			t.Fatalf("query %d on backend %d, want %d", i, got, pidA)
		}
	}
	if n := p.ServerConnCount(t, testutil.AppDB, testutil.AppUser); n > 1 {
		t.Errorf("%d server connections, pool_size 1", n)
	}
}

// Idle clients hold no server connection. 20 clients connect and stay idle:
// the proxy holds at most 1 server connection (it may keep one it opened to
// learn the server's parameters at startup); after each ran a query and
// went idle, the proxy holds at most pool_size.
func TestIdleClientsHoldNoServer(t *testing.T) {
	const poolSize = 5
	p := startProxy(t, testutil.Config{PoolMode: "transaction", PoolSize: poolSize})
	testutil.RequireProcess(t)
	ctx := testCtx(t, 60*time.Second)

	conns := make([]*pgx.Conn, 20)
	for i := range conns {
		conns[i] = connect(t, ctx, p)
	}
	n := p.ServerConnCount(t, testutil.AppDB, testutil.AppUser)
	t.Logf("20 idle clients: %d server connections", n)
	if n > 1 {
		t.Errorf("20 idle clients, %d server connections (want <= 1)", n)
	}

	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		errs    []error
		maxSeen int
	)
	sctx, stop := context.WithCancel(ctx)
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for sctx.Err() == nil {
			if n, err := p.CountServerConns(sctx, testutil.AppDB, testutil.AppUser); err == nil {
				mu.Lock()
				maxSeen = max(maxSeen, n)
				mu.Unlock()
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	for _, c := range conns {
		wg.Add(1)
		go func(c *pgx.Conn) {
			defer wg.Done()
			if _, err := c.Exec(ctx, "SELECT pg_sleep(0.1)"); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}(c)
	}
	wg.Wait()
	stop()
	<-sampled
	for _, err := range errs {
		t.Errorf("query: %v", err)
	}
	n = p.ServerConnCount(t, testutil.AppDB, testutil.AppUser)
	t.Logf("after 20 queries: %d server connections (max seen while running: %d)", n, maxSeen)
	if n > poolSize || maxSeen > poolSize {
		t.Errorf("server connections: %d now, max %d while running; pool_size %d", n, maxSeen, poolSize)
	}
}

// A client that disconnects inside a transaction (BEGIN; INSERT; socket
// closed without Terminate) leaves no dirty server: the next client on the
// same single server connection is not inside that transaction and the
// insert was rolled back.
func TestClientDisconnectMidTransaction(t *testing.T) {
	p := startProxy(t, testutil.Config{PoolMode: "transaction", PoolSize: 1})
	ctx := testCtx(t, 30*time.Second)
	table := testutil.NewTable(t, "CREATE TABLE %s (id int)")

	for _, v := range []struct {
		name              string
		failed, terminate bool
	}{
		{"socket closed in transaction", false, false},
		{"socket closed in failed transaction", true, false},
		{"Terminate in transaction", false, true},
	} {
		failed := v.name
		a, err := connectTo(t, ctx, p.ConnString("app", "app", "app"))
		if err != nil {
			t.Fatal(err)
		}
		mustExec(t, ctx, a, "BEGIN")
		mustExec(t, ctx, a, "INSERT INTO "+table+" VALUES (1)")
		if v.failed {
			_, err := a.Exec(ctx, "SELECT 1/0")
			requirePgCode(t, err, "22012")
		}
		if v.terminate {
			a.Close(ctx) // sends Terminate
		} else {
			// Close the socket under pgx: no Terminate, no ROLLBACK.
			a.PgConn().Conn().Close()
		}

		b := connect(t, ctx, p)
		// Simple query protocol: the transaction and the statement start
		// with the same Query message, so now() = statement_timestamp()
		// unless the query ran inside an older, still open transaction.
		// (Not so with Parse/Bind/Execute: each message restamps the
		// statement.)
		res, err := b.PgConn().Exec(ctx, "SELECT now() = statement_timestamp()").ReadAll()
		if err != nil {
			t.Fatalf("%s: next client: %v", failed, err)
		}
		if fresh := string(res[0].Rows[0][0]) == "t"; !fresh {
			t.Errorf("%s: next client's query ran inside the abandoned transaction (now() != statement_timestamp())", failed)
		}
		if n := queryInt(t, ctx, b, "SELECT count(*) FROM "+table); n != 0 {
			t.Errorf("%s: abandoned insert visible: %d rows", failed, n)
		}
		if st := b.PgConn().TxStatus(); st != 'I' {
			t.Errorf("%s: TxStatus %c", failed, st)
		}
		// No server of the proxy stays idle in transaction (not checkable
		// in direct mode: other backends would be counted).
		if p.Direct {
			b.Close(ctx)
			continue
		}
		testutil.CheckFor(t, 5*time.Second, 50*time.Millisecond, func() error {
			n, err := idleInTransaction(ctx, p)
			if err != nil {
				return err
			}
			if n != 0 {
				return errorf("%d server connections idle in transaction", n)
			}
			return nil
		})
		b.Close(ctx)
	}
}

// A client that disconnects while its query runs: the server connection must
// not go back to the pool with the query's results still coming. With
// pool_size 1 the next client gets its own answer (the proxy may cancel the
// query, close the server or wait for it to finish).
func TestClientDisconnectMidQuery(t *testing.T) {
	p := startProxy(t, testutil.Config{PoolMode: "transaction", PoolSize: 1})
	ctx := testCtx(t, 30*time.Second)
	a, err := connectTo(t, ctx, p.ConnString("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	marker := "e2e-midquery-" + testutil.Nonce()
	go func() {
		// Rows are sent at the end: 'stale' arrives after the sleep.
		a.Exec(ctx, "SELECT 'stale' FROM pg_sleep(1.5) /* "+marker+" */")
	}()
	waitActive(t, marker, 1, 5*time.Second)
	a.PgConn().Conn().Close()

	b := connect(t, ctx, p)
	start := time.Now()
	for i := 0; i < 3; i++ {
		want := "fresh-" + itoa(i)
		if got := queryString(t, ctx, b, "SELECT $1::text", want); got != want {
			t.Fatalf("next client got %q, want %q (stale result of the abandoned query?)", got, want)
		}
	}
	t.Logf("next client served after %v", time.Since(start))
	if st := b.PgConn().TxStatus(); st != 'I' {
		t.Errorf("TxStatus %c", st)
	}
}

// Pools are per (database, user): with pool_size 1, app holding its only
// server in a transaction does not block postgres on the same database.
func TestPoolsPerDatabaseUser(t *testing.T) {
	p := startProxy(t, testutil.Config{PoolMode: "transaction", PoolSize: 1})
	testutil.RequireProcess(t)
	ctx := testCtx(t, 30*time.Second)
	app := connect(t, ctx, p)
	su, err := connectTo(t, ctx, p.ConnString(testutil.SuperUser, testutil.SuperPassword, testutil.AppDB))
	if err != nil {
		t.Fatal(err)
	}
	suPostgres, err := connectTo(t, ctx, p.ConnString(testutil.SuperUser, testutil.SuperPassword, "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, ctx, app, "BEGIN")
	appPid := queryInt(t, ctx, app, "SELECT pg_backend_pid()")
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var user, db string
	if err := su.QueryRow(qctx, "SELECT current_user, current_database()").Scan(&user, &db); err != nil {
		t.Fatalf("postgres@app blocked by app@app's transaction: %v", err)
	}
	if user != "postgres" || db != "app" {
		t.Errorf("postgres@app ran as %s@%s", user, db)
	}
	if err := suPostgres.QueryRow(qctx, "SELECT current_user, current_database()").Scan(&user, &db); err != nil {
		t.Fatalf("postgres@postgres blocked: %v", err)
	}
	if user != "postgres" || db != "postgres" {
		t.Errorf("postgres@postgres ran as %s@%s", user, db)
	}
	if got := queryInt(t, ctx, app, "SELECT pg_backend_pid()"); got != appPid {
		t.Errorf("app's transaction moved from backend %d to %d", appPid, got)
	}
	mustExec(t, ctx, app, "COMMIT")
}

func idleInTransaction(ctx context.Context, p *testutil.Proxy) (int, error) {
	c, err := pgx.Connect(ctx, testutil.AdminConnString("postgres"))
	if err != nil {
		return 0, err
	}
	defer c.Close(context.Background())
	q := `SELECT count(*) FROM pg_stat_activity
	    WHERE datname = 'app' AND usename = 'app' AND state LIKE 'idle in transaction%'`
	ports := p.ServerPorts()
	p32 := make([]int32, len(ports))
	for i, v := range ports {
		p32[i] = int32(v)
	}
	q += ` AND client_port = ANY($1)`
	var n int
	err = c.QueryRow(ctx, q, p32).Scan(&n)
	return n, err
}
