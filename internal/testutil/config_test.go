package testutil

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/poolmgr/poolmgr/internal/config"
)

func TestConfigTOML(t *testing.T) {
	got := Config{PoolMode: "session", PoolSize: 2, MaxClientConnections: 3, Extra: "min_pool_size = 1", AuthType: "md5", LogLevel: "debug"}.TOML()
	for _, want := range []string{
		"[pool]\n", `bind = "127.0.0.1:{{PORT}}"`, `backends = ["127.0.0.1:20000"]`, `pool_mode = "session"`,
		"pool_size = 2\n", "max_client_connections = 3\n", "min_pool_size = 1\n",
		"[auth]\n", `auth_type = "md5"`, `auth_file = "userlist.txt"`, "[log]\n", `level = "debug"`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("TOML() lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "max_server_connections") {
		t.Errorf("zero MaxServerConnections rendered:\n%s", got)
	}
	// Extra stays inside [pool].
	if strings.Index(got, "min_pool_size") > strings.Index(got, "[auth]") {
		t.Errorf("Extra not in [pool]:\n%s", got)
	}
}

func TestRender(t *testing.T) {
	got := render(Config{}.TOML(), 4321, "fallback")
	if !strings.Contains(got, `bind = "127.0.0.1:4321"`) || !strings.Contains(got, "[pool]\nio_engine = \"fallback\"\n") {
		t.Errorf("render:\n%s", got)
	}
	got = render(Config{Extra: `io_engine = "uring"`}.TOML(), 1, "fallback")
	if strings.Contains(got, "fallback") || strings.Count(got, "io_engine") != 1 {
		t.Errorf("render overrode io_engine set by the test:\n%s", got)
	}
}

// The rendered TOML is accepted by internal/config.
func TestConfigTOMLLoads(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "userlist.txt"), []byte(`"app" "app"`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []Config{
		{},
		{PoolMode: "session", PoolSize: 1, MaxServerConnections: 5, MaxClientConnections: 3, AuthType: "md5",
			Extra: "client_login_timeout = 30\nshutdown_timeout = 10", Backends: []string{PrimaryAddr, Standby1Addr}},
		{PoolMode: "statement", AuthType: "trust", Sections: "[admin]\nadmin_users = [\"postgres\"]"},
	} {
		path := filepath.Join(dir, "poolmgr.toml")
		if err := os.WriteFile(path, []byte(render(c.TOML(), 6432, "fallback")), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := config.Check(path); err != nil {
			t.Errorf("%+v:\n%v\n%s", c, err, c.TOML())
		}
	}
}
