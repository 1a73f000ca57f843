package app

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// RateLimitHandler wraps a slog.Handler so that a storm of identical
// warnings or errors cannot flood the disk: per (level, message) at most
// Limit records a second pass; the rest are counted and, once the second is
// over, one summary record says how many were suppressed. Records below
// warning level are never limited (log_connections output stays complete).
type RateLimitHandler struct {
	inner slog.Handler
	st    *limitState
}

type limitKey struct {
	level slog.Level
	msg   string
}

type limitEntry struct {
	window     time.Time // start of the current one-second window
	count      int       // records seen in the window
	suppressed int       // records dropped in the window
	timer      *time.Timer
	h          slog.Handler // where the summary goes (the handler that dropped)
}

type limitState struct {
	limit int
	mu    sync.Mutex
	m     map[limitKey]*limitEntry
	now   func() time.Time
	after func(time.Duration, func()) *time.Timer
}

// maxLimitKeys bounds the table of distinct messages being tracked.
const maxLimitKeys = 4096

// NewRateLimitHandler returns h limited to limit identical warnings/errors
// per second (limit <= 0 returns h itself).
func NewRateLimitHandler(h slog.Handler, limit int) slog.Handler {
	if limit <= 0 {
		return h
	}
	return &RateLimitHandler{inner: h, st: &limitState{limit: limit, m: map[limitKey]*limitEntry{},
		now: time.Now, after: time.AfterFunc}}
}

// Enabled implements slog.Handler.
func (h *RateLimitHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

// WithAttrs implements slog.Handler.
func (h *RateLimitHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &RateLimitHandler{inner: h.inner.WithAttrs(as), st: h.st}
}

// WithGroup implements slog.Handler.
func (h *RateLimitHandler) WithGroup(name string) slog.Handler {
	return &RateLimitHandler{inner: h.inner.WithGroup(name), st: h.st}
}

// Handle implements slog.Handler.
func (h *RateLimitHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn {
		return h.inner.Handle(ctx, r)
	}
	if !h.st.allow(limitKey{r.Level, r.Message}, h.inner) {
		return nil
	}
	return h.inner.Handle(ctx, r)
}

func (s *limitState) allow(k limitKey, h slog.Handler) bool {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.m[k]
	if e == nil || now.Sub(e.window) >= time.Second {
		if e != nil && e.suppressed > 0 {
			// The window ended before its summary timer ran: summarise now.
			s.summaryLocked(k, e)
		}
		if e == nil {
			if len(s.m) >= maxLimitKeys {
				s.pruneLocked(now)
			}
			e = &limitEntry{}
			s.m[k] = e
		}
		e.window, e.count, e.suppressed = now, 0, 0
	}
	e.count++
	if e.count <= s.limit {
		return true
	}
	e.suppressed++
	e.h = h
	if e.timer == nil {
		wait := time.Second - now.Sub(e.window)
		e.timer = s.after(wait, func() { s.flush(k, e) })
	}
	return false
}

// flush emits the summary of e's window if it is still pending.
func (s *limitState) flush(k limitKey, e *limitEntry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e.timer = nil
	if e.suppressed > 0 {
		s.summaryLocked(k, e)
	}
}

func (s *limitState) summaryLocked(k limitKey, e *limitEntry) {
	if e.timer != nil {
		e.timer.Stop()
		e.timer = nil
	}
	r := slog.NewRecord(s.now(), k.level, "repeated log message suppressed", 0)
	r.AddAttrs(slog.String("message", k.msg), slog.Int("suppressed", e.suppressed),
		slog.Int("limit_per_second", s.limit))
	e.suppressed = 0
	if e.h != nil {
		_ = e.h.Handle(context.Background(), r)
	}
}

// pruneLocked drops entries whose window is over and that owe no summary.
func (s *limitState) pruneLocked(now time.Time) {
	for k, e := range s.m {
		if now.Sub(e.window) >= time.Second && e.suppressed == 0 && e.timer == nil {
			delete(s.m, k)
		}
	}
}
