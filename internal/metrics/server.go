package metrics

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/poolmgr/poolmgr/internal/proxy"
)

//go:embed web
var webFS embed.FS

// Options configure the HTTP handler.
type Options struct {
	Shared  *proxy.Shared
	Sampler *Sampler // may be nil: snapshots are then taken per request
	Version string
	Engine  string // io engine in use, shown on the page
	Log     *slog.Logger
	// Started is when the process started (uptime); zero means now.
	Started time.Time
}

// Handler serves /metrics, /healthz, /readyz, /api/status and the status page.
type Handler struct {
	o   Options
	reg *prometheus.Registry
	mux *http.ServeMux
}

// NewHandler returns the observability HTTP handler.
func NewHandler(o Options) *Handler {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Started.IsZero() {
		o.Started = time.Now()
	}
	h := &Handler{o: o, reg: prometheus.NewRegistry(), mux: http.NewServeMux()}
	h.reg.MustRegister(NewCollector(o.Shared, o.Version),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	h.mux.Handle("GET /metrics", promhttp.HandlerFor(h.reg, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError, Timeout: 10 * time.Second}))
	h.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	h.mux.HandleFunc("GET /readyz", h.readyz)
	h.mux.HandleFunc("GET /api/status", h.status)
	sub, _ := fs.Sub(webFS, "web")
	static := http.FileServerFS(sub)
	h.mux.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		static.ServeHTTP(w, r)
	})
	return h
}

// Registry returns the Prometheus registry (tests).
func (h *Handler) Registry() *prometheus.Registry { return h.reg }

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// Ready reports the /readyz condition: the proxy is not shutting down (its
// listener accepts) and a backend is known to be the primary and not down.
func Ready(sh *proxy.Shared) (bool, string) {
	if sh.ShuttingDown() {
		return false, "shutting down: the listener no longer accepts"
	}
	ok, addr := PrimaryReady(sh, time.Now())
	if !ok {
		return false, "no reachable primary known yet (a backend's role is learnt from a server login or a health check)"
	}
	return true, "primary " + addr
}

func (h *Handler) readyz(w http.ResponseWriter, r *http.Request) {
	ok, why := Ready(h.o.Shared)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("not ready: " + why + "\n"))
		return
	}
	_, _ = w.Write([]byte("ready: " + why + "\n"))
}

// Status is the /api/status document (the status page's data).
type Status struct {
	Time          int64             `json:"time"` // unix ms of the sample
	Version       string            `json:"version"`
	Engine        string            `json:"engine"`
	UptimeSeconds float64           `json:"uptime_seconds"`
	Ready         bool              `json:"ready"`
	ReadyReason   string            `json:"ready_reason"`
	Loops         int               `json:"loops"`
	Clients       map[string]int    `json:"clients"` // by state, plus "total"
	Servers       map[string]int    `json:"servers"` // by state, plus "total"
	Pools         int               `json:"pools"`
	PausedPools   int               `json:"paused_pools"`
	Waiting       int               `json:"waiting_clients"`
	MaxWaitMs     float64           `json:"max_wait_ms"`
	Totals        StatusTotals      `json:"totals"`
	Rates         StatusRates       `json:"rates"`
	Cache         StatusCache       `json:"cache"`
	Backends      []StatusBackend   `json:"backends"`
	Disconnects   map[string]uint64 `json:"disconnects"` // by close reason, non-zero only
	History       []StatusPoint     `json:"history,omitempty"`
}

// StatusTotals are counters since start.
type StatusTotals struct {
	Transactions    uint64 `json:"transactions"`
	Queries         uint64 `json:"queries"`
	ClientsAccepted uint64 `json:"clients_accepted"`
	ServerLogins    uint64 `json:"server_logins"`
	ClientBytes     uint64 `json:"client_bytes"`
	ServerBytes     uint64 `json:"server_bytes"`
	Waits           uint64 `json:"waits"`
}

// StatusRates are per-second rates over the last sampling interval.
type StatusRates struct {
	Seconds      float64 `json:"seconds"`
	TPS          float64 `json:"tps"`
	QPS          float64 `json:"qps"`
	AvgWaitMs    float64 `json:"avg_wait_ms"`
	AvgXactMs    float64 `json:"avg_xact_ms"`
	ClientBps    float64 `json:"client_bytes_per_sec"`
	ServerBps    float64 `json:"server_bytes_per_sec"`
	AcceptedPS   float64 `json:"accepted_per_sec"`
	DisconnectPS float64 `json:"disconnects_per_sec"`
}

// StatusCache describes the query cache (not active yet).
type StatusCache struct {
	Enabled  bool     `json:"enabled"`
	Hits     uint64   `json:"hits"`
	Misses   uint64   `json:"misses"`
	HitRatio *float64 `json:"hit_ratio"` // null while disabled or without lookups
}

// StatusBackend is one row of the backends table.
type StatusBackend struct {
	Addr   string `json:"addr"`
	Role   string `json:"role"`
	Health string `json:"health"`
	Lag    string `json:"lag"`
	Weight string `json:"weight"`
	State  string `json:"state"`
	Open   int    `json:"open"`
	Busy   int    `json:"busy"`
	Active int    `json:"active"`
	Idle   int    `json:"idle"`
}

// StatusPoint is one sample of the charts' history.
type StatusPoint struct {
	Time           int64    `json:"t"`
	ClientsActive  int      `json:"clients_active"`
	ClientsIdle    int      `json:"clients_idle"`
	ClientsWaiting int      `json:"clients_waiting"`
	ClientsTotal   int      `json:"clients_total"`
	ServersActive  int      `json:"servers_active"`
	ServersIdle    int      `json:"servers_idle"`
	ServersTotal   int      `json:"servers_total"`
	TPS            float64  `json:"tps"`
	QPS            float64  `json:"qps"`
	AvgWaitMs      float64  `json:"avg_wait_ms"`
	MaxWaitMs      float64  `json:"max_wait_ms"`
	CacheHitRatio  *float64 `json:"cache_hit_ratio"`
}

func (h *Handler) status(w http.ResponseWriter, r *http.Request) {
	n, _ := strconv.Atoi(r.URL.Query().Get("history"))
	st, err := h.Status(min(n, 3600))
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	_ = enc.Encode(st)
}

// Status builds the status document with up to history points.
func (h *Handler) Status(history int) (*Status, error) {
	var cur, prev *Snapshot
	var hist []*Snapshot
	if s := h.o.Sampler; s != nil {
		hist = s.History(history + 1)
		cur = s.Latest()
		prev, _ = s.Window(2*s.Interval() + s.Interval()/2)
		if cur == nil || time.Since(cur.Time) > 3*s.Interval() {
			cur = s.SampleNow()
		}
	}
	if cur == nil {
		var err error
		if cur, err = Take(h.o.Shared); err != nil {
			return nil, err
		}
	}
	if prev == cur {
		prev = nil
	}
	ok, why := Ready(h.o.Shared)
	st := &Status{Time: cur.Time.UnixMilli(), Version: h.o.Version, Engine: h.o.Engine,
		UptimeSeconds: time.Since(h.o.Started).Seconds(), Ready: ok, ReadyReason: why, Loops: len(cur.Loops),
		Clients: map[string]int{"total": cur.ClientsTotal()}, Servers: map[string]int{"total": cur.ServersTotal()},
		Pools: cur.Pools, PausedPools: cur.PausedPools, Waiting: cur.WaitingClients,
		MaxWaitMs: ms(cur.MaxWait), Disconnects: map[string]uint64{}}
	for k, v := range cur.Clients {
		if proxy.ClientState(k) != proxy.ClientClosed {
			st.Clients[proxy.ClientState(k).String()] = v
		}
	}
	for k, v := range cur.Servers {
		if proxy.ServerState(k) != proxy.ServerClosed {
			st.Servers[proxy.ServerState(k).String()] = v
		}
	}
	t := &cur.Stats
	st.Totals = StatusTotals{Transactions: t.Transactions, Queries: t.Queries, ClientsAccepted: t.ClientsAccepted,
		ServerLogins: t.ServerLogins, ClientBytes: t.ClientBytes, ServerBytes: t.ServerBytes, Waits: t.Waits}
	if prev != nil {
		r := RatesBetween(prev, cur)
		st.Rates = StatusRates{Seconds: r.Seconds, TPS: r.TPS, QPS: r.QPS, AvgWaitMs: ms(r.AvgWait),
			AvgXactMs: ms(r.AvgXact), ClientBps: r.ClientBytesPerS, ServerBps: r.ServerBytesPerS,
			AcceptedPS: r.AcceptedPerSec, DisconnectPS: r.DisconnectsPerS}
	}
	for i := 1; i < proxy.ReasonCount; i++ {
		if t.Closes[i] > 0 {
			st.Disconnects[proxy.ReasonName(i)] = t.Closes[i]
		}
	}
	for _, b := range cur.Backends {
		sb := StatusBackend{Addr: b.Addr, Role: b.Role, Health: b.Health, Lag: b.LagText(), Weight: b.Weight,
			State: b.State, Open: b.Open, Busy: b.Busy}
		if m := cur.ByBackend[b.Addr]; m != nil {
			sb.Active, sb.Idle = m[proxy.ServerActive], m[proxy.ServerIdle]
		}
		st.Backends = append(st.Backends, sb)
	}
	if history > 0 {
		for i := 1; i < len(hist); i++ {
			a, b := hist[i-1], hist[i]
			r := RatesBetween(a, b)
			st.History = append(st.History, StatusPoint{Time: b.Time.UnixMilli(),
				ClientsActive: b.Clients[proxy.ClientActive], ClientsIdle: b.Clients[proxy.ClientIdle],
				ClientsWaiting: b.Clients[proxy.ClientWaiting], ClientsTotal: b.ClientsTotal(),
				ServersActive: b.Servers[proxy.ServerActive], ServersIdle: b.Servers[proxy.ServerIdle],
				ServersTotal: b.ServersTotal(), TPS: r.TPS, QPS: r.QPS, AvgWaitMs: ms(r.AvgWait),
				MaxWaitMs: ms(b.MaxWait)})
		}
	}
	return st, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Serve listens on addr and serves h until the returned stop is called.
// It returns the bound address (addr may use port 0).
func Serve(addr string, h http.Handler, log *slog.Logger) (net.Addr, func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics listener stopped", "addr", addr, "err", err)
		}
	}()
	stop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if srv.Shutdown(ctx) != nil {
			_ = srv.Close()
		}
		<-done
	}
	return ln.Addr(), stop, nil
}
