//go:build linux

package uringengine_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/poolmgr/poolmgr/internal/engine/uringengine"
)

func pgConnect(t testing.TB, ctx context.Context, p *testProxy, mode pgx.QueryExecMode) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(p.connString())
	if err != nil {
		t.Fatal(err)
	}
	cfg.DefaultQueryExecMode = mode
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("connect through the io_uring engine: %v", err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// TestQueries runs the real core on the io_uring engine against PostgreSQL:
// simple and extended protocol, prepared statements, large results, COPY in,
// cancel, a slow reader (write backpressure), errors.
func TestQueries(t *testing.T) {
	pg := pgAddr(t)
	p := startProxy(t, []string{pg}, nil, uringengine.Options{}, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()

	t.Run("simple", func(t *testing.T) {
		c := pgConnect(t, ctx, p, pgx.QueryExecModeSimpleProtocol)
		var n int
		var s string
		if err := c.QueryRow(ctx, "SELECT 41 + 1, 'x' || $1", "y").Scan(&n, &s); err != nil || n != 42 || s != "xy" {
			t.Fatalf("got %d %q %v", n, s, err)
		}
		// Several statements in one Query message.
		res, err := c.PgConn().Exec(ctx, "SELECT 1; SELECT 2; SELECT 3").ReadAll()
		if err != nil || len(res) != 3 {
			t.Fatalf("multi-statement: %d results, %v", len(res), err)
		}
	})
	t.Run("extended", func(t *testing.T) {
		c := pgConnect(t, ctx, p, pgx.QueryExecModeExec)
		for i := range 100 {
			var n int
			if err := c.QueryRow(ctx, "SELECT $1::int * 2", i).Scan(&n); err != nil || n != 2*i {
				t.Fatalf("%d: got %d %v", i, n, err)
			}
		}
	})
	t.Run("prepared", func(t *testing.T) {
		c := pgConnect(t, ctx, p, pgx.QueryExecModeCacheStatement)
		for i := range 50 {
			var s string
			if err := c.QueryRow(ctx, "SELECT repeat('a', $1::int)", i).Scan(&s); err != nil || len(s) != i {
				t.Fatalf("%d: got %d bytes %v", i, len(s), err)
			}
		}
	})
	t.Run("error", func(t *testing.T) {
		c := pgConnect(t, ctx, p, pgx.QueryExecModeExec)
		_, err := c.Exec(ctx, "SELECT 1/0")
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "22012" {
			t.Fatalf("division by zero: %v", err)
		}
		var n int
		if err := c.QueryRow(ctx, "SELECT 7").Scan(&n); err != nil || n != 7 {
			t.Fatalf("after an error: %d %v", n, err)
		}
	})
	t.Run("1MB value", func(t *testing.T) {
		c := pgConnect(t, ctx, p, pgx.QueryExecModeExec)
		var s string
		if err := c.QueryRow(ctx, "SELECT repeat('x', 1048576)").Scan(&s); err != nil || len(s) != 1<<20 || strings.Trim(s, "x") != "" {
			t.Fatalf("1 MB value: %d bytes %v", len(s), err)
		}
		// And one sent the other way.
		big := strings.Repeat("q", 1<<20)
		var n int
		if err := c.QueryRow(ctx, "SELECT length($1::text)", big).Scan(&n); err != nil || n != 1<<20 {
			t.Fatalf("1 MB parameter: %d %v", n, err)
		}
	})
	t.Run("many rows", func(t *testing.T) {
		c := pgConnect(t, ctx, p, pgx.QueryExecModeExec)
		rows, err := c.Query(ctx, "SELECT g, md5(g::text) FROM generate_series(1, 100000) g")
		if err != nil {
			t.Fatal(err)
		}
		want := 1
		for rows.Next() {
			var g int
			var h string
			if err := rows.Scan(&g, &h); err != nil || g != want || len(h) != 32 {
				t.Fatalf("row %d: %d %q %v", want, g, h, err)
			}
			want++
		}
		if err := rows.Err(); err != nil || want != 100001 {
			t.Fatalf("%d rows, %v", want-1, err)
		}
	})
	t.Run("slow reader", func(t *testing.T) {
		// ~40 MB result read slowly at first: the proxy's output to the
		// client passes the high watermark, the core pauses the server,
		// then everything arrives in order.
		c := pgConnect(t, ctx, p, pgx.QueryExecModeExec)
		rows, err := c.Query(ctx, "SELECT g, repeat(chr(65 + g % 26), 4000) FROM generate_series(1, 10000) g")
		if err != nil {
			t.Fatal(err)
		}
		want := 1
		for rows.Next() {
			var g int
			var s string
			if err := rows.Scan(&g, &s); err != nil || g != want || len(s) != 4000 || s[0] != byte(65+g%26) {
				t.Fatalf("row %d: %d %d bytes %v", want, g, len(s), err)
			}
			if want < 20 {
				time.Sleep(100 * time.Millisecond)
			}
			want++
		}
		if err := rows.Err(); err != nil || want != 10001 {
			t.Fatalf("%d rows, %v", want-1, err)
		}
		st := uringengine.LoopStats(p.e)[0]
		t.Logf("stats: %+v", st)
		if st.WriteBlocked() == 0 || st.ReadPauses() == 0 {
			t.Errorf("no write blocking / read pause seen: %+v", st)
		}
	})
	t.Run("copy in", func(t *testing.T) {
		c := pgConnect(t, ctx, p, pgx.QueryExecModeExec)
		tx, err := c.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		if _, err := tx.Exec(ctx, "CREATE TEMP TABLE uring_copy (id int, v text) ON COMMIT DROP"); err != nil {
			t.Fatal(err)
		}
		const n = 200000
		pad := strings.Repeat("p", 100)
		rows := make([][]any, n)
		for i := range rows {
			rows[i] = []any{i, fmt.Sprintf("%d-%s", i, pad)}
		}
		got, err := tx.CopyFrom(ctx, pgx.Identifier{"uring_copy"}, []string{"id", "v"}, pgx.CopyFromRows(rows))
		if err != nil || got != n {
			t.Fatalf("COPY: %d rows %v", got, err)
		}
		var cnt, sum int64
		if err := tx.QueryRow(ctx, "SELECT count(*), sum(id) FROM uring_copy").Scan(&cnt, &sum); err != nil || cnt != n || sum != int64(n)*(n-1)/2 {
			t.Fatalf("after COPY: count %d sum %d %v", cnt, sum, err)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("cancel", func(t *testing.T) {
		// A CancelRequest arrives on a new client connection; the core
		// dials the backend from the loop (Dial) to forward it.
		c := pgConnect(t, ctx, p, pgx.QueryExecModeExec)
		done := make(chan error, 1)
		start := time.Now()
		go func() {
			_, err := c.Exec(ctx, "SELECT pg_sleep(20)")
			done <- err
		}()
		time.Sleep(300 * time.Millisecond)
		if err := c.PgConn().CancelRequest(ctx); err != nil {
			t.Fatalf("CancelRequest: %v", err)
		}
		select {
		case err := <-done:
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != "57014" {
				t.Fatalf("cancelled query: %v, want SQLSTATE 57014", err)
			}
			t.Logf("cancelled after %v", time.Since(start).Round(time.Millisecond))
		case <-time.After(10 * time.Second):
			t.Fatal("pg_sleep(20) was not cancelled within 10 s")
		}
		var n int
		if err := c.QueryRow(ctx, "SELECT 5").Scan(&n); err != nil || n != 5 {
			t.Fatalf("after cancel: %d %v", n, err)
		}
	})
}

// TestConcurrentClients: 200 clients at once, each running queries, none of
// whose proxy-side sockets appear in the fd table.
func TestConcurrentClients(t *testing.T) {
	pg := pgAddr(t)
	p := startProxy(t, []string{pg}, nil, uringengine.Options{}, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	const n = 200
	conns := make([]*pgx.Conn, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cfg, _ := pgx.ParseConfig(p.connString())
			cfg.DefaultQueryExecMode = pgx.QueryExecModeExec
			c, err := pgx.ConnectConfig(ctx, cfg)
			if err != nil {
				errs <- fmt.Errorf("client %d: connect: %w", i, err)
				return
			}
			conns[i] = c
			for j := range 20 {
				var got int
				if err := c.QueryRow(ctx, "SELECT $1::int + $2::int", i, j).Scan(&got); err != nil || got != i+j {
					errs <- fmt.Errorf("client %d query %d: %d %v", i, j, got, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close(context.Background())
			}
		}
	}()
	if t.Failed() {
		return
	}
	if got := p.clients(); got != n {
		t.Errorf("core has %d clients, want %d", got, n)
	}
	inTable, est := proxySocketsInFDTable(t, p.port)
	t.Logf("%d established client connections to the proxy, %d of them in the process fd table", est, inTable)
	if est < n || inTable != 0 {
		t.Errorf("established %d (want >= %d), in the fd table %d (want 0)", est, n, inTable)
	}
	for i, c := range conns {
		c.Close(ctx)
		conns[i] = nil
	}
	waitFor(t, 10*time.Second, "all clients gone", func() bool { return p.clients() == 0 })
}

// TestSeveralLoops: two loops share the listener; clients land on both and
// every query works.
func TestSeveralLoops(t *testing.T) {
	pg := pgAddr(t)
	p := startProxy(t, []string{pg}, nil, uringengine.Options{}, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var conns []*pgx.Conn
	for range 20 {
		conns = append(conns, pgConnect(t, ctx, p, pgx.QueryExecModeExec))
	}
	for i, c := range conns {
		var n int
		if err := c.QueryRow(ctx, "SELECT $1::int", i).Scan(&n); err != nil || n != i {
			t.Fatalf("client %d: %d %v", i, n, err)
		}
	}
	use := uringengine.ConnsInUse(p.e)
	t.Logf("connections per loop: %v", use)
}

// TestAbruptDisconnects: clients vanish in the middle of large results and
// of COPY; the proxy keeps serving and releases everything.
func TestAbruptDisconnects(t *testing.T) {
	pg := pgAddr(t)
	p := startProxy(t, []string{pg}, nil, uringengine.Options{}, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := range 20 {
		cfg, _ := pgx.ParseConfig(p.connString())
		c, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := c.Query(ctx, "SELECT repeat('z', 1000) FROM generate_series(1, 50000)")
		if err != nil {
			t.Fatal(err)
		}
		for j := 0; j < i*10 && rows.Next(); j++ {
		}
		// Drop the socket without a Terminate.
		c.PgConn().Conn().Close()
	}
	c := pgConnect(t, ctx, p, pgx.QueryExecModeExec)
	var n int
	if err := c.QueryRow(ctx, "SELECT 99").Scan(&n); err != nil || n != 99 {
		t.Fatalf("after abrupt disconnects: %d %v", n, err)
	}
	c.Close(ctx)
	waitFor(t, 10*time.Second, "clients released", func() bool { return p.clients() == 0 })
	t.Logf("connections left (servers): %v, stats %+v", uringengine.ConnsInUse(p.e), uringengine.LoopStats(p.e)[0])
}
