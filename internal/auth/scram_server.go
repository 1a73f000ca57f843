package auth

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"strconv"
)

type scramServerState uint8

const (
	ssInitial   scramServerState = iota // waiting for SASLInitialResponse
	ssFirstSent                         // server-first sent, waiting for SASLResponse
	ssDone                              // authenticated
	ssFailed                            // any error; the exchange is over
)

// ScramServer verifies one client's SCRAM-SHA-256 login: the proxy plays the
// PostgreSQL server. Typical use by the client state machine:
//
//	s, err := auth.NewScramServer(user, secret, nil)
//	send AuthenticationSASL (code 10) with body s.Mechanisms()
//	first, err := s.HandleInitial(body of the client's 'p' SASLInitialResponse)
//	send AuthenticationSASLContinue (code 11) with data first
//	final, err := s.HandleFinal(body of the client's 'p' SASLResponse)
//	send AuthenticationSASLFinal (code 12) with data final, then AuthenticationOk
//
// Any error ends the exchange (later calls fail with ErrProtocol).
// ErrPasswordMismatch → SQLSTATE 28P01; ErrProtocol/ErrUnsupported → 08P01.
type ScramServer struct {
	secret ScramSecret
	doomed bool // unknown user or unusable secret: always fails at the end
	rnd    io.Reader
	state  scramServerState

	gs2Header       string // "n,," or "y,,"
	clientFirstBare string
	serverFirst     string
	nonce           string // client nonce + server nonce
	clientKey       [32]byte

	testServerNonce string // tests: fixed server nonce instead of a random one
}

// NewScramServer prepares a SCRAM-SHA-256 exchange for user against sec.
// A SCRAM secret is used as is. From a plaintext secret a verifier is
// derived with a fresh random 16-byte salt and 4096 iterations (PBKDF2 per
// call: some CPU). An empty plaintext password yields a server that goes
// through the exchange and fails with ErrPasswordMismatch. An md5 secret
// returns ErrScramWithMD5. rnd supplies the nonce and salt; nil means
// crypto/rand. The user name is not used by SCRAM (PostgreSQL ignores the
// name inside SCRAM messages and uses the startup packet's user).
func NewScramServer(user string, sec Secret, rnd io.Reader) (*ScramServer, error) {
	_ = user
	switch sec.Kind {
	case SecretScram:
		if sec.Scram == nil || sec.Scram.Iterations <= 0 || len(sec.Scram.Salt) == 0 {
			return nil, fmt.Errorf("auth: invalid SCRAM secret")
		}
		s := &ScramServer{secret: *sec.Scram, rnd: rnd}
		s.secret.Salt = append([]byte(nil), sec.Scram.Salt...)
		return s, nil
	case SecretPlain:
		if sec.Plain == "" {
			return NewScramServerUnknownUser(rnd)
		}
		salt, err := randomBytes(rnd, scramSaltLen)
		if err != nil {
			return nil, err
		}
		sc, err := NewScramSecret(sec.Plain, salt, DefaultScramIterations)
		if err != nil {
			return nil, err
		}
		return &ScramServer{secret: *sc, rnd: rnd}, nil
	case SecretMD5:
		return nil, ErrScramWithMD5
	}
	return nil, fmt.Errorf("auth: unknown secret kind %v", sec.Kind)
}

// NewScramServerUnknownUser returns a ScramServer for a user that does not
// exist (or has no usable password): it performs the whole exchange with a
// random salt and random keys, then fails with ErrPasswordMismatch, so the
// message flow does not reveal that the user is unknown. The salt changes
// on every call, like for users with plaintext secrets; where real users
// have SCRAM secrets (stable salts) prefer NewScramServerUnknownUserStable.
func NewScramServerUnknownUser(rnd io.Reader) (*ScramServer, error) {
	salt, err := randomBytes(rnd, scramSaltLen)
	if err != nil {
		return nil, err
	}
	return newDoomed(salt, rnd)
}

// NewScramServerUnknownUserStable is NewScramServerUnknownUser with a salt
// derived from user and a process-wide random mockKey (like PostgreSQL's
// mock authentication), so repeated attempts for the same unknown user see
// the same salt, as they would for a real user with a SCRAM secret.
func NewScramServerUnknownUserStable(user string, mockKey []byte, rnd io.Reader) (*ScramServer, error) {
	mac := hmacSHA256(mockKey, "poolmgr mock SCRAM salt\x00", user)
	return newDoomed(mac[:scramSaltLen], rnd)
}

func newDoomed(salt []byte, rnd io.Reader) (*ScramServer, error) {
	keys, err := randomBytes(rnd, 64)
	if err != nil {
		return nil, err
	}
	s := &ScramServer{doomed: true, rnd: rnd}
	s.secret.Iterations = DefaultScramIterations
	s.secret.Salt = append([]byte(nil), salt...)
	copy(s.secret.StoredKey[:], keys[:32])
	copy(s.secret.ServerKey[:], keys[32:])
	return s, nil
}

var scramMechanisms = []byte(MechScramSHA256 + "\x00\x00")

// Mechanisms returns the data of AuthenticationSASL (after the int32 code
// 10): the list of offered mechanisms, "SCRAM-SHA-256\x00\x00". No -PLUS
// variant is offered: channel binding needs TLS. The caller must not modify
// the returned slice.
func (s *ScramServer) Mechanisms() []byte { return scramMechanisms }

// ClientKey returns the client's ClientKey recovered from its proof
// (ClientProof XOR HMAC(StoredKey, AuthMessage)); valid only after
// HandleFinal succeeded (zero before). With it the proxy can log in to the
// backend as this user via SCRAM (BackendCreds.ClientKey), provided the
// secret was the backend's own verifier (a verifier derived here from a
// plaintext password has a random salt, so its ClientKey is useless there:
// use the plaintext password instead).
func (s *ScramServer) ClientKey() [32]byte {
	if s.state != ssDone {
		return [32]byte{}
	}
	return s.clientKey
}

// Done reports whether the exchange completed successfully.
func (s *ScramServer) Done() bool { return s.state == ssDone }

// HandleInitial processes the body of the client's SASLInitialResponse
// message (after 'p' and the length): mechanism name (C string), int32
// length of the data, data = client-first-message. It returns the
// server-first-message ("r=...,s=...,i=...") to send as the data of
// AuthenticationSASLContinue.
func (s *ScramServer) HandleInitial(body []byte) ([]byte, error) {
	if s.state != ssInitial {
		s.state = ssFailed
		return nil, protoErr("unexpected SASLInitialResponse")
	}
	s.state = ssFailed // until success
	i := bytes.IndexByte(body, 0)
	if i < 0 {
		return nil, protoErr("SASLInitialResponse: missing mechanism name terminator")
	}
	switch mech := string(body[:i]); mech {
	case MechScramSHA256:
	case MechScramSHA256Plus:
		return nil, fmt.Errorf("%w: SCRAM channel binding (%s) is not supported without TLS", ErrUnsupported, mech)
	default:
		return nil, fmt.Errorf("%w: client selected an invalid SASL authentication mechanism %q", ErrUnsupported, truncate(mech))
	}
	rest := body[i+1:]
	if len(rest) < 4 {
		return nil, protoErr("SASLInitialResponse: truncated")
	}
	n := int32(binary.BigEndian.Uint32(rest))
	data := rest[4:]
	if n < 0 {
		return nil, protoErr("SASLInitialResponse without client-first-message")
	}
	if int(n) != len(data) {
		return nil, protoErr("SASLInitialResponse: data length %d does not match message (%d bytes)", n, len(data))
	}
	if err := s.parseClientFirst(string(data)); err != nil {
		return nil, err
	}
	serverNonce := s.testServerNonce
	if serverNonce == "" {
		var err error
		if serverNonce, err = randomNonce(s.rnd); err != nil {
			return nil, err
		}
	}
	s.nonce += serverNonce
	s.serverFirst = "r=" + s.nonce + ",s=" + base64.StdEncoding.EncodeToString(s.secret.Salt) +
		",i=" + strconv.Itoa(s.secret.Iterations)
	s.state = ssFirstSent
	return []byte(s.serverFirst), nil
}

// parseClientFirst parses gs2-header client-first-message-bare and records
// the gs2 header, the bare message and the client nonce (in s.nonce).
func (s *ScramServer) parseClientFirst(msg string) error {
	if msg == "" {
		return protoErr("empty client-first-message")
	}
	switch msg[0] {
	case 'n', 'y':
		// 'y': the client supports channel binding but thinks we do not.
		// True: we offer no -PLUS mechanism (no TLS), so accept it.
		if len(msg) < 2 || msg[1] != ',' {
			return protoErr("malformed client-first-message: comma expected after channel binding flag")
		}
	case 'p':
		return protoErr("the client selected SCRAM-SHA-256 without channel binding, but the SCRAM message includes channel binding data")
	default:
		return protoErr("malformed client-first-message: unexpected channel binding flag %q", msg[0])
	}
	switch {
	case len(msg) >= 3 && msg[2] == ',':
	case len(msg) >= 3 && msg[2] == 'a':
		return fmt.Errorf("%w: SCRAM authorization identity (a=) is not supported", ErrUnsupported)
	default:
		return protoErr("malformed client-first-message: comma expected after gs2 header")
	}
	s.gs2Header = msg[:3]
	bare := msg[3:]
	attrs, err := splitAttrs(bare)
	if err != nil {
		return protoErr("malformed client-first-message: %v", err)
	}
	if attrs[0].name == 'm' {
		return fmt.Errorf("%w: SCRAM mandatory extensions are not supported", ErrUnsupported)
	}
	if attrs[0].name != 'n' {
		return protoErr("malformed client-first-message: expected n= attribute")
	}
	// attrs[0].value is the user name: ignored, as in PostgreSQL.
	if len(attrs) < 2 || attrs[1].name != 'r' {
		return protoErr("malformed client-first-message: expected r= attribute")
	}
	if !validNonce(attrs[1].value) {
		return protoErr("malformed client-first-message: invalid client nonce")
	}
	// Further attributes are optional extensions: ignored.
	s.clientFirstBare = bare
	s.nonce = attrs[1].value
	return nil
}

// HandleFinal processes the body of the client's SASLResponse message (the
// client-final-message) and verifies the proof. On success it returns the
// server-final-message ("v=<server signature>") to send as the data of
// AuthenticationSASLFinal, and ClientKey becomes available. A wrong proof
// (or an unknown user) gives ErrPasswordMismatch.
func (s *ScramServer) HandleFinal(body []byte) ([]byte, error) {
	if s.state != ssFirstSent {
		s.state = ssFailed
		return nil, protoErr("unexpected SASLResponse")
	}
	s.state = ssFailed // until success
	msg := string(body)
	attrs, err := splitAttrs(msg)
	if err != nil {
		return nil, protoErr("malformed client-final-message: %v", err)
	}
	if attrs[0].name != 'c' {
		return nil, protoErr("malformed client-final-message: expected c= attribute")
	}
	cbind, err := base64.StdEncoding.DecodeString(attrs[0].value)
	if err != nil {
		return nil, protoErr("malformed client-final-message: invalid channel binding data")
	}
	if string(cbind) != s.gs2Header {
		return nil, protoErr("channel binding data does not match the client-first-message")
	}
	if len(attrs) < 2 || attrs[1].name != 'r' {
		return nil, protoErr("malformed client-final-message: expected r= attribute")
	}
	if attrs[1].value != s.nonce {
		return nil, protoErr("client-final-message nonce does not match")
	}
	last := attrs[len(attrs)-1]
	if len(attrs) < 3 || last.name != 'p' {
		return nil, protoErr("malformed client-final-message: proof (p=) must be the last attribute")
	}
	for _, a := range attrs[2 : len(attrs)-1] {
		if a.name == 'p' {
			return nil, protoErr("malformed client-final-message: duplicate proof")
		}
	}
	proofBytes, err := base64.StdEncoding.DecodeString(last.value)
	if err != nil || len(proofBytes) != sha256.Size {
		return nil, protoErr("malformed client-final-message: invalid proof")
	}
	var proof [32]byte
	copy(proof[:], proofBytes)
	withoutProof := msg[:last.off-1]

	authMessage := s.clientFirstBare + "," + s.serverFirst + "," + withoutProof
	clientSig := hmacSHA256(s.secret.StoredKey[:], authMessage)
	clientKey := xor32(proof, clientSig)
	stored := sha256.Sum256(clientKey[:])
	ok := subtle.ConstantTimeCompare(stored[:], s.secret.StoredKey[:]) == 1
	if !ok || s.doomed {
		return nil, ErrPasswordMismatch
	}
	s.clientKey = clientKey
	serverSig := hmacSHA256(s.secret.ServerKey[:], authMessage)
	s.state = ssDone
	return []byte("v=" + base64.StdEncoding.EncodeToString(serverSig[:])), nil
}
