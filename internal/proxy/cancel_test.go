package proxy_test

import (
	"bytes"
	"io"
	"net/netip"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/poolmgr/poolmgr/internal/proxy"
)

// cancelKey returns the proxy's cancel key from a client's welcome.
func cancelKeyOf(t *testing.T, msgs []pgproto3.BackendMessage) (uint32, []byte) {
	t.Helper()
	for _, m := range msgs {
		if k, ok := m.(*pgproto3.BackendKeyData); ok {
			return k.ProcessID, k.SecretKey
		}
	}
	t.Fatalf("no BackendKeyData in %v", describeAll(msgs))
	return 0, nil
}

// loginKeyed logs a trust client in and returns it with its cancel key.
func (e *env) loginKeyed(kv ...string) (*cli, *srv, uint32, []byte) {
	e.t.Helper()
	c := e.accept()
	c.send(startupMsg("alice", "app", kv...))
	var s *srv
	if len(e.net.dials) > e.seenDials {
		s = e.expectServerDial()
		s.login()
	}
	pid, sec := cancelKeyOf(e.t.(*testing.T), c.recv())
	return c, s, pid, sec
}

// sendCancel opens a new client connection that sends a CancelRequest.
func (e *env) sendCancel(pid uint32, secret []byte) *cli {
	e.t.Helper()
	cc := e.accept()
	cc.send(&pgproto3.CancelRequest{ProcessID: pid, SecretKey: secret})
	cc.expectClosed()
	cc.expectNothing()
	return cc
}

// expectCancelDial checks that the core dialed the backend to cancel and
// sent a CancelRequest with the backend's key; it returns the dial.
func (e *env) expectCancelDial(s *srv) *dialRec {
	e.t.Helper()
	d := e.newDials()
	if len(d) != 1 {
		e.t.Fatalf("expected one cancel Dial, got %d", len(d))
	}
	if d[0].Addr != backendAddr {
		e.t.Fatalf("cancel dialed %q, want %q", d[0].Addr, backendAddr)
	}
	if _, isServer := d[0].EP.(*proxy.Server); isServer {
		e.t.Fatal("cancel dial endpoint is a *proxy.Server; want a cancel connection")
	}
	d[0].EP.OnConnected(nil)
	b := e.net.out[d[0].H]
	be := pgproto3.NewBackend(bytes.NewReader(b), io.Discard)
	m, err := be.ReceiveStartupMessage()
	if err != nil {
		e.t.Fatalf("cancel connection sent %q: %v", b, err)
	}
	cr, ok := m.(*pgproto3.CancelRequest)
	if !ok {
		e.t.Fatalf("cancel connection sent %T", m)
	}
	if cr.ProcessID != s.pid() || !bytes.Equal(cr.SecretKey, secretBytes(backendSecret)) {
		e.t.Fatalf("CancelRequest carries (%d, %x), want the backend's (%d, %x)", cr.ProcessID, cr.SecretKey, s.pid(), secretBytes(backendSecret))
	}
	if len(b) != 16 {
		e.t.Fatalf("cancel connection sent %d bytes, want exactly one 16-byte CancelRequest", len(b))
	}
	return d[0]
}

func TestCancelWhileActive(t *testing.T) {
	e := newEnv(t, func(o *proxy.Options) { o.PoolSize = 1 })
	a, s, pid, sec := e.loginKeyed()
	b, _, _, _ := e.loginKeyed()

	a.query("select pg_sleep(100)")
	s.expect("Query(select pg_sleep(100))")
	b.query("select 'b'")
	b.expectState(proxy.ClientWaiting)

	e.sendCancel(pid, sec)
	d := e.expectCancelDial(s)
	if e.net.closed[d.H] {
		t.Fatal("cancel connection closed before the backend answered")
	}

	// The query ends (canceled); the server must not go to b while the
	// cancel connection is still open: a late cancel would hit b's query.
	s.reply(errResp("ERROR", "57014", "canceling statement due to user request"), rfq('I'))
	a.expect("ErrorResponse(ERROR 57014)", "ReadyForQuery(I)")
	a.expectState(proxy.ClientIdle)
	s.expectState(proxy.ServerHeld)
	b.expectState(proxy.ClientWaiting)
	s.expectNothing()

	// The backend closes the cancel connection: the server is free.
	d.EP.OnClosed(io.EOF)
	b.expectState(proxy.ClientActive)
	s.expect("Query(select 'b')")
	e.expectNoDial()
}

// The cancel connection fails to connect: the server is freed as well.
func TestCancelDialFails(t *testing.T) {
	e := newEnv(t, func(o *proxy.Options) { o.PoolSize = 1 })
	a, s, pid, sec := e.loginKeyed()
	a.query("select pg_sleep(100)")
	s.expect("Query(select pg_sleep(100))")
	e.sendCancel(pid, sec)
	d := e.newDials()
	if len(d) != 1 {
		t.Fatalf("want a cancel dial, got %d", len(d))
	}
	d[0].EP.OnConnected(errConnRefused)
	if !e.net.closed[d[0].H] {
		t.Fatal("failed cancel connection not closed")
	}
	s.reply(selectOne('I')...)
	a.expect(selectOneDesc('I')...)
	s.expectState(proxy.ServerIdle)
}

func TestCancelWhileIdleDialsNothing(t *testing.T) {
	e := newEnv(t, nil)
	a, s, pid, sec := e.loginKeyed()
	e.sendCancel(pid, sec)
	e.expectNoDial()
	a.expectState(proxy.ClientIdle)
	s.expectState(proxy.ServerIdle)
}

func TestCancelWrongKeyDialsNothing(t *testing.T) {
	e := newEnv(t, nil)
	a, s, pid, sec := e.loginKeyed()
	a.query("select pg_sleep(100)")
	s.expect("Query(select pg_sleep(100))")

	bad := bytes.Clone(sec)
	bad[0] ^= 0xff
	e.sendCancel(pid, bad)
	e.expectNoDial()
	e.sendCancel(pid+1, sec)
	e.expectNoDial()
	// The backend's own key (a client could learn it) must not work either.
	e.sendCancel(s.pid(), secretBytes(backendSecret))
	e.expectNoDial()
	// A malformed CancelRequest (long secret, protocol 3.2 style) cancels nothing.
	e.sendCancel(pid, append(bytes.Clone(sec), 1, 2, 3, 4))
	e.expectNoDial()
	a.expectState(proxy.ClientActive)
}

// A client's key stops working once it disconnected.
func TestCancelAfterClientLeft(t *testing.T) {
	e := newEnv(t, nil)
	a, _, pid, sec := e.loginKeyed()
	a.send(&pgproto3.Terminate{})
	e.sendCancel(pid, sec)
	e.expectNoDial()
}

// A CancelRequest arriving on another loop is posted to the client's loop.
func TestCancelAcrossLoops(t *testing.T) {
	e := newEnv(t, nil)
	a, s, pid, sec := e.loginKeyed()
	a.query("select pg_sleep(100)")
	s.expect("Query(select pg_sleep(100))")

	l2 := proxy.NewLoop(e.sh, 1)
	n2 := newFakeNet()
	n2.next = 10000
	l2.Bind(n2, n2)
	h := n2.newHandle()
	ep := l2.Accept(h, netip.MustParseAddrPort("192.0.2.8:1234"))
	ep.OnData(enc(t, &pgproto3.CancelRequest{ProcessID: pid, SecretKey: sec}))
	if !n2.closed[h] {
		t.Fatal("cancel client on loop 2 not closed")
	}
	if len(n2.dials) != 0 {
		t.Fatal("loop 2 dialed the cancel itself; it must post it to the client's loop")
	}
	if e.net.posts != 1 {
		t.Fatalf("posts to loop 1: %d, want 1", e.net.posts)
	}
	e.expectCancelDial(s)
}
