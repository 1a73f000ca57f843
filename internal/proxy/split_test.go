package proxy_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/poolmgr/poolmgr/internal/proxy"
)

// A script is a conversation: bytes from the client or from the (single)
// backend, in order. The same script delivered with any chunking must
// produce the same bytes on both sides.
type scriptStep struct {
	server  bool
	connect bool // server step: report OnConnected(nil) first
	data    []byte
}

type scriptResult struct {
	toServer     []byte
	toClient     []byte // BackendKeyData bodies zeroed (random per run)
	clientClosed bool
	serverClosed bool
	clientState  proxy.ClientState
	serverState  proxy.ServerState
}

// chunker returns the size of the next chunk of step i with rest bytes left.
type chunker func(step, rest int) int

func runScript(t *testing.T, mut func(*proxy.Options), steps []scriptStep, ch chunker) scriptResult {
	t.Helper()
	e := newEnv(t, mut)
	c := e.accept()
	var s *srv
	for i, st := range steps {
		if st.server && s == nil {
			s = e.expectServerDial()
		}
		if st.connect {
			s.ep.OnConnected(nil)
		}
		b := st.data
		for len(b) > 0 {
			n := min(max(ch(i, len(b)), 1), len(b))
			if st.server {
				s.ep.OnData(b[:n])
			} else {
				c.ep.OnData(b[:n])
			}
			b = b[n:]
		}
	}
	if len(e.newDials()) != 0 {
		t.Fatal("script: more than one server dialed")
	}
	r := scriptResult{
		toClient:     normalizeKeys(t, e.net.out[c.h]),
		clientClosed: c.closed(),
		clientState:  c.state(),
	}
	if s != nil {
		r.toServer = e.net.out[s.h]
		r.serverClosed = s.closed()
		r.serverState = s.state()
	}
	if len(e.net.violations) > 0 {
		t.Fatalf("transport contract violations: %v", e.net.violations)
	}
	return r
}

// normalizeKeys zeroes the body of BackendKeyData messages (random keys).
func normalizeKeys(t *testing.T, b []byte) []byte {
	b = bytes.Clone(b)
	// The client stream may start with single-byte SSL answers; none here.
	for i := 0; i+5 <= len(b); {
		n := int(uint32(b[i+1])<<24|uint32(b[i+2])<<16|uint32(b[i+3])<<8|uint32(b[i+4])) + 1
		if n < 5 || i+n > len(b) {
			t.Fatalf("client stream broken at offset %d: %q", i, trunc(b[i:]))
		}
		if b[i] == 'K' {
			clear(b[i+5 : i+n])
		}
		i += n
	}
	return b
}

func splitScript(t *testing.T, appName string) []scriptStep {
	kv := []string{"user", "alice", "database", "app"}
	if appName != "" {
		kv = append(kv, "application_name", appName)
	}
	setResp := []encoder{}
	if appName != "" {
		setResp = []encoder{cc("SET"), &pgproto3.ParameterStatus{Name: "application_name", Value: appName}, rfq('I')}
	}
	e := func(m ...encoder) []byte { return enc(t, m...) }
	first := append(append([]encoder{}, setResp...), selectOne('I')...)
	return []scriptStep{
		{data: startupBytes(kv...)},
		{server: true, connect: true, data: e(loginMsgs(backendPID, backendSecret)...)},
		{data: e(&pgproto3.Query{String: "select 1"})},
		{server: true, data: e(first...)},
		// unnamed extended query
		{data: e(&pgproto3.Parse{Query: "select $1::int"}, &pgproto3.Bind{Parameters: [][]byte{[]byte("7")}},
			&pgproto3.Describe{ObjectType: 'P'}, &pgproto3.Execute{}, &pgproto3.Sync{})},
		{server: true, data: e(&pgproto3.ParseComplete{}, &pgproto3.BindComplete{},
			&pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte("int4"), DataTypeOID: 23, DataTypeSize: 4, TypeModifier: -1}}},
			&pgproto3.DataRow{Values: [][]byte{[]byte("7")}}, cc("SELECT 1"), rfq('I'))},
		// named statement (renamed by the proxy in transaction mode)
		{data: e(&pgproto3.Parse{Name: "st", Query: "select 42"}, &pgproto3.Bind{PreparedStatement: "st"},
			&pgproto3.Execute{}, &pgproto3.Sync{})},
		{server: true, data: e(&pgproto3.ParseComplete{}, &pgproto3.BindComplete{},
			&pgproto3.DataRow{Values: [][]byte{[]byte("42")}}, cc("SELECT 1"), rfq('I'))},
		// a transaction with a long row
		{data: e(&pgproto3.Query{String: "begin"})},
		{server: true, data: e(cc("BEGIN"), rfq('T'))},
		{data: e(&pgproto3.Query{String: "select repeat('x', 300)"})},
		{server: true, data: e(&pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte("repeat"), DataTypeOID: 25, DataTypeSize: -1, TypeModifier: -1}}},
			&pgproto3.DataRow{Values: [][]byte{bytes.Repeat([]byte("x"), 300)}},
			&pgproto3.NoticeResponse{Severity: "NOTICE", SeverityUnlocalized: "NOTICE", Code: "00000", Message: "note"},
			cc("SELECT 1"), rfq('T'))},
		{data: e(&pgproto3.Query{String: "commit"})},
		{server: true, data: e(cc("COMMIT"), rfq('I'))},
		{data: e(&pgproto3.Terminate{})},
	}
}

func checkScriptEnd(t *testing.T, r scriptResult) {
	t.Helper()
	if !r.clientClosed || r.clientState != proxy.ClientClosed {
		t.Fatalf("client not closed at the end (state %v)", r.clientState)
	}
	if r.serverClosed || r.serverState != proxy.ServerIdle {
		t.Fatalf("server closed=%v state %v at the end, want idle", r.serverClosed, r.serverState)
	}
	// After the startup packet, no Terminate reached the server.
	if len(r.toServer) < 4 {
		t.Fatal("server got nothing")
	}
	n := int(uint32(r.toServer[0])<<24 | uint32(r.toServer[1])<<16 | uint32(r.toServer[2])<<8 | uint32(r.toServer[3]))
	for _, m := range splitMsgs(t, r.toServer[n:]) {
		if m[0] == 'X' {
			t.Fatal("Terminate forwarded to the server")
		}
	}
}

func TestSplitEveryByteBoundary(t *testing.T) {
	for _, app := range []string{"", "myapp"} {
		t.Run(fmt.Sprintf("application_name=%q", app), func(t *testing.T) {
			steps := splitScript(t, app)
			whole := runScript(t, nil, steps, func(int, int) int { return 1 << 30 })
			checkScriptEnd(t, whole)
			if app != "" && !bytes.Contains(whole.toServer, []byte("SET application_name = '"+app+"'")) {
				t.Fatalf("no parameter sync in %s", descStream(t, whole.toServer))
			}
			if bytes.Contains(whole.toClient, []byte("SET\x00")) {
				t.Fatal("the injected SET's CommandComplete reached the client")
			}

			compare := func(name string, r scriptResult) {
				t.Helper()
				if !bytes.Equal(r.toServer, whole.toServer) {
					t.Fatalf("%s: server bytes differ from the unsplit run\n got %s\nwant %s", name,
						descStream(t, r.toServer), descStream(t, whole.toServer))
				}
				if !bytes.Equal(r.toClient, whole.toClient) {
					t.Fatalf("%s: client bytes differ from the unsplit run\n got %q\nwant %q", name, r.toClient, whole.toClient)
				}
				if r.clientClosed != whole.clientClosed || r.serverClosed != whole.serverClosed ||
					r.clientState != whole.clientState || r.serverState != whole.serverState {
					t.Fatalf("%s: end states differ: %+v vs %+v", name, r, whole)
				}
			}

			compare("1 byte at a time", runScript(t, nil, steps, func(int, int) int { return 1 }))

			// Every step cut in two at every position.
			for i, st := range steps {
				for k := 1; k < len(st.data); k++ {
					r := runScript(t, nil, steps, func(step, rest int) int {
						if step == i && rest == len(st.data) {
							return k
						}
						return rest
					})
					compare(fmt.Sprintf("step %d cut at %d", i, k), r)
				}
			}

			rng := rand.New(rand.NewPCG(1, 2))
			for n := 0; n < 200; n++ {
				seed := rng.Uint64()
				r := rand.New(rand.NewPCG(seed, 0))
				compare(fmt.Sprintf("random chunks seed %d", seed), runScript(t, nil, steps, func(_, rest int) int {
					return 1 + r.IntN(min(rest, 1+r.IntN(40)))
				}))
			}
		})
	}
}

// descStream describes a stream to the backend (startup, then messages).
func descStream(t *testing.T, b []byte) string {
	if len(b) < 4 {
		return fmt.Sprintf("%q", b)
	}
	n := int(uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]))
	if n > len(b) {
		return fmt.Sprintf("%q", b)
	}
	return fmt.Sprintf("startup + %v", describeAll(decodeFrontend(t, b[n:])))
}

// The same in session mode (no message inspection).
func TestSplitEveryByteBoundarySession(t *testing.T) {
	mut := func(o *proxy.Options) { o.PoolMode = proxy.ModeSession }
	steps := splitScript(t, "")
	whole := runScript(t, mut, steps, func(int, int) int { return 1 << 30 })
	r := runScript(t, mut, steps, func(int, int) int { return 1 })
	if !bytes.Equal(r.toServer, whole.toServer) {
		t.Fatalf("server bytes differ:\n got %s\nwant %s", descStream(t, r.toServer), descStream(t, whole.toServer))
	}
	if !bytes.Equal(r.toClient, whole.toClient) {
		t.Fatalf("client bytes differ")
	}
	if !r.clientClosed {
		t.Fatal("client not closed")
	}
}
