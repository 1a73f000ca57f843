//go:build linux

package uring

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Kernel ABI structures. Layouts follow include/uapi/linux/io_uring.h; the
// sizes are checked at compile time below.

type sqringOffsets struct {
	Head        uint32
	Tail        uint32
	RingMask    uint32
	RingEntries uint32
	Flags       uint32
	Dropped     uint32
	Array       uint32
	Resv1       uint32
	UserAddr    uint64
}

type cqringOffsets struct {
	Head        uint32
	Tail        uint32
	RingMask    uint32
	RingEntries uint32
	Overflow    uint32
	CQEs        uint32
	Flags       uint32
	Resv1       uint32
	UserAddr    uint64
}

type params struct {
	SQEntries    uint32
	CQEntries    uint32
	Flags        uint32
	SQThreadCPU  uint32
	SQThreadIdle uint32
	Features     uint32
	WQFd         uint32
	Resv         [3]uint32
	SQOff        sqringOffsets
	CQOff        cqringOffsets
}

// Timespec is struct __kernel_timespec (64-bit seconds and nanoseconds on
// every architecture). The kernel reads it from caller memory.
type Timespec struct {
	Sec  int64
	Nsec int64
}

type getEventsArg struct {
	Sigmask     uint64
	SigmaskSz   uint32
	MinWaitUsec uint32
	Ts          uint64
}

// rsrcUpdate is struct io_uring_rsrc_update (IORING_REGISTER_RING_FDS).
type rsrcUpdate struct {
	Offset uint32
	Resv   uint32
	Data   uint64
}

type rsrcRegister struct {
	Nr    uint32
	Flags uint32
	Resv2 uint64
	Data  uint64
	Tags  uint64
}

type filesUpdate struct {
	Offset uint32
	Resv   uint32
	Fds    uint64
}

type bufReg struct {
	RingAddr    uint64
	RingEntries uint32
	Bgid        uint16
	Flags       uint16
	MinLeft     uint32
	Resv        [5]uint32
}

type probeOp struct {
	Op    uint8
	Resv  uint8
	Flags uint16
	Resv2 uint32
}

type probeHdr struct {
	LastOp uint8
	OpsLen uint8
	Resv   uint16
	Resv2  [3]uint32
}

type syncCancelReg struct {
	Addr    uint64
	Fd      int32
	Flags   uint32
	Timeout Timespec
	Opcode  uint8
	Pad     [7]uint8
	Pad2    [3]uint64
}

// Compile-time size checks: each line fails to compile if a size is wrong.
var (
	_ [unsafe.Sizeof(SQE{}) - 64]byte
	_ [64 - unsafe.Sizeof(SQE{})]byte
	_ [unsafe.Sizeof(CQE{}) - 16]byte
	_ [16 - unsafe.Sizeof(CQE{})]byte
	_ [unsafe.Sizeof(params{}) - 120]byte
	_ [120 - unsafe.Sizeof(params{})]byte
	_ [unsafe.Sizeof(getEventsArg{}) - 24]byte
	_ [24 - unsafe.Sizeof(getEventsArg{})]byte
	_ [unsafe.Sizeof(rsrcRegister{}) - 32]byte
	_ [32 - unsafe.Sizeof(rsrcRegister{})]byte
	_ [unsafe.Sizeof(bufReg{}) - 40]byte
	_ [40 - unsafe.Sizeof(bufReg{})]byte
	_ [unsafe.Sizeof(syncCancelReg{}) - 64]byte
	_ [64 - unsafe.Sizeof(syncCancelReg{})]byte
	_ [unsafe.Sizeof(probeHdr{}) - 16]byte
	_ [unsafe.Sizeof(probeOp{}) - 8]byte
)

func sysSetup(entries uint32, p *params) (int, error) {
	fd, _, errno := syscall.Syscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(p)), 0)
	if errno != 0 {
		return -1, errno
	}
	return int(fd), nil
}

// sysEnter is io_uring_enter(2) for a call that may block (minComplete >
// 0): it goes through syscall.Syscall6, which tells the scheduler, unless raw
// is set (see Options.RawWait). EINTR is returned to the caller, which knows
// whether to retry and with what timeout.
func sysEnter(raw bool, fd int, toSubmit, minComplete, flags uint32, arg unsafe.Pointer, argSz uintptr) (int, syscall.Errno) {
	if raw {
		return sysEnterNoWait(fd, toSubmit, minComplete, flags, arg, argSz)
	}
	n, _, errno := syscall.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(fd), uintptr(toSubmit),
		uintptr(minComplete), uintptr(flags), uintptr(arg), argSz)
	if errno != 0 {
		return 0, errno
	}
	return int(n), 0
}

// sysEnterNoWait is io_uring_enter(2) for a call that does not wait for
// completions (submit, run deferred task work): it returns as soon as the
// kernel has issued the SQEs, so it skips the scheduler's syscall hand-off
// (entersyscall/exitsyscall) through RawSyscall6.
func sysEnterNoWait(fd int, toSubmit, minComplete, flags uint32, arg unsafe.Pointer, argSz uintptr) (int, syscall.Errno) {
	n, _, errno := syscall.RawSyscall6(unix.SYS_IO_URING_ENTER, uintptr(fd), uintptr(toSubmit),
		uintptr(minComplete), uintptr(flags), uintptr(arg), argSz)
	if errno != 0 {
		return 0, errno
	}
	return int(n), 0
}

// sysRegister is io_uring_register(2), retried on EINTR.
func sysRegister(fd int, op uint32, arg unsafe.Pointer, nrArgs uint32) (int, error) {
	for {
		n, _, errno := syscall.Syscall6(unix.SYS_IO_URING_REGISTER, uintptr(fd), uintptr(op),
			uintptr(arg), uintptr(nrArgs), 0, 0)
		if errno == syscall.EINTR {
			continue
		}
		if errno != 0 {
			return 0, errno
		}
		return int(n), nil
	}
}
