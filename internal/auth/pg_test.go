package auth

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Real PostgreSQL check. Runs only with POOLMGR_TEST_PG=host:port of the
// test cluster's primary (scripts/pgcluster: role app/app with a
// scram-sha-256 password, superuser postgres/postgres, database app).
func pgAddr(t *testing.T) string {
	addr := os.Getenv("POOLMGR_TEST_PG")
	if addr == "" {
		t.Skip("POOLMGR_TEST_PG not set (e.g. 127.0.0.1:20000)")
	}
	return addr
}

// pgLogin opens a raw connection, sends a StartupMessage for user/database
// and answers the server's authentication requests with BackendAuth. It
// returns the methods requested and the server's error, if any.
func pgLogin(t *testing.T, addr, user, database string, creds BackendCreds) (method string, err error) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))

	startup := binary.BigEndian.AppendUint32(make([]byte, 4), 196608) // protocol 3.0
	for _, kv := range []string{"user", user, "database", database, "application_name", "poolmgr-auth-test"} {
		startup = append(append(startup, kv...), 0)
	}
	startup = append(startup, 0)
	binary.BigEndian.PutUint32(startup, uint32(len(startup)))
	if _, err := conn.Write(startup); err != nil {
		t.Fatal(err)
	}

	ba := NewBackendAuth(creds, nil)
	r := bufio.NewReader(conn)
	for {
		var hdr [5]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			t.Fatalf("reading from server: %v", err)
		}
		body := make([]byte, binary.BigEndian.Uint32(hdr[1:])-4)
		if _, err := io.ReadFull(r, body); err != nil {
			t.Fatalf("reading from server: %v", err)
		}
		switch hdr[0] {
		case 'R':
			code := int32(binary.BigEndian.Uint32(body))
			reply, err := ba.Step(code, body[4:])
			if err != nil {
				return ba.Method(), err
			}
			if reply != nil {
				if _, err := conn.Write(reply); err != nil {
					t.Fatal(err)
				}
			}
			if ba.Done() {
				conn.Write([]byte{'X', 0, 0, 0, 4}) // Terminate
				return ba.Method(), nil
			}
		case 'E':
			return ba.Method(), fmt.Errorf("server error: %s", errorFields(body))
		default:
			t.Fatalf("unexpected message %q during authentication", hdr[0])
		}
	}
}

func errorFields(body []byte) string {
	var sqlstate, msg string
	for len(body) > 1 {
		f := body[0]
		end := 1
		for end < len(body) && body[end] != 0 {
			end++
		}
		switch f {
		case 'C':
			sqlstate = string(body[1:end])
		case 'M':
			msg = string(body[1:end])
		}
		body = body[min(end+1, len(body)):]
	}
	return sqlstate + " " + msg
}

func TestPostgresLogin(t *testing.T) {
	addr := pgAddr(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// The verifier PostgreSQL stores for app.
	pc, err := pgx.Connect(ctx, "postgres://postgres:postgres@"+addr+"/app?sslmode=disable")
	if err != nil {
		t.Fatalf("connect as postgres: %v", err)
	}
	var rolpassword string
	err = pc.QueryRow(ctx, "SELECT rolpassword FROM pg_authid WHERE rolname = 'app'").Scan(&rolpassword)
	pc.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sec := ParseSecret(rolpassword)
	if sec.Kind != SecretScram {
		t.Fatalf("pg_authid password for app is %v, want a SCRAM verifier", sec.Kind)
	}
	if sec.Scram.String() != rolpassword {
		t.Fatalf("verifier does not round-trip:\n%s\n%s", sec.Scram.String(), rolpassword)
	}
	if err := VerifyPassword(sec, "app", "app"); err != nil {
		t.Fatalf("VerifyPassword against the real verifier: %v", err)
	}
	derived, err := NewScramSecret("app", sec.Scram.Salt, sec.Scram.Iterations)
	if err != nil || derived.String() != rolpassword {
		t.Fatalf("NewScramSecret differs from PostgreSQL's verifier: %v %s", err, derived)
	}

	// Recover the ClientKey the way the proxy does: a client logs in to our
	// ScramServer holding the pg_authid verifier.
	srv, err := NewScramServer("app", sec, nil)
	if err != nil {
		t.Fatal(err)
	}
	if se, ce := runScram(t, srv, NewBackendAuth(BackendCreds{User: "app", Plain: "app"}, nil)); se != nil || ce != nil {
		t.Fatalf("local exchange: server %v client %v", se, ce)
	}
	ck := srv.ClientKey()
	if sha256.Sum256(ck[:]) != sec.Scram.StoredKey {
		t.Fatal("recovered ClientKey does not match StoredKey")
	}
	if want, _ := ScramClientKey("app", sec.Scram.Salt, sec.Scram.Iterations); want != ck {
		t.Fatal("recovered ClientKey differs from the derived one")
	}

	for _, tc := range []struct {
		name  string
		creds BackendCreds
		want  error
	}{
		{"plain", BackendCreds{User: "app", Plain: "app"}, nil},
		{"clientkey", BackendCreds{User: "app", ClientKey: &ck}, nil},
		{"clientkey+serverkey", BackendCreds{User: "app", ClientKey: &ck, ServerKey: &sec.Scram.ServerKey,
			ScramSalt: sec.Scram.Salt, ScramIterations: sec.Scram.Iterations}, nil},
		{"wrong password", BackendCreds{User: "app", Plain: "wrong"}, errors.New("28P01")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			method, err := pgLogin(t, addr, "app", "app", tc.creds)
			if method != MechScramSHA256 {
				t.Fatalf("server asked for %q, want SCRAM-SHA-256 (check pg_hba.conf)", method)
			}
			if tc.want == nil && err != nil {
				t.Fatalf("login failed: %v", err)
			}
			if tc.want != nil && (err == nil || !strings.Contains(err.Error(), tc.want.Error())) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
