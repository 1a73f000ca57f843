package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/poolmgr/poolmgr/internal/testutil"
)

// Simple query protocol: pgx interpolates the arguments client-side and sends
// one Query message.
func TestPgxSimpleProtocol(t *testing.T) {
	testProtocol(t, pgx.QueryExecModeSimpleProtocol, 2)
}

// Extended protocol, one round trip: Parse(unnamed)/Bind/Describe/Execute/Sync.
func TestPgxExtendedProtocolExec(t *testing.T) {
	testProtocol(t, pgx.QueryExecModeExec, 2)
}

// Extended protocol, two round trips: Parse(unnamed)/Describe/Sync, then
// Bind/Execute/Sync on the unnamed statement. In transaction pooling the
// unnamed statement only survives if the second round trip lands on the same
// server connection, so this test uses pool_size 1 (same caveat as PgBouncer).
func TestPgxExtendedProtocolDescribeExec(t *testing.T) {
	testProtocol(t, pgx.QueryExecModeDescribeExec, 1)
}

func testProtocol(t *testing.T, mode pgx.QueryExecMode, poolSize int) {
	p := startProxy(t, testutil.Config{PoolMode: "transaction", PoolSize: poolSize})
	ctx := testCtx(t, 60*time.Second)
	c := connect(t, ctx, p, withMode(mode))
	table := testutil.NewTable(t, "CREATE TABLE %s (id int PRIMARY KEY, v text)")

	t.Run("Select", func(t *testing.T) {
		if got := queryInt(t, ctx, c, "SELECT 1"); got != 1 {
			t.Fatalf("SELECT 1 = %d", got)
		}
		if got := queryString(t, ctx, c, "SELECT current_user"); got != "app" {
			t.Fatalf("current_user = %q", got)
		}
		if got := queryString(t, ctx, c, "SELECT current_database()"); got != "app" {
			t.Fatalf("current_database() = %q", got)
		}
	})

	t.Run("Params", func(t *testing.T) {
		var a int64
		var b string
		if err := c.QueryRow(ctx, "SELECT $1::int8 + $2::int8, $3::text || '!'", 40, 2, "it's").Scan(&a, &b); err != nil {
			t.Fatal(err)
		}
		if a != 42 || b != "it's!" {
			t.Fatalf("got %d %q", a, b)
		}
		// A parameter that must not be interpreted as SQL.
		evil := `'); DROP TABLE ` + table + `; --`
		if got := queryString(t, ctx, c, "SELECT $1::text", evil); got != evil {
			t.Fatalf("got %q", got)
		}
	})

	t.Run("Nulls", func(t *testing.T) {
		var i *int32
		var s *string
		var isNull bool
		if err := c.QueryRow(ctx, "SELECT $1::int4, $2::text, $3::text IS NULL", nil, nil, nil).Scan(&i, &s, &isNull); err != nil {
			t.Fatal(err)
		}
		if i != nil || s != nil || !isNull {
			t.Fatalf("got %v %v %v, want NULL NULL true", i, s, isNull)
		}
		var ns []*string
		if err := c.QueryRow(ctx, "SELECT ARRAY['a', NULL, 'c']::text[]").Scan(&ns); err != nil {
			t.Fatal(err)
		}
		if len(ns) != 3 || ns[1] != nil || *ns[0] != "a" || *ns[2] != "c" {
			t.Fatalf("array with NULL: %v", ns)
		}
	})

	t.Run("Types", func(t *testing.T) {
		ts := time.Date(2024, 2, 29, 13, 14, 15, 123456000, time.UTC)
		cases := []struct {
			typ string
			in  any
		}{
			{"int2", int16(-7)},
			{"int4", int32(2147483647)},
			{"int8", int64(-9223372036854775808)},
			{"float4", float32(1.5)},
			{"float8", float64(3.141592653589793)},
			{"bool", true},
			{"text", "héllo ☃ \t\n\\ 'quote' \"dq\""},
			{"varchar", "v"},
			{"bytea", []byte{0, 1, 2, 0xfe, 0xff, '\\', '\''}},
			{"int4[]", []int32{1, 2, 3}},
			{"text[]", []string{"a", "b c", "", `x"y`}},
			{"interval", 90 * time.Minute},
			{"inet", netip.MustParsePrefix("192.168.1.1/32")},
			{"uuid", "6ba7b810-9dad-11d1-80b4-00c04fd430c8"},
		}
		for _, tc := range cases {
			dst := reflect.New(reflect.TypeOf(tc.in))
			if err := c.QueryRow(ctx, "SELECT $1::"+tc.typ, tc.in).Scan(dst.Interface()); err != nil {
				t.Errorf("%s: %v", tc.typ, err)
				continue
			}
			if got := dst.Elem().Interface(); !reflect.DeepEqual(got, tc.in) {
				t.Errorf("%s: sent %#v, got %#v", tc.typ, tc.in, got)
			}
		}
		var gotTS, gotDate time.Time
		if err := c.QueryRow(ctx, "SELECT $1::timestamptz, $2::date", ts, ts).Scan(&gotTS, &gotDate); err != nil {
			t.Fatal(err)
		}
		if !gotTS.Equal(ts) || gotDate.Format("2006-01-02") != "2024-02-29" {
			t.Errorf("timestamptz/date: got %v %v", gotTS, gotDate)
		}
		if got := queryString(t, ctx, c, "SELECT ($1::numeric * 2)::text", "1.25"); got != "2.50" {
			t.Errorf("numeric: got %q", got)
		}
		if got := queryString(t, ctx, c, "SELECT $1::jsonb ->> 'k'", `{"k": "v", "n": [1, 2]}`); got != "v" {
			t.Errorf("jsonb: got %q", got)
		}
	})

	t.Run("LargeValues", func(t *testing.T) {
		big := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB
		if got := queryString(t, ctx, c, "SELECT $1::text", big); got != big {
			t.Fatalf("1 MiB text round trip: got %d bytes", len(got))
		}
		rows, err := c.Query(ctx, "SELECT g, md5(g::text) FROM generate_series(1, 20000) g")
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for rows.Next() {
			var g int32
			var h string
			if err := rows.Scan(&g, &h); err != nil {
				t.Fatal(err)
			}
			n++
			if int(g) != n || len(h) != 32 {
				t.Fatalf("row %d: %d %q", n, g, h)
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		if n != 20000 {
			t.Fatalf("got %d rows", n)
		}
	})

	t.Run("SyntaxError", func(t *testing.T) {
		_, err := c.Exec(ctx, "SELEC 1")
		requirePgCode(t, err, "42601")
		if got := queryInt(t, ctx, c, "SELECT 2"); got != 2 {
			t.Fatalf("after error: SELECT 2 = %d", got)
		}
		// Runtime error with a parameter.
		var x int32
		err = c.QueryRow(ctx, "SELECT 1 / $1::int4", 0).Scan(&x)
		requirePgCode(t, err, "22012")
		if got := queryInt(t, ctx, c, "SELECT 3"); got != 3 {
			t.Fatalf("after error: SELECT 3 = %d", got)
		}
	})

	t.Run("Transactions", func(t *testing.T) {
		mustExec(t, ctx, c, "BEGIN")
		mustExec(t, ctx, c, "INSERT INTO "+table+" VALUES ($1, $2)", 1, "rolled back")
		if st := c.PgConn().TxStatus(); st != 'T' {
			t.Fatalf("TxStatus in transaction = %c", st)
		}
		mustExec(t, ctx, c, "ROLLBACK")
		if st := c.PgConn().TxStatus(); st != 'I' {
			t.Fatalf("TxStatus after ROLLBACK = %c", st)
		}
		if n := queryInt(t, ctx, c, "SELECT count(*) FROM "+table); n != 0 {
			t.Fatalf("after ROLLBACK: %d rows", n)
		}

		mustExec(t, ctx, c, "BEGIN")
		mustExec(t, ctx, c, "INSERT INTO "+table+" VALUES ($1, $2)", 2, "committed")
		pid1 := queryInt(t, ctx, c, "SELECT pg_backend_pid()")
		pid2 := queryInt(t, ctx, c, "SELECT pg_backend_pid()")
		if pid1 != pid2 {
			t.Fatalf("server connection changed inside a transaction: %d then %d", pid1, pid2)
		}
		mustExec(t, ctx, c, "COMMIT")
		if got := queryString(t, ctx, c, "SELECT v FROM "+table+" WHERE id = 2"); got != "committed" {
			t.Fatalf("after COMMIT: %q", got)
		}

		// pgx.Tx API.
		tx, err := c.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO "+table+" VALUES ($1, $2)", 3, "tx"); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}

		// Error inside a transaction: 25P02 until ROLLBACK.
		mustExec(t, ctx, c, "BEGIN")
		_, err = c.Exec(ctx, "INSERT INTO "+table+" VALUES ($1, $2)", 2, "duplicate")
		requirePgCode(t, err, "23505")
		if st := c.PgConn().TxStatus(); st != 'E' {
			t.Fatalf("TxStatus after error in transaction = %c", st)
		}
		_, err = c.Exec(ctx, "SELECT 1")
		requirePgCode(t, err, "25P02")
		mustExec(t, ctx, c, "ROLLBACK")
		if n := queryInt(t, ctx, c, "SELECT count(*) FROM "+table); n != 2 {
			t.Fatalf("got %d rows, want 2", n)
		}
	})

	t.Run("MultiStatement", func(t *testing.T) {
		// PgConn.Exec always uses the simple query protocol.
		res, err := c.PgConn().Exec(ctx, "SELECT 1 AS a; SELECT 'two' AS b, 3 AS c; VALUES (4), (5)").ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range res {
			var cells []string
			for _, row := range r.Rows {
				for _, v := range row {
					cells = append(cells, string(v))
				}
			}
			got = append(got, fmt.Sprintf("%s:%s", r.CommandTag, strings.Join(cells, ",")))
		}
		want := []string{"SELECT 1:1", "SELECT 1:two,3", "SELECT 2:4,5"}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("got %q, want %q", got, want)
		}
		// An error in the middle aborts the implicit transaction: the
		// first insert is rolled back, the third never runs.
		_, err = c.PgConn().Exec(ctx, fmt.Sprintf("INSERT INTO %s VALUES (10, 'x'); SELECT 1/0; INSERT INTO %s VALUES (11, 'y')", table, table)).ReadAll()
		requirePgCode(t, err, "22012")
		if n := queryInt(t, ctx, c, "SELECT count(*) FROM "+table+" WHERE id >= 10"); n != 0 {
			t.Fatalf("multi-statement query with an error left %d rows", n)
		}
		if st := c.PgConn().TxStatus(); st != 'I' {
			t.Fatalf("TxStatus = %c", st)
		}
		if mode == pgx.QueryExecModeSimpleProtocol {
			mustExec(t, ctx, c, fmt.Sprintf("INSERT INTO %s VALUES (20, 'a'); INSERT INTO %s VALUES (21, 'b')", table, table))
			if n := queryInt(t, ctx, c, "SELECT count(*) FROM "+table+" WHERE id >= 20"); n != 2 {
				t.Fatalf("got %d rows", n)
			}
		}
		// BEGIN and COMMIT in one query string.
		res, err = c.PgConn().Exec(ctx, "BEGIN; SELECT pg_backend_pid(); SELECT pg_backend_pid(); COMMIT").ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if len(res) != 4 || !bytes.Equal(res[1].Rows[0][0], res[2].Rows[0][0]) {
			t.Fatalf("BEGIN;...;COMMIT: %d results", len(res))
		}
	})

	t.Run("Batch", func(t *testing.T) {
		b := &pgx.Batch{}
		b.Queue("SELECT 1")
		b.Queue("SELECT $1::text", "two")
		b.Queue("SELECT 3")
		br := c.SendBatch(ctx, b)
		var one, three int
		var two string
		if err := br.QueryRow().Scan(&one); err != nil {
			t.Fatal(err)
		}
		if err := br.QueryRow().Scan(&two); err != nil {
			t.Fatal(err)
		}
		if err := br.QueryRow().Scan(&three); err != nil {
			t.Fatal(err)
		}
		if err := br.Close(); err != nil {
			t.Fatal(err)
		}
		if one != 1 || two != "two" || three != 3 {
			t.Fatalf("batch: %d %q %d", one, two, three)
		}
		// An error in the middle of a batch: the rest is skipped up to
		// the Sync, then the connection works again.
		b = &pgx.Batch{}
		b.Queue("SELECT 1")
		b.Queue("SELECT 1 / $1::int", 0)
		b.Queue("SELECT 3")
		br = c.SendBatch(ctx, b)
		if err := br.QueryRow().Scan(&one); err != nil || one != 1 {
			t.Fatalf("batch query 1: %d %v", one, err)
		}
		requirePgCode(t, br.QueryRow().Scan(&one), "22012")
		if err := br.QueryRow().Scan(&three); err == nil {
			t.Errorf("batch query after the error ran")
		}
		br.Close()
		if got := queryInt(t, ctx, c, "SELECT 4"); got != 4 {
			t.Fatalf("after failed batch: %d", got)
		}
	})

	// The connection is still healthy at the end.
	ctx2, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := c.Ping(ctx2); err != nil {
		t.Fatalf("ping: %v", err)
	}
}
