package admin

import "testing"

func TestSplitAddr(t *testing.T) {
	for _, tc := range []struct {
		addr, host string
		port       any
	}{
		{"127.0.0.1:20000", "127.0.0.1", 20000},
		{"[::ffff:10.0.0.1]:5432", "10.0.0.1", 5432},
		{"db.example.com:6432", "db.example.com", 6432},
		{"/var/run/postgresql:5432", "/var/run/postgresql", 5432}, // Unix socket: the directory is the host
		{"/tmp/a:b:5432", "/tmp/a:b", 5432},
		{"db:pg", "db", nil},
		{"garbage", "garbage", nil},
	} {
		host, port := splitAddr(tc.addr)
		if host != tc.host || port != tc.port {
			t.Errorf("splitAddr(%q) = %q, %v; want %q, %v", tc.addr, host, port, tc.host, tc.port)
		}
	}
}
