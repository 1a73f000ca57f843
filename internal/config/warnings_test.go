package config

import (
	"reflect"
	"strings"
	"testing"
)

func TestWarnings(t *testing.T) {
	tests := []struct {
		name string
		body string
		want []string // without the "path:" prefix
	}{
		{"none", minimal, nil},
		{"single backend: routing unused but nothing to warn", minimal + "routing = \"random\"\n", nil},
		{"cache is active: no warning", minimal + "cache_ttl_ms = 5000\n", nil},
		{"replicas: routing is active", "[pool]\nbackends = [\"p:1\", \"r:2\"]\nrouting = \"round_robin\"\n", nil},
		{"admin is active: no warning", minimal + "[admin]\nadmin_users = [\"postgres\"]\nstats_users = [\"s\"]\nmetrics_bind = \"127.0.0.1:9930\"\n", nil},
		{"empty admin lists", minimal + "[admin]\nadmin_users = []\n", nil},
		{"trust on a public address", minimal + "[auth]\nauth_type = \"trust\"\n",
			[]string{"4: auth.auth_type: trust lets anyone who can reach 0.0.0.0:6432 log in as any user without a password"}},
		{"trust on loopback", minimal + "bind = \"127.0.0.1:6432\"\n[auth]\nauth_type = \"trust\"\n", nil},
		{"trust on localhost", minimal + "bind = \"localhost:6432\"\n[auth]\nauth_type = \"trust\"\n", nil},
		{"trust on ::1", minimal + "bind = \"[::1]:6432\"\n[auth]\nauth_type = \"trust\"\n", nil},
		{"trust on all interfaces", minimal + "bind = \":6432\"\n[auth]\nauth_type = \"trust\"\n",
			[]string{"5: auth.auth_type: trust lets anyone who can reach :6432 log in as any user without a password"}},
		{"auth_user instead of auth_file", minimal + "[auth]\nauth_file = \"\"\nauth_user = \"pgbouncer\"\n", nil},
		{"uring is fine", minimal + "io_engine = \"uring\"\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := tt.body
			if !strings.Contains(body, "[auth]") {
				body += "[auth]\nauth_file = \"userlist.txt\"\n"
			} else if !strings.Contains(body, "auth_file") {
				body += "auth_file = \"userlist.txt\"\n"
			}
			path := writeConfig(t, body)
			cfg, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, w := range tt.want {
				want = append(want, path+":"+w)
			}
			if got := cfg.Warnings(); !reflect.DeepEqual(got, want) {
				t.Errorf("Warnings() =\n%q\nwant\n%q", got, want)
			}
		})
	}
}

func TestWarningNoWayToLogIn(t *testing.T) {
	path := writeConfig(t, minimal)
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{path + ": auth.auth_file: neither auth_file nor auth_user is set: with auth_type = scram-sha-256 no client can log in"}
	if got := cfg.Warnings(); !reflect.DeepEqual(got, want) {
		t.Errorf("Warnings() = %q, want %q", got, want)
	}

	// A Config built in code has no file or lines.
	c := Default()
	c.Auth.AuthType = AuthTrust
	c.Pool.Bind = "0.0.0.0:6432"
	want = []string{"auth.auth_type: trust lets anyone who can reach 0.0.0.0:6432 log in as any user without a password"}
	if got := c.Warnings(); !reflect.DeepEqual(got, want) {
		t.Errorf("Warnings() = %q, want %q", got, want)
	}
}
