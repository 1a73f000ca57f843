package fallback

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/poolmgr/poolmgr/internal/config"
	"github.com/poolmgr/poolmgr/internal/proxy"
)

const (
	readBufSize   = 32 << 10
	highWatermark = 1 << 20
	lowWatermark  = 256 << 10
	tickInterval  = 100 * time.Millisecond
)

// Engine accepts clients and runs the core's loops.
type Engine struct {
	loops   []*loop
	ln      net.Listener
	next    atomic.Uint32
	log     *slog.Logger
	dialTO  func() time.Duration
	stop    chan struct{}
	stopped sync.WaitGroup
}

// New returns an engine running the given core loops.
func New(cores []*proxy.Loop, log *slog.Logger, dialTimeout func() time.Duration) *Engine {
	e := &Engine{log: log, dialTO: dialTimeout, stop: make(chan struct{})}
	for _, c := range cores {
		lp := &loop{e: e, core: c}
		c.Bind(lp, lp)
		e.loops = append(e.loops, lp)
	}
	return e
}

// Listen binds the client listener.
func (e *Engine) Listen(addr string) error {
	lc := net.ListenConfig{}
	ln, err := lc.Listen(nil, "tcp", addr) //nolint:staticcheck // nil context is fine here
	if err != nil {
		return err
	}
	e.ln = ln
	return nil
}

// Addr returns the listener's address.
func (e *Engine) Addr() net.Addr { return e.ln.Addr() }

// Run accepts clients until Close; it starts the loops' tickers.
func (e *Engine) Run() error {
	for _, lp := range e.loops {
		e.stopped.Add(1)
		go lp.ticker()
	}
	for {
		nc, err := e.ln.Accept()
		if err != nil {
			select {
			case <-e.stop:
				return nil
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				e.log.Warn("accept failed; backing off", "err", err)
				time.Sleep(10 * time.Millisecond)
				continue
			}
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		lp := e.loops[int(e.next.Add(1))%len(e.loops)]
		lp.accept(nc)
	}
}

// StopAccepting closes the listener (graceful shutdown starts with this).
func (e *Engine) StopAccepting() {
	select {
	case <-e.stop:
	default:
		close(e.stop)
	}
	if e.ln != nil {
		_ = e.ln.Close()
	}
}

// Drained reports whether every loop has no clients left.
func (e *Engine) Drained() bool {
	for _, lp := range e.loops {
		lp.mu.Lock()
		d := lp.core.Drained()
		lp.mu.Unlock()
		if !d {
			return false
		}
	}
	return true
}

// Each runs fn on every loop, under its lock (for reloads and stats).
func (e *Engine) Each(fn func(*proxy.Loop)) {
	for _, lp := range e.loops {
		lp.mu.Lock()
		fn(lp.core)
		lp.flush()
		lp.mu.Unlock()
	}
}

// loop is one core loop and the connections it owns.
type loop struct {
	e     *Engine
	mu    sync.Mutex
	core  *proxy.Loop
	conns []*conn
	free  []uint32
	dirty []*conn
}

type conn struct {
	lp   *loop
	slot uint32
	gen  uint32
	nc   net.Conn
	rc   syscall.RawConn
	ep   proxy.Endpoint

	out      []byte
	isDirty  bool
	writing  bool // a writer goroutine owns the socket's writes
	blocked  bool // OnWriteBlocked(true) was reported
	closing  bool // core asked to close: close after the output drains
	gone     bool // the core no longer knows this connection
	ncClosed bool
	paused   bool
	cond     *sync.Cond

	wbuf []byte
	wn   int
	werr error
	wfn  func(fd uintptr) bool
}

func (lp *loop) newConn(ep proxy.Endpoint) *conn {
	var slot uint32
	if n := len(lp.free); n > 0 {
		slot = lp.free[n-1]
		lp.free = lp.free[:n-1]
	} else {
		slot = uint32(len(lp.conns))
		lp.conns = append(lp.conns, nil)
	}
	c := &conn{lp: lp, slot: slot, ep: ep}
	if old := lp.conns[slot]; old != nil {
		c.gen = old.gen + 1
	}
	c.cond = sync.NewCond(&lp.mu)
	c.wfn = func(fd uintptr) bool {
		c.wn, c.werr = syscall.Write(int(fd), c.wbuf)
		return true
	}
	lp.conns[slot] = c
	return c
}

func (c *conn) handle() proxy.Handle { return proxy.Handle(uint64(c.gen)<<32 | uint64(c.slot)) }

func (lp *loop) lookup(h proxy.Handle) *conn {
	slot := uint32(h)
	if int(slot) >= len(lp.conns) {
		return nil
	}
	c := lp.conns[slot]
	if c == nil || c.gen != uint32(h>>32) || c.gone {
		return nil
	}
	return c
}

// release forgets a connection's slot (the core will not use its handle again).
func (lp *loop) release(c *conn) {
	if c.gone {
		return
	}
	c.gone = true
	lp.free = append(lp.free, c.slot)
}

func (lp *loop) accept(nc net.Conn) {
	lp.mu.Lock()
	lp.core.SetNow(time.Now().UnixNano())
	c := lp.newConn(nil)
	c.attach(nc)
	var remote netip.AddrPort
	if ta, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		remote = ta.AddrPort()
	}
	c.ep = lp.core.Accept(c.handle(), remote)
	lp.flush()
	lp.mu.Unlock()
	go c.readLoop()
}

func (c *conn) attach(nc net.Conn) {
	c.nc = nc
	if sc, ok := nc.(syscall.Conn); ok {
		c.rc, _ = sc.SyscallConn()
	}
}

func (c *conn) readLoop() {
	lp := c.lp
	buf := make([]byte, readBufSize)
	for {
		lp.mu.Lock()
		for c.paused && !c.gone {
			c.cond.Wait()
		}
		if c.gone {
			lp.closeNC(c)
			lp.mu.Unlock()
			return
		}
		lp.mu.Unlock()
		n, err := c.nc.Read(buf)
		lp.mu.Lock()
		if c.gone {
			lp.closeNC(c)
			lp.mu.Unlock()
			return
		}
		lp.core.SetNow(time.Now().UnixNano())
		if n > 0 {
			c.ep.OnData(buf[:n])
		}
		if err != nil && !c.gone {
			lp.release(c)
			c.ep.OnClosed(err)
			lp.closeNC(c)
		}
		lp.flush()
		lp.mu.Unlock()
		if err != nil {
			return
		}
	}
}

func (lp *loop) closeNC(c *conn) {
	if c.nc != nil && !c.ncClosed && !c.writing {
		c.ncClosed = true
		_ = c.nc.Close()
	}
}

// Send implements proxy.Transport.
func (lp *loop) Send(h proxy.Handle, b []byte) {
	c := lp.lookup(h)
	if c == nil || len(b) == 0 {
		return
	}
	c.out = append(c.out, b...)
	if !c.isDirty {
		c.isDirty = true
		lp.dirty = append(lp.dirty, c)
	}
}

// Close implements proxy.Transport.
func (lp *loop) Close(h proxy.Handle) {
	c := lp.lookup(h)
	if c == nil {
		return
	}
	lp.release(c)
	c.closing = true
	c.cond.Broadcast()
	if !c.isDirty {
		c.isDirty = true
		lp.dirty = append(lp.dirty, c)
	}
}

// PauseRead implements proxy.Transport.
func (lp *loop) PauseRead(h proxy.Handle, paused bool) {
	c := lp.lookup(h)
	if c == nil {
		return
	}
	c.paused = paused
	if !paused {
		c.cond.Broadcast()
	}
}

// Dial implements proxy.Transport.
func (lp *loop) Dial(addr string, ep proxy.Endpoint) proxy.Handle {
	c := lp.newConn(ep)
	h := c.handle()
	timeout := lp.e.dialTO()
	go func() {
		d := net.Dialer{Timeout: timeout}
		network, address, err := dialTarget(addr)
		var nc net.Conn
		if err == nil {
			nc, err = dialRetry(&d, network, address, timeout)
		}
		lp.mu.Lock()
		defer lp.mu.Unlock()
		lp.core.SetNow(time.Now().UnixNano())
		if c.gone {
			if nc != nil {
				_ = nc.Close()
			}
			return
		}
		if err != nil {
			lp.release(c)
			c.ep.OnConnected(err)
			lp.flush()
			return
		}
		c.attach(nc)
		c.ep.OnConnected(nil)
		lp.flush()
		go c.readLoop()
	}()
	return h
}

// dialRetry dials; a Unix socket whose listen backlog is full refuses a
// non-blocking connect with EAGAIN at once (TCP would retransmit the SYN),
// so that is retried, backing off from 1 ms to 50 ms, until timeout (0: the
// core's default of 15 s) — as the io_uring engine's CONNECT waits.
func dialRetry(d *net.Dialer, network, address string, timeout time.Duration) (net.Conn, error) {
	if timeout <= 0 {
		timeout = 15 * time.Second
	}
	deadline := time.Now().Add(timeout)
	for wait := time.Millisecond; ; wait = min(2*wait, 50*time.Millisecond) {
		nc, err := d.Dial(network, address)
		if err == nil || network != "unix" || !errors.Is(err, syscall.EAGAIN) || time.Now().Add(wait).After(deadline) {
			return nc, err
		}
		time.Sleep(wait)
	}
}

// dialTarget returns what net.Dialer.Dial takes for a backend address:
// "unix" and the socket file for a Unix-socket backend ("/directory:port",
// config.UnixSocketPath), else "tcp" and addr.
func dialTarget(addr string) (network, address string, err error) {
	if !config.IsUnixSocketAddr(addr) {
		return "tcp", addr, nil
	}
	path, err := config.UnixSocketPath(addr)
	if err != nil {
		return "", "", &net.OpError{Op: "dial", Net: "unix", Addr: &net.UnixAddr{Name: addr, Net: "unix"}, Err: err}
	}
	return "unix", path, nil
}

// Post implements proxy.Poster.
func (lp *loop) Post(fn func()) {
	go func() {
		lp.mu.Lock()
		fn()
		lp.flush()
		lp.mu.Unlock()
	}()
}

func (lp *loop) ticker() {
	defer lp.e.stopped.Done()
	t := time.NewTicker(tickInterval)
	defer t.Stop()
	for range t.C {
		lp.mu.Lock()
		lp.core.Tick()
		lp.flush()
		lp.mu.Unlock()
	}
}

// flush writes what the event queued. Called with lp.mu held.
func (lp *loop) flush() {
	for i := 0; i < len(lp.dirty); i++ {
		c := lp.dirty[i]
		c.isDirty = false
		if c.nc == nil { // still dialing: flushed after connect
			continue
		}
		if c.writing {
			c.cond.Broadcast()
			continue
		}
		if len(c.out) > 0 {
			lp.writeNow(c)
		}
		if c.closing && len(c.out) == 0 && !c.writing {
			lp.closeNC(c)
		}
	}
	lp.dirty = lp.dirty[:0]
}

// writeNow tries a non-blocking write; what the socket cannot take goes to a
// writer goroutine.
func (lp *loop) writeNow(c *conn) {
	if c.ncClosed {
		c.out = c.out[:0]
		return
	}
	if c.rc != nil {
		c.wbuf = c.out
		err := c.rc.Write(c.wfn)
		c.wbuf = nil
		if err == nil && c.werr == nil && c.wn == len(c.out) {
			c.out = c.out[:0]
			if cap(c.out) > 1<<16 {
				c.out = nil
			}
			return
		}
		if err == nil && (c.werr == nil || c.werr == syscall.EAGAIN) {
			if c.wn > 0 {
				c.out = c.out[:copy(c.out, c.out[c.wn:])]
			}
		} else {
			// Broken socket: drop the output; the reader reports the close.
			c.out = c.out[:0]
			_ = c.nc.Close()
			c.ncClosed = true
			return
		}
	}
	if len(c.out) > highWatermark && !c.blocked && !c.gone {
		c.blocked = true
		c.ep.OnWriteBlocked(true)
	}
	c.writing = true
	go c.writeLoop()
}

func (c *conn) writeLoop() {
	lp := c.lp
	var data []byte
	for {
		lp.mu.Lock()
		data, c.out = c.out, data[:0]
		if len(data) == 0 {
			c.writing = false
			if c.blocked && !c.gone {
				c.blocked = false
				c.ep.OnWriteBlocked(false)
			}
			if c.closing {
				lp.closeNC(c)
			}
			lp.flush()
			lp.mu.Unlock()
			return
		}
		if c.blocked && len(data) < lowWatermark && !c.gone {
			c.blocked = false
			c.ep.OnWriteBlocked(false)
			lp.flush()
		}
		lp.mu.Unlock()
		_, err := c.nc.Write(data)
		if err != nil {
			lp.mu.Lock()
			c.writing = false
			c.out = c.out[:0]
			lp.closeNC(c)
			lp.mu.Unlock()
			return
		}
	}
}
