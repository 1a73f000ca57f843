//go:build linux

package uring

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// BenchmarkNopRoundTrip: one NOP submitted, waited for and reaped per op.
func BenchmarkNopRoundTrip(b *testing.B) {
	for _, bc := range []struct {
		name string
		opts Options
	}{{"default", Options{}}, {"defer_taskrun", Options{DeferTaskrun: true}}} {
		b.Run(bc.name, func(b *testing.B) {
			r := newTestRing(b, 64, bc.opts)
			var c [1]CQE
			b.ReportAllocs()
			for b.Loop() {
				r.GetSQE().PrepNop().SetUserData(1)
				if _, err := r.SubmitAndWait(1); err != nil {
					b.Fatal(err)
				}
				if r.PeekBatch(c[:]) != 1 {
					b.Fatal("no CQE")
				}
			}
		})
	}
}

// BenchmarkNopBatch32: 32 NOPs per submit; per-op cost of batching.
func BenchmarkNopBatch32(b *testing.B) {
	r := newTestRing(b, 64, Options{DeferTaskrun: true})
	var c [32]CQE
	b.ReportAllocs()
	for b.Loop() {
		for i := 0; i < 32; i++ {
			r.GetSQE().PrepNop().SetUserData(uint64(i))
		}
		if _, err := r.SubmitAndWait(32); err != nil {
			b.Fatal(err)
		}
		if r.PeekBatch(c[:]) != 32 {
			b.Fatal("short batch")
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/32, "ns/nop")
}

// BenchmarkEchoRecvSend: a 64-byte message from a plain loopback TCP client
// socket to a direct-descriptor server connection (multishot recv into a
// buffer ring), echoed with a send from that buffer, read back by the
// client. One op = one full round trip.
func BenchmarkEchoRecvSend(b *testing.B) {
	r := newTestRing(b, 64, Options{DeferTaskrun: true, CQEntries: 256})
	lfd, port := listenTCP(b, 16)
	defer unix.Close(lfd)
	s := newEchoServer(b, r, 8, 64, lfd)
	s.wantAccept = 1
	s.fillAccepts()
	r.Submit()

	cfd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Close(cfd)
	unix.SetsockoptInt(cfd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	if err := unix.Connect(cfd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: port}); err != nil {
		b.Fatal(err)
	}
	s.runUntil("accept", func() bool { return s.accepted == 1 }, 5*time.Second)
	s.wantAccept = 0

	msg := make([]byte, 64)
	in := make([]byte, 64)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := unix.Write(cfd, msg); err != nil {
			b.Fatal(err)
		}
		want := s.sent + 1
		for s.sent < want {
			s.poll(time.Second)
		}
		for got := 0; got < len(in); {
			n, err := unix.Read(cfd, in[got:])
			if err != nil || n == 0 {
				b.Fatalf("client read: %d %v", n, err)
			}
			got += n
		}
	}
}
