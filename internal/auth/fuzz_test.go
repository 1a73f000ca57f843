package auth

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
)

func quoteUserlist(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

func FuzzParseUserlist(f *testing.F) {
	f.Add("\"app\" \"app\"\n")
	f.Add("; comment\n# comment\n\n\"a\"\"b\" \"c\"\"\"\"d\" extra\r\n\"x\" \"md5fe63fea7be31b0200b496d08bc6b517d\"")
	f.Add("\"u\" \"SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$AAAA:BBBB\"\n")
	f.Add("\"unterminated\n")
	f.Add("\"\" \"\"\n")
	f.Fuzz(func(t *testing.T, in string) {
		users, err := ParseUserlist(strings.NewReader(in))
		if err != nil {
			if _, ok := err.(*UserlistError); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		// Re-serialise and parse again: same users, same secrets.
		var sb strings.Builder
		for u, s := range users {
			if u == "" || strings.ContainsAny(u, "\n\x00") {
				t.Fatalf("bad user name %q", u)
			}
			var pw string
			switch s.Kind {
			case SecretPlain:
				pw = s.Plain
			case SecretMD5:
				pw = s.MD5
			case SecretScram:
				pw = s.Scram.String()
			}
			sb.WriteString(quoteUserlist(u) + " " + quoteUserlist(pw) + "\n")
		}
		again, err := ParseUserlist(strings.NewReader(sb.String()))
		if err != nil {
			t.Fatalf("re-parse of %q: %v", sb.String(), err)
		}
		if len(again) != len(users) {
			t.Fatalf("re-parse: %d users, want %d", len(again), len(users))
		}
		for u, s := range users {
			a := again[u]
			if a.Kind != s.Kind || a.Plain != s.Plain || a.MD5 != s.MD5 ||
				(s.Scram != nil && (a.Scram == nil || a.Scram.String() != s.Scram.String())) {
				t.Fatalf("user %q changed on re-parse", u)
			}
		}
	})
}

func FuzzScramServer(f *testing.F) {
	// A valid exchange against the RFC 7677 verifier, and variants.
	f.Add(initialBody(MechScramSHA256, rfcClientFirst), []byte(rfcClientFinal), false)
	f.Add(initialBody(MechScramSHA256, "y,,n=,r=abc,x=1"), []byte("c=eSws,r=abc%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=AAAA"), true)
	f.Add(initialBody(MechScramSHA256Plus, "p=tls-server-end-point,,n=,r=abc"), []byte("c=biws"), false)
	f.Add([]byte("SCRAM-SHA-256\x00\xff\xff\xff\xff"), []byte{}, false)
	f.Add([]byte{}, []byte(",,,="), true)
	sc := rfcSecret(f)
	f.Fuzz(func(t *testing.T, initial, final []byte, unknown bool) {
		var srv *ScramServer
		if unknown {
			srv, _ = NewScramServerUnknownUser(detRand(1))
		} else {
			srv, _ = NewScramServer("u", Secret{Kind: SecretScram, Scram: sc}, detRand(1))
		}
		srv.testServerNonce = rfcServerNonce
		first, err := srv.HandleInitial(initial)
		if err != nil {
			if first != nil {
				t.Fatal("output with error")
			}
			return
		}
		if !bytes.HasPrefix(first, []byte("r=")) {
			t.Fatalf("server-first %q", first)
		}
		out, err := srv.HandleFinal(final)
		if err == nil {
			if unknown || !bytes.HasPrefix(out, []byte("v=")) || !srv.Done() {
				t.Fatalf("unexpected success: %q", out)
			}
			// Only the real password gets here; the recovered key must be the real one.
			salt := sc.Salt
			if ck, _ := ScramClientKey(rfcPassword, salt, sc.Iterations); ck != srv.ClientKey() {
				t.Fatal("wrong ClientKey accepted")
			}
		}
	})
}

func FuzzBackendAuthStep(f *testing.F) {
	mechs := []byte("SCRAM-SHA-256\x00\x00")
	f.Add(int32(AuthSASL), mechs, int32(AuthSASLContinue), []byte("r=NONCEabc,s=QQ==,i=2"), int32(AuthSASLFinal), []byte("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="), false)
	f.Add(int32(AuthSASL), mechs, int32(AuthSASLContinue), []byte("r=NONCEabc,s=QQ==,i=3,x=y"), int32(AuthSASLFinal), []byte("e=other-error"), true)
	f.Add(int32(AuthMD5Password), []byte("salt"), int32(AuthOK), []byte{}, int32(AuthOK), []byte{}, true)
	f.Add(int32(AuthCleartextPassword), []byte{}, int32(AuthOK), []byte{}, int32(AuthSASL), mechs, false)
	f.Add(int32(AuthOK), []byte{}, int32(AuthSASLFinal), []byte("v="), int32(-1), []byte{0}, true)
	ck := [32]byte{1, 2, 3}
	f.Fuzz(func(t *testing.T, c1 int32, d1 []byte, c2 int32, d2 []byte, c3 int32, d3 []byte, plain bool) {
		creds := BackendCreds{User: "u", ClientKey: &ck, MD5: MD5Hash("u", "p")}
		if plain {
			creds = BackendCreds{User: "u", Plain: "p"}
		}
		b := NewBackendAuth(creds, detRand(2))
		b.testClientNonce = "NONCE"
		b.maxIterations = 64 // keep PBKDF2 cheap
		for _, s := range []struct {
			c int32
			d []byte
		}{{c1, d1}, {c2, d2}, {c3, d3}} {
			msg, err := b.Step(s.c, s.d)
			if err != nil {
				if msg != nil {
					t.Fatal("reply with error")
				}
				if b.Done() {
					t.Fatal("done after error")
				}
				return
			}
			if msg != nil {
				if len(msg) < 5 || msg[0] != 'p' || int(binary.BigEndian.Uint32(msg[1:])) != len(msg)-1 {
					t.Fatalf("badly framed reply %q", msg)
				}
			}
		}
	})
}
