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
	"strings"
)

// Authentication request codes: the int32 that follows 'R' in the
// backend's Authentication* messages.
const (
	AuthOK                int32 = 0
	AuthKerberosV5        int32 = 2
	AuthCleartextPassword int32 = 3
	AuthMD5Password       int32 = 5
	AuthGSS               int32 = 7
	AuthGSSContinue       int32 = 8
	AuthSSPI              int32 = 9
	AuthSASL              int32 = 10
	AuthSASLContinue      int32 = 11
	AuthSASLFinal         int32 = 12
)

// BackendCreds are what the proxy knows about a user when logging in to
// PostgreSQL on its behalf. Set what is available; BackendAuth picks what
// the server's requested method needs.
type BackendCreds struct {
	User  string
	Plain string // plaintext password ("" = unknown): works for every method
	MD5   string // "md5"+32 hex: answers md5 challenges
	// ClientKey alone answers SCRAM-SHA-256 (StoredKey = SHA-256(ClientKey)),
	// but only if the backend's verifier is the one it came from (same salt
	// and iteration count). ScramServer.ClientKey supplies it.
	ClientKey *[32]byte
	// ServerKey, optional, lets a ClientKey-only login verify the server's
	// signature. (With Plain the ServerKey is derived and always checked.)
	ServerKey *[32]byte
	// ScramSalt and ScramIterations, optional: the salt and iteration count
	// of the verifier ClientKey belongs to. When set and the server offers
	// different ones, ClientKey is not used (Plain is, if set; otherwise
	// Step fails with a clear error instead of a failed login).
	ScramSalt       []byte
	ScramIterations int
}

type backendState uint8

const (
	bsInit             backendState = iota
	bsPasswordSent                  // cleartext or md5 answer sent; expect AuthOK
	bsSASLInitialSent               // expect SASLContinue
	bsSASLResponseSent              // expect SASLFinal
	bsSASLFinalOK                   // expect AuthOK
	bsOK                            // authenticated
	bsFailed
)

// BackendAuth answers one backend connection's authentication requests,
// the proxy acting as the client. Feed it every Authentication message
// ('R') the server sends, in order, until AuthOK (or an ErrorResponse,
// which the caller handles). Any error ends the exchange.
type BackendAuth struct {
	creds BackendCreds
	rnd   io.Reader
	state backendState
	meth  string

	clientNonce     string
	clientFirstBare string
	verifyServer    bool
	serverSig       [32]byte

	testClientNonce string // tests: fixed client nonce
	testUser        string // tests: user name sent in client-first (default empty, like libpq)
	maxIterations   int    // tests: refuse larger iteration counts (0 = no limit)
}

// NewBackendAuth prepares to log in with creds. rnd supplies the SCRAM
// client nonce; nil means crypto/rand.
func NewBackendAuth(c BackendCreds, rnd io.Reader) *BackendAuth {
	return &BackendAuth{creds: c, rnd: rnd}
}

// Done reports whether the server sent AuthenticationOk (code 0).
func (b *BackendAuth) Done() bool { return b.state == bsOK }

// Method names the method the server asked for so far: "trust",
// "password", "md5", "SCRAM-SHA-256", or "" before the first Step.
func (b *BackendAuth) Method() string { return b.meth }

// Step handles one Authentication request: authType is the int32 code
// after 'R' and data the rest of the message body. It returns the complete
// frontend message to send ('p', int32 length, body), or nil when nothing
// is to be sent (AuthOK; SASLFinal once the server signature is checked).
// With Plain, SCRAM runs PBKDF2 with the server's iteration count.
func (b *BackendAuth) Step(authType int32, data []byte) ([]byte, error) {
	reply, err := b.step(authType, data)
	if err != nil {
		b.state = bsFailed
	}
	return reply, err
}

func (b *BackendAuth) unexpected(authType int32) error {
	return fmt.Errorf("%w: unexpected authentication request %d from the server (method %q)", ErrProtocol, authType, b.meth)
}

func (b *BackendAuth) step(authType int32, data []byte) ([]byte, error) {
	switch authType {
	case AuthOK:
		switch b.state {
		case bsInit:
			b.meth = "trust"
		case bsPasswordSent, bsSASLFinalOK:
		case bsSASLInitialSent, bsSASLResponseSent:
			return nil, fmt.Errorf("%w: server sent AuthenticationOk before the SCRAM exchange completed", ErrProtocol)
		default:
			return nil, b.unexpected(authType)
		}
		b.state = bsOK
		return nil, nil

	case AuthCleartextPassword:
		if b.state != bsInit {
			return nil, b.unexpected(authType)
		}
		b.meth = "password"
		if b.creds.Plain == "" {
			return nil, fmt.Errorf("%w: server requested cleartext password authentication for user %q, but no plaintext password is known", ErrNoCredentials, b.creds.User)
		}
		b.state = bsPasswordSent
		return passwordMessage(b.creds.Plain), nil

	case AuthMD5Password:
		if b.state != bsInit {
			return nil, b.unexpected(authType)
		}
		b.meth = "md5"
		if len(data) != 4 {
			return nil, fmt.Errorf("%w: AuthenticationMD5Password with %d bytes of salt", ErrProtocol, len(data))
		}
		var hexpart string
		switch {
		case b.creds.Plain != "":
			hexpart = MD5Hash(b.creds.User, b.creds.Plain)[3:]
		case isMD5Secret(b.creds.MD5):
			hexpart = b.creds.MD5[3:]
		default:
			return nil, fmt.Errorf("%w: server requested md5 authentication for user %q, but neither a plaintext password nor an md5 hash is known", ErrNoCredentials, b.creds.User)
		}
		b.state = bsPasswordSent
		return passwordMessage(md5Response(hexpart, [4]byte(data))), nil

	case AuthSASL:
		if b.state != bsInit {
			return nil, b.unexpected(authType)
		}
		b.meth = MechScramSHA256
		return b.saslInitial(data)

	case AuthSASLContinue:
		if b.state != bsSASLInitialSent {
			return nil, b.unexpected(authType)
		}
		return b.saslContinue(string(data))

	case AuthSASLFinal:
		if b.state != bsSASLResponseSent {
			return nil, b.unexpected(authType)
		}
		return nil, b.saslFinal(string(data))

	case AuthKerberosV5, AuthGSS, AuthGSSContinue, AuthSSPI:
		return nil, fmt.Errorf("%w: server requested authentication method %d (Kerberos/GSSAPI/SSPI)", ErrUnsupported, authType)
	}
	return nil, fmt.Errorf("%w: server requested unknown authentication method %d", ErrUnsupported, authType)
}

func (b *BackendAuth) saslInitial(data []byte) ([]byte, error) {
	found := false
	for rest := data; ; {
		i := bytes.IndexByte(rest, 0)
		if i < 0 {
			return nil, fmt.Errorf("%w: malformed AuthenticationSASL mechanism list", ErrProtocol)
		}
		if i == 0 {
			break
		}
		if string(rest[:i]) == MechScramSHA256 {
			found = true
		}
		rest = rest[i+1:]
	}
	if !found {
		return nil, fmt.Errorf("%w: server offered no SASL mechanism this proxy supports (%q)", ErrUnsupported,
			strings.ReplaceAll(strings.TrimRight(string(data), "\x00"), "\x00", ","))
	}
	if b.creds.ClientKey == nil && b.creds.Plain == "" {
		return nil, fmt.Errorf("%w: server requested SCRAM-SHA-256 authentication for user %q, but neither a plaintext password nor a SCRAM ClientKey is known", ErrNoCredentials, b.creds.User)
	}
	nonce := b.testClientNonce
	if nonce == "" {
		var err error
		if nonce, err = randomNonce(b.rnd); err != nil {
			return nil, err
		}
	}
	b.clientNonce = nonce
	// The user name is left empty like libpq does: PostgreSQL ignores it
	// and uses the startup packet's user (avoids escaping and SASLprep).
	b.clientFirstBare = "n=" + b.testUser + ",r=" + nonce
	clientFirst := "n,," + b.clientFirstBare

	msg := make([]byte, 0, 5+len(MechScramSHA256)+1+4+len(clientFirst))
	msg = append(msg, 'p', 0, 0, 0, 0)
	msg = append(msg, MechScramSHA256...)
	msg = append(msg, 0)
	msg = binary.BigEndian.AppendUint32(msg, uint32(len(clientFirst)))
	msg = append(msg, clientFirst...)
	binary.BigEndian.PutUint32(msg[1:], uint32(len(msg)-1))
	b.state = bsSASLInitialSent
	return msg, nil
}

func (b *BackendAuth) saslContinue(serverFirst string) ([]byte, error) {
	attrs, err := splitAttrs(serverFirst)
	if err != nil {
		return nil, protoErr("malformed server-first-message: %v", err)
	}
	if attrs[0].name == 'm' {
		return nil, fmt.Errorf("%w: SCRAM mandatory extension in server-first-message", ErrUnsupported)
	}
	if len(attrs) < 3 || attrs[0].name != 'r' || attrs[1].name != 's' || attrs[2].name != 'i' {
		return nil, protoErr("malformed server-first-message: expected r=, s= and i= attributes")
	}
	nonce := attrs[0].value
	if !strings.HasPrefix(nonce, b.clientNonce) || len(nonce) == len(b.clientNonce) || !validNonce(nonce) {
		return nil, protoErr("invalid nonce in server-first-message")
	}
	salt, err := base64.StdEncoding.DecodeString(attrs[1].value)
	if err != nil || len(salt) == 0 {
		return nil, protoErr("invalid salt in server-first-message")
	}
	iter, err := strconv.Atoi(attrs[2].value)
	if err != nil || iter <= 0 || iter > maxInt32 || attrs[2].value[0] == '+' {
		return nil, protoErr("invalid iteration count in server-first-message")
	}
	if b.maxIterations > 0 && iter > b.maxIterations {
		return nil, protoErr("iteration count %d above the test limit", iter)
	}

	c := &b.creds
	var clientKey [32]byte
	var serverKey *[32]byte
	keyMatches := len(c.ScramSalt) == 0 || (bytes.Equal(c.ScramSalt, salt) && c.ScramIterations == iter)
	switch {
	case c.ClientKey != nil && keyMatches:
		clientKey, serverKey = *c.ClientKey, c.ServerKey
	case c.Plain != "":
		keys, err := deriveKeys(c.Plain, salt, iter)
		if err != nil {
			return nil, err
		}
		clientKey, serverKey = keys.clientKey, &keys.serverKey
	default:
		return nil, fmt.Errorf("%w: the server's SCRAM verifier for user %q has a different salt or iteration count than the proxy's stored secret, so its ClientKey cannot be used (update the stored secret from pg_authid, or configure the plaintext password)", ErrNoCredentials, c.User)
	}

	withoutProof := "c=biws,r=" + nonce // biws = base64("n,,")
	authMessage := b.clientFirstBare + "," + serverFirst + "," + withoutProof
	storedKey := sha256.Sum256(clientKey[:])
	proof := xor32(clientKey, hmacSHA256(storedKey[:], authMessage))
	if serverKey != nil {
		b.verifyServer = true
		b.serverSig = hmacSHA256(serverKey[:], authMessage)
	}
	clientFinal := withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof[:])

	msg := make([]byte, 0, 5+len(clientFinal))
	msg = append(msg, 'p')
	msg = binary.BigEndian.AppendUint32(msg, uint32(4+len(clientFinal)))
	msg = append(msg, clientFinal...)
	b.state = bsSASLResponseSent
	return msg, nil
}

func (b *BackendAuth) saslFinal(serverFinal string) error {
	attrs, err := splitAttrs(serverFinal)
	if err != nil {
		return protoErr("malformed server-final-message: %v", err)
	}
	switch attrs[0].name {
	case 'e':
		return fmt.Errorf("%w: server reported SCRAM error %q", ErrServerSignature, truncate(attrs[0].value))
	case 'v':
	default:
		return protoErr("malformed server-final-message: expected v= attribute")
	}
	sig, err := base64.StdEncoding.DecodeString(attrs[0].value)
	if err != nil || len(sig) != sha256.Size {
		return protoErr("malformed server signature")
	}
	if b.verifyServer && subtle.ConstantTimeCompare(sig, b.serverSig[:]) != 1 {
		return ErrServerSignature
	}
	b.state = bsSASLFinalOK
	return nil
}

// passwordMessage frames a PasswordMessage: 'p', int32 length, s, NUL.
func passwordMessage(s string) []byte {
	msg := make([]byte, 0, 6+len(s))
	msg = append(msg, 'p')
	msg = binary.BigEndian.AppendUint32(msg, uint32(4+len(s)+1))
	msg = append(msg, s...)
	return append(msg, 0)
}
