package auth

import "errors"

// Sentinel errors. Functions wrap them with details (use errors.Is).
var (
	// ErrPasswordMismatch: the client's password, md5 response or SCRAM
	// proof is wrong, or the user is unknown (the two are not told apart).
	// Report SQLSTATE 28P01 "password authentication failed for user ...".
	ErrPasswordMismatch = errors.New("password authentication failed")

	// ErrMD5WithScram: md5 authentication was attempted against a SCRAM
	// secret, which cannot answer an md5 challenge. Like PgBouncer, the
	// caller should then offer SCRAM-SHA-256 to the client instead.
	ErrMD5WithScram = errors.New("md5 authentication is not possible with a SCRAM secret")

	// ErrScramWithMD5: SCRAM was attempted with an md5 secret, which cannot
	// produce a SCRAM verifier.
	ErrScramWithMD5 = errors.New("SCRAM authentication is not possible with an md5 secret")

	// ErrNoCredentials: BackendAuth lacks the credentials the server's
	// requested method needs (the wrapped message names the method).
	ErrNoCredentials = errors.New("no credentials for the requested authentication method")

	// ErrProtocol: a malformed or unexpected message (SQLSTATE 08P01).
	ErrProtocol = errors.New("authentication protocol violation")

	// ErrUnsupported: the peer asked for a method or feature this package
	// does not implement (GSSAPI, SSPI, channel binding, ...).
	ErrUnsupported = errors.New("unsupported authentication method")

	// ErrServerSignature: the backend's SCRAM server signature did not
	// verify, i.e. the server does not know the password (possible
	// impostor), or the backend sent an error in its server-final message.
	ErrServerSignature = errors.New("SCRAM server signature verification failed")
)
