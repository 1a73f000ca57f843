package proxy_test

// Test harness for the sans-I/O core: a fake engine (Transport + Poster) that
// records every action, plus helpers that play PostgreSQL clients and
// backends with pgx's pgproto3 encoders/decoders.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/poolmgr/poolmgr/internal/proxy"
)

// ---------------------------------------------------------------------------
// Fake transport

type dialRec struct {
	H    proxy.Handle
	Addr string
	EP   proxy.Endpoint
}

type pauseRec struct {
	H      proxy.Handle
	Paused bool
}

// fakeNet implements proxy.Transport and proxy.Poster. Every action is
// recorded; nothing is carried out. Post runs fn at once.
type fakeNet struct {
	next       proxy.Handle
	out        map[proxy.Handle][]byte // concatenated Sends per handle
	sends      map[proxy.Handle]int    // number of Send calls per handle
	closed     map[proxy.Handle]bool   // closed by the core
	closes     []proxy.Handle          // Close calls, in order
	dials      []*dialRec
	pauses     []pauseRec
	paused     map[proxy.Handle]bool // last PauseRead state per handle
	posts      int
	violations []string // contract violations seen (Send/PauseRead after Close...)
	discard    bool     // benchmarks: do not keep bytes
	sent       int      // bytes sent (all handles)
}

func newFakeNet() *fakeNet {
	return &fakeNet{
		next:   100,
		out:    make(map[proxy.Handle][]byte),
		sends:  make(map[proxy.Handle]int),
		closed: make(map[proxy.Handle]bool),
		paused: make(map[proxy.Handle]bool),
	}
}

func (f *fakeNet) newHandle() proxy.Handle {
	f.next++
	return f.next
}

// Send implements proxy.Transport.
func (f *fakeNet) Send(h proxy.Handle, b []byte) {
	if f.closed[h] {
		f.violations = append(f.violations, fmt.Sprintf("Send(%d, %q) after the core closed the handle", h, trunc(b)))
	}
	f.sent += len(b)
	if f.discard {
		return
	}
	f.sends[h]++
	f.out[h] = append(f.out[h], b...)
}

// Close implements proxy.Transport.
func (f *fakeNet) Close(h proxy.Handle) {
	if f.closed[h] {
		f.violations = append(f.violations, fmt.Sprintf("Close(%d) twice", h))
	}
	f.closed[h] = true
	f.closes = append(f.closes, h)
}

// Dial implements proxy.Transport.
func (f *fakeNet) Dial(addr string, ep proxy.Endpoint) proxy.Handle {
	h := f.newHandle()
	f.dials = append(f.dials, &dialRec{H: h, Addr: addr, EP: ep})
	return h
}

// PauseRead implements proxy.Transport.
func (f *fakeNet) PauseRead(h proxy.Handle, paused bool) {
	if f.closed[h] {
		f.violations = append(f.violations, fmt.Sprintf("PauseRead(%d, %v) after the core closed the handle", h, paused))
	}
	f.pauses = append(f.pauses, pauseRec{h, paused})
	f.paused[h] = paused
}

// Post implements proxy.Poster: fn runs immediately.
func (f *fakeNet) Post(fn func()) {
	f.posts++
	fn()
}

func trunc(b []byte) []byte {
	if len(b) > 40 {
		return b[:40]
	}
	return b
}

// ---------------------------------------------------------------------------
// Environment: one Shared, one Loop bound to a fakeNet.

const backendAddr = "10.0.0.1:5432"

func baseOptions() *proxy.Options {
	return &proxy.Options{
		PoolMode:             proxy.ModeTransaction,
		PoolSize:             4,
		MaxClients:           100,
		MaxServersPerBackend: 100,
		MaxMessageSize:       64 << 20,
		AuthType:             proxy.AuthTrust,
		ServerLoginRetry:     15e9,
		Log:                  slog.New(slog.DiscardHandler),
	}
}

type env struct {
	t    testing.TB
	net  *fakeNet
	sh   *proxy.Shared
	loop *proxy.Loop
	opts *proxy.Options

	seenDials int
	servers   []*srv
}

func newEnv(t testing.TB, mut func(o *proxy.Options)) *env {
	o := baseOptions()
	if mut != nil {
		mut(o)
	}
	sh := proxy.NewShared(o, []string{backendAddr})
	l := proxy.NewLoop(sh, 0)
	n := newFakeNet()
	l.Bind(n, n)
	e := &env{t: t, net: n, sh: sh, loop: l, opts: o}
	if tt, ok := t.(*testing.T); ok {
		tt.Cleanup(func() {
			if !tt.Failed() {
				e.noViolations()
			}
		})
	}
	return e
}

func (e *env) noViolations() {
	e.t.Helper()
	if len(e.net.violations) > 0 {
		e.t.Errorf("transport contract violations:\n  %s", strings.Join(e.net.violations, "\n  "))
	}
}

// newDials returns the Dial calls made since the last call.
func (e *env) newDials() []*dialRec {
	d := e.net.dials[e.seenDials:]
	e.seenDials = len(e.net.dials)
	return d
}

// expectNoDial fails if the core dialed since the last check.
func (e *env) expectNoDial() {
	e.t.Helper()
	if d := e.newDials(); len(d) != 0 {
		e.t.Fatalf("unexpected Dial: %d new (first to %s)", len(d), d[0].Addr)
	}
}

// expectServerDial returns the one server the core dialed since the last check.
func (e *env) expectServerDial() *srv {
	e.t.Helper()
	d := e.newDials()
	if len(d) != 1 {
		e.t.Fatalf("expected exactly one Dial, got %d", len(d))
	}
	if d[0].Addr != backendAddr {
		e.t.Fatalf("Dial to %q, want %q", d[0].Addr, backendAddr)
	}
	s, ok := d[0].EP.(*proxy.Server)
	if !ok {
		e.t.Fatalf("Dial endpoint is %T, want *proxy.Server", d[0].EP)
	}
	sv := &srv{e: e, h: d[0].H, ep: s}
	e.servers = append(e.servers, sv)
	return sv
}

// ---------------------------------------------------------------------------
// Client side

type cli struct {
	e    *env
	h    proxy.Handle
	ep   proxy.Endpoint
	read int
}

func (e *env) accept() *cli {
	h := e.net.newHandle()
	ep := e.loop.Accept(h, netip.MustParseAddrPort("192.0.2.7:40000"))
	if ep == nil {
		e.t.Fatal("Accept returned a nil endpoint")
	}
	return &cli{e: e, h: h, ep: ep}
}

func (c *cli) state() proxy.ClientState { return c.ep.(*proxy.Client).State() }
func (c *cli) closed() bool             { return c.e.net.closed[c.h] }

// sendRaw delivers b as one OnData event.
func (c *cli) sendRaw(b []byte) { c.ep.OnData(b) }

// sendChunks delivers b as events of the given sizes (the rest as one).
func (c *cli) sendSplit(b []byte, chunk func(rest int) int) {
	for len(b) > 0 {
		n := min(max(chunk(len(b)), 1), len(b))
		c.ep.OnData(b[:n])
		b = b[n:]
	}
}

func (c *cli) send(msgs ...encoder) { c.sendRaw(enc(c.e.t, msgs...)) }

// recvRaw returns the bytes the core sent to the client since the last recv.
func (c *cli) recvRaw() []byte {
	all := c.e.net.out[c.h]
	b := all[c.read:]
	c.read = len(all)
	return b
}

// recv decodes what the core sent since the last recv.
func (c *cli) recv() []pgproto3.BackendMessage {
	c.e.t.Helper()
	return decodeBackend(c.e.t, c.recvRaw())
}

// recvDesc is recv as short descriptions.
func (c *cli) recvDesc() []string {
	c.e.t.Helper()
	return describeAll(c.recv())
}

// expect checks the exact sequence of messages sent to the client since the
// last recv (as descriptions; "*" matches any one message).
func (c *cli) expect(want ...string) []pgproto3.BackendMessage {
	c.e.t.Helper()
	msgs := c.recv()
	got := describeAll(msgs)
	if !matchDesc(got, want) {
		c.e.t.Fatalf("client %d got\n  %s\nwant\n  %s", c.h, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	return msgs
}

func (c *cli) expectNothing() {
	c.e.t.Helper()
	if b := c.recvRaw(); len(b) > 0 {
		c.e.t.Fatalf("client %d got unexpected bytes: %s", c.h, strings.Join(describeAll(decodeBackend(c.e.t, b)), ", "))
	}
}

func (c *cli) expectClosed() {
	c.e.t.Helper()
	if !c.closed() {
		c.e.t.Fatalf("client %d not closed (state %v)", c.h, c.state())
	}
	if st := c.state(); st != proxy.ClientClosed {
		c.e.t.Fatalf("client %d closed by transport but state %v", c.h, st)
	}
}

func (c *cli) expectOpen() {
	c.e.t.Helper()
	if c.closed() {
		c.e.t.Fatalf("client %d closed unexpectedly", c.h)
	}
}

func (c *cli) expectState(st proxy.ClientState) {
	c.e.t.Helper()
	if got := c.state(); got != st {
		c.e.t.Fatalf("client %d state %v, want %v", c.h, got, st)
	}
}

// peerClose reports that the client went away.
func (c *cli) peerClose() { c.ep.OnClosed(io.EOF) }

// ---------------------------------------------------------------------------
// Server (fake backend) side

type srv struct {
	e    *env
	h    proxy.Handle
	ep   *proxy.Server
	read int
}

func (s *srv) state() proxy.ServerState { return s.ep.State() }
func (s *srv) closed() bool             { return s.e.net.closed[s.h] }

func (s *srv) recvRaw() []byte {
	all := s.e.net.out[s.h]
	b := all[s.read:]
	s.read = len(all)
	return b
}

// recv decodes the regular (typed) messages the core sent to the backend.
func (s *srv) recv() []pgproto3.FrontendMessage {
	s.e.t.Helper()
	return decodeFrontend(s.e.t, s.recvRaw())
}

func (s *srv) expect(want ...string) []pgproto3.FrontendMessage {
	s.e.t.Helper()
	msgs := s.recv()
	got := describeAll(msgs)
	if !matchDesc(got, want) {
		s.e.t.Fatalf("server %d got\n  %s\nwant\n  %s", s.h, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	return msgs
}

func (s *srv) expectNothing() {
	s.e.t.Helper()
	if b := s.recvRaw(); len(b) > 0 {
		s.e.t.Fatalf("server %d got unexpected bytes: %s", s.h, strings.Join(describeAll(decodeFrontend(s.e.t, b)), ", "))
	}
}

func (s *srv) expectState(st proxy.ServerState) {
	s.e.t.Helper()
	if got := s.state(); got != st {
		s.e.t.Fatalf("server %d state %v, want %v", s.h, got, st)
	}
}

func (s *srv) replyRaw(b []byte) { s.ep.OnData(b) }

func (s *srv) reply(msgs ...encoder) { s.replyRaw(enc(s.e.t, msgs...)) }

// startup connects the server and returns the StartupMessage the core sent.
func (s *srv) startup() *pgproto3.StartupMessage {
	s.e.t.Helper()
	s.ep.OnConnected(nil)
	b := s.recvRaw()
	be := pgproto3.NewBackend(bytes.NewReader(b), io.Discard)
	m, err := be.ReceiveStartupMessage()
	if err != nil {
		s.e.t.Fatalf("server %d: decoding startup %q: %v", s.h, b, err)
	}
	sm, ok := m.(*pgproto3.StartupMessage)
	if !ok {
		s.e.t.Fatalf("server %d: got %T, want StartupMessage", s.h, m)
	}
	return sm
}

// Backend identity used by login.
const (
	backendPID    = 4242
	backendSecret = 0x0badcafe
)

var backendParams = [][2]string{
	{"application_name", ""},
	{"client_encoding", "UTF8"},
	{"DateStyle", "ISO, MDY"},
	{"integer_datetimes", "on"},
	{"IntervalStyle", "postgres"},
	{"is_superuser", "off"},
	{"server_encoding", "UTF8"},
	{"server_version", "15.4"},
	{"session_authorization", "alice"},
	{"standard_conforming_strings", "on"},
	{"TimeZone", "UTC"},
}

func secretBytes(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

// loginMsgs is what a trust-authenticated backend sends after the startup.
func loginMsgs(pid, secret uint32) []encoder {
	m := []encoder{&pgproto3.AuthenticationOk{}}
	for _, kv := range backendParams {
		m = append(m, &pgproto3.ParameterStatus{Name: kv[0], Value: kv[1]})
	}
	return append(m, &pgproto3.BackendKeyData{ProcessID: pid, SecretKey: secretBytes(secret)}, rfq('I'))
}

// login runs a trust login for the server: connect, startup, welcome.
func (s *srv) login() {
	s.e.t.Helper()
	sm := s.startup()
	if sm.Parameters["user"] == "" {
		s.e.t.Fatalf("startup without user: %v", sm.Parameters)
	}
	s.reply(loginMsgs(backendPID+uint32(s.h), backendSecret)...)
}

func (s *srv) pid() uint32 { return backendPID + uint32(s.h) }

// peerClose reports that the backend closed the connection.
func (s *srv) peerClose() { s.ep.OnClosed(io.EOF) }

// ---------------------------------------------------------------------------
// Scenario helpers

// startupMsg builds a protocol 3.0 StartupMessage; kv are extra parameters.
func startupMsg(user, db string, kv ...string) *pgproto3.StartupMessage {
	p := map[string]string{"user": user}
	if db != "" {
		p["database"] = db
	}
	for i := 0; i+1 < len(kv); i += 2 {
		p[kv[i]] = kv[i+1]
	}
	return &pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: p}
}

// startupBytes encodes a StartupMessage with parameters in the given order
// (deterministic bytes, unlike a map).
func startupBytes(kv ...string) []byte {
	b := binary.BigEndian.AppendUint32(nil, 0)
	b = binary.BigEndian.AppendUint32(b, pgproto3.ProtocolVersion30)
	for _, s := range kv {
		b = append(append(b, s...), 0)
	}
	b = append(b, 0)
	binary.BigEndian.PutUint32(b, uint32(len(b)))
	return b
}

// login connects a trust-authenticated client with extra startup parameters
// kv; if the pool has no server parameters yet, it answers the core's Dial
// as a backend (the server then goes idle) and returns that server too.
func (e *env) login(kv ...string) (*cli, *srv) {
	e.t.Helper()
	c := e.accept()
	c.send(startupMsg("alice", "app", kv...))
	var s *srv
	if d := e.net.dials[e.seenDials:]; len(d) > 0 {
		s = e.expectServerDial()
		s.login()
	}
	msgs := c.recv()
	desc := describeAll(msgs)
	if len(desc) < 3 || desc[0] != "AuthenticationOk" || desc[len(desc)-1] != "ReadyForQuery(I)" ||
		!strings.HasPrefix(desc[len(desc)-2], "BackendKeyData") {
		e.t.Fatalf("login: client got %v", desc)
	}
	c.expectState(proxy.ClientIdle)
	return c, s
}

// query sends a simple query from c.
func (c *cli) query(sql string) { c.send(&pgproto3.Query{String: sql}) }

func rfq(st byte) *pgproto3.ReadyForQuery { return &pgproto3.ReadyForQuery{TxStatus: st} }

func cc(tag string) *pgproto3.CommandComplete {
	return &pgproto3.CommandComplete{CommandTag: []byte(tag)}
}

// selectOne is a backend's full answer to "select 1" (idle afterwards).
func selectOne(st byte) []encoder {
	return []encoder{
		&pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{
			Name: []byte("?column?"), DataTypeOID: 23, DataTypeSize: 4, TypeModifier: -1,
		}}},
		&pgproto3.DataRow{Values: [][]byte{[]byte("1")}},
		cc("SELECT 1"),
		rfq(st),
	}
}

func selectOneDesc(st byte) []string {
	return []string{"RowDescription(?column?)", "DataRow(1)", "CommandComplete(SELECT 1)", "ReadyForQuery(" + string(st) + ")"}
}

func errResp(sev, code, msg string) *pgproto3.ErrorResponse {
	return &pgproto3.ErrorResponse{Severity: sev, SeverityUnlocalized: sev, Code: code, Message: msg}
}

// ---------------------------------------------------------------------------
// Encoding and decoding

type encoder interface {
	Encode(dst []byte) ([]byte, error)
}

func enc(t testing.TB, msgs ...encoder) []byte {
	t.Helper()
	var b []byte
	for _, m := range msgs {
		var err error
		b, err = m.Encode(b)
		if err != nil {
			t.Fatalf("encode %T: %v", m, err)
		}
	}
	return b
}

// splitMsgs splits a stream of regular messages (type byte + int32 length).
func splitMsgs(t testing.TB, b []byte) [][]byte {
	t.Helper()
	var out [][]byte
	for len(b) > 0 {
		if len(b) < 5 {
			t.Fatalf("trailing partial header %q", b)
		}
		n := int(binary.BigEndian.Uint32(b[1:])) + 1
		if n < 5 || n > len(b) {
			t.Fatalf("bad or truncated message %q (length %d, have %d)", trunc(b), n, len(b))
		}
		out = append(out, b[:n])
		b = b[n:]
	}
	return out
}

// decodeBackend decodes messages sent to a client. Each message is decoded
// by a fresh pgproto3.Frontend, so the returned values stay valid.
func decodeBackend(t testing.TB, b []byte) []pgproto3.BackendMessage {
	t.Helper()
	var out []pgproto3.BackendMessage
	for _, raw := range splitMsgs(t, b) {
		fe := pgproto3.NewFrontend(bytes.NewReader(raw), io.Discard)
		m, err := fe.Receive()
		if err != nil {
			t.Fatalf("decoding backend message %q: %v", trunc(raw), err)
		}
		out = append(out, m)
	}
	return out
}

// decodeFrontend decodes messages sent to a backend (after the startup).
func decodeFrontend(t testing.TB, b []byte) []pgproto3.FrontendMessage {
	t.Helper()
	var out []pgproto3.FrontendMessage
	for _, raw := range splitMsgs(t, b) {
		be := pgproto3.NewBackend(bytes.NewReader(raw), io.Discard)
		m, err := be.Receive()
		if err != nil {
			t.Fatalf("decoding frontend message %q: %v", trunc(raw), err)
		}
		out = append(out, m)
	}
	return out
}

func describeAll[M any](msgs []M) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = describe(m)
	}
	return out
}

// describe renders a message compactly for sequence assertions.
func describe(m any) string {
	switch m := m.(type) {
	case *pgproto3.AuthenticationOk:
		return "AuthenticationOk"
	case *pgproto3.AuthenticationSASL:
		return "AuthenticationSASL(" + strings.Join(m.AuthMechanisms, ",") + ")"
	case *pgproto3.AuthenticationSASLContinue:
		return "AuthenticationSASLContinue"
	case *pgproto3.AuthenticationSASLFinal:
		return "AuthenticationSASLFinal"
	case *pgproto3.AuthenticationMD5Password:
		return "AuthenticationMD5Password"
	case *pgproto3.ParameterStatus:
		return "ParameterStatus(" + m.Name + "=" + m.Value + ")"
	case *pgproto3.BackendKeyData:
		return fmt.Sprintf("BackendKeyData(%d)", m.ProcessID)
	case *pgproto3.ReadyForQuery:
		return "ReadyForQuery(" + string(m.TxStatus) + ")"
	case *pgproto3.RowDescription:
		var names []string
		for _, f := range m.Fields {
			names = append(names, string(f.Name))
		}
		return "RowDescription(" + strings.Join(names, ",") + ")"
	case *pgproto3.DataRow:
		var vals []string
		for _, v := range m.Values {
			vals = append(vals, string(v))
		}
		return "DataRow(" + strings.Join(vals, ",") + ")"
	case *pgproto3.CommandComplete:
		return "CommandComplete(" + string(m.CommandTag) + ")"
	case *pgproto3.ErrorResponse:
		return "ErrorResponse(" + m.Severity + " " + m.Code + ")"
	case *pgproto3.NoticeResponse:
		return "NoticeResponse(" + m.Severity + " " + m.Code + ")"
	case *pgproto3.NegotiateProtocolVersion:
		return fmt.Sprintf("NegotiateProtocolVersion(%d.%d,%s)", m.NewestMinorProtocol>>16, m.NewestMinorProtocol&0xffff, strings.Join(m.UnrecognizedOptions, ","))
	case *pgproto3.ParseComplete:
		return "ParseComplete"
	case *pgproto3.BindComplete:
		return "BindComplete"
	case *pgproto3.CloseComplete:
		return "CloseComplete"
	case *pgproto3.NoData:
		return "NoData"
	case *pgproto3.ParameterDescription:
		return fmt.Sprintf("ParameterDescription(%v)", m.ParameterOIDs)
	case *pgproto3.CopyInResponse:
		return "CopyInResponse"
	case *pgproto3.CopyOutResponse:
		return "CopyOutResponse"
	case *pgproto3.EmptyQueryResponse:
		return "EmptyQueryResponse"
	case *pgproto3.PortalSuspended:
		return "PortalSuspended"
	case *pgproto3.NotificationResponse:
		return "NotificationResponse(" + m.Channel + ")"
	case *pgproto3.Query:
		return "Query(" + m.String + ")"
	case *pgproto3.Parse:
		return "Parse(" + m.Name + ":" + m.Query + ")"
	case *pgproto3.Bind:
		return "Bind(" + m.DestinationPortal + ":" + m.PreparedStatement + ")"
	case *pgproto3.Describe:
		return "Describe(" + string(m.ObjectType) + ":" + m.Name + ")"
	case *pgproto3.Execute:
		return "Execute(" + m.Portal + ")"
	case *pgproto3.Close:
		return "Close(" + string(m.ObjectType) + ":" + m.Name + ")"
	case *pgproto3.Sync:
		return "Sync"
	case *pgproto3.Flush:
		return "Flush"
	case *pgproto3.Terminate:
		return "Terminate"
	case *pgproto3.CopyData:
		return fmt.Sprintf("CopyData(%q)", m.Data)
	case *pgproto3.CopyDone:
		return "CopyDone"
	}
	return fmt.Sprintf("%T", m)
}

// matchDesc compares descriptions; "*" in want matches any one message and a
// trailing "..." matches any rest.
func matchDesc(got, want []string) bool {
	for i, w := range want {
		if w == "..." && i == len(want)-1 {
			return true
		}
		if i >= len(got) || (w != "*" && w != got[i]) {
			return false
		}
	}
	return len(got) == len(want)
}

// findError returns the first ErrorResponse in msgs.
func findError(msgs []pgproto3.BackendMessage) *pgproto3.ErrorResponse {
	for _, m := range msgs {
		if e, ok := m.(*pgproto3.ErrorResponse); ok {
			return e
		}
	}
	return nil
}

// expectFatal checks that the client got exactly one FATAL with code and
// was closed.
func (c *cli) expectFatal(code string) *pgproto3.ErrorResponse {
	c.e.t.Helper()
	msgs := c.expect("ErrorResponse(FATAL " + code + ")")
	c.expectClosed()
	return msgs[0].(*pgproto3.ErrorResponse)
}
