//go:build linux

package uringengine

import (
	"net/netip"
	"testing"
)

func TestSockaddrRoundTrip(t *testing.T) {
	for _, s := range []string{"127.0.0.1:5432", "10.1.2.3:1", "[::1]:6432", "[2001:db8::7]:65535", "[::ffff:192.0.2.1]:80"} {
		ap := netip.MustParseAddrPort(s)
		var b [sockaddrSize]byte
		n, _ := putSockaddr(&b, ap)
		got := parseSockaddr(b[:n])
		want := netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		if got != want {
			t.Errorf("%s: got %s, want %s", s, got, want)
		}
	}
	if got := parseSockaddr(nil); got.IsValid() {
		t.Errorf("empty sockaddr parsed as %s", got)
	}
}

func TestHandlePacking(t *testing.T) {
	l := &loop{rings: []*ringState{{conns: make([]conn, 8)}, {conns: make([]conn, 8)}}}
	c := l.take(5, stOpen)
	h := l.handle(5, c.gen)
	if got, slot := l.lookup(h); got != c || slot != 5 {
		t.Fatalf("lookup(%#x) = %p %d", h, got, slot)
	}
	c.flags |= fGone
	if got, _ := l.lookup(h); got != nil {
		t.Fatal("a closed handle still resolves")
	}
	c2 := l.take(5, stOpen) // slot reused: new generation
	if got, _ := l.lookup(h); got != nil {
		t.Fatal("a stale handle resolves to the slot's new connection")
	}
	if got, _ := l.lookup(l.handle(5, c2.gen)); got != c2 {
		t.Fatal("new handle does not resolve")
	}
	if got, _ := l.lookup(l.handle(100, 1)); got != nil {
		t.Fatal("out-of-range slot resolves")
	}
	// A connection of ring 1: the ring index travels in bits 63..56.
	id := connID(1, 5)
	c3 := l.take(id, stOpen)
	h3 := l.handle(id, c3.gen)
	if h3>>56 != 1 || uint32(h3) != 5 {
		t.Fatalf("handle %#x: want ring 1, slot 5", h3)
	}
	if got, gotID := l.lookup(h3); got != c3 || gotID != id || got == c2 {
		t.Fatalf("lookup(%#x) = %p %#x", h3, got, gotID)
	}
	if got, _ := l.lookup(h3 | 7<<56); got != nil {
		t.Fatal("a handle of a ring that does not exist resolves")
	}
}
