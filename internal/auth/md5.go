package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"io"
)

// NewMD5Challenge returns a random 4-byte salt for AuthenticationMD5Password
// (code 5). rnd nil means crypto/rand; if rnd fails, crypto/rand is used.
func NewMD5Challenge(rnd io.Reader) [4]byte {
	var salt [4]byte
	if rnd == nil || func() bool { _, err := io.ReadFull(rnd, salt[:]); return err != nil }() {
		rand.Read(salt[:])
	}
	return salt
}

// VerifyMD5 checks the password a client sent (the PasswordMessage string,
// without its terminating NUL) in answer to an md5 challenge with salt.
// It works with a plaintext or md5 secret; with a SCRAM secret it returns
// ErrMD5WithScram (the caller then switches to SCRAM, as PgBouncer does). A
// wrong response, or an empty plaintext password, gives ErrPasswordMismatch.
func VerifyMD5(sec Secret, user string, salt [4]byte, clientResponse string) error {
	var hexpart string
	switch sec.Kind {
	case SecretPlain:
		if sec.Plain == "" {
			return ErrPasswordMismatch
		}
		hexpart = MD5Hash(user, sec.Plain)[3:]
	case SecretMD5:
		if !isMD5Secret(sec.MD5) {
			return fmt.Errorf("auth: invalid md5 secret")
		}
		hexpart = sec.MD5[3:]
	case SecretScram:
		return ErrMD5WithScram
	default:
		return fmt.Errorf("auth: unknown secret kind %v", sec.Kind)
	}
	want := md5Response(hexpart, salt)
	if subtle.ConstantTimeCompare([]byte(want), []byte(clientResponse)) != 1 {
		return ErrPasswordMismatch
	}
	return nil
}

// VerifyPassword checks a cleartext password (AuthenticationCleartextPassword,
// i.e. auth_type "plain"/"password") against any kind of secret: plaintext,
// md5 (hashed with user) or SCRAM (derived with the verifier's salt and
// iterations: PBKDF2 cost). Mismatch or empty password: ErrPasswordMismatch.
func VerifyPassword(sec Secret, user, password string) error {
	if password == "" {
		return ErrPasswordMismatch
	}
	ok := false
	switch sec.Kind {
	case SecretPlain:
		ok = sec.Plain != "" && subtle.ConstantTimeCompare([]byte(sec.Plain), []byte(password)) == 1
	case SecretMD5:
		ok = isMD5Secret(sec.MD5) && subtle.ConstantTimeCompare([]byte(sec.MD5), []byte(MD5Hash(user, password))) == 1
	case SecretScram:
		if sec.Scram == nil {
			return fmt.Errorf("auth: invalid SCRAM secret")
		}
		keys, err := deriveKeys(password, sec.Scram.Salt, sec.Scram.Iterations)
		if err != nil {
			return err
		}
		stored := sha256.Sum256(keys.clientKey[:])
		ok = subtle.ConstantTimeCompare(stored[:], sec.Scram.StoredKey[:]) == 1 &&
			subtle.ConstantTimeCompare(keys.serverKey[:], sec.Scram.ServerKey[:]) == 1
	default:
		return fmt.Errorf("auth: unknown secret kind %v", sec.Kind)
	}
	if !ok {
		return ErrPasswordMismatch
	}
	return nil
}
