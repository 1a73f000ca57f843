package proxy

import (
	"crypto/rand"
	"encoding/binary"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/poolmgr/poolmgr/internal/auth"
	"github.com/poolmgr/poolmgr/internal/cache"
	"github.com/poolmgr/poolmgr/internal/route"
)

// PoolMode is how long a client keeps a server connection.
type PoolMode uint8

// Pool modes.
const (
	ModeTransaction PoolMode = iota
	ModeSession
	ModeStatement
)

// AuthType is the client authentication method.
type AuthType uint8

// Client authentication methods.
const (
	AuthScram AuthType = iota
	AuthMD5
	AuthTrust
)

// Options is an immutable snapshot of the settings the core uses. A reload
// swaps the whole snapshot.
type Options struct {
	PoolMode             PoolMode
	PoolSize             int // per (database, user) across loops
	MaxClients           int
	MaxServersPerBackend int
	MaxServerLogins      int // server connections being opened (connect+login) at once per backend; 0: no limit
	MaxMessageSize       int
	ResetQuery           string

	MaxPreparedStatements       int // per server connection (LRU beyond)
	MaxClientPreparedStatements int // per client

	QueryWaitTimeout     time.Duration
	ServerIdleTimeout    time.Duration
	ServerLifetime       time.Duration
	ServerConnectTimeout time.Duration
	ServerLoginRetry     time.Duration
	IdleTxTimeout        time.Duration
	ClientLoginTimeout   time.Duration
	ShutdownTimeout      time.Duration

	AuthType AuthType
	Secrets  map[string]auth.Secret // from auth_file

	// auth_query: secrets of users missing from auth_file are looked up on
	// the primary, logged in as AuthUser (whose password must be in auth_file).
	// Routing (read/write splitting).
	Routing        route.Algo
	HashKey        HashKey
	PrimaryReads   bool          // the primary also takes reads
	MaxReplicaLag  time.Duration // replicas lagging more leave the read pool (0 = no limit)
	ReadYourWrites bool          // after a write, a client's reads wait for replicas to catch up
	DefaultRoute   RouteMode
	UserRoutes     map[string]RouteMode
	DBRoutes       map[string]RouteMode

	// Query result cache (nil: disabled).
	Cache              *cache.Cache
	CacheMaxEntryBytes int

	AdminUsers []string // may use the admin console's commands
	StatsUsers []string // may use its SHOW commands

	AuthUser   string
	AuthQuery  string
	AuthDBName string

	Log               *slog.Logger
	LogConnections    bool
	LogDisconnections bool
}

// Role of a backend as detected from its server connections.
type Role int32

// Backend roles.
const (
	RoleUnknown Role = iota
	RolePrimary
	RoleStandby
)

func (r Role) String() string {
	switch r {
	case RolePrimary:
		return "primary"
	case RoleStandby:
		return "standby"
	}
	return "unknown"
}

// Backend is one PostgreSQL server from the config's backends list.
type Backend struct {
	Addr      string
	role      atomic.Int32
	open      atomic.Int32 // server connections open or opening, all loops
	logins    atomic.Int32 // server connections connecting or logging in, all loops (MaxServerLogins)
	busy      atomic.Int32 // server connections linked to a client (least_conn)
	downUntil atomic.Int64 // unix nanos; connect attempts skip it before then
	removed   atomic.Bool
	draining  atomic.Bool

	loginFailures atomic.Int32 // consecutive failed connects/logins (backoff)

	// Written by the health checker (internal/health), read by routing.
	healthy    atomic.Bool  // passes its health checks (true until checked)
	checked    atomic.Bool  // at least one health check finished
	pinned     atomic.Int32 // a Role pinned in the config, RoleUnknown if none
	replayLSN  atomic.Uint64
	lagNanos   atomic.Int64
	failures   atomic.Int32
	lastCheck  atomic.Int64  // unix nanos
	primaryLSN atomic.Uint64 // on the primary: pg_current_wal_lsn() at lastCheck
}

// Role returns the backend's role: pinned in the config, else detected.
func (b *Backend) Role() Role {
	if r := Role(b.pinned.Load()); r != RoleUnknown {
		return r
	}
	return Role(b.role.Load())
}

// Pin fixes the backend's role (config); RoleUnknown un-pins it.
func (b *Backend) Pin(r Role) { b.pinned.Store(int32(r)) }

// Busy returns the server connections to b currently linked to a client.
func (b *Backend) Busy() int { return int(b.busy.Load()) }

// Healthy reports whether b passes its health checks (true before the first check).
func (b *Backend) Healthy() bool { return !b.checked.Load() || b.healthy.Load() }

// Draining reports whether b is being drained (no new transactions).
func (b *Backend) Draining() bool { return b.draining.Load() || b.removed.Load() }

// SetDraining starts (true) or stops (false) draining b.
func (b *Backend) SetDraining(on bool) { b.draining.Store(on) }

// ReplayLSN returns the replica's last replayed WAL position (0 unknown).
func (b *Backend) ReplayLSN() uint64 { return b.replayLSN.Load() }

// Lag returns the replica's replay lag as last measured.
func (b *Backend) Lag() time.Duration { return time.Duration(b.lagNanos.Load()) }

// Failures returns the consecutive failed health checks.
func (b *Backend) Failures() int { return int(b.failures.Load()) }

// LastCheck returns when the last health check finished (unix nanos).
func (b *Backend) LastCheck() int64 { return b.lastCheck.Load() }

// HealthReport is one health check's result for ReportHealth.
type HealthReport struct {
	OK         bool
	InRecovery bool   // pg_is_in_recovery()
	ReplayLSN  uint64 // pg_last_wal_replay_lsn() on a standby
	PrimaryLSN uint64 // pg_current_wal_lsn() on a primary
	Lag        time.Duration
	At         time.Time // when the check's query ran (its start)
}

// ReportHealth records a health check. failuresToFail consecutive failures
// mark the backend unhealthy; one success marks it healthy again.
func (b *Backend) ReportHealth(r HealthReport, failuresToFail int) {
	// lastCheck is stored last: a router that sees the new check time also
	// sees this check's LSN (read-your-writes relies on it).
	defer b.lastCheck.Store(r.At.UnixNano())
	if !r.OK {
		if int(b.failures.Add(1)) >= max(1, failuresToFail) {
			b.healthy.Store(false)
			b.checked.Store(true)
		}
		return
	}
	b.failures.Store(0)
	if r.InRecovery {
		b.role.Store(int32(RoleStandby))
		b.replayLSN.Store(r.ReplayLSN)
		b.lagNanos.Store(int64(r.Lag))
	} else {
		b.role.Store(int32(RolePrimary))
		b.primaryLSN.Store(r.PrimaryLSN)
		b.lagNanos.Store(0)
	}
	b.healthy.Store(true)
	b.checked.Store(true)
	b.downUntil.Store(0)
}

// Open returns the number of server connections open or opening to b.
func (b *Backend) Open() int { return int(b.open.Load()) }

// PoolShared is the cross-loop part of a (database, user) pool.
type PoolShared struct {
	Database, User string
	open           atomic.Int32                      // server connections of this pool, all loops
	creds          atomic.Pointer[auth.BackendCreds] // how to log in to the backend as User
	welcome        atomic.Pointer[[]byte]            // ParameterStatus messages learned from a login
	paused         atomic.Bool                       // PAUSE: no server is handed out; clients queue

	perMu   sync.Mutex
	perOpen map[*Backend]*atomic.Int32
}

// openOn returns the counter of this pool's server connections to b.
func (p *PoolShared) openOn(b *Backend) *atomic.Int32 {
	p.perMu.Lock()
	defer p.perMu.Unlock()
	if p.perOpen == nil {
		p.perOpen = make(map[*Backend]*atomic.Int32)
	}
	n := p.perOpen[b]
	if n == nil {
		n = new(atomic.Int32)
		p.perOpen[b] = n
	}
	return n
}

// Pools returns every pool known to any loop.
func (s *Shared) Pools() []*PoolShared {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*PoolShared, 0, len(s.pools))
	for _, p := range s.pools {
		out = append(out, p)
	}
	return out
}

// SetPaused pauses or resumes every pool of database db ("" = all). Paused
// pools hand out no server: new transactions queue (query_wait_timeout still
// applies) while running ones finish. Loops must be kicked (KickAll) after a resume.
func (s *Shared) SetPaused(db string, paused bool) int {
	s.mu.Lock()
	if s.pausedDBs == nil {
		s.pausedDBs = make(map[string]bool)
	}
	if db == "" {
		clear(s.pausedDBs)
		s.pausedAll = paused
	} else {
		s.pausedDBs[db] = paused
	}
	s.mu.Unlock()
	n := 0
	for _, p := range s.Pools() {
		if db == "" || p.Database == db {
			p.paused.Store(paused)
			n++
		}
	}
	return n
}

// Paused reports whether the pool is paused.
func (p *PoolShared) Paused() bool { return p.paused.Load() }

// Open returns the pool's server connections across loops.
func (p *PoolShared) Open() int { return int(p.open.Load()) }

type poolKey struct{ db, user string }

// Shared is the state all loops of one proxy share.
type Shared struct {
	opts     atomic.Pointer[Options]
	backends atomic.Pointer[[]*Backend]
	clients  atomic.Int64
	shutdown atomic.Bool
	memHigh  atomic.Bool // the process is near its memory limit: refuse new clients

	mu    sync.Mutex
	pools map[poolKey]*PoolShared

	pausedAll bool            // PAUSE without a database (under mu)
	pausedDBs map[string]bool // PAUSE db (under mu)

	cancels cancelRegistry
	loops   []*Loop
	admin   AdminHandler
}

// NewShared returns the shared state for the given options and backend addresses.
func NewShared(o *Options, backends []string) *Shared {
	s := &Shared{pools: make(map[poolKey]*PoolShared)}
	s.cancels.init()
	s.opts.Store(o)
	s.SetBackends(backends)
	return s
}

// Options returns the current settings snapshot.
func (s *Shared) Options() *Options { return s.opts.Load() }

// SetOptions replaces the settings (SIGHUP reload).
func (s *Shared) SetOptions(o *Options) { s.opts.Store(o) }

// Backends returns the current backends.
func (s *Shared) Backends() []*Backend { return *s.backends.Load() }

// SetBackends replaces the backend list, keeping the state of addresses that stay.
func (s *Shared) SetBackends(addrs []string) {
	var old []*Backend
	if p := s.backends.Load(); p != nil {
		old = *p
	}
	nb := make([]*Backend, 0, len(addrs))
	for _, a := range addrs {
		var b *Backend
		for _, o := range old {
			if o.Addr == a {
				b = o
			}
		}
		if b == nil {
			b = &Backend{Addr: a}
		}
		nb = append(nb, b)
	}
	for _, o := range old {
		keep := false
		for _, b := range nb {
			keep = keep || b == o
		}
		if !keep {
			o.removed.Store(true)
		}
	}
	s.backends.Store(&nb)
}

// Clients returns the number of client connections across loops.
func (s *Shared) Clients() int { return int(s.clients.Load()) }

// SetMemoryHigh tells the loops whether the process is near its memory
// limit (new clients are then refused with 53300).
func (s *Shared) SetMemoryHigh(v bool) { s.memHigh.Store(v) }

// StartShutdown makes loops refuse new clients and release servers as they go idle.
func (s *Shared) StartShutdown() { s.shutdown.Store(true) }

// ShuttingDown reports whether StartShutdown was called.
func (s *Shared) ShuttingDown() bool { return s.shutdown.Load() }

func (s *Shared) pool(db, user string) *PoolShared {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := poolKey{db, user}
	p := s.pools[k]
	if p == nil {
		p = &PoolShared{Database: db, User: user}
		p.paused.Store(s.pausedAll || s.pausedDBs[db]) // PAUSE covers pools created later
		s.pools[k] = p
	}
	return p
}

// pickPrimary chooses the backend for a new server connection: the detected
// primary, else the first backend whose role is unknown, skipping backends
// marked down. It returns nil when none is usable now.
func (s *Shared) pickPrimary(now int64) *Backend {
	bs := s.Backends()
	for _, b := range bs {
		if b.Role() == RolePrimary && b.downUntil.Load() <= now && b.Healthy() && !b.Draining() {
			return b
		}
	}
	for _, b := range bs {
		if b.Role() == RoleUnknown && b.downUntil.Load() <= now && b.Healthy() && !b.Draining() {
			return b
		}
	}
	return nil
}

func random32() uint32 {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return binary.LittleEndian.Uint32(b[:])
}

// ShutdownTimeoutOr returns the graceful shutdown limit (30 s when unset).
func (o *Options) ShutdownTimeoutOr() time.Duration {
	if o.ShutdownTimeout > 0 {
		return o.ShutdownTimeout
	}
	return 30 * time.Second
}
