package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/poolmgr/poolmgr/internal/testutil"
	"github.com/poolmgr/poolmgr/test/browser"
)

// startMetricsProxy starts poolmgr with metrics_bind on a free port and the
// admin console enabled; it returns the proxy and the HTTP base URL.
func startMetricsProxy(t *testing.T, cfg testutil.Config) (*testutil.Proxy, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg.Sections = adminSections + fmt.Sprintf("metrics_bind = %q\n", addr) + cfg.Sections
	p := startProxy(t, cfg)
	testutil.RequireProcess(t)
	base := "http://" + addr
	testutil.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		_, _, err := httpGet(base + "/healthz")
		return err
	})
	return p, base
}

func httpGet(url string) (int, string, error) {
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// metricValue returns the value of the sample named exactly series (name
// with its labels as Prometheus prints them), or -1.
func metricValue(text, series string) float64 {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` ([0-9.eE+-]+)$`)
	m := re.FindStringSubmatch(text)
	if m == nil {
		return -1
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// /metrics, /healthz, /readyz and /api/status against a running poolmgr.
func TestMetricsEndpoint(t *testing.T) {
	p, base := startMetricsProxy(t, testutil.Config{PoolSize: 2})
	ctx := testCtx(t, 60*time.Second)
	if code, body, err := httpGet(base + "/healthz"); err != nil || code != 200 || body != "ok\n" {
		t.Fatalf("/healthz: %d %q %v", code, body, err)
	}
	c := connect(t, ctx, p)
	for i := 0; i < 20; i++ {
		tx, err := c.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		mustExec(t, ctx, c, "SELECT 1")
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// A client that disconnects is counted by close reason.
	other := connect(t, ctx, p)
	mustExec(t, ctx, other, "SELECT 1")
	other.Close(ctx)

	testutil.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		code, body, err := httpGet(base + "/readyz")
		if err != nil || code != 200 {
			return errorf("/readyz: %d %q %v", code, body, err)
		}
		return nil
	})

	var text string
	testutil.CheckFor(t, 10*time.Second, 100*time.Millisecond, func() error {
		code, body, err := httpGet(base + "/metrics")
		if err != nil || code != 200 {
			return errorf("/metrics: %d %v", code, err)
		}
		text = body
		if v := metricValue(text, `poolmgr_disconnects_total{reason="client_terminate"}`); v < 1 {
			return errorf("client_terminate disconnects = %v", v)
		}
		return nil
	})
	for series, min := range map[string]float64{
		"poolmgr_transactions_total":                                                  20,
		"poolmgr_queries_total":                                                       20,
		"poolmgr_clients_accepted_total":                                              2,
		"poolmgr_server_logins_total":                                                 1,
		"poolmgr_client_received_bytes_total":                                         100,
		"poolmgr_server_received_bytes_total":                                         100,
		"poolmgr_transaction_duration_seconds_count":                                  20,
		`poolmgr_clients{state="idle"}`:                                               1,
		`poolmgr_backend_role{backend="` + testutil.PrimaryAddr + `",role="primary"}`: 1,
		`poolmgr_backend_up{backend="` + testutil.PrimaryAddr + `"}`:                  1,
		"poolmgr_loops":                                                               1,
	} {
		if v := metricValue(text, series); v < min {
			t.Errorf("%s = %v, want >= %v", series, v, min)
		}
	}
	if !regexp.MustCompile(`(?m)^poolmgr_build_info\{version=".+"\} 1$`).MatchString(text) {
		t.Errorf("no poolmgr_build_info")
	}
	for _, series := range []string{`poolmgr_server_connections{backend="` + testutil.PrimaryAddr + `",state="idle"}`,
		"poolmgr_client_wait_seconds_count", `poolmgr_client_wait_seconds_bucket{le="+Inf"}`,
		"poolmgr_cache_hits_total", "poolmgr_cache_misses_total", `poolmgr_disconnects_total{reason="query_wait_timeout"}`,
		"poolmgr_pools", "poolmgr_waiting_clients", "poolmgr_client_max_wait_seconds"} {
		if metricValue(text, series) < 0 {
			t.Errorf("%s missing from /metrics", series)
		}
	}

	code, body, err := httpGet(base + "/api/status?history=5")
	if err != nil || code != 200 {
		t.Fatalf("/api/status: %d %v", code, err)
	}
	var st struct {
		Ready  bool `json:"ready"`
		Totals struct {
			Transactions uint64 `json:"transactions"`
		} `json:"totals"`
		Clients  map[string]int `json:"clients"`
		Backends []struct {
			Addr, Role, Health, Lag string
		} `json:"backends"`
		Cache struct {
			Enabled bool `json:"enabled"`
		} `json:"cache"`
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("/api/status: %v\n%s", err, body)
	}
	if !st.Ready || st.Totals.Transactions < 20 || st.Clients["total"] < 1 || len(st.Backends) != 1 ||
		st.Backends[0].Role != "primary" || st.Cache.Enabled {
		t.Errorf("/api/status %s", body)
	}
}

// requireChromium returns the Chromium binary; with POOLMGR_E2E=1 a missing
// browser fails the test (scripts/install-deps installs Debian's chromium).
func requireChromium(t *testing.T) string {
	t.Helper()
	exe, err := browser.Find()
	if err != nil {
		if testutil.E2ERequired() {
			t.Fatalf("POOLMGR_E2E=1 but %v", err)
		}
		t.Skip(err)
	}
	return exe
}

// pageState is what the test reads from the page: DOM texts and the last
// status document the page's script received.
type pageState struct {
	Polls        int     `json:"polls"`
	Errors       int     `json:"errors"`
	TPSText      string  `json:"tpsText"`
	ClientsText  string  `json:"clientsText"`
	ServersText  string  `json:"serversText"`
	Transactions float64 `json:"transactions"`
	History      int     `json:"history"`
	PrimaryRow   bool    `json:"primaryRow"`
	Ready        string  `json:"ready"`
	ChartPixels  int     `json:"chartPixels"`
}

const readPage = `(() => {
  const s = window.poolmgrStatus || {polls: 0, errors: 0, last: null};
  const txt = (id) => (document.getElementById(id) || {}).textContent || "";
  // Count drawn (non-transparent) pixels of the TPS chart.
  let px = 0;
  const cv = document.getElementById("chart-tps");
  if (cv) {
    const d = cv.getContext("2d").getImageData(0, 0, cv.width, cv.height).data;
    for (let i = 3; i < d.length; i += 4) if (d[i] > 0) px++;
  }
  return {polls: s.polls, errors: s.errors, tpsText: txt("tps"), clientsText: txt("clients-total"),
    serversText: txt("servers-total"), transactions: s.last ? s.last.totals.transactions : -1,
    history: s.last && s.last.history ? s.last.history.length : 0,
    primaryRow: !!document.querySelector('#backends tr[data-role="primary"]'), ready: txt("ready"), chartPixels: px};
})()`

func num(s string) float64 {
	v, err := strconv.ParseFloat(regexp.MustCompile(`[^0-9.]`).ReplaceAllString(s, ""), 64)
	if err != nil {
		return -1
	}
	return v
}

// The status page in a real browser: headless Chromium loads it, the numbers
// change while a pgx load runs through the proxy, and a screenshot is saved
// to test/browser/out/statuspage.png.
func TestStatusPageBrowser(t *testing.T) {
	exe := requireChromium(t)
	p, base := startMetricsProxy(t, testutil.Config{PoolSize: 4})
	ctx := testCtx(t, 120*time.Second)

	profile := t.TempDir()
	bctx, closeBrowser, err := browser.Start(ctx, exe, profile, 1280, 1000)
	if err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	defer closeBrowser()
	if err := chromedp.Do(bctx, chromedp.Navigate(base+"/")); err != nil {
		t.Fatalf("load %s: %v", base, err)
	}
	read := func() pageState {
		t.Helper()
		st, err := chromedp.Run(bctx, chromedp.Evaluate[pageState](readPage))
		if err != nil {
			t.Fatalf("read page: %v", err)
		}
		return st
	}
	var before pageState
	testutil.CheckFor(t, 15*time.Second, 200*time.Millisecond, func() error {
		before = read()
		if before.Polls < 2 {
			return errorf("page polled %d times", before.Polls)
		}
		return nil
	})
	t.Logf("page before load: %+v", before)

	// Load: 10 clients running short transactions (pool_size 4, so some wait).
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	var wg sync.WaitGroup
	var done atomic.Int64
	for i := 0; i < 10; i++ {
		c := connect(t, ctx, p)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for loadCtx.Err() == nil {
				if _, err := c.Exec(loadCtx, "SELECT pg_sleep(0.002)"); err == nil {
					done.Add(1)
				}
			}
		}()
	}
	var during pageState
	testutil.CheckFor(t, 30*time.Second, 250*time.Millisecond, func() error {
		during = read()
		switch {
		case during.Errors > 0:
			return errorf("page fetch errors: %+v", during)
		case num(during.TPSText) <= 0:
			return errorf("TPS tile still %q", during.TPSText)
		case num(during.ClientsText) < 10:
			return errorf("clients tile %q, want >= 10", during.ClientsText)
		case during.Transactions <= before.Transactions:
			return errorf("transactions did not grow: %v -> %v", before.Transactions, during.Transactions)
		case during.History < 3:
			return errorf("history has %d points", during.History)
		}
		return nil
	})
	t.Logf("page under load: %+v (load ran %d queries so far)", during, done.Load())
	if !during.PrimaryRow {
		t.Error("backends table has no primary row")
	}
	if during.Ready != "ready" {
		t.Errorf("ready badge %q", during.Ready)
	}
	if during.ChartPixels == 0 {
		t.Error("the TPS chart drew nothing")
	}
	time.Sleep(1500 * time.Millisecond) // a little more history in the charts
	out, err := browser.OutDir()
	if err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(out, "statuspage.png")
	if err := browser.Screenshot(bctx, shot); err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if fi, err := os.Stat(shot); err != nil || fi.Size() < 10000 {
		t.Fatalf("screenshot %s: %v", shot, err)
	}
	t.Logf("screenshot: %s", shot)
	stopLoad()
	wg.Wait()
	if done.Load() == 0 {
		t.Fatal("the load ran no query")
	}

	// After the load the page keeps polling and TPS falls back to 0.
	testutil.CheckFor(t, 15*time.Second, 250*time.Millisecond, func() error {
		after := read()
		if after.Polls <= during.Polls || num(after.TPSText) != 0 {
			return errorf("after load: %+v", after)
		}
		return nil
	})
}
