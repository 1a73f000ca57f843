package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// The seed's [pool] section, which poolmgr.toml must hold verbatim.
const seedPool = `[pool]
# Standalone backend addresses
backends = [
"127.0.0.1:20000",
"127.0.0.1:20001",
]
# Client listener
bind = "0.0.0.0:6432"
# Max client connections
max_client_connections = 1048576 # 1M
# Max server connections per backend
max_server_connections = 1000
# Routing algorithm: "round_robin" | "least_conn" | "random" | "hash"
routing = "least_conn"
# Query cache TTL (0 = disabled)
cache_ttl_ms = 5000
`

// TestDemoConfig keeps the repository's poolmgr.toml and userlist.txt valid.
func TestDemoConfig(t *testing.T) {
	path := filepath.Join("..", "..", "poolmgr.toml")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), seedPool) {
		t.Errorf("%s does not contain the seed's [pool] section verbatim", path)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Pool.Backends; !reflect.DeepEqual(got, []string{"127.0.0.1:20000", "127.0.0.1:20001"}) {
		t.Errorf("backends = %q", got)
	}
	if cfg.Pool.PoolMode != PoolModeTransaction || cfg.Pool.PoolSize != 20 || cfg.Auth.AuthType != AuthSCRAM {
		t.Errorf("pool_mode %q, pool_size %d, auth_type %q", cfg.Pool.PoolMode, cfg.Pool.PoolSize, cfg.Auth.AuthType)
	}
	abs, _ := filepath.Abs(filepath.Join("..", "..", "userlist.txt"))
	if cfg.Auth.AuthFile != abs {
		t.Errorf("auth_file = %q, want %q", cfg.Auth.AuthFile, abs)
	}
	users, err := os.ReadFile(abs)
	if err != nil {
		t.Fatal(err)
	}
	if string(users) != "\"app\" \"app\"\n\"postgres\" \"postgres\"\n" {
		t.Errorf("userlist.txt = %q", users)
	}
	if !reflect.DeepEqual(cfg.Admin.AdminUsers, []string{"postgres"}) || cfg.Admin.MetricsBind != "127.0.0.1:9930" {
		t.Errorf("admin = %+v", cfg.Admin)
	}
	if ws := cfg.Warnings(); len(ws) != 0 {
		t.Errorf("Warnings() = %q, want none (cache, routing, admin and metrics are all active)", ws)
	}
}
