package admin

import (
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/poolmgr/poolmgr/internal/config"
	"github.com/poolmgr/poolmgr/internal/pgproto"
	"github.com/poolmgr/poolmgr/internal/proxy"
)

var sigMu sync.Mutex // guards the signals recorded by newTestHandler

// fakeEngine runs posted functions one at a time (like an engine's loop
// goroutine) and ignores I/O.
type fakeEngine struct{ mu sync.Mutex }

func (e *fakeEngine) Post(fn func()) {
	go func() { e.mu.Lock(); defer e.mu.Unlock(); fn() }()
}
func (e *fakeEngine) Send(proxy.Handle, []byte)                {}
func (e *fakeEngine) Close(proxy.Handle)                       {}
func (e *fakeEngine) Dial(string, proxy.Endpoint) proxy.Handle { return 0 }
func (e *fakeEngine) PauseRead(proxy.Handle, bool)             {}

// newTestHandler returns a console over a core with one loop and one client
// still in startup (from 10.1.2.3:4567).
func newTestHandler(t *testing.T) (*Handler, *[]syscall.Signal) {
	t.Helper()
	sh := proxy.NewShared(&proxy.Options{PoolSize: 5, MaxClients: 100, MaxServersPerBackend: 10},
		[]string{"127.0.0.1:20000", "127.0.0.1:20001"})
	l := proxy.NewLoop(sh, 0)
	e := &fakeEngine{}
	l.Bind(e, e)
	e.mu.Lock()
	l.Accept(1, netip.MustParseAddrPort("10.1.2.3:4567"))
	e.mu.Unlock()
	var sigs []syscall.Signal
	cfg := config.Default()
	cfg.Pool.Bind = "127.0.0.1:6432"
	h := New(Options{Shared: sh, Config: cfg, Version: "9.9.9", Engine: "fallback",
		Signal: func(s syscall.Signal) error { sigMu.Lock(); sigs = append(sigs, s); sigMu.Unlock(); return nil }})
	return h, &sigs
}

// result is a decoded answer.
type result struct {
	cols    []string
	oids    []uint32
	rows    [][]*string
	tags    []string
	errors  []string // "CODE message"
	notices []string
	empty   bool
}

func decode(t *testing.T, b []byte) result {
	t.Helper()
	var r result
	for _, m := range splitMessages(t, b) {
		switch m.typ {
		case pgproto.MsgRowDescription:
			r.cols, r.oids = nil, nil
			for _, f := range decodeRowDescription(t, m.body) {
				r.cols = append(r.cols, f.name)
				r.oids = append(r.oids, f.oid)
			}
		case pgproto.MsgDataRow:
			r.rows = append(r.rows, decodeDataRow(t, m.body))
		case pgproto.MsgCommandComplete:
			r.tags = append(r.tags, strings.TrimSuffix(string(m.body), "\x00"))
		case pgproto.MsgErrorResponse, pgproto.MsgNoticeResponse:
			fields := map[byte]string{}
			for b := m.body; len(b) > 1; {
				k := b[0]
				j := 1
				for b[j] != 0 {
					j++
				}
				fields[k] = string(b[1:j])
				b = b[j+1:]
			}
			s := fields['C'] + " " + fields['M']
			if m.typ == pgproto.MsgErrorResponse {
				r.errors = append(r.errors, s)
			} else {
				r.notices = append(r.notices, fields['S']+" "+s)
			}
		case pgproto.MsgEmptyQuery:
			r.empty = true
		default:
			t.Fatalf("unexpected message %q", m.typ)
		}
	}
	return r
}

func (r result) col(name string) int {
	for i, c := range r.cols {
		if c == name {
			return i
		}
	}
	return -1
}

func exec(t *testing.T, h *Handler, admin bool, sql string) result {
	t.Helper()
	b, _, _ := h.Exec("tester", admin, sql)
	return decode(t, b)
}

func TestShowCommandsColumns(t *testing.T) {
	h, _ := newTestHandler(t)
	for _, tc := range []struct {
		sql  string
		cols []string // must be present, in this order
	}{
		{"SHOW POOLS", []string{"database", "user", "cl_active", "cl_waiting", "cl_active_cancel_req", "cl_waiting_cancel_req",
			"sv_active", "sv_active_cancel", "sv_being_canceled", "sv_idle", "sv_used", "sv_tested", "sv_login", "maxwait",
			"maxwait_us", "pool_mode"}},
		{"SHOW CLIENTS", []string{"type", "user", "database", "replication", "state", "addr", "port", "local_addr",
			"local_port", "connect_time", "request_time", "wait", "wait_us", "close_needed", "ptr", "link", "remote_pid",
			"tls", "application_name", "prepared_statements", "id"}},
		{"SHOW SERVERS", []string{"type", "user", "database", "replication", "state", "addr", "port"}},
		{"SHOW STATS", []string{"database", "total_server_assignment_count", "total_xact_count", "total_query_count",
			"total_received", "total_sent", "total_xact_time", "total_query_time", "total_wait_time", "total_client_parse_count",
			"total_server_parse_count", "total_bind_count", "avg_server_assignment_count", "avg_xact_count", "avg_query_count",
			"avg_recv", "avg_sent", "avg_xact_time", "avg_query_time", "avg_wait_time"}},
		{"SHOW STATS_TOTALS", []string{"database", "server_assignment_count", "xact_count", "query_count", "bytes_received",
			"bytes_sent", "xact_time", "query_time", "wait_time"}},
		{"SHOW STATS_AVERAGES", []string{"database", "server_assignment_count", "xact_count", "query_count", "bytes_received"}},
		{"SHOW TOTALS", []string{"name", "value"}},
		{"SHOW DATABASES", []string{"name", "host", "port", "database", "force_user", "pool_size", "min_pool_size",
			"reserve_pool_size", "server_lifetime", "pool_mode", "load_balance_hosts", "max_connections",
			"current_connections", "max_client_connections", "current_client_connections", "paused", "disabled"}},
		{"SHOW CONFIG", []string{"key", "value", "default", "changeable"}},
		{"SHOW VERSION", []string{"version"}},
		{"SHOW LISTS", []string{"list", "items"}},
		{"SHOW STATE", []string{"key", "value"}},
		{"SHOW BACKENDS", []string{"backend", "role", "health", "lag", "weight", "state"}},
		{"SHOW CACHE", []string{"status"}},
		{"SHOW ENGINE", []string{"loop", "engine", "clients", "servers"}},
	} {
		r := exec(t, h, false, tc.sql)
		if len(r.errors) > 0 || len(r.tags) != 1 || r.tags[0] != "SHOW" {
			t.Errorf("%s: errors %v tags %v", tc.sql, r.errors, r.tags)
			continue
		}
		for i, c := range tc.cols {
			if i >= len(r.cols) || r.cols[i] != c {
				t.Errorf("%s: columns %v, want %v first", tc.sql, r.cols, tc.cols)
				break
			}
		}
		for _, row := range r.rows {
			if len(row) != len(r.cols) {
				t.Errorf("%s: row of %d values for %d columns", tc.sql, len(row), len(r.cols))
			}
		}
	}
}

func TestShowValues(t *testing.T) {
	h, _ := newTestHandler(t)
	r := exec(t, h, false, "SHOW VERSION")
	if len(r.rows) != 1 || *r.rows[0][0] != "poolmgr 9.9.9" {
		t.Errorf("SHOW VERSION rows %v", r.rows)
	}
	r = exec(t, h, false, "SHOW CLIENTS")
	if len(r.rows) != 1 {
		t.Fatalf("SHOW CLIENTS: %d rows, want the one client", len(r.rows))
	}
	row := r.rows[0]
	for col, want := range map[string]string{"type": "C", "state": "login", "addr": "10.1.2.3", "port": "4567",
		"local_addr": "127.0.0.1", "local_port": "6432"} {
		if v := row[r.col(col)]; v == nil || *v != want {
			t.Errorf("SHOW CLIENTS %s = %v, want %s", col, v, want)
		}
	}
	if r.oids[r.col("port")] != OIDInt8 || r.oids[r.col("addr")] != OIDText {
		t.Errorf("SHOW CLIENTS types %v", r.oids)
	}
	r = exec(t, h, false, "SHOW BACKENDS")
	if len(r.rows) != 2 || *r.rows[0][0] != "127.0.0.1:20000" || *r.rows[0][r.col("lag")] != "n/a" {
		t.Errorf("SHOW BACKENDS rows %v", r.rows)
	}
	r = exec(t, h, false, "SHOW CACHE")
	if len(r.rows) != 1 || *r.rows[0][0] != "disabled" {
		t.Errorf("SHOW CACHE rows %v", r.rows)
	}
	r = exec(t, h, false, "SHOW CONFIG")
	cfg := map[string]string{}
	for _, row := range r.rows {
		cfg[*row[0]] = *row[1]
	}
	for k, want := range map[string]string{"pool_size": "5", "max_client_conn": "100", "bind": "127.0.0.1:6432",
		"backends": "127.0.0.1:20000,127.0.0.1:20001", "query_wait_timeout": "0", "pool_mode": "transaction"} {
		if cfg[k] != want {
			t.Errorf("SHOW CONFIG %s = %q, want %q", k, cfg[k], want)
		}
	}
	r = exec(t, h, false, "SHOW ENGINE")
	if len(r.rows) != 1 || *r.rows[0][r.col("clients")] != "1" || *r.rows[0][r.col("engine")] != "fallback" {
		t.Errorf("SHOW ENGINE rows %v", r.rows)
	}
}

func TestPermissionsAndErrors(t *testing.T) {
	h, sigs := newTestHandler(t)
	for _, tc := range []struct {
		sql   string
		admin bool
		code  string
	}{
		{"PAUSE", false, codeInsufficient},
		{"RESUME app", false, codeInsufficient},
		{"RELOAD", false, codeInsufficient},
		{"SHUTDOWN", false, codeInsufficient},
		{"KILL app", false, codeInsufficient},
		{"RECONNECT", false, codeInsufficient},
		{"DRAIN 127.0.0.1:20001", false, codeInsufficient},
		{"DRAIN 127.0.0.1:1", true, codeUndefinedObject},
		{"DRAIN", true, codeSyntax},
		{"KILL", true, codeSyntax},
		{"KILL pgbouncer", true, codeSyntax},
		{"KILL a b", true, codeSyntax},
		{"PAUSE a b", true, codeSyntax},
		{"SHUTDOWN NOW", true, codeSyntax},
		{"SHOW NOSUCH", false, codeSyntax},
		{"SHOW POOLS extra", false, codeSyntax},
		{"SHOW FDS", false, codeNotSupported},
		{"SELECT 1", true, codeSyntax},
		{"SHOW", true, codeSyntax},
		{"SUSPEND", true, codeNotSupported},
	} {
		r := exec(t, h, tc.admin, tc.sql)
		if len(r.errors) != 1 || !strings.HasPrefix(r.errors[0], tc.code+" ") {
			t.Errorf("%s (admin=%v): errors %v, want one %s", tc.sql, tc.admin, r.errors, tc.code)
		}
	}
	if len(*sigs) != 0 {
		t.Errorf("signals sent by refused commands: %v", *sigs)
	}
}

func TestCommands(t *testing.T) {
	h, sigs := newTestHandler(t)
	r := exec(t, h, true, "RELOAD")
	if len(r.errors) > 0 || len(r.tags) != 1 || r.tags[0] != "RELOAD" || len(*sigs) != 1 || (*sigs)[0] != syscall.SIGHUP {
		t.Errorf("RELOAD: %+v, signals %v", r, *sigs)
	}
	for _, sql := range []string{"PAUSE", "RESUME", "PAUSE app", "RESUME app", "RECONNECT", "RECONNECT app", "KILL app"} {
		r := exec(t, h, true, sql)
		verb := strings.Fields(sql)[0]
		if len(r.errors) > 0 || len(r.tags) != 1 || r.tags[0] != verb {
			t.Errorf("%s: %+v", sql, r)
		}
	}
	// SET is accepted (ignored) for everyone; empty queries answer EmptyQueryResponse.
	if r := exec(t, h, false, "SET extra_float_digits = 3"); len(r.errors) > 0 || r.tags[0] != "SET" || len(r.notices) != 1 {
		t.Errorf("SET: %+v", r)
	}
	if r := exec(t, h, false, " ; "); !r.empty {
		t.Errorf("empty query: %+v", r)
	}
	// A failing statement stops a multi-statement query.
	r = exec(t, h, false, "SHOW VERSION; SHOW NOSUCH; SHOW VERSION")
	if len(r.tags) != 1 || len(r.errors) != 1 {
		t.Errorf("multi-statement: %+v", r)
	}

	b, closeAfter, after := h.Exec("tester", true, "SHUTDOWN")
	r = decode(t, b)
	if len(r.errors) > 0 || r.tags[0] != "SHUTDOWN" || !closeAfter || after == nil {
		t.Fatalf("SHUTDOWN: %+v close=%v", r, closeAfter)
	}
	if len(*sigs) != 1 {
		t.Fatalf("SIGTERM sent before the reply: %v", *sigs)
	}
	after()
	deadline := time.Now().Add(5 * time.Second)
	for {
		h.o.Log.Debug("waiting for SIGTERM")
		sigMu.Lock()
		n := len(*sigs)
		sigMu.Unlock()
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no SIGTERM after SHUTDOWN's reply")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if (*sigs)[1] != syscall.SIGTERM {
		t.Errorf("signals %v", *sigs)
	}
}

func TestParseErrorAnswer(t *testing.T) {
	h, _ := newTestHandler(t)
	r := exec(t, h, true, `KILL "x`)
	if len(r.errors) != 1 || !strings.HasPrefix(r.errors[0], codeSyntax) {
		t.Errorf("errors %v", r.errors)
	}
}
