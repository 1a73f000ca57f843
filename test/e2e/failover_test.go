package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/poolmgr/poolmgr/internal/testutil"
)

// The failover tests stop and promote servers, so they run on a cluster of
// their own (scripts/pgcluster with another port base and directory), never on
// the shared one. It is destroyed when the test ends.
//
// Several test runs may go on at once (engineers share the machine), so each
// takes a port base of its own: the first of 21000, 21010, ... 21990 whose
// lock file (/tmp/pm-failover-<base>.lock, flock) it can take and whose three
// ports are free. The lock is held until the cluster is destroyed; the
// directory is /tmp/pm-failover-<base>.
//
//	POOLMGR_FAILOVER_PORT_BASE  use this port base (still locked; the test fails if it is taken)
//	POOLMGR_FAILOVER_DIR        use this directory
const (
	failoverInterval = 500 * time.Millisecond // health_check_interval
	failoverTimeout  = time.Second            // health_check_timeout
	failoverFailures = 3                      // health_check_failures
)

// failoverCluster is a private three-node cluster made by scripts/pgcluster.
type failoverCluster struct {
	base   int
	dir    string
	script string
	pgbin  string
	addrs  []string // node0 (primary), node1, node2
}

func getenv(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// newFailoverCluster destroys whatever a previous run left in the directory,
// starts a fresh cluster and registers its destruction.
func newFailoverCluster(t *testing.T) *failoverCluster {
	t.Helper()
	if testing.Short() {
		t.Skip("creates a PostgreSQL cluster (-short)")
	}
	if !testutil.E2ERequired() && os.Getenv("POOLMGR_E2E_FAILOVER") != "1" {
		t.Skip("creates and destroys its own PostgreSQL cluster: set POOLMGR_E2E=1 or POOLMGR_E2E_FAILOVER=1")
	}
	testutil.RequireProcess(t)
	root, err := testutil.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	base := lockPortBase(t)
	dir, err := filepath.Abs(getenv("POOLMGR_FAILOVER_DIR", filepath.Join(os.TempDir(), fmt.Sprintf("pm-failover-%d", base))))
	if err != nil {
		t.Fatal(err)
	}
	fc := &failoverCluster{
		base:   base,
		dir:    dir,
		script: filepath.Join(root, "scripts", "pgcluster"),
		pgbin:  getenv("POOLMGR_PG_BIN", "/usr/lib/postgresql/15/bin"),
	}
	for i := 0; i < 3; i++ {
		fc.addrs = append(fc.addrs, fmt.Sprintf("127.0.0.1:%d", base+i))
	}
	if _, err := os.Stat(filepath.Join(fc.pgbin, "pg_ctl")); err != nil {
		if testutil.E2ERequired() {
			t.Fatalf("POOLMGR_E2E=1 but PostgreSQL is not installed: %v", err)
		}
		t.Skipf("PostgreSQL is not installed: %v", err)
	}
	// Never touch the shared cluster: its directory is what the script picks by default.
	shared, err := exec.Command(fc.script, "dir").Output()
	if err != nil {
		t.Fatalf("%s dir: %v", fc.script, err)
	}
	if strings.TrimSpace(string(shared)) == dir {
		t.Fatalf("POOLMGR_FAILOVER_DIR %s is the shared cluster's directory", dir)
	}

	fc.script_(t, "destroy") // leftovers of an interrupted run
	t.Cleanup(func() {
		if t.Failed() {
			fc.dumpLogs(t)
		}
		fc.script_(t, "destroy")
	})
	start := time.Now()
	fc.script_(t, "start")
	t.Logf("failover cluster %v up in %v (dir %s)", fc.addrs, time.Since(start).Round(time.Millisecond), dir)
	return fc
}

// lockPortBase takes a port base for this run's cluster (see the top of the
// file) and releases it when the test ends (after the cluster is destroyed:
// cleanups run last-registered first).
func lockPortBase(t *testing.T) int {
	t.Helper()
	bases := []int{}
	if v := os.Getenv("POOLMGR_FAILOVER_PORT_BASE"); v != "" {
		b, err := strconv.Atoi(v)
		if err != nil || b == 20000 || b < 1024 || b > 65533 {
			t.Fatalf("POOLMGR_FAILOVER_PORT_BASE=%q: want a port base 1024..65533 other than 20000 (the shared cluster's)", v)
		}
		bases = append(bases, b)
	} else {
		for b := 21000; b < 22000; b += 10 {
			bases = append(bases, b)
		}
	}
	for _, b := range bases {
		f, err := os.OpenFile(filepath.Join(os.TempDir(), fmt.Sprintf("pm-failover-%d.lock", b)), os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close() // another run holds it
			continue
		}
		if !portsFree(b, 3) {
			f.Close()
			continue
		}
		t.Cleanup(func() { f.Close() }) // releases the lock
		return b
	}
	t.Fatalf("no free port base for the failover cluster among %v (locks /tmp/pm-failover-<base>.lock)", bases)
	return 0
}

// portsFree reports whether 127.0.0.1:base .. base+n-1 can be listened on.
func portsFree(base, n int) bool {
	for p := base; p < base+n; p++ {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			return false
		}
		l.Close()
	}
	return true
}

// script_ runs scripts/pgcluster cmd on this cluster.
func (fc *failoverCluster) script_(t *testing.T, cmd string) {
	t.Helper()
	c := exec.Command(fc.script, cmd)
	env := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "POOLMGR_CLUSTER_DIR=") && !strings.HasPrefix(kv, "POOLMGR_CLUSTER_PORT_BASE=") {
			env = append(env, kv)
		}
	}
	c.Env = append(env, "POOLMGR_CLUSTER_DIR="+fc.dir, "POOLMGR_CLUSTER_PORT_BASE="+strconv.Itoa(fc.base),
		"POOLMGR_PGBENCH_SCALE=1")
	out, err := runLogged(c)
	if err != nil {
		t.Fatalf("scripts/pgcluster %s (POOLMGR_CLUSTER_PORT_BASE=%d POOLMGR_CLUSTER_DIR=%s): %v\n%s", cmd, fc.base, fc.dir, err, out)
	}
}

// runLogged runs c with its output in a file (a server started by pg_ctl
// must not inherit a pipe the test waits on) and returns the output.
func runLogged(c *exec.Cmd) (string, error) {
	f, err := os.CreateTemp("", "pm-failover-cmd-")
	if err != nil {
		return "", err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	c.Stdout, c.Stderr = f, f
	if c.Dir == "" {
		c.Dir = "/"
	}
	err = c.Run()
	out, _ := os.ReadFile(f.Name())
	return string(out), err
}

func (fc *failoverCluster) nodeDir(n int) string {
	return filepath.Join(fc.dir, fmt.Sprintf("node%d", n))
}

// pgctl runs pg_ctl as the postgres OS user (when root) on node n.
func (fc *failoverCluster) pgctl(t *testing.T, n int, args ...string) {
	t.Helper()
	bin := filepath.Join(fc.pgbin, "pg_ctl")
	args = append(args, "-D", fc.nodeDir(n))
	var c *exec.Cmd
	if os.Geteuid() == 0 {
		c = exec.Command("runuser", append([]string{"-u", "postgres", "--", bin}, args...)...)
	} else {
		c = exec.Command(bin, args...)
	}
	if out, err := runLogged(c); err != nil {
		t.Fatalf("pg_ctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func (fc *failoverCluster) stopNode(t *testing.T, n int, mode string) {
	t.Helper()
	fc.pgctl(t, n, "stop", "-m", mode, "-w", "-t", "60", "-s")
}

func (fc *failoverCluster) startNode(t *testing.T, n int) {
	t.Helper()
	fc.pgctl(t, n, "start", "-w", "-t", "60", "-s", "-l", filepath.Join(fc.dir, "log", fmt.Sprintf("node%d.log", n)))
}

func (fc *failoverCluster) dumpLogs(t *testing.T) {
	for n := 0; n < 3; n++ {
		b, err := os.ReadFile(filepath.Join(fc.dir, "log", fmt.Sprintf("node%d.log", n)))
		if err == nil {
			s := string(b)
			if len(s) > 4000 {
				s = s[len(s)-4000:]
			}
			t.Logf("node%d.log (tail):\n%s", n, s)
		}
	}
}

// direct opens a connection straight to node n.
func (fc *failoverCluster) direct(t *testing.T, ctx context.Context, n int, user, pass string) *pgx.Conn {
	t.Helper()
	c, err := connectTo(t, ctx, testutil.DirectConnString(fc.addrs[n], user, pass, testutil.AppDB))
	if err != nil {
		t.Fatalf("connect to node%d (%s): %v", n, fc.addrs[n], err)
	}
	return c
}

// logWatch finds poolmgr log lines written after a mark.
type logWatch struct {
	p    *testutil.Proxy
	from int
}

func watchLog(p *testutil.Proxy) *logWatch { return &logWatch{p: p, from: len(p.Log())} }

// find returns the first line since the mark holding every one of subs.
func (w *logWatch) find(subs ...string) (string, bool) {
	log := w.p.Log()
	if w.from > len(log) { // the buffer dropped its head
		w.from = 0
	}
	sc := bufio.NewScanner(strings.NewReader(log[w.from:]))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		all := true
		for _, s := range subs {
			all = all && strings.Contains(line, s)
		}
		if all {
			return line, true
		}
	}
	return "", false
}

// waitLog waits up to timeout for a line holding every one of subs and
// returns when it was logged (its time= field; when it was found if that
// does not parse).
func (w *logWatch) waitLog(t *testing.T, timeout time.Duration, subs ...string) time.Time {
	t.Helper()
	var line string
	testutil.CheckFor(t, timeout, 10*time.Millisecond, func() error {
		var ok bool
		if line, ok = w.find(subs...); !ok {
			return fmt.Errorf("no poolmgr log line with %q", subs)
		}
		return nil
	})
	return lineTime(line)
}

// lineTime returns the time= field of a slog text line, or now.
func lineTime(line string) time.Time {
	if i := strings.Index(line, "time="); i >= 0 {
		f := line[i+len("time="):]
		if j := strings.IndexByte(f, ' '); j >= 0 {
			f = f[:j]
		}
		if ts, err := time.Parse(time.RFC3339Nano, f); err == nil {
			return ts
		}
	}
	return time.Now()
}

func backendKV(addr string) string { return "backend=" + addr }

func TestFailover(t *testing.T) {
	fc := newFailoverCluster(t)
	ctx := testCtx(t, 5*time.Minute)

	// A table for the writes, replicated to both standbys before anything stops.
	table := "failover_" + testutil.Nonce()
	admin := fc.direct(t, ctx, 0, testutil.SuperUser, testutil.SuperPassword)
	mustExec(t, ctx, admin, "CREATE TABLE "+table+" (v text NOT NULL, at timestamptz NOT NULL DEFAULT now())")
	mustExec(t, ctx, admin, "GRANT ALL ON TABLE "+table+" TO "+testutil.AppUser)
	admin.Close(ctx)
	for n := 1; n <= 2; n++ {
		c := fc.direct(t, ctx, n, testutil.SuperUser, testutil.SuperPassword)
		testutil.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
			var ok bool
			if err := c.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", table).Scan(&ok); err != nil || !ok {
				return fmt.Errorf("table %s not on node%d yet (%v)", table, n, err)
			}
			return nil
		})
		c.Close(ctx)
	}

	cfg := testutil.Config{
		PoolMode: "transaction",
		PoolSize: 4,
		Backends: fc.addrs,
		Extra: fmt.Sprintf("health_check_interval = %g\nhealth_check_timeout = %g\nhealth_check_failures = %d\nserver_connect_timeout = 2",
			failoverInterval.Seconds(), failoverTimeout.Seconds(), failoverFailures),
	}
	p := testutil.StartPoolmgr(t, cfg.TOML())
	pid := p.Cmd.Process.Pid
	all := &logWatch{p: p}

	// The checker runs: every backend's role is detected.
	if err := testutil.WaitFor(10*time.Second, 10*time.Millisecond, func() error {
		if _, ok := all.find(`msg="health: checks enabled"`); !ok {
			return fmt.Errorf("no \"health: checks enabled\" log line")
		}
		return nil
	}); err != nil {
		t.Fatalf("the health checker does not run (is startHealth called from internal/app/run.go?): %v", err)
	}
	for i, role := range []string{"primary", "standby", "standby"} {
		all.waitLog(t, 10*time.Second, `msg="health: backend role"`, backendKV(fc.addrs[i]), "role="+role)
	}

	t.Run("ReplicaDownAndUp", func(t *testing.T) { failoverReplicaDownUp(t, fc, p) })
	t.Run("Promotion", func(t *testing.T) { failoverPromotion(t, fc, p, table) })

	if p.Exited() || p.Cmd.Process.Pid != pid {
		t.Fatalf("poolmgr exited or was restarted during the failover tests")
	}
}

// (a) A stopped replica is marked unhealthy within
// health_check_interval × health_check_failures + health_check_timeout, and
// healthy again after it restarts; clients keep working meanwhile.
func failoverReplicaDownUp(t *testing.T, fc *failoverCluster, p *testutil.Proxy) {
	ctx := testCtx(t, 2*time.Minute)
	const node = 2
	addr := fc.addrs[node]
	bound := time.Duration(failoverFailures)*failoverInterval + failoverTimeout
	const slack = time.Second // polling and a busy machine

	w := watchLog(p)
	fc.stopNode(t, node, "fast")
	stopped := time.Now()
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			fc.startNode(t, node)
		}
	})
	took := w.waitLog(t, bound+slack+5*time.Second, `msg="health: backend down"`, backendKV(addr)).Sub(stopped)
	t.Logf("replica %s marked down %v after pg_ctl stop returned (bound %v)", addr, took.Round(time.Millisecond), bound)
	if took > bound+slack {
		t.Errorf("replica marked down after %v, want within %v (+%v slack)", took, bound, slack)
	}
	if line, ok := w.find(`msg="health: backend down"`, backendKV(fc.addrs[0])); ok {
		t.Errorf("primary marked down while a replica stopped: %s", line)
	}

	// Clients are not affected by the dead replica: reads and writes work, none hangs.
	c := connect(t, ctx, p)
	for i := 0; i < 20; i++ {
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		start := time.Now()
		var n int
		err := c.QueryRow(qctx, "SELECT 1").Scan(&n)
		cancel()
		if err != nil || time.Since(start) > 2*time.Second {
			t.Fatalf("read %d with a replica down: %v after %v", i, err, time.Since(start))
		}
	}

	w = watchLog(p)
	fc.startNode(t, node)
	restarted = true
	started := time.Now()
	up := failoverInterval + failoverTimeout
	took = w.waitLog(t, up+slack+10*time.Second, `msg="health: backend up"`, backendKV(addr), "role=standby").Sub(started)
	t.Logf("replica %s healthy again %v after pg_ctl start returned", addr, took.Round(time.Millisecond))
	if took > up+slack {
		t.Errorf("replica healthy again after %v, want within %v (+%v slack)", took, up, slack)
	}
}

// (b) Promotion: the primary stops, writes fail fast with an error from
// poolmgr, node1 is promoted and writes go to it without a restart.
func failoverPromotion(t *testing.T, fc *failoverCluster, p *testutil.Proxy, table string) {
	ctx := testCtx(t, 2*time.Minute)
	insert := func(c *pgx.Conn, v string) (time.Duration, error) {
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		start := time.Now()
		_, err := c.Exec(qctx, "INSERT INTO "+table+" (v) VALUES ($1)", v)
		return time.Since(start), err
	}
	count := func(c *pgx.Conn, v string) (int64, error) {
		var n int64
		err := c.QueryRow(ctx, "SELECT count(*) FROM "+table+" WHERE v = $1", v).Scan(&n)
		return n, err
	}

	// Before: a write through poolmgr lands on node0 and reaches node1.
	before := "before-" + testutil.Nonce()
	c := connect(t, ctx, p)
	if _, err := insert(c, before); err != nil {
		t.Fatalf("insert before failover: %v", err)
	}
	n1 := fc.direct(t, ctx, 1, testutil.SuperUser, testutil.SuperPassword)
	testutil.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		if n, err := count(n1, before); err != nil || n != 1 {
			return fmt.Errorf("row not replicated to node1: n=%d err=%v", n, err)
		}
		return nil
	})
	n1.Close(ctx)

	// The primary dies.
	w := watchLog(p)
	fc.stopNode(t, 0, "immediate")
	down := time.Now()

	// Writes get an error quickly, from poolmgr (an ErrorResponse, not a
	// dropped connection or a hang): on the existing client connection and on
	// new ones, before and after the checker has marked the primary down.
	attempt := func(what string, c *pgx.Conn) {
		t.Helper()
		took, err := insert(c, "while-down-"+testutil.Nonce())
		switch {
		case err == nil:
			t.Errorf("%s: INSERT succeeded with the primary down and nothing promoted", what)
		case took >= 2*time.Second:
			t.Errorf("%s: INSERT failed only after %v (want < 2s): %v", what, took.Round(time.Millisecond), err)
		case pgError(err) == nil:
			t.Errorf("%s: INSERT failed after %v without an error message from poolmgr: %T %v", what, took.Round(time.Millisecond), err, err)
		default:
			pe := pgError(err)
			t.Logf("%s: INSERT failed after %v: %s %s: %s", what, took.Round(time.Millisecond), pe.Severity, pe.Code, pe.Message)
		}
	}
	fresh := func(what string) {
		t.Helper()
		start := time.Now()
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		c, err := connectTo(t, cctx, p.ConnString(testutil.AppUser, testutil.AppPassword, testutil.AppDB))
		if err != nil { // refusing the login is a clear error too, if quick and explicit
			took := time.Since(start)
			if took >= 2*time.Second || pgError(err) == nil {
				t.Errorf("%s: connect failed after %v: %v", what, took.Round(time.Millisecond), err)
			} else {
				t.Logf("%s: connect refused after %v: %v", what, took.Round(time.Millisecond), err)
			}
			return
		}
		attempt(what, c)
	}
	attempt("existing connection, primary just stopped", c)
	fresh("new connection, primary just stopped")
	took := w.waitLog(t, 10*time.Second, `msg="health: backend down"`, backendKV(fc.addrs[0])).Sub(down)
	t.Logf("primary marked down %v after it stopped", took.Round(time.Millisecond))
	fresh("new connection, primary marked down")
	if c.IsClosed() {
		c = connect(t, ctx, p)
	}
	attempt("existing connection, primary marked down", c)

	// Promote node1: poolmgr finds it and writes succeed within a few seconds, no restart.
	fc.pgctl(t, 1, "promote", "-w", "-t", "60", "-s")
	promoted := time.Now()
	after := "after-" + testutil.Nonce()
	var lastErr error
	testutil.CheckFor(t, 5*time.Second, 50*time.Millisecond, func() error {
		qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		if c == nil || c.IsClosed() {
			nc, err := connectTo(t, qctx, p.ConnString(testutil.AppUser, testutil.AppPassword, testutil.AppDB))
			if err != nil {
				lastErr = err
				return err
			}
			c = nc
		}
		_, err := c.Exec(qctx, "INSERT INTO "+table+" (v) VALUES ($1)", after)
		if err != nil {
			lastErr = err
			if pgError(err) == nil { // connection-level failure: reconnect next time
				c.Close(context.Background())
			}
			return fmt.Errorf("INSERT after promotion: %w", err)
		}
		return nil
	})
	t.Logf("write through poolmgr succeeded %v after pg_ctl promote returned (last error before: %v)",
		time.Since(promoted).Round(time.Millisecond), lastErr)
	if line, ok := w.find(`msg="health: role changed"`, backendKV(fc.addrs[1]), "from=standby", "to=primary"); !ok {
		t.Errorf("no 'health: role changed' log line for %s", fc.addrs[1])
	} else {
		t.Logf("promotion detected %v after pg_ctl promote returned", lineTime(line).Sub(promoted).Round(time.Millisecond))
	}

	// The write is on node1, with the row from before the failover.
	n1 = fc.direct(t, ctx, 1, testutil.SuperUser, testutil.SuperPassword)
	for _, v := range []string{before, after} {
		if n, err := count(n1, v); err != nil || n != 1 {
			t.Errorf("node1 holds %d rows %q (err %v), want 1", n, v, err)
		}
	}
	var inRecovery bool
	if err := n1.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery); err != nil || inRecovery {
		t.Errorf("node1 in recovery after promote: %v %v", inRecovery, err)
	}
	// More writes and reads keep working.
	for i := 0; i < 10; i++ {
		if took, err := insert(c, after); err != nil || took > 2*time.Second {
			t.Fatalf("write %d after failover: %v (%v)", i, err, took)
		}
	}
	// Read our writes in a transaction that writes first (so it runs on the
	// primary whatever the read routing; node2 still follows the dead primary).
	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatalf("BEGIN after failover: %v", err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, "INSERT INTO "+table+" (v) VALUES ($1)", after); err != nil {
		t.Fatalf("INSERT in a transaction after failover: %v", err)
	}
	var got int64
	if err := tx.QueryRow(ctx, "SELECT count(*) FROM "+table+" WHERE v = $1", after).Scan(&got); err != nil || got != 12 {
		t.Errorf("the new primary holds %d rows %q (err %v), want 12", got, after, err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Errorf("COMMIT after failover: %v", err)
	}

	// The old primary comes back (crash recovery, timeline 1, not rebuilt):
	// the checker marks it stale and writes keep going to node1.
	w = watchLog(p)
	fc.startNode(t, 0)
	w.waitLog(t, 10*time.Second, `msg="health: stale primary`, backendKV(fc.addrs[0]), "newer="+fc.addrs[1])
	late := "late-" + testutil.Nonce()
	for i := 0; i < 5; i++ {
		if _, err := insert(c, late); err != nil {
			t.Fatalf("write %d with the old primary back: %v", i, err)
		}
	}
	if n, err := count(n1, late); err != nil || n != 5 {
		t.Errorf("node1 holds %d of the 5 writes made with the old primary back (err %v)", n, err)
	}
	n0 := fc.direct(t, ctx, 0, testutil.SuperUser, testutil.SuperPassword)
	if n, err := count(n0, late); err != nil || n != 0 {
		t.Errorf("the stale old primary got %d writes (err %v), want 0", n, err)
	}
}
