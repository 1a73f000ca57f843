//go:build linux

package uringengine_test

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/poolmgr/poolmgr/internal/auth"
	"github.com/poolmgr/poolmgr/internal/engine/uringengine"
	"github.com/poolmgr/poolmgr/internal/proxy"
	"github.com/poolmgr/poolmgr/internal/testutil"
	"github.com/poolmgr/poolmgr/internal/uring"
)

// requireUring skips when io_uring is not usable (the engine refuses to start).
func requireUring(t testing.TB) {
	t.Helper()
	if _, err := uring.Probe(); err != nil {
		t.Skipf("io_uring not usable here: %v", err)
	}
}

// pgAddr is testutil.PostgresAddr.
func pgAddr(t testing.TB) string { return testutil.PostgresAddr(t) }

func testOptions(t testing.TB) *proxy.Options {
	lvl := slog.LevelWarn
	if os.Getenv("POOLMGR_TEST_DEBUG") != "" {
		lvl = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: lvl}))
	return &proxy.Options{
		PoolMode:                    proxy.ModeTransaction,
		PoolSize:                    20,
		MaxClients:                  100000,
		MaxServersPerBackend:        50,
		MaxMessageSize:              64 << 20,
		MaxPreparedStatements:       200,
		MaxClientPreparedStatements: 10000,
		QueryWaitTimeout:            30 * time.Second,
		ServerIdleTimeout:           60 * time.Second,
		ServerLifetime:              time.Hour,
		ServerConnectTimeout:        5 * time.Second,
		ServerLoginRetry:            200 * time.Millisecond,
		ClientLoginTimeout:          60 * time.Second,
		ShutdownTimeout:             5 * time.Second,
		AuthType:                    proxy.AuthTrust,
		Secrets:                     map[string]auth.Secret{"app": auth.ParseSecret("app")},
		Log:                         log,
	}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

type testProxy struct {
	e    *uringengine.Engine
	sh   *proxy.Shared
	addr string
	port int
}

// startProxy runs the real core on the io_uring engine on 127.0.0.1:0.
func startProxy(t testing.TB, backends []string, mod func(*proxy.Options), eo uringengine.Options, loops int) *testProxy {
	t.Helper()
	requireUring(t)
	o := testOptions(t)
	if mod != nil {
		mod(o)
	}
	sh := proxy.NewShared(o, backends)
	cores := make([]*proxy.Loop, loops)
	for i := range cores {
		cores[i] = proxy.NewLoop(sh, i)
	}
	e, err := uringengine.NewWithOptions(cores, o.Log, func() time.Duration { return 5 * time.Second }, eo)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Listen("127.0.0.1:0"); err != nil {
		e.Close()
		t.Fatal(err)
	}
	runErr := make(chan error, 1)
	go func() { runErr <- e.Run() }()
	t.Cleanup(func() {
		e.StopAccepting()
		if err := <-runErr; err != nil {
			t.Errorf("Run: %v", err)
		}
		e.Close()
	})
	ta := e.Addr().(*net.TCPAddr)
	return &testProxy{e: e, sh: sh, addr: ta.String(), port: ta.Port}
}

func (p *testProxy) connString() string {
	return fmt.Sprintf("postgres://app:app@%s/app?sslmode=disable&connect_timeout=10", p.addr)
}

// clients returns the number of clients the core's loops hold.
func (p *testProxy) clients() int {
	n := 0
	p.e.Each(func(l *proxy.Loop) { n += l.Clients() })
	return n
}

func waitFor(t testing.TB, d time.Duration, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startupMsg is a protocol 3.0 StartupMessage.
func startupMsg(kv ...string) []byte {
	b := []byte{0, 0, 0, 0, 0, 3, 0, 0}
	for _, s := range kv {
		b = append(b, s...)
		b = append(b, 0)
	}
	b = append(b, 0)
	binary.BigEndian.PutUint32(b, uint32(len(b)))
	return b
}

// readMsg reads one backend message.
func readMsg(r io.Reader) (byte, []byte, error) {
	var h [5]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	n := int(binary.BigEndian.Uint32(h[1:])) - 4
	if n < 0 || n > 1<<24 {
		return 0, nil, fmt.Errorf("bad message length %d", n)
	}
	body := make([]byte, n)
	_, err := io.ReadFull(r, body)
	return h[0], body, err
}

// errorCode extracts the SQLSTATE of an ErrorResponse body.
func errorCode(body []byte) string {
	for len(body) > 1 {
		f := body[0]
		end := 1
		for end < len(body) && body[end] != 0 {
			end++
		}
		if f == 'C' {
			return string(body[1:end])
		}
		body = body[min(end+1, len(body)):]
	}
	return ""
}

// proxySocketsInFDTable counts the entries of this process's fd table that
// are established TCP sockets with local port `port` (the proxy's side of
// client connections), and returns how many such sockets exist at all.
func proxySocketsInFDTable(t testing.TB, port int) (inTable, established int) {
	t.Helper()
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		sc.Scan() // header
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			if len(fs) < 10 || fs[3] != "01" { // ESTABLISHED
				continue
			}
			i := strings.LastIndexByte(fs[1], ':')
			p, err := strconv.ParseUint(fs[1][i+1:], 16, 16)
			if err != nil || int(p) != port {
				continue
			}
			established++
			inodes[fs[9]] = true
		}
		fh.Close()
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		l, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil || !strings.HasPrefix(l, "socket:[") {
			continue
		}
		if inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] {
			inTable++
		}
	}
	return inTable, established
}
