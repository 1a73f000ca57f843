package storm

import (
	"math"
	"math/bits"
	"time"
)

// Histogram is an HDR-style log-linear histogram of non-negative int64
// values (nanoseconds here). Values below 256 are counted exactly; above,
// every power-of-two range [2^k, 2^(k+1)) is split into 128 equal
// sub-buckets, so a reported percentile is within 1/128 (0.8%) of the true
// value, over the whole int64 range, in a fixed 58 KiB array. Record does
// not allocate. A Histogram is not safe for concurrent use: give each
// worker its own and Merge them at the end.
type Histogram struct {
	counts   [histBuckets]uint64
	n        uint64
	sum      float64
	min, max int64
}

const (
	histSubBits = 8
	histSub     = 1 << histSubBits // exact values 0..255; sub-buckets per octave: histHalf
	histHalf    = histSub / 2
	histBuckets = histSub + (64-histSubBits)*histHalf
)

// histIndex maps v (>= 0) to its bucket.
func histIndex(v int64) int {
	u := uint64(v)
	if u < histSub {
		return int(u)
	}
	shift := bits.Len64(u) - histSubBits // >= 1
	top := u >> uint(shift)              // in [histHalf, histSub)
	return histSub + (shift-1)*histHalf + int(top-histHalf)
}

// histBounds returns the smallest and largest value of bucket i.
func histBounds(i int) (lo, hi int64) {
	if i < histSub {
		return int64(i), int64(i)
	}
	k := i - histSub
	shift := uint(k/histHalf + 1)
	top := uint64(k%histHalf + histHalf)
	lo64 := top << shift
	hi64 := (top+1)<<shift - 1
	if hi64 > math.MaxInt64 {
		hi64 = math.MaxInt64
	}
	return int64(lo64), int64(hi64)
}

// Record adds one value; negative values count as 0.
func (h *Histogram) Record(v int64) {
	if v < 0 {
		v = 0
	}
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.counts[histIndex(v)]++
	h.n++
	h.sum += float64(v)
}

// RecordDuration records d in nanoseconds.
func (h *Histogram) RecordDuration(d time.Duration) { h.Record(int64(d)) }

// Merge adds every value of o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
}

// Reset empties h.
func (h *Histogram) Reset() { *h = Histogram{} }

// Count returns the number of recorded values.
func (h *Histogram) Count() int64 { return int64(h.n) }

// Min returns the smallest recorded value (0 when empty).
func (h *Histogram) Min() int64 { return h.min }

// Max returns the largest recorded value (0 when empty).
func (h *Histogram) Max() int64 { return h.max }

// Mean returns the exact mean (0 when empty).
func (h *Histogram) Mean() float64 {
	if h.n == 0 {
		return 0
	}
	return h.sum / float64(h.n)
}

// Percentile returns the value at percentile p (0..100): the highest value
// of the bucket holding the ceil(p/100*count)-th smallest value, clamped to
// [Min, Max]. Percentile(0) is Min, Percentile(100) is Max; 0 when empty.
func (h *Histogram) Percentile(p float64) int64 {
	if h.n == 0 {
		return 0
	}
	if p <= 0 {
		return h.min
	}
	if p >= 100 {
		return h.max
	}
	rank := uint64(math.Ceil(p / 100 * float64(h.n)))
	if rank < 1 {
		rank = 1
	}
	var cum uint64
	for i, c := range h.counts {
		if c == 0 {
			continue
		}
		cum += c
		if cum >= rank {
			_, hi := histBounds(i)
			return min(max(hi, h.min), h.max)
		}
	}
	return h.max
}

// sustainedRate returns the login rate between the moments 10% and 90% of
// the logins counted in perSec (logins completed in each second of the
// connect phase) had completed, interpolating linearly inside a second, and
// the smallest count of a second before the last one (0 with fewer than
// three seconds: no full second to judge).
func sustainedRate(perSec []int64) (rate float64, minFull int64) {
	var total int64
	for _, n := range perSec {
		total += n
	}
	if total == 0 {
		return 0, 0
	}
	// at returns the time (s) when the cumulative count reached x.
	at := func(x float64) float64 {
		var cum float64
		for i, n := range perSec {
			if n > 0 && cum+float64(n) >= x {
				return float64(i) + (x-cum)/float64(n)
			}
			cum += float64(n)
		}
		return float64(len(perSec))
	}
	lo, hi := 0.1*float64(total), 0.9*float64(total)
	if dt := at(hi) - at(lo); dt > 0 {
		rate = (hi - lo) / dt
	}
	if len(perSec) >= 3 {
		minFull = perSec[0]
		for _, n := range perSec[:len(perSec)-1] {
			minFull = min(minFull, n)
		}
	}
	return rate, minFull
}
