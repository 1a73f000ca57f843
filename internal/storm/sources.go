package storm

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
)

// Sources is the space of (source address, source port) pairs that
// connections bind to before connecting. One source address reaches one
// destination at most once per port, so a million connections to one
// proxy address need many addresses (127.0.0.0/8 is all loopback) times
// many ports. Pair i uses address i mod Addrs and port PortLo + i div Addrs,
// so the addresses fill evenly.
type Sources struct {
	addrs  []netip.Addr
	portLo int
	portHi int
}

// NewSources builds count consecutive addresses starting at base, skipping
// addresses whose last byte is 0 or 255, with ports [portLo, portHi].
func NewSources(base netip.Addr, count, portLo, portHi int) (*Sources, error) {
	if !base.Is4() {
		return nil, fmt.Errorf("source address %s: IPv4 only", base)
	}
	if count < 1 {
		return nil, fmt.Errorf("source address count %d", count)
	}
	if portLo < 1 || portHi > 65535 || portLo > portHi {
		return nil, fmt.Errorf("source ports %d-%d", portLo, portHi)
	}
	s := &Sources{portLo: portLo, portHi: portHi}
	a := base
	for len(s.addrs) < count {
		if !a.IsValid() || !a.Is4() {
			return nil, fmt.Errorf("source addresses from %s: ran out of addresses after %d", base, len(s.addrs))
		}
		b := a.As4()
		if b[3] != 0 && b[3] != 255 {
			if base.IsLoopback() != a.IsLoopback() {
				return nil, fmt.Errorf("source addresses from %s leave 127.0.0.0/8 after %d addresses", base, len(s.addrs))
			}
			s.addrs = append(s.addrs, a)
		}
		a = a.Next()
	}
	return s, nil
}

// Size returns the number of pairs.
func (s *Sources) Size() int { return len(s.addrs) * (s.portHi - s.portLo + 1) }

// Addrs returns the number of addresses.
func (s *Sources) Addrs() int { return len(s.addrs) }

// Ports returns the port range.
func (s *Sources) Ports() (lo, hi int) { return s.portLo, s.portHi }

// First and Last return the first and last address.
func (s *Sources) First() netip.Addr { return s.addrs[0] }

// Last returns the last address.
func (s *Sources) Last() netip.Addr { return s.addrs[len(s.addrs)-1] }

// At returns pair i (0 <= i < Size).
func (s *Sources) At(i int) (ip [4]byte, port int) {
	n := len(s.addrs)
	return s.addrs[i%n].As4(), s.portLo + i/n
}

// String describes the space, e.g. "127.42.0.1-127.42.0.45 x ports 10000-32767".
func (s *Sources) String() string {
	return fmt.Sprintf("%s-%s (%d addresses) x ports %d-%d", s.First(), s.Last(), len(s.addrs), s.portLo, s.portHi)
}

// DefaultPorts picks explicit source ports outside the kernel's ephemeral
// range [ephLo, ephHi]: a port bound explicitly on any address is skipped by
// every auto-port connect on the machine, so explicit ports inside that
// range would starve other programs of ephemeral ports. Below the range
// (from 10000) is preferred, then above it.
func DefaultPorts(ephLo, ephHi int) (lo, hi int) {
	const floor, minSpan = 10000, 10000
	if ephLo-1-floor+1 >= minSpan {
		return floor, ephLo - 1
	}
	if 65535-ephHi >= minSpan {
		return ephHi + 1, 65535
	}
	return floor, 60999 // no room outside: overlap (documented)
}

// RandomLoopbackBase returns 127.R.0.1 with R in [16, 240): a fresh
// address block per run, so a run never meets the TIME_WAIT sockets its
// predecessor left on the same (address, port) pairs.
func RandomLoopbackBase() netip.Addr {
	return netip.AddrFrom4([4]byte{127, byte(16 + rand.IntN(224)), 0, 1})
}
