package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/poolmgr/poolmgr/internal/testutil"
)

func TestMain(m *testing.M) { os.Exit(testutil.Main(m)) }

// testCtx is a context bounded by d and cancelled when the test ends.
func testCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// startProxy checks the cluster and starts a poolmgr with cfg.
func startProxy(t *testing.T, cfg testutil.Config, opts ...testutil.Option) *testutil.Proxy {
	t.Helper()
	testutil.RequireCluster(t)
	return testutil.StartPoolmgr(t, cfg.TOML(), opts...)
}

// connectTo opens a pgx connection with connString (query mode
// QueryExecModeExec, see connect), applying mods to its config, and closes it
// when the test ends.
func connectTo(t *testing.T, ctx context.Context, connString string, mods ...func(*pgx.ConnConfig)) (*pgx.Conn, error) {
	t.Helper()
	cfg, err := pgx.ParseConfig(connString)
	if err != nil {
		t.Fatalf("parse %q: %v", connString, err)
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeExec // see connect
	for _, m := range mods {
		m(cfg)
	}
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		c.Close(ctx)
	})
	return c, nil
}

// connect opens a connection to the proxy as app/app on database app.
//
// The default query mode is QueryExecModeExec (extended protocol, unnamed
// statement, one round trip), not pgx's default statement cache: named
// prepared statements are per server connection, so in transaction mode a
// client's cached statement may be missing on (or clash with another client's
// on) the server it gets next — the usual transaction-pooling limitation.
func connect(t *testing.T, ctx context.Context, p *testutil.Proxy, mods ...func(*pgx.ConnConfig)) *pgx.Conn {
	t.Helper()
	c, err := connectTo(t, ctx, p.ConnString(testutil.AppUser, testutil.AppPassword, testutil.AppDB), mods...)
	if err != nil {
		t.Fatalf("connect to poolmgr %s: %v", p.Addr, err)
	}
	return c
}

// withMode sets the default query exec mode.
func withMode(m pgx.QueryExecMode) func(*pgx.ConnConfig) {
	return func(c *pgx.ConnConfig) { c.DefaultQueryExecMode = m }
}

// withParams adds startup (runtime) parameters.
func withParams(kv ...string) func(*pgx.ConnConfig) {
	return func(c *pgx.ConnConfig) {
		for i := 0; i+1 < len(kv); i += 2 {
			c.RuntimeParams[kv[i]] = kv[i+1]
		}
	}
}

// queryInt runs a query returning one integer.
func queryInt(t *testing.T, ctx context.Context, c *pgx.Conn, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := c.QueryRow(ctx, sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// queryString runs a query returning one text value.
func queryString(t *testing.T, ctx context.Context, c *pgx.Conn, sql string, args ...any) string {
	t.Helper()
	var s string
	if err := c.QueryRow(ctx, sql, args...).Scan(&s); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return s
}

func mustExec(t *testing.T, ctx context.Context, c *pgx.Conn, sql string, args ...any) {
	t.Helper()
	if _, err := c.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// pgError returns err's *pgconn.PgError or nil.
func pgError(err error) *pgconn.PgError {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe
	}
	return nil
}

// requirePgCode fails unless err carries SQLSTATE code.
func requirePgCode(t *testing.T, err error, code string) *pgconn.PgError {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want SQLSTATE %s", code)
	}
	pe := pgError(err)
	if pe == nil {
		t.Fatalf("got %T %v, want a PgError with SQLSTATE %s", err, err, code)
	}
	if pe.Code != code {
		t.Fatalf("got SQLSTATE %s (%s: %s), want %s", pe.Code, pe.Severity, pe.Message, code)
	}
	return pe
}

// activeCount returns how many backends are running a query containing marker.
func activeCount(ctx context.Context, marker string) (int, error) {
	pids, err := testutil.ActiveQueries(ctx, marker)
	return len(pids), err
}

// waitActive waits until n backends run a query containing marker and
// returns their pids.
func waitActive(t *testing.T, marker string, n int, timeout time.Duration) []int {
	t.Helper()
	var pids []int
	testutil.CheckFor(t, timeout, 20*time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var err error
		pids, err = testutil.ActiveQueries(ctx, marker)
		if err != nil {
			return err
		}
		if len(pids) != n {
			return fmt.Errorf("want %d active queries with marker %s, have %d", n, marker, len(pids))
		}
		return nil
	})
	return pids
}

func itoa(n int) string { return strconv.Itoa(n) }

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }
