package proxy_test

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/poolmgr/poolmgr/internal/proxy"
)

// The first login: the core dials a server to learn the parameters, the
// backend answers, and the client is welcomed with the backend's parameters
// and the proxy's own cancel key.
func TestLoginTrustLearnsParameters(t *testing.T) {
	e := newEnv(t, nil)
	c := e.accept()
	c.send(startupMsg("alice", "app", "application_name", "psql"))

	// Nothing for the client until the pool knows the server parameters.
	c.expectNothing()
	c.expectState(proxy.ClientWelcome)
	s := e.expectServerDial()
	s.expectState(proxy.ServerConnecting)

	sm := s.startup()
	if sm.ProtocolVersion != pgproto3.ProtocolVersion30 {
		t.Fatalf("server startup protocol %d", sm.ProtocolVersion)
	}
	if sm.Parameters["user"] != "alice" || sm.Parameters["database"] != "app" {
		t.Fatalf("server startup parameters %v", sm.Parameters)
	}
	s.expectState(proxy.ServerLogin)
	c.expectNothing()

	s.reply(loginMsgs(backendPID, backendSecret)...)

	want := []string{"AuthenticationOk"}
	for _, kv := range backendParams {
		v := kv[1]
		if kv[0] == "application_name" {
			v = "psql" // the client's own value
		}
		want = append(want, "ParameterStatus("+kv[0]+"="+v+")")
	}
	want = append(want, "*", "ReadyForQuery(I)")
	msgs := c.expect(want...)
	kd, ok := msgs[len(msgs)-2].(*pgproto3.BackendKeyData)
	if !ok {
		t.Fatalf("got %T before ReadyForQuery, want BackendKeyData", msgs[len(msgs)-2])
	}
	if kd.ProcessID == backendPID || bytes.Equal(kd.SecretKey, secretBytes(backendSecret)) {
		t.Fatalf("client got the backend's cancel key (%d, %x); want the proxy's own", kd.ProcessID, kd.SecretKey)
	}
	if kd.ProcessID == 0 || len(kd.SecretKey) != 4 {
		t.Fatalf("bad proxy cancel key %d %x", kd.ProcessID, kd.SecretKey)
	}

	// The idle client holds no server; the server is idle in the pool.
	c.expectState(proxy.ClientIdle)
	s.expectState(proxy.ServerIdle)
	s.expectNothing()
	if n := e.loop.Clients(); n != 1 {
		t.Fatalf("loop clients %d", n)
	}

	// A second client is welcomed at once, without a new server.
	c2 := e.accept()
	c2.send(startupMsg("alice", "app"))
	e.expectNoDial()
	msgs2 := c2.recv()
	if d := describeAll(msgs2); d[0] != "AuthenticationOk" || d[len(d)-1] != "ReadyForQuery(I)" {
		t.Fatalf("second client got %v", d)
	}
	if kd2 := msgs2[len(msgs2)-2].(*pgproto3.BackendKeyData); kd2.ProcessID == kd.ProcessID {
		t.Fatalf("two clients got the same cancel pid %d", kd.ProcessID)
	}
	// Without its own application_name the client sees the backend's value.
	for _, m := range msgs2 {
		if ps, ok := m.(*pgproto3.ParameterStatus); ok && ps.Name == "application_name" && ps.Value != "" {
			t.Fatalf("second client got application_name=%q", ps.Value)
		}
	}
}

// A simple query is forwarded byte for byte, the response is relayed, and
// the server goes back to the pool at ReadyForQuery 'I'.
func TestQueryForwardedAndReleased(t *testing.T) {
	e := newEnv(t, nil)
	c, s := e.login()

	q := enc(t, &pgproto3.Query{String: "select 1"})
	c.sendRaw(q)
	e.expectNoDial()
	c.expectState(proxy.ClientActive)
	s.expectState(proxy.ServerActive)
	if got := s.recvRaw(); !bytes.Equal(got, q) {
		t.Fatalf("server got %q, want %q", got, q)
	}

	resp := enc(t, selectOne('I')...)
	s.replyRaw(resp)
	if got := c.recvRaw(); !bytes.Equal(got, resp) {
		t.Fatalf("client got %q, want %q", got, resp)
	}
	c.expectState(proxy.ClientIdle)
	s.expectState(proxy.ServerIdle)

	// Again: the same server serves the next query.
	c.query("select 2")
	s.expect("Query(select 2)")
	s.reply(selectOne('I')...)
	c.expect(selectOneDesc('I')...)
	c.expectState(proxy.ClientIdle)
	e.expectNoDial()
}

// Transaction mode: the server stays with the client while the backend
// reports a transaction ('T' or 'E'), and is released at 'I'.
func TestTransactionModeReleaseOnlyWhenIdle(t *testing.T) {
	e := newEnv(t, nil)
	c, s := e.login()

	c.query("begin")
	s.expect("Query(begin)")
	s.reply(cc("BEGIN"), rfq('T'))
	c.expect("CommandComplete(BEGIN)", "ReadyForQuery(T)")
	c.expectState(proxy.ClientActive)
	s.expectState(proxy.ServerActive)

	c.query("select x")
	s.expect("Query(select x)")
	s.reply(errResp("ERROR", "42703", "column x does not exist"), rfq('E'))
	c.expect("ErrorResponse(ERROR 42703)", "ReadyForQuery(E)")
	c.expectState(proxy.ClientActive)

	c.query("rollback")
	s.expect("Query(rollback)")
	s.reply(cc("ROLLBACK"), rfq('I'))
	c.expect("CommandComplete(ROLLBACK)", "ReadyForQuery(I)")
	c.expectState(proxy.ClientIdle)
	s.expectState(proxy.ServerIdle)
}

// Two queries pipelined in one packet: released only after the second
// ReadyForQuery.
func TestPipelinedQueries(t *testing.T) {
	e := newEnv(t, nil)
	c, s := e.login()
	c.send(&pgproto3.Query{String: "select 1"}, &pgproto3.Query{String: "select 2"})
	s.expect("Query(select 1)", "Query(select 2)")
	s.reply(selectOne('I')...)
	c.expect(selectOneDesc('I')...)
	c.expectState(proxy.ClientActive) // second query still outstanding
	s.expectState(proxy.ServerActive)
	s.reply(selectOne('I')...)
	c.expect(selectOneDesc('I')...)
	c.expectState(proxy.ClientIdle)
	s.expectState(proxy.ServerIdle)
}

// Extended protocol: held while messages after the last Sync are open,
// released after the Sync's ReadyForQuery.
func TestExtendedProtocol(t *testing.T) {
	e := newEnv(t, nil)
	c, s := e.login()

	// Unnamed statement: forwarded byte for byte.
	req := enc(t, &pgproto3.Parse{Query: "select $1::int"},
		&pgproto3.Bind{Parameters: [][]byte{[]byte("7")}},
		&pgproto3.Describe{ObjectType: 'P'},
		&pgproto3.Execute{},
		&pgproto3.Sync{})
	c.sendRaw(req)
	if got := s.recvRaw(); !bytes.Equal(got, req) {
		t.Fatalf("server got %s, want the client's bytes %s", describeAll(decodeFrontend(t, got)), describeAll(decodeFrontend(t, req)))
	}
	s.reply(&pgproto3.ParseComplete{}, &pgproto3.BindComplete{},
		&pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte("int4"), DataTypeOID: 23, DataTypeSize: 4, TypeModifier: -1}}},
		&pgproto3.DataRow{Values: [][]byte{[]byte("7")}}, cc("SELECT 1"), rfq('I'))
	c.expect("ParseComplete", "BindComplete", "RowDescription(int4)", "DataRow(7)", "CommandComplete(SELECT 1)", "ReadyForQuery(I)")
	c.expectState(proxy.ClientIdle)

	// Parse + Flush without Sync: the server must stay linked even when
	// the backend has answered everything so far.
	c.send(&pgproto3.Parse{Query: "select 2"}, &pgproto3.Flush{})
	s.expect("Parse(:select 2)", "Flush")
	s.reply(&pgproto3.ParseComplete{})
	c.expect("ParseComplete")
	c.expectState(proxy.ClientActive)
	c.send(&pgproto3.Sync{})
	s.expect("Sync")
	s.reply(rfq('I'))
	c.expect("ReadyForQuery(I)")
	c.expectState(proxy.ClientIdle)
}

// Pool size 1: the second and third clients wait and are served in order.
func TestPoolSizeOneFIFO(t *testing.T) {
	e := newEnv(t, func(o *proxy.Options) { o.PoolSize = 1 })
	a, s := e.login()
	b, _ := e.login()
	c, _ := e.login()

	a.query("select 'a'")
	s.expect("Query(select 'a')")
	b.query("select 'b'")
	c.query("select 'c'")
	e.expectNoDial() // pool full
	b.expectState(proxy.ClientWaiting)
	c.expectState(proxy.ClientWaiting)
	s.expectNothing()

	s.reply(selectOne('I')...)
	a.expect(selectOneDesc('I')...)
	a.expectState(proxy.ClientIdle)
	b.expectState(proxy.ClientActive)
	c.expectState(proxy.ClientWaiting)
	s.expect("Query(select 'b')")

	// a queues behind c now.
	a.query("select 'a2'")
	a.expectState(proxy.ClientWaiting)

	s.reply(selectOne('I')...)
	b.expect(selectOneDesc('I')...)
	c.expectState(proxy.ClientActive)
	s.expect("Query(select 'c')")

	s.reply(selectOne('I')...)
	c.expect(selectOneDesc('I')...)
	a.expectState(proxy.ClientActive)
	s.expect("Query(select 'a2')")
	s.reply(selectOne('I')...)
	a.expect(selectOneDesc('I')...)
	s.expectState(proxy.ServerIdle)
	for _, x := range []*cli{a, b, c} {
		x.expectState(proxy.ClientIdle)
		x.expectNothing()
	}
}

// A waiting client that disconnects leaves the queue; the next one is served.
func TestWaitingClientDisconnects(t *testing.T) {
	e := newEnv(t, func(o *proxy.Options) { o.PoolSize = 1 })
	a, s := e.login()
	b, _ := e.login()
	c, _ := e.login()
	a.query("select 'a'")
	b.query("select 'b'")
	c.query("select 'c'")
	s.expect("Query(select 'a')")
	b.peerClose()
	b.expectClosed()
	s.reply(selectOne('I')...)
	a.expect(selectOneDesc('I')...)
	c.expectState(proxy.ClientActive)
	s.expect("Query(select 'c')")
}

// A second server is dialed when the first is busy and the pool allows it.
func TestPoolGrowsWhenBusy(t *testing.T) {
	e := newEnv(t, func(o *proxy.Options) { o.PoolSize = 2 })
	a, s1 := e.login()
	b, _ := e.login()
	a.query("select 'a'")
	s1.expect("Query(select 'a')")
	b.query("select 'b'")
	b.expectState(proxy.ClientWaiting)
	s2 := e.expectServerDial()
	s2.login()
	b.expectState(proxy.ClientActive)
	s2.expect("Query(select 'b')")
	s2.reply(selectOne('I')...)
	b.expect(selectOneDesc('I')...)
	s1.reply(selectOne('I')...)
	a.expect(selectOneDesc('I')...)

	// A third concurrent request with both servers idle dials nothing.
	c, _ := e.login()
	c.query("select 'c'")
	e.expectNoDial()
	c.expectState(proxy.ClientActive)
}

// Session mode: the server stays with the client across transactions; when
// the client leaves, the reset query runs and its answer is swallowed.
func TestSessionModeResetOnExit(t *testing.T) {
	e := newEnv(t, func(o *proxy.Options) {
		o.PoolMode = proxy.ModeSession
		o.PoolSize = 1
		o.ResetQuery = "DISCARD ALL"
	})
	a, s := e.login()
	b, _ := e.login()
	a.query("select 1")
	s.expect("Query(select 1)")
	s.reply(selectOne('I')...)
	a.expect(selectOneDesc('I')...)
	a.expectState(proxy.ClientActive) // session mode: kept
	s.expectState(proxy.ServerActive)

	b.query("select 'b'")
	b.expectState(proxy.ClientWaiting)
	s.expectNothing()

	a.send(&pgproto3.Terminate{})
	a.expectClosed()
	a.expectNothing()
	s.expect("Query(DISCARD ALL)")
	s.expectState(proxy.ServerResetting)
	b.expectState(proxy.ClientWaiting)

	s.reply(cc("DISCARD ALL"), rfq('I'))
	b.expectState(proxy.ClientActive)
	b.expectNothing() // DISCARD ALL's answer is not b's
	s.expect("Query(select 'b')")
	s.reply(selectOne('I')...)
	b.expect(selectOneDesc('I')...)
	e.expectNoDial()
}

// Statement mode refuses a transaction block.
func TestStatementModeRefusesTransaction(t *testing.T) {
	e := newEnv(t, func(o *proxy.Options) { o.PoolMode = proxy.ModeStatement; o.PoolSize = 1 })
	a, s := e.login()
	a.query("select 1")
	s.expect("Query(select 1)")
	s.reply(selectOne('I')...)
	a.expect(selectOneDesc('I')...)
	a.expectState(proxy.ClientIdle)

	a.query("begin")
	s.expect("Query(begin)")
	s.reply(cc("BEGIN"), rfq('T'))
	msgs := a.recv()
	if err := findError(msgs); err == nil || err.Code != "0A000" || err.Severity != "FATAL" {
		t.Fatalf("statement mode: client got %v, want a FATAL 0A000", describeAll(msgs))
	}
	a.expectClosed()
	// The server is rolled back and reused.
	s.expect("Query(ROLLBACK)")
	s.reply(cc("ROLLBACK"), rfq('I'))
	s.expectState(proxy.ServerIdle)
	b, _ := e.login()
	b.query("select 2")
	s.expect("Query(select 2)")
	e.expectNoDial()
}

// A client that terminates inside a transaction: ROLLBACK on its server,
// the answer swallowed, the server reused by the next client.
func TestTerminateMidTransactionRollsBack(t *testing.T) {
	e := newEnv(t, func(o *proxy.Options) { o.PoolSize = 1 })
	a, s := e.login()
	b, _ := e.login()
	a.query("begin")
	s.expect("Query(begin)")
	s.reply(cc("BEGIN"), rfq('T'))
	a.expect("CommandComplete(BEGIN)", "ReadyForQuery(T)")

	b.query("select 'b'")
	b.expectState(proxy.ClientWaiting)

	a.send(&pgproto3.Terminate{})
	a.expectClosed()
	s.expect("Query(ROLLBACK)") // no Terminate forwarded
	s.expectState(proxy.ServerResetting)
	if s.closed() {
		t.Fatal("server closed; want it rolled back and kept")
	}
	s.reply(cc("ROLLBACK"), rfq('I'))
	a.expectNothing()
	b.expectNothing()
	b.expectState(proxy.ClientActive)
	s.expect("Query(select 'b')")
	s.reply(selectOne('I')...)
	b.expect(selectOneDesc('I')...)
	e.expectNoDial()
}

// A client that disconnects while its query runs: the server finishes the
// query (its answer dropped; its writes, if any, count for the cache), then
// returns to the pool like after a reset.
func TestDisconnectWithQueryInFlightDrainsServer(t *testing.T) {
	e := newEnv(t, nil)
	a, s := e.login()
	a.query("select pg_sleep(10)")
	s.expect("Query(select pg_sleep(10))")
	a.peerClose()
	a.expectState(proxy.ClientClosed)
	s.expectState(proxy.ServerResetting)
	s.reply(selectOne('I')...)
	s.expectState(proxy.ServerIdle)
	if e.loop.Clients() != 0 {
		t.Fatalf("loop still counts %d clients", e.loop.Clients())
	}
}

// An idle client's Terminate closes it without touching any server.
func TestIdleTerminate(t *testing.T) {
	e := newEnv(t, nil)
	a, s := e.login()
	a.send(&pgproto3.Terminate{})
	a.expectClosed()
	a.expectNothing()
	s.expectNothing()
	s.expectState(proxy.ServerIdle)
	if e.loop.Clients() != 0 || e.sh.Clients() != 0 {
		t.Fatalf("clients: loop %d shared %d", e.loop.Clients(), e.sh.Clients())
	}
}

func badStartup(code uint32, body []byte, length int) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(length))
	b = binary.BigEndian.AppendUint32(b, code)
	return append(b, body...)
}

// Malformed startup packets are refused with a FATAL and a close.
func TestMalformedStartup(t *testing.T) {
	params := []byte("user\x00alice\x00database\x00app\x00\x00")
	cases := []struct {
		name string
		pkt  []byte
		code string
	}{
		{"length 3", []byte{0, 0, 0, 3}, "08P01"},
		{"length 7", []byte{0, 0, 0, 7, 0, 3, 0, 0}, "08P01"},
		{"length 20000", badStartup(pgproto3.ProtocolVersion30, params, 20000), "08P01"},
		{"negative length", []byte{0xff, 0xff, 0xff, 0xf0, 0, 3, 0, 0}, "08P01"},
		{"missing terminator", badStartup(pgproto3.ProtocolVersion30, []byte("user\x00alice\x00"), 8+len("user\x00alice\x00")), "08P01"},
		{"key without value", badStartup(pgproto3.ProtocolVersion30, []byte("user\x00alice\x00db\x00"), 8+len("user\x00alice\x00db\x00")), "08P01"},
		{"empty body", badStartup(pgproto3.ProtocolVersion30, nil, 8), "08P01"},
		// PostgreSQL answers an unsupported protocol with 0A000 (feature not supported).
		{"protocol 2.0", badStartup(2<<16, params, 8+len(params)), "0A000"},
		{"protocol 4.0", badStartup(4<<16, params, 8+len(params)), "0A000"},
		{"no user", badStartup(pgproto3.ProtocolVersion30, []byte("database\x00app\x00\x00"), 8+len("database\x00app\x00\x00")), "28000"},
		{"replication", badStartup(pgproto3.ProtocolVersion30, []byte("user\x00a\x00replication\x00true\x00\x00"), 8+len("user\x00a\x00replication\x00true\x00\x00")), "0A000"},
		{"bad option", badStartup(pgproto3.ProtocolVersion30, []byte("user\x00a\x00options\x00-x\x00\x00"), 8+len("user\x00a\x00options\x00-x\x00\x00")), "0A000"},
		{"bad param name", badStartup(pgproto3.ProtocolVersion30, []byte("user\x00a\x00bad;name\x00v\x00\x00"), 8+len("user\x00a\x00bad;name\x00v\x00\x00")), "0A000"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			c := e.accept()
			c.sendRaw(tc.pkt)
			c.expectFatal(tc.code)
			e.expectNoDial()
			if e.loop.Clients() != 0 {
				t.Fatalf("loop clients %d after refusal", e.loop.Clients())
			}
		})
	}
}

// "Protocol 1234.5678" is the CancelRequest code: with a body that is not
// 8 bytes it is a malformed cancel request. PostgreSQL closes without a
// reply (COMMERROR); so does the core. It must not dial or crash.
func TestStartupCode12345678(t *testing.T) {
	for _, body := range [][]byte{
		[]byte("user\x00alice\x00\x00"),
		nil,
		{1, 2, 3},
	} {
		e := newEnv(t, nil)
		c := e.accept()
		c.sendRaw(badStartup(1234<<16|5678, body, 8+len(body)))
		c.expectClosed()
		c.expectNothing()
		e.expectNoDial()
	}
}

// SSLRequest and GSSENCRequest get 'N'; the startup that follows works,
// also when it arrives in the same packet.
func TestSSLAndGSSRequestsRefused(t *testing.T) {
	for _, code := range []uint32{80877103, 80877104} {
		e := newEnv(t, nil)
		c := e.accept()
		req := badStartup(code, nil, 8)
		c.sendRaw(req)
		if got := c.recvRaw(); !bytes.Equal(got, []byte{'N'}) {
			t.Fatalf("code %d: got %q, want N", code, got)
		}
		c.expectOpen()
		c.expectState(proxy.ClientStartup)
		c.send(startupMsg("alice", "app"))
		s := e.expectServerDial()
		s.login()
		c.expect("AuthenticationOk", "...")
		c.expectState(proxy.ClientIdle)

		// SSLRequest then GSSENCRequest then startup in one packet.
		c2 := e.accept()
		b := append(badStartup(80877103, nil, 8), badStartup(80877104, nil, 8)...)
		b = append(b, enc(t, startupMsg("alice", "app"))...)
		c2.sendRaw(b)
		raw := c2.recvRaw()
		if !bytes.HasPrefix(raw, []byte("NN")) {
			t.Fatalf("got %q, want two N then the welcome", trunc(raw))
		}
		if d := describeAll(decodeBackend(t, raw[2:])); d[0] != "AuthenticationOk" || d[len(d)-1] != "ReadyForQuery(I)" {
			t.Fatalf("welcome after SSL+GSS: %v", d)
		}
	}
}

// Protocol 3.2 and _pq_ options get NegotiateProtocolVersion, then login.
func TestNegotiateProtocolVersion(t *testing.T) {
	e := newEnv(t, nil)
	c := e.accept()
	sm := &pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion32,
		Parameters: map[string]string{"user": "alice", "database": "app", "_pq_.foo": "bar"}}
	c.send(sm)
	s := e.expectServerDial()
	s.login()
	msgs := c.expect("NegotiateProtocolVersion(3.0,_pq_.foo)", "AuthenticationOk", "...")
	_ = msgs
	c.expectState(proxy.ClientIdle)
}

// An unknown frontend message type is a protocol violation.
func TestUnknownMessageType(t *testing.T) {
	e := newEnv(t, nil)
	c, s := e.login()
	c.sendRaw([]byte{'z', 0, 0, 0, 4})
	er := c.expectFatal("08P01")
	if !strings.Contains(er.Message, `"z"`) {
		t.Fatalf("message %q does not name the type", er.Message)
	}
	s.expectNothing() // not forwarded
}

// The same while linked (inside a transaction).
func TestUnknownMessageTypeWhileActive(t *testing.T) {
	e := newEnv(t, nil)
	c, s := e.login()
	c.query("begin")
	s.expect("Query(begin)")
	s.reply(cc("BEGIN"), rfq('T'))
	c.expect("CommandComplete(BEGIN)", "ReadyForQuery(T)")
	c.sendRaw([]byte{0x01, 0, 0, 0, 4})
	c.expectFatal("08P01")
	s.expect("Query(ROLLBACK)")
}

// A message length below 4 from a logged-in client is a protocol violation.
func TestBadMessageLength(t *testing.T) {
	e := newEnv(t, nil)
	c, s := e.login()
	c.sendRaw([]byte{'Q', 0, 0, 0, 3})
	c.expectFatal("08P01")
	s.expectNothing()
}

func TestMaxClients(t *testing.T) {
	e := newEnv(t, func(o *proxy.Options) { o.MaxClients = 2 })
	e.login()
	e.login()
	c := e.accept()
	c.send(startupMsg("alice", "app"))
	c.expectFatal("53300")
	// A slot frees up when a client leaves.
	if e.sh.Clients() != 2 {
		t.Fatalf("shared clients %d, want 2", e.sh.Clients())
	}
}

// A FATAL from the backend while a client is linked reaches the client,
// which is closed with it; the server is closed.
func TestBackendFatalWhileActive(t *testing.T) {
	e := newEnv(t, nil)
	c, s := e.login()
	c.query("select 1")
	s.expect("Query(select 1)")
	s.reply(&pgproto3.NoticeResponse{Severity: "NOTICE", SeverityUnlocalized: "NOTICE", Code: "00000", Message: "hi"},
		errResp("FATAL", "57P01", "terminating connection due to administrator command"))
	c.expect("NoticeResponse(NOTICE 00000)", "ErrorResponse(FATAL 57P01)")
	c.expectClosed()
	if !s.closed() {
		t.Fatal("server not closed after its FATAL")
	}
	s.expectState(proxy.ServerClosed)
	// The next client gets a fresh server.
	c2, _ := e.login()
	c2.query("select 2")
	s2 := e.expectServerDial()
	s2.login()
	s2.expect("Query(select 2)")
}

// A backend ERROR (not FATAL) is just forwarded.
func TestBackendErrorForwarded(t *testing.T) {
	e := newEnv(t, nil)
	c, s := e.login()
	c.query("select nope")
	s.expect("Query(select nope)")
	s.reply(errResp("ERROR", "42703", "column nope does not exist"), rfq('I'))
	c.expect("ErrorResponse(ERROR 42703)", "ReadyForQuery(I)")
	c.expectState(proxy.ClientIdle)
	s.expectState(proxy.ServerIdle)
}

// The backend connection breaks while a client is linked: 08006 FATAL.
func TestServerClosedWhileActive(t *testing.T) {
	e := newEnv(t, nil)
	c, s := e.login()
	c.query("select 1")
	s.expect("Query(select 1)")
	s.reply(&pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte("a"), DataTypeOID: 23, DataTypeSize: 4, TypeModifier: -1}}})
	s.peerClose()
	c.expect("RowDescription(a)", "ErrorResponse(FATAL 08006)")
	c.expectClosed()
	s.expectState(proxy.ServerClosed)
}

// An idle server that the backend closes is dropped; the next client gets
// a new one.
func TestIdleServerClosedByBackend(t *testing.T) {
	e := newEnv(t, nil)
	c, s := e.login()
	s.reply(errResp("FATAL", "57P01", "terminating connection due to administrator command"))
	s.expectState(proxy.ServerClosed)
	c.expectNothing()
	c.expectState(proxy.ClientIdle)
	c.query("select 1")
	s2 := e.expectServerDial()
	s2.login()
	s2.expect("Query(select 1)")
}

// The backend refuses the login: waiting clients get the backend's error.
func TestServerLoginRefused(t *testing.T) {
	e := newEnv(t, nil)
	c := e.accept()
	c.send(startupMsg("alice", "app"))
	s := e.expectServerDial()
	s.startup()
	s.reply(errResp("FATAL", "3D000", `database "app" does not exist`))
	c.expectFatal("3D000")
	s.expectState(proxy.ServerClosed)
}

// The connect fails: clients waiting for the welcome get 08006.
func TestServerConnectFails(t *testing.T) {
	e := newEnv(t, nil)
	c := e.accept()
	c.send(startupMsg("alice", "app"))
	s := e.expectServerDial()
	s.ep.OnConnected(errConnRefused)
	c.expectFatal("08006")
	e.expectNoDial() // backend marked down for ServerLoginRetry
}

type connErr string

func (e connErr) Error() string { return string(e) }

const errConnRefused = connErr("connection refused")

// Client write-blocked → its server's reads pause; unblocked → resume.
func TestBackpressure(t *testing.T) {
	e := newEnv(t, nil)
	c, s := e.login()
	c.query("copy t to stdout")
	s.expect("Query(copy t to stdout)")
	c.ep.OnWriteBlocked(true)
	if !e.net.paused[s.h] {
		t.Fatal("server reads not paused while the client is write-blocked")
	}
	c.ep.OnWriteBlocked(false)
	if e.net.paused[s.h] {
		t.Fatal("server reads not resumed")
	}
	s.ep.OnWriteBlocked(true)
	if !e.net.paused[c.h] {
		t.Fatal("client reads not paused while the server is write-blocked")
	}
	s.ep.OnWriteBlocked(false)
	if e.net.paused[c.h] {
		t.Fatal("client reads not resumed")
	}
}

// COPY FROM STDIN: CopyData from the client goes through while linked.
func TestCopyIn(t *testing.T) {
	e := newEnv(t, nil)
	c, s := e.login()
	c.query("copy t from stdin")
	s.expect("Query(copy t from stdin)")
	s.reply(&pgproto3.CopyInResponse{OverallFormat: 0, ColumnFormatCodes: []uint16{0}})
	c.expect("CopyInResponse")
	c.send(&pgproto3.CopyData{Data: []byte("1\n")}, &pgproto3.CopyData{Data: []byte("2\n")}, &pgproto3.CopyDone{})
	s.expect(`CopyData("1\n")`, `CopyData("2\n")`, "CopyDone")
	s.reply(cc("COPY 2"), rfq('I'))
	c.expect("CommandComplete(COPY 2)", "ReadyForQuery(I)")
	c.expectState(proxy.ClientIdle)
}

// A client that sends its first query in the same packet as the startup
// (before the welcome) gets it run after the welcome.
func TestQueryPipelinedWithStartup(t *testing.T) {
	e := newEnv(t, func(o *proxy.Options) { o.PoolSize = 1 })
	c := e.accept()
	c.sendRaw(enc(t, startupMsg("alice", "app"), &pgproto3.Query{String: "select 1"}))
	s := e.expectServerDial()
	s.login()
	c.expect("AuthenticationOk", "...")
	s.expect("Query(select 1)")
	s.reply(selectOne('I')...)
	c.expect(selectOneDesc('I')...)
	c.expectState(proxy.ClientIdle)

	// The pool knows the parameters now: same thing, welcomed at once.
	c2 := e.accept()
	c2.sendRaw(enc(t, startupMsg("alice", "app"), &pgproto3.Query{String: "select 2"}))
	c2.expect("AuthenticationOk", "...")
	s.expect("Query(select 2)")
	e.expectNoDial()
}
