// Package storm is the engine of pgstorm (cmd/pgstorm), the load generator
// that opens up to a million PostgreSQL client connections from one process
// and reports how the server (poolmgr, or PostgreSQL for small counts) holds
// them. See docs/pgstorm.md for usage, design and the kernel settings.
//
// Pieces, each testable alone:
//
//   - Client (client.go): the client side of one connection as a sans-I/O
//     state machine over bytes: startup, authentication through
//     internal/auth's BackendAuth (SCRAM-SHA-256, md5, password, trust),
//     ReadyForQuery, simple queries, errors by SQLSTATE. Only the bodies of
//     Authentication, ErrorResponse and ReadyForQuery are looked at; others
//     are skipped without buffering, so an idle connection holds no heap
//     memory. Proto holds what the connections of a worker share (encoded
//     messages, a SCRAM ClientKey cache).
//   - Histogram (hist.go): HDR-style log-linear latency histogram, 0.8%
//     relative precision, fixed size, no allocation per value.
//   - Sources (sources.go): the (127.x address, port) pairs connections bind
//     to; WantedSysctls/ApplySysctls (sysctl.go); ReadProc/ReadKernel
//     (procstat.go): /proc sampling of the target process and the kernel.
//   - Run (run_linux.go, engine_linux.go): worker goroutines, each locked to
//     its OS thread and owning several io_uring rings (SINGLE_ISSUER,
//     DEFER_TASKRUN) whose registered file tables hold the sockets as direct
//     descriptors, so the process goes far beyond RLIMIT_NOFILE. Each
//     connection is a 64-byte slot; a linked SOCKET -> BIND -> CONNECT ->
//     SEND(StartupMessage) chain opens it in one submit, a multishot recv
//     with a provided-buffer ring feeds its Client. No goroutine per
//     connection. Phases: preflight, connect, active, hold, sample, close.
package storm
