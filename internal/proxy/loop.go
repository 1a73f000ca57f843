package proxy

import (
	"crypto/rand"
	"io"
	"log/slog"
	"net/netip"
	"time"

	"github.com/poolmgr/poolmgr/internal/cache"
	"github.com/poolmgr/poolmgr/internal/pgproto"
	"github.com/poolmgr/poolmgr/internal/route"
	"github.com/poolmgr/poolmgr/internal/sqlscan"
)

// Loop owns a set of clients, servers and pools. All of its methods and
// the methods of its endpoints run on one goroutine at a time (the engine
// guarantees it).
type Loop struct {
	sh   *Shared
	t    Transport
	post Poster
	id   int

	pools   map[poolKey]*Pool
	waiting map[*Pool]struct{} // pools with queued clients
	pi      paramInterner
	rnd     io.Reader

	scratch []byte // reusable encode buffer for one event
	now     int64  // unix nanos, refreshed by Tick and at accept

	logins  clientQueue          // clients still logging in, oldest first
	servers map[*Server]struct{} // every server of this loop, for timeouts
	clients int                  // clients owned by this loop
	all     allClients           // every client, for inspection

	freeBufs [][]byte         // stash buffers for reuse
	mem      clientMem        // free client side objects (clientmem.go)
	stmts    map[string]*Stmt // interned prepared statements

	scan   sqlscan.Scanner // statement classifier (routing)
	picker *route.Picker
	cands  []route.Candidate
	candB  []*Backend
	keybuf []byte
	kb     cache.KeyBuilder

	authLookups map[string]*authQueryConn // auth_query lookups running, by user
	authCache   map[string]authCacheEntry
	Stats       LoopStats
}

// LoopStats are per-loop counters, read by the owner loop only (aggregated on demand).
type LoopStats struct {
	ClientsAccepted uint64
	Transactions    uint64
	Queries         uint64
	ServerLogins    uint64
	LoginsDeferred  uint64 // server logins postponed by max_server_logins (connection storms)
	CacheHits       uint64
	CacheMisses     uint64
	ClientBytes     uint64 // received from clients
	ServerBytes     uint64 // received from servers
	Waits           uint64 // clients that had to queue for a server
	WaitNanos       uint64
	WaitHist        [HistBuckets]uint64 // queue wait, log2 buckets of microseconds
	XactNanos       uint64              // time clients held a server (transaction mode: per transaction)
	XactHist        [HistBuckets]uint64
	Closes          [reasonCount]uint64
}

// HistBuckets is the number of log2 buckets of the stats histograms: bucket
// i counts durations below 2^i microseconds (the last one: everything above).
const HistBuckets = 24

func histBucket(ns int64) int {
	us := uint64(ns / 1000)
	b := 0
	for us > 0 && b < HistBuckets-1 {
		us >>= 1
		b++
	}
	return b
}

// ReasonName returns the name of close reason i (for metrics labels).
func ReasonName(i int) string { return CloseReason(i).String() }

// ReasonCount is the number of close reasons.
const ReasonCount = int(reasonCount)

// NewLoop returns loop number id sharing sh. Bind must be called before use.
func NewLoop(sh *Shared, id int) *Loop {
	l := &Loop{
		sh:      sh,
		id:      id,
		pools:   make(map[poolKey]*Pool),
		waiting: make(map[*Pool]struct{}),
		servers: make(map[*Server]struct{}),
		rnd:     rand.Reader,
		now:     time.Now().UnixNano(),
	}
	l.pi.init()
	l.picker = route.NewPicker(uint64(time.Now().UnixNano()) + uint64(id))
	sh.mu.Lock()
	sh.loops = append(sh.loops, l)
	sh.mu.Unlock()
	return l
}

// Bind attaches the engine's transport and poster.
func (l *Loop) Bind(t Transport, p Poster) { l.t, l.post = t, p }

func (l *Loop) opts() *Options    { return l.sh.Options() }
func (l *Loop) log() *slog.Logger { return l.sh.Options().Log }

// Accept implements Acceptor.
func (l *Loop) Accept(h Handle, remote netip.AddrPort) Endpoint {
	l.now = time.Now().UnixNano()
	c := &Client{loop: l, h: h, state: ClientStartup, since: l.now, connected: l.now}
	c.setRemote(remote)
	l.all.add(c)
	l.clients++
	l.sh.clients.Add(1)
	l.Stats.ClientsAccepted++
	l.logins.push(c)
	return c
}

// SetNow gives the loop the current time (unix nanos). Engines call it once
// per batch of events, so the core reads no clock on the per-query path.
func (l *Loop) SetNow(ns int64) { l.now = ns }

// Clients returns the number of clients this loop owns.
func (l *Loop) Clients() int { return l.clients }

// Drained reports whether the loop has no clients and no busy servers left
// (used by graceful shutdown).
func (l *Loop) Drained() bool { return l.clients == 0 }

// Tick runs the loop's timeouts. Engines call it about every 100 ms.
func (l *Loop) Tick() {
	l.now = time.Now().UnixNano()
	o := l.opts()
	// Clients that do not finish logging in.
	if o.ClientLoginTimeout > 0 {
		for c := l.logins.head; c != nil && l.now-c.since > int64(o.ClientLoginTimeout); c = l.logins.head {
			c.fatal(codeProtocolViolation, "client_login_timeout (server down or wrong password?)", ReasonLoginTimeout)
		}
	}
	// Clients authenticated but still waiting for the pool's first server login.
	if o.ClientLoginTimeout > 0 {
		for _, p := range l.pools {
			for c := p.welcomeWait.head; c != nil && l.now-c.since > int64(o.ClientLoginTimeout); c = p.welcomeWait.head {
				c.fatal(codeConnectionFailure, "client_login_timeout: no server connection could be logged in for this pool in time", ReasonLoginTimeout)
			}
		}
	}
	// Clients queued for a server.
	for p := range l.waiting {
		if o.QueryWaitTimeout > 0 {
			for c := p.waiters.head; c != nil && l.now-c.since > int64(o.QueryWaitTimeout); c = p.waiters.head {
				c.fatal(codeProtocolViolation, "query_wait_timeout: no server connection became available in time", ReasonWaitTimeout)
			}
		}
		for _, pb := range p.per {
			if pb.waiting > 0 && pb.connecting == 0 && !backendUp(pb.b, l.now) {
				l.failBackendWaiters(p, pb.b, codeConnectionFailure, "backend "+pb.b.Addr+" is not available")
			}
		}
		if p.waiters.n == 0 {
			delete(l.waiting, p)
		} else {
			l.growPool(p) // a backend may be back, or capacity freed elsewhere
		}
	}
	for s := range l.servers {
		l.checkServerTimers(s, o)
	}
	if l.sh.ShuttingDown() {
		l.shutdownStep()
	}
}

func (l *Loop) checkServerTimers(s *Server, o *Options) {
	age := l.now - s.created
	switch s.state {
	case ServerConnecting, ServerLogin:
		if o.ServerConnectTimeout > 0 && age > int64(o.ServerConnectTimeout) {
			l.serverLoginFailed(s, codeConnectionFailure, "server_connect_timeout: could not connect to "+s.backend.Addr, true)
		}
	case ServerIdle:
		idle := l.now - s.lastUsed
		if o.ServerIdleTimeout > 0 && idle > int64(o.ServerIdleTimeout) {
			l.closeServer(s, ReasonServerIdleTimeout)
		} else if o.ServerLifetime > 0 && age > int64(o.ServerLifetime) {
			l.closeServer(s, ReasonServerLifetime)
		} else if s.backend.Draining() || l.sh.ShuttingDown() {
			l.closeServer(s, ReasonShutdown)
		}
	case ServerResetting:
		// A departed client's request that never ends (a COPY waiting for
		// data, a very long query): give up on the server.
		if l.now-s.lastUsed > int64(60*time.Second) {
			l.closeServer(s, ReasonServerDirty)
		}
	case ServerHeld:
		// A cancel connection the backend never closed: stop waiting for it.
		if l.now-s.lastUsed > int64(5*time.Second) {
			s.cancels = 0
			l.serverReady(s)
		}
	case ServerActive:
		if o.IdleTxTimeout > 0 && s.outstanding == 0 && s.tx != pgproto.TxIdle &&
			l.now-s.lastUsed > int64(o.IdleTxTimeout) {
			if c := s.client; c != nil {
				c.fatal(codeIdleInTxTimeout, "idle_transaction_timeout", ReasonIdleTxTimeout)
			}
		}
	}
}

// shutdownStep closes clients that hold no server; clients in a transaction
// are closed when it ends (see release).
func (l *Loop) shutdownStep() {
	for _, p := range l.pools {
		for c := p.waiters.head; c != nil; c = p.waiters.head {
			c.fatal(codeAdminShutdown, "terminating connection due to administrator command (poolmgr shutting down)", ReasonShutdown)
		}
	}
	for c := l.logins.head; c != nil; c = l.logins.head {
		c.fatal(codeCannotConnectNow, "the database system is shutting down", ReasonShutdown)
	}
	for c := l.all.head; c != nil; {
		next := c.allNext
		if c.state == ClientIdle || c.state == ClientAdmin {
			c.fatal(codeAdminShutdown, "terminating connection due to administrator command (poolmgr shutting down)", ReasonShutdown)
		}
		c = next
	}
}

// pool returns this loop's pool for (db, user), creating it.
func (l *Loop) pool(db, user string) *Pool {
	k := poolKey{db, user}
	p := l.pools[k]
	if p == nil {
		p = &Pool{sh: l.sh.pool(db, user), loop: l}
		l.pools[k] = p
	}
	return p
}

func (l *Loop) getBuf() []byte {
	if n := len(l.freeBufs); n > 0 {
		b := l.freeBufs[n-1]
		l.freeBufs = l.freeBufs[:n-1]
		return b[:0]
	}
	return make([]byte, 0, 4096)
}

func (l *Loop) putBuf(b []byte) {
	if cap(b) <= 1<<16 && len(l.freeBufs) < 256 {
		l.freeBufs = append(l.freeBufs, b[:0])
	}
}

// kickWaiting lets every pool with queued clients try to open servers again
// (capacity on a backend was freed).
func (l *Loop) kickWaiting() {
	for p := range l.waiting {
		l.growPool(p)
	}
}
