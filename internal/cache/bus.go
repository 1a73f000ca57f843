package cache

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// BusChannel is the LISTEN/NOTIFY channel of the invalidation bus.
const BusChannel = "poolmgr_cache"

const (
	maxPayload      = 7999 // NOTIFY payloads must be shorter than 8000 bytes
	maxPendingNames = 256  // names pending per database; more are published as "*"
	maxInstanceID   = 64
	busIdle         = time.Second     // LISTEN wait before the connection is pinged
	busPingTimeout  = 2 * time.Second // a ping slower than this takes the bus down
	backoffMin      = 100 * time.Millisecond
	backoffMax      = 5 * time.Second
)

// busMsg is one decoded payload.
type busMsg struct {
	instance, db string
	scope        scope
	names        []string // scopeTables
}

// Payload format (see doc.go):
//
//	<instance>|<db>|<name>,<name>,...   tables
//	<instance>|<db>|*                   every table of db (data)
//	<instance>|<db>|!                   every table of db, schema changed
//
// Fields are percent-escaped: % | , . * ! and bytes below 0x20 or 0x7f.
// A name may be written schema.name: the schema is ignored.

func needsEscape(b byte) bool {
	switch b {
	case '%', '|', ',', '.', '*', '!':
		return true
	}
	return b < 0x20 || b == 0x7f
}

func appendEscaped(dst []byte, s string) []byte {
	const hexd = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		b := s[i]
		if needsEscape(b) {
			dst = append(dst, '%', hexd[b>>4], hexd[b&15])
		} else {
			dst = append(dst, b)
		}
	}
	return dst
}

func escapedLen(s string) int {
	n := len(s)
	for i := 0; i < len(s); i++ {
		if needsEscape(s[i]) {
			n += 2
		}
	}
	return n
}

func unescape(s string) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b = append(b, s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", errors.New("truncated escape")
		}
		v, err := hex.DecodeString(s[i+1 : i+3])
		if err != nil {
			return "", fmt.Errorf("bad escape %q", s[i:i+3])
		}
		b = append(b, v[0])
		i += 2
	}
	return string(b), nil
}

// encodeMessages appends to dst the payloads announcing a write of db,
// split so that each is at most limit bytes.
func encodeMessages(dst []string, instance, db string, sc scope, names []string, limit int) []string {
	head := appendEscaped(nil, instance)
	head = append(head, '|')
	head = appendEscaped(head, db)
	head = append(head, '|')
	switch sc {
	case scopeSchema:
		return append(dst, string(head)+"!")
	case scopeData:
		return append(dst, string(head)+"*")
	}
	if len(head)+3*64 > limit { // cannot happen with names of at most 63 bytes
		return append(dst, string(head)+"*")
	}
	buf := append([]byte(nil), head...)
	for _, n := range names {
		if len(buf) > len(head) && len(buf)+1+escapedLen(n) > limit {
			dst = append(dst, string(buf))
			buf = append(buf[:0], head...)
		}
		if len(buf) > len(head) {
			buf = append(buf, ',')
		}
		buf = appendEscaped(buf, n)
	}
	if len(buf) > len(head) {
		dst = append(dst, string(buf))
	}
	return dst
}

// decodeMessage parses one payload.
func decodeMessage(p string) (busMsg, error) {
	var m busMsg
	parts := strings.Split(p, "|")
	if len(parts) != 3 || parts[2] == "" {
		return m, fmt.Errorf("malformed payload %q", trunc(p))
	}
	var err error
	if m.instance, err = unescape(parts[0]); err != nil {
		return m, err
	}
	if m.db, err = unescape(parts[1]); err != nil {
		return m, err
	}
	switch parts[2] {
	case "*":
		m.scope = scopeData
		return m, nil
	case "!":
		m.scope = scopeSchema
		return m, nil
	}
	m.scope = scopeTables
	for _, item := range strings.Split(parts[2], ",") {
		if i := strings.LastIndexByte(item, '.'); i >= 0 {
			item = item[i+1:] // schema.name: versions are kept by bare name
		}
		if item == "" {
			return m, fmt.Errorf("empty name in %q", trunc(p))
		}
		n, err := unescape(item)
		if err != nil {
			return m, err
		}
		m.names = append(m.names, n)
	}
	return m, nil
}

func trunc(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// bus publishes local invalidations and applies other instances'.
type bus struct {
	c   *Cache
	id  string
	cfg *pgx.ConnConfig

	mu      sync.Mutex
	pending map[string]*pendingDB
	signal  chan struct{}

	up, pubUp                   atomic.Bool // LISTEN / publishing connection up
	published, received, errors atomic.Uint64
}

type pendingDB struct {
	scope scope
	names map[string]struct{}
}

// StartBus connects the cache to the other poolmgr instances in front of
// the same primary: every invalidation is published with NOTIFY on
// BusChannel, and those of other instances (told apart by instanceID;
// empty means a random one) are applied here. connString must reach the
// primary (any user that can connect). Until the LISTEN connection is up,
// and whenever it is down, Get misses and Put refuses; each time it comes
// up every entry is dropped (notifications may have been missed). Does
// nothing when Config.Bus is false; only the first call has an effect. Runs
// until ctx is done or Close.
func (c *Cache) StartBus(ctx context.Context, connString, instanceID string) error {
	if !c.cfg.Bus {
		c.log.Info("cache: bus disabled (cache_bus = false): only writes through this instance invalidate")
		return nil
	}
	cfg, err := pgx.ParseConfig(connString)
	if err != nil {
		return fmt.Errorf("cache: bus connection: %w", err)
	}
	prepare(cfg)
	if instanceID == "" {
		var r [8]byte
		_, _ = rand.Read(r[:])
		instanceID = hex.EncodeToString(r[:])
	}
	if len(instanceID) > maxInstanceID {
		instanceID = instanceID[:maxInstanceID]
	}
	b := &bus{c: c, id: instanceID, cfg: cfg, pending: map[string]*pendingDB{}, signal: make(chan struct{}, 1)}
	if !c.busPtr.CompareAndSwap(nil, b) {
		return nil
	}
	c.serving.Store(false) // nothing is served until LISTEN is up
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(c.ctx, cancel)
	c.wg.Add(2)
	go func() {
		defer c.wg.Done()
		defer stop()
		defer cancel()
		b.listen(ctx)
	}()
	go func() {
		defer c.wg.Done()
		b.publish(ctx)
	}()
	return nil
}

// InstanceID is the bus's instance id ("" before StartBus).
func (c *Cache) InstanceID() string {
	if b := c.busPtr.Load(); b != nil {
		return b.id
	}
	return ""
}

// enqueue records a local invalidation for publication. Names are copied
// (interned from the database's table states when known).
func (b *bus) enqueue(c *Cache, db string, sc scope, n int, name func(int) (string, string)) {
	var d *dbState
	if sc == scopeTables {
		if d = c.dbFor(db, false); d != nil {
			d.mu.RLock()
			defer d.mu.RUnlock()
		}
	}
	b.mu.Lock()
	p := b.pending[db]
	if p == nil {
		p = &pendingDB{}
		b.pending[db] = p
	}
	switch {
	case sc > p.scope:
		p.scope = sc
		p.names = nil
	case sc == scopeTables && p.scope == scopeTables:
		if p.names == nil {
			p.names = make(map[string]struct{}, n)
		}
		for i := range n {
			_, nm := name(i)
			if _, ok := p.names[nm]; ok {
				continue
			}
			if len(p.names) >= maxPendingNames {
				p.scope, p.names = scopeData, nil
				break
			}
			if t := tableOf(d, nm); t != nil {
				nm = t.name
			} else {
				nm = strings.Clone(nm)
			}
			p.names[nm] = struct{}{}
		}
	}
	b.mu.Unlock()
	select {
	case b.signal <- struct{}{}:
	default:
	}
}

func tableOf(d *dbState, name string) *tableState {
	if d == nil {
		return nil
	}
	return d.tables[name]
}

func (b *bus) pendingCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, p := range b.pending {
		n += max(1, len(p.names))
	}
	return n
}

// take returns the pending invalidations as payloads and clears them.
func (b *bus) take() []string {
	b.mu.Lock()
	pend := b.pending
	b.pending = map[string]*pendingDB{}
	b.mu.Unlock()
	var out []string
	for db, p := range pend {
		names := make([]string, 0, len(p.names))
		for n := range p.names {
			names = append(names, n)
		}
		out = encodeMessages(out, b.id, db, p.scope, names, maxPayload)
	}
	return out
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// publish sends pending invalidations, coalesced over Config.BusCoalesce,
// through its own connection, kept open (connected ahead of the first
// write: a connection set-up would delay it). A failed send is retried with
// backoff on a new connection until it succeeds.
func (b *bus) publish(ctx context.Context) {
	var conn *pgx.Conn
	defer func() {
		b.pubUp.Store(false)
		if conn != nil {
			closeConn(conn)
		}
	}()
	backoff := backoffMin
	failing := false
	var msgs []string
	fail := func(err error) bool {
		b.errors.Add(1)
		if !failing {
			b.c.log.Warn("cache: bus publish failed: other instances may serve stale entries until it succeeds", "err", err)
		}
		failing = true
		b.pubUp.Store(false)
		if conn != nil {
			closeConn(conn)
			conn = nil
		}
		if !sleepCtx(ctx, backoff) {
			return false
		}
		backoff = min(2*backoff, backoffMax)
		return true
	}
	for ctx.Err() == nil {
		if conn == nil {
			c, err := pgx.ConnectConfig(ctx, b.cfg)
			if err != nil {
				if ctx.Err() != nil || !fail(err) {
					return
				}
				continue
			}
			conn = c
			b.pubUp.Store(true)
		}
		if len(msgs) == 0 {
			select {
			case <-ctx.Done():
				return
			case <-b.signal:
			}
			if !sleepCtx(ctx, b.c.cfg.BusCoalesce) {
				return
			}
			msgs = b.take()
			if len(msgs) == 0 {
				continue
			}
		}
		if err := b.send(ctx, conn, msgs); err != nil {
			if ctx.Err() != nil || !fail(err) {
				return
			}
			msgs = append(msgs, b.take()...) // what arrived meanwhile; duplicates are harmless
			continue
		}
		b.published.Add(uint64(len(msgs)))
		msgs = msgs[:0]
		if failing {
			b.c.log.Info("cache: bus publishing again")
		}
		failing, backoff = false, backoffMin
	}
}

func (b *bus) send(ctx context.Context, conn *pgx.Conn, msgs []string) error {
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	batch := &pgx.Batch{}
	for _, m := range msgs {
		batch.Queue("SELECT pg_catalog.pg_notify('"+BusChannel+"', $1)", m)
	}
	return conn.SendBatch(sctx, batch).Close()
}

// listen keeps a LISTEN connection and applies what arrives.
func (b *bus) listen(ctx context.Context) {
	backoff := backoffMin
	var lastErr error
	for ctx.Err() == nil {
		conn, err := pgx.ConnectConfig(ctx, b.cfg)
		if err == nil {
			if _, err = conn.Exec(ctx, "LISTEN "+BusChannel); err != nil {
				closeConn(conn)
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			b.errors.Add(1)
			if lastErr == nil {
				b.c.log.Warn("cache: bus down: not serving from the cache", "err", err)
			}
			lastErr = err
			if !sleepCtx(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, backoffMax)
			continue
		}
		backoff = backoffMin
		b.c.busUp()
		if lastErr != nil {
			b.c.log.Info("cache: bus up again: cache cleared")
		}
		err = b.wait(ctx, conn)
		b.c.busDown()
		closeConn(conn)
		if ctx.Err() != nil {
			return
		}
		b.errors.Add(1)
		b.c.log.Warn("cache: bus down: not serving from the cache", "err", err)
		lastErr = err
	}
}

// wait applies notifications until the connection fails.
func (b *bus) wait(ctx context.Context, conn *pgx.Conn) error {
	for {
		wctx, cancel := context.WithTimeout(ctx, busIdle)
		n, err := conn.WaitForNotification(wctx)
		timedOut := wctx.Err() != nil
		cancel()
		if err == nil {
			b.apply(n.Payload)
			continue
		}
		if ctx.Err() != nil || !timedOut || conn.IsClosed() {
			return err
		}
		// Idle: make sure the connection still works (a dead peer would
		// otherwise look like a quiet one).
		pctx, cancel := context.WithTimeout(ctx, busPingTimeout)
		err = conn.Ping(pctx)
		cancel()
		if err != nil {
			return fmt.Errorf("ping: %w", err)
		}
	}
}

func (b *bus) apply(payload string) {
	m, err := decodeMessage(payload)
	if err != nil {
		b.c.log.Warn("cache: bad bus message: cache cleared", "err", err)
		b.c.Clear()
		return
	}
	if m.instance == b.id {
		return
	}
	b.received.Add(1)
	b.c.remote.Add(1)
	b.c.invalidate(m.db, m.scope, len(m.names), func(i int) (string, string) { return "", m.names[i] },
		time.Now().UnixNano(), false)
}

// busUp: LISTEN is active. Everything cached before may have missed
// notifications: drop it, then serve.
func (c *Cache) busUp() {
	c.Clear()
	if b := c.busPtr.Load(); b != nil {
		b.up.Store(true)
	}
	c.serving.Store(true)
}

func (c *Cache) busDown() {
	c.serving.Store(false)
	if b := c.busPtr.Load(); b != nil {
		b.up.Store(false)
	}
}
