package health

import (
	"context"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/poolmgr/poolmgr/internal/config"
	"github.com/poolmgr/poolmgr/internal/proxy"
)

// BackendLister is what the Checker reads the backends from;
// *proxy.Shared implements it.
type BackendLister interface {
	Backends() []*proxy.Backend
}

// Checker probes the backends periodically; see the package documentation.
type Checker struct {
	src   BackendLister
	log   *slog.Logger
	probe ProbeFunc
	pgx   *PgxProber // the default prober, nil when WithProbe was used

	mu        sync.Mutex
	set       Settings
	inflight  map[*proxy.Backend]bool
	state     map[*proxy.Backend]*backendState
	disabled  string // the Disabled reason last logged ("-" before any)
	primaries string // healthy primaries last warned about

	wg      sync.WaitGroup // running probes
	wake    chan struct{}
	cancel  context.CancelFunc
	done    chan struct{}
	started bool
}

// backendState is what the Checker last logged about a backend.
type backendState struct {
	down      bool       // logged as down
	role      proxy.Role // detected role, RoleUnknown before the first success
	failing   bool       // a failure streak is under way
	lagging   bool       // logged as lagging
	pinWarned bool       // pinned role contradicts the detected one (logged)
	configErr string     // last misconfiguration logged
	cutOff    bool       // standby cut off from a live primary (logged)
	lsn       uint64     // LSN of the last successful check
	okAt      time.Time  // when the last successful check finished
	timeline  uint32     // primary: its timeline at the last successful check
	stale     bool       // a primary on an older timeline than another one (marked down)
}

// Option changes a new Checker.
type Option func(*Checker)

// WithProbe replaces the pgx prober (tests).
func WithProbe(f ProbeFunc) Option { return func(c *Checker) { c.probe = f } }

// New returns a Checker for the backends of src with settings from cfg. It
// applies the pinned roles at once; Start begins the checks.
func New(src BackendLister, cfg *config.Config, log *slog.Logger, opts ...Option) *Checker {
	return NewWithSettings(src, SettingsFromConfig(cfg), log, opts...)
}

// NewWithSettings is New with settings built by the caller.
func NewWithSettings(src BackendLister, s Settings, log *slog.Logger, opts ...Option) *Checker {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Checker{
		src:      src,
		log:      log,
		inflight: map[*proxy.Backend]bool{},
		state:    map[*proxy.Backend]*backendState{},
		disabled: "-",
		wake:     make(chan struct{}, 1),
	}
	for _, o := range opts {
		o(c)
	}
	if c.probe == nil {
		c.pgx = NewPgxProber()
		c.probe = c.pgx.Probe
	}
	c.UpdateSettings(s)
	return c
}

// Update replaces the settings with those of cfg (SIGHUP reload). Pinned
// roles apply at once, the rest from the next round, which starts now.
func (c *Checker) Update(cfg *config.Config) { c.UpdateSettings(SettingsFromConfig(cfg)) }

// UpdateSettings is Update with settings built by the caller.
func (c *Checker) UpdateSettings(s Settings) {
	c.mu.Lock()
	c.set = s
	c.noteDisabledLocked(s)
	c.mu.Unlock()
	applyPins(c.src.Backends(), s)
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Settings returns the current settings.
func (c *Checker) Settings() Settings {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.set
}

// Enabled reports whether checks run, and if not, why.
func (c *Checker) Enabled() (bool, string) {
	s := c.Settings()
	return s.Disabled == "", s.Disabled
}

func (c *Checker) noteDisabledLocked(s Settings) {
	if s.Disabled == c.disabled {
		return
	}
	c.disabled = s.Disabled
	switch {
	case s.Disabled == "":
		c.log.Info("health: checks enabled", "user", s.User, "dbname", s.DBName, "interval", s.Interval,
			"timeout", s.Timeout, "failures", s.Failures)
	case s.Interval <= 0:
		c.log.Info("health: checks disabled", "reason", s.Disabled)
	default:
		c.log.Warn("health: checks disabled; backends stay healthy and roles are detected from server logins only",
			"reason", s.Disabled)
	}
}

func applyPins(bs []*proxy.Backend, s Settings) {
	for _, b := range bs {
		b.Pin(s.Pins[b.Addr]) // RoleUnknown when not pinned
	}
}

// Start runs rounds in a goroutine until Stop.
func (c *Checker) Start() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started {
		return
	}
	c.started = true
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	c.done = make(chan struct{})
	go c.loop(ctx)
}

// Stop ends the rounds, waits for running probes (they are cancelled) and
// closes the checker's connections.
func (c *Checker) Stop() {
	c.mu.Lock()
	started := c.started
	c.started = false
	c.mu.Unlock()
	if started {
		c.cancel()
		<-c.done
	}
	c.wg.Wait()
	if c.pgx != nil {
		c.pgx.Close()
	}
}

func (c *Checker) loop(ctx context.Context) {
	defer close(c.done)
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		s := c.Settings()
		c.round(ctx, s)
		if s.Interval > 0 && s.Disabled == "" {
			t.Reset(s.Interval)
		} else {
			t.Reset(time.Hour) // nothing to do until Update
		}
		select {
		case <-ctx.Done():
			return
		case <-c.wake:
		case <-t.C:
		}
	}
}

// CheckOnce runs one round and waits for its probes (tests, tools).
func (c *Checker) CheckOnce(ctx context.Context) {
	c.round(ctx, c.Settings()).Wait()
}

// round pins roles and starts a probe for every backend that has none
// running. It returns at once; the WaitGroup is done when its probes are.
func (c *Checker) round(ctx context.Context, s Settings) *sync.WaitGroup {
	var wg sync.WaitGroup
	bs := c.src.Backends()
	applyPins(bs, s)
	c.prune(bs)
	if s.Disabled != "" {
		return &wg
	}
	c.checkPrimaries()
	for _, b := range bs {
		c.mu.Lock()
		busy := c.inflight[b]
		c.inflight[b] = true
		c.mu.Unlock()
		if busy {
			continue
		}
		wg.Add(1)
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			defer wg.Done()
			c.check(ctx, b, s)
		}()
	}
	return &wg
}

// prune forgets backends no longer listed and closes their connections.
func (c *Checker) prune(bs []*proxy.Backend) {
	live := make(map[*proxy.Backend]bool, len(bs))
	addrs := make(map[string]bool, len(bs))
	for _, b := range bs {
		live[b] = true
		addrs[b.Addr] = true
	}
	c.mu.Lock()
	for b := range c.state {
		if !live[b] && !c.inflight[b] {
			delete(c.state, b)
		}
	}
	c.mu.Unlock()
	if c.pgx != nil {
		c.pgx.Retain(func(a string) bool { return addrs[a] })
	}
}

func (c *Checker) check(ctx context.Context, b *proxy.Backend, s Settings) {
	defer func() {
		c.mu.Lock()
		delete(c.inflight, b)
		c.mu.Unlock()
	}()
	// A primary's LSN known before the probe starts is WAL that exists when it runs.
	primaryLSN := c.livePrimaryLSN(b)
	at := time.Now()
	pctx, cancel := context.WithTimeout(ctx, s.Timeout)
	smp, err := c.probe(pctx, Target{Addr: b.Addr, User: s.User, Password: s.Password, DBName: s.DBName})
	cancel()
	if ctx.Err() != nil {
		return // stopping: the result says nothing about the backend
	}
	if err != nil && IsConfigError(err) {
		c.noteConfigError(b, err)
		return
	}
	if err != nil {
		b.ReportHealth(proxy.HealthReport{OK: false, At: at}, s.Failures)
		c.noteFailure(b, err)
		return
	}
	if !smp.InRecovery && smp.Timeline > 0 && s.Pins[b.Addr] != proxy.RolePrimary {
		if addr, tli := c.newerPrimary(b, smp.Timeline); addr != "" {
			// A primary on an older timeline than another: the old primary of a
			// failover, back without being rebuilt. Writes to it would be lost.
			b.ReportHealth(proxy.HealthReport{OK: false, At: at}, 1)
			c.noteStale(b, smp, addr, tli)
			return
		}
	}
	lag, cutOff := StandbyLag(smp, primaryLSN)
	rep := proxy.HealthReport{OK: true, InRecovery: smp.InRecovery, Lag: lag, At: at}
	if smp.InRecovery {
		rep.ReplayLSN = smp.LSN
	} else {
		rep.PrimaryLSN = smp.LSN
	}
	b.ReportHealth(rep, s.Failures)
	c.noteSuccess(b, smp, lag, cutOff, s)
}

// newerPrimary returns a backend other than self whose last successful check
// found it a primary on a timeline after tli (it may be down since: a
// diverged old primary stays stale until the newer one leaves the backend
// list or stops being a primary).
func (c *Checker) newerPrimary(self *proxy.Backend, tli uint32) (string, uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	addr, best := "", tli
	for b, st := range c.state {
		if b != self && st.role == proxy.RolePrimary && !st.stale && st.timeline > best {
			addr, best = b.Addr, st.timeline
		}
	}
	return addr, best
}

func (c *Checker) noteStale(b *proxy.Backend, smp Sample, newer string, newerTLI uint32) {
	c.mu.Lock()
	st := c.stateLocked(b)
	st.configErr = ""
	first := !st.stale
	st.stale = true
	st.down = true
	st.failing = true
	st.role = proxy.RolePrimary
	st.timeline = smp.Timeline
	c.mu.Unlock()
	if first {
		c.log.Warn("health: stale primary: not in recovery but on an older timeline than another primary; marked down (rebuild it as a standby, or pin it)",
			"backend", b.Addr, "timeline", smp.Timeline, "newer", newer, "newer_timeline", newerTLI)
	}
}

// livePrimaryLSN returns the highest LSN reported by a backend (other than
// self) whose last check found it a healthy primary, or 0.
func (c *Checker) livePrimaryLSN(self *proxy.Backend) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var lsn uint64
	for b, st := range c.state {
		if b != self && st.role == proxy.RolePrimary && !st.down && !st.failing && !st.stale && !st.okAt.IsZero() {
			lsn = max(lsn, st.lsn)
		}
	}
	return lsn
}

func (c *Checker) stateLocked(b *proxy.Backend) *backendState {
	st := c.state[b]
	if st == nil {
		st = &backendState{}
		c.state[b] = st
	}
	return st
}

func (c *Checker) noteConfigError(b *proxy.Backend, err error) {
	c.mu.Lock()
	st := c.stateLocked(b)
	msg := err.Error()
	first := st.configErr != msg
	st.configErr = msg
	c.mu.Unlock()
	if first {
		c.log.Error("health: check misconfigured (not counted as a failure)", "backend", b.Addr, "err", err)
	}
}

func (c *Checker) noteFailure(b *proxy.Backend, err error) {
	c.mu.Lock()
	st := c.stateLocked(b)
	st.configErr = ""
	firstFailure := !st.failing
	st.failing = true
	nowDown := !b.Healthy() && !st.down
	if nowDown {
		st.down = true
	}
	c.mu.Unlock()
	switch {
	case nowDown:
		c.log.Warn("health: backend down", "backend", b.Addr, "failures", b.Failures(), "err", err)
	case firstFailure:
		c.log.Info("health: check failed", "backend", b.Addr, "failures", b.Failures(), "err", err)
	}
}

func (c *Checker) noteSuccess(b *proxy.Backend, smp Sample, lag time.Duration, cutOff bool, s Settings) {
	role := proxy.RolePrimary
	if smp.InRecovery {
		role = proxy.RoleStandby
	}
	c.mu.Lock()
	st := c.stateLocked(b)
	st.configErr = ""
	st.failing = false
	st.lsn = smp.LSN
	st.okAt = time.Now()
	st.timeline = smp.Timeline
	st.stale = false
	cutOffChanged := cutOff != st.cutOff
	st.cutOff = cutOff
	wasDown := st.down
	st.down = false
	prevRole := st.role
	st.role = role
	lagging := role == proxy.RoleStandby && s.MaxLag > 0 && lag > s.MaxLag
	lagChanged := lagging != st.lagging
	st.lagging = lagging
	pinned := s.Pins[b.Addr]
	pinMismatch := pinned != proxy.RoleUnknown && pinned != role
	pinChanged := pinMismatch != st.pinWarned
	st.pinWarned = pinMismatch
	c.mu.Unlock()

	switch {
	case prevRole == proxy.RoleUnknown:
		c.log.Info("health: backend role", "backend", b.Addr, "role", role.String(),
			"lsn", FormatLSN(smp.LSN), "lag", lag)
	case prevRole != role:
		c.log.Warn("health: role changed", "backend", b.Addr, "from", prevRole.String(), "to", role.String(),
			"lsn", FormatLSN(smp.LSN))
	}
	if wasDown {
		c.log.Info("health: backend up", "backend", b.Addr, "role", role.String())
	}
	if lagChanged {
		if lagging {
			c.log.Warn("health: replica lagging", "backend", b.Addr, "lag", lag, "max_replica_lag", s.MaxLag)
		} else {
			c.log.Info("health: replica caught up", "backend", b.Addr, "lag", lag)
		}
	}
	if cutOffChanged {
		if cutOff {
			c.log.Warn("health: replica cut off: no WAL receiver while the primary is ahead; its lag is the age of its last replayed transaction",
				"backend", b.Addr, "replay_lsn", FormatLSN(smp.LSN), "lag", lag)
		} else {
			c.log.Info("health: replica streaming again", "backend", b.Addr)
		}
	}
	if pinChanged && pinMismatch {
		c.log.Warn("health: pinned role differs from the detected one; the pinned role is used",
			"backend", b.Addr, "pinned", pinned.String(), "detected", role.String())
	}
}

// checkPrimaries warns (once per set) when more than one backend passed its
// last check as a primary. It runs at the start of a round, when the checks
// of the previous one are in: within a round, a promoted standby may report
// before the old primary's failure does.
func (c *Checker) checkPrimaries() {
	var out []string
	c.mu.Lock()
	for b, st := range c.state {
		if st.role == proxy.RolePrimary && !st.down && !st.failing && !b.Draining() {
			out = append(out, b.Addr)
		}
	}
	sort.Strings(out)
	key := ""
	if len(out) > 1 {
		key = strings.Join(out, ",")
	}
	warn := key != "" && key != c.primaries
	c.primaries = key
	c.mu.Unlock()
	if warn {
		c.log.Warn("health: several primaries: more than one healthy backend is not in recovery", "backends", key)
	}
}
