package proxy

import (
	"bytes"

	"github.com/poolmgr/poolmgr/internal/cache"
	"strings"
	"time"

	"github.com/poolmgr/poolmgr/internal/auth"
	"github.com/poolmgr/poolmgr/internal/pgproto"
)

// ServerState is where a server connection is in its life.
type ServerState uint8

// Server states.
const (
	ServerConnecting ServerState = iota // TCP connect in progress
	ServerLogin                         // startup and authentication with the backend
	ServerIdle                          // in its pool's idle list
	ServerActive                        // linked to a client
	ServerResetting                     // rolling back / resetting after its client left
	ServerHeld                          // released, but a cancel aimed at its last client is in flight
	ServerClosed
)

var serverStateNames = [...]string{"connecting", "login", "idle", "active", "resetting", "held", "closed"}

func (s ServerState) String() string { return serverStateNames[s] }

// maxServerMsg bounds the backend messages the proxy decodes (ParameterStatus,
// ErrorResponse, authentication); larger ones are forwarded undecoded.
const maxServerMsg = 1 << 16

// Server is one connection to a backend.
type Server struct {
	loop    *Loop
	h       Handle
	pool    *Pool
	backend *Backend
	state   ServerState
	client  *Client

	scan pgproto.Scanner
	msg  []byte // body of the message being decoded
	keep bool   // the current message is being decoded
	drop bool   // the current message is not forwarded

	q           pendingQueue // requests whose responses have not ended
	outstanding int          // Query/Sync/FunctionCall in q
	extOpen     bool         // extended-protocol messages sent since the last Sync

	stmts      map[*Stmt]srvStmt // statements prepared on this connection
	stmtSeq    uint64
	useTick    uint64
	unnamedBy  *Client // whose Parse created the current unnamed statement
	unnamedSeq uint32
	tx         byte // last transaction status
	params     *ParamSet

	pid, secret uint32 // the backend's cancel key
	bauth       *auth.BackendAuth
	welcome     []byte // ParameterStatus messages seen during login
	standby     bool
	loginErr    []byte

	created, lastUsed int64
	linkedAt          int64
	retire            bool // close instead of reusing (RECONNECT)

	orphanDB     string // a departed client's writes still running here (query cache)
	orphanWrites cache.Writes
	cancels      int // cancel requests in flight against this server
	readPaused   bool

	inList       *serverList
	iprev, inext *Server
	reason       CloseReason
}

// State returns the server's state.
func (s *Server) State() ServerState { return s.state }

// OnConnected implements Endpoint: send the startup packet.
func (s *Server) OnConnected(err error) {
	if s.state != ServerConnecting {
		return
	}
	l := s.loop
	if err != nil {
		l.serverLoginFailed(s, codeConnectionFailure, "could not connect to server "+s.backend.Addr+": "+err.Error(), true)
		return
	}
	s.state = ServerLogin
	creds := s.pool.sh.creds.Load()
	if creds == nil {
		creds = &auth.BackendCreds{User: s.pool.sh.User}
	}
	s.bauth = auth.NewBackendAuth(*creds, l.rnd)
	out := pgproto.AppendStartupMessage(l.scratch[:0], "user", s.pool.sh.User, "database", s.pool.sh.Database)
	l.t.Send(s.h, out)
}

// OnData implements Endpoint.
func (s *Server) OnData(b []byte) {
	l := s.loop
	l.Stats.ServerBytes += uint64(len(b))
	start, i := 0, 0
	for i < len(b) && s.state != ServerClosed {
		c := s.client
		fwd := s.state == ServerActive && c != nil
		n, st, typ, blen, err := s.scan.Next(b[i:])
		if err != nil {
			if fwd {
				l.sendTo(c, b, start, i)
			}
			l.closeServer(s, ReasonServerProtocol)
			return
		}
		if !st {
			if s.scan.Partial() || s.drop || !fwd {
				if fwd {
					l.sendTo(c, b, start, i)
				}
				start = i + n
			}
			if s.keep {
				s.msg = append(s.msg, b[i:i+n]...)
			}
			i += n
			if s.scan.Remain() == 0 && !s.scan.Partial() {
				if !s.endMessage(b, &start, i) {
					return
				}
			}
			continue
		}
		pieced := n < pgproto.HeaderLen
		s.startMessage(typ, blen)
		if fwd && (s.drop || pieced) {
			l.sendTo(c, b, start, i)
			if !s.drop {
				c.deliver(s.scan.Header())
			}
		}
		if !fwd || s.drop || pieced {
			start = i + n
		}
		i += n
		if blen == 0 {
			if !s.endMessage(b, &start, i) {
				return
			}
		}
	}
	if c := s.client; c != nil && s.state == ServerActive {
		l.sendTo(c, b, start, len(b))
	}
}

func (l *Loop) sendTo(c *Client, b []byte, from, to int) {
	if to > from {
		c.deliver(b[from:to])
	}
}

// startMessage classifies a message from the backend by type and state:
// keep (decode its body) and drop (do not forward it).
func (s *Server) startMessage(typ byte, blen int) {
	s.msg = s.msg[:0]
	s.keep, s.drop = false, false
	switch s.state {
	case ServerActive:
		switch typ {
		case pgproto.MsgReadyForQuery, pgproto.MsgParameterStatus:
			s.keep = true
		case pgproto.MsgErrorResponse, pgproto.MsgCommandComplete:
			s.keep = blen <= maxServerMsg
		}
		if h := s.q.peek(); h != nil {
			if h.flags&pSwallow != 0 {
				s.drop = typ != pgproto.MsgErrorResponse || h.flags&pQuiet != 0
			}
			if h.flags&pReplaceErr != 0 && typ == pgproto.MsgErrorResponse {
				s.drop = true // replaced at its end
			}
			if h.typ == 'D' && h.stmt != nil && h.stmt.descBuf != nil &&
				(typ == pgproto.MsgParameterDesc || typ == pgproto.MsgRowDescription || typ == pgproto.MsgNoData) {
				if blen <= maxServerMsg {
					s.keep = true
				} else {
					h.stmt.descBuf = nil
				}
			}
		}
	default:
		s.keep, s.drop = blen <= maxServerMsg, true
	}
}

// endMessage handles a complete message from the backend; bytes up to i are
// consumed and *start is the first byte not yet forwarded. It returns false
// when the rest of b must not be processed (the server closed).
func (s *Server) endMessage(b []byte, start *int, i int) bool {
	l := s.loop
	typ := s.scan.Type()
	body := s.msg
	keep, drop := s.keep, s.drop
	s.keep, s.drop = false, false
	if drop {
		*start = i
	}
	switch s.state {
	case ServerLogin:
		if keep {
			return s.loginMessage(typ, body)
		}
		return true
	case ServerIdle, ServerHeld:
		if typ == pgproto.MsgErrorResponse {
			l.closeServer(s, ReasonServerLost)
			return false
		}
		return true
	case ServerConnecting, ServerClosed:
		return true
	}
	// Active or resetting.
	switch typ {
	case pgproto.MsgParameterStatus:
		if keep && s.state == ServerResetting {
			// A rollback/reset changed a setting: remember the server's real value.
			if k, v, ok := pgproto.ParameterStatus(body); ok {
				key := strings.ToLower(string(k))
				if !untrackedReports[key] {
					s.params = l.pi.with(s.params, l.pi.str([]byte(key)), l.pi.str(v))
				}
			}
			return true
		}
		if keep && !drop && s.client != nil {
			if k, v, ok := pgproto.ParameterStatus(body); ok {
				key := strings.ToLower(string(k))
				if !untrackedReports[key] {
					c := s.client
					np := l.pi.with(c.params, l.pi.str([]byte(key)), l.pi.str(v))
					c.params, s.params = np, np
				}
			}
		}
		return true
	case pgproto.MsgCommandComplete:
		if keep && len(body) > 0 && s.state == ServerActive {
			tag := body[:len(body)-1]
			if body[0] == 'D' {
				s.serverTag(tag)
			}
			if c := s.client; c != nil && c.trackWrites && !drop {
				c.cacheTag(s, tag)
			}
		}
	case pgproto.MsgErrorResponse:
		if c := s.client; c != nil && s.state == ServerActive && !drop {
			if q := c.qc; q != nil {
				q.txFailed = true // the implicit transaction rolls back
				q.capFailed = true
				q.cap.on = false
			}
		}
		if keep && s.serverError(b, start, i, body) {
			return false
		}
		if h := s.q.peek(); h != nil && h.flags&pReplaceErr != 0 && s.client != nil && s.state == ServerActive {
			var out []byte
			if keep && string(pgproto.ErrorField(body, 'C')) == "25P02" {
				out = append(l.scratch[:0], pgproto.MsgErrorResponse, 0, 0, 0, 0)
				out = pgproto.Finish(append(out, body...), 0)
			} else {
				out = pgproto.AppendError(l.scratch[:0], pgproto.SevError, h.errCode, h.errMsg)
			}
			s.client.deliver(out)
		}
		h := s.q.peek()
		if h == nil || h.typ == 'Q' || h.typ == 'F' {
			return true // a simple query's error; ReadyForQuery ends it
		}
		// Extended protocol: PostgreSQL skips everything up to Sync.
		s.popUnit(true)
		for s.q.n > 0 && s.q.peek().typ != 'S' {
			s.popUnit(true)
		}
		return true
	}
	h := s.q.peek()
	if h != nil && keep && h.typ == 'D' && h.stmt != nil && h.stmt.descBuf != nil &&
		(typ == pgproto.MsgParameterDesc || typ == pgproto.MsgRowDescription || typ == pgproto.MsgNoData) {
		d := append(h.stmt.descBuf, typ, 0, 0, 0, 0)
		d = append(d, body...)
		h.stmt.descBuf = pgproto.Finish(d, len(d)-len(body)-pgproto.HeaderLen)
	}
	if h == nil || !endsUnit(h, typ) {
		return true
	}
	if c := s.client; c != nil && s.state == ServerActive && !drop {
		l.sendTo(c, b, *start, i)
		*start = i
	}
	s.popUnit(false)
	if typ == pgproto.MsgReadyForQuery {
		st, _ := pgproto.ReadyStatus(body)
		if c := s.client; c != nil && c.trackWrites && !drop {
			c.cacheReady(s, s.tx, st)
		}
		s.tx = st
		s.lastUsed = l.now
		if s.state == ServerResetting {
			if s.q.n == 0 {
				s.finishOrphan()
				if s.tx != pgproto.TxIdle {
					l.closeServer(s, ReasonServerDirty)
					return false
				}
				*start = i
				l.serverReady(s)
			}
			return s.state != ServerClosed
		}
		if st == pgproto.TxIdle {
			l.Stats.Transactions++
		}
	}
	s.emitSynth()
	if typ == pgproto.MsgReadyForQuery {
		if c := s.client; c != nil && c.deferred && s.tx != pgproto.TxIdle {
			// Held back for the primary, but the client opened a transaction
			// here after all: it continues on this server (PostgreSQL decides).
			st := c.stash
			c.stash, c.deferred = nil, false
			c.forward(st)
			l.putBuf(st)
		}
		l.release(s)
		*start = i
	}
	return s.state != ServerClosed
}

// serverError looks at an ErrorResponse on an active server: a FATAL ends
// the session (the client receives it and is closed with it); a "cached plan
// must not change result type" error makes the statement stale everywhere.
// It returns true when the server was closed.
func (s *Server) serverError(b []byte, start *int, i int, body []byte) bool {
	l := s.loop
	sev := pgproto.ErrorField(body, 'V')
	if string(sev) == pgproto.SevFatal || string(sev) == "PANIC" {
		if c := s.client; c != nil && s.state == ServerActive {
			l.sendTo(c, b, *start, i)
			*start = len(b)
			s.loop.unlink(c, s)
			c.close(ReasonServerLost)
		}
		l.closeServer(s, ReasonServerLost)
		return true
	}
	if h := s.q.peek(); h != nil && h.stmt != nil && string(pgproto.ErrorField(body, 'C')) == "0A000" &&
		bytes.Contains(pgproto.ErrorField(body, 'M'), []byte("cached plan must not change result type")) {
		h.stmt.gen++
		h.stmt.validated, h.stmt.desc = false, nil
		if c := s.client; c != nil { // this client got PostgreSQL's error: its next execution works
			for name, cs := range c.stmts {
				if cs.st == h.stmt {
					c.stmts[name] = clientStmt{st: cs.st, gen: cs.st.gen}
				}
			}
		}
	}
	return false
}

// loginMessage handles the backend's answer to the startup packet.
func (s *Server) loginMessage(typ byte, body []byte) bool {
	l := s.loop
	switch typ {
	case pgproto.MsgAuthentication:
		code, data, ok := pgproto.AuthCode(body)
		if !ok {
			l.closeServer(s, ReasonServerProtocol)
			return false
		}
		if code == pgproto.AuthOK {
			return true
		}
		reply, err := s.bauth.Step(code, data)
		if err != nil {
			l.serverLoginFailed(s, codeInvalidPassword, "poolmgr could not log in to the backend as \""+s.pool.sh.User+"\": "+err.Error(), false)
			return false
		}
		if len(reply) > 0 {
			l.t.Send(s.h, reply)
		}
	case pgproto.MsgParameterStatus:
		k, v, ok := pgproto.ParameterStatus(body)
		if ok {
			if string(k) == "in_hot_standby" {
				s.standby = string(v) == "on"
			}
			s.welcome = pgproto.AppendParameterStatus(s.welcome, string(k), string(v))
		}
	case pgproto.MsgBackendKeyData:
		s.pid, s.secret, _ = pgproto.BackendKeyData(body)
	case pgproto.MsgErrorResponse:
		code := string(pgproto.ErrorField(body, 'C'))
		msg := string(pgproto.ErrorField(body, 'M'))
		if code == "" {
			code = codeConnectionFailure
		}
		if code == "57P03" || code == "53300" { // starting up / too many connections: transient
			s.backend.downUntil.Store(l.now + int64(l.opts().ServerLoginRetry)/4)
			l.serverLoginFailed(s, code, msg, true)
			return false
		}
		l.serverLoginFailed(s, code, msg, false)
		return false
	case pgproto.MsgReadyForQuery:
		s.loginDone()
		return s.state != ServerClosed
	}
	return true
}

// loginDone: the server is ready. A standby is noted and dropped (all
// queries go to the primary for now); otherwise the pool learns the server
// parameters and the server serves its first client.
func (s *Server) loginDone() {
	l := s.loop
	p := s.pool
	s.bauth = nil
	s.tx = pgproto.TxIdle
	l.Stats.ServerLogins++
	s.backend.loginFailures.Store(0)
	if s.standby {
		s.backend.role.Store(int32(RoleStandby))
	} else {
		s.backend.role.Store(int32(RolePrimary))
	}
	if s.standby && p.sh.welcome.Load() == nil {
		// The pool's first login must be on the primary (its parameters are
		// what clients see); this backend is a standby after all.
		l.closeServer(s, ReasonServerLoginFailed)
		l.failBackendWaiters(p, s.backend, codeConnectionFailure, "no primary backend is available")
		l.growPool(p)
		return
	}
	p.loginEnded(s)
	if p.sh.welcome.Load() == nil {
		w := s.welcome
		p.sh.welcome.Store(&w)
	}
	s.welcome = nil
	s.msg = nil
	for c := p.welcomeWait.pop(); c != nil; c = p.welcomeWait.pop() {
		c.sendWelcome(true)
	}
	s.state = ServerIdle // not in the idle list yet; serverReady decides
	l.serverReady(s)
	if p.waiters.n > 0 && l.opts().MaxServerLogins > 0 {
		l.growPool(p) // a login slot is free: start the next one (max_server_logins)
	}
}

// serverLoginFailed ends a server that could not be opened or logged in.
// transient errors (connect failures) leave clients queued if another
// backend or a retry may serve them; authentication errors go to the
// clients waiting on the pool.
func (l *Loop) serverLoginFailed(s *Server, code, msg string, transient bool) {
	p := s.pool
	b := s.backend
	l.closeServer(s, ReasonServerLoginFailed)
	l.log().Warn("server login failed", "backend", b.Addr, "user", p.sh.User, "db", p.sh.Database, "code", code, "msg", msg)
	if transient {
		// Back off before the next attempt on this backend (100 ms doubling
		// up to server_login_retry): no reconnect storm against a backend
		// that accepts and drops connections.
		streak := min(b.loginFailures.Add(1), 8)
		back := min(int64(100*time.Millisecond)<<(streak-1), int64(max(l.opts().ServerLoginRetry, 100*time.Millisecond)))
		if until := l.now + back; until > b.downUntil.Load() {
			b.downUntil.Store(until)
		}
		if p.perB(b).connecting == 0 && !backendUp(b, l.now) {
			l.failBackendWaiters(p, b, code, msg) // moved to another backend when possible
		}
		if p.welcomeWait.n > 0 && p.connecting == 0 {
			if l.sh.pickPrimary(l.now) == nil {
				for c := p.welcomeWait.pop(); c != nil; c = p.welcomeWait.pop() {
					c.fatal(code, msg, ReasonConnectFailed)
				}
			}
		}
		l.growPool(p)
		return
	}
	// Authentication or database errors: every backend would refuse.
	for c := p.welcomeWait.pop(); c != nil; c = p.welcomeWait.pop() {
		c.fatal(code, msg, ReasonServerLoginFailed)
	}
	for c := p.waiters.head; c != nil; c = p.waiters.head {
		l.unqueue(c)
		c.fatal(code, msg, ReasonServerLoginFailed)
	}
}

// OnClosed implements Endpoint: the backend closed or the connection broke.
func (s *Server) OnClosed(err error) {
	l := s.loop
	switch s.state {
	case ServerClosed:
		return
	case ServerConnecting, ServerLogin:
		l.serverLoginFailed(s, codeConnectionFailure, "server closed the connection during login", true)
		return
	}
	if c := s.client; c != nil {
		if s.q.n > 0 {
			c.cacheUnknownOutcome()
		}
		s.loop.unlink(c, s)
		c.fatal(codeConnectionFailure, "server connection lost (backend "+s.backend.Addr+" closed it)", ReasonServerLost)
	}
	l.closeServer(s, ReasonServerLost)
}

// OnWriteBlocked implements Endpoint: the backend reads slower than the
// client writes (COPY FROM); pause the client.
func (s *Server) OnWriteBlocked(blocked bool) {
	if c := s.client; c != nil && c.readPaused != blocked {
		c.readPaused = blocked
		s.loop.t.PauseRead(c.h, blocked)
	}
}

// closeServer ends a server connection and frees its place in the limits.
func (l *Loop) closeServer(s *Server, r CloseReason) {
	if s.state == ServerClosed {
		return
	}
	p := s.pool
	s.finishOrphan() // unknown outcome: count it as committed
	if s.state == ServerConnecting || s.state == ServerLogin {
		p.loginEnded(s)
	}
	if s.inList != nil {
		s.inList.remove(s)
	}
	s.state = ServerClosed
	s.reason = r
	l.Stats.Closes[r]++
	if c := s.client; c != nil {
		s.loop.unlink(c, s)
		c.fatal(codeConnectionFailure, "server connection closed ("+r.String()+")", ReasonServerLost)
	}
	if r != ReasonServerLost && r != ReasonServerProtocol {
		l.t.Send(s.h, pgproto.AppendTerminate(l.scratch[:0]))
	}
	l.t.Close(s.h)
	delete(l.servers, s)
	p.servers--
	s.backend.open.Add(-1)
	p.sh.open.Add(-1)
	p.perB(s.backend).open.Add(-1)
	l.kickWaiting()
}

// cancelRequest handles a CancelRequest received on any loop: it finds the
// client by its proxy-issued key and, on the client's loop, forwards a
// cancel to the server connection running that client's query right now.
func (l *Loop) cancelRequest(pid, secret uint32) {
	c := l.sh.cancels.lookup(pid, secret)
	if c == nil {
		return
	}
	owner := c.loop
	run := func() {
		if c.state != ClientActive || c.server == nil {
			return // nothing running: the cancel cancels nothing
		}
		s := c.server
		if s.pid == 0 {
			return
		}
		s.cancels++
		cc := &cancelConn{loop: owner, target: s, pid: s.pid, secret: s.secret}
		cc.h = owner.t.Dial(s.backend.Addr, cc)
	}
	if owner == l {
		run()
	} else {
		owner.post.Post(run)
	}
}
