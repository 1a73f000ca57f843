package metrics

import (
	"math"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/poolmgr/poolmgr/internal/proxy"
)

// Collector exports a Snapshot as Prometheus metrics. The counters are plain
// per-loop fields; they are read on scrape (one inspection per loop), never
// updated for Prometheus on the per-query path.
type Collector struct {
	sh      *proxy.Shared
	version string
	take    func() (*Snapshot, error)

	info, clients, servers, pools, pausedPools, waiting, maxWait, loops *prometheus.Desc
	accepted, queries, xacts, logins, clientBytes, serverBytes, closes  *prometheus.Desc
	loginsDeferred                                                      *prometheus.Desc
	waitHist, xactHist, cacheHits, cacheMisses, cacheEnabled            *prometheus.Desc
	backendUp, backendRole, backendLag, backendOpen, backendBusy        *prometheus.Desc
	backendDraining, scrapeErr                                          *prometheus.Desc
}

// Metric names (also used by the tests and docs).
const (
	Namespace = "poolmgr"
)

// NewCollector returns a collector that inspects sh on every scrape.
func NewCollector(sh *proxy.Shared, version string) *Collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(Namespace+"_"+name, help, labels, nil)
	}
	c := &Collector{sh: sh, version: version,
		info:            d("build_info", "poolmgr version (always 1).", "version"),
		clients:         d("clients", "Client connections by state (startup, auth, welcome = logging in; idle; waiting = queued for a server; active = linked to a server; admin = admin console).", "state"),
		servers:         d("server_connections", "Server connections by backend and state.", "backend", "state"),
		pools:           d("pools", "(database, user) pools."),
		pausedPools:     d("pools_paused", "Pools paused by the admin console (PAUSE)."),
		waiting:         d("waiting_clients", "Clients queued for a server connection."),
		maxWait:         d("client_max_wait_seconds", "How long the oldest queued client has waited so far."),
		loops:           d("loops", "Event loops."),
		accepted:        d("clients_accepted_total", "Client connections accepted."),
		queries:         d("queries_total", "Queries forwarded (simple Query messages and extended-protocol Syncs/Executes)."),
		xacts:           d("transactions_total", "Transactions completed on server connections."),
		logins:          d("server_logins_total", "Successful logins to a backend (new server connections)."),
		loginsDeferred:  d("server_logins_deferred_total", "New server connections postponed because max_server_logins were already being opened to that backend."),
		clientBytes:     d("client_received_bytes_total", "Bytes received from clients."),
		serverBytes:     d("server_received_bytes_total", "Bytes received from backends."),
		closes:          d("disconnects_total", "Client and server connections closed, by close reason.", "reason"),
		waitHist:        d("client_wait_seconds", "Time clients queued for a server connection (clients that had to wait)."),
		xactHist:        d("transaction_duration_seconds", "Time a client held a server connection (per transaction in transaction mode)."),
		cacheHits:       d("cache_hits_total", "Query cache hits (responses served without a backend)."),
		cacheMisses:     d("cache_misses_total", "Query cache misses."),
		cacheEnabled:    d("cache_enabled", "1 if the query cache is active."),
		backendUp:       d("backend_up", "1 if the backend is known to be up (health check or open connections), 0 if down or unknown.", "backend"),
		backendRole:     d("backend_role", "1 for the backend's current role (primary, standby, unknown), 0 for the others.", "backend", "role"),
		backendLag:      d("backend_replication_lag_seconds", "Replay lag of a health-checked standby (0 on the primary).", "backend"),
		backendOpen:     d("backend_open_connections", "Server connections open or opening to the backend, all pools.", "backend"),
		backendBusy:     d("backend_busy_connections", "Server connections to the backend linked to a client.", "backend"),
		backendDraining: d("backend_draining", "1 if the backend is draining (no new transactions).", "backend"),
		scrapeErr:       d("scrape_error", "1 if the loops did not answer this scrape in time (counters then are from the last sample)."),
	}
	c.take = func() (*Snapshot, error) { return Take(sh) }
	return c
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.info, c.clients, c.servers, c.pools, c.pausedPools, c.waiting, c.maxWait,
		c.loops, c.accepted, c.queries, c.xacts, c.logins, c.loginsDeferred, c.clientBytes, c.serverBytes, c.closes, c.waitHist,
		c.xactHist, c.cacheHits, c.cacheMisses, c.cacheEnabled, c.backendUp, c.backendRole, c.backendLag,
		c.backendOpen, c.backendBusy, c.backendDraining, c.scrapeErr} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s, err := c.take()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.scrapeErr, err)
		return
	}
	c.collect(ch, s)
}

func (c *Collector) collect(ch chan<- prometheus.Metric, s *Snapshot) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(c.info, 1, c.version)
	gauge(c.scrapeErr, 0)
	for st := 0; st < proxy.NumClientStates; st++ {
		if proxy.ClientState(st) == proxy.ClientClosed {
			continue
		}
		gauge(c.clients, float64(s.Clients[st]), proxy.ClientState(st).String())
	}
	// Every configured backend gets every state (zeros included), plus any
	// backend that still has connections after a reload removed it.
	seen := map[string]bool{}
	emitBackend := func(addr string) {
		if seen[addr] {
			return
		}
		seen[addr] = true
		var states [proxy.NumServerStates]int
		if m := s.ByBackend[addr]; m != nil {
			states = *m
		}
		for st := 0; st < proxy.NumServerStates; st++ {
			if proxy.ServerState(st) == proxy.ServerClosed {
				continue
			}
			gauge(c.servers, float64(states[st]), addr, proxy.ServerState(st).String())
		}
	}
	for _, b := range s.Backends {
		emitBackend(b.Addr)
	}
	for addr := range s.ByBackend {
		emitBackend(addr)
	}
	gauge(c.pools, float64(s.Pools))
	gauge(c.pausedPools, float64(s.PausedPools))
	gauge(c.waiting, float64(s.WaitingClients))
	gauge(c.maxWait, s.MaxWait.Seconds())
	gauge(c.loops, float64(len(s.Loops)))

	st := &s.Stats
	counter(c.accepted, st.ClientsAccepted)
	counter(c.queries, st.Queries)
	counter(c.xacts, st.Transactions)
	counter(c.logins, st.ServerLogins)
	counter(c.loginsDeferred, st.LoginsDeferred)
	counter(c.clientBytes, st.ClientBytes)
	counter(c.serverBytes, st.ServerBytes)
	for r := 1; r < proxy.ReasonCount; r++ { // 0 is "none"
		counter(c.closes, st.Closes[r], proxy.ReasonName(r))
	}
	ch <- histogram(c.waitHist, &st.WaitHist, st.WaitNanos)
	ch <- histogram(c.xactHist, &st.XactHist, st.XactNanos)
	if qc := c.sh.Options().Cache; qc != nil {
		cs := qc.Stats()
		counter(c.cacheHits, cs.Hits)
		counter(c.cacheMisses, cs.Misses)
		gauge(c.cacheEnabled, 1)
	} else {
		counter(c.cacheHits, 0)
		counter(c.cacheMisses, 0)
		gauge(c.cacheEnabled, 0)
	}

	for _, b := range s.Backends {
		gauge(c.backendUp, b2f(b.Healthy), b.Addr)
		for _, role := range []string{"primary", "standby", "unknown"} {
			gauge(c.backendRole, b2f(b.Role == role), b.Addr, role)
		}
		if b.HasLag {
			gauge(c.backendLag, b.Lag.Seconds(), b.Addr)
		}
		gauge(c.backendOpen, float64(b.Open), b.Addr)
		gauge(c.backendBusy, float64(b.Busy), b.Addr)
		gauge(c.backendDraining, b2f(b.Draining), b.Addr)
	}
}

// HistogramBounds are the upper bounds (seconds) of the exported histograms:
// the core's log2 buckets of microseconds, bucket i holding durations below
// 2^i µs (the last core bucket is everything above and only counts in +Inf).
func HistogramBounds() []float64 {
	out := make([]float64, proxy.HistBuckets-1)
	for i := range out {
		out[i] = math.Ldexp(1, i) / 1e6
	}
	return out
}

// histogram turns a core log2 histogram into a Prometheus const histogram.
func histogram(d *prometheus.Desc, h *[proxy.HistBuckets]uint64, sumNanos uint64) prometheus.Metric {
	bounds := HistogramBounds()
	buckets := make(map[float64]uint64, len(bounds))
	var cum uint64
	for i, le := range bounds {
		cum += h[i]
		buckets[le] = cum
	}
	count := cum + h[proxy.HistBuckets-1]
	return prometheus.MustNewConstHistogram(d, count, float64(sumNanos)/1e9, buckets)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
