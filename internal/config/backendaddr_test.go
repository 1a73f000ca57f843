package config

import (
	"strings"
	"testing"
)

func TestSplitBackendAddr(t *testing.T) {
	for _, tc := range []struct{ addr, host, port string }{
		{"127.0.0.1:5432", "127.0.0.1", "5432"},
		{"[::1]:5432", "::1", "5432"},
		{"db.example.com:6432", "db.example.com", "6432"},
		{"/var/run/postgresql:5432", "/var/run/postgresql", "5432"},
		{"/tmp/a:b:5432", "/tmp/a:b", "5432"}, // a ':' in the directory
		{"/tmp/[x]:5432", "/tmp/[x]", "5432"}, // brackets are not IPv6 here
		{"/:1", "/", "1"},
	} {
		host, port, err := SplitBackendAddr(tc.addr)
		if err != nil || host != tc.host || port != tc.port {
			t.Errorf("SplitBackendAddr(%q) = %q, %q, %v; want %q, %q", tc.addr, host, port, err, tc.host, tc.port)
		}
	}
	for _, addr := range []string{"/var/run/postgresql", "127.0.0.1", "::1:5432"} {
		if h, p, err := SplitBackendAddr(addr); err == nil {
			t.Errorf("SplitBackendAddr(%q) = %q, %q; want an error", addr, h, p)
		}
	}
}

func TestUnixSocketPath(t *testing.T) {
	for _, tc := range []struct{ addr, path string }{
		{"/var/run/postgresql:5432", "/var/run/postgresql/.s.PGSQL.5432"},
		{"/var/run/postgresql/:05432", "/var/run/postgresql/.s.PGSQL.5432"},
		{"/tmp//x/../sock:20000", "/tmp/sock/.s.PGSQL.20000"},
		{"/:1", "/.s.PGSQL.1"},
		{"/tmp/a:b:65535", "/tmp/a:b/.s.PGSQL.65535"},
	} {
		if got, err := UnixSocketPath(tc.addr); err != nil || got != tc.path {
			t.Errorf("UnixSocketPath(%q) = %q, %v; want %q", tc.addr, got, err, tc.path)
		}
	}
	for _, addr := range []string{"127.0.0.1:5432", "/tmp", "/tmp:0", "/tmp:65536", "/tmp:+1", "/tmp:pg", "/tmp:"} {
		if got, err := UnixSocketPath(addr); err == nil {
			t.Errorf("UnixSocketPath(%q) = %q; want an error", addr, got)
		}
	}
}

func TestCheckBackendAddr(t *testing.T) {
	// The longest directory whose socket path fits: len("/.s.PGSQL.5432") = 14.
	longest := "/" + strings.Repeat("d", MaxUnixSocketPath-15)
	for _, tc := range []struct{ addr, norm string }{
		{"127.0.0.1:5432", "127.0.0.1:5432"},
		{"DB.Example.com.:05432", "db.example.com:5432"},
		{"[0:0::1]:5432", "[::1]:5432"},
		{"/var/run/postgresql:5432", "/var/run/postgresql:5432"},
		{"/var/run//postgresql/:05432", "/var/run/postgresql:5432"},
		{"/tmp/a:b:5432", "/tmp/a:b:5432"},
		{"/Tmp/PG:1", "/Tmp/PG:1"}, // paths keep their case
		{longest + ":5432", longest + ":5432"},
	} {
		if norm, msg := checkBackendAddr(tc.addr); msg != "" || norm != tc.norm {
			t.Errorf("checkBackendAddr(%q) = %q, %q; want %q", tc.addr, norm, msg, tc.norm)
		}
	}
	for _, tc := range []struct{ addr, msg string }{
		{longest + "d:5432", "is 108 bytes, longer than the 107 that fit in sockaddr_un"},
		{longest + ":65535", "is 108 bytes"}, // the port counts too
		{"/tmp/a\x00b:5432", "contains a NUL byte"},
		{"/tmp/a,b:5432", "must not contain ','"},
		{"/tmp", "is not /directory:port"},
		{"/tmp:-1", `port "-1" is not a number`},
		{"/tmp:70000", "port 70000 is out of range 1..65535"},
		{"./sock:5432", "a Unix socket directory must be an absolute path"},
		{":5432", "missing host"},
		{"db host:5432", "is not a valid host name or IP address"},
	} {
		if norm, msg := checkBackendAddr(tc.addr); !strings.Contains(msg, tc.msg) {
			t.Errorf("checkBackendAddr(%q) = %q, %q; want a message containing %q", tc.addr, norm, msg, tc.msg)
		}
	}
}
