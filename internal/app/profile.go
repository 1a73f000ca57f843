package app

import (
	"os"
	"runtime"
	"runtime/pprof"
	"time"
)

// startCPUProfile writes a CPU profile to path until the returned stop is
// called (POOLMGR_CPUPROFILE, used by benchmarks).
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// startHeapProfiles forces a GC and writes the heap profile to path every
// 10 s until the returned stop (POOLMGR_MEMPROFILE: what poolmgr holds, e.g.
// after a storm of clients has left; the forced GCs cost CPU at 1M clients).
func startHeapProfiles(path string) func() {
	stop := make(chan struct{})
	write := func() {
		runtime.GC() // the profile shows the heap as of the last GC: make it now
		if f, err := os.Create(path); err == nil {
			_ = pprof.Lookup("heap").WriteTo(f, 0)
			f.Close()
		}
	}
	go func() {
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				write()
			}
		}
	}()
	return func() { close(stop) }
}
