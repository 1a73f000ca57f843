package metrics

import (
	"time"

	"github.com/poolmgr/poolmgr/internal/proxy"
)

// InspectTimeout bounds one pass over the loops (a stopped or stuck engine
// must not hang a scrape or an admin command).
const InspectTimeout = 3 * time.Second

// Snapshot is the state of the whole proxy at one instant: per-loop counters
// summed, connection counts by state, and the backends.
type Snapshot struct {
	Time  time.Time
	Loops []proxy.LoopCounts // per loop, in loop order

	Stats          proxy.LoopStats // summed over the loops
	Clients        [proxy.NumClientStates]int
	Servers        [proxy.NumServerStates]int
	ByBackend      map[string]*[proxy.NumServerStates]int // server connections by backend address and state
	Pools          int                                    // (database, user) pools, all loops
	PausedPools    int
	WaitingClients int
	MaxWait        time.Duration // the longest a queued client has waited so far
	Backends       []BackendStatus
	ShuttingDown   bool
}

// BackendStatus is what is known about one configured backend.
type BackendStatus struct {
	Addr     string
	Role     string // primary | standby | unknown
	Health   string // up | down | unknown (no health check or connection yet)
	Healthy  bool   // for poolmgr_backend_up: health checks pass and no failed connect now
	Checked  bool   // a health check has run
	Lag      time.Duration
	HasLag   bool   // Lag is known (a health-checked standby)
	Weight   string // routing weight ("n/a" until routing lands)
	State    string // active | draining | down | removed
	Open     int    // server connections open or opening, all loops
	Busy     int    // server connections linked to a client
	Draining bool
}

// LagText is the lag for tables: seconds with millisecond precision, or "n/a".
func (b BackendStatus) LagText() string {
	if !b.HasLag {
		return "n/a"
	}
	return formatSeconds(b.Lag)
}

// Take inspects every loop (InspectTimeout) and returns a Snapshot.
func Take(sh *proxy.Shared) (*Snapshot, error) {
	loops := sh.Loops()
	idx := make(map[*proxy.Loop]int, len(loops))
	for i, l := range loops {
		idx[l] = i
	}
	// One slot per loop: each inspection writes only its own (see InspectWithin).
	counts := make([]proxy.LoopCounts, len(loops))
	err := sh.InspectWithin(InspectTimeout, func(l *proxy.Loop) {
		if i, ok := idx[l]; ok {
			counts[i] = l.Counts()
		}
	})
	if err != nil {
		return nil, err
	}
	s := &Snapshot{Time: time.Now(), Loops: counts, ByBackend: map[string]*[proxy.NumServerStates]int{},
		ShuttingDown: sh.ShuttingDown()}
	for _, lc := range counts {
		addStats(&s.Stats, &lc.Stats)
		for k, n := range lc.Clients {
			s.Clients[k] += n
		}
		for k, n := range lc.Servers {
			s.Servers[k] += n
		}
		for _, bc := range lc.Backends {
			m := s.ByBackend[bc.Backend.Addr]
			if m == nil {
				m = new([proxy.NumServerStates]int)
				s.ByBackend[bc.Backend.Addr] = m
			}
			for k, n := range bc.States {
				m[k] += n
			}
		}
		s.WaitingClients += lc.WaitingClients
		if d := time.Duration(lc.MaxWaitNanos); d > s.MaxWait {
			s.MaxWait = d
		}
	}
	for _, p := range sh.Pools() {
		s.Pools++
		if p.Paused() {
			s.PausedPools++
		}
	}
	s.Backends = Backends(sh, s.Time)
	return s, nil
}

// Backends describes the configured backends (no loop inspection needed).
func Backends(sh *proxy.Shared, now time.Time) []BackendStatus {
	bs := sh.Backends()
	out := make([]BackendStatus, 0, len(bs))
	for _, b := range bs {
		st := BackendStatus{Addr: b.Addr, Role: b.Role().String(), Open: b.Open(), Busy: b.Busy(),
			Checked: b.Checked(), Draining: b.Draining(), Weight: "n/a", State: "active"}
		down := b.DownUntil().After(now)
		switch {
		case st.Checked && !b.Healthy(), down:
			st.Health = "down"
		case st.Checked, st.Open > 0:
			st.Health = "up"
		default:
			st.Health = "unknown"
		}
		st.Healthy = st.Health == "up"
		if st.Checked && b.Role() == proxy.RoleStandby {
			st.Lag, st.HasLag = b.Lag(), true
		} else if st.Checked && b.Role() == proxy.RolePrimary {
			st.HasLag = true
		}
		switch {
		case b.Removed():
			st.State = "removed"
		case st.Draining:
			st.State = "draining"
		case st.Health == "down":
			st.State = "down"
		}
		out = append(out, st)
	}
	return out
}

// PrimaryReady reports whether a backend is known to be the primary and is
// healthy (the /readyz condition besides the listener).
func PrimaryReady(sh *proxy.Shared, now time.Time) (bool, string) {
	for _, b := range Backends(sh, now) {
		if b.Role == "primary" && b.Health != "down" && b.State != "removed" {
			return true, b.Addr
		}
	}
	return false, ""
}

func addStats(dst, src *proxy.LoopStats) {
	dst.ClientsAccepted += src.ClientsAccepted
	dst.Transactions += src.Transactions
	dst.Queries += src.Queries
	dst.ServerLogins += src.ServerLogins
	dst.LoginsDeferred += src.LoginsDeferred
	dst.ClientBytes += src.ClientBytes
	dst.ServerBytes += src.ServerBytes
	dst.Waits += src.Waits
	dst.WaitNanos += src.WaitNanos
	dst.XactNanos += src.XactNanos
	for i := range dst.WaitHist {
		dst.WaitHist[i] += src.WaitHist[i]
		dst.XactHist[i] += src.XactHist[i]
	}
	for i := range dst.Closes {
		dst.Closes[i] += src.Closes[i]
	}
}

// HistCount is the number of observations in a stats histogram.
func HistCount(h *[proxy.HistBuckets]uint64) uint64 {
	var n uint64
	for _, v := range h {
		n += v
	}
	return n
}

// Assignments is how many times a server was given to a client and
// released again (one per transaction in transaction mode).
func (s *Snapshot) Assignments() uint64 { return HistCount(&s.Stats.XactHist) }

// ClientsTotal is the number of client connections (admin sessions included).
func (s *Snapshot) ClientsTotal() int {
	n := 0
	for k, v := range s.Clients {
		if proxy.ClientState(k) != proxy.ClientClosed {
			n += v
		}
	}
	return n
}

// ServersTotal is the number of server connections open or opening.
func (s *Snapshot) ServersTotal() int {
	n := 0
	for k, v := range s.Servers {
		if proxy.ServerState(k) != proxy.ServerClosed {
			n += v
		}
	}
	return n
}

func formatSeconds(d time.Duration) string {
	return trimFloat(d.Seconds(), 3)
}
