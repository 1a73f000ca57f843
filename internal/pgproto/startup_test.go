package pgproto_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/poolmgr/poolmgr/internal/pgproto"
)

func pkt(length uint32, code uint32, body []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, length)
	b = binary.BigEndian.AppendUint32(b, code)
	return append(b, body...)
}

func TestStartupFrame(t *testing.T) {
	good := pgproto.AppendStartupMessage(nil, "user", "alice", "database", "app")
	cases := []struct {
		name string
		buf  []byte
		n    int
		code uint32
		body []byte
		err  error
	}{
		{"empty", nil, 0, 0, nil, nil},
		{"3 bytes", []byte{0, 0, 0}, 0, 0, nil, nil},
		{"length only", good[:4], 0, 0, nil, nil},
		{"length + 3", good[:7], 0, 0, nil, nil},
		{"code, body incomplete", good[:10], 0, pgproto.ProtocolVersion3, nil, nil},
		{"one short", good[:len(good)-1], 0, pgproto.ProtocolVersion3, nil, nil},
		{"complete", good, len(good), pgproto.ProtocolVersion3, good[8:], nil},
		{"complete + more", append(bytes.Clone(good), 'Q', 0, 0), len(good), pgproto.ProtocolVersion3, good[8:], nil},
		{"length 3", []byte{0, 0, 0, 3}, 0, 0, nil, pgproto.ErrStartupTooShort},
		{"length 0", []byte{0, 0, 0, 0}, 0, 0, nil, pgproto.ErrStartupTooShort},
		{"length 7", []byte{0, 0, 0, 7, 1, 2, 3}, 0, 0, nil, pgproto.ErrStartupTooShort},
		{"length 8", pkt(8, pgproto.CodeSSL, nil), 8, pgproto.CodeSSL, []byte{}, nil},
		{"negative", []byte{0x80, 0, 0, 0}, 0, 0, nil, pgproto.ErrStartupTooShort},
		{"max", pkt(pgproto.MaxStartupPacket, pgproto.ProtocolVersion3, make([]byte, pgproto.MaxStartupPacket-8)), pgproto.MaxStartupPacket, pgproto.ProtocolVersion3, make([]byte, pgproto.MaxStartupPacket-8), nil},
		{"max+1", []byte{0, 0, 0x27, 0x15}, 0, 0, nil, pgproto.ErrStartupTooLong}, // PostgreSQL allows 10000 + the 4-byte length
		{"20000", []byte{0, 0, 0x4e, 0x20}, 0, 0, nil, pgproto.ErrStartupTooLong},
		{"cancel", pgproto.AppendCancelRequest(nil, 7, 9), 16, pgproto.CodeCancel, []byte{0, 0, 0, 7, 0, 0, 0, 9}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n, code, body, err := pgproto.StartupFrame(tc.buf)
			if !errors.Is(err, tc.err) || (err == nil) != (tc.err == nil) {
				t.Fatalf("err %v, want %v", err, tc.err)
			}
			if n != tc.n || (n > 0 && code != tc.code) || !bytes.Equal(body, tc.body) {
				t.Fatalf("got n=%d code=%d body=%q, want n=%d code=%d body=%q", n, code, body, tc.n, tc.code, tc.body)
			}
			if tc.code != 0 && n == 0 && err == nil && code != tc.code {
				t.Fatalf("partial: code %d, want %d", code, tc.code)
			}
		})
	}
}

func TestStartupParams(t *testing.T) {
	type kv struct{ k, v string }
	collect := func(body []byte) ([]kv, error) {
		var out []kv
		err := pgproto.StartupParams(body, func(k, v []byte) { out = append(out, kv{string(k), string(v)}) })
		return out, err
	}
	ok := []struct {
		body string
		want []kv
	}{
		{"\x00", nil},
		{"user\x00alice\x00\x00", []kv{{"user", "alice"}}},
		{"user\x00alice\x00database\x00\x00\x00", []kv{{"user", "alice"}, {"database", ""}}},
		{"a\x00b\x00a\x00c\x00\x00", []kv{{"a", "b"}, {"a", "c"}}},
	}
	for _, tc := range ok {
		got, err := collect([]byte(tc.body))
		if err != nil {
			t.Fatalf("%q: %v", tc.body, err)
		}
		if len(got) != len(tc.want) {
			t.Fatalf("%q: got %v, want %v", tc.body, got, tc.want)
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Fatalf("%q: got %v, want %v", tc.body, got, tc.want)
			}
		}
	}
	for _, body := range []string{
		"",                              // no terminator at all
		"user\x00alice\x00",             // missing final terminator
		"user\x00alice",                 // value not terminated
		"user\x00",                      // key without value
		"user",                          // key not terminated
		"user\x00alice\x00\x00\x00",     // bytes after the terminator
		"\x00\x00",                      // bytes after the terminator
		"user\x00alice\x00\x00trailing", // bytes after the terminator
	} {
		if _, err := collect([]byte(body)); !errors.Is(err, pgproto.ErrBadStartup) {
			t.Errorf("%q: err %v, want ErrBadStartup", body, err)
		}
	}
}

func TestCancelKeys(t *testing.T) {
	b := pgproto.AppendCancelRequest(nil, 0xdeadbeef, 0x01020304)
	n, code, body, err := pgproto.StartupFrame(b)
	if err != nil || n != 16 || code != pgproto.CodeCancel {
		t.Fatalf("frame: %d %d %v", n, code, err)
	}
	pid, sec, ok := pgproto.CancelKeys(body)
	if !ok || pid != 0xdeadbeef || sec != 0x01020304 {
		t.Fatalf("keys %x %x %v", pid, sec, ok)
	}
	for _, l := range []int{0, 7, 9, 12} {
		if _, _, ok := pgproto.CancelKeys(make([]byte, l)); ok {
			t.Errorf("CancelKeys accepted a %d-byte body", l)
		}
	}
	// pgproto3 decodes it the same.
	be := pgproto3.NewBackend(bytes.NewReader(b), io.Discard)
	m, err := be.ReceiveStartupMessage()
	if err != nil {
		t.Fatal(err)
	}
	cr := m.(*pgproto3.CancelRequest)
	if cr.ProcessID != 0xdeadbeef || !bytes.Equal(cr.SecretKey, []byte{1, 2, 3, 4}) {
		t.Fatalf("pgproto3: %+v", cr)
	}
}

func TestAppendStartupMessageRoundTrip(t *testing.T) {
	b := pgproto.AppendStartupMessage([]byte("prefix"), "user", "alice", "database", "app", "application_name", "")
	if string(b[:6]) != "prefix" {
		t.Fatal("prefix clobbered")
	}
	b = b[6:]
	be := pgproto3.NewBackend(bytes.NewReader(b), io.Discard)
	m, err := be.ReceiveStartupMessage()
	if err != nil {
		t.Fatal(err)
	}
	sm := m.(*pgproto3.StartupMessage)
	if sm.ProtocolVersion != pgproto3.ProtocolVersion30 || sm.Parameters["user"] != "alice" ||
		sm.Parameters["database"] != "app" || len(sm.Parameters) != 3 {
		t.Fatalf("pgproto3 decoded %+v", sm)
	}
	// And our own decoder.
	n, code, body, err := pgproto.StartupFrame(b)
	if err != nil || n != len(b) || code != pgproto.ProtocolVersion3 {
		t.Fatalf("StartupFrame: %d %d %v", n, code, err)
	}
	var got []string
	if err := pgproto.StartupParams(body, func(k, v []byte) { got = append(got, string(k), string(v)) }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 6 || got[0] != "user" || got[5] != "" {
		t.Fatalf("params %q", got)
	}

	// pgproto3-encoded startup decodes with ours.
	enc, _ := (&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30,
		Parameters: map[string]string{"user": "bob", "database": "db"}}).Encode(nil)
	n, _, body, err = pgproto.StartupFrame(enc)
	if err != nil || n != len(enc) {
		t.Fatalf("StartupFrame(pgproto3): %d %v", n, err)
	}
	m2 := map[string]string{}
	if err := pgproto.StartupParams(body, func(k, v []byte) { m2[string(k)] = string(v) }); err != nil {
		t.Fatal(err)
	}
	if m2["user"] != "bob" || m2["database"] != "db" || len(m2) != 2 {
		t.Fatalf("got %v", m2)
	}
}
