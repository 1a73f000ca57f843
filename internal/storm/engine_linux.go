//go:build linux

package storm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/poolmgr/poolmgr/internal/uring"
)

// user_data op codes (uring.PackUserData: op, slot, generation).
const (
	opSocket uint8 = iota + 1
	opBind
	opConnect
	opStartup
	opRecv
	opSendAuth
	opSendQuery
	opSendTerm
	opCancel
	opClose
)

// Engine-side connection states (the protocol phase is in conn.cl).
const (
	csFree       uint8 = iota
	csConnecting       // SOCKET -> [BIND ->] CONNECT -> SEND(startup) chain in flight
	csOpen             // connected; protocol in conn.cl
	csClosing          // [SEND(Terminate) ->] CANCEL -> CLOSE in flight
)

// conn flags.
const (
	fCounted uint8 = 1 << iota // in the connect/login in-flight count
	fActive                    // member of the active set
	fActiveQ                   // an active-set query is running
	fSampleQ                   // a sample query is running
)

// conn is one slot of a ring: 64 bytes, no goroutine.
type conn struct {
	cl    Client
	t0    int64 // ns since run start: connect start, or query start
	gen   uint32
	state uint8
	flags uint8
}

type ring struct {
	r     *uring.Ring
	br    *uring.BufRing
	conns []conn
	slots *uring.SlotAllocator
	bind  *uring.Region       // 16-byte sockaddr per slot for BIND
	auth  map[uint32][][]byte // auth replies in flight, per slot (kept referenced until their CQE)
	live  int
}

// phases, set by the controller, followed by every worker.
const (
	phSetup int32 = iota
	phConnect
	phActive
	phHold
	phSample
	phClose
	phExit
)

// wstats are a worker's counters the controller reads while it runs.
type wstats struct {
	attempts, established, failed, inflight atomic.Int64
	live, closed, errors, dropped           atomic.Int64
	activeQueries, activeErrs, activeBusy   atomic.Int64
	sampleOK, sampleFailed                  atomic.Int64
	connectDone, sampleDone                 atomic.Bool
}

type worker struct {
	id   int
	cfg  *Config
	ctl  *control
	base time.Time // run start (monotonic)

	proto *Proto
	rings []*ring
	efd   int
	msgs  *uring.Region
	dst   unsafe.Pointer
	start []byte // StartupMessage in msgs
	query []byte // Query in msgs
	term  []byte // Terminate in msgs
	cqes  [256]uring.CQE

	phase     int32
	target    int64 // connections to open
	rate      float64
	inflMax   int
	srcNext   int
	rr        int
	nextSweep int64

	attempts, established, failed, bindConflicts int64
	inflight                                     int
	connectStart                                 int64

	activeWant int64
	activeRefs []connRef // the active set (sweep checks only these while nothing else is in flight)
	sampleWant int64
	sampleQ    []connRef
	sampleInfl int
	closeRing  int
	closeSlot  int

	loginH, queryH, sampleH Histogram
	errs                    map[string]int64
	perSec                  []int64
	authCounts              AuthCounts

	st  wstats
	err error // fatal
}

type connRef struct {
	ring, slot, gen uint32
}

// control is what the controller shares with the workers.
type control struct {
	phase        atomic.Int32
	connectStart atomic.Int64 // ns since run start
	workers      []*worker
	keys         *KeyCache // SCRAM ClientKey, shared by the workers
}

// setPhase moves every worker to phase p, except that phExit (set by a
// failing worker too) is final.
func (c *control) setPhase(p int32) {
	for {
		cur := c.phase.Load()
		if cur == phExit || c.phase.CompareAndSwap(cur, p) {
			break
		}
	}
	for _, w := range c.workers {
		w.wake()
	}
}

func (w *worker) now() int64 { return int64(time.Since(w.base)) }

func (w *worker) wake() {
	var one = [8]byte{1}
	unix.Write(w.efd, one[:])
}

// newWorker computes a worker's share; setup runs on its own thread.
func newWorker(id int, cfg *Config, ctl *control, base time.Time) *worker {
	W := cfg.Workers
	share := int64(cfg.N / W)
	if id < cfg.N%W {
		share++
	}
	w := &worker{
		id: id, cfg: cfg, ctl: ctl, base: base,
		target:  share,
		rate:    cfg.Rate / float64(W),
		inflMax: max(1, cfg.Inflight/W),
		srcNext: id,
		errs:    map[string]int64{},
		efd:     -1,
	}
	return w
}

// ringPlan returns how many rings a worker holding n connections uses and
// the slots of each.
func ringPlan(n int64, slotsPerRing int) (rings, slots int) {
	if n == 0 {
		return 0, 0
	}
	rings = int((n + int64(slotsPerRing) - 1) / int64(slotsPerRing))
	per := int((n+int64(rings)-1)/int64(rings)) + 256 // headroom for slots still closing
	return rings, min(per, slotsPerRing)
}

// setup runs on the worker's locked thread: rings, file tables, buffer
// rings, eventfd, message region.
func (w *worker) setup() error {
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return fmt.Errorf("eventfd: %w", err)
	}
	w.efd = efd
	w.proto = NewProto(w.cfg.Login, nil, w.ctl.keys)

	// Shared, constant memory the kernel reads: destination sockaddr and
	// the pre-encoded messages.
	st, q, t := w.proto.StartupMessage(), w.proto.QueryMessage(), TerminateMessage()
	size := 64 + len(st) + len(q) + len(t)
	if w.msgs, err = uring.NewRegion(size); err != nil {
		return err
	}
	putSockaddr(w.msgs.Slice(0, 16), w.cfg.Addr.Addr().As4(), int(w.cfg.Addr.Port()))
	w.dst = w.msgs.Pointer(0)
	off := 64
	w.start = w.msgs.Slice(off, len(st))
	copy(w.start, st)
	off += len(st)
	w.query = w.msgs.Slice(off, len(q))
	copy(w.query, q)
	off += len(q)
	w.term = w.msgs.Slice(off, len(t))
	copy(w.term, t)

	nr, slots := ringPlan(w.target, w.cfg.SlotsPerRing)
	for i := 0; i < nr; i++ {
		rg := &ring{auth: map[uint32][][]byte{}}
		w.rings = append(w.rings, rg)
		cq := uint32(min(65536, max(4096, 4*slots)))
		if rg.r, err = uring.New(4096, uring.Options{DeferTaskrun: true, SubmitAll: true, CQEntries: cq}); err != nil {
			return err
		}
		if err = rg.r.RegisterFilesSparse(uint32(slots)); err != nil {
			return err
		}
		if rg.br, err = rg.r.RegisterBufRing(0, uint16(w.cfg.RecvBufs), w.cfg.RecvBufSize); err != nil {
			return err
		}
		if err = rg.r.RegisterEventfd(efd); err != nil {
			return err
		}
		if rg.bind, err = uring.NewRegion(16 * slots); err != nil {
			return err
		}
		rg.conns = make([]conn, slots)
		rg.slots = uring.NewSlotAllocator(uint32(slots))
	}
	return nil
}

func (w *worker) teardown() {
	for _, rg := range w.rings {
		if rg.r != nil {
			rg.r.Close()
		}
		if rg.bind != nil {
			rg.bind.Free()
		}
	}
	if w.msgs != nil {
		w.msgs.Free()
	}
	if w.efd >= 0 {
		unix.Close(w.efd)
	}
	w.authCounts = w.proto.Counts()
}

// putSockaddr writes a struct sockaddr_in.
func putSockaddr(b []byte, ip [4]byte, port int) {
	*(*uint16)(unsafe.Pointer(&b[0])) = unix.AF_INET // host byte order
	binary.BigEndian.PutUint16(b[2:], uint16(port))
	copy(b[4:8], ip[:])
	clear(b[8:16])
}

// run is the worker goroutine: lock the thread (SINGLE_ISSUER rings must be
// driven by the thread that created them), set up, loop until phExit.
func (w *worker) run(ready chan<- error, done func()) {
	defer done()
	runtime.LockOSThread()
	if err := w.setup(); err != nil {
		w.teardown()
		ready <- fmt.Errorf("worker %d: %w", w.id, err)
		return
	}
	ready <- nil
	w.loop()
	w.teardown()
}

func (w *worker) loop() {
	for {
		now := w.now()
		if ph := w.ctl.phase.Load(); ph != w.phase {
			w.enter(ph, now)
			if ph == phExit {
				return
			}
		}
		w.issue(now)
		if now >= w.nextSweep {
			w.sweep(now)
			w.nextSweep = now + int64(250*time.Millisecond)
		}
		busy := false
		for _, rg := range w.rings {
			if w.service(rg) {
				busy = true
			}
		}
		w.publish()
		if w.err != nil {
			w.ctl.phase.Store(phExit) // a broken ring ends the run
			return
		}
		if busy {
			continue
		}
		w.wait(w.timeout(now))
	}
}

// service submits what is prepared, runs deferred completions and handles
// the CQEs of one ring; it reports whether anything happened.
func (w *worker) service(rg *ring) bool {
	did := false
	for round := 0; round < 8; round++ {
		if rg.r.SQPending() > 0 || rg.r.NeedsEnter() {
			if err := w.submit(rg); err != nil {
				return did
			}
			did = true
		}
		if rg.r.CQReady() == 0 {
			break
		}
		did = true
		for {
			n := rg.r.PeekBatch(w.cqes[:])
			for i := 0; i < n; i++ {
				w.handle(rg, w.cqes[i], w.now()) // per CQE: a batch can take a while
			}
			rg.br.Advance() // give the recycled recv buffers back to the kernel
			if n < len(w.cqes) {
				break
			}
		}
	}
	return did
}

func (w *worker) submit(rg *ring) error {
	for try := 0; ; try++ {
		_, err := rg.r.Submit()
		if err == nil {
			err = rg.r.GetEvents()
		}
		if err == nil {
			return nil
		}
		if (errors.Is(err, syscall.EBUSY) || errors.Is(err, syscall.EAGAIN)) && try < 100 {
			time.Sleep(time.Millisecond)
			continue
		}
		w.err = fmt.Errorf("worker %d: io_uring_enter: %w", w.id, err)
		return w.err
	}
}

// sqes makes room for n SQEs in rg (submitting what is prepared).
func (w *worker) sqes(rg *ring, n uint32) bool {
	if rg.r.SQSpace() >= n {
		return true
	}
	if w.submit(rg) != nil {
		return false
	}
	if rg.r.SQSpace() >= n {
		return true
	}
	w.err = fmt.Errorf("worker %d: submission queue stays full", w.id)
	return false
}

func (w *worker) timeout(now int64) time.Duration {
	d := 100 * time.Millisecond
	if s := time.Duration(w.nextSweep - now); s < d {
		d = s
	}
	if w.phase == phConnect && w.rate > 0 && w.attempts < w.target && w.inflight < w.inflMax {
		next := w.connectStart + int64(float64(w.attempts)/w.rate*1e9)
		if t := time.Duration(next - now); t < d {
			d = t
		}
	}
	return max(d, time.Millisecond)
}

// wait sleeps until a ring signals the eventfd, the controller wakes us,
// or d passes. Never while a ring has deferred work pending.
func (w *worker) wait(d time.Duration) {
	for _, rg := range w.rings {
		if rg.r.NeedsEnter() || rg.r.CQReady() > 0 {
			return
		}
	}
	fds := []unix.PollFd{{Fd: int32(w.efd), Events: unix.POLLIN}}
	ms := int((d + time.Millisecond - 1) / time.Millisecond)
	if _, err := unix.Poll(fds, ms); err == nil && fds[0].Revents&unix.POLLIN != 0 {
		var b [8]byte
		unix.Read(w.efd, b[:])
	}
}

func (w *worker) publish() {
	w.st.attempts.Store(w.attempts)
	w.st.established.Store(w.established)
	w.st.failed.Store(w.failed)
	w.st.inflight.Store(int64(w.inflight))
	live := 0
	for _, rg := range w.rings {
		live += rg.live
	}
	w.st.live.Store(int64(live))
	if w.phase == phConnect && w.attempts >= w.target && w.inflight == 0 {
		w.st.connectDone.Store(true)
	}
	if w.phase == phSample && len(w.sampleQ) == 0 && w.sampleInfl == 0 {
		w.st.sampleDone.Store(true)
	}
}

func (w *worker) enter(ph int32, now int64) {
	w.phase = ph
	switch ph {
	case phConnect:
		w.connectStart = w.ctl.connectStart.Load()
	case phActive:
		want := w.activeWant
		for ri, rg := range w.rings {
			for s := range rg.conns {
				if want == 0 {
					break
				}
				c := &rg.conns[s]
				if c.state == csOpen && c.cl.Phase() == PhaseIdle {
					c.flags |= fActive
					w.activeRefs = append(w.activeRefs, connRef{uint32(ri), uint32(s), c.gen})
					w.startQuery(w.rings[ri], uint32(s), c, fActiveQ, now)
					want--
				}
			}
		}
	case phSample:
		var all []connRef
		for ri, rg := range w.rings {
			for s := range rg.conns {
				c := &rg.conns[s]
				if c.state == csOpen && c.cl.Phase() == PhaseIdle {
					all = append(all, connRef{uint32(ri), uint32(s), c.gen})
				}
			}
		}
		want := int(w.sampleWant)
		if want < 0 || want >= len(all) {
			w.sampleQ = all
		} else {
			w.sampleQ = make([]connRef, 0, want)
			for i := 0; i < want; i++ { // evenly spread over the connections
				w.sampleQ = append(w.sampleQ, all[i*len(all)/want])
			}
		}
	case phClose:
		w.closeRing, w.closeSlot = 0, 0
	}
}

// issue starts new work the phase calls for: connects, sample queries,
// closes.
func (w *worker) issue(now int64) {
	switch w.phase {
	case phConnect:
		for w.attempts < w.target && w.inflight < w.inflMax {
			if w.rate > 0 && float64(now-w.connectStart)/1e9*w.rate < float64(w.attempts) {
				break
			}
			if !w.startConnect(now) {
				break
			}
		}
	case phSample:
		for w.sampleInfl < w.inflMax && len(w.sampleQ) > 0 {
			ref := w.sampleQ[len(w.sampleQ)-1]
			w.sampleQ = w.sampleQ[:len(w.sampleQ)-1]
			rg := w.rings[ref.ring]
			c := &rg.conns[ref.slot]
			if c.gen != ref.gen || c.state != csOpen || c.cl.Phase() != PhaseIdle {
				w.sampleFail("sample: connection gone before its query")
				continue
			}
			w.sampleInfl++
			w.startQuery(rg, ref.slot, c, fSampleQ, now)
		}
	case phClose:
		budget := 4096
		for w.closeRing < len(w.rings) && budget > 0 {
			rg := w.rings[w.closeRing]
			for w.closeSlot < len(rg.conns) && budget > 0 {
				s := uint32(w.closeSlot)
				w.closeSlot++
				c := &rg.conns[s]
				switch c.state {
				case csOpen:
					ph := c.cl.Phase()
					w.unaccount(c, "")
					w.closeConn(rg, s, c, ph == PhaseIdle || ph == PhaseQuery)
					budget--
				case csConnecting:
					w.unaccount(c, "")
					w.closeConn(rg, s, c, false)
					budget--
				}
			}
			if w.closeSlot >= len(rg.conns) {
				w.closeRing++
				w.closeSlot = 0
			}
		}
	}
}

func (w *worker) pickRing() *ring {
	for i := 0; i < len(w.rings); i++ {
		rg := w.rings[w.rr]
		w.rr = (w.rr + 1) % len(w.rings)
		if rg.slots.Free() > 0 {
			return rg
		}
	}
	return nil
}

func ud(op uint8, slot, gen uint32) uint64 { return uring.PackUserData(op, slot, gen) }

// startConnect submits SOCKET -> [BIND ->] CONNECT -> SEND(StartupMessage),
// linked, in one submit.
func (w *worker) startConnect(now int64) bool {
	src := w.cfg.Sources
	if src != nil && w.srcNext >= src.Size() {
		w.count("sources exhausted: add -src-count or ports")
		w.failed += w.target - w.attempts
		w.target = w.attempts
		return false
	}
	rg := w.pickRing()
	if rg == nil {
		return false
	}
	chain := uint32(3)
	if src != nil {
		chain = 4
	}
	if !w.sqes(rg, chain) {
		return false
	}
	slot, _ := rg.slots.Get()
	c := &rg.conns[slot]
	*c = conn{gen: c.gen, state: csConnecting, t0: now, flags: fCounted}
	c.cl.Start()
	rg.live++
	g := c.gen
	r := rg.r
	r.GetSQE().PrepSocketDirect(unix.AF_INET, unix.SOCK_STREAM, 0, slot, 0).SetLink().SetUserData(ud(opSocket, slot, g))
	if src != nil {
		ip, port := src.At(w.srcNext)
		w.srcNext += w.cfg.Workers
		sa := rg.bind.Slice(int(slot)*16, 16)
		putSockaddr(sa, ip, port)
		r.GetSQE().PrepBind(int32(slot), unsafe.Pointer(&sa[0]), 16).SetFixedFile().SetLink().SetUserData(ud(opBind, slot, g))
	}
	r.GetSQE().PrepConnect(int32(slot), w.dst, 16).SetFixedFile().SetLink().SetUserData(ud(opConnect, slot, g))
	r.GetSQE().PrepSend(int32(slot), w.start, unix.MSG_WAITALL|unix.MSG_NOSIGNAL).SetFixedFile().SetUserData(ud(opStartup, slot, g))
	w.attempts++
	w.inflight++
	return true
}

func (w *worker) armRecv(rg *ring, slot uint32, c *conn) {
	if !w.sqes(rg, 1) {
		return
	}
	rg.r.GetSQE().PrepRecvMultishot(int32(slot), rg.br.Group(), 0).SetFixedFile().SetUserData(ud(opRecv, slot, c.gen))
}

func (w *worker) startQuery(rg *ring, slot uint32, c *conn, kind uint8, now int64) {
	if !c.cl.StartQuery() || !w.sqes(rg, 1) {
		return
	}
	c.t0 = now
	c.flags |= kind
	if kind == fActiveQ {
		w.st.activeBusy.Add(1)
	}
	rg.r.GetSQE().PrepSend(int32(slot), w.query, unix.MSG_WAITALL|unix.MSG_NOSIGNAL).SetFixedFile().
		SetCQESkipSuccess().SetUserData(ud(opSendQuery, slot, c.gen))
}

func (w *worker) sendAuth(rg *ring, slot uint32, c *conn, out []byte) {
	if !w.sqes(rg, 1) {
		return
	}
	buf := append([]byte(nil), out...) // referenced from rg.auth until its CQE
	rg.auth[slot] = append(rg.auth[slot], buf)
	rg.r.GetSQE().PrepSend(int32(slot), buf, unix.MSG_WAITALL|unix.MSG_NOSIGNAL).SetFixedFile().
		SetUserData(ud(opSendAuth, slot, c.gen))
}

// closeConn submits [SEND(Terminate) =>] CANCEL => CLOSE, hard-linked; the
// slot is free when the CLOSE completes. The cancel targets the one request
// that keeps the socket referenced (the armed multishot recv, or the
// connect chain) by its user_data: a hashed lookup. Cancelling by file
// (IORING_ASYNC_CANCEL_FD) would scan every armed request of the ring for
// each close, quadratic in the connections held.
func (w *worker) closeConn(rg *ring, slot uint32, c *conn, terminate bool) {
	if c.state == csClosing || c.state == csFree {
		return
	}
	n := uint32(2)
	if terminate {
		n = 3
	}
	if !w.sqes(rg, n) {
		return
	}
	target := ud(opRecv, slot, c.gen)
	if c.state == csConnecting {
		target = ud(opConnect, slot, c.gen)
	}
	c.state = csClosing
	c.cl.Finish()
	g := c.gen
	r := rg.r
	if terminate {
		r.GetSQE().PrepSend(int32(slot), w.term, unix.MSG_WAITALL|unix.MSG_NOSIGNAL).SetFixedFile().
			SetHardLink().SetCQESkipSuccess().SetUserData(ud(opSendTerm, slot, g))
	}
	r.GetSQE().PrepCancel(target, 0).SetHardLink().SetCQESkipSuccess().SetUserData(ud(opCancel, slot, g))
	r.GetSQE().PrepCloseDirect(slot).SetUserData(ud(opClose, slot, g))
}

func (w *worker) count(key string) {
	w.errs[key]++
	w.st.errors.Add(1)
}

func (w *worker) sampleFail(key string) {
	w.count(key)
	w.st.sampleFailed.Add(1)
}

// unaccount ends whatever the connection was counted in (login in flight,
// a running query, the idle set), recording key as the error ("" = a
// regular close).
func (w *worker) unaccount(c *conn, key string) {
	switch {
	case c.flags&fCounted != 0:
		c.flags &^= fCounted
		w.inflight--
		if key != "" {
			w.failed++
		}
	case c.flags&fActiveQ != 0:
		c.flags &^= fActiveQ
		w.st.activeBusy.Add(-1)
		if key != "" {
			w.st.activeErrs.Add(1)
		}
	case c.flags&fSampleQ != 0:
		c.flags &^= fSampleQ
		w.sampleInfl--
		if key != "" {
			w.st.sampleFailed.Add(1)
		}
	default:
		if key != "" {
			w.st.dropped.Add(1)
		}
	}
	if key != "" {
		w.count(key)
	}
}

// fail ends a connection because of an error.
func (w *worker) fail(rg *ring, slot uint32, c *conn, key string) {
	w.unaccount(c, key)
	w.closeConn(rg, slot, c, false)
}

// where names what a connection was doing, for error keys.
func (c *conn) where() string {
	switch {
	case c.flags&fCounted != 0:
		return "login"
	case c.flags&(fActiveQ|fSampleQ) != 0:
		return "query"
	}
	return "idle"
}

func errnoName(res int32) string {
	e := syscall.Errno(-res)
	if n := unix.ErrnoName(e); n != "" {
		return n
	}
	return e.Error()
}

func (w *worker) handle(rg *ring, cqe uring.CQE, now int64) {
	op, slot, gen := uring.UnpackUserData(cqe.UserData)
	if op == opRecv {
		w.recv(rg, slot, gen, cqe, now)
		return
	}
	if int(slot) >= len(rg.conns) {
		return
	}
	c := &rg.conns[slot]
	if gen != c.gen&uring.UserDataGenMask || c.state == csFree {
		return // a CQE of a connection that has since been closed
	}
	if op == opClose {
		c.gen++
		c.state = csFree
		c.flags = 0
		c.cl = Client{}
		delete(rg.auth, slot)
		rg.slots.Put(slot)
		rg.live--
		w.st.closed.Add(1)
		return
	}
	if op == opSendAuth {
		if q := rg.auth[slot]; len(q) > 0 {
			q[0] = nil
			if q = q[1:]; len(q) == 0 {
				delete(rg.auth, slot)
			} else {
				rg.auth[slot] = q
			}
		}
	}
	if c.state == csClosing || cqe.Res >= 0 && op != opConnect {
		return
	}
	switch op {
	case opSocket:
		w.fail(rg, slot, c, "socket: "+errnoName(cqe.Res))
	case opBind:
		if cqe.Res == -int32(syscall.EADDRINUSE) {
			// (address, port) still taken, e.g. by a TIME_WAIT socket of
			// an earlier run: skip the pair and try the next one.
			w.bindConflicts++
			c.flags &^= fCounted
			w.inflight--
			w.attempts--
			w.closeConn(rg, slot, c, false)
			return
		}
		w.fail(rg, slot, c, "bind: "+errnoName(cqe.Res))
	case opConnect:
		if cqe.Res < 0 {
			w.fail(rg, slot, c, "connect: "+errnoName(cqe.Res))
			return
		}
		c.state = csOpen
		w.armRecv(rg, slot, c)
	case opStartup:
		w.fail(rg, slot, c, "send: "+errnoName(cqe.Res)+" (login)")
	case opSendAuth, opSendQuery, opSendTerm:
		w.fail(rg, slot, c, "send: "+errnoName(cqe.Res)+" ("+c.where()+")")
	}
}

func (w *worker) recv(rg *ring, slot, gen uint32, cqe uring.CQE, now int64) {
	id, hasBuf := cqe.BufferID()
	if int(slot) >= len(rg.conns) {
		if hasBuf {
			rg.br.Add(id)
		}
		return
	}
	c := &rg.conns[slot]
	if gen != c.gen&uring.UserDataGenMask || c.state != csOpen {
		if hasBuf {
			rg.br.Add(id)
		}
		return
	}
	if cqe.Res > 0 && hasBuf {
		res := c.cl.Feed(w.proto, rg.br.Buffer(id)[:cqe.Res])
		rg.br.Add(id)
		w.result(rg, slot, c, &res, now)
		if c.state == csOpen && !cqe.More() {
			w.armRecv(rg, slot, c)
		}
		return
	}
	if hasBuf {
		rg.br.Add(id)
	}
	switch {
	case cqe.Res == -int32(syscall.ENOBUFS):
		w.count("recv: ENOBUFS (re-armed; raise recv buffers)")
		w.st.errors.Add(-1) // not a connection error
		if !cqe.More() {
			w.armRecv(rg, slot, c)
		}
	case cqe.Res == 0:
		w.fail(rg, slot, c, "closed by server ("+c.where()+")")
	case cqe.Res < 0:
		w.fail(rg, slot, c, "recv: "+errnoName(cqe.Res)+" ("+c.where()+")")
	}
}

// result acts on what the protocol state machine reported.
func (w *worker) result(rg *ring, slot uint32, c *conn, res *Result, now int64) {
	if len(res.Out) > 0 {
		w.sendAuth(rg, slot, c, res.Out)
	}
	if res.Err != nil {
		msg := res.Err.Error()
		if len(msg) > 100 {
			msg = msg[:100]
		}
		w.fail(rg, slot, c, "client: "+msg+" ("+c.where()+")")
		return
	}
	if res.Events&EvServerError != 0 && res.Events&EvFatal != 0 {
		w.fail(rg, slot, c, "SQLSTATE "+res.CodeString()+" ("+c.where()+")")
		return
	}
	if res.Events&EvLoggedIn != 0 {
		c.flags &^= fCounted
		w.inflight--
		w.established++
		w.loginH.Record(now - c.t0)
		sec := int((now - w.connectStart) / int64(time.Second))
		if sec >= 0 {
			for len(w.perSec) <= sec {
				w.perSec = append(w.perSec, 0)
			}
			w.perSec[sec]++
		}
	}
	if res.Events&EvQueryDone != 0 {
		lat := now - c.t0
		failed := res.Events&EvServerError != 0
		switch {
		case c.flags&fActiveQ != 0:
			c.flags &^= fActiveQ
			w.st.activeBusy.Add(-1)
			w.queryH.Record(lat)
			w.st.activeQueries.Add(1)
			if failed {
				w.st.activeErrs.Add(1)
				w.count("SQLSTATE " + res.CodeString() + " (query)")
			}
			if w.phase == phActive {
				w.startQuery(rg, slot, c, fActiveQ, now)
			}
		case c.flags&fSampleQ != 0:
			c.flags &^= fSampleQ
			w.sampleInfl--
			w.sampleH.Record(lat)
			if failed {
				w.sampleFail("SQLSTATE " + res.CodeString() + " (query)")
			} else {
				w.st.sampleOK.Add(1)
			}
		}
	}
}

// sweep ends connections stuck in connect/login or in a query.
func (w *worker) sweep(now int64) {
	if w.inflight == 0 && w.sampleInfl == 0 && w.st.activeBusy.Load() == 0 {
		return
	}
	loginTO := int64(w.cfg.LoginTimeout)
	queryTO := int64(w.cfg.QueryTimeout)
	if w.inflight == 0 && w.sampleInfl == 0 {
		// Only active queries can time out: check the active set, not every
		// held connection (a full scan of 500,000 per worker every 250 ms
		// was 2% of the machine's CPU during the active phase at 1M).
		for _, ref := range w.activeRefs {
			rg := w.rings[ref.ring]
			c := &rg.conns[ref.slot]
			if c.gen == ref.gen && c.state == csOpen && c.flags&fActiveQ != 0 && now-c.t0 > queryTO {
				w.fail(rg, ref.slot, c, "timeout (query)")
			}
		}
		return
	}
	for _, rg := range w.rings {
		for s := range rg.conns {
			c := &rg.conns[s]
			switch c.state {
			case csConnecting:
				if now-c.t0 > loginTO {
					w.fail(rg, uint32(s), c, "timeout (connect)")
				}
			case csOpen:
				if c.flags&fCounted != 0 && now-c.t0 > loginTO {
					w.fail(rg, uint32(s), c, "timeout (login)")
				} else if c.flags&(fActiveQ|fSampleQ) != 0 && now-c.t0 > queryTO {
					w.fail(rg, uint32(s), c, "timeout (query)")
				}
			}
		}
	}
}
