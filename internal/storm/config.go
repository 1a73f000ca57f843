package storm

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"
)

// Config describes one pgstorm run.
type Config struct {
	Addr  netip.AddrPort // server (IPv4)
	Login Login
	N     int // connections to open

	Rate     float64 // connects per second; 0 = as fast as Inflight allows
	Inflight int     // connects (and sample queries) in flight at once, over all workers

	Workers      int // worker goroutines, each on its own OS thread with its own rings
	SlotsPerRing int // direct-descriptor slots per ring (<= soft RLIMIT_NOFILE)
	RecvBufs     int // provided recv buffers per ring (power of two)
	RecvBufSize  int // bytes per recv buffer

	// Sources are the (address, port) pairs connections bind to; nil lets
	// the kernel pick the source (SOCKET -> CONNECT, no BIND).
	Sources *Sources

	// Preflight logs in twice over ordinary sockets before the storm: fail
	// fast on bad credentials, and cache the SCRAM ClientKey.
	Preflight    bool
	LoginTimeout time.Duration // connect + startup + auth, per connection
	QueryTimeout time.Duration // per query

	Active   int           // connections running queries in a closed loop
	Duration time.Duration // how long the active set runs
	Hold     time.Duration // idle hold after the active phase
	Sample   int           // idle connections running one query at the end; -1 = every connection
	// CloseAtEnd closes every connection (Terminate, close) and times it;
	// otherwise there is no close phase: Run returns after closing its
	// rings and the kernel closes the sockets.
	CloseAtEnd   bool
	CloseTimeout time.Duration // bound on the close phase

	TargetPID int           // process to sample (RSS, fds); 0 = none
	Settle    time.Duration // after closing, wait up to this for the target's fd count to fall back

	Progress time.Duration // progress line interval (0 = none)
	Log      io.Writer     // progress and notes (nil = discard)
	ProcRoot string        // "/proc" (tests use a fake)

	Sysctls []SysctlChange // applied by the caller before Run, copied into the report
}

// Defaults fills zero fields.
func (c *Config) Defaults() {
	if c.Inflight == 0 {
		c.Inflight = 2048
	}
	if c.Workers == 0 {
		c.Workers = 2
	}
	if c.SlotsPerRing == 0 {
		c.SlotsPerRing = 16384
	}
	if c.RecvBufs == 0 {
		c.RecvBufs = 1024
	}
	if c.RecvBufSize == 0 {
		c.RecvBufSize = 2048
	}
	if c.LoginTimeout == 0 {
		c.LoginTimeout = 30 * time.Second
	}
	if c.QueryTimeout == 0 {
		c.QueryTimeout = 30 * time.Second
	}
	if c.CloseTimeout == 0 {
		c.CloseTimeout = 2 * time.Minute
	}
	if c.ProcRoot == "" {
		c.ProcRoot = "/proc"
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
}

// Validate reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	bad := func(f string, a ...any) { errs = append(errs, fmt.Errorf(f, a...)) }
	if !c.Addr.IsValid() || !c.Addr.Addr().Is4() {
		bad("-addr %v: an IPv4 host:port is required", c.Addr)
	}
	if c.Login.User == "" {
		bad("-user is required")
	}
	if c.Login.Database == "" {
		bad("-db is required")
	}
	if c.N < 1 {
		bad("-n %d: at least 1", c.N)
	}
	if c.Rate < 0 {
		bad("-rate %v: must be >= 0", c.Rate)
	}
	if c.Inflight < 1 {
		bad("-inflight %d: at least 1", c.Inflight)
	}
	if c.Workers < 1 || c.Workers > 64 {
		bad("-workers %d: 1..64", c.Workers)
	}
	if c.SlotsPerRing < 1 || c.SlotsPerRing > 1<<20 {
		bad("-slots-per-ring %d: 1..1048576 (and at most the soft RLIMIT_NOFILE)", c.SlotsPerRing)
	}
	if c.RecvBufs < 1 || c.RecvBufs > 1<<15 || c.RecvBufs&(c.RecvBufs-1) != 0 {
		bad("recv buffers %d: a power of two up to 32768", c.RecvBufs)
	}
	if c.RecvBufSize < 64 {
		bad("recv buffer size %d: at least 64", c.RecvBufSize)
	}
	if c.Active < 0 || c.Active > c.N {
		bad("-active %d: 0..n (%d)", c.Active, c.N)
	}
	if c.Active > 0 && c.Duration <= 0 {
		bad("-duration must be > 0 with -active")
	}
	if c.Sample < -1 || c.Sample > c.N {
		bad("-sample %d: 0..n", c.Sample)
	}
	if c.Sources != nil && c.Sources.Size() < c.N {
		bad("source pairs %s: %d < n %d: add addresses or ports", c.Sources, c.Sources.Size(), c.N)
	}
	return errors.Join(errs...)
}
