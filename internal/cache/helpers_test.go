package cache

import (
	"context"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/poolmgr/poolmgr/internal/testutil"
)

// fakeResolver serves catalogs set by the test.
type fakeResolver struct {
	mu    sync.Mutex
	cats  map[string]*Catalog
	loads int
	err   error
}

func (f *fakeResolver) Load(_ context.Context, db string) (*Catalog, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.loads++
	if f.err != nil {
		return nil, f.err
	}
	cat := f.cats[db]
	if cat == nil {
		return &Catalog{}, nil
	}
	return cat, nil
}

func (f *fakeResolver) set(db string, cat *Catalog) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cats == nil {
		f.cats = map[string]*Catalog{}
	}
	f.cats[db] = cat
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("POOLMGR_TEST_DEBUG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func newTestCache(t testing.TB, cfg Config) *Cache {
	t.Helper()
	if cfg.TTL == 0 {
		cfg.TTL = time.Hour
	}
	c := New(cfg, testLogger(t))
	t.Cleanup(c.Close)
	return c
}

// loadSync installs cat as the current catalog of db without the catalog
// goroutine (deterministic tests).
func loadSync(t testing.TB, c *Cache, db string, cat *Catalog) {
	t.Helper()
	if c.resolver.Load() == nil {
		c.resolver.Store(&resolverBox{r: &fakeResolver{}})
	}
	d := c.dbFor(db, true)
	seq := d.dirty.Load()
	c.applyCatalog(d, cat, time.Now().UnixNano())
	d.want.Store(false)
	d.clean.Store(seq)
}

// tables returns plain relations with no dependencies.
func tables(names ...string) []Relation {
	out := make([]Relation, len(names))
	for i, n := range names {
		out[i] = Relation{Schema: "public", Name: n}
	}
	return out
}

func tbl(names ...string) []Table {
	out := make([]Table, len(names))
	for i, n := range names {
		out[i] = Table{Name: n}
	}
	return out
}

func keyOf(parts ...string) Key {
	var k KeyBuilder
	for _, p := range parts {
		k.AddString(p)
	}
	return k.Sum()
}

// put snapshots tables, then stores resp under key; reports Put's result.
func put(c *Cache, db, key string, resp string, names ...string) bool {
	s := c.Snapshot(db, tbl(names...))
	return c.Put(keyOf(db, key), &s, []byte(resp), time.Now().UnixNano())
}

func get(c *Cache, db, key string) (string, bool) {
	r, ok := c.Get(keyOf(db, key), time.Now().UnixNano())
	return string(r), ok
}

// pgAddr is testutil.PostgresAddr.
func pgAddr(t testing.TB) string { return testutil.PostgresAddr(t) }

func connString(addr, db string) string {
	host, port, _ := net.SplitHostPort(addr)
	return "host=" + host + " port=" + port + " user=postgres password=postgres dbname=" + db + " sslmode=disable"
}

// waitFor polls cond every millisecond until it holds or d passes.
func waitFor(d time.Duration, cond func() bool) bool {
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if cond() {
			return true
		}
		time.Sleep(time.Millisecond)
	}
	return cond()
}
