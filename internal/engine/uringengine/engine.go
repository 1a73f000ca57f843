//go:build linux

package uringengine

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/poolmgr/poolmgr/internal/proxy"
	"github.com/poolmgr/poolmgr/internal/uring"
)

const (
	highWatermark = 1 << 20
	lowWatermark  = 256 << 10
	tickInterval  = 100 * time.Millisecond
	lingerTimeout = 15 * time.Second // a closing connection whose peer does not read
	refuseTimeout = 2 * time.Second  // how long a refused client may take to send its startup packet
	listenBacklog = 65535            // the kernel clamps it to net.core.somaxconn
)

// Options tunes the engine. Zero values pick the defaults.
type Options struct {
	// FileSlots is the size of each loop's registered file table (direct
	// descriptors: client and server sockets). Default: the hard
	// RLIMIT_NOFILE, at most 1<<20. The kernel caps it at the soft
	// RLIMIT_NOFILE (raised to the hard limit at start).
	FileSlots uint32
	// ServerSlots slots are never given to clients, so server connections
	// can still be opened when clients fill the table.
	// Default min(FileSlots/8, 1024).
	ServerSlots uint32
	// RefuseSlots slots are used only to answer 53300 to clients when the
	// table is full. Default 4.
	RefuseSlots uint32
	// BufSize and BufCount size each loop's provided receive buffers.
	// Default 16 KiB x 1024. BufCount must be a power of two.
	BufSize  int
	BufCount uint16
	// SQEntries and CQEntries size each ring. Default 2048 and 16384.
	SQEntries uint32
	CQEntries uint32
	// Accepts is the number of accept requests each loop keeps armed.
	// Default 4.
	Accepts int
	// MaxConns is the number of client slots a loop may hold over all its
	// rings: when a ring's table (FileSlots) is full, the loop creates
	// another ring, up to what MaxConns needs (at most 256 rings).
	// 0: one ring.
	MaxConns int
	// RawWait makes each loop block in io_uring_enter through a raw system
	// call (uring.Options.RawWait): no P hand-off and no sysmon polling per
	// wait. Set it only when GOMAXPROCS exceeds the number of loops, so a P
	// stays free for the rest of the process.
	RawWait bool
}

func (o Options) withDefaults() (Options, error) {
	if o.FileSlots == 0 {
		var rl unix.Rlimit
		if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
			return o, fmt.Errorf("getrlimit(RLIMIT_NOFILE): %w", err)
		}
		o.FileSlots = uint32(min(rl.Max, 1<<20))
	}
	if o.RefuseSlots == 0 {
		o.RefuseSlots = 4
	}
	if o.ServerSlots == 0 {
		o.ServerSlots = min(o.FileSlots/8, 1024)
	}
	if o.FileSlots < o.RefuseSlots+o.ServerSlots+2 {
		return o, fmt.Errorf("file table of %d slots is too small (%d refusal + %d server slots are reserved)",
			o.FileSlots, o.RefuseSlots, o.ServerSlots)
	}
	if o.BufSize == 0 {
		o.BufSize = 16 << 10
	}
	if o.BufCount == 0 {
		o.BufCount = 1024
	}
	if o.SQEntries == 0 {
		o.SQEntries = 2048
	}
	if o.CQEntries == 0 {
		o.CQEntries = 16384
	}
	if o.Accepts <= 0 {
		o.Accepts = 4
	}
	o.Accepts = min(o.Accepts, maxAccepts)
	return o, nil
}

// Engine runs the core's loops on io_uring.
type Engine struct {
	loops  []*loop
	log    *slog.Logger
	dialTO func() time.Duration
	opts   Options

	mu    sync.Mutex
	lfd   int // listening socket, -1 when none
	laddr net.Addr

	stopOnce    sync.Once
	stop        chan struct{}
	stopPending atomic.Int32 // loops yet to stop accepting
	closeOnce   sync.Once
	fatal       chan error
	wg          sync.WaitGroup
}

// New returns an engine running the given core loops with default Options.
// It fails (with the reason) when io_uring is not usable here.
func New(cores []*proxy.Loop, log *slog.Logger, dialTimeout func() time.Duration) (*Engine, error) {
	return NewWithOptions(cores, log, dialTimeout, Options{})
}

// NewWithOptions is New with explicit Options. Each loop's ring, file table
// and buffers are created on the loop's own thread before it returns.
func NewWithOptions(cores []*proxy.Loop, log *slog.Logger, dialTimeout func() time.Duration, o Options) (*Engine, error) {
	if len(cores) == 0 {
		return nil, errors.New("io_uring engine: no loops")
	}
	if log == nil {
		log = slog.Default()
	}
	if dialTimeout == nil {
		dialTimeout = func() time.Duration { return 15 * time.Second }
	}
	if _, err := uring.Probe(); err != nil {
		return nil, err
	}
	o, err := o.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("io_uring engine: %w", err)
	}
	e := &Engine{log: log, dialTO: dialTimeout, opts: o, lfd: -1,
		stop: make(chan struct{}), fatal: make(chan error, len(cores))}
	for i, c := range cores {
		lp := newLoop(e, i, c)
		c.Bind(lp, lp)
		e.loops = append(e.loops, lp)
	}
	for _, lp := range e.loops {
		ready := make(chan error, 1)
		e.wg.Add(1)
		go lp.run(ready)
		if err := <-ready; err != nil {
			e.Close()
			return nil, fmt.Errorf("io_uring engine: loop %d: %w", lp.id, err)
		}
	}
	return e, nil
}

// Listen binds the client listener; every loop starts accepting on it.
func (e *Engine) Listen(addr string) error {
	fd, la, err := listenSocket(addr)
	if err != nil {
		return err
	}
	e.mu.Lock()
	if e.lfd >= 0 {
		e.mu.Unlock()
		unix.Close(fd)
		return errors.New("io_uring engine: Listen called twice")
	}
	e.lfd, e.laddr = fd, la
	e.mu.Unlock()
	for _, lp := range e.loops {
		lp.Post(func() { lp.startAccepting(fd) })
	}
	return nil
}

// Addr returns the listener's address (nil before Listen).
func (e *Engine) Addr() net.Addr {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.laddr
}

// Run blocks until StopAccepting is called (nil) or a loop fails (its error).
// The loops keep serving connections after Run returns, until Close.
func (e *Engine) Run() error {
	select {
	case <-e.stop:
		return nil
	case err := <-e.fatal:
		return err
	}
}

// StopAccepting cancels every loop's accepts and closes the listener
// (graceful shutdown starts with this). Existing connections are served on.
func (e *Engine) StopAccepting() {
	e.stopOnce.Do(func() {
		close(e.stop)
		// The listener is closed by the last loop that has stopped
		// arming accepts on it (never under a loop that might still use
		// the fd number), or by Close.
		e.stopPending.Store(int32(len(e.loops)))
		var wg sync.WaitGroup
		for _, lp := range e.loops {
			wg.Add(1)
			lp.Post(func() {
				lp.stopAccepting()
				if e.stopPending.Add(-1) == 0 {
					e.closeListener()
				}
				wg.Done()
			})
		}
		waitTimeout(&wg, 2*time.Second)
	})
}

func (e *Engine) closeListener() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.lfd >= 0 {
		// In-flight accepts hold their own reference: the socket stops
		// listening once the loops' cancels have completed.
		unix.Close(e.lfd)
		e.lfd = -1
	}
}

// Drained reports whether every loop has no clients left.
func (e *Engine) Drained() bool {
	for _, lp := range e.loops {
		if !lp.drained.Load() {
			return false
		}
	}
	return true
}

// Each runs fn on every loop's own thread, one loop after the other, and
// returns when all have run. Never call it from a loop's thread (from core
// code): it would wait for itself.
func (e *Engine) Each(fn func(*proxy.Loop)) {
	for _, lp := range e.loops {
		done := make(chan struct{})
		lp.Post(func() { fn(lp.core); close(done) })
		select {
		case <-done:
		case <-lp.exited:
		}
	}
}

// Close stops accepting, stops every loop and releases the rings (every
// connection is closed abruptly). For tests and embedding; poolmgr itself
// simply exits.
func (e *Engine) Close() {
	e.closeOnce.Do(func() {
		e.stopOnce.Do(func() { close(e.stop) })
		for _, lp := range e.loops {
			lp.Post(func() { lp.exit = true })
		}
		e.wg.Wait()
		e.closeListener()
	})
}

func (e *Engine) fail(err error) {
	select {
	case e.fatal <- err:
	default:
	}
}

func waitTimeout(wg *sync.WaitGroup, d time.Duration) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
	}
}
