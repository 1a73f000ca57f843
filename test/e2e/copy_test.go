package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/poolmgr/poolmgr/internal/testutil"
)

// copyRows returns n CSV rows "i,name-i\n" starting at id from.
func copyRows(from, n int) string {
	var b strings.Builder
	for i := from; i < from+n; i++ {
		fmt.Fprintf(&b, "%d,\"name-%d with \"\"quotes\"\" and, commas\"\n", i, i)
	}
	return b.String()
}

// chunkReader hands out data in small reads, then fails with err (if set).
type chunkReader struct {
	data  []byte
	chunk int
	err   error
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		return 0, io.EOF
	}
	n := min(len(p), r.chunk, len(r.data))
	copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

// COPY FROM STDIN and COPY TO STDOUT through the proxy (pgconn CopyFrom /
// CopyTo), plus COPY errors: a bad row mid-stream (server error 22P02) and a
// client-side abort (CopyFail, 57014). After each error the same client, on
// the same single server connection, keeps working.
func TestCopyInOut(t *testing.T) {
	p := startProxy(t, testutil.Config{PoolMode: "transaction", PoolSize: 1})
	ctx := testCtx(t, 60*time.Second)
	table := testutil.NewTable(t, "CREATE TABLE %s (id int PRIMARY KEY, name text NOT NULL)")
	c := connect(t, ctx, p)
	pc := c.PgConn()
	count := func() int64 { return queryInt(t, ctx, c, "SELECT count(*) FROM "+table) }

	// Plain CSV COPY in, 50 000 rows in 1000-byte chunks.
	const n = 50000
	data := copyRows(1, n)
	tag, err := pc.CopyFrom(ctx, &chunkReader{data: []byte(data), chunk: 1000}, "COPY "+table+" FROM STDIN WITH (FORMAT csv)")
	if err != nil {
		t.Fatalf("COPY FROM STDIN: %v", err)
	}
	if tag.String() != fmt.Sprintf("COPY %d", n) || count() != n {
		t.Fatalf("COPY FROM: tag %q, %d rows", tag, count())
	}

	// COPY out.
	var out bytes.Buffer
	tag, err = pc.CopyTo(ctx, &out, "COPY (SELECT id, name FROM "+table+" ORDER BY id) TO STDOUT WITH (FORMAT csv)")
	if err != nil {
		t.Fatalf("COPY TO STDOUT: %v", err)
	}
	if tag.String() != fmt.Sprintf("COPY %d", n) || out.String() != data {
		t.Fatalf("COPY TO: tag %q, %d bytes (want %d), equal=%v", tag, out.Len(), len(data), out.String() == data)
	}

	// A bad row mid-stream: the server rejects the whole COPY.
	bad := copyRows(n+1, 1000) + "not-a-number,x\n" + copyRows(n+2000, 1000)
	_, err = pc.CopyFrom(ctx, &chunkReader{data: []byte(bad), chunk: 512}, "COPY "+table+" FROM STDIN WITH (FORMAT csv)")
	requirePgCode(t, err, "22P02")
	if got := count(); got != n {
		t.Fatalf("after failed COPY: %d rows, want %d", got, n)
	}

	// The client aborts mid-stream: pgx sends CopyFail.
	_, err = pc.CopyFrom(ctx, &chunkReader{data: []byte(copyRows(n+1, 1000)), chunk: 512, err: errors.New("client gave up")},
		"COPY "+table+" FROM STDIN WITH (FORMAT csv)")
	requirePgCode(t, err, "57014")
	if got := count(); got != n {
		t.Fatalf("after CopyFail: %d rows, want %d", got, n)
	}

	// COPY inside a transaction, rolled back.
	mustExec(t, ctx, c, "BEGIN")
	if _, err := pc.CopyFrom(ctx, strings.NewReader(copyRows(n+1, 10)), "COPY "+table+" FROM STDIN WITH (FORMAT csv)"); err != nil {
		t.Fatal(err)
	}
	if got := count(); got != n+10 {
		t.Fatalf("inside transaction: %d rows", got)
	}
	mustExec(t, ctx, c, "ROLLBACK")
	if got := count(); got != n {
		t.Fatalf("after ROLLBACK: %d rows", got)
	}

	// COPY TO with an error (division by zero after some rows were sent).
	out.Reset()
	_, err = pc.CopyTo(ctx, &out, "COPY (SELECT 1 / (5000 - id) FROM "+table+" ORDER BY id) TO STDOUT")
	requirePgCode(t, err, "22012")

	// Another client on the same server connection still works.
	d := connect(t, ctx, p)
	if got := queryInt(t, ctx, d, "SELECT count(*) FROM "+table); got != n {
		t.Fatalf("second client: %d rows", got)
	}
	if got := queryInt(t, ctx, c, "SELECT 42"); got != 42 {
		t.Fatalf("SELECT 42 = %d", got)
	}
}
