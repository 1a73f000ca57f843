package config

import (
	"runtime"
	"strings"
	"time"
)

// Config is the whole poolmgr configuration file.
type Config struct {
	Pool  Pool  `toml:"pool"`
	Auth  Auth  `toml:"auth"`
	Log   Log   `toml:"log"`
	Admin Admin `toml:"admin"`

	// Path is the file the config was loaded from (not a TOML key), as given
	// to Load. Empty for a Config built by Default.
	Path string `toml:"-"`

	// lines maps a key ("pool.routing", "pool.backends[1]") to the line it was
	// read from; used to place validation problems and warnings.
	lines map[string]int
}

// Pool is the [pool] section: the seed's keys verbatim plus the pooling keys.
type Pool struct {
	// Seed keys.
	Backends             []string `toml:"backends"`               // "host:port" or "/socket/dir:port" (Unix socket, see IsUnixSocketAddr), required, >=1, no duplicates; [0] is the primary
	Bind                 string   `toml:"bind"`                   // "host:port", default "0.0.0.0:6432"
	MaxClientConnections int      `toml:"max_client_connections"` // default 1048576
	MaxServerConnections int      `toml:"max_server_connections"` // per backend, hard cap, default 1000
	Routing              string   `toml:"routing"`                // round_robin|least_conn|random|hash (default least_conn)
	CacheTTLMs           int      `toml:"cache_ttl_ms"`           // 0 = disabled (cache not active yet: warn)

	// Query result cache (internal/cache); active only when cache_ttl_ms > 0.
	CacheMaxBytes      int      `toml:"cache_max_bytes"`       // memory bound of the cache, 65536..2^40, default 64 MiB
	CacheMaxEntryBytes int      `toml:"cache_max_entry_bytes"` // larger responses are not cached; 1..cache_max_bytes (and <= 1 GiB), default 1 MiB
	CacheBus           bool     `toml:"cache_bus"`             // LISTEN/NOTIFY invalidation bus between instances, default true
	CacheDatabases     []string `toml:"cache_databases"`       // only these databases are cached; empty = all
	CacheUsers         []string `toml:"cache_users"`           // only these users are cached; empty = all
	NoCacheDatabases   []string `toml:"nocache_databases"`     // never cached (wins over cache_databases)
	NoCacheUsers       []string `toml:"nocache_users"`         // never cached (wins over cache_users)

	// Pooling.
	PoolMode         string `toml:"pool_mode"`          // transaction|session|statement, default transaction
	PoolSize         int    `toml:"pool_size"`          // per (database,user) pool; 0 = max_server_connections (EffectivePoolSize)
	MinPoolSize      int    `toml:"min_pool_size"`      // default 0
	MaxServerLogins  int    `toml:"max_server_logins"`  // server connections being opened at once per backend, default 16
	ServerResetQuery string `toml:"server_reset_query"` // default "DISCARD ALL" (session mode)
	Workers          int    `toml:"workers"`            // event loops, 0..4096; 0 = number of CPUs (WorkerCount)
	IOEngine         string `toml:"io_engine"`          // auto|uring|fallback, default auto
	// Prepared statements in transaction/statement mode.
	MaxPreparedStatements       int `toml:"max_prepared_statements"`        // per server connection, LRU-evicted beyond; default 200
	MaxClientPreparedStatements int `toml:"max_client_prepared_statements"` // per client; default 10000; above -> FATAL 53400
	MaxMessageSize              int `toml:"max_message_size"`               // bytes, 1024..2^31-1, default 64 MiB; client messages above -> 08P01

	// Timeouts (PgBouncer names and meanings), seconds or Go duration strings in TOML.
	// Zero disables, except: server_login_retry 0 retries at once, shutdown_timeout 0 = 30s.
	QueryWaitTimeout       Duration `toml:"query_wait_timeout"`       // default 120s
	ServerIdleTimeout      Duration `toml:"server_idle_timeout"`      // default 600s
	ServerLifetime         Duration `toml:"server_lifetime"`          // default 3600s
	ServerConnectTimeout   Duration `toml:"server_connect_timeout"`   // default 15s
	ServerLoginRetry       Duration `toml:"server_login_retry"`       // default 15s
	IdleTransactionTimeout Duration `toml:"idle_transaction_timeout"` // default 0 (off)
	ClientLoginTimeout     Duration `toml:"client_login_timeout"`     // default 60s
	ShutdownTimeout        Duration `toml:"shutdown_timeout"`         // default 30s

	// Backend health checks (internal/health).
	HealthCheckInterval Duration `toml:"health_check_interval"` // default 1s; 0 disables health checks
	HealthCheckTimeout  Duration `toml:"health_check_timeout"`  // per check, connect included; default 2s; > 0
	HealthCheckFailures int      `toml:"health_check_failures"` // consecutive failures that mark a backend unhealthy; 1..1000, default 3
	HealthCheckUser     string   `toml:"health_check_user"`     // "" = auth.auth_user, else "postgres" (EffectiveHealthCheckUser)
	HealthCheckDBName   string   `toml:"health_check_dbname"`   // default "postgres"
	MaxReplicaLagMs     int      `toml:"max_replica_lag_ms"`    // replicas lagging more get no reads; 0 = no limit; default 10000
	PinnedRoles         []string `toml:"pinned_roles"`          // "host:port=primary|replica" (Pins); host:port must be in backends

	// Read/write splitting (docs/routing.md).
	PrimaryReads   bool     `toml:"primary_reads"`    // the primary also takes reads; default false
	ReadYourWrites bool     `toml:"read_your_writes"` // a client's reads after its write wait for replicas to catch up; default true
	RoutingHashKey string   `toml:"routing_hash_key"` // routing = "hash": client_addr|user|query; default client_addr
	DefaultRoute   string   `toml:"default_route"`    // auto|primary|replica; default auto
	UserRoutes     []string `toml:"user_routes"`      // "user=auto|primary|replica"
	DatabaseRoutes []string `toml:"database_routes"`  // "database=auto|primary|replica"
}

// Auth is the [auth] section.
type Auth struct {
	AuthType   string `toml:"auth_type"`   // scram-sha-256|md5|trust, default scram-sha-256
	AuthFile   string `toml:"auth_file"`   // PgBouncer userlist.txt format; relative to the config file; absolute after Load
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
	// RateLimit is how many identical messages (same level and text) are
	// logged per second; more are counted and summarised once a second.
	// 0 disables the limit. Default 10.
	RateLimit int `toml:"rate_limit"`
}

// Admin is the [admin] section: the admin console's users and the metrics/status HTTP listener.
type Admin struct {
	AdminUsers  []string `toml:"admin_users"`
	StatsUsers  []string `toml:"stats_users"`
	MetricsBind string   `toml:"metrics_bind"`
}

// Duration is a number of seconds in TOML (integer or float) or a Go duration string ("250ms").
// See duration.go for how it decodes.
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Accepted values of the enumerated keys.
const (
	RoutingRoundRobin = "round_robin"
	RoutingLeastConn  = "least_conn"
	RoutingRandom     = "random"
	RoutingHash       = "hash"

	PoolModeSession     = "session"
	PoolModeTransaction = "transaction"
	PoolModeStatement   = "statement"

	IOEngineAuto     = "auto"
	IOEngineURing    = "uring"
	IOEngineFallback = "fallback"

	AuthSCRAM = "scram-sha-256"
	AuthMD5   = "md5"
	AuthTrust = "trust"

	LogLevelDebug = "debug"
	LogLevelInfo  = "info"
	LogLevelWarn  = "warn"
	LogLevelError = "error"

	LogFormatText = "text"
	LogFormatJSON = "json"

	RolePrimary = "primary" // pool.pinned_roles
	RoleReplica = "replica"
)

// Limits enforced by validation.
const (
	MaxClientConnectionsLimit = 1 << 24 // upper bound of pool.max_client_connections (16777216)
	MinMessageSize            = 1024    // lower bound of pool.max_message_size
	MaxMessageSizeLimit       = 1<<31 - 1
	MaxWorkers                = 4096 // upper bound of pool.workers
	MaxHealthCheckFailures    = 1000 // upper bound of pool.health_check_failures
)

// DefaultMaxServerLogins is the default of pool.max_server_logins.
const DefaultMaxServerLogins = 16

// DefaultLogRateLimit is the default of log.rate_limit (identical messages per second).
const DefaultLogRateLimit = 10

// MaxLogRateLimit is the upper bound of log.rate_limit.
const MaxLogRateLimit = 1000000

// DefaultAuthQuery is the default of auth.auth_query (PgBouncer's).
const DefaultAuthQuery = "SELECT usename, passwd FROM pg_shadow WHERE usename=$1"

// Default returns a Config holding every default value. Backends is empty:
// it has no default and Validate rejects it until set.
func Default() *Config {
	return &Config{
		Pool: Pool{
			Bind:                        "0.0.0.0:6432",
			MaxClientConnections:        1048576,
			MaxServerConnections:        1000,
			Routing:                     RoutingLeastConn,
			CacheTTLMs:                  0,
			CacheMaxBytes:               DefaultCacheMaxBytes,
			CacheMaxEntryBytes:          DefaultCacheMaxEntryBytes,
			CacheBus:                    true,
			PoolMode:                    PoolModeTransaction,
			PoolSize:                    0,
			MinPoolSize:                 0,
			ServerResetQuery:            "DISCARD ALL",
			Workers:                     0,
			IOEngine:                    IOEngineAuto,
			MaxMessageSize:              64 << 20,
			MaxPreparedStatements:       200,
			MaxClientPreparedStatements: 10000,

			QueryWaitTimeout:       Duration(120 * time.Second),
			ServerIdleTimeout:      Duration(600 * time.Second),
			ServerLifetime:         Duration(3600 * time.Second),
			ServerConnectTimeout:   Duration(15 * time.Second),
			ServerLoginRetry:       Duration(15 * time.Second),
			MaxServerLogins:        DefaultMaxServerLogins,
			IdleTransactionTimeout: 0,
			ClientLoginTimeout:     Duration(60 * time.Second),
			ShutdownTimeout:        Duration(30 * time.Second),

			HealthCheckInterval: Duration(time.Second),
			HealthCheckTimeout:  Duration(2 * time.Second),
			HealthCheckFailures: 3,
			HealthCheckDBName:   "postgres",
			MaxReplicaLagMs:     10000,
			ReadYourWrites:      true,
			RoutingHashKey:      "client_addr",
			DefaultRoute:        "auto",
		},
		Auth: Auth{
			AuthType:  AuthSCRAM,
			AuthQuery: DefaultAuthQuery,
		},
		Log: Log{
			Level:     LogLevelInfo,
			Format:    LogFormatText,
			RateLimit: DefaultLogRateLimit,
		},
	}
}

// EffectivePoolSize is pool.pool_size, or pool.max_server_connections when
// pool_size is 0.
func (c *Config) EffectivePoolSize() int {
	if c.Pool.PoolSize > 0 {
		return c.Pool.PoolSize
	}
	return c.Pool.MaxServerConnections
}

// EffectiveHealthCheckUser is pool.health_check_user, or auth.auth_user
// when that is empty, or "postgres".
func (c *Config) EffectiveHealthCheckUser() string {
	switch {
	case c.Pool.HealthCheckUser != "":
		return c.Pool.HealthCheckUser
	case c.Auth.AuthUser != "":
		return c.Auth.AuthUser
	}
	return "postgres"
}

// Pin is one entry of pool.pinned_roles.
type Pin struct {
	Addr string // the backend as written in pool.backends
	Role string // RolePrimary or RoleReplica
}

// Pins returns pool.pinned_roles parsed, each address replaced by the
// pool.backends entry it names (addresses are compared normalized:
// "LOCALHOST:05432" names "localhost:5432"). Entries that do not parse or
// name no backend are left out; Validate reports them.
func (c *Config) Pins() []Pin {
	var out []Pin
	for _, s := range c.Pool.PinnedRoles {
		norm, role, msg := parsePin(s)
		if msg != "" {
			continue
		}
		for _, b := range c.Pool.Backends {
			if bn, m := checkBackendAddr(b); m == "" && bn == norm {
				out = append(out, Pin{Addr: b, Role: role})
				break
			}
		}
	}
	return out
}

// WorkerCount is pool.workers, or runtime.NumCPU() when workers is 0.
func (c *Config) WorkerCount() int {
	if c.Pool.Workers > 0 {
		return c.Pool.Workers
	}
	return runtime.NumCPU()
}

// RouteMap parses user_routes / database_routes entries ("name=mode"); bad
// entries are reported by Validate and skipped here.
func RouteMap(entries []string) map[string]string {
	m := map[string]string{}
	for _, e := range entries {
		name, mode, ok := strings.Cut(e, "=")
		name, mode = strings.TrimSpace(name), strings.TrimSpace(mode)
		if ok && name != "" && (mode == "auto" || mode == "primary" || mode == "replica") {
			m[name] = mode
		}
	}
	return m
}
