package pgproto_test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/poolmgr/poolmgr/internal/pgproto"
)

func TestFrame(t *testing.T) {
	q := pgproto.AppendQuery(nil, "select 1")
	cases := []struct {
		name     string
		buf      []byte
		max      int
		typ      byte
		total    int
		complete bool
		err      error
	}{
		{"empty", nil, 0, 0, 0, false, nil},
		{"4 bytes", q[:4], 0, 0, 0, false, nil},
		{"header", q[:5], 0, 'Q', len(q), false, nil},
		{"one short", q[:len(q)-1], 0, 'Q', len(q), false, nil},
		{"complete", q, 0, 'Q', len(q), true, nil},
		{"complete + more", append(bytes.Clone(q), 'X'), 0, 'Q', len(q), true, nil},
		{"empty body", []byte{'S', 0, 0, 0, 4}, 0, 'S', 5, true, nil},
		{"length 3", []byte{'S', 0, 0, 0, 3}, 0, 'S', 0, false, pgproto.ErrBadLength},
		{"negative", []byte{'S', 0x80, 0, 0, 4}, 0, 'S', 0, false, pgproto.ErrBadLength},
		{"at max", q, len(q) - 1, 'Q', len(q), true, nil},
		{"over max", q, len(q) - 2, 'Q', 0, false, pgproto.ErrTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			typ, total, complete, err := pgproto.Frame(tc.buf, tc.max)
			if !errors.Is(err, tc.err) || (err == nil) != (tc.err == nil) {
				t.Fatalf("err %v, want %v", err, tc.err)
			}
			if typ != tc.typ || total != tc.total || complete != tc.complete {
				t.Fatalf("got (%q, %d, %v), want (%q, %d, %v)", typ, total, complete, tc.typ, tc.total, tc.complete)
			}
		})
	}
}

// scanEvent is one message start found by a Scanner.
type scanEvent struct {
	off  int // offset of the header's first byte in the whole stream
	typ  byte
	blen int
}

type scanResult struct {
	events   []scanEvent
	consumed int
	err      error
	errOff   int // stream offset where the failing header starts
}

// scanChunks feeds stream to a Scanner in the given chunk sizes (the last
// chunk takes the rest) and records every message start.
func scanChunks(t testing.TB, stream []byte, sizes []int, max int) scanResult {
	var s pgproto.Scanner
	s.Max = max
	var r scanResult
	pos := 0
	hdrStart := -1
	for pos < len(stream) {
		size := len(stream) - pos
		if len(sizes) > 0 {
			size = min(max1(sizes[0]), size)
			sizes = sizes[1:]
		}
		chunk := stream[pos : pos+size]
		i := 0
		for i < len(chunk) {
			wasPartial := s.Partial()
			inBody := s.Remain() > 0
			n, st, typ, blen, err := s.Next(chunk[i:])
			if n < 0 || n > len(chunk)-i {
				t.Fatalf("Next consumed %d of %d", n, len(chunk)-i)
			}
			if !inBody && !wasPartial {
				hdrStart = pos + i
			}
			if err != nil {
				r.err, r.errOff = err, hdrStart
				r.consumed = pos + i + n
				return r
			}
			if n == 0 {
				t.Fatalf("Next made no progress at offset %d", pos+i)
			}
			if st {
				if typ != stream[hdrStart] {
					t.Fatalf("start at %d: type %q, stream has %q", hdrStart, typ, stream[hdrStart])
				}
				if s.Header()[0] != typ {
					t.Fatalf("Header() %q after start %q", s.Header(), typ)
				}
				if !bytes.Equal(s.Header(), stream[hdrStart:hdrStart+5]) {
					t.Fatalf("Header() %x, stream %x", s.Header(), stream[hdrStart:hdrStart+5])
				}
				if s.Remain() != blen || s.Type() != typ {
					t.Fatalf("after start: Remain %d Type %q, want %d %q", s.Remain(), s.Type(), blen, typ)
				}
				if blen > 0 != s.InMessage() {
					t.Fatalf("InMessage %v with body length %d", s.InMessage(), blen)
				}
				r.events = append(r.events, scanEvent{hdrStart, typ, blen})
			}
			i += n
		}
		pos += size
	}
	r.consumed = pos
	return r
}

func max1(n int) int {
	if n < 1 {
		return 1
	}
	return n
}

func sameScan(a, b scanResult) bool {
	if len(a.events) != len(b.events) || (a.err == nil) != (b.err == nil) || a.errOff != b.errOff {
		return false
	}
	if a.err != nil && !errors.Is(a.err, b.err) {
		return false
	}
	for i := range a.events {
		if a.events[i] != b.events[i] {
			return false
		}
	}
	return true
}

func validStream(t testing.TB) ([]byte, []scanEvent) {
	var msgs [][]byte
	add := func(b []byte) { msgs = append(msgs, b) }
	add(pgproto.AppendQuery(nil, "select 1"))
	add(pgproto.AppendSync(nil))
	add(pgproto.AppendReadyForQuery(nil, 'I'))
	add(pgproto.AppendError(nil, pgproto.SevError, "42P01", "relation does not exist"))
	add(pgproto.AppendParameterStatus(nil, "application_name", "x"))
	add(pgproto.AppendBackendKeyData(nil, 1, 2))
	add(pgproto.AppendTerminate(nil))
	dr, _ := (&pgproto3.DataRow{Values: [][]byte{bytes.Repeat([]byte("v"), 700), nil, {}}}).Encode(nil)
	add(dr)
	add(pgproto.AppendPassword(nil, []byte("pw\x00")))
	add(pgproto.AppendAuth(nil, pgproto.AuthOK, nil))
	var stream []byte
	var ev []scanEvent
	for _, m := range msgs {
		ev = append(ev, scanEvent{len(stream), m[0], len(m) - 5})
		stream = append(stream, m...)
	}
	return stream, ev
}

func TestScannerWhole(t *testing.T) {
	stream, want := validStream(t)
	r := scanChunks(t, stream, nil, 0)
	if r.err != nil || r.consumed != len(stream) {
		t.Fatalf("err %v consumed %d/%d", r.err, r.consumed, len(stream))
	}
	if !sameScan(r, scanResult{events: want}) {
		t.Fatalf("events %v, want %v", r.events, want)
	}
}

// Every chunking of a valid stream reports the same message starts.
func TestScannerChunkings(t *testing.T) {
	stream, want := validStream(t)
	ref := scanResult{events: want}
	check := func(name string, sizes []int) {
		t.Helper()
		r := scanChunks(t, stream, sizes, 0)
		if r.err != nil || r.consumed != len(stream) || !sameScan(r, ref) {
			t.Fatalf("%s: err %v consumed %d/%d events %v", name, r.err, r.consumed, len(stream), r.events)
		}
	}
	ones := make([]int, len(stream))
	for i := range ones {
		ones[i] = 1
	}
	check("1 byte", ones)
	for k := 1; k < len(stream); k++ {
		check(fmt.Sprintf("cut at %d", k), []int{k})
	}
	for _, n := range []int{2, 3, 4, 5, 6, 7, 11, 64} {
		var sizes []int
		for range len(stream)/n + 1 {
			sizes = append(sizes, n)
		}
		check(fmt.Sprintf("chunks of %d", n), sizes)
	}
	rng := rand.New(rand.NewPCG(7, 7))
	for range 2000 {
		var sizes []int
		for total := 0; total < len(stream); {
			n := 1 + rng.IntN(1+rng.IntN(80))
			sizes = append(sizes, n)
			total += n
		}
		check(fmt.Sprint(sizes), sizes)
	}
}

// Errors are reported at the same header whatever the chunking.
func TestScannerErrors(t *testing.T) {
	q := pgproto.AppendQuery(nil, "select 1")
	bad := append(bytes.Clone(q), 'Q', 0, 0, 0, 2)
	big := append(bytes.Clone(q), pgproto.AppendQuery(nil, "select 12345678901234567890")...)
	for _, tc := range []struct {
		name   string
		stream []byte
		max    int
		err    error
	}{
		{"bad length", bad, 0, pgproto.ErrBadLength},
		{"negative length", append(bytes.Clone(q), 'Q', 0xff, 0xff, 0xff, 0xff), 0, pgproto.ErrBadLength},
		{"too large", big, len(q) + 5, pgproto.ErrTooLarge},
	} {
		for k := 0; k <= len(tc.stream); k++ {
			var sizes []int
			if k > 0 {
				sizes = []int{k}
			}
			r := scanChunks(t, tc.stream, sizes, tc.max)
			if !errors.Is(r.err, tc.err) || r.errOff != len(q) || len(r.events) != 1 {
				t.Fatalf("%s cut %d: err %v at %d, events %v; want %v at %d after one message", tc.name, k, r.err, r.errOff, r.events, tc.err, len(q))
			}
		}
		// One byte at a time.
		ones := make([]int, len(tc.stream))
		for i := range ones {
			ones[i] = 1
		}
		r := scanChunks(t, tc.stream, ones, tc.max)
		if !errors.Is(r.err, tc.err) || r.errOff != len(q) {
			t.Fatalf("%s 1-byte: err %v at %d", tc.name, r.err, r.errOff)
		}
	}
}

// Scanner.Max is the total message length (header included) and a message
// of exactly Max bytes passes.
func TestScannerMax(t *testing.T) {
	q := pgproto.AppendQuery(nil, "select 1")
	if r := scanChunks(t, q, nil, len(q)); r.err != nil {
		t.Fatalf("message of exactly Max bytes refused: %v", r.err)
	}
	if r := scanChunks(t, q, nil, len(q)-1); !errors.Is(r.err, pgproto.ErrTooLarge) {
		t.Fatalf("message over Max: %v", r.err)
	}
	if r := scanChunks(t, q, []int{2}, len(q)-1); !errors.Is(r.err, pgproto.ErrTooLarge) {
		t.Fatalf("message over Max, pieced header: %v", r.err)
	}
}

func TestScannerPartialAndReset(t *testing.T) {
	var s pgproto.Scanner
	q := pgproto.AppendQuery(nil, "x")
	n, st, _, _, err := s.Next(q[:3])
	if n != 3 || st || err != nil || !s.Partial() || !s.InMessage() {
		t.Fatalf("partial header: n=%d st=%v err=%v partial=%v", n, st, err, s.Partial())
	}
	n, st, typ, blen, err := s.Next(q[3:])
	if n != 2 || !st || typ != 'Q' || blen != 2 || err != nil || s.Partial() {
		t.Fatalf("completing header: n=%d st=%v typ=%q blen=%d err=%v", n, st, typ, blen, err)
	}
	if s.Remain() != 2 {
		t.Fatalf("Remain %d", s.Remain())
	}
	s.Skip(1)
	if s.Remain() != 1 {
		t.Fatalf("Remain after Skip %d", s.Remain())
	}
	s.Reset()
	if s.InMessage() || s.Partial() || s.Remain() != 0 {
		t.Fatal("Reset left state")
	}
	// An empty chunk makes no progress and changes nothing.
	if n, st, _, _, err := s.Next(nil); n != 0 || st || err != nil || s.InMessage() {
		t.Fatalf("Next(nil): %d %v %v", n, st, err)
	}
}
