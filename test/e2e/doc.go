// Package e2e holds poolmgr's black-box end-to-end tests: each test builds
// bin/poolmgr (once), starts it with its own config in front of the test
// cluster (scripts/pgcluster) and talks to it with pgx, psql, pgbench or raw
// TCP. Run with
//
//	scripts/pgcluster start
//	POOLMGR_E2E=1 go test -count=1 -v ./test/e2e/
//
// Without POOLMGR_E2E=1 the tests skip when the cluster is not running.
// POOLMGR_ENGINE selects the io_engine (default "fallback").
package e2e
