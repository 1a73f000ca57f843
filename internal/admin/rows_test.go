package admin

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/poolmgr/poolmgr/internal/pgproto"
)

// msg is one decoded backend message.
type msg struct {
	typ  byte
	body []byte
}

func splitMessages(t *testing.T, b []byte) []msg {
	t.Helper()
	var out []msg
	for len(b) > 0 {
		typ, total, ok, err := pgproto.Frame(b, 1<<20)
		if err != nil || !ok {
			t.Fatalf("bad framing at %q: ok=%v err=%v", b, ok, err)
		}
		out = append(out, msg{typ, b[pgproto.HeaderLen:total]})
		b = b[total:]
	}
	return out
}

type field struct {
	name string
	oid  uint32
	size int16
	mod  int32
	fmt  int16
}

func decodeRowDescription(t *testing.T, b []byte) []field {
	t.Helper()
	n := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	var out []field
	for i := 0; i < n; i++ {
		j := 0
		for b[j] != 0 {
			j++
		}
		f := field{name: string(b[:j])}
		b = b[j+1:]
		f.oid = binary.BigEndian.Uint32(b[6:])
		f.size = int16(binary.BigEndian.Uint16(b[10:]))
		f.mod = int32(binary.BigEndian.Uint32(b[12:]))
		f.fmt = int16(binary.BigEndian.Uint16(b[16:]))
		b = b[18:]
		out = append(out, f)
	}
	if len(b) != 0 {
		t.Fatalf("RowDescription: %d trailing bytes", len(b))
	}
	return out
}

// decodeDataRow returns the values; NULL is returned as nil.
func decodeDataRow(t *testing.T, b []byte) []*string {
	t.Helper()
	n := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	out := make([]*string, n)
	for i := 0; i < n; i++ {
		l := int32(binary.BigEndian.Uint32(b))
		b = b[4:]
		if l < 0 {
			continue
		}
		s := string(b[:l])
		out[i] = &s
		b = b[l:]
	}
	if len(b) != 0 {
		t.Fatalf("DataRow: %d trailing bytes", len(b))
	}
	return out
}

func TestAppendResult(t *testing.T) {
	r := NewResult("name", "count:int", "ratio:num")
	r.Add("a", 42, 0.5)
	r.Add(nil, int64(-1), nil)
	r.Add("ü", uint64(1<<63), true)
	msgs := splitMessages(t, AppendResult(nil, r))
	if len(msgs) != 5 {
		t.Fatalf("%d messages, want RowDescription + 3 DataRows + CommandComplete", len(msgs))
	}
	if msgs[0].typ != pgproto.MsgRowDescription {
		t.Fatalf("first message %q", msgs[0].typ)
	}
	fields := decodeRowDescription(t, msgs[0].body)
	want := []field{{"name", OIDText, -1, -1, 0}, {"count", OIDInt8, 8, -1, 0}, {"ratio", OIDNumeric, -1, -1, 0}}
	if len(fields) != len(want) {
		t.Fatalf("fields %+v", fields)
	}
	for i := range want {
		if fields[i] != want[i] {
			t.Errorf("field %d = %+v, want %+v", i, fields[i], want[i])
		}
	}
	str := func(p *string) string {
		if p == nil {
			return "NULL"
		}
		return *p
	}
	for i, wantRow := range [][]string{{"a", "42", "0.5"}, {"NULL", "-1", "NULL"}, {"ü", "9223372036854775808", "1"}} {
		m := msgs[1+i]
		if m.typ != pgproto.MsgDataRow {
			t.Fatalf("message %d is %q", 1+i, m.typ)
		}
		vals := decodeDataRow(t, m.body)
		for j, w := range wantRow {
			if str(vals[j]) != w {
				t.Errorf("row %d col %d = %s, want %s", i, j, str(vals[j]), w)
			}
		}
	}
	if m := msgs[4]; m.typ != pgproto.MsgCommandComplete || string(m.body) != "SHOW\x00" {
		t.Errorf("CommandComplete = %q %q", m.typ, m.body)
	}
}

func TestAppendResultTagAndEmpty(t *testing.T) {
	r := NewResult("x")
	r.Tag = "PAUSE"
	msgs := splitMessages(t, AppendResult(nil, r))
	if len(msgs) != 2 || string(msgs[1].body) != "PAUSE\x00" {
		t.Fatalf("messages %+v", msgs)
	}
}

func TestAddWrongArity(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("Add with the wrong number of values did not panic")
		}
	}()
	NewResult("a", "b").Add("only one")
}

func TestFormatValue(t *testing.T) {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		v    any
		want string
		null bool
	}{
		{"s", "s", false}, {7, "7", false}, {int64(-7), "-7", false}, {uint32(7), "7", false},
		{1.25, "1.25", false}, {false, "0", false}, {true, "1", false}, {nil, "", true},
		{ts, "2026-01-02 03:04:05 UTC", false}, {time.Time{}, "", true}, {1500 * time.Millisecond, "1.5", false},
	} {
		got, null := FormatValue(tc.v)
		if got != tc.want || null != tc.null {
			t.Errorf("FormatValue(%#v) = %q, %v; want %q, %v", tc.v, got, null, tc.want, tc.null)
		}
	}
}
