package e2e

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/poolmgr/poolmgr/internal/testutil"
)

// TestMemoryGuardRefusesClients: with GOMEMLIMIT set below what the process
// already uses, poolmgr refuses new clients with 53300 instead of running out
// of memory.
func TestMemoryGuardRefusesClients(t *testing.T) {
	testutil.RequireCluster(t)
	cfg := testutil.Config{PoolMode: "transaction", PoolSize: 2}
	p := testutil.StartPoolmgr(t, cfg.TOML(), testutil.WithEnv("GOMEMLIMIT=4MiB"))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	testutil.CheckFor(t, 10*time.Second, 100*time.Millisecond, func() error {
		c, err := pgx.Connect(ctx, p.ConnString(testutil.AppUser, testutil.AppPassword, testutil.AppDB))
		if err == nil {
			c.Close(ctx)
			return errors.New("connected although the process is above its memory limit")
		}
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "53300" {
			return err
		}
		return nil
	})
}
