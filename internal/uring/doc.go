// Package uring is a small raw binding to Linux io_uring written with
// golang.org/x/sys/unix and syscall (no cgo, no third-party library). It is
// the layer under the io_uring engine (internal/engine/uringengine): rings,
// SQE preparation, CQE draining, registered (direct) file tables, provided
// buffer rings, eventfd registration and a feature Probe. It has no event
// loop of its own.
//
// # Using a ring
//
//	runtime.LockOSThread()              // the ring's owning thread, for good
//	r, err := uring.New(256, uring.Options{DeferTaskrun: true, CQEntries: 4096})
//	sqe := r.GetSQE()                   // nil when the SQ is full
//	sqe.PrepRecvMultishot(slot, group, 0).SetFixedFile().SetUserData(ud)
//	r.SubmitAndWait(1)                  // or Submit / SubmitAndWaitTimeout / GetEvents
//	n := r.PeekBatch(cqes[:])           // copies CQEs out, advances the head
//
// Prep methods write straight into the mmap'd SQE array and allocate nothing;
// so do Submit*, GetEvents, PeekBatch and CQE.Err.
//
// # Memory ownership
//
// The kernel reads and writes application memory asynchronously, by address,
// long after the Go call that prepared the SQE has returned. Therefore:
//
//   - Memory an SQE points to (send/recv buffers, sockaddrs, socklen_t,
//     msghdr and iovec arrays, timespecs) must stay valid and at the same
//     address until that SQE's CQE arrives (for multishot requests: until a
//     CQE without CQEFMore). Some operations copy their argument at submit
//     (connect/bind sockaddr, timeout timespec, the msghdr itself) but the
//     rule "until the CQE" is the one to follow.
//   - Put such memory outside the Go heap: Region (anonymous mmap) and the
//     buffers of a BufRing are never moved or freed by the garbage collector.
//     Go stack memory is never acceptable (stacks move). A heap object is
//     acceptable only if the caller keeps a reference to it until the CQE.
//   - user_data is an integer, never a Go pointer: the GC cannot see it.
//   - The SQ/CQ rings, the SQE array and buffer rings are mmap'd; the ring
//     indices are accessed atomically: load the CQ tail and SQ head, store
//     the SQ tail and CQ head, copy each CQE before releasing it. A provided
//     buffer ring's tail is a uint16 inside a uint32 word (see BufRing).
//   - Ring.Close cancels everything in flight synchronously
//     (IORING_REGISTER_SYNC_CANCEL) before unmapping buffer rings.
//
// # Threads
//
// A Ring is not safe for concurrent use. Drive each ring from one goroutine
// that called runtime.LockOSThread first and never unlocks while the ring
// lives:
//
//   - With Options.SingleIssuer or DeferTaskrun only the thread that created
//     the ring may submit or register (others get EEXIST): create the ring
//     on its owning, locked goroutine.
//   - With DeferTaskrun, completions are run only when that thread enters the
//     kernel with GETEVENTS. One enter runs a batch (about 20 items) and
//     leaves IORING_SQ_TASKRUN set for the rest, which do not signal a
//     registered eventfd again. Submit*/Wait* loop on that flag; an
//     eventfd-driven loop must call GetEvents after every wake-up, and must
//     not block while NeedsEnter reports true.
//   - Blocking waits use syscall.Syscall6 (never RawSyscall) so the Go
//     scheduler can run other goroutines, and retry EINTR (the runtime's
//     SIGURG preemption interrupts them).
//   - One eventfd can be registered on many rings (RegisterEventfd) so one
//     thread can sleep for all of them; then enter only rings with work.
//
// # Direct descriptors
//
// Sockets accepted or created into a ring's registered file table (direct
// descriptors) take no entry in the process fd table: a process can hold far
// more connections than RLIMIT_NOFILE. The table size of each ring is capped
// by the soft RLIMIT_NOFILE (RegisterFilesSparse raises the soft limit to the
// hard one first) and by the kernel at 1<<20; use more rings for more slots.
// Accept into explicit slots (PrepAcceptDirect with a SlotAllocator):
// multishot accept with kernel-allocated slots drops connections (-ENFILE,
// already accepted and closed) when the table is full. Address direct
// descriptors with SetFixedFile; close them with PrepCloseDirect; move them
// to another ring with PrepMsgRingFD. Build a linked chain (SOCKET -> BIND ->
// CONNECT with SetLink) within one submit: check SQSpace first.
//
// # user_data layout
//
//	bits 63..56  op    (8 bits)
//	bits 55..32  gen   (24 bits, wraps)
//	bits 31..0   slot  (32 bits)
//
// PackUserData and UnpackUserData convert. The generation lets an engine drop
// CQEs of a slot that has since been closed and reused.
//
// # Errors
//
// A negative CQE result is a kernel errno: CQE.Err returns it as a
// syscall.Errno (nil for success), and IsCanceled, IsTimeout, IsNoBuffers,
// IsNotFound, IsConnReset test for the common ones. Setup errors explain
// themselves (sysctl kernel.io_uring_disabled, seccomp in containers, old
// kernels); Probe reports the same before anything is started.
package uring
