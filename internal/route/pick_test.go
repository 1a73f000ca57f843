package route

import (
	"fmt"
	"math"
	"testing"
)

func cands(n int) []Candidate {
	cs := make([]Candidate, n)
	for i := range cs {
		cs[i] = Candidate{ID: fmt.Sprintf("127.0.0.1:%d", 20001+i)}
	}
	return cs
}

func TestRoundRobinEven(t *testing.T) {
	p := NewPicker(1)
	cs := cands(3)
	counts := make([]int, 3)
	for range 3000 {
		counts[p.Pick(RoundRobin, cs, nil)]++
	}
	for i, c := range counts {
		if c != 1000 {
			t.Fatalf("candidate %d got %d of 3000, want 1000", i, c)
		}
	}
}

func TestRandomSpread(t *testing.T) {
	p := NewPicker(42)
	cs := cands(4)
	counts := make([]int, 4)
	const N = 40000
	for range N {
		counts[p.Pick(Random, cs, nil)]++
	}
	for i, c := range counts {
		if math.Abs(float64(c)-N/4) > N/4*0.05 {
			t.Fatalf("candidate %d got %d of %d: not uniform", i, c, N)
		}
	}
}

func TestLeastConnPicksFewestAndRotatesTies(t *testing.T) {
	p := NewPicker(1)
	cs := cands(3)
	cs[0].Busy, cs[1].Busy, cs[2].Busy = 5, 1, 3
	for range 10 {
		if got := p.Pick(LeastConn, cs, nil); got != 1 {
			t.Fatalf("least_conn picked %d, want 1", got)
		}
	}
	cs[0].Busy, cs[1].Busy, cs[2].Busy = 2, 2, 2
	counts := make([]int, 3)
	for range 300 {
		counts[p.Pick(LeastConn, cs, nil)]++
	}
	for i, c := range counts {
		if c != 100 {
			t.Fatalf("tie %d chosen %d of 300 times, want 100 (fair ties)", i, c)
		}
	}
}

func TestHashStableAndMinimalMovement(t *testing.T) {
	p := NewPicker(1)
	cs := cands(4)
	const N = 4000
	before := make([]string, N)
	for k := range N {
		key := []byte(fmt.Sprintf("10.0.%d.%d", k/256, k%256))
		i := p.Pick(Hash, cs, key)
		if j := p.Pick(Hash, cs, key); j != i {
			t.Fatalf("hash not stable for %s", key)
		}
		before[k] = cs[i].ID
	}
	// Remove candidate 2: only keys that were on it may move.
	removed := cs[2].ID
	less := append(append([]Candidate{}, cs[:2]...), cs[3:]...)
	moved, share := 0, 0
	for k := range N {
		key := []byte(fmt.Sprintf("10.0.%d.%d", k/256, k%256))
		got := less[p.Pick(Hash, less, key)].ID
		if before[k] == removed {
			share++
			continue
		}
		if got != before[k] {
			moved++
		}
	}
	if moved != 0 {
		t.Fatalf("%d keys moved that were not on the removed backend", moved)
	}
	if share < N/4*8/10 || share > N/4*12/10 {
		t.Fatalf("removed backend held %d of %d keys: distribution uneven", share, N)
	}
}

func TestEmptyAndSingle(t *testing.T) {
	p := NewPicker(1)
	if p.Pick(RoundRobin, nil, nil) != -1 {
		t.Fatal("empty list must give -1")
	}
	for _, a := range []Algo{LeastConn, RoundRobin, Random, Hash} {
		if p.Pick(a, cands(1), []byte("k")) != 0 {
			t.Fatalf("%v: single candidate not chosen", a)
		}
	}
}

func BenchmarkPickLeastConn(b *testing.B) {
	p := NewPicker(1)
	cs := cands(3)
	b.ReportAllocs()
	for b.Loop() {
		p.Pick(LeastConn, cs, nil)
	}
}

func BenchmarkPickHash(b *testing.B) {
	p := NewPicker(1)
	cs := cands(3)
	key := []byte("127.0.0.1")
	b.ReportAllocs()
	for b.Loop() {
		p.Pick(Hash, cs, key)
	}
}
