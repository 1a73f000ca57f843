package cache

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/poolmgr/poolmgr/internal/sqlscan"
)

// Limits of the per-database state.
const (
	maxDatabases  = 4096    // databases with state; more are not cached
	maxTables     = 1 << 18 // relations per database catalog; more are left out (not cached, writes invalidate the database)
	maxAffects    = 1024    // relations one write may change; more: the write invalidates the database
	inlineDeps    = 6       // tables a Snapshot holds without allocating
	refreshMinGap = time.Second
)

// Table names a relation. Versions are kept per bare name: Schema is
// ignored (see doc.go, "Table names").
type Table struct{ Schema, Name string }

// Flags of a tableState, from the catalog.
const (
	flagKnown     uint32 = 1 << iota // listed in the database's catalog
	flagNoCache                      // reads must not be cached (temp, RLS, volatile view, foreign table, sequence ...)
	flagWritesAll                    // a write may change relations the catalog cannot tell (triggers, rules, views ...)
	flagDead                         // removed from its database's map: never cacheable again
)

// tableState is the version counter of one bare relation name in one
// database. Pointers to it are held by snapshots and entries; it is removed
// from the map only after being marked dead and bumped.
type tableState struct {
	name      string
	version   atomic.Uint64
	lastWrite atomic.Int64 // unix nanos of the last invalidation
	flags     atomic.Uint32
	// affects lists the other relations a write to this one invalidates
	// (views over it, inheritance relatives, referencing tables ...).
	affects atomic.Pointer[[]*tableState]

	// Catalog bookkeeping, guarded by dbState.mu (write side).
	sig string // catalog signature: flags and direct dependencies
}

func (t *tableState) bump(now int64) {
	storeMax(&t.lastWrite, now) // before the version: a snapshot that sees the new version sees the time
	t.version.Add(1)
}

// dbState holds the versions of one database.
type dbState struct {
	name      string
	epoch     atomic.Uint64 // bumped by whole-database invalidations
	lastWrite atomic.Int64

	mu     sync.RWMutex
	tables map[string]*tableState // written only by applyCatalog

	// Catalog state. The catalog is current when clean == dirty: dirty is
	// bumped by schema changes, clean is set to the dirty value a load
	// started at once it is applied.
	dirty, clean atomic.Uint64
	loadedAt     atomic.Int64 // unix nanos of the last applied load
	want         atomic.Bool  // a load was asked for (schema change, unknown relation, first use)
	wantAt       atomic.Int64 // last non-forced request (rate limit)
	used         atomic.Bool  // a Snapshot since the last periodic refresh
	failedAt     atomic.Int64 // last failed load (retry after refreshMinGap)
}

func (d *dbState) catalogReady() bool { return d.clean.Load() == d.dirty.Load() }

// invalidateData makes every entry of the database stale.
func (d *dbState) invalidateData(now int64) {
	storeMax(&d.lastWrite, now)
	d.epoch.Add(1)
}

// dbFor returns the state of db, creating it when create is set (nil when
// there are maxDatabases already).
func (c *Cache) dbFor(db string, create bool) *dbState {
	if d := (*c.dbs.Load())[db]; d != nil || !create {
		return d
	}
	c.dbMu.Lock()
	defer c.dbMu.Unlock()
	old := *c.dbs.Load()
	if d := old[db]; d != nil {
		return d
	}
	if len(old) >= maxDatabases {
		return nil
	}
	d := &dbState{name: db, tables: map[string]*tableState{}}
	// Writes made before the state existed are unknown: date them now.
	d.lastWrite.Store(time.Now().UnixNano())
	d.dirty.Store(1) // no catalog yet
	m := make(map[string]*dbState, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	m[db] = d
	c.dbs.Store(&m)
	return d
}

// dep is one table version captured by a snapshot.
type dep struct {
	t *tableState
	v uint64
}

// versions are the counters a read depends on.
type versions struct {
	global  uint64
	db      *dbState
	dbEpoch uint64
	n       int
	inline  [inlineDeps]dep
	more    []dep // beyond inlineDeps
}

func (v *versions) add(t *tableState, ver uint64) {
	for i := range v.n {
		if v.at(i).t == t {
			return
		}
	}
	if v.n < inlineDeps {
		v.inline[v.n] = dep{t, ver}
	} else {
		v.more = append(v.more, dep{t, ver})
	}
	v.n++
}

func (v *versions) at(i int) *dep {
	if i < inlineDeps {
		return &v.inline[i]
	}
	return &v.more[i-inlineDeps]
}

// current reports whether no counter moved since v was captured.
func (v *versions) current(c *Cache) bool {
	if c.epoch.Load() != v.global || v.db == nil || v.db.epoch.Load() != v.dbEpoch {
		return false
	}
	n := min(v.n, inlineDeps)
	for i := range n {
		if d := &v.inline[i]; d.t.version.Load() != d.v {
			return false
		}
	}
	for i := range v.more {
		if d := &v.more[i]; d.t.version.Load() != d.v {
			return false
		}
	}
	return true
}

func (v *versions) copyFrom(s *versions) {
	*v = *s // more is never modified after the snapshot: sharing it is safe
}

// Snapshot is the state of the tables a read depends on, captured before
// the read is sent to a server. Keep it with the request and hand it to Put.
type Snapshot struct {
	vs        versions
	lastWrite int64
	ok        bool
}

// Cacheable reports whether a response read at s may be stored: the cache
// is serving, the database's catalog is loaded and current, and every table
// is known and cacheable.
func (s Snapshot) Cacheable() bool { return s.ok }

// LastWrite is the time (unix nanos, time.Now clock) of the latest
// invalidation of anything the read depends on, as this instance knows it
// (a database or cache first seen is dated when it was first seen). A
// response read from a standby may be stored only if the standby had
// replayed at least a primary WAL position sampled after LastWrite: see
// doc.go, "Standbys".
func (s Snapshot) LastWrite() int64 { return s.lastWrite }

// begin fills the global and database part of s.
func (c *Cache) begin(s *Snapshot, db string) *dbState {
	if !c.serving.Load() {
		return nil
	}
	s.vs.global = c.epoch.Load()
	s.lastWrite = c.lastWrite.Load()
	d := c.dbFor(db, true)
	if d == nil {
		return nil
	}
	s.vs.db = d
	s.vs.dbEpoch = d.epoch.Load()
	s.lastWrite = max(s.lastWrite, d.lastWrite.Load())
	if !d.used.Load() {
		d.used.Store(true)
	}
	// Read after the epoch: a schema change marks the catalog dirty before
	// it bumps the epoch, so a snapshot that missed the bump sees dirty.
	if !d.catalogReady() || c.resolver.Load() == nil {
		c.wantCatalog(d, false)
		return nil
	}
	return d
}

// addTable adds t (nil: unknown) to s and reports whether s may stay
// cacheable. Called under d.mu.RLock.
func (c *Cache) addTable(s *Snapshot, d *dbState, t *tableState) bool {
	if t == nil {
		c.wantCatalog(d, false) // a relation created since the last load?
		return false
	}
	v := t.version.Load()
	// Flags after the version: a relation turned uncacheable (or dead) has
	// its flags set before its version is bumped.
	if f := t.flags.Load(); f&flagKnown == 0 || f&(flagNoCache|flagDead) != 0 {
		return false
	}
	s.vs.add(t, v)
	s.lastWrite = max(s.lastWrite, t.lastWrite.Load())
	return true
}

// isSystem reports relations whose reads are never cached: catalogs and
// temporary schemas.
func isSystem(schema, name string) bool {
	if schema == "" {
		return strings.HasPrefix(name, "pg_")
	}
	return schema == "information_schema" || strings.HasPrefix(schema, "pg_")
}

// Snapshot captures the versions of tables in db. Call it before the read
// is sent; it allocates nothing for up to 6 tables.
func (c *Cache) Snapshot(db string, tables []Table) Snapshot {
	var s Snapshot
	d := c.begin(&s, db)
	if d == nil {
		return s
	}
	d.mu.RLock()
	for i := range tables {
		t := &tables[i]
		if isSystem(t.Schema, t.Name) || !c.addTable(&s, d, d.tables[t.Name]) {
			d.mu.RUnlock()
			return s
		}
	}
	d.mu.RUnlock()
	s.ok = true
	return s
}

// SnapshotRefs is Snapshot for the relations of a classified statement
// (sqlscan.Statement.Tables); it allocates nothing for up to 6 relations.
func (c *Cache) SnapshotRefs(db string, refs []sqlscan.TableRef) Snapshot {
	var s Snapshot
	d := c.begin(&s, db)
	if d == nil {
		return s
	}
	d.mu.RLock()
	for i := range refs {
		r := &refs[i]
		if r.System || isSystem(bstr(r.Schema), bstr(r.Name)) || !c.addTable(&s, d, d.tables[string(r.Name)]) {
			d.mu.RUnlock()
			return s
		}
	}
	d.mu.RUnlock()
	s.ok = true
	return s
}

// bstr views b as a string without copying; only for use during a call.
func bstr(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// scope is how far a write reaches.
type scope uint8

const (
	scopeTables scope = iota // the named tables and what depends on them
	scopeData                // every table of the database
	scopeSchema              // every table, and the catalog must be reloaded
)

// Invalidate applies a committed write to tables of db: their versions and
// those of every relation depending on them move (views, inheritance
// relatives, referencing tables), so no entry that read them is served
// again, and no read that started before is stored. Unknown relations and
// relations with triggers or rules invalidate the whole database. The write
// is published on the bus.
func (c *Cache) Invalidate(db string, tables []Table) {
	c.invalidate(db, scopeTables, len(tables), func(i int) (string, string) {
		return tables[i].Schema, tables[i].Name
	}, time.Now().UnixNano(), true)
}

// InvalidateRefs is Invalidate for the relations a statement writes: refs
// with Write set (others are ignored).
func (c *Cache) InvalidateRefs(db string, refs []sqlscan.TableRef) {
	n := 0
	for i := range refs {
		if refs[i].Write {
			n++
		}
	}
	if n == 0 {
		return
	}
	c.invalidate(db, scopeTables, n, func(i int) (string, string) {
		r := nthWrite(refs, i)
		return bstr(r.Schema), bstr(r.Name)
	}, time.Now().UnixNano(), true)
}

// nthWrite returns the i-th ref with Write set.
func nthWrite(refs []sqlscan.TableRef, i int) *sqlscan.TableRef {
	for j := range refs {
		if refs[j].Write {
			if i == 0 {
				return &refs[j]
			}
			i--
		}
	}
	panic("cache: nthWrite out of range")
}

// InvalidateDatabase applies a write whose tables are unknown (a function
// call, CALL, DO): every entry of db is stale. The database's catalog is
// reloaded, and nothing of db is cached until it is (the write may have
// changed the schema). Published on the bus.
func (c *Cache) InvalidateDatabase(db string) {
	c.invalidate(db, scopeSchema, 0, nil, time.Now().UnixNano(), true)
}

// InvalidateData is InvalidateDatabase for a write known not to change the
// schema (a known write function such as nextval): the catalog is kept.
func (c *Cache) InvalidateData(db string) {
	c.invalidate(db, scopeData, 0, nil, time.Now().UnixNano(), true)
}

// invalidate is the common path of local and remote invalidations. name(i)
// returns the i-th table; its strings are only valid during the call.
func (c *Cache) invalidate(db string, sc scope, n int, name func(int) (schema, name string), now int64, publish bool) {
	if b := c.busPtr.Load(); publish && b != nil {
		b.enqueue(c, db, sc, n, name)
	}
	d := c.dbFor(db, false)
	if d == nil {
		// Nothing of db is cached here; a later state is dated at creation.
		if sc == scopeTables {
			c.invalidations.Add(uint64(n))
		} else {
			c.dbInvalidations.Add(1)
		}
		return
	}
	if sc == scopeTables {
		c.invalidations.Add(uint64(n))
		if !c.bumpTables(d, n, name, now) {
			sc = scopeData
		}
	}
	switch sc {
	case scopeSchema:
		d.dirty.Add(1) // before the epoch: see begin
		d.invalidateData(now)
		c.dbInvalidations.Add(1)
		c.wantCatalog(d, true)
	case scopeData:
		d.invalidateData(now)
		c.dbInvalidations.Add(1)
	}
}

// bumpTables bumps the named tables and what they affect; false means the
// whole database must be invalidated instead.
func (c *Cache) bumpTables(d *dbState, n int, name func(int) (string, string), now int64) bool {
	if !d.catalogReady() {
		return false // versions may be incomplete; nothing but table-less reads is cached anyway
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	for i := range n {
		schema, nm := name(i)
		if isSystem(schema, nm) {
			return false
		}
		t := d.tables[nm]
		if t == nil {
			c.wantCatalog(d, false)
			return false
		}
		if t.flags.Load()&flagWritesAll != 0 {
			return false
		}
	}
	for i := range n {
		_, nm := name(i)
		t := d.tables[nm]
		t.bump(now)
		if a := t.affects.Load(); a != nil {
			for _, x := range *a {
				x.bump(now)
			}
		}
	}
	return true
}
