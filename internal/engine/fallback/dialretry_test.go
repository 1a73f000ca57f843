package fallback

import (
	"net"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestDialRetryFullUnixBacklog: a Unix socket whose listen backlog is full
// refuses connects with EAGAIN; dialRetry waits until the listener accepts
// (as a TCP SYN would be retransmitted) instead of failing the server login.
func TestDialRetryFullUnixBacklog(t *testing.T) {
	path := filepath.Join(t.TempDir(), ".s.PGSQL.5432")
	lfd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(lfd)
	if err := unix.Bind(lfd, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(lfd, 0); err != nil {
		t.Fatal(err)
	}
	// Fill the backlog: connects that nobody accepts yet.
	full := false
	for i := 0; i < 8 && !full; i++ {
		c, err := net.Dial("unix", path)
		if err != nil {
			full = true
			break
		}
		defer c.Close()
	}
	if !full {
		t.Skip("the backlog never filled")
	}
	go func() {
		time.Sleep(200 * time.Millisecond)
		for range 16 { // drain: the waiting dial gets in
			nfd, _, err := unix.Accept(lfd)
			if err != nil {
				return
			}
			defer unix.Close(nfd)
		}
	}()
	var d net.Dialer
	start := time.Now()
	c, err := dialRetry(&d, "unix", path, 5*time.Second)
	if err != nil {
		t.Fatalf("dial with a full backlog: %v after %v", err, time.Since(start))
	}
	c.Close()
	if el := time.Since(start); el < 150*time.Millisecond {
		t.Logf("connected after %v (the backlog drained early)", el)
	}

	// A socket file with no listener fails at once, no retry.
	start = time.Now()
	if _, err := dialRetry(&d, "unix", filepath.Join(t.TempDir(), "none"), 5*time.Second); err == nil || time.Since(start) > time.Second {
		t.Fatalf("dial of a missing socket: %v after %v, want a quick error", err, time.Since(start))
	}
}
