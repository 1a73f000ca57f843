//go:build linux

package uring

import (
	"errors"
	"runtime"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestSetupTeardown(t *testing.T) {
	requireUring(t)
	before := countFDs(t)
	for i := 0; i < 20; i++ {
		r, err := New(8, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if r.SQEntries() != 8 || r.CQEntries() != 16 {
			t.Fatalf("entries sq=%d cq=%d, want 8/16", r.SQEntries(), r.CQEntries())
		}
		if r.Features()&FeatSingleMmap == 0 {
			t.Logf("no FEAT_SINGLE_MMAP: separate CQ mapping used")
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		if err := r.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
	}
	if after := countFDs(t); after != before {
		t.Fatalf("fd count %d -> %d after 20 New/Close", before, after)
	}

	r, err := New(100, Options{CQEntries: 1000, SubmitAll: true, CoopTaskrun: true})
	if err != nil {
		t.Fatal(err)
	}
	if r.SQEntries() != 128 || r.CQEntries() != 1024 {
		t.Fatalf("entries sq=%d cq=%d, want 128/1024", r.SQEntries(), r.CQEntries())
	}
	want := SetupCQSize | SetupSubmitAll | SetupCoopTaskrun | SetupTaskrunFlag
	if r.Flags()&want != want {
		t.Fatalf("flags %#x lack %#x", r.Flags(), want)
	}
	r.Close()

	if _, err := New(8, Options{Flags: SetupSQPoll}); err == nil {
		t.Fatal("SQPOLL accepted")
	}
	if _, err := New(1<<20, Options{}); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("huge ring: got %v, want EINVAL", err)
	}
}

func TestNopRoundTrip(t *testing.T) {
	r := newTestRing(t, 8, Options{})
	for i := 0; i < 100; i++ {
		sqe := r.GetSQE()
		sqe.PrepNop().SetUserData(PackUserData(7, uint32(i), uint32(i*3)))
		n, err := r.SubmitAndWait(1)
		if err != nil || n != 1 {
			t.Fatalf("SubmitAndWait: n=%d err=%v", n, err)
		}
		var c [1]CQE
		if r.PeekBatch(c[:]) != 1 {
			t.Fatal("no CQE")
		}
		op, slot, gen := UnpackUserData(c[0].UserData)
		if op != 7 || slot != uint32(i) || gen != uint32(i*3) || c[0].Res != 0 || c[0].Err() != nil {
			t.Fatalf("CQE %+v -> op=%d slot=%d gen=%d", c[0], op, slot, gen)
		}
	}
	var c [1]CQE
	allocs := testing.AllocsPerRun(1000, func() {
		r.GetSQE().PrepNop().SetUserData(1)
		r.SubmitAndWait(1)
		r.PeekBatch(c[:])
		_ = c[0].Err()
	})
	if allocs != 0 {
		t.Fatalf("nop round trip allocates %.1f times", allocs)
	}
	allocs = testing.AllocsPerRun(1000, func() {
		r.GetSQE().PrepNop().SetUserData(2)
		r.SubmitAndWaitTimeout(1, time.Second)
		r.GetEvents()
		r.PeekBatch(c[:])
	})
	if allocs != 0 {
		t.Fatalf("timed nop round trip allocates %.1f times", allocs)
	}
}

func TestRingFullAndBatch(t *testing.T) {
	r := newTestRing(t, 8, Options{CQEntries: 64})
	for i := 0; i < 8; i++ {
		sqe := r.GetSQE()
		if sqe == nil {
			t.Fatalf("GetSQE nil after %d", i)
		}
		sqe.PrepNop().SetUserData(uint64(i))
	}
	if r.GetSQE() != nil {
		t.Fatal("GetSQE not nil on a full SQ")
	}
	if _, err := r.NextSQE(); !errors.Is(err, ErrRingFull) {
		t.Fatalf("NextSQE on full SQ: %v", err)
	}
	if r.SQSpace() != 0 || r.SQPending() != 8 {
		t.Fatalf("space=%d pending=%d", r.SQSpace(), r.SQPending())
	}
	if n, err := r.Submit(); err != nil || n != 8 {
		t.Fatalf("Submit: %d %v", n, err)
	}
	if r.SQSpace() != 8 {
		t.Fatalf("space after submit %d", r.SQSpace())
	}
	for i := 8; i < 10; i++ {
		r.GetSQE().PrepNop().SetUserData(uint64(i))
	}
	if _, err := r.SubmitAndWait(10); err != nil {
		t.Fatal(err)
	}
	if r.CQReady() != 10 {
		t.Fatalf("CQReady %d", r.CQReady())
	}
	var got []uint64
	var buf [3]CQE
	for {
		n := r.PeekBatch(buf[:])
		if n == 0 {
			break
		}
		if len(got) < 9 && n != 3 {
			t.Fatalf("batch of %d", n)
		}
		for _, c := range buf[:n] {
			got = append(got, c.UserData)
		}
	}
	if len(got) != 10 {
		t.Fatalf("got %d CQEs", len(got))
	}
	for i, ud := range got {
		if ud != uint64(i) {
			t.Fatalf("order: %v", got)
		}
	}
}

func TestTimeout(t *testing.T) {
	r := newTestRing(t, 8, Options{})
	g := newRegion(t, 4096)
	ts := (*Timespec)(g.Pointer(0))
	*ts = Timespec{Nsec: int64(20 * time.Millisecond)}
	start := time.Now()
	r.GetSQE().PrepTimeout(ts, 0, 0).SetUserData(1)
	c := waitCQEs(t, r, 1, 5*time.Second)[0]
	if el := time.Since(start); el < 15*time.Millisecond {
		t.Fatalf("timeout fired after %v", el)
	}
	if !IsTimeout(c.Err()) || !errors.Is(c.Err(), ErrTimeout) {
		t.Fatalf("timeout CQE %+v err %v", c, c.Err())
	}

	// Count-based: completes with 0 once one other CQE was posted.
	ts2 := (*Timespec)(g.Pointer(16))
	*ts2 = Timespec{Sec: 10}
	r.GetSQE().PrepTimeout(ts2, 1, 0).SetUserData(2)
	r.GetSQE().PrepNop().SetUserData(3)
	m := byUD(t, waitCQEs(t, r, 2, 5*time.Second))
	if m[2].Res != 0 || m[3].Res != 0 {
		t.Fatalf("count timeout: %+v", m)
	}

	// Remove a pending timeout.
	r.GetSQE().PrepTimeout(ts2, 0, 0).SetUserData(4)
	r.Submit()
	r.GetSQE().PrepTimeoutRemove(4, 0).SetUserData(5)
	m = byUD(t, waitCQEs(t, r, 2, 5*time.Second))
	if !IsCanceled(m[4].Err()) || m[5].Res != 0 {
		t.Fatalf("timeout remove: %+v", m)
	}
}

func TestWaitTimeout(t *testing.T) {
	r := newTestRing(t, 8, Options{})
	start := time.Now()
	if err := r.WaitCQE(30 * time.Millisecond); !errors.Is(err, ErrTimeout) {
		t.Fatalf("WaitCQE on idle ring: %v", err)
	}
	if el := time.Since(start); el < 25*time.Millisecond || el > 2*time.Second {
		t.Fatalf("WaitCQE(30ms) took %v", el)
	}
	if err := r.WaitCQE(0); !errors.Is(err, ErrTimeout) {
		t.Fatalf("WaitCQE(0): %v", err)
	}
	r.GetSQE().PrepNop()
	if err := r.WaitCQE(time.Second); err != nil {
		t.Fatalf("WaitCQE with a nop: %v", err)
	}
	if n, err := r.SubmitAndWaitTimeout(2, 10*time.Millisecond); !errors.Is(err, ErrTimeout) || n != 0 {
		t.Fatalf("wait for 2 with 1 ready: n=%d err=%v", n, err)
	}
}

func TestCancel(t *testing.T) {
	r := newTestRing(t, 16, Options{})
	g := newRegion(t, 4096)
	sp := socketpair(t)

	// Cancel by user_data.
	r.GetSQE().PrepRecv(int32(sp[0]), g.Slice(0, 64), 0).SetUserData(10)
	r.Submit()
	r.GetSQE().PrepCancel(10, 0).SetUserData(11)
	m := byUD(t, waitCQEs(t, r, 2, 5*time.Second))
	if !IsCanceled(m[10].Err()) || !errors.Is(m[10].Err(), ErrCanceled) || m[11].Res != 0 {
		t.Fatalf("cancel by user_data: %+v", m)
	}

	// Nothing to cancel.
	r.GetSQE().PrepCancel(999, 0).SetUserData(12)
	if c := waitCQEs(t, r, 1, 5*time.Second)[0]; !IsNotFound(c.Err()) {
		t.Fatalf("cancel of unknown request: %+v", c)
	}

	// Cancel all on an fd.
	r.GetSQE().PrepRecv(int32(sp[0]), g.Slice(0, 64), 0).SetUserData(20)
	r.GetSQE().PrepRecv(int32(sp[0]), g.Slice(64, 64), 0).SetUserData(21)
	r.Submit()
	r.GetSQE().PrepCancelFD(int32(sp[0]), false, CancelAll).SetUserData(22)
	m = byUD(t, waitCQEs(t, r, 3, 5*time.Second))
	if !IsCanceled(m[20].Err()) || !IsCanceled(m[21].Err()) || m[22].Res != 2 {
		t.Fatalf("cancel by fd: %+v", m)
	}

	// Linked timeout cancels a recv that never completes.
	ts := (*Timespec)(g.Pointer(1024))
	*ts = Timespec{Nsec: int64(10 * time.Millisecond)}
	r.GetSQE().PrepRecv(int32(sp[0]), g.Slice(0, 64), 0).SetUserData(30).SetLink()
	r.GetSQE().PrepLinkTimeout(ts, 0).SetUserData(31)
	m = byUD(t, waitCQEs(t, r, 2, 5*time.Second))
	if !IsCanceled(m[30].Err()) || !IsTimeout(m[31].Err()) {
		t.Fatalf("link timeout: %+v", m)
	}

	// A recv that completes in time cancels its linked timeout.
	r.GetSQE().PrepRecv(int32(sp[0]), g.Slice(0, 64), 0).SetUserData(40).SetLink()
	*ts = Timespec{Sec: 5}
	r.GetSQE().PrepLinkTimeout(ts, 0).SetUserData(41)
	r.Submit()
	unix.Write(sp[1], []byte("hello"))
	m = byUD(t, waitCQEs(t, r, 2, 5*time.Second))
	if m[40].Res != 5 || string(g.Slice(0, 5)) != "hello" || !IsCanceled(m[41].Err()) {
		t.Fatalf("recv before link timeout: %+v", m)
	}
}

// TestDeferTaskrun covers SINGLE_ISSUER|DEFER_TASKRUN|TASKRUN_FLAG: many
// completions become visible through GetEvents' loop, and another thread is
// refused with EEXIST.
func TestDeferTaskrun(t *testing.T) {
	const n = 200
	r := newTestRing(t, 256, Options{DeferTaskrun: true, CQEntries: 1024})
	want := SetupSingleIssuer | SetupDeferTaskrun | SetupTaskrunFlag
	if r.Flags()&want != want {
		t.Fatalf("flags %#x", r.Flags())
	}
	g := newRegion(t, n*16)
	pairs := make([][2]int, n)
	for i := range pairs {
		pairs[i] = socketpair(t)
		r.GetSQE().PrepRecv(int32(pairs[i][0]), g.Slice(i*16, 16), 0).SetUserData(uint64(i))
	}
	if k, err := r.Submit(); err != nil || k != n {
		t.Fatalf("Submit: %d %v", k, err)
	}
	for i := range pairs {
		unix.Write(pairs[i][1], []byte("x"))
	}
	if r.CQReady() != 0 {
		t.Fatalf("%d CQEs visible before any GETEVENTS: not deferred?", r.CQReady())
	}
	if !r.NeedsEnter() {
		t.Fatal("IORING_SQ_TASKRUN not set with deferred completions pending")
	}
	// One raw enter runs only a batch; report what this kernel does.
	sysEnterNoWait(r.fd, 0, 0, EnterGetEvents, nil, 0)
	t.Logf("after one io_uring_enter(GETEVENTS): %d of %d CQEs posted, TASKRUN still set: %v", r.CQReady(), n, r.NeedsEnter())
	if err := r.GetEvents(); err != nil {
		t.Fatal(err)
	}
	if r.CQReady() != n || r.NeedsEnter() {
		t.Fatalf("after GetEvents: %d of %d CQEs, NeedsEnter=%v", r.CQReady(), n, r.NeedsEnter())
	}
	seen := byUD(t, waitCQEs(t, r, n, time.Second))
	for i := 0; i < n; i++ {
		if seen[uint64(i)].Res != 1 {
			t.Fatalf("recv %d: %+v", i, seen[uint64(i)])
		}
	}

	// Another thread may not submit.
	r.GetSQE().PrepNop().SetUserData(1000)
	errc := make(chan error)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		_, err := r.Submit()
		errc <- err
	}()
	if err := <-errc; !errors.Is(err, syscall.EEXIST) || !errors.Is(err, ErrExists) {
		t.Fatalf("submit from another thread: %v, want EEXIST", err)
	}
	if c := waitCQEs(t, r, 1, time.Second)[0]; c.UserData != 1000 {
		t.Fatalf("nop after EEXIST: %+v", c)
	}
}

// TestEventfdManyRings: one eventfd registered on three rings wakes one
// thread for any of them.
func TestEventfdManyRings(t *testing.T) {
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(efd)
	rings := []*Ring{
		newTestRing(t, 8, Options{}),
		newTestRing(t, 8, Options{DeferTaskrun: true}),
		newTestRing(t, 8, Options{}),
	}
	for _, r := range rings {
		if err := r.RegisterEventfd(efd); err != nil {
			t.Fatal(err)
		}
	}
	var b [8]byte
	for idx, r := range rings {
		r.GetSQE().PrepNop().SetUserData(uint64(idx))
		if _, err := r.Submit(); err != nil {
			t.Fatal(err)
		}
		pfd := []unix.PollFd{{Fd: int32(efd), Events: unix.POLLIN}}
		if k, err := unix.Poll(pfd, 2000); err != nil || k != 1 {
			t.Fatalf("ring %d: eventfd not signalled (%d, %v)", idx, k, err)
		}
		if _, err := unix.Read(efd, b[:]); err != nil {
			t.Fatal(err)
		}
		for j, o := range rings {
			if err := o.GetEvents(); err != nil {
				t.Fatal(err)
			}
			want := uint32(0)
			if j == idx {
				want = 1
			}
			if o.CQReady() != want {
				t.Fatalf("after nop on ring %d: ring %d has %d CQEs", idx, j, o.CQReady())
			}
		}
		var c [1]CQE
		r.PeekBatch(c[:])
	}
	for _, r := range rings {
		if err := r.UnregisterEventfd(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCloseWithInflight: Close cancels armed multishot recvs before it
// unmaps the buffer ring.
func TestCloseWithInflight(t *testing.T) {
	for _, opts := range []Options{{}, {DeferTaskrun: true}} {
		r := newTestRing(t, 64, opts)
		br, err := r.RegisterBufRing(3, 64, 512)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 16; i++ {
			sp := socketpair(t)
			r.GetSQE().PrepRecvMultishot(int32(sp[0]), br.Group(), 0).SetUserData(uint64(i))
		}
		if _, err := r.Submit(); err != nil {
			t.Fatal(err)
		}
		if err := r.Close(); err != nil {
			t.Fatalf("Close(%+v): %v", opts, err)
		}
	}
}

// TestWaitEINTR: signals hitting the waiting thread (as the runtime's SIGURG
// preemption does) make io_uring_enter return EINTR; waits must retry with
// the remaining time instead of failing or returning early.
func TestWaitEINTR(t *testing.T) {
	r := newTestRing(t, 8, Options{})
	tid := unix.Gettid()
	stop := make(chan struct{})
	done := make(chan int)
	go func() {
		sent := 0
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				done <- sent
				return
			case <-tick.C:
				if unix.Tgkill(unix.Getpid(), tid, unix.SIGURG) == nil {
					sent++
				}
			}
		}
	}()
	start := time.Now()
	err := r.WaitCQE(150 * time.Millisecond)
	el := time.Since(start)
	if !errors.Is(err, ErrTimeout) || el < 140*time.Millisecond {
		t.Fatalf("WaitCQE(150ms) under signals: %v after %v", err, el)
	}

	g := newRegion(t, 4096)
	ts := (*Timespec)(g.Pointer(0))
	*ts = Timespec{Nsec: int64(100 * time.Millisecond)}
	r.GetSQE().PrepTimeout(ts, 0, 0).SetUserData(1)
	start = time.Now()
	if _, err := r.SubmitAndWait(1); err != nil {
		t.Fatalf("SubmitAndWait under signals: %v", err)
	}
	if el := time.Since(start); el < 90*time.Millisecond {
		t.Fatalf("SubmitAndWait returned after %v with %d CQEs ready", el, r.CQReady())
	}
	close(stop)
	t.Logf("%d signals sent to the waiting thread", <-done)
}

// A ring registered with its thread (RegisterRingFd) enters by index, with
// raw waits, and unregisters on Close.
func TestRegisteredRingRawWait(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r, err := New(8, Options{DeferTaskrun: true, RawWait: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.RegisterRingFd(); err != nil {
		t.Fatal(err)
	}
	if r.enterFlg != EnterRegisteredRing || r.regIndex < 0 {
		t.Fatalf("not registered: index %d flags %#x", r.regIndex, r.enterFlg)
	}
	var c [1]CQE
	for i := 0; i < 50; i++ {
		r.GetSQE().PrepNop().SetUserData(uint64(i))
		if _, err := r.SubmitAndWaitTimeout(1, time.Second); err != nil {
			t.Fatalf("SubmitAndWaitTimeout: %v", err)
		}
		if r.PeekBatch(c[:]) != 1 || c[0].UserData != uint64(i) {
			t.Fatalf("CQE %d: %+v", i, c[0])
		}
	}
	// A blocking raw wait that times out.
	start := time.Now()
	if _, err := r.SubmitAndWaitTimeout(1, 20*time.Millisecond); !errors.Is(err, ErrTimeout) {
		t.Fatalf("wait: %v, want ErrTimeout", err)
	}
	if d := time.Since(start); d < 15*time.Millisecond {
		t.Fatalf("raw wait returned after %v", d)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if r.regIndex != -1 {
		t.Fatal("still registered after Close")
	}
}

// A goroutine blocked in a raw wait must not hold up a stop-the-world: the
// runtime's preemption signal interrupts the wait (EINTR) and the retry path
// reaches a preemption point.
func TestRawWaitDoesNotBlockGC(t *testing.T) {
	const wait = 3 * time.Second
	ready := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		r, err := New(8, Options{DeferTaskrun: true, RawWait: true})
		if err != nil {
			close(ready)
			return
		}
		defer r.Close()
		close(ready)
		r.SubmitAndWaitTimeout(1, wait) // nothing completes: blocks until the timeout
	}()
	<-ready
	time.Sleep(50 * time.Millisecond) // let it block in the kernel
	start := time.Now()
	runtime.GC()
	if d := time.Since(start); d > wait/3 {
		t.Fatalf("runtime.GC took %v while a loop was in a raw wait of %v", d, wait)
	}
}
