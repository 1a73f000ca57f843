package pgproto_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/poolmgr/poolmgr/internal/pgproto"
)

// Seeds beyond testdata/fuzz/<FuzzName>/ are added in code so the targets
// work even without the corpus directory.

func FuzzStartupFrame(f *testing.F) {
	f.Add(pgproto.AppendStartupMessage(nil, "user", "alice", "database", "app"))
	f.Add(pgproto.AppendCancelRequest(nil, 1, 2))
	f.Add([]byte{0, 0, 0, 8, 4, 210, 22, 47})
	f.Add([]byte{0, 0, 0, 3})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 3, 0, 0})
	f.Fuzz(func(t *testing.T, buf []byte) {
		n, code, body, err := pgproto.StartupFrame(buf)
		if err != nil {
			if n != 0 || body != nil {
				t.Fatalf("error %v with n=%d body=%q", err, n, body)
			}
			if !errors.Is(err, pgproto.ErrStartupTooShort) && !errors.Is(err, pgproto.ErrStartupTooLong) {
				t.Fatalf("unexpected error %v", err)
			}
			// The error depends only on the length word: more bytes do not change it.
			if _, _, _, err2 := pgproto.StartupFrame(append(bytes.Clone(buf), 0, 0, 0, 0)); !errors.Is(err2, err) {
				t.Fatalf("error changed with more bytes: %v then %v", err, err2)
			}
			return
		}
		if n == 0 {
			// More bytes needed: the length word says so.
			if len(buf) >= 4 {
				l := int(binary.BigEndian.Uint32(buf))
				if l <= len(buf) && len(buf) >= 8 {
					t.Fatalf("n=0 with a complete packet (length %d, have %d)", l, len(buf))
				}
				if len(buf) >= 8 && code != binary.BigEndian.Uint32(buf[4:]) {
					t.Fatalf("partial: code %d, buf says %d", code, binary.BigEndian.Uint32(buf[4:]))
				}
			}
			return
		}
		if n < 8 || n > pgproto.MaxStartupPacket || n > len(buf) {
			t.Fatalf("n=%d out of range (have %d)", n, len(buf))
		}
		if int(binary.BigEndian.Uint32(buf)) != n {
			t.Fatalf("n=%d, length word %d", n, binary.BigEndian.Uint32(buf))
		}
		if code != binary.BigEndian.Uint32(buf[4:]) || !bytes.Equal(body, buf[8:n]) {
			t.Fatalf("code/body mismatch")
		}
		// The same packet alone, and every prefix of it.
		n2, code2, body2, err2 := pgproto.StartupFrame(buf[:n])
		if n2 != n || code2 != code || !bytes.Equal(body2, body) || err2 != nil {
			t.Fatalf("packet alone: %d %d %v", n2, code2, err2)
		}
		for k := 0; k < n; k++ {
			if m, _, _, err := pgproto.StartupFrame(buf[:k]); m != 0 || err != nil {
				t.Fatalf("prefix %d of a valid packet: n=%d err=%v", k, m, err)
			}
		}
	})
}

func FuzzStartupParams(f *testing.F) {
	f.Add([]byte("user\x00alice\x00database\x00app\x00\x00"))
	f.Add([]byte("\x00"))
	f.Add([]byte(""))
	f.Add([]byte("user\x00alice\x00"))
	f.Add([]byte("user\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, body []byte) {
		var kv []string
		err := pgproto.StartupParams(body, func(k, v []byte) {
			if len(k) == 0 {
				t.Fatal("empty key reported")
			}
			if bytes.IndexByte(k, 0) >= 0 || bytes.IndexByte(v, 0) >= 0 {
				t.Fatal("NUL inside a key or value")
			}
			kv = append(kv, string(k), string(v))
		})
		if err != nil {
			if !errors.Is(err, pgproto.ErrBadStartup) {
				t.Fatalf("unexpected error %v", err)
			}
			// A body ending without the terminator never parses.
			return
		}
		// Accepted: re-encoding the pairs gives back the exact body.
		var re []byte
		for _, s := range kv {
			re = append(append(re, s...), 0)
		}
		re = append(re, 0)
		if !bytes.Equal(re, body) {
			t.Fatalf("re-encoded %q, body %q", re, body)
		}
		// And it frames as a startup packet.
		pkt := pgproto.AppendStartupMessage(nil, kv...)
		n, _, b2, err := pgproto.StartupFrame(pkt)
		if len(pkt) <= pgproto.MaxStartupPacket && (err != nil || n != len(pkt) || !bytes.Equal(b2, body)) {
			t.Fatalf("AppendStartupMessage/StartupFrame: n=%d err=%v", n, err)
		}
	})
}

// FuzzScanner feeds data in chunks whose sizes come from cuts (one byte per
// chunk size, 0 meaning 1). Invariants: no panic; Next always makes progress;
// everything is consumed unless an error is reported; the message starts
// (offset, type, body length) and the error position are the same as for
// the unchunked stream.
func FuzzScanner(f *testing.F) {
	stream, _ := validStream(f)
	f.Add(stream, []byte{1, 2, 3, 4, 5, 6, 7})
	f.Add(stream, []byte{})
	f.Add([]byte{'Q', 0, 0, 0, 3}, []byte{1})
	f.Add([]byte{'Q', 0, 0, 0, 9, 'a', 'b'}, []byte{3, 1})
	f.Add([]byte{'Q', 0, 0, 0, 9, 'a', 'b'}, []byte{3, 1, 0xff})
	f.Fuzz(func(t *testing.T, data, cuts []byte) {
		var sizes []int
		for _, c := range cuts {
			sizes = append(sizes, max(int(c), 1))
		}
		ref := scanChunks(t, data, nil, 0)
		got := scanChunks(t, data, sizes, 0)
		if ref.err == nil && ref.consumed != len(data) {
			t.Fatalf("whole: consumed %d of %d without error", ref.consumed, len(data))
		}
		if got.err == nil && got.consumed != len(data) {
			t.Fatalf("chunked: consumed %d of %d without error", got.consumed, len(data))
		}
		if !sameScan(ref, got) {
			t.Fatalf("chunking %v changed the result:\nwhole   %v err %v at %d\nchunked %v err %v at %d",
				sizes, ref.events, ref.err, ref.errOff, got.events, got.err, got.errOff)
		}
		// Message starts tile the consumed stream.
		next := 0
		for _, ev := range ref.events {
			if ev.off != next {
				t.Fatalf("message at %d, expected one at %d", ev.off, next)
			}
			next = ev.off + 5 + ev.blen
		}
		// With a Max, a message above it is an error and nothing else changes before it.
		const lim = 64
		lr := scanChunks(t, data, sizes, lim)
		for i, ev := range lr.events {
			if ev.blen+5 > lim {
				t.Fatalf("message of %d bytes passed Max %d", ev.blen+5, lim)
			}
			if i >= len(ref.events) || ev != ref.events[i] {
				t.Fatalf("Max changed message %d", i)
			}
		}
	})
}
