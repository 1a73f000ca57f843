package storm

import (
	"testing"

	"github.com/poolmgr/poolmgr/internal/pgproto"
)

// FuzzClientFeed feeds arbitrary server bytes, split at an arbitrary point,
// to a client in each phase: no panic, no unbounded buffering, and an
// error always ends the client.
func FuzzClientFeed(f *testing.F) {
	f.Add(uint8(PhaseAuth), uint16(3), loginStream())
	f.Add(uint8(PhaseQuery), uint16(100), queryStream())
	f.Add(uint8(PhaseAuth), uint16(5), pgproto.AppendAuth(nil, 10, []byte("SCRAM-SHA-256\x00\x00")))
	f.Add(uint8(PhaseAuth), uint16(0), pgproto.AppendAuth(nil, 5, []byte{1, 2, 3, 4}))
	f.Add(uint8(PhaseIdle), uint16(1), []byte{'E', 0, 0, 0, 4})
	f.Fuzz(func(t *testing.T, phase uint8, cut uint16, data []byte) {
		p := NewProto(Login{User: "u", Password: "pw", Database: "d", Query: "SELECT 1"}, nil, nil)
		p.maxBody = 4096
		c := Client{phase: Phase(phase % uint8(PhaseDone+1))}
		k := int(cut) % (len(data) + 1)
		for _, part := range [][]byte{data[:k], data[k:]} {
			res := c.Feed(p, part)
			if res.Err != nil && c.Phase() != PhaseDone {
				t.Fatalf("error %v left the client in phase %s", res.Err, c.Phase())
			}
			if cap(c.acc) > p.maxBody {
				t.Fatalf("buffered %d bytes, limit %d", cap(c.acc), p.maxBody)
			}
		}
	})
}
