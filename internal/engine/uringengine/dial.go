//go:build linux

package uringengine

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"strconv"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/poolmgr/poolmgr/internal/config"
	"github.com/poolmgr/poolmgr/internal/proxy"
	"github.com/poolmgr/poolmgr/internal/uring"
)

var errNoSlot = errors.New("no free slot in the io_uring engine's registered file table (raise RLIMIT_NOFILE or the table size)")

// dialState is the memory a CONNECT and its LINK_TIMEOUT point to; it stays
// referenced from the connection (connIO.dial) until the slot is freed.
type dialState struct {
	sa      [sockaddrSize]byte
	ts      uring.Timespec
	addr    string
	ap      netip.AddrPort
	timeout time.Duration
}

func dialError(addr string, ap netip.AddrPort, err error) error {
	if config.IsUnixSocketAddr(addr) {
		return unixDialError(addr, err)
	}
	op := &net.OpError{Op: "dial", Net: "tcp", Err: err}
	if ap.IsValid() {
		op.Addr = net.TCPAddrFromAddrPort(ap)
	} else {
		op.Err = &net.AddrError{Err: err.Error(), Addr: addr}
	}
	return op
}

// Dial implements proxy.Transport. It never calls ep from inside: success
// or failure is reported at the flush or on a later completion.
func (l *loop) Dial(addr string, ep proxy.Endpoint) proxy.Handle {
	slot, ok := l.rings[0].slots.Get() // server connections live on ring 0 (id == slot)
	if !ok {
		l.dialSeq++
		h := proxy.Handle(uint64(l.dialSeq&genMask)<<32 | uint64(noSlot))
		l.failedDials = append(l.failedDials, failedDial{h: h, ep: ep, err: dialError(addr, netip.AddrPort{}, errNoSlot)})
		l.warnSlots("cannot open a server connection")
		return h
	}
	l.stats.dials++
	c := l.take(slot, stResolving)
	c.ep = ep
	timeout := l.e.dialTO()
	l.ioOf(c).dial = &dialState{addr: addr, timeout: timeout}
	h := l.handle(slot, c.gen)
	if config.IsUnixSocketAddr(addr) {
		l.connectUnix(c, slot, addr)
		return h
	}
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		l.connect(c, slot, ap)
		return h
	}
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		l.dialFailed(c, slot, dialError(addr, netip.AddrPort{}, err))
		return h
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		l.dialFailed(c, slot, dialError(addr, netip.AddrPort{}, errors.New("invalid port")))
		return h
	}
	// A host name: resolve off the loop, continue on it.
	gen := c.gen
	if timeout <= 0 {
		timeout = 15 * time.Second
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		cancel()
		l.Post(func() {
			c := l.c(slot)
			if c.gen != gen || c.state != stResolving {
				return // closed meanwhile
			}
			if err == nil && len(ips) == 0 {
				err = &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
			}
			if err != nil {
				l.dialFailed(c, slot, &net.OpError{Op: "dial", Net: "tcp", Err: err})
				return
			}
			ip := ips[0]
			for _, x := range ips {
				if x.Unmap().Is4() {
					ip = x
					break
				}
			}
			l.connect(c, slot, netip.AddrPortFrom(ip.Unmap(), uint16(port)))
		})
	}()
	return h
}

func (l *loop) dialFailed(c *conn, slot uint32, err error) {
	c.state = stDialFailed
	l.ioOf(c).err = err
	l.markDirty(c, slot)
}

// connect creates the socket (socket(2) + TCP_NODELAY) and starts
// connecting it to ap (startConnect).
func (l *loop) connect(c *conn, slot uint32, ap netip.AddrPort) {
	ds := c.io.dial
	ds.ap = ap
	salen, af := putSockaddr(&ds.sa, ap)
	fd, err := unix.Socket(af, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		l.dialFailed(c, slot, dialError(ds.addr, ap, os.NewSyscallError("socket", err)))
		return
	}
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	l.startConnect(c, slot, fd, salen)
}

// startConnect installs the new socket fd into the slot (and closes fd: the
// table holds its own reference) and submits CONNECT to the salen bytes of
// c.io.dial.sa linked to a LINK_TIMEOUT, in one submit.
func (l *loop) startConnect(c *conn, slot uint32, fd int, salen uint32) {
	ds := c.io.dial
	l.fdUpd[0] = int32(fd)
	_, err := l.ring.RegisterFilesUpdate(slot, l.fdUpd[:])
	unix.Close(fd) // the table holds its own reference
	if err != nil {
		l.dialFailed(c, slot, dialError(ds.addr, ds.ap, err))
		return
	}
	c.flags |= fHasFile
	c.state = stConnecting
	l.reserveSQ(2)
	s := l.sqe().PrepConnect(int32(slot), unsafe.Pointer(&ds.sa[0]), salen).SetFixedFile().
		SetUserData(l.ud(opConnect, c, slot))
	c.inflight++
	if ds.timeout > 0 {
		s.SetLink()
		ds.ts = uring.Timespec{Sec: int64(ds.timeout / time.Second), Nsec: int64(ds.timeout % time.Second)}
		l.sqe().PrepLinkTimeout(&ds.ts, 0).SetUserData(l.ud(opLinkTO, c, slot))
		c.inflight++
	}
}

func (l *loop) handleConnect(c *conn, slot uint32, cqe uring.CQE) {
	c.state = stOpen
	if c.flags&fGone == 0 {
		if err := cqe.Err(); err != nil {
			if uring.IsCanceled(err) { // the link timeout fired
				err = syscall.ETIMEDOUT
			}
			c.flags |= fGone | fClosing | fEOF
			l.dropOutput(c)
			ds := c.io.dial
			c.ep.OnConnected(dialError(ds.addr, ds.ap, os.NewSyscallError("connect", err)))
		} else {
			c.ep.OnConnected(nil)
		}
	}
	l.markDirty(c, slot)
	l.opDone(c, slot)
}
