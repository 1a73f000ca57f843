package storm

import (
	"net/netip"
	"testing"
)

func TestSources(t *testing.T) {
	s, err := NewSources(netip.MustParseAddr("127.5.0.253"), 4, 10000, 10002)
	if err != nil {
		t.Fatal(err)
	}
	// .253, .254, (skip .255, .0), 127.5.1.1, 127.5.1.2
	if s.Size() != 12 || s.Addrs() != 4 || s.Last() != netip.MustParseAddr("127.5.1.2") {
		t.Fatalf("%v size %d", s, s.Size())
	}
	seen := map[[6]byte]bool{}
	for i := 0; i < s.Size(); i++ {
		ip, port := s.At(i)
		k := [6]byte{ip[0], ip[1], ip[2], ip[3], byte(port >> 8), byte(port)}
		if seen[k] || port < 10000 || port > 10002 || ip[3] == 0 || ip[3] == 255 {
			t.Fatalf("pair %d: %v:%d", i, ip, port)
		}
		seen[k] = true
	}
	if ip, port := s.At(1); ip != [4]byte{127, 5, 0, 254} || port != 10000 {
		t.Fatalf("At(1) = %v:%d (addresses first, then ports)", ip, port)
	}
	if _, err := NewSources(netip.MustParseAddr("127.255.255.250"), 10, 1, 2); err == nil {
		t.Fatal("ran out of 127/8 silently")
	}
	if _, err := NewSources(netip.MustParseAddr("::1"), 1, 1, 2); err == nil {
		t.Fatal("IPv6 accepted")
	}
}

func TestDefaultPorts(t *testing.T) {
	for _, tc := range []struct{ elo, ehi, lo, hi int }{
		{32768, 60999, 10000, 32767},
		{1024, 50000, 50001, 65535},
		{1024, 65000, 10000, 60999},
	} {
		lo, hi := DefaultPorts(tc.elo, tc.ehi)
		if lo != tc.lo || hi != tc.hi {
			t.Errorf("DefaultPorts(%d, %d) = %d-%d, want %d-%d", tc.elo, tc.ehi, lo, hi, tc.lo, tc.hi)
		}
	}
	b := RandomLoopbackBase().As4()
	if b[0] != 127 || b[1] < 16 || b[1] >= 240 || b[3] != 1 {
		t.Fatalf("random base %v", b)
	}
}
