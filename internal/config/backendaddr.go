package config

import (
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
)

// Backend addresses (pool.backends, pool.pinned_roles, and what the core
// hands to its engine's Dial) are "host:port". As with libpq's and
// PgBouncer's host setting, a host that starts with '/' is the directory of
// a PostgreSQL Unix-domain socket: "/var/run/postgresql:5432" is the socket
// file /var/run/postgresql/.s.PGSQL.5432.

// MaxUnixSocketPath is the longest Unix-domain socket path, in bytes:
// sockaddr_un's 108-byte sun_path holds the path and its terminating NUL.
const MaxUnixSocketPath = 107

// unixSocketPrefix is the name of PostgreSQL's socket file in its
// directory, before the port number.
const unixSocketPrefix = ".s.PGSQL."

// IsUnixSocketAddr reports whether a backend address names a Unix-domain
// socket directory (its host starts with '/').
func IsUnixSocketAddr(addr string) bool { return strings.HasPrefix(addr, "/") }

// SplitBackendAddr splits a backend address into host and port. A Unix
// socket directory is split at the last ':' (the directory may itself hold
// ':' or brackets); any other address as net.SplitHostPort does. The port is
// not checked.
func SplitBackendAddr(addr string) (host, port string, err error) {
	if !IsUnixSocketAddr(addr) {
		return net.SplitHostPort(addr)
	}
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		return "", "", &net.AddrError{Err: "missing port in address", Addr: addr}
	}
	return addr[:i], addr[i+1:], nil
}

// UnixSocketPath returns the socket file a Unix-socket backend address
// names: the directory, cleaned, joined with ".s.PGSQL.<port>", the port
// written as a decimal number ("/run/pg/:05432" is /run/pg/.s.PGSQL.5432),
// which is the file libpq and pgx connect to. It fails when addr is not a
// Unix-socket address or its port is not a number 1..65535; the length of
// the path is not checked (see MaxUnixSocketPath).
func UnixSocketPath(addr string) (string, error) {
	if !IsUnixSocketAddr(addr) {
		return "", fmt.Errorf("%q is not a Unix socket address (its host does not start with '/')", addr)
	}
	dir, port, err := SplitBackendAddr(addr)
	if err != nil {
		return "", err
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return "", fmt.Errorf("%q: port %q is not a number 1..65535", addr, port)
	}
	return filepath.Join(dir, unixSocketPrefix+strconv.FormatUint(n, 10)), nil
}

// checkBackendAddr checks a backend address: a Unix socket directory (see
// checkUnixAddr) or a host:port (checkAddr, host required). It returns the
// normalized form used to compare backends, or a message.
func checkBackendAddr(s string) (norm, msg string) {
	if IsUnixSocketAddr(s) {
		return checkUnixAddr(s)
	}
	norm, msg = checkAddr(s, false)
	if msg != "" {
		if host, _, err := net.SplitHostPort(s); err == nil && strings.Contains(host, "/") {
			msg += " (a Unix socket directory must be an absolute path)"
		}
	}
	return norm, msg
}

// checkUnixAddr checks "/directory:port": a numeric port 1..65535, a
// directory with no NUL byte and no ',' (libpq-style connection strings, as
// the health checks and the query cache use, read ',' as a host separator),
// and a socket path that fits in sockaddr_un. The normalized form is the
// cleaned directory and the port as a number.
func checkUnixAddr(s string) (norm, msg string) {
	dir, port, err := SplitBackendAddr(s)
	if err != nil {
		return "", fmt.Sprintf("%q is not /directory:port (missing port in address)", s)
	}
	n, err := strconv.Atoi(port)
	if err != nil || port == "" || port[0] == '+' || port[0] == '-' {
		return "", fmt.Sprintf("%q: port %q is not a number", s, port)
	}
	if n < 1 || n > 65535 {
		return "", fmt.Sprintf("%q: port %d is out of range 1..65535", s, n)
	}
	if strings.IndexByte(dir, 0) >= 0 {
		return "", fmt.Sprintf("%q: the Unix socket directory contains a NUL byte", s)
	}
	if strings.IndexByte(dir, ',') >= 0 {
		return "", fmt.Sprintf("%q: the Unix socket directory must not contain ','", s)
	}
	path, err := UnixSocketPath(s)
	if err != nil {
		return "", err.Error()
	}
	if len(path) > MaxUnixSocketPath {
		return "", fmt.Sprintf("%q: Unix socket path %s is %d bytes, longer than the %d that fit in sockaddr_un", s, path, len(path), MaxUnixSocketPath)
	}
	return filepath.Clean(dir) + ":" + strconv.Itoa(n), ""
}
