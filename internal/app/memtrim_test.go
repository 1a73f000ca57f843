package app

import (
	"io"
	"log/slog"
	"runtime"
	"runtime/metrics"
	"testing"
	"time"
)

var sink [][]byte

func heapFree() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/free:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// TestMemTrimmer: after a burst of allocations is dropped, the free heap is
// returned to the OS once; steady state does not trigger it, and a second
// trim waits trimMinGap.
func TestMemTrimmer(t *testing.T) {
	m := newMemTrimmer(slog.New(slog.NewTextHandler(io.Discard, nil)))
	runtime.GC()
	now := time.Now()
	if m.check(now) {
		t.Fatal("trimmed with no burst of freed memory")
	}
	for range 256 {
		sink = append(sink, make([]byte, 1<<20)) // 256 MB, like clients of a storm
	}
	sink = nil
	runtime.GC()
	if f := heapFree(); f < 2*trimMinFree {
		t.Skipf("only %d bytes free after the burst (the scavenger was faster)", f)
	}
	if !m.check(now) {
		t.Fatalf("no trim with %d bytes of free heap", heapFree())
	}
	if f := heapFree(); f >= trimMinFree {
		t.Errorf("%d bytes still free after the trim", f)
	}
	for range 256 {
		sink = append(sink, make([]byte, 1<<20))
	}
	sink = nil
	runtime.GC()
	if m.check(now.Add(trimMinGap / 2)) {
		t.Error("second trim within trimMinGap")
	}
	if !m.check(now.Add(trimMinGap)) && heapFree() >= 2*trimMinFree {
		t.Error("no trim after trimMinGap")
	}
}
