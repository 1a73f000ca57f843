package app

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/poolmgr/poolmgr/internal/admin"
	"github.com/poolmgr/poolmgr/internal/config"
	"github.com/poolmgr/poolmgr/internal/metrics"
	"github.com/poolmgr/poolmgr/internal/proxy"
)

// Status-page history: one sample a second, five minutes kept.
const (
	sampleInterval = time.Second
	sampleKeep     = 300
)

// startObservability installs the admin console handler and starts the
// metrics/status HTTP listener when configured. It returns a stop function.
func startObservability(cfg *config.Config, sh *proxy.Shared, log *slog.Logger) (func(), error) {
	started := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	var sampler *metrics.Sampler
	if len(cfg.Admin.AdminUsers) > 0 || len(cfg.Admin.StatsUsers) > 0 || cfg.Admin.MetricsBind != "" {
		sampler = metrics.NewSampler(sh, sampleInterval, sampleKeep, log)
		go sampler.Run(ctx)
	}
	// The engine in use is not passed here; show the configured io_engine.
	engine := cfg.Pool.IOEngine
	sh.SetAdmin(admin.New(admin.Options{Shared: sh, Sampler: sampler, Config: cfg, Version: Version,
		Engine: engine, Log: log}))
	stops := []func(){cancel}
	stop := func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	if cfg.Admin.MetricsBind != "" {
		h := metrics.NewHandler(metrics.Options{Shared: sh, Sampler: sampler, Version: Version, Engine: engine,
			Log: log, Started: started})
		addr, stopHTTP, err := metrics.Serve(cfg.Admin.MetricsBind, h, log)
		if err != nil {
			stop()
			return nil, fmt.Errorf("metrics_bind %s: %w", cfg.Admin.MetricsBind, err)
		}
		stops = append(stops, stopHTTP)
		log.Info("metrics and status page listening", "metrics_bind", addr.String(),
			"status_page", "http://"+addr.String()+"/", "metrics", "http://"+addr.String()+"/metrics")
	}
	return stop, nil
}
