package testutil

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// CheckUnixBackend is the engines' shared test of a Unix-socket backend:
// connect opens a client connection through a proxy whose only backend is
// relay. Logins, simple and extended queries, and the CancelRequest the core
// forwards on a connection of its own must all reach the backend over the
// socket.
func CheckUnixBackend(t *testing.T, relay *UnixRelay, connect func(ctx context.Context, mode pgx.QueryExecMode) *pgx.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec} {
		c := connect(ctx, mode)
		var n int
		if err := c.QueryRow(ctx, "SELECT $1::int + 1", 41).Scan(&n); err != nil || n != 42 {
			t.Fatalf("%v: got %d %v", mode, n, err)
		}
	}
	if relay.Accepted() == 0 {
		t.Fatal("queries answered, but nothing connected to the Unix socket")
	}

	c := connect(ctx, pgx.QueryExecModeExec)
	done := make(chan error, 1)
	go func() {
		_, err := c.Exec(ctx, "SELECT pg_sleep(20)")
		done <- err
	}()
	time.Sleep(300 * time.Millisecond)
	before := relay.Accepted()
	if err := c.PgConn().CancelRequest(ctx); err != nil {
		t.Fatalf("CancelRequest: %v", err)
	}
	select {
	case err := <-done:
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "57014" {
			t.Fatalf("cancelled query: %v, want SQLSTATE 57014", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("pg_sleep(20) was not cancelled within 10 s")
	}
	if relay.Accepted() <= before {
		t.Error("the CancelRequest did not reach the backend over the Unix socket")
	}
}

// CheckMissingUnixBackend: through a proxy (connString) whose only backend is
// "dir:5432" with no socket file there, the login fails with a class 08
// error naming the socket file.
func CheckMissingUnixBackend(t *testing.T, connString, dir string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	_, err := pgx.Connect(ctx, connString)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		t.Fatalf("connect through a proxy whose backend socket is missing: %v, want a PostgreSQL error", err)
	}
	want := "dial unix " + filepath.Join(dir, ".s.PGSQL.5432") + ": connect: no such file or directory"
	if pe.Code[:2] != "08" || !strings.Contains(pe.Message, want) {
		t.Errorf("got %s %q, want class 08 and a message containing %q", pe.Code, pe.Message, want)
	}
}
