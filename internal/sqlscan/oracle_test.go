//go:build oracle

// The oracle test compares the classifier with PostgreSQL's own parser
// (libpg_query through pg_query_go, cgo: slow to build). Run it with
//
//	nice go test -tags oracle ./internal/sqlscan/ -run Oracle -v
//
// Corpus: testdata/oracle/*.sql, the statements of classify_test.go, the
// .sql files under /usr/share/postgresql, and every .sql file under the
// directories listed in $POOLMGR_ORACLE_SQL (colon-separated), for example
// PostgreSQL's src/test/regress/sql. psql meta-commands and COPY data are
// dropped; statements the parser rejects are skipped.
//
// It fails if the classifier calls a statement RouteReplicaOK that the
// oracle does not find read-only. Other differences (kinds, tables,
// statements sent to the primary although read-only) are reported.
package sqlscan

import (
	"bufio"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	pg "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// oracleSafeExtra are read-only functions the grammar produces for SQL
// syntax (x IS NORMALIZED, SYSTEM_USER, ...) that do not appear as calls in
// the text, so the classifier's list need not have them.
var oracleSafeExtra = map[string]bool{
	"is_normalized": true, "system_user": true, "pg_collation_for": true, "similar_to_escape": true, "xmlattributes": true,
	"btrim": true, "ltrim": true, "rtrim": true, "timezone": true, "overlaps": true, "like_escape": true,
	"xmlexists": true, "extract": true, "substring": true, "position": true, "overlay": true,
	"normalize": true, "json_scalar": true, "json_serialize": true,
}

type verdict struct {
	readOnly bool
	why      string // first reason for not read-only
	kinds    []Kind // acceptable kinds
	tables   map[string]bool
	cmpTabs  bool // compare tables for this statement
}

type oracle struct {
	v verdict
}

func (o *oracle) notRO(why string) {
	if o.v.readOnly {
		o.v.readOnly = false
		o.v.why = why
	}
}

func rangeVarName(rv *pg.RangeVar) string {
	name := truncOracle(rv.Relname)
	if rv.Schemaname != "" {
		return truncOracle(rv.Schemaname) + "." + name
	}
	return name
}

func truncOracle(s string) string { return string(truncIdent([]byte(s))) }

func (o *oracle) addTable(rv *pg.RangeVar, write bool) {
	if rv == nil {
		return
	}
	n := rangeVarName(rv)
	if w, ok := o.v.tables[n]; !ok || write && !w {
		o.v.tables[n] = write
	}
}

// walk visits every message under m with the CTE names in scope. visit
// returns false to skip a message's children.
func walk(m protoreflect.Message, scope []string, visit func(protoreflect.Message, []string) bool) {
	if !visit(m, scope) {
		return
	}
	// A statement with a WITH clause: CTE bodies see the earlier names (all
	// of them if RECURSIVE), the rest of the statement sees all.
	var with *pg.WithClause
	switch x := m.Interface().(type) {
	case *pg.SelectStmt:
		with = x.WithClause
	case *pg.InsertStmt:
		with = x.WithClause
	case *pg.UpdateStmt:
		with = x.WithClause
	case *pg.DeleteStmt:
		with = x.WithClause
	case *pg.MergeStmt:
		with = x.WithClause
	}
	inner := scope
	if with != nil {
		var names []string
		for _, c := range with.Ctes {
			names = append(names, c.GetCommonTableExpr().GetCtename())
		}
		for i, c := range with.Ctes {
			bodyScope := append(slices.Clone(scope), names[:i]...)
			if with.Recursive {
				bodyScope = append(slices.Clone(scope), names...)
			}
			walk(c.ProtoReflect(), bodyScope, visit)
		}
		inner = append(slices.Clone(scope), names...)
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if with != nil && fd.Name() == "with_clause" {
			return true
		}
		switch {
		case fd.IsList() && fd.Message() != nil:
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				walk(l.Get(i).Message(), inner, visit)
			}
		case fd.Message() != nil && !fd.IsMap():
			walk(v.Message(), inner, visit)
		}
		return true
	})
}

// query checks a query tree (any statement inside SELECT, COPY (...),
// EXPLAIN, DECLARE): data-modifying statements, SELECT INTO, locking
// clauses and calls of functions that are not known read-only.
func (o *oracle) query(n proto.Message, cfg *funcConfig) {
	walk(n.ProtoReflect(), nil, func(m protoreflect.Message, scope []string) bool {
		switch x := m.Interface().(type) {
		case *pg.InsertStmt:
			o.notRO("INSERT")
			o.addTable(x.Relation, true)
		case *pg.UpdateStmt:
			o.notRO("UPDATE")
			o.addTable(x.Relation, true)
		case *pg.DeleteStmt:
			o.notRO("DELETE")
			o.addTable(x.Relation, true)
		case *pg.MergeStmt:
			o.notRO("MERGE")
			o.addTable(x.Relation, true)
		case *pg.SelectStmt:
			if x.IntoClause != nil {
				o.notRO("SELECT INTO")
				o.addTable(x.IntoClause.Rel, true)
			}
		case *pg.LockingClause:
			o.notRO("locking clause")
			return false // the OF names are aliases
		case *pg.RangeVar:
			if x.Schemaname == "" && slices.Contains(scope, x.Relname) {
				return false // a CTE
			}
			o.addTable(x, false)
		case *pg.FuncCall:
			var parts []string
			for _, p := range x.Funcname {
				parts = append(parts, p.GetString_().GetSval())
			}
			name := parts[len(parts)-1]
			b := []byte(name)
			h := nameHash(b)
			switch {
			case cfg.write.has(b, h, true):
				o.notRO("write function " + name)
			case len(parts) == 1 || parts[0] == "pg_catalog":
				if !builtinRead.has(b, h, true) && !oracleSafeExtra[name] {
					o.notRO("unknown function " + strings.Join(parts, "."))
				}
			default:
				o.notRO("unknown function " + strings.Join(parts, "."))
			}
		}
		return true
	})
}

func explainAnalyze(opts []*pg.Node) bool {
	for _, n := range opts {
		d := n.GetDefElem()
		if d == nil || d.Defname != "analyze" {
			continue
		}
		if d.Arg == nil {
			return true
		}
		switch v := d.Arg.Node.(type) {
		case *pg.Node_Boolean:
			return v.Boolean.Boolval
		case *pg.Node_String_:
			s := strings.ToLower(v.String_.Sval)
			return !(s == "false" || s == "off" || s == "no" || s == "0")
		case *pg.Node_Integer:
			return v.Integer.Ival != 0
		}
		return true
	}
	return false
}

// judge returns the oracle's verdict on one parsed statement.
func judge(n *pg.Node, cfg *funcConfig) verdict {
	o := &oracle{v: verdict{readOnly: true, tables: map[string]bool{}}}
	o.judge(n, cfg, 0)
	return o.v
}

func (o *oracle) judge(n *pg.Node, cfg *funcConfig, depth int) {
	top := depth == 0
	kinds := func(k ...Kind) {
		if top {
			o.v.kinds = k
		}
	}
	switch x := n.Node.(type) {
	case *pg.Node_SelectStmt:
		kinds(KindSelect, KindValues, KindTable)
		o.v.cmpTabs = true
		o.query(x.SelectStmt, cfg)
	case *pg.Node_InsertStmt, *pg.Node_UpdateStmt, *pg.Node_DeleteStmt, *pg.Node_MergeStmt:
		switch n.Node.(type) {
		case *pg.Node_InsertStmt:
			kinds(KindInsert)
		case *pg.Node_UpdateStmt:
			kinds(KindUpdate)
		case *pg.Node_DeleteStmt:
			kinds(KindDelete)
		default:
			kinds(KindMerge)
		}
		o.v.cmpTabs = true
		o.query(n, cfg)
	case *pg.Node_ExplainStmt:
		kinds(KindExplain)
		if explainAnalyze(x.ExplainStmt.Options) {
			o.judge(x.ExplainStmt.Query, cfg, depth+1)
		} else {
			// nothing runs; tables still listed
			saved := o.v
			o.judge(x.ExplainStmt.Query, cfg, depth+1)
			o.v.readOnly, o.v.why = saved.readOnly, saved.why
		}
	case *pg.Node_CopyStmt:
		c := x.CopyStmt
		o.v.cmpTabs = true
		if c.IsFrom {
			kinds(KindCopyFrom)
			o.notRO("COPY FROM")
			o.addTable(c.Relation, true)
			return
		}
		kinds(KindCopyTo)
		if c.Filename != "" || c.IsProgram {
			o.notRO("COPY TO file")
		}
		if c.Query != nil {
			o.query(c.Query, cfg)
		} else {
			o.addTable(c.Relation, false)
		}
	case *pg.Node_DeclareCursorStmt:
		kinds(KindCursor)
		if x.DeclareCursorStmt.Options&0x20 != 0 { // CURSOR_OPT_HOLD
			o.notRO("WITH HOLD cursor")
		}
		o.judge(x.DeclareCursorStmt.Query, cfg, depth+1)
		o.v.cmpTabs = top
	case *pg.Node_TransactionStmt:
		switch x.TransactionStmt.Kind {
		case pg.TransactionStmtKind_TRANS_STMT_BEGIN, pg.TransactionStmtKind_TRANS_STMT_START:
			kinds(KindBegin)
		case pg.TransactionStmtKind_TRANS_STMT_COMMIT:
			kinds(KindCommit)
		case pg.TransactionStmtKind_TRANS_STMT_ROLLBACK:
			kinds(KindRollback)
		case pg.TransactionStmtKind_TRANS_STMT_SAVEPOINT, pg.TransactionStmtKind_TRANS_STMT_RELEASE,
			pg.TransactionStmtKind_TRANS_STMT_ROLLBACK_TO:
			kinds(KindSavepoint)
		default:
			kinds(KindTwoPhase)
			o.notRO("two-phase commit")
		}
	case *pg.Node_VariableShowStmt:
		kinds(KindShow)
	default:
		o.notRO(fmt.Sprintf("%T", n.Node))
		kinds(utilityKind(n))
	}
}

// utilityKind maps the remaining statement types to kinds.
func utilityKind(n *pg.Node) Kind {
	switch n.Node.(type) {
	case *pg.Node_VariableSetStmt, *pg.Node_ConstraintsSetStmt:
		return KindSet
	case *pg.Node_PrepareStmt:
		return KindPrepare
	case *pg.Node_ExecuteStmt:
		return KindExecute
	case *pg.Node_DeallocateStmt:
		return KindDeallocate
	case *pg.Node_DiscardStmt:
		return KindDiscard
	case *pg.Node_ListenStmt:
		return KindListen
	case *pg.Node_NotifyStmt:
		return KindNotify
	case *pg.Node_UnlistenStmt:
		return KindUnlisten
	case *pg.Node_CallStmt:
		return KindCall
	case *pg.Node_DoStmt:
		return KindDo
	case *pg.Node_LockStmt:
		return KindLock
	case *pg.Node_VacuumStmt:
		return KindVacuum
	case *pg.Node_FetchStmt, *pg.Node_ClosePortalStmt:
		return KindCursor
	case *pg.Node_CheckPointStmt, *pg.Node_LoadStmt:
		return KindOther
	}
	return KindDDL
}

var (
	copyFromStdin = regexp.MustCompile(`(?is)\bfrom\s+stdin\b[^;]*;\s*$`)
)

// cleanPsql drops psql meta-command lines and COPY ... FROM stdin data.
func cleanPsql(src string) string {
	var b strings.Builder
	sc := bufio.NewScanner(strings.NewReader(src))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	inData := false
	var stmt strings.Builder // text since the last line that ended a statement
	for sc.Scan() {
		line := sc.Text()
		if inData {
			if strings.HasPrefix(line, `\.`) {
				inData = false
			}
			continue
		}
		if strings.HasPrefix(strings.TrimSpace(line), `\`) {
			b.WriteByte('\n')
			continue
		}
		b.WriteString(line)
		b.WriteByte('\n')
		stmt.WriteString(line)
		stmt.WriteByte('\n')
		if strings.HasSuffix(strings.TrimSpace(line), ";") {
			if copyFromStdin.MatchString(stmt.String()) && strings.Contains(strings.ToLower(stmt.String()), "copy") {
				inData = true
			}
			stmt.Reset()
		}
	}
	return b.String()
}

type corpusFile struct {
	name string
	text string
}

func oracleCorpus(t *testing.T) []corpusFile {
	var files []corpusFile
	add := func(root string) {
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(p, ".sql") {
				return nil
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return nil
			}
			files = append(files, corpusFile{p, cleanPsql(string(b))})
			return nil
		})
	}
	add("testdata/oracle")
	var table strings.Builder
	for _, c := range cases {
		if !strings.Contains(c.sql, "unterminated") {
			table.WriteString(c.sql)
			table.WriteString(";\n")
		}
	}
	files = append(files, corpusFile{"classify_test.go cases", table.String()})
	add("/usr/share/postgresql")
	for _, d := range filepath.SplitList(os.Getenv("POOLMGR_ORACLE_SQL")) {
		if d != "" {
			add(d)
		}
	}
	return files
}

var sampleN = 8

type tally struct {
	n      int
	sample []string
}

func (t *tally) add(s string) {
	t.n++
	if len(t.sample) < sampleN {
		t.sample = append(t.sample, s)
	}
}

func short(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 160 {
		s = s[:160] + "..."
	}
	return s
}

func TestOracle(t *testing.T) {
	if n, err := strconv.Atoi(os.Getenv("POOLMGR_ORACLE_SAMPLES")); err == nil {
		sampleN = n
	}
	cfg := defaultConfig()
	s := NewScanner(nil)
	var (
		files, pieces, parseErr, checked, replicaOK, oracleRO                               int
		unsafe, consUnsure, consWrite, consPolicy, kindDiff, tabMissing, tabExtra, tabWrite tally
		splitFiles, splitDiff                                                               int
		splitSample                                                                         []string
		why                                                                                 = map[string]int{}
	)
	for _, f := range oracleCorpus(t) {
		files++
		// Splitting: when the whole file parses, the classifier must cut it
		// into the same statements.
		if res, err := pg.Parse(f.text); err == nil && len(res.Stmts) > 0 {
			splitFiles++
			got := s.Classify([]byte(f.text))
			nonEmpty := 0
			for i := range got {
				if got[i].Kind != KindEmpty {
					nonEmpty++
				}
			}
			if nonEmpty != len(res.Stmts) {
				splitDiff++
				if len(splitSample) < 5 {
					splitSample = append(splitSample, fmt.Sprintf("%s: %d statements, parser %d", f.name, nonEmpty, len(res.Stmts)))
				}
			} else {
				for i, rs := range res.Stmts {
					end := int(rs.StmtLocation + rs.StmtLen)
					if rs.StmtLen == 0 {
						end = len(f.text)
					}
					if !strings.Contains(f.text[rs.StmtLocation:end], string(got[i].Text)) {
						splitDiff++
						if len(splitSample) < 5 {
							splitSample = append(splitSample, fmt.Sprintf("%s: statement %d %q not in %q", f.name, i, short(string(got[i].Text)), short(f.text[rs.StmtLocation:end])))
						}
						break
					}
				}
			}
		}
		split, err := pg.SplitWithScanner(f.text, true)
		if err != nil {
			continue
		}
		for _, piece := range split {
			pieces++
			res, err := pg.Parse(piece)
			if err != nil || len(res.Stmts) != 1 {
				parseErr++
				continue
			}
			checked++
			v := judge(res.Stmts[0].Stmt, cfg)
			st := s.ClassifyOne([]byte(piece))
			if v.readOnly {
				oracleRO++
			} else {
				why[strings.SplitN(v.why, " ", 2)[0]]++
			}
			if st.Route == RouteReplicaOK {
				replicaOK++
				if !v.readOnly {
					unsafe.add(fmt.Sprintf("%s (oracle: %s)", short(piece), v.why))
				}
			} else if v.readOnly && len(v.kinds) > 0 && v.kinds[0] != KindShow {
				switch {
				case st.Unsure:
					consUnsure.add(short(piece))
				case st.Write:
					consWrite.add(short(piece))
				default:
					consPolicy.add(short(piece))
				}
			}
			okKind := false
			for _, k := range v.kinds {
				okKind = okKind || k == st.Kind
			}
			if !okKind {
				kindDiff.add(fmt.Sprintf("%v, oracle %v: %s", st.Kind, v.kinds, short(piece)))
			}
			if v.cmpTabs {
				got := map[string]bool{}
				for _, tr := range st.Tables {
					n := string(tr.Name)
					if tr.Schema != nil {
						n = string(tr.Schema) + "." + n
					}
					got[n] = tr.Write
				}
				for n, w := range v.tables {
					gw, ok := got[n]
					if !ok {
						tabMissing.add(fmt.Sprintf("%s missing: %s", n, short(piece)))
					} else if w && !gw {
						tabWrite.add(fmt.Sprintf("%s not marked written: %s", n, short(piece)))
					}
				}
				for n := range got {
					if _, ok := v.tables[n]; !ok {
						tabExtra.add(fmt.Sprintf("%s extra: %s", n, short(piece)))
					}
				}
			}
		}
	}
	t.Logf("files %d, pieces %d, rejected by the parser %d, statements checked %d", files, pieces, parseErr, checked)
	t.Logf("oracle read-only %d, classifier replica-ok %d", oracleRO, replicaOK)
	var ws []string
	for k, n := range why {
		ws = append(ws, fmt.Sprintf("%s=%d", k, n))
	}
	sort.Strings(ws)
	t.Logf("oracle reasons for not read-only: %s", strings.Join(ws, " "))
	t.Logf("whole-file split compared on %d files, %d differ %q", splitFiles, splitDiff, splitSample)
	report := func(name string, x tally) {
		t.Logf("%s: %d", name, x.n)
		for _, s := range x.sample {
			t.Logf("    %s", s)
		}
	}
	report("UNSAFE (replica-ok, oracle says write)", unsafe)
	t.Logf("conservative (primary, oracle says read-only): %d", consUnsure.n+consWrite.n+consPolicy.n)
	report("  unsure (unknown function, ambiguous literal ...)", consUnsure)
	report("  write (keyword taken as a write)", consWrite)
	report("  policy (plain BEGIN, EXPLAIN of a write, server-local views, locks ...)", consPolicy)
	report("kind differs", kindDiff)
	report("table missing", tabMissing)
	report("table extra", tabExtra)
	report("table write flag missing", tabWrite)
	if unsafe.n > 0 {
		t.Errorf("%d statements routed to a replica that the oracle finds not read-only", unsafe.n)
	}
	if checked < 200 {
		t.Errorf("only %d statements checked", checked)
	}
}
