package storm

import (
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/poolmgr/poolmgr/internal/auth"
	"github.com/poolmgr/poolmgr/internal/pgproto"
)

// driver runs one Client over a real TCP connection, reading the server's
// bytes in chunks of a fixed size to exercise every split.
type driver struct {
	t     *testing.T
	conn  net.Conn
	c     Client
	p     *Proto
	chunk int
}

func dialDriver(t *testing.T, s *fakeServer, p *Proto, chunk int) *driver {
	t.Helper()
	conn, err := net.Dial("tcp4", s.addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	d := &driver{t: t, conn: conn, p: p, chunk: chunk}
	if !d.c.Start() {
		t.Fatal("Start on a new client returned false")
	}
	d.write(p.StartupMessage())
	return d
}

func (d *driver) write(b []byte) {
	if _, err := d.conn.Write(b); err != nil {
		d.t.Fatal(err)
	}
}

// until feeds server bytes until an event in want (or EvFatal, or an error)
// shows up, and returns the merged events, the first SQLSTATE and the error.
func (d *driver) until(want uint8) (ev uint8, code string, err error) {
	buf := make([]byte, d.chunk)
	for {
		n, rerr := d.conn.Read(buf)
		if n > 0 {
			res := d.c.Feed(d.p, buf[:n])
			if len(res.Out) > 0 {
				d.write(res.Out)
			}
			ev |= res.Events
			if code == "" {
				code = res.CodeString()
			}
			if res.Err != nil {
				return ev, code, res.Err
			}
			if ev&(want|EvFatal) != 0 {
				return ev, code, nil
			}
		}
		if rerr != nil {
			return ev, code, rerr
		}
	}
}

func login(t *testing.T, d *driver) {
	t.Helper()
	ev, code, err := d.until(EvLoggedIn)
	if err != nil || ev != EvLoggedIn {
		t.Fatalf("login: events %b code %q err %v", ev, code, err)
	}
	if d.c.Phase() != PhaseIdle || d.c.auth != nil || d.c.acc != nil {
		t.Fatalf("after login: phase %s, auth %v, acc %d bytes", d.c.Phase(), d.c.auth != nil, len(d.c.acc))
	}
}

func query(t *testing.T, d *driver, sql string) (uint8, string) {
	t.Helper()
	if !d.c.StartQuery() {
		t.Fatalf("StartQuery in phase %s", d.c.Phase())
	}
	d.write(pgproto.AppendQuery(nil, sql))
	ev, code, err := d.until(EvQueryDone)
	if err != nil {
		t.Fatalf("query %q: %v", sql, err)
	}
	return ev, code
}

func TestClientLoginAndQueries(t *testing.T) {
	for _, method := range []string{"trust", "password", "md5", "scram", "scram-fresh"} {
		s := newFakeServer(t, method)
		for _, chunk := range []int{1, 3, 7, 4096} {
			t.Run(method+"/chunk"+strconv.Itoa(chunk), func(t *testing.T) {
				p := NewProto(Login{User: "app", Password: "secret", Database: "app", AppName: "t", Query: "SELECT 1"}, nil, nil)
				d := dialDriver(t, s, p, chunk)
				login(t, d)
				if ev, code := query(t, d, "SELECT 1"); ev != EvQueryDone || code != "" {
					t.Fatalf("SELECT 1: events %b code %q", ev, code)
				}
				if ev, code := query(t, d, "SELECT fail"); ev != EvQueryDone|EvServerError || code != "42601" {
					t.Fatalf("SELECT fail: events %b code %q", ev, code)
				}
				if ev, _ := query(t, d, "SELECT big"); ev != EvQueryDone || d.c.acc != nil || d.c.need != 0 {
					t.Fatalf("SELECT big: events %b, acc %d, need %d (the DataRow must be skipped, not kept)",
						ev, len(d.c.acc), d.c.need)
				}
				if d.c.Phase() != PhaseIdle {
					t.Fatalf("phase %s after queries", d.c.Phase())
				}
				d.write(TerminateMessage())
				d.c.Finish()
				if d.c.Phase() != PhaseDone {
					t.Fatal("Finish did not end the client")
				}
			})
		}
	}
}

func TestClientWrongPassword(t *testing.T) {
	for _, method := range []string{"password", "md5", "scram", "scram-fresh"} {
		t.Run(method, func(t *testing.T) {
			s := newFakeServer(t, method)
			p := NewProto(Login{User: "app", Password: "wrong", Database: "app"}, nil, nil)
			d := dialDriver(t, s, p, 5)
			ev, code, err := d.until(EvLoggedIn)
			if err != nil || ev != EvServerError|EvFatal || code != "28P01" {
				t.Fatalf("events %b code %q err %v; want ServerError|Fatal 28P01", ev, code, err)
			}
			if d.c.Phase() != PhaseDone || d.c.auth != nil {
				t.Fatalf("phase %s after a failed login", d.c.Phase())
			}
		})
	}
}

func TestClientFatalDuringQuery(t *testing.T) {
	s := newFakeServer(t, "trust")
	p := NewProto(Login{User: "app", Database: "app"}, nil, nil)
	d := dialDriver(t, s, p, 4096)
	login(t, d)
	d.c.StartQuery()
	d.write(pgproto.AppendQuery(nil, "SELECT fatal"))
	buf := make([]byte, 4096)
	n, err := d.conn.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	res := d.c.Feed(p, buf[:n])
	if res.Events != EvServerError|EvFatal || res.CodeString() != "57P01" || res.Severity != 'F' {
		t.Fatalf("result %+v", res)
	}
	if d.c.Phase() != PhaseDone {
		t.Fatalf("phase %s", d.c.Phase())
	}
}

// TestScramKeyCache: a stable salt is derived once and then answered from
// the cached ClientKey; fresh salts are never cached.
func TestScramKeyCache(t *testing.T) {
	for _, tc := range []struct {
		method          string
		derived, cached int64
	}{
		{"scram", 2, 3},
		{"scram-fresh", 5, 0},
	} {
		t.Run(tc.method, func(t *testing.T) {
			s := newFakeServer(t, tc.method)
			p := NewProto(Login{User: "app", Password: "secret", Database: "app"}, nil, nil)
			for i := 0; i < 5; i++ {
				d := dialDriver(t, s, p, 4096)
				login(t, d)
				d.conn.Close()
			}
			c := p.Counts()
			if c.SCRAM != 5 || c.ScramDerived != tc.derived || c.ScramCached != tc.cached {
				t.Fatalf("counts %+v, want derived %d cached %d", c, tc.derived, tc.cached)
			}
			if p.keys.Cached() != (tc.cached > 0) {
				t.Fatalf("key cached = %v", p.keys.Cached())
			}
		})
	}
}

// loginStream is what a trust server sends for a login followed by one
// query result.
func loginStream() []byte {
	b := pgproto.AppendAuth(nil, 0, nil)
	b = pgproto.AppendParameterStatus(b, "server_version", "15")
	b = pgproto.AppendBackendKeyData(b, 1, 2)
	b = pgproto.AppendReadyForQuery(b, 'I')
	return b
}

func queryStream() []byte {
	b := rowDesc()
	b = append(b, dataRow(strings.Repeat("y", 3000))...)
	b = append(b, pgproto.AppendError(nil, pgproto.SevError, "22012", "division by zero")...)
	b = append(b, pgproto.AppendNotice(nil, "NOTICE", "00000", "hi")...)
	return pgproto.AppendReadyForQuery(b, 'I')
}

// TestClientEverySplit feeds the same stream cut in two at every offset.
func TestClientEverySplit(t *testing.T) {
	p := NewProto(Login{User: "u", Database: "d"}, nil, nil)
	ls, qs := loginStream(), queryStream()
	for cut := 0; cut <= len(ls); cut++ {
		var c Client
		c.Start()
		r1 := c.Feed(p, ls[:cut])
		r2 := c.Feed(p, ls[cut:])
		if r1.Err != nil || r2.Err != nil || (r1.Events|r2.Events) != EvLoggedIn {
			t.Fatalf("login cut %d: %+v %+v", cut, r1, r2)
		}
		for qcut := 0; qcut <= len(qs); qcut += 1 + qcut/50 {
			c2 := c
			c2.StartQuery()
			r1 := c2.Feed(p, qs[:qcut])
			code := r1.CodeString()
			r2 := c2.Feed(p, qs[qcut:])
			if code == "" {
				code = r2.CodeString()
			}
			if r1.Err != nil || r2.Err != nil || (r1.Events|r2.Events) != EvQueryDone|EvServerError || code != "22012" {
				t.Fatalf("query cut %d: %+v %+v", qcut, r1, r2)
			}
			if c2.acc != nil || c2.Phase() != PhaseIdle {
				t.Fatalf("query cut %d: state left behind", qcut)
			}
		}
	}
}

func TestClientProtocolErrors(t *testing.T) {
	badLen := []byte{'R', 0, 0, 0, 3}
	for _, tc := range []struct {
		name  string
		phase Phase
		in    []byte
		want  error
	}{
		{"negative length", PhaseAuth, badLen, ErrProtocol},
		{"ReadyForQuery before auth", PhaseAuth, pgproto.AppendReadyForQuery(nil, 'I'), ErrProtocol},
		{"Authentication when idle", PhaseIdle, pgproto.AppendAuth(nil, 0, nil), ErrProtocol},
		{"short Authentication", PhaseAuth, []byte{'R', 0, 0, 0, 6, 0, 0}, ErrProtocol},
		{"GSSAPI requested", PhaseAuth, pgproto.AppendAuth(nil, 7, nil), auth.ErrUnsupported},
		{"huge error message", PhaseAuth, []byte{'E', 0x7f, 0, 0, 0}, ErrProtocol},
		{"SASL continue out of order", PhaseAuth, pgproto.AppendAuth(nil, 11, []byte("r=x,s=c2FsdA==,i=1")), auth.ErrProtocol},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := NewProto(Login{User: "u", Password: "pw", Database: "d"}, nil, nil)
			c := Client{phase: tc.phase}
			res := c.Feed(p, tc.in)
			if !errors.Is(res.Err, tc.want) {
				t.Fatalf("err %v, want %v", res.Err, tc.want)
			}
			if c.Phase() != PhaseDone {
				t.Fatalf("phase %s after an error", c.Phase())
			}
			if r := c.Feed(p, []byte("more")); r.Err != nil || r.Events != 0 {
				t.Fatalf("feeding a done client: %+v", r)
			}
		})
	}
}

func TestClientStartAndQueryGuards(t *testing.T) {
	var c Client
	if c.StartQuery() {
		t.Fatal("StartQuery on a new client")
	}
	if !c.Start() || c.Start() {
		t.Fatal("Start twice")
	}
	if c.StartQuery() {
		t.Fatal("StartQuery before login")
	}
}

func TestParseServerFirst(t *testing.T) {
	salt, iter, ok := parseServerFirst([]byte("r=abcdef,s=c2FsdHNhbHQ=,i=4096"))
	if !ok || string(salt) != "saltsalt" || iter != 4096 {
		t.Fatalf("%q %d %v", salt, iter, ok)
	}
	for _, bad := range []string{"", "r=x", "r=x,s=!!,i=1", "r=x,s=c2FsdA==,i=0", "r=x,s=c2FsdA==,i=z"} {
		if _, _, ok := parseServerFirst([]byte(bad)); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestProtoMessages(t *testing.T) {
	p := NewProto(Login{User: "app", Database: "db", AppName: "x", Query: "SELECT 2"}, nil, nil)
	n, code, body, err := pgproto.StartupFrame(p.StartupMessage())
	if err != nil || n != len(p.StartupMessage()) || code != pgproto.ProtocolVersion3 {
		t.Fatalf("startup: %d %d %v", n, code, err)
	}
	got := map[string]string{}
	pgproto.StartupParams(body, func(k, v []byte) { got[string(k)] = string(v) })
	if got["user"] != "app" || got["database"] != "db" || got["application_name"] != "x" {
		t.Fatalf("params %v", got)
	}
	if q, ok := pgproto.QueryText(p.QueryMessage()[5:]); !ok || string(q) != "SELECT 2" {
		t.Fatalf("query %q", q)
	}
}
