package storm

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Latency summarises a Histogram of nanoseconds in milliseconds.
type Latency struct {
	Count  int64   `json:"count"`
	MeanMS float64 `json:"mean_ms"`
	MinMS  float64 `json:"min_ms"`
	P50MS  float64 `json:"p50_ms"`
	P90MS  float64 `json:"p90_ms"`
	P99MS  float64 `json:"p99_ms"`
	P999MS float64 `json:"p99_9_ms"`
	MaxMS  float64 `json:"max_ms"`
}

func latencyOf(h *Histogram) Latency {
	ms := func(v int64) float64 { return float64(v) / 1e6 }
	return Latency{
		Count:  h.Count(),
		MeanMS: h.Mean() / 1e6,
		MinMS:  ms(h.Min()),
		P50MS:  ms(h.Percentile(50)),
		P90MS:  ms(h.Percentile(90)),
		P99MS:  ms(h.Percentile(99)),
		P999MS: ms(h.Percentile(99.9)),
		MaxMS:  ms(h.Max()),
	}
}

func (l Latency) String() string {
	if l.Count == 0 {
		return "(none)"
	}
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (mean %s, n=%d)",
		fmtMS(l.P50MS), fmtMS(l.P90MS), fmtMS(l.P99MS), fmtMS(l.P999MS), fmtMS(l.MaxMS), fmtMS(l.MeanMS), l.Count)
}

func fmtMS(ms float64) string {
	switch {
	case ms < 1:
		return fmt.Sprintf("%.0fµs", ms*1000)
	case ms < 100:
		return fmt.Sprintf("%.2fms", ms)
	default:
		return fmt.Sprintf("%.0fms", ms)
	}
}

// Report is everything a run measured. Its JSON form is what -json writes.
type Report struct {
	Target       string         `json:"target"`
	N            int            `json:"n"`
	Workers      int            `json:"workers"`
	Rings        int            `json:"rings"`
	SlotsPerRing int            `json:"slots_per_ring"`
	Sources      string         `json:"sources"`
	Sysctls      []SysctlChange `json:"sysctls,omitempty"`
	Preflight    string         `json:"preflight,omitempty"` // auth method seen by the preflight logins

	Connect struct {
		Attempts      int64   `json:"attempts"`
		Established   int64   `json:"established"`
		Failed        int64   `json:"failed"`
		BindConflicts int64   `json:"bind_conflicts"`
		Seconds       float64 `json:"seconds"`
		PerSec        float64 `json:"per_sec"`
		PeakPerSec    int64   `json:"peak_per_sec"`
		PeakSecond    int     `json:"peak_second"`
		PerSecond     []int64 `json:"per_second"`
		// Sustained is the rate between the moments 10% and 90% of the
		// established logins had completed (interpolated in the per-second
		// counts): the steady-state rate, without the ramp-up and the tail
		// of the last in-flight logins. MinFullSecond is the slowest
		// complete second before the last one (stalls show there).
		Sustained     float64    `json:"sustained_per_sec"`
		MinFullSecond int64      `json:"min_full_second"`
		AuthFailures  int64      `json:"auth_failures"`
		Login         Latency    `json:"login_latency"`
		Auth          AuthCounts `json:"auth"`
	} `json:"connect"`

	Active struct {
		Clients int64   `json:"clients"`
		Seconds float64 `json:"seconds"`
		Queries int64   `json:"queries"`
		Errors  int64   `json:"errors"`
		TPS     float64 `json:"tps"`
		Latency Latency `json:"latency"`
	} `json:"active"`

	Hold struct {
		Seconds float64 `json:"seconds"`
		Dropped int64   `json:"dropped"` // idle connections the server closed
	} `json:"hold"`

	Sample struct {
		Clients int64   `json:"clients"`
		OK      int64   `json:"ok"`
		Failed  int64   `json:"failed"`
		Seconds float64 `json:"seconds"`
		Latency Latency `json:"latency"`
	} `json:"sample"`

	Close struct {
		Closed        int64   `json:"closed"`
		Seconds       float64 `json:"seconds"`
		SettleSeconds float64 `json:"settle_seconds"`
		Done          bool    `json:"done"`
	} `json:"close"`

	Errors map[string]int64 `json:"errors"`

	TargetPID     int            `json:"target_pid,omitempty"`
	TargetSamples []ProcSample   `json:"target_samples,omitempty"`
	SelfSamples   []ProcSample   `json:"self_samples"`
	Kernel        []KernelSample `json:"kernel_samples"`
	RSSPerClientB float64        `json:"target_rss_per_client_bytes"`
	// CPU seconds (utime+stime) per login during the connect phase and per
	// query during the active phase; target = the sampled process.
	TargetCPUPerLoginUS float64 `json:"target_cpu_per_login_us"`
	TargetCPUPerQueryUS float64 `json:"target_cpu_per_query_us"`
	SelfCPUPerLoginUS   float64 `json:"self_cpu_per_login_us"`
	// The kernel (stime) part of the per-login figures above.
	TargetSysPerLoginUS float64 `json:"target_sys_per_login_us"`
	SelfSysPerLoginUS   float64 `json:"self_sys_per_login_us"`
	SelfCPUPerQueryUS   float64 `json:"self_cpu_per_query_us"`
	SelfPerClientB      float64 `json:"self_rss_per_client_bytes"`
	SlabPerConnB        float64 `json:"slab_per_connection_bytes"` // both ends, system-wide

	Aborted  string   `json:"aborted,omitempty"`
	OK       bool     `json:"ok"`
	Problems []string `json:"problems,omitempty"`
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e.Encode(r)
}

func (r *Report) sample(list []ProcSample, phase string) (ProcSample, bool) {
	for _, s := range list {
		if s.Phase == phase {
			return s, true
		}
	}
	return ProcSample{}, false
}

// WriteText prints the human-readable summary.
func (r *Report) WriteText(w io.Writer) {
	p := func(f string, a ...any) { fmt.Fprintf(w, f+"\n", a...) }
	p("pgstorm: %d connections to %s (workers %d, rings %d x <=%d slots, sources %s)",
		r.N, r.Target, r.Workers, r.Rings, r.SlotsPerRing, r.Sources)
	if r.Preflight != "" {
		p("preflight 2 logins ok: %s", r.Preflight)
	}
	if len(r.Sysctls) > 0 {
		p("sysctls:")
		for _, s := range r.Sysctls {
			p("  %s", s)
		}
	}
	c := &r.Connect
	p("connect   established %d/%d in %.2fs: %.0f/s overall, peak %d/s (second %d); failed %d (auth %d); bind conflicts skipped %d",
		c.Established, r.N, c.Seconds, c.PerSec, c.PeakPerSec, c.PeakSecond, c.Failed, c.AuthFailures, c.BindConflicts)
	if c.Sustained > 0 {
		p("          sustained %.0f/s (10%% -> 90%% of the logins), slowest full second %d/s", c.Sustained, c.MinFullSecond)
	}
	p("          login latency %s", c.Login)
	a := c.Auth
	p("          logins: scram %d (ClientKey cached %d, PBKDF2 %d), md5 %d, password %d, trust %d",
		a.SCRAM, a.ScramCached, a.ScramDerived, a.MD5, a.Password, a.Trust)
	if r.Active.Clients > 0 {
		p("active    %d clients for %.1fs: %d queries, %.0f TPS, %d errors", r.Active.Clients, r.Active.Seconds,
			r.Active.Queries, r.Active.TPS, r.Active.Errors)
		p("          query latency %s", r.Active.Latency)
	}
	if r.Hold.Seconds > 0 || r.Hold.Dropped > 0 {
		p("hold      %.1fs idle; connections closed by the server: %d", r.Hold.Seconds, r.Hold.Dropped)
	}
	if r.Sample.Clients > 0 {
		p("sample    %d idle connections ran one query each: ok %d, failed %d, in %.2fs", r.Sample.Clients,
			r.Sample.OK, r.Sample.Failed, r.Sample.Seconds)
		p("          query latency %s", r.Sample.Latency)
	}
	if r.Close.Closed > 0 || r.Close.Seconds > 0 {
		p("close     %d closed in %.2fs; target settled after %.2fs", r.Close.Closed, r.Close.Seconds, r.Close.SettleSeconds)
	}
	if len(r.Errors) == 0 {
		p("errors    none")
	} else {
		p("errors    (by SQLSTATE / errno / reason, with what the connection was doing)")
		keys := make([]string, 0, len(r.Errors))
		for k := range r.Errors {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool {
			if r.Errors[keys[i]] != r.Errors[keys[j]] {
				return r.Errors[keys[i]] > r.Errors[keys[j]]
			}
			return keys[i] < keys[j]
		})
		for _, k := range keys {
			p("  %9d  %s", r.Errors[k], k)
		}
	}
	procTable := func(title string, list []ProcSample) {
		if len(list) == 0 {
			return
		}
		p("%s", title)
		p("  %-10s %8s %12s %9s %8s %9s %9s", "phase", "at", "rss", "fds", "threads", "cpu", "sys")
		for _, s := range list {
			if s.Err != "" {
				p("  %-10s %7.1fs  %s", s.Phase, s.At, s.Err)
				continue
			}
			p("  %-10s %7.1fs %9.1f MB %9d %8d %8.2fs %8.2fs", s.Phase, s.At, float64(s.RSSKB)/1024, s.FDs, s.Threads, s.CPUSec, s.SysSec)
		}
	}
	if r.TargetPID != 0 {
		procTable(fmt.Sprintf("target    pid %d", r.TargetPID), r.TargetSamples)
		p("  target RSS per client (connected - baseline) / established: %s", fmtBytes(r.RSSPerClientB))
		p("  target CPU per login %.0fµs (%.0fµs user + %.0fµs sys; connect phase), per query %.0fµs (active phase)",
			r.TargetCPUPerLoginUS, r.TargetCPUPerLoginUS-r.TargetSysPerLoginUS, r.TargetSysPerLoginUS, r.TargetCPUPerQueryUS)
	}
	procTable("pgstorm   (this process)", r.SelfSamples)
	p("  pgstorm RSS per client %s; CPU per login %.0fµs (%.0fµs user + %.0fµs sys), per query %.0fµs", fmtBytes(r.SelfPerClientB),
		r.SelfCPUPerLoginUS, r.SelfCPUPerLoginUS-r.SelfSysPerLoginUS, r.SelfSysPerLoginUS, r.SelfCPUPerQueryUS)
	if len(r.Kernel) > 0 {
		p("kernel    %-10s %10s %12s %10s %10s %10s", "phase", "Slab", "SUnreclaim", "tcp inuse", "tcp tw", "tcp mem")
		for _, k := range r.Kernel {
			p("          %-10s %7.1f MB %9.1f MB %10d %10d %7.1f MB", k.Phase, float64(k.SlabKB)/1024,
				float64(k.SUnreclaimKB)/1024, k.TCPInUse, k.TCPTimeWait, float64(k.TCPMemPages)*4/1024)
		}
		p("  Slab per connection (both ends, system-wide): %s", fmtBytes(r.SlabPerConnB))
		k0, k1 := r.Kernel[0], r.Kernel[len(r.Kernel)-1]
		p("  during the run (system-wide): listen queue overflows %d, listen drops %d, SYN cookies sent %d",
			k1.ListenOverflows-k0.ListenOverflows, k1.ListenDrops-k0.ListenDrops, k1.SyncookiesSent-k0.SyncookiesSent)
	}
	if r.Aborted != "" {
		p("ABORTED   %s", r.Aborted)
	}
	if r.OK {
		p("result    OK")
	} else {
		p("result    FAILED: %s", strings.Join(r.Problems, "; "))
	}
}

func fmtBytes(b float64) string {
	switch {
	case b >= 1<<20 || b <= -(1<<20):
		return fmt.Sprintf("%.2f MiB", b/(1<<20))
	case b >= 1<<10 || b <= -(1<<10):
		return fmt.Sprintf("%.2f KiB", b/(1<<10))
	}
	return fmt.Sprintf("%.0f B", b)
}
