// Package testutil holds helpers for poolmgr's black-box tests (test/e2e)
// and for package tests that need the real test cluster.
//
//   - RequireCluster / RequireBinary: skip (or, with POOLMGR_E2E=1, fail)
//     when the PostgreSQL test cluster (scripts/pgcluster) or a client binary
//     is missing.
//   - StartPoolmgr: build bin/poolmgr once per test binary, start it with a
//     config on a free 127.0.0.1 port, stop it when the test ends and dump its
//     log if the test failed.
//   - Config: a small builder for the TOML config (keys of internal/config).
//   - CheckFor / WaitFor: poll a condition instead of sleeping.
//   - ServerConnCount: count server connections in pg_stat_activity.
//   - PgbenchRun: run pgbench and parse TPS, failures and exit code.
//
// Environment:
//
//	POOLMGR_E2E=1        missing cluster or tools is a failure, not a skip
//	POOLMGR_ENGINE       io_engine for started proxies (default "fallback")
//	POOLMGR_BIN          use this poolmgr binary instead of building one
//	POOLMGR_LOG_LEVEL    [log] level used by Config.TOML (default "info")
//	POOLMGR_E2E_DIRECT=1 start no proxy: tests talk to the primary directly
//	                     (checks the tests themselves; pooling tests skip)
package testutil
