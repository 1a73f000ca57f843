package e2e

import (
	"testing"
	"time"

	"github.com/poolmgr/poolmgr/internal/testutil"
)

// A backend killed mid-query (pg_terminate_backend from a direct superuser
// connection): the client gets an error within 1 s, and a new query through
// poolmgr works.
func TestBackendKilledMidQuery(t *testing.T) {
	p := startProxy(t, testutil.Config{PoolMode: "transaction", PoolSize: 2})
	ctx := testCtx(t, 30*time.Second)
	a := connect(t, ctx, p)
	admin := testutil.AdminConn(t, "postgres")

	marker := "e2e-kill-" + testutil.Nonce()
	type result struct {
		err error
		at  time.Time
	}
	done := make(chan result, 1)
	go func() {
		_, err := a.Exec(ctx, "SELECT pg_sleep(5) /* "+marker+" */")
		done <- result{err, time.Now()}
	}()
	pids := waitActive(t, marker, 1, 5*time.Second)
	var ok bool
	killed := time.Now()
	if err := admin.QueryRow(ctx, "SELECT pg_terminate_backend($1)", pids[0]).Scan(&ok); err != nil || !ok {
		t.Fatalf("pg_terminate_backend(%d): %v %v", pids[0], ok, err)
	}
	var r result
	select {
	case r = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("client got nothing within 5 s of its backend being killed")
	}
	took := r.at.Sub(killed)
	t.Logf("client error after %v: %v", took, r.err)
	if r.err == nil {
		t.Fatal("query on a killed backend succeeded")
	}
	if pe := pgError(r.err); pe != nil {
		t.Logf("client got %s %s: %s", pe.Severity, pe.Code, pe.Message)
	}
	if took > time.Second {
		t.Errorf("error arrived %v after the kill, want < 1 s", took)
	}

	// A new client works.
	b := connect(t, ctx, p)
	if got := queryInt(t, ctx, b, "SELECT 5"); got != 5 {
		t.Fatalf("SELECT 5 = %d", got)
	}
	// The old client either was closed or works again; both are fine.
	if !a.IsClosed() {
		var n int
		err := a.QueryRow(ctx, "SELECT 6").Scan(&n)
		t.Logf("old client after the kill: %d %v", n, err)
	}
}
