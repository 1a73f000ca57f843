package health

import (
	"context"
	"errors"
	"slices"
	"sync"

	"github.com/poolmgr/poolmgr/internal/config"
	"github.com/poolmgr/poolmgr/internal/proxy"
)

// Source lists the backends to use ("host:port"). A discovery service (for
// example Patroni's REST API) implements it; ConfigSource is the config
// file's list.
type Source interface {
	Backends(ctx context.Context) ([]string, error)
}

// ConfigSource is pool.backends of the loaded config.
type ConfigSource struct {
	mu    sync.Mutex
	addrs []string
}

// NewConfigSource returns cfg's backends as a Source.
func NewConfigSource(cfg *config.Config) *ConfigSource {
	s := &ConfigSource{}
	s.Update(cfg)
	return s
}

// Update replaces the list with cfg's (reload).
func (s *ConfigSource) Update(cfg *config.Config) {
	s.mu.Lock()
	s.addrs = slices.Clone(cfg.Pool.Backends)
	s.mu.Unlock()
}

// Backends returns a copy of the list.
func (s *ConfigSource) Backends(context.Context) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.addrs), nil
}

// BackendSetter is where Sync installs a list; *proxy.Shared implements it.
type BackendSetter interface {
	Backends() []*proxy.Backend
	SetBackends(addrs []string)
}

// ErrNoBackends is returned by Sync when the source lists no backend: the
// current list is kept rather than emptied.
var ErrNoBackends = errors.New("health: source returned no backends")

// Sync asks src for the backends and installs them on sh when they differ
// from the current list (order included). It reports whether it did.
func Sync(ctx context.Context, src Source, sh BackendSetter) (bool, error) {
	addrs, err := src.Backends(ctx)
	if err != nil {
		return false, err
	}
	if len(addrs) == 0 {
		return false, ErrNoBackends
	}
	cur := sh.Backends()
	same := len(cur) == len(addrs)
	for i := 0; same && i < len(cur); i++ {
		same = cur[i].Addr == addrs[i]
	}
	if same {
		return false, nil
	}
	sh.SetBackends(addrs)
	return true, nil
}
