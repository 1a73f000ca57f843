package uring

// user_data layout (64 bits), packed from indices, never from Go pointers:
//
//	bits 63..56  op    (8 bits: what the engine submitted)
//	bits 55..32  gen   (24 bits: generation of the slot, to drop stale CQEs)
//	bits 31..0   slot  (32 bits: connection / direct-descriptor slot)
//
// A CQE for a slot that was closed and reused carries the old generation and
// can be recognised and ignored. Generations wrap at 1<<24.
const (
	UserDataGenBits  = 24
	UserDataGenMask  = 1<<UserDataGenBits - 1
	userDataGenShift = 32
	userDataOpShift  = 56
)

// PackUserData packs op, slot and the low 24 bits of gen into a user_data.
func PackUserData(op uint8, slot uint32, gen uint32) uint64 {
	return uint64(op)<<userDataOpShift | uint64(gen&UserDataGenMask)<<userDataGenShift | uint64(slot)
}

// UnpackUserData is the inverse of PackUserData.
func UnpackUserData(ud uint64) (op uint8, slot uint32, gen uint32) {
	return uint8(ud >> userDataOpShift), uint32(ud), uint32(ud>>userDataGenShift) & UserDataGenMask
}
