//go:build linux

package uringengine

import (
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/poolmgr/poolmgr/internal/uring"
)

// startAccepting runs on the loop (posted by Listen).
func (l *loop) startAccepting(fd int) {
	if l.e.stopped() {
		return
	}
	l.lfd = fd
	l.accepting = true
}

// stopAccepting runs on the loop (posted by StopAccepting): cancel the
// armed accepts; their slots come back with the cancellations.
func (l *loop) stopAccepting() {
	l.accepting = false
	for i := range l.accepts[:l.o.Accepts] {
		if l.accepts[i].armed {
			l.sqeFor(l.accepts[i].slot).PrepCancel(uring.PackUserData(opAccept, uint32(i), 0), 0).SetUserData(uring.PackUserData(opCancelAccept, 0, 0))
		}
	}
}

func (e *Engine) stopped() bool {
	select {
	case <-e.stop:
		return true
	default:
		return false
	}
}

func acceptAddrOff(i int) int { return regAccepts + i*acceptStride }

// armAccepts keeps o.Accepts accepts armed, each into a slot of its own.
// When no client slot is left, one accept is armed into a refusal slot, but
// only while no regular accept is armed (so clients fill every slot before
// anyone is refused), and it is cancelled as soon as a regular one can be
// armed again.
func (l *loop) armAccepts() {
	if !l.accepting || l.now < l.acceptRetryAt {
		return
	}
	normal, refusing := 0, -1
	for i := range l.accepts[:l.o.Accepts] {
		if a := &l.accepts[i]; a.armed {
			if a.refuse {
				refusing = i
			} else {
				normal++
			}
		}
	}
	for i := range l.accepts[:l.o.Accepts] {
		a := &l.accepts[i]
		if a.armed {
			continue
		}
		slot, ok := l.clientSlot()
		if ok {
			normal++
		} else {
			n := len(l.refuseFree)
			if normal > 0 || refusing >= 0 || n == 0 {
				if n == 0 && normal == 0 && refusing < 0 {
					l.warnSlots("not accepting until a slot frees")
				}
				break
			}
			slot = l.refuseFree[n-1]
			l.refuseFree = l.refuseFree[:n-1]
			refusing = i
			l.warnSlots("refusing new clients with 53300")
		}
		l.take(slot, stAccepting)
		off := acceptAddrOff(i)
		*(*uint32)(l.regionPtr(off + sockaddrSize)) = sockaddrSize
		// Into an explicit slot of the ring that took it (file_index = slot+1).
		l.sqeFor(slot).PrepAcceptDirect(int32(l.lfd), slotOf(slot), l.regionPtr(off), l.regionPtr(off+sockaddrSize), 0).
			SetUserData(uring.PackUserData(opAccept, uint32(i), 0))
		*a = acceptOp{slot: slot, armed: true, refuse: !ok}
	}
	if normal > 0 && refusing >= 0 && !l.accepts[refusing].cancelled {
		l.accepts[refusing].cancelled = true
		l.sqeFor(l.accepts[refusing].slot).PrepCancel(uring.PackUserData(opAccept, uint32(refusing), 0), 0).
			SetUserData(uring.PackUserData(opCancelAccept, 0, 0))
	}
}

// handleAccept: a new client in a.slot, or an accept error.
func (l *loop) handleAccept(i uint32, cqe uring.CQE) {
	if i >= maxAccepts || !l.accepts[i].armed {
		return
	}
	slot := l.accepts[i].slot
	l.accepts[i] = acceptOp{}
	c := l.c(slot)
	if cqe.Res < 0 {
		c.flags |= fCloseSent // nothing installed, nothing in flight
		l.maybeFree(c, slot)
		err := cqe.Err()
		switch {
		case uring.IsCanceled(err) || !l.accepting:
		case err == syscall.ECONNABORTED || err == syscall.EAGAIN || err == syscall.EINTR || err == syscall.EPROTO:
			// the client gave up before we took it: try again
		default:
			l.log.Warn("io_uring: accept failed; retrying shortly", "loop", l.id, "err", err)
			l.acceptRetryAt = l.now + int64(100*time.Millisecond)
		}
		return
	}
	c.flags |= fHasFile
	if ringOf(slot) == 0 && slot >= l.refuseBase {
		l.stats.refused++
		l.startRefusal(c, slot)
		return
	}
	l.stats.accepted++
	c.state = stOpen
	off := acceptAddrOff(int(i))
	n := min(*(*uint32)(l.regionPtr(off + sockaddrSize)), sockaddrSize)
	remote := parseSockaddr(l.regionBytes(off, int(n)))
	c.ep = l.core.Accept(l.handle(slot, c.gen), remote)
	l.markDirty(c, slot)
}

// startRefusal reads the refused client's startup packet (at most
// refuseTimeout), then sends 53300 and closes.
func (l *loop) startRefusal(c *conn, slot uint32) {
	c.state = stRefusing
	l.reserveSQ(2)
	l.sqe().PrepRecv(int32(slot), l.regionBytes(regRefuseBuf, regAccepts-regRefuseBuf), 0).
		SetFixedFile().SetLink().SetUserData(l.ud(opRefRecv, c, slot))
	l.sqe().PrepLinkTimeout((*uring.Timespec)(l.regionPtr(regRefuseTS)), 0).SetUserData(l.ud(opLinkTO, c, slot))
	c.inflight += 2
}

func (l *loop) handleRefRecv(c *conn, slot uint32) {
	l.reserveSQ(2)
	l.sqe().PrepSend(int32(slot), l.refuseMsg, unix.MSG_NOSIGNAL).SetFixedFile().SetHardLink().
		SetUserData(l.ud(opRefSend, c, slot))
	l.sqe().PrepCloseDirect(slot).SetUserData(l.ud(opClose, c, slot))
	c.inflight += 2
	c.flags |= fCloseSent
	l.opDone(c, slot)
}
