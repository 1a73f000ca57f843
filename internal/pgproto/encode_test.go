package pgproto_test

import (
	"bytes"
	"encoding/binary"
	"io"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/poolmgr/poolmgr/internal/pgproto"
)

// decodeB decodes one backend message with pgproto3 and checks that it
// takes exactly the bytes given.
func decodeB(t *testing.T, b []byte) pgproto3.BackendMessage {
	t.Helper()
	if n := int(binary.BigEndian.Uint32(b[1:])) + 1; n != len(b) {
		t.Fatalf("length field says %d bytes, message has %d", n, len(b))
	}
	fe := pgproto3.NewFrontend(bytes.NewReader(b), io.Discard)
	m, err := fe.Receive()
	if err != nil {
		t.Fatalf("pgproto3 decoding %q: %v", b, err)
	}
	return m
}

func decodeF(t *testing.T, b []byte) pgproto3.FrontendMessage {
	t.Helper()
	if n := int(binary.BigEndian.Uint32(b[1:])) + 1; n != len(b) {
		t.Fatalf("length field says %d bytes, message has %d", n, len(b))
	}
	be := pgproto3.NewBackend(bytes.NewReader(b), io.Discard)
	m, err := be.Receive()
	if err != nil {
		t.Fatalf("pgproto3 decoding %q: %v", b, err)
	}
	return m
}

func TestEncodersRoundTrip(t *testing.T) {
	prefix := []byte("keep")
	app := func(f func([]byte) []byte) []byte {
		t.Helper()
		b := f(bytes.Clone(prefix))
		if !bytes.Equal(b[:4], prefix) {
			t.Fatal("encoder clobbered dst")
		}
		return b[4:]
	}

	if m, ok := decodeB(t, app(func(d []byte) []byte { return pgproto.AppendAuth(d, pgproto.AuthOK, nil) })).(*pgproto3.AuthenticationOk); !ok {
		t.Fatalf("AuthOK decoded as %T", m)
	}
	sasl := decodeB(t, app(func(d []byte) []byte { return pgproto.AppendAuth(d, pgproto.AuthSASL, []byte("SCRAM-SHA-256\x00\x00")) }))
	if m, ok := sasl.(*pgproto3.AuthenticationSASL); !ok || len(m.AuthMechanisms) != 1 || m.AuthMechanisms[0] != "SCRAM-SHA-256" {
		t.Fatalf("SASL: %#v", sasl)
	}
	cont := decodeB(t, app(func(d []byte) []byte {
		return pgproto.AppendAuth(d, pgproto.AuthSASLContinue, []byte("r=abc,s=xyz,i=4096"))
	}))
	if m, ok := cont.(*pgproto3.AuthenticationSASLContinue); !ok || string(m.Data) != "r=abc,s=xyz,i=4096" {
		t.Fatalf("SASLContinue: %#v", cont)
	}
	fin := decodeB(t, app(func(d []byte) []byte { return pgproto.AppendAuth(d, pgproto.AuthSASLFinal, []byte("v=sig")) }))
	if m, ok := fin.(*pgproto3.AuthenticationSASLFinal); !ok || string(m.Data) != "v=sig" {
		t.Fatalf("SASLFinal: %#v", fin)
	}
	md5 := decodeB(t, app(func(d []byte) []byte { return pgproto.AppendAuth(d, pgproto.AuthMD5Password, []byte{1, 2, 3, 4}) }))
	if m, ok := md5.(*pgproto3.AuthenticationMD5Password); !ok || m.Salt != [4]byte{1, 2, 3, 4} {
		t.Fatalf("MD5: %#v", md5)
	}
	ps := decodeB(t, app(func(d []byte) []byte { return pgproto.AppendParameterStatus(d, "TimeZone", "Europe/Paris") }))
	if m, ok := ps.(*pgproto3.ParameterStatus); !ok || m.Name != "TimeZone" || m.Value != "Europe/Paris" {
		t.Fatalf("ParameterStatus: %#v", ps)
	}
	psEmpty := decodeB(t, app(func(d []byte) []byte { return pgproto.AppendParameterStatus(d, "application_name", "") }))
	if m := psEmpty.(*pgproto3.ParameterStatus); m.Name != "application_name" || m.Value != "" {
		t.Fatalf("ParameterStatus empty: %#v", m)
	}
	kd := decodeB(t, app(func(d []byte) []byte { return pgproto.AppendBackendKeyData(d, 0x7fffffff, 0xfedcba98) }))
	if m, ok := kd.(*pgproto3.BackendKeyData); !ok || m.ProcessID != 0x7fffffff || !bytes.Equal(m.SecretKey, []byte{0xfe, 0xdc, 0xba, 0x98}) {
		t.Fatalf("BackendKeyData: %#v", kd)
	}
	for _, st := range []byte{'I', 'T', 'E'} {
		rq := decodeB(t, app(func(d []byte) []byte { return pgproto.AppendReadyForQuery(d, st) }))
		if m, ok := rq.(*pgproto3.ReadyForQuery); !ok || m.TxStatus != st {
			t.Fatalf("ReadyForQuery: %#v", rq)
		}
	}
	er := decodeB(t, app(func(d []byte) []byte { return pgproto.AppendError(d, pgproto.SevFatal, "08P01", "bad thing") }))
	if m, ok := er.(*pgproto3.ErrorResponse); !ok || m.Severity != "FATAL" || m.SeverityUnlocalized != "FATAL" || m.Code != "08P01" || m.Message != "bad thing" || m.Hint != "" {
		t.Fatalf("ErrorResponse: %#v", er)
	}
	erh := decodeB(t, app(func(d []byte) []byte { return pgproto.AppendErrorDetail(d, pgproto.SevError, "42000", "m", "try this") }))
	if m := erh.(*pgproto3.ErrorResponse); m.Hint != "try this" || m.Severity != "ERROR" {
		t.Fatalf("ErrorResponse hint: %#v", m)
	}
	nr := decodeB(t, app(func(d []byte) []byte { return pgproto.AppendNotice(d, "WARNING", "01000", "careful") }))
	if m, ok := nr.(*pgproto3.NoticeResponse); !ok || m.Severity != "WARNING" || m.Code != "01000" || m.Message != "careful" {
		t.Fatalf("NoticeResponse: %#v", nr)
	}
	ccm := decodeB(t, app(func(d []byte) []byte { return pgproto.AppendCommandComplete(d, "DEALLOCATE ALL") }))
	if m, ok := ccm.(*pgproto3.CommandComplete); !ok || string(m.CommandTag) != "DEALLOCATE ALL" {
		t.Fatalf("CommandComplete: %#v", ccm)
	}

	// Frontend messages.
	q := decodeF(t, app(func(d []byte) []byte { return pgproto.AppendQuery(d, "select 'é'") }))
	if m, ok := q.(*pgproto3.Query); !ok || m.String != "select 'é'" {
		t.Fatalf("Query: %#v", q)
	}
	if m, ok := decodeF(t, app(pgproto.AppendTerminate)).(*pgproto3.Terminate); !ok {
		t.Fatalf("Terminate: %#v", m)
	}
	if m, ok := decodeF(t, app(pgproto.AppendSync)).(*pgproto3.Sync); !ok {
		t.Fatalf("Sync: %#v", m)
	}
	pw := app(func(d []byte) []byte { return pgproto.AppendPassword(d, []byte("secret\x00")) })
	if m, ok := decodeF(t, pw).(*pgproto3.PasswordMessage); !ok || m.Password != "secret" {
		t.Fatalf("PasswordMessage: %#v", m)
	}
	pa := decodeF(t, app(func(d []byte) []byte {
		return pgproto.AppendParse(d, "pm_1", []byte("select $1"), []byte{0, 1, 0, 0, 0, 23})
	}))
	if m, ok := pa.(*pgproto3.Parse); !ok || m.Name != "pm_1" || m.Query != "select $1" || len(m.ParameterOIDs) != 1 || m.ParameterOIDs[0] != 23 {
		t.Fatalf("Parse: %#v", pa)
	}
	pa0 := decodeF(t, app(func(d []byte) []byte { return pgproto.AppendParse(d, "", []byte("select 1"), nil) }))
	if m := pa0.(*pgproto3.Parse); m.Name != "" || len(m.ParameterOIDs) != 0 {
		t.Fatalf("Parse without types: %#v", m)
	}
	for _, typ := range []byte{'D', 'C'} {
		tg := decodeF(t, app(func(d []byte) []byte { return pgproto.AppendTarget(d, typ, 'S', "pm_2") }))
		switch m := tg.(type) {
		case *pgproto3.Describe:
			if typ != 'D' || m.ObjectType != 'S' || m.Name != "pm_2" {
				t.Fatalf("Describe: %#v", m)
			}
		case *pgproto3.Close:
			if typ != 'C' || m.ObjectType != 'S' || m.Name != "pm_2" {
				t.Fatalf("Close: %#v", m)
			}
		default:
			t.Fatalf("target %q decoded as %T", typ, tg)
		}
	}
	// AppendBind keeps the raw rest of an original Bind.
	orig, _ := (&pgproto3.Bind{DestinationPortal: "p", PreparedStatement: "s1",
		ParameterFormatCodes: []int16{1}, Parameters: [][]byte{{0, 0, 0, 7}, nil}, ResultFormatCodes: []int16{0, 1}}).Encode(nil)
	portal, stmt, rest, ok := pgproto.BindStatement(orig[5:])
	if !ok || string(portal) != "p" || string(stmt) != "s1" {
		t.Fatalf("BindStatement: %q %q %v", portal, stmt, ok)
	}
	bd := decodeF(t, app(func(d []byte) []byte { return pgproto.AppendBind(d, portal, "pm_9", rest) }))
	if m, ok := bd.(*pgproto3.Bind); !ok || m.DestinationPortal != "p" || m.PreparedStatement != "pm_9" ||
		len(m.Parameters) != 2 || m.Parameters[1] != nil || !bytes.Equal(m.Parameters[0], []byte{0, 0, 0, 7}) ||
		len(m.ResultFormatCodes) != 2 {
		t.Fatalf("Bind: %#v", bd)
	}
}

func TestBeginFinish(t *testing.T) {
	b, off := pgproto.Begin([]byte("xx"), 'Q')
	if off != 2 {
		t.Fatalf("off %d", off)
	}
	b = pgproto.AppendCString(b, "abc")
	b = pgproto.Finish(b, off)
	if !bytes.Equal(b, []byte("xxQ\x00\x00\x00\x08abc\x00")) {
		t.Fatalf("%q", b)
	}
}

func TestDecoders(t *testing.T) {
	// ReadyStatus
	if st, ok := pgproto.ReadyStatus([]byte{'T'}); !ok || st != 'T' {
		t.Fatal("ReadyStatus")
	}
	for _, b := range [][]byte{nil, {'I', 'I'}} {
		if _, ok := pgproto.ReadyStatus(b); ok {
			t.Fatalf("ReadyStatus(%q) ok", b)
		}
	}
	// ParameterStatus from pgproto3.
	enc, _ := (&pgproto3.ParameterStatus{Name: "DateStyle", Value: "ISO, MDY"}).Encode(nil)
	k, v, ok := pgproto.ParameterStatus(enc[5:])
	if !ok || string(k) != "DateStyle" || string(v) != "ISO, MDY" {
		t.Fatalf("ParameterStatus: %q %q %v", k, v, ok)
	}
	for _, b := range []string{"", "k", "k\x00", "k\x00v", "k\x00v\x00extra"} {
		if _, _, ok := pgproto.ParameterStatus([]byte(b)); ok {
			t.Errorf("ParameterStatus(%q) ok", b)
		}
	}
	// BackendKeyData from pgproto3.
	enc, _ = (&pgproto3.BackendKeyData{ProcessID: 77, SecretKey: []byte{0, 0, 1, 0}}).Encode(nil)
	pid, sec, ok := pgproto.BackendKeyData(enc[5:])
	if !ok || pid != 77 || sec != 256 {
		t.Fatalf("BackendKeyData: %d %d %v", pid, sec, ok)
	}
	// Protocol 3.2 allows longer secrets; those are not decoded as 4-byte keys.
	enc, _ = (&pgproto3.BackendKeyData{ProcessID: 77, SecretKey: make([]byte, 32)}).Encode(nil)
	if _, _, ok := pgproto.BackendKeyData(enc[5:]); ok {
		t.Fatal("BackendKeyData accepted a 32-byte secret as 4 bytes")
	}
	// AuthCode
	enc, _ = (&pgproto3.AuthenticationSASLContinue{Data: []byte("r=x")}).Encode(nil)
	code, data, ok := pgproto.AuthCode(enc[5:])
	if !ok || code != pgproto.AuthSASLContinue || string(data) != "r=x" {
		t.Fatalf("AuthCode: %d %q %v", code, data, ok)
	}
	if _, _, ok := pgproto.AuthCode([]byte{0, 0, 0}); ok {
		t.Fatal("AuthCode of 3 bytes ok")
	}
	// QueryText
	enc, _ = (&pgproto3.Query{String: "select 1"}).Encode(nil)
	if s, ok := pgproto.QueryText(enc[5:]); !ok || string(s) != "select 1" {
		t.Fatalf("QueryText: %q %v", s, ok)
	}
	for _, b := range []string{"", "select", "a\x00b"} {
		if _, ok := pgproto.QueryText([]byte(b)); ok {
			t.Errorf("QueryText(%q) ok", b)
		}
	}
	// DecodeParse from pgproto3.
	enc, _ = (&pgproto3.Parse{Name: "s", Query: "select $1, $2", ParameterOIDs: []uint32{23, 25}}).Encode(nil)
	p, ok := pgproto.DecodeParse(enc[5:])
	if !ok || string(p.Name) != "s" || string(p.Query) != "select $1, $2" || !bytes.Equal(p.Types, []byte{0, 2, 0, 0, 0, 23, 0, 0, 0, 25}) {
		t.Fatalf("DecodeParse: %+v %v", p, ok)
	}
	for _, b := range []string{"", "s\x00q\x00", "s\x00q\x00\x00\x01", "s\x00q\x00\x00\x00x"} {
		if _, ok := pgproto.DecodeParse([]byte(b)); ok {
			t.Errorf("DecodeParse(%q) ok", b)
		}
	}
	// Target
	enc, _ = (&pgproto3.Describe{ObjectType: 'P', Name: "portal"}).Encode(nil)
	kind, name, ok := pgproto.Target(enc[5:])
	if !ok || kind != 'P' || string(name) != "portal" {
		t.Fatalf("Target: %q %q %v", kind, name, ok)
	}
	for _, b := range []string{"", "S", "Sname", "Sa\x00b"} {
		if _, _, ok := pgproto.Target([]byte(b)); ok {
			t.Errorf("Target(%q) ok", b)
		}
	}
}

func TestErrorField(t *testing.T) {
	enc, _ := (&pgproto3.ErrorResponse{Severity: "FEHLER", SeverityUnlocalized: "ERROR", Code: "42P01",
		Message: "relation \"x\" does not exist", Detail: "d", Hint: "h", Position: 15, Routine: "parserOpenTable"}).Encode(nil)
	body := enc[5:]
	for f, want := range map[byte]string{
		'S': "FEHLER", 'V': "ERROR", 'C': "42P01", 'M': "relation \"x\" does not exist",
		'D': "d", 'H': "h", 'P': "15", 'R': "parserOpenTable",
	} {
		if got := pgproto.ErrorField(body, f); string(got) != want {
			t.Errorf("field %q: %q, want %q", f, got, want)
		}
	}
	if got := pgproto.ErrorField(body, 'W'); got != nil {
		t.Errorf("absent field: %q", got)
	}
	// Our own encoder.
	b := pgproto.AppendError(nil, pgproto.SevFatal, "57P01", "bye")[5:]
	if string(pgproto.ErrorField(b, 'V')) != "FATAL" || string(pgproto.ErrorField(b, 'C')) != "57P01" {
		t.Fatal("AppendError fields")
	}
	// Malformed bodies never panic and find nothing past the damage.
	for _, m := range []string{"", "\x00", "C", "C42", "Sx\x00C", "\x00C42\x00"} {
		if got := pgproto.ErrorField([]byte(m), 'C'); got != nil {
			t.Errorf("ErrorField(%q, 'C') = %q", m, got)
		}
	}
}

func TestIsFrontendType(t *testing.T) {
	for _, c := range []byte("BCdcfDEHFpPQSX") {
		if !pgproto.IsFrontendType(c) {
			t.Errorf("%q not a frontend type", c)
		}
	}
	for _, c := range []byte("ZRTKNAzx\x00") {
		if pgproto.IsFrontendType(c) {
			t.Errorf("%q is a frontend type", c)
		}
	}
}
