//go:build linux

package uring

import (
	"errors"
	"strings"
	"syscall"
	"testing"
)

func TestUserData(t *testing.T) {
	cases := []struct {
		op        uint8
		slot, gen uint32
	}{
		{0, 0, 0}, {1, 2, 3}, {255, 1<<32 - 1, UserDataGenMask}, {opRecv, 123456, 1 << 23},
	}
	for _, c := range cases {
		op, slot, gen := UnpackUserData(PackUserData(c.op, c.slot, c.gen))
		if op != c.op || slot != c.slot || gen != c.gen {
			t.Fatalf("%+v -> %d %d %d", c, op, slot, gen)
		}
	}
	// The generation wraps at 24 bits without touching op or slot.
	op, slot, gen := UnpackUserData(PackUserData(5, 9, 1<<24+7))
	if op != 5 || slot != 9 || gen != 7 {
		t.Fatalf("wrap: %d %d %d", op, slot, gen)
	}
	if PackUserData(0xAB, 0x11223344, 0x556677) != 0xAB556677_11223344 {
		t.Fatalf("layout %#x", PackUserData(0xAB, 0x11223344, 0x556677))
	}
}

func TestCQEErrors(t *testing.T) {
	ok := CQE{Res: 17}
	if ok.Err() != nil {
		t.Fatal("non-negative Res is not an error")
	}
	cases := []struct {
		errno syscall.Errno
		is    func(error) bool
		named error
	}{
		{syscall.ECANCELED, IsCanceled, ErrCanceled},
		{syscall.ETIME, IsTimeout, ErrTimeout},
		{syscall.ENOBUFS, IsNoBuffers, ErrNoBuffers},
		{syscall.ENOENT, IsNotFound, ErrNotFound},
		{syscall.ECONNRESET, IsConnReset, syscall.ECONNRESET},
		{syscall.EPIPE, IsConnReset, syscall.EPIPE},
	}
	for _, c := range cases {
		e := CQE{Res: -int32(c.errno)}.Err()
		if !c.is(e) || !errors.Is(e, c.named) || e != c.errno {
			t.Fatalf("%v: Err()=%v", c.errno, e)
		}
	}
	if IsCanceled(nil) || IsTimeout(CQE{Res: -int32(syscall.EAGAIN)}.Err()) {
		t.Fatal("false positive")
	}
	bad := CQE{Res: -int32(syscall.EBADF)}
	if allocs := testing.AllocsPerRun(100, func() { _ = bad.Err() }); allocs != 0 {
		t.Fatalf("CQE.Err allocates %.1f", allocs)
	}
	withBuf := CQE{Flags: CQEFBuffer | CQEFMore | 42<<CQEBufferShift}
	if id, ok := withBuf.BufferID(); !ok || id != 42 || !withBuf.More() {
		t.Fatalf("buffer flags: %d %v", id, ok)
	}
	if _, ok := (CQE{Flags: CQEFMore}).BufferID(); ok {
		t.Fatal("BufferID without CQEFBuffer")
	}
}

func TestProbe(t *testing.T) {
	res, err := Probe()
	t.Logf("\n%s", res)
	if err != nil {
		if res.Available || res.Reason == "" || res.Reason != err.Error() {
			t.Fatalf("inconsistent result for error %v: %+v", err, res)
		}
		t.Skipf("io_uring unavailable: %v", err)
	}
	if !res.Available || res.Reason != "" || len(res.MissingOps) != 0 || len(res.MissingFeatures) != 0 {
		t.Fatalf("available but %+v", res)
	}
	for _, op := range []uint8{OpNop, OpAccept, OpRecv, OpSend, OpSendmsg, OpSocket, OpConnect, OpClose,
		OpTimeout, OpAsyncCancel, OpMsgRing} {
		if !res.Supports(op) {
			t.Fatalf("op %d reported unsupported", op)
		}
	}
	if res.Features&(FeatNoDrop|FeatFastPoll|FeatExtArg) != FeatNoDrop|FeatFastPoll|FeatExtArg {
		t.Fatalf("features %#x", res.Features)
	}
	if !res.DeferTaskrun || !res.BufRing {
		t.Fatalf("defer_taskrun=%v buf_ring=%v", res.DeferTaskrun, res.BufRing)
	}
	if res.Supports(255) {
		t.Fatal("opcode 255 supported?")
	}
}

func TestDiagnoseSetup(t *testing.T) {
	base := probeEnv{kernel: "6.18.0", disabled: 0, group: -1, seccomp: 0, uid: 1000}
	cases := []struct {
		name  string
		errno syscall.Errno
		env   func(e *probeEnv)
		want  []string
	}{
		{"disabled=2", syscall.EPERM, func(e *probeEnv) { e.disabled = 2 },
			[]string{"kernel.io_uring_disabled=2", "sysctl -w kernel.io_uring_disabled=0", "fallback"}},
		{"disabled=1 not in group", syscall.EPERM, func(e *probeEnv) { e.disabled = 1; e.group = 1234 },
			[]string{"kernel.io_uring_disabled=1", "io_uring_group", "gid 1234", "euid 1000"}},
		{"disabled=1 in group, seccomp", syscall.EPERM, func(e *probeEnv) {
			e.disabled = 1
			e.group = 1234
			e.inGroup = true
			e.seccomp = 2
			e.container = "docker"
		}, []string{"seccomp", "Docker's default seccomp profile", "inside a container (docker)", "--security-opt"}},
		{"seccomp EPERM", syscall.EPERM, func(e *probeEnv) { e.seccomp = 2 },
			[]string{"seccomp", "io_uring_setup, io_uring_enter or io_uring_register"}},
		{"seccomp ENOSYS", syscall.ENOSYS, func(e *probeEnv) { e.seccomp = 2 },
			[]string{"seccomp", "Docker"}},
		{"old kernel", syscall.ENOSYS, func(e *probeEnv) { e.kernel = "4.19.0" },
			[]string{"4.19.0", "older than 5.1", "CONFIG_IO_URING"}},
		{"LSM", syscall.EPERM, func(e *probeEnv) {}, []string{"SELinux", "AppArmor"}},
	}
	for _, c := range cases {
		e := base
		c.env(&e)
		msg := diagnoseSetup(c.errno, e)
		for _, w := range c.want {
			if !strings.Contains(msg, w) {
				t.Errorf("%s: %q lacks %q", c.name, msg, w)
			}
		}
	}
	err := setupError(8, 0, syscall.EPERM)
	if !errors.Is(err, syscall.EPERM) {
		t.Fatalf("setup error does not wrap errno: %v", err)
	}
}
