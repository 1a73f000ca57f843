//go:build linux

package storm

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/poolmgr/poolmgr/internal/uring"
)

// Run executes one storm: connect N clients, run the active set, hold,
// sample, close, sampling the target process and the kernel between the
// phases. It always tears down what it started. ctx cancellation (signal,
// overall timeout) skips to the close phase. The error is for runs that
// could not start (bad config, io_uring unavailable); a run that started
// returns its Report, whose OK and Problems say how it went.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	pr, err := uring.Probe()
	if err != nil {
		return nil, err
	}
	if cfg.Sources != nil && !pr.Bind {
		return nil, fmt.Errorf("binding source addresses needs IORING_OP_BIND (Linux >= 6.11; this is %s): use -src none", pr.Kernel)
	}
	base := time.Now()
	r := &Report{
		Target: cfg.Addr.String(), N: cfg.N, Workers: cfg.Workers, SlotsPerRing: cfg.SlotsPerRing,
		Sources: "kernel-chosen (no bind)", Sysctls: cfg.Sysctls, TargetPID: cfg.TargetPID,
		Errors: map[string]int64{},
	}
	if cfg.Sources != nil {
		r.Sources = cfg.Sources.String()
	}
	logf := func(f string, a ...any) { fmt.Fprintf(cfg.Log, "pgstorm: "+f+"\n", a...) }
	since := func() float64 { return time.Since(base).Seconds() }

	snap := func(phase string) {
		if cfg.TargetPID != 0 {
			s, err := ReadProc(cfg.ProcRoot, cfg.TargetPID)
			s.Phase, s.At = phase, since()
			if err != nil {
				s.Err = err.Error()
			}
			r.TargetSamples = append(r.TargetSamples, s)
		}
		s, err := ReadProc(cfg.ProcRoot, os.Getpid())
		s.Phase, s.At = phase, since()
		if err != nil {
			s.Err = err.Error()
		}
		r.SelfSamples = append(r.SelfSamples, s)
		if k, err := ReadKernel(cfg.ProcRoot); err == nil {
			k.Phase = phase
			r.Kernel = append(r.Kernel, k)
		}
	}
	keys := &KeyCache{}
	if cfg.Preflight {
		method, err := Preflight(ctx, cfg.Addr, cfg.Login, keys, 2, cfg.LoginTimeout)
		if err != nil {
			return nil, err
		}
		r.Preflight = method
		if keys.Cached() {
			r.Preflight += " (ClientKey cached)"
		}
		logf("preflight: 2 logins ok, %s", r.Preflight)
	}
	snap("baseline")

	// Workers: each on its own locked thread, owning its rings.
	ctl := &control{keys: keys}
	var wg sync.WaitGroup
	ready := make(chan error, cfg.Workers)
	for i := 0; i < cfg.Workers; i++ {
		w := newWorker(i, &cfg, ctl, base)
		ctl.workers = append(ctl.workers, w)
	}
	for _, w := range ctl.workers {
		wg.Add(1)
		go w.run(ready, wg.Done)
	}
	var setupErr []string
	for range ctl.workers {
		if err := <-ready; err != nil {
			setupErr = append(setupErr, err.Error())
		}
	}
	if len(setupErr) > 0 {
		ctl.setPhase(phExit)
		wg.Wait()
		return nil, fmt.Errorf("setting up io_uring: %s", strings.Join(setupErr, "; "))
	}
	for _, w := range ctl.workers {
		r.Rings += len(w.rings)
	}
	sum := func(f func(w *worker) int64) int64 {
		var n int64
		for _, w := range ctl.workers {
			n += f(w)
		}
		return n
	}
	all := func(f func(w *worker) bool) bool {
		for _, w := range ctl.workers {
			if !f(w) {
				return false
			}
		}
		return true
	}
	targetLine := func() string {
		if cfg.TargetPID == 0 {
			return ""
		}
		s, err := ReadProc(cfg.ProcRoot, cfg.TargetPID)
		if err != nil {
			return " | target: " + err.Error()
		}
		return fmt.Sprintf(" | target rss %.0f MB fds %d", float64(s.RSSKB)/1024, s.FDs)
	}

	// waitFor polls cond until it holds, the deadline passes (0: none), the
	// context ends or a worker fails; tick prints progress.
	waitFor := func(cond func() bool, deadline time.Time, honorCtx bool, tick func()) string {
		nextTick := time.Now().Add(cfg.Progress)
		for {
			if cond() {
				return ""
			}
			if ctl.phase.Load() == phExit {
				return "a worker failed"
			}
			if honorCtx && ctx.Err() != nil {
				return "interrupted: " + context.Cause(ctx).Error()
			}
			if !deadline.IsZero() && time.Now().After(deadline) {
				return "timed out"
			}
			if cfg.Progress > 0 && tick != nil && time.Now().After(nextTick) {
				tick()
				nextTick = nextTick.Add(cfg.Progress)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	sleepFor := func(d time.Duration, tick func()) string {
		end := time.Now().Add(d)
		return waitFor(func() bool { return !time.Now().Before(end) }, time.Time{}, true, tick)
	}

	// Connect.
	cStart := time.Now()
	ctl.connectStart.Store(int64(cStart.Sub(base)))
	ctl.setPhase(phConnect)
	var lastEst int64
	lastT := cStart
	r.Aborted = waitFor(func() bool { return all(func(w *worker) bool { return w.st.connectDone.Load() }) },
		time.Time{}, true, func() {
			est := sum(func(w *worker) int64 { return w.st.established.Load() })
			now := time.Now()
			logf("[%6.1fs] connect: %d/%d established (+%.0f/s), in flight %d, failed %d%s", since(), est, cfg.N,
				float64(est-lastEst)/now.Sub(lastT).Seconds(), sum(func(w *worker) int64 { return w.st.inflight.Load() }),
				sum(func(w *worker) int64 { return w.st.failed.Load() }), targetLine())
			lastEst, lastT = est, now
		})
	r.Connect.Seconds = time.Since(cStart).Seconds()
	est := sum(func(w *worker) int64 { return w.st.established.Load() })
	logf("[%6.1fs] connect phase over: %d established, %d failed in %.2fs", since(), est,
		sum(func(w *worker) int64 { return w.st.failed.Load() }), r.Connect.Seconds)
	snap("connected")

	// Active set: K clients in a closed loop.
	if r.Aborted == "" && cfg.Active > 0 && est > 0 {
		k := min(int64(cfg.Active), est)
		left := k
		for i, w := range ctl.workers {
			e := w.st.established.Load() - w.st.dropped.Load()
			share := k * e / max(est, 1)
			if i == len(ctl.workers)-1 {
				share = left
			}
			share = min(share, left)
			w.activeWant = share // read by the worker when it sees phActive (ordered by the atomic phase store)
			left -= share
		}
		r.Active.Clients = k
		q0 := sum(func(w *worker) int64 { return w.st.activeQueries.Load() })
		aStart := time.Now()
		ctl.setPhase(phActive)
		var lastQ = q0
		lastT := aStart
		r.Aborted = sleepFor(cfg.Duration, func() {
			q := sum(func(w *worker) int64 { return w.st.activeQueries.Load() })
			now := time.Now()
			logf("[%6.1fs] active: %.0f TPS, %d queries, %d errors%s", since(), float64(q-lastQ)/now.Sub(lastT).Seconds(),
				q-q0, sum(func(w *worker) int64 { return w.st.activeErrs.Load() }), targetLine())
			lastQ, lastT = q, now
		})
		q1 := sum(func(w *worker) int64 { return w.st.activeQueries.Load() })
		r.Active.Seconds = time.Since(aStart).Seconds()
		ctl.setPhase(phHold)
		r.Active.Queries = q1 - q0
		r.Active.TPS = float64(r.Active.Queries) / r.Active.Seconds
		if why := waitFor(func() bool { return sum(func(w *worker) int64 { return w.st.activeBusy.Load() }) == 0 },
			time.Now().Add(cfg.QueryTimeout+2*time.Second), false, nil); why != "" && r.Aborted == "" {
			r.Aborted = "active queries did not finish: " + why
		}
		snap("active")
	}
	ctl.setPhase(phHold)

	// Hold.
	if r.Aborted == "" && cfg.Hold > 0 {
		hStart := time.Now()
		r.Aborted = sleepFor(cfg.Hold, func() {
			logf("[%6.1fs] hold: %d open, %d closed by the server%s", since(), sum(func(w *worker) int64 { return w.st.live.Load() }),
				sum(func(w *worker) int64 { return w.st.dropped.Load() }), targetLine())
		})
		r.Hold.Seconds = time.Since(hStart).Seconds()
		snap("held")
	}

	// Sample: one query on each (or a spread subset) of the idle connections.
	if r.Aborted == "" && cfg.Sample != 0 {
		want := int64(cfg.Sample)
		open := sum(func(w *worker) int64 { return w.st.live.Load() })
		left := want
		for i, w := range ctl.workers {
			if want < 0 {
				w.sampleWant = -1
				continue
			}
			share := want * w.st.live.Load() / max(open, 1)
			if i == len(ctl.workers)-1 {
				share = left
			}
			share = min(share, left)
			w.sampleWant = share
			left -= share
		}
		ok0 := sum(func(w *worker) int64 { return w.st.sampleOK.Load() })
		sStart := time.Now()
		ctl.setPhase(phSample)
		r.Aborted = waitFor(func() bool { return all(func(w *worker) bool { return w.st.sampleDone.Load() }) }, time.Time{}, true,
			func() {
				logf("[%6.1fs] sample: %d ok, %d failed", since(), sum(func(w *worker) int64 { return w.st.sampleOK.Load() })-ok0,
					sum(func(w *worker) int64 { return w.st.sampleFailed.Load() }))
			})
		r.Sample.Seconds = time.Since(sStart).Seconds()
		ctl.setPhase(phHold)
		snap("sampled")
	}

	// Close.
	if cfg.CloseAtEnd && ctl.phase.Load() != phExit {
		live0 := sum(func(w *worker) int64 { return w.st.live.Load() })
		c0 := sum(func(w *worker) int64 { return w.st.closed.Load() })
		logf("[%6.1fs] closing %d connections", since(), live0)
		clStart := time.Now()
		ctl.setPhase(phClose)
		why := waitFor(func() bool { return sum(func(w *worker) int64 { return w.st.live.Load() }) == 0 },
			time.Now().Add(cfg.CloseTimeout), false, func() {
				logf("[%6.1fs] close: %d open%s", since(), sum(func(w *worker) int64 { return w.st.live.Load() }), targetLine())
			})
		r.Close.Seconds = time.Since(clStart).Seconds()
		r.Close.Closed = sum(func(w *worker) int64 { return w.st.closed.Load() }) - c0
		r.Close.Done = why == ""
		if why != "" && r.Aborted == "" {
			r.Aborted = "close: " + why
		}
		// Settle: the target closes its side; wait for its fd count and the
		// system's TCP sockets to come back (bounded by Settle). A target
		// whose fds grew with the clients (one fd per client, e.g. poolmgr's
		// fallback engine) should drop by the clients closed; one that holds
		// clients as direct descriptors has nothing to wait for in its fds.
		wantFDs := int64(-1)
		if n := len(r.TargetSamples); n >= 2 && r.TargetSamples[0].Err == "" && r.TargetSamples[n-1].Err == "" {
			before, base := r.TargetSamples[n-1].FDs, r.TargetSamples[0].FDs
			if before-base >= live0/2 && live0 > 0 {
				wantFDs = max(base, before-live0) + 2
			}
		}
		var baseTCP int64 = -1
		if len(r.Kernel) > 0 {
			baseTCP = r.Kernel[0].TCPInUse
		}
		stStart := time.Now()
		waitFor(func() bool {
			if wantFDs >= 0 {
				s, err := ReadProc(cfg.ProcRoot, cfg.TargetPID)
				if err == nil && s.FDs > wantFDs {
					return false
				}
			}
			if baseTCP >= 0 {
				k, err := ReadKernel(cfg.ProcRoot)
				if err == nil && k.TCPInUse > baseTCP+max(200, int64(cfg.N)/100) {
					return false
				}
			}
			return true
		}, time.Now().Add(cfg.Settle), false, nil)
		r.Close.SettleSeconds = time.Since(stStart).Seconds()
		snap("closed")
	}

	ctl.setPhase(phExit)
	wg.Wait()

	// Merge the workers' results (safe now: they have exited).
	var login, query, sample Histogram
	var perSec []int64
	var workerErrs []string
	for _, w := range ctl.workers {
		login.Merge(&w.loginH)
		query.Merge(&w.queryH)
		sample.Merge(&w.sampleH)
		for i, n := range w.perSec {
			for len(perSec) <= i {
				perSec = append(perSec, 0)
			}
			perSec[i] += n
		}
		for k, n := range w.errs {
			r.Errors[k] += n
		}
		r.Connect.Attempts += w.attempts
		r.Connect.Established += w.established
		r.Connect.Failed += w.failed
		r.Connect.BindConflicts += w.bindConflicts
		r.Connect.Auth.Add(w.authCounts)
		r.Active.Errors += w.st.activeErrs.Load()
		r.Hold.Dropped += w.st.dropped.Load()
		r.Sample.OK += w.st.sampleOK.Load()
		r.Sample.Failed += w.st.sampleFailed.Load()
		if w.err != nil {
			workerErrs = append(workerErrs, w.err.Error())
		}
	}
	r.Sample.Clients = r.Sample.OK + r.Sample.Failed
	r.Connect.Login = latencyOf(&login)
	r.Active.Latency = latencyOf(&query)
	r.Sample.Latency = latencyOf(&sample)
	r.Connect.PerSecond = perSec
	for i, n := range perSec {
		if n > r.Connect.PeakPerSec {
			r.Connect.PeakPerSec, r.Connect.PeakSecond = n, i
		}
	}
	if r.Connect.Seconds > 0 {
		r.Connect.PerSec = float64(r.Connect.Established) / r.Connect.Seconds
	}
	r.Connect.Sustained, r.Connect.MinFullSecond = sustainedRate(perSec)
	for k, n := range r.Errors {
		if strings.Contains(k, "28P01") || strings.Contains(k, "28000") || strings.HasPrefix(k, "client: ") && strings.Contains(k, "(login)") {
			r.Connect.AuthFailures += n
		}
	}
	perClient := func(list []ProcSample) float64 {
		b, ok1 := r.sample(list, "baseline")
		c, ok2 := r.sample(list, "connected")
		if !ok1 || !ok2 || b.Err != "" || c.Err != "" || r.Connect.Established == 0 {
			return 0
		}
		return float64(c.RSSKB-b.RSSKB) * 1024 / float64(r.Connect.Established)
	}
	// per returns the growth of one CPU counter (total or system seconds)
	// between two samples, in microseconds per event.
	per := func(secs func(ProcSample) float64, list []ProcSample, from, to string, n int64) float64 {
		a, ok1 := r.sample(list, from)
		b, ok2 := r.sample(list, to)
		if !ok1 || !ok2 || a.Err != "" || b.Err != "" || n == 0 {
			return 0
		}
		return (secs(b) - secs(a)) * 1e6 / float64(n)
	}
	total := func(p ProcSample) float64 { return p.CPUSec }
	system := func(p ProcSample) float64 { return p.SysSec }
	cpuPer := func(list []ProcSample, from, to string, n int64) float64 { return per(total, list, from, to, n) }
	r.TargetCPUPerLoginUS = cpuPer(r.TargetSamples, "baseline", "connected", r.Connect.Established)
	r.SelfCPUPerLoginUS = cpuPer(r.SelfSamples, "baseline", "connected", r.Connect.Established)
	r.TargetSysPerLoginUS = per(system, r.TargetSamples, "baseline", "connected", r.Connect.Established)
	r.SelfSysPerLoginUS = per(system, r.SelfSamples, "baseline", "connected", r.Connect.Established)
	r.TargetCPUPerQueryUS = cpuPer(r.TargetSamples, "connected", "active", r.Active.Latency.Count)
	r.SelfCPUPerQueryUS = cpuPer(r.SelfSamples, "connected", "active", r.Active.Latency.Count)
	r.RSSPerClientB = perClient(r.TargetSamples)
	r.SelfPerClientB = perClient(r.SelfSamples)
	if len(r.Kernel) >= 2 && r.Connect.Established > 0 {
		r.SlabPerConnB = float64(r.Kernel[1].SlabKB-r.Kernel[0].SlabKB) * 1024 / float64(r.Connect.Established)
	}

	// Verdict.
	if len(workerErrs) > 0 {
		r.Problems = append(r.Problems, workerErrs...)
	}
	if r.Aborted != "" {
		r.Problems = append(r.Problems, "aborted: "+r.Aborted)
	}
	if r.Connect.Established < int64(cfg.N) {
		r.Problems = append(r.Problems, fmt.Sprintf("%d of %d connections established", r.Connect.Established, cfg.N))
	}
	if r.Active.Errors > 0 {
		r.Problems = append(r.Problems, fmt.Sprintf("%d active-query errors", r.Active.Errors))
	}
	if r.Hold.Dropped > 0 {
		r.Problems = append(r.Problems, fmt.Sprintf("%d idle connections closed by the server", r.Hold.Dropped))
	}
	if r.Sample.Failed > 0 {
		r.Problems = append(r.Problems, fmt.Sprintf("%d sample queries failed", r.Sample.Failed))
	}
	if cfg.CloseAtEnd && !r.Close.Done {
		r.Problems = append(r.Problems, "close did not finish")
	}
	r.OK = len(r.Problems) == 0
	return r, nil
}
