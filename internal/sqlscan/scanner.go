package sqlscan

import "sync"

// Options configure a Scanner. The zero value means the defaults.
type Options struct {
	// WriteFunctions names functions that force RoutePrimary and Write
	// (matched by name, whatever the schema, case-insensitively; an entry
	// ending in '*' is a prefix). nil means DefaultWriteFunctions(); a
	// non-nil list replaces the defaults, so append to
	// DefaultWriteFunctions() to extend them.
	WriteFunctions []string
	// ReadOnlyFunctions names extra functions (in any schema) that are safe
	// on a replica, added to the built-in list. Their results count as
	// volatile. WriteFunctions wins over this list.
	ReadOnlyFunctions []string
	// AssumeFunctionsReadOnly makes calls of unknown (user-defined) functions
	// read-only. By default they force RoutePrimary, Write and Unsure.
	AssumeFunctionsReadOnly bool
}

// funcConfig is the compiled form of Options.
type funcConfig struct {
	write      *nameSet
	userRead   *nameSet
	assumeRead bool
}

var (
	builtinRead     = newNameSet(readOnlyFunctions, volatileFunctions)
	builtinVolatile = newNameSet(volatileFunctions)
	defaultConfig   = sync.OnceValue(func() *funcConfig {
		return &funcConfig{write: newNameSet(defaultWriteFunctions)}
	})
)

func compile(o *Options) *funcConfig {
	if o == nil || o.WriteFunctions == nil && len(o.ReadOnlyFunctions) == 0 && !o.AssumeFunctionsReadOnly {
		return defaultConfig()
	}
	c := &funcConfig{assumeRead: o.AssumeFunctionsReadOnly}
	if o.WriteFunctions == nil {
		c.write = defaultConfig().write
	} else {
		c.write = newNameSet(o.WriteFunctions)
	}
	if len(o.ReadOnlyFunctions) > 0 {
		c.userRead = newNameSet(o.ReadOnlyFunctions)
	}
	return c
}

// Scanner classifies SQL text. It keeps scratch buffers between calls, so
// that classifying allocates nothing once the buffers have grown; results
// point into them and stay valid until the next call. A Scanner is not safe
// for concurrent use: keep one per goroutine or event loop. The zero value
// is ready to use with the default Options.
type Scanner struct {
	cfg    *funcConfig
	toks   []token
	spans  []span
	stmts  []Statement
	tables []TableRef
	arena  []byte
	frames []frame
	ctes   []cte
}

// NewScanner returns a Scanner using opts (nil for the defaults).
func NewScanner(opts *Options) *Scanner {
	return &Scanner{cfg: compile(opts)}
}

// span is one statement of the input: tokens [tok0, tok1).
type span struct {
	tok0, tok1 int32
	hint       Hint
	flags      uint8 // union of the token flags (tfUnterminated for comments too)
}

// Scratch buffers larger than this are dropped after a call, so that one
// huge query does not pin memory for the life of the Scanner.
const (
	maxKeepTokens = 1 << 16
	maxKeepArena  = 1 << 16
)

// Classify splits sql into statements the way the server does for a simple
// Query message (on ';' outside literals, comments, parentheses and
// BEGIN ATOMIC ... END bodies) and classifies each. Empty statements between
// semicolons are left out; input without any statement yields one
// KindEmpty entry. The caller should route to the primary if any entry says
// RoutePrimary. The result is valid until the next call on s.
func (s *Scanner) Classify(sql []byte) []Statement {
	if s.cfg == nil {
		s.cfg = defaultConfig()
	}
	s.reset()
	s.split(sql)
	for i := range s.spans {
		s.stmts = append(s.stmts, Statement{})
		s.classify(sql, &s.spans[i], &s.stmts[len(s.stmts)-1])
	}
	return s.stmts
}

// ClassifyOne classifies the first statement of sql, as for the extended
// protocol's Parse message, which carries at most one statement. If sql
// holds more than one statement (the server will reject it), the result is
// RoutePrimary and Unsure. Tables are valid until the next call on s.
func (s *Scanner) ClassifyOne(sql []byte) Statement {
	st := s.Classify(sql)
	r := st[0]
	if len(st) > 1 {
		r.Route = RoutePrimary
		r.Unsure = true
		for i := range st[1:] {
			r.Write = r.Write || st[i+1].Write
		}
	}
	return r
}

func (s *Scanner) reset() {
	if cap(s.toks) > maxKeepTokens {
		s.toks = nil
	}
	if cap(s.arena) > maxKeepArena {
		s.arena = nil
	}
	if cap(s.tables) > maxKeepTokens/4 {
		s.tables = nil
	}
	if cap(s.spans) > maxKeepTokens/4 {
		s.spans = nil
		s.stmts = nil
	}
	if cap(s.frames) > maxKeepTokens/4 {
		s.frames = nil
	}
	if cap(s.ctes) > maxKeepTokens/4 {
		s.ctes = nil
	}
	s.toks = s.toks[:0]
	s.spans = s.spans[:0]
	s.stmts = s.stmts[:0]
	s.tables = s.tables[:0]
	s.arena = s.arena[:0]
	s.frames = s.frames[:0]
	s.ctes = s.ctes[:0]
}

// split tokenizes sql into s.toks and cuts it into s.spans.
func (s *Scanner) split(sql []byte) {
	toks := lexAll(sql, s.toks[:0])
	start := 0
	paren := 0
	// psql's heuristic for CREATE [OR REPLACE] FUNCTION|PROCEDURE ...
	// BEGIN ATOMIC ... END: semicolons inside the body do not split.
	var idents [4]keyword
	nident := 0
	beginDepth := 0
	var flags uint8
	var hint Hint
	w := 0 // tokens are compacted in place: tHint and splitting ';' go
	for r := range toks {
		t := &toks[r]
		switch t.typ {
		case tHint:
			hint |= Hint(t.kw)
			flags |= t.flags
			continue
		case tSemi:
			if paren == 0 && beginDepth == 0 {
				if w > start {
					s.spans = append(s.spans, span{tok0: int32(start), tok1: int32(w), hint: hint, flags: flags})
				}
				start = w
				hint, flags = 0, 0
				nident = 0
				idents = [4]keyword{}
				continue
			}
		case tLParen:
			paren++
		case tRParen:
			if paren > 0 {
				paren--
			}
		case tIdent:
			if nident < len(idents) {
				idents[nident] = t.kw
			}
			nident++
			if beginDepth > 0 || t.kw == kwBegin {
				if idents[0] == kwCreate && paren == 0 &&
					(idents[1] == kwFunction || idents[1] == kwProcedure ||
						idents[1] == kwOr && idents[2] == kwReplace && (idents[3] == kwFunction || idents[3] == kwProcedure)) {
					switch t.kw {
					case kwBegin:
						beginDepth++
					case kwCase:
						if beginDepth > 0 {
							beginDepth++
						}
					case kwEnd:
						if beginDepth > 0 {
							beginDepth--
						}
					}
				}
			}
		}
		flags |= t.flags
		if w != r {
			toks[w] = *t
		}
		w++
	}
	s.toks = toks[:w]
	if w > start || len(s.spans) == 0 {
		s.spans = append(s.spans, span{tok0: int32(start), tok1: int32(w), hint: hint, flags: flags})
	}
}
