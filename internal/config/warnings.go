package config

import "fmt"

// Warnings lists start-up warnings for a valid Config, formatted like
// problems ("file:line: key: message"): keys that are accepted but whose
// feature is not active yet, and risky but legal settings. The caller logs
// them; they never stop poolmgr from starting.
func (c *Config) Warnings() []string {
	v := validator{cfg: c}
	var out []string
	warn := func(key, format string, args ...any) {
		out = append(out, Problem{File: c.Path, Line: v.line(key), Key: key, Msg: fmt.Sprintf(format, args...)}.Error())
	}

	if c.Auth.AuthType == AuthTrust && !isLoopbackHost(c.Pool.Bind) {
		warn("auth.auth_type", "trust lets anyone who can reach %s log in as any user without a password", c.Pool.Bind)
	}
	if c.Auth.AuthType != AuthTrust && c.Auth.AuthFile == "" && c.Auth.AuthUser == "" {
		warn("auth.auth_file", "neither auth_file nor auth_user is set: with auth_type = %s no client can log in", c.Auth.AuthType)
	}
	return out
}
