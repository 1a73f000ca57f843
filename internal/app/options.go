package app

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/poolmgr/poolmgr/internal/auth"
	"github.com/poolmgr/poolmgr/internal/config"
	"github.com/poolmgr/poolmgr/internal/proxy"
	"github.com/poolmgr/poolmgr/internal/route"
)

// NewLogger returns the logger the [log] section asks for.
func NewLogger(c *config.Config) *slog.Logger {
	var lvl slog.Level
	switch c.Log.Level {
	case "debug":
		lvl = slog.LevelDebug
	case "warn":
		lvl = slog.LevelWarn
	case "error":
		lvl = slog.LevelError
	default:
		lvl = slog.LevelInfo
	}
	ho := &slog.HandlerOptions{Level: lvl}
	var h slog.Handler = slog.NewTextHandler(os.Stderr, ho)
	if c.Log.Format == "json" {
		h = slog.NewJSONHandler(os.Stderr, ho)
	}
	// log.rate_limit: a storm of identical warnings/errors is summarised.
	return slog.New(NewRateLimitHandler(h, c.Log.RateLimit))
}

// BuildOptions turns a config into the core's settings snapshot, reading the auth_file.
func BuildOptions(c *config.Config, log *slog.Logger) (*proxy.Options, error) {
	p := c.Pool
	o := &proxy.Options{
		PoolSize:                    c.EffectivePoolSize(),
		MaxClients:                  p.MaxClientConnections,
		MaxServersPerBackend:        p.MaxServerConnections,
		MaxServerLogins:             p.MaxServerLogins,
		MaxMessageSize:              p.MaxMessageSize,
		ResetQuery:                  p.ServerResetQuery,
		MaxPreparedStatements:       p.MaxPreparedStatements,
		MaxClientPreparedStatements: p.MaxClientPreparedStatements,
		QueryWaitTimeout:            p.QueryWaitTimeout.D(),
		ServerIdleTimeout:           p.ServerIdleTimeout.D(),
		ServerLifetime:              p.ServerLifetime.D(),
		ServerConnectTimeout:        p.ServerConnectTimeout.D(),
		ServerLoginRetry:            p.ServerLoginRetry.D(),
		IdleTxTimeout:               p.IdleTransactionTimeout.D(),
		ClientLoginTimeout:          p.ClientLoginTimeout.D(),
		ShutdownTimeout:             p.ShutdownTimeout.D(),
		Log:                         log,
		LogConnections:              c.Log.LogConnections,
		LogDisconnections:           c.Log.LogDisconnections,
		Secrets:                     map[string]auth.Secret{},
		AuthUser:                    c.Auth.AuthUser,
		AuthQuery:                   c.Auth.AuthQuery,
		AuthDBName:                  c.Auth.AuthDBName,
		AdminUsers:                  c.Admin.AdminUsers,
		StatsUsers:                  c.Admin.StatsUsers,
		Routing:                     route.ParseAlgo(p.Routing),
		ReadYourWrites:              p.ReadYourWrites,
		PrimaryReads:                p.PrimaryReads,
		MaxReplicaLag:               time.Duration(p.MaxReplicaLagMs) * time.Millisecond,
	}
	switch p.RoutingHashKey {
	case "user":
		o.HashKey = proxy.HashUser
	case "query":
		o.HashKey = proxy.HashQuery
	default:
		o.HashKey = proxy.HashClientAddr
	}
	o.DefaultRoute = routeMode(p.DefaultRoute)
	o.UserRoutes, o.DBRoutes = map[string]proxy.RouteMode{}, map[string]proxy.RouteMode{}
	for name, m := range config.RouteMap(p.UserRoutes) {
		o.UserRoutes[name] = routeMode(m)
	}
	for name, m := range config.RouteMap(p.DatabaseRoutes) {
		o.DBRoutes[name] = routeMode(m)
	}
	switch p.PoolMode {
	case "session":
		o.PoolMode = proxy.ModeSession
	case "statement":
		o.PoolMode = proxy.ModeStatement
	default:
		o.PoolMode = proxy.ModeTransaction
	}
	switch c.Auth.AuthType {
	case "md5":
		o.AuthType = proxy.AuthMD5
	case "trust":
		o.AuthType = proxy.AuthTrust
	default:
		o.AuthType = proxy.AuthScram
	}
	if c.Auth.AuthFile != "" {
		f, err := os.Open(c.Auth.AuthFile)
		if err != nil {
			return nil, fmt.Errorf("auth_file: %w", err)
		}
		defer f.Close()
		m, err := auth.ParseUserlist(f)
		if err != nil {
			return nil, fmt.Errorf("auth_file %s: %w", c.Auth.AuthFile, err)
		}
		o.Secrets = m
	}
	return o, nil
}

func routeMode(s string) proxy.RouteMode {
	switch s {
	case "primary":
		return proxy.RoutePrimary
	case "replica":
		return proxy.RouteReplica
	}
	return proxy.RouteAuto
}
