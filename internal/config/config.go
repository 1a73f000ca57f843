package config

import "time"

// Config is the whole poolmgr configuration file.
type Config struct {
	Pool  Pool  `toml:"pool"`
	Auth  Auth  `toml:"auth"`
	Log   Log   `toml:"log"`
	Admin Admin `toml:"admin"`

	// Path is the file the config was loaded from (not a TOML key).
	Path string `toml:"-"`
}

// Pool is the [pool] section: the seed's keys verbatim plus the pooling keys.
type Pool struct {
	// Seed keys.
	Backends             []string `toml:"backends"`               // "host:port", required, >=1
	Bind                 string   `toml:"bind"`                   // "host:port", default "0.0.0.0:6432"
	MaxClientConnections int      `toml:"max_client_connections"` // default 1048576
	MaxServerConnections int      `toml:"max_server_connections"` // per backend, hard cap, default 1000
	Routing              string   `toml:"routing"`                // round_robin|least_conn|random|hash (default least_conn)
	CacheTTLMs           int      `toml:"cache_ttl_ms"`           // 0 = disabled (cache not active yet: warn)

	// Pooling.
	PoolMode         string `toml:"pool_mode"`          // transaction|session|statement, default transaction
	PoolSize         int    `toml:"pool_size"`          // per (database,user) pool; 0 = max_server_connections
	MinPoolSize      int    `toml:"min_pool_size"`      // default 0
	ServerResetQuery string `toml:"server_reset_query"` // default "DISCARD ALL" (session mode)
	Workers          int    `toml:"workers"`            // event loops; 0 = number of CPUs
	IOEngine         string `toml:"io_engine"`          // auto|uring|fallback, default auto
	MaxMessageSize   int    `toml:"max_message_size"`   // bytes, default 64 MiB; client messages above -> 08P01

	// Timeouts (PgBouncer names and meanings). Zero disables where PgBouncer allows it.
	QueryWaitTimeout       Duration `toml:"query_wait_timeout"`       // default 120s
	ServerIdleTimeout      Duration `toml:"server_idle_timeout"`      // default 600s
	ServerLifetime         Duration `toml:"server_lifetime"`          // default 3600s
	ServerConnectTimeout   Duration `toml:"server_connect_timeout"`   // default 15s
	ServerLoginRetry       Duration `toml:"server_login_retry"`       // default 15s
	IdleTransactionTimeout Duration `toml:"idle_transaction_timeout"` // default 0 (off)
	ClientLoginTimeout     Duration `toml:"client_login_timeout"`     // default 60s
	ShutdownTimeout        Duration `toml:"shutdown_timeout"`         // default 30s
}

// Auth is the [auth] section.
type Auth struct {
	AuthType   string `toml:"auth_type"`   // scram-sha-256|md5|trust, default scram-sha-256
	AuthFile   string `toml:"auth_file"`   // PgBouncer userlist.txt format; relative to the config file
	AuthUser   string `toml:"auth_user"`   // user that runs auth_query on the backend
	AuthQuery  string `toml:"auth_query"`  // default "SELECT usename, passwd FROM pg_shadow WHERE usename=$1"
	AuthDBName string `toml:"auth_dbname"` // database auth_query runs in; default: the client's database
}

// Log is the [log] section.
type Log struct {
	Level             string `toml:"level"`              // debug|info|warn|error, default info
	Format            string `toml:"format"`             // text|json, default text
	LogConnections    bool   `toml:"log_connections"`    // default false
	LogDisconnections bool   `toml:"log_disconnections"` // default false
}

// Admin is the [admin] section (console and metrics come with their own issue; accepted early).
type Admin struct {
	AdminUsers  []string `toml:"admin_users"`
	StatsUsers  []string `toml:"stats_users"`
	MetricsBind string   `toml:"metrics_bind"`
}

// Duration is a number of seconds in TOML (integer or float) or a Go duration string ("250ms").
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }
