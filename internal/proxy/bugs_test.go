package proxy_test

// Tests for defects found while reviewing the core. Each test states the
// scenario, what should happen, and (in the failure message) what happened.

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/poolmgr/poolmgr/internal/auth"
	"github.com/poolmgr/poolmgr/internal/proxy"
)

// Options.MaxMessageSize ("client messages above -> 08P01", docs/config.md)
// must bound what a client can make the proxy buffer or forward.
func TestMaxMessageSizeEnforced(t *testing.T) {
	e := newEnv(t, func(o *proxy.Options) { o.MaxMessageSize = 1024 })
	c, s := e.login()
	// A header announcing a 1 GiB Query: refused as soon as the header is seen.
	c.sendRaw([]byte{'Q', 0x40, 0, 0, 0})
	msgs := c.recv()
	if er := findError(msgs); er == nil || er.Code != "08P01" || !c.closed() {
		t.Fatalf("1 GiB Query header with max_message_size=1024: client got %v, closed=%v; want FATAL 08P01 and close",
			describeAll(msgs), c.closed())
	}
	s.expectNothing()
}

// Same limit for a complete oversized message (would be collected whole
// in transaction mode).
func TestMaxMessageSizeEnforcedWholeMessage(t *testing.T) {
	e := newEnv(t, func(o *proxy.Options) { o.MaxMessageSize = 1024 })
	c, s := e.login()
	c.query("select '" + strings.Repeat("x", 4096) + "'")
	msgs := c.recv()
	if er := findError(msgs); er == nil || er.Code != "08P01" {
		t.Fatalf("4 KiB Query with max_message_size=1024: client got %v; want FATAL 08P01", describeAll(msgs))
	}
	if b := s.recvRaw(); len(b) > 0 {
		t.Fatalf("oversized Query forwarded to the server (%d bytes)", len(b))
	}
}

// A client write-blocked pauses its server's reads. If the server's
// ReadyForQuery was already read (engines may deliver a read that was in
// flight when PauseRead(true) was queued; the fallback engine does), the
// server is released while paused. Nothing unpauses it afterwards: the
// next client's query on it hangs forever.
func TestServerReleasedWhilePausedIsResumed(t *testing.T) {
	e := newEnv(t, func(o *proxy.Options) { o.PoolSize = 1 })
	a, s := e.login()
	b, _ := e.login()
	a.query("select big")
	s.expect("Query(select big)")
	a.ep.OnWriteBlocked(true)
	if !e.net.paused[s.h] {
		t.Fatal("server not paused")
	}
	s.reply(selectOne('I')...) // was already in flight
	a.expect(selectOneDesc('I')...)
	a.expectState(proxy.ClientIdle)
	a.ep.OnWriteBlocked(false) // a drains; it no longer holds s
	b.query("select 'b'")
	b.expectState(proxy.ClientActive)
	s.expect("Query(select 'b')")
	if e.net.paused[s.h] {
		t.Fatal("server handed to another client with its reads still paused (PauseRead(true) from the previous client's write block never undone): that client hangs")
	}
}

// The other direction: a server write-blocked pauses its client's reads; if
// the transaction ends before the server unblocks, the client stays paused
// forever (Server.OnWriteBlocked(false) finds no client).
func TestClientReleasedWhilePausedIsResumed(t *testing.T) {
	e := newEnv(t, nil)
	a, s := e.login()
	a.query("copy t from stdin")
	s.expect("Query(copy t from stdin)")
	s.reply(&pgproto3.CopyInResponse{ColumnFormatCodes: []uint16{0}})
	a.recv()
	a.send(&pgproto3.CopyData{Data: bytes.Repeat([]byte("x\n"), 100)}, &pgproto3.CopyDone{})
	s.ep.OnWriteBlocked(true)
	if !e.net.paused[a.h] {
		t.Fatal("client not paused")
	}
	s.reply(cc("COPY 100"), rfq('I'))
	a.expect("CommandComplete(COPY 100)", "ReadyForQuery(I)")
	a.expectState(proxy.ClientIdle)
	s.ep.OnWriteBlocked(false)
	if e.net.paused[a.h] {
		t.Fatal("client left with its reads paused after its server was released: it can never send again")
	}
}

// A transaction that SETs a reported parameter and is then abandoned: the
// proxy's ROLLBACK reverts the parameter on the server, and the backend
// reports the old value in a ParameterStatus that the core swallows without
// updating the server's tracked parameters. The next client whose startup
// value equals the rolled-back one gets no SET and runs with the wrong value.
func TestParamsTrackedThroughRollbackReset(t *testing.T) {
	e := newEnv(t, func(o *proxy.Options) { o.PoolSize = 1 })
	a, s := e.login()
	a.query("begin")
	s.expect("Query(begin)")
	s.reply(cc("BEGIN"), rfq('T'))
	a.query("set application_name = 'x'")
	s.expect("Query(set application_name = 'x')")
	s.reply(cc("SET"), &pgproto3.ParameterStatus{Name: "application_name", Value: "x"}, rfq('T'))
	a.recv()
	a.send(&pgproto3.Terminate{})
	s.expect("Query(ROLLBACK)")
	// PostgreSQL reports the reverted value before ReadyForQuery.
	s.reply(cc("ROLLBACK"), &pgproto3.ParameterStatus{Name: "application_name", Value: ""}, rfq('I'))
	s.expectState(proxy.ServerIdle)

	b, _ := e.login("application_name", "x")
	b.query("select 1")
	got := describeAll(s.recv())
	if len(got) == 0 || got[0] != "Query(SET application_name = 'x';)" {
		t.Fatalf("server got %v; want a SET application_name = 'x' first: the server's application_name is '' after the ROLLBACK", got)
	}
}

// An idle client whose request the proxy answers entirely by itself
// (DEALLOCATE ALL, DEALLOCATE of a known name) is linked to a server to
// run it and never released: it holds the server while idle.
func TestSynthesizedAnswerReleasesServer(t *testing.T) {
	e := newEnv(t, func(o *proxy.Options) { o.PoolSize = 1 })
	a, s := e.login()
	b, _ := e.login()
	a.query("DEALLOCATE ALL")
	a.expect("CommandComplete(DEALLOCATE ALL)", "ReadyForQuery(I)")
	s.expectNothing()
	if a.state() != proxy.ClientIdle || s.state() != proxy.ServerIdle {
		t.Fatalf("after a synthesized DEALLOCATE ALL: client %v, server %v; want both idle (the idle client holds the only server)", a.state(), s.state())
	}
	b.query("select 1")
	s.expect("Query(select 1)")
}

// Same with a lone CopyDone (PostgreSQL ignores Copy messages outside COPY):
// nothing is pending, the server must go back to the pool.
func TestIgnoredMessageReleasesServer(t *testing.T) {
	e := newEnv(t, nil)
	a, s := e.login()
	a.send(&pgproto3.CopyDone{})
	s.expect("CopyDone")
	if a.state() != proxy.ClientIdle || s.state() != proxy.ServerIdle {
		t.Fatalf("after a lone CopyDone: client %v, server %v; want both idle", a.state(), s.state())
	}
}

// A waiting client whose stash is large (reads paused) and ends with a
// Terminate: link forwards the stash, the Terminate closes the client, then
// link calls PauseRead(false) on the handle it just closed.
func TestNoPauseReadAfterClose(t *testing.T) {
	e := newEnv(t, func(o *proxy.Options) { o.PoolSize = 1 })
	a, s := e.login()
	b, _ := e.login()
	a.query("select 1")
	s.expect("Query(select 1)")
	big := enc(t, &pgproto3.Query{String: "select '" + strings.Repeat("x", 70000) + "'"}, &pgproto3.Terminate{})
	b.sendRaw(big)
	if !e.net.paused[b.h] {
		t.Fatal("b not paused with a 70 KB stash")
	}
	s.reply(selectOne('I')...)
	b.expectClosed()
	for _, v := range e.net.violations {
		if strings.Contains(v, "PauseRead") {
			e.net.violations = nil
			t.Fatalf("contract: %s", v)
		}
	}
}

// SCRAM for an unknown user uses a fresh random salt on every attempt
// (auth.NewScramServerUnknownUser), while a real user with a SCRAM secret
// always shows the same salt: two attempts reveal whether a user exists.
// auth.NewScramServerUnknownUserStable exists for this and is unused.
func TestUnknownUserSaltIsStable(t *testing.T) {
	e := scramEnv(t, nil)
	saltOf := func(user string) string {
		c := e.accept()
		c.send(startupMsg(user, "app"))
		code, data := c.authRequest()
		ba := auth.NewBackendAuth(auth.BackendCreds{User: user, Plain: "x"}, nil)
		msg, _ := ba.Step(code, data)
		c.sendRaw(msg)
		code, data = c.authRequest()
		if code != auth.AuthSASLContinue {
			t.Fatalf("code %d", code)
		}
		c.peerClose()
		for _, attr := range strings.Split(string(data), ",") {
			if strings.HasPrefix(attr, "s=") {
				return attr
			}
		}
		t.Fatalf("no salt in %q", data)
		return ""
	}
	if saltOf(scramUser) != saltOf(scramUser) {
		t.Fatal("known user: salt changes")
	}
	if s1, s2 := saltOf("nobody"), saltOf("nobody"); s1 != s2 {
		t.Fatalf("unknown user: salt changes between attempts (%s, %s) while a real user's does not: user enumeration", s1, s2)
	}
}

// A backend that sends ReadyForQuery followed by more bytes in the same
// read while resetting (ROLLBACK answer, then an asynchronous NOTICE split
// over two reads): the bytes after the ReadyForQuery are never scanned, so
// the scanner loses the message boundary and the server is closed as a
// protocol error (or worse, mis-frames).
func TestBytesAfterResetReadyForQuery(t *testing.T) {
	e := newEnv(t, nil)
	a, s := e.login()
	a.query("begin")
	s.expect("Query(begin)")
	s.reply(cc("BEGIN"), rfq('T'))
	a.send(&pgproto3.Terminate{})
	s.expect("Query(ROLLBACK)")
	notice := enc(t, &pgproto3.NoticeResponse{Severity: "NOTICE", SeverityUnlocalized: "NOTICE", Code: "00000", Message: "some asynchronous notice"})
	first := append(enc(t, cc("ROLLBACK"), rfq('I')), notice[:10]...)
	s.replyRaw(first)
	s.replyRaw(notice[10:])
	if s.state() != proxy.ServerIdle {
		t.Fatalf("server %v after a ROLLBACK answer + NOTICE split over two reads; want idle", s.state())
	}
	b, _ := e.login()
	b.query("select 1")
	s.expect("Query(select 1)")
	s.reply(selectOne('I')...)
	if got := b.recvDesc(); !matchDesc(got, selectOneDesc('I')) {
		t.Fatalf("next client on that server got %v, want %v: the server's scanner lost the message boundary "+
			"(bytes after the reset's ReadyForQuery were not scanned)", got, selectOneDesc('I'))
	}
}

// The same at the end of the server login: bytes after the login's
// ReadyForQuery in the same read are dropped unscanned.
func TestBytesAfterLoginReadyForQuery(t *testing.T) {
	e := newEnv(t, nil)
	c := e.accept()
	c.send(startupMsg("alice", "app"))
	s := e.expectServerDial()
	s.startup()
	notice := enc(t, &pgproto3.NoticeResponse{Severity: "NOTICE", SeverityUnlocalized: "NOTICE", Code: "00000", Message: "welcome notice"})
	s.replyRaw(append(enc(t, loginMsgs(backendPID, backendSecret)...), notice[:7]...))
	s.replyRaw(notice[7:])
	c.recv()
	if s.state() != proxy.ServerIdle {
		t.Fatalf("server %v after login + split NOTICE; want idle", s.state())
	}
	c.query("select 1")
	s.expect("Query(select 1)")
	s.reply(selectOne('I')...)
	if got := c.recvDesc(); !matchDesc(got, selectOneDesc('I')) {
		t.Fatalf("client got %v, want %v: the server's scanner lost the message boundary "+
			"(bytes after the login's ReadyForQuery were not scanned)", got, selectOneDesc('I'))
	}
}

// StartupFrame's limit is off by 4 from PostgreSQL: PostgreSQL accepts a
// startup packet whose length word is up to MAX_STARTUP_PACKET_LENGTH + 4
// (10004): it subtracts the length word before comparing.
func TestStartupPacketLengthLimitLikePostgres(t *testing.T) {
	e := newEnv(t, nil)
	c := e.accept()
	params := []byte("user\x00alice\x00database\x00app\x00application_name\x00")
	pad := 10004 - 8 - len(params) - 2
	body := append(append(params, bytes.Repeat([]byte("a"), pad)...), 0, 0)
	pkt := binary.BigEndian.AppendUint32(nil, uint32(8+len(body)))
	pkt = binary.BigEndian.AppendUint32(pkt, pgproto3.ProtocolVersion30)
	pkt = append(pkt, body...)
	if len(pkt) != 10004 {
		t.Fatalf("packet %d bytes", len(pkt))
	}
	c.sendRaw(pkt)
	if c.closed() {
		t.Fatalf("10004-byte startup packet refused (%v); PostgreSQL accepts up to 10000 bytes after the length word", describeAll(c.recv()))
	}
}
