package e2e

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/poolmgr/poolmgr/internal/testutil"
)

// TestAuthQuery: a user missing from auth_file logs in through auth_query,
// run on the primary as auth_user (PgBouncer's semantics): its SCRAM secret
// comes from pg_shadow, the client's proof is checked against it, and the
// ClientKey it yields logs poolmgr in to PostgreSQL as that user. A wrong
// password and an unknown user both get 28P01.
func TestAuthQuery(t *testing.T) {
	testutil.RequireCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	role := "aq_" + testutil.Nonce()
	testutil.AdminExec(t, "app", "CREATE ROLE "+role+" LOGIN PASSWORD 'aq-secret'")
	t.Cleanup(func() { testutil.AdminExec(t, "app", "DROP ROLE IF EXISTS "+role) })

	cfg := strings.Replace(testutil.Config{}.TOML(), "auth_file = \"userlist.txt\"\n",
		"auth_file = \"userlist.txt\"\nauth_user = \"postgres\"\n", 1)
	p := testutil.StartPoolmgr(t, cfg)

	c, err := pgx.Connect(ctx, p.ConnString(role, "aq-secret", testutil.AppDB))
	if err != nil {
		t.Fatalf("login through auth_query: %v\n%s", err, p.Log())
	}
	var who string
	if err := c.QueryRow(ctx, "SELECT current_user").Scan(&who); err != nil || who != role {
		t.Fatalf("current_user = %q, %v; want %q", who, err, role)
	}
	c.Close(ctx)

	for _, tc := range []struct{ user, pass string }{{role, "wrong"}, {"aq_nobody_" + testutil.Nonce(), "x"}} {
		_, err := pgx.Connect(ctx, p.ConnString(tc.user, tc.pass, testutil.AppDB))
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "28P01" {
			t.Errorf("user %s with a wrong password: %v, want 28P01", tc.user, err)
		}
	}
}
