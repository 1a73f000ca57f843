package proxy_test

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/poolmgr/poolmgr/internal/proxy"
)

// Parameter sync: a server last used by a client with other session
// parameters gets a SET before the next client's query; the answer to the
// SET is not forwarded.
func TestParameterSyncOnServerReuse(t *testing.T) {
	e := newEnv(t, func(o *proxy.Options) { o.PoolSize = 1 })
	a, s := e.login("application_name", "app_a")
	b, _ := e.login("application_name", "app_b")

	a.query("select 1")
	s.expect("Query(SET application_name = 'app_a';)", "Query(select 1)")
	s.reply(cc("SET"), &pgproto3.ParameterStatus{Name: "application_name", Value: "app_a"}, rfq('I'))
	a.expectNothing() // the SET's answer is swallowed
	a.expectState(proxy.ClientActive)
	s.reply(selectOne('I')...)
	a.expect(selectOneDesc('I')...)

	b.query("select 2")
	s.expect("Query(SET application_name = 'app_b';)", "Query(select 2)")
	s.reply(cc("SET"), &pgproto3.ParameterStatus{Name: "application_name", Value: "app_b"}, rfq('I'))
	b.expectNothing()
	s.reply(selectOne('I')...)
	b.expect(selectOneDesc('I')...)

	// b again: the server has its parameters, no SET.
	b.query("select 3")
	s.expect("Query(select 3)")
	s.reply(selectOne('I')...)
	b.expect(selectOneDesc('I')...)

	// A client without application_name gets it RESET.
	c, _ := e.login()
	c.query("select 4")
	s.expect("Query(RESET application_name;)", "Query(select 4)")
	s.reply(cc("RESET"), &pgproto3.ParameterStatus{Name: "application_name", Value: ""}, rfq('I'))
	c.expectNothing()
	s.reply(selectOne('I')...)
	c.expect(selectOneDesc('I')...)
	e.expectNoDial()
}

// A SET issued by the client is tracked from the backend's ParameterStatus:
// the next client with the startup value gets it back.
func TestParameterTrackedFromClientSet(t *testing.T) {
	e := newEnv(t, func(o *proxy.Options) { o.PoolSize = 1 })
	a, s := e.login()
	b, _ := e.login()
	a.query("set application_name = 'x'")
	s.expect("Query(set application_name = 'x')")
	s.reply(cc("SET"), &pgproto3.ParameterStatus{Name: "application_name", Value: "x"}, rfq('I'))
	a.expect("CommandComplete(SET)", "ParameterStatus(application_name=x)", "ReadyForQuery(I)")

	b.query("select 1")
	s.expect("Query(RESET application_name;)", "Query(select 1)")
	s.reply(cc("RESET"), &pgproto3.ParameterStatus{Name: "application_name", Value: ""}, rfq('I'))
	s.reply(selectOne('I')...)
	b.expect(selectOneDesc('I')...)

	// a comes back and gets its SET value re-applied.
	a.query("select 2")
	s.expect("Query(SET application_name = 'x';)", "Query(select 2)")
}

// The SET value is quoted safely.
func TestParameterSyncQuoting(t *testing.T) {
	e := newEnv(t, nil)
	a, s := e.login("application_name", "it's'; drop table x; --")
	a.query("select 1")
	s.expect(`Query(SET application_name = 'it''s''; drop table x; --';)`, "Query(select 1)")
}

// The injected SET fails (bad value): the error is swallowed with the rest
// of its answer and the client's query still runs.
func TestParameterSyncErrorSwallowed(t *testing.T) {
	e := newEnv(t, nil)
	a, s := e.login("timezone", "Nowhere/Land")
	a.query("select 1")
	s.expect("Query(SET timezone = 'Nowhere/Land';)", "Query(select 1)")
	s.reply(errResp("ERROR", "22023", `invalid value for parameter "TimeZone"`), rfq('I'))
	a.expectNothing()
	s.reply(selectOne('I')...)
	a.expect(selectOneDesc('I')...)
}

// query_wait_timeout: a client queued longer than the limit gets an error.
// The loop reads time.Now itself (no injectable clock), so this test sleeps.
func TestQueryWaitTimeout(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *proxy.Options) {
		o.PoolSize = 1
		o.QueryWaitTimeout = 150 * time.Millisecond
	})
	a, s := e.login()
	b, _ := e.login()
	a.query("select pg_sleep(1)")
	s.expect("Query(select pg_sleep(1))")
	b.query("select 'b'")
	b.expectState(proxy.ClientWaiting)
	e.loop.Tick()
	b.expectState(proxy.ClientWaiting) // not yet
	time.Sleep(300 * time.Millisecond)
	e.loop.Tick()
	msgs := b.recv()
	er := findError(msgs)
	if er == nil || er.Code != "08P01" {
		t.Fatalf("waiting client got %v, want the query_wait_timeout error", describeAll(msgs))
	}
	b.expectClosed()
	a.expectState(proxy.ClientActive)
	a.expectNothing()
	s.reply(selectOne('I')...)
	a.expect(selectOneDesc('I')...)
}

// client_login_timeout and idle_transaction_timeout, with real sleeps.
func TestLoginAndIdleTxTimeouts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *proxy.Options) {
		o.ClientLoginTimeout = 150 * time.Millisecond
		o.IdleTxTimeout = 150 * time.Millisecond
	})
	a, s := e.login()
	a.query("begin")
	s.expect("Query(begin)")
	s.reply(cc("BEGIN"), rfq('T'))
	a.expect("CommandComplete(BEGIN)", "ReadyForQuery(T)")
	e.loop.Tick()      // refresh the loop's clock: lastUsed is "now"
	slow := e.accept() // never sends a startup packet
	time.Sleep(300 * time.Millisecond)
	e.loop.Tick()
	slow.expectFatal("08P01")
	a.expectFatal("25P03")
	s.expect("Query(ROLLBACK)")
	s.reply(cc("ROLLBACK"), rfq('I'))
	s.expectState(proxy.ServerIdle)
}

// An idle server past server_idle_timeout is closed by Tick.
func TestServerIdleTimeout(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *proxy.Options) { o.ServerIdleTimeout = 100 * time.Millisecond })
	_, s := e.login()
	e.loop.Tick()
	s.expectState(proxy.ServerIdle)
	time.Sleep(250 * time.Millisecond)
	e.loop.Tick()
	s.expectState(proxy.ServerClosed)
	s.expect("Terminate")
}

// Shutdown: idle clients are closed, a client in a transaction finishes it.
func TestShutdown(t *testing.T) {
	e := newEnv(t, nil)
	a, s := e.login()
	b, _ := e.login()
	a.query("begin")
	s.expect("Query(begin)")
	s.reply(cc("BEGIN"), rfq('T'))
	a.expect("CommandComplete(BEGIN)", "ReadyForQuery(T)")
	e.sh.StartShutdown()
	e.loop.Tick()
	b.expectFatal("57P01")
	a.expectOpen()
	late := e.accept()
	late.send(startupMsg("alice", "app"))
	late.expectFatal("57P03")
	a.query("commit")
	s.expect("Query(commit)")
	s.reply(cc("COMMIT"), rfq('I'))
	a.expect("CommandComplete(COMMIT)", "ReadyForQuery(I)", "ErrorResponse(FATAL 57P01)")
	a.expectClosed()
	if !e.loop.Drained() {
		t.Fatal("loop not drained")
	}
}

// max_server_logins: a burst of clients needing servers opens at most that
// many server connections at once; each finished login starts the next.
func TestMaxServerLoginsBoundsStorm(t *testing.T) {
	e := newEnv(t, func(o *proxy.Options) { o.PoolSize = 10; o.MaxServerLogins = 2 })
	first, s0 := e.login()
	first.query("select 0") // holds the pool's first server
	s0.expect("Query(select 0)")
	var clients []*cli
	for i := 0; i < 6; i++ {
		c, _ := e.login()
		clients = append(clients, c)
	}
	for _, c := range clients {
		c.query("select 1")
	}
	opened := 0
	for round := 0; opened < len(clients); round++ {
		d := e.newDials()
		if len(d) == 0 || len(d) > 2 {
			t.Fatalf("round %d: %d new dials, want 1..2 (max_server_logins = 2)", round, len(d))
		}
		for _, x := range d {
			s := &srv{e: e, h: x.H, ep: x.EP.(*proxy.Server)}
			s.login() // done: serves a waiter and lets the next dial start
			s.expect("Query(select 1)")
			opened++
		}
	}
	e.expectNoDial()
}
