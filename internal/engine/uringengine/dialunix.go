//go:build linux

package uringengine

import (
	"encoding/binary"
	"errors"
	"net"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/poolmgr/poolmgr/internal/config"
)

// Unix-domain socket backends ("/directory:port", config.UnixSocketPath):
// an AF_UNIX stream socket takes the place of the TCP one; the CONNECT, its
// timeout and everything after it are the TCP path's.

// maxSunPath is the longest socket path a sockaddr_un holds: sun_path less
// its terminating NUL.
const maxSunPath = len(unix.RawSockaddrUnix{}.Path) - 1

// A sockaddr_un fits in dialState.sa (this fails to compile otherwise).
var _ [sockaddrSize - unix.SizeofSockaddrUnix]byte

var errSunPathLen = errors.New("socket path too long for sockaddr_un")

// putSockaddrUnix writes path as a sockaddr_un (family in host order, the
// path, a NUL) into dst and returns its length.
func putSockaddrUnix(dst *[sockaddrSize]byte, path string) (uint32, error) {
	if path == "" || strings.IndexByte(path, 0) >= 0 {
		return 0, unix.EINVAL
	}
	if len(path) > maxSunPath {
		return 0, errSunPathLen
	}
	*dst = [sockaddrSize]byte{}
	binary.NativeEndian.PutUint16(dst[0:2], unix.AF_UNIX)
	copy(dst[2:], path)
	return uint32(2 + len(path) + 1), nil
}

// connectUnix creates an AF_UNIX stream socket (no TCP_NODELAY: there is no
// Nagle on Unix sockets) and starts connecting it to addr's socket file.
func (l *loop) connectUnix(c *conn, slot uint32, addr string) {
	ds := c.io.dial
	path, err := config.UnixSocketPath(addr)
	if err != nil {
		l.dialFailed(c, slot, unixDialError(addr, err))
		return
	}
	salen, err := putSockaddrUnix(&ds.sa, path)
	if err != nil {
		l.dialFailed(c, slot, unixDialError(addr, err))
		return
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		l.dialFailed(c, slot, unixDialError(addr, os.NewSyscallError("socket", err)))
		return
	}
	l.startConnect(c, slot, fd, salen)
}

// unixDialError is dialError for a Unix-socket backend: it names the socket
// file ("dial unix /var/run/postgresql/.s.PGSQL.5432: connect: ..."), or the
// address as written when it names none.
func unixDialError(addr string, err error) error {
	name := addr
	if p, perr := config.UnixSocketPath(addr); perr == nil {
		name = p
	}
	return &net.OpError{Op: "dial", Net: "unix", Addr: &net.UnixAddr{Name: name, Net: "unix"}, Err: err}
}
