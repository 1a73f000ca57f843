package proxy

import (
	"time"

	"github.com/poolmgr/poolmgr/internal/pgproto"
)

// Pool is one loop's share of a (database, user) pool: its idle servers, the
// clients queued for one, and the clients waiting for the pool's first login.
type Pool struct {
	sh   *PoolShared
	loop *Loop

	idle        serverList
	waiters     clientQueue // clients with a request, FIFO
	welcomeWait clientQueue // authenticated clients waiting for server parameters
	connecting  int         // servers of this loop being opened for this pool
	servers     int         // servers of this loop in this pool (any state)
}

// acquire gives c a server now, or queues it (FIFO) and opens servers as
// limits allow.
func (l *Loop) acquire(c *Client) {
	p := c.pool
	for !p.sh.paused.Load() && p.idle.n > 0 {
		s := p.idle.popFront()
		if l.usable(s) {
			l.link(c, s)
			return
		}
		l.closeServer(s, ReasonServerLifetime)
	}
	c.state = ClientWaiting
	c.since = time.Now().UnixNano()
	p.waiters.push(c)
	l.waiting[p] = struct{}{}
	l.growPool(p)
}

// usable reports whether an idle server may be handed out.
func (l *Loop) usable(s *Server) bool {
	o := l.opts()
	return !s.retire && !s.backend.removed.Load() && s.backend.Role() != RoleStandby &&
		(o.ServerLifetime <= 0 || l.now-s.created <= int64(o.ServerLifetime))
}

// growPool opens server connections for queued clients while the pool size
// and the backend's max_server_connections allow.
func (l *Loop) growPool(p *Pool) {
	if p.sh.paused.Load() {
		return
	}
	for p.waiters.n > 0 && p.idle.n > 0 {
		s := p.idle.popFront()
		if !l.usable(s) {
			l.closeServer(s, ReasonServerLifetime)
			continue
		}
		c := p.waiters.pop()
		l.link(c, s)
	}
	if p.waiters.n == 0 {
		delete(l.waiting, p)
	}
	want := p.waiters.n
	if want == 0 && p.welcomeWait.n > 0 && p.sh.welcome.Load() == nil {
		want = 1
	}
	for p.connecting < want {
		if !l.openServer(p) {
			return
		}
	}
}

// openServer starts one new server connection for p. It returns false when a
// limit is reached or no backend can take it.
func (l *Loop) openServer(p *Pool) bool {
	o := l.opts()
	size := o.PoolSize
	if size <= 0 {
		size = o.MaxServersPerBackend
	}
	if int(p.sh.open.Add(1)) > size {
		p.sh.open.Add(-1)
		return false
	}
	b := l.sh.pickPrimary(l.now)
	if b == nil {
		p.sh.open.Add(-1)
		if p.connecting == 0 && p.servers == 0 {
			l.failPool(p, codeConnectionFailure, "no primary backend is available")
		}
		return false
	}
	if int(b.open.Add(1)) > o.MaxServersPerBackend {
		b.open.Add(-1)
		p.sh.open.Add(-1)
		return false
	}
	s := &Server{loop: l, pool: p, backend: b, state: ServerConnecting, created: l.now, lastUsed: l.now}
	s.params = l.pi.empty
	s.tx = pgproto.TxIdle
	p.connecting++
	p.servers++
	l.servers[s] = struct{}{}
	s.h = l.t.Dial(b.Addr, s)
	return true
}

// serverReady is the single place where a server without a client goes
// next: to the oldest queued client, to the idle list, or closed.
func (l *Loop) serverReady(s *Server) {
	if s.cancels > 0 {
		s.state = ServerHeld // a cancel aimed at its last client is in flight
		return
	}
	p := s.pool
	if l.sh.ShuttingDown() || !l.usable(s) {
		l.closeServer(s, ReasonServerLifetime)
		return
	}
	s.lastUsed = l.now
	if p.sh.paused.Load() {
		s.state = ServerIdle
		s.client = nil
		p.idle.pushFront(s)
		return
	}
	if c := p.waiters.pop(); c != nil {
		if p.waiters.n == 0 {
			delete(l.waiting, p)
		}
		l.link(c, s)
		return
	}
	s.state = ServerIdle
	s.client = nil
	p.idle.pushFront(s)
}

// link gives server s to client c and sends c's stashed request.
func (l *Loop) link(c *Client, s *Server) {
	now := time.Now().UnixNano()
	if c.state == ClientWaiting {
		w := now - c.since
		l.Stats.Waits++
		l.Stats.WaitNanos += uint64(w)
		l.Stats.WaitHist[histBucket(w)]++
	}
	s.linkedAt = now
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
	if c.stash != nil {
		b := c.stash
		c.stash = nil
		c.forward(b)
		l.putBuf(b)
		if c.readPaused {
			c.readPaused = false
			l.t.PauseRead(c.h, false)
		}
	}
}

// release is the single release decision: called after a server's
// ReadyForQuery and after client bytes are forwarded. It hands the server back
// when the client's transaction (or statement) is over.
func (l *Loop) release(s *Server) {
	c := s.client
	if c == nil || s.q.n > 0 || s.extOpen || c.collecting || c.scan.InMessage() {
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
	c.server, s.client = nil, nil
	c.state = ClientIdle
	x := time.Now().UnixNano() - s.linkedAt
	l.Stats.XactNanos += uint64(x)
	l.Stats.XactHist[histBucket(x)]++
	l.serverReady(s)
	if l.sh.ShuttingDown() {
		c.fatal(codeAdminShutdown, "terminating connection due to administrator command (poolmgr shutting down)", ReasonShutdown)
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
	c.server, s.client = nil, nil
	clean := s.q.n == 0 && !s.extOpen && !c.collecting && !c.scan.InMessage() && s.state == ServerActive
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
	for c := p.waiters.pop(); c != nil; c = p.waiters.pop() {
		c.failRequest(code, msg)
	}
	delete(l.waiting, p)
}
