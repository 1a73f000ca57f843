package proxy

import (
	"strings"

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

	outstanding int  // Query/Sync/FunctionCall sent, ReadyForQuery not yet received
	swallow     int  // ReadyForQuery of proxy-injected queries still to come
	extOpen     bool // extended-protocol messages sent since the last Sync
	tx          byte // last transaction status
	params      *ParamSet

	pid, secret uint32 // the backend's cancel key
	bauth       *auth.BackendAuth
	welcome     []byte // ParameterStatus messages seen during login
	standby     bool
	loginErr    []byte

	created, lastUsed int64
	cancels           int // cancel requests in flight against this server
	readPaused        bool

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
	s.pool.connecting-- // counted again below while logging in
	if err != nil {
		s.backend.downUntil.Store(l.now + int64(l.opts().ServerLoginRetry))
		s.pool.connecting++
		l.serverLoginFailed(s, codeConnectionFailure, "could not connect to server "+s.backend.Addr+": "+err.Error(), true)
		return
	}
	s.pool.connecting++
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
	c := s.client
	fwd := s.state == ServerActive && c != nil
	start, i := 0, 0
	for i < len(b) && s.state != ServerClosed {
		n, st, typ, blen, err := s.scan.Next(b[i:])
		if err != nil {
			l.closeServer(s, ReasonServerProtocol)
			return
		}
		if !st {
			if s.scan.Partial() {
				if fwd {
					l.sendTo(c, b, start, i)
				}
				start = i + n
			} else if s.keep {
				s.msg = append(s.msg, b[i:i+n]...)
			}
			i += n
			if s.scan.Remain() == 0 && !s.scan.Partial() && (s.keep || s.drop) {
				if !s.endMessage(b, &start, i, fwd) {
					return
				}
				c = s.client
				fwd = s.state == ServerActive && c != nil
			}
			continue
		}
		// A message header: decide whether to keep (decode) and drop (not forward) it.
		pieced := n < pgproto.HeaderLen
		s.startMessage(typ, blen)
		if fwd {
			if s.drop {
				l.sendTo(c, b, start, i)
			} else if pieced {
				l.sendTo(c, b, start, i)
				l.t.Send(c.h, s.scan.Header())
			}
			if s.drop || pieced {
				start = i + n
			}
		}
		i += n
		if blen == 0 && (s.keep || s.drop) {
			if !s.endMessage(b, &start, i, fwd) {
				return
			}
			c = s.client
			fwd = s.state == ServerActive && c != nil
		}
	}
	if fwd && s.state == ServerActive {
		l.sendTo(c, b, start, len(b))
	}
}

func (l *Loop) sendTo(c *Client, b []byte, from, to int) {
	if to > from {
		l.t.Send(c.h, b[from:to])
	}
}

// startMessage classifies a message from the backend by type and state.
func (s *Server) startMessage(typ byte, blen int) {
	s.msg = s.msg[:0]
	s.keep, s.drop = false, false
	switch s.state {
	case ServerLogin, ServerIdle, ServerResetting, ServerHeld:
		s.keep, s.drop = blen <= maxServerMsg, true
	case ServerActive:
		switch typ {
		case pgproto.MsgReadyForQuery, pgproto.MsgParameterStatus:
			s.keep = true
		case pgproto.MsgErrorResponse:
			s.keep = blen <= maxServerMsg
		}
		s.drop = s.swallow > 0
	}
}

// endMessage handles a complete kept or dropped message. Bytes up to i are
// consumed. It returns false if the server was closed or changed hands in a
// way that ends this read.
func (s *Server) endMessage(b []byte, start *int, i int, fwd bool) bool {
	l := s.loop
	typ := s.scan.Type()
	body := s.msg
	keep := s.keep
	s.keep = false
	if s.drop {
		*start = i
	}
	s.drop = false
	if !keep {
		return true
	}
	switch s.state {
	case ServerLogin:
		return s.loginMessage(typ, body)
	case ServerActive, ServerResetting:
		switch typ {
		case pgproto.MsgReadyForQuery:
			st, _ := pgproto.ReadyStatus(body)
			s.tx = st
			s.outstanding--
			s.lastUsed = l.now
			if s.swallow > 0 {
				s.swallow--
			}
			if s.state == ServerResetting {
				if s.outstanding == 0 {
					if s.tx != pgproto.TxIdle {
						l.closeServer(s, ReasonServerDirty)
						return false
					}
					l.serverReady(s)
					return false
				}
				return true
			}
			if st == pgproto.TxIdle {
				l.Stats.Transactions++
			}
			if fwd {
				l.sendTo(s.client, b, *start, i)
				*start = i
			}
			l.release(s)
			return s.state == ServerActive
		case pgproto.MsgParameterStatus:
			if s.swallow > 0 || s.client == nil {
				return true
			}
			k, v, ok := pgproto.ParameterStatus(body)
			key := strings.ToLower(string(k))
			if ok && !untrackedReports[key] {
				c := s.client
				np := l.pi.with(c.params, l.pi.str([]byte(key)), l.pi.str(v))
				c.params, s.params = np, np
			}
		case pgproto.MsgErrorResponse:
			if sev := pgproto.ErrorField(body, 'V'); string(sev) == pgproto.SevFatal || string(sev) == "PANIC" {
				// The backend is ending this session; the client sees the error
				// and its connection ends with it.
				if c := s.client; c != nil && fwd {
					l.sendTo(c, b, *start, i)
					*start = len(b)
					c.server, s.client = nil, nil
					c.close(ReasonServerLost)
				}
				l.closeServer(s, ReasonServerLost)
				return false
			}
		}
	case ServerIdle, ServerHeld:
		if typ == pgproto.MsgErrorResponse {
			l.closeServer(s, ReasonServerLost)
			return false
		}
	}
	return true
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
		return false
	}
	return true
}

// loginDone: the server is ready. A standby is noted and dropped (all
// queries go to the primary for now); otherwise the pool learns the server
// parameters and the server serves its first client.
func (s *Server) loginDone() {
	l := s.loop
	p := s.pool
	p.connecting--
	s.bauth = nil
	s.tx = pgproto.TxIdle
	l.Stats.ServerLogins++
	if s.standby {
		s.backend.role.Store(int32(RoleStandby))
		p.connecting++ // closeServer decrements it for a login-state server
		s.state = ServerLogin
		l.closeServer(s, ReasonServerLoginFailed)
		l.growPool(p)
		return
	}
	s.backend.role.Store(int32(RolePrimary))
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
}

// serverLoginFailed ends a server that could not be opened or logged in.
// transient errors (connect failures) leave clients queued if another
// backend or a retry may serve them; authentication errors go to the
// clients waiting on the pool.
func (l *Loop) serverLoginFailed(s *Server, code, msg string, transient bool) {
	p := s.pool
	l.closeServer(s, ReasonServerLoginFailed)
	if transient && l.sh.pickPrimary(l.now) != nil {
		l.growPool(p)
		return
	}
	if p.connecting > 0 {
		return // another attempt is under way
	}
	l.log().Warn("server login failed", "backend", s.backend.Addr, "user", p.sh.User, "db", p.sh.Database, "code", code, "msg", msg)
	if transient {
		l.failPool(p, code, msg)
		return
	}
	for c := p.welcomeWait.pop(); c != nil; c = p.welcomeWait.pop() {
		c.fatal(code, msg, ReasonServerLoginFailed)
	}
	for c := p.waiters.pop(); c != nil; c = p.waiters.pop() {
		c.fatal(code, msg, ReasonServerLoginFailed)
	}
	delete(l.waiting, p)
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
		c.server, s.client = nil, nil
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
	if s.state == ServerConnecting || s.state == ServerLogin {
		p.connecting--
	}
	if s.inList != nil {
		s.inList.remove(s)
	}
	s.state = ServerClosed
	s.reason = r
	l.Stats.Closes[r]++
	if c := s.client; c != nil {
		c.server, s.client = nil, nil
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

func appendCancel(dst []byte, pid, secret uint32) []byte {
	return pgproto.AppendCancelRequest(dst, pid, secret)
}
