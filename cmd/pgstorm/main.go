// Command pgstorm opens many PostgreSQL client connections at once — up to
// a million from one process, beyond RLIMIT_NOFILE, with io_uring direct
// descriptors — logs each one in (SCRAM-SHA-256, md5, password or trust),
// holds them, runs queries on an active subset and/or a sample, closes
// them, and reports connect rates, errors by SQLSTATE, latency percentiles,
// TPS and the target process's memory and fds. See docs/pgstorm.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/poolmgr/poolmgr/internal/storm"
)

func main() { os.Exit(run()) }

func run() int {
	fs := flag.NewFlagSet("pgstorm", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: pgstorm [flags]\n\n"+
			"Opens -n PostgreSQL connections to -addr, logs them in, holds them, runs queries, closes them\n"+
			"and reports. Needs Linux io_uring (kernel >= 6.11 for source binding). See docs/pgstorm.md.\n\n")
		fs.PrintDefaults()
	}
	var (
		addr       = fs.String("addr", "127.0.0.1:6432", "server `host:port` (IPv4): poolmgr or PostgreSQL")
		user       = fs.String("user", "app", "user name")
		password   = fs.String("password", "", "password (default $PGPASSWORD, else the user name)")
		db         = fs.String("db", "app", "database")
		appName    = fs.String("appname", "pgstorm", "application_name sent at startup (\"\" = none)")
		n          = fs.Int("n", 100, "connections to open")
		rate       = fs.Float64("rate", 0, "connects per second (0 = as fast as -inflight allows)")
		inflight   = fs.Int("inflight", 2048, "connects (and sample queries) in flight at once")
		workers    = fs.Int("workers", 2, "worker threads, each owning its rings")
		slots      = fs.Int("slots-per-ring", 16384, "direct-descriptor slots per ring (<= soft RLIMIT_NOFILE)")
		src        = fs.String("src", "auto", "source addresses: `auto` (none up to 10000 connections, else a random 127.R.0.1 block), none (kernel picks, no bind), or the first address A.B.C.D")
		srcCount   = fs.Int("src-count", 0, "number of source addresses (0 = enough for -n)")
		ports      = fs.String("ports", "auto", "explicit source ports `lo-hi` (auto = below net.ipv4.ip_local_port_range)")
		preflight  = fs.Bool("preflight", true, "log in twice over ordinary sockets before the storm: fail fast on bad credentials, cache the SCRAM ClientKey")
		loginTO    = fs.Duration("login-timeout", 30*time.Second, "connect + startup + authentication limit per connection")
		queryTO    = fs.Duration("query-timeout", 30*time.Second, "limit per query")
		active     = fs.Int("active", 0, "connections running -query in a closed loop after the connect phase")
		duration   = fs.Duration("duration", 10*time.Second, "how long the active set runs")
		query      = fs.String("query", "SELECT 1", "query the active set and the sample run")
		hold       = fs.Duration("hold", 0, "idle hold after the active phase")
		sample     = fs.Int("sample", 0, "idle connections (spread evenly) that each run one query at the end")
		sampleAll  = fs.Bool("sample-every", false, "every connection runs one query at the end (proves all are alive)")
		closeEnd   = fs.Bool("close-at-end", true, "close every connection at the end (Terminate, close) and time it; false: no close phase, the process exits and the kernel closes the sockets")
		closeTO    = fs.Duration("close-timeout", 2*time.Minute, "bound on the close phase")
		pid        = fs.Int("pid", 0, "target process to sample (VmRSS, fd count)")
		pidfile    = fs.String("target-pidfile", "", "file holding the target's pid (instead of -pid)")
		settle     = fs.Duration("settle", 10*time.Second, "after closing, wait up to this for the target's fds and the system's TCP sockets to fall back")
		applySys   = fs.Bool("apply-sysctls", false, "raise the kernel settings a large run needs (root) and print what changed")
		showSys    = fs.Bool("show-sysctls", false, "print the kernel settings a run of -n needs, change nothing, and exit")
		onlySys    = fs.Bool("sysctls-only", false, "with -apply-sysctls: apply, print and exit without running")
		timeout    = fs.Duration("timeout", 30*time.Minute, "overall bound: when it passes the run skips to closing")
		progress   = fs.Duration("progress", time.Second, "progress line interval on stderr (0 = none)")
		jsonOut    = fs.String("json", "", "also write the report as JSON to `file` (- = stdout)")
		recvBufs   = fs.Int("recv-bufs", 1024, "provided recv buffers per ring (power of two)")
		recvBufSz  = fs.Int("recv-buf-size", 2048, "bytes per recv buffer")
		quietFinal = fs.Bool("q", false, "no text report on stdout (with -json)")
		cpuProfile = fs.String("cpuprofile", "", "write pgstorm's own Go CPU profile to `file` (whole run)")
	)
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "pgstorm: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400) // memory is plentiful; GC scans of 1M connection slots are not free
	}
	die := func(f string, a ...any) int {
		fmt.Fprintf(os.Stderr, "pgstorm: "+f+"\n", a...)
		return 2
	}

	ap, err := resolve(*addr)
	if err != nil {
		return die("-addr %s: %v", *addr, err)
	}
	pw := *password
	if pw == "" {
		pw = os.Getenv("PGPASSWORD")
	}
	if pw == "" {
		pw = *user
	}
	cfg := storm.Config{
		Addr:  ap,
		Login: storm.Login{User: *user, Password: pw, Database: *db, AppName: *appName, Query: *query},
		N:     *n, Rate: *rate, Inflight: *inflight, Workers: *workers, SlotsPerRing: *slots,
		RecvBufs: *recvBufs, RecvBufSize: *recvBufSz,
		Preflight: *preflight, LoginTimeout: *loginTO, QueryTimeout: *queryTO,
		Active: *active, Duration: *duration, Hold: *hold, Sample: *sample,
		CloseAtEnd: *closeEnd, CloseTimeout: *closeTO, Settle: *settle,
		Progress: *progress, Log: os.Stderr,
	}
	if *sampleAll {
		cfg.Sample = -1
	}

	// Source addresses and ports.
	var portRange *[2]int
	mode := *src
	if mode == "auto" {
		if *n <= 10000 {
			mode = "none"
		} else {
			mode = storm.RandomLoopbackBase().String()
		}
	}
	if mode != "none" {
		base, err := netip.ParseAddr(mode)
		if err != nil || !base.Is4() {
			return die("-src %q: auto, none or an IPv4 address", *src)
		}
		lo, hi, err := parsePorts(*ports)
		if err != nil {
			return die("-ports %q: %v", *ports, err)
		}
		count := *srcCount
		if count == 0 {
			per := hi - lo + 1
			count = int(math.Ceil(float64(*n)*1.02/float64(per))) + 1
		}
		s, err := storm.NewSources(base, count, lo, hi)
		if err != nil {
			return die("%v", err)
		}
		cfg.Sources = s
		portRange = &[2]int{lo, hi}
	}

	if *showSys || *applySys {
		ch := storm.ApplySysctls("/proc/sys", storm.WantedSysctls(*n, portRange), *showSys)
		if *showSys {
			fmt.Println("kernel settings for this run (nothing changed):")
			for _, c := range ch {
				fmt.Println("  " + c.String())
			}
			return 0
		}
		fmt.Fprintln(os.Stderr, "pgstorm: sysctls:")
		failed := false
		for _, c := range ch {
			fmt.Fprintln(os.Stderr, "  "+c.String())
			failed = failed || c.Err != ""
		}
		cfg.Sysctls = ch
		if *onlySys {
			if failed {
				return 1
			}
			return 0
		}
	} else if *onlySys {
		return die("-sysctls-only needs -apply-sysctls")
	}

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return die("-cpuprofile: %v", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return die("-cpuprofile: %v", err)
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}

	if *pidfile != "" {
		p, err := storm.ReadPidfile(*pidfile, 5*time.Second)
		if err != nil {
			return die("-target-pidfile: %v", err)
		}
		*pid = p
	}
	if *pid != 0 {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d/status", *pid)); err != nil {
			return die("-pid %d: %v", *pid, err)
		}
	}
	cfg.TargetPID = *pid

	ctx, cancel := context.WithTimeoutCause(context.Background(), *timeout, fmt.Errorf("-timeout %s passed", *timeout))
	defer cancel()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-sigs
		fmt.Fprintf(os.Stderr, "pgstorm: %v: closing connections (again to exit at once)\n", s)
		cancel()
		<-sigs
		os.Exit(130)
	}()

	if cfg.Sources != nil {
		fmt.Fprintf(os.Stderr, "pgstorm: sources %s\n", cfg.Sources)
	}
	rep, err := storm.Run(ctx, cfg)
	if err != nil {
		return die("%v", err)
	}
	if !*quietFinal || *jsonOut == "" {
		rep.WriteText(os.Stdout)
	}
	if *jsonOut != "" {
		out := os.Stdout
		if *jsonOut != "-" {
			f, err := os.Create(*jsonOut)
			if err != nil {
				return die("-json: %v", err)
			}
			defer f.Close()
			out = f
		}
		if err := rep.WriteJSON(out); err != nil {
			return die("-json: %v", err)
		}
	}
	if !rep.OK {
		return 1
	}
	return 0
}

// resolve parses host:port to an IPv4 address and port.
func resolve(s string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		if !ap.Addr().Is4() {
			return netip.AddrPort{}, errors.New("IPv4 only")
		}
		return ap, nil
	}
	ta, err := net.ResolveTCPAddr("tcp4", s)
	if err != nil {
		return netip.AddrPort{}, err
	}
	ap := ta.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

// parsePorts parses "lo-hi" or "auto".
func parsePorts(s string) (lo, hi int, err error) {
	if s == "auto" {
		elo, ehi, err := storm.LocalPortRange("/proc/sys")
		if err != nil {
			elo, ehi = 32768, 60999
		}
		lo, hi = storm.DefaultPorts(elo, ehi)
		return lo, hi, nil
	}
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return 0, 0, errors.New("want lo-hi")
	}
	if lo, err = strconv.Atoi(a); err != nil {
		return 0, 0, err
	}
	if hi, err = strconv.Atoi(b); err != nil {
		return 0, 0, err
	}
	if lo < 1 || hi > 65535 || lo > hi {
		return 0, 0, errors.New("out of range")
	}
	return lo, hi, nil
}
