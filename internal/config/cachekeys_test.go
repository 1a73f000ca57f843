package config

import (
	"reflect"
	"testing"
)

func TestCacheKeysValues(t *testing.T) {
	path := writeConfig(t, minimal+`cache_ttl_ms = 5000
cache_max_bytes = 1_048_576
cache_max_entry_bytes = 65536
cache_bus = false
cache_databases = ["app", "shop"]
cache_users = ["web"]
nocache_databases = ["audit"]
nocache_users = ["admin", "etl"]
`)
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.Pool
	if p.CacheTTLMs != 5000 || p.CacheMaxBytes != 1<<20 || p.CacheMaxEntryBytes != 65536 || p.CacheBus {
		t.Errorf("scalars: ttl %d max %d entry %d bus %v", p.CacheTTLMs, p.CacheMaxBytes, p.CacheMaxEntryBytes, p.CacheBus)
	}
	for _, c := range []struct {
		got, want []string
	}{
		{p.CacheDatabases, []string{"app", "shop"}},
		{p.CacheUsers, []string{"web"}},
		{p.NoCacheDatabases, []string{"audit"}},
		{p.NoCacheUsers, []string{"admin", "etl"}},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

func TestCacheKeysDefaults(t *testing.T) {
	cfg, err := Load(writeConfig(t, minimal))
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.Pool
	if p.CacheMaxBytes != 64<<20 || p.CacheMaxEntryBytes != 1<<20 || !p.CacheBus ||
		p.CacheDatabases != nil || p.CacheUsers != nil || p.NoCacheDatabases != nil || p.NoCacheUsers != nil {
		t.Errorf("defaults: %+v", p)
	}
}

func TestCacheKeysErrors(t *testing.T) {
	tests := []struct {
		name  string
		body  string
		wants []want
	}{
		{"max_bytes small", minimal + "cache_max_bytes = 1000\n",
			[]want{{3, "pool.cache_max_bytes", "1000 is out of range 65536..1099511627776"}}},
		{"max_bytes string", minimal + "cache_max_bytes = \"64MB\"\n",
			[]want{{3, "pool.cache_max_bytes", "must be an integer"}}},
		{"entry zero", minimal + "cache_max_entry_bytes = 0\n",
			[]want{{3, "pool.cache_max_entry_bytes", "0 is out of range 1..1073741824"}}},
		{"entry above max_bytes", minimal + "cache_max_bytes = 100000\ncache_max_entry_bytes = 200000\n",
			[]want{{4, "pool.cache_max_entry_bytes", "200000 exceeds cache_max_bytes (100000)"}}},
		{"entry above default max_bytes", minimal + "cache_max_entry_bytes = 100_000_000\n",
			[]want{{3, "pool.cache_max_entry_bytes", "100000000 exceeds cache_max_bytes (67108864)"}}},
		{"bus not bool", minimal + "cache_bus = 1\n",
			[]want{{3, "pool.cache_bus", "must be true or false"}}},
		{"databases not array", minimal + "cache_databases = \"app\"\n",
			[]want{{3, "pool.cache_databases", "must be an array of strings"}}},
		{"users element type", minimal + "cache_users = [\"a\", 2]\n",
			[]want{{3, "pool.cache_users[1]", "must be a string"}}},
		{"empty names", minimal + "nocache_users = [\"\"]\nnocache_databases = [\"x\", \"\"]\n",
			[]want{{3, "pool.nocache_users[0]", "user name must not be empty"},
				{4, "pool.nocache_databases[1]", "database name must not be empty"}}},
		{"typo", minimal + "cache_max_byte = 1\n",
			[]want{{3, "pool.cache_max_byte", `unknown key (did you mean "cache_max_bytes"?)`}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeConfig(t, tt.body)
			_, err := Load(path)
			checkProblems(t, path, err, tt.wants)
		})
	}
}
