package config

import (
	"errors"
	"fmt"
	"math"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
)

// Load reads the TOML file at path, applies defaults for absent keys and
// validates the result. On failure the error is a *ValidationError listing
// every problem as "file:line: key: what is wrong" (or a plain error when
// the file cannot be read). A relative auth.auth_file is resolved against the
// directory of path and stored back as an absolute path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(path, data)
}

// Check loads and validates the file at path and returns the error Load
// returns, or nil (used by `poolmgr check-config -c FILE`).
func Check(path string) error {
	_, err := Load(path)
	return err
}

// Parse is Load for a document already in memory; name is used in messages
// and to resolve a relative auth.auth_file (as if name were the file's path).
func Parse(name string, data []byte) (*Config, error) {
	var doc map[string]any
	if err := toml.Unmarshal(data, &doc); err != nil {
		return nil, &ValidationError{Problems: []Problem{syntaxProblem(name, data, err)}}
	}

	cfg := Default()
	cfg.Path = name
	cfg.lines = keyLines(data)

	d := &decoder{v: validator{cfg: cfg}}
	d.root(doc)
	d.v.validate()
	if len(d.v.problems) > 0 {
		return nil, d.v.err()
	}
	return cfg, nil
}

func syntaxProblem(name string, data []byte, err error) Problem {
	p := Problem{File: name}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		p.Line, _ = de.Position()
		if len(de.Key()) > 0 {
			// Keys of key-values are relative to their table, keys of
			// table headers are absolute.
			prefix, header := tableAt(data, p.Line)
			if !header {
				p.Key = prefix
			}
			for _, k := range de.Key() {
				p.Key = joinKey(p.Key, k)
			}
		}
	}
	p.Msg = "invalid TOML: " + strings.TrimPrefix(err.Error(), "toml: ")
	return p
}

// decoder copies the generic document into cfg, reporting unknown keys and
// values of the wrong type.
type decoder struct {
	v validator
}

// field decodes the value at key into its place in the config.
type field func(d *decoder, key string, val any)

type section struct {
	fields map[string]field
	order  []string // key names, for suggestions
}

func newSection(names []string, fields []field) section {
	s := section{fields: make(map[string]field, len(names)), order: names}
	for i, n := range names {
		s.fields[n] = fields[i]
	}
	return s
}

func (d *decoder) cfg() *Config { return d.v.cfg }

var sections map[string]section

var sectionOrder = []string{"pool", "auth", "log", "admin"}

func init() {
	str := func(get func(*Config) *string) field {
		return func(d *decoder, key string, val any) { d.str(key, val, get(d.cfg())) }
	}
	integer := func(get func(*Config) *int) field {
		return func(d *decoder, key string, val any) { d.int(key, val, get(d.cfg())) }
	}
	dur := func(get func(*Config) *Duration) field {
		return func(d *decoder, key string, val any) { d.dur(key, val, get(d.cfg())) }
	}
	boolean := func(get func(*Config) *bool) field {
		return func(d *decoder, key string, val any) { d.bool(key, val, get(d.cfg())) }
	}
	strs := func(get func(*Config) *[]string) field {
		return func(d *decoder, key string, val any) { d.strs(key, val, get(d.cfg())) }
	}
	sections = map[string]section{
		"pool": newSection(
			[]string{
				"backends", "bind", "max_client_connections", "max_server_connections", "routing", "cache_ttl_ms",
				"cache_max_bytes", "cache_max_entry_bytes", "cache_bus", "cache_databases", "cache_users",
				"nocache_databases", "nocache_users",
				"pool_mode", "pool_size", "min_pool_size", "max_server_logins", "server_reset_query", "workers", "io_engine", "max_message_size",
				"max_prepared_statements", "max_client_prepared_statements",
				"query_wait_timeout", "server_idle_timeout", "server_lifetime", "server_connect_timeout",
				"server_login_retry", "idle_transaction_timeout", "client_login_timeout", "shutdown_timeout",
				"health_check_interval", "health_check_timeout", "health_check_failures", "health_check_user",
				"health_check_dbname", "max_replica_lag_ms", "pinned_roles",
				"primary_reads", "read_your_writes", "routing_hash_key", "default_route", "user_routes", "database_routes",
			},
			[]field{
				strs(func(c *Config) *[]string { return &c.Pool.Backends }),
				str(func(c *Config) *string { return &c.Pool.Bind }),
				integer(func(c *Config) *int { return &c.Pool.MaxClientConnections }),
				integer(func(c *Config) *int { return &c.Pool.MaxServerConnections }),
				str(func(c *Config) *string { return &c.Pool.Routing }),
				integer(func(c *Config) *int { return &c.Pool.CacheTTLMs }),
				integer(func(c *Config) *int { return &c.Pool.CacheMaxBytes }),
				integer(func(c *Config) *int { return &c.Pool.CacheMaxEntryBytes }),
				boolean(func(c *Config) *bool { return &c.Pool.CacheBus }),
				strs(func(c *Config) *[]string { return &c.Pool.CacheDatabases }),
				strs(func(c *Config) *[]string { return &c.Pool.CacheUsers }),
				strs(func(c *Config) *[]string { return &c.Pool.NoCacheDatabases }),
				strs(func(c *Config) *[]string { return &c.Pool.NoCacheUsers }),
				str(func(c *Config) *string { return &c.Pool.PoolMode }),
				integer(func(c *Config) *int { return &c.Pool.PoolSize }),
				integer(func(c *Config) *int { return &c.Pool.MinPoolSize }),
				integer(func(c *Config) *int { return &c.Pool.MaxServerLogins }),
				str(func(c *Config) *string { return &c.Pool.ServerResetQuery }),
				integer(func(c *Config) *int { return &c.Pool.Workers }),
				str(func(c *Config) *string { return &c.Pool.IOEngine }),
				integer(func(c *Config) *int { return &c.Pool.MaxMessageSize }),
				integer(func(c *Config) *int { return &c.Pool.MaxPreparedStatements }),
				integer(func(c *Config) *int { return &c.Pool.MaxClientPreparedStatements }),
				dur(func(c *Config) *Duration { return &c.Pool.QueryWaitTimeout }),
				dur(func(c *Config) *Duration { return &c.Pool.ServerIdleTimeout }),
				dur(func(c *Config) *Duration { return &c.Pool.ServerLifetime }),
				dur(func(c *Config) *Duration { return &c.Pool.ServerConnectTimeout }),
				dur(func(c *Config) *Duration { return &c.Pool.ServerLoginRetry }),
				dur(func(c *Config) *Duration { return &c.Pool.IdleTransactionTimeout }),
				dur(func(c *Config) *Duration { return &c.Pool.ClientLoginTimeout }),
				dur(func(c *Config) *Duration { return &c.Pool.ShutdownTimeout }),
				dur(func(c *Config) *Duration { return &c.Pool.HealthCheckInterval }),
				dur(func(c *Config) *Duration { return &c.Pool.HealthCheckTimeout }),
				integer(func(c *Config) *int { return &c.Pool.HealthCheckFailures }),
				str(func(c *Config) *string { return &c.Pool.HealthCheckUser }),
				str(func(c *Config) *string { return &c.Pool.HealthCheckDBName }),
				integer(func(c *Config) *int { return &c.Pool.MaxReplicaLagMs }),
				strs(func(c *Config) *[]string { return &c.Pool.PinnedRoles }),
				boolean(func(c *Config) *bool { return &c.Pool.PrimaryReads }),
				boolean(func(c *Config) *bool { return &c.Pool.ReadYourWrites }),
				str(func(c *Config) *string { return &c.Pool.RoutingHashKey }),
				str(func(c *Config) *string { return &c.Pool.DefaultRoute }),
				strs(func(c *Config) *[]string { return &c.Pool.UserRoutes }),
				strs(func(c *Config) *[]string { return &c.Pool.DatabaseRoutes }),
			}),
		"auth": newSection(
			[]string{"auth_type", "auth_file", "auth_user", "auth_query", "auth_dbname"},
			[]field{
				str(func(c *Config) *string { return &c.Auth.AuthType }),
				str(func(c *Config) *string { return &c.Auth.AuthFile }),
				str(func(c *Config) *string { return &c.Auth.AuthUser }),
				str(func(c *Config) *string { return &c.Auth.AuthQuery }),
				str(func(c *Config) *string { return &c.Auth.AuthDBName }),
			}),
		"log": newSection(
			[]string{"level", "format", "log_connections", "log_disconnections", "rate_limit"},
			[]field{
				str(func(c *Config) *string { return &c.Log.Level }),
				str(func(c *Config) *string { return &c.Log.Format }),
				boolean(func(c *Config) *bool { return &c.Log.LogConnections }),
				boolean(func(c *Config) *bool { return &c.Log.LogDisconnections }),
				integer(func(c *Config) *int { return &c.Log.RateLimit }),
			}),
		"admin": newSection(
			[]string{"admin_users", "stats_users", "metrics_bind"},
			[]field{
				strs(func(c *Config) *[]string { return &c.Admin.AdminUsers }),
				strs(func(c *Config) *[]string { return &c.Admin.StatsUsers }),
				str(func(c *Config) *string { return &c.Admin.MetricsBind }),
			}),
	}
}

// sortedKeys returns the keys of m in a stable order (by line, then name),
// so that problems come out deterministically.
func (d *decoder) sortedKeys(prefix string, m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		li, lj := d.v.line(joinKey(prefix, keys[i])), d.v.line(joinKey(prefix, keys[j]))
		if li != lj {
			return li < lj
		}
		return keys[i] < keys[j]
	})
	return keys
}

func (d *decoder) root(doc map[string]any) {
	for _, name := range d.sortedKeys("", doc) {
		key := joinKey("", name)
		sec, ok := sections[name]
		if !ok {
			what := "key"
			if _, isTable := doc[name].(map[string]any); isTable {
				what = "section"
			}
			d.v.addf(key, "unknown %s%s", what, suggest(name, sectionOrder))
			continue
		}
		tbl, ok := doc[name].(map[string]any)
		if !ok {
			d.v.bad(key, "must be a table ([%s]), not %s", name, describe(doc[name]))
			continue
		}
		for _, k := range d.sortedKeys(key, tbl) {
			fkey := joinKey(key, k)
			f, ok := sec.fields[k]
			if !ok {
				d.v.addf(fkey, "unknown key%s", suggest(k, sec.order))
				continue
			}
			f(d, fkey, tbl[k])
		}
	}
}

func (d *decoder) str(key string, val any, dst *string) {
	s, ok := val.(string)
	if !ok {
		d.v.bad(key, "must be a string, not %s", describe(val))
		return
	}
	*dst = s
}

func (d *decoder) int(key string, val any, dst *int) {
	n, ok := val.(int64)
	if !ok {
		d.v.bad(key, "must be an integer, not %s", describe(val))
		return
	}
	if int64(int(n)) != n {
		d.v.bad(key, "%d is too large", n)
		return
	}
	*dst = int(n)
}

func (d *decoder) bool(key string, val any, dst *bool) {
	b, ok := val.(bool)
	if !ok {
		d.v.bad(key, "must be true or false, not %s", describe(val))
		return
	}
	*dst = b
}

func (d *decoder) dur(key string, val any, dst *Duration) {
	switch val.(type) {
	case int64, float64, string:
	default:
		d.v.bad(key, "must be a number of seconds or a duration string like \"250ms\", not %s", describe(val))
		return
	}
	v, err := durationFromValue(val)
	if err != nil {
		d.v.bad(key, "%s", err.Error())
		return
	}
	*dst = v
}

// strs decodes an array of strings. Elements of the wrong type are reported
// and marked bad (their place holds ""), so that the others are still
// validated.
func (d *decoder) strs(key string, val any, dst *[]string) {
	arr, ok := val.([]any)
	if !ok {
		d.v.bad(key, "must be an array of strings, not %s", describe(val))
		return
	}
	out := make([]string, len(arr))
	for i, e := range arr {
		s, ok := e.(string)
		if !ok {
			d.v.bad(indexKey(key, i), "must be a string, not %s", describe(e))
			continue
		}
		out[i] = s
	}
	*dst = out
}

// describe names the TOML type of a decoded value, with the value when short.
func describe(v any) string {
	switch x := v.(type) {
	case string:
		if len(x) > 40 {
			return "a string"
		}
		return fmt.Sprintf("string %q", x)
	case int64:
		return fmt.Sprintf("integer %d", x)
	case float64:
		return fmt.Sprintf("float %v", x)
	case bool:
		return fmt.Sprintf("boolean %v", x)
	case []any:
		return "an array"
	case map[string]any:
		return "a table"
	case time.Time, toml.LocalDate, toml.LocalTime, toml.LocalDateTime:
		return "a date/time"
	case nil:
		return "nothing"
	default:
		return fmt.Sprintf("%T", v)
	}
}

// suggest returns ` (did you mean "x"?)` for the known name closest to name,
// or "" when none is close.
func suggest(name string, known []string) string {
	best, bestDist := "", math.MaxInt
	for _, k := range known {
		dist := editDistance(strings.ToLower(name), k)
		if dist < bestDist {
			best, bestDist = k, dist
		}
	}
	limit := 2
	if len(name) >= 10 {
		limit = 3
	}
	if best == "" || bestDist > limit {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance between a and b (bytes).
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return math.MaxInt
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
