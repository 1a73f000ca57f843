package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sys/unix"

	"github.com/poolmgr/poolmgr/internal/storm"
	"github.com/poolmgr/poolmgr/internal/testutil"
)

// Connection storms with pgstorm (cmd/pgstorm, docs/pgstorm.md): thousands of
// authenticated clients opened at once against a poolmgr with a pool of 5
// server connections, while the test samples the proxy's server connections
// to the primary every 100 ms.

const (
	stormPoolSize    = 5
	stormRunTimeout  = 3 * time.Minute
	stormSampleEvery = 100 * time.Millisecond
)

var pgstormBuild struct {
	once sync.Once
	bin  string
	err  error
}

// pgstormBinary builds ./cmd/pgstorm once per test binary into a temp dir
// (as testutil.BinaryPath builds poolmgr) and returns its path;
// $POOLMGR_PGSTORM, if set, is used instead. The temp dir is left behind:
// there is no per-package hook to remove it from this file (testutil.Main
// only removes poolmgr's).
func pgstormBinary(t *testing.T) string {
	t.Helper()
	pgstormBuild.once.Do(func() {
		if p := os.Getenv("POOLMGR_PGSTORM"); p != "" {
			pgstormBuild.bin, pgstormBuild.err = filepath.Abs(p)
			return
		}
		root, err := testutil.RepoRoot()
		if err != nil {
			pgstormBuild.err = err
			return
		}
		dir, err := os.MkdirTemp("", "pgstorm-e2e-bin-")
		if err != nil {
			pgstormBuild.err = err
			return
		}
		bin := filepath.Join(dir, "pgstorm")
		cmd := exec.Command("go", "build", "-o", bin, "./cmd/pgstorm")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			pgstormBuild.err = fmt.Errorf("go build -o %s ./cmd/pgstorm (in %s): %v\n%s", bin, root, err, out)
			return
		}
		pgstormBuild.bin = bin
	})
	if pgstormBuild.err != nil {
		t.Fatalf("building pgstorm: %v", pgstormBuild.err)
	}
	return pgstormBuild.bin
}

// stormResult is one pgstorm run.
type stormResult struct {
	exit      int
	report    storm.Report
	stdout    string
	stderr    string
	took      time.Duration
	maxServer int      // max server connections of the proxy to the primary (app/app)
	samples   int      // successful samples
	series    []string // "t:n" whenever n changed
}

// stormProxy starts poolmgr over the primary only with the storm settings.
func stormProxy(t *testing.T, maxClients int) *testutil.Proxy {
	t.Helper()
	return startProxy(t, testutil.Config{
		PoolSize:             stormPoolSize,
		MaxServerConnections: stormPoolSize,
		MaxClientConnections: maxClients,
		Backends:             []string{testutil.PrimaryAddr},
		// max_server_logins = 2: the burst opens its 5 servers two at a time.
		Extra: "query_wait_timeout = 20\nshutdown_timeout = 2\nmax_server_logins = 2",
	})
}

// runStorm runs pgstorm against p (user app, password app, db app, -json to a
// temp file, -pid the proxy) with the extra args, sampling the proxy's server
// connections every 100 ms meanwhile.
func runStorm(t *testing.T, p *testutil.Proxy, args ...string) stormResult {
	t.Helper()
	bin := pgstormBinary(t)
	jsonPath := filepath.Join(t.TempDir(), "pgstorm.json")
	full := append([]string{
		"-addr", p.Addr, "-user", testutil.AppUser, "-password", testutil.AppPassword, "-db", testutil.AppDB,
		"-json", jsonPath, "-progress", "0",
	}, args...)
	if !p.Direct {
		full = append(full, "-pid", strconv.Itoa(p.Cmd.Process.Pid))
	}
	ctx, cancel := context.WithTimeout(context.Background(), stormRunTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, full...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second

	var (
		res        stormResult
		wg         sync.WaitGroup
		sampleErrs []error
	)
	sctx, stop := context.WithCancel(context.Background())
	var counter *pgx.Conn
	defer func() {
		if counter != nil {
			counter.Close(context.Background())
		}
	}()
	wg.Add(1)
	start := time.Now()
	go func() {
		defer wg.Done()
		tick := time.NewTicker(stormSampleEvery)
		defer tick.Stop()
		last := -1
		for {
			qctx, qcancel := context.WithTimeout(sctx, 5*time.Second)
			n, err := stormServerConns(qctx, p, &counter)
			qcancel()
			if err != nil {
				if sctx.Err() == nil {
					sampleErrs = append(sampleErrs, err)
				}
			} else {
				res.samples++
				res.maxServer = max(res.maxServer, n)
				if n != last {
					res.series = append(res.series, fmt.Sprintf("%.1fs:%d", time.Since(start).Seconds(), n))
					last = n
				}
			}
			select {
			case <-sctx.Done():
				return
			case <-tick.C:
			}
		}
	}()

	t.Logf("pgstorm %s", strings.Join(full, " "))
	err := cmd.Run()
	res.took = time.Since(start)
	stop()
	wg.Wait()
	res.stdout, res.stderr = stdout.String(), stderr.String()
	var ee *exec.ExitError
	switch {
	case err == nil:
		res.exit = 0
	case errors.As(err, &ee) && ctx.Err() == nil:
		res.exit = ee.ExitCode()
	default:
		t.Fatalf("pgstorm did not finish (timeout %v): %v\nstdout:\n%s\nstderr:\n%s", stormRunTimeout, err, res.stdout, tail(res.stderr, 4000))
	}
	t.Logf("pgstorm exit %d after %v; report:\n%s", res.exit, res.took.Round(10*time.Millisecond), res.stdout)
	if res.exit == 2 {
		t.Fatalf("pgstorm usage/set-up/preflight failure (exit 2); stderr:\n%s", tail(res.stderr, 4000))
	}
	data, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatalf("pgstorm JSON report: %v; stderr:\n%s", err, tail(res.stderr, 4000))
	}
	if err := json.Unmarshal(data, &res.report); err != nil {
		t.Fatalf("pgstorm JSON report: %v\n%s", err, tail(string(data), 4000))
	}
	if len(sampleErrs) > 0 {
		t.Errorf("sampling the proxy's server connections: %d errors, first: %v", len(sampleErrs), sampleErrs[0])
	}
	if res.samples < 5 {
		t.Errorf("only %d samples of the proxy's server connections in %v", res.samples, res.took)
	}
	t.Logf("server connections of the proxy to the primary (app/app): max %d over %d samples; changes %v",
		res.maxServer, res.samples, res.series)
	return res
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

func stormErrors(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%q: %d", k, m[k])
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// 1. 5000 clients connect at once (1000 logins in flight), 50 run SELECT 1
// for 3 s, all are held 2 s and each runs one query: every client works and
// poolmgr never opens more than pool_size server connections.
func TestStormConnectionBurst(t *testing.T) {
	testutil.RequireProcess(t)
	const n = 5000
	p := stormProxy(t, 0)
	res := runStorm(t, p, "-n", itoa(n), "-inflight", "1000", "-rate", "0", "-active", "50",
		"-duration", "3s", "-hold", "2s", "-sample-every", "-src", "none")
	r := &res.report
	t.Logf("io_engine=%s: %d/%d established in %.2fs: %.0f connects/s overall, peak %d/s; login p50 %.1fms p99 %.1fms; %d TPS; max server connections %d",
		testutil.Engine(), r.Connect.Established, n, r.Connect.Seconds, r.Connect.PerSec, r.Connect.PeakPerSec,
		r.Connect.Login.P50MS, r.Connect.Login.P99MS, int(r.Active.TPS), res.maxServer)

	if res.exit != 0 {
		t.Errorf("pgstorm exit %d, want 0; problems: %v", res.exit, r.Problems)
	}
	if !r.OK {
		t.Errorf("pgstorm report not OK: %v", r.Problems)
	}
	if r.Connect.Established != n || r.Connect.Failed != 0 {
		t.Errorf("established %d, failed %d of %d", r.Connect.Established, r.Connect.Failed, n)
	}
	if r.Sample.Clients != n || r.Sample.OK != n || r.Sample.Failed != 0 {
		t.Errorf("sample: %d clients, ok %d, failed %d; want all %d ok", r.Sample.Clients, r.Sample.OK, r.Sample.Failed, n)
	}
	if r.Active.Clients != 50 || r.Active.Queries == 0 || r.Active.Errors != 0 {
		t.Errorf("active phase: %d clients, %d queries, %d errors", r.Active.Clients, r.Active.Queries, r.Active.Errors)
	}
	if r.Hold.Dropped != 0 {
		t.Errorf("%d idle connections closed by the server during the hold", r.Hold.Dropped)
	}
	if r.Close.Closed != n || !r.Close.Done {
		t.Errorf("close: %d closed, done %v; want %d", r.Close.Closed, r.Close.Done, n)
	}
	if len(r.Errors) != 0 {
		t.Errorf("client errors: %s", stormErrors(r.Errors))
	}
	if res.maxServer > stormPoolSize {
		t.Errorf("%d server connections to the primary, pool_size = max_server_connections = %d (samples %v)",
			res.maxServer, stormPoolSize, res.series)
	}
	if res.maxServer == 0 {
		t.Errorf("no server connection seen in %d samples", res.samples)
	}
}

// 2. max_client_connections = 1000 and 1500 clients: 500 are refused at
// login with SQLSTATE 53300, the 1000 others work.
func TestStormOverMaxClients(t *testing.T) {
	testutil.RequireProcess(t)
	const (
		n          = 1500
		maxClients = 1000
	)
	p := stormProxy(t, maxClients)
	res := runStorm(t, p, "-n", itoa(n), "-inflight", "1000", "-rate", "0", "-active", "20",
		"-duration", "1s", "-hold", "1s", "-sample-every", "-src", "none")
	r := &res.report
	var tooMany, other int64
	for k, v := range r.Errors {
		if strings.Contains(k, "53300") {
			tooMany += v
		} else {
			other += v
		}
	}
	t.Logf("io_engine=%s: %d/%d established, %d failed (53300: %d) in %.2fs (%.0f/s); errors %s; max server connections %d",
		testutil.Engine(), r.Connect.Established, n, r.Connect.Failed, tooMany, r.Connect.Seconds, r.Connect.PerSec,
		stormErrors(r.Errors), res.maxServer)

	if res.exit != 1 {
		t.Errorf("pgstorm exit %d, want 1 (not all connections established)", res.exit)
	}
	if r.Connect.Established != maxClients {
		t.Errorf("established %d, want exactly max_client_connections = %d", r.Connect.Established, maxClients)
	}
	if r.Connect.Failed != n-r.Connect.Established || tooMany != r.Connect.Failed {
		t.Errorf("failed %d (53300: %d) of %d with %d established: want every refused login to be 53300", r.Connect.Failed, tooMany, n, r.Connect.Established)
	}
	if other != 0 {
		t.Errorf("errors other than SQLSTATE 53300: %s", stormErrors(r.Errors))
	}
	if r.Connect.AuthFailures != 0 {
		t.Errorf("%d authentication failures", r.Connect.AuthFailures)
	}
	if r.Sample.OK != r.Connect.Established || r.Sample.Failed != 0 {
		t.Errorf("sample: ok %d, failed %d; want the %d established ok", r.Sample.OK, r.Sample.Failed, r.Connect.Established)
	}
	if r.Active.Queries == 0 || r.Active.Errors != 0 {
		t.Errorf("active phase: %d queries, %d errors", r.Active.Queries, r.Active.Errors)
	}
	if r.Hold.Dropped != 0 {
		t.Errorf("%d idle connections closed by the server during the hold", r.Hold.Dropped)
	}
	if res.maxServer > stormPoolSize {
		t.Errorf("%d server connections to the primary, pool_size = %d (samples %v)", res.maxServer, stormPoolSize, res.series)
	}
}

// stormServerConns counts the proxy's server connections to the primary for
// app/app. testutil's CountServerConns finds the proxy's sockets by scanning
// /proc/PID/net/tcp, which lists every TCP socket of the network namespace:
// on a machine holding a million other sockets one scan takes seconds, far
// over the 100 ms sampling interval. Instead: the candidates are the app/app
// backends of pg_stat_activity from 127.0.0.1 (a few); for each, the
// client-side socket 127.0.0.1:client_port -> 127.0.0.1:20000 is looked up by
// its exact 4-tuple with NETLINK_SOCK_DIAG (a hash lookup) and counted when
// its inode is one of the proxy's sockets (fd table or io_uring direct
// descriptors, testutil.SocketInodes). *conn is a superuser connection to the
// primary, opened on first use.
func stormServerConns(ctx context.Context, p *testutil.Proxy, conn **pgx.Conn) (int, error) {
	if *conn == nil || (*conn).IsClosed() {
		c, err := pgx.Connect(ctx, testutil.AdminConnString("postgres"))
		if err != nil {
			return 0, err
		}
		*conn = c
	}
	rows, err := (*conn).Query(ctx, `SELECT client_port FROM pg_stat_activity
	     WHERE backend_type = 'client backend' AND datname = $1 AND usename = $2
	       AND client_addr = '127.0.0.1' AND pid <> pg_backend_pid()`, testutil.AppDB, testutil.AppUser)
	if err != nil {
		(*conn).Close(context.Background())
		*conn = nil
		return 0, err
	}
	ports, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return 0, err
	}
	if len(ports) == 0 {
		return 0, nil
	}
	pid := p.Cmd.Process.Pid
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0, err
	}
	inodes := testutil.SocketInodes(pid, fds)
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	n := 0
	for _, port := range ports {
		ino, found, err := sockDiagInode(fd, [4]byte{127, 0, 0, 1}, uint16(port), [4]byte{127, 0, 0, 1}, testutil.PrimaryPort)
		if err != nil {
			return 0, err
		}
		if found && inodes[strconv.FormatUint(uint64(ino), 10)] {
			n++
		}
	}
	return n, nil
}

// sockDiagInode looks up the IPv4 TCP socket src:sport -> dst:dport with
// SOCK_DIAG_BY_FAMILY (exact match, no dump) and returns its inode.
func sockDiagInode(fd int, src [4]byte, sport uint16, dst [4]byte, dport int) (uint32, bool, error) {
	const (
		hdrLen = 16
		reqLen = 56 // struct inet_diag_req_v2
	)
	req := make([]byte, hdrLen+reqLen)
	le := func(b []byte, v uint32) { b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24) }
	le(req[0:], uint32(len(req)))
	req[4], req[5] = byte(unix.SOCK_DIAG_BY_FAMILY), byte(unix.SOCK_DIAG_BY_FAMILY>>8)
	req[6], req[7] = byte(unix.NLM_F_REQUEST), 0
	b := req[hdrLen:]
	b[0] = unix.AF_INET
	b[1] = unix.IPPROTO_TCP
	le(b[4:], 0xffffffff) // all states
	id := b[8:]           // struct inet_diag_sockid
	id[0], id[1] = byte(sport>>8), byte(sport)
	id[2], id[3] = byte(dport>>8), byte(dport)
	copy(id[4:8], src[:])
	copy(id[20:24], dst[:])
	le(id[40:], 0xffffffff) // INET_DIAG_NOCOOKIE
	le(id[44:], 0xffffffff)
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return 0, false, err
	}
	buf := make([]byte, 8192)
	for {
		m, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return 0, false, err
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:m])
		if err != nil {
			return 0, false, err
		}
		for _, msg := range msgs {
			switch msg.Header.Type {
			case unix.NLMSG_ERROR:
				if len(msg.Data) >= 4 {
					if e := int32(uint32(msg.Data[0]) | uint32(msg.Data[1])<<8 | uint32(msg.Data[2])<<16 | uint32(msg.Data[3])<<24); e != 0 {
						if syscall.Errno(-e) == syscall.ENOENT {
							return 0, false, nil
						}
						return 0, false, syscall.Errno(-e)
					}
				}
				return 0, false, nil
			case unix.SOCK_DIAG_BY_FAMILY:
				d := msg.Data // struct inet_diag_msg: inode at 4+48+16
				if len(d) < 72 {
					return 0, false, fmt.Errorf("short inet_diag_msg (%d bytes)", len(d))
				}
				return uint32(d[68]) | uint32(d[69])<<8 | uint32(d[70])<<16 | uint32(d[71])<<24, true, nil
			case unix.NLMSG_DONE:
				return 0, false, nil
			}
		}
	}
}
