package fallback_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/poolmgr/poolmgr/internal/auth"
	"github.com/poolmgr/poolmgr/internal/engine/fallback"
	"github.com/poolmgr/poolmgr/internal/proxy"
	"github.com/poolmgr/poolmgr/internal/testutil"
)

// testWriter logs to t until the test's cleanup: the fallback engine's
// loops keep ticking (and may log) after the test has ended.
type testWriter struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

func (w *testWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(b), "\n"))
	}
	return len(b), nil
}

func (w *testWriter) stop() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}

// startProxy runs the real core on one loop of the fallback engine on
// 127.0.0.1:0 (trust for clients; the backend login as app/app) and returns
// a connection string to it.
func startProxy(t testing.TB, backends []string) string {
	t.Helper()
	logw := &testWriter{t: t}
	o := &proxy.Options{
		PoolMode:                    proxy.ModeTransaction,
		PoolSize:                    5,
		MaxClients:                  1000,
		MaxServersPerBackend:        10,
		MaxMessageSize:              64 << 20,
		MaxPreparedStatements:       200,
		MaxClientPreparedStatements: 10000,
		QueryWaitTimeout:            30 * time.Second,
		ServerIdleTimeout:           60 * time.Second,
		ServerLifetime:              time.Hour,
		ServerConnectTimeout:        5 * time.Second,
		ServerLoginRetry:            200 * time.Millisecond,
		ClientLoginTimeout:          60 * time.Second,
		ShutdownTimeout:             5 * time.Second,
		AuthType:                    proxy.AuthTrust,
		Secrets:                     map[string]auth.Secret{"app": auth.ParseSecret("app")},
		Log:                         slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	sh := proxy.NewShared(o, backends)
	e := fallback.New([]*proxy.Loop{proxy.NewLoop(sh, 0)}, o.Log, func() time.Duration { return 5 * time.Second })
	if err := e.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	runErr := make(chan error, 1)
	go func() { runErr <- e.Run() }()
	t.Cleanup(func() {
		logw.stop()
		e.StopAccepting()
		if err := <-runErr; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return fmt.Sprintf("postgres://app:app@%s/app?sslmode=disable&connect_timeout=10", e.Addr())
}

func connect(t testing.TB, ctx context.Context, connString string, mode pgx.QueryExecMode) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(connString)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DefaultQueryExecMode = mode
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("connect through the fallback engine: %v", err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// TestUnixSocketBackend: a backend given as "/directory:port" is dialed with
// net.Dial("unix") (a relay in t.TempDir() in front of PostgreSQL): logins,
// simple and extended queries, and the CancelRequest the core forwards on a
// connection of its own.
func TestUnixSocketBackend(t *testing.T) {
	relay := testutil.StartUnixRelay(t, testutil.PostgresAddr(t))
	cs := startProxy(t, []string{relay.Addr})
	testutil.CheckUnixBackend(t, relay, func(ctx context.Context, mode pgx.QueryExecMode) *pgx.Conn {
		return connect(t, ctx, cs, mode)
	})
}

// TestUnixSocketBackendMissing: a Unix-socket backend whose socket file does
// not exist fails the login with an error naming the socket file.
func TestUnixSocketBackendMissing(t *testing.T) {
	dir := t.TempDir()
	cs := startProxy(t, []string{dir + ":5432"})
	testutil.CheckMissingUnixBackend(t, cs, dir)
}
