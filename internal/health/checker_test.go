package health

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/poolmgr/poolmgr/internal/config"
	"github.com/poolmgr/poolmgr/internal/proxy"
)

// fakeProbe answers probes from a per-address function that tests change.
type fakeProbe struct {
	mu    sync.Mutex
	res   map[string]func(ctx context.Context) (Sample, error)
	calls map[string]int
	last  Target
}

func newFake() *fakeProbe {
	return &fakeProbe{res: map[string]func(context.Context) (Sample, error){}, calls: map[string]int{}}
}

func (f *fakeProbe) set(addr string, fn func(ctx context.Context) (Sample, error)) {
	f.mu.Lock()
	f.res[addr] = fn
	f.mu.Unlock()
}

func (f *fakeProbe) ok(addr string, s Sample) {
	f.set(addr, func(context.Context) (Sample, error) { return s, nil })
}

func (f *fakeProbe) fail(addr string, err error) {
	f.set(addr, func(context.Context) (Sample, error) { return Sample{}, err })
}

func (f *fakeProbe) count(addr string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[addr]
}

func (f *fakeProbe) probe(ctx context.Context, t Target) (Sample, error) {
	f.mu.Lock()
	f.calls[t.Addr]++
	f.last = t
	fn := f.res[t.Addr]
	f.mu.Unlock()
	if fn == nil {
		return Sample{}, errors.New("no answer configured")
	}
	return fn(ctx)
}

// logBuf is a goroutine-safe log sink.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// count returns the log lines holding every one of subs.
func (l *logBuf) count(subs ...string) int {
	n := 0
	for _, line := range strings.Split(l.String(), "\n") {
		all := line != ""
		for _, s := range subs {
			all = all && strings.Contains(line, s)
		}
		if all {
			n++
		}
	}
	return n
}

const (
	pA = "127.0.0.1:1"
	pB = "127.0.0.1:2"
	pC = "127.0.0.1:3"
)

func settings() Settings {
	return Settings{
		Interval: time.Hour, Timeout: time.Second, Failures: 3, MaxLag: 10 * time.Second,
		User: "postgres", Password: "pw", DBName: "postgres", Pins: map[string]proxy.Role{},
	}
}

func newTest(t *testing.T, s Settings, addrs ...string) (*Checker, *proxy.Shared, *fakeProbe, *logBuf) {
	t.Helper()
	sh := proxy.NewShared(&proxy.Options{}, addrs)
	f := newFake()
	lb := &logBuf{}
	log := slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c := NewWithSettings(sh, s, log, WithProbe(f.probe))
	t.Cleanup(c.Stop)
	return c, sh, f, lb
}

func backend(t *testing.T, sh *proxy.Shared, addr string) *proxy.Backend {
	t.Helper()
	for _, b := range sh.Backends() {
		if b.Addr == addr {
			return b
		}
	}
	t.Fatalf("no backend %s", addr)
	return nil
}

var primary = Sample{InRecovery: false, LSN: 0x16B374D848}

func standby(replay, receive uint64, age time.Duration) Sample {
	return Sample{InRecovery: true, LSN: replay, ReceiveLSN: receive, ReplayAge: age, Streaming: true}
}

// cutOff is a standby with no WAL receiver running.
func cutOff(replay, receive uint64, age time.Duration) Sample {
	s := standby(replay, receive, age)
	s.Streaming = false
	return s
}

func TestFailureCountingAndRecovery(t *testing.T) {
	c, sh, f, lb := newTest(t, settings(), pA)
	b := backend(t, sh, pA)
	ctx := context.Background()

	f.ok(pA, primary)
	c.CheckOnce(ctx)
	if !b.Healthy() || b.Role() != proxy.RolePrimary || b.Failures() != 0 || b.LastCheck() == 0 {
		t.Fatalf("after success: healthy %v role %v failures %d", b.Healthy(), b.Role(), b.Failures())
	}
	if lb.count(`msg="health: backend role"`, "backend="+pA, "role=primary") != 1 {
		t.Errorf("no role log:\n%s", lb)
	}

	f.fail(pA, errors.New("connection refused"))
	for i := 1; i <= 2; i++ {
		c.CheckOnce(ctx)
		if !b.Healthy() || b.Failures() != i {
			t.Fatalf("after %d failures: healthy %v failures %d (want healthy below health_check_failures)", i, b.Healthy(), b.Failures())
		}
	}
	if lb.count(`msg="health: check failed"`, "backend="+pA) != 1 {
		t.Errorf("want one 'check failed' line:\n%s", lb)
	}
	c.CheckOnce(ctx)
	if b.Healthy() || b.Failures() != 3 {
		t.Fatalf("after 3 failures: healthy %v failures %d, want unhealthy", b.Healthy(), b.Failures())
	}
	c.CheckOnce(ctx)
	if b.Healthy() || b.Failures() != 4 {
		t.Fatalf("after 4 failures: healthy %v failures %d", b.Healthy(), b.Failures())
	}
	if n := lb.count(`msg="health: backend down"`, "backend="+pA, "connection refused"); n != 1 {
		t.Errorf("'backend down' logged %d times, want 1:\n%s", n, lb)
	}

	// One success: healthy again, failure count reset.
	f.ok(pA, primary)
	c.CheckOnce(ctx)
	if !b.Healthy() || b.Failures() != 0 || b.Role() != proxy.RolePrimary {
		t.Fatalf("after recovery: healthy %v failures %d role %v", b.Healthy(), b.Failures(), b.Role())
	}
	if lb.count(`msg="health: backend up"`, "backend="+pA, "role=primary") != 1 {
		t.Errorf("no 'backend up' line:\n%s", lb)
	}
	// The streak is over: the next failure is logged again.
	f.fail(pA, errors.New("boom"))
	c.CheckOnce(ctx)
	if lb.count(`msg="health: check failed"`, "backend="+pA) != 2 {
		t.Errorf("new failure streak not logged:\n%s", lb)
	}
}

func TestFailuresSetting(t *testing.T) {
	s := settings()
	s.Failures = 1
	c, sh, f, _ := newTest(t, s, pA)
	f.fail(pA, errors.New("down"))
	c.CheckOnce(context.Background())
	if backend(t, sh, pA).Healthy() {
		t.Fatal("health_check_failures = 1: one failure must mark the backend unhealthy")
	}
	// A reload raising the threshold applies to the next checks.
	s.Failures = 5
	c.UpdateSettings(s)
	if got := c.Settings().Failures; got != 5 {
		t.Fatalf("Failures = %d", got)
	}
}

func TestRoleFlipPromotion(t *testing.T) {
	c, sh, f, lb := newTest(t, settings(), pA, pB)
	a, b := backend(t, sh, pA), backend(t, sh, pB)
	ctx := context.Background()
	f.ok(pA, primary)
	f.ok(pB, standby(100, 100, time.Minute))
	c.CheckOnce(ctx)
	if a.Role() != proxy.RolePrimary || b.Role() != proxy.RoleStandby {
		t.Fatalf("roles %v %v", a.Role(), b.Role())
	}

	// The primary dies and B is promoted.
	f.fail(pA, errors.New("connection refused"))
	f.ok(pB, Sample{InRecovery: false, LSN: 200})
	c.CheckOnce(ctx)
	if b.Role() != proxy.RolePrimary || !b.Healthy() || b.Lag() != 0 {
		t.Fatalf("B after promotion: role %v healthy %v lag %v", b.Role(), b.Healthy(), b.Lag())
	}
	if lb.count(`msg="health: role changed"`, "backend="+pB, "from=standby", "to=primary") != 1 {
		t.Errorf("promotion not logged:\n%s", lb)
	}
	// A still failing, not yet down: B is the only healthy primary, no split-brain warning.
	if lb.count("several primaries") != 0 {
		t.Errorf("unexpected split-brain warning:\n%s", lb)
	}
	c.CheckOnce(ctx)
	c.CheckOnce(ctx)
	if a.Healthy() {
		t.Fatal("old primary still healthy after 3 failures")
	}

	// The old primary comes back as a primary too: warn (once).
	f.ok(pA, primary)
	c.CheckOnce(ctx)
	c.CheckOnce(ctx)
	c.CheckOnce(ctx)
	if n := lb.count(`msg="health: several primaries`, pA+","+pB); n != 1 {
		t.Errorf("split-brain warning logged %d times, want 1:\n%s", n, lb)
	}
}

func TestLagAndLSNReported(t *testing.T) {
	c, sh, f, lb := newTest(t, settings(), pA, pB)
	b := backend(t, sh, pB)
	ctx := context.Background()
	f.ok(pA, primary)

	// Caught up (replay = receive) on an idle primary: the replay timestamp is old but the lag is 0.
	f.ok(pB, standby(500, 500, time.Hour))
	c.CheckOnce(ctx)
	if b.Lag() != 0 || b.ReplayLSN() != 500 || b.Role() != proxy.RoleStandby {
		t.Fatalf("caught up: lag %v replay %d role %v", b.Lag(), b.ReplayLSN(), b.Role())
	}
	// Behind: replay < receive, lag is the replay age.
	f.ok(pB, standby(400, 500+lagSlackBytes, 12*time.Second))
	c.CheckOnce(ctx)
	if b.Lag() != 12*time.Second || b.ReplayLSN() != 400 {
		t.Fatalf("behind: lag %v replay %d", b.Lag(), b.ReplayLSN())
	}
	if lb.count(`msg="health: replica lagging"`, "backend="+pB) != 1 {
		t.Errorf("lag above max_replica_lag_ms not logged:\n%s", lb)
	}
	f.ok(pB, standby(500, 500, 13*time.Second))
	c.CheckOnce(ctx)
	if b.Lag() != 0 || lb.count(`msg="health: replica caught up"`, "backend="+pB) != 1 {
		t.Errorf("lag %v; log:\n%s", b.Lag(), lb)
	}
	if a := backend(t, sh, pA); a.Lag() != 0 || a.Role() != proxy.RolePrimary {
		t.Errorf("primary lag %v role %v", a.Lag(), a.Role())
	}
}

func TestSampleLag(t *testing.T) {
	for _, tt := range []struct {
		name string
		s    Sample
		want time.Duration
	}{
		{"primary", Sample{InRecovery: false, LSN: 9, ReplayAge: time.Hour}, 0},
		{"standby caught up, idle primary", standby(0x5000060, 0x5000060, time.Hour), 0},
		{"standby replayed past receive", standby(0x5000070, 0x5000060, time.Hour), 0},
		{"standby behind", standby(0x5000000, 0x5008060, 3*time.Second), 3 * time.Second},
		{"standby short of a record cut at a page boundary", standby(0x1EE0BFE0, 0x1EE0C000, 3*time.Second), 0},
		{"standby a little behind, not at a page boundary", standby(0x5000000, 0x5000060, 3*time.Second), 3 * time.Second},
		{"standby without receive LSN", standby(0x5000000, 0, 4*time.Second), 4 * time.Second},
		{"standby behind, no replay timestamp yet", standby(1, 2+lagSlackBytes, 0), 0},
		{"negative age (clock skew)", standby(1, 2+lagSlackBytes, -time.Second), 0},
	} {
		if got := tt.s.Lag(); got != tt.want {
			t.Errorf("%s: Lag() = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestStandbyLag(t *testing.T) {
	for _, tt := range []struct {
		name    string
		s       Sample
		primary uint64
		want    time.Duration
		cut     bool
	}{
		{"streaming, caught up, primary ahead (in flight)", standby(500, 500, time.Hour), 900, 0, false},
		{"not streaming, caught up, no live primary (failover pending)", cutOff(500, 500, time.Hour), 0, 0, false},
		{"not streaming, live primary ahead", cutOff(500, 500, 7*time.Second), 900, 7 * time.Second, true},
		{"not streaming, live primary not ahead", cutOff(900, 900, time.Hour), 900, 0, false},
		{"primary sample", primary, 0x16B374D849, 0, false},
	} {
		got, cut := StandbyLag(tt.s, tt.primary)
		if got != tt.want || cut != tt.cut {
			t.Errorf("%s: StandbyLag = %v, %v; want %v, %v", tt.name, got, cut, tt.want, tt.cut)
		}
	}
}

// After a failover a standby still following the dead primary has replayed all
// it received; once the new primary is ahead its lag is its replay age.
func TestCutOffStandby(t *testing.T) {
	c, sh, f, lb := newTest(t, settings(), pA, pB, pC)
	ctx := context.Background()
	f.ok(pA, primary)
	f.ok(pB, standby(primary.LSN, primary.LSN, time.Minute))
	f.ok(pC, standby(primary.LSN, primary.LSN, time.Minute))
	c.CheckOnce(ctx)
	// The primary dies: the standbys lose their WAL receivers. No live
	// primary: they keep lag 0 (reads stay available).
	f.fail(pA, errors.New("refused"))
	f.ok(pB, cutOff(primary.LSN, primary.LSN, time.Minute))
	f.ok(pC, cutOff(primary.LSN, primary.LSN, time.Minute))
	for range 3 {
		c.CheckOnce(ctx)
	}
	bC := backend(t, sh, pC)
	if bC.Lag() != 0 {
		t.Fatalf("standby without a live primary: lag %v, want 0", bC.Lag())
	}
	// B is promoted and writes: C, still cut off, is behind the live primary.
	f.ok(pB, Sample{LSN: primary.LSN + 100})
	c.CheckOnce(ctx)
	c.CheckOnce(ctx)
	if bC.Lag() != time.Minute || !bC.Healthy() {
		t.Fatalf("cut-off standby: lag %v healthy %v, want 1m", bC.Lag(), bC.Healthy())
	}
	if lb.count(`msg="health: replica cut off`, backendKV(pC)) != 1 {
		t.Errorf("cut off not logged:\n%s", lb)
	}
	// C is re-pointed at B and streams again.
	f.ok(pC, standby(primary.LSN+100, primary.LSN+100, time.Minute))
	c.CheckOnce(ctx)
	if bC.Lag() != 0 || lb.count(`msg="health: replica streaming again"`, backendKV(pC)) != 1 {
		t.Errorf("lag %v\n%s", bC.Lag(), lb)
	}
}

func backendKV(addr string) string { return "backend=" + addr }

// The old primary comes back after a failover without being rebuilt: it is
// on an older timeline than the promoted standby and must get no writes.
func TestStalePrimaryAfterFailover(t *testing.T) {
	c, sh, f, lb := newTest(t, settings(), pA, pB)
	a, b := backend(t, sh, pA), backend(t, sh, pB)
	ctx := context.Background()
	f.ok(pA, Sample{LSN: 100, Timeline: 1})
	f.ok(pB, standby(100, 100, 0))
	c.CheckOnce(ctx)
	// Failover: A down, B promoted to timeline 2.
	f.fail(pA, errors.New("refused"))
	f.ok(pB, Sample{LSN: 200, Timeline: 2})
	for range 3 {
		c.CheckOnce(ctx)
	}
	// A restarts as a primary on timeline 1: unhealthy at once, not after 3 checks.
	f.ok(pA, Sample{LSN: 150, Timeline: 1})
	c.CheckOnce(ctx)
	if a.Healthy() || !b.Healthy() {
		t.Fatalf("stale primary: A healthy %v, B healthy %v", a.Healthy(), b.Healthy())
	}
	if lb.count(`msg="health: stale primary`, backendKV(pA), "timeline=1", "newer="+pB, "newer_timeline=2") != 1 {
		t.Errorf("stale primary not logged:\n%s", lb)
	}
	if lb.count("msg=\"health: backend up\"", backendKV(pA)) != 0 {
		t.Errorf("stale primary logged as up:\n%s", lb)
	}
	// It stays stale while B is down too (it diverged: writes to it would be lost).
	f.fail(pB, errors.New("refused"))
	for range 4 {
		c.CheckOnce(ctx)
	}
	if a.Healthy() || b.Healthy() {
		t.Fatalf("both down expected: A %v B %v", a.Healthy(), b.Healthy())
	}
	if n := lb.count(`msg="health: stale primary`, backendKV(pA)); n != 1 {
		t.Errorf("stale warning logged %d times", n)
	}
	if lb.count("several primaries") != 0 {
		t.Errorf("stale primary counted as a live primary:\n%s", lb)
	}
	// A is rebuilt as a standby of B: healthy again.
	f.ok(pB, Sample{LSN: 300, Timeline: 2})
	f.ok(pA, standby(300, 300, 0))
	c.CheckOnce(ctx)
	if !a.Healthy() || a.Role() != proxy.RoleStandby || lb.count(`msg="health: backend up"`, backendKV(pA)) != 1 {
		t.Fatalf("rebuilt A: healthy %v role %v\n%s", a.Healthy(), a.Role(), lb)
	}
}

// An operator who pins the old primary keeps it.
func TestStalePrimaryPinned(t *testing.T) {
	s := settings()
	s.Pins = map[string]proxy.Role{pA: proxy.RolePrimary}
	c, sh, f, _ := newTest(t, s, pA, pB)
	f.ok(pA, Sample{LSN: 100, Timeline: 1})
	f.ok(pB, Sample{LSN: 100, Timeline: 2})
	c.CheckOnce(context.Background())
	c.CheckOnce(context.Background())
	if !backend(t, sh, pA).Healthy() {
		t.Fatal("pinned primary marked stale")
	}
	// Equal timelines (two unrelated clusters?) are not decided: both stay, with a warning.
	c2, sh2, f2, lb2 := newTest(t, settings(), pA, pB)
	f2.ok(pA, Sample{LSN: 100, Timeline: 1})
	f2.ok(pB, Sample{LSN: 100, Timeline: 1})
	for range 3 {
		c2.CheckOnce(context.Background())
	}
	if !backend(t, sh2, pA).Healthy() || !backend(t, sh2, pB).Healthy() || lb2.count("several primaries") != 1 {
		t.Errorf("equal timelines:\n%s", lb2)
	}
}

func TestParseLSN(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want uint64
	}{
		{"0/0", 0},
		{"16/B374D848", 0x16B374D848},
		{"0/5000060", 0x5000060},
		{"1/0", 1 << 32},
		{"ffffffff/FFFFFFFF", ^uint64(0)},
	} {
		got, err := ParseLSN(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseLSN(%q) = %#x, %v; want %#x", tt.in, got, err, tt.want)
		}
		if back, _ := ParseLSN(FormatLSN(got)); back != got {
			t.Errorf("FormatLSN(%#x) = %q does not parse back", got, FormatLSN(got))
		}
	}
	if got := FormatLSN(0x16B374D848); got != "16/B374D848" {
		t.Errorf("FormatLSN = %q", got)
	}
	for _, bad := range []string{"", "16", "/1", "1/", "G/1", "1/G", "100000000/0", "0/100000000", "1/2/3", "-1/0", " 1/0"} {
		if v, err := ParseLSN(bad); err == nil {
			t.Errorf("ParseLSN(%q) = %#x, want an error", bad, v)
		}
	}
	// The LSN order is the numeric order.
	a, _ := ParseLSN("0/FFFFFFFF")
	b, _ := ParseLSN("1/0")
	if a >= b {
		t.Errorf("0/FFFFFFFF (%#x) >= 1/0 (%#x)", a, b)
	}
}

func TestPinnedRoles(t *testing.T) {
	s := settings()
	s.Pins = map[string]proxy.Role{pA: proxy.RolePrimary, pB: proxy.RoleStandby}
	c, sh, f, lb := newTest(t, s, pA, pB, pC)
	a, b, cc := backend(t, sh, pA), backend(t, sh, pB), backend(t, sh, pC)
	// Pins apply at once, before any check.
	if a.Role() != proxy.RolePrimary || b.Role() != proxy.RoleStandby || cc.Role() != proxy.RoleUnknown {
		t.Fatalf("pins not applied by New: %v %v %v", a.Role(), b.Role(), cc.Role())
	}
	// The checks contradict both pins: the pins win, with a warning each.
	f.ok(pA, standby(1, 1, 0))
	f.ok(pB, primary)
	f.ok(pC, standby(1, 1, 0))
	c.CheckOnce(context.Background())
	c.CheckOnce(context.Background())
	if a.Role() != proxy.RolePrimary || b.Role() != proxy.RoleStandby || cc.Role() != proxy.RoleStandby {
		t.Fatalf("roles %v %v %v", a.Role(), b.Role(), cc.Role())
	}
	if lb.count("pinned role differs", "backend="+pA, "pinned=primary", "detected=standby") != 1 ||
		lb.count("pinned role differs", "backend="+pB, "pinned=standby", "detected=primary") != 1 {
		t.Errorf("pin mismatch warnings:\n%s", lb)
	}
	// Unpinned by a reload: detected roles apply.
	s.Pins = map[string]proxy.Role{}
	c.UpdateSettings(s)
	if a.Role() != proxy.RoleStandby || b.Role() != proxy.RolePrimary {
		t.Fatalf("after unpinning: %v %v", a.Role(), b.Role())
	}
	// A backend added by a reload gets its pin at the next round.
	s.Pins = map[string]proxy.Role{"127.0.0.1:4": proxy.RolePrimary}
	c.UpdateSettings(s)
	sh.SetBackends([]string{pA, pB, pC, "127.0.0.1:4"})
	c.CheckOnce(context.Background())
	if r := backend(t, sh, "127.0.0.1:4").Role(); r != proxy.RolePrimary {
		t.Fatalf("new backend role %v", r)
	}
}

func TestPinsApplyWhenDisabled(t *testing.T) {
	s := settings()
	s.Disabled = "no password"
	s.Pins = map[string]proxy.Role{pB: proxy.RolePrimary}
	c, sh, f, lb := newTest(t, s, pA, pB)
	c.CheckOnce(context.Background())
	if f.count(pA)+f.count(pB) != 0 {
		t.Fatal("disabled checker probed")
	}
	if r := backend(t, sh, pB).Role(); r != proxy.RolePrimary {
		t.Fatalf("pin not applied: %v", r)
	}
	if !backend(t, sh, pA).Healthy() {
		t.Fatal("unchecked backend must stay healthy")
	}
	// Logged once, not again for the same reason.
	c.UpdateSettings(s)
	if n := lb.count(`msg="health: checks disabled`, "no password"); n != 1 {
		t.Errorf("disabled warning logged %d times:\n%s", n, lb)
	}
	if ok, why := c.Enabled(); ok || why != "no password" {
		t.Errorf("Enabled() = %v, %q", ok, why)
	}
	// Enabling by a reload.
	s.Disabled = ""
	f.ok(pA, primary)
	f.ok(pB, standby(1, 1, 0))
	c.UpdateSettings(s)
	c.CheckOnce(context.Background())
	if f.count(pA) != 1 || lb.count(`msg="health: checks enabled"`) != 1 {
		t.Errorf("not enabled by UpdateSettings: probes %d\n%s", f.count(pA), lb)
	}
}

func TestConfigErrorIsNotAFailure(t *testing.T) {
	s := settings()
	s.Failures = 1
	c, sh, f, lb := newTest(t, s, pA)
	f.fail(pA, &pgconn.PgError{Severity: "FATAL", Code: "28P01", Message: "password authentication failed for user \"postgres\""})
	c.CheckOnce(context.Background())
	c.CheckOnce(context.Background())
	b := backend(t, sh, pA)
	if !b.Healthy() || b.Failures() != 0 {
		t.Fatalf("auth error counted: healthy %v failures %d", b.Healthy(), b.Failures())
	}
	if n := lb.count(`msg="health: check misconfigured`, "password authentication failed"); n != 1 {
		t.Errorf("misconfiguration logged %d times:\n%s", n, lb)
	}
	// A server that is starting up is down, though.
	f.fail(pA, &pgconn.PgError{Severity: "FATAL", Code: "57P03", Message: "the database system is starting up"})
	c.CheckOnce(context.Background())
	if b.Healthy() {
		t.Fatal("57P03 must count as a failure")
	}
	for code, want := range map[string]bool{"28000": true, "28P01": true, "3D000": true, "42501": true, "57P03": false, "53300": false} {
		if got := IsConfigError(&pgconn.PgError{Code: code}); got != want {
			t.Errorf("IsConfigError(%s) = %v", code, got)
		}
	}
	if IsConfigError(errors.New("dial tcp: connection refused")) {
		t.Error("IsConfigError(network error) = true")
	}
}

func TestTimeoutAndSlowBackendSkipped(t *testing.T) {
	s := settings()
	s.Timeout = 50 * time.Millisecond
	s.Failures = 1
	c, sh, f, _ := newTest(t, s, pA, pB)
	release := make(chan struct{})
	f.set(pA, func(ctx context.Context) (Sample, error) {
		<-release    // hold the probe across the next round
		<-ctx.Done() // a backend that never answers: only the per-check timeout ends the probe
		return Sample{}, ctx.Err()
	})
	f.ok(pB, standby(1, 1, 0))
	wg1 := c.round(context.Background(), c.Settings())
	// A's probe hangs past its timeout; the next round must not start another one for A, nor wait for it.
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	c.round(context.Background(), c.Settings()).Wait()
	if d := time.Since(start); d > time.Second {
		t.Errorf("round waited %v for a hanging backend", d)
	}
	if f.count(pA) != 1 || f.count(pB) != 2 {
		t.Errorf("probes: A %d (want 1: in flight), B %d (want 2)", f.count(pA), f.count(pB))
	}
	close(release)
	wg1.Wait()
	if backend(t, sh, pA).Healthy() {
		t.Error("a probe past health_check_timeout must count as a failure")
	}
	if !backend(t, sh, pB).Healthy() {
		t.Error("B unhealthy")
	}
}

func TestStartStopAndBackendsReread(t *testing.T) {
	s := settings()
	s.Interval = 10 * time.Millisecond
	c, sh, f, _ := newTest(t, s, pA)
	f.ok(pA, primary)
	f.ok(pB, standby(1, 1, 0))
	c.Start()
	c.Start() // idempotent
	waitUntil(t, func() bool { return f.count(pA) >= 3 })
	// A SIGHUP adds a backend: probed from the next rounds on, without Update.
	sh.SetBackends([]string{pA, pB})
	waitUntil(t, func() bool { return backend(t, sh, pB).Role() == proxy.RoleStandby })
	// ...and removes one: no more probes for it.
	sh.SetBackends([]string{pB})
	time.Sleep(30 * time.Millisecond)
	n := f.count(pA)
	time.Sleep(50 * time.Millisecond)
	if f.count(pA) != n {
		t.Errorf("removed backend still probed")
	}
	c.Stop()
	n = f.count(pB)
	time.Sleep(50 * time.Millisecond)
	if f.count(pB) != n {
		t.Errorf("probes after Stop")
	}
	c.Stop() // idempotent
}

func TestUpdateWakesLoop(t *testing.T) {
	s := settings()
	s.Interval = time.Hour
	s.Disabled = "off"
	c, _, f, _ := newTest(t, s, pA)
	f.ok(pA, primary)
	c.Start()
	time.Sleep(20 * time.Millisecond)
	if f.count(pA) != 0 {
		t.Fatal("disabled checker probed")
	}
	s.Disabled = ""
	c.UpdateSettings(s)
	waitUntil(t, func() bool { return f.count(pA) == 1 })
}

func TestStopCancelsProbes(t *testing.T) {
	s := settings()
	s.Interval = time.Millisecond
	s.Timeout = time.Hour
	s.Failures = 1
	c, sh, f, _ := newTest(t, s, pA)
	var started atomic.Bool
	f.set(pA, func(ctx context.Context) (Sample, error) {
		started.Store(true)
		<-ctx.Done()
		return Sample{}, ctx.Err()
	})
	c.Start()
	waitUntil(t, started.Load)
	done := make(chan struct{})
	go func() { c.Stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Stop did not cancel a running probe")
	}
	if !backend(t, sh, pA).Healthy() {
		t.Error("a probe cancelled by Stop must not count as a failure")
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5s")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func writeFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSettingsFromConfig(t *testing.T) {
	dir := t.TempDir()
	users := writeFile(t, dir, "userlist.txt", `"postgres" "secret"
"md5user" "md5`+strings.Repeat("a", 32)+`"
"scramuser" "SCRAM-SHA-256$4096:c2FsdHNhbHRzYWx0$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
"pgbouncer" "pw2"
`)
	base := func() *config.Config {
		c := config.Default()
		c.Pool.Backends = []string{"127.0.0.1:20000", "127.0.0.1:20001"}
		c.Auth.AuthFile = users
		return c
	}

	c := base()
	s := SettingsFromConfig(c)
	if s.Disabled != "" || s.User != "postgres" || s.Password != "secret" || s.DBName != "postgres" ||
		s.Interval != time.Second || s.Timeout != 2*time.Second || s.Failures != 3 || s.MaxLag != 10*time.Second {
		t.Errorf("defaults: %+v", s)
	}

	c = base()
	c.Auth.AuthUser = "pgbouncer"
	if s := SettingsFromConfig(c); s.User != "pgbouncer" || s.Password != "pw2" || s.Disabled != "" {
		t.Errorf("auth_user: user %q disabled %q", s.User, s.Disabled)
	}

	c = base()
	c.Pool.PinnedRoles = []string{"127.0.0.1:20001=primary", "127.0.0.1:20000=replica"}
	if s := SettingsFromConfig(c); s.Pins["127.0.0.1:20001"] != proxy.RolePrimary || s.Pins["127.0.0.1:20000"] != proxy.RoleStandby {
		t.Errorf("pins: %v", s.Pins)
	}

	for _, tt := range []struct {
		name string
		mod  func(*config.Config)
		want string // in Disabled
	}{
		{"md5 secret only", func(c *config.Config) { c.Pool.HealthCheckUser = "md5user" }, "holds only a md5 secret"},
		{"scram secret only", func(c *config.Config) { c.Pool.HealthCheckUser = "scramuser" }, "holds only a scram-sha-256 secret"},
		{"user missing", func(c *config.Config) { c.Pool.HealthCheckUser = "nobody" }, `"nobody" is not in auth.auth_file`},
		{"no auth_file", func(c *config.Config) { c.Auth.AuthFile = "" }, "no auth.auth_file"},
		{"unreadable auth_file", func(c *config.Config) { c.Auth.AuthFile = filepath.Join(dir, "absent") }, "cannot read auth.auth_file"},
		{"interval 0", func(c *config.Config) { c.Pool.HealthCheckInterval = 0 }, "health_check_interval = 0"},
	} {
		c := base()
		tt.mod(c)
		s := SettingsFromConfig(c)
		if !strings.Contains(s.Disabled, tt.want) || s.Password != "" {
			t.Errorf("%s: Disabled = %q, want it to contain %q", tt.name, s.Disabled, tt.want)
		}
	}
}

func TestNewFromConfigUsesCredentials(t *testing.T) {
	dir := t.TempDir()
	c := config.Default()
	c.Pool.Backends = []string{pA}
	c.Pool.HealthCheckDBName = "app"
	c.Pool.HealthCheckUser = "mon"
	c.Auth.AuthFile = writeFile(t, dir, "u.txt", `"mon" "m0n"`+"\n")
	sh := proxy.NewShared(&proxy.Options{}, c.Pool.Backends)
	f := newFake()
	f.ok(pA, primary)
	ch := New(sh, c, nil, WithProbe(f.probe))
	defer ch.Stop()
	ch.CheckOnce(context.Background())
	if f.last != (Target{Addr: pA, User: "mon", Password: "m0n", DBName: "app"}) {
		t.Errorf("target %+v", f.last)
	}
	// Update re-reads the auth file.
	writeFile(t, dir, "u.txt", `"mon" "new"`+"\n")
	ch.Update(c)
	ch.CheckOnce(context.Background())
	if f.last.Password != "new" {
		t.Errorf("password after Update: %q", f.last.Password)
	}
}
