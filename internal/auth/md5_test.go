package auth

import (
	"crypto/md5"
	"encoding/hex"
	"errors"
	"testing"
)

func refMD5(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

func TestMD5Hash(t *testing.T) {
	for _, tc := range []struct{ user, pw, want string }{
		{"app", "app", "md5fe63fea7be31b0200b496d08bc6b517d"}, // computed independently (Python hashlib)
		{"postgres", "postgres", "md53175bce1d3201d16594cebf9d7eb3f9d"},
		{"us\"er", "p\u00e4ss", ""},
		{"", "", ""},
	} {
		got := MD5Hash(tc.user, tc.pw)
		if ref := "md5" + refMD5(tc.pw+tc.user); got != ref {
			t.Errorf("MD5Hash(%q,%q) = %s, crypto/md5 says %s", tc.user, tc.pw, got, ref)
		}
		if tc.want != "" && got != tc.want {
			t.Errorf("MD5Hash(%q,%q) = %s, want %s", tc.user, tc.pw, got, tc.want)
		}
		if !isMD5Secret(got) {
			t.Errorf("%s not recognised as an md5 secret", got)
		}
	}
}

func TestVerifyMD5(t *testing.T) {
	salt := [4]byte{1, 2, 3, 4}
	resp := "md5c1007ebbc6ecc151a46d7e2af0f47b66" // md5(md5("appapp") hex + salt), Python hashlib
	if ref := "md5" + refMD5(refMD5("appapp")+"\x01\x02\x03\x04"); ref != resp {
		t.Fatalf("reference mismatch %s", ref)
	}
	plain := Secret{Kind: SecretPlain, Plain: "app"}
	hashed := ParseSecret(MD5Hash("app", "app"))
	for _, sec := range []Secret{plain, hashed} {
		if err := VerifyMD5(sec, "app", salt, resp); err != nil {
			t.Errorf("%v: %v", sec, err)
		}
		if err := VerifyMD5(sec, "app", [4]byte{1, 2, 3, 5}, resp); !errors.Is(err, ErrPasswordMismatch) {
			t.Errorf("%v wrong salt: %v", sec, err)
		}
		if err := VerifyMD5(sec, "app", salt, resp[:34]); !errors.Is(err, ErrPasswordMismatch) {
			t.Errorf("%v short: %v", sec, err)
		}
	}
	if err := VerifyMD5(plain, "other", salt, resp); !errors.Is(err, ErrPasswordMismatch) {
		t.Errorf("user is part of the hash: %v", err)
	}
	if err := VerifyMD5(Secret{Kind: SecretPlain}, "app", salt, "md5"+refMD5(refMD5("app")+"\x01\x02\x03\x04")); !errors.Is(err, ErrPasswordMismatch) {
		t.Errorf("empty password accepted: %v", err)
	}
	if err := VerifyMD5(Secret{Kind: SecretScram, Scram: rfcSecret(t)}, "app", salt, resp); !errors.Is(err, ErrMD5WithScram) {
		t.Errorf("scram: %v", err)
	}
	if err := VerifyMD5(Secret{Kind: SecretMD5, MD5: "md5short"}, "app", salt, resp); err == nil || errors.Is(err, ErrPasswordMismatch) {
		t.Errorf("invalid md5 secret: %v", err)
	}
}

func TestMD5BackendRoundTrip(t *testing.T) {
	salt := NewMD5Challenge(detRand(7))
	if salt2 := NewMD5Challenge(nil); salt2 == salt {
		t.Log("two equal random salts (unlikely)")
	}
	for _, creds := range []BackendCreds{
		{User: "app", Plain: "app"},
		{User: "app", MD5: MD5Hash("app", "app")},
	} {
		b := NewBackendAuth(creds, nil)
		msg, err := b.Step(AuthMD5Password, salt[:])
		if err != nil {
			t.Fatal(err)
		}
		body := frontendBody(t, msg)
		if len(body) != 36 || body[35] != 0 {
			t.Fatalf("password message body %q", body)
		}
		if err := VerifyMD5(Secret{Kind: SecretPlain, Plain: "app"}, "app", salt, string(body[:35])); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Step(AuthOK, nil); err != nil || !b.Done() || b.Method() != "md5" {
			t.Fatalf("ok: %v", err)
		}
	}
}

func TestVerifyPassword(t *testing.T) {
	sc, _ := NewScramSecret("pw", []byte("salty"), 16)
	for _, sec := range []Secret{
		{Kind: SecretPlain, Plain: "pw"},
		ParseSecret(MD5Hash("u", "pw")),
		{Kind: SecretScram, Scram: sc},
	} {
		if err := VerifyPassword(sec, "u", "pw"); err != nil {
			t.Errorf("%v: %v", sec, err)
		}
		if err := VerifyPassword(sec, "u", "pw2"); !errors.Is(err, ErrPasswordMismatch) {
			t.Errorf("%v wrong: %v", sec, err)
		}
		if err := VerifyPassword(sec, "u", ""); !errors.Is(err, ErrPasswordMismatch) {
			t.Errorf("%v empty: %v", sec, err)
		}
	}
	if err := VerifyPassword(Secret{Kind: SecretPlain}, "u", ""); !errors.Is(err, ErrPasswordMismatch) {
		t.Error("empty secret accepted")
	}
}
