package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/poolmgr/poolmgr/internal/testutil"
)

// A wrong password fails with 28P01; an unknown user gets the same error
// (same code and message modulo the user name, no detail or hint saying the
// user does not exist); an empty password fails too.
func TestAuthWrongPassword(t *testing.T) {
	p := startProxy(t, testutil.Config{})
	ctx := testCtx(t, 30*time.Second)

	_, err := connectTo(t, ctx, p.ConnString("app", "wrong", "app"))
	wrong := requirePgCode(t, err, "28P01")
	t.Logf("wrong password: %s %s: %s", wrong.Severity, wrong.Code, wrong.Message)

	_, err = connectTo(t, ctx, p.ConnString("nosuchuser", "wrong", "app"))
	unknown := requirePgCode(t, err, "28P01")
	t.Logf("unknown user: %s %s: %s", unknown.Severity, unknown.Code, unknown.Message)

	if a, b := strings.ReplaceAll(wrong.Message, "app", "USER"), strings.ReplaceAll(unknown.Message, "nosuchuser", "USER"); a != b {
		t.Errorf("messages differ: wrong password %q, unknown user %q (must not reveal which users exist)", wrong.Message, unknown.Message)
	}
	if wrong.Detail != unknown.Detail || wrong.Hint != unknown.Hint || wrong.Severity != unknown.Severity {
		t.Errorf("detail/hint/severity differ: %q/%q/%q vs %q/%q/%q",
			wrong.Severity, wrong.Detail, wrong.Hint, unknown.Severity, unknown.Detail, unknown.Hint)
	}
	all := strings.ToLower(unknown.Message + " " + unknown.Detail + " " + unknown.Hint)
	for _, leak := range []string{"not exist", "unknown", "not found", "no such"} {
		if strings.Contains(all, leak) {
			t.Errorf("unknown-user error reveals it: %q", all)
		}
	}

	_, err = connectTo(t, ctx, p.ConnString("app", "", "app"))
	if err == nil {
		t.Fatalf("empty password accepted with auth_type scram-sha-256")
	}
	if pe := pgError(err); pe != nil && pe.Code != "28P01" {
		t.Errorf("empty password: SQLSTATE %s (%s), want 28P01", pe.Code, pe.Message)
	}

	// The right password still works.
	c := connect(t, ctx, p)
	if got := queryString(t, ctx, c, "SELECT current_user"); got != "app" {
		t.Fatalf("current_user %q", got)
	}
}

// auth_type = "md5": pgx answers the MD5 challenge.
func TestAuthMD5(t *testing.T) {
	p := startProxy(t, testutil.Config{AuthType: "md5"})
	testutil.RequireProcess(t)
	ctx := testCtx(t, 30*time.Second)
	c := connect(t, ctx, p)
	if got := queryString(t, ctx, c, "SELECT current_user"); got != "app" {
		t.Fatalf("current_user %q", got)
	}
	_, err := connectTo(t, ctx, p.ConnString("app", "wrong", "app"))
	requirePgCode(t, err, "28P01")
	_, err = connectTo(t, ctx, p.ConnString("nosuchuser", "wrong", "app"))
	requirePgCode(t, err, "28P01")
}

// auth_type = "trust" lets a listed user in with any password; trust is only
// in effect when configured (TestAuthWrongPassword covers the default).
func TestAuthTrust(t *testing.T) {
	p := startProxy(t, testutil.Config{AuthType: "trust"})
	testutil.RequireProcess(t)
	ctx := testCtx(t, 30*time.Second)
	c, err := connectTo(t, ctx, p.ConnString("app", "not-the-password", "app"))
	if err != nil {
		t.Fatalf("trust: %v", err)
	}
	if got := queryString(t, ctx, c, "SELECT current_user"); got != "app" {
		t.Fatalf("current_user %q", got)
	}
}

// max_client_connections = 3: the 4th client gets FATAL 53300 "too many
// client connections"; once one leaves, a new one gets in.
func TestMaxClientConnections(t *testing.T) {
	p := startProxy(t, testutil.Config{MaxClientConnections: 3})
	testutil.RequireProcess(t)
	ctx := testCtx(t, 30*time.Second)
	a := connect(t, ctx, p)
	connect(t, ctx, p)
	connect(t, ctx, p)

	_, err := connectTo(t, ctx, p.ConnString("app", "app", "app"))
	pe := requirePgCode(t, err, "53300")
	if pe.Severity != "FATAL" || !strings.Contains(pe.Message, "too many client connections") {
		t.Errorf("got %s %s %q, want FATAL 53300 \"too many client connections\"", pe.Severity, pe.Code, pe.Message)
	}
	if got := queryInt(t, ctx, a, "SELECT 1"); got != 1 {
		t.Fatal("existing client broken")
	}
	a.Close(ctx)
	testutil.CheckFor(t, 5*time.Second, 50*time.Millisecond, func() error {
		c, err := connectTo(t, ctx, p.ConnString("app", "app", "app"))
		if err != nil {
			return err
		}
		_, err = c.Exec(ctx, "SELECT 1")
		return err
	})
}
