//go:build linux

package uring

import (
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestRegisterFilesUpdateAndCloseDirect installs a socket into a direct slot,
// closes the regular fd, sends through the slot, then closes the slot.
func TestRegisterFilesUpdateAndCloseDirect(t *testing.T) {
	r := newTestRing(t, 16, Options{})
	if err := r.RegisterFilesSparse(64); err != nil {
		t.Fatal(err)
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[1])
	if n, err := r.RegisterFilesUpdate(3, []int32{int32(fds[0])}); err != nil || n != 1 {
		t.Fatalf("RegisterFilesUpdate: %d %v", n, err)
	}
	unix.Close(fds[0]) // the table holds its own reference

	g := newRegion(t, 4096)
	copy(g.Bytes(), "via-slot-3")
	r.GetSQE().PrepSend(3, g.Slice(0, 10), unix.MSG_NOSIGNAL).SetFixedFile().SetUserData(1)
	if c := waitCQEs(t, r, 1, 5*time.Second)[0]; c.Res != 10 {
		t.Fatalf("send on direct slot: %+v (%v)", c, c.Err())
	}
	buf := make([]byte, 32)
	if n, _ := unix.Read(fds[1], buf); string(buf[:n]) != "via-slot-3" {
		t.Fatalf("peer read %q", buf[:n])
	}

	r.GetSQE().PrepCloseDirect(3).SetUserData(2)
	if c := waitCQEs(t, r, 1, 5*time.Second)[0]; c.Res != 0 {
		t.Fatalf("close direct: %+v (%v)", c, c.Err())
	}
	if n, err := unix.Read(fds[1], buf); n != 0 || err != nil {
		t.Fatalf("peer read after close direct: %d %v, want EOF", n, err)
	}
	// The slot is empty now: using it fails with EBADF.
	r.GetSQE().PrepSend(3, g.Slice(0, 1), 0).SetFixedFile().SetUserData(3)
	if c := waitCQEs(t, r, 1, 5*time.Second)[0]; !errors.Is(c.Err(), ErrBadFD) {
		t.Fatalf("send on empty slot: %+v (%v)", c, c.Err())
	}
	// Clearing an empty slot is fine; slots past the table are not.
	if _, err := r.RegisterFilesUpdate(3, []int32{-1}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.RegisterFilesUpdate(64, []int32{-1}); err == nil {
		t.Fatal("update past the table accepted")
	}
	if err := r.UnregisterFiles(); err != nil {
		t.Fatal(err)
	}
}

func TestRegisterFilesTooMany(t *testing.T) {
	r := newTestRing(t, 8, Options{})
	var orig unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &orig); err != nil {
		t.Fatal(err)
	}
	defer unix.Setrlimit(unix.RLIMIT_NOFILE, &orig)

	// Above the hard limit: refused before the kernel, with the hint.
	err := r.RegisterFilesSparse(uint32(orig.Max) + 1)
	if !errors.Is(err, ErrTooManyFiles) || !errors.Is(err, syscall.EMFILE) ||
		!strings.Contains(err.Error(), "RLIMIT_NOFILE") {
		t.Fatalf("over hard limit: %v", err)
	}
	t.Logf("error text: %v", err)

	// The kernel's own EMFILE when the soft limit is low.
	low := unix.Rlimit{Cur: 64, Max: orig.Max}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	if err := r.registerFilesSparse(100); !errors.Is(err, syscall.EMFILE) {
		t.Fatalf("raw sparse register over soft limit: %v, want EMFILE", err)
	}
	// RegisterFilesSparse raises the soft limit itself and succeeds.
	if err := r.RegisterFilesSparse(100); err != nil {
		t.Fatalf("RegisterFilesSparse after lowering soft limit: %v", err)
	}
	var now unix.Rlimit
	unix.Getrlimit(unix.RLIMIT_NOFILE, &now)
	if now.Cur != orig.Max {
		t.Fatalf("soft limit %d, want raised to hard %d", now.Cur, orig.Max)
	}
}

func TestSlotAllocator(t *testing.T) {
	a := NewSlotAllocator(4)
	if a.Cap() != 4 || a.Free() != 4 {
		t.Fatal("fresh allocator")
	}
	if !a.Reserve(2) || a.Reserve(2) || a.Reserve(9) {
		t.Fatal("Reserve")
	}
	var got []uint32
	for {
		s, ok := a.Get()
		if !ok {
			break
		}
		got = append(got, s)
	}
	if len(got) != 3 || got[0] != 0 || a.Free() != 0 {
		t.Fatalf("got %v", got)
	}
	a.Put(1)
	a.Put(3)
	if s, _ := a.Get(); s != 3 { // LIFO
		t.Fatalf("LIFO: got %d", s)
	}
	if !a.InUse(3) || a.InUse(1) {
		t.Fatal("InUse")
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("double Put did not panic")
			}
		}()
		a.Put(1)
	}()

	big := NewSlotAllocator(1 << 16)
	allocs := testing.AllocsPerRun(1000, func() {
		s, _ := big.Get()
		s2, _ := big.Get()
		big.Put(s)
		big.Put(s2)
	})
	if allocs != 0 {
		t.Fatalf("Get/Put allocate %.1f", allocs)
	}
}
