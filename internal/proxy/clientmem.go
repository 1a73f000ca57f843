package proxy

import (
	"net/netip"

	"github.com/poolmgr/poolmgr/internal/auth"
	"github.com/poolmgr/poolmgr/internal/cache"
	"github.com/poolmgr/poolmgr/internal/pgproto"
)

// Per-client memory (issue 5: at most 1 KiB of RSS per idle client at one
// million clients). An idle client is a Client and nothing else: its own
// strings and parameter sets are interned, and every state that only some
// clients need, or that clients need only for a while, lives in a side
// object that exists only then:
//
//   - clientLogin: startup and authentication (user and database names until
//     the pool is known, secret, SCRAM exchange); dropped once logged in.
//   - clientRun: framing of what a linked client sends; taken from the
//     loop's free list when a server is linked and given back when the
//     client goes idle (no allocation per transaction).
//   - clientCache: query cache capture and the writes of the current
//     transaction; from the loop's free list too, while a request runs.
//   - clientPrep: the client's last unnamed Parse, once it sent one.
//
// The user and database names of a logged-in client are its pool's.

// clientLogin is a client's state while it logs in.
type clientLogin struct {
	user, database string // interned
	secret         auth.Secret
	scram          *auth.ScramServer
	md5salt        [4]byte
	authState      authStep
	haveSecret     bool
}

// clientRun is what a client linked to a server needs to forward its bytes.
type clientRun struct {
	scan       pgproto.Scanner // framing of what the client sends
	msg        []byte          // a message that spans reads, being gathered
	collecting bool            // msg is gathering
}

// clientCache is a client's query cache state while a request runs.
type clientCache struct {
	cap       capture      // response being recorded
	writes    cache.Writes // what the current transaction wrote
	capArmed  bool         // cap records once a server is linked
	txFailed  bool         // an error since the last ReadyForQuery
	capFailed bool         // an error in the response being captured
}

// clientPrep is a client's unnamed prepared statement.
type clientPrep struct {
	unnamed    []byte // the client's last unnamed Parse, as sent
	unnamedSeq uint32 // bumped at every unnamed Parse (never reset)
}

// clientMem holds a loop's free side objects.
type clientMem struct {
	runs   []*clientRun
	caches []*clientCache
}

// maxFreeSide bounds each free list (there are at most as many in use as
// the loop has servers).
const maxFreeSide = 4096

// getRun gives c its forwarding state (on link).
func (l *Loop) getRun(c *Client) {
	if c.run != nil {
		return
	}
	var r *clientRun
	if n := len(l.mem.runs); n > 0 {
		r = l.mem.runs[n-1]
		l.mem.runs[n-1] = nil
		l.mem.runs = l.mem.runs[:n-1]
	} else {
		r = &clientRun{}
	}
	r.scan.Max = l.opts().MaxMessageSize
	c.run = r
}

// putRun takes back c's forwarding state when it goes idle (its framing is
// between messages then).
func (l *Loop) putRun(c *Client) {
	r := c.run
	if r == nil {
		return
	}
	c.run = nil
	msg := r.msg[:0]
	if cap(msg) > 1<<16 {
		msg = nil
	}
	*r = clientRun{msg: msg}
	if len(l.mem.runs) < maxFreeSide {
		l.mem.runs = append(l.mem.runs, r)
	}
}

// cacheState returns c's query cache state, attaching one if needed.
func (c *Client) cacheState() *clientCache {
	if c.qc == nil {
		l := c.loop
		if n := len(l.mem.caches); n > 0 {
			c.qc = l.mem.caches[n-1]
			l.mem.caches[n-1] = nil
			l.mem.caches = l.mem.caches[:n-1]
		} else {
			c.qc = &clientCache{}
		}
	}
	return c.qc
}

// putCache detaches c's query cache state when no request of c runs: writes
// still collected are invalidated first (over-invalidating is safe).
func (l *Loop) putCache(c *Client) {
	q := c.qc
	if q == nil || q.capArmed || q.cap.on {
		return
	}
	if !q.writes.Empty() {
		if qc := l.opts().Cache; qc != nil {
			qc.InvalidateWrites(c.database(), &q.writes)
		}
	}
	c.qc = nil
	buf := q.cap.buf[:0]
	if cap(buf) > 1<<16 {
		buf = nil
	}
	q.writes.Reset()
	*q = clientCache{cap: capture{buf: buf}, writes: q.writes}
	if len(l.mem.caches) < maxFreeSide {
		l.mem.caches = append(l.mem.caches, q)
	}
}

// capturing reports whether a response of c is being recorded for the cache.
func (c *Client) capturing() bool { return c.qc != nil && c.qc.cap.on }

// unnamedParse returns the client's last unnamed Parse message (nil: none).
func (c *Client) unnamedParse() []byte {
	if c.prep == nil {
		return nil
	}
	return c.prep.unnamed
}

// unnamedSeq returns the sequence number of the client's last unnamed Parse.
func (c *Client) unnamedSeq() uint32 {
	if c.prep == nil {
		return 0
	}
	return c.prep.unnamedSeq
}

// setUnnamed records msg as the client's unnamed statement.
func (c *Client) setUnnamed(msg []byte) {
	if c.prep == nil {
		c.prep = &clientPrep{}
	}
	c.prep.unnamed = append(c.prep.unnamed[:0], msg...)
	c.prep.unnamedSeq++
}

// dropUnnamed forgets the client's unnamed statement.
func (c *Client) dropUnnamed() {
	if c.prep != nil {
		c.prep.unnamed = nil
	}
}

// user returns the client's user name (interned).
func (c *Client) user() string {
	if c.pool != nil {
		return c.pool.sh.User
	}
	if c.login != nil {
		return c.login.user
	}
	return ""
}

// database returns the client's database name (interned).
func (c *Client) database() string {
	if c.pool != nil {
		return c.pool.sh.Database
	}
	if c.login != nil {
		return c.login.database
	}
	return ""
}

// Client address kinds.
const (
	addrNone uint8 = iota
	addr4
	addr6
)

// setRemote records the client's address compactly (an IPv6 zone is not kept).
func (c *Client) setRemote(ap netip.AddrPort) {
	a := ap.Addr()
	switch {
	case a.Is4():
		c.addrKind = addr4
	case a.IsValid():
		c.addrKind = addr6
	default:
		c.addrKind = addrNone
		return
	}
	c.addr, c.port = a.As16(), ap.Port()
}

// remote returns the client's address.
func (c *Client) remote() netip.AddrPort {
	switch c.addrKind {
	case addr4:
		return netip.AddrPortFrom(netip.AddrFrom16(c.addr).Unmap(), c.port)
	case addr6:
		return netip.AddrPortFrom(netip.AddrFrom16(c.addr), c.port)
	}
	return netip.AddrPort{}
}
