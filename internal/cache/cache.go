package cache

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"
	"github.com/maypok86/otter/v2/stats"

	"github.com/poolmgr/poolmgr/internal/config"
)

// Defaults of Config fields left zero.
const (
	DefaultMaxBytes       = 64 << 20
	DefaultMaxEntryBytes  = 1 << 20
	DefaultCatalogRefresh = 30 * time.Second
	DefaultBusCoalesce    = 2 * time.Millisecond
)

// entryOverhead is added to the size of every response in the memory
// accounting: the entry, its key, otter's node and map slot.
const entryOverhead = 256

// maxWeight bounds MaxEntryBytes (otter weights are uint32).
const maxWeight = 1<<31 - 1

// Config configures a Cache. Zero fields take the defaults above; TTL has
// no default (New with TTL <= 0 returns a Cache that stores nothing).
type Config struct {
	TTL           time.Duration // how long a stored response may be served
	MaxBytes      int64         // memory bound: responses + entryOverhead each
	MaxEntryBytes int           // larger responses are not stored
	// Bus enables StartBus (cache_bus); with false StartBus does nothing and
	// the cache is only coherent with writes made through this instance.
	Bus bool
	// Databases / Users: when not empty, only these are cached.
	// NoCacheDatabases / NoCacheUsers are never cached (they win).
	Databases, Users               []string
	NoCacheDatabases, NoCacheUsers []string
	// CatalogRefresh is how often the view/dependency catalog of each
	// database in use is reloaded (default 30 s).
	CatalogRefresh time.Duration
	// BusCoalesce is how long invalidations are collected before they are
	// published (default 2 ms).
	BusCoalesce time.Duration
}

// ConfigFrom maps the [pool] cache_* keys to a Config.
func ConfigFrom(p *config.Pool) Config {
	return Config{
		TTL:              time.Duration(p.CacheTTLMs) * time.Millisecond,
		MaxBytes:         int64(p.CacheMaxBytes),
		MaxEntryBytes:    p.CacheMaxEntryBytes,
		Bus:              p.CacheBus,
		Databases:        p.CacheDatabases,
		Users:            p.CacheUsers,
		NoCacheDatabases: p.NoCacheDatabases,
		NoCacheUsers:     p.NoCacheUsers,
	}
}

// entry is one stored response with the versions it was read at.
type entry struct {
	resp    []byte
	expires int64 // unix nanos
	vs      versions
}

// Cache is a query result cache. All methods are safe for concurrent use;
// Get, Snapshot and KeyBuilder allocate nothing.
type Cache struct {
	cfg      Config
	ttl      int64
	maxEntry int
	log      *slog.Logger
	start    int64

	store   *otter.Cache[Key, *entry]
	counter *stats.Counter

	// epoch is bumped to invalidate every entry (bus reconnect, mode change).
	epoch     atomic.Uint64
	lastWrite atomic.Int64 // unix nanos of the last global invalidation
	// serving is false while a required bus is down: Get misses, Put refuses.
	serving atomic.Bool

	dbMu sync.Mutex
	dbs  atomic.Pointer[map[string]*dbState] // copy-on-write

	// resolver gives the relations and their dependencies; without one,
	// nothing that reads a table is cached.
	resolver atomic.Pointer[resolverBox]
	catKick  chan struct{}

	busPtr atomic.Pointer[bus]

	allowDB, allowUser, denyDB, denyUser map[string]struct{}

	sweepEvery time.Duration

	stale, bypass, stores, refused, raced, tooBig, swept atomic.Uint64
	invalidations, dbInvalidations, remote               atomic.Uint64

	closeOnce sync.Once
	cancel    context.CancelFunc
	ctx       context.Context
	wg        sync.WaitGroup
}

// New returns a Cache. log may be nil.
func New(cfg Config, log *slog.Logger) *Cache {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.MaxEntryBytes <= 0 {
		cfg.MaxEntryBytes = DefaultMaxEntryBytes
	}
	cfg.MaxEntryBytes = int(min(int64(cfg.MaxEntryBytes), maxWeight-entryOverhead, cfg.MaxBytes-entryOverhead))
	if cfg.CatalogRefresh <= 0 {
		cfg.CatalogRefresh = DefaultCatalogRefresh
	}
	if cfg.BusCoalesce <= 0 {
		cfg.BusCoalesce = DefaultBusCoalesce
	}
	ttl := cfg.TTL
	if ttl <= 0 {
		ttl = time.Nanosecond // stores nothing useful; Enabled reports false
	}
	c := &Cache{
		cfg:       cfg,
		ttl:       int64(ttl),
		maxEntry:  cfg.MaxEntryBytes,
		log:       log.With("component", "cache"),
		start:     time.Now().UnixNano(),
		counter:   stats.NewCounter(),
		catKick:   make(chan struct{}, 1),
		allowDB:   set(cfg.Databases),
		allowUser: set(cfg.Users),
		denyDB:    set(cfg.NoCacheDatabases),
		denyUser:  set(cfg.NoCacheUsers),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.lastWrite.Store(c.start)
	c.serving.Store(true)
	empty := map[string]*dbState{}
	c.dbs.Store(&empty)
	c.sweepEvery = min(max(ttl, time.Second), 10*time.Second)
	c.store = otter.Must(&otter.Options[Key, *entry]{
		MaximumWeight: uint64(cfg.MaxBytes),
		Weigher: func(_ Key, e *entry) uint32 {
			return uint32(len(e.resp) + entryOverhead)
		},
		// No ExpiryCalculator: Get checks the TTL itself, and otter's
		// expiry (a clock read and timer-wheel work on every Get) cost about
		// 40% of a hit. Expired and invalidated entries are removed by Get
		// and by the sweeper, and count towards MaxBytes until then.
		StatsRecorder: c.counter,
		// Maintenance (eviction) runs on the writing goroutine: the weight
		// never exceeds MaxBytes by more than the entries being written at
		// that moment, and no goroutine is started per write.
		Executor: func(fn func()) { fn() },
	})
	c.wg.Add(1)
	go c.sweepLoop()
	return c
}

// sweepLoop removes expired and invalidated entries, so that they do not
// hold memory until evicted.
func (c *Cache) sweepLoop() {
	defer c.wg.Done()
	t := time.NewTicker(c.sweepEvery)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
			c.sweep(time.Now().UnixNano())
		}
	}
}

// sweep removes the entries expired at now or invalidated; returns how many.
func (c *Cache) sweep(now int64) int {
	n := 0
	for k, e := range c.store.All() {
		if now < e.expires && e.vs.current(c) {
			continue
		}
		c.store.ComputeIfPresent(k, func(old *entry) (*entry, otter.ComputeOp) {
			if old == e {
				n++
				return nil, otter.InvalidateOp
			}
			return old, otter.CancelOp
		})
	}
	c.swept.Add(uint64(n))
	return n
}

func set(list []string) map[string]struct{} {
	if len(list) == 0 {
		return nil
	}
	m := make(map[string]struct{}, len(list))
	for _, s := range list {
		m[s] = struct{}{}
	}
	return m
}

// Enabled reports whether results of user in db may be cached: the TTL is
// set, db and user pass cache_databases/cache_users, and neither is in
// nocache_databases/nocache_users.
func (c *Cache) Enabled(db, user string) bool {
	if c.cfg.TTL <= 0 {
		return false
	}
	if _, no := c.denyDB[db]; no {
		return false
	}
	if _, no := c.denyUser[user]; no {
		return false
	}
	if c.allowDB != nil {
		if _, ok := c.allowDB[db]; !ok {
			return false
		}
	}
	if c.allowUser != nil {
		if _, ok := c.allowUser[user]; !ok {
			return false
		}
	}
	return true
}

// TTL is the configured time to live.
func (c *Cache) TTL() time.Duration { return c.cfg.TTL }

// Get returns the stored response of key when it is there, younger than the
// TTL at now (unix nanos) and no write invalidated what it read. The slice
// is shared and immutable: do not modify it. Counts a hit or a miss.
func (c *Cache) Get(key Key, now int64) (resp []byte, ok bool) {
	if !c.serving.Load() {
		c.bypass.Add(1)
		return nil, false
	}
	e, ok := c.store.GetIfPresent(key)
	if !ok {
		return nil, false
	}
	if now >= e.expires || !e.vs.current(c) {
		c.stale.Add(1)
		c.store.Invalidate(key)
		return nil, false
	}
	return e.resp, true
}

// Put stores a copy of resp under key, read at snap (taken with Snapshot
// before the query was sent). It refuses, returning false, when snap is not
// cacheable, resp is larger than MaxEntryBytes, the bus is down, or any
// version snap captured has moved since: a write committed while the query
// ran. The entry expires TTL after now (unix nanos).
func (c *Cache) Put(key Key, snap *Snapshot, resp []byte, now int64) bool {
	switch {
	case !snap.ok || c.cfg.TTL <= 0 || !c.serving.Load():
		c.refused.Add(1)
		return false
	case len(resp) > c.maxEntry:
		c.tooBig.Add(1)
		return false
	case !snap.vs.current(c):
		c.raced.Add(1)
		return false
	}
	e := &entry{resp: append(make([]byte, 0, len(resp)), resp...), expires: now + c.ttl}
	e.vs.copyFrom(&snap.vs)
	c.store.Set(key, e)
	c.stores.Add(1)
	return true
}

// Stats are counters since New.
type Stats struct {
	Hits    uint64 // Get returned a response
	Misses  uint64 // Get did not (absent, expired, invalidated, bus down)
	Stale   uint64 // of Misses: present but expired or invalidated
	Stores  uint64 // Put stored
	Refused uint64 // Put refused: snapshot not cacheable (unknown/volatile table, catalog not loaded, TTL 0, bus down)
	Raced   uint64 // Put refused: a write invalidated a table while the query ran
	TooBig  uint64 // Put refused: larger than MaxEntryBytes
	Bypass  uint64 // of Misses: Get while the bus was down

	Invalidations   uint64 // table invalidations (Invalidate*, local and remote)
	DBInvalidations uint64 // whole-database invalidations
	Remote          uint64 // invalidations received from other instances

	Evictions      uint64 // entries evicted for size
	EvictedBytes   uint64
	Swept          uint64 // expired or invalidated entries removed by the sweeper
	Bytes          uint64 // weighted size: responses + per-entry overhead
	Entries        int    // stored entries (some may be invalidated, not yet reclaimed)
	BusUp          bool   // the LISTEN connection is up (true when no bus runs)
	BusPublishing  bool   // the NOTIFY connection is up
	BusPublished   uint64 // NOTIFY payloads sent
	BusReceived    uint64 // payloads received from other instances
	BusErrors      uint64 // connection or publish errors
	BusPending     int    // tables waiting to be published
	CatalogLoads   uint64 // catalog loads that succeeded
	CatalogErrors  uint64
	CatalogDBReady int // databases whose catalog is loaded and current
}

// Stats returns the counters.
func (c *Cache) Stats() Stats {
	o := c.counter.Snapshot()
	s := Stats{
		Stale:           c.stale.Load(),
		Stores:          c.stores.Load(),
		Refused:         c.refused.Load(),
		Raced:           c.raced.Load(),
		TooBig:          c.tooBig.Load(),
		Bypass:          c.bypass.Load(),
		Invalidations:   c.invalidations.Load(),
		DBInvalidations: c.dbInvalidations.Load(),
		Remote:          c.remote.Load(),
		Evictions:       o.Evictions,
		EvictedBytes:    o.EvictionWeight,
		Swept:           c.swept.Load(),
		Bytes:           c.store.WeightedSize(),
		Entries:         c.store.EstimatedSize(),
		BusUp:           c.serving.Load(),
	}
	s.Hits = o.Hits - min(o.Hits, s.Stale)
	s.Misses = o.Misses + s.Stale + s.Bypass
	if b := c.busPtr.Load(); b != nil {
		s.BusPublished = b.published.Load()
		s.BusReceived = b.received.Load()
		s.BusErrors = b.errors.Load()
		s.BusPending = b.pendingCount()
		s.BusPublishing = b.pubUp.Load()
	}
	if r := c.resolver.Load(); r != nil {
		s.CatalogLoads = r.loads.Load()
		s.CatalogErrors = r.errors.Load()
	}
	for _, d := range *c.dbs.Load() {
		if d.catalogReady() {
			s.CatalogDBReady++
		}
	}
	return s
}

// Clear drops every entry and invalidates every snapshot taken so far.
func (c *Cache) Clear() {
	c.invalidateAll(time.Now().UnixNano())
	c.store.InvalidateAll()
}

func (c *Cache) invalidateAll(now int64) {
	storeMax(&c.lastWrite, now)
	c.epoch.Add(1)
}

// Close stops the bus and catalog goroutines and closes their connections.
func (c *Cache) Close() {
	c.closeOnce.Do(func() {
		c.cancel()
		c.wg.Wait()
		c.store.StopAllGoroutines()
	})
}

// storeMax sets a to v if v is larger.
func storeMax(a *atomic.Int64, v int64) {
	for {
		old := a.Load()
		if v <= old || a.CompareAndSwap(old, v) {
			return
		}
	}
}
