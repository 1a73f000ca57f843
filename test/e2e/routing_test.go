package e2e

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/poolmgr/poolmgr/internal/testutil"
)

// Read/write splitting against the shared 3-node cluster: backends are the
// primary (:20000) and both hot standbys (:20001, :20002), health checks run
// every 0.2 s. Reads are told apart by inet_server_port().

const (
	routingPrimaryPort  = 20000
	routingReplica1Port = 20001
	routingReplica2Port = 20002
	routingObserverApp  = "e2e-routing-observer" // application_name of the test's direct connections
	routingPortSQL      = "SELECT inet_server_port()"
)

// routingProxy starts a poolmgr over the three nodes with the given routing
// algorithm and extra [pool] keys (and the admin console, postgres as admin)
// and waits until the health checker knows every backend's role.
func routingProxy(t *testing.T, algo string, extra ...string) *testutil.Proxy {
	t.Helper()
	// shutdown_timeout: a transaction stuck in the proxy must not hold the
	// test's teardown for 30 s. max_replica_lag_ms = 0 unless the test sets
	// it: poolmgr's lag is the age of the last replayed transaction whenever
	// a replica's receive LSN is past its replay LSN, which also happens to
	// an up-to-date replica (the primary ships WAL up to a page boundary
	// inside a record it has not finished writing), so after a quiet period
	// a healthy replica may show seconds of lag for a check or a few
	// (TestRoutingLagEjection covers the limit).
	keys := []string{`health_check_interval = "0.2s"`, `shutdown_timeout = 1`}
	if !strings.Contains(strings.Join(extra, "\n"), "max_replica_lag_ms") {
		keys = append(keys, "max_replica_lag_ms = 0")
	}
	if algo != "" {
		keys = append(keys, fmt.Sprintf("routing = %q", algo))
	}
	keys = append(keys, extra...)
	p := startAdminProxy(t, testutil.Config{
		Backends: testutil.ClusterAddrs,
		Extra:    strings.Join(keys, "\n"),
	})
	routingWaitRoles(t, p)
	return p
}

// routingWaitRoles waits until SHOW BACKENDS reports the primary and both
// standbys up.
func routingWaitRoles(t *testing.T, p *testutil.Proxy) {
	t.Helper()
	ctx := testCtx(t, 15*time.Second)
	adm, err := adminConn(t, ctx, p, testutil.SuperUser, testutil.SuperPassword, "poolmgr")
	if err != nil {
		t.Fatalf("admin console: %v", err)
	}
	want := map[string]string{
		testutil.PrimaryAddr:  "primary",
		testutil.Standby1Addr: "standby",
		testutil.Standby2Addr: "standby",
	}
	waitBackendsUp(t, ctx, adm, want)
}

// routingAdmin opens an admin console connection (database poolmgr).
func routingAdmin(t *testing.T, ctx context.Context, p *testutil.Proxy) *pgx.Conn {
	t.Helper()
	c, err := adminConn(t, ctx, p, testutil.SuperUser, testutil.SuperPassword, "poolmgr")
	if err != nil {
		t.Fatalf("admin console: %v", err)
	}
	return c
}

// routingDirect opens a connection straight to a cluster node (bypassing
// poolmgr) with application_name routingObserverApp.
func routingDirect(t *testing.T, ctx context.Context, addr, user, pass, db string) *pgx.Conn {
	t.Helper()
	c, err := connectTo(t, ctx, testutil.DirectConnString(addr, user, pass, db),
		withParams("application_name", routingObserverApp))
	if err != nil {
		t.Fatalf("connect to %s as %s: %v", addr, user, err)
	}
	return c
}

// routingPort runs sql (returning inet_server_port() as its first column,
// possibly among others ignored) and returns the port.
func routingPort(ctx context.Context, c *pgx.Conn, sql string, args ...any) (int, error) {
	rows, err := c.Query(ctx, sql, args...)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return 0, err
		}
		return 0, pgx.ErrNoRows
	}
	vals, err := rows.Values()
	if err != nil {
		return 0, err
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	switch v := vals[0].(type) {
	case int32:
		return int(v), nil
	case int64:
		return int(v), nil
	case string:
		return strconv.Atoi(v)
	}
	return 0, fmt.Errorf("%s: first column is %T %v, want an integer port", sql, vals[0], vals[0])
}

func mustRoutingPort(t *testing.T, ctx context.Context, c *pgx.Conn, sql string, args ...any) int {
	t.Helper()
	port, err := routingPort(ctx, c, sql, args...)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return port
}

func isReplicaPort(p int) bool { return p == routingReplica1Port || p == routingReplica2Port }

// portCounts formats a port -> count map in port order.
func portCounts(m map[int]int) string {
	ports := make([]int, 0, len(m))
	for p := range m {
		ports = append(ports, p)
	}
	sort.Ints(ports)
	var b strings.Builder
	for i, p := range ports {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%d:%d", p, m[p])
	}
	return "{" + b.String() + "}"
}

// routingReads runs n reads of sql spread over conns (sequentially, or from
// one goroutine per connection when concurrent) and returns the count per port.
func routingReads(t *testing.T, ctx context.Context, conns []*pgx.Conn, n int, sql string, concurrent bool) map[int]int {
	t.Helper()
	counts := map[int]int{}
	if !concurrent {
		for i := 0; i < n; i++ {
			counts[mustRoutingPort(t, ctx, conns[i%len(conns)], sql)]++
		}
		return counts
	}
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		errs []error
	)
	per := n / len(conns)
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				port, err := routingPort(ctx, c, sql)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					counts[port]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d concurrent reads failed, first: %v", len(errs), errs[0])
	}
	return counts
}

// routingConns opens n connections to the proxy.
func routingConns(t *testing.T, ctx context.Context, p *testutil.Proxy, n int, mods ...func(*pgx.ConnConfig)) []*pgx.Conn {
	t.Helper()
	out := make([]*pgx.Conn, n)
	for i := range out {
		out[i] = connect(t, ctx, p, mods...)
	}
	return out
}

// routingServerConns counts, on node (a direct superuser connection to one
// cluster node), the client backends of database app / user app that belong
// to the poolmgr process of p: those whose client_port is among its sockets
// to that node (fallback engine: /proc lists them) or whose application_name
// is appName (the name every client of the test uses, which poolmgr sets on
// the server connections it links to them; the io_uring engine's sockets are
// not in /proc). The observer's own connections are never counted.
func routingServerConns(ctx context.Context, p *testutil.Proxy, node *pgx.Conn, nodePort int, appName string) (int, error) {
	ports, err := testutil.SocketPorts(p.Cmd.Process.Pid, nodePort, true)
	if err != nil {
		return 0, err
	}
	p32 := make([]int32, len(ports))
	for i, v := range ports {
		p32[i] = int32(v)
	}
	var n int
	err = node.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
	     WHERE backend_type = 'client backend' AND datname = $1 AND usename = $2
	       AND application_name <> $3 AND pid <> pg_backend_pid()
	       AND (client_port = ANY($4) OR application_name = $5)`,
		testutil.AppDB, testutil.AppUser, routingObserverApp, p32, appName).Scan(&n)
	return n, err
}

// 1. Each algorithm: reads on the replicas distributed as the algorithm
// says; writes, plain transactions and primary hints on the primary;
// READ ONLY transactions and replica hints on a replica.
func TestRoutingAlgorithms(t *testing.T) {
	testutil.RequireProcess(t)
	table := testutil.NewTable(t, "CREATE TABLE %s (id int GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, v text)")
	// An unknown (user-defined) function sends a statement to the primary
	// unless a poolmgr:replica hint says otherwise.
	fn := "e2e_port_" + testutil.Nonce()
	testutil.AdminExec(t, testutil.AppDB, "CREATE FUNCTION "+fn+"() RETURNS int LANGUAGE sql AS 'SELECT inet_server_port()'")
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), testutil.AdminConnString(testutil.AppDB))
		if err == nil {
			_, _ = c.Exec(context.Background(), "DROP FUNCTION IF EXISTS "+fn+"()")
			c.Close(context.Background())
		}
	})
	{ // wait until both standbys have replayed the DDL
		ctx := testCtx(t, 15*time.Second)
		for _, addr := range []string{testutil.Standby1Addr, testutil.Standby2Addr} {
			d := routingDirect(t, ctx, addr, testutil.SuperUser, testutil.SuperPassword, testutil.AppDB)
			testutil.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
				var ok bool
				if err := d.QueryRow(ctx, "SELECT to_regprocedure($1) IS NOT NULL AND to_regclass($2) IS NOT NULL",
					fn+"()", table).Scan(&ok); err != nil {
					return err
				}
				if !ok {
					return fmt.Errorf("%s or %s not replayed on %s yet", fn, table, addr)
				}
				return nil
			})
		}
	}

	for _, algo := range []string{"round_robin", "least_conn", "random", "hash"} {
		t.Run(algo, func(t *testing.T) {
			p := routingProxy(t, algo)
			ctx := testCtx(t, 60*time.Second)
			conns := routingConns(t, ctx, p, 6)

			// Reads.
			const n = 60
			sql := routingPortSQL
			concurrent := algo == "least_conn"
			if concurrent {
				sql = "SELECT inet_server_port() FROM pg_sleep(0.02)"
			}
			counts := routingReads(t, ctx, conns, n, sql, concurrent)
			t.Logf("%s: %d reads from %d connections%s: %s", algo, n, len(conns),
				map[bool]string{true: " (concurrent)", false: ""}[concurrent], portCounts(counts))
			r1, r2 := counts[routingReplica1Port], counts[routingReplica2Port]
			if r1+r2 != n {
				t.Errorf("%s: reads not all on the replicas: %s", algo, portCounts(counts))
			}
			switch algo {
			case "round_robin":
				if d := r1 - r2; d > 6 || d < -6 {
					t.Errorf("round_robin: replicas not used evenly: %s", portCounts(counts))
				}
			case "random":
				if r1 < 10 || r2 < 10 {
					t.Errorf("random: a replica (nearly) unused: %s", portCounts(counts))
				}
			case "least_conn":
				if r1 == 0 || r2 == 0 {
					t.Errorf("least_conn: a replica unused under concurrent load: %s", portCounts(counts))
				}
			case "hash":
				if (r1 == 0) == (r2 == 0) {
					t.Errorf("hash (client address 127.0.0.1): reads on both replicas, want one: %s", portCounts(counts))
				}
			}

			// Transactions and hints, each on a new connection: anything
			// sent to the primary (a write, a primary hint, a plain BEGIN)
			// keeps the client's next reads on the primary until the health
			// checker has seen the replicas catch up (read-your-writes).
			for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeExec, pgx.QueryExecModeSimpleProtocol} {
				on := func(sql string) int {
					return mustRoutingPort(t, ctx, connect(t, ctx, p, withMode(mode)), sql)
				}
				if got := on("/* poolmgr:primary */ SELECT inet_server_port()"); got != routingPrimaryPort {
					t.Errorf("%v: /* poolmgr:primary */ read went to %d, want %d", mode, got, routingPrimaryPort)
				}
				if got := on("/* poolmgr:replica */ SELECT inet_server_port()"); !isReplicaPort(got) {
					t.Errorf("%v: /* poolmgr:replica */ read went to %d, want a replica", mode, got)
				}
				if got := on("SELECT " + fn + "()"); got != routingPrimaryPort {
					t.Errorf("%v: SELECT of an unknown function went to %d, want the primary", mode, got)
				}
				if got := on("/* poolmgr:replica */ SELECT " + fn + "()"); !isReplicaPort(got) {
					t.Errorf("%v: /* poolmgr:replica */ SELECT of an unknown function went to %d, want a replica", mode, got)
				}
				// BEGIN ... COMMIT in separate round trips.
				for _, tc := range []struct {
					opts    pgx.TxOptions
					replica bool
				}{{pgx.TxOptions{}, false}, {pgx.TxOptions{AccessMode: pgx.ReadOnly}, true}} {
					c := connect(t, ctx, p, withMode(mode))
					tx, err := c.BeginTx(ctx, tc.opts)
					if err != nil {
						t.Fatalf("%v: begin %+v: %v", mode, tc.opts, err)
					}
					first := mustRoutingPort(t, ctx, c, routingPortSQL)
					second := mustRoutingPort(t, ctx, c, "SELECT inet_server_port() FROM pg_sleep(0)")
					if err := tx.Commit(ctx); err != nil {
						t.Fatalf("%v: commit: %v", mode, err)
					}
					if first != second {
						t.Errorf("%v: transaction %+v spans backends: %d then %d", mode, tc.opts, first, second)
					}
					if tc.replica && !isReplicaPort(first) {
						t.Errorf("%v: BEGIN READ ONLY transaction ran on %d, want a replica", mode, first)
					}
					if !tc.replica && first != routingPrimaryPort {
						t.Errorf("%v: BEGIN transaction ran on %d, want the primary", mode, first)
					}
				}
			}
			// BEGIN; ...; COMMIT in one simple Query message.
			for _, tc := range []struct {
				sql     string
				replica bool
			}{
				{"BEGIN; SELECT inet_server_port(); COMMIT", false},
				{"BEGIN READ ONLY; SELECT inet_server_port(); COMMIT", true},
				{"START TRANSACTION READ ONLY; SELECT inet_server_port(); COMMIT", true},
			} {
				res, err := connect(t, ctx, p).PgConn().Exec(ctx, tc.sql).ReadAll()
				if err != nil {
					t.Fatalf("%q: %v", tc.sql, err)
				}
				if len(res) != 3 || len(res[1].Rows) != 1 {
					t.Fatalf("%q: unexpected results %+v", tc.sql, res)
				}
				got, _ := strconv.Atoi(string(res[1].Rows[0][0]))
				if tc.replica && !isReplicaPort(got) {
					t.Errorf("%q ran on %d, want a replica", tc.sql, got)
				}
				if !tc.replica && got != routingPrimaryPort {
					t.Errorf("%q ran on %d, want the primary", tc.sql, got)
				}
			}

			// Writes, from every connection, in both protocols.
			writes, nw := map[int]int{}, 0
			for i, c := range append(conns, connect(t, ctx, p, withMode(pgx.QueryExecModeSimpleProtocol))) {
				for k := 0; k < 2; k++ {
					writes[mustRoutingPort(t, ctx, c, "INSERT INTO "+table+" (v) VALUES ($1) RETURNING inet_server_port()",
						fmt.Sprintf("%s-%d-%d", algo, i, k))]++
					nw++
				}
			}
			if writes[routingPrimaryPort] != nw {
				t.Errorf("writes not all on the primary: %s", portCounts(writes))
			}
			t.Logf("%s: writes %s", algo, portCounts(writes))
		})
	}
}

// 2. Extended protocol (pgx exec mode and the default statement cache):
// reads on replicas, writes on the primary; batches mixing both work.
func TestRoutingExtendedProtocol(t *testing.T) {
	testutil.RequireProcess(t)
	table := testutil.NewTable(t, "CREATE TABLE %s (id int GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, v text)")
	p := routingProxy(t, "round_robin")
	ctx := testCtx(t, 60*time.Second)
	insert := "INSERT INTO " + table + " (v) VALUES ($1) RETURNING inet_server_port()"
	// A parameter makes pgx use the extended protocol in every mode.
	readSQL := "SELECT inet_server_port() WHERE $1::int = 1"
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeExec, pgx.QueryExecModeCacheStatement} {
		t.Run(mode.String(), func(t *testing.T) {
			c := connect(t, ctx, p, withMode(mode))
			reads := map[int]int{}
			for i := 0; i < 20; i++ {
				reads[mustRoutingPort(t, ctx, c, readSQL, 1)]++
			}
			t.Logf("%v: reads %s", mode, portCounts(reads))
			if reads[routingReplica1Port]+reads[routingReplica2Port] != 20 {
				t.Errorf("%v: reads not all on replicas: %s", mode, portCounts(reads))
			}
			writes := map[int]int{}
			for i := 0; i < 10; i++ {
				writes[mustRoutingPort(t, ctx, c, insert, fmt.Sprintf("ext-%v-%d", mode, i))]++
			}
			if writes[routingPrimaryPort] != 10 {
				t.Errorf("%v: writes not all on the primary: %s", mode, portCounts(writes))
			}
		})
	}

	// Batches (one Sync at the end: a single implicit transaction), each on
	// a connection whose reads go to the replicas (it never wrote, or the
	// health checker has seen the replicas catch up with its writes).
	type batchCase struct {
		name   string
		mode   pgx.QueryExecMode
		warm   bool // both statements prepared on the connection beforehand
		order  string
		hangOK bool
	}
	var cases []batchCase
	for _, order := range []string{"read,write", "write,read"} {
		cases = append(cases,
			batchCase{name: "exec " + order, mode: pgx.QueryExecModeExec, order: order},
			batchCase{name: "cache cold " + order, mode: pgx.QueryExecModeCacheStatement, order: order},
			batchCase{name: "cache warm " + order, mode: pgx.QueryExecModeCacheStatement, order: order, warm: true})
	}
	for _, bc := range cases {
		c := connect(t, ctx, p, withMode(bc.mode))
		if bc.warm {
			mustRoutingPort(t, ctx, c, insert, "warm")
			// Read-your-writes: wait until the connection's reads are back on the replicas.
			testutil.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
				if port := mustRoutingPort(t, ctx, c, readSQL, 1); !isReplicaPort(port) {
					return fmt.Errorf("%s: read on %d after the warm-up write", bc.name, port)
				}
				return nil
			})
		}
		b := &pgx.Batch{}
		var readPort, writePort int
		qRead := func() { b.Queue(readSQL, 1).QueryRow(func(r pgx.Row) error { return r.Scan(&readPort) }) }
		qWrite := func() {
			b.Queue(insert, "batch "+bc.name).QueryRow(func(r pgx.Row) error { return r.Scan(&writePort) })
		}
		if bc.order == "read,write" {
			qRead()
			qWrite()
		} else {
			qWrite()
			qRead()
		}
		bctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		start := time.Now()
		err := c.SendBatch(bctx, b).Close()
		cancel()
		if err != nil {
			t.Errorf("batch %s: %v after %v", bc.name, err, time.Since(start).Round(time.Millisecond))
			continue
		}
		t.Logf("batch %s: read on %d, write on %d", bc.name, readPort, writePort)
		if writePort != routingPrimaryPort {
			t.Errorf("batch %s: write ran on %d", bc.name, writePort)
		}
		if readPort != writePort {
			t.Errorf("batch %s (one implicit transaction) split across backends: read on %d, write on %d",
				bc.name, readPort, writePort)
		}
		if _, err := routingPort(ctx, c, routingPortSQL); err != nil {
			t.Errorf("read after batch %s: %v", bc.name, err)
		}
	}

	// A pipeline with a Sync after each request: the write, held back while
	// the read holds a replica's server, goes to the primary after it.
	c := connect(t, ctx, p)
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	pl := c.PgConn().StartPipeline(pctx)
	pl.SendQueryParams(readSQL, [][]byte{[]byte("1")}, nil, nil, nil)
	if err := pl.Sync(); err != nil {
		t.Fatal(err)
	}
	pl.SendQueryParams(insert, [][]byte{[]byte("pipelined")}, nil, nil, nil)
	if err := pl.Sync(); err != nil {
		t.Fatal(err)
	}
	var ports []string
	for done := 0; done < 2; {
		res, err := pl.GetResults()
		if err != nil {
			t.Errorf("pipeline read,Sync,write,Sync: %v", err)
			break
		}
		switch r := res.(type) {
		case *pgconn.ResultReader:
			rr := r.Read()
			if rr.Err != nil {
				t.Errorf("pipeline read,Sync,write,Sync: %v", rr.Err)
			}
			for _, row := range rr.Rows {
				ports = append(ports, string(row[0]))
			}
		case *pgconn.PipelineSync:
			done++
		}
		if pctx.Err() != nil {
			t.Errorf("pipeline read,Sync,write,Sync: timeout")
			break
		}
	}
	if err := pl.Close(); err != nil {
		t.Errorf("pipeline close: %v", err)
	}
	t.Logf("pipeline read,Sync,write,Sync: ports %v", ports)
	if len(ports) != 2 || !isReplicaPortText(ports[0]) || ports[1] != itoa(routingPrimaryPort) {
		t.Errorf("pipeline read,Sync,write,Sync: ports %v, want [replica %d]", ports, routingPrimaryPort)
	}
}

func isReplicaPortText(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && isReplicaPort(n)
}

// 3. Read-your-writes: a client reading its row right after inserting it
// always sees it.
func TestRoutingReadYourWrites(t *testing.T) {
	testutil.RequireProcess(t)
	table := testutil.NewTable(t, "CREATE TABLE %s (id int PRIMARY KEY, v text)")
	p := routingProxy(t, "round_robin")
	ctx := testCtx(t, 60*time.Second)
	c := connect(t, ctx, p)
	// The insert returns the WAL insert position before its commit record;
	// the read returns the server and the row's value (NULL: not seen).
	ins := "INSERT INTO " + table + " (id, v) VALUES ($1, $2) RETURNING pg_current_wal_insert_lsn()::text"
	sel := "SELECT inet_server_port(), (SELECT v FROM " + table + " WHERE id = $1)"
	nodes := map[int]*pgx.Conn{}
	for _, addr := range []string{testutil.Standby1Addr, testutil.Standby2Addr} {
		port, _ := strconv.Atoi(addr[strings.LastIndexByte(addr, ':')+1:])
		nodes[port] = routingDirect(t, ctx, addr, testutil.SuperUser, testutil.SuperPassword, testutil.AppDB)
	}
	run := func(phase string, from, n int, delay func(i int) time.Duration) {
		misses, where := 0, map[int]int{}
		var missed []string
		for i := from; i < from+n; i++ {
			lsn := queryString(t, ctx, c, ins, i, "row-"+strconv.Itoa(i))
			wrote := time.Now()
			if d := delay(i); d > 0 {
				time.Sleep(d)
			}
			var (
				port int32
				v    *string
			)
			if err := c.QueryRow(ctx, sel, i).Scan(&port, &v); err != nil {
				t.Fatalf("%s: read of row %d: %v", phase, i, err)
			}
			where[int(port)]++
			if v == nil {
				misses++
				info := fmt.Sprintf("id %d on :%d %v after the write (insert lsn %s)", i, port, time.Since(wrote).Round(time.Millisecond), lsn)
				if node := nodes[int(port)]; node != nil {
					var replay string
					var seen bool
					if err := node.QueryRow(ctx, "SELECT pg_last_wal_replay_lsn()::text, EXISTS (SELECT 1 FROM "+table+" WHERE id = $1)", i).Scan(&replay, &seen); err == nil {
						info += fmt.Sprintf(", now replay lsn %s, row visible %v", replay, seen)
					}
				}
				missed = append(missed, info)
			}
		}
		t.Logf("read-your-writes %s: %d write+read pairs, %d misses, reads: primary %d, replicas %d %s",
			phase, n, misses, where[routingPrimaryPort], where[routingReplica1Port]+where[routingReplica2Port], portCounts(where))
		if misses > 0 {
			t.Errorf("read-your-writes %s: %d of %d reads did not see the client's own row:\n  %s",
				phase, misses, n, strings.Join(missed, "\n  "))
		}
	}
	run("immediate", 1, 200, func(int) time.Duration { return 0 })
	// With a pause between write and read the primary's WAL position is
	// sampled after the write: replicas that replayed it may serve the read.
	run("delayed 50..250ms", 1001, 60, func(i int) time.Duration { return time.Duration(1+i%5) * 50 * time.Millisecond })
}

// 4. A replica lagging more than max_replica_lag_ms gets no reads until it
// catches up.
func TestRoutingLagEjection(t *testing.T) {
	testutil.RequireProcess(t)
	table := testutil.NewTable(t, "CREATE TABLE %s (id int GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, v text)")
	p := routingProxy(t, "round_robin", "max_replica_lag_ms = 500")
	ctx := testCtx(t, 60*time.Second)
	reader := connect(t, ctx, p) // never writes: read-your-writes stays out of the way
	readers := []*pgx.Conn{reader}

	bothUsed := func(when string) {
		t.Helper()
		testutil.CheckFor(t, 5*time.Second, 50*time.Millisecond, func() error {
			counts := routingReads(t, ctx, readers, 10, routingPortSQL, false)
			if counts[routingReplica1Port] == 0 || counts[routingReplica2Port] == 0 {
				return fmt.Errorf("%s: a replica unused by round_robin: %s", when, portCounts(counts))
			}
			t.Logf("%s: %s", when, portCounts(counts))
			return nil
		})
	}
	bothUsed("before pause")

	node1 := routingDirect(t, ctx, testutil.Standby1Addr, testutil.SuperUser, testutil.SuperPassword, "postgres")
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := pgx.Connect(cctx, testutil.DirectConnString(testutil.Standby1Addr, testutil.SuperUser, testutil.SuperPassword, "postgres"))
		if err != nil {
			t.Errorf("cleanup: connect to node1 to resume replay: %v", err)
			return
		}
		defer c.Close(cctx)
		if _, err := c.Exec(cctx, "SELECT pg_wal_replay_resume()"); err != nil {
			t.Errorf("cleanup: pg_wal_replay_resume on node1: %v", err)
		}
	})
	mustExec(t, ctx, node1, "SELECT pg_wal_replay_pause()")
	primary := routingDirect(t, ctx, testutil.PrimaryAddr, testutil.AppUser, testutil.AppPassword, testutil.AppDB)
	for i := 0; i < 5; i++ {
		mustExec(t, ctx, primary, "INSERT INTO "+table+" (v) VALUES ($1)", "lag-"+strconv.Itoa(i))
	}
	wrote := time.Now()
	testutil.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		var state string
		if err := node1.QueryRow(ctx, "SELECT pg_get_wal_replay_pause_state()").Scan(&state); err != nil {
			return err
		}
		if state != "paused" {
			return fmt.Errorf("node1 replay pause state %q", state)
		}
		return nil
	})
	// max_replica_lag (0.5 s) + a health interval (0.2 s) + a margin.
	time.Sleep(time.Until(wrote.Add(900 * time.Millisecond)))
	adm := routingAdmin(t, ctx, p)
	cols, rows := showRows(t, ctx, adm, "SHOW BACKENDS")
	t.Logf("SHOW BACKENDS after the pause (cols %v): %v", cols, rows)
	during := routingReads(t, ctx, readers, 40, routingPortSQL, false)
	t.Logf("node1 paused, %v after the writes: %s", time.Since(wrote).Round(time.Millisecond), portCounts(during))
	if during[routingReplica1Port] > 0 {
		t.Errorf("node1 lags (replay paused) yet got %d of 40 reads: %s", during[routingReplica1Port], portCounts(during))
	}
	if during[routingReplica2Port] == 0 {
		// Allowed (reads may fall back to the primary), but worth knowing:
		// node2 was taken for lagging too (see SHOW BACKENDS above).
		t.Logf("node2 got no reads while node1 lags: %s", portCounts(during))
	}

	mustExec(t, ctx, node1, "SELECT pg_wal_replay_resume()")
	resumed := time.Now()
	testutil.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		port, err := routingPort(ctx, reader, routingPortSQL)
		if err != nil {
			return err
		}
		if port != routingReplica1Port {
			return fmt.Errorf("read on %d", port)
		}
		return nil
	})
	t.Logf("node1 back in the read pool %v after pg_wal_replay_resume()", time.Since(resumed).Round(time.Millisecond))
	bothUsed("after resume")
}

// 5. A replica's backend killed while it runs a read: the client gets an
// error at once and the next read works.
func TestRoutingBackendKilledMidQuery(t *testing.T) {
	testutil.RequireProcess(t)
	p := routingProxy(t, "round_robin")
	ctx := testCtx(t, 60*time.Second)
	victim := connect(t, ctx, p)
	other := connect(t, ctx, p)
	mustRoutingPort(t, ctx, other, routingPortSQL)

	marker := "kill_" + testutil.Nonce()
	type result struct {
		err error
		at  time.Time
	}
	done := make(chan result, 1)
	go func() {
		_, err := routingPort(ctx, victim, "SELECT inet_server_port(), pg_sleep(3) /* "+marker+" */")
		done <- result{err, time.Now()}
	}()

	nodes := map[string]*pgx.Conn{}
	for _, addr := range []string{testutil.Standby1Addr, testutil.Standby2Addr} {
		nodes[addr] = routingDirect(t, ctx, addr, testutil.SuperUser, testutil.SuperPassword, "postgres")
	}
	var (
		onAddr string
		pid    int32
	)
	testutil.CheckFor(t, 2*time.Second, 10*time.Millisecond, func() error {
		for addr, n := range nodes {
			err := n.QueryRow(ctx, `SELECT pid FROM pg_stat_activity WHERE state = 'active'
			     AND strpos(query, $1) > 0 AND pid <> pg_backend_pid()`, marker).Scan(&pid)
			if err == nil {
				onAddr = addr
				return nil
			}
			if !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
		}
		return fmt.Errorf("query %s not running on a replica", marker)
	})
	var ok bool
	killed := time.Now()
	if err := nodes[onAddr].QueryRow(ctx, "SELECT pg_terminate_backend($1)", pid).Scan(&ok); err != nil || !ok {
		t.Fatalf("pg_terminate_backend(%d) on %s: %v %v", pid, onAddr, ok, err)
	}
	select {
	case r := <-done:
		took := r.at.Sub(killed)
		t.Logf("read on %s killed: client error after %v: %v", onAddr, took.Round(time.Millisecond), r.err)
		if r.err == nil {
			t.Errorf("killed read returned no error")
		}
		if took > time.Second {
			t.Errorf("client error %v after the kill, want < 1 s", took)
		}
	case <-time.After(2 * time.Second):
		t.Fatalf("no error 2 s after pg_terminate_backend (query on %s)", onAddr)
	}

	// The next reads work: on another connection and on a new one.
	for i := 0; i < 4; i++ {
		if got, err := routingPort(ctx, other, routingPortSQL); err != nil || !isReplicaPort(got) {
			t.Errorf("read after the kill on another connection: port %d, %v", got, err)
		}
	}
	fresh := connect(t, ctx, p)
	for i := 0; i < 4; i++ {
		if got, err := routingPort(ctx, fresh, routingPortSQL); err != nil || !isReplicaPort(got) {
			t.Errorf("read after the kill on a new connection: port %d, %v", got, err)
		}
	}
	if victim.IsClosed() {
		t.Logf("the killed read's client connection was closed (FATAL forwarded)")
	} else if got, err := routingPort(ctx, victim, routingPortSQL); err != nil {
		t.Logf("the killed read's client connection: next read: %v", err)
	} else {
		t.Logf("the killed read's client connection still works: read on %d", got)
	}
}

// 6. DRAIN via the admin console: no new reads to the drained replica, its
// server connections close, a transaction running on it finishes; UNDRAIN
// brings it back.
func TestRoutingDrain(t *testing.T) {
	testutil.RequireProcess(t)
	p := routingProxy(t, "round_robin")
	ctx := testCtx(t, 60*time.Second)
	appName := "e2e-routing-" + testutil.Nonce()
	withApp := withParams("application_name", appName)
	conns := routingConns(t, ctx, p, 6, withApp)
	// Several server connections to each replica.
	warm := routingReads(t, ctx, conns, 36, "SELECT inet_server_port() FROM pg_sleep(0.03)", true)
	t.Logf("warm-up reads: %s", portCounts(warm))

	node1 := routingDirect(t, ctx, testutil.Standby1Addr, testutil.SuperUser, testutil.SuperPassword, "postgres")
	count := func() int {
		n, err := routingServerConns(ctx, p, node1, routingReplica1Port, appName)
		if err != nil {
			t.Fatalf("count server connections on node1: %v", err)
		}
		return n
	}
	if n := count(); n == 0 {
		t.Fatalf("no server connection to node1 after the warm-up (%s)", portCounts(warm))
	}

	// A read-only transaction running on node1.
	txc := connect(t, ctx, p, withApp)
	var tx pgx.Tx
	for i := 0; ; i++ {
		var err error
		tx, err = txc.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
		if err != nil {
			t.Fatal(err)
		}
		if port := mustRoutingPort(t, ctx, txc, routingPortSQL); port == routingReplica1Port {
			break
		}
		if err := tx.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
		if i == 20 {
			t.Fatalf("no read-only transaction landed on node1 in 20 tries")
		}
	}
	beforeDrain := count()

	adm := routingAdmin(t, ctx, p)
	if _, err := adm.Exec(ctx, "DRAIN "+testutil.Standby1Addr); err != nil {
		t.Fatalf("DRAIN %s: %v", testutil.Standby1Addr, err)
	}
	drained := time.Now()
	cols, rows := showRows(t, ctx, adm, "SHOW BACKENDS")
	t.Logf("SHOW BACKENDS after DRAIN (cols %v): %v", cols, rows)

	reads := routingReads(t, ctx, conns, 30, routingPortSQL, false)
	t.Logf("reads after DRAIN: %s", portCounts(reads))
	if reads[routingReplica1Port] > 0 {
		t.Errorf("drained node1 got %d new reads: %s", reads[routingReplica1Port], portCounts(reads))
	}
	if reads[routingReplica2Port] == 0 {
		t.Errorf("node2 got no reads while node1 drains: %s", portCounts(reads))
	}

	// The transaction that was running on node1 finishes there.
	if port, err := routingPort(ctx, txc, routingPortSQL); err != nil || port != routingReplica1Port {
		t.Errorf("read in the transaction running on node1 after DRAIN: port %d, %v", port, err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Errorf("COMMIT of the transaction running on node1 after DRAIN: %v", err)
	}

	// poolmgr's server connections to node1 close.
	var samples []string
	err := testutil.WaitFor(3*time.Second, 100*time.Millisecond, func() error {
		n := count()
		samples = append(samples, fmt.Sprintf("%v:%d", time.Since(drained).Round(100*time.Millisecond), n))
		if n != 0 {
			return fmt.Errorf("%d server connection(s) of poolmgr still open on node1", n)
		}
		return nil
	})
	t.Logf("server connections to node1: %d before DRAIN, after: %v", beforeDrain, samples)
	if err != nil {
		cols, rows := showRows(t, ctx, adm, "SHOW SERVERS")
		t.Errorf("after DRAIN: %v; SHOW SERVERS (cols %v): %v", err, cols, rows)
	}

	if _, err := adm.Exec(ctx, "UNDRAIN "+testutil.Standby1Addr); err != nil {
		t.Fatalf("UNDRAIN %s: %v", testutil.Standby1Addr, err)
	}
	testutil.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		port, err := routingPort(ctx, conns[0], routingPortSQL)
		if err != nil {
			return err
		}
		if port != routingReplica1Port {
			return fmt.Errorf("read on %d", port)
		}
		return nil
	})
	after := routingReads(t, ctx, conns, 20, routingPortSQL, false)
	t.Logf("reads after UNDRAIN: %s", portCounts(after))
	if after[routingReplica1Port] == 0 || after[routingReplica2Port] == 0 {
		t.Errorf("after UNDRAIN a replica is unused: %s", portCounts(after))
	}
}

// 7. pgbench -S through poolmgr with pool_size 2 and two replicas: no failed
// transaction and never more than pool_size server connections per backend.
func TestRoutingPgbenchPoolSize(t *testing.T) {
	testutil.RequireProcess(t)
	testutil.RequireBinary(t, "pgbench")
	const poolSize = 2
	p := routingProxy(t, "", fmt.Sprintf("pool_size = %d", poolSize))
	ctx := testCtx(t, 60*time.Second)
	nodes := map[int]*pgx.Conn{}
	for _, addr := range testutil.ClusterAddrs {
		port, _ := strconv.Atoi(addr[strings.LastIndexByte(addr, ':')+1:])
		nodes[port] = routingDirect(t, ctx, addr, testutil.SuperUser, testutil.SuperPassword, "postgres")
	}
	adm := routingAdmin(t, ctx, p)
	appName := "e2e-routing-" + testutil.Nonce()
	t.Setenv("PGAPPNAME", appName) // pgbench's connections (see routingServerConns)

	for _, mode := range []string{"simple", "prepared"} {
		sctx, stop := context.WithCancel(ctx)
		var (
			wg         sync.WaitGroup
			maxSeen    = map[int]int{}
			maxAdmin   = map[string]int{}
			samples    int
			sampleErrs []error
		)
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for {
				for port, n := range nodes {
					// The test's ctx, not sctx: cancelling a query closes a pgx
					// connection, which the next mode's sampler still needs.
					c, err := routingServerConns(ctx, p, n, port, appName)
					if err != nil {
						if sctx.Err() == nil {
							sampleErrs = append(sampleErrs, err)
						}
						return
					}
					maxSeen[port] = max(maxSeen[port], c)
				}
				rows, err := adm.Query(ctx, "SHOW BACKENDS")
				if err == nil {
					for rows.Next() {
						raw := rows.RawValues()
						n, _ := strconv.Atoi(string(raw[6])) // server_connections
						maxAdmin[string(raw[0])] = max(maxAdmin[string(raw[0])], n)
					}
					rows.Close()
				}
				samples++
				select {
				case <-sctx.Done():
					return
				case <-tick.C:
				}
			}
		}()
		args := []string{"-n", "-S", "-M", mode, "-c", "20", "-j", "2", "-T", "5",
			"-h", "127.0.0.1", "-p", itoa(p.Port), "-U", testutil.AppUser, testutil.AppDB}
		res := testutil.PgbenchRun(t, args...)
		stop()
		wg.Wait()
		t.Logf("pgbench -M %s: tps=%.0f processed=%d failed=%d exit=%d; max server connections per backend (pg_stat_activity) %s, (SHOW BACKENDS) %v over %d samples",
			mode, res.TPS, res.Processed, res.Failed, res.ExitCode, portCounts(maxSeen), maxAdmin, samples)
		if res.ExitCode != 0 || res.Failed != 0 || res.Processed <= 0 {
			t.Errorf("pgbench -M %s: exit %d, %d failed, %d processed; output:\n%s", mode, res.ExitCode, res.Failed, res.Processed, res.Output)
		}
		if len(sampleErrs) > 0 {
			t.Errorf("sampling pg_stat_activity: %v", sampleErrs[0])
		}
		for port, n := range maxSeen {
			if n > poolSize {
				t.Errorf("pgbench -M %s: %d server connections to :%d, pool_size = %d", mode, n, port, poolSize)
			}
		}
		for addr, n := range maxAdmin {
			if n > poolSize {
				t.Errorf("pgbench -M %s: SHOW BACKENDS: %d server connections to %s, pool_size = %d", mode, n, addr, poolSize)
			}
		}
		if maxSeen[routingReplica1Port] == 0 || maxSeen[routingReplica2Port] == 0 {
			t.Errorf("pgbench -S -M %s: a replica never had a server connection: %s", mode, portCounts(maxSeen))
		}
	}
}
