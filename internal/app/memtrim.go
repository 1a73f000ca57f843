package app

import (
	"log/slog"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// After a storm of clients leaves, the Go heap holds hundreds of MB of free
// spans (1M clients: ~450 MB free next to 85 MB live). The runtime's
// background scavenger returns them to the OS only slowly, so poolmgr would
// stay at its peak RSS for minutes. memTrimmer notices that state, free heap
// far above what the next GC cycle needs, and returns it at once with
// debug.FreeOSMemory (one forced GC, off the event loops). In steady state
// free memory stays below the GC goal, so it never fires; it fires at most
// once per trimMinGap. (The io_uring engine gives back the buffer memory of
// its emptied rings by itself: trimRings.)
const (
	trimEvery   = 10 * time.Second
	trimMinGap  = time.Minute
	trimMinFree = 64 << 20 // bytes: below this, not worth a forced GC
)

type memTrimmer struct {
	sample []metrics.Sample
	last   time.Time
	log    *slog.Logger
}

func newMemTrimmer(log *slog.Logger) *memTrimmer {
	return &memTrimmer{log: log, sample: []metrics.Sample{
		{Name: "/memory/classes/heap/free:bytes"}, // free, not yet returned to the OS
		{Name: "/gc/heap/goal:bytes"},
	}}
}

// check returns free heap memory to the OS when it exceeds trimMinFree and
// twice the heap goal, and the last trim is trimMinGap old; it reports
// whether it did.
func (m *memTrimmer) check(now time.Time) bool {
	metrics.Read(m.sample)
	free, goal := m.sample[0].Value.Uint64(), m.sample[1].Value.Uint64()
	if free < trimMinFree || free < 2*goal || (!m.last.IsZero() && now.Sub(m.last) < trimMinGap) {
		return false
	}
	m.last = now
	debug.FreeOSMemory()
	m.log.Info("returned free heap memory to the OS (clients left)", "free_bytes", free, "heap_goal_bytes", goal)
	return true
}

// startMemoryTrim runs a memTrimmer every trimEvery until the returned stop.
func startMemoryTrim(log *slog.Logger) func() {
	m := newMemTrimmer(log)
	stop := make(chan struct{})
	go func() {
		t := time.NewTicker(trimEvery)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case now := <-t.C:
				m.check(now)
			}
		}
	}()
	return func() { close(stop) }
}
