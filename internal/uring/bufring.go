//go:build linux

package uring

import (
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// BufRing is a provided-buffer ring (IORING_REGISTER_PBUF_RING): a ring of
// buffer descriptors plus the buffers themselves, both mmap'd outside the Go
// heap. The kernel takes a buffer for each recv with SQEBufferSelect (e.g.
// PrepRecvMultishot) and reports its id in the CQE; the application gives it
// back with Recycle (or Add + Advance) once done with the bytes.
//
// Ring layout (shared with the kernel): entries x struct io_uring_buf
// {addr u64, len u32, bid u16, resv u16}; the ring tail is the uint16 at byte
// 14, overlaying bufs[0].resv. Go has no 16-bit atomics, so the tail is
// published with an atomic store of the 32-bit word at byte 12, which holds
// bufs[0].bid (low half, little endian) and the tail (high half); both are
// written only by us.
type BufRing struct {
	ring    *Ring
	group   uint16
	entries uint16
	mask    uint16
	bufSize int

	ringMem []byte // descriptors
	bufMem  []byte // entries*bufSize bytes of buffers
	descs   []bufDesc
	tailW   *uint32 // word at byte 12: bufs[0].bid | tail<<16

	tail    uint16 // published tail
	pending uint16 // added since the last Advance
}

type bufDesc struct {
	Addr uint64
	Len  uint32
	Bid  uint16
	Resv uint16
}

// RegisterBufRing registers provided-buffer group `group` with `entries`
// buffers (a power of two, at most 32768) of bufSize bytes each, all handed
// to the kernel at once.
func (r *Ring) RegisterBufRing(group uint16, entries uint16, bufSize int) (*BufRing, error) {
	if !littleEndian() {
		return nil, fmt.Errorf("uring: buffer rings need a little-endian CPU (tail publication)")
	}
	if entries == 0 || entries&(entries-1) != 0 || entries > 1<<15 {
		return nil, fmt.Errorf("uring: buffer ring entries %d: must be a power of two in [1, 32768]", entries)
	}
	if bufSize <= 0 || uint64(bufSize) > 1<<31 {
		return nil, fmt.Errorf("uring: buffer size %d out of range", bufSize)
	}
	pg := unix.Getpagesize()
	ringSize := (int(entries)*int(unsafe.Sizeof(bufDesc{})) + pg - 1) &^ (pg - 1)
	ringMem, err := unix.Mmap(-1, 0, ringSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, fmt.Errorf("uring: mmap buffer ring: %w", err)
	}
	bufMem, err := unix.Mmap(-1, 0, int(entries)*bufSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		unix.Munmap(ringMem)
		return nil, fmt.Errorf("uring: mmap %d buffers of %d bytes: %w", entries, bufSize, err)
	}
	base := unsafe.Pointer(unsafe.SliceData(ringMem))
	b := &BufRing{
		ring:    r,
		group:   group,
		entries: entries,
		mask:    entries - 1,
		bufSize: bufSize,
		ringMem: ringMem,
		bufMem:  bufMem,
		descs:   unsafe.Slice((*bufDesc)(base), entries),
		tailW:   (*uint32)(unsafe.Add(base, 12)),
	}
	reg := bufReg{RingAddr: uint64(uintptr(base)), RingEntries: uint32(entries), Bgid: group}
	_, err = sysRegister(r.fd, regRegisterPbufRing, unsafe.Pointer(&reg), 1)
	runtime.KeepAlive(&reg)
	if err != nil {
		unix.Munmap(bufMem)
		unix.Munmap(ringMem)
		return nil, fmt.Errorf("uring: register buffer ring group %d (%d entries): %w", group, entries, err)
	}
	for id := 0; id < int(entries); id++ {
		b.Add(uint16(id))
	}
	b.Advance()
	r.bufRings = append(r.bufRings, b)
	return b, nil
}

// ReleaseMemory gives the buffers' pages back to the kernel
// (madvise(MADV_DONTNEED)): they read as zeros and are faulted in again when
// next used, so the buffers stay valid and registered. Call it only while no
// receive that picks buffers from this group is in flight: a page released
// during the kernel's copy into it would lose the data.
func (b *BufRing) ReleaseMemory() error {
	if err := unix.Madvise(b.bufMem, unix.MADV_DONTNEED); err != nil {
		return fmt.Errorf("uring: madvise(MADV_DONTNEED) on %d buffers: %w", b.entries, err)
	}
	return nil
}

// Group returns the buffer group id.
func (b *BufRing) Group() uint16 { return b.group }

// Entries returns the number of buffers.
func (b *BufRing) Entries() uint16 { return b.entries }

// BufSize returns the size of each buffer.
func (b *BufRing) BufSize() int { return b.bufSize }

// Buffer returns buffer id's full bytes (mmap'd: valid until the ring is
// closed). A recv CQE's data is Buffer(id)[:cqe.Res].
func (b *BufRing) Buffer(id uint16) []byte {
	off := int(id) * b.bufSize
	return b.bufMem[off : off+b.bufSize : off+b.bufSize]
}

// Add stages buffer id for the kernel; it becomes visible at Advance. Add
// each id only once between uses, and never more ids than Entries.
func (b *BufRing) Add(id uint16) {
	d := &b.descs[(b.tail+b.pending)&b.mask]
	d.Addr = uint64(uintptr(unsafe.Pointer(unsafe.SliceData(b.bufMem)))) + uint64(id)*uint64(b.bufSize)
	d.Len = uint32(b.bufSize)
	d.Bid = id
	b.pending++
}

// Advance publishes the buffers staged by Add (release store of the tail).
func (b *BufRing) Advance() {
	if b.pending == 0 {
		return
	}
	b.tail += b.pending
	b.pending = 0
	bid0 := uint32(b.descs[0].Bid)
	atomic.StoreUint32(b.tailW, bid0|uint32(b.tail)<<16)
}

// Recycle gives buffer id back to the kernel at once (Add + Advance).
func (b *BufRing) Recycle(id uint16) {
	b.Add(id)
	b.Advance()
}

// Close unregisters the group and unmaps its memory. Only call it when no
// request using the group is in flight (or let Ring.Close handle it).
func (b *BufRing) Close() error {
	r := b.ring
	for i, x := range r.bufRings {
		if x == b {
			r.bufRings = append(r.bufRings[:i], r.bufRings[i+1:]...)
			break
		}
	}
	return b.release(true)
}

// release unregisters the group and, if unmapBufs, unmaps the buffers.
// The descriptor ring is pinned by the kernel while registered, so it is
// always safe to unmap; the buffers are written through user addresses and
// are leaked rather than unmapped if requests might still be in flight.
func (b *BufRing) release(unmapBufs bool) error {
	if b.ringMem == nil {
		return nil
	}
	var errs []error
	reg := bufReg{Bgid: b.group}
	if _, err := sysRegister(b.ring.fd, regUnregisterPbufRing, unsafe.Pointer(&reg), 1); err != nil {
		errs = append(errs, fmt.Errorf("uring: unregister buffer ring group %d: %w", b.group, err))
		unmapBufs = false
	}
	runtime.KeepAlive(&reg)
	if unmapBufs {
		if err := unix.Munmap(b.bufMem); err != nil {
			errs = append(errs, err)
		}
		if err := unix.Munmap(b.ringMem); err != nil {
			errs = append(errs, err)
		}
	}
	b.bufMem, b.ringMem, b.descs, b.tailW = nil, nil, nil, nil
	return errors.Join(errs...)
}

func littleEndian() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}
