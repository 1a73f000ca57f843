package app

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuf) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

func TestRateLimitHandler(t *testing.T) {
	var out lockedBuf
	h := NewRateLimitHandler(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}), 3)
	rl := h.(*RateLimitHandler)
	now := time.Unix(1000, 0)
	var clockMu sync.Mutex
	rl.st.now = func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return now }
	fired := make(chan func(), 4)
	rl.st.after = func(d time.Duration, f func()) *time.Timer {
		if d <= 0 || d > time.Second {
			t.Errorf("summary timer after %v", d)
		}
		fired <- f
		return time.NewTimer(time.Hour) // never fires by itself; the test runs f
	}
	log := slog.New(h).With("loop", 1)
	for i := 0; i < 100; i++ {
		log.Error("server login failed", "i", i)
		log.Info("client connected", "i", i) // below warning: never limited
	}
	log.Warn("another warning")
	if n := strings.Count(out.String(), "server login failed"); n != 3 {
		t.Fatalf("%d errors logged in one second, want 3:\n%s", n, out.String())
	}
	if n := strings.Count(out.String(), "client connected"); n != 100 {
		t.Fatalf("%d info lines, want 100", n)
	}
	if !strings.Contains(out.String(), "another warning") {
		t.Fatal("a different message was suppressed")
	}
	// The window ends: the timer's summary reports 97 suppressed.
	(<-fired)()
	if !strings.Contains(out.String(), `msg="repeated log message suppressed" loop=1 message="server login failed" suppressed=97 limit_per_second=3`) {
		t.Fatalf("no summary:\n%s", out.String())
	}
	// Next second: 3 more pass; the summary comes with the first record after
	// the window when the timer has not run yet.
	clockMu.Lock()
	now = now.Add(1100 * time.Millisecond)
	clockMu.Unlock()
	for i := 0; i < 5; i++ {
		log.Error("server login failed")
	}
	clockMu.Lock()
	now = now.Add(1100 * time.Millisecond)
	clockMu.Unlock()
	log.Error("server login failed")
	s := out.String()
	if n := strings.Count(s, `msg="server login failed"`); n != 7 {
		t.Errorf("%d errors logged, want 3+3+1:\n%s", n, s)
	}
	if !strings.Contains(s, "suppressed=2 ") {
		t.Errorf("no summary for the second window:\n%s", s)
	}
}

func TestRateLimitOff(t *testing.T) {
	base := slog.NewTextHandler(&bytes.Buffer{}, nil)
	if NewRateLimitHandler(base, 0) != slog.Handler(base) {
		t.Error("rate_limit = 0 must not wrap the handler")
	}
}
