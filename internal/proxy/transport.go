package proxy

import "net/netip"

// Handle names one connection inside an engine. Engines choose the values
// (e.g. ring index + slot + generation); the core treats them as opaque.
type Handle uint64

// Transport is what an engine offers the core. Every method is non-blocking:
// it queues an action that the engine carries out after the current event.
// Methods are called only from the goroutine currently running the loop.
type Transport interface {
	// Send queues b for writing on h. The engine copies b (or takes it before
	// the event returns); the core may reuse b after Send returns. Bytes queued
	// on one handle are written in order. Sending on a closed handle is a no-op.
	Send(h Handle, b []byte)
	// Close writes what is queued on h, then closes it. The engine reports
	// nothing further for h except, possibly, nothing: no OnClosed follows a
	// Close requested by the core.
	Close(h Handle)
	// Dial starts connecting to addr (a pool.backends entry: "host:port", or
	// "/directory:port" for a Unix-domain socket, see config.UnixSocketPath)
	// and returns the handle at once. The engine later calls ep.OnConnected(err) exactly once; after a
	// successful connect, data and close events go to ep.
	Dial(addr string, ep Endpoint) Handle
	// PauseRead stops (true) or resumes (false) delivering data for h
	// (backpressure: a peer cannot keep up).
	PauseRead(h Handle, paused bool)
}

// Endpoint receives an engine's events for one connection. *Client and
// *Server implement it. The engine calls these only while it runs the loop
// that owns the endpoint.
type Endpoint interface {
	// OnData delivers received bytes; b is valid only during the call.
	OnData(b []byte)
	// OnConnected reports the end of a Dial (err nil on success).
	OnConnected(err error)
	// OnClosed reports that the peer closed or the connection failed
	// (not called after a Close the core requested).
	OnClosed(err error)
	// OnWriteBlocked reports that the handle's queued output went above
	// (true) or back below (false) the engine's high/low watermarks.
	OnWriteBlocked(blocked bool)
}

// Acceptor is implemented by the core's Loop: an engine calls Accept for every
// new client connection and gets the endpoint that will receive its events.
type Acceptor interface {
	Accept(h Handle, remote netip.AddrPort) Endpoint
}

// Poster is the thread-safe part of an engine: Post runs fn on the loop's
// goroutine soon (used for cross-loop work such as cancel requests and
// config reloads). It may be called from any goroutine.
type Poster interface {
	Post(fn func())
}

// Ticker is implemented by the core's Loop; engines call Tick about every
// 100 ms on the loop's goroutine so the core can run its timeouts.
type Ticker interface {
	Tick()
}
