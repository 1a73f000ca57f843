package auth

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"

	"github.com/xdg-go/stringprep"
)

// Mechanism names.
const (
	MechScramSHA256     = "SCRAM-SHA-256"
	MechScramSHA256Plus = "SCRAM-SHA-256-PLUS"
)

const (
	// DefaultScramIterations is the iteration count used when a verifier is
	// derived from a plaintext password (PostgreSQL's default).
	DefaultScramIterations = 4096
	scramSaltLen           = 16 // bytes of a generated salt
	scramRawNonceLen       = 18 // random bytes in a nonce (base64: 24 chars)
)

type scramKeys struct {
	clientKey, serverKey [32]byte
}

// saslPrep normalises a password like PostgreSQL's pg_saslprep: if the
// password is not valid UTF-8 or contains prohibited (including unassigned)
// code points, it is used as is.
func saslPrep(pw string) string {
	if p, err := stringprep.SASLprep.Prepare(pw); err == nil {
		return p
	}
	return pw
}

func deriveKeys(password string, salt []byte, iterations int) (scramKeys, error) {
	var k scramKeys
	if iterations <= 0 {
		return k, fmt.Errorf("%w: SCRAM iteration count %d", ErrProtocol, iterations)
	}
	salted, err := pbkdf2.Key(sha256.New, saslPrep(password), salt, iterations, sha256.Size)
	if err != nil {
		return k, fmt.Errorf("SCRAM key derivation: %w", err)
	}
	k.clientKey = hmacSHA256(salted, "Client Key")
	k.serverKey = hmacSHA256(salted, "Server Key")
	return k, nil
}

func hmacSHA256(key []byte, msgs ...string) [32]byte {
	m := hmac.New(sha256.New, key)
	for _, s := range msgs {
		io.WriteString(m, s)
	}
	var out [32]byte
	m.Sum(out[:0])
	return out
}

func xor32(a, b [32]byte) [32]byte {
	for i := range a {
		a[i] ^= b[i]
	}
	return a
}

func randomBytes(rnd io.Reader, n int) ([]byte, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(rnd, b); err != nil {
		return nil, fmt.Errorf("auth: reading random bytes: %w", err)
	}
	return b, nil
}

func randomNonce(rnd io.Reader) (string, error) {
	b, err := randomBytes(rnd, scramRawNonceLen)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// scramAttr is one "x=value" attribute of a SCRAM message, with its byte
// offset in the message (start of the attribute letter).
type scramAttr struct {
	name  byte
	value string
	off   int
}

// splitAttrs splits a SCRAM message into its comma-separated attributes and
// checks each has the form ALPHA "=" value. No value may contain ',' (RFC
// 5802 escapes it in names; nonces, base64 and numbers never contain one).
func splitAttrs(msg string) ([]scramAttr, error) {
	if msg == "" {
		return nil, errors.New("empty message")
	}
	var attrs []scramAttr
	off := 0
	for {
		end := off
		for end < len(msg) && msg[end] != ',' {
			end++
		}
		a := msg[off:end]
		if len(a) < 2 || a[1] != '=' || !isAlpha(a[0]) {
			return nil, fmt.Errorf("malformed attribute %q", truncate(a))
		}
		attrs = append(attrs, scramAttr{name: a[0], value: a[2:], off: off})
		if end == len(msg) {
			return attrs, nil
		}
		off = end + 1
		if len(attrs) > 64 {
			return nil, errors.New("too many attributes")
		}
	}
}

func isAlpha(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

// validNonce: printable ASCII except ',' (RFC 5802), non-empty.
func validNonce(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == ',' {
			return false
		}
	}
	return true
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

func protoErr(format string, args ...any) error {
	return fmt.Errorf("%w: SCRAM: "+format, append([]any{ErrProtocol}, args...)...)
}
