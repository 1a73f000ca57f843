package cache

import (
	"context"
	"errors"
	"math/rand/v2"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/poolmgr/poolmgr/internal/config"
	"github.com/poolmgr/poolmgr/internal/sqlscan"
)

func TestGetPutHitMiss(t *testing.T) {
	c := newTestCache(t, Config{})
	loadSync(t, c, "app", &Catalog{Relations: tables("a", "b")})
	if _, ok := get(c, "app", "q"); ok {
		t.Fatal("hit on empty cache")
	}
	if !put(c, "app", "q", "resp", "a") {
		t.Fatal("Put refused")
	}
	if r, ok := get(c, "app", "q"); !ok || r != "resp" {
		t.Fatalf("Get = %q, %v", r, ok)
	}
	if _, ok := get(c, "other", "q"); ok {
		t.Fatal("hit for another key")
	}
	st := c.Stats()
	if st.Hits != 1 || st.Misses != 2 || st.Stores != 1 || st.Entries != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestPutCopiesResponse(t *testing.T) {
	c := newTestCache(t, Config{})
	loadSync(t, c, "app", &Catalog{Relations: tables("a")})
	buf := []byte("original")
	s := c.Snapshot("app", tbl("a"))
	c.Put(keyOf("k"), &s, buf, time.Now().UnixNano())
	copy(buf, "XXXXXXXX")
	if r, ok := c.Get(keyOf("k"), time.Now().UnixNano()); !ok || string(r) != "original" {
		t.Fatalf("Get = %q, %v", r, ok)
	}
}

func TestTTL(t *testing.T) {
	ttl := time.Hour
	c := newTestCache(t, Config{TTL: ttl})
	loadSync(t, c, "app", &Catalog{Relations: tables("a")})
	now := time.Now().UnixNano()
	s := c.Snapshot("app", tbl("a"))
	if !c.Put(keyOf("k"), &s, []byte("r"), now) {
		t.Fatal("Put refused")
	}
	if _, ok := c.Get(keyOf("k"), now+int64(ttl)-1); !ok {
		t.Fatal("miss before the TTL")
	}
	if _, ok := c.Get(keyOf("k"), now+int64(ttl)); ok {
		t.Fatal("hit at the TTL")
	}
	// The expired entry is gone, not only hidden.
	if _, ok := c.Get(keyOf("k"), now); ok {
		t.Fatal("expired entry still stored")
	}
	if st := c.Stats(); st.Stale != 1 {
		t.Fatalf("stale = %d", st.Stale)
	}
}

func TestTTLRealClock(t *testing.T) {
	c := newTestCache(t, Config{TTL: 300 * time.Millisecond})
	loadSync(t, c, "app", &Catalog{Relations: tables("a")})
	put(c, "app", "k", "r", "a")
	if _, ok := get(c, "app", "k"); !ok {
		t.Fatal("miss at once")
	}
	time.Sleep(350 * time.Millisecond)
	if _, ok := get(c, "app", "k"); ok {
		t.Fatal("hit after the TTL")
	}
}

func TestZeroTTLStoresNothing(t *testing.T) {
	c := New(Config{}, nil)
	defer c.Close()
	loadSync(t, c, "app", &Catalog{Relations: tables("a")})
	if put(c, "app", "k", "r", "a") {
		t.Fatal("Put with TTL 0 stored")
	}
	if c.Enabled("app", "u") {
		t.Fatal("Enabled with TTL 0")
	}
}

func TestMaxEntryBytes(t *testing.T) {
	c := newTestCache(t, Config{MaxEntryBytes: 100})
	loadSync(t, c, "app", &Catalog{Relations: tables("a")})
	if !put(c, "app", "small", string(make([]byte, 100)), "a") {
		t.Fatal("100 bytes refused")
	}
	if put(c, "app", "big", string(make([]byte, 101)), "a") {
		t.Fatal("101 bytes stored")
	}
	if st := c.Stats(); st.TooBig != 1 {
		t.Fatalf("TooBig = %d", st.TooBig)
	}
}

// TestMemoryBound floods the cache with distinct entries: the weighted size
// never exceeds MaxBytes by more than one entry, and evictions are counted.
func TestMemoryBound(t *testing.T) {
	const maxBytes = 1 << 20
	const maxEntry = 8 << 10
	c := newTestCache(t, Config{MaxBytes: maxBytes, MaxEntryBytes: maxEntry})
	loadSync(t, c, "app", &Catalog{Relations: tables("a")})
	rng := rand.New(rand.NewPCG(1, 2))
	resp := make([]byte, maxEntry)
	var total uint64
	now := time.Now().UnixNano()
	for i := range 20000 {
		n := 1 + rng.IntN(maxEntry)
		s := c.Snapshot("app", tbl("a"))
		if !c.Put(keyOf(strconv.Itoa(i)), &s, resp[:n], now) {
			t.Fatalf("Put %d refused", i)
		}
		total += uint64(n)
		if w := c.store.WeightedSize(); w > maxBytes+maxEntry+entryOverhead {
			t.Fatalf("after %d puts: weighted size %d > %d + one entry", i+1, w, maxBytes)
		}
	}
	st := c.Stats()
	if st.Bytes > maxBytes || st.Evictions == 0 || total < 10*maxBytes {
		t.Fatalf("stats %+v (total stored %d)", st, total)
	}
	t.Logf("stored %d MiB through a 1 MiB cache: %d entries left, %d bytes, %d evictions",
		total>>20, st.Entries, st.Bytes, st.Evictions)
}

// TestPutAfterInvalidateRefused is the race rule: a read that started
// before a write committed is not stored after the write's invalidation.
func TestPutAfterInvalidateRefused(t *testing.T) {
	c := newTestCache(t, Config{})
	loadSync(t, c, "app", &Catalog{Relations: tables("a", "b")})
	s := c.Snapshot("app", tbl("a", "b"))
	if !s.Cacheable() {
		t.Fatal("snapshot not cacheable")
	}
	c.Invalidate("app", tbl("b"))
	if c.Put(keyOf("k"), &s, []byte("old"), time.Now().UnixNano()) {
		t.Fatal("Put after Invalidate of a table it read was accepted")
	}
	if st := c.Stats(); st.Raced != 1 {
		t.Fatalf("Raced = %d", st.Raced)
	}
	// A write to another table does not refuse it.
	s = c.Snapshot("app", tbl("a"))
	c.Invalidate("app", tbl("b"))
	if !c.Put(keyOf("k"), &s, []byte("new"), time.Now().UnixNano()) {
		t.Fatal("Put refused after an unrelated write")
	}
	// Nor a write to another database.
	loadSync(t, c, "other", &Catalog{Relations: tables("a")})
	s = c.Snapshot("app", tbl("a"))
	c.Invalidate("other", tbl("a"))
	if !c.Put(keyOf("k2"), &s, []byte("new"), time.Now().UnixNano()) {
		t.Fatal("Put refused after a write in another database")
	}
}

// TestPutRacingInvalidate: an Invalidate between Put's version check and
// its insertion must still win (entries carry their versions).
func TestStoredEntryCheckedOnGet(t *testing.T) {
	c := newTestCache(t, Config{})
	loadSync(t, c, "app", &Catalog{Relations: tables("a")})
	s := c.Snapshot("app", tbl("a"))
	e := &entry{resp: []byte("x"), expires: time.Now().Add(time.Hour).UnixNano()}
	e.vs.copyFrom(&s.vs)
	c.Invalidate("app", tbl("a"))
	c.store.Set(keyOf("k"), e) // as if Put had checked just before the Invalidate
	if _, ok := c.Get(keyOf("k"), time.Now().UnixNano()); ok {
		t.Fatal("entry read before an invalidation was served after it")
	}
}

func TestInvalidateDropsEntries(t *testing.T) {
	c := newTestCache(t, Config{})
	loadSync(t, c, "app", &Catalog{Relations: tables("a", "b", "c")})
	put(c, "app", "qa", "A", "a")
	put(c, "app", "qb", "B", "b")
	put(c, "app", "qab", "AB", "a", "b")
	put(c, "app", "q0", "0") // reads no table
	c.Invalidate("app", []Table{{Schema: "public", Name: "a"}})
	for key, want := range map[string]bool{"qa": false, "qb": true, "qab": false, "q0": true} {
		if _, ok := get(c, "app", key); ok != want {
			t.Errorf("%s: hit = %v, want %v", key, ok, want)
		}
	}
	c.InvalidateData("app")
	for _, key := range []string{"qb", "q0"} {
		if _, ok := get(c, "app", key); ok {
			t.Errorf("%s: hit after InvalidateData", key)
		}
	}
	st := c.Stats()
	if st.Invalidations != 1 || st.DBInvalidations != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestSchemaIgnored: versions are kept per bare name, so s1.t and s2.t and
// t are one table (over-invalidation, never under-invalidation).
func TestSchemaIgnored(t *testing.T) {
	c := newTestCache(t, Config{})
	loadSync(t, c, "app", &Catalog{Relations: []Relation{{Schema: "s1", Name: "t"}, {Schema: "s2", Name: "t"}}})
	s := c.Snapshot("app", []Table{{Name: "t"}})
	c.Put(keyOf("k"), &s, []byte("x"), time.Now().UnixNano())
	c.Invalidate("app", []Table{{Schema: "s2", Name: "t"}})
	if _, ok := c.Get(keyOf("k"), time.Now().UnixNano()); ok {
		t.Fatal("write to s2.t did not invalidate a read of t")
	}
}

func TestUncacheableSnapshots(t *testing.T) {
	c := newTestCache(t, Config{})
	loadSync(t, c, "app", &Catalog{Relations: []Relation{
		{Name: "a"}, {Name: "tmp", NoCache: true}, {Name: "pg_fake"},
	}})
	for name, tables := range map[string][]Table{
		"unknown":     tbl("nope"),
		"no-cache":    tbl("tmp"),
		"system":      {{Schema: "pg_catalog", Name: "pg_class"}},
		"pg_ prefix":  tbl("pg_fake"),
		"temp schema": {{Schema: "pg_temp", Name: "a"}},
		"info schema": {{Schema: "information_schema", Name: "tables"}},
		"one of many": tbl("a", "nope"),
	} {
		if s := c.Snapshot("app", tables); s.Cacheable() {
			t.Errorf("%s: snapshot cacheable", name)
		}
	}
	if s := c.Snapshot("nocatalog", tbl("a")); s.Cacheable() {
		t.Error("database without a catalog: cacheable")
	}
	if !put(c, "app", "k", "r", "a") {
		t.Error("plain table refused")
	}
}

func TestNoResolverCachesNothing(t *testing.T) {
	c := newTestCache(t, Config{})
	if s := c.Snapshot("app", nil); s.Cacheable() {
		t.Fatal("cacheable without a resolver")
	}
}

func TestUnknownTableWriteInvalidatesDatabase(t *testing.T) {
	c := newTestCache(t, Config{})
	loadSync(t, c, "app", &Catalog{Relations: tables("a")})
	put(c, "app", "k", "r", "a")
	c.Invalidate("app", tbl("created_since"))
	if _, ok := get(c, "app", "k"); ok {
		t.Fatal("write to an unknown table did not invalidate the database")
	}
}

func TestSchemaChangeWaitsForCatalog(t *testing.T) {
	c := newTestCache(t, Config{})
	loadSync(t, c, "app", &Catalog{Relations: tables("a")})
	put(c, "app", "k", "r", "a")
	s := c.Snapshot("app", tbl("a"))
	c.InvalidateDatabase("app") // e.g. CREATE VIEW
	if _, ok := get(c, "app", "k"); ok {
		t.Fatal("hit after InvalidateDatabase")
	}
	if c.Put(keyOf("x"), &s, []byte("r"), time.Now().UnixNano()) {
		t.Fatal("Put of a read that started before the schema change")
	}
	if s := c.Snapshot("app", tbl("a")); s.Cacheable() {
		t.Fatal("cacheable before the catalog was reloaded")
	}
	if !c.dbFor("app", false).want.Load() {
		t.Fatal("no catalog reload requested")
	}
	loadSync(t, c, "app", &Catalog{Relations: tables("a", "v")})
	if !put(c, "app", "k", "r", "a") {
		t.Fatal("not cacheable after the reload")
	}
}

func TestViews(t *testing.T) {
	c := newTestCache(t, Config{})
	loadSync(t, c, "app", &Catalog{Relations: []Relation{
		{Name: "t"}, {Name: "u"},
		{Name: "v", Reads: []string{"t"}, WritesAnywhere: true},
		{Name: "vv", Reads: []string{"v", "u"}, WritesAnywhere: true}, // a view over a view
		{Name: "vol", Reads: []string{"u"}, NoCache: true},            // volatile view
		{Name: "over_vol", Reads: []string{"vol"}},                    // view over it
	}})
	put(c, "app", "v", "V", "v")
	put(c, "app", "vv", "VV", "vv")
	put(c, "app", "u", "U", "u")
	c.Invalidate("app", tbl("t"))
	for key, want := range map[string]bool{"v": false, "vv": false, "u": true} {
		if _, ok := get(c, "app", key); ok != want {
			t.Errorf("after write to t: %s hit = %v, want %v", key, ok, want)
		}
	}
	for _, name := range []string{"vol", "over_vol"} {
		if s := c.Snapshot("app", tbl(name)); s.Cacheable() {
			t.Errorf("%s cacheable", name)
		}
	}
	// A write through a view may reach anything: whole database.
	put(c, "app", "u", "U", "u")
	c.Invalidate("app", tbl("v"))
	if _, ok := get(c, "app", "u"); ok {
		t.Error("write through a view did not invalidate the database")
	}
}

func TestDependencies(t *testing.T) {
	c := newTestCache(t, Config{})
	loadSync(t, c, "app", &Catalog{Relations: []Relation{
		{Name: "parent", Reads: []string{"child1", "child2"}, Changes: []string{"child1", "child2"}},
		{Name: "child1"}, {Name: "child2"},
		{Name: "orders", Changes: []string{"lines"}}, // lines references orders (ON DELETE CASCADE)
		{Name: "lines"},
		{Name: "lines_view", Reads: []string{"lines"}},
		{Name: "audited", WritesAnywhere: true}, // has a trigger
		{Name: "feeds_audited", Changes: []string{"audited"}},
		{Name: "other"},
	}})
	check := func(write string, want map[string]bool) {
		t.Helper()
		for k := range want {
			put(c, "app", k, k, k)
		}
		c.Invalidate("app", tbl(write))
		for k, w := range want {
			if _, ok := get(c, "app", k); ok != w {
				t.Errorf("write to %s: %s hit = %v, want %v", write, k, ok, w)
			}
		}
	}
	check("child1", map[string]bool{"parent": false, "child1": false, "child2": true, "other": true})
	check("parent", map[string]bool{"parent": false, "child1": false, "child2": false, "other": true})
	check("orders", map[string]bool{"orders": false, "lines": false, "lines_view": false, "other": true})
	check("lines", map[string]bool{"orders": true, "lines": false, "lines_view": false})
	check("audited", map[string]bool{"other": false})
	check("feeds_audited", map[string]bool{"other": false}) // cascades into a table with triggers
}

func TestCatalogReloadChanges(t *testing.T) {
	c := newTestCache(t, Config{})
	loadSync(t, c, "app", &Catalog{Relations: []Relation{
		{Name: "t1"}, {Name: "t2"}, {Name: "v", Reads: []string{"t1"}}, {Name: "gone"}, {Name: "same"},
	}})
	put(c, "app", "v", "V", "v")
	put(c, "app", "gone", "G", "gone")
	put(c, "app", "same", "S", "same")
	sGone := c.Snapshot("app", tbl("gone"))
	old := c.dbFor("app", false).tables["gone"]
	// v redefined over t2 (outside poolmgr); gone dropped.
	loadSync(t, c, "app", &Catalog{Relations: []Relation{
		{Name: "t1"}, {Name: "t2"}, {Name: "v", Reads: []string{"t2"}}, {Name: "same"},
	}})
	for key, want := range map[string]bool{"v": false, "gone": false, "same": true} {
		if _, ok := get(c, "app", key); ok != want {
			t.Errorf("after reload: %s hit = %v, want %v", key, ok, want)
		}
	}
	if c.Put(keyOf("x"), &sGone, []byte("x"), time.Now().UnixNano()) {
		t.Error("Put of a read of a dropped table")
	}
	if old.flags.Load()&flagDead == 0 {
		t.Error("dropped table not marked dead")
	}
	put(c, "app", "v", "V", "v")
	c.Invalidate("app", tbl("t2"))
	if _, ok := get(c, "app", "v"); ok {
		t.Error("write to the new base of v did not invalidate it")
	}
	// Re-created: a new state, the dead one stays dead.
	loadSync(t, c, "app", &Catalog{Relations: tables("t1", "t2", "v", "same", "gone")})
	if c.dbFor("app", false).tables["gone"] == old {
		t.Error("dead state reused")
	}
}

func TestAffectsLimit(t *testing.T) {
	c := newTestCache(t, Config{})
	rels := []Relation{{Name: "hub"}, {Name: "other"}}
	for i := range maxAffects + 1 {
		n := "ref" + strconv.Itoa(i)
		rels[0].Changes = append(rels[0].Changes, n)
		rels = append(rels, Relation{Name: n})
	}
	loadSync(t, c, "app", &Catalog{Relations: rels})
	put(c, "app", "other", "O", "other")
	c.Invalidate("app", tbl("hub"))
	if _, ok := get(c, "app", "other"); ok {
		t.Error("a write reaching more than maxAffects relations did not invalidate the database")
	}
}

func TestStartResolver(t *testing.T) {
	c := newTestCache(t, Config{})
	r := &fakeResolver{}
	r.set("app", &Catalog{Relations: tables("a")})
	c.StartResolver(context.Background(), r)
	if s := c.Snapshot("app", tbl("a")); s.Cacheable() {
		t.Fatal("cacheable before the first load")
	}
	if !waitFor(2*time.Second, func() bool { s := c.Snapshot("app", tbl("a")); return s.Cacheable() }) {
		t.Fatal("catalog not loaded")
	}
	// A schema change: reloaded at once.
	r.set("app", &Catalog{Relations: tables("a", "b")})
	c.InvalidateDatabase("app")
	if !waitFor(2*time.Second, func() bool { s := c.Snapshot("app", tbl("b")); return s.Cacheable() }) {
		t.Fatal("catalog not reloaded after a schema change")
	}
	// A failing load keeps the database uncacheable.
	r.mu.Lock()
	r.err = errors.New("boom")
	r.mu.Unlock()
	c.InvalidateDatabase("app")
	if !waitFor(2*time.Second, func() bool { return c.Stats().CatalogErrors > 0 }) {
		t.Fatalf("no failed load: %+v", c.Stats())
	}
	if s := c.Snapshot("app", tbl("a")); s.Cacheable() {
		t.Fatal("cacheable while the catalog cannot be loaded")
	}
	if st := c.Stats(); st.CatalogLoads < 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestEnabled(t *testing.T) {
	c := newTestCache(t, Config{
		Databases: []string{"app", "audit"}, Users: []string{"web", "admin"},
		NoCacheDatabases: []string{"audit"}, NoCacheUsers: []string{"admin"},
	})
	for _, tc := range []struct {
		db, user string
		want     bool
	}{
		{"app", "web", true}, {"shop", "web", false}, {"app", "etl", false},
		{"audit", "web", false}, {"app", "admin", false},
	} {
		if got := c.Enabled(tc.db, tc.user); got != tc.want {
			t.Errorf("Enabled(%s, %s) = %v", tc.db, tc.user, got)
		}
	}
	all := newTestCache(t, Config{NoCacheUsers: []string{"x"}})
	if !all.Enabled("any", "one") || all.Enabled("any", "x") {
		t.Error("empty allow lists must allow all")
	}
}

func TestConfigFrom(t *testing.T) {
	p := config.Default().Pool
	p.CacheTTLMs = 1500
	p.NoCacheUsers = []string{"u"}
	cfg := ConfigFrom(&p)
	if cfg.TTL != 1500*time.Millisecond || cfg.MaxBytes != 64<<20 || cfg.MaxEntryBytes != 1<<20 || !cfg.Bus ||
		len(cfg.NoCacheUsers) != 1 {
		t.Fatalf("%+v", cfg)
	}
}

func TestCacheable(t *testing.T) {
	var sc sqlscan.Scanner
	for q, want := range map[string]bool{
		"SELECT * FROM t WHERE id = 1":          true,
		"VALUES (1)":                            true,
		"TABLE t":                               true,
		"SELECT now()":                          false,
		"/* poolmgr:cache */ SELECT now()":      true,
		"/* poolmgr:nocache */ SELECT * FROM t": false,
		"SELECT * FROM t FOR UPDATE":            false,
		"SELECT my_func()":                      false,
		"SELECT nextval('s')":                   false,
		"INSERT INTO t VALUES (1)":              false,
		"SELECT * INTO t2 FROM t":               false,
		"SELECT * FROM pg_class":                false,
		"SHOW search_path":                      false,
		"WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d": false,
	} {
		st := sc.ClassifyOne([]byte(q))
		if got := Cacheable(&st); got != want {
			t.Errorf("Cacheable(%q) = %v, want %v (%+v)", q, got, want, st)
		}
	}
}

func TestInvalidateStatement(t *testing.T) {
	var sc sqlscan.Scanner
	cat := &Catalog{Relations: tables("a", "b", "c")}
	for _, tc := range []struct {
		sql     string
		dropped []string // of a, b, c entries
		schema  bool     // catalog reload needed
	}{
		{"SELECT * FROM a", nil, false},
		{"INSERT INTO a SELECT * FROM b", []string{"a"}, false},
		{"UPDATE b SET x = 1 FROM c WHERE b.id = c.id", []string{"b"}, false},
		{"DELETE FROM c", []string{"c"}, false},
		{"TRUNCATE a, b", []string{"a", "b"}, false},
		{"SELECT nextval('seq')", []string{"a", "b", "c"}, false},
		{"CREATE TABLE d (x int)", []string{"a", "b", "c"}, true},
		{"DO $$ BEGIN END $$", []string{"a", "b", "c"}, true},
		{"CALL p()", []string{"a", "b", "c"}, true},
		{"SELECT my_write_func()", []string{"a", "b", "c"}, true},
		{"INSERT INTO a VALUES (now())", []string{"a"}, false},
	} {
		c := newTestCache(t, Config{})
		loadSync(t, c, "app", cat)
		for _, n := range []string{"a", "b", "c"} {
			put(c, "app", n, n, n)
		}
		st := sc.ClassifyOne([]byte(tc.sql))
		c.InvalidateStatement("app", &st)
		for _, n := range []string{"a", "b", "c"} {
			_, hit := get(c, "app", n)
			dropped := false
			for _, d := range tc.dropped {
				dropped = dropped || d == n
			}
			if hit == dropped {
				t.Errorf("%s: %s hit = %v", tc.sql, n, hit)
			}
		}
		if got := !c.dbFor("app", false).catalogReady(); got != tc.schema {
			t.Errorf("%s: catalog reload = %v, want %v", tc.sql, got, tc.schema)
		}
	}
}

func TestWritesTransaction(t *testing.T) {
	var sc sqlscan.Scanner
	c := newTestCache(t, Config{})
	loadSync(t, c, "app", &Catalog{Relations: tables("a", "b", "c")})
	for _, n := range []string{"a", "b", "c"} {
		put(c, "app", n, n, n)
	}
	var w Writes
	for _, q := range []string{"INSERT INTO a VALUES (1)", "SELECT * FROM c", "UPDATE b SET x = 2"} {
		st := sc.ClassifyOne([]byte(q))
		w.Add(&st)
	}
	if w.Empty() {
		t.Fatal("Writes empty")
	}
	// Nothing happens before the commit.
	if _, ok := get(c, "app", "a"); !ok {
		t.Fatal("invalidated before commit")
	}
	c.InvalidateWrites("app", &w)
	for n, want := range map[string]bool{"a": false, "b": false, "c": true} {
		if _, ok := get(c, "app", n); ok != want {
			t.Errorf("%s hit = %v", n, ok)
		}
	}
	w.Reset()
	if !w.Empty() {
		t.Fatal("Reset")
	}
	st := sc.ClassifyOne([]byte("CREATE INDEX ON a (x)"))
	w.Add(&st)
	st = sc.ClassifyOne([]byte("INSERT INTO a VALUES (1)"))
	w.Add(&st)
	c.InvalidateWrites("app", &w)
	if c.dbFor("app", false).catalogReady() {
		t.Fatal("DDL in a transaction did not ask for a catalog reload")
	}
}

// TestConcurrentNeverStale runs writers, readers and caching readers at
// once: a Get never returns a value older than one whose write (and
// invalidation) completed before the Get started.
func TestConcurrentNeverStale(t *testing.T) {
	c := newTestCache(t, Config{MaxBytes: 1 << 20})
	const ntables = 4
	rels := tables("t0", "t1", "t2", "t3")
	rels = append(rels, Relation{Name: "v", Reads: []string{"t0", "t1"}})
	loadSync(t, c, "app", &Catalog{Relations: rels})
	var value [ntables]atomic.Int64 // the "database"
	var done [ntables]atomic.Int64  // last value whose invalidation completed
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var hits, violations atomic.Int64
	for w := range ntables {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				v := value[w].Add(1) // commit
				c.Invalidate("app", tbl("t"+strconv.Itoa(w)))
				done[w].Store(v)
				runtime.Gosched()
			}
		}()
	}
	for r := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(r), 7))
			var buf [8]byte
			for {
				select {
				case <-stop:
					return
				default:
				}
				i := rng.IntN(ntables)
				name := "t" + strconv.Itoa(i)
				key := keyOf("app", name)
				floor := done[i].Load()
				if resp, ok := c.Get(key, time.Now().UnixNano()); ok {
					hits.Add(1)
					if got := int64(resp[0]) | int64(resp[1])<<8 | int64(resp[2])<<16; got < floor {
						violations.Add(1)
					}
					continue
				}
				s := c.Snapshot("app", tbl(name))
				if rng.IntN(2) == 0 {
					runtime.Gosched() // widen the window between snapshot and read
				}
				v := value[i].Load() // the read
				if rng.IntN(2) == 0 {
					runtime.Gosched() // and between read and Put
				}
				buf[0], buf[1], buf[2] = byte(v), byte(v>>8), byte(v>>16)
				c.Put(key, &s, buf[:], time.Now().UnixNano())
			}
		}()
	}
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()
	if violations.Load() != 0 {
		t.Fatalf("%d stale hits of %d", violations.Load(), hits.Load())
	}
	st := c.Stats()
	t.Logf("%+v", st)
}

func TestSnapshotManyTables(t *testing.T) {
	c := newTestCache(t, Config{})
	var names []string
	for i := range 20 {
		names = append(names, "t"+strconv.Itoa(i))
	}
	loadSync(t, c, "app", &Catalog{Relations: tables(names...)})
	s := c.Snapshot("app", tbl(append(names, "t0", "t1")...)) // duplicates counted once
	if !s.Cacheable() || s.vs.n != 20 {
		t.Fatalf("n = %d", s.vs.n)
	}
	c.Put(keyOf("k"), &s, []byte("x"), time.Now().UnixNano())
	c.Invalidate("app", tbl("t19"))
	if _, ok := c.Get(keyOf("k"), time.Now().UnixNano()); ok {
		t.Fatal("write to the 20th table did not invalidate")
	}
}

func TestSnapshotRefs(t *testing.T) {
	var sc sqlscan.Scanner
	c := newTestCache(t, Config{})
	loadSync(t, c, "app", &Catalog{Relations: tables("users", "orgs")})
	st := sc.ClassifyOne([]byte(`SELECT * FROM public.users u JOIN "orgs" o ON o.id = u.org`))
	s := c.SnapshotRefs("app", st.Tables)
	if !s.Cacheable() || s.vs.n != 2 {
		t.Fatalf("snapshot %+v", s)
	}
	key := keyOf("k")
	c.Put(key, &s, []byte("x"), time.Now().UnixNano())
	w := sc.ClassifyOne([]byte("UPDATE orgs SET name = 'x'"))
	c.InvalidateRefs("app", w.Tables)
	if _, ok := c.Get(key, time.Now().UnixNano()); ok {
		t.Fatal("InvalidateRefs did not invalidate")
	}
	st = sc.ClassifyOne([]byte("SELECT * FROM pg_temp.users"))
	if s := c.SnapshotRefs("app", st.Tables); s.Cacheable() {
		t.Fatal("pg_temp table cacheable")
	}
}

func TestLastWrite(t *testing.T) {
	c := newTestCache(t, Config{})
	loadSync(t, c, "app", &Catalog{Relations: tables("a", "b")})
	before := c.Snapshot("app", tbl("a")).LastWrite()
	if before == 0 {
		t.Fatal("LastWrite 0 for a database first seen now")
	}
	time.Sleep(time.Millisecond)
	c.Invalidate("app", tbl("a"))
	if lw := c.Snapshot("app", tbl("a")).LastWrite(); lw <= before {
		t.Fatalf("LastWrite %d not after the write (%d)", lw, before)
	}
	if lw := c.Snapshot("app", tbl("b")).LastWrite(); lw != before {
		t.Fatalf("LastWrite of b moved: %d", lw)
	}
}

func TestClear(t *testing.T) {
	c := newTestCache(t, Config{})
	loadSync(t, c, "app", &Catalog{Relations: tables("a")})
	put(c, "app", "k", "r", "a")
	s := c.Snapshot("app", tbl("a"))
	c.Clear()
	if _, ok := get(c, "app", "k"); ok {
		t.Fatal("hit after Clear")
	}
	if c.Put(keyOf("x"), &s, []byte("r"), time.Now().UnixNano()) {
		t.Fatal("Put of a snapshot taken before Clear")
	}
}

// BenchmarkGetHit: key building plus a hit, the hot path of a cached read.
func BenchmarkGetHit(b *testing.B) {
	c := newTestCache(b, Config{})
	loadSync(b, c, "app", &Catalog{Relations: tables("users")})
	var k KeyBuilder
	key := buildBenchKey(&k)
	s := c.Snapshot("app", tbl("users"))
	c.Put(key, &s, make([]byte, 300), time.Now().UnixNano())
	now := time.Now().UnixNano()
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := c.Get(buildBenchKey(&k), now); !ok {
			b.Fatal("miss")
		}
	}
}

// BenchmarkSnapshot: the per-read cost of capturing versions (2 tables).
func BenchmarkSnapshot(b *testing.B) {
	c := newTestCache(b, Config{})
	loadSync(b, c, "app", &Catalog{Relations: tables("users", "orgs")})
	ts := tbl("users", "orgs")
	b.ReportAllocs()
	for b.Loop() {
		if s := c.Snapshot("app", ts); !s.Cacheable() {
			b.Fatal("not cacheable")
		}
	}
}

func BenchmarkGetHitParallel(b *testing.B) {
	c := newTestCache(b, Config{})
	loadSync(b, c, "app", &Catalog{Relations: tables("users")})
	var k KeyBuilder
	key := buildBenchKey(&k)
	s := c.Snapshot("app", tbl("users"))
	c.Put(key, &s, make([]byte, 300), time.Now().UnixNano())
	now := time.Now().UnixNano()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var k KeyBuilder
		for pb.Next() {
			if _, ok := c.Get(buildBenchKey(&k), now); !ok {
				b.Fatal("miss")
			}
		}
	})
}

func BenchmarkPut(b *testing.B) {
	c := newTestCache(b, Config{MaxBytes: 8 << 20})
	loadSync(b, c, "app", &Catalog{Relations: tables("users")})
	resp := make([]byte, 300)
	now := time.Now().UnixNano()
	b.ReportAllocs()
	i := uint64(0)
	for b.Loop() {
		i++
		s := c.Snapshot("app", tbl("users"))
		c.Put(Key{i, i}, &s, resp, now)
	}
}

func TestSweep(t *testing.T) {
	c := newTestCache(t, Config{TTL: time.Minute})
	loadSync(t, c, "app", &Catalog{Relations: tables("a", "b")})
	now := time.Now().UnixNano()
	for i := range 10 {
		name := "a"
		if i%2 == 1 {
			name = "b"
		}
		s := c.Snapshot("app", tbl(name))
		c.Put(keyOf(strconv.Itoa(i)), &s, []byte("r"), now+int64(i)*int64(time.Second))
	}
	c.Invalidate("app", tbl("a")) // 5 entries invalidated
	if n := c.sweep(now); n != 5 {
		t.Fatalf("swept %d invalidated entries, want 5", n)
	}
	// b entries were stored at now+1s, 3s, 5s, 7s, 9s: at now+1m+4s, two expired.
	if n := c.sweep(now + int64(time.Minute+4*time.Second)); n != 2 {
		t.Fatalf("swept %d expired entries, want 2", n)
	}
	if st := c.Stats(); st.Entries != 3 || st.Swept != 7 {
		t.Fatalf("stats %+v", st)
	}
}

func TestCatalogUnknownNames(t *testing.T) {
	c := newTestCache(t, Config{})
	loadSync(t, c, "app", &Catalog{Relations: []Relation{
		{Name: "sysview", Reads: []string{"pg_class"}}, // reads a relation the catalog does not list
		{Name: "t", Changes: []string{"unlisted"}},
		{Name: "other"},
	}})
	if s := c.Snapshot("app", tbl("sysview")); s.Cacheable() {
		t.Error("view over an unlisted relation cacheable")
	}
	put(c, "app", "other", "O", "other")
	c.Invalidate("app", tbl("t"))
	if _, ok := get(c, "app", "other"); ok {
		t.Error("write reaching an unlisted relation did not invalidate the database")
	}
}

type blockingResolver struct{ started chan struct{} }

func (b *blockingResolver) Load(ctx context.Context, _ string) (*Catalog, error) {
	select {
	case b.started <- struct{}{}:
	default:
	}
	<-ctx.Done()
	return nil, ctx.Err()
}

func TestCloseStopsEverything(t *testing.T) {
	before := runtime.NumGoroutine()
	c := New(Config{TTL: time.Second, Bus: true}, testLogger(t))
	r := &blockingResolver{started: make(chan struct{}, 1)}
	c.StartResolver(context.Background(), r)
	c.Snapshot("app", nil) // first use: a load starts and blocks
	<-r.started
	if err := c.StartBus(context.Background(), "host=127.0.0.1 port=1 user=x connect_timeout=1", ""); err != nil {
		t.Fatal(err)
	}
	if len(c.InstanceID()) != 16 {
		t.Errorf("generated instance id %q", c.InstanceID())
	}
	start := time.Now()
	c.Close()
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Close took %v", d)
	}
	if !waitFor(2*time.Second, func() bool { return runtime.NumGoroutine() <= before }) {
		t.Errorf("goroutines: %d before, %d after Close", before, runtime.NumGoroutine())
	}
}
