package testutil

import (
	"fmt"
	"os"
	"strings"
)

// PortPlaceholder is replaced by StartPoolmgr with the port it picked.
const PortPlaceholder = "{{PORT}}"

// Config builds a poolmgr TOML config (keys of internal/config). Zero values
// leave a key out (poolmgr's default applies), except Backends (default: the
// primary) and AuthType (default scram-sha-256).
type Config struct {
	PoolMode             string   // transaction|session|statement
	PoolSize             int      // per (database,user) pool
	MaxServerConnections int      // per backend
	MaxClientConnections int      //
	Backends             []string // "host:port"; default [PrimaryAddr]
	AuthType             string   // scram-sha-256|md5|trust; default scram-sha-256
	LogLevel             string   // default $POOLMGR_LOG_LEVEL or "info"
	// Extra is raw TOML placed inside [pool] (more pool keys, one per line).
	Extra string
	// Sections is raw TOML appended after [log] (e.g. an [admin] section).
	Sections string
}

// TOML renders the config. bind is 127.0.0.1:{{PORT}} (see StartPoolmgr).
func (c Config) TOML() string {
	var b strings.Builder
	backends := c.Backends
	if len(backends) == 0 {
		backends = []string{PrimaryAddr}
	}
	q := make([]string, len(backends))
	for i, be := range backends {
		q[i] = fmt.Sprintf("%q", be)
	}
	b.WriteString("[pool]\n")
	fmt.Fprintf(&b, "bind = \"127.0.0.1:%s\"\n", PortPlaceholder)
	fmt.Fprintf(&b, "backends = [%s]\n", strings.Join(q, ", "))
	if c.PoolMode != "" {
		fmt.Fprintf(&b, "pool_mode = %q\n", c.PoolMode)
	}
	if c.PoolSize != 0 {
		fmt.Fprintf(&b, "pool_size = %d\n", c.PoolSize)
	}
	if c.MaxServerConnections != 0 {
		fmt.Fprintf(&b, "max_server_connections = %d\n", c.MaxServerConnections)
	}
	if c.MaxClientConnections != 0 {
		fmt.Fprintf(&b, "max_client_connections = %d\n", c.MaxClientConnections)
	}
	if c.Extra != "" {
		b.WriteString(strings.TrimSpace(c.Extra))
		b.WriteString("\n")
	}
	auth := c.AuthType
	if auth == "" {
		auth = "scram-sha-256"
	}
	b.WriteString("\n[auth]\n")
	fmt.Fprintf(&b, "auth_type = %q\n", auth)
	b.WriteString("auth_file = \"userlist.txt\"\n")
	level := c.LogLevel
	if level == "" {
		level = os.Getenv("POOLMGR_LOG_LEVEL")
	}
	if level == "" {
		level = "info"
	}
	b.WriteString("\n[log]\n")
	fmt.Fprintf(&b, "level = %q\n", level)
	if c.Sections != "" {
		b.WriteString("\n")
		b.WriteString(strings.TrimSpace(c.Sections))
		b.WriteString("\n")
	}
	return b.String()
}
