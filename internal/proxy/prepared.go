package proxy

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"strconv"

	"github.com/poolmgr/poolmgr/internal/pgproto"
)

// Stmt is a statement some client prepared (query text and parameter types),
// interned per loop so that identical statements from different clients
// share one server-side prepared statement per server connection.
type Stmt struct {
	query []byte
	types []byte // raw int16 count + OIDs from the Parse
	gen   uint32 // bumped when the statement went stale (cached plan changed)

	classified, readOnly, readOnlyLoose bool // routing, computed once

	validated bool   // a server accepted its Parse (at gen)
	desc      []byte // ParameterDescription + RowDescription/NoData of a Describe, at gen
	descGen   uint32
	descBuf   []byte // being captured
}

// clientStmt is a client's named statement: the interned statement and
// the generation the client prepared.
type clientStmt struct {
	st  *Stmt
	gen uint32
}

// srvStmt is a statement as prepared on one server connection.
type srvStmt struct {
	name string
	gen  uint32
	used uint64
}

const (
	defaultMaxServerStmts = 200
	defaultMaxClientStmts = 10000
)

// stmtPrefix starts the names of server-side statements. It carries a
// random part so no client can name (and so run or drop) a statement that
// the proxy prepared for others.
var stmtPrefix = func() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "pm_" + hex.EncodeToString(b[:]) + "_"
}()

// noSuchStmt is a statement name that never exists on a server: a Describe
// of it makes PostgreSQL raise an error (and skip to Sync) where the proxy
// must answer with an error of its own.
var noSuchStmt = stmtPrefix + "none"

func (l *Loop) internStmt(query, types []byte) *Stmt {
	if l.stmts == nil {
		l.stmts = make(map[string]*Stmt)
	}
	key := make([]byte, 0, len(types)+1+len(query))
	key = append(append(append(key, types...), 0), query...)
	if st := l.stmts[string(key)]; st != nil {
		return st
	}
	st := &Stmt{query: bytes.Clone(query), types: bytes.Clone(types)}
	if len(l.stmts) < 1<<20 {
		l.stmts[string(key)] = st
	}
	return st
}

// expect records a request sent to s whose response will come back.
func (s *Server) expect(p pending) {
	if p.typ == 'Q' || p.typ == 'S' || p.typ == 'F' {
		s.outstanding++
	}
	s.q.push(p)
}

// popUnit removes the head request once its response ended. failed reports
// that it ended with an error.
func (s *Server) popUnit(failed bool) pending {
	p := s.q.pop()
	if p.typ == 'Q' || p.typ == 'S' || p.typ == 'F' {
		s.outstanding--
	}
	if p.typ == 'P' && p.stmt != nil {
		if failed {
			delete(s.stmts, p.stmt)
			if c := s.client; c != nil && p.name != "" {
				if cs, ok := c.stmts[p.name]; ok && cs.st == p.stmt {
					delete(c.stmts, p.name) // PostgreSQL did not create it
				}
			}
		} else if p.flags&pSynth == 0 {
			p.stmt.validated = true
		}
	}
	if p.typ == 'D' && p.stmt != nil && !failed && p.stmt.descBuf != nil {
		p.stmt.desc, p.stmt.descGen, p.stmt.descBuf = p.stmt.descBuf, p.stmt.gen, nil
	} else if p.stmt != nil {
		p.stmt.descBuf = nil
	}
	return p
}

// emitSynth answers the requests at the head of the queue that the proxy
// answers itself (the server already had the statement, a Close of a shared
// statement, a DEALLOCATE).
func (s *Server) emitSynth() {
	c := s.client
	for p := s.q.peek(); p != nil && p.flags&pSynth != 0; p = s.q.peek() {
		q := s.popUnit(false)
		if c == nil {
			continue
		}
		var out []byte
		switch q.typ {
		case 'P':
			out = append(s.loop.scratch[:0], '1', 0, 0, 0, 4)
		case 'C':
			out = append(s.loop.scratch[:0], '3', 0, 0, 0, 4)
			if q.name != "" {
				delete(c.stmts, q.name) // the Close took effect (not skipped by an error)
			}
		case 'Q', 'q':
			tag := "DEALLOCATE"
			if q.name == "" {
				tag = "DEALLOCATE ALL"
			}
			out = pgproto.AppendCommandComplete(s.loop.scratch[:0], tag)
			if q.typ == 'Q' {
				out = pgproto.AppendReadyForQuery(out, s.tx)
			}
		}
		c.deliver(out)
	}
}

// ensureStmt makes sure st is prepared on s, injecting a Parse (whose
// ParseComplete is swallowed) when it is not. It returns the server-side name.
func (s *Server) ensureStmt(st *Stmt) string {
	s.useTick++
	if ss, ok := s.stmts[st]; ok && ss.gen == st.gen {
		ss.used = s.useTick
		s.stmts[st] = ss
		return ss.name
	}
	name := s.addStmt(st)
	l := s.loop
	l.t.Send(s.h, pgproto.AppendParse(l.scratch[:0], name, st.query, st.types))
	s.expect(pending{typ: 'P', flags: pSwallow, stmt: st})
	return name
}

// addStmt records st as prepared on s under a fresh name, evicting the least
// recently used statement (with a swallowed Close) at the limit.
func (s *Server) addStmt(st *Stmt) string {
	l := s.loop
	if s.stmts == nil {
		s.stmts = make(map[*Stmt]srvStmt)
	}
	if old, ok := s.stmts[st]; ok { // stale generation: close the old one
		l.t.Send(s.h, pgproto.AppendTarget(l.scratch[:0], 'C', 'S', old.name))
		s.expect(pending{typ: 'C', flags: pSwallow})
		delete(s.stmts, st)
	}
	max := l.opts().MaxPreparedStatements
	if max <= 0 {
		max = defaultMaxServerStmts
	}
	for len(s.stmts) >= max {
		var victim *Stmt
		var oldest uint64 = ^uint64(0)
		for k, v := range s.stmts {
			if v.used < oldest {
				victim, oldest = k, v.used
			}
		}
		l.t.Send(s.h, pgproto.AppendTarget(l.scratch[:0], 'C', 'S', s.stmts[victim].name))
		s.expect(pending{typ: 'C', flags: pSwallow})
		delete(s.stmts, victim)
	}
	s.stmtSeq++
	s.useTick++
	name := stmtPrefix + strconv.FormatUint(s.stmtSeq, 36)
	s.stmts[st] = srvStmt{name: name, gen: st.gen, used: s.useTick}
	return name
}

// forgetStatements drops what the proxy knows of s's prepared statements
// (after DISCARD ALL / DEALLOCATE ALL reached the server). Names are never
// reused, so a statement that survived is harmless.
func (s *Server) forgetStatements() {
	s.stmts = nil
	s.unnamedBy = nil
}

// sendError makes the server fail the current pipeline the way PostgreSQL
// would for a request the proxy rejects itself (unknown or duplicate
// statement name, stale statement): it sends a Describe of a statement that
// cannot exist, so the server raises an error and skips to Sync (aborting a
// transaction block as PostgreSQL would), and the proxy replaces that error
// with its own (unless the server reports an aborted transaction first).
func (c *Client) sendError(code, msg string) {
	s := c.server
	l := c.loop
	l.t.Send(s.h, pgproto.AppendTarget(l.scratch[:0], 'D', 'S', noSuchStmt))
	s.expect(pending{typ: 'D', flags: pReplaceErr, errCode: code, errMsg: msg})
}

// handleMsg processes one complete message that transaction pooling must
// look at (Parse, Bind, Describe, Close, Query). pre holds the bytes received
// before it that are not sent yet. It returns true when it sent pre and its
// own replacement for msg (the caller must then not forward msg).
func (c *Client) handleMsg(typ byte, msg, pre []byte) (replaced bool) {
	l := c.loop
	s := c.server
	body := msg[pgproto.HeaderLen:]
	if len(pre) > 0 {
		l.t.Send(s.h, pre)
	}
	switch typ {
	case pgproto.MsgQuery:
		if !c.handleQuery(body) {
			l.t.Send(s.h, msg)
		}
		return true
	case pgproto.MsgParse:
		p, ok := pgproto.DecodeParse(body)
		if !ok {
			break
		}
		s.extOpen = true
		if len(p.Name) == 0 {
			c.setUnnamed(msg)
			s.unnamedBy, s.unnamedSeq = c, c.unnamedSeq()
			s.expect(pending{typ: 'P'})
			l.t.Send(s.h, msg)
			return true
		}
		name := string(p.Name)
		if _, exists := c.stmts[name]; exists {
			c.sendError("42P05", "prepared statement \""+name+"\" already exists")
			return true
		}
		max := l.opts().MaxClientPreparedStatements
		if max <= 0 {
			max = defaultMaxClientStmts
		}
		if len(c.stmts) >= max {
			c.fatal("53400", "too many prepared statements for this client (max_client_prepared_statements)", ReasonClientProtocol)
			return true
		}
		st := l.internStmt(p.Query, p.Types)
		if c.stmts == nil {
			c.stmts = make(map[string]clientStmt)
		}
		c.stmts[name] = clientStmt{st: st, gen: st.gen}
		if ss, ok := s.stmts[st]; ok && ss.gen == st.gen && s.tx != pgproto.TxFailed {
			s.useTick++
			ss.used = s.useTick
			s.stmts[st] = ss
			s.expect(pending{typ: 'P', flags: pSynth, stmt: st, name: name})
			s.emitSynth()
			return true
		}
		sname := s.addStmt(st)
		l.t.Send(s.h, pgproto.AppendParse(l.scratch[:0], sname, st.query, st.types))
		s.expect(pending{typ: 'P', stmt: st, name: name})
		return true
	case pgproto.MsgBind:
		portal, name, rest, ok := pgproto.BindStatement(body)
		if !ok {
			break
		}
		s.extOpen = true
		if len(name) == 0 {
			c.prepareUnnamed(s)
			l.t.Send(s.h, msg)
			s.expect(pending{typ: 'B'})
			return true
		}
		cs, ok := c.stmts[string(name)]
		if !ok {
			c.sendError("26000", "prepared statement \""+string(name)+"\" does not exist")
			return true
		}
		if cs.gen != cs.st.gen {
			// The statement changed under this client (DDL): like
			// PostgreSQL, the client's next execution fails once, then works.
			c.stmts[string(name)] = clientStmt{st: cs.st, gen: cs.st.gen}
			c.sendError("0A000", "cached plan must not change result type")
			return true
		}
		sname := s.ensureStmt(cs.st)
		l.t.Send(s.h, pgproto.AppendBind(l.scratch[:0], portal, sname, rest))
		s.expect(pending{typ: 'B', stmt: cs.st})
		return true
	case pgproto.MsgDescribe, pgproto.MsgClose:
		kind, name, ok := pgproto.Target(body)
		if !ok {
			break
		}
		s.extOpen = true
		if kind != 'S' {
			s.expect(pending{typ: typ})
			l.t.Send(s.h, msg)
			return true
		}
		if len(name) == 0 {
			if typ == pgproto.MsgClose {
				c.dropUnnamed()
				if s.unnamedBy == c {
					s.unnamedBy = nil
					s.expect(pending{typ: typ})
					l.t.Send(s.h, msg)
					return true
				}
				// Not this client's statement on this server: nothing to close.
				s.expect(pending{typ: 'C', flags: pSynth})
				s.emitSynth()
				return true
			}
			c.prepareUnnamed(s)
			s.expect(pending{typ: typ, flags: pDescStmt})
			l.t.Send(s.h, msg)
			return true
		}
		if typ == pgproto.MsgClose {
			// Statements are shared per server: closing only forgets the
			// client's name, when the Close is reached (not skipped after an
			// error). PostgreSQL answers CloseComplete even for an unknown name.
			s.expect(pending{typ: 'C', flags: pSynth, name: string(name)})
			s.emitSynth()
			return true
		}
		cs, ok := c.stmts[string(name)]
		if !ok {
			c.sendError("26000", "prepared statement \""+string(name)+"\" does not exist")
			return true
		}
		sname := s.ensureStmt(cs.st)
		l.t.Send(s.h, pgproto.AppendTarget(l.scratch[:0], 'D', 'S', sname))
		p := pending{typ: 'D', flags: pDescStmt, stmt: cs.st}
		if cs.st.desc == nil || cs.st.descGen != cs.st.gen {
			cs.st.descBuf = cs.st.descBuf[:0]
			if cs.st.descBuf == nil {
				cs.st.descBuf = make([]byte, 0, 64)
			}
		}
		s.expect(p)
		return true
	}
	// Malformed: let the server report it.
	s.expect(pending{typ: typ})
	l.t.Send(s.h, msg)
	return true
}

// prepareUnnamed makes s's unnamed statement the client's: it re-creates
// the client's last unnamed Parse when the server's unnamed statement came
// from elsewhere, or, when the client never made one, closes the server's so
// the client gets PostgreSQL's own "does not exist" error and never another
// client's statement.
func (c *Client) prepareUnnamed(s *Server) {
	if s.unnamedBy == c && s.unnamedSeq == c.unnamedSeq() {
		return
	}
	l := c.loop
	un := c.unnamedParse()
	if un == nil {
		l.t.Send(s.h, pgproto.AppendTarget(l.scratch[:0], 'C', 'S', ""))
		s.expect(pending{typ: 'C', flags: pSwallow})
		s.unnamedBy = c
		s.unnamedSeq = c.unnamedSeq()
		return
	}
	l.t.Send(s.h, un)
	s.expect(pending{typ: 'P', flags: pSwallow})
	s.unnamedBy, s.unnamedSeq = c, c.unnamedSeq()
}

// handleQuery answers a lone DEALLOCATE of the client's own statements (as
// in a private session) and otherwise lets the query through. It returns
// true when it answered.
func (c *Client) handleQuery(body []byte) bool {
	s := c.server
	s.unnamedBy = nil // a simple query destroys the unnamed statement
	sql, _ := pgproto.QueryText(body)
	w1, rest := firstWord(sql)
	if asciiEq(w1, "deallocate") && s.tx != pgproto.TxFailed {
		w2, rest2 := firstWord(rest)
		if asciiEq(w2, "prepare") {
			w2, rest2 = firstWord(rest2)
		}
		if w, r := firstWord(rest2); len(w) == 1 && w[0] == ';' && !onlyEnd(r) {
			// "DEALLOCATE x; more": answer the DEALLOCATE, send the rest.
			name := unquoteIdent(w2)
			if _, ok := c.stmts[name]; ok || asciiEq(w2, "all") {
				if asciiEq(w2, "all") {
					c.stmts, name = nil, ""
				} else {
					delete(c.stmts, name)
				}
				s.expect(pending{typ: 'q', flags: pSynth | pDealloc, name: name})
				s.emitSynth()
				s.expect(pending{typ: 'Q'})
				c.loop.t.Send(s.h, pgproto.AppendQuery(c.loop.scratch[:0], string(r)))
				return true
			}
		}
		if onlyEnd(rest2) {
			if asciiEq(w2, "all") {
				s.expect(pending{typ: 'Q', flags: pSynth | pDealloc, name: ""})
				c.stmts = nil
				s.emitSynth()
				return true
			}
			name := unquoteIdent(w2)
			if _, ok := c.stmts[name]; ok {
				delete(c.stmts, name)
				s.expect(pending{typ: 'Q', flags: pSynth | pDealloc, name: name})
				s.emitSynth()
				return true
			}
		}
	}
	s.expect(pending{typ: 'Q'})
	return false
}

// onlyEnd reports whether rest holds nothing but an optional ';', white
// space and comments.
func onlyEnd(rest []byte) bool {
	w, r := firstWord(rest)
	if len(w) == 1 && w[0] == ';' {
		w, _ = firstWord(r)
	}
	return len(w) == 0
}

// serverTag reacts to a CommandComplete the server sent: DISCARD ALL and
// DEALLOCATE ALL destroyed the server's prepared statements (whoever sent them).
func (s *Server) serverTag(tag []byte) {
	switch string(tag) {
	case "DISCARD ALL":
		s.forgetStatements()
		s.params = s.loop.pi.empty
		if c := s.client; c != nil {
			c.stmts = nil
			c.dropUnnamed()
			c.params = c.startParams
		}
	case "DEALLOCATE ALL":
		s.forgetStatements()
		if c := s.client; c != nil {
			c.stmts = nil
		}
	}
}

// answerLocally answers, without a server, a client's Parse(s) of
// statements some server already validated, Describes whose answer is
// known, and the Sync that ends them (drivers prepare outside transactions:
// pgbench -M prepared, pgx's statement cache). It returns true when it
// consumed the whole stash.
func (c *Client) answerLocally() bool {
	st := c.stash
	l := c.loop
	out := l.scratch[:0]
	for len(st) > 0 {
		typ, total, ok, err := pgproto.Frame(st, 0)
		if err != nil || !ok {
			return false
		}
		body := st[pgproto.HeaderLen:total]
		switch typ {
		case pgproto.MsgParse:
			p, ok := pgproto.DecodeParse(body)
			if !ok || len(p.Name) == 0 {
				return false
			}
			if _, exists := c.stmts[string(p.Name)]; exists {
				return false
			}
			stmt := l.internStmt(p.Query, p.Types)
			if !stmt.validated {
				return false
			}
			out = append(out, '1', 0, 0, 0, 4)
		case pgproto.MsgDescribe:
			kind, name, ok := pgproto.Target(body)
			if !ok || kind != 'S' {
				return false
			}
			stmt := c.localStmt(name, c.stash[:len(c.stash)-len(st)])
			if stmt == nil || stmt.desc == nil || stmt.descGen != stmt.gen {
				return false
			}
			out = append(out, stmt.desc...)
		case pgproto.MsgSync:
			if total != len(st) {
				return false // more follows: let the server handle it all
			}
			// Commit the names now that the whole exchange is answerable.
			c.registerLocalParses(c.stash)
			out = pgproto.AppendReadyForQuery(out, pgproto.TxIdle)
			l.scratch = out[:0]
			c.send(out)
			l.putBuf(c.stash)
			c.stash = nil
			return true
		default:
			return false
		}
		st = st[total:]
	}
	return false
}

// localStmt finds the statement a name refers to: the client's, or one
// parsed earlier in the same (not yet committed) exchange.
func (c *Client) localStmt(name, before []byte) *Stmt {
	if cs, ok := c.stmts[string(name)]; ok {
		if cs.gen != cs.st.gen {
			return nil
		}
		return cs.st
	}
	for len(before) > 0 {
		typ, total, _, _ := pgproto.Frame(before, 0)
		if typ == pgproto.MsgParse {
			if p, ok := pgproto.DecodeParse(before[pgproto.HeaderLen:total]); ok && string(p.Name) == string(name) {
				return c.loop.internStmt(p.Query, p.Types)
			}
		}
		before = before[total:]
	}
	return nil
}

func (c *Client) registerLocalParses(st []byte) {
	for len(st) > 0 {
		typ, total, _, _ := pgproto.Frame(st, 0)
		if typ == pgproto.MsgParse {
			if p, ok := pgproto.DecodeParse(st[pgproto.HeaderLen:total]); ok {
				stmt := c.loop.internStmt(p.Query, p.Types)
				if c.stmts == nil {
					c.stmts = make(map[string]clientStmt)
				}
				c.stmts[string(p.Name)] = clientStmt{st: stmt, gen: stmt.gen}
			}
		}
		st = st[total:]
	}
}

// firstWord returns the first token of sql after white space and comments,
// and the rest. A token is a run of identifier characters, a quoted
// identifier, or one other character.
func firstWord(sql []byte) (word, rest []byte) {
	i := 0
	for i < len(sql) {
		switch ch := sql[i]; {
		case ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f':
			i++
		case ch == '-' && i+1 < len(sql) && sql[i+1] == '-':
			for i < len(sql) && sql[i] != '\n' {
				i++
			}
		case ch == '/' && i+1 < len(sql) && sql[i+1] == '*':
			depth := 0
			for i < len(sql) {
				if i+1 < len(sql) && sql[i] == '/' && sql[i+1] == '*' {
					depth++
					i += 2
				} else if i+1 < len(sql) && sql[i] == '*' && sql[i+1] == '/' {
					depth--
					i += 2
					if depth == 0 {
						break
					}
				} else {
					i++
				}
			}
		default:
			goto word
		}
	}
	return nil, nil
word:
	j := i
	if sql[j] == '"' {
		j++
		for j < len(sql) {
			if sql[j] == '"' {
				if j+1 < len(sql) && sql[j+1] == '"' {
					j += 2
					continue
				}
				j++
				break
			}
			j++
		}
		return sql[i:j], sql[j:]
	}
	for j < len(sql) && (sql[j] == '_' || sql[j] >= 'a' && sql[j] <= 'z' || sql[j] >= 'A' && sql[j] <= 'Z' || sql[j] >= '0' && sql[j] <= '9' || sql[j] >= 0x80 || sql[j] == '$') {
		j++
	}
	if j == i {
		j++
	}
	return sql[i:j], sql[j:]
}

func asciiEq(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := range b {
		ch := b[i]
		if ch >= 'A' && ch <= 'Z' {
			ch += 'a' - 'A'
		}
		if ch != lower[i] {
			return false
		}
	}
	return true
}

// unquoteIdent folds an unquoted identifier to lower case, or strips the
// quotes of a quoted one.
func unquoteIdent(w []byte) string {
	if len(w) >= 2 && w[0] == '"' {
		return string(bytes.ReplaceAll(w[1:len(w)-1], []byte(`""`), []byte(`"`)))
	}
	return string(bytes.ToLower(w))
}
