package testutil

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// PgbenchResult is what PgbenchRun parsed from pgbench's output.
type PgbenchResult struct {
	TPS       float64 // "tps = N (without initial connection time)"; -1 if absent
	Processed int     // "number of transactions actually processed"; -1 if absent
	Failed    int     // "number of failed transactions"; -1 if absent
	ExitCode  int
	Output    string // stdout and stderr
}

var (
	reTPS       = regexp.MustCompile(`(?m)^tps = ([0-9.]+)`)
	reProcessed = regexp.MustCompile(`(?m)^number of transactions actually processed: (\d+)`)
	reFailed    = regexp.MustCompile(`(?m)^number of failed transactions: (\d+)`)
)

// ParsePgbench parses pgbench (PostgreSQL 15) output.
func ParsePgbench(out string) PgbenchResult {
	r := PgbenchResult{TPS: -1, Processed: -1, Failed: -1, Output: out}
	if m := reTPS.FindStringSubmatch(out); m != nil {
		r.TPS, _ = strconv.ParseFloat(m[1], 64)
	}
	if m := reProcessed.FindStringSubmatch(out); m != nil {
		r.Processed, _ = strconv.Atoi(m[1])
	}
	if m := reFailed.FindStringSubmatch(out); m != nil {
		r.Failed, _ = strconv.Atoi(m[1])
	}
	return r
}

// PgbenchRun runs pgbench args... with PGPASSWORD=app (the password of user
// app) and returns the parsed result. It fails the test only if pgbench cannot
// be started or runs more than 5 minutes; check ExitCode and Failed yourself.
func PgbenchRun(t testing.TB, args ...string) PgbenchResult {
	t.Helper()
	return PgbenchRunAs(t, AppPassword, args...)
}

// PgbenchRunAs is PgbenchRun with another PGPASSWORD.
func PgbenchRunAs(t testing.TB, password string, args ...string) PgbenchResult {
	t.Helper()
	bin := RequireBinary(t, "pgbench")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+password, "PGCONNECT_TIMEOUT=10", "PGSSLMODE=disable")
	var out syncBuffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	r := ParsePgbench(out.String())
	var ee *exec.ExitError
	switch {
	case err == nil:
		r.ExitCode = 0
	case errors.As(err, &ee) && ctx.Err() == nil:
		r.ExitCode = ee.ExitCode()
	default:
		t.Fatalf("pgbench %v: %v\n%s", args, err, out.String())
	}
	return r
}
