package e2e

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/poolmgr/poolmgr/internal/testutil"
)

// pgbench through poolmgr in transaction mode with 50 clients and
// max_server_connections = 5: no failed transaction, exit status 0, and the
// proxy never holds more than 5 server connections (sampled every 100 ms).
func TestPgbenchSimple(t *testing.T) { testPgbench(t, "simple", false, 10) }

func TestPgbenchExtended(t *testing.T) { testPgbench(t, "extended", false, 10) }

func TestPgbenchSelectOnlySimple(t *testing.T) { testPgbench(t, "simple", true, 5) }

func TestPgbenchSelectOnlyExtended(t *testing.T) { testPgbench(t, "extended", true, 5) }

func testPgbench(t *testing.T, mode string, selectOnly bool, seconds int) {
	testutil.RequireBinary(t, "pgbench")
	const maxServer = 5
	p := startProxy(t, testutil.Config{PoolMode: "transaction", MaxServerConnections: maxServer})
	testutil.RequireProcess(t)
	ctx := testCtx(t, time.Duration(seconds+60)*time.Second)

	// The cluster script initialises the pgbench tables in app.
	admin := testutil.AdminConn(t, testutil.AppDB)
	var ok bool
	if err := admin.QueryRow(ctx, "SELECT to_regclass('public.pgbench_accounts') IS NOT NULL").Scan(&ok); err != nil || !ok {
		t.Fatalf("pgbench tables missing in database app (scripts/pgcluster should run pgbench -i): %v", err)
	}

	// Sample the proxy's server connections while pgbench runs.
	sctx, stop := context.WithCancel(ctx)
	var (
		wg               sync.WaitGroup
		maxSeen, samples int
		sampleErr        error
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			n, err := p.CountServerConns(sctx, testutil.AppDB, testutil.AppUser)
			if err != nil {
				if sctx.Err() == nil {
					sampleErr = err
				}
				return
			}
			samples++
			maxSeen = max(maxSeen, n)
			select {
			case <-sctx.Done():
				return
			case <-tick.C:
			}
		}
	}()

	args := []string{"-n", "-M", mode, "-c", "50", "-j", "2", "-T", itoa(seconds),
		"-h", "127.0.0.1", "-p", itoa(p.Port), "-U", testutil.AppUser}
	if selectOnly {
		args = append(args, "-S")
	}
	args = append(args, testutil.AppDB)
	res := testutil.PgbenchRun(t, args...)
	stop()
	wg.Wait()

	t.Logf("pgbench %v: tps=%.0f processed=%d failed=%d exit=%d; server connections: max %d over %d samples",
		args, res.TPS, res.Processed, res.Failed, res.ExitCode, maxSeen, samples)
	if res.ExitCode != 0 || res.Failed != 0 || res.Processed <= 0 {
		t.Errorf("pgbench: exit %d, %d failed, %d processed; output:\n%s", res.ExitCode, res.Failed, res.Processed, res.Output)
	}
	if sampleErr != nil {
		t.Errorf("sampling pg_stat_activity: %v", sampleErr)
	}
	// A few samples at least: each takes a /proc scan and a query, which
	// a loaded 2-core machine slows to a second or more: a floor, not a rate.
	if samples < 3 {
		t.Errorf("only %d samples of pg_stat_activity in %d s", samples, seconds)
	}
	if maxSeen > maxServer {
		t.Errorf("saw %d server connections, max_server_connections = %d", maxSeen, maxServer)
	}
	if maxSeen == 0 {
		t.Errorf("never saw a server connection of the proxy (sampling broken?)")
	}
}
