package auth

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

func TestBackendCleartext(t *testing.T) {
	b := NewBackendAuth(BackendCreds{User: "app", Plain: "app"}, nil)
	msg, err := b.Step(AuthCleartextPassword, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := []byte("p\x00\x00\x00\x08app\x00"); !bytes.Equal(msg, want) {
		t.Fatalf("got %q want %q", msg, want)
	}
	if _, err := b.Step(AuthOK, nil); err != nil || !b.Done() || b.Method() != "password" {
		t.Fatal(err)
	}

	b = NewBackendAuth(BackendCreds{User: "app", MD5: MD5Hash("app", "app")}, nil)
	if _, err := b.Step(AuthCleartextPassword, nil); !errors.Is(err, ErrNoCredentials) || !strings.Contains(err.Error(), "cleartext") {
		t.Fatalf("got %v", err)
	}
}

func TestBackendTrust(t *testing.T) {
	b := NewBackendAuth(BackendCreds{User: "app"}, nil)
	if msg, err := b.Step(AuthOK, nil); msg != nil || err != nil || !b.Done() || b.Method() != "trust" {
		t.Fatalf("%q %v", msg, err)
	}
	if _, err := b.Step(AuthOK, nil); !errors.Is(err, ErrProtocol) {
		t.Fatalf("second AuthOK: %v", err)
	}
}

func TestBackendErrors(t *testing.T) {
	ck := [32]byte{1}
	for _, tc := range []struct {
		name  string
		creds BackendCreds
		steps []struct {
			code int32
			data string
		}
		want    error
		wantMsg string
	}{
		{name: "md5 without creds", creds: BackendCreds{User: "u", ClientKey: &ck},
			steps: steps(AuthMD5Password, "salt"), want: ErrNoCredentials, wantMsg: "md5"},
		{name: "md5 short salt", creds: BackendCreds{User: "u", Plain: "p"},
			steps: steps(AuthMD5Password, "abc"), want: ErrProtocol},
		{name: "scram without creds", creds: BackendCreds{User: "u", MD5: MD5Hash("u", "p")},
			steps: steps(AuthSASL, "SCRAM-SHA-256\x00\x00"), want: ErrNoCredentials, wantMsg: "SCRAM-SHA-256"},
		{name: "only PLUS offered", creds: BackendCreds{User: "u", Plain: "p"},
			steps: steps(AuthSASL, "SCRAM-SHA-256-PLUS\x00\x00"), want: ErrUnsupported},
		{name: "unterminated mechanism list", creds: BackendCreds{User: "u", Plain: "p"},
			steps: steps(AuthSASL, "SCRAM-SHA-256"), want: ErrProtocol},
		{name: "gss", creds: BackendCreds{User: "u", Plain: "p"}, steps: steps(AuthGSS, ""), want: ErrUnsupported},
		{name: "unknown code", creds: BackendCreds{User: "u", Plain: "p"}, steps: steps(99, ""), want: ErrUnsupported},
		{name: "continue first", creds: BackendCreds{User: "u", Plain: "p"}, steps: steps(AuthSASLContinue, "r=x,s=QQ==,i=1"), want: ErrProtocol},
		{name: "ok before scram done", creds: BackendCreds{User: "u", Plain: "p"},
			steps: steps(AuthSASL, "SCRAM-SHA-256\x00\x00", AuthOK, ""), want: ErrProtocol},
		{name: "second request after password", creds: BackendCreds{User: "u", Plain: "p"},
			steps: steps(AuthCleartextPassword, "", AuthMD5Password, "salt"), want: ErrProtocol},
		{name: "foreign nonce", creds: BackendCreds{User: "u", Plain: "p"},
			steps: steps(AuthSASL, "SCRAM-SHA-256\x00\x00", AuthSASLContinue, "r=other,s=QQ==,i=1"), want: ErrProtocol},
		{name: "nonce not extended", creds: BackendCreds{User: "u", Plain: "p"},
			steps: steps(AuthSASL, "SCRAM-SHA-256\x00\x00", AuthSASLContinue, "r=NONCE,s=QQ==,i=1"), want: ErrProtocol},
		{name: "bad salt", creds: BackendCreds{User: "u", Plain: "p"},
			steps: steps(AuthSASL, "SCRAM-SHA-256\x00\x00", AuthSASLContinue, "r=NONCEx,s=,i=1"), want: ErrProtocol},
		{name: "bad iterations", creds: BackendCreds{User: "u", Plain: "p"},
			steps: steps(AuthSASL, "SCRAM-SHA-256\x00\x00", AuthSASLContinue, "r=NONCEx,s=QQ==,i=0"), want: ErrProtocol},
		{name: "mandatory ext", creds: BackendCreds{User: "u", Plain: "p"},
			steps: steps(AuthSASL, "SCRAM-SHA-256\x00\x00", AuthSASLContinue, "m=x,r=NONCEx,s=QQ==,i=1"), want: ErrUnsupported},
		{name: "server error", creds: BackendCreds{User: "u", Plain: "p"},
			steps: steps(AuthSASL, "SCRAM-SHA-256\x00\x00", AuthSASLContinue, "r=NONCEx,s=QQ==,i=1", AuthSASLFinal, "e=invalid-proof"),
			want:  ErrServerSignature, wantMsg: "invalid-proof"},
		{name: "bad final", creds: BackendCreds{User: "u", Plain: "p"},
			steps: steps(AuthSASL, "SCRAM-SHA-256\x00\x00", AuthSASLContinue, "r=NONCEx,s=QQ==,i=1", AuthSASLFinal, "v=AAAA"),
			want:  ErrProtocol},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := NewBackendAuth(tc.creds, nil)
			b.testClientNonce = "NONCE"
			var err error
			for _, s := range tc.steps {
				if _, err = b.Step(s.code, []byte(s.data)); err != nil {
					break
				}
			}
			if !errors.Is(err, tc.want) || !strings.Contains(errString(err), tc.wantMsg) {
				t.Fatalf("got %v, want %v containing %q", err, tc.want, tc.wantMsg)
			}
			if _, err := b.Step(AuthOK, nil); err == nil || b.Done() {
				t.Fatal("AuthOK accepted after an error")
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func steps(args ...any) []struct {
	code int32
	data string
} {
	var out []struct {
		code int32
		data string
	}
	for i := 0; i < len(args); i += 2 {
		out = append(out, struct {
			code int32
			data string
		}{toInt32(args[i]), args[i+1].(string)})
	}
	return out
}

func TestBackendSASLInitialFraming(t *testing.T) {
	b := NewBackendAuth(BackendCreds{User: "u", Plain: "p"}, detRand(9))
	msg, err := b.Step(AuthSASL, []byte("SCRAM-SHA-256\x00\x00"))
	if err != nil {
		t.Fatal(err)
	}
	body := frontendBody(t, msg)
	mech, rest, _ := bytes.Cut(body, []byte{0})
	if string(mech) != MechScramSHA256 {
		t.Fatalf("mechanism %q", mech)
	}
	n := binary.BigEndian.Uint32(rest)
	cf := string(rest[4:])
	if int(n) != len(cf) || !strings.HasPrefix(cf, "n,,n=,r=") || len(cf) != len("n,,n=,r=")+24 {
		t.Fatalf("client-first %q (len field %d)", cf, n)
	}
}

func toInt32(v any) int32 {
	if i, ok := v.(int); ok {
		return int32(i)
	}
	return v.(int32)
}
