//go:build linux

package uring

import (
	"encoding/binary"
	"net"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

var (
	probeOnce sync.Once
	probeRes  ProbeResult
	probeErr  error
)

// requireUring skips the test when io_uring is not usable here.
func requireUring(tb testing.TB) ProbeResult {
	tb.Helper()
	probeOnce.Do(func() { probeRes, probeErr = Probe() })
	if probeErr != nil {
		tb.Skipf("io_uring unavailable: %v", probeErr)
	}
	return probeRes
}

// newTestRing locks the calling goroutine to its thread (the ring's owner)
// and creates a ring closed at cleanup.
func newTestRing(tb testing.TB, entries uint32, opts Options) *Ring {
	tb.Helper()
	requireUring(tb)
	runtime.LockOSThread()
	tb.Cleanup(runtime.UnlockOSThread)
	r, err := New(entries, opts)
	if err != nil {
		tb.Fatalf("New(%d, %+v): %v", entries, opts, err)
	}
	tb.Cleanup(func() {
		if err := r.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return r
}

func newRegion(tb testing.TB, size int) *Region {
	tb.Helper()
	g, err := NewRegion(size)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { g.Free() })
	return g
}

// waitCQEs collects exactly n CQEs or fails after timeout.
func waitCQEs(tb testing.TB, r *Ring, n int, timeout time.Duration) []CQE {
	tb.Helper()
	out := make([]CQE, 0, n)
	var buf [64]CQE
	deadline := time.Now().Add(timeout)
	for len(out) < n {
		rem := time.Until(deadline)
		if rem <= 0 {
			tb.Fatalf("got %d of %d CQEs before timeout: %+v", len(out), n, out)
		}
		if _, err := r.SubmitAndWaitTimeout(1, rem); err != nil && !IsTimeout(err) {
			tb.Fatalf("SubmitAndWaitTimeout: %v", err)
		}
		k := r.PeekBatch(buf[:min(len(buf), n-len(out))])
		out = append(out, buf[:k]...)
	}
	return out
}

// byUD indexes CQEs by user_data (fails on duplicates).
func byUD(tb testing.TB, cqes []CQE) map[uint64]CQE {
	tb.Helper()
	m := make(map[uint64]CQE, len(cqes))
	for _, c := range cqes {
		if _, dup := m[c.UserData]; dup {
			tb.Fatalf("duplicate CQE for user_data %#x", c.UserData)
		}
		m[c.UserData] = c
	}
	return m
}

// putSockaddr4 writes a struct sockaddr_in at g[off:] and returns its pointer
// and length.
func putSockaddr4(g *Region, off int, ip [4]byte, port int) (unsafe.Pointer, uint32) {
	b := g.Slice(off, unix.SizeofSockaddrInet4)
	clear(b)
	binary.LittleEndian.PutUint16(b[0:], unix.AF_INET)
	binary.BigEndian.PutUint16(b[2:], uint16(port))
	copy(b[4:8], ip[:])
	return g.Pointer(off), unix.SizeofSockaddrInet4
}

// listenTCP makes a blocking loopback listener with raw syscalls (no Go
// netpoller involvement) and returns its fd and port.
func listenTCP(tb testing.TB, backlog int) (int, int) {
	tb.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		tb.Fatal(err)
	}
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		tb.Fatal(err)
	}
	if err := unix.Listen(fd, backlog); err != nil {
		tb.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		tb.Fatal(err)
	}
	return fd, sa.(*unix.SockaddrInet4).Port
}

func socketpair(tb testing.TB) [2]int {
	tb.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { unix.Close(fds[0]); unix.Close(fds[1]) })
	return fds
}

func countFDs(tb testing.TB) int {
	tb.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		tb.Fatal(err)
	}
	return len(ents)
}

// goListener is a Go net listener whose accepted conns arrive on a channel.
func goListener(tb testing.TB) (net.Listener, chan net.Conn) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	ch := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(ch)
				return
			}
			ch <- c
		}
	}()
	tb.Cleanup(func() {
		ln.Close()
		for c := range ch {
			c.Close()
		}
	})
	return ln, ch
}

func recvConn(tb testing.TB, ch chan net.Conn) net.Conn {
	tb.Helper()
	select {
	case c := <-ch:
		tb.Cleanup(func() { c.Close() })
		return c
	case <-time.After(5 * time.Second):
		tb.Fatal("no connection accepted")
		return nil
	}
}
