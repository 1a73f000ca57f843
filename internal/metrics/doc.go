// Package metrics is poolmgr's observability HTTP side: a Prometheus
// collector over the core's per-loop counters (read on scrape through
// proxy.Shared.InspectWithin, never updated for Prometheus on the per-query
// path), /healthz and /readyz, the /api/status JSON document and the live
// status page (web/, embedded), plus the Sampler that keeps a short history
// for the page's charts and the admin console's SHOW STATS averages.
//
// Files: snapshot.go (one consistent view of every loop), sampler.go (the
// history and rates), collector.go (Prometheus metrics), server.go (HTTP
// routes and the status document), web/ (index.html, app.js, style.css).
package metrics
