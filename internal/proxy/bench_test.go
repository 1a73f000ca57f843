package proxy_test

import (
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/poolmgr/poolmgr/internal/proxy"
)

// BenchmarkForwardQuery: one client Query to the server and the server's
// RowDescription + DataRow + CommandComplete + ReadyForQuery back to the
// client, through the core (transaction mode: the server is acquired and
// released every iteration), with a transport that discards bytes.
func BenchmarkForwardQuery(b *testing.B) {
	for _, mode := range []struct {
		name string
		m    proxy.PoolMode
	}{{"transaction", proxy.ModeTransaction}, {"session", proxy.ModeSession}} {
		b.Run(mode.name, func(b *testing.B) {
			e := newEnv(b, func(o *proxy.Options) { o.PoolMode = mode.m })
			c, s := e.login()
			query := enc(b, &pgproto3.Query{String: "select 1"})
			resp := enc(b, selectOne('I')...)
			// Warm up (buffers, pools), then stop recording bytes.
			c.ep.OnData(query)
			s.ep.OnData(resp)
			e.net.discard = true
			b.ReportAllocs()
			b.SetBytes(int64(len(query) + len(resp)))
			for b.Loop() {
				c.ep.OnData(query)
				s.ep.OnData(resp)
			}
			b.StopTimer()
			if st := c.state(); mode.m == proxy.ModeTransaction && st != proxy.ClientIdle {
				b.Fatalf("client %v after the loop", st)
			}
			if len(e.net.violations) > 0 || c.closed() {
				b.Fatalf("broken run: %v", e.net.violations)
			}
		})
	}
}

// BenchmarkForwardExtended: Bind/Execute/Sync of a named prepared statement
// (the transaction-mode statement mapping path).
func BenchmarkForwardExtended(b *testing.B) {
	e := newEnv(b, nil)
	c, s := e.login()
	c.ep.OnData(enc(b, &pgproto3.Parse{Name: "st", Query: "select $1::int"}, &pgproto3.Sync{}))
	s.ep.OnData(enc(b, &pgproto3.ParseComplete{}, rfq('I')))
	req := enc(b, &pgproto3.Bind{PreparedStatement: "st", Parameters: [][]byte{[]byte("1")}}, &pgproto3.Execute{}, &pgproto3.Sync{})
	resp := enc(b, &pgproto3.BindComplete{}, &pgproto3.DataRow{Values: [][]byte{[]byte("1")}}, cc("SELECT 1"), rfq('I'))
	c.ep.OnData(req)
	s.ep.OnData(resp)
	e.net.discard = true
	b.ReportAllocs()
	for b.Loop() {
		c.ep.OnData(req)
		s.ep.OnData(resp)
	}
	b.StopTimer()
	if c.state() != proxy.ClientIdle || len(e.net.violations) > 0 {
		b.Fatalf("client %v, violations %v", c.state(), e.net.violations)
	}
}
