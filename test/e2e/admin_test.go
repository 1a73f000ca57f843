package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/poolmgr/poolmgr/internal/testutil"
)

// Admin console: users and databases of these tests.
const (
	statsUser     = "stats"
	statsPassword = "stats-pw"
)

// adminSections is the [admin] section: postgres is an admin user, stats a
// stats user (it exists only in poolmgr's userlist: the console needs no backend).
const adminSections = "[admin]\nadmin_users = [\"postgres\"]\nstats_users = [\"stats\"]\n"

func startAdminProxy(t *testing.T, cfg testutil.Config) *testutil.Proxy {
	t.Helper()
	cfg.Sections = adminSections + cfg.Sections
	p := startProxy(t, cfg, testutil.WithUser(statsUser, statsPassword))
	testutil.RequireProcess(t)
	return p
}

// adminConn opens a console connection (simple protocol) to db as user.
func adminConn(t *testing.T, ctx context.Context, p *testutil.Proxy, user, pass, db string) (*pgx.Conn, error) {
	t.Helper()
	return connectTo(t, ctx, p.ConnString(user, pass, db), withMode(pgx.QueryExecModeSimpleProtocol))
}

func mustAdminConn(t *testing.T, ctx context.Context, p *testutil.Proxy) *pgx.Conn {
	t.Helper()
	c, err := adminConn(t, ctx, p, testutil.SuperUser, testutil.SuperPassword, "pgbouncer")
	if err != nil {
		t.Fatalf("connect to the admin console: %v", err)
	}
	return c
}

// showRows runs a SHOW on the console and returns its column names and rows
// (values as text, NULL as "NULL").
func showRows(t *testing.T, ctx context.Context, c *pgx.Conn, sql string) ([]string, [][]string) {
	t.Helper()
	rows, err := c.Query(ctx, sql)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	defer rows.Close()
	var cols []string
	for _, f := range rows.FieldDescriptions() {
		cols = append(cols, f.Name)
	}
	var out [][]string
	for rows.Next() {
		raw := rows.RawValues()
		row := make([]string, len(raw))
		for i, v := range raw {
			if v == nil {
				row[i] = "NULL"
			} else {
				row[i] = string(v)
			}
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return cols, out
}

func colIndex(cols []string, name string) int {
	for i, c := range cols {
		if c == name {
			return i
		}
	}
	return -1
}

// psqlAdmin runs `psql -c sql` on the console (as PgBouncer users do) and
// returns its unaligned output and exit code.
func psqlAdmin(t *testing.T, p *testutil.Proxy, user, pass, db, sql string) (string, int) {
	t.Helper()
	psql := testutil.RequireBinary(t, "psql")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn := "host=127.0.0.1 port=" + itoa(p.Port) + " user=" + user + " dbname=" + db + " password=" + pass +
		" sslmode=disable connect_timeout=5"
	cmd := exec.CommandContext(ctx, psql, conn, "-X", "-A", "-F", "|", "-c", sql)
	cmd.Env = append(os.Environ(), "PAGER=", "PSQL_PAGER=", "LC_ALL=C")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return out.String(), ee.ExitCode()
	} else if err != nil {
		t.Fatalf("psql: %v\n%s", err, out.String())
	}
	return out.String(), 0
}

// The PgBouncer commands keep PgBouncer's columns; psql works against both
// virtual database names.
func TestAdminPsqlShow(t *testing.T) {
	p := startAdminProxy(t, testutil.Config{PoolSize: 2})
	ctx := testCtx(t, 60*time.Second)
	app := connect(t, ctx, p)
	mustExec(t, ctx, app, "SELECT 1")
	for _, tc := range []struct{ sql, header string }{
		{"SHOW POOLS", "database|user|cl_active|cl_waiting|cl_active_cancel_req|cl_waiting_cancel_req|sv_active|sv_active_cancel|sv_being_canceled|sv_idle|sv_used|sv_tested|sv_login|maxwait|maxwait_us|pool_mode|"},
		{"SHOW CLIENTS", "type|user|database|replication|state|addr|port|local_addr|local_port|connect_time|request_time|wait|wait_us|close_needed|ptr|link|remote_pid|tls|application_name|prepared_statements|id"},
		{"SHOW SERVERS", "type|user|database|replication|state|addr|port|local_addr|local_port|connect_time|request_time|wait|wait_us|close_needed|ptr|link|remote_pid|tls|application_name|prepared_statements|id"},
		{"SHOW STATS", "database|total_server_assignment_count|total_xact_count|total_query_count|total_received|total_sent|total_xact_time|total_query_time|total_wait_time|"},
		{"SHOW DATABASES", "name|host|port|database|force_user|pool_size|min_pool_size|reserve_pool_size|server_lifetime|pool_mode|load_balance_hosts|max_connections|current_connections|max_client_connections|current_client_connections|paused|disabled"},
		{"SHOW CONFIG", "key|value|default|changeable"},
		{"SHOW VERSION", "version"},
		{"SHOW LISTS", "list|items"},
		{"SHOW BACKENDS", "backend|role|health|lag|weight|state|"},
		{"SHOW CACHE", "status|"},
		{"SHOW ENGINE", "loop|engine|clients|servers|"},
		{"show pools;", "database|user|cl_active"},
	} {
		for _, db := range []string{"pgbouncer", "poolmgr"} {
			out, code := psqlAdmin(t, p, testutil.SuperUser, testutil.SuperPassword, db, tc.sql)
			if code != 0 {
				t.Errorf("psql -d %s -c %q: exit %d\n%s", db, tc.sql, code, out)
				continue
			}
			if first, _, _ := strings.Cut(out, "\n"); !strings.HasPrefix(first, tc.header) {
				t.Errorf("psql -d %s -c %q: header %q, want prefix %q", db, tc.sql, first, tc.header)
			}
		}
	}
	out, _ := psqlAdmin(t, p, testutil.SuperUser, testutil.SuperPassword, "pgbouncer", "SHOW POOLS")
	if !strings.Contains(out, "\napp|app|") {
		t.Errorf("SHOW POOLS has no app/app pool:\n%s", out)
	}
	out, _ = psqlAdmin(t, p, testutil.SuperUser, testutil.SuperPassword, "pgbouncer", "SHOW VERSION")
	if !strings.Contains(out, "poolmgr ") {
		t.Errorf("SHOW VERSION:\n%s", out)
	}
	out, code := psqlAdmin(t, p, testutil.SuperUser, testutil.SuperPassword, "pgbouncer", "SHOW HELP")
	if code != 0 || !strings.Contains(out, "SHOW HELP|POOLS|CLIENTS") {
		t.Errorf("SHOW HELP: exit %d\n%s", code, out)
	}
	out, code = psqlAdmin(t, p, testutil.SuperUser, testutil.SuperPassword, "pgbouncer", "NONSENSE")
	if code == 0 || !strings.Contains(out, "unknown admin command") {
		t.Errorf("unknown command: exit %d\n%s", code, out)
	}
}

// Every SHOW through pgx (simple protocol): column types follow PgBouncer
// (numbers as int8), and the values reflect the proxy's state.
func TestAdminPgxShow(t *testing.T) {
	p := startAdminProxy(t, testutil.Config{PoolSize: 2})
	ctx := testCtx(t, 60*time.Second)
	app := connect(t, ctx, p, withParams("application_name", "e2e-admin-app"))
	for i := 0; i < 5; i++ {
		mustExec(t, ctx, app, "SELECT 1")
	}
	adm := mustAdminConn(t, ctx, p)

	rows, err := adm.Query(ctx, "SHOW POOLS")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range rows.FieldDescriptions() {
		want := uint32(25) // text
		switch f.Name {
		case "database", "user", "pool_mode", "load_balance_hosts":
		default:
			want = 20 // int8
		}
		if f.DataTypeOID != want {
			t.Errorf("SHOW POOLS column %s has type OID %d, want %d", f.Name, f.DataTypeOID, want)
		}
	}
	rows.Close()

	cols, pools := showRows(t, ctx, adm, "SHOW POOLS")
	found := false
	for _, r := range pools {
		if r[0] == "app" && r[1] == "app" {
			found = true
			if r[colIndex(cols, "cl_active")] != "1" || r[colIndex(cols, "sv_idle")] == "0" || r[colIndex(cols, "pool_mode")] != "transaction" {
				t.Errorf("SHOW POOLS app row %v (cols %v)", r, cols)
			}
		}
	}
	if !found {
		t.Errorf("SHOW POOLS: no app pool in %v", pools)
	}

	cols, clients := showRows(t, ctx, adm, "SHOW CLIENTS")
	var appRow []string
	for _, r := range clients {
		if r[colIndex(cols, "application_name")] == "e2e-admin-app" {
			appRow = r
		}
	}
	if appRow == nil || appRow[colIndex(cols, "state")] != "idle" || appRow[colIndex(cols, "database")] != "app" ||
		appRow[colIndex(cols, "type")] != "C" || appRow[colIndex(cols, "addr")] != "127.0.0.1" {
		t.Errorf("SHOW CLIENTS: app client row %v in %v", appRow, clients)
	}

	cols, servers := showRows(t, ctx, adm, "SHOW SERVERS")
	if len(servers) == 0 || servers[0][colIndex(cols, "type")] != "S" || servers[0][colIndex(cols, "remote_pid")] == "0" {
		t.Errorf("SHOW SERVERS %v", servers)
	}

	cols, stats := showRows(t, ctx, adm, "SHOW STATS")
	if len(stats) != 1 || stats[0][colIndex(cols, "total_xact_count")] == "0" || stats[0][colIndex(cols, "total_query_count")] == "0" {
		t.Errorf("SHOW STATS %v %v", cols, stats)
	}
	for _, sql := range []string{"SHOW STATS_TOTALS", "SHOW STATS_AVERAGES", "SHOW TOTALS", "SHOW STATE", "SHOW LISTS", "SHOW ENGINE"} {
		if _, rows := showRows(t, ctx, adm, sql); len(rows) == 0 {
			t.Errorf("%s: no rows", sql)
		}
	}

	cols, dbs := showRows(t, ctx, adm, "SHOW DATABASES")
	okDB := false
	for _, r := range dbs {
		if r[0] == "app" && r[colIndex(cols, "port")] == itoa(testutil.PrimaryPort) && r[colIndex(cols, "pool_size")] == "2" {
			okDB = true
		}
	}
	if !okDB {
		t.Errorf("SHOW DATABASES %v", dbs)
	}

	_, cfgRows := showRows(t, ctx, adm, "SHOW CONFIG")
	cfg := map[string]string{}
	for _, r := range cfgRows {
		cfg[r[0]] = r[1]
	}
	if cfg["pool_size"] != "2" || cfg["pool_mode"] != "transaction" || cfg["admin_users"] != "postgres" ||
		cfg["bind"] != p.Addr || cfg["max_client_conn"] == "" {
		t.Errorf("SHOW CONFIG %v", cfg)
	}

	cols, bes := showRows(t, ctx, adm, "SHOW BACKENDS")
	if len(bes) != 1 || bes[0][0] != testutil.PrimaryAddr || bes[0][colIndex(cols, "role")] != "primary" ||
		bes[0][colIndex(cols, "health")] != "up" {
		t.Errorf("SHOW BACKENDS %v %v", cols, bes)
	}

	cols, cache := showRows(t, ctx, adm, "SHOW CACHE")
	if len(cache) != 1 || cache[0][colIndex(cols, "status")] != "disabled" {
		t.Errorf("SHOW CACHE %v", cache)
	}

	_, ver := showRows(t, ctx, adm, "SHOW VERSION")
	if len(ver) != 1 || !strings.HasPrefix(ver[0][0], "poolmgr ") {
		t.Errorf("SHOW VERSION %v", ver)
	}

	// Errors keep the session usable.
	_, err = adm.Exec(ctx, "SHOW NOSUCHTHING")
	requirePgCode(t, err, "42601")
	_, err = adm.Exec(ctx, "DRAIN 127.0.0.1:1")
	requirePgCode(t, err, "42704")
	_, err = adm.Exec(ctx, "FROBNICATE")
	requirePgCode(t, err, "42601")
	if _, rows := showRows(t, ctx, adm, "SHOW VERSION"); len(rows) != 1 {
		t.Error("session unusable after errors")
	}
}

// Users not in admin_users/stats_users are refused; stats users may SHOW but
// not run commands.
func TestAdminPermissions(t *testing.T) {
	p := startAdminProxy(t, testutil.Config{})
	ctx := testCtx(t, 60*time.Second)

	_, err := adminConn(t, ctx, p, testutil.AppUser, testutil.AppPassword, "pgbouncer")
	requirePgCode(t, err, "28000")
	_, err = adminConn(t, ctx, p, testutil.SuperUser, "wrong", "poolmgr")
	if err == nil {
		t.Fatal("wrong password accepted on the console")
	}
	out, code := psqlAdmin(t, p, testutil.AppUser, testutil.AppPassword, "pgbouncer", "SHOW POOLS")
	if code == 0 || !strings.Contains(out, "not allowed to connect to the admin console") {
		t.Errorf("psql as app: exit %d\n%s", code, out)
	}

	st, err := adminConn(t, ctx, p, statsUser, statsPassword, "pgbouncer")
	if err != nil {
		t.Fatalf("stats user: %v", err)
	}
	for _, sql := range []string{"SHOW POOLS", "SHOW STATS", "SHOW CLIENTS", "SHOW SERVERS", "SHOW CONFIG", "SHOW BACKENDS"} {
		showRows(t, ctx, st, sql)
	}
	for _, sql := range []string{"PAUSE", "PAUSE app", "RESUME", "RELOAD", "SHUTDOWN", "KILL app", "RECONNECT", "DRAIN " + testutil.PrimaryAddr} {
		_, err := st.Exec(ctx, sql)
		requirePgCode(t, err, "42501")
	}
	out, code = psqlAdmin(t, p, statsUser, statsPassword, "pgbouncer", "PAUSE")
	if code == 0 || !strings.Contains(out, "permission denied") {
		t.Errorf("psql PAUSE as stats user: exit %d\n%s", code, out)
	}
	if p.Exited() {
		t.Fatal("poolmgr exited")
	}
}

// PAUSE stops new transactions from getting a server until RESUME.
func TestAdminPauseResume(t *testing.T) {
	p := startAdminProxy(t, testutil.Config{PoolSize: 2})
	ctx := testCtx(t, 60*time.Second)
	app := connect(t, ctx, p)
	mustExec(t, ctx, app, "SELECT 1") // the pool exists
	adm := mustAdminConn(t, ctx, p)

	mustExec(t, ctx, adm, "PAUSE app")
	cols, pools := showRows(t, ctx, adm, "SHOW POOLS")
	for _, r := range pools {
		if r[0] == "app" && r[colIndex(cols, "paused")] != "1" {
			t.Errorf("pool not shown paused: %v", r)
		}
	}
	done := make(chan error, 1)
	go func() {
		var n int
		done <- app.QueryRow(ctx, "SELECT 42").Scan(&n)
	}()
	select {
	case err := <-done:
		t.Fatalf("query ran while paused (err %v)", err)
	case <-time.After(700 * time.Millisecond):
	}
	// The waiting client shows up as such.
	cols, pools = showRows(t, ctx, adm, "SHOW POOLS")
	for _, r := range pools {
		if r[0] == "app" && r[colIndex(cols, "cl_waiting")] != "1" {
			t.Errorf("paused pool row %v: want cl_waiting 1", r)
		}
	}
	mustExec(t, ctx, adm, "RESUME app")
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("query after RESUME: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("query still blocked 10 s after RESUME")
	}

	// PAUSE with no argument pauses every pool; RESUME with none resumes them.
	mustExec(t, ctx, adm, "PAUSE")
	go func() {
		var n int
		done <- app.QueryRow(ctx, "SELECT 43").Scan(&n)
	}()
	select {
	case err := <-done:
		t.Fatalf("query ran while all pools paused (err %v)", err)
	case <-time.After(500 * time.Millisecond):
	}
	mustExec(t, ctx, adm, "RESUME")
	if err := <-done; err != nil {
		t.Fatalf("after RESUME: %v", err)
	}
}

// KILL db closes every client (and server) of that database, not the console.
func TestAdminKill(t *testing.T) {
	p := startAdminProxy(t, testutil.Config{PoolSize: 2})
	ctx := testCtx(t, 60*time.Second)
	a, b := connect(t, ctx, p), connect(t, ctx, p)
	mustExec(t, ctx, a, "SELECT 1")
	mustExec(t, ctx, b, "SELECT 1")
	adm := mustAdminConn(t, ctx, p)

	mustExec(t, ctx, adm, "KILL app")
	for _, c := range []*pgx.Conn{a, b} {
		if _, err := c.Exec(ctx, "SELECT 1"); err == nil {
			t.Error("client of a killed database still works")
		}
	}
	testutil.CheckFor(t, 5*time.Second, 50*time.Millisecond, func() error {
		cols, clients := showRows(t, ctx, adm, "SHOW CLIENTS")
		for _, r := range clients {
			if r[colIndex(cols, "database")] == "app" {
				return errorf("client of app still listed: %v", r)
			}
		}
		return nil
	})
	if _, rows := showRows(t, ctx, adm, "SHOW SERVERS"); len(rows) != 0 {
		t.Errorf("servers left after KILL: %v", rows)
	}
	// New clients work again.
	c := connect(t, ctx, p)
	mustExec(t, ctx, c, "SELECT 1")
	_, err := adm.Exec(ctx, "KILL")
	requirePgCode(t, err, "42601")
}

// RECONNECT closes idle servers now; RELOAD re-reads the config (SIGHUP).
func TestAdminReconnectReload(t *testing.T) {
	cfg := testutil.Config{PoolSize: 2}
	p := startAdminProxy(t, cfg)
	ctx := testCtx(t, 60*time.Second)
	app := connect(t, ctx, p)
	mustExec(t, ctx, app, "SELECT 1")
	adm := mustAdminConn(t, ctx, p)
	_, before := showRows(t, ctx, adm, "SHOW SERVERS")
	if len(before) == 0 {
		t.Fatal("no server connection")
	}
	mustExec(t, ctx, adm, "RECONNECT app")
	testutil.CheckFor(t, 5*time.Second, 50*time.Millisecond, func() error {
		if _, rows := showRows(t, ctx, adm, "SHOW SERVERS"); len(rows) != 0 {
			return errorf("servers after RECONNECT: %v", rows)
		}
		return nil
	})
	mustExec(t, ctx, app, "SELECT 1") // a new server connection is opened

	cfg.PoolSize = 3
	cfg.Sections = adminSections
	p.WriteConfig(cfg.TOML())
	mustExec(t, ctx, adm, "RELOAD")
	testutil.CheckFor(t, 5*time.Second, 50*time.Millisecond, func() error {
		_, rows := showRows(t, ctx, adm, "SHOW CONFIG")
		for _, r := range rows {
			if r[0] == "pool_size" && r[1] == "3" {
				return nil
			}
		}
		return errorf("pool_size not 3 after RELOAD; log:\n%s", p.Log())
	})
}

// SHUTDOWN answers, then poolmgr stops gracefully (SIGTERM to itself).
func TestAdminShutdown(t *testing.T) {
	p := startAdminProxy(t, testutil.Config{})
	out, code := psqlAdmin(t, p, testutil.SuperUser, testutil.SuperPassword, "pgbouncer", "SHUTDOWN")
	if code != 0 || !strings.Contains(out, "SHUTDOWN") {
		t.Errorf("psql SHUTDOWN: exit %d\n%s", code, out)
	}
	if exit, err := p.Wait(15 * time.Second); err != nil || exit != 0 {
		t.Fatalf("poolmgr after SHUTDOWN: exit %d, %v", exit, err)
	}
}

// waitBackendsUp waits (up to 10 s) until SHOW BACKENDS reports each backend of want
// (address -> role) up with that role.
func waitBackendsUp(t *testing.T, ctx context.Context, adm *pgx.Conn, want map[string]string) {
	t.Helper()
	testutil.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		cols, rows := showRows(t, ctx, adm, "SHOW BACKENDS")
		ri, hi := colIndex(cols, "role"), colIndex(cols, "health")
		ok := 0
		for _, r := range rows {
			if w, found := want[r[0]]; found && r[ri] == w && r[hi] == "up" {
				ok++
			}
		}
		if ok != len(want) {
			return fmt.Errorf("SHOW BACKENDS: %v, want %v up", rows, want)
		}
		return nil
	})
}
