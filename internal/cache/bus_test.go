package cache

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestBusEncodeDecode(t *testing.T) {
	names := []string{"users", "Weird|Name", "a,b", "dots.in.name", "*", "!", "100%", "tab\there", "ünï"}
	msgs := encodeMessages(nil, "inst|1", "my.db", scopeTables, names, maxPayload)
	if len(msgs) != 1 {
		t.Fatalf("%d payloads", len(msgs))
	}
	if strings.Count(msgs[0], "|") != 2 {
		t.Fatalf("separators not escaped: %q", msgs[0])
	}
	m, err := decodeMessage(msgs[0])
	if err != nil {
		t.Fatal(err)
	}
	want := busMsg{instance: "inst|1", db: "my.db", scope: scopeTables, names: names}
	if !reflect.DeepEqual(m, want) {
		t.Fatalf("decoded %+v\nwant    %+v", m, want)
	}
	for _, sc := range []scope{scopeData, scopeSchema} {
		msgs := encodeMessages(nil, "i", "db", sc, nil, maxPayload)
		m, err := decodeMessage(msgs[0])
		if err != nil || m.scope != sc || m.db != "db" || m.instance != "i" || m.names != nil {
			t.Fatalf("scope %d: %q -> %+v, %v", sc, msgs, m, err)
		}
	}
	if m, _ := decodeMessage("i|db|*"); m.scope != scopeData {
		t.Fatal("* is not the whole database")
	}
	if m, _ := decodeMessage("i|db|!"); m.scope != scopeSchema {
		t.Fatal("! is not a schema change")
	}
	// schema.name written by another tool: the schema is dropped.
	if m, err := decodeMessage("i|db|public.users,s.t,plain"); err != nil ||
		!reflect.DeepEqual(m.names, []string{"users", "t", "plain"}) {
		t.Fatalf("qualified names: %+v, %v", m, err)
	}
	for _, bad := range []string{"", "i|db", "i|db|", "i|db|a|b", "i|db|a,,b", "i|db|%zz", "i|d%4|a", "i|db|a.", "i|db|%"} {
		if _, err := decodeMessage(bad); err == nil {
			t.Errorf("decodeMessage(%q) accepted", bad)
		}
	}
}

func TestBusSplitsPayloads(t *testing.T) {
	var names []string
	for i := range 300 {
		names = append(names, strings.Repeat("x", 50)+strconv.Itoa(i))
	}
	msgs := encodeMessages(nil, "instance", "app", scopeTables, names, maxPayload)
	if len(msgs) < 2 {
		t.Fatalf("%d payloads for %d bytes of names", len(msgs), 300*53)
	}
	var got []string
	for _, p := range msgs {
		if len(p) > maxPayload {
			t.Fatalf("payload of %d bytes", len(p))
		}
		m, err := decodeMessage(p)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, m.names...)
	}
	if !reflect.DeepEqual(got, names) {
		t.Fatal("names lost or reordered across payloads")
	}
	// Escaping counts towards the limit.
	msgs = encodeMessages(nil, "i", "d", scopeTables, []string{strings.Repeat("|", 63), strings.Repeat(",", 63)}, 200)
	for _, p := range msgs {
		if len(p) > 200 {
			t.Fatalf("payload of %d bytes > 200", len(p))
		}
	}
}

func TestBusPendingCoalesces(t *testing.T) {
	c := newTestCache(t, Config{Bus: true})
	b := &bus{c: c, id: "me", pending: map[string]*pendingDB{}, signal: make(chan struct{}, 1)}
	c.busPtr.Store(b)
	c.Invalidate("app", tbl("a", "b"))
	c.Invalidate("app", tbl("b", "c"))
	c.Invalidate("shop", tbl("x"))
	if n := b.pendingCount(); n != 4 {
		t.Fatalf("pending %d, want 4", n)
	}
	msgs := b.take()
	if len(msgs) != 2 {
		t.Fatalf("payloads %q", msgs)
	}
	c.Invalidate("app", tbl("a"))
	c.InvalidateData("app")
	c.Invalidate("app", tbl("b"))
	c.InvalidateDatabase("shop")
	c.InvalidateData("shop")
	got := map[string]bool{}
	for _, m := range b.take() {
		got[m] = true
	}
	if !got["me|app|*"] || !got["me|shop|!"] || len(got) != 2 {
		t.Fatalf("payloads %v", got)
	}
	for i := range maxPendingNames + 1 {
		c.Invalidate("app", tbl("t"+strconv.Itoa(i)))
	}
	if msgs := b.take(); len(msgs) != 1 || msgs[0] != "me|app|*" {
		t.Fatalf("too many names not collapsed: %d payloads", len(msgs))
	}
}

// TestBusApplyRemote: another instance's message invalidates here; our own
// is ignored.
func TestBusApplyRemote(t *testing.T) {
	c := newTestCache(t, Config{Bus: true})
	b := &bus{c: c, id: "me", pending: map[string]*pendingDB{}, signal: make(chan struct{}, 1)}
	c.busPtr.Store(b)
	loadSync(t, c, "app", &Catalog{Relations: tables("a", "b")})
	put(c, "app", "a", "A", "a")
	put(c, "app", "b", "B", "b")
	b.apply("me|app|a")
	if _, ok := get(c, "app", "a"); !ok {
		t.Fatal("own message applied")
	}
	b.apply("other|app|public.a")
	if _, ok := get(c, "app", "a"); ok {
		t.Fatal("remote invalidation not applied")
	}
	if _, ok := get(c, "app", "b"); !ok {
		t.Fatal("remote invalidation of a dropped b")
	}
	if b.pendingCount() != 0 {
		t.Fatal("remote invalidation republished")
	}
	b.apply("garbage")
	if _, ok := get(c, "app", "b"); ok {
		t.Fatal("a bad message did not clear the cache")
	}
}

// TestBusDownServesNothing: with the bus started but its server
// unreachable, Get misses and Put refuses.
func TestBusDownServesNothing(t *testing.T) {
	c := newTestCache(t, Config{Bus: true})
	loadSync(t, c, "app", &Catalog{Relations: tables("a")})
	put(c, "app", "k", "r", "a")
	if err := c.StartBus(context.Background(), "host=127.0.0.1 port=1 user=x password=x connect_timeout=1", "i"); err != nil {
		t.Fatal(err)
	}
	if _, ok := get(c, "app", "k"); ok {
		t.Fatal("hit while the bus is down")
	}
	if put(c, "app", "k2", "r", "a") {
		t.Fatal("Put while the bus is down")
	}
	if st := c.Stats(); st.BusUp || st.Bypass == 0 {
		t.Fatalf("stats %+v", st)
	}
	if !waitFor(2*time.Second, func() bool { return c.Stats().BusErrors > 0 }) {
		t.Fatal("no bus error counted")
	}
}

func TestBusDisabled(t *testing.T) {
	c := newTestCache(t, Config{Bus: false})
	if err := c.StartBus(context.Background(), "host=127.0.0.1 port=1", "i"); err != nil {
		t.Fatal(err)
	}
	if !c.Stats().BusUp || c.InstanceID() != "" {
		t.Fatal("disabled bus started")
	}
}

// TestBusLive: two instances coherent through the real primary's
// LISTEN/NOTIFY, within 100 ms.
func TestBusLive(t *testing.T) {
	addr := pgAddr(t)
	// A database name of its own: other tests may use the channel at the same time.
	db := fmt.Sprintf("bustest%d", os.Getpid())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	newInstance := func(id string) *Cache {
		c := newTestCache(t, Config{Bus: true})
		loadSync(t, c, db, &Catalog{Relations: tables("t1", "t2")})
		if err := c.StartBus(ctx, connString(addr, "postgres")+" application_name=cachetest_"+id, id); err != nil {
			t.Fatal(err)
		}
		return c
	}
	a, b := newInstance("A"), newInstance("B")
	if !waitFor(10*time.Second, func() bool {
		sa, sb := a.Stats(), b.Stats()
		return sa.BusUp && sb.BusUp && sa.BusPublishing && sb.BusPublishing
	}) {
		t.Fatalf("bus not up: A %+v, B %+v", a.Stats(), b.Stats())
	}

	// A table write on A invalidates B's entry of that table only. Five
	// rounds: the machine may be loaded, so the median must be within
	// 100 ms (and every round within a second).
	var took []time.Duration
	for range 5 {
		for _, c := range []*Cache{a, b} {
			put(c, db, "t1", "T1", "t1")
			put(c, db, "t2", "T2", "t2")
		}
		start := time.Now()
		a.Invalidate(db, tbl("t1"))
		if !waitFor(time.Second, func() bool { _, ok := get(b, db, "t1"); return !ok }) {
			t.Fatal("B still serves t1 a second after A's write")
		}
		took = append(took, time.Since(start))
		if _, ok := get(b, db, "t2"); !ok {
			t.Error("B dropped t2")
		}
		if _, ok := get(a, db, "t1"); ok {
			t.Error("A still serves t1")
		}
	}
	t.Logf("A -> B invalidation took %v", took)
	slices.Sort(took)
	if took[2] > 100*time.Millisecond {
		t.Errorf("A -> B invalidation: median %v > 100ms (%v)", took[2], took)
	}

	// The other way, whole database.
	put(b, db, "t1", "T1", "t1")
	put(a, db, "t2", "T2", "t2")
	start := time.Now()
	b.InvalidateData(db)
	if !waitFor(time.Second, func() bool { _, ok := get(a, db, "t2"); return !ok }) {
		t.Fatal("A still serves t2 after B's database write")
	}
	t.Logf("B -> A database invalidation took %v", time.Since(start))

	// A burst: many names, coalesced and split into several payloads.
	var names []Table
	for i := range 200 {
		names = append(names, Table{Name: strings.Repeat("n", 50) + strconv.Itoa(i)})
	}
	put(b, db, "t2", "T2", "t2")
	pubBefore := a.Stats().BusPublished
	a.Invalidate(db, names)
	a.Invalidate(db, tbl("t2"))
	if !waitFor(time.Second, func() bool { _, ok := get(b, db, "t2"); return !ok }) {
		t.Fatal("B still serves t2 after a burst")
	}
	// (counted once SendBatch returns, which may be after B heard it)
	if !waitFor(time.Second, func() bool { return a.Stats().BusPublished-pubBefore >= 2 }) {
		t.Errorf("burst published as %d payloads, want >= 2 (split at 8000 bytes)", a.Stats().BusPublished-pubBefore)
	}
	sa := a.Stats()
	if sa.BusReceived == 0 || sa.BusPublished == 0 || sa.BusErrors != 0 {
		t.Errorf("A stats %+v", sa)
	}

	// B's LISTEN connection is killed: B clears its cache when it is back.
	put(b, db, "t1", "T1", "t1")
	conn, err := pgx.Connect(ctx, connString(addr, "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	errsBefore := b.Stats().BusErrors
	var killed int
	if err := conn.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE application_name = 'cachetest_B' AND query = 'LISTEN `+BusChannel+`'`).Scan(&killed); err != nil || killed != 1 {
		t.Fatalf("terminate B's listener: %d, %v", killed, err)
	}
	if !waitFor(5*time.Second, func() bool { s := b.Stats(); return s.BusErrors > errsBefore && s.BusUp }) {
		t.Fatalf("B's bus did not come back: %+v", b.Stats())
	}
	if _, ok := get(b, db, "t1"); ok {
		t.Error("B kept an entry across a bus outage")
	}
	// And works again.
	put(b, db, "t1", "T1", "t1")
	a.Invalidate(db, tbl("t1"))
	if !waitFor(time.Second, func() bool { _, ok := get(b, db, "t1"); return !ok }) {
		t.Fatal("B deaf after reconnecting")
	}
}
