package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// writeConfig writes body as poolmgr.toml (and a userlist.txt beside it) in
// a fresh temporary directory and returns the config's path.
func writeConfig(t testing.TB, body string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "userlist.txt"), []byte(`"app" "app"`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "poolmgr.toml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// want is one expected problem: its line, key and a substring of its message.
type want struct {
	line int
	key  string
	msg  string
}

func problemsOf(t *testing.T, err error) []Problem {
	t.Helper()
	if err == nil {
		t.Fatal("Load succeeded, want an error")
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error is %T (%v), want *ValidationError", err, err)
	}
	return ve.Problems
}

func checkProblems(t *testing.T, path string, err error, wants []want) {
	t.Helper()
	ps := problemsOf(t, err)
	if len(ps) != len(wants) {
		t.Fatalf("got %d problems, want %d:\n%v", len(ps), len(wants), err)
	}
	for i, w := range wants {
		p := ps[i]
		if p.File != path || p.Line != w.line || p.Key != w.key || !strings.Contains(p.Msg, w.msg) {
			t.Errorf("problem %d = %q\nwant        %s:%d: %s: ...%s...", i, p.Error(), path, w.line, w.key, w.msg)
		}
	}
}

const minimal = "[pool]\nbackends = [\"127.0.0.1:5432\"]\n"

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name  string
		body  string
		wants []want
	}{
		// Unknown keys.
		{"unknown key with suggestion", minimal + "max_client_connection = 5\n",
			[]want{{3, "pool.max_client_connection", `unknown key (did you mean "max_client_connections"?)`}}},
		{"unknown key without suggestion", minimal + "frobnicate = true\n",
			[]want{{3, "pool.frobnicate", "unknown key"}}},
		{"unknown section", minimal + "\n[server]\nport = 1\n",
			[]want{{4, "server", "unknown section"}}},
		{"misspelt section", minimal + "[logs]\nlevel = \"info\"\n",
			[]want{{3, "logs", `unknown section (did you mean "log"?)`}}},
		{"unknown top-level key", "debug = true\n" + minimal,
			[]want{{1, "debug", "unknown key"}}},
		{"unknown sub-table", minimal + "[pool.extra]\nx = 1\n",
			[]want{{3, "pool.extra", "unknown key"}}},
		{"unknown key in dotted form", "pool.backends = [\"h:1\"]\npool.colour = \"red\"\n",
			[]want{{2, "pool.colour", "unknown key"}}},

		// Wrong types.
		{"string for integer", minimal + "max_server_connections = \"10\"\n",
			[]want{{3, "pool.max_server_connections", `must be an integer, not string "10"`}}},
		{"float for integer", minimal + "pool_size = 2.5\n",
			[]want{{3, "pool.pool_size", "must be an integer, not float 2.5"}}},
		{"integer for string", minimal + "routing = 3\n",
			[]want{{3, "pool.routing", "must be a string, not integer 3"}}},
		{"string for bool", "[log]\nlog_connections = \"yes\"\n" + minimal,
			[]want{{2, "log.log_connections", `must be true or false, not string "yes"`}}},
		{"bool for duration", minimal + "server_lifetime = true\n",
			[]want{{3, "pool.server_lifetime", "must be a number of seconds or a duration string"}}},
		{"date for duration", minimal + "server_lifetime = 1979-05-27\n",
			[]want{{3, "pool.server_lifetime", "not a date/time"}}},
		{"bad duration string", minimal + "query_wait_timeout = \"soon\"\n",
			[]want{{3, "pool.query_wait_timeout", `"soon" is not a duration`}}},
		{"string for array", "[pool]\nbackends = \"127.0.0.1:5432\"\n",
			[]want{{2, "pool.backends", `must be an array of strings, not string "127.0.0.1:5432"`}}},
		{"array element type", "[pool]\nbackends = [\n  \"127.0.0.1:5432\",\n  5432,\n  \"127.0.0.1\",\n]\n",
			[]want{{4, "pool.backends[1]", "must be a string, not integer 5432"}, {5, "pool.backends[2]", `"127.0.0.1" is not host:port (missing port in address)`}}},
		{"section name used as a key inside [pool]", minimal + "log = 5\n",
			[]want{{3, "pool.log", "unknown key"}}},
		{"top-level value for a section", "log = \"debug\"\n" + minimal,
			[]want{{1, "log", `must be a table ([log]), not string "debug"`}}},
		{"array of tables for a section", minimal + "[[admin]]\nadmin_users = []\n",
			[]want{{3, "admin", "must be a table ([admin]), not an array"}}},

		// Addresses.
		{"backend without port", "[pool]\nbackends = [\"db.example.com\"]\n",
			[]want{{2, "pool.backends[0]", `"db.example.com" is not host:port (missing port in address)`}}},
		{"backend port 0", "[pool]\nbackends = [\"127.0.0.1:0\"]\n",
			[]want{{2, "pool.backends[0]", `"127.0.0.1:0": port 0 is out of range 1..65535`}}},
		{"backend port 65536", "[pool]\nbackends = [\"127.0.0.1:65536\"]\n",
			[]want{{2, "pool.backends[0]", "port 65536 is out of range 1..65535"}}},
		{"backend named port", "[pool]\nbackends = [\"127.0.0.1:postgres\"]\n",
			[]want{{2, "pool.backends[0]", `port "postgres" is not a number`}}},
		{"backend without host", "[pool]\nbackends = [\":5432\"]\n",
			[]want{{2, "pool.backends[0]", `":5432": missing host`}}},
		{"backend bad host", "[pool]\nbackends = [\"db host:5432\"]\n",
			[]want{{2, "pool.backends[0]", `"db host" is not a valid host name or IP address`}}},
		{"backend IPv6 without brackets", "[pool]\nbackends = [\"::1:5432\"]\n",
			[]want{{2, "pool.backends[0]", "is not host:port (too many colons in address)"}}},
		{"backend IPv4 in brackets", "[pool]\nbackends = [\"[127.0.0.1]:5432\"]\n",
			[]want{{2, "pool.backends[0]", `"127.0.0.1" is not an IPv6 address`}}},
		{"bind without port", minimal + "bind = \"0.0.0.0\"\n",
			[]want{{3, "pool.bind", `"0.0.0.0" is not host:port`}}},
		{"bind empty", minimal + "bind = \"\"\n",
			[]want{{3, "pool.bind", `"" is not host:port`}}},
		{"bind port too large", minimal + "bind = \"0.0.0.0:99999\"\n",
			[]want{{3, "pool.bind", "port 99999 is out of range 1..65535"}}},
		{"log rate_limit", minimal + "[log]\nrate_limit = -1\n",
			[]want{{4, "log.rate_limit", "-1 is out of range 0..1000000"}}},
		{"metrics_bind", minimal + "[admin]\nmetrics_bind = \"localhost\"\n",
			[]want{{4, "admin.metrics_bind", `"localhost" is not host:port`}}},

		// Enums.
		{"routing", minimal + "routing = \"fastest\"\n",
			[]want{{3, "pool.routing", `"fastest" is not one of round_robin, least_conn, random, hash`}}},
		{"pool_mode", minimal + "pool_mode = \"Transaction\"\n",
			[]want{{3, "pool.pool_mode", `"Transaction" is not one of transaction, session, statement`}}},
		{"io_engine", minimal + "io_engine = \"epoll\"\n",
			[]want{{3, "pool.io_engine", `"epoll" is not one of auto, uring, fallback`}}},
		{"auth_type", minimal + "[auth]\nauth_type = \"password\"\n",
			[]want{{4, "auth.auth_type", `"password" is not one of scram-sha-256, md5, trust`}}},
		{"log level", minimal + "[log]\nlevel = \"verbose\"\n",
			[]want{{4, "log.level", `"verbose" is not one of debug, info, warn, error`}}},
		{"log format", minimal + "[log]\nformat = \"xml\"\n",
			[]want{{4, "log.format", `"xml" is not one of text, json`}}},

		// Limits.
		{"max_client_connections 0", minimal + "max_client_connections = 0\n",
			[]want{{3, "pool.max_client_connections", "0 is out of range 1..16777216"}}},
		{"max_client_connections too many", minimal + "max_client_connections = 16777217\n",
			[]want{{3, "pool.max_client_connections", "16777217 is out of range 1..16777216"}}},
		{"max_server_connections 0", minimal + "max_server_connections = 0\n",
			[]want{{3, "pool.max_server_connections", "0 is below the minimum of 1"}}},
		{"pool_size negative", minimal + "pool_size = -1\n",
			[]want{{3, "pool.pool_size", "-1 must not be negative"}}},
		{"pool_size above max_server_connections", minimal + "max_server_connections = 10\npool_size = 11\n",
			[]want{{4, "pool.pool_size", "11 exceeds max_server_connections (10)"}}},
		{"min_pool_size above pool_size", minimal + "pool_size = 5\nmin_pool_size = 6\n",
			[]want{{4, "pool.min_pool_size", "6 exceeds pool_size (5)"}}},
		{"min_pool_size above implicit pool size", minimal + "max_server_connections = 4\nmin_pool_size = 6\n",
			[]want{{4, "pool.min_pool_size", "6 exceeds the pool size (pool_size = 0: max_server_connections = 4)"}}},
		{"min_pool_size negative", minimal + "min_pool_size = -2\n",
			[]want{{3, "pool.min_pool_size", "-2 must not be negative"}}},
		{"workers negative", minimal + "workers = -1\n",
			[]want{{3, "pool.workers", "-1 is out of range 0..4096"}}},
		{"max_message_size small", minimal + "max_message_size = 1023\n",
			[]want{{3, "pool.max_message_size", "1023 is out of range 1024..2147483647"}}},
		{"cache_ttl_ms negative", minimal + "cache_ttl_ms = -1\n",
			[]want{{3, "pool.cache_ttl_ms", "-1 is below the minimum of 0"}}},

		// Durations.
		{"negative integer duration", minimal + "query_wait_timeout = -1\n",
			[]want{{3, "pool.query_wait_timeout", "-1s must not be negative"}}},
		{"negative float duration", minimal + "server_idle_timeout = -0.5\n",
			[]want{{3, "pool.server_idle_timeout", "-500ms must not be negative"}}},
		{"negative string duration", minimal + "shutdown_timeout = \"-2m\"\n",
			[]want{{3, "pool.shutdown_timeout", "-2m0s must not be negative"}}},
		{"huge duration", minimal + "server_lifetime = 10000000000000\n",
			[]want{{3, "pool.server_lifetime", "10000000000000 seconds is too large"}}},
		{"nan duration", minimal + "server_lifetime = nan\n",
			[]want{{3, "pool.server_lifetime", "NaN is not a valid number of seconds"}}},
		{"inf duration", minimal + "server_lifetime = inf\n",
			[]want{{3, "pool.server_lifetime", "+Inf is not a valid number of seconds"}}},

		// Health checks.
		{"health_check_interval negative", minimal + "health_check_interval = -1\n",
			[]want{{3, "pool.health_check_interval", "-1s must not be negative"}}},
		{"health_check_timeout zero", minimal + "health_check_timeout = 0\n",
			[]want{{3, "pool.health_check_timeout", "0s must be greater than 0"}}},
		{"health_check_timeout negative", minimal + "health_check_timeout = \"-1s\"\n",
			[]want{{3, "pool.health_check_timeout", "-1s must be greater than 0"}}},
		{"health_check_timeout bad type", minimal + "health_check_timeout = true\n",
			[]want{{3, "pool.health_check_timeout", "must be a number of seconds"}}},
		{"health_check_failures zero", minimal + "health_check_failures = 0\n",
			[]want{{3, "pool.health_check_failures", "0 is out of range 1..1000"}}},
		{"health_check_failures string", minimal + "health_check_failures = \"3\"\n",
			[]want{{3, "pool.health_check_failures", `must be an integer, not string "3"`}}},
		{"health_check_dbname empty", minimal + "health_check_dbname = \"\"\n",
			[]want{{3, "pool.health_check_dbname", "must not be empty"}}},
		{"max_replica_lag_ms negative", minimal + "max_replica_lag_ms = -5\n",
			[]want{{3, "pool.max_replica_lag_ms", "-5 is below the minimum of 0"}}},
		{"misspelt health key", minimal + "health_check_intervall = 1\n",
			[]want{{3, "pool.health_check_intervall", `unknown key (did you mean "health_check_interval"?)`}}},
		{"pinned_roles not an array", minimal + "pinned_roles = \"127.0.0.1:5432=primary\"\n",
			[]want{{3, "pool.pinned_roles", "must be an array of strings"}}},
		{"pinned_roles bad entries", "[pool]\nbackends = [\"127.0.0.1:5432\", \"db:5433\", \"db:5434\"]\npinned_roles = [\n" +
			"  \"127.0.0.1:5432\",\n" + // 4: no '='
			"  \"127.0.0.1:5432=leader\",\n" + // 5: bad role
			"  \"127.0.0.1=primary\",\n" + // 6: bad address
			"  \"10.0.0.1:5432=replica\",\n" + // 7: not a backend
			"  7,\n" + // 8: wrong type
			"  \"DB.:05433=primary\",\n" + // 9: ok
			"  \"db:5433=replica\",\n" + // 10: same backend twice
			"  \"db:5434=primary\",\n" + // 11: second primary
			"]\n",
			[]want{
				{4, "pool.pinned_roles[0]", `"127.0.0.1:5432" is not host:port=primary or host:port=replica`},
				{5, "pool.pinned_roles[1]", `role "leader" is not one of primary, replica`},
				{6, "pool.pinned_roles[2]", `"127.0.0.1" is not host:port`},
				{7, "pool.pinned_roles[3]", `"10.0.0.1:5432" is not one of pool.backends`},
				{8, "pool.pinned_roles[4]", "must be a string, not integer 7"},
				{10, "pool.pinned_roles[6]", `"db:5433=replica" pins the same backend as pool.pinned_roles[5]`},
				{11, "pool.pinned_roles[7]", "more than one backend pinned as primary (pool.pinned_roles[5] is too)"},
			}},

		// Backends.
		{"missing backends", "[pool]\nbind = \"127.0.0.1:6432\"\n",
			[]want{{1, "pool.backends", "at least one backend is required"}}},
		{"empty backends", "[pool]\nbackends = []\n",
			[]want{{2, "pool.backends", "at least one backend is required"}}},
		{"duplicate backends", "[pool]\nbackends = [\n  \"127.0.0.1:5432\",\n  \"db:5432\",\n  \"127.0.0.1:5432\",\n  \"DB.:05432\",\n]\n",
			[]want{{5, "pool.backends[2]", `"127.0.0.1:5432" duplicates pool.backends[0]`}, {6, "pool.backends[3]", `"DB.:05432" duplicates pool.backends[1]`}}},
		{"unix backend without port", "[pool]\nbackends = [\"/var/run/postgresql\"]\n",
			[]want{{2, "pool.backends[0]", `"/var/run/postgresql" is not /directory:port (missing port in address)`}}},
		{"unix backend bad port", "[pool]\nbackends = [\"/tmp:pg\", \"/tmp:0\"]\n",
			[]want{{2, "pool.backends[0]", `"/tmp:pg": port "pg" is not a number`}, {2, "pool.backends[1]", `"/tmp:0": port 0 is out of range 1..65535`}}},
		{"unix backend path too long", "[pool]\nbackends = [\"/" + strings.Repeat("d", 95) + ":5432\"]\n",
			[]want{{2, "pool.backends[0]", "is 110 bytes, longer than the 107 that fit in sockaddr_un"}}},
		{"unix backend NUL", "[pool]\nbackends = [\"/tmp/a\\u0000b:5432\"]\n",
			[]want{{2, "pool.backends[0]", "the Unix socket directory contains a NUL byte"}}},
		{"unix backend comma", "[pool]\nbackends = [\"/tmp/a,b:5432\"]\n",
			[]want{{2, "pool.backends[0]", "must not contain ','"}}},
		{"relative unix backend", "[pool]\nbackends = [\"run/postgresql:5432\"]\n",
			[]want{{2, "pool.backends[0]", "a Unix socket directory must be an absolute path"}}},
		{"duplicate unix backends", "[pool]\nbackends = [\n  \"/var/run/postgresql:5432\",\n  \"/var/run//postgresql/:05432\",\n  \"/var/run/postgresql:5433\",\n]\n",
			[]want{{4, "pool.backends[1]", `"/var/run//postgresql/:05432" duplicates pool.backends[0]`}}},
		{"unix bind", "[pool]\nbackends = [\"/tmp:5432\"]\nbind = \"/tmp:6432\"\n",
			[]want{{3, "pool.bind", `"/tmp" is not a valid host name or IP address`}}},

		// Auth.
		{"auth_file missing", minimal + "[auth]\nauth_file = \"nope.txt\"\n",
			[]want{{4, "auth.auth_file", "nope.txt: no such file or directory"}}},
		{"auth_file is a directory", minimal + "[auth]\nauth_file = \".\"\n",
			[]want{{4, "auth.auth_file", "is not a regular file"}}},
		{"auth_user without auth_query", minimal + "[auth]\nauth_user = \"pgbouncer\"\nauth_query = \"\"\n",
			[]want{{5, "auth.auth_query", "must not be empty when auth_user is set"}}},

		// Admin.
		{"empty admin user", minimal + "[admin]\nadmin_users = [\"postgres\", \"\"]\n",
			[]want{{4, "admin.admin_users[1]", "user name must not be empty"}}},

		// TOML syntax and semantics: one problem, with its line.
		{"syntax: missing value", "[pool]\nbackends = [\"h:1\"]\nbind = \n",
			[]want{{3, "", "invalid TOML: "}}},
		{"syntax: unclosed array", "[pool]\nbackends = [\n  \"h:1\",\n  \"h:2\"\n\n[auth]\n",
			[]want{{6, "", "invalid TOML: "}}},
		{"syntax: duplicate key", minimal + "bind = \"h:1\"\nbind = \"h:2\"\n",
			[]want{{4, "pool.bind", "invalid TOML: key bind is already defined"}}},
		{"syntax: duplicate table", minimal + "[pool]\n",
			[]want{{3, "pool", "invalid TOML: table pool already exists"}}},
		{"syntax: bad escape", minimal + "bind = \"\\q\"\n",
			[]want{{3, "", "invalid TOML: invalid escape character"}}},
		{"syntax: integer overflow", minimal + "workers = 99999999999999999999\n",
			[]want{{3, "", "invalid TOML: "}}},

		// Dotted keys and inline tables still get their own line.
		{"inline table", minimal + "log = { level = \"loud\" }\n",
			[]want{{3, "pool.log", "unknown key"}}},
		{"top-level inline table", "log = { format = \"json\",\n  level = \"loud\" }\n" + minimal,
			[]want{{2, "log.level", `"loud" is not one of`}}},

		// Every problem is reported, in line order.
		{"many problems", `[pool]
backends = [
  "127.0.0.1",
  "127.0.0.1:5432",
  "127.0.0.1:5432",
]
bind = "0.0.0.0:0"
max_clients = 5
routing = "fastest"
pool_size = 2000
query_wait_timeout = "-1s"

[auth]
auth_type = "plain"
auth_file = "missing.txt"

[log]
level = 1
`, []want{
			{3, "pool.backends[0]", "missing port"},
			{5, "pool.backends[2]", "duplicates pool.backends[1]"},
			{7, "pool.bind", "port 0 is out of range"},
			{8, "pool.max_clients", "unknown key"},
			{9, "pool.routing", `"fastest" is not one of`},
			{10, "pool.pool_size", "2000 exceeds max_server_connections (1000)"},
			{11, "pool.query_wait_timeout", "must not be negative"},
			{14, "auth.auth_type", `"plain" is not one of`},
			{15, "auth.auth_file", "no such file or directory"},
			{18, "log.level", "must be a string"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeConfig(t, tt.body)
			cfg, err := Load(path)
			if cfg != nil {
				t.Errorf("Load returned a config along with an error")
			}
			checkProblems(t, path, err, tt.wants)
		})
	}
}

func TestErrorFormat(t *testing.T) {
	body := "[pool]\nbackends = [\"127.0.0.1:5432\"]\n\n\n\n\nrouting = \"fastest\"\nmax_server_connections = 0\n"
	_, err := Parse("poolmgr.toml", []byte(body))
	const wantErr = `poolmgr.toml:7: pool.routing: "fastest" is not one of round_robin, least_conn, random, hash
poolmgr.toml:8: pool.max_server_connections: 0 is below the minimum of 1`
	if err == nil || err.Error() != wantErr {
		t.Fatalf("error =\n%v\nwant\n%s", err, wantErr)
	}
	var p Problem
	if !errors.As(err, &p) || p.Key != "pool.routing" {
		t.Errorf("errors.As(Problem) = %+v", p)
	}

	// Problems without a line or file leave those parts out.
	for _, tt := range []struct {
		p    Problem
		want string
	}{
		{Problem{File: "f.toml", Key: "pool.backends", Msg: "m"}, "f.toml: pool.backends: m"},
		{Problem{Line: 3, Key: "k", Msg: "m"}, "line 3: k: m"},
		{Problem{File: "f.toml", Line: 2, Msg: "m"}, "f.toml:2: m"},
		{Problem{Msg: "m"}, "m"},
	} {
		if got := tt.p.Error(); got != tt.want {
			t.Errorf("%+v.Error() = %q, want %q", tt.p, got, tt.want)
		}
	}
}

func TestMissingPoolSectionHasNoLine(t *testing.T) {
	path := writeConfig(t, "# nothing\n")
	_, err := Load(path)
	checkProblems(t, path, err, []want{{0, "pool.backends", "at least one backend is required"}})
	if got, want := err.Error(), path+": pool.backends: at least one backend is required"; got != want {
		t.Errorf("error = %q, want %q", got, want)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "absent.toml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v, want ErrNotExist", err)
	}
	if Check(filepath.Join(t.TempDir(), "absent.toml")) == nil {
		t.Fatal("Check of a missing file returned nil")
	}
}

func TestCheck(t *testing.T) {
	if err := Check(writeConfig(t, minimal)); err != nil {
		t.Fatalf("Check(valid) = %v", err)
	}
	path := writeConfig(t, minimal+"routing = \"x\"\n")
	checkProblems(t, path, Check(path), []want{{3, "pool.routing", "is not one of"}})
}

func TestDefaults(t *testing.T) {
	path := writeConfig(t, minimal)
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Pool: Pool{
			Backends:                    []string{"127.0.0.1:5432"},
			Bind:                        "0.0.0.0:6432",
			MaxClientConnections:        1048576,
			MaxServerConnections:        1000,
			Routing:                     "least_conn",
			CacheTTLMs:                  0,
			CacheMaxBytes:               64 << 20,
			CacheMaxEntryBytes:          1 << 20,
			CacheBus:                    true,
			PoolMode:                    "transaction",
			PoolSize:                    0,
			MinPoolSize:                 0,
			MaxServerLogins:             16,
			ServerResetQuery:            "DISCARD ALL",
			Workers:                     0,
			IOEngine:                    "auto",
			MaxMessageSize:              64 << 20,
			MaxPreparedStatements:       200,
			MaxClientPreparedStatements: 10000,
			QueryWaitTimeout:            Duration(120 * time.Second),
			ServerIdleTimeout:           Duration(600 * time.Second),
			ServerLifetime:              Duration(3600 * time.Second),
			ServerConnectTimeout:        Duration(15 * time.Second),
			ServerLoginRetry:            Duration(15 * time.Second),
			IdleTransactionTimeout:      0,
			ClientLoginTimeout:          Duration(60 * time.Second),
			ShutdownTimeout:             Duration(30 * time.Second),
			HealthCheckInterval:         Duration(time.Second),
			HealthCheckTimeout:          Duration(2 * time.Second),
			HealthCheckFailures:         3,
			HealthCheckUser:             "",
			HealthCheckDBName:           "postgres",
			MaxReplicaLagMs:             10000,
			ReadYourWrites:              true,
			RoutingHashKey:              "client_addr",
			DefaultRoute:                "auto",
		},
		Auth: Auth{
			AuthType:  "scram-sha-256",
			AuthQuery: "SELECT usename, passwd FROM pg_shadow WHERE usename=$1",
		},
		Log:  Log{Level: "info", Format: "text", RateLimit: 10},
		Path: path,
	}
	got := *cfg
	got.lines = nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Load(minimal) =\n%+v\nwant\n%+v", got, want)
	}

	def := Default()
	def.Pool.Backends = []string{"127.0.0.1:5432"}
	def.Path = path
	if !reflect.DeepEqual(*def, want) {
		t.Errorf("Default() =\n%+v\nwant\n%+v", *def, want)
	}
	if cfg.EffectivePoolSize() != 1000 {
		t.Errorf("EffectivePoolSize() = %d, want 1000", cfg.EffectivePoolSize())
	}
	if n := cfg.WorkerCount(); n < 1 {
		t.Errorf("WorkerCount() = %d", n)
	}
	if u := cfg.EffectiveHealthCheckUser(); u != "postgres" {
		t.Errorf("EffectiveHealthCheckUser() = %q, want postgres", u)
	}
}

func TestDefaultIsValidOnceBackendsSet(t *testing.T) {
	c := Default()
	var ve *ValidationError
	if err := c.Validate(); !errors.As(err, &ve) || len(ve.Problems) != 1 || ve.Problems[0].Key != "pool.backends" {
		t.Fatalf("Default().Validate() = %v, want only the missing backends", err)
	}
	c.Pool.Backends = []string{"127.0.0.1:5432"}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate() = %v", err)
	}
}

func TestEffectivePoolSizeAndWorkers(t *testing.T) {
	c := Default()
	c.Pool.MaxServerConnections = 50
	if got := c.EffectivePoolSize(); got != 50 {
		t.Errorf("pool_size 0: EffectivePoolSize() = %d, want 50", got)
	}
	c.Pool.PoolSize = 20
	if got := c.EffectivePoolSize(); got != 20 {
		t.Errorf("pool_size 20: EffectivePoolSize() = %d, want 20", got)
	}
	c.Pool.Workers = 3
	if got := c.WorkerCount(); got != 3 {
		t.Errorf("workers 3: WorkerCount() = %d", got)
	}
}

func TestLoadValues(t *testing.T) {
	path := writeConfig(t, `# all keys
[pool]
backends = ["127.0.0.1:20000", "[::1]:20001", "db.example.com:5432"]
bind = "127.0.0.1:7432"
max_client_connections = 100
max_server_connections = 10
routing = "hash"
cache_ttl_ms = 0
pool_mode = "session"
pool_size = 5
min_pool_size = 2
max_server_logins = 4
server_reset_query = ""
workers = 2
io_engine = "fallback"
max_message_size = 1_048_576
query_wait_timeout = 1.5
server_idle_timeout = "250ms"
server_lifetime = 0
server_connect_timeout = "2m"
server_login_retry = 1
idle_transaction_timeout = "30"
client_login_timeout = 5e1
shutdown_timeout = 0.001
health_check_interval = 0.5
health_check_timeout = "750ms"
health_check_failures = 5
health_check_user = "monitor"
health_check_dbname = "app"
max_replica_lag_ms = 0
pinned_roles = ["127.0.0.1:20000=primary", "DB.Example.com:5432=replica"]

[auth]
auth_type = "md5"
auth_file = "userlist.txt"
auth_user = "pgbouncer"
auth_query = "SELECT 1"
auth_dbname = "postgres"

[log]
level = "debug"
format = "json"
log_connections = true
log_disconnections = true
rate_limit = 5

[admin]
admin_users = ["postgres"]
stats_users = ["stats", "monitor"]
metrics_bind = ":9930"
`)
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.Pool
	if !reflect.DeepEqual(p.Backends, []string{"127.0.0.1:20000", "[::1]:20001", "db.example.com:5432"}) {
		t.Errorf("Backends = %q", p.Backends)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"bind", p.Bind, "127.0.0.1:7432"},
		{"max_client_connections", p.MaxClientConnections, 100},
		{"max_server_connections", p.MaxServerConnections, 10},
		{"routing", p.Routing, "hash"},
		{"pool_mode", p.PoolMode, "session"},
		{"pool_size", p.PoolSize, 5},
		{"min_pool_size", p.MinPoolSize, 2},
		{"max_server_logins", p.MaxServerLogins, 4},
		{"server_reset_query", p.ServerResetQuery, ""},
		{"workers", p.Workers, 2},
		{"io_engine", p.IOEngine, "fallback"},
		{"max_message_size", p.MaxMessageSize, 1 << 20},
		{"query_wait_timeout", p.QueryWaitTimeout.D(), 1500 * time.Millisecond},
		{"server_idle_timeout", p.ServerIdleTimeout.D(), 250 * time.Millisecond},
		{"server_lifetime", p.ServerLifetime.D(), time.Duration(0)},
		{"server_connect_timeout", p.ServerConnectTimeout.D(), 2 * time.Minute},
		{"server_login_retry", p.ServerLoginRetry.D(), time.Second},
		{"idle_transaction_timeout", p.IdleTransactionTimeout.D(), 30 * time.Second},
		{"client_login_timeout", p.ClientLoginTimeout.D(), 50 * time.Second},
		{"shutdown_timeout", p.ShutdownTimeout.D(), time.Millisecond},
		{"health_check_interval", p.HealthCheckInterval.D(), 500 * time.Millisecond},
		{"health_check_timeout", p.HealthCheckTimeout.D(), 750 * time.Millisecond},
		{"health_check_failures", p.HealthCheckFailures, 5},
		{"health_check_user", p.HealthCheckUser, "monitor"},
		{"EffectiveHealthCheckUser", cfg.EffectiveHealthCheckUser(), "monitor"},
		{"health_check_dbname", p.HealthCheckDBName, "app"},
		{"max_replica_lag_ms", p.MaxReplicaLagMs, 0},
		{"pinned_roles", p.PinnedRoles, []string{"127.0.0.1:20000=primary", "DB.Example.com:5432=replica"}},
		{"Pins", cfg.Pins(), []Pin{{"127.0.0.1:20000", RolePrimary}, {"db.example.com:5432", RoleReplica}}},
		{"auth_type", cfg.Auth.AuthType, "md5"},
		{"auth_file", cfg.Auth.AuthFile, filepath.Join(filepath.Dir(path), "userlist.txt")},
		{"auth_user", cfg.Auth.AuthUser, "pgbouncer"},
		{"auth_query", cfg.Auth.AuthQuery, "SELECT 1"},
		{"auth_dbname", cfg.Auth.AuthDBName, "postgres"},
		{"level", cfg.Log.Level, "debug"},
		{"format", cfg.Log.Format, "json"},
		{"log_connections", cfg.Log.LogConnections, true},
		{"log_disconnections", cfg.Log.LogDisconnections, true},
		{"rate_limit", cfg.Log.RateLimit, 5},
		{"admin_users", cfg.Admin.AdminUsers, []string{"postgres"}},
		{"stats_users", cfg.Admin.StatsUsers, []string{"stats", "monitor"}},
		{"metrics_bind", cfg.Admin.MetricsBind, ":9930"},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}
}

func TestAuthFileRelativeToConfig(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "etc", "secrets"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "etc", "secrets", "users.txt"), []byte(`"a" "b"`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "etc", "poolmgr.toml")
	if err := os.WriteFile(cfgPath, []byte(minimal+"[auth]\nauth_file = \"secrets/users.txt\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Load with a relative path from another working directory.
	t.Chdir(dir)
	cfg, err := Load(filepath.Join("etc", "poolmgr.toml"))
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(dir, "etc", "secrets", "users.txt")
	if cfg.Auth.AuthFile != want {
		t.Errorf("AuthFile = %q, want %q", cfg.Auth.AuthFile, want)
	}
	if !filepath.IsAbs(cfg.Auth.AuthFile) {
		t.Errorf("AuthFile %q is not absolute", cfg.Auth.AuthFile)
	}

	// An absolute auth_file is kept.
	path := writeConfig(t, minimal+"[auth]\nauth_file = \""+want+"\"\n")
	cfg, err = Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Auth.AuthFile != want {
		t.Errorf("absolute AuthFile = %q, want %q", cfg.Auth.AuthFile, want)
	}
}

func TestAuthFileUnreadable(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root can read any file")
	}
	path := writeConfig(t, minimal+"[auth]\nauth_file = \"userlist.txt\"\n")
	if err := os.Chmod(filepath.Join(filepath.Dir(path), "userlist.txt"), 0); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	checkProblems(t, path, err, []want{{4, "auth.auth_file", "permission denied"}})
}

func TestLines(t *testing.T) {
	data := []byte(`top = 1
[pool]
backends = [
  "a:1", # comment
  "b:2",
  [ "nested" ],
]
x.y.z = { k = [1,
  2] }
[[arr]]
v = 1
[[arr]]
v = 2
"quoted.key" = 3
`)
	got := keyLines(data)
	want := map[string]int{
		"top": 1, "pool": 2, "pool.backends": 3, "pool.backends[0]": 4, "pool.backends[1]": 5,
		"pool.backends[2]": 6, "pool.backends[2][0]": 6, "pool.x": 8, "pool.x.y": 8, "pool.x.y.z": 8,
		"pool.x.y.z.k": 8, "pool.x.y.z.k[0]": 8, "pool.x.y.z.k[1]": 9,
		"arr": 10, "arr[0]": 10, "arr[0].v": 11, "arr[1]": 12, "arr[1].v": 13, `arr[1]."quoted.key"`: 14,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("keyLines =\n%v\nwant\n%v", got, want)
	}
}

func TestEffectiveHealthCheckUser(t *testing.T) {
	c := Default()
	if got := c.EffectiveHealthCheckUser(); got != "postgres" {
		t.Errorf("default: %q, want postgres", got)
	}
	c.Auth.AuthUser = "pgbouncer"
	if got := c.EffectiveHealthCheckUser(); got != "pgbouncer" {
		t.Errorf("auth_user set: %q, want pgbouncer", got)
	}
	c.Pool.HealthCheckUser = "monitor"
	if got := c.EffectiveHealthCheckUser(); got != "monitor" {
		t.Errorf("health_check_user set: %q, want monitor", got)
	}
}

func TestPins(t *testing.T) {
	c := Default()
	c.Pool.Backends = []string{"127.0.0.1:20000", "[::1]:20001", "localhost:20002"}
	c.Pool.PinnedRoles = []string{"[0:0::1]:20001=replica", "LOCALHOST.:20002 = primary", "bogus", "127.0.0.1:1=primary"}
	want := []Pin{{"[::1]:20001", RoleReplica}, {"localhost:20002", RolePrimary}}
	if got := c.Pins(); !reflect.DeepEqual(got, want) {
		t.Errorf("Pins() = %+v, want %+v", got, want)
	}
	c.Pool.PinnedRoles = c.Pool.PinnedRoles[:2]
	if err := c.Validate(); err != nil {
		t.Errorf("Validate() = %v", err)
	}
}

// Unix-socket backends: pinned by any spelling of the same directory and
// port; the pin names the backend as written.
func TestPinsUnixSocket(t *testing.T) {
	c := Default()
	c.Pool.Backends = []string{"/var/run/postgresql:5432", "127.0.0.1:20001", "/tmp/a:b:5432"}
	c.Pool.PinnedRoles = []string{"/var/run/postgresql/:05432=primary", "127.0.0.1:20001=replica", "/tmp/a:b/:5432=replica"}
	want := []Pin{{"/var/run/postgresql:5432", RolePrimary}, {"127.0.0.1:20001", RoleReplica}, {"/tmp/a:b:5432", RoleReplica}}
	if got := c.Pins(); !reflect.DeepEqual(got, want) {
		t.Errorf("Pins() = %+v, want %+v", got, want)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate() = %v", err)
	}
	c.Pool.PinnedRoles = []string{"/var/run/postgresql:5433=primary"}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), `"/var/run/postgresql:5433" is not one of pool.backends`) {
		t.Errorf("pin of another port: Validate() = %v", err)
	}
}

func TestRoutingKeys(t *testing.T) {
	path := writeConfig(t, minimal+"primary_reads = true\nread_your_writes = false\nrouting_hash_key = \"user\"\ndefault_route = \"primary\"\nuser_routes = [\"report=replica\"]\ndatabase_routes = [\"app=auto\"]\n[auth]\nauth_file = \"userlist.txt\"\n")
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.Pool
	if !p.PrimaryReads || p.ReadYourWrites || p.RoutingHashKey != "user" || p.DefaultRoute != "primary" {
		t.Fatalf("routing keys not loaded: %+v", p)
	}
	if m := RouteMap(p.UserRoutes); m["report"] != "replica" {
		t.Fatalf("user_routes: %v", m)
	}
	bad := writeConfig(t, minimal+"routing_hash_key = \"ip\"\nuser_routes = [\"x\"]\n[auth]\nauth_file = \"userlist.txt\"\n")
	if _, err := Load(bad); err == nil || !strings.Contains(err.Error(), "pool.routing_hash_key") || !strings.Contains(err.Error(), "pool.user_routes[0]") {
		t.Fatalf("bad routing keys: %v", err)
	}
}
