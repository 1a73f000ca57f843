package proxy

import (
	"bytes"
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
	if failed && p.typ == 'P' && p.stmt != nil {
		delete(s.stmts, p.stmt)
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
		case 'Q':
			tag := "DEALLOCATE"
			if q.stmt == nil {
				tag = "DEALLOCATE ALL"
			}
			out = pgproto.AppendCommandComplete(s.loop.scratch[:0], tag)
			out = pgproto.AppendReadyForQuery(out, s.tx)
		}
		s.loop.t.Send(c.h, out)
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
	name := "pm_" + strconv.FormatUint(s.stmtSeq, 36)
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

// ensureUnnamed re-creates the client's unnamed statement on s when the
// server's unnamed statement is someone else's (its Parse ran on another
// server connection, in an earlier transaction).
func (c *Client) ensureUnnamed(s *Server) {
	if c.unnamed == nil || (s.unnamedBy == c && s.unnamedSeq == c.unnamedSeq) {
		return
	}
	c.loop.t.Send(s.h, c.unnamed)
	s.expect(pending{typ: 'P', flags: pSwallow})
	s.unnamedBy, s.unnamedSeq = c, c.unnamedSeq
}

// handleMsg processes one complete message that transaction pooling must
// look at (Parse, Bind, Describe, Close, Query). pre holds the bytes received
// before it that are not sent yet. It returns true when it sent pre and its
// own replacement for msg (the caller must then not forward msg).
func (c *Client) handleMsg(typ byte, msg, pre []byte) (replaced bool) {
	l := c.loop
	s := c.server
	body := msg[pgproto.HeaderLen:]
	sendPre := func() {
		if len(pre) > 0 {
			l.t.Send(s.h, pre)
		}
	}
	switch typ {
	case pgproto.MsgQuery:
		return c.handleQuery(body, sendPre)
	case pgproto.MsgParse:
		p, ok := pgproto.DecodeParse(body)
		if !ok {
			break
		}
		s.extOpen = true
		if len(p.Name) == 0 {
			c.unnamed = append(c.unnamed[:0], msg...)
			c.unnamedSeq++
			s.unnamedBy, s.unnamedSeq = c, c.unnamedSeq
			s.expect(pending{typ: 'P'})
			return false
		}
		st := l.internStmt(p.Query, p.Types)
		if c.stmts == nil {
			c.stmts = make(map[string]*Stmt)
		}
		if _, exists := c.stmts[string(p.Name)]; !exists {
			max := l.opts().MaxClientPreparedStatements
			if max <= 0 {
				max = defaultMaxClientStmts
			}
			if len(c.stmts) >= max {
				sendPre()
				c.fatal("53400", "too many prepared statements for this client (max_client_prepared_statements)", ReasonClientProtocol)
				return true
			}
		}
		c.stmts[string(p.Name)] = st
		sendPre()
		if ss, ok := s.stmts[st]; ok && ss.gen == st.gen {
			s.useTick++
			ss.used = s.useTick
			s.stmts[st] = ss
			s.expect(pending{typ: 'P', flags: pSynth})
			s.emitSynth()
			return true
		}
		name := s.addStmt(st)
		l.t.Send(s.h, pgproto.AppendParse(l.scratch[:0], name, st.query, st.types))
		s.expect(pending{typ: 'P', stmt: st})
		return true
	case pgproto.MsgBind:
		portal, name, rest, ok := pgproto.BindStatement(body)
		if !ok {
			break
		}
		s.extOpen = true
		if len(name) == 0 {
			if c.unnamed != nil && !(s.unnamedBy == c && s.unnamedSeq == c.unnamedSeq) {
				sendPre()
				c.ensureUnnamed(s)
				l.t.Send(s.h, msg)
				s.expect(pending{typ: 'B'})
				return true
			}
			s.expect(pending{typ: 'B'})
			return false
		}
		st := c.stmts[string(name)]
		if st == nil {
			s.expect(pending{typ: 'B'})
			return false // the server reports the missing statement
		}
		sendPre()
		sname := s.ensureStmt(st)
		l.t.Send(s.h, pgproto.AppendBind(l.scratch[:0], portal, sname, rest))
		s.expect(pending{typ: 'B', stmt: st})
		return true
	case pgproto.MsgDescribe, pgproto.MsgClose:
		kind, name, ok := pgproto.Target(body)
		if !ok {
			break
		}
		s.extOpen = true
		if kind != 'S' {
			s.expect(pending{typ: typ})
			return false
		}
		if len(name) == 0 {
			if typ == pgproto.MsgDescribe && c.unnamed != nil && !(s.unnamedBy == c && s.unnamedSeq == c.unnamedSeq) {
				sendPre()
				c.ensureUnnamed(s)
				l.t.Send(s.h, msg)
				s.expect(pending{typ: typ, flags: pDescStmt})
				return true
			}
			if typ == pgproto.MsgClose {
				c.unnamed = nil
			}
			s.expect(pending{typ: typ, flags: pDescStmt})
			return false
		}
		st := c.stmts[string(name)]
		if typ == pgproto.MsgClose {
			// Statements are shared per server: closing only forgets the
			// client's name; PostgreSQL answers CloseComplete even for an
			// unknown name.
			delete(c.stmts, string(name))
			sendPre()
			s.expect(pending{typ: 'C', flags: pSynth})
			s.emitSynth()
			return true
		}
		if st == nil {
			s.expect(pending{typ: 'D', flags: pDescStmt})
			return false
		}
		sendPre()
		sname := s.ensureStmt(st)
		l.t.Send(s.h, pgproto.AppendTarget(l.scratch[:0], 'D', 'S', sname))
		s.expect(pending{typ: 'D', flags: pDescStmt, stmt: st})
		return true
	}
	// Malformed: let the server report it.
	s.expect(pending{typ: typ})
	return false
}

// handleQuery looks for DEALLOCATE and DISCARD ALL in a simple query: they
// act on the client's own statements, as in a private session.
func (c *Client) handleQuery(body []byte, sendPre func()) bool {
	s := c.server
	l := c.loop
	sql, _ := pgproto.QueryText(body)
	w1, rest := firstWord(sql)
	switch {
	case asciiEq(w1, "deallocate"):
		w2, rest2 := firstWord(rest)
		if asciiEq(w2, "prepare") {
			w2, rest2 = firstWord(rest2)
		}
		if w3, _ := firstWord(rest2); len(w3) > 0 && !(len(w3) == 1 && w3[0] == ';') {
			break // not a single statement we understand: the server answers
		}
		if asciiEq(w2, "all") {
			c.stmts = nil
			sendPre()
			s.expect(pending{typ: 'Q', flags: pSynth | pDealloc})
			s.emitSynth()
			return true
		}
		name := unquoteIdent(w2)
		if _, ok := c.stmts[name]; ok {
			delete(c.stmts, name)
			sendPre()
			s.expect(pending{typ: 'Q', flags: pSynth | pDealloc, stmt: &Stmt{}})
			s.emitSynth()
			return true
		}
	case asciiEq(w1, "discard"):
		if w2, _ := firstWord(rest); asciiEq(w2, "all") {
			c.stmts = nil
			c.unnamed = nil
			s.forgetStatements()
			c.params = c.startParams
			s.params = l.pi.empty
		}
	}
	s.expect(pending{typ: 'Q'})
	return false
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
