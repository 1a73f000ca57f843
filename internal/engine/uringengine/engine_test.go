//go:build linux

package uringengine_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/poolmgr/poolmgr/internal/engine/uringengine"
	"github.com/poolmgr/poolmgr/internal/proxy"
)

// closedPort returns a local TCP port nothing listens on.
func closedPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// blackhole returns a local address whose SYNs go unanswered: a listener
// with a full accept queue (the kernel drops further SYNs).
func blackhole(t *testing.T) string {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, _ := syscall.Getsockname(fd)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port))
	for i := 0; ; i++ {
		c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond)
		if err != nil {
			return addr // the queue is full
		}
		t.Cleanup(func() { c.Close() })
		if i > 20 {
			t.Skip("could not fill a listen queue to get an unanswered address")
		}
	}
}

// TestSSLRequestAndEOF: the core answers an SSLRequest with 'N' through the
// engine; a client that just goes away is reported to the core (OnClosed).
func TestSSLRequestAndEOF(t *testing.T) {
	p := startProxy(t, []string{closedPort(t)}, nil, uringengine.Options{}, 1)
	c, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte{0, 0, 0, 8, 4, 0xd2, 0x16, 0x2f}); err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	var b [1]byte
	if _, err := io.ReadFull(c, b[:]); err != nil || b[0] != 'N' {
		t.Fatalf("SSLRequest answer %q %v, want 'N'", b[0], err)
	}
	waitFor(t, 5*time.Second, "the core to see the client", func() bool { return p.clients() == 1 })
	if p.e.Drained() {
		t.Error("Drained() with a client connected")
	}
	c.Close()
	waitFor(t, 5*time.Second, "the core to see the client go", func() bool { return p.clients() == 0 })
	waitFor(t, 5*time.Second, "Drained()", p.e.Drained)
}

// TestDirectDescriptorsAndManyClients: 200 clients are held without a
// single entry in the process fd table, and all of them are released.
func TestDirectDescriptorsAndManyClients(t *testing.T) {
	p := startProxy(t, []string{closedPort(t)}, nil, uringengine.Options{}, 1)
	const n = 200
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range n {
		c, err := net.Dial("tcp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	waitFor(t, 10*time.Second, "200 clients in the core", func() bool { return p.clients() == n })
	inTable, est := proxySocketsInFDTable(t, p.port)
	t.Logf("established proxy-side sockets: %d, of which in the fd table: %d", est, inTable)
	if est < n {
		t.Errorf("only %d established proxy-side sockets, want %d", est, n)
	}
	if inTable != 0 {
		t.Errorf("%d proxy-side client sockets are in the fd table; direct descriptors should take none", inTable)
	}
	for _, c := range conns {
		c.Close()
	}
	conns = conns[:0]
	waitFor(t, 10*time.Second, "the clients to be released", func() bool { return p.clients() == 0 })
}

// TestRefuseWhenSlotsRunOut: a full file table answers FATAL 53300, and
// the proxy serves again once slots free.
func TestRefuseWhenSlotsRunOut(t *testing.T) {
	eo := uringengine.Options{FileSlots: 16, ServerSlots: 2, RefuseSlots: 2, Accepts: 2}
	p := startProxy(t, []string{closedPort(t)}, nil, eo, 1)
	// 16 - 2 refusal slots = 14 regular slots, 2 of them kept for servers.
	const capacity = 12
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range capacity {
		c, err := net.Dial("tcp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	waitFor(t, 5*time.Second, "12 clients", func() bool { return p.clients() == capacity })

	refused := func() (string, error) {
		c, err := net.Dial("tcp", p.addr)
		if err != nil {
			return "", err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write(startupMsg("user", "app", "database", "app")); err != nil {
			return "", err
		}
		typ, body, err := readMsg(c)
		if err != nil {
			return "", err
		}
		if typ != 'E' {
			return "", errors.New("got message " + string(typ) + ", want ErrorResponse")
		}
		return errorCode(body), nil
	}
	for i := range 3 {
		code, err := refused()
		if err != nil || code != "53300" {
			t.Fatalf("client %d beyond the table: code %q, err %v; want 53300", capacity+i+1, code, err)
		}
	}
	if got := p.clients(); got != capacity {
		t.Errorf("core has %d clients, want %d (refusals must not reach the core)", got, capacity)
	}

	// Free two slots: the armed refusal accept is cancelled and the next two
	// clients get in.
	conns[0].Close()
	conns[1].Close()
	conns = conns[2:]
	waitFor(t, 5*time.Second, "slots to free", func() bool { return p.clients() == capacity-2 })
	time.Sleep(100 * time.Millisecond) // let the loop re-arm
	for i := range 2 {
		c, err := net.Dial("tcp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		waitFor(t, 5*time.Second, "a freed slot to take a new client", func() bool { return p.clients() == capacity-1+i })
	}
	if code, err := refused(); err != nil || code != "53300" {
		t.Fatalf("full again: code %q, err %v; want 53300", code, err)
	}
}

// TestDialFailureReachesClient: a backend that refuses connections makes the
// core's Dial fail (OnConnected(err)), and the client hears about it.
func TestDialFailureReachesClient(t *testing.T) {
	p := startProxy(t, []string{closedPort(t)}, nil, uringengine.Options{}, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	_, err := pgx.Connect(ctx, p.connString())
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		t.Fatalf("connect through a proxy whose backend is down: %v, want a PostgreSQL error", err)
	}
	t.Logf("got %s: %s", pe.Code, pe.Message)
	if pe.Code[:2] != "08" && pe.Code != "57P03" && pe.Code != "53300" {
		t.Errorf("SQLSTATE %s, want a connection-failure class", pe.Code)
	}
}

// TestConnectTimeoutClosesConnectingHandle: a backend that never answers the
// SYN; the core's server_connect_timeout closes the connecting handle (the
// engine cancels the CONNECT) again and again; no slot leaks.
func TestConnectTimeoutClosesConnectingHandle(t *testing.T) {
	var logins atomic.Int32
	p := startProxy(t, []string{blackhole(t)}, func(o *proxy.Options) {
		o.ServerConnectTimeout = 200 * time.Millisecond
		o.Log = slog.New(countHandler{&logins})
	}, uringengine.Options{}, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := pgx.Connect(ctx, p.connString()); err == nil {
		t.Fatal("connected through an unreachable backend")
	}
	// The core backs off a backend whose connects fail (100 ms doubling) and
	// answers the waiting client with an error: at least one timeout.
	if n := logins.Load(); n < 1 {
		t.Errorf("%d connect timeouts reported by the core, want at least one", n)
	}
	waitFor(t, 5*time.Second, "no connection left", func() bool { return uringengine.ConnsInUse(p.e)[0] == 0 })
}

// countHandler counts the core's "server login failed" warnings.
type countHandler struct{ n *atomic.Int32 }

func (h countHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "server login failed" {
		h.n.Add(1)
	}
	return nil
}
func (h countHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countHandler) WithGroup(string) slog.Handler      { return h }

// TestEachAndPost: Each runs on the loop thread; Post from many goroutines
// wakes the loop and runs everything.
func TestEachAndPost(t *testing.T) {
	p := startProxy(t, []string{closedPort(t)}, nil, uringengine.Options{}, 2)
	var ran atomic.Int32
	p.e.Each(func(l *proxy.Loop) { ran.Add(1) })
	if ran.Load() != 2 {
		t.Fatalf("Each ran %d times, want 2", ran.Load())
	}
	// Many concurrent Each calls (each a Post + eventfd wake-up).
	done := make(chan struct{})
	for range 20 {
		go func() {
			for range 50 {
				p.e.Each(func(*proxy.Loop) { ran.Add(1) })
			}
			done <- struct{}{}
		}()
	}
	for range 20 {
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatal("Each did not return: a Post was lost")
		}
	}
	if got := ran.Load(); got != 2+20*50*2 {
		t.Fatalf("ran %d, want %d", got, 2+20*50*2)
	}
}

// TestURingRefusesWhenUnavailable is covered by app (pickEngine); here:
// Listen twice fails, Addr is the bound port.
func TestListenTwice(t *testing.T) {
	p := startProxy(t, []string{closedPort(t)}, nil, uringengine.Options{}, 1)
	if p.port == 0 {
		t.Fatal("Addr() has no port")
	}
	if err := p.e.Listen("127.0.0.1:0"); err == nil {
		t.Fatal("second Listen succeeded")
	}
}

// TestStopAccepting: after StopAccepting new connections are refused by the
// kernel, existing ones keep working.
func TestStopAccepting(t *testing.T) {
	p := startProxy(t, []string{closedPort(t)}, nil, uringengine.Options{}, 1)
	c, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitFor(t, 5*time.Second, "client", func() bool { return p.clients() == 1 })
	p.e.StopAccepting()
	waitFor(t, 5*time.Second, "the listener to close", func() bool {
		c2, err := net.DialTimeout("tcp", p.addr, time.Second)
		if err != nil {
			return true
		}
		c2.Close()
		return false
	})
	if _, err := c.Write([]byte{0, 0, 0, 8, 4, 0xd2, 0x16, 0x2f}); err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	var b [1]byte
	if _, err := io.ReadFull(c, b[:]); err != nil || b[0] != 'N' {
		t.Fatalf("existing client after StopAccepting: %q %v", b[0], err)
	}
}

// TestSendThenClose: the core refuses a client over max_client_connections
// with a FATAL and closes it in the same event; the engine must write the
// error before closing.
func TestSendThenClose(t *testing.T) {
	p := startProxy(t, []string{closedPort(t)}, func(o *proxy.Options) { o.MaxClients = 1 }, uringengine.Options{}, 1)
	first, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	waitFor(t, 5*time.Second, "first client", func() bool { return p.clients() == 1 })
	for i := range 20 {
		c, err := net.Dial("tcp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write(startupMsg("user", "app", "database", "app")); err != nil {
			t.Fatal(err)
		}
		typ, body, err := readMsg(c)
		if err != nil || typ != 'E' || errorCode(body) != "53300" {
			t.Fatalf("client %d over the limit: %q %q %v, want FATAL 53300", i, typ, errorCode(body), err)
		}
		var b [1]byte
		if n, err := c.Read(b[:]); n != 0 || err != io.EOF {
			t.Fatalf("after the FATAL: %d %v, want EOF", n, err)
		}
		c.Close()
	}
	waitFor(t, 5*time.Second, "refused clients released", func() bool { return uringengine.ConnsInUse(p.e)[0] == 1 })
}

// TestChurn: many short connections, some sending a request, some closing
// abruptly (RST); nothing leaks.
func TestChurn(t *testing.T) {
	p := startProxy(t, []string{closedPort(t)}, nil, uringengine.Options{}, 2)
	for i := range 1000 {
		c, err := net.Dial("tcp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		switch i % 3 {
		case 0:
			c.Close()
		case 1:
			c.Write([]byte{0, 0, 0, 8, 4, 0xd2, 0x16, 0x2f})
			var b [1]byte
			c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.ReadFull(c, b[:]); err != nil || b[0] != 'N' {
				t.Fatalf("conn %d: %q %v", i, b[0], err)
			}
			c.Close()
		case 2:
			c.(*net.TCPConn).SetLinger(0) // RST
			c.Write([]byte{0, 0, 0, 8, 4, 0xd2, 0x16, 0x2f})
			c.Close()
		}
	}
	waitFor(t, 10*time.Second, "every connection released", func() bool {
		u := uringengine.ConnsInUse(p.e)
		return p.clients() == 0 && u[0] == 0 && u[1] == 0
	})
}
