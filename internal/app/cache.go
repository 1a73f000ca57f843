package app

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"

	"github.com/poolmgr/poolmgr/internal/cache"
	"github.com/poolmgr/poolmgr/internal/config"
	"github.com/poolmgr/poolmgr/internal/health"
	"github.com/poolmgr/poolmgr/internal/proxy"
)

// startCache builds the query result cache when cache_ttl_ms > 0 (not in
// session mode), points its catalog loader and its invalidation bus at the
// primary with the health-check credentials, and sets it in opts. It
// returns a stop function.
func startCache(cfg *config.Config, opts *proxy.Options, log *slog.Logger) func() {
	if cfg.Pool.CacheTTLMs <= 0 {
		return func() {}
	}
	if cfg.Pool.PoolMode == "session" {
		log.Warn("query cache disabled: pool_mode = \"session\" (the cache works in transaction and statement modes)")
		return func() {}
	}
	c := cache.New(cache.ConfigFrom(&cfg.Pool), log)
	opts.Cache = c
	opts.CacheMaxEntryBytes = cfg.Pool.CacheMaxEntryBytes
	if opts.CacheMaxEntryBytes <= 0 {
		opts.CacheMaxEntryBytes = cache.DefaultMaxEntryBytes
	}
	ctx, cancel := context.WithCancel(context.Background())
	hs := health.SettingsFromConfig(cfg)
	primary := primaryAddr(cfg)
	if hs.Password == "" || primary == "" {
		log.Warn("query cache: no password for the catalog/bus user in auth_file; only reads that name no table are cached and other poolmgr instances are not told of writes",
			"user", hs.User)
	} else {
		cs := cacheConnString(primary, hs.User, hs.Password, hs.DBName)
		if err := c.StartCatalog(ctx, cs); err != nil {
			log.Warn("query cache: catalog loader not started", "err", err)
		}
		if cfg.Pool.CacheBus {
			host, _ := os.Hostname()
			if err := c.StartBus(ctx, cs, fmt.Sprintf("%s-%d", host, os.Getpid())); err != nil {
				log.Warn("query cache: invalidation bus not started", "err", err)
			}
		}
	}
	log.Info("query cache enabled", "ttl_ms", cfg.Pool.CacheTTLMs, "max_bytes", cfg.Pool.CacheMaxBytes, "bus", cfg.Pool.CacheBus)
	return func() { cancel(); c.Close() }
}

// cacheConnString is the URL the cache's catalog loader and bus connect
// with: backend addr (host:port, or a Unix socket directory:port: the
// directory then goes in the query, where pgx reads it as a socket
// directory), as user with password, to database db.
func cacheConnString(addr, user, password, db string) string {
	host, port, _ := config.SplitBackendAddr(addr)
	u := url.URL{Scheme: "postgres", User: url.UserPassword(user, password), Host: net.JoinHostPort(host, port), Path: "/" + db}
	q := u.Query()
	if config.IsUnixSocketAddr(addr) {
		u.Host = ""
		q.Set("host", host)
		q.Set("port", port)
	}
	q.Set("application_name", "poolmgr-cache")
	q.Set("sslmode", "disable")
	u.RawQuery = q.Encode()
	return u.String()
}

// primaryAddr is the backend the cache's connections use: the pinned
// primary, else the first backend.
func primaryAddr(cfg *config.Config) string {
	for _, pin := range cfg.Pins() {
		if pin.Role == "primary" {
			return pin.Addr
		}
	}
	if len(cfg.Pool.Backends) > 0 {
		return cfg.Pool.Backends[0]
	}
	return ""
}
