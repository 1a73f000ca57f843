// Package pgproto frames and encodes PostgreSQL v3 wire-protocol messages.
//
// Decoders never allocate: they return sub-slices of the input. Encoders are
// append-style (AppendX(dst, ...) []byte) so callers reuse their buffers.
// Limits mirror PostgreSQL's: a startup packet is at most MaxStartupPacket
// bytes; a message length is at least 4.
package pgproto
