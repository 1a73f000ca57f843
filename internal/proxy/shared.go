package proxy

import (
	"crypto/rand"
	"encoding/binary"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/poolmgr/poolmgr/internal/auth"
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
	downUntil atomic.Int64 // unix nanos; connect attempts skip it before then
	removed   atomic.Bool
}

// Role returns the backend's detected role.
func (b *Backend) Role() Role { return Role(b.role.Load()) }

// Open returns the number of server connections open or opening to b.
func (b *Backend) Open() int { return int(b.open.Load()) }

// PoolShared is the cross-loop part of a (database, user) pool.
type PoolShared struct {
	Database, User string
	open           atomic.Int32                      // server connections of this pool, all loops
	creds          atomic.Pointer[auth.BackendCreds] // how to log in to the backend as User
	welcome        atomic.Pointer[[]byte]            // ParameterStatus messages learned from a login
	paused         atomic.Bool                       // PAUSE: no server is handed out; clients queue
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

	mu    sync.Mutex
	pools map[poolKey]*PoolShared

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
		if b.Role() == RolePrimary && b.downUntil.Load() <= now {
			return b
		}
	}
	for _, b := range bs {
		if b.Role() == RoleUnknown && b.downUntil.Load() <= now {
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
