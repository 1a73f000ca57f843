//go:build linux

package uring

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Region is anonymous mmap'd memory outside the Go heap: the garbage
// collector never moves or frees it, so the kernel may read or write it
// asynchronously (send/recv buffers, sockaddrs, msghdr/iovec arrays,
// timespecs, accept address slots). The owner decides when it is no longer
// referenced by any in-flight SQE before calling Free.
type Region struct {
	mem []byte
}

// NewRegion maps size bytes (rounded up to whole pages), zeroed.
func NewRegion(size int) (*Region, error) {
	if size <= 0 {
		return nil, fmt.Errorf("uring: region size %d", size)
	}
	pg := unix.Getpagesize()
	size = (size + pg - 1) &^ (pg - 1)
	mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, fmt.Errorf("uring: mmap region of %d bytes: %w", size, err)
	}
	return &Region{mem: mem}, nil
}

// Bytes returns the whole region.
func (g *Region) Bytes() []byte { return g.mem }

// Slice returns region bytes [off, off+n).
func (g *Region) Slice(off, n int) []byte { return g.mem[off : off+n : off+n] }

// Pointer returns the address of byte off, for SQE fields that take a
// pointer (sockaddr, msghdr, socklen_t, Timespec).
func (g *Region) Pointer(off int) unsafe.Pointer {
	_ = g.mem[off]
	return unsafe.Add(unsafe.Pointer(unsafe.SliceData(g.mem)), off)
}

// Free unmaps the region. Nothing in flight may reference it any more.
func (g *Region) Free() error {
	if g.mem == nil {
		return nil
	}
	err := unix.Munmap(g.mem)
	g.mem = nil
	return err
}
