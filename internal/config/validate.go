package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Validate checks c as Load does after decoding (limits, enums, addresses,
// auth_file) and returns a *ValidationError listing every problem, or nil.
// Start from Default() when building a Config in code: zero values such as
// an empty Bind are errors, not "use the default". Validate resolves a
// relative Auth.AuthFile against the directory of c.Path (or the working
// directory) and stores the absolute path back.
func (c *Config) Validate() error {
	v := validator{cfg: c}
	v.validate()
	return v.err()
}

// validator collects problems for one Config.
type validator struct {
	cfg      *Config
	problems []Problem
	badKeys  map[string]bool // keys whose value could not be decoded: skip their checks
}

// line returns the line of key, or of its closest enclosing table or array
// that has one, or 0.
func (v *validator) line(key string) int {
	for key != "" {
		if l, ok := v.cfg.lines[key]; ok {
			return l
		}
		i := strings.LastIndexAny(key, ".[")
		if i < 0 {
			break
		}
		key = key[:i]
	}
	return 0
}

func (v *validator) addf(key, format string, args ...any) {
	v.problems = append(v.problems, Problem{
		File: v.cfg.Path,
		Line: v.line(key),
		Key:  key,
		Msg:  fmt.Sprintf(format, args...),
	})
}

// bad reports a value that could not be decoded and marks key so that
// validation does not report it a second time.
func (v *validator) bad(key, format string, args ...any) {
	v.addf(key, format, args...)
	v.markBad(key)
}

func (v *validator) markBad(key string) {
	if v.badKeys == nil {
		v.badKeys = make(map[string]bool)
	}
	v.badKeys[key] = true
}

func (v *validator) isBad(keys ...string) bool {
	for _, k := range keys {
		if v.badKeys[k] {
			return true
		}
	}
	return false
}

func (v *validator) err() error {
	if len(v.problems) == 0 {
		return nil
	}
	ps := v.problems
	sort.SliceStable(ps, func(i, j int) bool {
		li, lj := ps[i].Line, ps[j].Line
		if li == 0 || lj == 0 {
			return lj == 0 && li != 0
		}
		return li < lj
	})
	return &ValidationError{Problems: ps}
}

func (v *validator) enum(key, val string, allowed ...string) {
	if v.isBad(key) {
		return
	}
	for _, a := range allowed {
		if val == a {
			return
		}
	}
	v.addf(key, "%q is not one of %s", val, strings.Join(allowed, ", "))
}

func (v *validator) intRange(key string, val, lo, hi int) {
	if v.isBad(key) {
		return
	}
	if val < lo || val > hi {
		v.addf(key, "%d is out of range %d..%d", val, lo, hi)
	}
}

func (v *validator) atLeast(key string, val, lo int) {
	if v.isBad(key) {
		return
	}
	if val < lo {
		v.addf(key, "%d is below the minimum of %d", val, lo)
	}
}

func (v *validator) addr(key, val string, allowEmptyHost bool) {
	if v.isBad(key) {
		return
	}
	if _, msg := checkAddr(val, allowEmptyHost); msg != "" {
		v.addf(key, "%s", msg)
	}
}

func (v *validator) validate() {
	c := v.cfg
	p := &c.Pool

	// [pool] seed keys.
	if !v.isBad("pool.backends") {
		if len(p.Backends) == 0 {
			v.addf("pool.backends", "at least one backend is required")
		}
		seen := make(map[string]int, len(p.Backends))
		for i, b := range p.Backends {
			key := indexKey("pool.backends", i)
			if v.isBad(key) {
				continue
			}
			norm, msg := checkBackendAddr(b)
			if msg != "" {
				v.addf(key, "%s", msg)
				continue
			}
			if j, dup := seen[norm]; dup {
				v.addf(key, "%q duplicates pool.backends[%d]", b, j)
				continue
			}
			seen[norm] = i
		}
	}
	v.addr("pool.bind", p.Bind, true)
	v.intRange("pool.max_client_connections", p.MaxClientConnections, 1, MaxClientConnectionsLimit)
	v.atLeast("pool.max_server_connections", p.MaxServerConnections, 1)
	v.enum("pool.routing", p.Routing, RoutingRoundRobin, RoutingLeastConn, RoutingRandom, RoutingHash)
	v.atLeast("pool.cache_ttl_ms", p.CacheTTLMs, 0)
	v.cacheKeys()

	// Pooling.
	v.enum("pool.pool_mode", p.PoolMode, PoolModeTransaction, PoolModeSession, PoolModeStatement)
	v.atLeast("pool.max_server_logins", p.MaxServerLogins, 1)
	if !v.isBad("pool.pool_size", "pool.max_server_connections") {
		switch {
		case p.PoolSize < 0:
			v.addf("pool.pool_size", "%d must not be negative (0 means max_server_connections)", p.PoolSize)
		case p.PoolSize > p.MaxServerConnections && p.MaxServerConnections >= 1:
			v.addf("pool.pool_size", "%d exceeds max_server_connections (%d)", p.PoolSize, p.MaxServerConnections)
		}
	}
	if !v.isBad("pool.min_pool_size", "pool.pool_size", "pool.max_server_connections") {
		switch eff := c.EffectivePoolSize(); {
		case p.MinPoolSize < 0:
			v.addf("pool.min_pool_size", "%d must not be negative", p.MinPoolSize)
		case p.MinPoolSize > eff && eff >= 1 && p.PoolSize >= 0:
			if p.PoolSize > 0 {
				v.addf("pool.min_pool_size", "%d exceeds pool_size (%d)", p.MinPoolSize, p.PoolSize)
			} else {
				v.addf("pool.min_pool_size", "%d exceeds the pool size (pool_size = 0: max_server_connections = %d)", p.MinPoolSize, eff)
			}
		}
	}
	v.intRange("pool.workers", p.Workers, 0, MaxWorkers)
	v.enum("pool.io_engine", p.IOEngine, IOEngineAuto, IOEngineURing, IOEngineFallback)
	v.intRange("pool.max_message_size", p.MaxMessageSize, MinMessageSize, MaxMessageSizeLimit)
	v.intRange("pool.max_prepared_statements", p.MaxPreparedStatements, 1, 1<<20)
	v.intRange("pool.max_client_prepared_statements", p.MaxClientPreparedStatements, 1, 1<<24)

	// Timeouts.
	for _, t := range []struct {
		key string
		val Duration
	}{
		{"pool.query_wait_timeout", p.QueryWaitTimeout},
		{"pool.server_idle_timeout", p.ServerIdleTimeout},
		{"pool.server_lifetime", p.ServerLifetime},
		{"pool.server_connect_timeout", p.ServerConnectTimeout},
		{"pool.server_login_retry", p.ServerLoginRetry},
		{"pool.idle_transaction_timeout", p.IdleTransactionTimeout},
		{"pool.client_login_timeout", p.ClientLoginTimeout},
		{"pool.shutdown_timeout", p.ShutdownTimeout},
		{"pool.health_check_interval", p.HealthCheckInterval},
	} {
		if !v.isBad(t.key) && t.val < 0 {
			v.addf(t.key, "%s must not be negative", t.val)
		}
	}

	// Health checks.
	if !v.isBad("pool.health_check_timeout") && p.HealthCheckTimeout <= 0 {
		v.addf("pool.health_check_timeout", "%s must be greater than 0", p.HealthCheckTimeout)
	}
	v.intRange("pool.health_check_failures", p.HealthCheckFailures, 1, MaxHealthCheckFailures)
	if p.HealthCheckDBName == "" && !v.isBad("pool.health_check_dbname") {
		v.addf("pool.health_check_dbname", "must not be empty")
	}
	v.atLeast("pool.max_replica_lag_ms", p.MaxReplicaLagMs, 0)
	v.enum("pool.routing_hash_key", p.RoutingHashKey, "client_addr", "user", "query")
	v.enum("pool.default_route", p.DefaultRoute, "auto", "primary", "replica")
	for _, r := range [...]struct {
		key  string
		list []string
	}{{"pool.user_routes", p.UserRoutes}, {"pool.database_routes", p.DatabaseRoutes}} {
		for i, e := range r.list {
			name, mode, ok := strings.Cut(e, "=")
			mode = strings.TrimSpace(mode)
			if !ok || strings.TrimSpace(name) == "" || (mode != "auto" && mode != "primary" && mode != "replica") {
				v.addf(indexKey(r.key, i), "%q is not \"name=auto|primary|replica\"", e)
			}
		}
	}
	v.pinnedRoles()

	// [auth]
	a := &c.Auth
	v.enum("auth.auth_type", a.AuthType, AuthSCRAM, AuthMD5, AuthTrust)
	if a.AuthFile != "" && !v.isBad("auth.auth_file") {
		v.authFile()
	}
	if a.AuthUser != "" && a.AuthQuery == "" && !v.isBad("auth.auth_query", "auth.auth_user") {
		v.addf("auth.auth_query", "must not be empty when auth_user is set")
	}

	// [log]
	v.enum("log.level", c.Log.Level, LogLevelDebug, LogLevelInfo, LogLevelWarn, LogLevelError)
	v.enum("log.format", c.Log.Format, LogFormatText, LogFormatJSON)
	v.intRange("log.rate_limit", c.Log.RateLimit, 0, MaxLogRateLimit)

	// [admin]
	for _, list := range []struct {
		key   string
		users []string
	}{{"admin.admin_users", c.Admin.AdminUsers}, {"admin.stats_users", c.Admin.StatsUsers}} {
		if v.isBad(list.key) {
			continue
		}
		for i, u := range list.users {
			if u == "" && !v.isBad(indexKey(list.key, i)) {
				v.addf(indexKey(list.key, i), "user name must not be empty")
			}
		}
	}
	if c.Admin.MetricsBind != "" {
		v.addr("admin.metrics_bind", c.Admin.MetricsBind, true)
	}
}

// pinnedRoles checks pool.pinned_roles: "host:port=primary|replica", each
// naming a backend at most once, at most one primary.
func (v *validator) pinnedRoles() {
	const key = "pool.pinned_roles"
	p := &v.cfg.Pool
	if v.isBad(key) {
		return
	}
	backends := map[string]int{}
	if !v.isBad("pool.backends") {
		for i, b := range p.Backends {
			if norm, msg := checkBackendAddr(b); msg == "" {
				if _, dup := backends[norm]; !dup {
					backends[norm] = i
				}
			}
		}
	}
	seen := map[string]int{}
	primary := -1
	for i, s := range p.PinnedRoles {
		k := indexKey(key, i)
		if v.isBad(k) {
			continue
		}
		norm, role, msg := parsePin(s)
		if msg != "" {
			v.addf(k, "%s", msg)
			continue
		}
		if _, ok := backends[norm]; !ok && !v.isBad("pool.backends") {
			v.addf(k, "%q is not one of pool.backends", s[:strings.LastIndexByte(s, '=')])
			continue
		}
		if j, dup := seen[norm]; dup {
			v.addf(k, "%q pins the same backend as pool.pinned_roles[%d]", s, j)
			continue
		}
		seen[norm] = i
		if role == RolePrimary {
			if primary >= 0 {
				v.addf(k, "more than one backend pinned as primary (pool.pinned_roles[%d] is too)", primary)
				continue
			}
			primary = i
		}
	}
}

// parsePin parses "host:port=primary|replica" into the normalized address
// and the role, or returns a message.
func parsePin(s string) (norm, role, msg string) {
	i := strings.LastIndexByte(s, '=')
	if i < 0 {
		return "", "", fmt.Sprintf("%q is not host:port=primary or host:port=replica", s)
	}
	addr, role := strings.TrimSpace(s[:i]), strings.TrimSpace(s[i+1:])
	norm, msg = checkBackendAddr(addr)
	if msg != "" {
		return "", "", msg
	}
	if role != RolePrimary && role != RoleReplica {
		return "", "", fmt.Sprintf("role %q is not one of %s, %s", role, RolePrimary, RoleReplica)
	}
	return norm, role, ""
}

// authFile resolves auth.auth_file against the config file's directory,
// stores the absolute path back and checks that it is a readable file.
func (v *validator) authFile() {
	const key = "auth.auth_file"
	a := &v.cfg.Auth
	path := a.AuthFile
	if !filepath.IsAbs(path) {
		dir := "."
		if v.cfg.Path != "" {
			dir = filepath.Dir(v.cfg.Path)
		}
		path = filepath.Join(dir, path)
	}
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	a.AuthFile = path

	fi, err := os.Stat(path)
	if err != nil {
		v.addf(key, "cannot read %s: %s", path, pathErrText(err))
		return
	}
	if !fi.Mode().IsRegular() {
		v.addf(key, "%s is not a regular file", path)
		return
	}
	f, err := os.Open(path)
	if err != nil {
		v.addf(key, "cannot read %s: %s", path, pathErrText(err))
		return
	}
	f.Close()
}

func pathErrText(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// checkAddr checks a "host:port" address: numeric port 1..65535 and a host
// that is an IP address or a host name (empty only if allowEmptyHost). It
// returns a normalized form for duplicate detection, or a message.
func checkAddr(s string, allowEmptyHost bool) (norm, msg string) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			return "", fmt.Sprintf("%q is not host:port (%s)", s, ae.Err)
		}
		return "", fmt.Sprintf("%q is not host:port", s)
	}
	n, err := strconv.Atoi(port)
	if err != nil || port == "" || port[0] == '+' || port[0] == '-' {
		return "", fmt.Sprintf("%q: port %q is not a number", s, port)
	}
	if n < 1 || n > 65535 {
		return "", fmt.Sprintf("%q: port %d is out of range 1..65535", s, n)
	}
	switch {
	case host == "":
		if !allowEmptyHost {
			return "", fmt.Sprintf("%q: missing host", s)
		}
	case strings.HasPrefix(s, "["):
		// Brackets are for IPv6 literals only.
		ip, err := netip.ParseAddr(host)
		if err != nil || !ip.Is6() {
			return "", fmt.Sprintf("%q: %q is not an IPv6 address", s, host)
		}
		host = ip.String()
	default:
		if ip, err := netip.ParseAddr(host); err == nil {
			host = ip.String()
		} else if !validHostname(host) {
			return "", fmt.Sprintf("%q: %q is not a valid host name or IP address", s, host)
		} else {
			host = strings.ToLower(strings.TrimSuffix(host, "."))
		}
	}
	return net.JoinHostPort(host, strconv.Itoa(n)), ""
}

// validHostname accepts DNS names: dot-separated labels of letters, digits,
// '-' and '_', at most 253 bytes, optionally with a trailing dot.
func validHostname(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// isLoopbackHost reports whether a listen address's host only accepts local
// connections.
func isLoopbackHost(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}
