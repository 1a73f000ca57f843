package route

import (
	"hash/maphash"
	"math/rand/v2"
)

// Algo is a replica-selection algorithm.
type Algo uint8

// Algorithms.
const (
	LeastConn Algo = iota
	RoundRobin
	Random
	Hash
)

// ParseAlgo maps a config value to an Algo (least_conn for unknown values).
func ParseAlgo(s string) Algo {
	switch s {
	case "round_robin":
		return RoundRobin
	case "random":
		return Random
	case "hash":
		return Hash
	}
	return LeastConn
}

func (a Algo) String() string {
	return [...]string{"least_conn", "round_robin", "random", "hash"}[a]
}

// Candidate is one backend that may serve a read.
type Candidate struct {
	ID   string // stable identity (the backend address) for hashing
	Busy int    // server connections currently running a transaction
}

// Picker chooses among candidates. One Picker per loop: it is not safe for
// concurrent use.
type Picker struct {
	rr   uint32
	rnd  *rand.Rand
	seed maphash.Seed
}

// NewPicker returns a Picker; seed makes random choices reproducible in tests.
func NewPicker(seed uint64) *Picker {
	return &Picker{rnd: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), seed: hashSeed}
}

// hashSeed is shared by all pickers of the process so that every loop maps a
// key to the same backend.
var hashSeed = maphash.MakeSeed()

// Pick returns the index of the chosen candidate (-1 when there is none).
// key is used by Hash only.
func (p *Picker) Pick(a Algo, cs []Candidate, key []byte) int {
	n := len(cs)
	if n == 0 {
		return -1
	}
	if n == 1 {
		return 0
	}
	switch a {
	case RoundRobin:
		p.rr++
		return int(p.rr % uint32(n))
	case Random:
		return p.rnd.IntN(n)
	case Hash:
		best, bestScore := 0, uint64(0)
		hk := maphash.Bytes(p.seed, key)
		for i, c := range cs {
			// Rendezvous: the highest score of (key, backend) wins; the
			// scores are mixed so similar backend names score independently.
			s := mix64(hk ^ mix64(maphash.String(p.seed, c.ID)))
			if i == 0 || s > bestScore {
				best, bestScore = i, s
			}
		}
		return best
	default: // LeastConn: fewest busy; ties broken by rotating the start
		p.rr++
		start := int(p.rr % uint32(n))
		best := start
		for k := 1; k < n; k++ {
			i := (start + k) % n
			if cs[i].Busy < cs[best].Busy {
				best = i
			}
		}
		return best
	}
}

// mix64 is the splitmix64 finalizer.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
