//go:build linux

package storm

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/poolmgr/poolmgr/internal/testutil"
	"github.com/poolmgr/poolmgr/internal/uring"
)

func requireUring(t *testing.T) uring.ProbeResult {
	t.Helper()
	pr, err := uring.Probe()
	if err != nil {
		t.Skipf("io_uring unavailable: %v", err)
	}
	return pr
}

func testConfig(t *testing.T, s *fakeServer, n int) Config {
	return Config{
		Addr:  netip.MustParseAddrPort(s.addr()),
		Login: Login{User: "app", Password: "secret", Database: "app", AppName: "pgstorm-test", Query: "SELECT 1"},
		N:     n, Workers: 2, SlotsPerRing: 64, Inflight: 64,
		RecvBufs: 64, RecvBufSize: 256, // small: exercises split messages and buffer recycling
		LoginTimeout: 10 * time.Second, QueryTimeout: 10 * time.Second,
		CloseAtEnd: true, CloseTimeout: 20 * time.Second, Settle: 2 * time.Second,
		Log: testLog{t},
	}
}

type testLog struct{ t *testing.T }

func (l testLog) Write(b []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

func run(t *testing.T, cfg Config) *Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	r.WriteText(&b)
	t.Log("\n" + b.String())
	return r
}

// TestRunFullCycle: 300 SCRAM logins over several rings per worker with
// explicit source binding, an active set, a sample of every connection,
// close; the fake server sees every connection come and go.
func TestRunFullCycle(t *testing.T) {
	pr := requireUring(t)
	s := newFakeServer(t, "scram")
	cfg := testConfig(t, s, 300)
	if pr.Bind {
		src, err := NewSources(RandomLoopbackBase(), 3, 29000, 29199) // below the ephemeral range
		if err != nil {
			t.Fatal(err)
		}
		cfg.Sources = src
	}
	cfg.Active, cfg.Duration = 10, 300*time.Millisecond
	cfg.Hold = 100 * time.Millisecond
	cfg.Sample = -1
	cfg.TargetPID = os.Getpid()
	r := run(t, cfg)
	if !r.OK || r.Connect.Established != 300 || len(r.Errors) != 0 {
		t.Fatalf("not OK: %v, established %d, errors %v", r.Problems, r.Connect.Established, r.Errors)
	}
	if r.Rings < 4 {
		t.Fatalf("%d rings for 300 connections at 64 slots per ring", r.Rings)
	}
	if r.Connect.Auth.SCRAM != 300 || r.Connect.Auth.ScramCached == 0 {
		t.Fatalf("auth counts %+v", r.Connect.Auth)
	}
	if r.Active.Clients != 10 || r.Active.Queries == 0 || r.Active.Latency.Count < r.Active.Queries || r.Active.TPS <= 0 {
		t.Fatalf("active %+v", r.Active)
	}
	if r.Sample.OK != 300 || r.Sample.Failed != 0 {
		t.Fatalf("sample %+v", r.Sample)
	}
	if r.Close.Closed != 300 || !r.Close.Done {
		t.Fatalf("close %+v", r.Close)
	}
	if s.peak.Load() != 300 || s.logins.Load() != 300 {
		t.Fatalf("server saw peak %d open, %d logins", s.peak.Load(), s.logins.Load())
	}
	testutil.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		if n := s.open.Load(); n != 0 {
			return errorf("%d connections still open at the server", n)
		}
		return nil
	})
	if s.errs.Load() != 0 {
		t.Fatalf("server saw %d protocol errors", s.errs.Load())
	}
	if len(r.TargetSamples) < 4 || r.TargetSamples[0].RSSKB <= 0 {
		t.Fatalf("target samples %+v", r.TargetSamples)
	}
	var sum int64
	for _, n := range r.Connect.PerSecond {
		sum += n
	}
	if sum != 300 || r.Connect.PeakPerSec <= 0 {
		t.Fatalf("per-second counts %v", r.Connect.PerSecond)
	}
}

func TestRunMD5AndFreshSalts(t *testing.T) {
	requireUring(t)
	for _, method := range []string{"md5", "scram-fresh", "trust", "password"} {
		t.Run(method, func(t *testing.T) {
			s := newFakeServer(t, method)
			cfg := testConfig(t, s, 40)
			cfg.Sample = 10
			r := run(t, cfg)
			if !r.OK || r.Sample.OK != 10 {
				t.Fatalf("%v sample %+v", r.Problems, r.Sample)
			}
			a := r.Connect.Auth
			if a.MD5+a.SCRAM+a.Trust+a.Password != 40 || (method == "scram-fresh" && a.ScramCached != 0) {
				t.Fatalf("auth counts %+v", a)
			}
		})
	}
}

func TestRunAuthFailures(t *testing.T) {
	requireUring(t)
	s := newFakeServer(t, "scram")
	cfg := testConfig(t, s, 30)
	cfg.Login.Password = "wrong"
	r := run(t, cfg)
	if r.OK || r.Connect.Established != 0 || r.Connect.Failed != 30 || r.Connect.AuthFailures != 30 ||
		r.Errors["SQLSTATE 28P01 (login)"] != 30 {
		t.Fatalf("established %d failed %d auth %d errors %v", r.Connect.Established, r.Connect.Failed,
			r.Connect.AuthFailures, r.Errors)
	}
}

func TestRunConnectRefused(t *testing.T) {
	requireUring(t)
	s := newFakeServer(t, "trust")
	cfg := testConfig(t, s, 10)
	s.close() // nothing listens any more
	r := run(t, cfg)
	if r.Connect.Failed != 10 || r.Errors["connect: ECONNREFUSED"] != 10 {
		t.Fatalf("failed %d errors %v", r.Connect.Failed, r.Errors)
	}
}

func TestRunQueryErrorsAndServerClose(t *testing.T) {
	requireUring(t)
	s := newFakeServer(t, "trust")
	cfg := testConfig(t, s, 20)
	cfg.Login.Query = "SELECT fail"
	cfg.Active, cfg.Duration = 5, 200*time.Millisecond
	r := run(t, cfg)
	if r.Active.Errors == 0 || r.Errors["SQLSTATE 42601 (query)"] != r.Active.Errors || r.Active.Latency.Count != r.Active.Errors {
		t.Fatalf("active %+v errors %v", r.Active, r.Errors)
	}

	cfg.Login.Query = "SELECT fatal"
	cfg.Active = 0
	cfg.Sample = -1
	r = run(t, cfg)
	if r.Sample.Failed != 20 || r.Errors["SQLSTATE 57P01 (query)"] != 20 || r.OK {
		t.Fatalf("sample %+v errors %v", r.Sample, r.Errors)
	}
}

func TestRunRateLimit(t *testing.T) {
	requireUring(t)
	s := newFakeServer(t, "trust")
	cfg := testConfig(t, s, 60)
	cfg.Rate = 200
	r := run(t, cfg)
	if !r.OK || r.Connect.Seconds < 0.25 {
		t.Fatalf("60 connects at 200/s took %.3fs (%v)", r.Connect.Seconds, r.Problems)
	}
}

func TestRunInterrupted(t *testing.T) {
	requireUring(t)
	s := newFakeServer(t, "trust")
	cfg := testConfig(t, s, 20)
	cfg.Hold = time.Hour
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	r, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if r.OK || !strings.Contains(r.Aborted, "interrupted") || r.Close.Closed != 20 {
		t.Fatalf("aborted %q closed %d", r.Aborted, r.Close.Closed)
	}
}

func TestConfigValidate(t *testing.T) {
	c := Config{N: 0, Workers: 100, Active: 5}
	c.Defaults()
	err := c.Validate()
	for _, want := range []string{"-addr", "-user", "-db", "-n 0", "-workers", "-active"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %s", err, want)
		}
	}
	if rings, slots := ringPlan(1000000, 16384); rings != 62 || slots != 16384 {
		t.Errorf("ringPlan(1M) = %d x %d", rings, slots)
	}
	if rings, slots := ringPlan(100, 16384); rings != 1 || slots != 356 {
		t.Errorf("ringPlan(100) = %d x %d", rings, slots)
	}
}

func errorf(f string, a ...any) error { return fmt.Errorf(f, a...) }

// TestPreflight: two logins warm the SCRAM key; bad credentials fail fast
// with the server's SQLSTATE and message, and Run does not start.
func TestPreflight(t *testing.T) {
	requireUring(t)
	s := newFakeServer(t, "scram")
	cfg := testConfig(t, s, 50)
	cfg.Preflight = true
	r := run(t, cfg)
	if !r.OK || !strings.Contains(r.Preflight, "SCRAM") || !strings.Contains(r.Preflight, "cached") ||
		r.Connect.Auth.ScramCached != 50 || r.Connect.Auth.ScramDerived != 0 {
		t.Fatalf("preflight %q, auth %+v, %v", r.Preflight, r.Connect.Auth, r.Problems)
	}
	cfg.Login.Password = "wrong"
	_, err := Run(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "28P01") || !strings.Contains(err.Error(), "password authentication failed") {
		t.Fatalf("Run with a wrong password: %v", err)
	}
	if got := s.logins.Load(); got != 52 {
		t.Fatalf("server saw %d logins, want 2 preflight + 50", got)
	}
}
