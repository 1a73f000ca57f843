//go:build linux

package uringengine

import (
	"github.com/poolmgr/poolmgr/internal/proxy"
	"github.com/poolmgr/poolmgr/internal/uring"
	"golang.org/x/sys/unix"
)

// Connection states.
const (
	stFree       uint8 = iota
	stAccepting        // reserved by an armed accept
	stRefusing         // accepted into a refusal slot: 53300 and close
	stResolving        // Dial: resolving a host name on a goroutine
	stConnecting       // Dial: CONNECT in flight
	stDialFailed       // Dial failed before/at submission: OnConnected(err) at the flush
	stOpen             // accepted or connected
)

// Connection flags.
const (
	fGone       uint32 = 1 << iota // the core forgot the handle: no more events, Send is a no-op
	fClosing                       // close once the output drained
	fCloseSent                     // close_direct submitted (or nothing to close)
	fHasFile                       // a socket is installed in the slot
	fDirty                         // in loop.dirty
	fPaused                        // PauseRead(true)
	fRecvArmed                     // a multishot recv is in flight
	fRecvCancel                    // ... and its cancel too
	fSending                       // a SEND is in flight
	fBlocked                       // OnWriteBlocked(true) was reported
	fEOF                           // no more reads (EOF or error)
	fEOFPending                    // EOF seen while data is held: OnClosed after delivering it
	fWriteDead                     // writes fail or were given up: output is dropped
	fTimedOut                      // Dial: the link timeout fired
	fConnCancel                    // Dial: the CONNECT is being cancelled
	fHasRecvd                      // a recv was armed before (stats: re-arms)
)

const (
	genMask  = uring.UserDataGenMask
	noSlot   = ^uint32(0) // handle slot of a Dial that got no slot at all
	smallBuf = 64 << 10
	bigBuf   = 4 << 20
	maxSmall = 1024
	maxBig   = 16
)

// conn is the fixed per-slot state (40 bytes). Buffers live in io, present
// only while the connection has something buffered or is a server
// connection.
type conn struct {
	ep       proxy.Endpoint
	io       *connIO
	gen      uint32 // 24 bits, as in user_data
	flags    uint32
	inflight uint16 // operations submitted for this slot and not yet completed
	state    uint8
}

// connIO holds a connection's buffers and dial state.
type connIO struct {
	pending []byte // queued by Send, not yet handed to the kernel
	wbuf    []byte // handed to the kernel by the SEND in flight; unchanged until its CQE
	sent    int    // bytes of wbuf the kernel has taken
	held    []byte // received after PauseRead(true); delivered on resume
	closeAt int64  // when a lingering close started (0: not lingering)
	dial    *dialState
	err     error // dial failure to report
}

func (io *connIO) idle() bool {
	return io.pending == nil && io.wbuf == nil && io.held == nil && io.dial == nil && io.closeAt == 0 && io.err == nil
}

// handle returns the Handle of connection id: ring << 56 | gen << 32 | slot.
func (l *loop) handle(id, gen uint32) proxy.Handle {
	return proxy.Handle(uint64(ringOf(id))<<56 | uint64(gen&genMask)<<32 | uint64(slotOf(id)))
}

// lookup returns the live connection h names and its id, or nil.
func (l *loop) lookup(h proxy.Handle) (*conn, uint32) {
	r, s := int(h>>56), uint32(h)
	if r >= len(l.rings) || s >= uint32(len(l.rings[r].conns)) {
		return nil, 0
	}
	slot := connID(r, s)
	c := &l.rings[r].conns[s]
	if c.gen != uint32(h>>32)&genMask || c.flags&fGone != 0 || c.state < stResolving {
		return nil, 0
	}
	return c, slot
}

// take hands out slot with a new generation.
func (l *loop) take(slot uint32, state uint8) *conn {
	c := l.c(slot)
	gen := (c.gen + 1) & genMask
	if gen == 0 {
		gen = 1
	}
	*c = conn{gen: gen, state: state}
	return c
}

func (l *loop) markDirty(c *conn, slot uint32) {
	if c.flags&fDirty == 0 {
		c.flags |= fDirty
		l.dirty = append(l.dirty, slot)
	}
}

func (l *loop) ioOf(c *conn) *connIO {
	if c.io == nil {
		if n := len(l.ioFree); n > 0 {
			c.io = l.ioFree[n-1]
			l.ioFree[n-1] = nil
			l.ioFree = l.ioFree[:n-1]
		} else {
			c.io = &connIO{}
		}
	}
	return c.io
}

func (l *loop) getBuf(n int) []byte {
	if n > smallBuf {
		if k := len(l.bigFree); k > 0 {
			b := l.bigFree[k-1]
			l.bigFree[k-1] = nil
			l.bigFree = l.bigFree[:k-1]
			return b[:0]
		}
		return make([]byte, 0, n)
	}
	if k := len(l.bufFree); k > 0 {
		b := l.bufFree[k-1]
		l.bufFree[k-1] = nil
		l.bufFree = l.bufFree[:k-1]
		return b[:0]
	}
	return make([]byte, 0, max(n, 4096))
}

func (l *loop) putBuf(b []byte) {
	switch c := cap(b); {
	case c == 0:
	case c <= smallBuf:
		if len(l.bufFree) < maxSmall {
			l.bufFree = append(l.bufFree, b[:0])
		}
	case c <= bigBuf:
		if len(l.bigFree) < maxBig {
			l.bigFree = append(l.bigFree, b[:0])
		}
	}
}

// queued returns the output bytes not yet taken by the kernel.
func queued(c *conn) int {
	if c.io == nil {
		return 0
	}
	return len(c.io.pending) + len(c.io.wbuf) - c.io.sent
}

// dropOutput gives up the connection's output. The buffer of a SEND in
// flight stays referenced until its CQE.
func (l *loop) dropOutput(c *conn) {
	c.flags |= fWriteDead
	if io := c.io; io != nil {
		l.putBuf(io.pending)
		io.pending = nil
		if c.flags&fSending == 0 {
			l.putBuf(io.wbuf)
			io.wbuf, io.sent = nil, 0
		}
	}
}

// ---------------------------------------------------------------------------
// proxy.Transport

// Send implements proxy.Transport: b is copied into the pending buffer.
func (l *loop) Send(h proxy.Handle, b []byte) {
	c, slot := l.lookup(h)
	if c == nil || len(b) == 0 || c.flags&fWriteDead != 0 {
		return
	}
	io := l.ioOf(c)
	if io.pending == nil {
		io.pending = l.getBuf(len(b))
	}
	io.pending = append(io.pending, b...)
	l.markDirty(c, slot)
}

// Close implements proxy.Transport.
func (l *loop) Close(h proxy.Handle) {
	c, slot := l.lookup(h)
	if c == nil {
		if uint32(h) == noSlot {
			for i, f := range l.failedDials {
				if f.h == h {
					l.failedDials = append(l.failedDials[:i], l.failedDials[i+1:]...)
					break
				}
			}
		}
		return
	}
	c.flags |= fGone | fClosing
	if c.state != stOpen {
		l.dropOutput(c) // never connected: nothing to flush
	}
	l.markDirty(c, slot)
}

// PauseRead implements proxy.Transport.
func (l *loop) PauseRead(h proxy.Handle, paused bool) {
	c, slot := l.lookup(h)
	if c == nil || (c.flags&fPaused != 0) == paused {
		return
	}
	if paused {
		c.flags |= fPaused
		l.stats.readPauses++
	} else {
		c.flags &^= fPaused
	}
	l.markDirty(c, slot)
}

// ---------------------------------------------------------------------------
// SQEs for a connection

func (l *loop) ud(op uint8, c *conn, slot uint32) uint64 { return uring.PackUserData(op, slot, c.gen) }

func (l *loop) armRecv(c *conn, slot uint32) {
	l.sqeFor(slot).PrepRecvMultishot(int32(slotOf(slot)), bufGroup, 0).SetFixedFile().SetUserData(l.ud(opRecv, c, slot))
	c.flags |= fRecvArmed
	c.inflight++
}

// cancel cancels c's request of kind op (recv, send or connect).
func (l *loop) cancel(c *conn, slot uint32, op uint8) {
	l.sqeFor(slot).PrepCancel(l.ud(op, c, slot), 0).SetUserData(l.ud(opCancel, c, slot))
	c.inflight++
}

func (l *loop) submitSend(c *conn, slot uint32, b []byte) {
	l.sqeFor(slot).PrepSend(int32(slotOf(slot)), b, unix.MSG_NOSIGNAL|unix.MSG_WAITALL).SetFixedFile().SetUserData(l.ud(opSend, c, slot))
	c.flags |= fSending
	c.inflight++
}

// opDone accounts for a completed operation and frees the slot when the
// connection is closed and nothing is in flight any more.
func (l *loop) opDone(c *conn, slot uint32) {
	c.inflight--
	l.maybeFree(c, slot)
}

func (l *loop) maybeFree(c *conn, slot uint32) {
	if c.inflight != 0 || c.flags&fCloseSent == 0 {
		return
	}
	if io := c.io; io != nil {
		l.putBuf(io.pending)
		l.putBuf(io.wbuf)
		l.putBuf(io.held)
		*io = connIO{}
		l.ioFree = append(l.ioFree, io)
	}
	*c = conn{gen: c.gen} // state stFree; the generation moves on at the next take
	if r := ringOf(slot); r == 0 && slot >= l.refuseBase {
		l.refuseFree = append(l.refuseFree, slot)
	} else {
		l.rings[r].slots.Put(slotOf(slot))
		l.curRing = min(l.curRing, r) // clientSlot looks from the lowest ring with a free slot
	}
}

// ---------------------------------------------------------------------------
// Completions

func (l *loop) handleRecv(c *conn, slot uint32, cqe uring.CQE) {
	final := !cqe.More()
	if final {
		c.flags &^= fRecvArmed | fRecvCancel
	}
	switch {
	case cqe.Res > 0:
		id, _ := cqe.BufferID()
		br := l.rings[ringOf(slot)].br
		data := br.Buffer(id)[:cqe.Res]
		switch {
		case c.flags&(fGone|fClosing) != 0:
			// nobody wants it
		case c.flags&fPaused != 0 || (c.io != nil && c.io.held != nil):
			io := l.ioOf(c)
			if io.held == nil {
				io.held = l.getBuf(len(data))
			}
			io.held = append(io.held, data...)
		default:
			c.ep.OnData(data)
		}
		br.Recycle(id)
	case cqe.Res == 0:
		c.flags |= fEOF
		if c.flags&fGone == 0 {
			if c.io != nil && c.io.held != nil {
				c.flags |= fEOFPending
			} else {
				l.peerClosed(c, slot, nil)
			}
		}
	default:
		if id, ok := cqe.BufferID(); ok {
			l.rings[ringOf(slot)].br.Recycle(id)
		}
		err := cqe.Err()
		switch {
		case uring.IsNoBuffers(err):
			l.stats.recvNoBufs++ // re-armed at the flush
		case uring.IsCanceled(err):
			// paused or closing
		default:
			c.flags |= fEOF
			l.dropOutput(c)
			if c.flags&fGone == 0 {
				l.peerClosed(c, slot, err)
			}
		}
	}
	l.markDirty(c, slot)
	if final {
		l.opDone(c, slot)
	}
}

// peerClosed reports the end of a connection the core did not close.
func (l *loop) peerClosed(c *conn, slot uint32, err error) {
	c.flags |= fGone | fClosing
	l.markDirty(c, slot)
	c.ep.OnClosed(err)
}

func (l *loop) handleSend(c *conn, slot uint32, cqe uring.CQE) {
	c.flags &^= fSending
	io := c.io
	if cqe.Res < 0 {
		err := cqe.Err()
		l.putBuf(io.wbuf)
		io.wbuf, io.sent = nil, 0
		l.dropOutput(c)
		c.flags |= fEOF
		if c.flags&fGone == 0 {
			l.peerClosed(c, slot, err)
		}
	} else {
		io.sent += int(cqe.Res)
		if io.sent >= len(io.wbuf) || c.flags&fWriteDead != 0 {
			l.putBuf(io.wbuf)
			io.wbuf, io.sent = nil, 0
		} else {
			l.stats.shortSends++ // service submits the rest
		}
		if c.flags&(fBlocked|fGone) == fBlocked && queued(c) < lowWatermark {
			c.flags &^= fBlocked
			c.ep.OnWriteBlocked(false)
		}
	}
	l.markDirty(c, slot)
	l.opDone(c, slot)
}

// service brings one connection up to date after a batch: deliver held data,
// start a send, report write blocking, arm or cancel the recv, close.
func (l *loop) service(slot uint32) {
	c := l.c(slot)
	c.flags &^= fDirty
	switch c.state {
	case stOpen:
	case stDialFailed:
		if c.flags&fGone == 0 {
			c.flags |= fGone | fClosing
			c.ep.OnConnected(c.io.err)
		}
		l.finalClose(c, slot)
		return
	case stResolving, stConnecting:
		if c.flags&fClosing != 0 {
			l.finalClose(c, slot)
		}
		return // output waits for the connection
	default:
		return
	}
	io := c.io

	// Data received while paused, now that reads resumed.
	if io != nil && io.held != nil && c.flags&(fPaused|fGone) == 0 {
		b := io.held
		io.held = nil
		c.ep.OnData(b)
		l.putBuf(b)
	}
	if c.flags&fGone != 0 && io != nil && io.held != nil {
		l.putBuf(io.held)
		io.held = nil
	}
	if c.flags&(fEOFPending|fGone|fPaused) == fEOFPending && (io == nil || io.held == nil) {
		c.flags &^= fEOFPending
		l.peerClosed(c, slot, nil)
	}

	// Writes: one SEND in flight per connection.
	if io != nil && c.flags&(fSending|fWriteDead) == 0 {
		if io.wbuf != nil && io.sent < len(io.wbuf) {
			l.submitSend(c, slot, io.wbuf[io.sent:])
		} else if len(io.pending) > 0 {
			io.wbuf, io.pending, io.sent = io.pending, nil, 0
			l.submitSend(c, slot, io.wbuf)
		}
	}
	if c.flags&(fGone|fBlocked) == 0 && queued(c) > highWatermark {
		c.flags |= fBlocked
		l.stats.writeBlocked++
		c.ep.OnWriteBlocked(true)
	}

	// Reads.
	want := c.flags&(fGone|fClosing|fPaused|fEOF) == 0
	switch {
	case want && c.flags&fRecvArmed == 0:
		if c.flags&fHasRecvd != 0 {
			l.stats.recvRearms++
		}
		c.flags |= fHasRecvd
		l.armRecv(c, slot)
	case !want && c.flags&(fRecvArmed|fRecvCancel) == fRecvArmed:
		l.cancel(c, slot, opRecv)
		c.flags |= fRecvCancel
	}

	// Close once the output drained.
	if c.flags&fClosing != 0 {
		if c.flags&fSending == 0 && (c.flags&fWriteDead != 0 || queued(c) == 0) {
			l.finalClose(c, slot)
			return
		}
		if io = l.ioOf(c); io.closeAt == 0 {
			io.closeAt = l.now
			l.lingering = append(l.lingering, slotGen{slot, c.gen})
		}
	}
	if io = c.io; io != nil && io.idle() {
		*io = connIO{}
		l.ioFree = append(l.ioFree, io)
		c.io = nil
	}
}

// finalClose cancels what still runs and closes the direct descriptor; the
// slot is freed when the last completion arrives.
func (l *loop) finalClose(c *conn, slot uint32) {
	if c.flags&fCloseSent != 0 {
		return
	}
	switch c.state {
	case stConnecting:
		if c.flags&fConnCancel == 0 {
			c.flags |= fConnCancel
			l.cancel(c, slot, opConnect)
		}
		return // handleConnect comes back here
	case stOpen:
		if c.flags&(fRecvArmed|fRecvCancel) == fRecvArmed {
			l.cancel(c, slot, opRecv)
			c.flags |= fRecvCancel
		}
		if c.flags&fSending != 0 {
			return // the send's completion comes back here
		}
	}
	c.flags |= fCloseSent
	if c.flags&fHasFile != 0 {
		l.sqeFor(slot).PrepCloseDirect(slotOf(slot)).SetUserData(l.ud(opClose, c, slot))
		c.inflight++
	}
	l.maybeFree(c, slot)
}
