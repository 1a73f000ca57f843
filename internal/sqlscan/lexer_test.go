package sqlscan

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

var typNames = map[tokType]string{
	tIdent: "id", tQIdent: "qid", tString: "str", tNumber: "num", tParam: "param", tOp: "op",
	tLParen: "(", tRParen: ")", tLBrack: "[", tRBrack: "]", tComma: ",", tSemi: ";", tDot: ".",
	tColon: ":", tCast: "::", tOther: "other", tHint: "hint",
}

// lexString renders the tokens of src as "typ:text" separated by spaces;
// unterminated tokens get a trailing '!', ambiguous strings a '?'.
func lexString(src string) string {
	var parts []string
	for _, t := range lexAll([]byte(src), nil) {
		p := typNames[t.typ] + ":" + src[t.pos:t.end]
		if t.typ == tHint {
			p = fmt.Sprintf("hint:%v", Hint(t.kw))
		}
		if t.flags&tfUnterminated != 0 {
			p += "!"
		}
		if t.flags&tfAmbiguous != 0 {
			p += "?"
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, " ")
}

func TestLexer(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"SELECT a, b FROM t;", "id:SELECT id:a ,:, id:b id:FROM id:t ;:;"},
		{"  \t\n\r\f\v x", "id:x"},
		{"-- c\nx -- d", "id:x"},
		{"x/* a /* b */ c */y", "id:x id:y"},
		{"x /* never closed", "id:x hint:!"},
		{"x /* poolmgr:replica */", "id:x hint:replica"},
		{`"a""b" "" "x`, `qid:"a""b" qid:"" qid:"x!`},
		{`U&"d\0061" u&"x" U & "y"`, `qid:U&"d\0061" qid:u&"x" id:U op:& qid:"y"`},
		{`'it''s' 'a\'`, `str:'it''s' str:'a\'?`},
		{`'a\''b'`, `str:'a\''b'?`},
		{`E'a\'b' e'\\' E'x`, `str:E'a\'b' str:e'\\' str:E'x!`},
		{`B'01' x'ff' N'n' U&'\0041'`, `str:B'01' str:x'ff' str:N'n' str:U&'\0041'`},
		{`E 'x'`, `id:E str:'x'`},
		{"$$a;b$$ $t$ $$ $t$ $t$x", "str:$$a;b$$ str:$t$ $$ $t$ str:$t$x!"},
		{"$1 $23::int", "param:$1 param:$23 ::::: id:int"},
		{"a$b $ x$$", "id:a$b other:$ id:x$$"},
		{"1 1.5 .5 1e10 1.5e-3 1_000 0x1F 1..2", "num:1 num:1.5 num:.5 num:1e10 num:1.5e-3 num:1_000 num:0x1F num:1 .:. num:.2"},
		{"a+-b a+--c\n1 a*/*c*/b <= >= <> != !~~* ||/", "id:a op:+- id:b id:a op:+ num:1 id:a op:* id:b op:<= op:>= op:<> op:!= op:!~~* op:||/"},
		{"a.b[1]:c::d", "id:a .:. id:b [:[ num:1 ]:] ::: id:c ::::: id:d"},
		{"tablé ÜBER_1", "id:tablé id:ÜBER_1"},
		{"{}\\", "other:{ other:} other:\\"},
	} {
		if got := lexString(c.in); got != c.want {
			t.Errorf("%q:\n got  %s\n want %s", c.in, got, c.want)
		}
	}
}

func TestKeywords(t *testing.T) {
	for k := keyword(1); k < numKeywords; k++ {
		name := keywordInfo[k].name
		if got := lookupKeyword([]byte(name)); got != k {
			t.Errorf("%q: got %d, want %d", name, got, k)
		}
		if got := lookupKeyword([]byte(strings.ToUpper(name))); got != k {
			t.Errorf("%q upper: got %d, want %d", name, got, k)
		}
	}
	for _, w := range []string{"", "x", "selects", "selec", "users", "current_timestamps"} {
		if got := lookupKeyword([]byte(w)); got != kwNone {
			t.Errorf("%q: got keyword %d", w, got)
		}
	}
	toks := lexAll([]byte("SeLeCt"), nil)
	if len(toks) != 1 || toks[0].kw != kwSelect {
		t.Errorf("mixed case keyword not found: %+v", toks)
	}
}

func TestNames(t *testing.T) {
	var s Scanner
	for _, c := range []struct{ sql, want string }{
		{`SELECT * FROM "Mixed"."CaSe"`, "Mixed.CaSe"},
		{`SELECT * FROM MiXeD.CaSe`, "mixed.case"},
		{`SELECT * FROM "a""q"`, `a"q`},
		{`SELECT * FROM U&"\00e9t\00E9"`, "été"},
		{`SELECT * FROM U&"\+01F600"`, "😀"},
		{`SELECT * FROM U&"a\\b"`, `a\b`},
		{`SELECT * FROM U&"#0061" UESCAPE '#'`, "a"},
		{"SELECT * FROM ÉTÉ", "ÉtÉ"}, // only ASCII is folded
		{"SELECT * FROM " + strings.Repeat("é", 40), strings.Repeat("é", 31)},
	} {
		st := s.ClassifyOne([]byte(c.sql))
		if got := tableString(&st); got != c.want {
			t.Errorf("%q: got %q, want %q", c.sql, got, c.want)
		}
	}
}

func TestLargeAndDeep(t *testing.T) {
	s := NewScanner(nil)
	// A large statement works, and the scratch space is released after it.
	var b strings.Builder
	b.WriteString("INSERT INTO t VALUES ")
	for i := range 100000 {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "(%d, 'x')", i)
	}
	st := s.ClassifyOne([]byte(b.String()))
	if st.Kind != KindInsert || st.Route != RoutePrimary || tableString(&st) != "+t" {
		t.Fatalf("large insert: %v %v %q", st.Kind, st.Route, tableString(&st))
	}
	s.ClassifyOne([]byte("SELECT 1"))
	if cap(s.toks) > maxKeepTokens {
		t.Errorf("token scratch kept at %d", cap(s.toks))
	}
	// Deep nesting.
	deep := "SELECT " + strings.Repeat("(", 5000) + "1" + strings.Repeat(")", 5000) + " FROM t"
	if st := s.ClassifyOne([]byte(deep)); st.Route != RouteReplicaOK || tableString(&st) != "t" {
		t.Errorf("deep parens: %v %q", st.Route, tableString(&st))
	}
	if st := s.ClassifyOne([]byte(strings.Repeat("EXPLAIN ", 50) + "SELECT 1")); st.Route != RoutePrimary || !st.Unsure {
		t.Errorf("deep EXPLAIN: %v unsure=%v", st.Route, st.Unsure)
	}
	// Many relations and CTEs stay linear (this would take minutes if not).
	b.Reset()
	b.WriteString("WITH ")
	for i := range 20000 {
		fmt.Fprintf(&b, "c%d AS (SELECT 1), ", i)
	}
	b.WriteString("z AS (SELECT 1) SELECT * FROM z")
	for i := range 50000 {
		fmt.Fprintf(&b, ", t%d, c%d", i, i)
	}
	start := time.Now()
	st = s.ClassifyOne([]byte(b.String()))
	if d := time.Since(start); d > 5*time.Second && !raceEnabled || st.Route != RouteReplicaOK || len(st.Tables) < 50000 {
		t.Errorf("many relations: %v, %v, %d tables", d, st.Route, len(st.Tables))
	}
	unbalanced := "SELECT ))) * FROM a ((( JOIN b"
	s.ClassifyOne([]byte(unbalanced)) // must not panic
}

func TestZeroAlloc(t *testing.T) {
	s := NewScanner(nil)
	for _, q := range []string{
		"SELECT id, name FROM users WHERE id = $1",
		"INSERT INTO orders (user_id, amount) VALUES ($1, $2) RETURNING id",
		"WITH x AS (DELETE FROM Q RETURNING *) SELECT * FROM x JOIN \"Y\" ON true; BEGIN READ ONLY; COMMIT",
		"/* poolmgr:replica */ SELECT now(), myfunc(1) FROM U&\"d\\0061t\\0061\"",
	} {
		b := []byte(q)
		s.Classify(b)
		if n := testing.AllocsPerRun(100, func() { s.Classify(b) }); n != 0 {
			t.Errorf("%q: %v allocations per call", q, n)
		}
	}
}
