package health

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/poolmgr/poolmgr/internal/testutil"
)

// TestPgxProber runs the real query against the shared test cluster (read
// only). It skips when the cluster is down (fails with POOLMGR_E2E=1).
func TestPgxProber(t *testing.T) {
	testutil.RequireCluster(t)
	p := NewPgxProber()
	defer p.Close()
	target := func(addr string) Target {
		return Target{Addr: addr, User: testutil.SuperUser, Password: testutil.SuperPassword, DBName: "postgres"}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	s, err := p.Probe(ctx, target(testutil.PrimaryAddr))
	if err != nil {
		t.Fatalf("probe primary: %v", err)
	}
	if s.InRecovery || s.LSN == 0 || s.Lag() != 0 || s.Timeline < 1 {
		t.Errorf("primary sample %+v", s)
	}
	s2, err := p.Probe(ctx, target(testutil.PrimaryAddr)) // reuses the connection
	if err != nil || s2.LSN < s.LSN {
		t.Errorf("second probe: %+v, %v", s2, err)
	}
	for _, addr := range []string{testutil.Standby1Addr, testutil.Standby2Addr} {
		s, err := p.Probe(ctx, target(addr))
		if err != nil {
			t.Fatalf("probe %s: %v", addr, err)
		}
		if !s.InRecovery || s.LSN == 0 || s.ReceiveLSN == 0 || !s.Streaming || s.Timeline != 0 {
			t.Errorf("standby %s sample %+v", addr, s)
		}
		t.Logf("%s: replay %s receive %s replay age %v lag %v", addr, FormatLSN(s.LSN), FormatLSN(s.ReceiveLSN), s.ReplayAge, s.Lag())
	}
	if n := p.Conns(); n != 3 {
		t.Errorf("Conns() = %d, want 3 (one per backend, kept)", n)
	}
	p.Retain(func(a string) bool { return a == testutil.PrimaryAddr })
	if n := p.Conns(); n != 1 {
		t.Errorf("after Retain: Conns() = %d, want 1", n)
	}

	// Wrong password: a configuration error, not a failure.
	bad := target(testutil.Standby1Addr)
	bad.Password = "wrong"
	if _, err := p.Probe(ctx, bad); err == nil || !IsConfigError(err) {
		t.Errorf("wrong password: err %v, IsConfigError %v", err, IsConfigError(err))
	}
	// Changed credentials replace a kept connection.
	if _, err := p.Probe(ctx, target(testutil.Standby1Addr)); err != nil {
		t.Fatal(err)
	}
	other := target(testutil.Standby1Addr)
	other.User, other.Password, other.DBName = testutil.AppUser, testutil.AppPassword, testutil.AppDB
	if s, err := p.Probe(ctx, other); err != nil || !s.InRecovery {
		t.Errorf("probe as app (unprivileged): %+v, %v", s, err)
	}

	// Nothing listening: a failure, quickly.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	start := time.Now()
	if _, err := p.Probe(ctx, target(closed)); err == nil || IsConfigError(err) {
		t.Errorf("closed port: %v", err)
	}
	// A server that accepts but never answers: bounded by the context.
	hang, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hang.Close()
	go func() {
		for {
			c, err := hang.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	hctx, hcancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer hcancel()
	start = time.Now()
	if _, err := p.Probe(hctx, target(hang.Addr().String())); err == nil {
		t.Error("hanging server: no error")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("hanging server: probe took %v with a 200ms context", d)
	}
}

// TestPgxProberUnixSocket: a "/directory:port" backend is probed over the
// socket file .s.PGSQL.<port> in that directory (here a listener in
// t.TempDir() that drops the connection: the probe fails, after connecting).
func TestPgxProberUnixSocket(t *testing.T) {
	dir := t.TempDir()
	l, err := net.Listen("unix", filepath.Join(dir, ".s.PGSQL.5432"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan struct{}, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		accepted <- struct{}{}
		c.Close()
	}()
	p := NewPgxProber()
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := p.Probe(ctx, Target{Addr: dir + ":5432", User: "u", DBName: "d"}); err == nil {
		t.Error("probe of a server that drops the connection succeeded")
	}
	select {
	case <-accepted:
	default:
		t.Fatal("the probe did not connect to the Unix socket")
	}
}
