package metrics

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/poolmgr/poolmgr/internal/proxy"
)

// fakeEngine runs posted functions one at a time and ignores I/O.
type fakeEngine struct{ mu sync.Mutex }

func (e *fakeEngine) Post(fn func())                           { go func() { e.mu.Lock(); defer e.mu.Unlock(); fn() }() }
func (e *fakeEngine) Send(proxy.Handle, []byte)                {}
func (e *fakeEngine) Close(proxy.Handle)                       {}
func (e *fakeEngine) Dial(string, proxy.Endpoint) proxy.Handle { return 0 }
func (e *fakeEngine) PauseRead(proxy.Handle, bool)             {}

// newCore returns a core with two loops; the first has one client logging in.
func newCore(t *testing.T) *proxy.Shared {
	t.Helper()
	sh := proxy.NewShared(&proxy.Options{PoolSize: 5}, []string{"127.0.0.1:20000", "127.0.0.1:20001"})
	for i := 0; i < 2; i++ {
		l := proxy.NewLoop(sh, i)
		e := &fakeEngine{}
		l.Bind(e, e)
		if i == 0 {
			e.mu.Lock()
			l.Accept(1, netip.MustParseAddrPort("10.0.0.1:5000"))
			e.mu.Unlock()
		}
	}
	return sh
}

func TestTake(t *testing.T) {
	sh := newCore(t)
	s, err := Take(sh)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Loops) != 2 || s.Clients[proxy.ClientStartup] != 1 || s.ClientsTotal() != 1 || s.Stats.ClientsAccepted != 1 {
		t.Errorf("snapshot %+v", s)
	}
	if len(s.Backends) != 2 || s.Backends[0].Role != "unknown" || s.Backends[0].Health != "unknown" || s.Backends[0].LagText() != "n/a" {
		t.Errorf("backends %+v", s.Backends)
	}
}

// synthetic returns a snapshot with known counters.
func synthetic() *Snapshot {
	s := &Snapshot{Time: time.Now(), Loops: make([]proxy.LoopCounts, 1), ByBackend: map[string]*[proxy.NumServerStates]int{}}
	s.Clients[proxy.ClientActive] = 3
	s.Clients[proxy.ClientIdle] = 2
	s.Servers[proxy.ServerActive] = 3
	s.ByBackend["127.0.0.1:20000"] = &[proxy.NumServerStates]int{proxy.ServerActive: 3, proxy.ServerIdle: 1}
	s.Backends = []BackendStatus{{Addr: "127.0.0.1:20000", Role: "primary", Health: "up", Healthy: true, Open: 4, Busy: 3},
		{Addr: "127.0.0.1:20001", Role: "standby", Health: "up", Healthy: true, HasLag: true, Lag: 1500 * time.Millisecond, Checked: true}}
	st := &s.Stats
	st.Transactions, st.Queries, st.ClientBytes, st.ServerBytes = 10, 20, 300, 400
	st.ClientsAccepted = 7
	st.Closes[proxy.ReasonClientTerminate] = 5
	st.Closes[proxy.ReasonWaitTimeout] = 1
	// Waits: one under 1 µs (bucket 0), two in [2,4) µs (bucket 2), one huge (last bucket).
	st.WaitHist[0], st.WaitHist[2], st.WaitHist[proxy.HistBuckets-1] = 1, 2, 1
	st.Waits, st.WaitNanos = 4, 3_000_000_000
	st.XactHist[10] = 10 // [512 µs, 1024 µs)
	st.XactNanos = 7_000_000
	return s
}

func TestCollector(t *testing.T) {
	c := NewCollector(newCore(t), "1.2.3")
	snap := synthetic()
	c.take = func() (*Snapshot, error) { return snap, nil }
	if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", err, problems)
	}
	want := `
# HELP poolmgr_transactions_total Transactions completed on server connections.
# TYPE poolmgr_transactions_total counter
poolmgr_transactions_total 10
# HELP poolmgr_queries_total Queries forwarded (simple Query messages and extended-protocol Syncs/Executes).
# TYPE poolmgr_queries_total counter
poolmgr_queries_total 20
# HELP poolmgr_cache_hits_total Query cache hits (responses served without a backend).
# TYPE poolmgr_cache_hits_total counter
poolmgr_cache_hits_total 0
# HELP poolmgr_backend_replication_lag_seconds Replay lag of a health-checked standby (0 on the primary).
# TYPE poolmgr_backend_replication_lag_seconds gauge
poolmgr_backend_replication_lag_seconds{backend="127.0.0.1:20001"} 1.5
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "poolmgr_transactions_total",
		"poolmgr_queries_total", "poolmgr_cache_hits_total", "poolmgr_backend_replication_lag_seconds"); err != nil {
		t.Error(err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += "|" + l.GetName() + "=" + l.GetValue()
			}
			switch {
			case m.GetCounter() != nil:
				byName[key] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				byName[key] = m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				h := m.GetHistogram()
				byName[key+"|count"] = float64(h.GetSampleCount())
				byName[key+"|sum"] = h.GetSampleSum()
				for _, b := range h.GetBucket() {
					byName[key+"|le="+trimFloat(b.GetUpperBound(), 6)] = float64(b.GetCumulativeCount())
				}
			}
		}
	}
	for k, want := range map[string]float64{
		"poolmgr_clients|state=active":                                    3,
		"poolmgr_clients|state=idle":                                      2,
		"poolmgr_clients|state=waiting":                                   0,
		"poolmgr_server_connections|backend=127.0.0.1:20000|state=active": 3,
		"poolmgr_server_connections|backend=127.0.0.1:20000|state=idle":   1,
		"poolmgr_server_connections|backend=127.0.0.1:20001|state=active": 0,
		"poolmgr_disconnects_total|reason=client_terminate":               5,
		"poolmgr_disconnects_total|reason=query_wait_timeout":             1,
		"poolmgr_disconnects_total|reason=server_lost":                    0,
		"poolmgr_client_received_bytes_total":                             300,
		"poolmgr_server_received_bytes_total":                             400,
		"poolmgr_clients_accepted_total":                                  7,
		"poolmgr_backend_up|backend=127.0.0.1:20000":                      1,
		"poolmgr_backend_role|backend=127.0.0.1:20000|role=primary":       1,
		"poolmgr_backend_role|backend=127.0.0.1:20000|role=standby":       0,
		"poolmgr_backend_role|backend=127.0.0.1:20001|role=standby":       1,
		"poolmgr_backend_open_connections|backend=127.0.0.1:20000":        4,
		"poolmgr_build_info|version=1.2.3":                                1,
		"poolmgr_client_wait_seconds|count":                               4,
		"poolmgr_client_wait_seconds|sum":                                 3,
		"poolmgr_client_wait_seconds|le=0.000001":                         1, // bucket 0: < 1 µs
		"poolmgr_client_wait_seconds|le=0.000002":                         1,
		"poolmgr_client_wait_seconds|le=0.000004":                         3, // + two in [2,4) µs
		"poolmgr_client_wait_seconds|le=4.194304":                         3, // the huge one only in +Inf
		"poolmgr_transaction_duration_seconds|count":                      10,
		"poolmgr_transaction_duration_seconds|sum":                        0.007,
		"poolmgr_transaction_duration_seconds|le=0.000512":                0,
		"poolmgr_transaction_duration_seconds|le=0.001024":                10,
		"poolmgr_cache_misses_total":                                      0,
		"poolmgr_scrape_error":                                            0,
	} {
		got, ok := byName[k]
		if !ok {
			t.Errorf("%s: missing", k)
			continue
		}
		if got != want {
			t.Errorf("%s = %v, want %v", k, got, want)
		}
	}
	if _, ok := byName["poolmgr_backend_replication_lag_seconds|backend=127.0.0.1:20000"]; ok {
		t.Error("lag exported for a backend without health checks")
	}
}

func TestCollectorLiveCore(t *testing.T) {
	c := NewCollector(newCore(t), "x")
	if n := testutil.CollectAndCount(c, "poolmgr_clients"); n != proxy.NumClientStates-1 {
		t.Errorf("poolmgr_clients has %d series", n)
	}
	want := "# HELP poolmgr_loops Event loops.\n# TYPE poolmgr_loops gauge\npoolmgr_loops 2\n"
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "poolmgr_loops"); err != nil {
		t.Error(err)
	}
	if v := testutil.ToFloat64(prometheus.CollectorFunc(func(ch chan<- prometheus.Metric) {
		s, _ := Take(c.sh)
		ch <- prometheus.MustNewConstMetric(c.clients, prometheus.GaugeValue, float64(s.Clients[proxy.ClientStartup]), "startup")
	})); v != 1 {
		t.Errorf("startup clients = %v", v)
	}
}

func TestRatesAndSampler(t *testing.T) {
	a, b := synthetic(), synthetic()
	b.Time = a.Time.Add(2 * time.Second)
	b.Stats.Transactions += 200
	b.Stats.Queries += 400
	b.Stats.Waits += 2
	b.Stats.WaitNanos += 4_000_000
	r := RatesBetween(a, b)
	if r.TPS != 100 || r.QPS != 200 || r.AvgWait != 2*time.Millisecond {
		t.Errorf("rates %+v", r)
	}
	s := NewSampler(newCore(t), time.Second, 3, nil)
	for i := 0; i < 5; i++ {
		x := synthetic()
		x.Time = a.Time.Add(time.Duration(i) * time.Second)
		s.Add(x)
	}
	if h := s.History(0); len(h) != 3 || !h[2].Time.Equal(a.Time.Add(4*time.Second)) {
		t.Errorf("history %d", len(h))
	}
	old, cur := s.Window(1500 * time.Millisecond)
	if cur.Time.Sub(old.Time) != time.Second {
		t.Errorf("window %v", cur.Time.Sub(old.Time))
	}
	if s.SampleNow() == nil || s.Latest().Clients[proxy.ClientStartup] != 1 {
		t.Error("SampleNow")
	}
}

func TestHTTP(t *testing.T) {
	sh := newCore(t)
	s := NewSampler(sh, 100*time.Millisecond, 10, nil)
	s.SampleNow()
	time.Sleep(20 * time.Millisecond)
	s.SampleNow()
	srv := httptest.NewServer(NewHandler(Options{Shared: sh, Sampler: s, Version: "1.2.3", Engine: "fallback"}))
	defer srv.Close()
	get := func(path string) (int, string, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
	}
	if code, _, body := get("/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz %d %q", code, body)
	}
	// No backend role known yet: not ready.
	if code, _, body := get("/readyz"); code != 503 || !strings.Contains(body, "no reachable primary") {
		t.Errorf("/readyz %d %q", code, body)
	}
	code, ctype, body := get("/metrics")
	if code != 200 || !strings.Contains(body, `poolmgr_build_info{version="1.2.3"} 1`) ||
		!strings.Contains(body, "poolmgr_client_wait_seconds_bucket") || !strings.Contains(body, "go_goroutines") {
		t.Errorf("/metrics %d %s\n%.2000s", code, ctype, body)
	}
	code, ctype, body = get("/api/status?history=10")
	var st Status
	if code != 200 || ctype != "application/json" || json.Unmarshal([]byte(body), &st) != nil {
		t.Fatalf("/api/status %d %s %s", code, ctype, body)
	}
	if st.Version != "1.2.3" || st.Clients["startup"] != 1 || st.Clients["total"] != 1 || len(st.Backends) != 2 ||
		st.Ready || st.Cache.Enabled || st.Cache.HitRatio != nil || st.Loops != 2 || len(st.History) == 0 {
		t.Errorf("status %+v", st)
	}
	for _, p := range []string{"/", "/app.js", "/style.css"} {
		code, _, body := get(p)
		if code != 200 || len(body) < 100 {
			t.Errorf("%s: %d %d bytes", p, code, len(body))
		}
	}
	if _, _, body := get("/"); !strings.Contains(body, "<canvas") || strings.Contains(body, "http://") || strings.Contains(body, "https://") {
		t.Error("status page must be self-contained (no external URLs) and have charts")
	}
	if code, _, _ := get("/nope"); code != 404 {
		t.Errorf("/nope %d", code)
	}
}
