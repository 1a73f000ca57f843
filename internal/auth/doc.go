// Package auth implements poolmgr's authentication logic without doing any
// I/O: every function takes message bytes and returns message bytes, never
// touches a socket, never blocks and never starts a goroutine. The proxy core
// (internal/proxy) owns the connections and feeds this package.
//
// It covers three things:
//
//   - Secrets: [ParseSecret] recognises the three forms PostgreSQL and
//     PgBouncer store ("SCRAM-SHA-256$iter:salt$StoredKey:ServerKey",
//     "md5"+32 hex digits, otherwise plaintext); [ParseUserlist] reads a
//     PgBouncer userlist.txt; [ParseAuthQueryRow] turns an auth_query row
//     into a [Secret].
//
//   - Client authentication, where the proxy plays the PostgreSQL server:
//     [ScramServer] runs SCRAM-SHA-256 (RFC 5802/7677 as PostgreSQL profiles
//     it: the user name inside the SCRAM messages is ignored, no channel
//     binding since there is no TLS yet) and, after a successful exchange,
//     recovers the client's ClientKey from its proof. [NewMD5Challenge] and
//     [VerifyMD5] implement md5 authentication; [VerifyPassword] checks a
//     cleartext password against any kind of secret.
//
//   - Backend authentication, where the proxy logs in to PostgreSQL as the
//     client's user: [BackendAuth] answers the server's Authentication*
//     requests (cleartext, md5, SCRAM-SHA-256) from a plaintext password, an
//     md5 hash, or only the ClientKey recovered by [ScramServer] (which is
//     enough for SCRAM as long as the proxy's stored verifier is the very
//     one in pg_authid: same salt and iteration count).
//
// Errors: [ErrPasswordMismatch] means wrong credentials (SQLSTATE 28P01 for
// the client); errors wrapping [ErrProtocol] mean a malformed or out-of-order
// message (SQLSTATE 08P01). The other sentinels are listed in errors.go.
//
// Nothing in this package is safe for concurrent use by several goroutines,
// except the pure functions (ParseSecret, MD5Hash, VerifyMD5, ...). Each
// connection owns its own ScramServer or BackendAuth.
package auth
