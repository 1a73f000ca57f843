package proxy

import (
	"sync"

	"github.com/poolmgr/poolmgr/internal/pgproto"
)

// AdminHandler runs admin-console queries (the virtual databases "poolmgr"
// and "pgbouncer"). Query must not block the loop: it is called on the
// client's loop and must answer later, from any goroutine, with
// sess.Reply. The internal/admin package implements it.
type AdminHandler interface {
	Query(sess *AdminSession, sql string)
}

// AdminSession is one admin-console client.
type AdminSession struct {
	User     string
	Database string
	Admin    bool // true: admin_users (commands allowed); false: stats_users (read-only)
	c        *Client
}

// Reply sends a complete response (RowDescription/DataRow/CommandComplete or
// ErrorResponse messages, without ReadyForQuery) to the session's client and
// ends with ReadyForQuery; close ends the session afterwards. Safe from any
// goroutine.
func (s *AdminSession) Reply(resp []byte, close bool) {
	c := s.c
	c.loop.post.Post(func() {
		if c.state != ClientAdmin {
			return
		}
		c.send(resp)
		c.send(pgproto.AppendReadyForQuery(c.loop.scratch[:0], pgproto.TxIdle))
		c.adminBusy = false
		if close {
			c.close(ReasonAdmin)
			return
		}
		if len(c.stash) > 0 {
			c.onAdminData(nil)
		}
	})
}

// SetAdmin installs the admin-console handler.
func (s *Shared) SetAdmin(h AdminHandler) { s.admin = h }

func isAdminDB(db string) bool { return db == "poolmgr" || db == "pgbouncer" }

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// adminWelcome finishes an admin-console login.
func (c *Client) adminWelcome() {
	l := c.loop
	o := l.opts()
	isAdmin := contains(o.AdminUsers, c.user())
	if l.sh.admin == nil || (!isAdmin && !contains(o.StatsUsers, c.user())) {
		c.fatal(codeInvalidAuthSpec, "not allowed to connect to the admin console (user \""+c.user()+"\" is not in admin_users or stats_users)", ReasonAuthFailed)
		return
	}
	c.admin = &AdminSession{User: c.user(), Database: c.database(), Admin: isAdmin, c: c}
	out := pgproto.AppendAuth(l.scratch[:0], pgproto.AuthOK, nil)
	for _, kv := range [][2]string{{"server_version", "15.0 (poolmgr)"}, {"server_encoding", "UTF8"},
		{"client_encoding", "UTF8"}, {"DateStyle", "ISO, MDY"}, {"integer_datetimes", "on"},
		{"standard_conforming_strings", "on"}, {"TimeZone", "UTC"}, {"application_name", ""}} {
		out = pgproto.AppendParameterStatus(out, kv[0], kv[1])
	}
	out = pgproto.AppendBackendKeyData(out, c.cancelPID, c.cancelSecret)
	out = pgproto.AppendReadyForQuery(out, pgproto.TxIdle)
	l.scratch = out[:0]
	c.send(out)
	c.state = ClientAdmin
}

// onAdminData handles what an admin-console client sends: simple queries only.
func (c *Client) onAdminData(b []byte) {
	l := c.loop
	if c.stash == nil {
		c.stash = l.getBuf()
	}
	c.stash = append(c.stash, b...)
	for !c.adminBusy && c.state == ClientAdmin {
		typ, total, ok, err := pgproto.Frame(c.stash, 1<<20)
		if err != nil {
			c.fatal(codeProtocolViolation, "invalid message", ReasonClientProtocol)
			return
		}
		if !ok {
			return
		}
		body := c.stash[pgproto.HeaderLen:total]
		switch typ {
		case pgproto.MsgTerminate:
			c.close(ReasonClientTerminate)
			return
		case pgproto.MsgQuery:
			sql, _ := pgproto.QueryText(body)
			c.adminBusy = true
			q := string(sql)
			c.stash = c.stash[:copy(c.stash, c.stash[total:])]
			l.sh.admin.Query(c.admin, q)
			continue
		case pgproto.MsgSync:
			c.send(pgproto.AppendReadyForQuery(l.scratch[:0], pgproto.TxIdle))
		default:
			c.send(pgproto.AppendError(l.scratch[:0], pgproto.SevError, codeFeatureNotSupported,
				"the admin console supports only the simple query protocol"))
		}
		c.stash = c.stash[:copy(c.stash, c.stash[total:])]
	}
}

// Loops returns the loops sharing this state.
func (s *Shared) Loops() []*Loop {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Loop(nil), s.loops...)
}

// Inspect runs fn on every loop's goroutine, one loop at a time, and waits.
// It must not be called from a loop goroutine.
func (s *Shared) Inspect(fn func(*Loop)) {
	for _, l := range s.Loops() {
		var wg sync.WaitGroup
		wg.Add(1)
		l.post.Post(func() { defer wg.Done(); fn(l) })
		wg.Wait()
	}
}

// ClientInfo is a snapshot of one client (SHOW CLIENTS).
type ClientInfo struct {
	User, Database string
	State          ClientState
	Remote         string
	ConnectTime    int64 // unix nanos
	WaitSince      int64 // unix nanos when waiting
	ServerPID      uint32
	PID            uint32 // the proxy-issued cancel key pid
	Params         *ParamSet
	Admin          bool
}

// ServerInfo is a snapshot of one server connection (SHOW SERVERS).
type ServerInfo struct {
	User, Database, Backend string
	State                   ServerState
	PID                     uint32
	Created, LastUsed       int64
	ClientPID               uint32
	TxStatus                byte
	Prepared                int
}

// PoolInfo is a snapshot of one loop's share of a pool (SHOW POOLS).
type PoolInfo struct {
	Database, User                         string
	ClActive, ClWaiting, ClIdle, ClWelcome int
	SvActive, SvIdle, SvLogin, SvOther     int
	MaxWaitNanos                           int64
}

// EachClient calls fn for every client of the loop (on the loop's goroutine).
func (l *Loop) EachClient(fn func(ClientInfo)) {
	for c := l.all.head; c != nil; c = c.allNext {
		ci := ClientInfo{User: c.user(), Database: c.database(), State: c.state, Remote: c.remote().String(),
			ConnectTime: c.connected, PID: c.cancelPID, Params: c.params, Admin: c.admin != nil}
		if c.state == ClientWaiting {
			ci.WaitSince = c.since
		}
		if c.server != nil {
			ci.ServerPID = c.server.pid
		}
		fn(ci)
	}
}

// EachServer calls fn for every server connection of the loop.
func (l *Loop) EachServer(fn func(ServerInfo)) {
	for s := range l.servers {
		si := ServerInfo{User: s.pool.sh.User, Database: s.pool.sh.Database, Backend: s.backend.Addr,
			State: s.state, PID: s.pid, Created: s.created, LastUsed: s.lastUsed, TxStatus: s.tx, Prepared: len(s.stmts)}
		if s.client != nil {
			si.ClientPID = s.client.cancelPID
		}
		fn(si)
	}
}

// EachPool calls fn for every pool of the loop.
func (l *Loop) EachPool(fn func(PoolInfo)) {
	idx := make(map[*Pool]*PoolInfo, len(l.pools))
	for _, p := range l.pools {
		pi := &PoolInfo{Database: p.sh.Database, User: p.sh.User}
		if h := p.waiters.head; h != nil {
			pi.MaxWaitNanos = l.now - h.since
		}
		idx[p] = pi
	}
	for c := l.all.head; c != nil; c = c.allNext {
		pi := idx[c.pool]
		if pi == nil {
			continue
		}
		switch c.state {
		case ClientActive:
			pi.ClActive++
		case ClientWaiting:
			pi.ClWaiting++
		case ClientIdle:
			pi.ClIdle++
		case ClientWelcome:
			pi.ClWelcome++
		}
	}
	for s := range l.servers {
		pi := idx[s.pool]
		if pi == nil {
			continue
		}
		switch s.state {
		case ServerActive:
			pi.SvActive++
		case ServerIdle:
			pi.SvIdle++
		case ServerConnecting, ServerLogin:
			pi.SvLogin++
		default:
			pi.SvOther++
		}
	}
	for _, pi := range idx {
		fn(*pi)
	}
}

// Now returns the loop's clock (unix nanos, refreshed every tick).
func (l *Loop) Now() int64 { return l.now }

// ID returns the loop's number.
func (l *Loop) ID() int { return l.id }

// allClients is an intrusive list of every client of a loop.
type allClients struct {
	head *Client
	n    int
}

func (a *allClients) add(c *Client) {
	c.allNext = a.head
	if a.head != nil {
		a.head.allPrev = c
	}
	a.head = c
	a.n++
}

func (a *allClients) remove(c *Client) {
	if c.allPrev != nil {
		c.allPrev.allNext = c.allNext
	} else if a.head == c {
		a.head = c.allNext
	}
	if c.allNext != nil {
		c.allNext.allPrev = c.allPrev
	}
	c.allPrev, c.allNext = nil, nil
	a.n--
}

// KickAll makes every loop retry its queued clients (after RESUME or a reload).
func (s *Shared) KickAll() {
	for _, l := range s.Loops() {
		l := l
		l.post.Post(func() {
			for p := range l.waiting {
				l.growPool(p)
			}
		})
	}
}

// KillDatabase closes every client and server connection of database db on
// this loop (admin KILL). Call it on the loop (Inspect).
func (l *Loop) KillDatabase(db string) (clients, servers int) {
	for c := l.all.head; c != nil; {
		next := c.allNext
		if c.database() == db && c.admin == nil {
			c.fatal(codeAdminShutdown, "terminating connection due to administrator command (KILL "+db+")", ReasonAdmin)
			clients++
		}
		c = next
	}
	for s := range l.servers {
		if s.pool.sh.Database == db {
			l.closeServer(s, ReasonAdmin)
			servers++
		}
	}
	return
}

// ReconnectDatabase closes the idle servers of database db ("" = all) now and
// marks the busy ones to be closed when released (admin RECONNECT).
func (l *Loop) ReconnectDatabase(db string) int {
	n := 0
	for s := range l.servers {
		if db != "" && s.pool.sh.Database != db {
			continue
		}
		n++
		if s.state == ServerIdle {
			l.closeServer(s, ReasonAdmin)
		} else {
			s.retire = true
		}
	}
	return n
}
