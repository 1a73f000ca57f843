//go:build linux

package uring

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestSocketConnectDirect: SOCKET into a direct slot, [BIND,] CONNECT, linked
// in one submit; then send, recv and close through the slot.
func TestSocketConnectDirect(t *testing.T) {
	pr := requireUring(t)
	r := newTestRing(t, 16, Options{})
	if err := r.RegisterFilesSparse(16); err != nil {
		t.Fatal(err)
	}
	ln, conns := goListener(t)
	port := ln.Addr().(*net.TCPAddr).Port
	g := newRegion(t, 4096)
	const slot = 5

	r.GetSQE().PrepSocketDirect(unix.AF_INET, unix.SOCK_STREAM, 0, slot, 0).SetLink().SetUserData(1)
	chain := 2
	if pr.Bind {
		ba, bl := putSockaddr4(g, 64, [4]byte{127, 0, 0, 2}, 0)
		r.GetSQE().PrepBind(slot, ba, bl).SetFixedFile().SetLink().SetUserData(2)
		chain++
	}
	ca, cl := putSockaddr4(g, 0, [4]byte{127, 0, 0, 1}, port)
	r.GetSQE().PrepConnect(slot, ca, cl).SetFixedFile().SetUserData(3)
	if n, err := r.Submit(); err != nil || n != chain {
		t.Fatalf("submit chain: %d %v", n, err)
	}
	for _, c := range waitCQEs(t, r, chain, 5*time.Second) {
		if c.Res != 0 {
			t.Fatalf("chain step %d: %v", c.UserData, c.Err())
		}
	}
	peer := recvConn(t, conns)
	if pr.Bind {
		if ip := peer.RemoteAddr().(*net.TCPAddr).IP.String(); ip != "127.0.0.2" {
			t.Fatalf("bound source address %s, want 127.0.0.2", ip)
		}
	} else {
		t.Log("IORING_OP_BIND not supported: chain without bind")
	}

	copy(g.Slice(128, 4), "ping")
	r.GetSQE().PrepSend(slot, g.Slice(128, 4), unix.MSG_WAITALL|unix.MSG_NOSIGNAL).SetFixedFile().SetUserData(4)
	if c := waitCQEs(t, r, 1, 5*time.Second)[0]; c.Res != 4 {
		t.Fatalf("send: %+v %v", c, c.Err())
	}
	buf := make([]byte, 4)
	peer.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(peer, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("peer got %q %v", buf, err)
	}
	peer.Write([]byte("pong"))
	r.GetSQE().PrepRecv(slot, g.Slice(256, 64), 0).SetFixedFile().SetUserData(5)
	if c := waitCQEs(t, r, 1, 5*time.Second)[0]; c.Res != 4 || string(g.Slice(256, 4)) != "pong" {
		t.Fatalf("recv: %+v %q", c, g.Slice(256, 4))
	}
	r.GetSQE().PrepCloseDirect(slot).SetUserData(6)
	if c := waitCQEs(t, r, 1, 5*time.Second)[0]; c.Res != 0 {
		t.Fatalf("close direct: %v", c.Err())
	}
	if n, err := peer.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("peer after close: %d %v, want EOF", n, err)
	}
}

// TestMsgRing moves a connected direct descriptor from ring A to ring B and
// posts a data message.
func TestMsgRing(t *testing.T) {
	a := newTestRing(t, 16, Options{})
	b := newTestRing(t, 16, Options{DeferTaskrun: true})
	for _, r := range []*Ring{a, b} {
		if err := r.RegisterFilesSparse(16); err != nil {
			t.Fatal(err)
		}
	}
	ln, conns := goListener(t)
	g := newRegion(t, 4096)
	ca, cl := putSockaddr4(g, 0, [4]byte{127, 0, 0, 1}, ln.Addr().(*net.TCPAddr).Port)
	a.GetSQE().PrepSocketDirect(unix.AF_INET, unix.SOCK_STREAM, 0, 1, 0).SetLink().SetUserData(1)
	a.GetSQE().PrepConnect(1, ca, cl).SetFixedFile().SetUserData(2)
	for _, c := range waitCQEs(t, a, 2, 5*time.Second) {
		if c.Res != 0 {
			t.Fatalf("socket/connect: %+v %v", c, c.Err())
		}
	}
	peer := recvConn(t, conns)

	ud := PackUserData(9, 7, 1)
	a.GetSQE().PrepMsgRingFD(int32(b.Fd()), 1, 7, ud, 0).SetUserData(3)
	if c := waitCQEs(t, a, 1, 5*time.Second)[0]; c.Res != 0 {
		t.Fatalf("MSG_RING send fd: %+v %v", c, c.Err())
	}
	a.GetSQE().PrepCloseDirect(1).SetUserData(4)
	a.GetSQE().PrepMsgRing(int32(b.Fd()), 42, 77, 0).SetUserData(5)
	for _, c := range waitCQEs(t, a, 2, 5*time.Second) {
		if c.Res != 0 {
			t.Fatalf("close/msg: %+v %v", c, c.Err())
		}
	}
	m := byUD(t, waitCQEs(t, b, 2, 5*time.Second))
	if _, ok := m[ud]; !ok || m[77].Res != 42 {
		t.Fatalf("ring B CQEs: %+v", m)
	}

	copy(g.Slice(64, 5), "via-b")
	b.GetSQE().PrepSend(7, g.Slice(64, 5), unix.MSG_NOSIGNAL).SetFixedFile().SetUserData(6)
	if c := waitCQEs(t, b, 1, 5*time.Second)[0]; c.Res != 5 {
		t.Fatalf("send on moved slot: %+v %v", c, c.Err())
	}
	buf := make([]byte, 5)
	peer.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(peer, buf); err != nil || string(buf) != "via-b" {
		t.Fatalf("peer got %q %v", buf, err)
	}
}

// TestBufRingRecycle: multishot recv consumes provided buffers, ENOBUFS ends
// it when the group runs dry, recycling and re-arming resumes.
func TestBufRingRecycle(t *testing.T) {
	r := newTestRing(t, 16, Options{})
	br, err := r.RegisterBufRing(1, 4, 64)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.RegisterBufRing(2, 3, 64); err == nil {
		t.Fatal("non power of two accepted")
	}
	sp := socketpair(t)
	arm := func() {
		r.GetSQE().PrepRecvMultishot(int32(sp[0]), br.Group(), 0).SetUserData(1)
		r.Submit()
	}
	arm()
	var ids []uint16
	for i := 0; i < 4; i++ {
		msg := fmt.Sprintf("msg-%d", i)
		unix.Write(sp[1], []byte(msg))
		c := waitCQEs(t, r, 1, 5*time.Second)[0]
		id, ok := c.BufferID()
		if !ok || !c.More() || string(br.Buffer(id)[:c.Res]) != msg {
			t.Fatalf("recv %d: %+v ok=%v", i, c, ok)
		}
		ids = append(ids, id)
	}
	// All 4 buffers are held by us: the next message ends the multishot.
	unix.Write(sp[1], []byte("late"))
	c := waitCQEs(t, r, 1, 5*time.Second)[0]
	if !IsNoBuffers(c.Err()) || c.More() {
		t.Fatalf("with no buffers: %+v %v", c, c.Err())
	}
	for _, id := range ids {
		br.Add(id)
	}
	br.Advance()
	arm()
	c = waitCQEs(t, r, 1, 5*time.Second)[0]
	if id, ok := c.BufferID(); !ok || string(br.Buffer(id)[:c.Res]) != "late" {
		t.Fatalf("after recycle: %+v", c)
	}
	allocs := testing.AllocsPerRun(100, func() {
		br.Recycle(0)
		br.Add(1)
		br.Advance()
	})
	if allocs != 0 {
		t.Fatalf("recycle allocates %.1f", allocs)
	}
}

// TestBufRingReleaseMemory: released buffers read as zeros, stay registered
// and receive data again.
func TestBufRingReleaseMemory(t *testing.T) {
	r := newTestRing(t, 16, Options{})
	br, err := r.RegisterBufRing(1, 4, 4096)
	if err != nil {
		t.Fatal(err)
	}
	for id := range uint16(4) {
		copy(br.Buffer(id), "stale data")
	}
	if err := br.ReleaseMemory(); err != nil {
		t.Fatal(err)
	}
	for id := range uint16(4) {
		if b := br.Buffer(id); !bytes.Equal(b[:10], make([]byte, 10)) {
			t.Fatalf("buffer %d after release: %q, want zeros", id, b[:10])
		}
	}
	sp := socketpair(t)
	r.GetSQE().PrepRecvMultishot(int32(sp[0]), br.Group(), 0).SetUserData(1)
	r.Submit()
	unix.Write(sp[1], []byte("after release"))
	c := waitCQEs(t, r, 1, 5*time.Second)[0]
	if id, ok := c.BufferID(); !ok || string(br.Buffer(id)[:c.Res]) != "after release" {
		t.Fatalf("recv into a released buffer: %+v ok=%v", c, ok)
	}
}

// echo server on direct descriptors: explicit-slot accepts on a direct
// listener, multishot recv with a buffer ring, send from the same buffer.
const (
	opAccept uint8 = iota + 1
	opRecv
	opSend
	opClose
)

type echoServer struct {
	tb         testing.TB
	r          *Ring
	br         *BufRing
	slots      *SlotAllocator
	gen        []uint32
	listenSlot uint32
	accepting  int // accepts in flight
	wantAccept int // keep this many in flight
	accepted   int
	echoed     int
	sent       int
	closed     int
	errs       int
	cqes       [256]CQE
}

func newEchoServer(tb testing.TB, r *Ring, table uint32, bufs uint16, listenFD int) *echoServer {
	if err := r.RegisterFilesSparse(table); err != nil {
		tb.Fatal(err)
	}
	br, err := r.RegisterBufRing(1, bufs, 1024)
	if err != nil {
		tb.Fatal(err)
	}
	s := &echoServer{tb: tb, r: r, br: br, slots: NewSlotAllocator(table), gen: make([]uint32, table)}
	s.listenSlot = table - 1
	if !s.slots.Reserve(s.listenSlot) {
		tb.Fatal("reserve listener slot")
	}
	if _, err := r.RegisterFilesUpdate(s.listenSlot, []int32{int32(listenFD)}); err != nil {
		tb.Fatal(err)
	}
	return s
}

func (s *echoServer) sqe() *SQE {
	if q := s.r.GetSQE(); q != nil {
		return q
	}
	if _, err := s.r.Submit(); err != nil {
		s.tb.Fatalf("submit: %v", err)
	}
	q := s.r.GetSQE()
	if q == nil {
		s.tb.Fatal("SQ full after submit")
	}
	return q
}

func (s *echoServer) fillAccepts() {
	for s.accepting < s.wantAccept {
		slot, ok := s.slots.Get()
		if !ok {
			return
		}
		s.sqe().PrepAcceptDirect(int32(s.listenSlot), slot, nil, nil, 0).SetFixedFile().
			SetUserData(PackUserData(opAccept, slot, s.gen[slot]))
		s.accepting++
	}
}

func (s *echoServer) armRecv(slot uint32) {
	s.sqe().PrepRecvMultishot(int32(slot), s.br.Group(), 0).SetFixedFile().
		SetUserData(PackUserData(opRecv, slot, s.gen[slot]))
}

func (s *echoServer) handle(c *CQE) {
	op, slot, gen := UnpackUserData(c.UserData)
	switch op {
	case opAccept:
		s.accepting--
		if c.Res < 0 {
			s.slots.Put(slot)
			if !IsCanceled(c.Err()) {
				s.errs++
				s.tb.Errorf("accept into slot %d: %v", slot, c.Err())
			}
			return
		}
		s.accepted++
		s.armRecv(slot)
		s.fillAccepts()
	case opRecv:
		if gen != s.gen[slot] {
			s.tb.Errorf("stale recv CQE for slot %d", slot)
		}
		id, hasBuf := c.BufferID()
		if hasBuf {
			if c.Res > 0 {
				s.sqe().PrepSend(int32(slot), s.br.Buffer(id)[:c.Res], unix.MSG_WAITALL|unix.MSG_NOSIGNAL).
					SetFixedFile().SetUserData(PackUserData(opSend, slot, uint32(id)))
				s.echoed++
			} else {
				s.br.Recycle(id)
			}
		}
		if !c.More() {
			if c.Res > 0 || IsNoBuffers(c.Err()) {
				s.armRecv(slot)
				return
			}
			if c.Res < 0 && !IsConnReset(c.Err()) {
				s.errs++
				s.tb.Errorf("recv on slot %d: %v", slot, c.Err())
			}
			s.sqe().PrepCloseDirect(slot).SetUserData(PackUserData(opClose, slot, gen))
		}
	case opSend:
		s.br.Recycle(uint16(gen))
		if c.Res < 0 && !IsConnReset(c.Err()) {
			s.errs++
			s.tb.Errorf("send on slot %d: %v", slot, c.Err())
		}
		s.sent++
	case opClose:
		if c.Res < 0 {
			s.errs++
			s.tb.Errorf("close slot %d: %v", slot, c.Err())
		}
		s.gen[slot]++
		s.slots.Put(slot)
		s.closed++
	}
}

// poll runs one loop iteration: submit, wait up to d, handle CQEs.
func (s *echoServer) poll(d time.Duration) {
	if _, err := s.r.SubmitAndWaitTimeout(1, d); err != nil && !IsTimeout(err) {
		s.tb.Fatalf("wait: %v", err)
	}
	for {
		n := s.r.PeekBatch(s.cqes[:])
		if n == 0 {
			return
		}
		for i := range s.cqes[:n] {
			s.handle(&s.cqes[i])
		}
	}
}

func (s *echoServer) runUntil(what string, cond func() bool, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			s.tb.Fatalf("timeout waiting for %s: accepted=%d echoed=%d sent=%d closed=%d", what,
				s.accepted, s.echoed, s.sent, s.closed)
		}
		s.poll(20 * time.Millisecond)
	}
}

const (
	echoClientsEnv = "URING_TEST_ECHO_CLIENTS"
	echoMsgLen     = 32
)

func echoMsg(i int) []byte { return []byte(fmt.Sprintf("%-*s", echoMsgLen, fmt.Sprintf("conn-%d", i))) }

// runEchoClients is the child process of TestEchoServer1000: it dials n
// connections with package net, sends a message on each, checks each echo,
// reports READY and holds the connections until stdin closes.
func runEchoClients(addr string, n int) error {
	conns := make([]net.Conn, n)
	for i := range conns {
		c, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			return fmt.Errorf("dial %d: %w", i, err)
		}
		conns[i] = c
	}
	for i, c := range conns {
		if _, err := c.Write(echoMsg(i)); err != nil {
			return fmt.Errorf("write %d: %w", i, err)
		}
	}
	buf := make([]byte, echoMsgLen)
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		if _, err := io.ReadFull(c, buf); err != nil {
			return fmt.Errorf("read echo %d: %w", i, err)
		}
		if !bytes.Equal(buf, echoMsg(i)) {
			return fmt.Errorf("conn %d: echo %q, want %q", i, buf, echoMsg(i))
		}
	}
	fmt.Println("READY")
	io.Copy(io.Discard, os.Stdin)
	for _, c := range conns {
		c.Close()
	}
	return nil
}

func TestMain(m *testing.M) {
	if addr := os.Getenv(echoClientsEnv); addr != "" {
		var n int
		fmt.Sscanf(os.Getenv(echoClientsEnv+"_N"), "%d", &n)
		if err := runEchoClients(addr, n); err != nil {
			fmt.Fprintln(os.Stderr, "echo clients:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestEchoServer1000: 1000 connections from net.Dial clients (in a child
// process) to a server that holds them only as direct descriptors. None is
// lost, every echo is right, and this process's fd table does not grow.
func TestEchoServer1000(t *testing.T) {
	const n = 1000
	if testing.Short() {
		t.Skip("short")
	}
	r := newTestRing(t, 256, Options{DeferTaskrun: true, CQEntries: 4096})
	lfd, port := listenTCP(t, 4096)
	s := newEchoServer(t, r, 2048, 2048, lfd)
	unix.Close(lfd) // the listener now lives only in the file table
	s.wantAccept = 32
	s.fillAccepts()
	r.Submit()

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), echoClientsEnv+"="+fmt.Sprintf("127.0.0.1:%d", port),
		fmt.Sprintf("%s_N=%d", echoClientsEnv, n))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	baseline := countFDs(t)

	var ready, exited atomic.Bool
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if sc.Text() == "READY" {
				ready.Store(true)
			}
		}
		exited.Store(true)
	}()
	s.runUntil("clients READY", func() bool {
		if exited.Load() && !ready.Load() {
			t.Fatalf("client process ended early: %s", stderr.String())
		}
		return ready.Load()
	}, 90*time.Second)

	held := countFDs(t)
	t.Logf("fd table: %d with %d connections held as direct descriptors (baseline %d)", held, s.accepted, baseline)
	if s.accepted != n || s.echoed < n {
		t.Fatalf("accepted %d, echoed %d, want %d", s.accepted, s.echoed, n)
	}
	if held-baseline > 16 {
		t.Fatalf("fd table grew by %d while holding %d connections", held-baseline, n)
	}

	stdin.Close()
	s.runUntil("all connections closed", func() bool { return s.closed == n }, 60*time.Second)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("client process: %v: %s", err, stderr.String())
	}
	if s.errs != 0 || s.sent != s.echoed {
		t.Fatalf("errors %d, sent %d of %d echoes", s.errs, s.sent, s.echoed)
	}
	if s.slots.Free() != 2048-1-s.accepting {
		t.Fatalf("slots leaked: %d free, %d accepts in flight", s.slots.Free(), s.accepting)
	}
}

// TestSendmsgIovec: SENDMSG gathering two iovecs, all in mmap'd memory.
func TestSendmsgIovec(t *testing.T) {
	r := newTestRing(t, 8, Options{})
	sp := socketpair(t)
	g := newRegion(t, 4096)
	copy(g.Slice(1024, 6), "hello ")
	copy(g.Slice(2048, 5), "world")
	iov := unsafe.Slice((*unix.Iovec)(g.Pointer(256)), 2)
	iov[0].Base = (*byte)(g.Pointer(1024))
	iov[0].SetLen(6)
	iov[1].Base = (*byte)(g.Pointer(2048))
	iov[1].SetLen(5)
	msg := (*unix.Msghdr)(g.Pointer(0))
	msg.Iov = &iov[0]
	msg.SetIovlen(2)
	r.GetSQE().PrepSendmsg(int32(sp[0]), unsafe.Pointer(msg), unix.MSG_NOSIGNAL).SetUserData(1)
	if c := waitCQEs(t, r, 1, 5*time.Second)[0]; c.Res != 11 {
		t.Fatalf("sendmsg: %+v %v", c, c.Err())
	}
	buf := make([]byte, 32)
	if n, _ := unix.Read(sp[1], buf); string(buf[:n]) != "hello world" {
		t.Fatalf("peer read %q", buf[:n])
	}
}

// TestListenAcceptMultishot: SOCKET (regular fd), BIND and LISTEN through the
// ring, then multishot accept with kernel-allocated direct slots; NOPs with
// CQE_SKIP_SUCCESS post nothing.
func TestListenAcceptMultishot(t *testing.T) {
	pr := requireUring(t)
	if !pr.Bind || !pr.Listen {
		t.Skip("IORING_OP_BIND/LISTEN not supported")
	}
	r := newTestRing(t, 16, Options{DeferTaskrun: true})
	if err := r.RegisterFilesSparse(8); err != nil {
		t.Fatal(err)
	}
	g := newRegion(t, 4096)
	r.GetSQE().PrepSocket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0, 0).SetUserData(1)
	c := waitCQEs(t, r, 1, 5*time.Second)[0]
	if c.Res < 0 {
		t.Fatalf("socket: %v", c.Err())
	}
	lfd := int(c.Res)
	defer unix.Close(lfd)
	ba, bl := putSockaddr4(g, 0, [4]byte{127, 0, 0, 1}, 0)
	r.GetSQE().PrepBind(int32(lfd), ba, bl).SetLink().SetUserData(2)
	r.GetSQE().PrepListen(int32(lfd), 16).SetUserData(3)
	for _, c := range waitCQEs(t, r, 2, 5*time.Second) {
		if c.Res != 0 {
			t.Fatalf("bind/listen step %d: %v", c.UserData, c.Err())
		}
	}
	sa, err := unix.Getsockname(lfd)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*unix.SockaddrInet4).Port)

	r.GetSQE().PrepNop().SetCQESkipSuccess().SetUserData(99)
	r.GetSQE().PrepAcceptMultishot(int32(lfd), 0, true).SetUserData(4)
	r.Submit()
	var clients []net.Conn
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	slots := map[int32]bool{}
	for i := 0; i < 3; i++ {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, conn)
		c := waitCQEs(t, r, 1, 5*time.Second)[0]
		if c.UserData != 4 || c.Res < 0 || !c.More() || slots[c.Res] {
			t.Fatalf("multishot accept %d: %+v %v", i, c, c.Err())
		}
		slots[c.Res] = true
	}
	if r.CQReady() != 0 {
		t.Fatalf("unexpected extra CQEs (the skipped NOP?): %d", r.CQReady())
	}
}
