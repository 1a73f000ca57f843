package testutil

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Test cluster layout (scripts/pgcluster, docs/architecture.md).
const (
	PrimaryAddr  = "127.0.0.1:20000"
	Standby1Addr = "127.0.0.1:20001"
	Standby2Addr = "127.0.0.1:20002"

	PrimaryHost = "127.0.0.1"
	PrimaryPort = 20000

	AppDB       = "app"
	AppUser     = "app"
	AppPassword = "app"

	SuperUser     = "postgres"
	SuperPassword = "postgres"
)

// ClusterAddrs lists the primary and the two hot standbys.
var ClusterAddrs = []string{PrimaryAddr, Standby1Addr, Standby2Addr}

// E2ERequired reports whether POOLMGR_E2E=1: missing prerequisites are then
// failures instead of skips (make test).
func E2ERequired() bool { return os.Getenv("POOLMGR_E2E") == "1" }

// skipOrFail skips the test, or fails it when POOLMGR_E2E=1.
func skipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if E2ERequired() {
		t.Fatalf("POOLMGR_E2E=1 but %s", msg)
	}
	t.Skip(msg)
}

// RequireCluster checks that the primary and both standbys accept TCP
// connections. If not, it fails the test when POOLMGR_E2E=1 and skips it
// otherwise.
func RequireCluster(t testing.TB) {
	t.Helper()
	var down []string
	for _, addr := range ClusterAddrs {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			down = append(down, fmt.Sprintf("%s (%v)", addr, err))
			continue
		}
		c.Close()
	}
	if len(down) > 0 {
		skipOrFail(t, "test cluster is not running: %s does not accept connections; start it with `scripts/pgcluster start`",
			strings.Join(down, ", "))
	}
}

// RequireBinary checks that the named program is in PATH (psql, pgbench…),
// failing with POOLMGR_E2E=1 and skipping otherwise. It returns its path.
func RequireBinary(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		skipOrFail(t, "%s is not installed (%v)", name, err)
	}
	return p
}

// KV quotes a value for a libpq key/value connection string.
func KV(v string) string {
	v = strings.ReplaceAll(v, `\`, `\\`)
	v = strings.ReplaceAll(v, `'`, `\'`)
	return "'" + v + "'"
}

// DirectConnString is a connection string straight to a cluster member
// (addr "host:port"), bypassing poolmgr.
func DirectConnString(addr, user, pass, db string) string {
	host, port, _ := net.SplitHostPort(addr)
	return fmt.Sprintf("host=%s port=%s user=%s password=%s dbname=%s sslmode=disable connect_timeout=5",
		host, port, KV(user), KV(pass), KV(db))
}

// AdminConnString connects to the primary as the superuser.
func AdminConnString(db string) string {
	return DirectConnString(PrimaryAddr, SuperUser, SuperPassword, db)
}

// AdminConn opens a superuser connection to the primary's database db and
// closes it when the test ends.
func AdminConn(t testing.TB, db string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, AdminConnString(db))
	if err != nil {
		t.Fatalf("connect to primary as %s: %v", SuperUser, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c.Close(ctx)
	})
	return c
}

// AdminExec runs sql on the primary's database db as the superuser
// (setup: create tables, grant to app…).
func AdminExec(t testing.TB, db, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, AdminConnString(db))
	if err != nil {
		t.Fatalf("connect to primary as %s: %v", SuperUser, err)
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("admin exec %q: %v", sql, err)
	}
}

// counter is a shared superuser connection used to sample pg_stat_activity.
var counter struct {
	sync.Mutex
	conn *pgx.Conn
}

// CountServerConns counts client backends on the primary connected to db as
// user, excluding the counting connection itself. If ports is not nil, only
// backends whose client_port is in ports are counted (connections made by one
// poolmgr process). Safe for concurrent use from any goroutine.
func CountServerConns(ctx context.Context, db, user string, ports []int) (int, error) {
	counter.Lock()
	defer counter.Unlock()
	for attempt := 0; ; attempt++ {
		if counter.conn == nil || counter.conn.IsClosed() {
			c, err := pgx.Connect(ctx, AdminConnString("postgres"))
			if err != nil {
				return 0, fmt.Errorf("connect to primary as %s: %w", SuperUser, err)
			}
			counter.conn = c
		}
		q := `SELECT count(*) FROM pg_stat_activity
		       WHERE backend_type = 'client backend' AND datname = $1 AND usename = $2
		         AND pid <> pg_backend_pid()`
		args := []any{db, user}
		if ports != nil {
			p32 := make([]int32, len(ports))
			for i, p := range ports {
				p32[i] = int32(p)
			}
			q += ` AND client_port = ANY($3)`
			args = append(args, p32)
		}
		var n int
		err := counter.conn.QueryRow(ctx, q, args...).Scan(&n)
		if err == nil {
			return n, nil
		}
		counter.conn.Close(context.Background())
		counter.conn = nil
		if attempt > 0 || ctx.Err() != nil {
			return 0, err
		}
	}
}

// ServerConnCount connects to the primary as postgres and counts the client
// backends of database db and user in pg_stat_activity (its own excluded).
// It counts every such backend, whoever opened it; Proxy.ServerConnCount
// counts only those of one poolmgr process.
func ServerConnCount(t testing.TB, db, user string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := CountServerConns(ctx, db, user, nil)
	if err != nil {
		t.Fatalf("ServerConnCount(%s, %s): %v", db, user, err)
	}
	return n
}

// ActiveQueries returns the pids of the primary's backends whose current query
// text contains substr and that are running it (state active). Put a unique
// marker (e.g. a comment with Nonce()) in the query to find it.
func ActiveQueries(ctx context.Context, substr string) ([]int, error) {
	counter.Lock()
	defer counter.Unlock()
	if counter.conn == nil || counter.conn.IsClosed() {
		c, err := pgx.Connect(ctx, AdminConnString("postgres"))
		if err != nil {
			return nil, err
		}
		counter.conn = c
	}
	rows, err := counter.conn.Query(ctx, `SELECT pid FROM pg_stat_activity
	     WHERE state = 'active' AND strpos(query, $1) > 0 AND pid <> pg_backend_pid() ORDER BY pid`, substr)
	if err != nil {
		counter.conn.Close(context.Background())
		counter.conn = nil
		return nil, err
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return nil, err
	}
	out := make([]int, len(pids))
	for i, p := range pids {
		out[i] = int(p)
	}
	return out, nil
}

// Nonce returns a short random hex string for unique names and query markers.
func Nonce() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// socketPorts returns the local TCP ports of the sockets process pid has open
// whose remote port is remotePort (Linux /proc). ok is false if /proc cannot
// be read.
func socketPorts(pid, remotePort int) (ports []int, ok bool) {
	ports, err := SocketPorts(pid, remotePort, false)
	return ports, err == nil
}

// SocketPorts returns the local TCP ports of the sockets process pid has open
// (io_uring direct descriptors included, see SocketInodes) whose remote port
// is remotePort, only ESTABLISHED ones when established is set (Linux /proc).
func SocketPorts(pid, remotePort int, established bool) ([]int, error) {
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return nil, err
	}
	inodes := SocketInodes(pid, fds)
	ports := []int{}
	for _, f := range []string{"tcp", "tcp6"} {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, f))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n")[1:] {
			fs := strings.Fields(line)
			if len(fs) < 10 || !inodes[fs[9]] || (established && fs[3] != "01") { // 01: ESTABLISHED
				continue
			}
			lp := hexPort(fs[1])
			rp := hexPort(fs[2])
			if rp == remotePort && lp > 0 {
				ports = append(ports, lp)
			}
		}
	}
	return ports, nil
}

func hexPort(addr string) int {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		return -1
	}
	v, err := strconv.ParseUint(addr[i+1:], 16, 16)
	if err != nil {
		return -1
	}
	return int(v)
}

// NewTable creates a table in the primary's app database as the superuser,
// grants it to app and drops it when the test ends. ddl is a CREATE TABLE
// statement with one %s for the (unique) table name, which it returns.
func NewTable(t testing.TB, ddl string) string {
	t.Helper()
	name := "e2e_" + Nonce()
	AdminExec(t, AppDB, fmt.Sprintf(ddl, name))
	AdminExec(t, AppDB, fmt.Sprintf("GRANT ALL ON TABLE %s TO %s", name, AppUser))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, AdminConnString(AppDB))
		if err != nil {
			t.Logf("drop %s: %v", name, err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(ctx, "DROP TABLE IF EXISTS "+name); err != nil {
			t.Logf("drop %s: %v", name, err)
		}
	})
	return name
}

// SocketInodes returns the inodes of the sockets a process holds: in its fd
// table, and as io_uring direct descriptors (listed in the fdinfo of each
// io_uring instance as "N: socket:[inode]"), which the fd table never shows.
func SocketInodes(pid int, fds []os.DirEntry) map[string]bool {
	inodes := map[string]bool{}
	for _, fd := range fds {
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err != nil {
			continue
		}
		if strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
			continue
		}
		if l != "anon_inode:[io_uring]" {
			continue
		}
		info, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, fd.Name()))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(info), "\n") {
			if i := strings.Index(line, "socket:["); i >= 0 {
				rest := line[i+len("socket:["):]
				if j := strings.IndexByte(rest, ']'); j > 0 {
					inodes[rest[:j]] = true
				}
			}
		}
	}
	return inodes
}

// PostgresAddr returns the PostgreSQL primary a package's tests run against:
// they skip unless POOLMGR_TEST_PG (an address, or "1" for 127.0.0.1:20000)
// or POOLMGR_E2E=1 is set; with POOLMGR_E2E=1 an unreachable server fails.
func PostgresAddr(t testing.TB) string {
	t.Helper()
	addr := os.Getenv("POOLMGR_TEST_PG")
	e2e := os.Getenv("POOLMGR_E2E") == "1"
	if addr == "" && !e2e {
		t.Skip("needs PostgreSQL: set POOLMGR_TEST_PG=127.0.0.1:20000 (or POOLMGR_E2E=1) with scripts/pgcluster running")
	}
	if addr == "" || addr == "1" {
		addr = PrimaryAddr
	}
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		if e2e {
			t.Fatalf("POOLMGR_E2E=1 but PostgreSQL at %s is unreachable (scripts/pgcluster start): %v", addr, err)
		}
		t.Skipf("PostgreSQL at %s unreachable: %v", addr, err)
	}
	c.Close()
	return addr
}

// ClusterSocketDir returns the directory of the cluster's Unix-domain sockets
// (unix_socket_directories, scripts/pgcluster: .cluster/sock, or a /tmp
// directory when that path is too long), as the primary reports it, after
// checking that this process can connect to the primary's socket there
// (pg_hba: local trust). If it cannot, it fails the test when POOLMGR_E2E=1
// and skips it otherwise.
func ClusterSocketDir(t testing.TB) string {
	t.Helper()
	RequireCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var dirs string
	if err := AdminConn(t, "postgres").QueryRow(ctx, "SHOW unix_socket_directories").Scan(&dirs); err != nil {
		t.Fatalf("SHOW unix_socket_directories: %v", err)
	}
	dir, _, _ := strings.Cut(dirs, ",")
	dir = strings.TrimSpace(dir)
	if !strings.HasPrefix(dir, "/") {
		skipOrFail(t, "the cluster has no Unix socket directory (unix_socket_directories = %q)", dirs)
	}
	sock := filepath.Join(dir, fmt.Sprintf(".s.PGSQL.%d", PrimaryPort))
	c, err := net.DialTimeout("unix", sock, 2*time.Second)
	if err != nil {
		skipOrFail(t, "cannot connect to the primary's Unix socket %s: %v", sock, err)
	}
	c.Close()
	return dir
}
