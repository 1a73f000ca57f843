package app

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/poolmgr/poolmgr/internal/config"
	"github.com/poolmgr/poolmgr/internal/engine/fallback"
	"github.com/poolmgr/poolmgr/internal/engine/uringengine"
	"github.com/poolmgr/poolmgr/internal/proxy"
	"github.com/poolmgr/poolmgr/internal/uring"
)

// Run loads the config at path and serves until a signal ends it.
func Run(path string) error {
	if f := os.Getenv("POOLMGR_CPUPROFILE"); f != "" { // profiling aid for benchmarks
		if stop, err := startCPUProfile(f); err == nil {
			defer stop()
		}
	}
	if f := os.Getenv("POOLMGR_MEMPROFILE"); f != "" { // heap profile every 10 s (profiling aid)
		defer startHeapProfiles(f)()
	}
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	log := NewLogger(cfg)
	for _, w := range cfg.Warnings() {
		log.Warn(w)
	}
	opts, err := BuildOptions(cfg, log)
	if err != nil {
		return err
	}
	defer startCache(cfg, opts, log)()
	sh := proxy.NewShared(opts, cfg.Pool.Backends)

	engineName, err := pickEngine(cfg.Pool.IOEngine, log)
	if err != nil {
		return err
	}
	eng, err := newEngine(engineName, cfg, sh, log)
	if err != nil {
		return err
	}
	if err := eng.Listen(cfg.Pool.Bind); err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Pool.Bind, err)
	}
	log.Info("poolmgr listening", "bind", eng.Addr().String(), "engine", engineName,
		"pool_mode", cfg.Pool.PoolMode, "backends", cfg.Pool.Backends, "version", Version)

	stopObs, err := startObservability(cfg, sh, log)
	if err != nil {
		return err
	}
	defer stopObs()
	defer startHealth(cfg, sh, log)()
	defer startMemoryGuard(sh, log)()
	defer startMemoryTrim(log)()

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- eng.Run() }()
	for {
		select {
		case err := <-done:
			return err
		case s := <-sigs:
			switch s {
			case syscall.SIGHUP:
				reload(path, sh, log)
			case syscall.SIGINT:
				log.Info("SIGINT: exiting now")
				return nil
			case syscall.SIGTERM:
				log.Info("SIGTERM: stopping accept, waiting for transactions to finish", "shutdown_timeout", sh.Options().ShutdownTimeoutOr())
				eng.StopAccepting()
				sh.StartShutdown()
				deadline := time.Now().Add(sh.Options().ShutdownTimeoutOr())
				for !eng.Drained() && time.Now().Before(deadline) {
					select {
					case s2 := <-sigs:
						if s2 == syscall.SIGINT {
							return nil
						}
					case <-time.After(50 * time.Millisecond):
					}
				}
				time.Sleep(50 * time.Millisecond) // let the last writes flush
				log.Info("shutdown complete", "drained", eng.Drained())
				return nil
			}
		}
	}
}

func reload(path string, sh *proxy.Shared, log *slog.Logger) {
	cfg, err := config.Load(path)
	if err != nil {
		log.Error("reload failed; keeping the running config", "err", err)
		return
	}
	opts, err := BuildOptions(cfg, log)
	if err != nil {
		log.Error("reload failed; keeping the running config", "err", err)
		return
	}
	opts.Log = log
	opts.Cache, opts.CacheMaxEntryBytes = sh.Options().Cache, sh.Options().CacheMaxEntryBytes // the cache lives across reloads
	sh.SetOptions(opts)
	sh.SetBackends(cfg.Pool.Backends)
	reloadHealth(cfg)
	for _, w := range cfg.Warnings() {
		log.Warn(w)
	}
	log.Info("configuration reloaded", "pool_size", opts.PoolSize, "backends", cfg.Pool.Backends)
}

// engine is what Run needs from an engine (fallback.Engine, uringengine.Engine).
type engine interface {
	Listen(string) error
	Addr() net.Addr
	Run() error
	StopAccepting()
	Drained() bool
}

// newEngine builds the engine and its core loops.
//
// Pools are per loop and pool_size is not yet balanced across loops, so both
// engines run ONE core loop unless pool.workers is set above 1 explicitly
// (then the io_uring engine runs that many; the fallback engine always one).
func newEngine(name string, cfg *config.Config, sh *proxy.Shared, log *slog.Logger) (engine, error) {
	dialTimeout := func() time.Duration {
		if d := sh.Options().ServerConnectTimeout; d > 0 {
			return d
		}
		return 15 * time.Second
	}
	if name == "uring" {
		n := 1
		if cfg.Pool.Workers > 1 {
			n = cfg.Pool.Workers
		}
		loops := make([]*proxy.Loop, n)
		for i := range loops {
			loops[i] = proxy.NewLoop(sh, i)
		}
		// Each ring's file table is capped by RLIMIT_NOFILE: let every loop
		// open more rings, up to its share of max_client_connections (with
		// headroom, as accepts are not spread evenly over loops).
		perLoop := cfg.Pool.MaxClientConnections / n
		if n > 1 {
			perLoop += perLoop / 4
		}
		perLoop += 1024
		eng, err := uringengine.NewWithOptions(loops, log, dialTimeout, uringengine.Options{MaxConns: perLoop, RawWait: rawWait(n, log)})
		if err != nil {
			if cfg.Pool.IOEngine == "uring" {
				return nil, fmt.Errorf("io_engine = \"uring\": %w (set io_engine = \"fallback\" or \"auto\" to run without io_uring)", err)
			}
			// auto: the probe passed but setting up the rings failed. The
			// loops already exist (and are registered with sh): hand the
			// same loops to the fallback engine.
			log.Warn("io_engine auto: the io_uring engine failed to start; using the fallback engine", "err", err)
			return fallback.New(loops, log, dialTimeout), nil
		}
		return eng, nil
	}
	loops := []*proxy.Loop{proxy.NewLoop(sh, 0)}
	return fallback.New(loops, log, dialTimeout), nil
}

// rawWait decides whether the io_uring loops block through raw system calls
// (uringengine.Options.RawWait): yes when GOMAXPROCS leaves at least one P
// beyond the loops, raising GOMAXPROCS to loops+1 when the GOMAXPROCS
// environment variable does not set it. A loop blocked in an ordinary
// syscall.Syscall makes the runtime hand its P off and keeps sysmon waking
// every 20 us; measured here this cost more CPU per query than the core
// itself. POOLMGR_URING_RAWWAIT=0 turns it off (for A/B benchmarks).
func rawWait(loops int, log *slog.Logger) bool {
	if os.Getenv("POOLMGR_URING_RAWWAIT") == "0" {
		return false
	}
	if os.Getenv("GOMAXPROCS") == "" && runtime.GOMAXPROCS(0) <= loops {
		runtime.GOMAXPROCS(loops + 1)
	}
	if runtime.GOMAXPROCS(0) <= loops {
		log.Info("io_uring loops wait through the Go scheduler: GOMAXPROCS leaves no P beyond the loops", "loops", loops, "gomaxprocs", runtime.GOMAXPROCS(0))
		return false
	}
	return true
}

// pickEngine resolves io_engine: "uring" must be usable (uring.Probe) or
// Run fails with the probe's explanation; "auto" uses io_uring when the probe
// succeeds and otherwise logs why once and uses the fallback engine.
func pickEngine(want string, log *slog.Logger) (string, error) {
	switch want {
	case "fallback":
		return "fallback", nil
	case "uring":
		if res, err := uring.Probe(); err != nil {
			return "", fmt.Errorf("io_engine = \"uring\", but io_uring is not usable here: %w\n%s"+
				"set io_engine = \"fallback\" (or \"auto\") to run without io_uring", err, res.String())
		}
		return "uring", nil
	default:
		if _, err := uring.Probe(); err != nil {
			log.Warn("io_engine auto: io_uring is not usable here; using the fallback engine", "reason", err.Error())
			return "fallback", nil
		}
		return "uring", nil
	}
}

// Version is set at build time (-ldflags "-X .../internal/app.Version=...").
var Version = "0.1.0-dev"
