package sqlscan

import (
	"bytes"
	"unicode/utf8"
)

// The query scanner walks the tokens of a SELECT/VALUES/TABLE/INSERT/
// UPDATE/DELETE/MERGE statement, with its CTEs and subqueries, once from left
// to right. It keeps one frame per open parenthesis and finds
//   - relations after FROM, JOIN, USING (DELETE, MERGE), TABLE, and the
//     targets of INSERT INTO, UPDATE, DELETE FROM, MERGE INTO, SELECT INTO;
//   - data-modifying statements anywhere (CTEs), SELECT INTO, FOR UPDATE/SHARE;
//   - function calls (name followed by '('), checked against the lists.
// It never needs to parse expressions: anything it does not understand is
// skipped, and the write checks look at every token whatever the context.

type fromState uint8

const (
	fsNone  fromState = iota
	fsItem            // a FROM item may start here
	fsAfter           // after a FROM item: alias, column aliases, TABLESAMPLE ...
	fsCond            // in a JOIN ... ON / USING condition
)

type cteState uint8

const (
	cteNone      cteState = iota
	cteName               // WITH [RECURSIVE] seen: a CTE name comes next
	cteAfterName          // name [(columns)] AS
	cteAfterAs            // AS [NOT] [MATERIALIZED] (
	cteAfterBody          // after the body: SEARCH/CYCLE clause, ',' or the main statement
)

// frame is the state of one parenthesis level.
type frame struct {
	stmt      keyword // statement of this level: kwSelect, kwInsert ... or kwNone
	from      fromState
	cte       cteState
	recursive bool  // WITH RECURSIVE: names are visible in their own bodies
	expr      bool  // expression parentheses (function arguments ...): FROM is not a clause
	item      bool  // opened at a FROM item
	colList   bool  // a list of names (column aliases, CTE columns): no calls inside
	cteLast   int32 // index+1 in Scanner.ctes of the last CTE named at this level
	cteBody   int32 // index+1 in Scanner.ctes of the CTE whose body this is
}

// cte is a CTE name in scope, defined at frame depth depth (relative to the
// query's root frame).
type cte struct {
	name   []byte
	depth  int32
	active bool
}

func (c *classifier) top() *frame { return &c.s.frames[len(c.s.frames)-1] }

func (c *classifier) atRoot() bool { return len(c.s.frames)-1 == c.fbase }

// noteKind records the kind of the statement keyword just seen.
func (c *classifier) noteKind(k Kind) {
	if c.qany == KindOther {
		c.qany = k
	}
	if c.qkind == KindOther && c.atRoot() {
		c.qkind = k
	}
}

func (c *classifier) query(lo, hi int) Kind {
	s := c.s
	savedBase, savedKind, savedAny := c.fbase, c.qkind, c.qany
	cbase := len(s.ctes)
	c.fbase = len(s.frames)
	c.qkind, c.qany = KindOther, KindOther
	c.colListNext = false
	s.frames = append(s.frames, frame{})
	for i := lo; i < hi; i++ {
		t := &c.toks[i]
		switch t.typ {
		case tLParen, tLBrack:
			f := c.top()
			nf := frame{expr: true}
			switch {
			case t.typ == tLBrack:
			case c.colListNext || f.cte == cteAfterName:
				nf.colList = true
			case f.cte == cteAfterAs:
				nf.expr = false
				nf.cteBody = f.cteLast
			case f.cte == cteAfterBody:
				f.cte = cteNone // WITH ... (SELECT ...)
			case f.from == fsItem:
				nf.expr = false
				nf.item = true
				nf.from = fsItem
			}
			c.colListNext = false
			s.frames = append(s.frames, nf)
		case tRParen, tRBrack:
			if len(s.frames)-1 > c.fbase {
				closed := s.frames[len(s.frames)-1]
				s.frames = s.frames[:len(s.frames)-1]
				depth := int32(len(s.frames) - 1 - c.fbase)
				for len(s.ctes) > cbase && s.ctes[len(s.ctes)-1].depth > depth {
					s.ctes = s.ctes[:len(s.ctes)-1]
				}
				p := c.top()
				if closed.item {
					p.from = fsAfter
				}
				if closed.cteBody > 0 && int(closed.cteBody) <= len(s.ctes) {
					s.ctes[closed.cteBody-1].active = true
					p.cte = cteAfterBody
				}
			}
			c.colListNext = false
		case tComma:
			f := c.top()
			if f.from == fsAfter || f.from == fsCond {
				f.from = fsItem
			}
			if f.cte == cteAfterBody && c.nameStart(i+1) && (c.kwAt(i+2) == kwAs || c.typAt(i+2) == tLParen) {
				f.cte = cteName
			}
		case tString:
			c.literal(t)
		case tIdent, tQIdent:
			i = c.word1(i)
		}
	}
	s.frames = s.frames[:c.fbase]
	s.ctes = s.ctes[:cbase]
	k := c.qkind
	if k == KindOther {
		k = c.qany
	}
	c.fbase, c.qkind, c.qany = savedBase, savedKind, savedAny
	switch k {
	case KindSelect, KindValues, KindTable:
		c.readKind = true
	case KindOther:
		c.unsure()
	}
	return k
}

// literal marks date/time input strings that read the clock as volatile:
// any string literal form ('...', E'...', U&'...', $tag$...$tag$) whose text,
// case-insensitively and with any surrounding spaces, mentions now, today,
// tomorrow or yesterday. Over-marking only makes a read uncacheable.
func (c *classifier) literal(t *token) {
	b := c.src[t.pos:t.end]
	if len(b) < 5 || len(b) > 256 {
		return
	}
	for _, w := range [...]string{"now", "today", "tomorrow", "yesterday"} {
		if containsFold(b, w) {
			c.st.Volatile = true
			return
		}
	}
}

// containsFold reports whether b contains the lower-case ASCII word w,
// ignoring ASCII case.
func containsFold(b []byte, w string) bool {
	for i := 0; i+len(w) <= len(b); i++ {
		if equalFold(b[i:i+len(w)], w) {
			return true
		}
	}
	return false
}

// word1 handles an identifier or keyword at toks[i] and returns the index of
// the last token it consumed.
func (c *classifier) word1(i int) int {
	s := c.s
	t := c.toks[i]
	kw := kwNone
	if t.typ == tIdent {
		kw = t.kw
	}
	f := c.top()

	switch f.cte {
	case cteName:
		if c.nameStart(i) {
			s.ctes = append(s.ctes, cte{name: c.norm(i), depth: int32(len(s.frames) - 1 - c.fbase), active: f.recursive})
			f.cteLast = int32(len(s.ctes))
			f.cte = cteAfterName
			return i
		}
		f.cte = cteNone
	case cteAfterName:
		if kw == kwAs {
			f.cte = cteAfterAs
			return i
		}
		f.cte = cteNone // not SQL; scan on
	case cteAfterAs:
		if kw == kwNot || kw == kwMaterialized {
			return i
		}
		f.cte = cteNone
	case cteAfterBody:
		switch kw {
		case kwSelect, kwValues, kwTable, kwInsert, kwUpdate, kwDelete, kwMerge, kwInto, kwFor, kwWith:
			f.cte = cteNone
		default:
			return i // SEARCH ... SET ..., CYCLE ... USING ...
		}
	}

	if f.from == fsItem {
		switch {
		case kw == kwLateral || kw == kwOnly:
			return i
		case kw == kwRows && c.kwAt(i+1) == kwFrom: // ROWS FROM (f(), g())
			f.from = fsAfter
			return i + 1
		case kw == kwSelect || kw == kwValues || kw == kwWith || kw == kwTable:
		default:
			if c.nameStart(i) {
				end := c.qualEnd(i)
				f.from = fsAfter
				if c.typAt(end) == tLParen {
					c.call(i, end)
					return end - 1
				}
				c.addTable(i, end, false)
				if c.isOp(end, "*") {
					end++
				}
				return end - 1
			}
		}
	}

	switch kw {
	case kwSelect:
		if f.stmt == kwNone { // INSERT ... SELECT stays an INSERT
			f.stmt = kwSelect
		}
		f.expr, f.from = false, fsNone
		c.noteKind(KindSelect)
		return i
	case kwValues:
		f.expr, f.from = false, fsNone
		c.noteKind(KindValues)
		return i
	case kwTable:
		if c.nameStart(i + 1) {
			end := c.qualEnd(i + 1)
			c.addTable(i+1, end, false)
			c.noteKind(KindTable)
			f.expr, f.from = false, fsNone
			return end - 1
		}
		return i
	case kwWith:
		if c.cteStart(i + 1) {
			f.cte, f.expr = cteName, false
			if c.kwAt(i+1) == kwRecursive {
				f.recursive = true
				return i + 1
			}
		}
		return i
	case kwFrom:
		if f.expr {
			return i // EXTRACT(x FROM y), SUBSTRING(x FROM 1), TRIM(... FROM ...)
		}
		if c.prevKw(i) == kwDistinct && (c.prevKw(i-1) == kwIs || c.prevKw(i-1) == kwNot) {
			return i // IS [NOT] DISTINCT FROM
		}
		f.from = fsItem
		return i
	case kwJoin:
		if !f.expr {
			f.from = fsItem
		}
		return i
	case kwOn:
		if f.from == fsAfter {
			f.from = fsCond
		}
		return i
	case kwUsing:
		switch {
		case f.from == fsAfter || f.from == fsCond:
			f.from = fsCond // JOIN ... USING (columns)
			if c.typAt(i+1) == tLParen {
				c.colListNext = true
			}
		case (f.stmt == kwDelete || f.stmt == kwMerge) && f.from == fsNone:
			f.from = fsItem
		}
		return i
	case kwWhere, kwGroup, kwHaving, kwWindow, kwOrder, kwLimit, kwOffset, kwFetch,
		kwUnion, kwIntersect, kwExcept, kwReturning:
		f.from = fsNone
		return i
	case kwSet:
		f.from = fsNone // and set(...) may be a call: go on
	case kwWhen, kwThen:
		if f.stmt == kwMerge {
			f.from = fsNone
		}
		return i
	case kwFor:
		f.from = fsNone
		return c.forLock(i)
	case kwInto:
		if c.typAt(i+1) == tDot || c.prevTyp(i) == tDot {
			return i
		}
		// SELECT ... INTO [TEMP|UNLOGGED] [TABLE] name creates a table.
		f.from = fsNone
		c.write()
		j := i + 1
		for {
			k := c.kwAt(j)
			if k != kwTemp && k != kwTemporary && k != kwUnlogged && k != kwLocal && k != kwGlobal {
				break
			}
			j++
		}
		if c.kwAt(j) == kwTable {
			j++
		}
		if c.nameStart(j) {
			end := c.qualEnd(j)
			c.addTable(j, end, true)
			return end - 1
		}
		return j - 1
	case kwInsert, kwUpdate, kwDelete, kwMerge:
		if r, ok := c.dml(i, kw); ok {
			return r
		}
	case kwTablesample:
		c.st.Volatile = true // a random sample: each run differs
		if n := i + 1; c.nameStart(n) && c.toks[n].typ == tIdent && !c.s.cfg.write.has(c.text(n), nameHash(c.text(n)), false) {
			return n // the method name (SYSTEM, BERNOULLI) is no function call
		}
		return i
	}
	if kw.has(kpValue) {
		c.st.Volatile = true
		return i
	}
	end := c.qualEnd(i)
	if c.typAt(end) == tLParen {
		switch {
		case c.syntaxParen(i, kw, f):
		case f.from == fsAfter && c.aliasPos(i):
			c.colListNext = true // alias (column aliases)
		case f.colList && (c.prevTyp(i) == tQIdent || c.prevTyp(i) == tIdent && !c.prevKw(i).has(kpReserved)):
			// a type with modifiers in a column definition list: AS t(a numeric(10))
		case c.prevTyp(i) == tCast || c.prevKw(i) == kwAs:
			// a type with modifiers: x::numeric(10,2), CAST(x AS varchar(3)), or AS alias(cols)
		default:
			c.call(i, end)
		}
	}
	return end - 1
}

// syntaxParen reports whether "kw (" at toks[i] is syntax rather than a
// call. Reserved words cannot name functions; unreserved and type/function
// name keywords can (a user function named set() exists in PostgreSQL's
// tests), so for those the context decides.
func (c *classifier) syntaxParen(i int, kw keyword, f *frame) bool {
	if !kw.has(kpNoCall) {
		return false
	}
	prevKw, prevTyp := c.prevKw(i), c.prevTyp(i)
	switch kw {
	case kwBy:
		return prevKw == kwGroup || prevKw == kwOrder || prevKw == kwPartition || prevKw == kwFirst
	case kwConflict:
		return prevKw == kwOn
	case kwFilter, kwOver, kwRepeatable:
		return prevTyp == tRParen
	case kwFirst, kwNext:
		return prevKw == kwFetch
	case kwSets:
		return prevKw == kwGrouping
	case kwZone:
		return prevKw == kwTime
	case kwSet:
		return f.stmt == kwUpdate || f.stmt == kwMerge || f.stmt == kwInsert
	case kwLike, kwIlike, kwSimilar, kwOverlaps, kwIs, kwJoin:
		// binary operator syntax after an operand, a call elsewhere
		switch prevTyp {
		case tIdent:
			return !prevKw.has(kpReserved) || prevKw == kwTrue || prevKw == kwFalse || prevKw == kwNull || prevKw.has(kpValue)
		case tQIdent, tString, tNumber, tParam, tRParen, tRBrack:
			return true
		}
		return false
	}
	return true
}

// aliasPos reports whether toks[i] directly follows a FROM item or AS,
// where it is an alias.
func (c *classifier) aliasPos(i int) bool {
	if i <= c.lo {
		return false
	}
	p := c.toks[i-1]
	switch p.typ {
	case tQIdent, tRParen:
		return true
	case tIdent:
		return p.kw == kwAs || !p.kw.has(kpReserved)
	}
	return false // not after "t *": that reads like a product with a call
}

// cteStart reports whether the WITH before toks[i] starts a list of CTEs
// (not WITH ORDINALITY, WITH TIME ZONE, WITH [NO] DATA ...).
func (c *classifier) cteStart(i int) bool {
	if c.kwAt(i) == kwRecursive {
		return true
	}
	if !c.nameStart(i) {
		return false
	}
	if c.kwAt(i) == kwOrdinality {
		return false // WITH ORDINALITY AS t(a, n)
	}
	// WITH TIME ZONE, WITH [NO] DATA, WITH TIES, WITH HOLD ... are not
	// followed by AS or '('.
	return c.kwAt(i+1) == kwAs || c.typAt(i+1) == tLParen
}

// forLock handles FOR UPDATE / FOR NO KEY UPDATE / FOR SHARE / FOR KEY
// SHARE (FOR NO ... and FOR KEY ... count even when incomplete).
func (c *classifier) forLock(i int) int {
	switch c.kwAt(i + 1) {
	case kwUpdate, kwShare:
		c.primary = true
		return i + 1
	case kwNo:
		c.primary = true
		if c.kwAt(i+2) == kwKey && c.kwAt(i+3) == kwUpdate {
			return i + 3
		}
		return i + 1
	case kwKey:
		c.primary = true
		if c.kwAt(i+2) == kwShare {
			return i + 2
		}
		return i + 1
	}
	return i
}

// dml handles INSERT, UPDATE, DELETE and MERGE at toks[i]. ok is false when
// the word is evidently a name (t.update, AS delete).
func (c *classifier) dml(i int, kw keyword) (int, bool) {
	if c.typAt(i+1) == tDot || c.prevTyp(i) == tDot || c.prevKw(i) == kwAs {
		return i, false
	}
	c.write()
	if p := c.prevKw(i); p == kwThen || p == kwDo {
		return i, true // MERGE ... THEN UPDATE, ON CONFLICT DO UPDATE: no new target
	}
	f := c.top()
	f.stmt, f.expr, f.from = kw, false, fsNone
	j := i + 1
	switch kw {
	case kwInsert:
		c.noteKind(KindInsert)
		if c.kwAt(j) == kwInto {
			j++
		}
	case kwMerge:
		c.noteKind(KindMerge)
		if c.kwAt(j) == kwInto {
			j++
		}
	case kwDelete:
		c.noteKind(KindDelete)
		if c.kwAt(j) == kwFrom {
			j++
		}
	case kwUpdate:
		c.noteKind(KindUpdate)
	}
	if c.kwAt(j) == kwOnly {
		j++
	}
	if !c.nameStart(j) {
		return j - 1, true
	}
	end := c.qualEnd(j)
	c.addTable(j, end, true)
	if c.isOp(end, "*") {
		end++
	}
	if kw == kwInsert && c.typAt(end) == tLParen {
		c.colListNext = true
	}
	return end - 1, true
}

// call classifies a call of the function named by toks[i:end].
func (c *classifier) call(i, end int) {
	st := c.st
	cfg := c.s.cfg
	n := end - 1
	name := c.text(n)
	exact := c.toks[n].typ == tQIdent
	if exact {
		name = c.norm(n)
	}
	builtin := n == i || c.word(n-2, "pg_catalog")
	h := nameHash(name)
	if cfg.write.has(name, h, exact) {
		st.Volatile = true
		c.write()
		return
	}
	if builtin && builtinRead.has(name, h, exact) {
		if builtinVolatile.has(name, h, exact) {
			st.Volatile = true
		}
		return
	}
	st.Volatile = true
	if cfg.userRead.has(name, h, exact) || cfg.assumeRead {
		return
	}
	st.Write = true
	c.unsure()
}

// addTable records the relation named by toks[i:end] (name parts separated
// by dots).
func (c *classifier) addTable(i, end int, write bool) {
	s := c.s
	name := c.norm(end - 1)
	var schema []byte
	if end-1-2 >= i {
		schema = c.norm(end - 3)
	}
	// The scans below are bounded so that a huge query stays linear: past
	// the bound a CTE reference may be listed as a table, and a relation
	// may be listed twice.
	if !write && schema == nil {
		for k := len(s.ctes) - 1; k >= 0 && k >= len(s.ctes)-maxScan; k-- {
			if s.ctes[k].active && bytes.Equal(s.ctes[k].name, name) {
				return
			}
		}
	}
	for k := max(c.tab0, len(s.tables)-maxScan); k < len(s.tables); k++ {
		r := &s.tables[k]
		if bytes.Equal(r.Name, name) && bytes.Equal(r.Schema, schema) && (r.Schema == nil) == (schema == nil) {
			r.Write = r.Write || write
			return
		}
	}
	sys := false
	if schema != nil {
		sys = string(schema) == "pg_catalog" || string(schema) == "information_schema" || string(schema) == "pg_toast"
	} else {
		sys = bytes.HasPrefix(name, []byte("pg_"))
	}
	if sys {
		c.st.Volatile = true
		if (schema == nil || string(schema) == "pg_catalog") && serverLocal(name) {
			c.primary = true
		}
	}
	s.tables = append(s.tables, TableRef{Schema: schema, Name: name, Write: write, System: sys})
}

// maxScan bounds the look-back over CTE names and over the relations
// already listed.
const maxScan = 256

// serverLocal reports catalog views whose contents are per server (activity,
// locks, replication, settings, session objects): they are read on the
// primary so that monitoring through the pooler sees the primary.
func serverLocal(name []byte) bool {
	if bytes.HasPrefix(name, []byte("pg_stat_")) || bytes.HasPrefix(name, []byte("pg_statio_")) {
		return true // not pg_statistic, pg_stats: those are replicated
	}
	switch string(name) {
	case "pg_locks", "pg_prepared_xacts", "pg_replication_slots", "pg_settings",
		"pg_file_settings", "pg_hba_file_rules", "pg_ident_file_mappings",
		"pg_prepared_statements", "pg_cursors", "pg_backend_memory_contexts",
		"pg_shmem_allocations", "pg_replication_origin_status", "pg_wait_events":
		return true
	}
	return false
}

// maxIdentLen is NAMEDATALEN-1: longer identifiers are truncated.
const maxIdentLen = 63

// norm returns the normalised identifier toks[i]: unquoted names folded to
// lower case, quoted names unescaped, both cut to 63 bytes.
func (c *classifier) norm(i int) []byte {
	s := c.s
	t := c.toks[i]
	b := c.src[t.pos:t.end]
	if t.typ == tIdent {
		for k, ch := range b {
			if 'A' <= ch && ch <= 'Z' {
				start := len(s.arena)
				s.arena = append(s.arena, b[:k]...)
				for _, ch := range b[k:] {
					s.arena = append(s.arena, lower[ch])
				}
				b = s.arena[start:]
				break
			}
		}
		return truncIdent(b)
	}
	// Quoted: strip the quotes (and U&).
	if t.flags&tfUnicode != 0 {
		b = b[2:]
	}
	if t.flags&tfUnterminated != 0 {
		b = b[1:]
	} else {
		b = b[1 : len(b)-1]
	}
	if t.flags&(tfEscaped|tfUnicode) != 0 {
		start := len(s.arena)
		for k := 0; k < len(b); k++ {
			s.arena = append(s.arena, b[k])
			if b[k] == '"' && k+1 < len(b) && b[k+1] == '"' {
				k++
			}
		}
		b = s.arena[start:]
		if t.flags&tfUnicode != 0 {
			esc := byte('\\')
			if i+2 < c.hi && c.toks[i+1].typ == tIdent && equalFold(c.text(i+1), "uescape") && c.toks[i+2].typ == tString {
				if e := c.text(i + 2); len(e) == 3 {
					esc = e[1]
				}
			}
			b = s.arena[start : start+unescapeUnicode(b, esc)]
		}
	}
	return truncIdent(b)
}

// unescapeUnicode decodes \XXXX, \+XXXXXX and \\ (with esc for \) in place
// and returns the new length.
func unescapeUnicode(b []byte, esc byte) int {
	w := 0
	for r := 0; r < len(b); {
		if b[r] != esc || r+1 >= len(b) {
			b[w] = b[r]
			w++
			r++
			continue
		}
		if b[r+1] == esc {
			b[w] = esc
			w++
			r += 2
			continue
		}
		n, digits := 4, b[r+1:]
		if b[r+1] == '+' {
			n, digits = 6, b[r+2:]
		}
		cp, ok := hexVal(digits, n)
		if !ok {
			b[w] = b[r]
			w++
			r++
			continue
		}
		r += 1 + n
		if n == 6 {
			r++
		}
		var enc [utf8.UTFMax]byte
		k := utf8.EncodeRune(enc[:], rune(cp))
		if w+k > r { // cannot happen: an escape is at least 5 bytes long
			break
		}
		w += copy(b[w:], enc[:k])
	}
	return w
}

func hexVal(b []byte, n int) (uint32, bool) {
	if len(b) < n {
		return 0, false
	}
	var v uint32
	for _, ch := range b[:n] {
		switch {
		case '0' <= ch && ch <= '9':
			v = v<<4 | uint32(ch-'0')
		case 'a' <= lower[ch] && lower[ch] <= 'f':
			v = v<<4 | uint32(lower[ch]-'a'+10)
		default:
			return 0, false
		}
	}
	return v, true
}

// truncIdent cuts b to 63 bytes without splitting a UTF-8 sequence.
func truncIdent(b []byte) []byte {
	if len(b) <= maxIdentLen {
		return b
	}
	n := maxIdentLen
	for n > 0 && !utf8.RuneStart(b[n]) {
		n--
	}
	return b[:n]
}
