//go:build linux

package uringengine_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/poolmgr/poolmgr/internal/engine/uringengine"
	"github.com/poolmgr/poolmgr/internal/testutil"
)

// TestUnixSocketBackend: a backend given as "/directory:port" is dialed over
// an AF_UNIX socket (a relay in t.TempDir() in front of PostgreSQL): logins,
// simple and extended queries, and the CancelRequest the core forwards on a
// connection of its own.
func TestUnixSocketBackend(t *testing.T) {
	relay := testutil.StartUnixRelay(t, pgAddr(t))
	p := startProxy(t, []string{relay.Addr}, nil, uringengine.Options{}, 1)
	testutil.CheckUnixBackend(t, relay, func(ctx context.Context, mode pgx.QueryExecMode) *pgx.Conn {
		return pgConnect(t, ctx, p, mode)
	})
}

// TestUnixSocketBackendMissing: a Unix-socket backend whose socket file does
// not exist fails the login with an error naming the socket file.
func TestUnixSocketBackendMissing(t *testing.T) {
	dir := t.TempDir()
	p := startProxy(t, []string{dir + ":5432"}, nil, uringengine.Options{}, 1)
	testutil.CheckMissingUnixBackend(t, p.connString(), dir)
}
