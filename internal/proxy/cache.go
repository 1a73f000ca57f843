package proxy

import (
	"github.com/poolmgr/poolmgr/internal/cache"
	"github.com/poolmgr/poolmgr/internal/pgproto"
	"github.com/poolmgr/poolmgr/internal/sqlscan"
)

// Query result cache integration (internal/cache does storage, keys,
// versions, the bus). The core's part:
//   - cacheLookup: at the start of a request from an idle client (outside any
//     transaction), a cacheable read is answered from the cache without a
//     server; on a miss the response is captured (deliver) and stored when
//     its ReadyForQuery ends the request without error.
//   - noteWrites: statements sent during a transaction are classified and
//     their writes collected; cacheTxEnd applies them when the transaction
//     commits (nothing when it failed or rolled back).

// capture is a response being recorded for the cache.
type capture struct {
	key  cache.Key
	snap cache.Snapshot
	buf  []byte
	on   bool // recording (armed requests start recording once linked)
}

// deliver queues bytes for the client, recording them when a cacheable
// response is being captured.
func (c *Client) deliver(b []byte) {
	if q := c.qc; q != nil && q.cap.on {
		if len(q.cap.buf)+len(b) > c.loop.opts().CacheMaxEntryBytes {
			q.cap.on = false
			q.cap.buf = nil
		} else {
			q.cap.buf = append(q.cap.buf, b...)
		}
	}
	c.loop.t.Send(c.h, b)
}

// cacheOn reports whether the cache applies to this client.
func (c *Client) cacheOn() bool {
	o := c.loop.opts()
	return o.Cache != nil && o.PoolMode != ModeSession && o.Cache.Enabled(c.database(), c.user())
}

// cacheLookup answers the request at the head of the stash from the cache
// (true) or arms a capture for it. The stash must hold exactly one request:
// a simple Query, or [Parse] Bind [Describe portal] Execute Sync with
// unnamed portals.
func (c *Client) cacheLookup() bool {
	l := c.loop
	if c.qc != nil {
		c.qc.capArmed = false // an earlier request's capture must not record this one
	}
	o := l.opts()
	st := c.stash
	kb := &l.kb
	kb.Reset()
	kb.AddString(c.database())
	kb.AddString(c.user())
	kb.AddString(c.params.canon)
	var parse *pgproto.ParseMsg
	var pmsg []byte
	var query []byte
	var shape uint64
	var tables []sqlscan.TableRef
	n := 0
	for len(st) > 0 {
		typ, total, ok, err := pgproto.Frame(st, 0)
		if err != nil || !ok || n > 4 {
			return false
		}
		body := st[pgproto.HeaderLen:total]
		shape = shape<<8 | uint64(typ)
		n++
		switch typ {
		case pgproto.MsgQuery:
			if n != 1 || total != len(st) {
				return false
			}
			query, _ = pgproto.QueryText(body)
		case pgproto.MsgParse:
			if n != 1 {
				return false
			}
			p, ok := pgproto.DecodeParse(body)
			if !ok {
				return false
			}
			if len(p.Name) > 0 {
				if _, exists := c.stmts[string(p.Name)]; exists {
					return false
				}
			}
			parse, pmsg, query = &p, st[:total], p.Query
			kb.AddBytes(p.Types)
		case pgproto.MsgBind:
			portal, name, rest, ok := pgproto.BindStatement(body)
			if !ok || len(portal) > 0 {
				return false
			}
			if parse == nil {
				if len(name) == 0 {
					un := c.unnamedParse()
					if un == nil {
						return false
					}
					p, _ := pgproto.DecodeParse(un[pgproto.HeaderLen:])
					query = p.Query
					kb.AddBytes(p.Types)
				} else {
					cs, ok := c.stmts[string(name)]
					if !ok || cs.gen != cs.st.gen {
						return false
					}
					query = cs.st.query
					kb.AddBytes(cs.st.types)
				}
			} else if string(name) != string(parse.Name) {
				return false
			}
			kb.AddBytes(rest)
		case pgproto.MsgDescribe:
			kind, name, ok := pgproto.Target(body)
			if !ok || kind != 'P' || len(name) > 0 {
				return false
			}
		case pgproto.MsgExecute:
			if len(body) < 5 || body[0] != 0 || body[1] != 0 || body[2] != 0 || body[3] != 0 || body[4] != 0 {
				return false // named portal or a row limit
			}
		case pgproto.MsgSync:
			if total != len(st) {
				return false
			}
		default:
			return false
		}
		st = st[total:]
	}
	if query == nil || (shape&0xff != uint64(pgproto.MsgSync) && shape != uint64(pgproto.MsgQuery)) {
		return false
	}
	sts := l.scan.Classify(query)
	if len(sts) != 1 || !cache.Cacheable(&sts[0]) {
		return false
	}
	tables = sts[0].Tables
	kb.AddUint(shape)
	kb.AddBytes(query)
	key := kb.Sum()
	if resp, ok := o.Cache.Get(key, l.now); ok {
		out := append(l.scratch[:0], resp...)
		out = pgproto.AppendReadyForQuery(out, pgproto.TxIdle)
		l.scratch = out[:0]
		c.send(out)
		if parse != nil { // the Parse took effect in the client's session
			if len(parse.Name) == 0 {
				c.setUnnamed(pmsg)
			} else {
				stmt := l.internStmt(parse.Query, parse.Types)
				if c.stmts == nil {
					c.stmts = make(map[string]clientStmt)
				}
				c.stmts[string(parse.Name)] = clientStmt{st: stmt, gen: stmt.gen}
			}
		}
		l.putBuf(c.stash)
		c.stash = nil
		l.Stats.CacheHits++
		return true
	}
	l.Stats.CacheMisses++
	snap := o.Cache.SnapshotRefs(c.database(), tables)
	if !snap.Cacheable() {
		return false
	}
	q := c.cacheState()
	q.cap.key, q.cap.snap, q.cap.buf, q.cap.on = key, snap, q.cap.buf[:0], false
	q.capArmed = true
	q.capFailed = false
	return false
}

// cacheStore ends a capture at the ReadyForQuery that ended its request.
func (c *Client) cacheStore(s *Server) {
	if c.qc == nil || !c.qc.cap.on {
		return
	}
	cp := &c.qc.cap
	cp.on = false
	if s.tx != pgproto.TxIdle || c.qc.capFailed || len(cp.buf) < 6 {
		cp.buf = cp.buf[:0]
		return
	}
	resp := cp.buf[:len(cp.buf)-6] // without the ReadyForQuery
	c.loop.opts().Cache.Put(cp.key, &cp.snap, resp, c.loop.now)
	if cap(cp.buf) > 1<<16 {
		cp.buf = nil
	} else {
		cp.buf = cp.buf[:0]
	}
}

// noteWrites classifies a request sent to the server and collects what it
// writes (cache invalidation when it commits).
func (c *Client) noteWrites(typ byte, msg []byte) {
	l := c.loop
	body := msg[pgproto.HeaderLen:]
	var sql []byte
	switch typ {
	case pgproto.MsgQuery:
		sql, _ = pgproto.QueryText(body)
	case pgproto.MsgParse:
		p, ok := pgproto.DecodeParse(body)
		if !ok {
			return
		}
		sql = p.Query
	case pgproto.MsgBind:
		_, name, _, ok := pgproto.BindStatement(body)
		if !ok {
			return
		}
		if len(name) == 0 {
			un := c.unnamedParse()
			if un == nil {
				return
			}
			p, _ := pgproto.DecodeParse(un[pgproto.HeaderLen:]) // executed again: classify again
			sql = p.Query
			break
		}
		cs, ok := c.stmts[string(name)]
		if !ok {
			return
		}
		sql = cs.st.query
	case pgproto.MsgFunctionCall:
		c.cacheState().writes.AddDatabase() // a function of unknown reach
		return
	default:
		return
	}
	w := &c.cacheState().writes
	for _, st := range l.scan.Classify(sql) {
		w.Add(&st)
	}
}

// Commit outcomes come from the server itself, so the cache is invalidated
// exactly for writes that committed:
//   - a COMMIT tag: the transaction (explicit, or chained) committed;
//     an explicit transaction that ends (ReadyForQuery 'I') without one
//     rolled back (COMMIT of an aborted transaction answers ROLLBACK);
//   - a ReadyForQuery 'I' ending an implicit transaction (autocommit
//     statement, multi-statement query, extended-protocol segment)
//     commits unless an error came since the previous ReadyForQuery;
//   - an unknown outcome (connection lost, client gone mid-request) counts
//     as committed.
// Writes of requests still in flight are kept (over-invalidating is safe).

// cacheTag reacts to a CommandComplete tag of the client's request.
func (c *Client) cacheTag(s *Server, tag []byte) {
	if string(tag) == "COMMIT" {
		c.applyWrites(s.outstanding > 1) // later pipelined requests keep theirs
	}
	// "ROLLBACK" is also the tag of ROLLBACK TO SAVEPOINT: the outcome of an
	// explicit transaction is read from the ReadyForQuery that ends it.
}

// cacheReady reacts to a ReadyForQuery: before is the status before it.
func (c *Client) cacheReady(s *Server, before, after byte) {
	q := c.cacheState()
	if after == pgproto.TxIdle {
		switch {
		case before == pgproto.TxIdle && !q.txFailed:
			c.applyWrites(s.outstanding > 0) // an implicit transaction committed
		case s.outstanding == 0:
			// Rolled back (or committed earlier with its COMMIT tag, which
			// already invalidated): nothing left to apply.
			q.writes.Reset()
		}
	}
	q.txFailed = false
}

// commitWrites invalidates what the collected writes touched.
func (c *Client) commitWrites() { c.applyWrites(false) }

// applyWrites invalidates what the collected writes touched; keep leaves
// them collected because requests sent later (pipelined, still running) may
// be among them: they are applied again when those end (over-invalidating
// is safe, under-invalidating is not).
func (c *Client) applyWrites(keep bool) {
	q := c.qc
	if q == nil {
		return
	}
	if !q.writes.Empty() {
		c.loop.opts().Cache.InvalidateWrites(c.database(), &q.writes)
	}
	if !keep {
		q.writes.Reset()
	}
}

// cacheUnknownOutcome: the client or the server went away with writes
// possibly committed.
func (c *Client) cacheUnknownOutcome() {
	if c.trackWrites {
		c.commitWrites()
	}
}

// commitWritesKeep invalidates the client's writes now and hands them to
// the server it leaves, to be invalidated again when that server finishes
// the requests still running (their outcome is known only then).
func (c *Client) commitWritesKeep(s *Server) {
	c.applyWrites(true)
	if c.qc == nil {
		return
	}
	s.orphanDB = c.database()
	s.orphanWrites = c.qc.writes // the departing client never appends again (its clientCache is not reused)
}

// finishOrphan applies the writes of a departed client once its server's
// requests have ended (or the server is gone).
func (s *Server) finishOrphan() {
	if s.orphanDB == "" {
		return
	}
	if qc := s.loop.opts().Cache; qc != nil {
		qc.InvalidateWrites(s.orphanDB, &s.orphanWrites)
	}
	s.orphanDB = ""
	s.orphanWrites = cache.Writes{}
}
