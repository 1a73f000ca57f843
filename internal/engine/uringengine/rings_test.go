//go:build linux

package uringengine_test

import (
	"context"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/poolmgr/poolmgr/internal/engine/uringengine"
	"github.com/poolmgr/poolmgr/internal/proxy"
)

// tinyRings: 64-slot tables; ring 0 keeps 8 server + 4 refusal slots, so
// 300 clients need ring 0 (52) + 4 extra rings (4 x 64).
var tinyRings = uringengine.Options{FileSlots: 64, MaxConns: 300}

func fdCount(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestSeveralRingsPerLoop: one loop holds 300 clients over 5 rings of 64
// slots (created lazily), every one of them served (SSLRequest answered),
// none in the fd table; closing frees every slot and the next 300 clients
// reuse the same rings.
func TestSeveralRingsPerLoop(t *testing.T) {
	p := startProxy(t, []string{closedPort(t)}, nil, tinyRings, 1)
	if r := uringengine.Rings(p.e)[0]; r != 1 {
		t.Fatalf("%d rings before any client, want 1 (extra rings are created lazily)", r)
	}
	fds0 := fdCount(t)
	const n = 300
	for round := range 2 {
		conns := make([]net.Conn, 0, n)
		for i := range n {
			c, err := net.Dial("tcp", p.addr)
			if err != nil {
				t.Fatalf("round %d conn %d: %v", round, i, err)
			}
			conns = append(conns, c)
		}
		// Every client is served, whichever ring holds it.
		for i, c := range conns {
			c.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := c.Write([]byte{0, 0, 0, 8, 4, 0xd2, 0x16, 0x2f}); err != nil {
				t.Fatalf("round %d conn %d: write: %v", round, i, err)
			}
		}
		for i, c := range conns {
			var b [1]byte
			if _, err := io.ReadFull(c, b[:]); err != nil || b[0] != 'N' {
				t.Fatalf("round %d conn %d: SSLRequest answer %q %v", round, i, b[0], err)
			}
		}
		waitFor(t, 10*time.Second, "300 clients in the core", func() bool { return p.clients() == n })
		if r := uringengine.Rings(p.e)[0]; r != 5 {
			t.Errorf("round %d: %d rings, want 5", round, r)
		}
		per := uringengine.ConnsPerRing(p.e, 0)
		t.Logf("round %d: clients per ring %v", round, per)
		for r, k := range per {
			if k == 0 {
				t.Errorf("round %d: ring %d holds no client", round, r)
			}
		}
		inTable, est := proxySocketsInFDTable(t, p.port)
		if est < n || inTable != 0 {
			t.Errorf("round %d: %d established proxy-side sockets, %d in the fd table; want >= %d and 0", round, est, inTable, n)
		}
		for _, c := range conns {
			c.Close()
		}
		waitFor(t, 10*time.Second, "every slot freed", func() bool {
			return p.clients() == 0 && uringengine.ConnsInUse(p.e)[0] == 0
		})
		// Empty extra rings give their buffer memory back (the next round
		// receives into the released buffers). One extra ring may keep
		// the slot of an armed accept.
		want := uint64(3 * (round + 1))
		waitFor(t, 10*time.Second, "the empty rings' buffers released", func() bool {
			return uringengine.RingTrims(p.e)[0] >= want
		})
	}
	// The extra rings cost one fd each (the ring), nothing per connection.
	if d := fdCount(t) - fds0; d > 4+2 {
		t.Errorf("fd table grew by %d over two rounds of 300 clients (4 extra rings)", d)
	}
}

// TestSeveralRingsRefuseBeyondMaxConns: once every ring allowed by MaxConns
// is full, further clients get 53300 (refusal slots of ring 0); no sixth ring.
func TestSeveralRingsRefuseBeyondMaxConns(t *testing.T) {
	eo := uringengine.Options{FileSlots: 32, ServerSlots: 4, RefuseSlots: 2, Accepts: 2, MaxConns: 58}
	p := startProxy(t, []string{closedPort(t)}, nil, eo, 1)
	// ring 0: 26 client slots, ring 1: 32 -> 58 held (2 rings), the rest refused.
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	refused := 0
	for i := 0; i < 70; i++ {
		if i == 58 {
			waitFor(t, 5*time.Second, "58 clients held", func() bool { return p.clients() == 58 })
		}
		c, err := net.Dial("tcp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		if i < 58 { // held: they send nothing (the core waits for their startup)
			continue
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write(startupMsg("user", "app", "database", "app"))
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		typ, body, err := readMsg(c)
		if err == nil && typ == 'E' && errorCode(body) == "53300" {
			refused++
		}
	}
	if r := uringengine.Rings(p.e)[0]; r != 2 {
		t.Errorf("%d rings, want 2", r)
	}
	if refused == 0 {
		t.Error("no client was refused with 53300 beyond MaxConns")
	}
	t.Logf("refused %d of 70", refused)
}

// TestSeveralRingsQueries: 300 clients over 5 rings run queries through
// the real core against PostgreSQL (server connections stay on ring 0).
func TestSeveralRingsQueries(t *testing.T) {
	pg := pgAddr(t)
	p := startProxy(t, []string{pg}, func(o *proxy.Options) { o.PoolSize = 6 }, tinyRings, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const n = 300
	conns := make([]*pgx.Conn, n)
	for i := range conns {
		conns[i] = pgConnect(t, ctx, p, pgx.QueryExecModeExec)
	}
	if r := uringengine.Rings(p.e)[0]; r != 5 {
		t.Errorf("%d rings, want 5", r)
	}
	t.Logf("connections per ring (clients + servers): %v", uringengine.ConnsPerRing(p.e, 0))
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 5 {
				var got int
				if err := c.QueryRow(ctx, "SELECT $1::int + 1", i*10+j).Scan(&got); err != nil {
					errs <- err
					return
				}
				if got != i*10+j+1 {
					errs <- io.ErrUnexpectedEOF
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i, c := range conns {
		c.Close(ctx)
		conns[i] = nil
	}
	waitFor(t, 10*time.Second, "every client released", func() bool { return p.clients() == 0 })
}
