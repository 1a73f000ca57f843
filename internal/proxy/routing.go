package proxy

import (
	"time"

	"github.com/poolmgr/poolmgr/internal/pgproto"
	"github.com/poolmgr/poolmgr/internal/route"
	"github.com/poolmgr/poolmgr/internal/sqlscan"
)

// RouteMode is a per-user or per-database default route.
type RouteMode uint8

// Route modes.
const (
	RouteAuto    RouteMode = iota // classify each transaction: reads to replicas, the rest to the primary
	RoutePrimary                  // everything to the primary
	RouteReplica                  // everything not classified as a write to replicas (unsure reads too)
)

// HashKey is what the hash routing algorithm hashes.
type HashKey uint8

// Hash keys.
const (
	HashClientAddr HashKey = iota
	HashUser
	HashQuery
)

// maxRouteInspect bounds how much of a first message is waited for to
// classify it; a larger first message goes to the primary.
const maxRouteInspect = 1 << 20

// cacheStandbyQuiet: a cache miss is read on a standby only when its tables
// had no write through poolmgr for this long (longer than any replica lag
// routing accepts); otherwise on the primary.
const cacheStandbyQuiet = 60 * time.Second

// rywWindow is how long a client's reads stay on the primary after its
// write when no health check sample can prove a replica caught up.
const rywWindow = int64(time.Second)

// routeRequest picks the backend for the request at the head of c's stash.
// wait is true when more bytes are needed to decide; b is nil when no
// backend can serve it.
func (c *Client) routeRequest() (b *Backend, wait bool) {
	l := c.loop
	o := l.opts()
	mode := o.routeModeFor(c.user(), c.database())
	if o.PoolMode == ModeSession || mode == RoutePrimary || !l.haveReplicas() {
		c.wrote = true
		return l.sh.pickPrimary(l.now), false
	}
	readOnly, text, wait := c.classifyHead(mode)
	if wait {
		return nil, true
	}
	if readOnly && c.qc != nil && c.qc.capArmed && (l.now-c.qc.cap.snap.LastWrite() < int64(cacheStandbyQuiet) ||
		o.MaxReplicaLag <= 0 || o.MaxReplicaLag > cacheStandbyQuiet/2) {
		// A result to be cached must not come from a standby that may not
		// have replayed a recent write to its tables: read the primary.
		c.wrote = false
		return l.sh.pickPrimary(l.now), false
	}
	if !readOnly {
		c.wrote = true
		return l.sh.pickPrimary(l.now), false
	}
	if r := l.pickReplica(c, text); r != nil {
		c.wrote = false
		return r, false
	}
	c.wrote = false // a read on the primary is still a read
	return l.sh.pickPrimary(l.now), false
}

// haveReplicas reports whether any standby could take reads now.
func (l *Loop) haveReplicas() bool {
	for _, b := range l.sh.Backends() {
		if r := b.Role(); (r == RoleStandby || r == RoleUnknown) && b.Healthy() && !b.Draining() {
			return true
		}
	}
	return false
}

// classifyHead looks at the first message of c's stash: is the request it
// starts provably read-only? text is the SQL (for hash routing by query).
func (c *Client) classifyHead(mode RouteMode) (readOnly bool, text []byte, wait bool) {
	st := c.stash
	typ, total, complete, err := pgproto.Frame(st, 0)
	if err != nil || total == 0 {
		return false, nil, total == 0 && err == nil && len(st) < pgproto.HeaderLen
	}
	if !complete {
		if total <= maxRouteInspect {
			return false, nil, true
		}
		return false, nil, false
	}
	body := st[pgproto.HeaderLen:total]
	if typ != pgproto.MsgQuery {
		// An extended-protocol segment runs as one implicit transaction up
		// to its Sync: every statement in it must be a read.
		return c.classifySegment(mode)
	}
	switch typ {
	case pgproto.MsgQuery:
		sql, _ := pgproto.QueryText(body)
		return c.loop.readOnlySQL(sql, mode), sql, false
	case pgproto.MsgParse:
		p, ok := pgproto.DecodeParse(body)
		if !ok {
			return false, nil, false
		}
		ro := c.loop.readOnlySQL(p.Query, mode)
		return ro, p.Query, false
	case pgproto.MsgBind:
		_, name, _, ok := pgproto.BindStatement(body)
		if !ok {
			return false, nil, false
		}
		if len(name) == 0 {
			un := c.unnamedParse()
			if un == nil {
				return false, nil, false
			}
			p, _ := pgproto.DecodeParse(un[pgproto.HeaderLen:])
			return c.loop.readOnlySQL(p.Query, mode), p.Query, false
		}
		if cs, ok := c.stmts[string(name)]; ok {
			return c.loop.stmtReadOnly(cs.st, mode), cs.st.query, false
		}
	}
	return false, nil, false
}

// readOnlySQL classifies SQL text: true when every statement in it may run
// on a hot standby (or a poolmgr:replica hint says so).
func (l *Loop) readOnlySQL(sql []byte, mode RouteMode) bool {
	sts := l.scan.Classify(sql)
	any := false
	for i := range sts {
		st := &sts[i]
		if st.Kind == sqlscan.KindEmpty {
			continue
		}
		any = true
		if st.Hint&sqlscan.HintPrimary != 0 {
			return false
		}
		if st.Hint&sqlscan.HintReplica != 0 {
			continue
		}
		if st.Kind == sqlscan.KindBegin && st.ReadOnlyTx {
			continue
		}
		if st.Route == sqlscan.RouteReplicaOK {
			continue
		}
		if mode == RouteReplica && st.Unsure && !st.Write {
			continue
		}
		return false
	}
	return any
}

// stmtReadOnly classifies a prepared statement once.
func (l *Loop) stmtReadOnly(st *Stmt, mode RouteMode) bool {
	if !st.classified {
		st.classified = true
		st.readOnly = l.readOnlySQL(st.query, RouteAuto)
		st.readOnlyLoose = l.readOnlySQL(st.query, RouteReplica)
	}
	if mode == RouteReplica {
		return st.readOnlyLoose
	}
	return st.readOnly
}

// pickReplica chooses a standby for a read of c (nil: use the primary):
// healthy, not draining, within max_replica_lag, and, after c's last write,
// replayed at least up to the primary's WAL position sampled after it.
func (l *Loop) pickReplica(c *Client, text []byte) *Backend {
	o := l.opts()
	if o.ReadYourWrites && c.lastWriteNs != 0 {
		prim := l.sh.pickPrimary(l.now)
		switch {
		case prim != nil && prim.lastCheck.Load() > c.lastWriteNs:
			// A sample of the primary's WAL position taken after the write.
			if lsn := prim.primaryLSN.Load(); lsn > c.minLSN {
				c.minLSN = lsn
			}
			c.lastWriteNs = 0
		case prim != nil && time.Now().UnixNano()-prim.lastCheck.Load() < int64(5*time.Second):
			return nil // checks are running: wait for the next sample, read the primary meanwhile
		case time.Now().UnixNano()-c.lastWriteNs < rywWindow:
			return nil // no checks: a fixed window on the primary
		default:
			c.lastWriteNs = 0
		}
	}
	l.cands = l.cands[:0]
	l.candB = l.candB[:0]
	for _, b := range l.sh.Backends() {
		r := b.Role()
		// A backend whose role is not known yet may take reads: a read is
		// safe on a primary too, and its first login tells its role.
		if !(r == RoleStandby || r == RoleUnknown || (r == RolePrimary && o.PrimaryReads)) || !b.Healthy() ||
			b.Draining() || b.downUntil.Load() > l.now {
			continue
		}
		if r == RoleUnknown && c.minLSN != 0 {
			continue
		}
		if r == RoleStandby {
			if o.MaxReplicaLag > 0 && b.Lag() > o.MaxReplicaLag {
				continue
			}
			if c.minLSN != 0 && b.ReplayLSN() < c.minLSN {
				continue
			}
		}
		l.cands = append(l.cands, route.Candidate{ID: b.Addr, Busy: b.Busy()})
		l.candB = append(l.candB, b)
	}
	var key []byte
	if o.Routing == route.Hash {
		switch o.HashKey {
		case HashUser:
			key = append(l.keybuf[:0], c.user()...)
		case HashQuery:
			key = text
		default:
			key = append(l.keybuf[:0], c.addr[:]...) // As16 of the address
		}
	}
	i := l.picker.Pick(o.Routing, l.cands, key)
	if i < 0 {
		return nil
	}
	return l.candB[i]
}

// retarget picks another backend for a queued request whose backend failed.
func (l *Loop) retarget(c *Client, failed *Backend) *Backend {
	if failed.Role() == RoleStandby {
		if r := l.pickReplica(c, nil); r != nil && r != failed {
			return r
		}
	}
	if p := l.sh.pickPrimary(l.now); p != nil && p != failed {
		return p
	}
	return nil
}

// routeModeFor returns the default route for a user/database.
func (o *Options) routeModeFor(user, db string) RouteMode {
	if m, ok := o.UserRoutes[user]; ok {
		return m
	}
	if m, ok := o.DBRoutes[db]; ok {
		return m
	}
	return o.DefaultRoute
}

// needsPrimary reports whether a message arriving on a replica-linked
// client (between transactions) must go to the primary instead.
func (c *Client) needsPrimary(typ byte, msg []byte) bool {
	l := c.loop
	mode := l.opts().routeModeFor(c.user(), c.database())
	body := msg[pgproto.HeaderLen:]
	switch typ {
	case pgproto.MsgQuery:
		sql, _ := pgproto.QueryText(body)
		return !l.readOnlySQL(sql, mode)
	case pgproto.MsgParse:
		p, ok := pgproto.DecodeParse(body)
		return !ok || !l.readOnlySQL(p.Query, mode)
	case pgproto.MsgBind:
		_, name, _, ok := pgproto.BindStatement(body)
		if !ok {
			return true
		}
		if len(name) == 0 {
			return false // follows the Parse just sent to this server
		}
		cs, ok := c.stmts[string(name)]
		return ok && !l.stmtReadOnly(cs.st, mode)
	}
	return false
}

// classifySegment classifies the extended-protocol messages at the head of
// the stash up to the first Sync (waiting for it within maxRouteInspect):
// read-only only when every Parse/Bind in it is a read.
func (c *Client) classifySegment(mode RouteMode) (readOnly bool, text []byte, wait bool) {
	l := c.loop
	st := c.stash
	var unnamed []byte // the segment's own unnamed Parse
	any := false
	for {
		typ, total, complete, err := pgproto.Frame(st, 0)
		if err != nil {
			return false, nil, false
		}
		if total == 0 || !complete {
			if len(c.stash) <= maxRouteInspect {
				return false, nil, true
			}
			return false, nil, false
		}
		body := st[pgproto.HeaderLen:total]
		switch typ {
		case pgproto.MsgSync:
			return any, text, false
		case pgproto.MsgParse:
			p, ok := pgproto.DecodeParse(body)
			if !ok || !l.readOnlySQL(p.Query, mode) {
				return false, nil, false
			}
			if len(p.Name) == 0 {
				unnamed = p.Query
			}
			if text == nil {
				text = p.Query
			}
			any = true
		case pgproto.MsgBind:
			_, name, _, ok := pgproto.BindStatement(body)
			if !ok {
				return false, nil, false
			}
			var q []byte
			switch {
			case len(name) == 0 && unnamed != nil:
				q = unnamed
			case len(name) == 0 && c.unnamedParse() != nil:
				p, _ := pgproto.DecodeParse(c.unnamedParse()[pgproto.HeaderLen:])
				q = p.Query
				if !l.readOnlySQL(q, mode) {
					return false, nil, false
				}
			case len(name) > 0:
				cs, ok := c.stmts[string(name)]
				if !ok || !l.stmtReadOnly(cs.st, mode) {
					return false, nil, false
				}
				q = cs.st.query
			default:
				return false, nil, false
			}
			if text == nil {
				text = q
			}
			any = true
		case pgproto.MsgDescribe, pgproto.MsgExecute, pgproto.MsgClose, pgproto.MsgFlush:
		default:
			return false, nil, false // Query, FunctionCall, COPY ...: primary
		}
		st = st[total:]
	}
}
