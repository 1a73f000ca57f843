//go:build linux

package uring

import "syscall"

// CQE is struct io_uring_cqe (16 bytes), copied out of the ring by PeekBatch.
type CQE struct {
	UserData uint64
	Res      int32
	Flags    uint32
}

// Err returns nil for Res >= 0 and the syscall.Errno for a negative Res.
// It does not allocate.
func (c CQE) Err() error {
	if c.Res >= 0 {
		return nil
	}
	return syscall.Errno(-c.Res)
}

// More reports IORING_CQE_F_MORE: a multishot request stays armed and will
// post more CQEs.
func (c CQE) More() bool { return c.Flags&CQEFMore != 0 }

// BufferID returns the provided-buffer id the kernel used, if any
// (IORING_CQE_F_BUFFER; id in the upper 16 bits of Flags).
func (c CQE) BufferID() (uint16, bool) {
	if c.Flags&CQEFBuffer == 0 {
		return 0, false
	}
	return uint16(c.Flags >> CQEBufferShift), true
}

// SockNonempty reports IORING_CQE_F_SOCK_NONEMPTY (more data was pending).
func (c CQE) SockNonempty() bool { return c.Flags&CQEFSockNonempty != 0 }
