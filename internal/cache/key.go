package cache

import (
	"encoding/binary"
	"hash/maphash"
)

// Key identifies a cached response: 128 bits, two independent 64-bit
// maphash sums of the parts fed to a KeyBuilder.
type Key struct{ Hi, Lo uint64 }

// The two seeds are random per process: keys never leave the process, and
// nobody outside can precompute inputs that collide. With two independent
// 64-bit sums, a collision among n live keys has probability about
// n²/2^129 (1e-25 for ten million keys).
var seedHi, seedLo = maphash.MakeSeed(), maphash.MakeSeed()

// keyBufKeep is the largest buffer a KeyBuilder keeps across Reset; a
// larger one (a request with huge parameters) is released.
const keyBufKeep = 64 << 10

// KeyBuilder hashes the parts of a request into a Key. Each part is stored
// length-prefixed, so different sequences of parts never produce the same
// input ("ab","c" differs from "a","bc"; AddNull differs from AddString("")).
// The caller must feed everything the response depends on, in a fixed
// order, e.g.:
//
//	database, user, session-settings identity, request shape (message
//	types), query text, parameter formats, parameter values, result formats
//
// A KeyBuilder is not safe for concurrent use; keep one per event loop. Its
// zero value is ready to use, and it allocates nothing once its buffer has
// grown to the size of the largest request.
type KeyBuilder struct {
	buf []byte
}

// Reset starts a new key.
func (k *KeyBuilder) Reset() {
	if cap(k.buf) > keyBufKeep {
		k.buf = nil
	}
	k.buf = k.buf[:0]
}

// AddString adds one part.
func (k *KeyBuilder) AddString(s string) {
	k.buf = binary.AppendUvarint(k.buf, uint64(len(s))+1)
	k.buf = append(k.buf, s...)
}

// AddBytes adds one part; nil is the same as an empty slice (use AddNull
// for an SQL NULL).
func (k *KeyBuilder) AddBytes(b []byte) {
	k.buf = binary.AppendUvarint(k.buf, uint64(len(b))+1)
	k.buf = append(k.buf, b...)
}

// AddNull adds a part that differs from every string (an SQL NULL
// parameter value).
func (k *KeyBuilder) AddNull() { k.buf = append(k.buf, 0) }

// AddUint adds an integer as one part (counts, format codes, message types).
func (k *KeyBuilder) AddUint(v uint64) {
	k.buf = append(k.buf, 9)
	k.buf = binary.LittleEndian.AppendUint64(k.buf, v)
}

// Len is the number of bytes hashed so far.
func (k *KeyBuilder) Len() int { return len(k.buf) }

// Sum returns the key of the parts added since Reset. It does not change
// the builder: more parts may be added and Sum called again.
func (k *KeyBuilder) Sum() Key {
	return Key{Hi: maphash.Bytes(seedHi, k.buf), Lo: maphash.Bytes(seedLo, k.buf)}
}
