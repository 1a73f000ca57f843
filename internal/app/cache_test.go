package app

import (
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestCacheConnString: the cache's connections reach the primary as
// written in pool.backends, TCP or Unix socket.
func TestCacheConnString(t *testing.T) {
	for _, tc := range []struct {
		addr, host string
		port       uint16
	}{
		{"127.0.0.1:20000", "127.0.0.1", 20000},
		{"[::1]:5432", "::1", 5432},
		{"db.example.com:6432", "db.example.com", 6432},
		{"/var/run/postgresql:5433", "/var/run/postgresql", 5433},
		{"/tmp/a:b:5432", "/tmp/a:b", 5432},
	} {
		cs := cacheConnString(tc.addr, "u@x", "p:w/?", "app")
		cfg, err := pgx.ParseConfig(cs)
		if err != nil {
			t.Fatalf("%s: ParseConfig(%q): %v", tc.addr, cs, err)
		}
		if cfg.Host != tc.host || cfg.Port != tc.port || cfg.User != "u@x" || cfg.Password != "p:w/?" || cfg.Database != "app" ||
			cfg.RuntimeParams["application_name"] != "poolmgr-cache" || cfg.TLSConfig != nil {
			t.Errorf("%s: %q parses to host %q port %d user %q password %q db %q params %v TLS %v",
				tc.addr, cs, cfg.Host, cfg.Port, cfg.User, cfg.Password, cfg.Database, cfg.RuntimeParams, cfg.TLSConfig != nil)
		}
	}
}
