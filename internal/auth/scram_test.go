package auth

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

// RFC 7677 section 3 example.
const (
	rfcPassword    = "pencil"
	rfcClientNonce = "rOprNGfwEbeRWgbNEkqO"
	rfcServerNonce = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
	rfcSalt        = "W22ZaJ0SNY7soEsUEjb6gQ=="
	rfcClientFirst = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
	rfcServerFirst = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
	rfcClientFinal = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
	rfcServerFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
)

func rfcSecret(t testing.TB) *ScramSecret {
	salt, _ := base64.StdEncoding.DecodeString(rfcSalt)
	sc, err := NewScramSecret(rfcPassword, salt, 4096)
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

func TestRFC7677Server(t *testing.T) {
	sc := rfcSecret(t)
	srv, err := NewScramServer("ignored", Secret{Kind: SecretScram, Scram: sc}, detRand(1))
	if err != nil {
		t.Fatal(err)
	}
	srv.testServerNonce = rfcServerNonce
	first, err := srv.HandleInitial(initialBody(MechScramSHA256, rfcClientFirst))
	if err != nil {
		t.Fatal(err)
	}
	if string(first) != rfcServerFirst {
		t.Fatalf("server-first:\n got %s\nwant %s", first, rfcServerFirst)
	}
	if srv.Done() || srv.ClientKey() != [32]byte{} {
		t.Fatal("ClientKey available before the final message")
	}
	final, err := srv.HandleFinal([]byte(rfcClientFinal))
	if err != nil {
		t.Fatal(err)
	}
	if string(final) != rfcServerFinal {
		t.Fatalf("server-final: got %s want %s", final, rfcServerFinal)
	}
	salt, _ := base64.StdEncoding.DecodeString(rfcSalt)
	want, err := ScramClientKey(rfcPassword, salt, 4096)
	if err != nil {
		t.Fatal(err)
	}
	if got := srv.ClientKey(); got != want {
		t.Fatalf("recovered ClientKey %x, want %x", got, want)
	}
	if !srv.Done() {
		t.Fatal("not done")
	}
	// The exchange is over: more messages are protocol errors.
	if _, err := srv.HandleFinal([]byte(rfcClientFinal)); !errors.Is(err, ErrProtocol) {
		t.Fatalf("second final: %v", err)
	}
}

func TestRFC7677Client(t *testing.T) {
	salt, _ := base64.StdEncoding.DecodeString(rfcSalt)
	ck, _ := ScramClientKey(rfcPassword, salt, 4096)
	sc := rfcSecret(t)
	for _, tc := range []struct {
		name   string
		creds  BackendCreds
		verify bool
	}{
		{"plain", BackendCreds{User: "user", Plain: rfcPassword}, true},
		{"clientkey", BackendCreds{User: "user", ClientKey: &ck}, false},
		{"clientkey+serverkey", BackendCreds{User: "user", ClientKey: &ck, ServerKey: &sc.ServerKey,
			ScramSalt: salt, ScramIterations: 4096}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := NewBackendAuth(tc.creds, nil)
			b.testClientNonce = rfcClientNonce
			b.testUser = "user"
			msg, err := b.Step(AuthSASL, []byte("SCRAM-SHA-256-PLUS\x00SCRAM-SHA-256\x00\x00"))
			if err != nil {
				t.Fatal(err)
			}
			if want := append([]byte{'p', 0, 0, 0, 54}, initialBody(MechScramSHA256, rfcClientFirst)...); !bytes.Equal(msg, want) {
				t.Fatalf("SASLInitialResponse:\n got %q\nwant %q", msg, want)
			}
			msg, err = b.Step(AuthSASLContinue, []byte(rfcServerFirst))
			if err != nil {
				t.Fatal(err)
			}
			if got := string(frontendBody(t, msg)); got != rfcClientFinal {
				t.Fatalf("client-final:\n got %s\nwant %s", got, rfcClientFinal)
			}
			if b.verifyServer != tc.verify {
				t.Fatalf("verifyServer = %v", b.verifyServer)
			}
			if reply, err := b.Step(AuthSASLFinal, []byte(rfcServerFinal)); err != nil || reply != nil {
				t.Fatalf("final: %q %v", reply, err)
			}
			if reply, err := b.Step(AuthOK, nil); err != nil || reply != nil || !b.Done() {
				t.Fatalf("ok: %q %v", reply, err)
			}
			if b.Method() != MechScramSHA256 {
				t.Fatalf("method %q", b.Method())
			}
		})
	}
}

func TestRFC7677ClientBadServerSignature(t *testing.T) {
	b := NewBackendAuth(BackendCreds{User: "user", Plain: rfcPassword}, nil)
	b.testClientNonce, b.testUser = rfcClientNonce, "user"
	if _, err := b.Step(AuthSASL, []byte("SCRAM-SHA-256\x00\x00")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Step(AuthSASLContinue, []byte(rfcServerFirst)); err != nil {
		t.Fatal(err)
	}
	bad := "v=" + base64.StdEncoding.EncodeToString(make([]byte, 32))
	if _, err := b.Step(AuthSASLFinal, []byte(bad)); !errors.Is(err, ErrServerSignature) {
		t.Fatalf("got %v, want ErrServerSignature", err)
	}
	if _, err := b.Step(AuthOK, nil); err == nil || b.Done() {
		t.Fatal("AuthOK accepted after a failed exchange")
	}
}

func TestScramRoundTrip(t *testing.T) {
	const pw = "s3cr\u00e9t \u00bd" // non-ASCII: exercises SASLprep (NFKC maps ½)
	salt := []byte("0123456789abcdef")
	sc, err := NewScramSecret(pw, salt, 4096)
	if err != nil {
		t.Fatal(err)
	}
	realCK, _ := ScramClientKey(pw, salt, 4096)
	if sha256.Sum256(realCK[:]) != sc.StoredKey {
		t.Fatal("StoredKey != H(ClientKey)")
	}
	scramSec := ParseSecret(sc.String())
	if scramSec.Kind != SecretScram {
		t.Fatalf("ParseSecret(String()) kind %v", scramSec.Kind)
	}

	t.Run("scram secret, plain client", func(t *testing.T) {
		srv, err := NewScramServer("app", scramSec, detRand(2))
		if err != nil {
			t.Fatal(err)
		}
		cli := NewBackendAuth(BackendCreds{User: "app", Plain: pw}, detRand(3))
		if se, ce := runScram(t, srv, cli); se != nil || ce != nil {
			t.Fatalf("server %v client %v", se, ce)
		}
		if srv.ClientKey() != realCK {
			t.Fatalf("recovered ClientKey %x want %x", srv.ClientKey(), realCK)
		}

		// Pass-through: the recovered key logs in again (as it would to the backend).
		ck := srv.ClientKey()
		srv2, _ := NewScramServer("app", scramSec, detRand(4))
		cli2 := NewBackendAuth(BackendCreds{User: "app", ClientKey: &ck, ServerKey: &sc.ServerKey,
			ScramSalt: salt, ScramIterations: 4096}, detRand(5))
		if se, ce := runScram(t, srv2, cli2); se != nil || ce != nil {
			t.Fatalf("pass-through: server %v client %v", se, ce)
		}
	})

	t.Run("plain secret", func(t *testing.T) {
		srv, err := NewScramServer("app", Secret{Kind: SecretPlain, Plain: pw}, nil)
		if err != nil {
			t.Fatal(err)
		}
		cli := NewBackendAuth(BackendCreds{User: "app", Plain: pw}, nil)
		if se, ce := runScram(t, srv, cli); se != nil || ce != nil {
			t.Fatalf("server %v client %v", se, ce)
		}
		want, _ := ScramClientKey(pw, srv.secret.Salt, srv.secret.Iterations)
		if srv.ClientKey() != want {
			t.Fatal("recovered ClientKey mismatch")
		}
	})

	t.Run("wrong password", func(t *testing.T) {
		for _, sec := range []Secret{scramSec, {Kind: SecretPlain, Plain: pw}} {
			srv, _ := NewScramServer("app", sec, nil)
			cli := NewBackendAuth(BackendCreds{User: "app", Plain: pw + "x"}, nil)
			se, ce := runScram(t, srv, cli)
			if !errors.Is(se, ErrPasswordMismatch) || ce != nil {
				t.Fatalf("server %v client %v", se, ce)
			}
			if srv.ClientKey() != [32]byte{} || srv.Done() {
				t.Fatal("ClientKey exposed after failure")
			}
		}
	})

	t.Run("wrong ClientKey", func(t *testing.T) {
		ck := realCK
		ck[0] ^= 1
		srv, _ := NewScramServer("app", scramSec, nil)
		se, _ := runScram(t, srv, NewBackendAuth(BackendCreds{User: "app", ClientKey: &ck}, nil))
		if !errors.Is(se, ErrPasswordMismatch) {
			t.Fatalf("got %v", se)
		}
	})

	t.Run("ClientKey for another verifier", func(t *testing.T) {
		ck := realCK
		srv, _ := NewScramServer("app", Secret{Kind: SecretPlain, Plain: pw}, nil) // random salt
		cli := NewBackendAuth(BackendCreds{User: "app", ClientKey: &ck, ScramSalt: salt, ScramIterations: 4096}, nil)
		_, ce := runScram(t, srv, cli)
		if !errors.Is(ce, ErrNoCredentials) || !strings.Contains(ce.Error(), "different salt") {
			t.Fatalf("got %v", ce)
		}
		// With the plaintext password as well, it falls back to it.
		srv, _ = NewScramServer("app", Secret{Kind: SecretPlain, Plain: pw}, nil)
		cli = NewBackendAuth(BackendCreds{User: "app", Plain: pw, ClientKey: &ck, ScramSalt: salt, ScramIterations: 4096}, nil)
		if se, ce := runScram(t, srv, cli); se != nil || ce != nil {
			t.Fatalf("fallback: server %v client %v", se, ce)
		}
	})
}

func TestScramServerUnknownUser(t *testing.T) {
	srv, err := NewScramServerUnknownUser(nil)
	if err != nil {
		t.Fatal(err)
	}
	se, ce := runScram(t, srv, NewBackendAuth(BackendCreds{User: "nobody", Plain: "whatever"}, nil))
	if !errors.Is(se, ErrPasswordMismatch) || ce != nil {
		t.Fatalf("server %v client %v", se, ce)
	}

	// Empty plaintext password behaves the same.
	srv, err = NewScramServer("u", Secret{Kind: SecretPlain}, nil)
	if err != nil {
		t.Fatal(err)
	}
	se, _ = runScram(t, srv, NewBackendAuth(BackendCreds{User: "u", Plain: "x"}, nil))
	if !errors.Is(se, ErrPasswordMismatch) {
		t.Fatalf("empty password: %v", se)
	}

	// Stable variant: same salt for the same user, different for another.
	key := []byte("mock key")
	a, _ := NewScramServerUnknownUserStable("ghost", key, nil)
	b, _ := NewScramServerUnknownUserStable("ghost", key, nil)
	c, _ := NewScramServerUnknownUserStable("other", key, nil)
	if !bytes.Equal(a.secret.Salt, b.secret.Salt) || bytes.Equal(a.secret.Salt, c.secret.Salt) || len(a.secret.Salt) != 16 {
		t.Fatal("stable mock salt is not stable per user")
	}
	se, _ = runScram(t, a, NewBackendAuth(BackendCreds{User: "ghost", Plain: "x"}, nil))
	if !errors.Is(se, ErrPasswordMismatch) {
		t.Fatalf("stable: %v", se)
	}
}

func TestNewScramServerSecrets(t *testing.T) {
	if _, err := NewScramServer("u", Secret{Kind: SecretMD5, MD5: MD5Hash("u", "p")}, nil); !errors.Is(err, ErrScramWithMD5) {
		t.Fatalf("md5 secret: %v", err)
	}
	if _, err := NewScramServer("u", Secret{Kind: SecretScram}, nil); err == nil {
		t.Fatal("nil SCRAM secret accepted")
	}
	if _, err := NewScramServer("u", Secret{Kind: 9}, nil); err == nil {
		t.Fatal("unknown kind accepted")
	}
	srv, _ := NewScramServer("u", Secret{Kind: SecretPlain, Plain: "p"}, nil)
	if got := string(srv.Mechanisms()); got != "SCRAM-SHA-256\x00\x00" {
		t.Fatalf("Mechanisms %q", got)
	}
	if srv.secret.Iterations != 4096 || len(srv.secret.Salt) != 16 {
		t.Fatalf("derived verifier: %d iterations, %d-byte salt", srv.secret.Iterations, len(srv.secret.Salt))
	}
}

func TestScramServerInitialErrors(t *testing.T) {
	const nonceOK = "n,,n=,r=abc"
	for _, tc := range []struct {
		name string
		body []byte
		want error
	}{
		{"no mech terminator", []byte("SCRAM-SHA-256"), ErrProtocol},
		{"plus mechanism", initialBody(MechScramSHA256Plus, "p=tls-server-end-point,,n=,r=abc"), ErrUnsupported},
		{"unknown mechanism", initialBody("PLAIN", nonceOK), ErrUnsupported},
		{"truncated length", []byte("SCRAM-SHA-256\x00\x00\x00"), ErrProtocol},
		{"no data", []byte("SCRAM-SHA-256\x00\xff\xff\xff\xff"), ErrProtocol},
		{"length too long", append(initialBody(MechScramSHA256, nonceOK)[:14], 0, 0, 0, 99, 'n'), ErrProtocol},
		{"trailing bytes", append(initialBody(MechScramSHA256, nonceOK), 'x'), ErrProtocol},
		{"empty client-first", initialBody(MechScramSHA256, ""), ErrProtocol},
		{"channel binding p", initialBody(MechScramSHA256, "p=tls-server-end-point,,n=,r=abc"), ErrProtocol},
		{"bad cbind flag", initialBody(MechScramSHA256, "x,,n=,r=abc"), ErrProtocol},
		{"no comma after flag", initialBody(MechScramSHA256, "nn,n=,r=abc"), ErrProtocol},
		{"authzid", initialBody(MechScramSHA256, "n,a=admin,n=,r=abc"), ErrUnsupported},
		{"mandatory extension", initialBody(MechScramSHA256, "n,,m=ext,n=,r=abc"), ErrUnsupported},
		{"missing n", initialBody(MechScramSHA256, "n,,r=abc"), ErrProtocol},
		{"missing r", initialBody(MechScramSHA256, "n,,n=user"), ErrProtocol},
		{"empty nonce", initialBody(MechScramSHA256, "n,,n=,r="), ErrProtocol},
		{"nonprintable nonce", initialBody(MechScramSHA256, "n,,n=,r=a\x01b"), ErrProtocol},
		{"bad attribute", initialBody(MechScramSHA256, "n,,n=,r=abc,,"), ErrProtocol},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, _ := NewScramServerUnknownUser(nil)
			if _, err := srv.HandleInitial(tc.body); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if _, err := srv.HandleFinal([]byte("c=biws,r=abc,p=x")); !errors.Is(err, ErrProtocol) {
				t.Fatalf("final after failed initial: %v", err)
			}
		})
	}
	for _, ok := range []string{"n,,n=,r=abc", "y,,n=,r=abc", "n,,n=some=2Cuser,r=abc,x=ext"} {
		srv, _ := NewScramServerUnknownUser(nil)
		if _, err := srv.HandleInitial(initialBody(MechScramSHA256, ok)); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
}

func TestScramServerFinalErrors(t *testing.T) {
	sc := rfcSecret(t)
	proof := "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
	nonce := "r=" + rfcClientNonce + rfcServerNonce
	for _, tc := range []struct {
		name, final string
		want        error
	}{
		{"empty", "", ErrProtocol},
		{"no c", nonce + "," + proof, ErrProtocol},
		{"bad c base64", "c=!!!!," + nonce + "," + proof, ErrProtocol},
		{"c for y flag", "c=eSws," + nonce + "," + proof, ErrProtocol},
		{"wrong nonce", "c=biws,r=" + rfcClientNonce + "x," + proof, ErrProtocol},
		{"no r", "c=biws," + proof, ErrProtocol},
		{"no proof", "c=biws," + nonce, ErrProtocol},
		{"proof not last", "c=biws," + nonce + "," + proof + ",x=1", ErrProtocol},
		{"double proof", "c=biws," + nonce + "," + proof + "," + proof, ErrProtocol},
		{"short proof", "c=biws," + nonce + ",p=AAAA", ErrProtocol},
		{"bad proof base64", "c=biws," + nonce + ",p=****", ErrProtocol},
		{"wrong proof", "c=biws," + nonce + ",p=" + base64.StdEncoding.EncodeToString(make([]byte, 32)), ErrPasswordMismatch},
		// An extension changes the AuthMessage, so the RFC proof no longer matches.
		{"extension", "c=biws," + nonce + ",x=1," + proof, ErrPasswordMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, _ := NewScramServer("", Secret{Kind: SecretScram, Scram: sc}, nil)
			srv.testServerNonce = rfcServerNonce
			if _, err := srv.HandleInitial(initialBody(MechScramSHA256, rfcClientFirst)); err != nil {
				t.Fatal(err)
			}
			if _, err := srv.HandleFinal([]byte(tc.final)); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	srv, _ := NewScramServer("", Secret{Kind: SecretScram, Scram: sc}, nil)
	if _, err := srv.HandleFinal([]byte(rfcClientFinal)); !errors.Is(err, ErrProtocol) {
		t.Fatalf("final before initial: %v", err)
	}
}

func TestSASLprepCompat(t *testing.T) {
	salt := []byte("salt")
	a, _ := ScramClientKey("I\u00adX", salt, 1) // soft hyphen maps to nothing
	b, _ := ScramClientKey("IX", salt, 1)
	if a != b {
		t.Fatal("SASLprep mapping not applied")
	}
	// Prohibited characters: the raw password is used (PostgreSQL does the same).
	c, _ := ScramClientKey("a\x00b", salt, 1)
	d, _ := ScramClientKey("ab", salt, 1)
	if c == d {
		t.Fatal("prohibited password was altered")
	}
}
