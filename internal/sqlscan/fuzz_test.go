package sqlscan

import (
	"bytes"
	"fmt"
	"testing"
)

// FuzzClassify checks that classifying never panics and keeps these
// invariants for every statement:
//
//  1. RouteReplicaOK never comes with Write or Unsure.
//  2. RouteReplicaOK never comes with a write keyword outside literals and
//     comments: INSERT/UPDATE/DELETE/MERGE (not next to '.' nor after AS),
//     INTO (not next to '.'), FOR UPDATE/SHARE/NO KEY/KEY SHARE, a leading
//     utility keyword (CREATE, ALTER, DROP, TRUNCATE, GRANT, REVOKE, LOCK,
//     CALL, DO, VACUUM, ANALYZE, SET, RESET, SHOW, EXECUTE, PREPARE, LISTEN,
//     NOTIFY, ...), COPY ... FROM, or a call of a default write function.
//  3. Leading and trailing comments and white space change nothing but Text.
//  4. The tokens cover the input: in order, and only white space and
//     comments between them.
//  5. A reused Scanner gives the same answer as a fresh one, and
//     ClassifyOne agrees with Classify.
//  6. Input without identifier characters or quotes claims no write.
func FuzzClassify(f *testing.F) {
	for _, c := range cases {
		f.Add(c.sql)
	}
	f.Add("select 1; delete from t")
	f.Add("CREATE FUNCTION f() BEGIN ATOMIC SELECT 1; END; SELECT 2")
	reused := NewScanner(nil)
	f.Fuzz(func(t *testing.T, sql string) {
		in := []byte(sql)
		fresh := NewScanner(nil)
		got := fresh.Classify(in)
		base := describeAll(got)

		// 5: reuse after another input.
		reused.Classify([]byte("WITH x AS (SELECT * FROM Other) SELECT * FROM x, y; INSERT INTO z VALUES (1)"))
		if d := describeAll(reused.Classify(in)); d != base {
			t.Fatalf("reused scanner differs:\n%s\nfresh:\n%s", d, base)
		}
		one := reused.ClassifyOne(in)
		if all := fresh.Classify(in); len(all) == 1 && describe(&one) != describe(&all[0]) {
			t.Fatalf("ClassifyOne differs:\n%s\n%s", describe(&one), describe(&all[0]))
		}

		got = fresh.Classify(in)
		hasLetters := false
		for _, c := range in {
			if cclass[c]&ccIdentStart != 0 || c == '"' { // identifiers ("" too) can name functions
				hasLetters = true
				break
			}
		}
		for i := range got {
			st := &got[i]
			if st.Route == RouteReplicaOK && (st.Write || st.Unsure) {
				t.Fatalf("statement %d: replica-ok with Write=%v Unsure=%v", i, st.Write, st.Unsure)
			}
			if st.Write && !hasLetters {
				t.Fatalf("statement %d: write without letters", i)
			}
			if st.Route == RouteReplicaOK {
				if why := writeEvidence(st.Text); why != "" {
					t.Fatalf("statement %d %q: replica-ok but %s", i, st.Text, why)
				}
			}
		}

		// 3: wrapping in comments and white space. Text after an
		// unterminated literal or comment would be swallowed by it.
		openEnd := false
		for _, tk := range lexAll(in, nil) {
			openEnd = openEnd || tk.flags&tfUnterminated != 0
		}
		for _, w := range []struct{ pre, post string }{
			{"/* lead */ ", ""},
			{"-- lead\n\t", ""},
			{"\n  ", " \n"},
			{"/* a /* nested */ b */", "\n-- tail"},
		} {
			wrapped := append(append([]byte(w.pre), in...), w.post...)
			if openEnd && w.post != "" {
				continue
			}
			if d := describeAll(fresh.Classify(wrapped)); d != base {
				t.Fatalf("wrapped in %q %q:\n%s\nplain:\n%s", w.pre, w.post, d, base)
			}
		}

		// 4: token coverage.
		toks := lexAll(in, nil)
		prev := 0
		for _, tk := range toks {
			if int(tk.pos) < prev || tk.end <= tk.pos || int(tk.end) > len(in) {
				t.Fatalf("token %+v out of order or bounds (prev end %d, len %d)", tk, prev, len(in))
			}
			if tk.typ != tHint {
				if gap := in[prev:tk.pos]; !onlySpaceAndComments(gap) {
					t.Fatalf("gap %q before token %q is not white space or comment", gap, in[tk.pos:tk.end])
				}
				prev = int(tk.end)
			}
		}
		if tail := in[prev:]; !onlySpaceAndComments(tail) {
			t.Fatalf("tail %q is not white space or comment", tail)
		}
	})
}

// onlySpaceAndComments reports whether b holds nothing but white space and
// comments (a final block comment may be unterminated; hint comments,
// reported as tokens, are comments too).
func onlySpaceAndComments(b []byte) bool {
	for i := 0; i < len(b); {
		switch {
		case cclass[b[i]]&ccSpace != 0:
			i++
		case bytes.HasPrefix(b[i:], []byte("--")):
			j := bytes.IndexAny(b[i:], "\r\n")
			if j < 0 {
				return true
			}
			i += j
		case bytes.HasPrefix(b[i:], []byte("/*")):
			j, _ := skipBlockComment(b, i)
			i = j
		default:
			return false
		}
	}
	return true
}

var leadingWriteKeywords = map[keyword]bool{
	kwCreate: true, kwAlter: true, kwDrop: true, kwTruncate: true, kwGrant: true, kwRevoke: true,
	kwLock: true, kwCall: true, kwDo: true, kwVacuum: true, kwAnalyze: true, kwAnalyse: true,
	kwSet: true, kwReset: true, kwShow: true, kwExecute: true, kwPrepare: true, kwListen: true,
	kwNotify: true, kwUnlisten: true, kwDiscard: true, kwDeallocate: true, kwCheckpoint: true,
	kwLoad: true, kwComment: true, kwReindex: true, kwCluster: true, kwRefresh: true,
	kwSecurity: true, kwImport: true, kwReassign: true, kwFetch: true, kwMove: true, kwClose: true,
}

// writeEvidence looks for a sign of a write in a statement's text, using
// only the lexer. It returns "" if there is none.
func writeEvidence(text []byte) string {
	toks := lexAll(text, nil)
	// drop hint pseudo-tokens
	k := 0
	for _, t := range toks {
		if t.typ != tHint {
			toks[k] = t
			k++
		}
	}
	toks = toks[:k]
	isKw := func(i int, kw keyword) bool {
		return i >= 0 && i < len(toks) && toks[i].typ == tIdent && toks[i].kw == kw
	}
	isTyp := func(i int, typ tokType) bool { return i >= 0 && i < len(toks) && toks[i].typ == typ }
	if len(toks) > 0 && toks[0].typ == tIdent && leadingWriteKeywords[toks[0].kw] {
		return "leading " + keywordInfo[toks[0].kw].name
	}
	copyStmt := isKw(0, kwCopy)
	toStdout := false
	for i, t := range toks {
		if t.typ != tIdent {
			continue
		}
		switch t.kw {
		case kwInsert, kwUpdate, kwDelete, kwMerge:
			if !isTyp(i-1, tDot) && !isTyp(i+1, tDot) && !isKw(i-1, kwAs) {
				return "a " + keywordInfo[t.kw].name
			}
		case kwInto:
			if !isTyp(i-1, tDot) && !isTyp(i+1, tDot) {
				return "INTO"
			}
		case kwFor:
			if !isTyp(i-1, tDot) && (isKw(i+1, kwUpdate) || isKw(i+1, kwShare) || isKw(i+1, kwNo) && isKw(i+2, kwKey)) || !isTyp(i-1, tDot) && isKw(i+1, kwKey) && isKw(i+2, kwShare) {
				return "a locking clause"
			}
		case kwTo:
			if isKw(i+1, kwStdout) {
				toStdout = true
			}
		case kwNone:
			// Not after '.', '::', AS, ')' or a name: a type modifier or an
			// alias with column names (no valid call follows those).
			if isTyp(i+1, tLParen) && !isTyp(i-1, tDot) && !isTyp(i-1, tCast) && !isKw(i-1, kwAs) && !isTyp(i-1, tRParen) &&
				!(isTyp(i-1, tIdent) && !toks[i-1].kw.has(kpReserved)) && !isTyp(i-1, tQIdent) {
				name := text[t.pos:t.end]
				if defaultConfig().write.has(name, nameHash(name), false) {
					return fmt.Sprintf("a call of %s", name)
				}
			}
		}
	}
	if copyStmt && !toStdout {
		return "COPY without TO STDOUT"
	}
	return ""
}

func describe(st *Statement) string {
	return fmt.Sprintf("%v %v %q %q h=%v da=%v b=%v e=%v ro=%v w=%v v=%v u=%v",
		st.Kind, st.Route, st.Text, tableString(st), st.Hint, st.DefaultAccess, st.BeginsTx, st.EndsTx,
		st.ReadOnlyTx, st.Write, st.Volatile, st.Unsure)
}

func describeAll(sts []Statement) string {
	var b bytes.Buffer
	for i := range sts {
		b.WriteString(describe(&sts[i]))
		b.WriteByte('\n')
	}
	return b.String()
}
