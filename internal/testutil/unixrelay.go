package testutil

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// UnixRelayPort is the port of a UnixRelay's backend address: its socket
// file is .s.PGSQL.5432.
const UnixRelayPort = 5432

// UnixRelay is a Unix-domain socket listener in a temporary directory that
// forwards every connection to a TCP address (a cluster node): a
// Unix-socket backend for engine tests, whose dials it counts.
type UnixRelay struct {
	Addr string // the backend address: "<directory>:5432"
	Path string // the socket file: "<directory>/.s.PGSQL.5432"

	accepted atomic.Int64
	ln       net.Listener
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	wg       sync.WaitGroup
}

// StartUnixRelay listens on .s.PGSQL.5432 in t.TempDir() (in a /tmp
// directory when that path would not fit in sockaddr_un) and forwards each
// connection to target; everything is closed when the test ends.
func StartUnixRelay(t testing.TB, target string) *UnixRelay {
	t.Helper()
	name := fmt.Sprintf(".s.PGSQL.%d", UnixRelayPort)
	dir := t.TempDir()
	if len(filepath.Join(dir, name)) > 107 {
		d, err := os.MkdirTemp("/tmp", "pgsock-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(d) })
		dir = d
	}
	r := &UnixRelay{
		Addr:  fmt.Sprintf("%s:%d", dir, UnixRelayPort),
		Path:  filepath.Join(dir, name),
		conns: map[net.Conn]struct{}{},
	}
	ln, err := net.Listen("unix", r.Path)
	if err != nil {
		t.Fatalf("listen on %s: %v", r.Path, err)
	}
	r.ln = ln
	r.wg.Add(1)
	go r.serve(target)
	t.Cleanup(r.close)
	return r
}

// Accepted returns how many connections the relay has accepted.
func (r *UnixRelay) Accepted() int { return int(r.accepted.Load()) }

func (r *UnixRelay) serve(target string) {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.accepted.Add(1)
		r.wg.Add(1)
		go r.forward(c, target)
	}
}

// forward copies both ways between c and a new connection to target until
// either side ends, then closes both.
func (r *UnixRelay) forward(c net.Conn, target string) {
	defer r.wg.Done()
	defer c.Close()
	s, err := net.DialTimeout("tcp", target, 5*time.Second)
	if err != nil {
		return
	}
	defer s.Close()
	if !r.track(c, s) {
		return
	}
	defer r.untrack(c, s)
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(s, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, s); done <- struct{}{} }()
	<-done
	c.Close()
	s.Close()
	<-done
}

// track registers open connections so that close can end them; false once
// the relay is closed.
func (r *UnixRelay) track(cs ...net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conns == nil {
		return false
	}
	for _, c := range cs {
		r.conns[c] = struct{}{}
	}
	return true
}

func (r *UnixRelay) untrack(cs ...net.Conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range cs {
		delete(r.conns, c)
	}
}

// close stops accepting, closes every forwarded connection and waits for
// the relay's goroutines.
func (r *UnixRelay) close() {
	r.ln.Close()
	r.mu.Lock()
	for c := range r.conns {
		c.Close()
	}
	r.conns = nil
	r.mu.Unlock()
	r.wg.Wait()
}
