package e2e

import (
	"context"
	"errors"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/poolmgr/poolmgr/internal/testutil"
)

// concurrentSleep runs `SELECT pg_sleep(secs) /* marker */` on every conn at
// once and returns the errors.
func concurrentSleep(ctx context.Context, conns []*pgx.Conn, secs, marker string) []error {
	errs := make([]error, len(conns))
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = c.Exec(ctx, "SELECT pg_sleep("+secs+") /* "+marker+" */")
		}()
	}
	wg.Wait()
	return errs
}

// SIGHUP reloads the config: pool_size 1 -> 3 takes effect without dropping
// the connected clients.
func TestReloadPoolSize(t *testing.T) {
	cfg := testutil.Config{PoolMode: "transaction", PoolSize: 1}
	p := startProxy(t, cfg)
	testutil.RequireProcess(t)
	ctx := testCtx(t, 60*time.Second)
	conns := []*pgx.Conn{connect(t, ctx, p), connect(t, ctx, p), connect(t, ctx, p)}

	// Before: pool_size 1 serialises the sleeps.
	marker := "e2e-reload-before-" + testutil.Nonce()
	maxActive := 0
	done := make(chan []error, 1)
	go func() { done <- concurrentSleep(ctx, conns, "0.3", marker) }()
	var errs []error
	for errs == nil {
		select {
		case errs = <-done:
		case <-time.After(20 * time.Millisecond):
			if n, err := activeCount(ctx, marker); err == nil {
				maxActive = max(maxActive, n)
			}
		}
	}
	for _, err := range errs {
		if err != nil {
			t.Fatalf("before reload: %v", err)
		}
	}
	if maxActive != 1 {
		t.Fatalf("before reload: %d queries ran at once with pool_size 1", maxActive)
	}

	cfg.PoolSize = 3
	p.WriteConfig(cfg.TOML())
	p.Signal(syscall.SIGHUP)
	// Best effort: give the proxy a moment to log the reload.
	if err := testutil.WaitFor(2*time.Second, 20*time.Millisecond, func() error {
		if strings.Contains(strings.ToLower(p.Log()), "reload") {
			return nil
		}
		return errors.New("no reload in the log yet")
	}); err != nil {
		t.Logf("poolmgr logged nothing about a reload (%v); going on", err)
	}

	// After: the same (still connected) clients run 3 at once.
	marker = "e2e-reload-after-" + testutil.Nonce()
	go func() { done <- concurrentSleep(ctx, conns, "1", marker) }()
	waitActive(t, marker, 3, 3*time.Second)
	for i, err := range <-done {
		if err != nil {
			t.Errorf("client %d after reload: %v", i, err)
		}
	}
	if p.Exited() {
		t.Fatal("poolmgr exited on SIGHUP")
	}
}

// SIGTERM is a graceful shutdown: a running transaction finishes (the client
// in pg_sleep gets its result; a client inside BEGIN ... can go on and
// COMMIT), new connections are refused meanwhile, then the process exits with
// status 0. (pg_sleep(2) rather than 1 leaves room to observe the refusal
// while the query runs.)
func TestSIGTERMGraceful(t *testing.T) {
	p := startProxy(t, testutil.Config{PoolMode: "transaction", PoolSize: 3, Extra: "shutdown_timeout = 10"})
	testutil.RequireProcess(t)
	ctx := testCtx(t, 30*time.Second)
	table := testutil.NewTable(t, "CREATE TABLE %s (id int)")
	a := connect(t, ctx, p)
	b := connect(t, ctx, p)
	mustExec(t, ctx, b, "BEGIN")
	mustExec(t, ctx, b, "INSERT INTO "+table+" VALUES (1)")

	marker := "e2e-sigterm-" + testutil.Nonce()
	type result struct {
		v   int
		err error
	}
	done := make(chan result, 1)
	go func() {
		var v int
		err := a.QueryRow(ctx, "SELECT 42 FROM pg_sleep(2) /* "+marker+" */").Scan(&v)
		done <- result{v, err}
	}()
	waitActive(t, marker, 1, 5*time.Second)
	p.Signal(syscall.SIGTERM)

	// New connections are refused while the query runs.
	testutil.CheckFor(t, 1500*time.Millisecond, 50*time.Millisecond, func() error {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		c, err := pgx.Connect(cctx, p.ConnString("app", "app", "app"))
		if err != nil {
			t.Logf("new connection during shutdown: %v", err)
			return nil
		}
		c.Close(cctx)
		return errors.New("a new connection was accepted after SIGTERM")
	})
	// B's open transaction may go on and commit.
	if _, err := b.Exec(ctx, "INSERT INTO "+table+" VALUES (2)"); err != nil {
		t.Errorf("statement in an open transaction during graceful shutdown: %v", err)
	}
	if _, err := b.Exec(ctx, "COMMIT"); err != nil {
		t.Errorf("COMMIT during graceful shutdown: %v", err)
	}
	select {
	case r := <-done:
		if r.err != nil || r.v != 42 {
			t.Fatalf("running query during graceful shutdown: %d, %v", r.v, r.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("running query got no result within 5 s")
	}
	code, err := p.Wait(5 * time.Second)
	if err != nil {
		t.Fatalf("%v after the last transaction finished (idle client still connected)", err)
	}
	if code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}
	admin := testutil.AdminConn(t, testutil.AppDB)
	var n int
	if err := admin.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil || n != 2 {
		t.Errorf("transaction committed during shutdown: %d rows (%v), want 2", n, err)
	}
}

// SIGINT is an immediate shutdown: the process exits at once even with a
// query running; that client gets an error.
func TestSIGINTImmediate(t *testing.T) {
	p := startProxy(t, testutil.Config{PoolMode: "transaction", PoolSize: 2, Extra: "shutdown_timeout = 10"})
	testutil.RequireProcess(t)
	ctx := testCtx(t, 30*time.Second)
	a := connect(t, ctx, p)
	marker := "e2e-sigint-" + testutil.Nonce()
	done := make(chan error, 1)
	go func() {
		_, err := a.Exec(ctx, "SELECT pg_sleep(5) /* "+marker+" */")
		done <- err
	}()
	waitActive(t, marker, 1, 5*time.Second)
	p.Signal(syscall.SIGINT)
	if _, err := p.Wait(2 * time.Second); err != nil {
		t.Fatalf("SIGINT: %v", err)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Error("query survived an immediate shutdown")
		}
	case <-time.After(2 * time.Second):
		t.Error("client not told within 2 s that the proxy exited")
	}
}
