//go:build linux

package uringengine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/poolmgr/poolmgr/internal/pgproto"
	"github.com/poolmgr/poolmgr/internal/proxy"
	"github.com/poolmgr/poolmgr/internal/uring"
)

// user_data ops.
const (
	opAccept       uint8 = iota + 1 // slot field = index in loop.accepts
	opEventfd                       // the eventfd read
	opRecv                          // multishot recv
	opSend                          // send of connIO.wbuf
	opClose                         // close_direct
	opCancel                        // async cancel (recv, connect, send)
	opConnect                       // connect of a Dial
	opLinkTO                        // link timeout of a connect or refusal recv
	opRefRecv                       // refusal: read the startup packet
	opRefSend                       // refusal: send the 53300 error
	opCancelAccept                  // cancel of an accept (StopAccepting)
)

const (
	bufGroup   = 0
	maxAccepts = 16
	cqeBatch   = 256

	// Region layout (one mmap'd page or two per loop: memory the kernel
	// reads or writes asynchronously).
	regEventfd    = 0    // 8 bytes read from the eventfd
	regRefuseTS   = 64   // uring.Timespec for the refusal recv's link timeout
	regRefuseMsg  = 128  // the 53300 ErrorResponse (up to 896 bytes)
	regRefuseBuf  = 1024 // 1 KiB scratch the refusal recv reads into (discarded)
	regAccepts    = 2048 // maxAccepts x (sockaddr 128 + addrlen 4 + pad 4)
	acceptStride  = 136
	regionSize    = regAccepts + maxAccepts*acceptStride
	refuseMsgSize = regRefuseBuf - regRefuseMsg
)

type acceptOp struct {
	slot      uint32
	armed     bool
	refuse    bool // into a refusal slot
	cancelled bool // a cancel was submitted
}

type failedDial struct {
	h   proxy.Handle
	ep  proxy.Endpoint
	err error
}

type slotGen struct{ slot, gen uint32 }

// loopStats are counters owned by the loop's thread (tests, debugging).
type loopStats struct {
	accepted, refused, dials   uint64
	writeBlocked, readPauses   uint64
	recvNoBufs, recvRearms     uint64
	shortSends, lingerTimeouts uint64
	ringTrims                  uint64 // empty extra rings whose buffers were released
}

// loop is one core loop, its ring and its connections. Everything except the
// post queue and drained is touched only by the loop's own thread.
type loop struct {
	e    *Engine
	id   int
	core *proxy.Loop
	log  *slog.Logger
	o    Options

	ring *uring.Ring // rings[0].ring: the loop waits on it; server connections and refusals live there
	reg  *uring.Region
	efd  int

	rings      []*ringState // grown lazily, up to maxRings
	maxRings   int
	curRing    int    // no ring below it has a free client slot (clientSlot starts here)
	refuseBase uint32 // ring 0: refusal slots are [refuseBase, FileSlots)
	refuseFree []uint32
	refuseMsg  []byte

	dirty       []uint32
	failedDials []failedDial
	dialSeq     uint32
	lingering   []slotGen
	ioFree      []*connIO
	bufFree     [][]byte // small output buffers (cap <= smallBuf)
	bigFree     [][]byte // large ones (cap <= bigBuf)

	lfd           int
	accepting     bool
	accepts       [maxAccepts]acceptOp
	acceptRetryAt int64
	efdArmed      bool
	fdUpd         [1]int32
	warnSlotsAt   int64

	stats loopStats

	now      int64
	nextTick int64
	ticks    uint64
	clock    time.Time // wall+monotonic base of now, re-read every tick
	exit     bool
	cqes     [cqeBatch]uring.CQE

	// Cross-thread.
	pmu         sync.Mutex
	posts       []func()
	spare       []func()
	postPending atomic.Bool
	drained     atomic.Bool
	exited      chan struct{}
}

func newLoop(e *Engine, id int, core *proxy.Loop) *loop {
	lp := &loop{e: e, id: id, core: core, log: e.log, o: e.opts, efd: -1, lfd: -1, exited: make(chan struct{})}
	lp.drained.Store(true)
	return lp
}

// run is the loop's goroutine: it locks its thread for good, creates the
// ring there, reports setup errors on ready, then serves until exit.
func (l *loop) run(ready chan<- error) {
	defer l.e.wg.Done()
	defer close(l.exited)
	runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
	if err := l.setup(); err != nil {
		l.teardown()
		ready <- err
		return
	}
	ready <- nil
	err := l.serve()
	l.teardown()
	if err != nil {
		l.log.Error("io_uring loop failed", "loop", l.id, "err", err)
		l.e.fail(fmt.Errorf("io_uring engine: loop %d: %w", l.id, err))
	}
}

func (l *loop) setup() error {
	o := l.o
	r, err := uring.New(o.SQEntries, uring.Options{DeferTaskrun: true, CQEntries: o.CQEntries, SubmitAll: true, Clamp: true, RawWait: o.RawWait})
	if err != nil {
		return err
	}
	l.ring = r
	l.registerRingFd(r)
	rs := &ringState{ring: r}
	l.rings = []*ringState{rs}
	if err := r.RegisterFilesSparse(o.FileSlots); err != nil {
		return fmt.Errorf("registered file table (%d slots per loop; set a smaller table or raise RLIMIT_NOFILE): %w", o.FileSlots, err)
	}
	if rs.br, err = r.RegisterBufRing(bufGroup, o.BufCount, o.BufSize); err != nil {
		return err
	}
	if l.reg, err = uring.NewRegion(regionSize); err != nil {
		return err
	}
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		return fmt.Errorf("eventfd: %w", err)
	}
	l.pmu.Lock()
	l.efd = efd
	l.pmu.Unlock()

	rs.conns = make([]conn, o.FileSlots)
	l.refuseBase = o.FileSlots - o.RefuseSlots
	rs.slots = uring.NewSlotAllocator(l.refuseBase)
	rs.reserve = o.ServerSlots
	l.maxRings = maxRingsFor(o)
	for s := o.FileSlots; s > l.refuseBase; s-- {
		l.refuseFree = append(l.refuseFree, s-1)
	}
	msg := pgproto.AppendError(nil, pgproto.SevFatal, "53300",
		"too many client connections (poolmgr: no free connection slot in the io_uring engine's file table)")
	if len(msg) > refuseMsgSize {
		msg = msg[:refuseMsgSize]
	}
	l.refuseMsg = l.reg.Slice(regRefuseMsg, len(msg))
	copy(l.refuseMsg, msg)
	*(*uring.Timespec)(l.reg.Pointer(regRefuseTS)) = uring.Timespec{Sec: int64(refuseTimeout / time.Second)}
	return nil
}

func (l *loop) teardown() {
	for i := len(l.rings) - 1; i >= 0; i-- {
		if rs := l.rings[i]; rs.ring != nil {
			if err := rs.ring.Close(); err != nil { // cancels everything, closes every direct descriptor
				l.log.Warn("io_uring: closing ring", "loop", l.id, "ring", i, "err", err)
			}
			rs.ring = nil
		}
	}
	l.rings = nil
	l.ring = nil
	l.pmu.Lock()
	if l.efd >= 0 {
		unix.Close(l.efd)
		l.efd = -1
	}
	l.posts = nil
	l.pmu.Unlock()
	if l.reg != nil {
		l.reg.Free()
		l.reg = nil
	}
}

// registerRingFd registers r with the loop's thread so enters skip the fd
// lookup. A thread holds at most 16 registered rings: the rest (extra rings
// of a loop holding very many clients) enter by fd, which works the same.
func (l *loop) registerRingFd(r *uring.Ring) {
	if err := r.RegisterRingFd(); err != nil {
		l.log.Debug("io_uring: ring entered by fd", "loop", l.id, "err", err)
	}
}

// serve is the event loop.
func (l *loop) serve() error {
	l.clock = time.Now()
	l.now = l.clock.UnixNano()
	l.nextTick = l.now + int64(tickInterval)
	l.armEventfd()
	for !l.exit {
		wait := time.Duration(l.nextTick - l.now)
		if wait < 0 || l.postPending.Load() {
			wait = 0
		}
		// Extra rings: submit what the flush prepared and run their
		// deferred completions, only where there is work (memory reads,
		// no syscall otherwise). Their completions signal the eventfd,
		// whose read is armed on ring 0, so waiting on ring 0 waits on all.
		if l.enterExtraRings() {
			wait = 0
		}
		if _, err := l.ring.SubmitAndWaitTimeout(1, wait); err != nil && !errors.Is(err, uring.ErrTimeout) {
			if !errors.Is(err, syscall.EBUSY) && !errors.Is(err, syscall.EAGAIN) {
				return fmt.Errorf("io_uring_enter: %w", err)
			}
		}
		// One monotonic clock read per batch (time.Now reads two clocks);
		// the wall-clock base is re-read every tick, so now never drifts
		// from time.Now by more than a tick's clock adjustment.
		l.now = l.clock.UnixNano() + int64(time.Since(l.clock))
		l.core.SetNow(l.now) // the core reads no clock on the per-query path
		l.reap(0)
		if len(l.rings) > 1 {
			l.enterExtraRings()
			for r := 1; r < len(l.rings); r++ {
				l.reap(r)
			}
		}
		l.runPosts()
		if l.now >= l.nextTick {
			l.clock = time.Now()
			l.now = l.clock.UnixNano()
			l.core.SetNow(l.now)
			l.core.Tick()
			l.checkLinger()
			if l.ticks++; l.ticks%trimEvery == 0 && len(l.rings) > 1 {
				l.trimRings()
			}
			l.nextTick = l.now + int64(tickInterval)
		}
		l.flush()
		l.drained.Store(l.core.Drained())
	}
	return nil
}

// Post implements proxy.Poster: fn runs on the loop's thread soon.
// It is dropped once the loop has exited. The eventfd is written under pmu
// so it cannot be closed (and its number reused) meanwhile.
func (l *loop) Post(fn func()) {
	l.pmu.Lock()
	defer l.pmu.Unlock()
	if l.efd < 0 {
		return
	}
	l.posts = append(l.posts, fn)
	if l.postPending.CompareAndSwap(false, true) {
		l.wake()
	}
}

func (l *loop) wake() {
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	for {
		_, err := unix.Write(l.efd, one[:])
		if err != unix.EINTR {
			return
		}
	}
}

func (l *loop) runPosts() {
	if !l.postPending.Load() {
		return
	}
	l.postPending.Store(false)
	l.pmu.Lock()
	fns := l.posts
	l.posts = l.spare[:0]
	l.pmu.Unlock()
	for i, fn := range fns {
		fns[i] = nil
		fn()
	}
	l.spare = fns[:0]
}

func (l *loop) armEventfd() {
	if l.efdArmed || l.exit {
		return
	}
	s := l.sqe()
	*s = uring.SQE{Opcode: uring.OpRead, Fd: int32(l.efd), Addr: uint64(uintptr(l.reg.Pointer(regEventfd))), Len: 8, Off: ^uint64(0)}
	s.SetUserData(uring.PackUserData(opEventfd, 0, 0))
	l.efdArmed = true
}

// reap dispatches the CQEs ready on ring r.
func (l *loop) reap(r int) {
	ring := l.rings[r].ring
	for {
		n := ring.PeekBatch(l.cqes[:])
		for i := 0; i < n; i++ {
			l.dispatch(r, l.cqes[i])
		}
		if n < len(l.cqes) {
			break
		}
	}
}

// enterExtraRings enters (without blocking) every extra ring that has SQEs
// to submit or deferred completions to run, and reports whether any extra
// ring has CQEs ready.
func (l *loop) enterExtraRings() bool {
	ready := false
	for r := 1; r < len(l.rings); r++ {
		ring := l.rings[r].ring
		if ring.SQPending() > 0 || ring.NeedsEnter() {
			if _, err := ring.SubmitAndWaitTimeout(0, 0); err != nil && !errors.Is(err, uring.ErrTimeout) &&
				!errors.Is(err, syscall.EBUSY) && !errors.Is(err, syscall.EAGAIN) {
				l.log.Error("io_uring: enter", "loop", l.id, "ring", r, "err", err)
			}
		}
		if ring.CQReady() > 0 {
			ready = true
		}
	}
	return ready
}

// sqe returns a free SQE of ring 0, submitting what is prepared when the SQ
// is full.
func (l *loop) sqe() *uring.SQE { return l.sqeOn(0) }

// sqeOn returns a free SQE of ring r.
func (l *loop) sqeOn(r int) *uring.SQE {
	ring := l.rings[r].ring
	if s := ring.GetSQE(); s != nil {
		return s
	}
	if _, err := ring.Submit(); err != nil {
		l.log.Error("io_uring: submit", "loop", l.id, "ring", r, "err", err)
	}
	if s := ring.GetSQE(); s != nil {
		return s
	}
	panic("uringengine: submission queue still full after submit")
}

// sqeFor returns a free SQE of the ring holding connection id.
func (l *loop) sqeFor(id uint32) *uring.SQE { return l.sqeOn(int(id >> ringShift)) }

// reserveSQ makes sure n SQEs can be prepared before the next submit (a
// linked chain must go to the kernel in one submit).
func (l *loop) reserveSQ(n uint32) {
	if l.ring.SQSpace() < n {
		if _, err := l.ring.Submit(); err != nil {
			l.log.Error("io_uring: submit", "loop", l.id, "err", err)
		}
	}
}

// dispatch handles one CQE.
func (l *loop) dispatch(r int, cqe uring.CQE) {
	op, slot, gen := uring.UnpackUserData(cqe.UserData)
	switch op {
	case opEventfd:
		l.efdArmed = false
		if err := cqe.Err(); err != nil && !l.exit {
			l.log.Warn("io_uring: eventfd read", "loop", l.id, "err", err)
		}
		return
	case opAccept:
		l.handleAccept(slot, cqe)
		return
	case opCancelAccept:
		return
	}
	c := l.connAt(slot)
	if c == nil || int(slot>>ringShift) != r || c.gen != gen || c.state == stFree {
		// Cannot happen (slots are reused only when nothing is in flight),
		// but never leak a provided buffer.
		if id, ok := cqe.BufferID(); ok {
			l.rings[r].br.Recycle(id)
		}
		l.log.Debug("io_uring: stale completion", "op", op, "slot", slot, "gen", gen, "res", cqe.Res)
		return
	}
	switch op {
	case opRecv:
		l.handleRecv(c, slot, cqe)
	case opSend:
		l.handleSend(c, slot, cqe)
	case opClose:
		c.flags &^= fHasFile
		if err := cqe.Err(); err != nil {
			l.log.Debug("io_uring: close_direct", "slot", slot, "err", err)
		}
		l.opDone(c, slot)
	case opCancel:
		l.opDone(c, slot)
	case opConnect:
		l.handleConnect(c, slot, cqe)
	case opLinkTO:
		if uring.IsTimeout(cqe.Err()) {
			c.flags |= fTimedOut
		}
		l.opDone(c, slot)
	case opRefRecv:
		l.handleRefRecv(c, slot)
	case opRefSend:
		l.opDone(c, slot)
	default:
		l.log.Error("io_uring: unknown completion", "op", op, "slot", slot)
	}
}

// flush carries out what the batch queued: every dirty connection is
// serviced, failed dials are reported, accepts and the eventfd re-armed.
func (l *loop) flush() {
	for len(l.dirty) > 0 || len(l.failedDials) > 0 {
		for i := 0; i < len(l.dirty); i++ {
			l.service(l.dirty[i])
		}
		l.dirty = l.dirty[:0]
		for len(l.failedDials) > 0 {
			f := l.failedDials[0]
			l.failedDials = l.failedDials[1:]
			f.ep.OnConnected(f.err)
		}
		l.failedDials = l.failedDials[:0:0]
	}
	l.armAccepts()
	l.armEventfd()
}

// checkLinger cuts closing connections whose output did not drain in time.
func (l *loop) checkLinger() {
	keep := l.lingering[:0]
	for _, sg := range l.lingering {
		c := l.c(sg.slot)
		if c.gen != sg.gen || c.state == stFree || c.flags&fClosing == 0 || c.io == nil {
			continue
		}
		if l.now-c.io.closeAt < int64(lingerTimeout) {
			keep = append(keep, sg)
			continue
		}
		l.log.Debug("io_uring: closing connection whose peer does not read", "slot", sg.slot)
		l.stats.lingerTimeouts++
		l.dropOutput(c)
		if c.flags&fSending != 0 {
			l.cancel(c, sg.slot, opSend)
		}
		l.markDirty(c, sg.slot)
	}
	clear(l.lingering[len(keep):])
	l.lingering = keep
}

func (l *loop) warnSlots(what string) {
	if l.now < l.warnSlotsAt {
		return
	}
	l.warnSlotsAt = l.now + int64(10*time.Second)
	l.log.Warn("io_uring: registered file table full: "+what, "loop", l.id,
		"slots", l.o.FileSlots, "reserved_for_servers", l.o.ServerSlots,
		"hint", "raise RLIMIT_NOFILE (the table is capped by it) or use more workers")
}

// regionBytes returns region memory as a byte slice (for sockaddrs).
func (l *loop) regionBytes(off, n int) []byte { return l.reg.Slice(off, n) }

func (l *loop) regionPtr(off int) unsafe.Pointer { return l.reg.Pointer(off) }
