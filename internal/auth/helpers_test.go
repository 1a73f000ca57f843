package auth

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// detRand is a deterministic random source for tests.
func detRand(seed byte) *rand.ChaCha8 {
	var s [32]byte
	s[0] = seed
	return rand.NewChaCha8(s)
}

// initialBody builds a SASLInitialResponse body for mech and client-first.
func initialBody(mech, clientFirst string) []byte {
	b := append([]byte(mech), 0)
	b = binary.BigEndian.AppendUint32(b, uint32(len(clientFirst)))
	return append(b, clientFirst...)
}

// frontendBody checks the framing of a frontend 'p' message and returns its body.
func frontendBody(t testing.TB, msg []byte) []byte {
	t.Helper()
	if len(msg) < 5 || msg[0] != 'p' {
		t.Fatalf("not a 'p' message: %q", msg)
	}
	if n := binary.BigEndian.Uint32(msg[1:]); int(n) != len(msg)-1 {
		t.Fatalf("length field %d, message has %d bytes after the type", n, len(msg)-1)
	}
	return msg[5:]
}

// runScram drives a BackendAuth (client) against a ScramServer and returns
// the server's and the client's final errors.
func runScram(t testing.TB, srv *ScramServer, cli *BackendAuth) (srvErr, cliErr error) {
	t.Helper()
	msg, err := cli.Step(AuthSASL, srv.Mechanisms())
	if err != nil {
		return nil, err
	}
	first, err := srv.HandleInitial(frontendBody(t, msg))
	if err != nil {
		return err, nil
	}
	msg, err = cli.Step(AuthSASLContinue, first)
	if err != nil {
		return nil, err
	}
	final, err := srv.HandleFinal(frontendBody(t, msg))
	if err != nil {
		return err, nil
	}
	reply, err := cli.Step(AuthSASLFinal, final)
	if err != nil {
		return nil, err
	}
	if reply != nil {
		t.Fatalf("reply after SASLFinal: %q", reply)
	}
	if _, err := cli.Step(AuthOK, nil); err != nil {
		return nil, err
	}
	if !cli.Done() {
		t.Fatal("client not done after AuthOK")
	}
	return nil, nil
}
