package proxy_test

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/poolmgr/poolmgr/internal/auth"
	"github.com/poolmgr/poolmgr/internal/proxy"
)

const (
	scramUser = "alice"
	scramPass = "s3cret"
)

var scramSalt = []byte("0123456789abcdef")

func scramSecret(t testing.TB) auth.Secret {
	t.Helper()
	sc, err := auth.NewScramSecret(scramPass, scramSalt, 4096)
	if err != nil {
		t.Fatal(err)
	}
	return auth.Secret{Kind: auth.SecretScram, Scram: sc}
}

func scramEnv(t testing.TB, mut func(*proxy.Options)) *env {
	sec := scramSecret(t)
	return newEnv(t, func(o *proxy.Options) {
		o.AuthType = proxy.AuthScram
		o.Secrets = map[string]auth.Secret{scramUser: sec}
		if mut != nil {
			mut(o)
		}
	})
}

// authRequest reads the one Authentication message sent to c since the last
// read and returns its code and data.
func (c *cli) authRequest() (int32, []byte) {
	c.e.t.Helper()
	msgs := splitMsgs(c.e.t, c.recvRaw())
	if len(msgs) != 1 || msgs[0][0] != 'R' {
		var d []string
		for _, m := range msgs {
			d = append(d, describe(decodeBackend(c.e.t, m)[0]))
		}
		c.e.t.Fatalf("want one Authentication request, got %v", d)
	}
	body := msgs[0][5:]
	return int32(binary.BigEndian.Uint32(body)), body[4:]
}

// scramLogin runs the client side of SCRAM with password pw (BackendAuth
// plays the client) up to the proxy's verdict. It returns the client's
// error (server signature) if any.
func scramLogin(t testing.TB, c *cli, user, pw string) error {
	t.Helper()
	c.send(startupMsg(user, "app"))
	code, data := c.authRequest()
	if code != auth.AuthSASL {
		t.Fatalf("first auth request %d, want SASL", code)
	}
	if !bytes.Equal(data, []byte("SCRAM-SHA-256\x00\x00")) {
		t.Fatalf("mechanisms %q", data)
	}
	ba := auth.NewBackendAuth(auth.BackendCreds{User: user, Plain: pw}, nil)
	msg, err := ba.Step(code, data)
	if err != nil {
		t.Fatal(err)
	}
	c.sendRaw(msg)
	code, data = c.authRequest()
	if code != auth.AuthSASLContinue {
		t.Fatalf("second auth request %d, want SASLContinue", code)
	}
	msg, err = ba.Step(code, data)
	if err != nil {
		t.Fatal(err)
	}
	c.sendRaw(msg)
	// Either SASLFinal (+ welcome, maybe later) or an error.
	raw := c.e.net.out[c.h][c.read:]
	if len(raw) > 0 && raw[0] == 'R' {
		n := int(binary.BigEndian.Uint32(raw[1:])) + 1
		body := raw[5:n]
		c.read += n
		if int32(binary.BigEndian.Uint32(body)) != auth.AuthSASLFinal {
			t.Fatalf("third auth request %d, want SASLFinal", binary.BigEndian.Uint32(body))
		}
		if _, err := ba.Step(auth.AuthSASLFinal, body[4:]); err != nil {
			return err
		}
	}
	return nil
}

func TestScramLoginOK(t *testing.T) {
	e := scramEnv(t, nil)
	c := e.accept()
	if err := scramLogin(t, c, scramUser, scramPass); err != nil {
		t.Fatalf("client rejected the proxy's server signature: %v", err)
	}
	c.expectNothing() // welcome waits for the first server login
	s := e.expectServerDial()
	s.login()
	c.expect("AuthenticationOk", "...")
	c.expectState(proxy.ClientIdle)
}

func TestScramWrongPassword(t *testing.T) {
	e := scramEnv(t, nil)
	c := e.accept()
	if err := scramLogin(t, c, scramUser, "wrong"); err != nil {
		t.Fatal(err)
	}
	er := c.expectFatal("28P01")
	if er.Message != `password authentication failed for user "alice"` {
		t.Fatalf("message %q", er.Message)
	}
	e.expectNoDial()
}

// An unknown user goes through the same exchange and gets the same error
// (no user enumeration).
func TestScramUnknownUser(t *testing.T) {
	e := scramEnv(t, nil)
	c := e.accept()
	if err := scramLogin(t, c, "mallory", "whatever"); err != nil {
		t.Fatal(err)
	}
	er := c.expectFatal("28P01")
	if er.Message != `password authentication failed for user "mallory"` {
		t.Fatalf("message %q", er.Message)
	}
	e.expectNoDial()
}

// Malformed SCRAM messages are protocol violations, not password failures.
func TestScramMalformed(t *testing.T) {
	e := scramEnv(t, nil)
	c := e.accept()
	c.send(startupMsg(scramUser, "app"))
	c.authRequest()
	c.send(&pgproto3.SASLInitialResponse{AuthMechanism: "SCRAM-SHA-256", Data: []byte("garbage")})
	c.expectFatal("08P01")

	// A message other than a password message during authentication.
	c2 := e.accept()
	c2.send(startupMsg(scramUser, "app"))
	c2.authRequest()
	c2.query("select 1")
	c2.expectFatal("08P01")

	// An oversized password message.
	c3 := e.accept()
	c3.send(startupMsg(scramUser, "app"))
	c3.authRequest()
	c3.sendRaw([]byte{'p', 0, 1, 0, 0})
	c3.expectFatal("08P01")

	// Terminate during authentication closes quietly.
	c4 := e.accept()
	c4.send(startupMsg(scramUser, "app"))
	c4.authRequest()
	c4.send(&pgproto3.Terminate{})
	c4.expectClosed()
	c4.expectNothing()
	e.expectNoDial()
}

// The SCRAM exchange with the client split into single bytes.
func TestScramLoginByteByByte(t *testing.T) {
	e := scramEnv(t, nil)
	c := e.accept()
	c.sendSplit(enc(t, startupMsg(scramUser, "app")), func(int) int { return 1 })
	code, data := c.authRequest()
	ba := auth.NewBackendAuth(auth.BackendCreds{User: scramUser, Plain: scramPass}, nil)
	msg, _ := ba.Step(code, data)
	c.sendSplit(msg, func(int) int { return 1 })
	code, data = c.authRequest()
	msg, _ = ba.Step(code, data)
	c.sendSplit(msg, func(int) int { return 1 })
	code, data = c.authRequest()
	if code != auth.AuthSASLFinal {
		t.Fatalf("got auth code %d, want SASLFinal", code)
	}
	if _, err := ba.Step(code, data); err != nil {
		t.Fatal(err)
	}
	s := e.expectServerDial()
	s.login()
	c.expect("AuthenticationOk", "...")
}

// The proxy logs in to a SCRAM backend with the ClientKey it recovered from
// the client's proof (it never learns the password).
func TestScramPassThroughToBackend(t *testing.T) {
	sec := scramSecret(t)
	e := scramEnv(t, nil)
	c := e.accept()
	if err := scramLogin(t, c, scramUser, scramPass); err != nil {
		t.Fatal(err)
	}
	s := e.expectServerDial()
	s.startup()

	// The backend asks for SCRAM with the same verifier.
	ss, err := auth.NewScramServer(scramUser, sec, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.reply(&pgproto3.AuthenticationSASL{AuthMechanisms: []string{"SCRAM-SHA-256"}})
	first := splitMsgs(t, s.recvRaw())
	if len(first) != 1 || first[0][0] != 'p' {
		t.Fatalf("backend wanted SASLInitialResponse, got %q", first)
	}
	sf, err := ss.HandleInitial(first[0][5:])
	if err != nil {
		t.Fatal(err)
	}
	s.reply(&pgproto3.AuthenticationSASLContinue{Data: sf})
	second := splitMsgs(t, s.recvRaw())
	if len(second) != 1 || second[0][0] != 'p' {
		t.Fatalf("backend wanted SASLResponse, got %q", second)
	}
	fin, err := ss.HandleFinal(second[0][5:])
	if err != nil {
		t.Fatalf("backend rejected the proxy's ClientKey login: %v", err)
	}
	s.reply(append([]encoder{&pgproto3.AuthenticationSASLFinal{Data: fin}}, loginMsgs(backendPID, backendSecret)...)...)
	c.expect("AuthenticationOk", "...")
	s.expectState(proxy.ServerIdle)
}

// md5 authentication with an md5 secret.
func TestMD5Login(t *testing.T) {
	for _, tc := range []struct {
		pw   string
		code string
	}{{scramPass, ""}, {"wrong", "28P01"}} {
		e := newEnv(t, func(o *proxy.Options) {
			o.AuthType = proxy.AuthMD5
			o.Secrets = map[string]auth.Secret{scramUser: auth.ParseSecret(auth.MD5Hash(scramUser, scramPass))}
		})
		c := e.accept()
		c.send(startupMsg(scramUser, "app"))
		code, data := c.authRequest()
		if code != auth.AuthMD5Password || len(data) != 4 {
			t.Fatalf("got auth %d %q, want md5 with a salt", code, data)
		}
		ba := auth.NewBackendAuth(auth.BackendCreds{User: scramUser, Plain: tc.pw}, nil)
		msg, err := ba.Step(code, data)
		if err != nil {
			t.Fatal(err)
		}
		c.sendRaw(msg)
		if tc.code != "" {
			er := c.expectFatal(tc.code)
			if !strings.Contains(er.Message, "password authentication failed") {
				t.Fatalf("message %q", er.Message)
			}
			continue
		}
		s := e.expectServerDial()
		s.login()
		c.expect("AuthenticationOk", "...")
	}
}
