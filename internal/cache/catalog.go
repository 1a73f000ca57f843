package cache

import (
	"context"
	"io"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// Relation is one relation of a database catalog, as a Resolver reports it.
// Names are bare (schemas are merged, see doc.go); Schema is informative.
type Relation struct {
	Schema, Name string
	// NoCache: reads of it must not be cached (temporary table, row-level
	// security, foreign table, sequence, view whose definition calls a
	// volatile, stable or unknown function).
	NoCache bool
	// WritesAnywhere: a write to it may change relations the catalog does
	// not list (user triggers, rules, a view written through, volatile user
	// functions in column defaults or checks). Such a write invalidates the
	// whole database.
	WritesAnywhere bool
	// Reads lists the relations its rows are computed from: a view's
	// relations, a parent's inheritance children and partitions.
	Reads []string
	// Changes lists the relations a write to it may change too: tables
	// referencing it by a foreign key (cascades, TRUNCATE ... CASCADE), its
	// inheritance children and partitions.
	Changes []string
}

// Catalog is what a Resolver loads for one database.
type Catalog struct {
	Relations []Relation
}

// Resolver loads the catalog of a database. Load is called from one
// goroutine at a time. PgxResolver is the implementation that reads
// PostgreSQL's catalogs; tests use a fake.
type Resolver interface {
	Load(ctx context.Context, db string) (*Catalog, error)
}

type resolverBox struct {
	r             Resolver
	loads, errors atomic.Uint64
}

// StartCatalog starts loading catalogs with a PgxResolver that connects with
// connString (its database is replaced by each database in use). See
// StartResolver.
func (c *Cache) StartCatalog(ctx context.Context, connString string) error {
	r, err := NewPgxResolver(connString)
	if err != nil {
		return err
	}
	c.StartResolver(ctx, r)
	return nil
}

// StartResolver turns on caching of reads of tables: until a resolver runs,
// only reads that name no table are cached. A goroutine loads the catalog
// of each database when first used, again every Config.CatalogRefresh while
// it is in use, after each schema change (InvalidateDatabase), and soon
// after a Snapshot or Invalidate names a relation it does not know. It stops
// with ctx or Close (closing r if it is an io.Closer). Only the first call
// has an effect.
func (c *Cache) StartResolver(ctx context.Context, r Resolver) {
	box := &resolverBox{r: r}
	if !c.resolver.CompareAndSwap(nil, box) {
		return
	}
	c.invalidateAll(time.Now().UnixNano())
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(c.ctx, cancel) // Close also stops a load in progress
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer stop()
		defer cancel()
		c.catalogLoop(ctx, box)
	}()
	c.kick()
}

func (c *Cache) kick() {
	select {
	case c.catKick <- struct{}{}:
	default:
	}
}

// wantCatalog asks for a load of d's catalog. Unless force, requests are
// rate-limited to one per refreshMinGap.
func (c *Cache) wantCatalog(d *dbState, force bool) {
	if c.resolver.Load() == nil {
		return
	}
	if !force {
		if d.want.Load() {
			return
		}
		now := time.Now().UnixNano()
		if now-d.wantAt.Load() < int64(refreshMinGap) {
			return
		}
		d.wantAt.Store(now)
	}
	d.want.Store(true)
	c.kick()
}

func (c *Cache) catalogLoop(ctx context.Context, box *resolverBox) {
	if cl, ok := box.r.(io.Closer); ok {
		defer cl.Close()
	}
	tick := time.NewTicker(refreshMinGap)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.catKick:
		case <-tick.C:
		}
		for _, d := range *c.dbs.Load() {
			now := time.Now().UnixNano()
			due := d.want.Load() || !d.catalogReady() ||
				d.used.Load() && now-d.loadedAt.Load() >= int64(c.cfg.CatalogRefresh)
			if !due || now-d.failedAt.Load() < int64(refreshMinGap) {
				continue
			}
			if ctx.Err() != nil {
				return
			}
			c.loadCatalog(ctx, box, d)
		}
	}
}

func (c *Cache) loadCatalog(ctx context.Context, box *resolverBox, d *dbState) {
	d.want.Store(false)
	d.used.Store(false)
	seq := d.dirty.Load() // before the load: a schema change during it leaves the catalog dirty
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	start := time.Now()
	cat, err := box.r.Load(lctx, d.name)
	cancel()
	now := time.Now().UnixNano()
	if err != nil {
		box.errors.Add(1)
		if d.failedAt.Swap(now) == 0 { // first failure of a streak
			c.log.Warn("cache: catalog load failed", "db", d.name, "err", err)
		}
		return
	}
	box.loads.Add(1)
	c.applyCatalog(d, cat, now)
	d.loadedAt.Store(now)
	d.failedAt.Store(0)
	for { // clean only moves forward
		old := d.clean.Load()
		if seq <= old || d.clean.CompareAndSwap(old, seq) {
			break
		}
	}
	c.log.Debug("cache: catalog loaded", "db", d.name, "relations", len(cat.Relations), "took", time.Since(start))
}

// catNode is a relation name merged over schemas.
type catNode struct {
	name                string
	noCache, writesAll  bool
	reads, changes      []string
	readsIx, changesIx  []int
	readers, changedBy  []int
	sig                 string
	affects             []int
	t                   *tableState
	created, changedSig bool
}

// applyCatalog installs cat as the state of d. Only the catalog goroutine
// calls it (and tests), so d.tables has no other writer: it is read here
// without the lock and changed under it.
func (c *Cache) applyCatalog(d *dbState, cat *Catalog, now int64) {
	ix := make(map[string]int, len(cat.Relations))
	var nodes []*catNode
	for i := range cat.Relations {
		r := &cat.Relations[i]
		if r.Name == "" {
			continue
		}
		j, ok := ix[r.Name]
		if !ok {
			if len(nodes) >= maxTables {
				c.log.Warn("cache: catalog too large: relations left out are not cached", "db", d.name, "limit", maxTables)
				break
			}
			j = len(nodes)
			ix[r.Name] = j
			nodes = append(nodes, &catNode{name: r.Name})
		}
		n := nodes[j]
		n.noCache = n.noCache || r.NoCache
		n.writesAll = n.writesAll || r.WritesAnywhere
		n.reads = append(n.reads, r.Reads...)
		n.changes = append(n.changes, r.Changes...)
	}
	// resolve maps names to nodes; a name the catalog does not list (a
	// system relation, one left out) makes the node unsafe.
	resolve := func(names []string, self int, unsafe *bool) []int {
		var out []int
		for _, nm := range names {
			k, ok := ix[nm]
			if !ok {
				*unsafe = true
				continue
			}
			if k != self && !slices.Contains(out, k) {
				out = append(out, k)
			}
		}
		return out
	}
	for i, n := range nodes {
		slices.Sort(n.reads)
		n.reads = slices.Compact(n.reads)
		slices.Sort(n.changes)
		n.changes = slices.Compact(n.changes)
		n.readsIx = resolve(n.reads, i, &n.noCache)
		n.changesIx = resolve(n.changes, i, &n.writesAll)
	}
	for i, n := range nodes {
		for _, k := range n.readsIx {
			nodes[k].readers = append(nodes[k].readers, i)
		}
		for _, k := range n.changesIx {
			nodes[k].changedBy = append(nodes[k].changedBy, i)
		}
	}
	// A relation reading an uncacheable one is uncacheable (a view over a
	// volatile view); one whose writes reach a relation with triggers
	// writes anywhere too.
	spread := func(from func(*catNode) bool, next func(*catNode) []int, mark func(*catNode)) {
		var stack []int
		seen := make([]bool, len(nodes))
		for i, n := range nodes {
			if from(n) {
				stack = append(stack, i)
				seen[i] = true
			}
		}
		for len(stack) > 0 {
			i := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			mark(nodes[i])
			for _, k := range next(nodes[i]) {
				if !seen[k] {
					seen[k] = true
					stack = append(stack, k)
				}
			}
		}
	}
	spread(func(n *catNode) bool { return n.noCache }, func(n *catNode) []int { return n.readers },
		func(n *catNode) { n.noCache = true })
	spread(func(n *catNode) bool { return n.writesAll }, func(n *catNode) []int { return n.changedBy },
		func(n *catNode) { n.writesAll = true })

	// affects(X): every relation a write to X changes (transitively over
	// Changes), and every relation reading any of those (transitively).
	mark := make([]int, len(nodes)) // visit stamp
	stamp := 0
	var queue []int
	for i, n := range nodes {
		if n.writesAll {
			continue // the write invalidates the database: no list needed
		}
		stamp++
		mark[i] = stamp
		queue = append(queue[:0], i)
		var changed []int
		for q := 0; q < len(queue) && len(changed) <= maxAffects; q++ {
			for _, k := range nodes[queue[q]].changesIx {
				if mark[k] != stamp {
					mark[k] = stamp
					queue = append(queue, k)
					changed = append(changed, k)
				}
			}
		}
		for q := 0; q < len(queue) && len(changed) <= maxAffects; q++ {
			for _, k := range nodes[queue[q]].readers {
				if mark[k] != stamp {
					mark[k] = stamp
					queue = append(queue, k)
					changed = append(changed, k)
				}
			}
		}
		if len(changed) > maxAffects {
			n.writesAll = true
			continue
		}
		n.affects = changed
	}

	var sb strings.Builder
	for _, n := range nodes {
		sb.Reset()
		sb.WriteByte('0' + b2i(n.noCache) + 2*b2i(n.writesAll))
		for _, s := range n.reads {
			sb.WriteByte(0)
			sb.WriteString(s)
		}
		sb.WriteByte(1)
		for _, s := range n.changes {
			sb.WriteByte(0)
			sb.WriteString(s)
		}
		n.sig = sb.String()
		if t := d.tables[n.name]; t != nil {
			n.t = t
			n.changedSig = t.sig != n.sig
		} else {
			n.t = &tableState{name: n.name}
			n.created = true
		}
		n.t.sig = n.sig
	}
	// Publish dependencies, then flags, then bump what changed (see
	// addTable for why this order).
	for _, n := range nodes {
		a := make([]*tableState, len(n.affects))
		for i, k := range n.affects {
			a[i] = nodes[k].t
		}
		n.t.affects.Store(&a)
	}
	for _, n := range nodes {
		f := flagKnown
		if n.noCache {
			f |= flagNoCache
		}
		if n.writesAll {
			f |= flagWritesAll
		}
		n.t.flags.Store(f)
	}
	for _, n := range nodes {
		if n.changedSig {
			n.t.bump(now)
		}
	}
	var gone []*tableState
	for name, t := range d.tables {
		if _, ok := ix[name]; !ok {
			t.flags.Store(t.flags.Load() | flagDead)
			t.bump(now)
			gone = append(gone, t)
		}
	}
	d.mu.Lock()
	for _, n := range nodes {
		if n.created {
			d.tables[n.name] = n.t
		}
	}
	for _, t := range gone {
		delete(d.tables, t.name)
	}
	d.mu.Unlock()
}

func b2i(b bool) byte {
	if b {
		return 1
	}
	return 0
}
