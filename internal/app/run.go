package app

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/poolmgr/poolmgr/internal/config"
	"github.com/poolmgr/poolmgr/internal/engine/fallback"
	"github.com/poolmgr/poolmgr/internal/proxy"
)

// Run loads the config at path and serves until a signal ends it.
func Run(path string) error {
	if f := os.Getenv("POOLMGR_CPUPROFILE"); f != "" { // profiling aid for benchmarks
		if stop, err := startCPUProfile(f); err == nil {
			defer stop()
		}
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
	// The fallback engine runs one loop: pools are per loop, and one loop
	// keeps pool_size exact without cross-loop balancing (see docs).
	loops := []*proxy.Loop{proxy.NewLoop(sh, 0)}
	eng := fallback.New(loops, log, func() time.Duration {
		if d := sh.Options().ServerConnectTimeout; d > 0 {
			return d
		}
		return 15 * time.Second
	})
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

func pickEngine(want string, log *slog.Logger) (string, error) {
	switch want {
	case "uring":
		return "", fmt.Errorf("io_engine = \"uring\": the io_uring engine is not built into this version yet; use io_engine = \"fallback\" or \"auto\"")
	case "fallback":
		return "fallback", nil
	default:
		log.Info("io_engine auto: using the fallback engine (the io_uring engine is not built into this version yet)")
		return "fallback", nil
	}
}

// Version is set at build time (-ldflags "-X .../internal/app.Version=...").
var Version = "0.1.0-dev"
