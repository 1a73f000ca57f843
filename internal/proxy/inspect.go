package proxy

import (
	"errors"
	"time"
)

// Read-only views of a loop for the admin console and the metrics endpoint
// (internal/admin, internal/metrics). Everything here that touches a loop
// runs on the loop's goroutine (through Inspect/InspectWithin); nothing adds
// work to the hot path.

// NumClientStates and NumServerStates size the per-state count arrays.
const (
	NumClientStates = int(ClientClosed) + 1
	NumServerStates = int(ServerClosed) + 1
)

// ErrInspectTimeout is returned by InspectWithin when a loop did not run the
// inspection in time (engine stopped or stuck).
var ErrInspectTimeout = errors.New("proxy: a loop did not answer the inspection in time")

// InspectWithin is Inspect with a deadline for the whole pass: it runs fn on
// every loop's goroutine, one loop at a time, and returns ErrInspectTimeout if
// a loop has not run it after d. fn may then still run later, so it must
// only write to state that belongs to that call (a per-loop result the
// caller drops on error). It must not be called from a loop goroutine.
func (s *Shared) InspectWithin(d time.Duration, fn func(*Loop)) error {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for _, l := range s.Loops() {
		done := make(chan struct{})
		l.post.Post(func() {
			fn(l)
			close(done)
		})
		select {
		case <-done:
		case <-deadline.C:
			return ErrInspectTimeout
		}
	}
	return nil
}

// BackendCounts are a loop's server connections to one backend, by state.
type BackendCounts struct {
	Backend *Backend
	States  [NumServerStates]int
}

// LoopCounts is a cheap, allocation-light summary of one loop: counters and
// connection counts, without per-connection rows.
type LoopCounts struct {
	ID             int
	Clients        [NumClientStates]int // by ClientState (admin sessions under ClientAdmin)
	Servers        [NumServerStates]int // by ServerState
	Backends       []BackendCounts      // servers by backend and state
	Pools          int                  // pools known to the loop
	WaitingClients int                  // clients queued for a server
	MaxWaitNanos   int64                // the oldest queued client's wait
	LoginQueue     int                  // clients still logging in
	FreeBufs       int                  // stash buffers kept for reuse
	Stmts          int                  // interned prepared statements
	AuthLookups    int                  // auth_query lookups running
	Stats          LoopStats
}

// Counts returns the loop's summary. Call it on the loop (Inspect).
func (l *Loop) Counts() LoopCounts {
	lc := LoopCounts{ID: l.id, Pools: len(l.pools), LoginQueue: l.logins.n, FreeBufs: len(l.freeBufs),
		Stmts: len(l.stmts), AuthLookups: len(l.authLookups), Stats: l.Stats}
	for c := l.all.head; c != nil; c = c.allNext {
		lc.Clients[c.state]++
	}
	for p := range l.waiting {
		lc.WaitingClients += p.waiters.n
		if h := p.waiters.head; h != nil && l.now-h.since > lc.MaxWaitNanos {
			lc.MaxWaitNanos = l.now - h.since
		}
	}
	idx := map[*Backend]int{}
	for s := range l.servers {
		lc.Servers[s.state]++
		i, ok := idx[s.backend]
		if !ok {
			i = len(lc.Backends)
			idx[s.backend] = i
			lc.Backends = append(lc.Backends, BackendCounts{Backend: s.backend})
		}
		lc.Backends[i].States[s.state]++
	}
	return lc
}

// PoolDetail is one loop's share of a (database, user) pool with every
// client and server state counted (SHOW POOLS).
type PoolDetail struct {
	Database, User string
	Clients        [NumClientStates]int
	Servers        [NumServerStates]int
	MaxWaitNanos   int64
	Paused         bool
}

// EachPoolDetail calls fn for every pool of the loop. Call it on the loop.
func (l *Loop) EachPoolDetail(fn func(PoolDetail)) {
	idx := make(map[*Pool]*PoolDetail, len(l.pools))
	for _, p := range l.pools {
		pd := &PoolDetail{Database: p.sh.Database, User: p.sh.User, Paused: p.sh.Paused()}
		if h := p.waiters.head; h != nil {
			pd.MaxWaitNanos = l.now - h.since
		}
		idx[p] = pd
	}
	for c := l.all.head; c != nil; c = c.allNext {
		if pd := idx[c.pool]; pd != nil {
			pd.Clients[c.state]++
		}
	}
	for s := range l.servers {
		if pd := idx[s.pool]; pd != nil {
			pd.Servers[s.state]++
		}
	}
	for _, pd := range idx {
		fn(*pd)
	}
}

// ClientDetail is ClientInfo plus what SHOW CLIENTS shows beyond it.
type ClientDetail struct {
	ClientInfo
	Since    int64 // unix nanos: accept time, then when it last started waiting
	Prepared int   // the client's named prepared statements
}

// EachClientDetail calls fn for every client of the loop. Call it on the loop.
func (l *Loop) EachClientDetail(fn func(ClientDetail)) {
	for c := l.all.head; c != nil; c = c.allNext {
		cd := ClientDetail{ClientInfo: ClientInfo{User: c.user(), Database: c.database(), State: c.state,
			Remote: c.remote().String(), ConnectTime: c.connected, PID: c.cancelPID, Params: c.params,
			Admin: c.admin != nil}, Since: c.since, Prepared: len(c.stmts)}
		if c.state == ClientWaiting {
			cd.WaitSince = c.since
		}
		if c.server != nil {
			cd.ServerPID = c.server.pid
		}
		fn(cd)
	}
}

// ServerDetail is ServerInfo plus what SHOW SERVERS shows beyond it.
type ServerDetail struct {
	ServerInfo
	LinkedAt    int64 // unix nanos: when it was last given to a client
	CloseNeeded bool  // RECONNECT/reload: closed when released
	Params      *ParamSet
}

// EachServerDetail calls fn for every server connection of the loop. Call it on the loop.
func (l *Loop) EachServerDetail(fn func(ServerDetail)) {
	for s := range l.servers {
		sd := ServerDetail{ServerInfo: ServerInfo{User: s.pool.sh.User, Database: s.pool.sh.Database,
			Backend: s.backend.Addr, State: s.state, PID: s.pid, Created: s.created, LastUsed: s.lastUsed,
			TxStatus: s.tx, Prepared: len(s.stmts)}, LinkedAt: s.linkedAt, CloseNeeded: s.retire || s.backend.removed.Load(),
			Params: s.params}
		if s.client != nil {
			sd.ClientPID = s.client.cancelPID
		}
		fn(sd)
	}
}

// DownUntil returns until when new connections skip b after a failed
// connect or login (zero time if not down).
func (b *Backend) DownUntil() time.Time {
	if n := b.downUntil.Load(); n > 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// Removed reports whether b was dropped from the config by a reload.
func (b *Backend) Removed() bool { return b.removed.Load() }

// Checked reports whether a health check has finished for b (false when no
// health checker runs).
func (b *Backend) Checked() bool { return b.checked.Load() }
