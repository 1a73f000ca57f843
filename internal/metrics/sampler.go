package metrics

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/poolmgr/poolmgr/internal/proxy"
)

// Sampler takes a Snapshot every interval and keeps the last few: the status
// page's history and rates, and the admin console's SHOW STATS averages, come
// from it. One sample costs one inspection per loop (a copy of its counters
// and a walk over its connections), off the per-query path.
type Sampler struct {
	sh       *proxy.Shared
	interval time.Duration
	keep     int
	log      *slog.Logger

	mu   sync.Mutex
	ring []*Snapshot // oldest first
}

// NewSampler returns a sampler keeping keep samples taken every interval.
func NewSampler(sh *proxy.Shared, interval time.Duration, keep int, log *slog.Logger) *Sampler {
	if keep < 2 {
		keep = 2
	}
	if log == nil {
		log = slog.Default()
	}
	return &Sampler{sh: sh, interval: interval, keep: keep, log: log}
}

// Interval returns the sampling interval.
func (s *Sampler) Interval() time.Duration { return s.interval }

// Run samples until ctx ends.
func (s *Sampler) Run(ctx context.Context) {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	// The first sample comes one interval in: the engine may not run its
	// loops yet when Run starts.
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.SampleNow()
		}
	}
}

// SampleNow takes one sample and returns it (nil if the loops did not answer).
func (s *Sampler) SampleNow() *Snapshot {
	snap, err := Take(s.sh)
	if err != nil {
		s.log.Warn("metrics sample failed", "err", err)
		return nil
	}
	s.Add(snap)
	return snap
}

// Add appends a snapshot (tests, and SampleNow).
func (s *Sampler) Add(snap *Snapshot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.ring) >= s.keep {
		copy(s.ring, s.ring[1:])
		s.ring = s.ring[:len(s.ring)-1]
	}
	s.ring = append(s.ring, snap)
}

// Latest returns the newest sample, or nil.
func (s *Sampler) Latest() *Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.ring) == 0 {
		return nil
	}
	return s.ring[len(s.ring)-1]
}

// History returns up to n newest samples, oldest first.
func (s *Sampler) History(n int) []*Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n > len(s.ring) || n <= 0 {
		n = len(s.ring)
	}
	return append([]*Snapshot(nil), s.ring[len(s.ring)-n:]...)
}

// Window returns the oldest sample at most d older than the newest, and the
// newest (both nil with fewer than two samples).
func (s *Sampler) Window(d time.Duration) (old, cur *Snapshot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.ring) < 2 {
		return nil, nil
	}
	cur = s.ring[len(s.ring)-1]
	for _, x := range s.ring[:len(s.ring)-1] {
		if cur.Time.Sub(x.Time) <= d {
			return x, cur
		}
	}
	return s.ring[len(s.ring)-2], cur
}

// Rates are per-second rates and averages between two snapshots.
type Rates struct {
	Seconds           float64 // the interval
	TPS               float64 // transactions per second
	QPS               float64 // queries per second
	AssignPerSec      float64 // servers given to clients per second
	ClientBytesPerS   float64 // received from clients
	ServerBytesPerS   float64 // received from servers
	AvgWait           time.Duration
	AvgXact           time.Duration
	AcceptedPerSec    float64
	DisconnectsPerS   float64
	WaitsInInterval   uint64
	XactsInInterval   uint64
	QueriesInInterval uint64
}

// RatesBetween computes Rates from old to cur (zero Rates if either is nil
// or they are not in order).
func RatesBetween(old, cur *Snapshot) Rates {
	var r Rates
	if old == nil || cur == nil {
		return r
	}
	dt := cur.Time.Sub(old.Time).Seconds()
	if dt <= 0 {
		return r
	}
	a, b := &old.Stats, &cur.Stats
	r.Seconds = dt
	r.TPS = float64(b.Transactions-a.Transactions) / dt
	r.QPS = float64(b.Queries-a.Queries) / dt
	r.ClientBytesPerS = float64(b.ClientBytes-a.ClientBytes) / dt
	r.ServerBytesPerS = float64(b.ServerBytes-a.ServerBytes) / dt
	r.AcceptedPerSec = float64(b.ClientsAccepted-a.ClientsAccepted) / dt
	var ca, cb uint64
	for i := range a.Closes {
		ca += a.Closes[i]
		cb += b.Closes[i]
	}
	r.DisconnectsPerS = float64(cb-ca) / dt
	r.WaitsInInterval = b.Waits - a.Waits
	if r.WaitsInInterval > 0 {
		r.AvgWait = time.Duration((b.WaitNanos - a.WaitNanos) / r.WaitsInInterval)
	}
	xa, xb := HistCount(&a.XactHist), HistCount(&b.XactHist)
	r.XactsInInterval = xb - xa
	r.AssignPerSec = float64(r.XactsInInterval) / dt
	if r.XactsInInterval > 0 {
		r.AvgXact = time.Duration((b.XactNanos - a.XactNanos) / r.XactsInInterval)
	}
	r.QueriesInInterval = b.Queries - a.Queries
	return r
}

func trimFloat(f float64, prec int) string {
	return strconv.FormatFloat(f, 'f', prec, 64)
}
