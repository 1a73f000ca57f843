package proxy_test

import (
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/poolmgr/poolmgr/internal/proxy"
)

// Named prepared statements in transaction mode: the client's names map to
// server-side statements; the client sees exactly what PostgreSQL would
// send in a private session.

// parseName returns the statement name of the single Parse in msgs.
func parseName(t *testing.T, msgs []pgproto3.FrontendMessage) string {
	t.Helper()
	for _, m := range msgs {
		if p, ok := m.(*pgproto3.Parse); ok {
			return p.Name
		}
	}
	t.Fatalf("no Parse in %v", describeAll(msgs))
	return ""
}

func TestPreparedStatementAcrossServers(t *testing.T) {
	e := newEnv(t, func(o *proxy.Options) { o.PoolSize = 2 })
	a, s1 := e.login()
	b, _ := e.login()

	a.send(&pgproto3.Parse{Name: "st", Query: "select 42"}, &pgproto3.Sync{})
	name := parseName(t, s1.expect("*", "Sync"))
	if name == "" || name == "st" {
		t.Logf("server-side name %q", name)
	}
	s1.reply(&pgproto3.ParseComplete{}, rfq('I'))
	a.expect("ParseComplete", "ReadyForQuery(I)")

	// b keeps s1 busy; a's Bind goes to a new server where "st" must be
	// prepared first (the injected Parse's ParseComplete is swallowed).
	b.send(&pgproto3.Query{String: "select pg_sleep(1)"})
	s1.expect("Query(select pg_sleep(1))")
	a.send(&pgproto3.Bind{PreparedStatement: "st"}, &pgproto3.Execute{}, &pgproto3.Sync{})
	s2 := e.expectServerDial()
	s2.login()
	got := s2.expect("*", "*", "Execute()", "Sync")
	n2 := parseName(t, got)
	if bd, ok := got[1].(*pgproto3.Bind); !ok || bd.PreparedStatement != n2 {
		t.Fatalf("server 2 got %v: Bind must use the injected statement %q", describeAll(got), n2)
	}
	if p := got[0].(*pgproto3.Parse); p.Query != "select 42" {
		t.Fatalf("injected Parse %q", p.Query)
	}
	s2.reply(&pgproto3.ParseComplete{}, &pgproto3.BindComplete{}, &pgproto3.DataRow{Values: [][]byte{[]byte("42")}}, cc("SELECT 1"), rfq('I'))
	a.expect("BindComplete", "DataRow(42)", "CommandComplete(SELECT 1)", "ReadyForQuery(I)")
	a.expectState(proxy.ClientIdle)
}

// Two clients preparing the same query share the server-side statement; the
// second Parse is answered by the proxy, in order.
func TestPreparedStatementShared(t *testing.T) {
	e := newEnv(t, func(o *proxy.Options) { o.PoolSize = 1 })
	a, s := e.login()
	b, _ := e.login()
	a.send(&pgproto3.Parse{Name: "a1", Query: "select 1"}, &pgproto3.Sync{})
	s.expect("*", "Sync")
	s.reply(&pgproto3.ParseComplete{}, rfq('I'))
	a.expect("ParseComplete", "ReadyForQuery(I)")

	// b: unnamed extended query, then a Parse of the shared statement, Sync.
	b.send(&pgproto3.Parse{Query: "select 2"}, &pgproto3.Bind{}, &pgproto3.Execute{},
		&pgproto3.Parse{Name: "b1", Query: "select 1"}, &pgproto3.Sync{})
	s.expect("Parse(:select 2)", "Bind(:)", "Execute()", "Sync")
	s.reply(&pgproto3.ParseComplete{}, &pgproto3.BindComplete{}, &pgproto3.DataRow{Values: [][]byte{[]byte("2")}}, cc("SELECT 1"), rfq('I'))
	b.expect("ParseComplete", "BindComplete", "DataRow(2)", "CommandComplete(SELECT 1)", "ParseComplete", "ReadyForQuery(I)")
	b.expectState(proxy.ClientIdle)
}

// Close of a named statement is answered by the proxy (CloseComplete in
// order); the server keeps its statement for other clients.
func TestPreparedStatementClose(t *testing.T) {
	e := newEnv(t, nil)
	a, s := e.login()
	a.send(&pgproto3.Parse{Name: "st", Query: "select 1"}, &pgproto3.Sync{})
	s.expect("*", "Sync")
	s.reply(&pgproto3.ParseComplete{}, rfq('I'))
	a.expect("ParseComplete", "ReadyForQuery(I)")
	a.send(&pgproto3.Close{ObjectType: 'S', Name: "st"}, &pgproto3.Sync{})
	s.expect("Sync")
	s.reply(rfq('I'))
	a.expect("CloseComplete", "ReadyForQuery(I)")
	a.expectState(proxy.ClientIdle)
	// The name is gone for the client: the proxy makes the server fail the
	// pipeline (a Describe of a name that cannot exist) and answers with
	// PostgreSQL's own error for the client's name.
	a.send(&pgproto3.Bind{PreparedStatement: "st"}, &pgproto3.Sync{})
	s.expect("*", "Sync")
	s.reply(&pgproto3.ErrorResponse{Severity: "ERROR", Code: "26000", Message: "prepared statement \"x\" does not exist"}, rfq('I'))
	a.expect("ErrorResponse(ERROR 26000)", "ReadyForQuery(I)")
}

// DEALLOCATE of a known name and DEALLOCATE ALL are answered by the proxy.
func TestDeallocate(t *testing.T) {
	e := newEnv(t, nil)
	a, s := e.login()
	a.send(&pgproto3.Parse{Name: "st", Query: "select 1"}, &pgproto3.Sync{})
	s.expect("*", "Sync")
	s.reply(&pgproto3.ParseComplete{}, rfq('I'))
	a.expect("ParseComplete", "ReadyForQuery(I)")
	a.query("begin")
	s.expect("Query(begin)")
	s.reply(cc("BEGIN"), rfq('T'))
	a.expect("CommandComplete(BEGIN)", "ReadyForQuery(T)")
	a.query("deallocate st")
	s.expectNothing()
	a.expect("CommandComplete(DEALLOCATE)", "ReadyForQuery(T)")
	a.query(`DEALLOCATE "unknown"`)
	s.expect(`Query(DEALLOCATE "unknown")`)
	s.reply(errResp("ERROR", "26000", `prepared statement "unknown" does not exist`), rfq('E'))
	a.expect("ErrorResponse(ERROR 26000)", "ReadyForQuery(E)")
}

// A failing Parse: the error and everything up to Sync as PostgreSQL does.
func TestPreparedStatementParseError(t *testing.T) {
	e := newEnv(t, nil)
	a, s := e.login()
	a.send(&pgproto3.Parse{Name: "bad", Query: "selec 1"}, &pgproto3.Bind{PreparedStatement: "bad"}, &pgproto3.Execute{}, &pgproto3.Sync{})
	s.expect("*", "*", "Execute()", "Sync")
	s.reply(errResp("ERROR", "42601", `syntax error at or near "selec"`), rfq('I'))
	a.expect("ErrorResponse(ERROR 42601)", "ReadyForQuery(I)")
	a.expectState(proxy.ClientIdle)
	s.expectState(proxy.ServerIdle)
	// Re-Parse with a correct query under the same name works.
	a.send(&pgproto3.Parse{Name: "bad", Query: "select 1"}, &pgproto3.Sync{})
	got := s.expect("*", "Sync")
	if p := got[0].(*pgproto3.Parse); p.Query != "select 1" {
		t.Fatalf("Parse %q", p.Query)
	}
	s.reply(&pgproto3.ParseComplete{}, rfq('I'))
	a.expect("ParseComplete", "ReadyForQuery(I)")
}

// Session mode forwards prepared statements untouched.
func TestPreparedStatementSessionMode(t *testing.T) {
	e := newEnv(t, func(o *proxy.Options) { o.PoolMode = proxy.ModeSession })
	a, s := e.login()
	a.send(&pgproto3.Parse{Name: "st", Query: "select 1"}, &pgproto3.Bind{PreparedStatement: "st"}, &pgproto3.Execute{}, &pgproto3.Sync{})
	s.expect("Parse(st:select 1)", "Bind(:st)", "Execute()", "Sync")
}
