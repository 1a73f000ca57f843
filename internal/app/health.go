package app

import (
	"log/slog"
	"sync"

	"github.com/poolmgr/poolmgr/internal/config"
	"github.com/poolmgr/poolmgr/internal/health"
	"github.com/poolmgr/poolmgr/internal/proxy"
)

// running is the health checker of this process, for reloadHealth.
var running struct {
	sync.Mutex
	checker *health.Checker
}

// startHealth applies pool.pinned_roles to the backends of sh and starts the
// backend health checker (internal/health). It returns a function that stops
// it. With health_check_interval = 0 or no usable password the checker only
// applies pinned roles (and logs why it does not check).
func startHealth(cfg *config.Config, sh *proxy.Shared, log *slog.Logger) (stop func()) {
	c := health.New(sh, cfg, log)
	c.Start()
	running.Lock()
	running.checker = c
	running.Unlock()
	return func() {
		running.Lock()
		if running.checker == c {
			running.checker = nil
		}
		running.Unlock()
		c.Stop()
	}
}

// reloadHealth passes a reloaded config to the running health checker (no-op
// when none runs). Call it after sh.SetBackends so that pins apply to the new
// backends at once.
func reloadHealth(cfg *config.Config) {
	running.Lock()
	c := running.checker
	running.Unlock()
	if c != nil {
		c.Update(cfg)
	}
}
