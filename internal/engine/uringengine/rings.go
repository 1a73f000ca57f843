//go:build linux

package uringengine

import (
	"fmt"

	"github.com/poolmgr/poolmgr/internal/uring"
)

// Several rings per loop. Each ring has its own registered file table of
// Options.FileSlots slots (the kernel caps one table at the soft
// RLIMIT_NOFILE), so a loop holding more clients than that spreads them over
// rings created lazily, all on the loop's thread. Ring 0 is the one the loop
// waits on and holds the server connections and refusal slots; extra rings
// hold clients only, each with a small provided-buffer ring of its own.
//
// Inside the engine a connection is named by an id: ring << ringShift | slot
// (slot: index in that ring's table). The id is what user_data carries in
// its 32-bit slot field; a proxy.Handle carries the ring in bits 63..56 and
// the slot in bits 31..0.
const (
	ringShift    = 24
	slotMask     = 1<<ringShift - 1
	maxRingCount = 256 // the Handle keeps 8 bits for the ring index
	// Extra rings hold mostly idle clients: a small buffer ring each.
	extraBufCount = 256
)

// ringState is one ring of a loop and the connections in its table.
type ringState struct {
	ring    *uring.Ring
	br      *uring.BufRing
	conns   []conn
	slots   *uring.SlotAllocator
	reserve uint32 // free slots never given to clients (ring 0: ServerSlots)
	// Extra rings only: trimRings checks that found the ring empty since a
	// client last took a slot in it (saturating); its buffers are released
	// at the second.
	emptyChecks uint8
}

// trimEvery is how many loop ticks pass between two trimRings checks.
const trimEvery = 10 // 1 s at tickInterval 100 ms

func (rs *ringState) hasClientSlot() bool { return uint32(rs.slots.Free()) > rs.reserve }

func ringOf(id uint32) int             { return int(id >> ringShift) }
func slotOf(id uint32) uint32          { return id & slotMask }
func connID(r int, slot uint32) uint32 { return uint32(r)<<ringShift | slot }

// maxRingsFor returns how many rings a loop may create for o.MaxConns
// client slots (at least 1).
func maxRingsFor(o Options) int {
	first := int64(o.FileSlots) - int64(o.RefuseSlots) - int64(o.ServerSlots)
	if o.MaxConns <= 0 || int64(o.MaxConns) <= first {
		return 1
	}
	n := 1 + (int64(o.MaxConns)-first+int64(o.FileSlots)-1)/int64(o.FileSlots)
	return int(min(n, maxRingCount))
}

// c returns connection id's state (id must be valid).
func (l *loop) c(id uint32) *conn { return &l.rings[ringOf(id)].conns[slotOf(id)] }

// connAt returns connection id's state, or nil for an id out of range.
func (l *loop) connAt(id uint32) *conn {
	r, s := ringOf(id), slotOf(id)
	if r >= len(l.rings) || s >= uint32(len(l.rings[r].conns)) {
		return nil
	}
	return &l.rings[r].conns[s]
}

// clientSlot takes a slot for a client in the lowest ring with one free
// (ring 0 keeps ServerSlots free for Dial), creating a ring when all are
// full and MaxConns allows another. Lowest first keeps the clients of a
// quieter period (after a storm left) on ring 0 with the servers: every
// extra ring with traffic costs the loop its own io_uring_enter per batch
// and an eventfd wake-up per completion batch.
func (l *loop) clientSlot() (uint32, bool) {
	for r := min(l.curRing, len(l.rings)); r < len(l.rings); r++ {
		if l.rings[r].hasClientSlot() {
			l.curRing = r
			l.rings[r].emptyChecks = 0
			s, ok := l.rings[r].slots.Get()
			return connID(r, s), ok
		}
	}
	if len(l.rings) >= l.maxRings {
		return 0, false
	}
	if err := l.addRing(); err != nil {
		l.log.Warn("io_uring: cannot create another ring; no more clients on this loop", "loop", l.id,
			"rings", len(l.rings), "err", err)
		l.maxRings = len(l.rings)
		return 0, false
	}
	l.curRing = len(l.rings) - 1
	s, ok := l.rings[l.curRing].slots.Get()
	return connID(l.curRing, s), ok
}

// addRing creates the next ring on the loop's thread: file table, buffer
// ring, and the loop's eventfd registered so its completions wake the wait
// on ring 0.
func (l *loop) addRing() (err error) {
	o := l.o
	r, err := uring.New(o.SQEntries, uring.Options{DeferTaskrun: true, CQEntries: o.CQEntries, SubmitAll: true, Clamp: true, RawWait: o.RawWait})
	if err != nil {
		return err
	}
	rs := &ringState{ring: r}
	defer func() {
		if err != nil {
			r.Close()
		}
	}()
	l.registerRingFd(r)
	if err := r.RegisterFilesSparse(o.FileSlots); err != nil {
		return fmt.Errorf("registered file table (%d slots): %w", o.FileSlots, err)
	}
	if rs.br, err = r.RegisterBufRing(bufGroup, min(o.BufCount, extraBufCount), o.BufSize); err != nil {
		return err
	}
	if err := r.RegisterEventfd(l.efd); err != nil {
		return fmt.Errorf("IORING_REGISTER_EVENTFD: %w", err)
	}
	rs.conns = make([]conn, o.FileSlots)
	rs.slots = uring.NewSlotAllocator(o.FileSlots)
	l.rings = append(l.rings, rs)
	l.log.Info("io_uring: loop opened another ring", "loop", l.id, "rings", len(l.rings), "max", l.maxRings)
	return nil
}

// trimRings gives back the receive-buffer memory (extraBufCount x BufSize,
// 4 MiB by default) of every extra ring that was empty at two checks in a
// row, so a loop that held a storm of clients returns to its idle size once
// they are gone (53 rings after 1M clients: ~210 MB of RSS). An empty ring
// has nothing in flight (a slot is freed only after its last operation
// completed, and an armed accept holds a slot), so the kernel is not copying
// into its buffers. The ring itself, its file table and its conns stay for
// the next storm; a released buffer costs one page fault per page when used
// again.
func (l *loop) trimRings() {
	for r := 1; r < len(l.rings); r++ {
		rs := l.rings[r]
		if rs.slots.Free() != rs.slots.Cap() {
			rs.emptyChecks = 0
			continue
		}
		if rs.emptyChecks < 255 {
			rs.emptyChecks++
		}
		if rs.emptyChecks != 2 {
			continue
		}
		if err := rs.br.ReleaseMemory(); err != nil {
			l.log.Warn("io_uring: cannot release an empty ring's buffers", "loop", l.id, "ring", r, "err", err)
		}
		l.stats.ringTrims++
	}
}
