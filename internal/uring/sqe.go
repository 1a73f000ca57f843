//go:build linux

package uring

import (
	"unsafe"
)

// SQE is struct io_uring_sqe (64 bytes). A *SQE returned by Ring.GetSQE points
// into the kernel-shared SQE array: the Prep methods write it in place and
// allocate nothing. Unions are flattened to the member this package uses; the
// comments name the others.
type SQE struct {
	Opcode      uint8
	Flags       uint8  // SQE* flags
	IOPrio      uint16 // ioprio; recv/send/accept flags for network ops
	Fd          int32  // fd, or direct slot with SQEFixedFile
	Off         uint64 // off / addr2
	Addr        uint64 // addr / splice_off_in
	Len         uint32
	OpFlags     uint32 // rw_flags / msg_flags / timeout_flags / accept_flags / cancel_flags / msg_ring_flags ...
	UserData    uint64
	BufIndex    uint16 // buf_index / buf_group
	Personality uint16
	FileIndex   uint32 // file_index (slot+1) / splice_fd_in / optlen / addr_len
	Addr3       uint64
	pad2        uint64
}

// Every pointer an SQE carries is stored as an integer: the kernel only sees
// addresses. The memory behind them must stay valid and in place until the
// operation's CQE arrives (see doc.go). Slices of mmap'd memory (Region,
// BufRing) satisfy this trivially.

func ptrOf(b []byte) uint64 {
	if len(b) == 0 {
		return 0
	}
	return uint64(uintptr(unsafe.Pointer(unsafe.SliceData(b))))
}

func (s *SQE) prepRW(op uint8, fd int32, addr uint64, n uint32, off uint64) *SQE {
	*s = SQE{Opcode: op, Fd: fd, Addr: addr, Len: n, Off: off}
	return s
}

// SetUserData sets the value returned in the CQE. Pack it with PackUserData;
// never store a Go pointer in it.
func (s *SQE) SetUserData(ud uint64) *SQE { s.UserData = ud; return s }

// SetFlags ORs SQE* flags into the entry.
func (s *SQE) SetFlags(f uint8) *SQE { s.Flags |= f; return s }

// SetFixedFile marks Fd as a direct (registered file table) slot.
func (s *SQE) SetFixedFile() *SQE { s.Flags |= SQEFixedFile; return s }

// SetLink links the next SQE to this one (IOSQE_IO_LINK): it starts only
// after this one succeeds. Keep a whole chain inside one Submit.
func (s *SQE) SetLink() *SQE { s.Flags |= SQEIOLink; return s }

// SetHardLink links the next SQE regardless of this one's result.
func (s *SQE) SetHardLink() *SQE { s.Flags |= SQEIOHardlink; return s }

// SetBufferSelect asks the kernel to pick the buffer from provided-buffer
// group.
func (s *SQE) SetBufferSelect(group uint16) *SQE {
	s.Flags |= SQEBufferSelect
	s.BufIndex = group
	return s
}

// SetCQESkipSuccess suppresses the CQE when the operation succeeds
// (IOSQE_CQE_SKIP_SUCCESS); failures still post one.
func (s *SQE) SetCQESkipSuccess() *SQE { s.Flags |= SQECQESkipSuccess; return s }

// setSlot records a direct-descriptor target slot (file_index = slot+1).
func (s *SQE) setSlot(slot uint32) {
	if slot == FileIndexAlloc {
		s.FileIndex = FileIndexAlloc
		return
	}
	s.FileIndex = slot + 1
}

// PrepNop prepares a no-op.
func (s *SQE) PrepNop() *SQE { return s.prepRW(OpNop, -1, 0, 0, 0) }

// PrepAccept prepares accept4(fd, addr, addrLen, flags) installing a regular
// fd (CQE res). addr and addrLen (a *uint32 holding the buffer size) may be
// nil; if set, they are written when the operation completes.
func (s *SQE) PrepAccept(fd int32, addr, addrLen unsafe.Pointer, flags uint32) *SQE {
	s.prepRW(OpAccept, fd, uint64(uintptr(addr)), 0, uint64(uintptr(addrLen)))
	s.OpFlags = flags
	return s
}

// PrepAcceptDirect prepares an accept whose new socket is installed in direct
// slot `slot` of the file table (file_index = slot+1; CQE res 0 on success).
// If the listener itself is a direct descriptor, call SetFixedFile.
func (s *SQE) PrepAcceptDirect(fd int32, slot uint32, addr, addrLen unsafe.Pointer, flags uint32) *SQE {
	s.PrepAccept(fd, addr, addrLen, flags)
	s.setSlot(slot)
	return s
}

// PrepAcceptMultishot prepares a multishot accept. With direct=true the kernel
// allocates slots (IORING_FILE_INDEX_ALLOC, CQE res = slot). Beware: when the
// table is full the kernel has already accepted and then closed the
// connection (CQE -ENFILE); PrepAcceptDirect with explicit slots loses none.
func (s *SQE) PrepAcceptMultishot(fd int32, flags uint32, direct bool) *SQE {
	s.PrepAccept(fd, nil, nil, flags)
	s.IOPrio |= AcceptMultishot
	if direct {
		s.FileIndex = FileIndexAlloc
	}
	return s
}

// PrepRecv prepares recv(fd, buf, flags) into caller-owned memory.
func (s *SQE) PrepRecv(fd int32, buf []byte, flags uint32) *SQE {
	s.prepRW(OpRecv, fd, ptrOf(buf), uint32(len(buf)), 0)
	s.OpFlags = flags
	return s
}

// PrepRecvSelect prepares a single-shot recv whose buffer the kernel takes from
// provided-buffer group `group`.
func (s *SQE) PrepRecvSelect(fd int32, group uint16, flags uint32) *SQE {
	s.prepRW(OpRecv, fd, 0, 0, 0)
	s.OpFlags = flags
	return s.SetBufferSelect(group)
}

// PrepRecvMultishot prepares a multishot recv with buffers from group `group`.
// Each data CQE carries CQEFBuffer (buffer id in Flags>>16) and, while the
// request stays armed, CQEFMore. A CQE without CQEFMore ends it (res 0 = EOF,
// -ENOBUFS = group empty: recycle buffers and re-arm).
func (s *SQE) PrepRecvMultishot(fd int32, group uint16, flags uint32) *SQE {
	s.PrepRecvSelect(fd, group, flags)
	s.IOPrio |= RecvMultishot
	return s
}

// PrepSend prepares send(fd, buf, flags). Use MSG_WAITALL so the kernel
// retries short sends, and MSG_NOSIGNAL to avoid SIGPIPE.
func (s *SQE) PrepSend(fd int32, buf []byte, flags uint32) *SQE {
	s.prepRW(OpSend, fd, ptrOf(buf), uint32(len(buf)), 0)
	s.OpFlags = flags
	return s
}

// PrepSendmsg prepares sendmsg(fd, msg, flags). msg points to a struct msghdr
// (unix.Msghdr) whose iovecs and data live in caller-owned memory.
func (s *SQE) PrepSendmsg(fd int32, msg unsafe.Pointer, flags uint32) *SQE {
	s.prepRW(OpSendmsg, fd, uint64(uintptr(msg)), 1, 0)
	s.OpFlags = flags
	return s
}

// PrepSocket prepares socket(domain, typ, proto) returning a regular fd.
func (s *SQE) PrepSocket(domain, typ, proto int32, flags uint32) *SQE {
	s.prepRW(OpSocket, domain, 0, uint32(proto), uint64(uint32(typ)))
	s.OpFlags = flags
	return s
}

// PrepSocketDirect prepares socket(domain, typ, proto) installed into direct
// slot `slot` (CQE res 0 on success).
func (s *SQE) PrepSocketDirect(domain, typ, proto int32, slot uint32, flags uint32) *SQE {
	s.PrepSocket(domain, typ, proto, flags)
	s.setSlot(slot)
	return s
}

// PrepConnect prepares connect(fd, addr, addrLen); addr points to a sockaddr.
func (s *SQE) PrepConnect(fd int32, addr unsafe.Pointer, addrLen uint32) *SQE {
	return s.prepRW(OpConnect, fd, uint64(uintptr(addr)), 0, uint64(addrLen))
}

// PrepBind prepares bind(fd, addr, addrLen) (IORING_OP_BIND, Linux >= 6.11).
func (s *SQE) PrepBind(fd int32, addr unsafe.Pointer, addrLen uint32) *SQE {
	return s.prepRW(OpBind, fd, uint64(uintptr(addr)), 0, uint64(addrLen))
}

// PrepListen prepares listen(fd, backlog) (IORING_OP_LISTEN, Linux >= 6.11).
func (s *SQE) PrepListen(fd int32, backlog uint32) *SQE {
	return s.prepRW(OpListen, fd, 0, backlog, 0)
}

// PrepClose prepares close(fd) of a regular descriptor.
func (s *SQE) PrepClose(fd int32) *SQE { return s.prepRW(OpClose, fd, 0, 0, 0) }

// PrepCloseDirect prepares closing direct slot `slot` (the slot becomes free
// when the CQE arrives, res 0).
func (s *SQE) PrepCloseDirect(slot uint32) *SQE {
	s.prepRW(OpClose, 0, 0, 0, 0)
	s.setSlot(slot)
	return s
}

// PrepTimeout prepares a timeout. It completes with -ETIME when ts elapses,
// or with 0 once `count` other completions have happened (count 0: time
// only). ts is read when the SQE is submitted.
func (s *SQE) PrepTimeout(ts *Timespec, count uint32, flags uint32) *SQE {
	s.prepRW(OpTimeout, -1, uint64(uintptr(unsafe.Pointer(ts))), 1, uint64(count))
	s.OpFlags = flags
	return s
}

// PrepLinkTimeout prepares a timeout for the previous, linked SQE (set
// SetLink on it): if ts elapses first, that SQE is canceled (-ECANCELED) and
// this one completes with -ETIME.
func (s *SQE) PrepLinkTimeout(ts *Timespec, flags uint32) *SQE {
	s.prepRW(OpLinkTimeout, -1, uint64(uintptr(unsafe.Pointer(ts))), 1, 0)
	s.OpFlags = flags
	return s
}

// PrepTimeoutRemove cancels the timeout submitted with user_data ud.
func (s *SQE) PrepTimeoutRemove(ud uint64, flags uint32) *SQE {
	s.prepRW(OpTimeoutRemove, -1, ud, 0, 0)
	s.OpFlags = flags
	return s
}

// PrepCancel cancels the request(s) submitted with user_data ud. The cancel's
// own CQE: 0 found and canceled, -ENOENT none found, -EALREADY already
// running. flags may add CancelAll.
func (s *SQE) PrepCancel(ud uint64, flags uint32) *SQE {
	s.prepRW(OpAsyncCancel, -1, ud, 0, 0)
	s.OpFlags = flags
	return s
}

// PrepCancelFD cancels requests on fd (a direct slot if fixed). flags may add
// CancelAll.
func (s *SQE) PrepCancelFD(fd int32, fixed bool, flags uint32) *SQE {
	s.prepRW(OpAsyncCancel, fd, 0, 0, 0)
	s.OpFlags = flags | CancelFD
	if fixed {
		s.OpFlags |= CancelFDFixed
	}
	return s
}

// PrepMsgRing posts a CQE {user_data: ud, res: res} on the ring whose fd is
// ringFD (IORING_MSG_DATA): a cheap cross-ring wake-up.
func (s *SQE) PrepMsgRing(ringFD int32, res uint32, ud uint64, flags uint32) *SQE {
	s.prepRW(OpMsgRing, ringFD, msgData, res, ud)
	s.OpFlags = flags
	return s
}

// PrepMsgRingFD installs the file in this ring's direct slot srcSlot into
// direct slot dstSlot of the ring whose fd is ringFD (IORING_MSG_SEND_FD) and
// posts a CQE with user_data ud there (unless MsgRingCQESkip). The source slot
// stays installed: close it (PrepCloseDirect) to complete a move.
func (s *SQE) PrepMsgRingFD(ringFD int32, srcSlot, dstSlot uint32, ud uint64, flags uint32) *SQE {
	s.prepRW(OpMsgRing, ringFD, msgSendFD, 0, ud)
	s.Addr3 = uint64(srcSlot)
	s.setSlot(dstSlot)
	s.OpFlags = flags
	return s
}
