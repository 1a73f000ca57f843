package pgproto

import (
	"encoding/binary"
	"errors"
)

// Framing errors.
var (
	ErrBadLength   = errors.New("invalid message length")
	ErrTooLarge    = errors.New("message too large")
	ErrUnknownType = errors.New("unknown message type")
)

// Frame looks at buf for a complete regular message. It returns total=0 when
// the header is incomplete; otherwise the message type, its total length
// (header included) and whether all of it is in buf.
func Frame(buf []byte, max int) (typ byte, total int, complete bool, err error) {
	if len(buf) < HeaderLen {
		return 0, 0, false, nil
	}
	typ = buf[0]
	l := int(int32(binary.BigEndian.Uint32(buf[1:])))
	if l < 4 {
		return typ, 0, false, ErrBadLength
	}
	if max > 0 && l > max {
		return typ, 0, false, ErrTooLarge
	}
	total = l + 1
	return typ, total, len(buf) >= total, nil
}

// Scanner tracks message boundaries over a byte stream delivered in
// arbitrary chunks, without copying. Feed it each chunk; it reports where each
// message starts. It keeps only the partial header between chunks.
type Scanner struct {
	hdr    [HeaderLen]byte
	nhdr   int
	remain int // body bytes of the current message still to come
	typ    byte
	Max    int // maximum total message length; 0 = unlimited
}

// Partial reports whether part of a header is held inside the scanner (those
// bytes were consumed but not yet reported as a message start).
func (s *Scanner) Partial() bool { return s.nhdr > 0 }

// Header returns the last complete header (valid right after Next reported a start).
func (s *Scanner) Header() []byte { return s.hdr[:] }

// Reset forgets any partial state.
func (s *Scanner) Reset() { s.nhdr, s.remain, s.typ = 0, 0, 0 }

// Skip consumes k body bytes of the current message that the caller took
// itself (k <= Remain()).
func (s *Scanner) Skip(k int) { s.remain -= k }

// InMessage reports whether the scanner is in the middle of a message.
func (s *Scanner) InMessage() bool { return s.remain > 0 || s.nhdr > 0 }

// Type returns the type of the message currently being scanned.
func (s *Scanner) Type() byte { return s.typ }

// Remain returns how many body bytes of the current message are still expected.
func (s *Scanner) Remain() int { return s.remain }

// Next consumes bytes from b. It returns how many bytes were consumed (n), and
// start=true when those bytes completed a header (a new message of type typ and
// body length bodyLen begins; the header's last byte is b[n-1]). When start is
// false, the n bytes were body bytes of the current message (or part of a header).
func (s *Scanner) Next(b []byte) (n int, start bool, typ byte, bodyLen int, err error) {
	if s.remain > 0 {
		n = min(s.remain, len(b))
		s.remain -= n
		return n, false, s.typ, 0, nil
	}
	// Header.
	if s.nhdr == 0 && len(b) >= HeaderLen {
		l := int(int32(binary.BigEndian.Uint32(b[1:])))
		if l < 4 {
			return 0, false, b[0], 0, ErrBadLength
		}
		if s.Max > 0 && l+1 > s.Max {
			return 0, false, b[0], 0, ErrTooLarge
		}
		copy(s.hdr[:], b[:HeaderLen])
		s.typ = b[0]
		s.remain = l - 4
		return HeaderLen, true, s.typ, l - 4, nil
	}
	k := copy(s.hdr[s.nhdr:], b)
	s.nhdr += k
	if s.nhdr < HeaderLen {
		return k, false, 0, 0, nil
	}
	s.nhdr = 0
	l := int(int32(binary.BigEndian.Uint32(s.hdr[1:])))
	if l < 4 {
		return k, false, s.hdr[0], 0, ErrBadLength
	}
	if s.Max > 0 && l+1 > s.Max {
		return k, false, s.hdr[0], 0, ErrTooLarge
	}
	s.typ = s.hdr[0]
	s.remain = l - 4
	return k, true, s.typ, l - 4, nil
}
