package proxy

import (
	"encoding/binary"

	"github.com/poolmgr/poolmgr/internal/auth"
	"github.com/poolmgr/poolmgr/internal/pgproto"
)

// authCacheTTL is how long a secret fetched with auth_query is reused, so a
// connection storm of one user runs the query once.
const authCacheTTL = 10e9 // ns

type authCacheEntry struct {
	secret  auth.Secret
	found   bool
	expires int64
}

// lookupSecret finds c's secret with auth_query: from the short cache, by
// joining a lookup already running for the same user, or by starting one.
func (l *Loop) lookupSecret(c *Client) {
	if e, ok := l.authCache[c.user()]; ok && e.expires > l.now {
		// Synchronous: the caller (the startup packet's handler) goes on
		// with the bytes that follow, so do not re-enter onLoginData here.
		c.login.secret, c.login.haveSecret = e.secret, e.found
		c.startAuthExchange()
		return
	}
	if l.authLookups == nil {
		l.authLookups = make(map[string]*authQueryConn)
		l.authCache = make(map[string]authCacheEntry)
	}
	if q := l.authLookups[c.user()]; q != nil {
		q.waiters = append(q.waiters, c)
		return
	}
	o := l.opts()
	b := l.sh.pickPrimary(l.now)
	if b == nil {
		c.fatal(codeConnectionFailure, "authentication lookup failed: no primary backend is available", ReasonAuthFailed)
		return
	}
	db := o.AuthDBName
	if db == "" {
		db = c.database()
	}
	q := &authQueryConn{loop: l, user: c.user(), db: db, waiters: []*Client{c}, started: l.now}
	l.authLookups[c.user()] = q
	q.h = l.t.Dial(b.Addr, q)
}

// secretFound resumes a client's authentication once its secret is known.
func (l *Loop) secretFound(c *Client, sec auth.Secret, found bool) {
	if c.state != ClientAuth || c.login.authState != authLookup {
		return
	}
	c.login.secret, c.login.haveSecret = sec, found
	c.startAuthExchange()
	if c.state == ClientAuth && len(c.stash) > 0 {
		c.onLoginData(nil)
	}
}

// authQueryConn is a short-lived backend connection that runs auth_query
// as auth_user for one user name.
type authQueryConn struct {
	loop    *Loop
	h       Handle
	user    string
	db      string
	waiters []*Client
	started int64

	scan   pgproto.Scanner
	buf    []byte
	ba     *auth.BackendAuth
	ready  bool
	secret auth.Secret
	found  bool
	done   bool
}

func (q *authQueryConn) OnConnected(err error) {
	if err != nil {
		q.finish("could not connect to the backend: " + err.Error())
		return
	}
	l := q.loop
	o := l.opts()
	creds := auth.BackendCreds{User: o.AuthUser}
	if s, ok := o.Secrets[o.AuthUser]; ok {
		creds.Plain, creds.MD5 = s.Plain, s.MD5
	}
	q.ba = auth.NewBackendAuth(creds, l.rnd)
	l.t.Send(q.h, pgproto.AppendStartupMessage(l.scratch[:0], "user", o.AuthUser, "database", q.db, "application_name", "poolmgr-auth-query"))
}

func (q *authQueryConn) OnData(b []byte) {
	q.buf = append(q.buf, b...)
	for !q.done {
		typ, total, ok, err := pgproto.Frame(q.buf, 1<<20)
		if err != nil {
			q.finish("protocol error from the backend")
			return
		}
		if !ok {
			return
		}
		q.message(typ, q.buf[pgproto.HeaderLen:total])
		q.buf = q.buf[:copy(q.buf, q.buf[total:])]
	}
}

func (q *authQueryConn) message(typ byte, body []byte) {
	l := q.loop
	switch typ {
	case pgproto.MsgAuthentication:
		code, data, ok := pgproto.AuthCode(body)
		if !ok {
			q.finish("bad authentication message")
			return
		}
		reply, err := q.ba.Step(code, data)
		if err != nil {
			q.finish("auth_user could not log in: " + err.Error())
			return
		}
		if len(reply) > 0 {
			l.t.Send(q.h, reply)
		}
	case pgproto.MsgErrorResponse:
		q.finish("auth_query failed: " + string(pgproto.ErrorField(body, 'M')))
	case pgproto.MsgDataRow:
		vals := dataRowValues(body)
		if len(vals) >= 2 && vals[1] != nil {
			q.secret = auth.ParseAuthQueryRow(string(vals[0]), string(vals[1]))
			q.found = true
		}
	case pgproto.MsgReadyForQuery:
		if q.ready {
			q.finish("")
			return
		}
		q.ready = true
		out := pgproto.AppendParse(l.scratch[:0], "", []byte(l.opts().AuthQuery), nil)
		out, off := pgproto.Begin(out, pgproto.MsgBind)
		out = append(out, 0, 0, 0, 0, 0, 1)
		out = binary.BigEndian.AppendUint32(out, uint32(len(q.user)))
		out = append(out, q.user...)
		out = append(out, 0, 0)
		out = pgproto.Finish(out, off)
		out, off = pgproto.Begin(out, pgproto.MsgExecute)
		out = append(out, 0, 0, 0, 0, 0)
		out = pgproto.Finish(out, off)
		out = pgproto.AppendSync(out)
		l.t.Send(q.h, out)
	}
}

func (q *authQueryConn) OnClosed(error)      { q.finish("the backend closed the connection") }
func (q *authQueryConn) OnWriteBlocked(bool) {}

// finish ends the lookup: errMsg empty means the query ran (the user may
// still be unknown). Waiting clients continue or get a FATAL.
func (q *authQueryConn) finish(errMsg string) {
	if q.done {
		return
	}
	q.done = true
	l := q.loop
	if errMsg == "" {
		l.t.Send(q.h, pgproto.AppendTerminate(l.scratch[:0]))
	}
	l.t.Close(q.h)
	delete(l.authLookups, q.user)
	if errMsg == "" {
		l.authCache[q.user] = authCacheEntry{secret: q.secret, found: q.found, expires: l.now + authCacheTTL}
		if len(l.authCache) > 10000 {
			for k, e := range l.authCache {
				if e.expires <= l.now {
					delete(l.authCache, k)
				}
			}
		}
	} else {
		l.log().Warn("auth_query lookup failed", "user", q.user, "err", errMsg)
	}
	for _, c := range q.waiters {
		if errMsg != "" {
			if c.state == ClientAuth {
				c.fatal(codeConnectionFailure, "authentication lookup failed: "+errMsg, ReasonAuthFailed)
			}
			continue
		}
		l.secretFound(c, q.secret, q.found)
	}
	q.waiters = nil
}

// dataRowValues splits a DataRow body into its column values (nil = NULL).
func dataRowValues(body []byte) [][]byte {
	if len(body) < 2 {
		return nil
	}
	n := int(binary.BigEndian.Uint16(body))
	body = body[2:]
	out := make([][]byte, 0, n)
	for range n {
		if len(body) < 4 {
			return out
		}
		l := int(int32(binary.BigEndian.Uint32(body)))
		body = body[4:]
		if l < 0 {
			out = append(out, nil)
			continue
		}
		if l > len(body) {
			return out
		}
		out = append(out, body[:l])
		body = body[l:]
	}
	return out
}
