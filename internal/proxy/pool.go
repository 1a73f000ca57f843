package proxy

import (
	"sync/atomic"
	"time"

	"github.com/poolmgr/poolmgr/internal/pgproto"
)

// Pool is one loop's share of a (database, user) pool: its idle servers (to
// any backend), the clients queued for one (each for a target backend), and
// the clients waiting for the pool's first login.
type Pool struct {
	sh   *PoolShared
	loop *Loop

	idle        serverList
	waiters     clientQueue // clients with a request, FIFO
	welcomeWait clientQueue // authenticated clients waiting for server parameters
	connecting  int         // servers of this loop being opened for this pool
	servers     int         // servers of this loop in this pool (any state)
	per         []*perBackend
	lastShed    int64 // when other loops were last asked to shed an idle server
}

// perBackend is a pool's bookkeeping for one backend.
type perBackend struct {
	b          *Backend
	connecting int
	waiting    int
	open       *atomic.Int32 // this pool's server connections to b, all loops
}

func (p *Pool) perB(b *Backend) *perBackend {
	for _, pb := range p.per {
		if pb.b == b {
			return pb
		}
	}
	pb := &perBackend{b: b, open: p.sh.openOn(b)}
	p.per = append(p.per, pb)
	return pb
}

// acquire gives c a server to backend b now, or queues it (FIFO) and opens
// servers as limits allow.
func (l *Loop) acquire(c *Client, b *Backend) {
	p := c.pool
	if !p.sh.paused.Load() {
		for s := p.idle.head; s != nil; {
			next := s.inext
			if s.backend == b {
				p.idle.remove(s)
				if l.usable(s) {
					l.link(c, s)
					return
				}
				l.closeServer(s, ReasonServerLifetime)
			}
			s = next
		}
	}
	c.state = ClientWaiting
	c.since = l.now
	c.target = b
	p.perB(b).waiting++
	p.waiters.push(c)
	l.waiting[p] = struct{}{}
	l.growPool(p)
}

// unqueue removes a queued client from its pool's wait queue.
func (l *Loop) unqueue(c *Client) {
	p := c.pool
	if p == nil || c.q != &p.waiters {
		if c.q != nil {
			c.q.remove(c)
		}
		return
	}
	p.waiters.remove(c)
	if c.target != nil {
		p.perB(c.target).waiting--
	}
	c.target = nil
	if p.waiters.n == 0 {
		delete(l.waiting, p)
	}
}

// usable reports whether a server may be handed to a new transaction.
func (l *Loop) usable(s *Server) bool {
	o := l.opts()
	b := s.backend
	return !s.retire && !b.Draining() && b.Healthy() &&
		(o.ServerLifetime <= 0 || l.now-s.created <= int64(o.ServerLifetime))
}

// growPool hands idle servers to queued clients and opens server
// connections for the rest while pool_size and the backend's
// max_server_connections allow.
func (l *Loop) growPool(p *Pool) {
	if p.sh.paused.Load() {
		return
	}
	for c := p.waiters.head; c != nil && p.idle.n > 0; {
		next := c.qnext
		for s := p.idle.head; s != nil; s = s.inext {
			if s.backend == c.target {
				p.idle.remove(s)
				if l.usable(s) {
					l.unqueue(c)
					l.link(c, s)
				} else {
					l.closeServer(s, ReasonServerLifetime)
				}
				break
			}
		}
		c = next
	}
	if p.waiters.n == 0 && !(p.welcomeWait.n > 0 && p.sh.welcome.Load() == nil) {
		return
	}
	if p.waiters.n == 0 { // the pool's first login: learn the server parameters
		if p.connecting == 0 {
			if b := l.sh.pickPrimary(l.now); b != nil {
				l.openServer(p, b)
			} else {
				l.failPool(p, codeConnectionFailure, "no primary backend is available")
			}
		}
		return
	}
	for _, pb := range p.per {
		for pb.connecting < pb.waiting {
			if !l.openServer(p, pb.b) {
				break
			}
		}
	}
}

// openServer starts one new server connection to b for p. It returns false
// when a limit is reached.
func (l *Loop) openServer(p *Pool, b *Backend) bool {
	o := l.opts()
	size := o.PoolSize
	if size <= 0 {
		size = o.MaxServersPerBackend
	}
	pb := p.perB(b)
	if !backendUp(b, l.now) {
		return false // waiters for it are moved or failed (failBackendWaiters)
	}
	if int(pb.open.Add(1)) > size {
		pb.open.Add(-1)
		l.requestShed(p, b)
		return false
	}
	if int(b.open.Add(1)) > o.MaxServersPerBackend {
		b.open.Add(-1)
		pb.open.Add(-1)
		return false
	}
	if n := int(b.logins.Add(1)); o.MaxServerLogins > 0 && n > o.MaxServerLogins {
		// Connection storm: at most n logins in flight per backend; the
		// rest start as these finish (loginEnded) or at the next tick.
		b.logins.Add(-1)
		b.open.Add(-1)
		pb.open.Add(-1)
		l.Stats.LoginsDeferred++
		return false
	}
	p.sh.open.Add(1)
	s := &Server{loop: l, pool: p, backend: b, state: ServerConnecting, created: l.now, lastUsed: l.now}
	s.params = l.pi.empty
	s.tx = pgproto.TxIdle
	p.connecting++
	pb.connecting++
	p.servers++
	l.servers[s] = struct{}{}
	s.h = l.t.Dial(b.Addr, s)
	return true
}

// loginEnded updates the counts when a server leaves the connecting/login states.
func (p *Pool) loginEnded(s *Server) {
	p.connecting--
	p.perB(s.backend).connecting--
	s.backend.logins.Add(-1)
}

// serverReady is the single place where a server without a client goes
// next: to the oldest client queued for its backend, to the idle list, or
// closed.
func (l *Loop) serverReady(s *Server) {
	if s.cancels > 0 {
		s.state = ServerHeld // a cancel aimed at its last client is in flight
		return
	}
	p := s.pool
	s.client = nil
	if l.sh.ShuttingDown() || !l.usable(s) {
		l.closeServer(s, ReasonServerLifetime)
		return
	}
	s.lastUsed = l.now
	if !p.sh.paused.Load() && p.perB(s.backend).waiting > 0 {
		for c := p.waiters.head; c != nil; c = c.qnext {
			if c.target == s.backend {
				l.unqueue(c)
				l.link(c, s)
				return
			}
		}
	}
	s.state = ServerIdle
	p.idle.pushFront(s)
}

// link gives server s to client c and sends c's stashed request.
func (l *Loop) link(c *Client, s *Server) {
	now := l.now
	if c.state == ClientWaiting {
		w := now - c.since
		l.Stats.Waits++
		l.Stats.WaitNanos += uint64(w)
		l.Stats.WaitHist[histBucket(w)]++
	}
	s.linkedAt = now
	s.backend.busy.Add(1)
	l.getRun(c)
	c.server, s.client = s, c
	c.state, s.state = ClientActive, ServerActive
	s.lastUsed = l.now
	if s.params != c.params {
		q := appendSyncQuery(l.scratch[:0], s.params, c.params)
		if len(q) > 0 {
			msg := pgproto.AppendQuery(q[len(q):], string(q))
			l.t.Send(s.h, msg)
			s.expect(pending{typ: 'Q', flags: pSwallow | pQuiet})
		}
		s.params = c.params
	}
	c.trackWrites = c.loop.opts().Cache != nil && c.cacheOn()
	if c.trackWrites {
		c.cacheState()
	}
	if c.qc != nil && c.qc.capArmed {
		c.qc.capArmed = false
		c.qc.cap.on = true
	}
	if c.stash != nil {
		b := c.stash
		c.stash = nil
		c.forward(b)
		l.putBuf(b)
		if c.readPaused && c.state != ClientClosed {
			c.readPaused = false
			l.t.PauseRead(c.h, false)
		}
	}
	if c.server == s {
		l.release(s) // the request may have been answered by the proxy itself
	}
}

// unlink separates a client and its server (the caller decides where each goes).
func (l *Loop) unlink(c *Client, s *Server) {
	if s.client == c && c != nil {
		s.backend.busy.Add(-1)
	}
	c.server, s.client = nil, nil
	// Backpressure between the two ends no longer applies.
	if s.readPaused && s.state != ServerClosed {
		s.readPaused = false
		l.t.PauseRead(s.h, false)
	}
	if c.readPaused && c.state != ClientClosed && len(c.stash) <= maxStash {
		c.readPaused = false
		l.t.PauseRead(c.h, false)
	}
}

// release is the single release decision: called after a server's
// ReadyForQuery and after client bytes are forwarded. It hands the server back
// when the client's transaction (or statement) is over.
func (l *Loop) release(s *Server) {
	c := s.client
	if c == nil || s.q.n > 0 || s.extOpen || c.run.collecting || c.run.scan.InMessage() {
		return
	}
	switch l.opts().PoolMode {
	case ModeSession:
		return
	case ModeStatement:
		if s.tx != pgproto.TxIdle {
			c.fatal(codeFeatureNotSupported, "transaction blocks are not allowed in statement pooling mode", ReasonStatementMode)
			return
		}
	default:
		if s.tx != pgproto.TxIdle {
			return
		}
	}
	if c.capturing() {
		c.cacheStore(s)
	}
	l.unlink(c, s)
	c.state = ClientIdle
	l.putRun(c) // idle: no per-client state beyond the Client
	l.putCache(c)
	now := l.now
	x := now - s.linkedAt
	l.Stats.XactNanos += uint64(x)
	l.Stats.XactHist[histBucket(x)]++
	if c.wrote && s.backend.Role() == RolePrimary {
		c.lastWriteNs = now // read-your-writes: reads wait for replicas to reach this
		c.wrote = false
	}
	l.serverReady(s)
	if l.sh.ShuttingDown() {
		c.fatal(codeAdminShutdown, "terminating connection due to administrator command (poolmgr shutting down)", ReasonShutdown)
		return
	}
	if c.deferred || len(c.stash) > 0 {
		c.deferred = false
		c.startRequest() // requests held back from a replica go where they belong
	}
}

// detach separates a departing client from its server and decides what
// happens to the server: back to the pool (after a rollback or reset if
// needed) or closed when its state is unknown.
func (l *Loop) detach(c *Client) {
	s := c.server
	if s == nil {
		return
	}
	inMsg := c.run != nil && (c.run.collecting || c.run.scan.InMessage())
	l.unlink(c, s)
	clean := s.q.n == 0 && !s.extOpen && !inMsg && s.state == ServerActive
	if !clean && c.trackWrites && c.qc != nil && !c.qc.writes.Empty() {
		// Requests in flight may commit after the client left: invalidate
		// now, and again when the server finishes them (or is lost).
		c.commitWritesKeep(s)
	}
	if !clean && s.q.n > 0 && !s.extOpen && !inMsg && s.state == ServerActive {
		// Let the server finish what it runs (answers dropped), then reuse
		// it (or roll back / close it) as after a normal reset.
		for i := 0; i < s.q.n; i++ {
			s.q.buf[(s.q.head+i)%len(s.q.buf)].flags |= pSwallow | pQuiet
		}
		s.state = ServerResetting
		return
	}
	if !clean {
		l.closeServer(s, ReasonServerDirty)
		return
	}
	q := l.scratch[:0]
	n := 0
	if s.tx != pgproto.TxIdle {
		q = pgproto.AppendQuery(q, "ROLLBACK")
		n++
	}
	if l.opts().PoolMode == ModeSession && l.opts().ResetQuery != "" {
		q = pgproto.AppendQuery(q, l.opts().ResetQuery)
		n++
		s.params = l.pi.empty
	}
	if n == 0 {
		l.serverReady(s)
		return
	}
	l.t.Send(s.h, q)
	for range n {
		s.expect(pending{typ: 'Q', flags: pSwallow | pQuiet})
	}
	s.state = ServerResetting
}

// failPool answers every client waiting on p with an error: clients that
// are logged in get an ERROR and ReadyForQuery for each pending request;
// clients still waiting for their welcome get a FATAL.
func (l *Loop) failPool(p *Pool, code, msg string) {
	for c := p.welcomeWait.pop(); c != nil; c = p.welcomeWait.pop() {
		c.fatal(code, msg, ReasonConnectFailed)
	}
	for c := p.waiters.head; c != nil; c = p.waiters.head {
		l.unqueue(c)
		c.failRequest(code, msg)
	}
}

// failBackendWaiters answers the clients queued for backend b with an error
// (or moves read-only ones elsewhere when possible).
func (l *Loop) failBackendWaiters(p *Pool, b *Backend, code, msg string) {
	for c := p.waiters.head; c != nil; {
		next := c.qnext
		if c.target == b {
			l.unqueue(c)
			if nb := l.retarget(c, b); nb != nil {
				l.acquire(c, nb)
			} else {
				c.failRequest(code, msg)
			}
		}
		c = next
	}
}

// requestShed asks the other loops to close one idle server of p's pool to
// backend b: the pool is full across loops while this loop has clients
// waiting, and idle servers do not move between loops.
func (l *Loop) requestShed(p *Pool, b *Backend) {
	loops := l.sh.Loops()
	if len(loops) < 2 || l.now-p.lastShed < int64(20*time.Millisecond) {
		return
	}
	p.lastShed = l.now
	key := poolKey{p.sh.Database, p.sh.User}
	for _, o := range loops {
		if o == l {
			continue
		}
		o := o
		o.post.Post(func() {
			op := o.pools[key]
			if op == nil || op.waiters.n > 0 {
				return // it needs its servers itself
			}
			for s := op.idle.head; s != nil; s = s.inext {
				if s.backend == b {
					o.closeServer(s, ReasonServerIdleTimeout)
					l.post.Post(func() {
						if lp := l.pools[key]; lp != nil {
							l.growPool(lp)
						}
					})
					return
				}
			}
		})
	}
}

// backendUp reports whether new server connections to b may be opened now.
func backendUp(b *Backend, now int64) bool {
	return b.downUntil.Load() <= now && b.Healthy() && !b.Draining()
}
