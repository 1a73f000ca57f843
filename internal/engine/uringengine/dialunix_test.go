//go:build linux && (amd64 || arm64)

package uringengine

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestPutSockaddrUnix: the bytes are a sockaddr_un the kernel accepts
// (connect(2) with them reaches a listener in t.TempDir()).
func TestPutSockaddrUnix(t *testing.T) {
	path := filepath.Join(t.TempDir(), ".s.PGSQL.5432")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	var sa [sockaddrSize]byte
	for i := range sa {
		sa[i] = 0xff // putSockaddrUnix clears what a previous address left
	}
	n, err := putSockaddrUnix(&sa, path)
	if err != nil {
		t.Fatal(err)
	}
	if n != uint32(2+len(path)+1) || binary.NativeEndian.Uint16(sa[0:2]) != unix.AF_UNIX ||
		string(sa[2:2+len(path)]) != path || sa[2+len(path)] != 0 || sa[n] != 0 {
		t.Fatalf("sockaddr_un of %s: length %d, bytes %q", path, n, sa[:n+1])
	}

	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if _, _, e := unix.Syscall(unix.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(&sa[0])), uintptr(n)); e != 0 {
		t.Fatalf("connect(2) with the encoded sockaddr_un: %v", e)
	}
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

func TestPutSockaddrUnixLimits(t *testing.T) {
	var sa [sockaddrSize]byte
	longest := "/" + strings.Repeat("p", maxSunPath-1)
	if n, err := putSockaddrUnix(&sa, longest); err != nil || n != unix.SizeofSockaddrUnix {
		t.Errorf("%d-byte path: length %d, %v; want %d", len(longest), n, err, unix.SizeofSockaddrUnix)
	}
	if _, err := putSockaddrUnix(&sa, longest+"p"); !errors.Is(err, errSunPathLen) {
		t.Errorf("%d-byte path: %v, want errSunPathLen", len(longest)+1, err)
	}
	for _, p := range []string{"", "/tmp/a\x00b"} {
		if _, err := putSockaddrUnix(&sa, p); err == nil {
			t.Errorf("path %q accepted", p)
		}
	}
}

func TestUnixDialError(t *testing.T) {
	err := dialError("/var/run/postgresql:5432", netip.AddrPort{}, errors.New("boom"))
	var op *net.OpError
	if !errors.As(err, &op) || op.Net != "unix" {
		t.Fatalf("dialError = %#v, want a *net.OpError for unix", err)
	}
	if ua, ok := op.Addr.(*net.UnixAddr); !ok || ua.Name != "/var/run/postgresql/.s.PGSQL.5432" {
		t.Errorf("Addr = %#v, want the socket file", op.Addr)
	}
	if got, want := err.Error(), "dial unix /var/run/postgresql/.s.PGSQL.5432: boom"; got != want {
		t.Errorf("message %q, want %q", got, want)
	}
}
