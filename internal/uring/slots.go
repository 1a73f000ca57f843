package uring

// SlotAllocator hands out direct-descriptor slots [0, n) from a LIFO free
// list: Get and Put are O(1) and allocate nothing (only NewSlotAllocator
// does). LIFO reuse keeps recently used table entries hot. It is not safe for
// concurrent use (one per ring, used by the ring's goroutine). Putting a slot
// that is already free panics: that is always a bookkeeping bug (a double
// close) that would otherwise hand one slot to two connections.
type SlotAllocator struct {
	free  []uint32
	inUse []uint64 // bitset, catches double Put
	n     uint32
}

// NewSlotAllocator returns an allocator over slots [0, n), all free; Get
// returns 0 first, then 1, and so on.
func NewSlotAllocator(n uint32) *SlotAllocator {
	a := &SlotAllocator{
		free:  make([]uint32, n),
		inUse: make([]uint64, (uint64(n)+63)/64),
		n:     n,
	}
	for i := range a.free {
		a.free[i] = n - 1 - uint32(i)
	}
	return a
}

// Get takes a free slot; ok is false when none is left.
func (a *SlotAllocator) Get() (slot uint32, ok bool) {
	k := len(a.free)
	if k == 0 {
		return 0, false
	}
	slot = a.free[k-1]
	a.free = a.free[:k-1]
	a.inUse[slot/64] |= 1 << (slot % 64)
	return slot, true
}

// Reserve takes a specific free slot (e.g. the listener's) out of the pool;
// it reports false if the slot is out of range or already in use. It is
// O(free slots): use it at setup, not per connection.
func (a *SlotAllocator) Reserve(slot uint32) bool {
	if slot >= a.n || a.InUse(slot) {
		return false
	}
	for i, s := range a.free {
		if s == slot {
			copy(a.free[i:], a.free[i+1:]) // keep the order of the others
			a.free = a.free[:len(a.free)-1]
			a.inUse[slot/64] |= 1 << (slot % 64)
			return true
		}
	}
	return false
}

// Put returns slot to the pool. It panics if slot is out of range or free.
func (a *SlotAllocator) Put(slot uint32) {
	if slot >= a.n || a.inUse[slot/64]&(1<<(slot%64)) == 0 {
		panic("uring: SlotAllocator.Put of a slot that is not in use")
	}
	a.inUse[slot/64] &^= 1 << (slot % 64)
	a.free = append(a.free, slot) // within capacity: never allocates
}

// InUse reports whether slot is currently handed out.
func (a *SlotAllocator) InUse(slot uint32) bool {
	return slot < a.n && a.inUse[slot/64]&(1<<(slot%64)) != 0
}

// Free returns the number of free slots.
func (a *SlotAllocator) Free() int { return len(a.free) }

// Cap returns the total number of slots.
func (a *SlotAllocator) Cap() int { return int(a.n) }
