package config

// Defaults and limits of the query result cache keys (pool.cache_*).
const (
	DefaultCacheMaxBytes      = 64 << 20 // pool.cache_max_bytes
	DefaultCacheMaxEntryBytes = 1 << 20  // pool.cache_max_entry_bytes
	MinCacheMaxBytes          = 64 << 10
	MaxCacheMaxBytes          = 1 << 40
	MaxCacheMaxEntryBytes     = 1 << 30
)

// cacheKeys checks the pool.cache_* and pool.nocache_* keys.
func (v *validator) cacheKeys() {
	p := &v.cfg.Pool
	v.intRange("pool.cache_max_bytes", p.CacheMaxBytes, MinCacheMaxBytes, MaxCacheMaxBytes)
	if !v.isBad("pool.cache_max_entry_bytes") {
		switch {
		case p.CacheMaxEntryBytes < 1 || p.CacheMaxEntryBytes > MaxCacheMaxEntryBytes:
			v.addf("pool.cache_max_entry_bytes", "%d is out of range 1..%d", p.CacheMaxEntryBytes, MaxCacheMaxEntryBytes)
		case p.CacheMaxEntryBytes > p.CacheMaxBytes && !v.isBad("pool.cache_max_bytes") &&
			p.CacheMaxBytes >= MinCacheMaxBytes && p.CacheMaxBytes <= MaxCacheMaxBytes:
			v.addf("pool.cache_max_entry_bytes", "%d exceeds cache_max_bytes (%d)", p.CacheMaxEntryBytes, p.CacheMaxBytes)
		}
	}
	for _, list := range []struct {
		key   string
		names []string
		what  string
	}{
		{"pool.cache_databases", p.CacheDatabases, "database"},
		{"pool.cache_users", p.CacheUsers, "user"},
		{"pool.nocache_databases", p.NoCacheDatabases, "database"},
		{"pool.nocache_users", p.NoCacheUsers, "user"},
	} {
		if v.isBad(list.key) {
			continue
		}
		for i, n := range list.names {
			if n == "" && !v.isBad(indexKey(list.key, i)) {
				v.addf(indexKey(list.key, i), "%s name must not be empty", list.what)
			}
		}
	}
}
