package proxy

import (
	"context"
	"log/slog"

	"github.com/poolmgr/poolmgr/internal/pgproto"
)

// ClientState is where a client connection is in its life.
type ClientState uint8

// Client states.
const (
	ClientStartup ClientState = iota // waiting for the startup packet
	ClientAuth                       // exchanging authentication messages
	ClientWelcome                    // authenticated, waiting for the pool's server parameters
	ClientIdle                       // logged in, holds no server connection
	ClientWaiting                    // has a request queued for a server connection
	ClientActive                     // linked to a server connection
	ClientAdmin                      // an admin-console session
	ClientClosed
)

var clientStateNames = [...]string{"startup", "auth", "welcome", "idle", "waiting", "active", "admin", "closed"}

func (s ClientState) String() string { return clientStateNames[s] }

// maxStash bounds what a client may send while it has no server before its
// reads are paused.
const maxStash = 64 << 10

// Client is one client connection's state. Small and fixed: an idle client
// holds no buffer and no server, and nothing but this struct (see
// clientmem.go for the side objects that exist only while needed).
type Client struct {
	loop        *Loop
	h           Handle
	pool        *Pool // set once logged in; gives the user and database names
	server      *Server
	params      *ParamSet
	startParams *ParamSet // parameters from the startup packet

	stash []byte // bytes received while no server was linked (or during login)

	since     int64 // accept time, then the time it started waiting
	connected int64 // accept time

	q            *clientQueue
	qprev, qnext *Client

	allPrev, allNext *Client

	target      *Backend // the backend a queued request waits for
	lastWriteNs int64    // when the client's last write transaction ended (read-your-writes)
	minLSN      uint64   // replicas must have replayed this far to serve the client's reads

	stmts map[string]clientStmt // the client's named prepared statements

	run   *clientRun   // while linked to a server
	login *clientLogin // while logging in
	qc    *clientCache // query cache, while a request runs
	prep  *clientPrep  // the unnamed prepared statement, once there is one
	admin *AdminSession

	addr                    [16]byte // remote address (IPv4-mapped for IPv4)
	port                    uint16
	cancelPID, cancelSecret uint32

	state        ClientState
	reason       CloseReason
	addrKind     uint8
	readPaused   bool
	writeBlocked bool
	wrote        bool // the current request went to the primary as a write
	deferred     bool // stash holds requests held back until the replica server is released
	trackWrites  bool // classify writes for cache invalidation
	adminBusy    bool
}

// State returns the client's state.
func (c *Client) State() ClientState { return c.state }

// OnData implements Endpoint.
func (c *Client) OnData(b []byte) {
	c.loop.Stats.ClientBytes += uint64(len(b))
	switch c.state {
	case ClientStartup, ClientAuth:
		c.onLoginData(b)
	case ClientActive:
		if c.deferred {
			if len(b) == pgproto.HeaderLen && b[0] == pgproto.MsgTerminate {
				c.close(ReasonClientTerminate) // the held-back requests die with the client
				return
			}
			c.stashBytes(b)
			return
		}
		if c.capturing() {
			c.qc.cap.on = false // more requests joined: not a single cacheable response
		}
		c.forward(b)
		if s := c.server; s != nil {
			c.loop.release(s)
		}
	case ClientIdle:
		if c.stashBytes(b) {
			c.startRequest()
		}
	case ClientWaiting, ClientWelcome:
		c.stashBytes(b)
	case ClientAdmin:
		c.onAdminData(b)
	}
}

// stashBytes keeps b until a server is linked. It pauses reads when the
// stash is large. It returns false if the client was closed.
func (c *Client) stashBytes(b []byte) bool {
	if c.stash == nil {
		c.stash = c.loop.getBuf()
	}
	c.stash = append(c.stash, b...)
	if len(c.stash) > maxStash && !c.readPaused {
		c.readPaused = true
		c.loop.t.PauseRead(c.h, true)
	}
	return true
}

// startRequest looks at the stash of an idle client: a lone Terminate
// closes it; anything else needs a server.
func (c *Client) startRequest() {
	st := c.stash
	if len(st) < pgproto.HeaderLen {
		return // wait for a whole header
	}
	if st[0] == pgproto.MsgTerminate {
		c.close(ReasonClientTerminate)
		return
	}
	if c.loop.opts().PoolMode != ModeSession && c.answerLocally() {
		return
	}
	if c.cacheOn() && c.cacheLookup() {
		return
	}
	b, wait := c.routeRequest()
	if wait {
		return
	}
	if b == nil {
		c.failRequest(codeConnectionFailure, "no primary backend is available")
		return
	}
	c.loop.acquire(c, b)
}

// forward relays b to the linked server, tracking message boundaries: a
// Terminate is not forwarded, every request is recorded in the server's
// pending queue (for the release decision and for ordering the proxy's own
// answers), partial headers are held back until their type is known, and in
// transaction/statement mode Parse, Bind, Describe, Close and Query are
// looked at whole (prepared statements, DEALLOCATE, DISCARD ALL).
func (c *Client) forward(b []byte) {
	l := c.loop
	s := c.server
	r := c.run
	inspect := l.opts().PoolMode != ModeSession
	start, i := 0, 0
	for i < len(b) {
		if r.collecting {
			k := min(r.scan.Remain(), len(b)-i)
			r.msg = append(r.msg, b[i:i+k]...)
			r.scan.Skip(k)
			i += k
			start = i
			if r.scan.Remain() == 0 {
				r.collecting = false
				if c.trackWrites {
					c.noteWrites(r.msg[0], r.msg)
				}
				if c.mustDefer(r.msg[0], r.msg) {
					c.deferRest(r.msg, b[i:])
					return
				}
				if !c.handleMsg(r.msg[0], r.msg, nil) {
					l.t.Send(s.h, r.msg)
				}
				if cap(r.msg) > 1<<16 {
					r.msg = nil
				}
				if c.state != ClientActive {
					return
				}
			}
			continue
		}
		n, st, typ, blen, err := r.scan.Next(b[i:])
		if err != nil {
			l.sendRange(s, b, start, i)
			msg := "invalid message length"
			if err == pgproto.ErrTooLarge {
				msg = "message too large (max_message_size)"
			}
			c.fatal(codeProtocolViolation, msg, ReasonClientProtocol)
			return
		}
		if !st {
			if r.scan.Partial() { // header bytes held back
				l.sendRange(s, b, start, i)
				start = i + n
			}
			i += n
			continue
		}
		pieced := n < pgproto.HeaderLen
		switch typ {
		case pgproto.MsgTerminate:
			l.sendRange(s, b, start, i)
			c.close(ReasonClientTerminate)
			return
		case pgproto.MsgQuery, pgproto.MsgParse, pgproto.MsgBind, pgproto.MsgDescribe, pgproto.MsgClose:
			if typ == pgproto.MsgQuery {
				l.Stats.Queries++
			}
			if !inspect {
				if typ != pgproto.MsgQuery {
					s.extOpen = true
				}
				s.expect(pending{typ: typ})
				break
			}
			if pieced || len(b)-i-n < blen {
				// Not all here: collect it.
				l.sendRange(s, b, start, i)
				r.msg = append(r.msg[:0], r.scan.Header()...)
				i += n
				start = i
				if blen == 0 {
					if !c.handleMsg(typ, r.msg, nil) {
						l.t.Send(s.h, r.msg)
					}
					continue
				}
				r.collecting = true
				continue
			}
			whole := b[i : i+n+blen]
			if c.trackWrites {
				c.noteWrites(typ, whole)
			}
			if c.mustDefer(typ, whole) {
				l.sendRange(s, b, start, i)
				r.scan.Reset()
				c.deferRest(nil, b[i:])
				return
			}
			r.scan.Skip(blen)
			if c.handleMsg(typ, whole, b[start:i]) {
				start = i + n + blen
			}
			if c.state != ClientActive {
				return
			}
			i += n + blen
			continue
		case pgproto.MsgSync:
			s.expect(pending{typ: 'S'})
			s.extOpen = false
		case pgproto.MsgExecute:
			s.expect(pending{typ: 'E'})
			s.extOpen = true
			l.Stats.Queries++
		case pgproto.MsgFunctionCall:
			if c.trackWrites {
				c.cacheState().writes.AddDatabase() // a function of unknown reach
			}
			s.expect(pending{typ: 'F'})
			l.Stats.Queries++
		case pgproto.MsgFlush:
			s.extOpen = true
		case pgproto.MsgCopyData, pgproto.MsgCopyDone, pgproto.MsgCopyFail:
		default:
			l.sendRange(s, b, start, i)
			c.fatal(codeProtocolViolation, "invalid frontend message type "+quoteByte(typ), ReasonClientProtocol)
			return
		}
		if pieced {
			l.sendRange(s, b, start, i)
			l.t.Send(s.h, r.scan.Header())
			start = i + n
		}
		i += n
	}
	l.sendRange(s, b, start, len(b))
}

// mustDefer reports whether a request arriving while the client holds a
// replica's server between transactions needs the primary: it is then held
// back until the replica's server is released.
func (c *Client) mustDefer(typ byte, msg []byte) bool {
	s := c.server
	// Only at a transaction boundary: between transactions and after the
	// previous extended-protocol segment's Sync (inside a segment the
	// statements belong together; PostgreSQL reports a write on a standby).
	if s.tx != pgproto.TxIdle || s.extOpen || s.backend.Role() == RolePrimary || c.loop.opts().PoolMode == ModeSession {
		return false
	}
	return c.needsPrimary(typ, msg)
}

// deferRest stashes a held-back request (head, then rest).
func (c *Client) deferRest(head, rest []byte) {
	st := c.loop.getBuf()
	st = append(append(st, head...), rest...)
	c.stash = st
	c.deferred = true
	if len(st) > maxStash && !c.readPaused {
		c.readPaused = true
		c.loop.t.PauseRead(c.h, true)
	}
}

func (l *Loop) sendRange(s *Server, b []byte, from, to int) {
	if to > from && s != nil {
		l.t.Send(s.h, b[from:to])
	}
}

func quoteByte(b byte) string {
	if b >= 0x20 && b < 0x7f {
		return "\"" + string(rune(b)) + "\""
	}
	return "0x" + string("0123456789abcdef"[b>>4]) + string("0123456789abcdef"[b&15])
}

// OnConnected implements Endpoint (never called for clients).
func (c *Client) OnConnected(error) {}

// OnClosed implements Endpoint: the client went away.
func (c *Client) OnClosed(error) {
	if c.state != ClientClosed {
		c.close(ReasonClientEOF)
	}
}

// OnWriteBlocked implements Endpoint: the client reads slower than its
// server writes; pause the server.
func (c *Client) OnWriteBlocked(blocked bool) {
	c.writeBlocked = blocked
	if s := c.server; s != nil && s.readPaused != blocked {
		s.readPaused = blocked
		c.loop.t.PauseRead(s.h, blocked)
	}
}

// send queues protocol bytes for the client.
func (c *Client) send(b []byte) { c.loop.t.Send(c.h, b) }

// fatal sends a FATAL error and closes the client.
func (c *Client) fatal(code, msg string, r CloseReason) {
	if c.state == ClientClosed {
		return
	}
	c.send(pgproto.AppendError(c.loop.scratch[:0], pgproto.SevFatal, code, msg))
	c.close(r)
}

// failRequest answers a queued request with an ERROR and a ReadyForQuery for
// every sync point in it, as PostgreSQL would after an error, and keeps the
// client.
func (c *Client) failRequest(code, msg string) {
	st := c.stash
	c.stash = nil
	c.state = ClientIdle
	if c.qc != nil { // never linked for this request: nothing was captured or written
		c.qc.capArmed = false
		c.loop.putCache(c)
	}
	syncs := 0
	complete := 0
	for len(st) >= pgproto.HeaderLen {
		typ, total, ok, err := pgproto.Frame(st, 0)
		if err != nil || !ok {
			break
		}
		switch typ {
		case pgproto.MsgQuery, pgproto.MsgSync, pgproto.MsgFunctionCall:
			syncs++
		case pgproto.MsgTerminate:
			c.close(ReasonClientTerminate)
			return
		}
		complete += total
		st = st[total:]
	}
	out := pgproto.AppendError(c.loop.scratch[:0], pgproto.SevError, code, msg)
	if syncs == 0 {
		syncs = 1
	}
	for range syncs {
		out = pgproto.AppendReadyForQuery(out, pgproto.TxIdle)
	}
	c.send(out)
	if len(st) > 0 { // keep an incomplete trailing message
		rest := c.loop.getBuf()
		c.stash = append(rest, st...)
	}
	if c.readPaused {
		c.readPaused = false
		c.loop.t.PauseRead(c.h, false)
	}
}

// close ends the client: it leaves every queue, its server is detached
// (rolled back or closed), and the transport closes the socket after
// flushing what was queued.
func (c *Client) close(r CloseReason) {
	if c.state == ClientClosed {
		return
	}
	l := c.loop
	prev := c.state
	c.state = ClientClosed
	c.reason = r
	l.Stats.Closes[r]++
	if c.q != nil {
		l.unqueue(c)
	}
	if prev == ClientActive {
		l.detach(c)
	}
	if c.stash != nil {
		l.putBuf(c.stash)
		c.stash = nil
	}
	l.sh.cancels.unregister(c)
	l.all.remove(c)
	l.t.Close(c.h)
	l.clients--
	l.sh.clients.Add(-1)
	o := l.opts()
	// Every disconnect's reason: at debug level, or at info with
	// log_disconnections (counted in metrics either way).
	if o.LogDisconnections {
		o.Log.Info("client closed", "remote", c.remote().String(), "user", c.user(), "db", c.database(), "reason", r.String(), "state", prev.String())
	} else if o.Log.Enabled(context.Background(), slog.LevelDebug) {
		o.Log.Debug("client closed", "remote", c.remote().String(), "user", c.user(), "db", c.database(), "reason", r.String(), "state", prev.String())
	}
}
