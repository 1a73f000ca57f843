package sqlscan

// classifier holds the state of classifying one statement.
type classifier struct {
	s    *Scanner
	src  []byte
	toks []token
	st   *Statement
	lo   int // start of the statement (lookbehind bound)
	hi   int // end of the token range being looked at (lookahead bound)
	tab0 int // first entry of s.tables for this statement

	readKind bool // the statement kind may run on a replica
	primary  bool // something forces the primary
	depth    int  // nesting of stmt (EXPLAIN, PREPARE ... AS, COPY (...))

	// query scan state (see query.go)
	fbase       int
	qkind, qany Kind
	colListNext bool
}

// maxDepth bounds the nesting of statements inside statements.
const maxDepth = 8

func (s *Scanner) classify(src []byte, sp *span, st *Statement) {
	c := classifier{s: s, src: src, toks: s.toks, st: st, tab0: len(s.tables)}
	lo, hi := int(sp.tok0), int(sp.tok1)
	h := sp.hint
	if h&HintPrimary != 0 {
		h &^= HintReplica
	}
	if h&HintNoCache != 0 {
		h &^= HintCache
	}
	st.Hint = h
	if sp.flags&(tfUnterminated|tfAmbiguous) != 0 {
		st.Unsure = true
	}
	if lo == hi {
		st.Kind = KindEmpty
		if !st.Unsure {
			st.Route = RouteReplicaOK
		}
		return
	}
	st.Text = src[c.toks[lo].pos:c.toks[hi-1].end]
	c.lo = lo
	st.Kind = c.stmt(lo, hi)
	if n := len(s.tables); n > c.tab0 {
		st.Tables = s.tables[c.tab0:n:n]
	}
	if c.readKind && !c.primary && !st.Write && !st.Unsure {
		st.Route = RouteReplicaOK
	}
}

// token helpers. Indexes at or past c.hi read as nothing.

func (c *classifier) kwAt(i int) keyword {
	if i < c.hi && c.toks[i].typ == tIdent {
		return c.toks[i].kw
	}
	return kwNone
}

func (c *classifier) typAt(i int) tokType {
	if i < c.hi {
		return c.toks[i].typ
	}
	return 0
}

// prevTyp and prevKw describe the token before toks[i] in the statement.
func (c *classifier) prevTyp(i int) tokType {
	if i > c.lo {
		return c.toks[i-1].typ
	}
	return 0
}

func (c *classifier) prevKw(i int) keyword {
	if i > c.lo && c.toks[i-1].typ == tIdent {
		return c.toks[i-1].kw
	}
	return kwNone
}

func (c *classifier) text(i int) []byte {
	t := c.toks[i]
	return c.src[t.pos:t.end]
}

func (c *classifier) isOp(i int, op string) bool {
	return c.typAt(i) == tOp && string(c.text(i)) == op
}

// nameStart reports whether toks[i] can start a relation name. INSERT,
// UPDATE, DELETE and MERGE are legal unquoted names, but are never taken as
// names here: the statement is then treated as a write (conservative).
func (c *classifier) nameStart(i int) bool {
	switch c.typAt(i) {
	case tQIdent:
		return true
	case tIdent:
		switch k := c.toks[i].kw; k {
		case kwInsert, kwUpdate, kwDelete, kwMerge:
			return false
		default:
			return !k.has(kpReserved)
		}
	}
	return false
}

// qualEnd returns the index after the dotted name starting at toks[i].
func (c *classifier) qualEnd(i int) int {
	i++
	for i+1 < c.hi && c.toks[i].typ == tDot && (c.toks[i+1].typ == tIdent || c.toks[i+1].typ == tQIdent) {
		i += 2
	}
	return i
}

// skipParens returns the index after the parenthesised group opening at
// toks[i] (or c.hi if it is not closed).
func (c *classifier) skipParens(i int) int {
	depth := 0
	for ; i < c.hi; i++ {
		switch c.toks[i].typ {
		case tLParen:
			depth++
		case tRParen:
			depth--
			if depth == 0 {
				return i + 1
			}
		}
	}
	return c.hi
}

// findKw returns the index of the first kw at parenthesis depth 0 in
// [i, c.hi), or -1.
func (c *classifier) findKw(i int, kw keyword) int {
	depth := 0
	for ; i < c.hi; i++ {
		switch c.toks[i].typ {
		case tLParen:
			depth++
		case tRParen:
			depth--
		case tIdent:
			if depth == 0 && c.toks[i].kw == kw {
				return i
			}
		}
	}
	return -1
}

// plain reports whether toks[lo:hi], a part the classifier skips (options,
// column lists, transaction modes), holds no sign of a write: no INSERT,
// UPDATE, DELETE, MERGE, INTO or FOR, and no call of a write function. If
// it does, the SQL is not what it seems and is marked unsure.
func (c *classifier) plain(lo, hi int) bool {
	for i := lo; i < hi && i < c.hi; i++ {
		t := c.toks[i]
		if t.typ == tIdent {
			switch t.kw {
			case kwInsert, kwUpdate, kwDelete, kwMerge, kwInto, kwFor:
				c.unsure()
				return false
			}
		}
		if (t.typ == tIdent || t.typ == tQIdent) && c.typAt(i+1) == tLParen {
			name := c.text(i)
			if c.s.cfg.write.has(name, nameHash(name), t.typ == tQIdent) || t.typ == tQIdent {
				c.unsure()
				return false
			}
		}
	}
	return true
}

func (c *classifier) unsure() {
	c.st.Unsure = true
	c.primary = true
}

func (c *classifier) write() {
	c.st.Write = true
	c.primary = true
}

// stmt classifies the statement in toks[lo:hi] and returns its kind.
func (c *classifier) stmt(lo, hi int) Kind {
	if lo >= hi || c.depth >= maxDepth {
		c.unsure()
		return KindOther
	}
	savedHi := c.hi
	c.hi = hi
	c.depth++
	k := c.stmt1(lo, hi)
	c.depth--
	c.hi = savedHi
	return k
}

func (c *classifier) stmt1(lo, hi int) Kind {
	t := c.toks[lo]
	if t.typ == tLParen {
		return c.query(lo, hi)
	}
	if t.typ != tIdent {
		c.unsure()
		return KindOther
	}
	st := c.st
	switch t.kw {
	case kwSelect, kwWith, kwValues, kwTable, kwInsert, kwUpdate, kwDelete, kwMerge:
		return c.query(lo, hi)
	case kwExplain:
		return c.explain(lo, hi)
	case kwShow:
		// Session state, and SHOW transaction_read_only is how drivers
		// look for a writable server.
		c.primary = true
		return KindShow
	case kwSet:
		return c.set(lo, hi)
	case kwReset:
		c.primary = true
		if k := c.kwAt(lo + 1); k == kwAll || c.word(lo+1, "default_transaction_read_only") {
			st.DefaultAccess = AccessReset
		}
		return KindSet
	case kwBegin:
		return c.begin(lo + 1)
	case kwStart:
		if c.kwAt(lo+1) == kwTransaction {
			return c.begin(lo + 2)
		}
	case kwCommit, kwEnd:
		if t.kw == kwCommit && c.kwAt(lo+1) == kwPrepared {
			c.write()
			return KindTwoPhase
		}
		st.EndsTx = true
		st.BeginsTx = c.andChain(lo + 1)
		c.readKind = c.plain(lo+1, hi)
		return KindCommit
	case kwRollback, kwAbort:
		i := lo + 1
		if t.kw == kwRollback && c.kwAt(i) == kwPrepared {
			c.write()
			return KindTwoPhase
		}
		if k := c.kwAt(i); k == kwWork || k == kwTransaction {
			i++
		}
		c.readKind = c.plain(i, hi)
		if t.kw == kwRollback && c.kwAt(i) == kwTo {
			return KindSavepoint
		}
		st.EndsTx = true
		st.BeginsTx = c.andChain(i)
		return KindRollback
	case kwSavepoint, kwRelease:
		c.readKind = c.plain(lo+1, hi)
		return KindSavepoint
	case kwPrepare:
		if c.kwAt(lo+1) == kwTransaction {
			c.primary = true
			st.EndsTx = true
			return KindTwoPhase
		}
		// PREPARE name [(types)] AS statement: nothing runs yet.
		c.primary = true
		i := lo + 2
		if c.typAt(i) == tLParen {
			i = c.skipParens(i)
		}
		if c.kwAt(i) == kwAs {
			w := st.Write
			c.stmt(i+1, hi)
			st.Write = w
		} else {
			c.unsure()
		}
		return KindPrepare
	case kwExecute:
		c.unsure()
		st.Write = true
		return KindExecute
	case kwDeallocate:
		c.primary = true
		return KindDeallocate
	case kwDiscard:
		c.primary = true
		if c.kwAt(lo+1) == kwAll {
			st.DefaultAccess = AccessReset
		}
		return KindDiscard
	case kwListen:
		c.primary = true
		return KindListen
	case kwNotify:
		c.primary = true
		return KindNotify
	case kwUnlisten:
		c.primary = true
		return KindUnlisten
	case kwCopy:
		return c.copy(lo, hi)
	case kwCreate, kwAlter, kwDrop, kwTruncate, kwComment, kwReindex, kwCluster, kwRefresh,
		kwSecurity, kwGrant, kwRevoke, kwImport, kwReassign:
		c.ddl(lo, hi)
		return KindDDL
	case kwVacuum, kwAnalyze, kwAnalyse:
		c.primary = true
		return KindVacuum
	case kwLock:
		c.primary = true
		i := lo + 1
		if c.kwAt(i) == kwTable {
			i++
		}
		c.nameList(i, true)
		return KindLock
	case kwCall:
		c.write()
		return KindCall
	case kwDo:
		c.write()
		return KindDo
	case kwDeclare:
		// DECLARE name [options] CURSOR [WITH|WITHOUT HOLD] FOR query
		i := c.findKw(lo+1, kwCursor)
		f := c.findKw(lo+1, kwFor)
		if i < 0 || f < 0 {
			c.unsure()
			return KindCursor
		}
		if c.kwAt(i+1) == kwWith && c.kwAt(i+2) == kwHold {
			c.primary = true // outlives the transaction: session state
		}
		c.plain(lo+1, f)
		c.stmt(f+1, hi)
		return KindCursor
	case kwFetch, kwMove, kwClose:
		c.primary = true
		return KindCursor
	case kwCheckpoint, kwLoad:
		c.primary = true
		return KindOther
	}
	c.unsure()
	return KindOther
}

// word reports whether toks[i] is the identifier w (lower case), unquoted in
// any case or quoted exactly.
func (c *classifier) word(i int, w string) bool {
	switch c.typAt(i) {
	case tIdent:
		return equalFold(c.text(i), w)
	case tQIdent:
		b := c.text(i)
		return len(b) == len(w)+2 && string(b[1:len(b)-1]) == w
	}
	return false
}

// andChain reports AND CHAIN (not AND NO CHAIN) at toks[i:].
func (c *classifier) andChain(i int) bool {
	if k := c.kwAt(i); k == kwWork || k == kwTransaction {
		i++
	}
	return c.kwAt(i) == kwAnd && c.kwAt(i+1) == kwChain
}

// txModes reads transaction modes (ISOLATION LEVEL ..., READ ONLY|WRITE,
// [NOT] DEFERRABLE) from toks[i:].
func (c *classifier) txModes(i int) (access Access, serializable bool) {
	for ; i < c.hi; i++ {
		switch c.kwAt(i) {
		case kwRead:
			switch c.kwAt(i + 1) {
			case kwOnly:
				access = AccessReadOnly
				i++
			case kwWrite:
				access = AccessReadWrite
				i++
			}
		case kwIsolation:
			if c.kwAt(i+1) == kwLevel {
				serializable = c.kwAt(i+2) == kwSerializable
				i += 2
			}
		}
	}
	return
}

func (c *classifier) begin(i int) Kind {
	st := c.st
	st.BeginsTx = true
	if k := c.kwAt(i); k == kwWork || k == kwTransaction {
		i++
	}
	access, ser := c.txModes(i)
	st.ReadOnlyTx = access == AccessReadOnly
	// A read-only transaction may run on a standby, unless serializable
	// (not available in hot standby).
	if st.ReadOnlyTx && !ser && c.plain(i, c.hi) {
		c.readKind = true
	}
	return KindBegin
}

func (c *classifier) set(lo, hi int) Kind {
	st := c.st
	c.primary = true
	i := lo + 1
	local := false
	switch c.kwAt(i) {
	case kwSession:
		if c.kwAt(i+1) == kwCharacteristics {
			// SET SESSION CHARACTERISTICS AS TRANSACTION modes
			if a, _ := c.txModes(i + 2); a != AccessUnchanged {
				st.DefaultAccess = a
			}
			return KindSet
		}
		i++
	case kwLocal:
		local = true
		i++
	}
	if c.kwAt(i) == kwTransaction {
		a, _ := c.txModes(i + 1)
		st.ReadOnlyTx = a == AccessReadOnly
		return KindSet
	}
	ro := c.word(i, "transaction_read_only")
	if !ro && !c.word(i, "default_transaction_read_only") || c.typAt(i+1) == tDot {
		return KindSet
	}
	v := i + 1
	if c.kwAt(v) == kwTo || c.isOp(v, "=") {
		v++
	}
	if c.kwAt(v) == kwDefault {
		if !ro && !local {
			st.DefaultAccess = AccessReset
		}
		return KindSet
	}
	val, ok := c.boolAt(v)
	if !ok {
		return KindSet
	}
	switch {
	case ro:
		st.ReadOnlyTx = val
	case !local && val:
		st.DefaultAccess = AccessReadOnly
	case !local:
		st.DefaultAccess = AccessReadWrite
	}
	return KindSet
}

// boolAt parses a boolean setting value at toks[i] the way PostgreSQL's
// parse_bool does (on, off, true, false, yes, no, 1, 0 and unique prefixes).
func (c *classifier) boolAt(i int) (val, ok bool) {
	var b []byte
	switch c.typAt(i) {
	case tIdent, tNumber:
		b = c.text(i)
	case tString:
		b = c.text(i)
		if len(b) < 2 || b[0] != '\'' || b[len(b)-1] != '\'' {
			return false, false
		}
		b = b[1 : len(b)-1]
	default:
		return false, false
	}
	if len(b) == 0 {
		return false, false
	}
	prefix := func(w string) bool { return len(b) <= len(w) && equalFold(b, w[:len(b)]) }
	switch lower[b[0]] {
	case 't':
		return true, prefix("true")
	case 'f':
		return false, prefix("false")
	case 'y':
		return true, prefix("yes")
	case 'n':
		return false, prefix("no")
	case 'o':
		if len(b) >= 2 && prefix("on") {
			return true, true
		}
		if len(b) >= 2 && prefix("off") {
			return false, true
		}
	case '1':
		return true, len(b) == 1
	case '0':
		return false, len(b) == 1
	}
	return false, false
}

func (c *classifier) explain(lo, hi int) Kind {
	i := lo + 1
	analyze := false
	if c.typAt(i) == tLParen {
		end := c.skipParens(i)
		c.plain(i, end)
		for j := i + 1; j < end; j++ {
			if k := c.kwAt(j); k == kwAnalyze || k == kwAnalyse {
				analyze = true
				if v, ok := c.boolAt(j + 1); ok && !v {
					analyze = false
				}
			}
		}
		i = end
	} else {
		for {
			k := c.kwAt(i)
			if k == kwAnalyze || k == kwAnalyse {
				analyze = true
			} else if k != kwVerbose {
				break
			}
			i++
		}
	}
	w := c.st.Write
	c.stmt(i, hi)
	if !analyze && c.st.Write && !w {
		// Nothing is executed, but keep the route of the statement.
		c.st.Write = false
		c.primary = true
	}
	return KindExplain
}

func (c *classifier) copy(lo, hi int) Kind {
	i := lo + 1
	if c.typAt(i) == tLParen {
		end := c.skipParens(i)
		c.stmt(i+1, end-1)
		if c.kwAt(end) != kwTo {
			c.unsure()
		} else if c.kwAt(end+1) != kwStdout {
			c.primary = true // a server-side file or program
		}
		c.plain(end, hi)
		return KindCopyTo
	}
	if c.kwAt(i) == kwBinary {
		i++
	}
	if !c.nameStart(i) {
		c.unsure()
		return KindOther
	}
	end := c.qualEnd(i)
	j := end
	if c.typAt(j) == tLParen {
		j = c.skipParens(j)
	}
	switch c.kwAt(j) {
	case kwFrom:
		c.addTable(i, end, true)
		c.write()
		return KindCopyFrom
	case kwTo:
		c.addTable(i, end, false)
		if c.kwAt(j+1) == kwStdout {
			c.readKind = c.plain(end, hi)
		} else {
			c.primary = true
		}
		return KindCopyTo
	}
	c.unsure()
	return KindOther
}

// nameList adds the relations of a comma-separated list like
// "[ONLY] a [*], [ONLY] b" starting at toks[i].
func (c *classifier) nameList(i int, write bool) {
	for {
		if c.kwAt(i) == kwOnly {
			i++
		}
		if !c.nameStart(i) {
			return
		}
		end := c.qualEnd(i)
		c.addTable(i, end, write)
		i = end
		if c.isOp(i, "*") {
			i++
		}
		if c.typAt(i) != tComma {
			return
		}
		i++
	}
}

// ifExists skips IF EXISTS / IF NOT EXISTS.
func (c *classifier) ifExists(i int) int {
	if c.kwAt(i) == kwIf {
		i++
		if c.kwAt(i) == kwNot {
			i++
		}
		if c.kwAt(i) == kwExists {
			i++
		}
	}
	return i
}

// relObject recognises TABLE, VIEW, MATERIALIZED VIEW and FOREIGN TABLE at
// toks[i] and returns the index after it.
func (c *classifier) relObject(i int) (int, bool) {
	switch c.kwAt(i) {
	case kwTable, kwView:
		return i + 1, true
	case kwMaterialized:
		if c.kwAt(i+1) == kwView {
			return i + 2, true
		}
	case kwForeign:
		if c.kwAt(i+1) == kwTable {
			return i + 2, true
		}
	}
	return i, false
}

func (c *classifier) ddl(lo, hi int) {
	st := c.st
	c.write()
	i := lo + 1
	switch c.toks[lo].kw {
	case kwCreate:
		if c.kwAt(i) == kwOr && c.kwAt(i+1) == kwReplace {
			i += 2
		}
		for {
			k := c.kwAt(i)
			if k != kwTemp && k != kwTemporary && k != kwLocal && k != kwGlobal && k != kwUnlogged && k != kwRecursive {
				break
			}
			i++
		}
		if j, ok := c.relObject(i); ok {
			j = c.ifExists(j)
			if !c.nameStart(j) {
				return
			}
			end := c.qualEnd(j)
			c.addTable(j, end, true)
			if c.kwAt(end) == kwPartition && c.kwAt(end+1) == kwOf && c.nameStart(end+2) {
				c.addTable(end+2, c.qualEnd(end+2), true)
			}
			if as := c.findKw(end, kwAs); as >= 0 {
				// CREATE TABLE|VIEW ... AS query: the relations it reads.
				w, u := st.Write, st.Unsure
				c.stmt(as+1, hi)
				st.Write, st.Unsure = w, u
			}
			return
		}
		if c.kwAt(i) == kwUnique {
			i++
		}
		if k := c.kwAt(i); k == kwIndex || k == kwTrigger {
			if on := c.findKw(i, kwOn); on >= 0 {
				j := on + 1
				if c.kwAt(j) == kwOnly {
					j++
				}
				if c.nameStart(j) {
					c.addTable(j, c.qualEnd(j), true)
				}
			}
		}
	case kwAlter, kwDrop:
		j, ok := c.relObject(i)
		if !ok {
			return
		}
		j = c.ifExists(j)
		if c.toks[lo].kw == kwAlter {
			if c.kwAt(j) == kwOnly {
				j++
			}
			if c.nameStart(j) {
				c.addTable(j, c.qualEnd(j), true)
			}
			return
		}
		c.nameList(j, true)
	case kwTruncate:
		if c.kwAt(i) == kwTable {
			i++
		}
		c.nameList(i, true)
	case kwRefresh:
		if c.kwAt(i) == kwMaterialized && c.kwAt(i+1) == kwView {
			i += 2
			if c.kwAt(i) == kwConcurrently {
				i++
			}
			if c.nameStart(i) {
				c.addTable(i, c.qualEnd(i), true)
			}
		}
	}
}
