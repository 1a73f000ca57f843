package e2e

import (
	"context"
	"encoding/binary"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"

	"github.com/poolmgr/poolmgr/internal/testutil"
)

// withCancelRequest makes a cancelled context send a CancelRequest (pgx's
// default only sets a deadline on the socket).
func withCancelRequest(c *pgx.ConnConfig) {
	c.BuildContextWatcherHandler = func(pc *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: pc, DeadlineDelay: 5 * time.Second}
	}
}

// A query cancelled through pgx (context cancel -> CancelRequest to the
// proxy) fails with 57014 within ~2 s, and the connection keeps working.
func TestCancelRunningQuery(t *testing.T) {
	p := startProxy(t, testutil.Config{PoolMode: "transaction", PoolSize: 2})
	ctx := testCtx(t, 30*time.Second)
	c := connect(t, ctx, p, withCancelRequest)

	marker := "e2e-cancel-" + testutil.Nonce()
	qctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		err error
		at  time.Time
	}
	done := make(chan result, 1)
	go func() {
		_, err := c.Exec(qctx, "SELECT pg_sleep(10) /* "+marker+" */")
		done <- result{err, time.Now()}
	}()
	waitActive(t, marker, 1, 5*time.Second)
	start := time.Now()
	cancel()
	var r result
	select {
	case r = <-done:
	case <-time.After(6 * time.Second):
		t.Fatal("cancelled query did not return within 6 s")
	}
	took := r.at.Sub(start)
	t.Logf("cancelled query returned after %v: %v", took, r.err)
	requirePgCode(t, r.err, "57014")
	if took > 2*time.Second {
		t.Errorf("cancel took %v, want < 2 s", took)
	}
	if got := queryInt(t, ctx, c, "SELECT 7"); got != 7 {
		t.Fatalf("after cancel: SELECT 7 = %d", got)
	}
	if n, err := activeCount(ctx, marker); err != nil || n != 0 {
		t.Errorf("cancelled query still active on the server: %d (%v)", n, err)
	}
}

// A cancel that arrives after the client's query finished and its server went
// back to the pool must cancel nothing: with pool_size 1, client A runs a
// short query, then B runs pg_sleep(1) on the same server connection, then A's
// CancelRequest (and one with a made-up key) arrives: B is not cancelled.
func TestLateCancelCancelsNothing(t *testing.T) {
	p := startProxy(t, testutil.Config{PoolMode: "transaction", PoolSize: 1})
	testutil.RequireProcess(t)
	ctx := testCtx(t, 30*time.Second)
	a := connect(t, ctx, p)
	b := connect(t, ctx, p)

	mustExec(t, ctx, a, "SELECT pg_sleep(0.05)")
	marker := "e2e-late-cancel-" + testutil.Nonce()
	type result struct {
		err  error
		took time.Duration
	}
	done := make(chan result, 1)
	go func() {
		start := time.Now()
		_, err := b.Exec(ctx, "SELECT pg_sleep(1) /* "+marker+" */")
		done <- result{err, time.Since(start)}
	}()
	waitActive(t, marker, 1, 5*time.Second)

	if err := a.PgConn().CancelRequest(ctx); err != nil {
		t.Errorf("A's CancelRequest: %v", err)
	}
	// A CancelRequest with a key nobody has.
	rawCancel(t, p.Addr, 0x7fff0001, []byte{1, 2, 3, 4})

	r := <-done
	if r.err != nil {
		t.Fatalf("B was cancelled by A's late cancel: %v", r.err)
	}
	if r.took < 900*time.Millisecond {
		t.Errorf("B's pg_sleep(1) returned after %v", r.took)
	}
	if got := queryInt(t, ctx, a, "SELECT 1"); got != 1 {
		t.Fatalf("A after its cancel: %d", got)
	}
}

// rawCancel sends a CancelRequest (protocol 3.0 layout) and waits for the
// proxy to close the connection.
func rawCancel(t *testing.T, addr string, pid uint32, key []byte) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatalf("dial for CancelRequest: %v", err)
	}
	defer conn.Close()
	msg := make([]byte, 12+len(key))
	binary.BigEndian.PutUint32(msg[0:], uint32(len(msg)))
	binary.BigEndian.PutUint32(msg[4:], 80877102)
	binary.BigEndian.PutUint32(msg[8:], pid)
	copy(msg[12:], key)
	if _, err := conn.Write(msg); err != nil {
		t.Fatalf("write CancelRequest: %v", err)
	}
	conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	var buf [16]byte
	n, err := conn.Read(buf[:])
	if n > 0 || !isEOFOrReset(err) {
		t.Errorf("after a CancelRequest the proxy should just close the connection; read %d bytes, err %v", n, err)
	}
}
