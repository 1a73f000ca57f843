package auth

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strconv"
	"strings"
)

// SecretKind tells which form of password a Secret holds.
type SecretKind uint8

// Kinds of Secret.
const (
	SecretPlain SecretKind = iota // the password itself
	SecretMD5                     // "md5" + hex(md5(password + user))
	SecretScram                   // a SCRAM-SHA-256 verifier
)

func (k SecretKind) String() string {
	switch k {
	case SecretPlain:
		return "plain"
	case SecretMD5:
		return "md5"
	case SecretScram:
		return "scram-sha-256"
	}
	return "SecretKind(" + strconv.Itoa(int(k)) + ")"
}

// ScramSecret is a SCRAM-SHA-256 verifier as PostgreSQL stores it in
// pg_authid.rolpassword.
type ScramSecret struct {
	Iterations int
	Salt       []byte
	StoredKey  [32]byte
	ServerKey  [32]byte
}

// String formats s the way PostgreSQL stores it:
// "SCRAM-SHA-256$<iterations>:<b64 salt>$<b64 StoredKey>:<b64 ServerKey>".
func (s *ScramSecret) String() string {
	b64 := base64.StdEncoding
	return scramPrefix + strconv.Itoa(s.Iterations) + ":" + b64.EncodeToString(s.Salt) +
		"$" + b64.EncodeToString(s.StoredKey[:]) + ":" + b64.EncodeToString(s.ServerKey[:])
}

// Secret is a user's stored password in one of three forms. Only the field
// matching Kind is set. An empty plaintext password never authenticates.
type Secret struct {
	Kind  SecretKind
	Plain string       // SecretPlain: the password
	MD5   string       // SecretMD5: "md5" + 32 lowercase hex digits
	Scram *ScramSecret // SecretScram
}

// String describes the secret's kind without revealing it, so a Secret that
// ends up in a log line or error message leaks nothing.
func (s Secret) String() string { return "Secret(" + s.Kind.String() + ")" }

// GoString is the %#v form; it is redacted like String.
func (s Secret) GoString() string { return "auth.Secret{Kind: " + s.Kind.String() + ", <redacted>}" }

const scramPrefix = "SCRAM-SHA-256$"

// ParseSecret classifies a stored password exactly as PostgreSQL does
// (get_password_type): a well-formed SCRAM-SHA-256 verifier, or "md5"
// followed by 32 lowercase hex digits, or else a plaintext password (so a
// malformed verifier is taken as a plaintext password; ParseUserlist
// rejects those instead).
func ParseSecret(s string) Secret {
	if sc, ok := parseScramSecret(s); ok {
		return Secret{Kind: SecretScram, Scram: sc}
	}
	if isMD5Secret(s) {
		return Secret{Kind: SecretMD5, MD5: s}
	}
	return Secret{Kind: SecretPlain, Plain: s}
}

// ParseAuthQueryRow turns one row of an auth_query (usename, passwd) into a
// Secret. A NULL passwd means "no password": the caller must treat the user
// as unknown (fake authentication) rather than call this.
func ParseAuthQueryRow(usename, passwd string) Secret {
	_ = usename // md5 secrets embed the user name; nothing to check here
	return ParseSecret(passwd)
}

func isMD5Secret(s string) bool {
	if len(s) != 35 || !strings.HasPrefix(s, "md5") {
		return false
	}
	for i := 3; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func parseScramSecret(s string) (*ScramSecret, bool) {
	rest, ok := strings.CutPrefix(s, scramPrefix)
	if !ok {
		return nil, false
	}
	iterSalt, keys, ok := strings.Cut(rest, "$")
	if !ok {
		return nil, false
	}
	iterStr, saltStr, ok := strings.Cut(iterSalt, ":")
	if !ok {
		return nil, false
	}
	storedStr, serverStr, ok := strings.Cut(keys, ":")
	if !ok {
		return nil, false
	}
	iter, err := strconv.Atoi(iterStr)
	if err != nil || iter <= 0 || iter > maxInt32 {
		return nil, false
	}
	b64 := base64.StdEncoding
	salt, err := b64.DecodeString(saltStr)
	if err != nil || len(salt) == 0 {
		return nil, false
	}
	sc := &ScramSecret{Iterations: iter, Salt: salt}
	if !decodeKey(storedStr, &sc.StoredKey) || !decodeKey(serverStr, &sc.ServerKey) {
		return nil, false
	}
	return sc, true
}

const maxInt32 = 1<<31 - 1

func decodeKey(s string, dst *[32]byte) bool {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != len(dst) {
		return false
	}
	copy(dst[:], b)
	return true
}

// MD5Hash returns PostgreSQL's md5 password hash: "md5" + hex(md5(password + user)).
func MD5Hash(user, password string) string {
	h := md5.New()
	h.Write([]byte(password))
	h.Write([]byte(user))
	return "md5" + hex.EncodeToString(h.Sum(nil))
}

// md5Response computes the md5 challenge response from the hex part of an
// md5 hash (without "md5") and the server's 4-byte salt:
// "md5" + hex(md5(hexpart + salt)).
func md5Response(hexpart string, salt [4]byte) string {
	h := md5.New()
	h.Write([]byte(hexpart))
	h.Write(salt[:])
	return "md5" + hex.EncodeToString(h.Sum(nil))
}

// NewScramSecret builds a SCRAM-SHA-256 verifier for password (SASLprep'ed
// as PostgreSQL does) with the given salt and iteration count.
func NewScramSecret(password string, salt []byte, iterations int) (*ScramSecret, error) {
	keys, err := deriveKeys(password, salt, iterations)
	if err != nil {
		return nil, err
	}
	return &ScramSecret{
		Iterations: iterations,
		Salt:       append([]byte(nil), salt...),
		StoredKey:  sha256.Sum256(keys.clientKey[:]),
		ServerKey:  keys.serverKey,
	}, nil
}

// ScramClientKey derives the SCRAM-SHA-256 ClientKey for password with the
// given salt and iteration count (the ones of the backend's verifier).
func ScramClientKey(password string, salt []byte, iterations int) ([32]byte, error) {
	keys, err := deriveKeys(password, salt, iterations)
	return keys.clientKey, err
}
