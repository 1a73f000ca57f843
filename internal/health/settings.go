package health

import (
	"fmt"
	"os"
	"time"

	"github.com/poolmgr/poolmgr/internal/auth"
	"github.com/poolmgr/poolmgr/internal/config"
	"github.com/poolmgr/poolmgr/internal/proxy"
)

// Settings is what a Checker works with, taken from a config by
// SettingsFromConfig (or built by hand in tests).
type Settings struct {
	Interval time.Duration // between rounds; 0 = no checks
	Timeout  time.Duration // per check, connect included
	Failures int           // consecutive failed checks that mark a backend unhealthy
	MaxLag   time.Duration // only for log messages (routing applies the limit); 0 = none

	User, Password, DBName string

	// Pins maps a backend address, as written in pool.backends, to its pinned role.
	Pins map[string]proxy.Role

	// Disabled says why no checks run ("" = they do). Pins apply regardless.
	Disabled string
}

// SettingsFromConfig derives the checker's settings from cfg, reading the
// password of the health-check user from auth.auth_file.
func SettingsFromConfig(cfg *config.Config) Settings {
	p := cfg.Pool
	s := Settings{
		Interval: p.HealthCheckInterval.D(),
		Timeout:  p.HealthCheckTimeout.D(),
		Failures: p.HealthCheckFailures,
		MaxLag:   time.Duration(p.MaxReplicaLagMs) * time.Millisecond,
		User:     cfg.EffectiveHealthCheckUser(),
		DBName:   p.HealthCheckDBName,
		Pins:     map[string]proxy.Role{},
	}
	for _, pin := range cfg.Pins() {
		r := proxy.RoleStandby
		if pin.Role == config.RolePrimary {
			r = proxy.RolePrimary
		}
		s.Pins[pin.Addr] = r
	}
	if s.Timeout <= 0 {
		s.Timeout = 2 * time.Second
	}
	if s.Failures < 1 {
		s.Failures = 1
	}
	if s.Interval <= 0 {
		s.Disabled = "pool.health_check_interval = 0"
		return s
	}
	s.Password, s.Disabled = password(cfg.Auth.AuthFile, s.User)
	return s
}

// password returns the plaintext password of user in the auth file, or why
// there is none.
func password(authFile, user string) (pw, disabled string) {
	if authFile == "" {
		return "", fmt.Sprintf("no auth.auth_file to take the password of health-check user %q from; "+
			"add a plaintext \"%s\" \"password\" line to an auth_file or set pool.health_check_user", user, user)
	}
	f, err := os.Open(authFile)
	if err != nil {
		return "", fmt.Sprintf("cannot read auth.auth_file: %v", err)
	}
	defer f.Close()
	secrets, err := auth.ParseUserlist(f)
	if err != nil {
		return "", fmt.Sprintf("auth.auth_file %s: %v", authFile, err)
	}
	sec, ok := secrets[user]
	switch {
	case !ok:
		return "", fmt.Sprintf("health-check user %q is not in auth.auth_file %s; add a plaintext password line for it "+
			"or set pool.health_check_user to a user that has one", user, authFile)
	case sec.Kind != auth.SecretPlain:
		return "", fmt.Sprintf("auth.auth_file %s holds only a %s secret for health-check user %q, but logging in "+
			"needs the plaintext password; give that user a plaintext password line or set pool.health_check_user "+
			"to a user that has one", authFile, sec.Kind, user)
	case sec.Plain == "":
		return "", fmt.Sprintf("health-check user %q has an empty password in auth.auth_file %s", user, authFile)
	}
	return sec.Plain, ""
}
