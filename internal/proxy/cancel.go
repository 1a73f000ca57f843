package proxy

import (
	"sync"

	"github.com/poolmgr/poolmgr/internal/pgproto"
)

// cancelRegistry maps the (pid, secret) keys the proxy hands to clients to
// the client they belong to, across loops. Sharded to keep lock hold times short.
type cancelRegistry struct {
	shards [64]cancelShard
}

type cancelShard struct {
	mu   sync.Mutex
	m    map[uint32]*Client
	peak int // most entries since m was made: a Go map never gives back its buckets
}

// shrinkBelow: a shard whose map holds fewer than 1/shrinkBelow of its peak
// (and the peak was over shrinkMinPeak) is copied into a map of its current
// size, so the memory a storm of 1M clients took (~23 MB of buckets over the
// 64 shards) goes back once they have left. Each copy costs O(entries) and
// happens after at least 7/8 of the peak were deleted: amortized O(1).
const (
	shrinkBelow   = 8
	shrinkMinPeak = 1024
)

func (r *cancelRegistry) init() {
	for i := range r.shards {
		r.shards[i].m = make(map[uint32]*Client)
	}
}

// register gives c a fresh, unique key.
func (r *cancelRegistry) register(c *Client) {
	for {
		pid := random32() & 0x7fffffff
		if pid == 0 {
			continue
		}
		sh := &r.shards[pid%64]
		sh.mu.Lock()
		if _, taken := sh.m[pid]; !taken {
			sh.m[pid] = c
			sh.peak = max(sh.peak, len(sh.m))
			c.cancelPID, c.cancelSecret = pid, random32()
			sh.mu.Unlock()
			return
		}
		sh.mu.Unlock()
	}
}

func (r *cancelRegistry) unregister(c *Client) {
	if c.cancelPID == 0 {
		return
	}
	sh := &r.shards[c.cancelPID%64]
	sh.mu.Lock()
	if sh.m[c.cancelPID] == c {
		delete(sh.m, c.cancelPID)
		if n := len(sh.m); sh.peak > shrinkMinPeak && n < sh.peak/shrinkBelow {
			m := make(map[uint32]*Client, n)
			for k, v := range sh.m {
				m[k] = v
			}
			sh.m, sh.peak = m, n
		}
	}
	sh.mu.Unlock()
}

// lookup returns the client with that key, or nil. The secret is checked here.
func (r *cancelRegistry) lookup(pid, secret uint32) *Client {
	sh := &r.shards[pid%64]
	sh.mu.Lock()
	c := sh.m[pid]
	sh.mu.Unlock()
	if c == nil || c.cancelSecret != secret {
		return nil
	}
	return c
}

// cancelConn is a short-lived connection that carries a CancelRequest to a
// backend on behalf of a client. While it is open the server connection it
// targets is not handed to another client (see Server.cancels).
type cancelConn struct {
	loop   *Loop
	h      Handle
	target *Server
	pid    uint32
	secret uint32
}

func (cc *cancelConn) OnConnected(err error) {
	if err != nil {
		cc.done()
		return
	}
	b := pgproto.AppendCancelRequest(cc.loop.scratch[:0], cc.pid, cc.secret)
	cc.loop.t.Send(cc.h, b)
	// PostgreSQL closes the connection once it has signalled the backend.
}

func (cc *cancelConn) OnData([]byte)       {}
func (cc *cancelConn) OnWriteBlocked(bool) {}
func (cc *cancelConn) OnClosed(err error)  { cc.done() }

func (cc *cancelConn) done() {
	if cc.target == nil {
		return
	}
	s := cc.target
	cc.target = nil
	cc.loop.t.Close(cc.h)
	s.cancels--
	if s.cancels == 0 && s.state == ServerHeld {
		cc.loop.serverReady(s)
	}
}
