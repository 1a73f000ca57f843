package app

import (
	"log/slog"
	"math"
	"runtime/debug"
	"runtime/metrics"
	"time"

	"github.com/poolmgr/poolmgr/internal/proxy"
)

// startMemoryGuard watches the process's memory against the Go memory limit
// (GOMEMLIMIT): above 90% of it the core refuses new clients with 53300
// instead of running out of memory. Without a limit it does nothing.
func startMemoryGuard(sh *proxy.Shared, log *slog.Logger) func() {
	limit := debug.SetMemoryLimit(-1)
	if limit <= 0 || limit == math.MaxInt64 {
		return func() {}
	}
	high := uint64(float64(limit) * 0.9)
	stop := make(chan struct{})
	go func() {
		sample := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		was := false
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			metrics.Read(sample)
			used := sample[0].Value.Uint64() - sample[1].Value.Uint64()
			over := used > high
			if over != was {
				if over {
					log.Warn("memory near GOMEMLIMIT: refusing new clients (53300)", "used", used, "limit", limit)
				} else {
					log.Info("memory back under 90% of GOMEMLIMIT: accepting clients", "used", used, "limit", limit)
				}
				was = over
			}
			sh.SetMemoryHigh(over)
		}
	}()
	log.Info("memory guard on", "GOMEMLIMIT", limit, "refuse_above", high)
	return func() { close(stop) }
}
