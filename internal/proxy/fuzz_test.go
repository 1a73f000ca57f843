package proxy_test

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/poolmgr/poolmgr/internal/proxy"
)

// FuzzClientBytes: a fresh loop with trust auth; a client's bytes are
// arbitrary (after a valid startup, or instead of one) and arrive in
// arbitrary chunks; a scripted backend answers whatever reached it.
// Invariants: no panic; the core never Sends to (or pauses, or closes
// twice) a handle it already closed.
//
// mode bits: 1 = prepend a valid startup; 2 = log the backend in;
// 4 = session mode; 8 = statement mode; 16 = end with the client's EOF;
// 32 = end with the backend's EOF.
func FuzzClientBytes(f *testing.F) {
	q := func(m ...encoder) []byte { return enc(f, m...) }
	f.Add(q(&pgproto3.Query{String: "select 1"}, &pgproto3.Terminate{}), []byte{3, 1}, byte(3))
	f.Add(q(&pgproto3.Query{String: "begin"}, &pgproto3.Query{String: "select 1"}), []byte{1, 2, 2, 1}, byte(3|16))
	f.Add(q(&pgproto3.Parse{Name: "s", Query: "select 1"}, &pgproto3.Bind{PreparedStatement: "s"},
		&pgproto3.Describe{ObjectType: 'S', Name: "s"}, &pgproto3.Execute{}, &pgproto3.Sync{},
		&pgproto3.Close{ObjectType: 'S', Name: "s"}, &pgproto3.Sync{}), []byte{7, 3, 1, 3}, byte(3))
	f.Add(q(&pgproto3.Query{String: "DEALLOCATE ALL"}, &pgproto3.Query{String: "discard all"}), []byte{}, byte(3))
	f.Add(q(&pgproto3.Query{String: "select 1"}), []byte{2}, byte(3|8))
	f.Add(q(&pgproto3.Query{String: "select 1"}), []byte{2}, byte(3|4|32))
	f.Add(q(startupMsg("alice", "app", "application_name", "x")), []byte{1}, byte(0))
	f.Add([]byte{0, 0, 0, 8, 4, 210, 22, 47, 0, 0, 0, 16, 4, 210, 22, 46, 0, 0, 0, 1, 0, 0, 0, 2}, []byte{8}, byte(0))
	f.Add([]byte{'Q', 0, 0, 0, 3}, []byte{}, byte(3))
	f.Add([]byte{'z', 0, 0, 0, 4}, []byte{}, byte(3))
	f.Add([]byte("garbage"), []byte{1}, byte(1))
	f.Add(q(&pgproto3.CopyData{Data: []byte("x")}, &pgproto3.CopyDone{}), []byte{1, 0}, byte(3))

	f.Fuzz(func(t *testing.T, data, cuts []byte, mode byte) {
		if len(data) > 1<<16 {
			return
		}
		e := newEnv(t, func(o *proxy.Options) {
			o.PoolSize = 2
			o.ResetQuery = "DISCARD ALL"
			switch {
			case mode&8 != 0:
				o.PoolMode = proxy.ModeStatement
			case mode&4 != 0:
				o.PoolMode = proxy.ModeSession
			}
		})
		c := e.accept()
		if mode&1 != 0 {
			c.sendRaw(enc(t, startupMsg("alice", "app", "application_name", "fuzz")))
		}
		var servers []*srv
		pickUp := func() {
			for _, d := range e.newDials() {
				s, ok := d.EP.(*proxy.Server)
				if !ok {
					d.EP.OnConnected(errConnRefused)
					continue
				}
				sv := &srv{e: e, h: d.H, ep: s}
				servers = append(servers, sv)
				if mode&2 != 0 {
					s.OnConnected(nil)
					sv.read = len(e.net.out[d.H])
					s.OnData(enc(t, loginMsgs(backendPID, backendSecret)...))
				}
			}
		}
		pickUp()
		ci := 0
		next := func() int {
			if ci < len(cuts) {
				ci++
				return int(cuts[ci-1])
			}
			return 0
		}
		answers := [][]byte{
			nil,
			enc(t, selectOne('I')...),
			enc(t, cc("BEGIN"), rfq('T')),
			enc(t, &pgproto3.ParseComplete{}, &pgproto3.BindComplete{}, cc("SELECT 0"), rfq('I')),
			enc(t, errResp("ERROR", "42601", "syntax error"), rfq('I')),
			enc(t, errResp("FATAL", "57P01", "bye")),
			enc(t, cc("SET"), &pgproto3.ParameterStatus{Name: "application_name", Value: "fuzz"}, rfq('I')),
			enc(t, &pgproto3.CloseComplete{}, rfq('I')),
		}
		for len(data) > 0 && !c.closed() {
			n := min(max(next(), 1), len(data))
			c.ep.OnData(data[:n])
			data = data[n:]
			pickUp()
			for _, s := range servers {
				if s.closed() || len(e.net.out[s.h]) == s.read {
					continue
				}
				s.read = len(e.net.out[s.h])
				if a := answers[next()%len(answers)]; a != nil {
					s.ep.OnData(a)
					pickUp()
				}
			}
		}
		e.loop.Tick()
		if mode&32 != 0 {
			for _, s := range servers {
				if !s.closed() {
					s.ep.OnClosed(errConnRefused)
				}
			}
		}
		if mode&16 != 0 && !c.closed() {
			c.ep.OnClosed(errConnRefused)
			if st := c.state(); st != proxy.ClientClosed {
				t.Fatalf("client state %v after OnClosed", st)
			}
		}
		e.loop.Tick()
		if len(e.net.violations) > 0 {
			t.Fatalf("transport contract violations:\n%s", strings.Join(e.net.violations, "\n"))
		}
	})
}

// FuzzServerBytes: a logged-in client sends a request (chosen by req) and
// the backend answers arbitrary bytes in arbitrary chunks, then the client
// sends more and leaves. Invariants: no panic; no transport contract
// violation (Send/PauseRead/Close on a handle the core closed).
func FuzzServerBytes(f *testing.F) {
	f.Add(byte(0), enc(f, selectOne('I')...), []byte{3, 7})
	f.Add(byte(1), enc(f, &pgproto3.ParseComplete{}, &pgproto3.BindComplete{}, cc("SELECT 0"), rfq('I')), []byte{1})
	f.Add(byte(2), enc(f, cc("SET"), &pgproto3.ParameterStatus{Name: "application_name", Value: "z"}, rfq('I'), rfq('I')), []byte{})
	f.Add(byte(3), enc(f, errResp("ERROR", "42601", "x"), rfq('I')), []byte{2})
	f.Add(byte(0), enc(f, errResp("FATAL", "57P01", "bye")), []byte{2})
	f.Add(byte(1), []byte{'Z', 0, 0, 0, 2}, []byte{})
	f.Add(byte(4), enc(f, cc("BEGIN"), rfq('T')), []byte{1})
	f.Fuzz(func(t *testing.T, req byte, data, cuts []byte) {
		e := newEnv(t, func(o *proxy.Options) { o.PoolSize = 1 })
		c, s := e.login("application_name", "a")
		reqs := [][]byte{
			enc(t, &pgproto3.Query{String: "select 1"}),
			enc(t, &pgproto3.Parse{Name: "st", Query: "select 1"}, &pgproto3.Bind{PreparedStatement: "st"}, &pgproto3.Execute{}, &pgproto3.Sync{}),
			enc(t, &pgproto3.Query{String: "set application_name = 'z'"}),
			enc(t, &pgproto3.Parse{Query: "select $1"}, &pgproto3.Describe{ObjectType: 'S'}, &pgproto3.Flush{}),
			enc(t, &pgproto3.Query{String: "begin"}),
		}
		c.sendRaw(reqs[int(req)%len(reqs)])
		ci := 0
		for len(data) > 0 && !s.closed() {
			n := len(data)
			if ci < len(cuts) {
				n = min(max(int(cuts[ci]), 1), n)
				ci++
			}
			s.ep.OnData(data[:n])
			data = data[n:]
		}
		if !c.closed() {
			c.sendRaw(reqs[(int(req)+1)%len(reqs)])
		}
		for _, d := range e.newDials() {
			if sv, ok := d.EP.(*proxy.Server); ok {
				sv.OnConnected(nil)
				sv.OnData(enc(t, loginMsgs(1, 2)...))
			}
		}
		if !c.closed() {
			c.ep.OnClosed(errConnRefused)
		}
		e.loop.Tick()
		if len(e.net.violations) > 0 {
			t.Fatalf("transport contract violations:\n%s", strings.Join(e.net.violations, "\n"))
		}
	})
}
