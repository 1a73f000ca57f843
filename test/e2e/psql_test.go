package e2e

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/poolmgr/poolmgr/internal/testutil"
)

var update = flag.Bool("update", false, "rewrite testdata/*.out golden files (run with POOLMGR_E2E_DIRECT=1 to take them from PostgreSQL itself)")

// TestPsqlScript runs testdata/psql_script.sql with psql -f through poolmgr
// (transaction mode) and compares psql's output, exit status and a \copy-out
// file with golden files: DDL, inserts, \copy in and out, a failing statement
// with ON_ERROR_STOP off, then \set ON_ERROR_STOP on and a failing statement
// that stops the script (exit status 3).
func TestPsqlScript(t *testing.T) {
	psql := testutil.RequireBinary(t, "psql")
	p := startProxy(t, testutil.Config{PoolMode: "transaction", PoolSize: 2})
	ctx := testCtx(t, 60*time.Second)

	testutil.AdminExec(t, testutil.AppDB, "DROP SCHEMA IF EXISTS e2e_psql CASCADE; CREATE SCHEMA e2e_psql AUTHORIZATION app")
	t.Cleanup(func() { testutil.AdminExec(t, testutil.AppDB, "DROP SCHEMA IF EXISTS e2e_psql CASCADE") })

	dir := t.TempDir()
	for _, f := range []string{"psql_script.sql", "items.csv"} {
		b, err := os.ReadFile(filepath.Join("testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.CommandContext(ctx, psql, "-X", "-v", "ON_ERROR_STOP=0", "-f", "psql_script.sql",
		"-h", "127.0.0.1", "-p", itoa(p.Port), "-U", testutil.AppUser, "-d", testutil.AppDB)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PGPASSWORD="+testutil.AppPassword, "PGSSLMODE=disable", "PGCONNECT_TIMEOUT=5",
		"PGAPPNAME=e2e-psql", "PAGER=", "PSQL_PAGER=", "LC_ALL=C", "PGCLIENTENCODING=UTF8")
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("psql: %v\n%s", err, out.String())
	}
	copied, err := os.ReadFile(filepath.Join(dir, "items_out.csv"))
	if err != nil {
		t.Errorf("\\copy TO file: %v", err)
	}

	golden(t, "psql_script.out", out.Bytes())
	golden(t, "items_out.csv.out", copied)
	if code != 3 {
		t.Errorf("psql exit status %d, want 3 (script stopped by ON_ERROR_STOP)", code)
	}
}

// golden compares got with testdata/name (or rewrites it with -update).
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs.\n--- got ---\n%s\n--- want ---\n%s", path, got, want)
	}
}
