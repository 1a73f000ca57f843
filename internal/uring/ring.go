//go:build linux

package uring

import (
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Options selects io_uring_setup flags.
type Options struct {
	// CQEntries, if non-zero, sizes the completion queue
	// (IORING_SETUP_CQSIZE); the kernel rounds it up to a power of two. By
	// default the CQ has twice the SQ entries. Size it for the number of
	// in-flight multishot requests.
	CQEntries uint32
	// SingleIssuer sets IORING_SETUP_SINGLE_ISSUER: only the thread that
	// created the ring may submit to or register with it (-EEXIST otherwise).
	SingleIssuer bool
	// DeferTaskrun sets SINGLE_ISSUER|DEFER_TASKRUN|TASKRUN_FLAG (DEFER_TASKRUN
	// alone is EINVAL). Completions are then only run inside io_uring_enter
	// with GETEVENTS on the creating thread: see GetEvents.
	DeferTaskrun bool
	// CoopTaskrun sets COOP_TASKRUN|TASKRUN_FLAG (ignored with DeferTaskrun).
	CoopTaskrun bool
	// SubmitAll sets IORING_SETUP_SUBMIT_ALL: keep submitting after an SQE
	// fails at submission (its error arrives as a CQE).
	SubmitAll bool
	// Clamp sets IORING_SETUP_CLAMP: clamp entries to the kernel maxima
	// instead of failing.
	Clamp bool
	// RawWait makes blocking waits raw system calls: the Go scheduler is not
	// told the thread may block, so it neither hands the P to another thread
	// nor keeps sysmon polling for it. Only for a goroutine locked to its
	// thread (an event loop) when GOMAXPROCS leaves a P for everything else:
	// the runtime still preempts the goroutine by signal (the wait returns
	// EINTR, which submitAndWait retries) for garbage collection and every
	// 10 ms.
	RawWait bool
	// Flags is ORed into the setup flags as is. SQPOLL, IOPOLL, SQE128,
	// CQE32, NO_MMAP and REGISTERED_FD_ONLY are not supported by this binding.
	Flags uint32
}

func (o Options) setupFlags() (uint32, error) {
	const unsupported = SetupSQPoll | SetupIOPoll | SetupSQE128 | SetupCQE32 | SetupNoMmap | SetupRegisteredFD
	if o.Flags&unsupported != 0 {
		return 0, fmt.Errorf("uring: setup flags %#x not supported by this binding", o.Flags&unsupported)
	}
	f := o.Flags
	if o.CQEntries != 0 {
		f |= SetupCQSize
	}
	if o.SingleIssuer {
		f |= SetupSingleIssuer
	}
	if o.DeferTaskrun {
		f |= SetupSingleIssuer | SetupDeferTaskrun | SetupTaskrunFlag
	} else if o.CoopTaskrun {
		f |= SetupCoopTaskrun | SetupTaskrunFlag
	}
	if o.SubmitAll {
		f |= SetupSubmitAll
	}
	if o.Clamp {
		f |= SetupClamp
	}
	return f, nil
}

// Ring is one io_uring instance: its fd, the mmap'd SQ and CQ rings and the
// SQE array. A Ring is not safe for concurrent use: drive it from one
// goroutine locked to its OS thread (runtime.LockOSThread), which must also
// be the thread that called New when SingleIssuer or DeferTaskrun is set.
type Ring struct {
	fd       int
	raw      bool   // Options.RawWait
	enterFd  int    // what io_uring_enter gets: fd, or the registered index (RegisterRingFd)
	enterFlg uint32 // EnterRegisteredRing once registered
	regIndex int    // registered ring index; -1 when not registered
	flags    uint32
	features uint32

	sqRing  []byte // SQ ring mapping (also the CQ ring with FeatSingleMmap)
	cqRing  []byte // CQ ring mapping when separate, else nil
	sqesMem []byte

	// SQ ring, shared with the kernel.
	sqHead  *uint32 // written by the kernel: atomic load
	sqTail  *uint32 // written by us: atomic store
	sqFlags *uint32 // written by the kernel
	sqMask  uint32
	sqEnts  uint32
	sqes    []SQE
	sqeTail uint32 // next SQE handed out by GetSQE (local)
	sqeHead uint32 // last tail published to the kernel (local)

	// CQ ring, shared with the kernel.
	cqHead     *uint32 // written by us: atomic store
	cqTail     *uint32 // written by the kernel: atomic load
	cqOverflow *uint32
	cqMask     uint32
	cqEnts     uint32
	cqes       []CQE

	bufRings []*BufRing

	// Arguments for timed waits, kept here so that waiting allocates nothing
	// and the kernel reads stable memory during the syscall.
	waitTS  Timespec
	waitArg getEventsArg
}

// New creates a ring with at least `entries` SQEs (rounded up to a power of
// two by the kernel).
func New(entries uint32, opts Options) (*Ring, error) {
	flags, err := opts.setupFlags()
	if err != nil {
		return nil, err
	}
	p := params{Flags: flags, CQEntries: opts.CQEntries}
	fd, err := sysSetup(entries, &p)
	if err != nil {
		return nil, setupError(entries, flags, err)
	}
	r := &Ring{fd: fd, raw: opts.RawWait, enterFd: fd, regIndex: -1, flags: p.Flags, features: p.Features}
	if err := r.mapRings(&p); err != nil {
		r.unmap()
		unix.Close(fd)
		return nil, err
	}
	return r, nil
}

func setupError(entries, flags uint32, err error) error {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		switch errno {
		case syscall.EPERM, syscall.ENOSYS:
			env := readEnv()
			return fmt.Errorf("uring: io_uring_setup: %w: %s", err, diagnoseSetup(errno, env))
		case syscall.EINVAL:
			return fmt.Errorf("uring: io_uring_setup(entries=%d, flags=%#x): %w (unsupported flag combination or entries out of range for this kernel)", entries, flags, err)
		case syscall.ENOMEM:
			return fmt.Errorf("uring: io_uring_setup(entries=%d): %w (kernels before 5.12 charge rings to RLIMIT_MEMLOCK: raise `ulimit -l`)", entries, err)
		}
	}
	return fmt.Errorf("uring: io_uring_setup(entries=%d, flags=%#x): %w", entries, flags, err)
}

func mmapRing(fd int, off int64, size int) ([]byte, error) {
	b, err := unix.Mmap(fd, off, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("uring: mmap ring (offset %#x, %d bytes): %w", off, size, err)
	}
	return b, nil
}

func (r *Ring) mapRings(p *params) error {
	sqSize := int(p.SQOff.Array + p.SQEntries*4)
	cqSize := int(p.CQOff.CQEs + p.CQEntries*uint32(unsafe.Sizeof(CQE{})))
	var err error
	if p.Features&FeatSingleMmap != 0 {
		r.sqRing, err = mmapRing(r.fd, offSQRing, max(sqSize, cqSize))
		if err != nil {
			return err
		}
	} else {
		if r.sqRing, err = mmapRing(r.fd, offSQRing, sqSize); err != nil {
			return err
		}
		if r.cqRing, err = mmapRing(r.fd, offCQRing, cqSize); err != nil {
			return err
		}
	}
	if r.sqesMem, err = mmapRing(r.fd, offSQEs, int(p.SQEntries)*int(unsafe.Sizeof(SQE{}))); err != nil {
		return err
	}

	sq := unsafe.Pointer(unsafe.SliceData(r.sqRing))
	cq := sq
	if r.cqRing != nil {
		cq = unsafe.Pointer(unsafe.SliceData(r.cqRing))
	}
	u32 := func(base unsafe.Pointer, off uint32) *uint32 { return (*uint32)(unsafe.Add(base, off)) }

	r.sqHead = u32(sq, p.SQOff.Head)
	r.sqTail = u32(sq, p.SQOff.Tail)
	r.sqFlags = u32(sq, p.SQOff.Flags)
	r.sqMask = *u32(sq, p.SQOff.RingMask)
	r.sqEnts = *u32(sq, p.SQOff.RingEntries)
	r.sqes = unsafe.Slice((*SQE)(unsafe.Pointer(unsafe.SliceData(r.sqesMem))), r.sqEnts)
	if r.flags&SetupNoSQArray == 0 {
		// Identity map: SQ index i always names sqes[i]. Written once here,
		// never again.
		arr := unsafe.Slice(u32(sq, p.SQOff.Array), r.sqEnts)
		for i := range arr {
			arr[i] = uint32(i)
		}
	}
	r.sqeTail = atomic.LoadUint32(r.sqTail)
	r.sqeHead = r.sqeTail

	r.cqHead = u32(cq, p.CQOff.Head)
	r.cqTail = u32(cq, p.CQOff.Tail)
	r.cqOverflow = u32(cq, p.CQOff.Overflow)
	r.cqMask = *u32(cq, p.CQOff.RingMask)
	r.cqEnts = *u32(cq, p.CQOff.RingEntries)
	r.cqes = unsafe.Slice((*CQE)(unsafe.Add(cq, p.CQOff.CQEs)), r.cqEnts)
	return nil
}

func (r *Ring) unmap() {
	for _, m := range []*[]byte{&r.sqesMem, &r.cqRing, &r.sqRing} {
		if *m != nil {
			unix.Munmap(*m)
			*m = nil
		}
	}
	r.sqes, r.cqes = nil, nil
}

// Close cancels every request still in flight (synchronously, so the kernel
// no longer touches buffer-ring memory), unregisters and frees the buffer
// rings, unmaps the rings and closes the fd. Call it from the ring's owning
// thread: with SingleIssuer another thread cannot cancel, and then the
// buffer-ring memory is deliberately leaked rather than unmapped under the
// kernel's feet. Closing a closed ring is a no-op.
func (r *Ring) Close() error {
	if r.fd < 0 {
		return nil
	}
	var errs []error
	if r.regIndex >= 0 {
		upd := rsrcUpdate{Offset: uint32(r.regIndex)}
		if _, err := sysRegister(r.fd, regUnregisterRingFds, unsafe.Pointer(&upd), 1); err != nil {
			errs = append(errs, fmt.Errorf("uring: close: unregister ring fd: %w", err))
		}
		r.regIndex, r.enterFd, r.enterFlg = -1, r.fd, 0
	}
	cancelErr := r.cancelAllSync(time.Second)
	if cancelErr != nil && len(r.bufRings) > 0 {
		errs = append(errs, fmt.Errorf("uring: close: cancel in-flight requests (buffer ring memory is leaked, "+
			"not unmapped): %w", cancelErr))
	}
	for _, br := range r.bufRings {
		if err := br.release(cancelErr == nil); err != nil {
			errs = append(errs, err)
		}
	}
	r.bufRings = nil
	r.unmap()
	if err := unix.Close(r.fd); err != nil {
		errs = append(errs, fmt.Errorf("uring: close ring fd: %w", err))
	}
	r.fd = -1
	return errors.Join(errs...)
}

// cancelAllSync cancels all in-flight requests with IORING_REGISTER_SYNC_CANCEL
// (kernel >= 6.0), waiting up to timeout. ENOENT (nothing to cancel) is
// success.
func (r *Ring) cancelAllSync(timeout time.Duration) error {
	reg := syncCancelReg{
		Fd:      -1,
		Flags:   CancelAny | CancelAll,
		Timeout: Timespec{Sec: int64(timeout / time.Second), Nsec: int64(timeout % time.Second)},
	}
	_, err := sysRegister(r.fd, regSyncCancel, unsafe.Pointer(&reg), 1)
	runtime.KeepAlive(&reg)
	if err == nil || errors.Is(err, syscall.ENOENT) {
		return nil
	}
	return err
}

// Fd returns the ring's file descriptor (the target of PrepMsgRing).
func (r *Ring) Fd() int { return r.fd }

// RegisterRingFd registers the ring's fd with the calling thread
// (IORING_REGISTER_RING_FDS, kernel >= 5.18): later io_uring_enter calls
// skip the kernel's fd lookup (fdget/fdput per call). Registered rings
// belong to the registering thread: call it only for a ring used from one
// goroutine locked to its OS thread, from that goroutine. A thread holds at
// most 16; on any error the ring keeps entering by fd.
func (r *Ring) RegisterRingFd() error {
	if r.regIndex >= 0 {
		return nil
	}
	upd := rsrcUpdate{Offset: ^uint32(0), Data: uint64(r.fd)} // offset -1: the kernel picks a slot
	_, err := sysRegister(r.fd, regRegisterRingFds, unsafe.Pointer(&upd), 1)
	runtime.KeepAlive(&upd)
	if err != nil {
		return fmt.Errorf("uring: register ring fd: %w", err)
	}
	r.regIndex, r.enterFd, r.enterFlg = int(upd.Offset), int(upd.Offset), EnterRegisteredRing
	return nil
}

// Flags returns the setup flags the ring was created with.
func (r *Ring) Flags() uint32 { return r.flags }

// Features returns the kernel's IORING_FEAT_* bits for this ring.
func (r *Ring) Features() uint32 { return r.features }

// SQEntries returns the number of SQ entries.
func (r *Ring) SQEntries() uint32 { return r.sqEnts }

// CQEntries returns the number of CQ entries.
func (r *Ring) CQEntries() uint32 { return r.cqEnts }

// GetSQE returns the next free SQE, zeroed, or nil when the SQ is full
// (submit first). The SQE is handed to the kernel by the next Submit*.
func (r *Ring) GetSQE() *SQE {
	tail := r.sqeTail
	if tail-atomic.LoadUint32(r.sqHead) >= r.sqEnts {
		return nil
	}
	r.sqeTail = tail + 1
	s := &r.sqes[tail&r.sqMask]
	*s = SQE{}
	return s
}

// NextSQE is GetSQE returning ErrRingFull instead of nil. It never submits by
// itself, so a linked chain being built is never cut in two.
func (r *Ring) NextSQE() (*SQE, error) {
	if s := r.GetSQE(); s != nil {
		return s, nil
	}
	return nil, ErrRingFull
}

// SQSpace returns how many SQEs GetSQE can still hand out before a submit.
// Check it before building a linked chain that must go in one submit.
func (r *Ring) SQSpace() uint32 { return r.sqEnts - (r.sqeTail - atomic.LoadUint32(r.sqHead)) }

// SQPending returns the number of SQEs prepared but not yet consumed by the
// kernel.
func (r *Ring) SQPending() uint32 { return r.sqeTail - atomic.LoadUint32(r.sqHead) }

// CQReady returns the number of CQEs waiting to be read.
func (r *Ring) CQReady() uint32 { return atomic.LoadUint32(r.cqTail) - atomic.LoadUint32(r.cqHead) }

// CQOverflow returns the kernel's count of CQEs it could not post (0 with
// FeatNoDrop unless kernel memory ran out).
func (r *Ring) CQOverflow() uint32 { return atomic.LoadUint32(r.cqOverflow) }

// NeedsEnter reports whether the kernel holds completions that only an
// io_uring_enter(GETEVENTS) will post: deferred task work (IORING_SQ_TASKRUN)
// or overflowed CQEs (IORING_SQ_CQ_OVERFLOW). Never block on an eventfd
// while it is true: call GetEvents.
func (r *Ring) NeedsEnter() bool {
	return atomic.LoadUint32(r.sqFlags)&(SQTaskrun|SQCQOverflow) != 0
}

// flushSQ publishes the locally prepared SQEs (atomic store of the SQ tail)
// and returns how many the kernel has yet to consume.
func (r *Ring) flushSQ() uint32 {
	tail := r.sqeTail
	if r.sqeHead != tail {
		r.sqeHead = tail
		atomic.StoreUint32(r.sqTail, tail)
	}
	return tail - atomic.LoadUint32(r.sqHead)
}

// alwaysEnter is true for DEFER_TASKRUN rings without TASKRUN_FLAG, where the
// SQ flags cannot tell whether deferred work is pending.
func (r *Ring) alwaysEnter() bool {
	return r.flags&SetupDeferTaskrun != 0 && r.flags&SetupTaskrunFlag == 0
}

// Submit hands prepared SQEs to the kernel without waiting and returns how
// many it consumed.
func (r *Ring) Submit() (int, error) {
	toSubmit := r.flushSQ()
	var flags uint32
	if r.NeedsEnter() {
		flags |= EnterGetEvents
	}
	if toSubmit == 0 && flags == 0 {
		return 0, nil
	}
	for {
		n, errno := sysEnterNoWait(r.enterFd, toSubmit, 0, flags|r.enterFlg, nil, 0)
		if errno == syscall.EINTR {
			toSubmit = r.flushSQ()
			continue
		}
		if errno != 0 {
			return 0, errno
		}
		return n, nil
	}
}

// maxTaskrunLoops bounds GetEvents' loop; each round runs a batch of deferred
// items (about 20 on 6.18), so one call runs up to about 5000; the caller's
// next call runs the rest.
const maxTaskrunLoops = 256

// runTaskwork enters with GETEVENTS (min_complete 0, so it never blocks)
// while the kernel signals pending deferred work or overflowed CQEs, the CQ
// has room and the last round made progress (posted a CQE or consumed an
// SQE). It also submits toSubmit SQEs on the first round.
//
// The progress rule matters: a pgstorm run of 200,000 logins once saw the
// TASKRUN flag stay set while enters posted nothing, and this loop (then
// 16384 rounds, once per ring per event-loop pass) spun a core for a minute
// at 2,000 logins/s. A flag with nothing behind it is left to the next
// blocking wait, which runs the deferred work itself.
func (r *Ring) runTaskwork(toSubmit uint32) (int, error) {
	submitted := 0
	for i := 0; i < maxTaskrunLoops; i++ {
		tail := atomic.LoadUint32(r.cqTail)
		n, errno := sysEnterNoWait(r.enterFd, toSubmit, 0, EnterGetEvents|r.enterFlg, nil, 0)
		if errno == syscall.EINTR {
			toSubmit = r.flushSQ()
			continue
		}
		if errno != 0 {
			return submitted, errno
		}
		submitted += n
		toSubmit = r.flushSQ()
		if !r.NeedsEnter() || r.CQReady() >= r.cqEnts {
			break
		}
		if n == 0 && atomic.LoadUint32(r.cqTail) == tail {
			break // no progress
		}
	}
	return submitted, nil
}

// GetEvents runs the kernel's deferred completions and flushes overflowed
// CQEs into the CQ without blocking or submitting. With DeferTaskrun, one
// io_uring_enter runs only a batch of deferred items (about 20) and the rest
// neither re-signal an eventfd nor wake anybody; they leave IORING_SQ_TASKRUN
// set. GetEvents loops while that flag is set (and the CQ has room), so call
// it after each eventfd wake-up and before blocking again.
func (r *Ring) GetEvents() error {
	if !r.NeedsEnter() && !r.alwaysEnter() {
		return nil
	}
	_, err := r.runTaskwork(0)
	return err
}

// SubmitAndWait submits prepared SQEs and blocks until at least n CQEs are
// ready in the CQ. It returns the number of SQEs submitted.
func (r *Ring) SubmitAndWait(n uint32) (int, error) { return r.submitAndWait(n, -1) }

// SubmitAndWaitTimeout is SubmitAndWait with a deadline (IORING_ENTER_EXT_ARG,
// no timeout SQE). It returns ErrTimeout if fewer than n CQEs are ready when
// timeout elapses. A negative timeout waits forever; zero polls.
func (r *Ring) SubmitAndWaitTimeout(n uint32, timeout time.Duration) (int, error) {
	return r.submitAndWait(n, timeout)
}

// WaitCQE submits pending SQEs and waits up to timeout (negative: forever)
// for at least one CQE. It returns ErrTimeout if none arrived.
func (r *Ring) WaitCQE(timeout time.Duration) error {
	_, err := r.submitAndWait(1, timeout)
	return err
}

func (r *Ring) submitAndWait(waitNr uint32, timeout time.Duration) (int, error) {
	if waitNr > r.cqEnts {
		waitNr = r.cqEnts // the kernel clamps min_complete the same way
	}
	var deadline time.Time // set at the first blocking wait: no clock read when completions are ready
	submitted := 0
	for {
		toSubmit := r.flushSQ()
		// Post what the kernel is holding before deciding to block.
		if r.NeedsEnter() || r.alwaysEnter() {
			n, err := r.runTaskwork(toSubmit)
			submitted += n
			if err != nil {
				return submitted, err
			}
			toSubmit = r.flushSQ()
		}
		if r.CQReady() >= waitNr {
			if toSubmit == 0 {
				return submitted, nil
			}
			n, errno := sysEnterNoWait(r.enterFd, toSubmit, 0, r.enterFlg, nil, 0)
			if errno == syscall.EINTR {
				continue
			}
			if errno != 0 {
				return submitted, errno
			}
			return submitted + n, nil
		}

		flags := EnterGetEvents
		var arg unsafe.Pointer
		var argSz uintptr
		if timeout >= 0 {
			rem := timeout
			if deadline.IsZero() {
				deadline = time.Now().Add(timeout)
			} else if rem = time.Until(deadline); rem < 0 {
				rem = 0
			}
			r.waitTS = Timespec{Sec: int64(rem / time.Second), Nsec: int64(rem % time.Second)}
			r.waitArg = getEventsArg{Ts: uint64(uintptr(unsafe.Pointer(&r.waitTS)))}
			arg, argSz = unsafe.Pointer(&r.waitArg), unsafe.Sizeof(r.waitArg)
			flags |= EnterExtArg
		}
		n, errno := sysEnter(r.raw, r.enterFd, toSubmit, waitNr, flags|r.enterFlg, arg, argSz)
		runtime.KeepAlive(r)
		switch errno {
		case 0:
			submitted += n
		case syscall.EINTR:
			// Preemption signal (SIGURG) or similar: retry with the time left.
		case syscall.ETIME:
			if r.CQReady() >= waitNr {
				return submitted, nil
			}
			return submitted, ErrTimeout
		default:
			return submitted, errno
		}
		if r.CQReady() >= waitNr {
			return submitted, nil
		}
		if timeout >= 0 && !deadline.IsZero() && !time.Now().Before(deadline) && !r.NeedsEnter() {
			return submitted, ErrTimeout
		}
	}
}

// PeekBatch copies up to len(dst) ready CQEs into dst, releases their ring
// slots and returns how many it copied. It never enters the kernel and never
// allocates. With DeferTaskrun, call GetEvents (or a Submit*/Wait* method)
// first so deferred completions are posted.
func (r *Ring) PeekBatch(dst []CQE) int {
	head := atomic.LoadUint32(r.cqHead)
	avail := atomic.LoadUint32(r.cqTail) - head
	n := uint32(len(dst))
	if avail < n {
		n = avail
	}
	for i := uint32(0); i < n; i++ {
		dst[i] = r.cqes[(head+i)&r.cqMask]
	}
	if n > 0 {
		atomic.StoreUint32(r.cqHead, head+n)
	}
	return int(n)
}
