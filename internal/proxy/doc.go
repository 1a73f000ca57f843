// Package proxy is poolmgr's sans-I/O core: the client and server connection
// state machines, the pools, and the per-loop state that ties them together.
//
// The core never touches a socket, never blocks and never starts a goroutine.
// An engine (internal/engine/...) owns the sockets; it calls Loop.Accept for a
// new client, and an Endpoint's OnData/OnConnected/OnClosed/OnWriteBlocked
// for events; the core answers by calling the engine's Transport (Send, Close,
// Dial, PauseRead), which queues the action until the event returns.
//
// One Loop owns a set of clients, servers and pools and is driven by one
// goroutine at a time. State shared between loops (backend connection counts,
// pool sizes, cancel keys, secrets) lives in Shared and is touched with atomics
// or short critical sections off the per-query path.
//
// Files: loop.go (the loop and its timers), client.go (client states and
// forwarding), clientauth.go (startup and authentication), server.go (server
// states, login and forwarding), pool.go (acquire, release, wait queue: the
// release decision lives in Loop.release), params.go (tracked session
// parameters), cancel.go (cancel keys), shared.go (cross-loop state),
// reasons.go (close reasons and refusals).
package proxy
