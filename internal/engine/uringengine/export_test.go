//go:build linux

package uringengine

// ConnsInUse returns, per loop, the slots holding a connection (armed
// accepts not counted), read on each loop's thread.
func ConnsInUse(e *Engine) []int {
	out := make([]int, len(e.loops))
	for i, lp := range e.loops {
		done := make(chan struct{})
		lp.Post(func() {
			for _, rs := range lp.rings {
				for j := range rs.conns {
					if s := rs.conns[j].state; s != stFree && s != stAccepting {
						out[i]++
					}
				}
			}
			close(done)
		})
		<-done
	}
	return out
}

// Stats is loopStats for tests.
type Stats = loopStats

// LoopStats returns each loop's counters, read on its thread.
func LoopStats(e *Engine) []Stats {
	out := make([]Stats, len(e.loops))
	for i, lp := range e.loops {
		done := make(chan struct{})
		lp.Post(func() { out[i] = lp.stats; close(done) })
		<-done
	}
	return out
}

func (s Stats) WriteBlocked() uint64 { return s.writeBlocked }
func (s Stats) ReadPauses() uint64   { return s.readPauses }
func (s Stats) Refused() uint64      { return s.refused }

// Rings returns, per loop, how many rings it has open.
func Rings(e *Engine) []int {
	out := make([]int, len(e.loops))
	for i, lp := range e.loops {
		done := make(chan struct{})
		lp.Post(func() { out[i] = len(lp.rings); close(done) })
		<-done
	}
	return out
}

// ConnsPerRing returns, for loop i, the connections held in each ring.
func ConnsPerRing(e *Engine, i int) []int {
	lp := e.loops[i]
	var out []int
	done := make(chan struct{})
	lp.Post(func() {
		for _, rs := range lp.rings {
			n := 0
			for j := range rs.conns {
				if s := rs.conns[j].state; s != stFree && s != stAccepting {
					n++
				}
			}
			out = append(out, n)
		}
		close(done)
	})
	<-done
	return out
}

// RingTrims returns, per loop, how many times an empty extra ring's buffers
// were released.
func RingTrims(e *Engine) []uint64 {
	out := make([]uint64, len(e.loops))
	for i, lp := range e.loops {
		done := make(chan struct{})
		lp.Post(func() { out[i] = lp.stats.ringTrims; close(done) })
		<-done
	}
	return out
}
