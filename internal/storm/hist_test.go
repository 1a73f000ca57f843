package storm

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestHistBuckets(t *testing.T) {
	// Buckets are contiguous, each value maps into its own bucket's bounds.
	last := histIndex(math.MaxInt64)
	if last >= histBuckets {
		t.Fatalf("index of MaxInt64 %d >= %d buckets", last, histBuckets)
	}
	prevHi := int64(-1)
	for i := 0; i <= last; i++ {
		lo, hi := histBounds(i)
		if lo != prevHi+1 || hi < lo {
			t.Fatalf("bucket %d [%d, %d] after %d", i, lo, hi, prevHi)
		}
		if histIndex(lo) != i || histIndex(hi) != i {
			t.Fatalf("bucket %d [%d, %d]: indexes %d %d", i, lo, hi, histIndex(lo), histIndex(hi))
		}
		if lo >= histSub && float64(hi-lo+1)/float64(lo) > 1.0/float64(histHalf)+1e-12 {
			t.Fatalf("bucket %d [%d, %d] wider than 1/%d of its value", i, lo, hi, histHalf)
		}
		prevHi = hi
	}
	if prevHi != math.MaxInt64 {
		t.Fatalf("last bucket ends at %d", prevHi)
	}
}

func TestHistExactSmallValues(t *testing.T) {
	var h Histogram
	for v := int64(1); v <= 100; v++ {
		h.Record(v)
	}
	for _, tc := range []struct {
		p    float64
		want int64
	}{{0, 1}, {1, 1}, {50, 50}, {90, 90}, {99, 99}, {99.9, 100}, {100, 100}} {
		if got := h.Percentile(tc.p); got != tc.want {
			t.Errorf("p%v = %d, want %d", tc.p, got, tc.want)
		}
	}
	if h.Count() != 100 || h.Min() != 1 || h.Max() != 100 || h.Mean() != 50.5 {
		t.Fatalf("count %d min %d max %d mean %v", h.Count(), h.Min(), h.Max(), h.Mean())
	}
}

// TestHistAccuracy compares percentiles with the exact ones on skewed
// latency-like data: within 1/128 relative error.
func TestHistAccuracy(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h Histogram
	vals := make([]int64, 200000)
	for i := range vals {
		v := int64(math.Exp(r.NormFloat64()*1.5+12)) + 1 // log-normal around 160µs, long tail
		if i%1000 == 0 {
			v *= 1000
		}
		vals[i] = v
		h.Record(v)
	}
	slices.Sort(vals)
	for _, p := range []float64{1, 10, 50, 90, 99, 99.9, 99.99} {
		rank := int(math.Ceil(p / 100 * float64(len(vals))))
		exact := vals[rank-1]
		got := h.Percentile(p)
		if got < exact || float64(got-exact) > float64(exact)/histHalf+1 {
			t.Errorf("p%v = %d, exact %d (error %.3f%%)", p, got, exact, 100*float64(got-exact)/float64(exact))
		}
	}
	if h.Max() != vals[len(vals)-1] || h.Min() != vals[0] {
		t.Fatal("min/max not exact")
	}
}

func TestHistMerge(t *testing.T) {
	var a, b, all Histogram
	for i := int64(0); i < 5000; i++ {
		v := i * i * 37
		all.Record(v)
		if i%3 == 0 {
			a.Record(v)
		} else {
			b.Record(v)
		}
	}
	var m Histogram
	m.Merge(&a)
	m.Merge(&b)
	m.Merge(&Histogram{})
	if m != all {
		t.Fatal("merge differs from recording everything in one histogram")
	}
	m.Reset()
	if m.Count() != 0 || m.Percentile(50) != 0 || m.Mean() != 0 {
		t.Fatal("reset")
	}
}

func TestHistEdges(t *testing.T) {
	var h Histogram
	if h.Percentile(99) != 0 || h.Max() != 0 {
		t.Fatal("empty histogram")
	}
	h.Record(-5)
	h.RecordDuration(time.Duration(math.MaxInt64))
	if h.Min() != 0 || h.Max() != math.MaxInt64 || h.Percentile(100) != math.MaxInt64 || h.Percentile(50) != 0 {
		t.Fatalf("min %d max %d p50 %d", h.Min(), h.Max(), h.Percentile(50))
	}
	if n := testing.AllocsPerRun(100, func() { h.Record(12345) }); n != 0 {
		t.Fatalf("Record allocates %v", n)
	}
}

func TestSustainedRate(t *testing.T) {
	for _, tc := range []struct {
		per     []int64
		rate    float64
		minFull int64
	}{
		{nil, 0, 0},
		{[]int64{1000}, 1000, 0},
		{[]int64{1000, 1000, 1000, 1000, 1000}, 1000, 1000},
		// a stall in the middle lowers the sustained rate, not the peak
		{[]int64{1000, 1000, 100, 1000, 900}, 3200.0 / (4 + 500.0/900 - 0.4), 100},
	} {
		rate, minFull := sustainedRate(tc.per)
		if math.Abs(rate-tc.rate) > 1e-6*max(1, tc.rate) || minFull != tc.minFull {
			t.Errorf("sustainedRate(%v) = %.3f, %d; want %.3f, %d", tc.per, rate, minFull, tc.rate, tc.minFull)
		}
	}
}
