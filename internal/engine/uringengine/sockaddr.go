//go:build linux

package uringengine

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"

	"golang.org/x/sys/unix"
)

// Sockaddrs are read and written byte by byte: the memory is either mmap'd
// (accept) or a byte array in a heap object (connect), and the kernel layout
// is fixed: family (host order), port (network order), address.

const sockaddrSize = 128 // room for any sockaddr_in/sockaddr_in6

// putSockaddr writes ap as a sockaddr_in or sockaddr_in6 into dst and
// returns its length and address family.
func putSockaddr(dst *[sockaddrSize]byte, ap netip.AddrPort) (uint32, int) {
	*dst = [sockaddrSize]byte{}
	ip := ap.Addr()
	if ip.Is4In6() {
		ip = ip.Unmap()
	}
	binary.BigEndian.PutUint16(dst[2:4], ap.Port())
	if ip.Is4() {
		binary.NativeEndian.PutUint16(dst[0:2], unix.AF_INET)
		a := ip.As4()
		copy(dst[4:8], a[:])
		return unix.SizeofSockaddrInet4, unix.AF_INET
	}
	binary.NativeEndian.PutUint16(dst[0:2], unix.AF_INET6)
	a := ip.As16()
	copy(dst[8:24], a[:])
	if z := ip.Zone(); z != "" {
		if ifi, err := net.InterfaceByName(z); err == nil {
			binary.NativeEndian.PutUint32(dst[24:28], uint32(ifi.Index))
		}
	}
	return unix.SizeofSockaddrInet6, unix.AF_INET6
}

// parseSockaddr decodes a sockaddr_in / sockaddr_in6 (zero value otherwise).
func parseSockaddr(b []byte) netip.AddrPort {
	if len(b) < 2 {
		return netip.AddrPort{}
	}
	switch binary.NativeEndian.Uint16(b[0:2]) {
	case unix.AF_INET:
		if len(b) >= 8 {
			return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), binary.BigEndian.Uint16(b[2:4]))
		}
	case unix.AF_INET6:
		if len(b) >= 24 {
			ip := netip.AddrFrom16([16]byte(b[8:24]))
			if ip.Is4In6() {
				ip = ip.Unmap()
			}
			return netip.AddrPortFrom(ip, binary.BigEndian.Uint16(b[2:4]))
		}
	}
	return netip.AddrPort{}
}

// listenSocket creates the shared listening socket: SO_REUSEADDR (as Go's
// net.Listen), TCP_NODELAY (inherited by every accepted socket on Linux),
// a blocking fd (io_uring polls it; nothing else reads it).
func listenSocket(addr string) (int, net.Addr, error) {
	ta, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return -1, nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	var (
		af int
		sa unix.Sockaddr
	)
	switch ip4 := ta.IP.To4(); {
	case ta.IP == nil:
		af, sa = unix.AF_INET6, &unix.SockaddrInet6{Port: ta.Port} // dual stack, like Go
	case ip4 != nil:
		af, sa = unix.AF_INET, &unix.SockaddrInet4{Port: ta.Port, Addr: [4]byte(ip4)}
	default:
		s6 := &unix.SockaddrInet6{Port: ta.Port, Addr: [16]byte(ta.IP.To16())}
		if ta.Zone != "" {
			if ifi, err := net.InterfaceByName(ta.Zone); err == nil {
				s6.ZoneId = uint32(ifi.Index)
			}
		}
		af, sa = unix.AF_INET6, s6
	}
	fd, err := unix.Socket(af, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, nil, fmt.Errorf("listen %s: %w", addr, os.NewSyscallError("socket", err))
	}
	fail := func(call string, err error) (int, net.Addr, error) {
		unix.Close(fd)
		return -1, nil, fmt.Errorf("listen %s: %w", addr, os.NewSyscallError(call, err))
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return fail("setsockopt SO_REUSEADDR", err)
	}
	if af == unix.AF_INET6 && ta.IP == nil {
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0)
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
		return fail("setsockopt TCP_NODELAY", err)
	}
	if err := unix.Bind(fd, sa); err != nil {
		return fail("bind", err)
	}
	if err := unix.Listen(fd, listenBacklog); err != nil {
		return fail("listen", err)
	}
	got, err := unix.Getsockname(fd)
	if err != nil {
		return fail("getsockname", err)
	}
	var la *net.TCPAddr
	switch s := got.(type) {
	case *unix.SockaddrInet4:
		la = &net.TCPAddr{IP: net.IP(s.Addr[:]).To16(), Port: s.Port}
	case *unix.SockaddrInet6:
		la = &net.TCPAddr{IP: net.IP(s.Addr[:]), Port: s.Port, Zone: ta.Zone}
	}
	return fd, la, nil
}
