package sqlscan

import "bytes"

// tokType is the class of a lexical token.
type tokType uint8

const (
	tIdent  tokType = iota + 1 // unquoted identifier or keyword
	tQIdent                    // "quoted" or U&"quoted" identifier
	tString                    // any string literal, dollar-quoted included
	tNumber                    // numeric literal
	tParam                     // $1
	tOp                        // operator: + - * / < > = ~ ! @ # % ^ & | ` ? sequences
	tLParen
	tRParen
	tLBrack
	tRBrack
	tComma
	tSemi
	tDot
	tColon
	tCast  // ::
	tOther // any other byte
)

// token flags.
const (
	tfUnterminated uint8 = 1 << iota // literal, quoted identifier or comment runs to the end
	// tfAmbiguous marks a standard string ('...') that contains a backslash
	// directly before a quote: with standard_conforming_strings = off the
	// server would end it elsewhere, so the split of the text is not certain.
	tfAmbiguous
	tfUnicode // U&"..." or U&'...'
	tfEscaped // quoted identifier contains "" (needs unescaping)
)

// token is one lexical token: src[pos:end].
type token struct {
	pos, end int32
	typ      tokType
	flags    uint8
	kw       keyword
}

// character classes.
const (
	ccIdentStart uint8 = 1 << iota
	ccIdentCont
	ccDigit
	ccSpace
	ccOp
)

var cclass = func() (t [256]uint8) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] |= ccIdentStart | ccIdentCont
		t[c-'a'+'A'] |= ccIdentStart | ccIdentCont
	}
	t['_'] |= ccIdentStart | ccIdentCont
	for c := 0x80; c <= 0xff; c++ {
		t[c] |= ccIdentStart | ccIdentCont
	}
	for c := '0'; c <= '9'; c++ {
		t[c] |= ccDigit | ccIdentCont
	}
	t['$'] |= ccIdentCont
	for _, c := range []byte(" \t\n\r\f\v") {
		t[c] |= ccSpace
	}
	for _, c := range []byte("~!@#^&|`?+-*/%<>=") {
		t[c] |= ccOp
	}
	return
}()

// tHint is a pseudo-token for a comment that carries poolmgr hints (kw holds
// the Hint bits) or is unterminated (flags has tfUnterminated). The splitter
// removes it from the token list.
const tHint = tOther + 1

// lexAll appends the tokens of src to toks and returns it. White space and
// comments are skipped, except comments with hints or without an end, which
// become tHint tokens.
func lexAll(src []byte, toks []token) []token {
	n := len(src)
	i := 0
	for {
		// Skip white space and comments.
		for i < n {
			c := src[i]
			if cclass[c]&ccSpace != 0 {
				i++
				continue
			}
			if c == '-' && i+1 < n && src[i+1] == '-' {
				j := i + 2
				for j < n && src[j] != '\n' && src[j] != '\r' {
					j++
				}
				if h := commentHint(src[i+2 : j]); h != 0 {
					toks = append(toks, token{pos: int32(i), end: int32(j), typ: tHint, kw: keyword(h)})
				}
				i = j
				continue
			}
			if c == '/' && i+1 < n && src[i+1] == '*' {
				j, closed := skipBlockComment(src, i)
				var fl uint8
				body := src[i+2 : j]
				if closed {
					body = src[i+2 : j-2]
				} else {
					fl = tfUnterminated
				}
				if h := commentHint(body); h != 0 || fl != 0 {
					toks = append(toks, token{pos: int32(i), end: int32(j), typ: tHint, flags: fl, kw: keyword(h)})
				}
				i = j
				continue
			}
			break
		}
		if i >= n {
			return toks
		}
		// The token is built from locals in one go: assigning the fields of
		// a token one by one costs store-forwarding stalls.
		var (
			typ tokType
			fl  uint8
			kw  keyword
			j   = i + 1
		)
		c := src[i]
		switch cls := cclass[c]; {
		case cls&ccIdentStart != 0:
			typ = tIdent
			// Prefixed literals: E'', B'', X'', N'', U&'' and U&"".
			if j < n && (src[j] == '\'' || src[j] == '&') {
				switch c {
				case 'e', 'E':
					if src[j] == '\'' {
						typ = tString
						j, fl = scanString(src, j, true)
					}
				case 'b', 'B', 'x', 'X', 'n', 'N':
					if src[j] == '\'' {
						typ = tString
						j, fl = scanString(src, j, false)
					}
				case 'u', 'U':
					if src[j] == '&' && j+1 < n {
						switch src[j+1] {
						case '\'':
							typ = tString
							j, fl = scanString(src, j+1, false)
							fl |= tfUnicode
						case '"':
							typ = tQIdent
							j, fl = scanQuotedIdent(src, j+1)
							fl |= tfUnicode
						}
					}
				}
			}
			if typ == tIdent {
				// Hash (folded to lower case) while scanning, for the keyword lookup.
				h := (fnvOffset ^ uint32(lower[c])) * fnvPrime
				for j < n && cclass[src[j]]&ccIdentCont != 0 {
					h = (h ^ uint32(lower[src[j]])) * fnvPrime
					j++
				}
				if j-i >= 2 && j-i <= maxKeyword {
					kw = lookupKeywordHash(src[i:j], h)
				}
			}
		case c == '"':
			typ = tQIdent
			j, fl = scanQuotedIdent(src, i)
		case c == '\'':
			typ = tString
			j, fl = scanString(src, i, false)
		case cls&ccDigit != 0, c == '.' && j < n && cclass[src[j]]&ccDigit != 0:
			typ = tNumber
			j = scanNumber(src, i)
		case c == '$':
			typ = tOther
			if j < n && cclass[src[j]]&ccDigit != 0 {
				for j < n && cclass[src[j]]&ccDigit != 0 {
					j++
				}
				typ = tParam
			} else if e, f, ok := scanDollar(src, i); ok {
				typ, j, fl = tString, e, f
			}
		case cls&ccOp != 0:
			// An operator ends before an embedded comment start.
			for j < n && cclass[src[j]]&ccOp != 0 {
				if (src[j] == '-' && j+1 < n && src[j+1] == '-') || (src[j] == '/' && j+1 < n && src[j+1] == '*') {
					break
				}
				j++
			}
			typ = tOp
		default:
			typ = punct[c]
			if c == ':' && j < n && src[j] == ':' {
				typ = tCast
				j++
			}
		}
		toks = append(toks, token{pos: int32(i), end: int32(j), typ: typ, flags: fl, kw: kw})
		i = j
	}
}

var punct = func() (t [256]tokType) {
	for i := range t {
		t[i] = tOther
	}
	t['('], t[')'], t['['], t[']'] = tLParen, tRParen, tLBrack, tRBrack
	t[','], t[';'], t['.'], t[':'] = tComma, tSemi, tDot, tColon
	return
}()

// skipBlockComment skips a (nested) /* */ comment starting at src[i]. It
// returns the index after the comment and whether it was closed.
func skipBlockComment(src []byte, i int) (int, bool) {
	depth := 0
	n := len(src)
	for i < n-1 {
		switch {
		case src[i] == '/' && src[i+1] == '*':
			depth++
			i += 2
		case src[i] == '*' && src[i+1] == '/':
			depth--
			i += 2
			if depth == 0 {
				return i, true
			}
		default:
			i++
		}
	}
	return n, false
}

// scanString scans a single-quoted literal whose opening quote is src[q].
// With backslash set (E'...'), a backslash escapes the next byte.
func scanString(src []byte, q int, backslash bool) (int, uint8) {
	n := len(src)
	i := q + 1
	var fl uint8
	for i < n {
		c := src[i]
		if c == '\\' && backslash {
			i += 2
			continue
		}
		if c == '\'' {
			if !backslash && src[i-1] == '\\' {
				fl |= tfAmbiguous
			}
			if i+1 < n && src[i+1] == '\'' {
				i += 2
				continue
			}
			return i + 1, fl
		}
		i++
	}
	return n, fl | tfUnterminated
}

// scanQuotedIdent scans a "quoted identifier" whose opening quote is src[q].
func scanQuotedIdent(src []byte, q int) (int, uint8) {
	n := len(src)
	var fl uint8
	for i := q + 1; i < n; i++ {
		if src[i] == '"' {
			if i+1 < n && src[i+1] == '"' {
				fl |= tfEscaped
				i++
				continue
			}
			return i + 1, fl
		}
	}
	return n, fl | tfUnterminated
}

// scanNumber scans a numeric literal starting at src[i]. It is generous:
// it also takes trailing letters and underscores (0x1F, 1_000, junk), which
// the server either accepts or rejects as a whole.
func scanNumber(src []byte, i int) int {
	n := len(src)
	for i < n && (cclass[src[i]]&ccIdentCont != 0 && src[i] != '$') {
		if (src[i] == 'e' || src[i] == 'E') && i+1 < n && (src[i+1] == '+' || src[i+1] == '-') {
			i += 2
			continue
		}
		i++
	}
	if i < n && src[i] == '.' && !(i+1 < n && src[i+1] == '.') {
		i++
		for i < n && (cclass[src[i]]&ccIdentCont != 0 && src[i] != '$') {
			if (src[i] == 'e' || src[i] == 'E') && i+1 < n && (src[i+1] == '+' || src[i+1] == '-') {
				i += 2
				continue
			}
			i++
		}
	}
	return i
}

// scanDollar scans a dollar-quoted string $tag$...$tag$ starting at src[i].
// ok is false if src[i:] does not start a dollar quote.
func scanDollar(src []byte, i int) (end int, fl uint8, ok bool) {
	n := len(src)
	j := i + 1
	if j < n && src[j] != '$' {
		if cclass[src[j]]&ccIdentStart == 0 {
			return 0, 0, false
		}
		for j < n && cclass[src[j]]&ccIdentCont != 0 && src[j] != '$' {
			j++
		}
	}
	if j >= n || src[j] != '$' {
		return 0, 0, false
	}
	tag := src[i : j+1]
	k := bytes.Index(src[j+1:], tag)
	if k < 0 {
		return n, tfUnterminated, true
	}
	return j + 1 + k + len(tag), 0, true
}

// commentHint returns the poolmgr hints in a comment body: "poolmgr:"
// followed by one or more words separated by commas (poolmgr:replica,cache).
func commentHint(body []byte) (h Hint) {
	for len(body) >= 8 {
		k := indexFold(body, "poolmgr:")
		if k < 0 {
			return
		}
		body = body[k+8:]
		for {
			w := 0
			for w < len(body) && (cclass[body[w]]&ccIdentCont != 0 && body[w] != '$') {
				w++
			}
			switch word := body[:w]; {
			case equalFold(word, "primary"):
				h |= HintPrimary
			case equalFold(word, "replica"):
				h |= HintReplica
			case equalFold(word, "cache"):
				h |= HintCache
			case equalFold(word, "nocache"):
				h |= HintNoCache
			}
			body = body[w:]
			if len(body) == 0 || body[0] != ',' {
				break
			}
			body = body[1:]
		}
	}
	return
}

// indexFold is bytes.Index ignoring ASCII case; s must be lower case.
func indexFold(b []byte, s string) int {
	for i := 0; i+len(s) <= len(b); i++ {
		if lower[b[i]] == s[0] && equalFold(b[i:i+len(s)], s) {
			return i
		}
	}
	return -1
}
