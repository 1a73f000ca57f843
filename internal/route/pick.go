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
		for i, c := range cs {
			var h maphash.Hash
			h.SetSeed(p.seed)
			h.Write(key)
			h.WriteByte(0)
			h.WriteString(c.ID)
			if s := h.Sum64(); i == 0 || s > bestScore {
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
