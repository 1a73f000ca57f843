package e2e

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/poolmgr/poolmgr/internal/testutil"
)

// Unix-domain socket backends: pool.backends entries "<directory>:port"
// naming the cluster's sockets (unix_socket_directories, pg_hba `local all
// all trust`). PostgreSQL reports inet_server_port() NULL on a connection
// that came over a Unix socket, which tells the two kinds of backend apart.

// unixServerPort runs sql (inet_server_port() as its first column) and
// returns the port, or -1 when it is NULL (a Unix-socket connection).
func unixServerPort(t *testing.T, ctx context.Context, c *pgx.Conn, sql string) int {
	t.Helper()
	var port *int32
	if err := c.QueryRow(ctx, sql).Scan(&port); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	if port == nil {
		return -1
	}
	return int(*port)
}

// portOrNil is *p, or nil.
func portOrNil(p *int32) any {
	if p == nil {
		return nil
	}
	return *p
}

// TestUnixSocketBackend: poolmgr with the primary as its only backend, over
// the primary's Unix socket: the health check finds it up, clients run
// simple and extended queries on it, a CancelRequest reaches it, and SHOW
// DATABASES gives the socket directory as host.
func TestUnixSocketBackend(t *testing.T) {
	dir := testutil.ClusterSocketDir(t)
	backend := dir + ":" + strconv.Itoa(testutil.PrimaryPort)
	p := startAdminProxy(t, testutil.Config{
		PoolMode: "transaction",
		PoolSize: 2,
		Backends: []string{backend},
		Extra:    "health_check_interval = \"0.2s\"\nshutdown_timeout = 1\ncache_ttl_ms = 1000",
	})
	ctx := testCtx(t, 60*time.Second)
	adm := mustAdminConn(t, ctx, p)
	waitBackendsUp(t, ctx, adm, map[string]string{backend: "primary"})

	// The health check (which found the role) and the query cache's catalog
	// and bus connections use the socket too: PostgreSQL shows client_port
	// -1 for them.
	pg := testutil.AdminConn(t, "postgres")
	testutil.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		var health, cache int
		err := pg.QueryRow(ctx, `SELECT count(*) FILTER (WHERE application_name = 'poolmgr-health'),
		                                count(*) FILTER (WHERE application_name = 'poolmgr-cache')
		                           FROM pg_stat_activity WHERE client_port = -1`).Scan(&health, &cache)
		if err != nil {
			return err
		}
		if health == 0 || cache == 0 {
			return fmt.Errorf("Unix-socket connections: %d health check, %d query cache; want both", health, cache)
		}
		return nil
	})

	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec} {
		c := connect(t, ctx, p, withMode(mode))
		if got := queryInt(t, ctx, c, "SELECT $1::int + 1", 41); got != 42 {
			t.Fatalf("%v: SELECT 41 + 1 = %d", mode, got)
		}
		if port := unixServerPort(t, ctx, c, "SELECT inet_server_port()"); port != -1 {
			t.Fatalf("%v: the server connection has inet_server_port() %d, want NULL (a Unix socket)", mode, port)
		}
	}

	c := connect(t, ctx, p, withCancelRequest)
	marker := "e2e-unix-cancel-" + testutil.Nonce()
	qctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := c.Exec(qctx, "SELECT pg_sleep(10) /* "+marker+" */")
		done <- err
	}()
	waitActive(t, marker, 1, 5*time.Second)
	cancel()
	select {
	case err := <-done:
		requirePgCode(t, err, "57014")
	case <-time.After(6 * time.Second):
		t.Fatal("cancelled query did not return within 6 s")
	}
	if got := queryInt(t, ctx, c, "SELECT 7"); got != 7 {
		t.Fatalf("after cancel: SELECT 7 = %d", got)
	}

	cols, rows := showRows(t, ctx, adm, "SHOW DATABASES")
	hi, pi := colIndex(cols, "host"), colIndex(cols, "port")
	found := false
	for _, r := range rows {
		if r[0] == testutil.AppDB {
			found = true
			if r[hi] != dir || r[pi] != strconv.Itoa(testutil.PrimaryPort) {
				t.Errorf("SHOW DATABASES %s: host %q port %q, want %q %d", r[0], r[hi], r[pi], dir, testutil.PrimaryPort)
			}
		}
	}
	if !found {
		t.Errorf("SHOW DATABASES has no row for %s: %v", testutil.AppDB, rows)
	}
}

// TestUnixSocketPrimaryTCPReplica: the primary over its Unix socket, a
// standby over TCP; reads go to the standby, writes (and the primary hint)
// to the primary's socket.
func TestUnixSocketPrimaryTCPReplica(t *testing.T) {
	dir := testutil.ClusterSocketDir(t)
	primary := dir + ":" + strconv.Itoa(testutil.PrimaryPort)
	p := startAdminProxy(t, testutil.Config{
		PoolMode: "transaction",
		Backends: []string{primary, testutil.Standby1Addr},
		Extra:    "health_check_interval = \"0.2s\"\nshutdown_timeout = 1\nmax_replica_lag_ms = 0",
	})
	ctx := testCtx(t, 60*time.Second)
	adm := mustAdminConn(t, ctx, p)
	waitBackendsUp(t, ctx, adm, map[string]string{primary: "primary", testutil.Standby1Addr: "standby"})

	c := connect(t, ctx, p, withMode(pgx.QueryExecModeSimpleProtocol))
	if port := unixServerPort(t, ctx, c, "SELECT inet_server_port()"); port != routingReplica1Port {
		t.Errorf("a read ran on port %d, want the standby (%d)", port, routingReplica1Port)
	}
	if port := unixServerPort(t, ctx, c, "/* poolmgr:primary */ SELECT inet_server_port()"); port != -1 {
		t.Errorf("a read hinted to the primary ran on port %d, want the primary's Unix socket (NULL)", port)
	}
	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var port *int32
	if err := tx.QueryRow(ctx, "SELECT inet_server_port()").Scan(&port); err != nil || port != nil {
		t.Errorf("a BEGIN transaction ran on port %v (%v), want the primary's Unix socket (NULL)", portOrNil(port), err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}
